//! Evaluation: scores every test image with the trained model (BatchNorm on running
//! statistics), against the reference set.

use crate::config::TrainConfig;
use crate::data::batch::{Batcher, ImageStore, eval_batch};
use crate::data::sampler::ReferenceSet;
use crate::error::Result;
use crate::model::Dra;
use crate::rng::DraRng;
use crate::types::Scored;
use crate::types::{Head, Sample};

/// Scores `samples` in batches of `config.batch_size`, calling `on_batch(done, total)`.
/// `model` must be on a plain (non-autodiff) device, e.g. `trained.valid()`.
pub fn score_samples(
    model: &Dra,
    config: &TrainConfig,
    samples: &[Sample],
    references: &mut ReferenceSet,
    batcher: &mut Batcher,
    rng: &mut DraRng,
    mut on_batch: impl FnMut(usize, usize),
) -> Result<Vec<Scored>> {
    let device = config.device.device()?;
    let norm = config.normalization();
    let mut store = ImageStore::new(config.img_size as u32);
    let mut maps = None;
    let mut out = Vec::with_capacity(samples.len());
    for chunk in samples.chunks(config.batch_size) {
        if model.needs_reference() && (maps.is_none() || references.augmented()) {
            let slots = references.draw(rng);
            let refs = batcher.batch(&slots, references.augmented(), &norm, rng)?;
            maps = Some(model.reference_maps(refs.to_tensor(&device)));
        }
        let batch = eval_batch(&mut store, chunk, &norm)?;
        let scores = model.score(batch.to_tensor(&device), maps.as_deref().unwrap_or(&[]));
        let total: Vec<f32> = scores
            .anomaly_score()
            .into_data()
            .try_to_vec()
            .expect("f32 scores");
        let heads: Vec<(Head, Vec<f32>)> = scores
            .iter()
            .map(|(h, t)| (h, t.into_data().try_to_vec().expect("f32 scores")))
            .collect();
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
