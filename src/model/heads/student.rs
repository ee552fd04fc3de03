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

use super::upsample;
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

/// The first tap an image is scored on: the last three are (stride 8 to 32), as KDAD's test;
/// training reads all four.
const FIRST_SCORED: usize = 1;

/// Each image's discrepancy between a teacher map and the student's `[N, C, h, w]`: 1 − the
/// cosine of the two flattened maps, plus [`KD_LAMBDA`] times their mean squared difference.
pub fn discrepancy(teacher: Tensor<4>, student: Tensor<4>) -> Tensor<1> {
    let [n, c, h, w] = teacher.dims();
    let flat = |t: Tensor<4>| t.reshape([n, c * h * w, 1, 1]);
    cell_discrepancy(flat(teacher), flat(student)).reshape([n])
}

/// [`discrepancy`] of every cell `[N, 1, h, w]`, over the cell's channels.
fn cell_discrepancy(teacher: Tensor<4>, student: Tensor<4>) -> Tensor<4> {
    let dot = (teacher.clone() * student.clone()).sum_dim(1);
    let norms = teacher.clone().powi_scalar(2).sum_dim(1).sqrt()
        * student.clone().powi_scalar(2).sum_dim(1).sqrt();
    let cosine = dot / norms.clamp_min(1e-8);
    let mse = (student - teacher).powi_scalar(2).mean_dim(1);
    cosine.neg().add_scalar(1.0) + mse.mul_scalar(KD_LAMBDA)
}

/// What the student head gives for a batch: its (teacher, student) taps, each image's score
/// (the discrepancy summed over the scored taps) and its training term (over all four).
#[derive(Debug, Clone)]
pub struct Distillation {
    /// Each image's score `[N]`.
    pub score: Tensor<1>,
    /// Each image's training term `[N]`.
    pub all: Tensor<1>,
    taps: Vec<(Tensor<4>, Tensor<4>)>,
}

impl Distillation {
    /// The scores of the teacher's and the student's four taps, paired.
    pub fn new(taps: Vec<(Tensor<4>, Tensor<4>)>) -> Self {
        let per_tap: Vec<Tensor<1>> = taps
            .iter()
            .map(|(t, s)| discrepancy(t.clone(), s.clone()))
            .collect();
        let score = per_tap[FIRST_SCORED..]
            .iter()
            .cloned()
            .reduce(|a, b| a + b)
            .expect("4 taps");
        let all = per_tap[..FIRST_SCORED]
            .iter()
            .fold(score.clone(), |sum, t| t.clone() + sum);
        Distillation { score, all, taps }
    }

    /// Each image's anomaly map `[N, 1, h, w]` at the first scored tap's size (stride 8):
    /// every scored tap's `cell_discrepancy`, bilinear to that size, summed.
    pub fn map(&self) -> Tensor<4> {
        let [_, _, h, w] = self.taps[FIRST_SCORED].0.dims();
        self.taps[FIRST_SCORED..]
            .iter()
            .map(|(t, s)| upsample(cell_discrepancy(t.clone(), s.clone()), [h, w]))
            .reduce(|a, b| a + b)
            .expect("4 taps")
    }
}
