//! Top-K multiple-instance learning: an image scored by the mean of its K largest cell
//! scores, so that a small defect decides the score even when most of the image is normal.

use burn::prelude::*;

/// K of top-K MIL (a count of cells) for an `h`×`w` map: max(⌊h·w·topk⌋, 1), `topk` the fraction of cells.
pub fn top_k_count(h: usize, w: usize, topk: f64) -> usize {
    (((h * w) as f64 * topk).floor() as usize).max(1)
}

/// Mean of the K largest values of each image's map, `[N, 1, h, w]` → `[N]`.
pub fn top_k_mean(map: Tensor<4>, topk: f64) -> Tensor<1> {
    let [n, _, h, w] = map.dims();
    let k = top_k_count(h, w, topk);
    map.reshape([n, h * w]).topk(k, 1).mean_dim(1).reshape([n])
}
