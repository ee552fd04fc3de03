//! KDAD's student (Salehi et al., CVPR 2021, multiresolution knowledge distillation): a small
//! VGG-like "cloner" trained on normal images to reproduce the frozen backbone's (the
//! teacher's) maps at strides 4, 8, 16 and 32. Five groups of 3×3 convolutions without bias
//! (Xavier-uniform), each conv followed by BatchNorm and ReLU except the last of a group, which
//! a 2×2 max-pool follows; 16 channels throughout but for the last conv of groups 2–5, which
//! gives the teacher tap's channels. Where the teacher's taps are signed (EfficientNet's
//! linear bottlenecks) those convs are linear, else (ReLU maps) followed by a ReLU, as is the
//! first group's. An image is scored by the discrepancy of the last three taps.

use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::pool::{MaxPool2d, MaxPool2dConfig};
use burn::nn::{BatchNorm, BatchNormConfig, Initializer, PaddingConfig2d};
use burn::prelude::*;
use burn::tensor::activation::relu;

use crate::ops::conv::conv2d;

/// Weight λ of the mean squared difference beside the cosine term (KDAD's for MVTec AD).
pub const KD_LAMBDA: f32 = 0.5;
/// Channels of the student's inner convolutions.
const WIDTH: usize = 16;

/// A group: convolutions, BatchNorm after all but the last, then a 2×2 max-pool.
#[derive(Module, Debug)]
struct Group {
    convs: Vec<Conv2d>,
    bns: Vec<BatchNorm>,
    /// A ReLU after the last convolution.
    relu: bool,
}

/// KDAD's student network.
#[derive(Module, Debug)]
pub struct StudentHead {
    groups: Vec<Group>,
    pool: MaxPool2d,
}

fn conv(cin: usize, cout: usize, device: &Device) -> Conv2d {
    Conv2dConfig::new([cin, cout], [3, 3])
        .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
        .with_bias(false)
        .with_initializer(Initializer::XavierUniform { gain: 1.0 })
        .init(device)
}

impl StudentHead {
    /// A student for a teacher whose taps have `channels`, `signed` or not.
    pub fn new(channels: [usize; 4], signed: bool, device: &Device) -> Self {
        // (output channels of each conv, the group gives a tap)
        let mut plan: Vec<(Vec<usize>, bool)> = vec![(vec![WIDTH, WIDTH], false)];
        plan.push((vec![WIDTH, channels[0]], true));
        for &c in &channels[1..] {
            plan.push((vec![WIDTH, WIDTH, c], true));
        }
        let mut cin = 3;
        let groups = plan
            .into_iter()
            .map(|(outs, tap)| {
                let mut convs = Vec::new();
                let mut bns = Vec::new();
                for (k, &cout) in outs.iter().enumerate() {
                    convs.push(conv(cin, cout, device));
                    if k + 1 < outs.len() {
                        bns.push(BatchNormConfig::new(cout).init(device));
                    }
                    cin = cout;
                }
                Group {
                    convs,
                    bns,
                    relu: !(tap && signed),
                }
            })
            .collect();
        StudentHead {
            groups,
            pool: MaxPool2dConfig::new([2, 2]).with_strides([2, 2]).init(),
        }
    }

    /// The student's four taps of images `[N, 3, S, S]`, at S/4, S/8, S/16 and S/32.
    pub fn taps(&self, images: Tensor<4>) -> Vec<Tensor<4>> {
        let mut x = images;
        let mut taps = Vec::new();
        for (g, group) in self.groups.iter().enumerate() {
            let last = group.convs.len() - 1;
            for (k, c) in group.convs.iter().enumerate() {
                x = conv2d(c, x);
                if k < last {
                    x = relu(group.bns[k].forward(x));
                } else if group.relu {
                    x = relu(x);
                }
            }
            x = self.pool.forward(x);
            if g > 0 {
                taps.push(x.clone());
            }
        }
        taps
    }
}

/// Each image's discrepancy between a teacher map and the student's `[N, C, h, w]`: 1 − the
/// cosine of the two flattened maps, plus [`KD_LAMBDA`] times their mean squared difference.
pub fn discrepancy(teacher: Tensor<4>, student: Tensor<4>) -> Tensor<1> {
    let [n, c, h, w] = teacher.dims();
    let flat = |t: Tensor<4>| t.reshape([n, c * h * w]);
    let (t, s) = (flat(teacher), flat(student));
    let dot = (t.clone() * s.clone()).sum_dim(1);
    let norms =
        t.clone().powi_scalar(2).sum_dim(1).sqrt() * s.clone().powi_scalar(2).sum_dim(1).sqrt();
    let cosine = dot / norms.clamp_min(1e-8);
    let mse = (s - t).powi_scalar(2).mean_dim(1);
    (cosine.neg().add_scalar(1.0) + mse.mul_scalar(KD_LAMBDA)).reshape([n])
}
