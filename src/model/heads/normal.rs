//! The normal head g_n (holistic): global average pooling and a two-layer perceptron; high
//! means "looks normal".

use burn::nn::{Linear, LinearConfig};
use burn::prelude::*;
use burn::tensor::activation::relu;

/// Width of the normal head's hidden layer.
pub const NORMAL_HIDDEN: usize = 256;

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
