//! A 2-D convolution (one group, symmetric padding) whose weight gradient is an im2col copy
//! and one matrix product per image: `dW[co, (ci, i, j)] += dY[co, p] · col[(ci, i, j), p]`
//! over the image's output pixels `p`, the copy reading the NCHW map row by row. burn derives
//! the weight gradient as a convolution of the input by the output gradient, whose matrix
//! products are only 9 (3×3) or 1 (1×1) columns wide. The forward pass and the input
//! gradient are burn's own (a forward pass through the same copy and product measured no
//! faster than burn's, `docs/PERFORMANCE.md`).

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::autodiff::{Autodiff, NodeId};
use burn::backend::flex::FlexTensor;
use burn::backend::ops::{ConvOptions, ModuleOps};
use burn::backend::tensor::FloatTensor;
use burn::backend::{Backend, DType, Dispatch, Flex, TensorMetadata, backend_extension};
use burn::nn::PaddingConfig2d;
use burn::nn::conv::Conv2d;
use burn::prelude::*;
use rayon::prelude::*;

use super::tensor;

/// Stride, padding (each side) and dilation, per spatial axis.
type Geometry = ([usize; 2], [usize; 2], [usize; 2]);

fn options((stride, padding, dilation): Geometry) -> ConvOptions<2> {
    ConvOptions::new(stride, padding, dilation, 1)
}

/// The convolution and its weight gradient, for the backends that have them.
#[backend_extension(Autodiff, Flex)]
pub trait ConvKernel: Backend {
    /// `x` (`[n, ci, h, w]`) convolved with `weight` (`[co, ci, kh, kw]`), no bias.
    fn conv2d_gemm(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        stride: [usize; 2],
        padding: [usize; 2],
        dilation: [usize; 2],
    ) -> FloatTensor<Self>;

    /// The gradient of [`conv2d_gemm`](ConvKernel::conv2d_gemm)'s weight given its output's.
    fn conv2d_gemm_weight_grad(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        grad: FloatTensor<Self>,
        stride: [usize; 2],
        padding: [usize; 2],
        dilation: [usize; 2],
    ) -> FloatTensor<Self>;
}

/// `conv.forward(x)`, through [`ConvKernel`] when training on `flex` with one group and
/// symmetric padding, through burn's layer otherwise.
pub fn conv2d(conv: &Conv2d, x: Tensor<4>) -> Tensor<4> {
    let device = x.device();
    let padding = symmetric_padding(conv);
    let Some(padding) =
        padding.filter(|_| device.is_autodiff() && super::available(&device) && conv.groups == 1)
    else {
        return conv.forward(x);
    };
    let y = Tensor::from_dispatch(Dispatch::conv2d_gemm(
        x.into_dispatch(),
        conv.weight.val().into_dispatch(),
        conv.stride,
        padding,
        conv.dilation,
    ));
    match &conv.bias {
        Some(bias) => {
            let [c] = bias.shape().dims();
            y + bias.val().reshape([1, c, 1, 1])
        }
        None => y,
    }
}

/// The padding of each side per axis, where the two sides are equal for any input size.
fn symmetric_padding(conv: &Conv2d) -> Option<[usize; 2]> {
    let [kh, kw] = conv.kernel_size;
    let [dh, dw] = conv.dilation;
    match conv.padding {
        PaddingConfig2d::Valid => Some([0, 0]),
        PaddingConfig2d::Explicit(top, left, bottom, right) if top == bottom && left == right => {
            Some([top, left])
        }
        // "same" pads (k − 1)·d in total, evenly for odd kernels at stride 1
        PaddingConfig2d::Same if conv.stride == [1, 1] && kh % 2 == 1 && kw % 2 == 1 => {
            Some([(kh - 1) * dh / 2, (kw - 1) * dw / 2])
        }
        PaddingConfig2d::Same if [kh, kw] == [1, 1] => Some([0, 0]),
        _ => None,
    }
}

