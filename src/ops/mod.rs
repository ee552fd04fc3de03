//! CPU kernels that burn's `flex` backend lacks, added through burn's backend extensions:
//! BatchNorm fused into one operation (on batch statistics when training; at inference
//! with the residual addition and ReLU after it), a convolution as tiled im2col copies and
//! matrix products written in place (forward and both gradients), the depthwise
//! convolution's gradients and strided forward pass as direct loops, and max pooling without
//! indices (inference). The backbones use them on `flex` and burn's own operations
//! everywhere else.

pub mod batch_norm;
pub mod conv;
pub mod depthwise;
pub mod norm;
pub mod pool;

use burn::backend::Backend;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::ops::{Backward, OpsKind};
use burn::backend::autodiff::{Autodiff, NodeId};
use burn::backend::tensor::FloatTensor;

use burn::backend::DispatchDevice;
use burn::backend::flex::FlexTensor;
use burn::nn::PaddingConfig2d;
use burn::prelude::*;
use burn::tensor::TensorData;

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

/// `forward(x, weight)` recorded in the autodiff graph as `step`: both inputs checkpointed
/// and `geometry` kept for its backward pass (the convolutions' autodiff operations).
fn tracked<B, C, G, S>(
    step: S,
    x: FloatTensor<Autodiff<B, C>>,
    weight: FloatTensor<Autodiff<B, C>>,
    geometry: G,
    forward: impl FnOnce(FloatTensor<B>, FloatTensor<B>) -> FloatTensor<B>,
) -> FloatTensor<Autodiff<B, C>>
where
    B: Backend,
    C: CheckpointStrategy,
    G: Clone + Send + std::fmt::Debug + 'static,
    S: Backward<B, 2, State = (NodeId, NodeId, G)>,
{
    let mut kind = step
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
