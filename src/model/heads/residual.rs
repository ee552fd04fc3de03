//! The residual head g_r: the latent residual between each query cell and the reference
//! set's features, scored by a 3×3 convolution, BatchNorm, ReLU and a plain head.

use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{BatchNorm, BatchNormConfig, PaddingConfig2d};
use burn::prelude::*;
use burn::tensor::activation::relu;

use super::plain::PlainHead;
use super::top_k::top_k_mean;
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

    /// The score of every cell of the residual of `features` `[N, C, h, w]` against the
    /// reference features `[M, C, h', w']`, as `[N, 1, h, w]`.
    pub fn cells(
        &self,
        features: Tensor<4>,
        reference: Tensor<4>,
        mode: ResidualMode,
    ) -> Tensor<4> {
        let aligned = match mode {
            ResidualMode::Mean => reference.mean_dim(0),
            ResidualMode::Nearest => nearest_cells(features.clone(), reference),
        };
        let residual = aligned - features;
        let x = relu(self.bn.forward(conv2d(&self.conv, residual)));
        self.plain.cells(x)
    }

    /// Scores the residual of `features` against the reference features → `[N]`: the
    /// top-K mean of [`ResidualHead::cells`].
    pub fn forward(
        &self,
        features: Tensor<4>,
        reference: Tensor<4>,
        mode: ResidualMode,
        topk: f64,
    ) -> Tensor<1> {
        top_k_mean(self.cells(features, reference, mode), topk)
    }
}
