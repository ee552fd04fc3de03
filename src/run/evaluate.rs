//! Evaluation: scores images with the trained model (BatchNorm on running statistics),
//! against the reference set.

use burn::prelude::*;

use crate::config::TrainConfig;
use crate::data::batch::Batcher;
use crate::data::reference::ReferenceSet;
use crate::data::transform::Normalization;
use crate::error::Result;
use crate::fusion::Fusion;
use crate::model::Dra;
use crate::model::memory::PatchMemory;
use crate::rng::DraRng;
use crate::run::maps::MapOutputs;
use crate::types::{Head, Sample, Scored};

/// How images are scored: on which device, normalised how, how many at a time.
#[derive(Debug, Clone)]
pub struct Scoring {
    pub device: Device,
    pub norm: Normalization,
    pub batch_size: usize,
}

impl Scoring {
    /// The scoring of a run's settings (its plain device, normalisation and batch size).
    pub fn of(config: &TrainConfig) -> Result<Self> {
        Ok(Scoring {
            device: config.device.device()?,
            norm: config.normalization(),
            batch_size: config.batch_size,
        })
    }
}

/// Scores `samples` in batches, against references drawn from `batcher`'s normals (and the
/// patch memory, if any, through the model's frozen backbone), each image's parts fused by
/// `fusion` into its score and map, calling `on_batch(done,
/// total)`, and hands every image's maps to `maps` if given. `model` must be on a plain
/// (non-autodiff) device, e.g. `trained.valid()`. `reference_maps` holds the reference
/// set's feature maps: computed here when `None` (and for every batch of an augmented set),
/// so that a caller scoring again against the same fixed set can pass them back.
#[allow(clippy::too_many_arguments)]
pub fn score_samples(
    model: &Dra,
    memory: Option<&PatchMemory>,
    fusion: &Fusion,
    scoring: &Scoring,
    samples: &[Sample],
    references: &mut ReferenceSet,
    reference_maps: &mut Option<Vec<Tensor<4>>>,
    batcher: &mut Batcher,
    rng: &mut DraRng,
    mut maps: Option<&mut MapOutputs>,
    mut on_batch: impl FnMut(usize, usize),
) -> Result<Vec<Scored>> {
    let Scoring {
        device,
        norm,
        batch_size,
    } = scoring;
    let maps_of = reference_maps;
    let mut out = Vec::with_capacity(samples.len());
    for chunk in samples.chunks(*batch_size) {
        if model.needs_reference() && (maps_of.is_none() || references.augmented()) {
            let slots = references.slots(rng);
            let refs = batcher.batch(&slots, references.augmented(), norm, rng)?;
            *maps_of = Some(model.reference_maps(refs.to_tensor(device)));
        }
        let batch = batcher.eval_batch(chunk, norm)?.to_tensor(device);
        let [_, _, height, width] = batch.dims();
        let refs = maps_of.as_deref().unwrap_or(&[]);
        let e = model.evaluate(batch, refs, memory, maps.is_some());
        let (scores, remembered) = (e.scores, e.memory);
        let mut head_maps: Vec<(Head, Vec<f32>)> = Vec::new();
        if maps.is_some() {
            head_maps = e.maps.into_iter().map(|(h, m)| (h, values(m))).collect();
            if let Some((_, map)) = &remembered {
                head_maps.push((Head::Memory, values(map.clone())));
            }
        }
        let remembered = remembered.map(|(v, _)| v);
        let mut heads: Vec<(Head, Vec<f32>)> = scores.iter().map(|(h, t)| (h, values(t))).collect();
        heads.extend(remembered.map(|v| (Head::Memory, v)));
        let cells = height * width;
        for (i, sample) in chunk.iter().enumerate() {
            let parts: Vec<(Head, f32)> = heads.iter().map(|(h, v)| (*h, v[i])).collect();
            let scored = Scored {
                path: sample.path.clone(),
                class: sample.class.clone(),
                anomaly: sample.is_anomaly(),
                score: fusion.score(&parts),
                heads: parts,
            };
            if let Some(maps) = maps.as_deref_mut() {
                let image: Vec<(Head, Vec<f32>)> = head_maps
                    .iter()
                    .map(|(h, v)| (*h, v[i * cells..(i + 1) * cells].to_vec()))
                    .collect();
                let input = batcher.image(&sample.path)?;
                maps.add(sample, input, scored.score, &image)?;
            }
            out.push(scored);
        }
        on_batch(out.len(), samples.len());
    }
    Ok(out)
}

/// A tensor's values, row-major.
fn values<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data().try_to_vec().expect("f32 values")
}
