//! ResNet-18 with torchvision's structure and state-dict names (`conv1`, `bn1`,
//! `layer1.0.conv1`, `layer2.0.downsample.0`, …, `fc`). DRA uses the layer4 map:
//! 512 × S/32 × S/32 (14 × 14 at 448²).

use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::pool::{MaxPool2d, MaxPool2dConfig};
use burn::nn::{BatchNorm, BatchNormConfig, Linear, LinearConfig, PaddingConfig2d};
use burn::prelude::*;

use crate::ops::conv::conv2d;
use crate::ops::norm::{batch_norm, batch_norm_relu};
use crate::ops::pool::max_pool2d;

/// Channels of the layer4 feature map.
pub const FEATURE_CHANNELS: usize = 512;

fn conv(cin: usize, cout: usize, k: usize, stride: usize, device: &Device) -> Conv2d {
    let pad = k / 2;
    Conv2dConfig::new([cin, cout], [k, k])
        .with_stride([stride, stride])
        .with_padding(PaddingConfig2d::Explicit(pad, pad, pad, pad))
        .with_bias(false)
        .init(device)
}

fn bn(c: usize, device: &Device) -> BatchNorm {
    BatchNormConfig::new(c).init(device)
}

/// The 1×1 strided projection of a block's shortcut (`downsample.0`, `downsample.1`).
#[derive(Module, Debug)]
pub struct Downsample {
    conv: Conv2d,
    bn: BatchNorm,
}

/// Two 3×3 convolutions with a residual connection.
#[derive(Module, Debug)]
pub struct BasicBlock {
    conv1: Conv2d,
    bn1: BatchNorm,
    conv2: Conv2d,
    bn2: BatchNorm,
    downsample: Option<Downsample>,
}

impl BasicBlock {
    fn new(cin: usize, cout: usize, stride: usize, device: &Device) -> Self {
        let downsample = (stride != 1 || cin != cout).then(|| Downsample {
            conv: conv(cin, cout, 1, stride, device),
            bn: bn(cout, device),
        });
        BasicBlock {
            conv1: conv(cin, cout, 3, stride, device),
            bn1: bn(cout, device),
            conv2: conv(cout, cout, 3, 1, device),
            bn2: bn(cout, device),
            downsample,
        }
    }

    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let identity = match &self.downsample {
            Some(d) => batch_norm(&d.bn, conv2d(&d.conv, x.clone())),
            None => x.clone(),
        };
        let out = batch_norm_relu(&self.bn1, conv2d(&self.conv1, x), None);
        batch_norm_relu(&self.bn2, conv2d(&self.conv2, out), Some(identity))
    }
}

/// torchvision `resnet18`.
#[derive(Module, Debug)]
pub struct ResNet18 {
    conv1: Conv2d,
    bn1: BatchNorm,
    maxpool: MaxPool2d,
    layer1: Vec<BasicBlock>,
    layer2: Vec<BasicBlock>,
    layer3: Vec<BasicBlock>,
    layer4: Vec<BasicBlock>,
    fc: Linear,
}

impl ResNet18 {
    /// A randomly initialised network (load weights to make it useful).
    pub fn new(device: &Device) -> Self {
        let layer = |cin, cout, stride| {
            vec![
                BasicBlock::new(cin, cout, stride, device),
                BasicBlock::new(cout, cout, 1, device),
            ]
        };
        ResNet18 {
            conv1: Conv2dConfig::new([3, 64], [7, 7])
                .with_stride([2, 2])
                .with_padding(PaddingConfig2d::Explicit(3, 3, 3, 3))
                .with_bias(false)
                .init(device),
            bn1: bn(64, device),
            maxpool: MaxPool2dConfig::new([3, 3])
                .with_strides([2, 2])
                .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
                .init(),
            layer1: layer(64, 64, 1),
            layer2: layer(64, 128, 2),
            layer3: layer(128, 256, 2),
            layer4: layer(256, 512, 2),
            fc: LinearConfig::new(512, 1000).init(device),
        }
    }

    /// The layer4 feature map, `[N, 512, S/32, S/32]`.
    pub fn features(&self, x: Tensor<4>) -> Tensor<4> {
        self.stride16_and_features(x).1
    }

    /// The layer3 and layer4 maps, `[N, 256, S/16, S/16]` and `[N, 512, S/32, S/32]`.
    pub fn stride16_and_features(&self, x: Tensor<4>) -> (Tensor<4>, Tensor<4>) {
        let x = batch_norm_relu(&self.bn1, conv2d(&self.conv1, x), None);
        let mut x = max_pool2d(&self.maxpool, x);
        for block in self.layer1.iter().chain(&self.layer2).chain(&self.layer3) {
            x = block.forward(x);
        }
        let stride16 = x.clone();
        for block in &self.layer4 {
            x = block.forward(x);
        }
        (stride16, x)
    }

    /// The outputs of layer1 … layer4, at strides 4, 8, 16 and 32 (KDAD's teacher taps).
    pub fn taps(&self, x: Tensor<4>) -> Vec<Tensor<4>> {
        let x = batch_norm_relu(&self.bn1, conv2d(&self.conv1, x), None);
        let mut x = max_pool2d(&self.maxpool, x);
        let mut taps = Vec::with_capacity(4);
        for layer in [&self.layer1, &self.layer2, &self.layer3, &self.layer4] {
            for block in layer {
                x = block.forward(x);
            }
            taps.push(x.clone());
        }
        taps
    }

    /// Every BatchNorm layer, stem first.
    pub fn batch_norms_mut(&mut self) -> Vec<&mut BatchNorm> {
        let mut out = vec![&mut self.bn1];
        for block in self
            .layer1
            .iter_mut()
            .chain(&mut self.layer2)
            .chain(&mut self.layer3)
            .chain(&mut self.layer4)
        {
            out.push(&mut block.bn1);
            out.push(&mut block.bn2);
            if let Some(d) = &mut block.downsample {
                out.push(&mut d.bn);
            }
        }
        out
    }

    /// ImageNet logits from a feature map: global average pool, then `fc`.
    pub fn classify(&self, features: Tensor<4>) -> Tensor<2> {
        let [n, c, _, _] = features.dims();
        self.fc.forward(features.mean_dims(&[2, 3]).reshape([n, c]))
    }
}
