//! The unsupervised baselines of a split, for comparison with DRA: kNN on pooled features
//! ([`crate::baselines::knn`]) and patch kNN ([`crate::model::memory`]), both on the frozen pretrained
//! backbone, with the normal training images as their memory. They use no anomaly at all.

pub mod knn;

use burn::prelude::*;
use serde::{Deserialize, Serialize};

use crate::baselines::knn::{knn_scores, pooled};
use crate::data::batch::{ImageStore, eval_batch};
use crate::error::Result;
use crate::fusion::Fusion;
use crate::metrics::{auc_roc, average_precision};
use crate::model::backbone::Backbone;
use crate::model::memory::{memory_bank, patch_features, scores_and_maps};
use crate::run::Plan;
use crate::run::maps::MapOutputs;
use crate::types::{Auc, Head, Metrics, PixelAuc, Sample};

/// The two baselines' AUCs on one test split.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct Baselines {
    /// kNN on globally pooled features.
    pub pooled: Auc,
    /// Patch kNN.
    pub patch: Auc,
    /// Patch kNN's anomaly maps (each patch's distance, smoothed as DRA's maps) against the
    /// masks, where the test set has them.
    pub patch_pixel: Option<PixelAuc>,
}

/// What one pass of the backbone gives both baselines, per image batch.
struct Embedded {
    pooled: Vec<Vec<f32>>,
    patches: Vec<Tensor<4>>,
}

/// Pooled and patch features of `samples` (unaugmented, in batches of `batch_size`).
fn embed(
    backbone: &Backbone,
    store: &mut ImageStore,
    samples: &[Sample],
    batch_size: usize,
    device: &Device,
) -> Result<Embedded> {
    let norm = backbone.kind().normalization();
    let mut out = Embedded {
        pooled: Vec::with_capacity(samples.len()),
        patches: Vec::new(),
    };
    for chunk in samples.chunks(batch_size.max(1)) {
        let batch = eval_batch(store, chunk, &norm)?;
        let (s16, s32) = backbone.stride16_and_features(batch.to_tensor(device));
        out.pooled.extend(pooled(s32.clone()));
        out.patches.push(patch_features(s16, s32));
    }
    Ok(out)
}

/// Both baselines on the test split of `plan`, with its backbone and decoded images (its
/// seed draws the coreset, from a copy of its generator), and patch kNN's maps.
pub fn knn_baseline(plan: &mut Plan) -> Result<Baselines> {
    baselines(plan, None)
}

/// The baselines beside a run of `plan` that scored with the memory (`metrics` its test
/// metrics): its memory term alone is patch kNN (the same bank of the same split, as
/// `tests/quality.rs` and `tests/maps.rs` check), so only the pooled kNN is computed and the
/// bank is not built again. Without a memory, [`knn_baseline`].
pub fn knn_baseline_beside(plan: &mut Plan, metrics: &Metrics) -> Result<Baselines> {
    let memory = metrics.heads.get(Head::Memory.name()).copied();
    let maps = metrics
        .pixel
        .as_ref()
        .map(|p| p.heads.get(Head::Memory.name()).copied());
    match (memory, maps) {
        (Some(patch), None) => baselines(plan, Some((patch, None))),
        (Some(patch), Some(Some(map))) => baselines(plan, Some((patch, Some(map)))),
        _ => knn_baseline(plan),
    }
}

/// Both baselines, patch kNN's taken as `known` when given.
fn baselines(plan: &mut Plan, known: Option<(Auc, Option<PixelAuc>)>) -> Result<Baselines> {
    let mut rng = plan.rng.clone();
    let device = plan.config.device.device()?;
    let batch_size = plan.config.batch_size;
    let p = &plan.split;
    let bank = embed(
        &plan.backbone,
        &mut plan.images,
        &p.train_normal,
        batch_size,
        &device,
    )?;
    let test = embed(
        &plan.backbone,
        &mut plan.images,
        &p.test,
        batch_size,
        &device,
    )?;
    let labels: Vec<bool> = p.test.iter().map(|s| s.is_anomaly()).collect();
    let auc = |scores: Vec<f32>| -> Result<Auc> {
        let scores: Vec<f64> = scores.into_iter().map(f64::from).collect();
        Ok(Auc {
            auc_roc: auc_roc(&labels, &scores)?,
            auc_pr: average_precision(&labels, &scores)?,
        })
    };
    let pooled = auc(knn_scores(&bank.pooled, &test.pooled))?;
    if let Some((patch, patch_pixel)) = known {
        return Ok(Baselines {
            pooled,
            patch,
            patch_pixel,
        });
    }
    let memory = memory_bank(bank.patches, &mut rng);
    let side = plan.config.img_size as u32;
    let plain = Fusion::plain();
    let mut maps = MapOutputs::new(&plan.config, &plain, None, None, plan.masks.clone());
    let mut patch = Vec::with_capacity(p.test.len());
    let size = [side as usize; 2];
    for (f, chunk) in test
        .patches
        .into_iter()
        .zip(p.test.chunks(batch_size.max(1)))
    {
        let (scores, map) = scores_and_maps(&memory, f, size);
        let map: Vec<f32> = map.into_data().try_to_vec().expect("f32 map");
        let cells = size[0] * size[1];
        for (i, (sample, &score)) in chunk.iter().zip(&scores).enumerate() {
            let heads = [(Head::Memory, map[i * cells..(i + 1) * cells].to_vec())];
            let input = plan.images.get(&sample.path)?;
            maps.add(sample, input, score, &heads)?;
        }
        patch.extend(scores);
    }
    Ok(Baselines {
        pooled,
        patch: auc(patch)?,
        patch_pixel: maps.finish(None)?.map(|m| PixelAuc {
            auc_roc: m.auc_roc,
            aupro: m.aupro,
        }),
    })
}
