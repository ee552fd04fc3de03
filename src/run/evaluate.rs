//! Evaluation: scores images with the trained model (BatchNorm on running statistics),
//! against the reference set.

use burn::prelude::*;

use crate::config::TrainConfig;
use crate::data::batch::Batcher;
use crate::data::reference::ReferenceSet;
use crate::data::transform::Normalization;
use crate::error::Result;
use crate::model::Dra;
use crate::model::memory::PatchMemory;
use crate::rng::DraRng;
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
/// patch memory, if any, through the model's frozen backbone), calling `on_batch(done,
/// total)`. `model` must be on a plain (non-autodiff) device, e.g. `trained.valid()`.
#[allow(clippy::too_many_arguments)]
pub fn score_samples(
    model: &Dra,
    memory: Option<&PatchMemory>,
    scoring: &Scoring,
    samples: &[Sample],
    references: &mut ReferenceSet,
    batcher: &mut Batcher,
    rng: &mut DraRng,
    mut on_batch: impl FnMut(usize, usize),
) -> Result<Vec<Scored>> {
    let Scoring {
        device,
        norm,
        batch_size,
    } = scoring;
    let mut maps = None;
    let mut out = Vec::with_capacity(samples.len());
    for chunk in samples.chunks(*batch_size) {
        if model.needs_reference() && (maps.is_none() || references.augmented()) {
            let slots = references.slots(rng);
            let refs = batcher.batch(&slots, references.augmented(), norm, rng)?;
            maps = Some(model.reference_maps(refs.to_tensor(device)));
        }
        let batch = batcher.eval_batch(chunk, norm)?.to_tensor(device);
        let remembered = memory.map(|m| m.scores(&model.backbone, batch.clone()));
        let scores = model.score(batch, maps.as_deref().unwrap_or(&[]));
        let total: Vec<f32> = scores
            .anomaly_score()
            .into_data()
            .try_to_vec()
            .expect("f32 scores");
        let mut heads: Vec<(Head, Vec<f32>)> = scores
            .iter()
            .map(|(h, t)| (h, t.into_data().try_to_vec().expect("f32 scores")))
            .collect();
        heads.extend(remembered.map(|v| (Head::Memory, v)));
        for (i, sample) in chunk.iter().enumerate() {
            out.push(Scored {
                path: sample.path.clone(),
                class: sample.class.clone(),
                anomaly: sample.is_anomaly(),
                score: total[i],
                heads: heads.iter().map(|(h, v)| (*h, v[i])).collect(),
            });
        }
        on_batch(out.len(), samples.len());
    }
    Ok(out)
}
