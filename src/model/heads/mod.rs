//! The four DRA heads. Each maps a feature map to one non-negative score per image.
//!
//! * normal head g_n (holistic): global average pool → Linear C→256 → ReLU → Linear 256→1 → |·|;
//!   high means "looks normal";
//! * seen head g_s and pseudo head g_p (plain): 1×1 conv C→1 → |·| → top-K MIL mean;
//! * residual head g_r (composite): (reference − features) → 3×3 conv C→C → BatchNorm →
//!   ReLU → plain scoring; the reference is the mean reference map at the same cell (the
//!   paper's) or, alignment-free, the nearest reference cell anywhere ([`ResidualMode`]).
//!
//! Top-K multiple-instance learning scores an image by the mean of its K largest cell
//! scores, K = max(⌊h·w·topk⌋, 1): a small defect decides the score even when most of the
//! image is normal.

use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{BatchNorm, BatchNormConfig, Linear, LinearConfig, PaddingConfig2d};
use burn::prelude::*;
use burn::tensor::activation::relu;

use crate::choice::choice;
use crate::ops::conv::conv2d;

choice! {
    /// What the residual head subtracts each query cell from.
    pub enum ResidualMode ("residual mode") {
        /// The mean of the reference maps at the same position (paper, eq. 6).
        Mean = "mean",
        /// The nearest (L2) of all reference cells at any position: alignment-free, for parts
        /// that are not registered.
        Nearest = "nearest",
    }
}

/// For every cell of `features` `[N, C, h, w]`, the nearest (L2) cell of `reference`
/// `[M, C, h', w']`, as `[N, C, h, w]`; the choice is not differentiated, the values are.
pub fn nearest_cells(features: Tensor<4>, reference: Tensor<4>) -> Tensor<4> {
    let [n, c, h, w] = features.dims();
    let [m, _, rh, rw] = reference.dims();
    let cells = |t: Tensor<4>, count: usize| t.permute([0, 2, 3, 1]).reshape([count, c]);
    let q = cells(features, n * h * w).detach();
    let r = cells(reference, m * rh * rw);
    let rd = r.clone().detach();
    // ‖q − r‖² = ‖q‖² − 2 q·r + ‖r‖²; ‖q‖² is the same for every r of a row
    let r_sq = rd
        .clone()
        .powi_scalar(2)
        .sum_dim(1)
        .reshape([1, m * rh * rw]);
    let d = q.matmul(rd.transpose()).mul_scalar(-2.0) + r_sq;
    let nearest = d.argmin(1).reshape([n * h * w]);
    r.select(0, nearest)
        .reshape([n, h, w, c])
        .permute([0, 3, 1, 2])
}

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

    /// Scores the residual of `features` against the reference features `[M, C, h, w]`
    /// → `[N]`.
    pub fn forward(
        &self,
        features: Tensor<4>,
        reference: Tensor<4>,
        mode: ResidualMode,
        topk: f64,
    ) -> Tensor<1> {
        let aligned = match mode {
            ResidualMode::Mean => reference.mean_dim(0),
            ResidualMode::Nearest => nearest_cells(features.clone(), reference),
        };
        let residual = aligned - features;
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
