//! The four DRA heads. Each maps a feature map to one non-negative score per image.
//!
//! * normal head g_n (holistic): global average pool → Linear C→256 → ReLU → Linear 256→1 → |·|;
//!   high means "looks normal";
//! * seen head g_s and pseudo head g_p (plain): 1×1 conv C→1 → |·| → top-K MIL mean;
//! * residual head g_r (composite): (reference mean − features) → 3×3 conv C→C → BatchNorm →
//!   ReLU → plain scoring.
//!
//! Top-K multiple-instance learning scores an image by the mean of its K largest cell
//! scores, K = max(⌊h·w·topk⌋, 1): a small defect decides the score even when most of the
//! image is normal.

use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{BatchNorm, BatchNormConfig, Linear, LinearConfig, PaddingConfig2d};
use burn::prelude::*;
use burn::tensor::activation::relu;

use crate::backbone::kernels::conv::conv2d;

/// Width of the normal head's hidden layer.
pub const NORMAL_HIDDEN: usize = 256;

/// K of top-K MIL for an `h`×`w` map: max(⌊h·w·topk⌋, 1).
pub fn top_k(h: usize, w: usize, topk: f64) -> usize {
    (((h * w) as f64 * topk).floor() as usize).max(1)
}

/// Mean of the K largest values of each image's map, `[N, 1, h, w]` → `[N]`.
pub fn top_k_mean(map: Tensor<4>, topk: f64) -> Tensor<1> {
    let [n, _, h, w] = map.dims();
    let k = top_k(h, w, topk);
    map.reshape([n, h * w]).topk(k, 1).mean_dim(1).reshape([n])
}

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

    /// Scores `[N, C, h, w]` → `[N]`.
    pub fn forward(&self, features: Tensor<4>, topk: f64) -> Tensor<1> {
        top_k_mean(conv2d(&self.scoring, features).abs(), topk)
    }
}

/// Residual head: scores the residual between the reference mean and the features.
#[derive(Module, Debug)]
pub struct ResidualHead {
    conv: Conv2d,
    bn: BatchNorm,
    plain: PlainHead,
}

impl ResidualHead {
    /// A head over `channels`-channel features.
    pub fn new(channels: usize, device: &Device) -> Self {
        ResidualHead {
            conv: Conv2dConfig::new([channels, channels], [3, 3])
                .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
                .init(device),
            bn: BatchNormConfig::new(channels).init(device),
            plain: PlainHead::new(channels, device),
        }
    }

    /// Scores the residual `reference − features` (reference `[1, C, h, w]`) → `[N]`.
    pub fn forward(&self, features: Tensor<4>, reference: Tensor<4>, topk: f64) -> Tensor<1> {
        let residual = reference - features;
        let x = relu(self.bn.forward(conv2d(&self.conv, residual)));
        self.plain.forward(x, topk)
    }
}

/// Normal (holistic) head: global average pool and a two-layer perceptron.
#[derive(Module, Debug)]
pub struct NormalHead {
    fc1: Linear,
    fc2: Linear,
}

impl NormalHead {
    /// A head over `channels`-channel features.
    pub fn new(channels: usize, device: &Device) -> Self {
        NormalHead {
            fc1: LinearConfig::new(channels, NORMAL_HIDDEN).init(device),
            fc2: LinearConfig::new(NORMAL_HIDDEN, 1).init(device),
        }
    }

    /// Normality score `[N, C, h, w]` → `[N]` (high = normal).
    pub fn forward(&self, features: Tensor<4>) -> Tensor<1> {
        let [n, c, _, _] = features.dims();
        let pooled = features.mean_dims(&[2, 3]).reshape([n, c]);
        self.fc2
            .forward(relu(self.fc1.forward(pooled)))
            .abs()
            .reshape([n])
    }
}
