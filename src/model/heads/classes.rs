//! SAOE's head (the DRA paper's synthetic-anomaly + outlier-exposure baseline): one 1×1
//! convolution giving every cell a logit per class (normal, seen anomaly, pseudo anomaly),
//! each class's image logit the top-K mean of its signed cell logits, as DRA's plain heads
//! pool; the image is scored by 1 − p(normal) under the softmax of its logits.

use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::prelude::*;
use burn::tensor::activation::softmax;

use super::top_k::top_k_mean;
use crate::ops::conv::conv2d;

/// The classes, in logit order: normal, seen anomaly, pseudo anomaly.
pub const CLASSES: usize = 3;

/// SAOE head: 1×1 conv C→3, per-class top-K mean of the signed cell logits.
#[derive(Module, Debug)]
pub struct ClassHead {
    scoring: Conv2d,
}

impl ClassHead {
    /// A head over `channels`-channel features.
    pub fn new(channels: usize, device: &Device) -> Self {
        ClassHead {
            scoring: Conv2dConfig::new([channels, CLASSES], [1, 1]).init(device),
        }
    }

    /// Every cell's class logits, `[N, C, h, w]` → `[N, 3, h, w]`.
    pub fn cells(&self, features: Tensor<4>) -> Tensor<4> {
        conv2d(&self.scoring, features)
    }
}

/// The image logits of cell logits `[N, 3, h, w]`: each class's top-K mean, `[N, 3]`.
pub fn image_logits(cells: Tensor<4>, topk: f64) -> Tensor<2> {
    let [n, k, h, w] = cells.dims();
    top_k_mean(cells.reshape([n * k, 1, h, w]), topk).reshape([n, k])
}

/// 1 − p(normal) of logits `[N, 3, …]` along dimension 1 (images `[N, 3]` → `[N]`, cells
/// `[N, 3, h, w]` → `[N, 1, h, w]`).
pub fn not_normal<const D: usize>(logits: Tensor<D>) -> Tensor<D> {
    let p = softmax(logits, 1);
    let normal = p.narrow(1, 0, 1);
    normal.neg().add_scalar(1.0)
}
