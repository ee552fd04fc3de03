//! Max pooling as a CPU kernel: per output row, the element-wise maximum of the window's
//! input rows, then the maximum across each window's columns, one plane per task. burn's
//! `flex` computes the indices as well, position by position with integer divisions, and
//! keeps them (8 bytes per output) for the backward pass. Here training keeps nothing but
//! the input, which it checkpoints anyway: the backward pass finds each window's maximum
//! again (the first in row-major order, as burn's) and adds the output's gradient there.
//! Unlike burn's, the maximum skips NaN values (`f32::max`), in training as at inference.

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::autodiff::{Autodiff, NodeId};
use burn::backend::flex::FlexTensor;
use burn::backend::ops::ModuleOps;
use burn::backend::tensor::FloatTensor;
use burn::backend::{Backend, DType, Dispatch, Flex, TensorMetadata, backend_extension};
use burn::nn::pool::MaxPool2d;
use burn::prelude::*;
use rayon::prelude::*;
use std::ops::Range;

use super::{gather, symmetric_padding, tensor};

/// Max pooling at dilation 1, padding counted as −∞.
#[backend_extension(Autodiff, Flex)]
pub trait MaxPoolKernel: Backend {
    /// `x` (`[n, c, h, w]`) max-pooled over `kernel` windows at `stride`, `padding` each side.
    fn max_pool2d_plain(
        x: FloatTensor<Self>,
        kernel: [usize; 2],
        stride: [usize; 2],
        padding: [usize; 2],
    ) -> FloatTensor<Self>;
}

/// The gradient of [`MaxPoolKernel::max_pool2d_plain`], for the backends the autodiff step
/// runs on.
pub trait MaxPoolGradients: Backend {
    /// The gradient of the input `x` given the output's: each output's gradient added at
    /// its window's maximum.
    fn max_pool2d_plain_backward(
        x: FloatTensor<Self>,
        grad: FloatTensor<Self>,
        kernel: [usize; 2],
        stride: [usize; 2],
        padding: [usize; 2],
    ) -> FloatTensor<Self>;
}

/// `pool.forward(x)`, through [`MaxPoolKernel`] on `flex` at dilation 1, floor rounding and
/// symmetric padding (in training too), through burn's layer otherwise.
pub fn max_pool2d(pool: &MaxPool2d, x: Tensor<4>) -> Tensor<4> {
    let device = x.device();
    let padding = symmetric_padding(&pool.padding, pool.kernel_size, pool.stride, pool.dilation);
    match padding {
        Some(padding)
            if super::available(&device) && pool.dilation == [1, 1] && !pool.ceil_mode =>
        {
            Tensor::from_dispatch(Dispatch::max_pool2d_plain(
                x.into_dispatch(),
                pool.kernel_size,
                pool.stride,
                padding,
            ))
        }
        _ => pool.forward(x),
    }
}

/// Whether [`MaxPoolKernel for Flex`](MaxPoolKernel) pools `dtype` with this geometry itself
/// (f32, every window with a position inside the map) rather than through burn's.
fn own(dtype: DType, kernel: [usize; 2], padding: [usize; 2]) -> bool {
    dtype == DType::F32 && padding[0] < kernel[0] && padding[1] < kernel[1]
}

/// The windows of a pooling on one axis: kernel, stride, padding before, input size.
#[derive(Clone, Copy)]
struct Axis {
    kernel: usize,
    stride: usize,
    padding: usize,
    input: usize,
}

impl Axis {
    /// The number of windows (floor rounding).
    fn output(&self) -> usize {
        (self.input + 2 * self.padding - self.kernel) / self.stride + 1
    }

    /// The input positions of window `o`, clipped to the map (never empty, the padding
    /// being below the kernel size).
    fn window(&self, o: usize) -> Range<usize> {
        let start = (o * self.stride).saturating_sub(self.padding);
        start
            ..(o * self.stride + self.kernel)
                .saturating_sub(self.padding)
                .min(self.input)
    }
}

