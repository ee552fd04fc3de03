//! MINNS's head (Wang et al., Pattern Recognition 2018), its MI-Net form: each feature-map
//! cell is an instance of the image's bag, embedded by a three-layer perceptron (C → 256 →
//! 128 → 64, ReLU), the bag's embedding the maximum over its instances per dimension (after
//! dropout 0.5 in training), its score a linear map 64 → 1: a logit, trained by binary
//! cross-entropy.

use burn::nn::{Dropout, DropoutConfig, Linear, LinearConfig};
use burn::prelude::*;
use burn::tensor::activation::relu;

/// Widths of the instance perceptron's layers.
pub const BAG_WIDTHS: [usize; 3] = [256, 128, 64];
/// Dropout before the pooling (training only).
pub const BAG_DROPOUT: f64 = 0.5;

/// MI-Net head: instance perceptron, dropout, max-pool over cells, linear bag score.
#[derive(Module, Debug)]
pub struct BagHead {
    layers: Vec<Linear>,
    dropout: Dropout,
    score: Linear,
}

impl BagHead {
    /// A head over `channels`-channel features.
    pub fn new(channels: usize, device: &Device) -> Self {
        let mut width = channels;
        let layers = BAG_WIDTHS
            .iter()
            .map(|&w| {
                let layer = LinearConfig::new(width, w).init(device);
                width = w;
                layer
            })
            .collect();
        BagHead {
            layers,
            dropout: DropoutConfig::new(BAG_DROPOUT).init(),
            score: LinearConfig::new(width, 1).init(device),
        }
    }

    /// The bag logit of each image, `[N, C, h, w]` → `[N]`: invariant to the order of the
    /// cells.
    pub fn forward(&self, features: Tensor<4>) -> Tensor<1> {
        let [n, c, h, w] = features.dims();
        let mut x: Tensor<3> = features.reshape([n, c, h * w]).swap_dims(1, 2);
        for layer in &self.layers {
            x = relu(layer.forward(x));
        }
        let pooled = self.dropout.forward(x).max_dim(1); // [N, 1, 64]
        let [_, _, d] = pooled.dims();
        self.score.forward(pooled.reshape([n, d])).reshape([n])
    }
}