/// Fills `col` (`[ci·kh·kw, ho·wo]`) with the patches of one image `x` (`[ci, h, w]`).
#[allow(clippy::too_many_arguments)]
fn im2col(
    x: &[f32],
    col: &mut [f32],
    [h, w]: [usize; 2],
    [kh, kw]: [usize; 2],
    [ho, wo]: [usize; 2],
    (stride, padding, dilation): Geometry,
) {
    col.par_chunks_mut(ho * wo)
        .enumerate()
        .for_each(|(row, out)| {
            let (ci, i, j) = (row / (kh * kw), row / kw % kh, row % kw);
            let plane = &x[ci * h * w..(ci + 1) * h * w];
            // output columns ox whose input column ox·s + j·d − p lies inside the image
            let shift = j * dilation[1];
            let first = padding[1].saturating_sub(shift).div_ceil(stride[1]).min(wo);
            let end = if w + padding[1] > shift {
                ((w + padding[1] - shift - 1) / stride[1] + 1).min(wo)
            } else {
                0
            }
            .max(first);
            for (oy, out) in out.chunks_exact_mut(wo).enumerate() {
                let iy = (oy * stride[0] + i * dilation[0]) as isize - padding[0] as isize;
                if iy < 0 || iy >= h as isize {
                    out.fill(0.0);
                    continue;
                }
                let src = &plane[iy as usize * w..(iy as usize + 1) * w];
                out[..first].fill(0.0);
                out[end..].fill(0.0);
                let ix0 = first * stride[1] + shift - padding[1];
                if stride[1] == 1 {
                    out[first..end].copy_from_slice(&src[ix0..ix0 + end - first]);
                } else {
                    for (k, o) in out[first..end].iter_mut().enumerate() {
                        *o = src[ix0 + k * stride[1]];
                    }
                }
            }
        });
}

/// `dst[m × n] = (dst +) lhs[m × k] · rhs[k × n]`, each matrix given by its row and column
/// strides.
///
/// # Safety
/// The pointers and strides must describe buffers that hold the three matrices, and `dst`
/// must not overlap the others.
#[allow(clippy::too_many_arguments)]
unsafe fn matmul(
    [m, n, k]: [usize; 3],
    dst: *mut f32,
    [dst_rs, dst_cs]: [usize; 2],
    accumulate: bool,
    lhs: *const f32,
    [lhs_rs, lhs_cs]: [usize; 2],
    rhs: *const f32,
    [rhs_rs, rhs_cs]: [usize; 2],
) {
    // SAFETY: as the caller promised
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst,
            dst_cs as isize,
            dst_rs as isize,
            accumulate,
            lhs,
            lhs_cs as isize,
            lhs_rs as isize,
            rhs,
            rhs_cs as isize,
            rhs_rs as isize,
            if accumulate { 1.0 } else { 0.0 },
            1.0,
            false,
            false,
            false,
            gemm::Parallelism::Rayon(0),
        )
    }
}

impl ConvKernel for Flex {
    fn conv2d_gemm(
        x: FlexTensor,
        weight: FlexTensor,
        stride: [usize; 2],
        padding: [usize; 2],
        dilation: [usize; 2],
    ) -> FlexTensor {
        <Flex as ModuleOps<Flex>>::conv2d(x, weight, None, options((stride, padding, dilation)))
    }

