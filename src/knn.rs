//! Unsupervised baseline: k-nearest-neighbour distance on the frozen pretrained backbone's
//! globally pooled features, with the normal training images as the memory bank. It uses
//! no anomaly at all, so a table shows beside it what the few labelled anomalies add.

use burn::prelude::*;

use crate::backbone::Backbone;
use crate::batch::{ImageStore, eval_batch};
use crate::error::Result;
use crate::protocol::Sample;
use crate::transform::Normalization;

/// Neighbours averaged for the score.
pub const K: usize = 5;

/// Pooled features (`[C]` per image) of `samples`, in batches of `batch_size`.
fn embed(
    backbone: &Backbone,
    norm: &Normalization,
    store: &mut ImageStore,
    samples: &[Sample],
    batch_size: usize,
    device: &Device,
) -> Result<Vec<Vec<f32>>> {
    let mut out = Vec::with_capacity(samples.len());
    for chunk in samples.chunks(batch_size.max(1)) {
        let batch = eval_batch(store, chunk, norm)?;
        let f = backbone.features(batch.to_tensor(device));
        let [n, c, _, _] = f.dims();
        let pooled: Vec<f32> = f
            .mean_dims(&[2, 3])
            .reshape([n, c])
            .into_data()
            .try_to_vec()
            .expect("f32 features");
        out.extend(pooled.chunks(c).map(<[f32]>::to_vec));
    }
    Ok(out)
}

/// Mean Euclidean distance of each query to its `K` nearest images of the bank (fewer if
/// the bank is smaller): high means unlike every normal training image.
pub fn knn_scores(
    backbone: &Backbone,
    img_size: usize,
    bank: &[Sample],
    queries: &[Sample],
    batch_size: usize,
    device: &Device,
) -> Result<Vec<f32>> {
    let norm = backbone.kind().normalization();
    let mut store = ImageStore::new(img_size as u32);
    let bank = embed(backbone, &norm, &mut store, bank, batch_size, device)?;
    let queries = embed(backbone, &norm, &mut store, queries, batch_size, device)?;
    let k = K.min(bank.len()).max(1);
    Ok(queries
        .iter()
        .map(|q| {
            let mut d: Vec<f32> = bank
                .iter()
                .map(|b| {
                    b.iter()
                        .zip(q)
                        .map(|(x, y)| (x - y) * (x - y))
                        .sum::<f32>()
                        .sqrt()
                })
                .collect();
            d.sort_by(f32::total_cmp);
            d[..k].iter().sum::<f32>() / k as f32
        })
        .collect())
}
