//! CPU kernels that burn's `flex` backend lacks, added through burn's backend extensions:
//! BatchNorm fused into one operation with the ReLU or ReLU6 after it (on batch statistics
//! when training; at inference also with a residual addition), a convolution as tiled im2col
//! copies and matrix products written in place (forward and both gradients; 3×3 layers at
//! stride 1 by Winograd's minimal filtering instead), the depthwise convolution and both its
//! gradients as direct loops, and max pooling without indices (its gradient finds each
//! window's maximum again). The backbones use them on `flex` and burn's own operations
//! everywhere else.

pub mod batch_norm;
pub mod conv;
pub mod depthwise;
mod jobs;
pub mod norm;
pub mod pool;
mod winograd;

use burn::backend::Backend;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::autodiff::{Autodiff, NodeId};
use burn::backend::tensor::FloatTensor;

use burn::backend::DispatchDevice;
use burn::backend::flex::FlexTensor;
use burn::nn::PaddingConfig2d;
use burn::prelude::*;
use burn::tensor::TensorData;
use std::mem::MaybeUninit;

/// Stride, padding before (top, left) and after (bottom, right), and dilation, per spatial
/// axis, of a convolution.
pub type Geometry = ([usize; 2], [usize; 2], [usize; 2], [usize; 2]);

/// Whether tensors on `device` can use these kernels (the `flex` CPU backend).
pub fn available(device: &Device) -> bool {
    matches!(
        device.clone().inner().as_dispatch(),
        DispatchDevice::Flex(_)
    )
}

/// `t` laid out contiguously from the start of its own buffer: itself where it already is
/// (burn's `to_contiguous` would clone its handle, so the buffer would never be unique), a
/// copy otherwise.
fn contiguous(t: FlexTensor) -> FlexTensor {
    let layout = t.layout();
    let whole = layout.num_elements() * t.dtype().size() == t.bytes().len();
    if layout.is_contiguous() && layout.start_offset() == 0 && whole {
        t
    } else {
        t.to_contiguous()
    }
}

/// `dst[k] = src[k · step]` for every `k` of `dst`: the pixels of an input row that one
/// stride phase, one column of a strided layer's patch matrix or one remainder of a max
/// pooling's gradient takes. A step of 2 (every strided layer and pooling of both backbones)
/// reads the row as pairs of values, which the compiler turns into vector shuffles rather
/// than one load a value.
fn gather(src: &[f32], step: usize, dst: &mut [f32]) {
    match step {
        1 => dst.copy_from_slice(&src[..dst.len()]),
        2 => {
            let (pairs, rest) = src.as_chunks::<2>();
            let full = dst.len().min(pairs.len());
            let (head, last) = dst.split_at_mut(full);
            head.iter_mut().zip(pairs).for_each(|(o, [v, _])| *o = *v);
            last.iter_mut().zip(rest).for_each(|(o, v)| *o = *v);
        }
        _ => dst
            .iter_mut()
            .zip(src.iter().step_by(step))
            .for_each(|(o, v)| *o = *v),
    }
}

/// An element a kernel writes: a value it reads and overwrites (an input's own buffer, reused
/// for the output), or a fresh slot of a buffer written once, which reads as 0.
trait Slot: Send {
    fn get(&self) -> f32;
    fn set(&mut self, v: f32);
}

impl Slot for f32 {
    #[inline(always)]
    fn get(&self) -> f32 {
        *self
    }
    #[inline(always)]
    fn set(&mut self, v: f32) {
        *self = v;
    }
}

impl Slot for MaybeUninit<f32> {
    #[inline(always)]
    fn get(&self) -> f32 {
        0.0
    }
    #[inline(always)]
    fn set(&mut self, v: f32) {
        self.write(v);
    }
}

/// The values of an f32 tensor, in row-major order.
fn values(x: &FlexTensor) -> Vec<f32> {
    x.to_contiguous().storage::<f32>().to_vec()
}

/// An f32 tensor of `shape` holding `values`.
fn tensor(values: Vec<f32>, shape: Shape) -> FlexTensor {
    FlexTensor::from_data(TensorData::new(values, shape))
}

/// The padding of each side per axis of a window (`kernel`, `stride`, `dilation`), where the
/// two sides are equal for any input size.
fn symmetric_padding(
    padding: &PaddingConfig2d,
    [kh, kw]: [usize; 2],
    stride: [usize; 2],
    [dh, dw]: [usize; 2],
) -> Option<[usize; 2]> {
    match *padding {
        PaddingConfig2d::Valid => Some([0, 0]),
        PaddingConfig2d::Explicit(top, left, bottom, right) if top == bottom && left == right => {
            Some([top, left])
        }
        // "same" pads (k − 1)·d in total, evenly for odd kernels at stride 1
        PaddingConfig2d::Same if stride == [1, 1] && kh % 2 == 1 && kw % 2 == 1 => {
            Some([(kh - 1) * dh / 2, (kw - 1) * dw / 2])
        }
        PaddingConfig2d::Same if [kh, kw] == [1, 1] => Some([0, 0]),
        _ => None,
    }
}