/// The two axes of a pooling over `[h, w]` maps.
fn axes(
    kernel: [usize; 2],
    stride: [usize; 2],
    padding: [usize; 2],
    [h, w]: [usize; 2],
) -> [Axis; 2] {
    [0, 1].map(|a| Axis {
        kernel: kernel[a],
        stride: stride[a],
        padding: padding[a],
        input: [h, w][a],
    })
}

impl MaxPoolKernel for Flex {
    fn max_pool2d_plain(
        x: FlexTensor,
        kernel: [usize; 2],
        stride: [usize; 2],
        padding: [usize; 2],
    ) -> FlexTensor {
        if !own(x.dtype(), kernel, padding) {
            return <Flex as ModuleOps<Flex>>::max_pool2d(
                x,
                kernel,
                stride,
                padding,
                [1, 1],
                false,
            );
        }
        let [n, c, h, w] = x.shape().dims();
        let [rows_axis, cols_axis] = axes(kernel, stride, padding, [h, w]);
        let [ho, wo] = [rows_axis.output(), cols_axis.output()];
        let x = x.to_contiguous();
        let xs = x.storage::<f32>();
        let mut y = vec![0f32; n * c * ho * wo];
        y.par_chunks_mut(ho * wo)
            .zip(xs.par_chunks(h * w))
            .for_each_init(
                || vec![0f32; w],
                |rows, (out, plane)| {
                    for (oy, out) in out.chunks_exact_mut(wo).enumerate() {
                        let mut iys = rows_axis.window(oy);
                        let first = iys.next().expect("padding below the kernel size");
                        rows.copy_from_slice(&plane[first * w..(first + 1) * w]);
                        for iy in iys {
                            for (m, &v) in rows.iter_mut().zip(&plane[iy * w..(iy + 1) * w]) {
                                *m = m.max(v);
                            }
                        }
                        for (ox, o) in out.iter_mut().enumerate() {
                            *o = rows[cols_axis.window(ox)]
                                .iter()
                                .fold(f32::NEG_INFINITY, |m, &v| m.max(v));
                        }
                    }
                },
            );
        tensor(y, Shape::new([n, c, ho, wo]))
    }
}

impl MaxPoolGradients for Flex {
    fn max_pool2d_plain_backward(
        x: FlexTensor,
        grad: FlexTensor,
        kernel: [usize; 2],
        stride: [usize; 2],
        padding: [usize; 2],
    ) -> FlexTensor {
        let [n, c, h, w] = x.shape().dims();
        let [rows_axis, cols_axis] = axes(kernel, stride, padding, [h, w]);
        let [ho, wo] = [rows_axis.output(), cols_axis.output()];
        let (x, grad) = (x.to_contiguous(), grad.to_contiguous());
        let (xs, dy) = (x.storage::<f32>(), grad.storage::<f32>());
        let mut dx = vec![0f32; n * c * h * w];
        // an input row padded with −∞ on both sides, as wide as the windows of a row reach,
        // and split by the column's remainder modulo the stride (`split[r][k]` = padded
        // column `k·s + r`), so that every tap reads its windows' values contiguously
        let (pad, s) = (cols_axis.padding, cols_axis.stride);
        let span = (wo - 1) * s + cols_axis.kernel;
        let per_part = span.div_ceil(s);
        dx.par_chunks_mut(h * w)
            .zip(xs.par_chunks(h * w).zip(dy.par_chunks(ho * wo)))
            .for_each_init(
                || {
                    let padded = vec![f32::NEG_INFINITY; span];
                    let split = vec![f32::NEG_INFINITY; s * per_part];
                    (padded, split, vec![0f32; wo], vec![0u32; wo])
                },
                |(padded, split, best, at), (dx, (plane, dy))| {
                    for oy in 0..ho {
                        let iys = rows_axis.window(oy);
                        // each window's first position, which keeps the gradient if no
                        // value beats −∞
                        for (ox, (b, a)) in best.iter_mut().zip(at.iter_mut()).enumerate() {
                            *b = f32::NEG_INFINITY;
                            *a = (iys.start * w + cols_axis.window(ox).start) as u32;
                        }
                        // the taps in row-major order, each over every window of the row:
                        // the first maximum (or the last NaN) wins, as burn's index
                        for iy in iys {
                            let inside = pad.min(span)..(pad + w).min(span);
                            padded[inside.clone()]
                                .copy_from_slice(&plane[iy * w..][..inside.len()]);
                            for (r, part) in split.chunks_exact_mut(per_part).enumerate() {
                                let columns = (span - r).div_ceil(s);
                                gather(&padded[r..], s, &mut part[..columns]);
                            }
                            for j in 0..cols_axis.kernel {
                                let part = &split[(j % s) * per_part + j / s..][..wo];
                                // the input position of window ox's tap: first + ox·s
                                // (wrapping below 0 only where the tap is padding, which
                                // never wins)
                                let first = (iy * w + j).wrapping_sub(pad) as u32;
                                let step = s as u32;
                                let taps = part.iter().zip(best.iter_mut().zip(at.iter_mut()));
                                let mut position = first;
                                for (&v, (b, a)) in taps {
                                    let wins = v > *b || v.is_nan();
                                    *b = if wins { v } else { *b };
                                    *a = if wins { position } else { *a };
                                    position = position.wrapping_add(step);
                                }
                            }
                        }
                        for (&a, &g) in at.iter().zip(&dy[oy * wo..(oy + 1) * wo]) {
                            dx[a as usize] += g;
                        }
                    }
                },
            );
        tensor(dx, Shape::new([n, c, h, w]))
    }
}