    fn conv2d_gemm_weight_grad(
        x: FlexTensor,
        weight: FlexTensor,
        grad: FlexTensor,
        stride: [usize; 2],
        padding: [usize; 2],
        dilation: [usize; 2],
    ) -> FlexTensor {
        let geometry = (stride, padding, dilation);
        if x.dtype() != DType::F32 {
            return <Flex as ModuleOps<Flex>>::conv2d_weight_backward(
                x,
                weight,
                grad,
                options(geometry),
            );
        }
        let [n, ci, h, w] = x.shape().dims();
        let [co, _, kh, kw] = weight.shape().dims();
        let [_, _, ho, wo] = grad.shape().dims();
        let (x, grad) = (x.to_contiguous(), grad.to_contiguous());
        let (xs, dy) = (x.storage::<f32>(), grad.storage::<f32>());
        let (rows, pixels) = (ci * kh * kw, ho * wo);
        let mut dw = vec![0f32; co * rows];
        let mut col = vec![0f32; rows * pixels];
        for img in 0..n {
            let image = &xs[img * ci * h * w..(img + 1) * ci * h * w];
            im2col(image, &mut col, [h, w], [kh, kw], [ho, wo], geometry);
            let dy_img = &dy[img * co * pixels..(img + 1) * co * pixels];
            // dw[co × rows] (+)= dy_img[co × pixels] · colᵀ[pixels × rows]
            // SAFETY: the three buffers hold these matrices and `dw` is a buffer of its own.
            unsafe {
                matmul(
                    [co, rows, pixels],
                    dw.as_mut_ptr(),
                    [rows, 1],
                    img > 0,
                    dy_img.as_ptr(),
                    [pixels, 1],
                    col.as_ptr(),
                    [1, pixels],
                );
            }
        }
        tensor(dw, weight.shape())
    }
}

/// The backward step of [`ConvKernel::conv2d_gemm`] in the autodiff graph.
#[derive(Debug)]
struct ConvBackward;

impl<B: ConvKernel> Backward<B, 2> for ConvBackward {
    /// The input and the weight (checkpointed), and the geometry.
    type State = (NodeId, NodeId, Geometry);

    fn backward(
        self,
        ops: Ops<Self::State, 2>,
        grads: &mut Gradients,
        checkpointer: &mut Checkpointer,
    ) {
        let [node_x, node_weight] = ops.parents;
        let grad = grads.consume::<B>(&ops.node);
        let (x, weight, geometry) = ops.state;
        let x = checkpointer.retrieve_node_output::<FloatTensor<B>>(x);
        let weight = checkpointer.retrieve_node_output::<FloatTensor<B>>(weight);
        if let Some(node) = node_x {
            let dx =
                B::conv2d_x_backward(x.clone(), weight.clone(), grad.clone(), options(geometry));
            grads.register::<B>(node.id, dx);
        }
        if let Some(node) = node_weight {
            let (stride, padding, dilation) = geometry;
            let dw = B::conv2d_gemm_weight_grad(x, weight, grad, stride, padding, dilation);
            grads.register::<B>(node.id, dw);
        }
    }
}

impl<B: ConvKernel, C: CheckpointStrategy> ConvKernel for Autodiff<B, C> {
    fn conv2d_gemm(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        stride: [usize; 2],
        padding: [usize; 2],
        dilation: [usize; 2],
    ) -> FloatTensor<Self> {
        let mut kind = ConvBackward
            .prepare::<C>([x.node(), weight.node()])
            .compute_bound()
            .stateful();
        // a tracked operation checkpoints its inputs before they are consumed
        let checkpoints = match &mut kind {
            OpsKind::Tracked(prep) => Some((prep.checkpoint(&x), prep.checkpoint(&weight))),
            OpsKind::UnTracked(_) => None,
        };
        let y = B::conv2d_gemm(
            x.into_primitive(),
            weight.into_primitive(),
            stride,
            padding,
            dilation,
        );
        match kind {
            OpsKind::Tracked(prep) => {
                let (x, weight) = checkpoints.expect("taken above for a tracked operation");
                prep.finish((x, weight, (stride, padding, dilation)), y)
            }
            OpsKind::UnTracked(prep) => prep.finish(y),
        }
    }

    fn conv2d_gemm_weight_grad(
        _x: FloatTensor<Self>,
        _weight: FloatTensor<Self>,
        _grad: FloatTensor<Self>,
        _stride: [usize; 2],
        _padding: [usize; 2],
        _dilation: [usize; 2],
    ) -> FloatTensor<Self> {
        panic!("the convolution's weight gradient is not itself differentiable")
    }
}
