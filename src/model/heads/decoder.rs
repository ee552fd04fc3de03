//! MLEP's decoder (Liu et al., IJCAI 2019, as `BASELINES_SPEC.md` §4 adapts it to images): the
//! backbone's stride-32 map, its latent, brought back to the input by five stages of nearest
//! ×2 upsampling, 3×3 convolution, BatchNorm and ReLU (C→256→128→64→32→16 channels) and a
//! linear 3×3 convolution to the three channels of the normalised input. An image is scored
//! by its reconstruction's mean squared error, every pixel by its own (averaged over the
//! channels): the map.

use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{BatchNorm, BatchNormConfig, PaddingConfig2d};
use burn::prelude::*;
use burn::tensor::activation::relu;
use burn::tensor::module::interpolate;
use burn::tensor::ops::{InterpolateMode, InterpolateOptions};

use crate::ops::conv::conv2d;

/// Channels after each upsampling stage.
pub const DECODER_WIDTHS: [usize; 5] = [256, 128, 64, 32, 16];
/// The decoder's output side is the latent's times this: the input's when the input side is
/// a multiple of it.
pub const DECODER_SCALE: usize = 32;

fn conv3x3(cin: usize, cout: usize, device: &Device) -> Conv2d {
    Conv2dConfig::new([cin, cout], [3, 3])
        .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
        .init(device)
}

/// One stage: nearest ×2, 3×3 conv, BatchNorm, ReLU.
#[derive(Module, Debug)]
struct Stage {
    conv: Conv2d,
    bn: BatchNorm,
}

/// MLEP's decoder head.
#[derive(Module, Debug)]
pub struct DecoderHead {
    stages: Vec<Stage>,
    output: Conv2d,
}

/// What the decoder makes of a batch: each image's reconstruction error.
pub struct Reconstructed {
    /// Every pixel's squared error averaged over the channels, `[N, 1, H, W]`.
    pub error: Tensor<4>,
    /// Each image's mean absolute error, `[N]` (MLEP's prediction loss).
    pub l1: Tensor<1>,
}

impl DecoderHead {
    /// A decoder from `channels`-channel latents.
    pub fn new(channels: usize, device: &Device) -> Self {
        let mut cin = channels;
        let stages = DECODER_WIDTHS
            .iter()
            .map(|&cout| {
                let stage = Stage {
                    conv: conv3x3(cin, cout, device),
                    bn: BatchNormConfig::new(cout).init(device),
                };
                cin = cout;
                stage
            })
            .collect();
        DecoderHead {
            stages,
            output: conv3x3(cin, 3, device),
        }
    }

    /// The reconstruction of latents `[N, C, h, w]`, `[N, 3, 32h, 32w]`.
    pub fn decode(&self, latent: Tensor<4>) -> Tensor<4> {
        let mut x = latent;
        for stage in &self.stages {
            let [_, _, h, w] = x.dims();
            let up = interpolate(
                x,
                InterpolateOptions::new(InterpolateMode::Nearest).with_output_size([2 * h, 2 * w]),
            );
            x = relu(stage.bn.forward(conv2d(&stage.conv, up)));
        }
        conv2d(&self.output, x)
    }

    /// The reconstruction errors of `input` `[N, 3, H, W]` from its latents.
    pub fn reconstruct(&self, latent: Tensor<4>, input: Tensor<4>) -> Reconstructed {
        let diff = self.decode(latent) - input;
        let [n, c, h, w] = diff.dims();
        Reconstructed {
            error: diff.clone().powi_scalar(2).mean_dim(1),
            l1: diff.abs().reshape([n, c * h * w]).mean_dim(1).reshape([n]),
        }
    }
}