/// The backward step of the pooling in the autodiff graph.
#[derive(Debug)]
struct PoolBackward;

impl<B: MaxPoolGradients> Backward<B, 1> for PoolBackward {
    /// The input (checkpointed), kernel, stride and padding.
    type State = (NodeId, [usize; 2], [usize; 2], [usize; 2]);

    fn backward(
        self,
        ops: Ops<Self::State, 1>,
        grads: &mut Gradients,
        checkpointer: &mut Checkpointer,
    ) {
        let [node] = ops.parents;
        let grad = grads.consume::<B>(&ops.node);
        let (x, kernel, stride, padding) = ops.state;
        let x = checkpointer.retrieve_node_output::<FloatTensor<B>>(x);
        if let Some(node) = node {
            let dx = B::max_pool2d_plain_backward(x, grad, kernel, stride, padding);
            grads.register::<B>(node.id, dx);
        }
    }
}

impl<B: MaxPoolKernel + MaxPoolGradients, C: CheckpointStrategy> MaxPoolKernel for Autodiff<B, C> {
    fn max_pool2d_plain(
        x: FloatTensor<Self>,
        kernel: [usize; 2],
        stride: [usize; 2],
        padding: [usize; 2],
    ) -> FloatTensor<Self> {
        if !own(x.dtype(), kernel, padding) {
            // burn's own pooling and its backward pass
            return <Self as ModuleOps<Self>>::max_pool2d(
                x,
                kernel,
                stride,
                padding,
                [1, 1],
                false,
            );
        }
        let mut kind = PoolBackward
            .prepare::<C>([x.node()])
            .compute_bound()
            .stateful();
        // a tracked operation checkpoints its input before it is consumed
        let checkpoint = match &mut kind {
            OpsKind::Tracked(prep) => Some(prep.checkpoint(&x)),
            OpsKind::UnTracked(_) => None,
        };
        let y = B::max_pool2d_plain(x.into_primitive(), kernel, stride, padding);
        match kind {
            OpsKind::Tracked(prep) => {
                let x = checkpoint.expect("taken above for a tracked operation");
                prep.finish((x, kernel, stride, padding), y)
            }
            OpsKind::UnTracked(prep) => prep.finish(y),
        }
    }
}
