//! EfficientNet-Lite0: MBConv blocks with ReLU6, no squeeze-excitation, TensorFlow "SAME"
//! padding and BatchNorm ε = 1e-3, with the state-dict names of the `efficientnet-lite0`
//! PyTorch weights (`_conv_stem`, `_blocks.N._depthwise_conv`, …; loaded with the leading
//! underscores removed).

use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{BatchNorm, BatchNormConfig, Linear, LinearConfig, PaddingConfig2d};
use burn::prelude::*;
use burn::tensor::Distribution;

use crate::ops::conv::conv2d;
use crate::ops::norm::{batch_norm, batch_norm_relu6};

/// Channels after the last MBConv block (stride 32).
pub const BLOCKS_CHANNELS: usize = 320;
/// Channels after the 1×1 head convolution (stride 32).
pub const HEAD_CHANNELS: usize = 1280;
/// Blocks up to and including the last one at stride 16.
const STRIDE16_BLOCKS: usize = 11;
/// The last block at each stride 4, 8, 16 and 32.
const TAP_BLOCKS: [usize; 4] = [2, 4, 10, 15];

/// (repeats, kernel, stride, expansion, input channels, output channels) per stage.
const STAGES: [(usize, usize, usize, usize, usize, usize); 7] = [
    (1, 3, 1, 1, 32, 16),
    (2, 3, 2, 6, 16, 24),
    (2, 5, 2, 6, 24, 40),
    (3, 3, 2, 6, 40, 80),
    (3, 5, 1, 6, 80, 112),
    (4, 5, 2, 6, 112, 192),
    (1, 3, 1, 6, 192, 320),
];

fn conv(
    cin: usize,
    cout: usize,
    k: usize,
    stride: usize,
    groups: usize,
    device: &Device,
) -> Conv2d {
    Conv2dConfig::new([cin, cout], [k, k])
        .with_stride([stride, stride])
        .with_groups(groups)
        .with_padding(PaddingConfig2d::Same)
        .with_bias(false)
        .init(device)
}

/// BatchNorm with the pretrained model's ε = 1e-3. The momentum of the running statistics is
/// PyTorch's default 0.1, as for every BatchNorm of the reference DRA code, not the 0.01
/// (TensorFlow 0.99) EfficientNet was pretrained with: with 0.01, a few hundred fine-tuning
/// steps leave the running statistics mostly ImageNet's while the weights have moved, and
/// evaluation, which uses them, suffers.
fn bn(c: usize, device: &Device) -> BatchNorm {
    BatchNormConfig::new(c).with_epsilon(1e-3).init(device)
}

/// Mobile inverted bottleneck: 1×1 expansion, depthwise k×k, 1×1 projection, with a
/// residual connection when the shape is kept.
#[derive(Module, Debug)]
pub struct MBConv {
    expand_conv: Option<Conv2d>,
    bn0: Option<BatchNorm>,
    depthwise_conv: Conv2d,
    bn1: BatchNorm,
    project_conv: Conv2d,
    bn2: BatchNorm,
    skip: bool,
    /// Drop-connect (stochastic depth) probability of the residual branch in training.
    drop: f64,
}

impl MBConv {
    fn new(
        k: usize,
        stride: usize,
        expand: usize,
        cin: usize,
        cout: usize,
        device: &Device,
    ) -> Self {
        let mid = cin * expand;
        MBConv {
            expand_conv: (expand != 1).then(|| conv(cin, mid, 1, 1, 1, device)),
            bn0: (expand != 1).then(|| bn(mid, device)),
            depthwise_conv: conv(mid, mid, k, stride, mid, device),
            bn1: bn(mid, device),
            project_conv: conv(mid, cout, 1, 1, 1, device),
            bn2: bn(cout, device),
            skip: stride == 1 && cin == cout,
            drop: 0.0,
        }
    }

    fn forward(&self, input: Tensor<4>) -> Tensor<4> {
        // the input is held past the first layer only for the residual addition, so that
        // otherwise the layers can overwrite it in place at inference
        let (mut x, input) = match self.skip {
            true => (input.clone(), Some(input)),
            false => (input, None),
        };
        if let (Some(conv), Some(bn)) = (&self.expand_conv, &self.bn0) {
            x = batch_norm_relu6(bn, conv2d(conv, x));
        }
        x = batch_norm_relu6(&self.bn1, conv2d(&self.depthwise_conv, x));
        x = batch_norm(&self.bn2, conv2d(&self.project_conv, x));
        let Some(input) = input else {
            return x;
        };
        if self.drop > 0.0 && x.is_autodiff() {
            // stochastic depth: the residual branch of each image kept with p = 1 − drop and
            // scaled by 1 / p, drawn from the device's generator
            let keep = 1.0 - self.drop;
            let [n, _, _, _] = x.dims();
            let mask =
                Tensor::<4>::random([n, 1, 1, 1], Distribution::Bernoulli(keep), &x.device());
            x = x * mask.div_scalar(keep);
        }
        x + input
    }
}

