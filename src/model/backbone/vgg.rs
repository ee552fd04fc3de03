//! VGG16 (no BatchNorm) with torchvision's `features` structure: five groups of 3×3
//! convolutions (padding 1, bias) each followed by a ReLU, every group closed by a 2×2 max-pool
//! of stride 2. KDAD's paper teacher; its weights come from a user's torchvision
//! `vgg16-397923af.pth` (`features.N.*`; the classifier is not read). DRA reads pool5:
//! 512 × ⌊S/32⌋ × ⌊S/32⌋.

use burn::nn::PaddingConfig2d;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::pool::{MaxPool2d, MaxPool2dConfig};
use burn::prelude::*;
use burn::tensor::activation::relu;

use crate::ops::conv::conv2d;
use crate::ops::pool::max_pool2d;

/// Channels of the pool5 map.
pub const FEATURE_CHANNELS: usize = 512;
/// Output channels of each group's convolutions (torchvision's configuration "D").
pub const WIDTHS: [usize; 5] = [64, 128, 256, 512, 512];
/// Convolutions in each group.
const DEPTHS: [usize; 5] = [2, 2, 3, 3, 3];

/// The indices of the convolutions in torchvision's `features` sequence (ReLUs and pools
/// take the others), in network order.
pub fn torchvision_conv_indices() -> Vec<usize> {
    let mut indices = Vec::new();
    let mut at = 0;
    for depth in DEPTHS {
        for _ in 0..depth {
            indices.push(at);
            at += 2; // conv, ReLU
        }
        at += 1; // max-pool
    }
    indices
}

/// torchvision `vgg16().features`.
#[derive(Module, Debug)]
pub struct Vgg16 {
    convs: Vec<Conv2d>,
    pool: MaxPool2d,
}

impl Vgg16 {
    /// A randomly initialised network (load weights to make it useful).
    pub fn new(device: &Device) -> Self {
        Self::with_widths(WIDTHS, device)
    }

    /// The same structure with other group widths (small copies for tests).
    pub fn with_widths(widths: [usize; 5], device: &Device) -> Self {
        let mut convs = Vec::new();
        let mut cin = 3;
        for (width, depth) in widths.into_iter().zip(DEPTHS) {
            for _ in 0..depth {
                convs.push(
                    Conv2dConfig::new([cin, width], [3, 3])
                        .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
                        .init(device),
                );
                cin = width;
            }
        }
        Vgg16 {
            convs,
            pool: MaxPool2dConfig::new([2, 2]).with_strides([2, 2]).init(),
        }
    }

    /// The outputs of pool2 … pool5, at strides 4, 8, 16 and 32 (KDAD's teacher taps).
    pub fn taps(&self, x: Tensor<4>) -> Vec<Tensor<4>> {
        self.pools(x).split_off(1)
    }

    /// The pool4 and pool5 maps, `[N, 512, S/16, S/16]` and `[N, 512, S/32, S/32]`.
    pub fn stride16_and_features(&self, x: Tensor<4>) -> (Tensor<4>, Tensor<4>) {
        let mut pools = self.pools(x);
        let features = pools.pop().expect("5 pools");
        (pools.pop().expect("5 pools"), features)
    }

    /// The pool5 map, `[N, 512, S/32, S/32]`.
    pub fn features(&self, x: Tensor<4>) -> Tensor<4> {
        self.pools(x).pop().expect("5 pools")
    }

    /// The output of each group's max-pool, pool1 … pool5.
    fn pools(&self, mut x: Tensor<4>) -> Vec<Tensor<4>> {
        let mut convs = self.convs.iter();
        DEPTHS
            .iter()
            .map(|&depth| {
                for conv in convs.by_ref().take(depth) {
                    x = relu(conv2d(conv, x.clone()));
                }
                x = max_pool2d(&self.pool, x.clone());
                x.clone()
            })
            .collect()
    }
}