/// The padding before (top, left) and after (bottom, right) of a window (`kernel`, `stride`)
/// on an `input` map, as burn's layers compute it: "same" pads ⌈size / s⌉ windows' worth,
/// the odd pixel after (the ONNX and TensorFlow convention), the dilation not counted.
fn padding_pairs(
    padding: &PaddingConfig2d,
    input: [usize; 2],
    kernel: [usize; 2],
    stride: [usize; 2],
) -> ([usize; 2], [usize; 2]) {
    match *padding {
        PaddingConfig2d::Valid => ([0, 0], [0, 0]),
        PaddingConfig2d::Explicit(top, left, bottom, right) => ([top, left], [bottom, right]),
        PaddingConfig2d::Same => {
            let total = |a: usize| match input[a].div_ceil(stride[a]) {
                0 => 0,
                windows => ((windows - 1) * stride[a] + kernel[a]).saturating_sub(input[a]),
            };
            let (th, tw) = (total(0), total(1));
            ([th / 2, tw / 2], [th - th / 2, tw - tw / 2])
        }
    }
}

/// The output size of a convolution of `geometry` by a `kernel` over an `input`: the number
/// of windows along each axis of the padded input.
fn output_shape(
    input: [usize; 2],
    kernel: [usize; 2],
    (stride, before, after, dilation): Geometry,
) -> [usize; 2] {
    [0, 1].map(|a| {
        (input[a] + before[a] + after[a] - dilation[a] * (kernel[a] - 1) - 1) / stride[a] + 1
    })
}

/// The gradients of a convolution's input and weight given its output's, for a geometry
/// `G`; each computed only where `wanted`.
type PairGradients<B, G> =
    fn(FloatTensor<B>, FloatTensor<B>, FloatTensor<B>, G, [bool; 2]) -> [Option<FloatTensor<B>>; 2];

/// The backward step of a convolution in the autodiff graph: the input and the weight
/// (checkpointed by [`tracked`]) and the geometry, the gradients from `gradients`.
struct PairBackward<B: Backend, G> {
    gradients: PairGradients<B, G>,
}

impl<B: Backend, G> std::fmt::Debug for PairBackward<B, G> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PairBackward")
    }
}

impl<B, G> Backward<B, 2> for PairBackward<B, G>
where
    B: Backend,
    G: Clone + Send + std::fmt::Debug + 'static,
{
    type State = (NodeId, NodeId, G);

    fn backward(
        self,
        ops: Ops<Self::State, 2>,
        grads: &mut Gradients,
        checkpointer: &mut Checkpointer,
    ) {
        let grad = grads.consume::<B>(&ops.node);
        let (x, weight, geometry) = ops.state;
        let x = checkpointer.retrieve_node_output::<FloatTensor<B>>(x);
        let weight = checkpointer.retrieve_node_output::<FloatTensor<B>>(weight);
        let wanted = ops.parents.each_ref().map(Option::is_some);
        let gradients = (self.gradients)(x, weight, grad, geometry, wanted);
        for (node, g) in ops.parents.into_iter().zip(gradients) {
            if let (Some(node), Some(g)) = (node, g) {
                grads.register::<B>(node.id, g);
            }
        }
    }
}

/// `forward(x, weight)` recorded in the autodiff graph: both inputs checkpointed and
/// `geometry` kept for the backward step, which takes its gradients from `gradients`.
fn tracked<B, C, G>(
    gradients: PairGradients<B, G>,
    x: FloatTensor<Autodiff<B, C>>,
    weight: FloatTensor<Autodiff<B, C>>,
    geometry: G,
    forward: impl FnOnce(FloatTensor<B>, FloatTensor<B>) -> FloatTensor<B>,
) -> FloatTensor<Autodiff<B, C>>
where
    B: Backend,
    C: CheckpointStrategy,
    G: Clone + Send + std::fmt::Debug + 'static,
{
    let mut kind = PairBackward { gradients }
        .prepare::<C>([x.node(), weight.node()])
        .compute_bound()
        .stateful();
    // a tracked operation checkpoints its inputs before they are consumed
    let checkpoints = match &mut kind {
        OpsKind::Tracked(prep) => Some((prep.checkpoint(&x), prep.checkpoint(&weight))),
        OpsKind::UnTracked(_) => None,
    };
    let y = forward(x.into_primitive(), weight.into_primitive());
    match kind {
        OpsKind::Tracked(prep) => {
            let (x, weight) = checkpoints.expect("taken above for a tracked operation");
            prep.finish((x, weight, geometry), y)
        }
        OpsKind::UnTracked(prep) => prep.finish(y),
    }
}