/// EfficientNet-Lite0 (ImageNet classifier; DRA uses a stride-32 feature map).
#[derive(Module, Debug)]
pub struct EfficientNetLite0 {
    conv_stem: Conv2d,
    bn0: BatchNorm,
    blocks: Vec<MBConv>,
    conv_head: Conv2d,
    bn1: BatchNorm,
    fc: Linear,
}

impl EfficientNetLite0 {
    /// A randomly initialised network (load weights to make it useful).
    pub fn new(device: &Device) -> Self {
        let mut blocks = Vec::new();
        for (repeats, k, stride, expand, cin, cout) in STAGES {
            blocks.push(MBConv::new(k, stride, expand, cin, cout, device));
            for _ in 1..repeats {
                blocks.push(MBConv::new(k, 1, expand, cout, cout, device));
            }
        }
        EfficientNetLite0 {
            conv_stem: conv(3, 32, 3, 2, 1, device),
            bn0: bn(32, device),
            blocks,
            conv_head: conv(BLOCKS_CHANNELS, HEAD_CHANNELS, 1, 1, 1, device),
            bn1: bn(HEAD_CHANNELS, device),
            fc: LinearConfig::new(HEAD_CHANNELS, 1000).init(device),
        }
    }

    /// The output of the last MBConv block, `[N, 320, S/32, S/32]`.
    pub fn block_features(&self, x: Tensor<4>) -> Tensor<4> {
        self.stride16_and_block_features(x).1
    }

    /// The last stride-16 block's output `[N, 112, S/16, S/16]` and the last block's.
    pub fn stride16_and_block_features(&self, x: Tensor<4>) -> (Tensor<4>, Tensor<4>) {
        let mut x = batch_norm_relu6(&self.bn0, conv2d(&self.conv_stem, x));
        for block in &self.blocks[..STRIDE16_BLOCKS] {
            x = block.forward(x);
        }
        let stride16 = x.clone();
        for block in &self.blocks[STRIDE16_BLOCKS..] {
            x = block.forward(x);
        }
        (stride16, x)
    }

    /// The outputs of blocks 2, 4, 10 and 15, the last of each stride 4, 8, 16 and 32 (KDAD's
    /// teacher taps: 24, 40, 112 and 320 channels).
    pub fn taps(&self, x: Tensor<4>) -> Vec<Tensor<4>> {
        let mut x = batch_norm_relu6(&self.bn0, conv2d(&self.conv_stem, x));
        let mut taps = Vec::with_capacity(TAP_BLOCKS.len());
        for (i, block) in self.blocks.iter().enumerate() {
            x = block.forward(x);
            if TAP_BLOCKS.contains(&i) {
                taps.push(x.clone());
            }
        }
        taps
    }

    /// Sets the drop-connect rate: block i of the 16 drops its residual branch with
    /// probability `rate · i / 16`, as EfficientNet's reference implementation.
    pub fn set_drop_connect(&mut self, rate: f64) {
        let n = self.blocks.len() as f64;
        for (i, block) in self.blocks.iter_mut().enumerate() {
            block.drop = rate * i as f64 / n;
        }
    }

    /// Every BatchNorm layer, stem first, the head's last.
    pub fn batch_norms_mut(&mut self) -> Vec<&mut BatchNorm> {
        let mut out = vec![&mut self.bn0];
        for block in &mut self.blocks {
            if let Some(bn) = &mut block.bn0 {
                out.push(bn);
            }
            out.push(&mut block.bn1);
            out.push(&mut block.bn2);
        }
        out.push(&mut self.bn1);
        out
    }

    /// The head convolution applied to block features, `[N, 1280, S/32, S/32]`.
    pub fn head_features(&self, blocks: Tensor<4>) -> Tensor<4> {
        batch_norm_relu6(&self.bn1, conv2d(&self.conv_head, blocks))
    }

    /// ImageNet logits from head features: global average pool, then `fc`.
    pub fn classify(&self, head: Tensor<4>) -> Tensor<2> {
        let [n, c, _, _] = head.dims();
        self.fc.forward(head.mean_dims(&[2, 3]).reshape([n, c]))
    }
}
