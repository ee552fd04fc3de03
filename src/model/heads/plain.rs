//! The seen-anomaly head g_s and the pseudo-anomaly head g_p: the same plain head, a 1×1
//! convolution scoring every cell, pooled by top-K MIL.

use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::prelude::*;

use super::top_k::top_k_mean;
use crate::ops::conv::conv2d;

/// Seen or pseudo head: 1×1 conv, absolute value, top-K mean.
#[derive(Module, Debug)]
pub struct PlainHead {
    scoring: Conv2d,
}

impl PlainHead {
    /// A head over `channels`-channel features.
    pub fn new(channels: usize, device: &Device) -> Self {
        PlainHead {
            scoring: Conv2dConfig::new([channels, 1], [1, 1]).init(device),
        }
    }

    /// The score of every cell, `[N, C, h, w]` → `[N, 1, h, w]`.
    pub fn cells(&self, features: Tensor<4>) -> Tensor<4> {
        conv2d(&self.scoring, features).abs()
    }

    /// Scores `[N, C, h, w]` → `[N]`: the top-K mean of the cells' scores.
    pub fn forward(&self, features: Tensor<4>, topk: f64) -> Tensor<1> {
        top_k_mean(self.cells(features), topk)
    }
}
