//! Unsupervised baseline: k-nearest-neighbour distance on the frozen pretrained backbone's
//! globally pooled features, with the normal training images as the memory bank. It uses
//! no anomaly at all, so a table shows beside it what the few labelled anomalies add.

use burn::prelude::*;

/// Neighbours averaged for the score.
pub const K: usize = 5;

/// Globally pooled features (`[C]` per image) of a feature map `[N, C, h, w]`.
pub fn pooled(features: Tensor<4>) -> Vec<Vec<f32>> {
    let [n, c, _, _] = features.dims();
    let pooled: Vec<f32> = features
        .mean_dims(&[2, 3])
        .reshape([n, c])
        .into_data()
        .try_to_vec()
        .expect("f32 features");
    pooled.chunks(c).map(<[f32]>::to_vec).collect()
}

/// Mean Euclidean distance of each query to its `K` nearest images of the bank (fewer if
/// the bank is smaller): high means unlike every normal training image.
pub fn knn_scores(bank: &[Vec<f32>], queries: &[Vec<f32>]) -> Vec<f32> {
    let k = K.min(bank.len()).max(1);
    queries
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
        .collect()
}
