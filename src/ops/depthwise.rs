//! The depthwise convolution (one k×k filter per channel: EfficientNet's MBConv layers) and
//! both its gradients as direct loops over each channel's plane. Every output row is a sum,
//! over the kernel's taps, of a scaled run of one input row: at stride 1 both runs are
//! contiguous and the compiler vectorises them. burn's `flex` computes the input gradient as
//! a general transposed convolution and the weight gradient as a grouped convolution of the
//! input by the output gradient, and pads a strided layer's input first ("same" padding is
//! asymmetric there); here asymmetric padding is handled by the loops' bounds. Its forward
//! SIMD loops are faster where the padding is symmetric, so that case keeps them
//! (`docs/PERFORMANCE.md`, issue #18, per layer).

use burn::backend::autodiff::Autodiff;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::flex::FlexTensor;
use burn::backend::ops::{ConvOptions, ModuleOps};
use burn::backend::tensor::FloatTensor;
use burn::backend::{Backend, Dispatch, Flex, TensorMetadata, backend_extension};
use burn::prelude::*;
use rayon::prelude::*;
use std::ops::Range;

use super::tensor;

/// Where a depthwise layer's windows sit on its input: stride, padding before (top, left),
/// dilation, and the input and output sizes, per spatial axis.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Windows {
    stride: [usize; 2],
    before: [usize; 2],
    dilation: [usize; 2],
    input: [usize; 2],
    output: [usize; 2],
    kernel: [usize; 2],
}

impl Windows {
    /// The output pixels `o` whose tap `t` of axis `a` falls inside the input, and the input
    /// position of the first: `o·s + t·d − p` in `[0, size)`.
    fn span(&self, a: usize, t: usize) -> (Range<usize>, usize) {
        let (s, d, p) = (self.stride[a], self.dilation[a], self.before[a]);
        let offset = t * d;
        // o·s + offset ≥ p  ⇔  o ≥ ⌈(p − offset) / s⌉
        let first = p.saturating_sub(offset).div_ceil(s);
        // o·s + offset − p ≤ size − 1  ⇔  o ≤ ⌊(size − 1 + p − offset) / s⌋
        let end = match (self.input[a] + p).checked_sub(offset + 1) {
            Some(last) => (last / s + 1).min(self.output[a]),
            None => 0,
        };
        let first = first.min(end);
        (first..end, (first * s + offset).saturating_sub(p))
    }

    /// Calls `f(output row, input row, tap (i, j), output columns, first input column)` for
    /// every tap of every output row whose row and columns fall inside the input.
    fn for_each_tap(&self, mut f: impl FnMut(usize, usize, [usize; 2], Range<usize>, usize)) {
        let columns: Vec<_> = (0..self.kernel[1]).map(|j| self.span(1, j)).collect();
        for i in 0..self.kernel[0] {
            let (rows, first_row) = self.span(0, i);
            for (k, oy) in rows.enumerate() {
                let iy = first_row + k * self.stride[0];
                for (j, (cols, first_col)) in columns.iter().enumerate() {
                    if !cols.is_empty() {
                        f(oy, iy, [i, j], cols.clone(), *first_col);
                    }
                }
            }
        }
    }
}

/// `dst[o] += w · src[first + (o − start)·s]` over the output columns `cols`, or with the
/// roles of the two swapped (`scatter`: `dst[first + …] += w · src[o]`).
#[inline(always)]
fn axpy(
    dst: &mut [f32],
    src: &[f32],
    w: f32,
    cols: Range<usize>,
    first: usize,
    s: usize,
    scatter: bool,
) {
    let n = cols.len();
    match (s, scatter) {
        (1, false) => dst[cols.clone()]
            .iter_mut()
            .zip(&src[first..first + n])
            .for_each(|(o, v)| *o += w * v),
        (1, true) => dst[first..first + n]
            .iter_mut()
            .zip(&src[cols])
            .for_each(|(o, v)| *o += w * v),
        (_, false) => dst[cols]
            .iter_mut()
            .zip(src[first..].iter().step_by(s))
            .for_each(|(o, v)| *o += w * v),
        (_, true) => dst[first..]
            .iter_mut()
            .step_by(s)
            .zip(&src[cols])
            .for_each(|(o, v)| *o += w * v),
    }
}

/// `Σ a[o] · b[first + (o − start)·s]` over the output columns `cols`, at stride 1 in lanes of
/// partial sums.
#[inline(always)]
fn dot(a: &[f32], b: &[f32], cols: Range<usize>, first: usize, s: usize) -> f32 {
    let n = cols.len();
    if s == 1 {
        // `L` sums side by side, which the compiler keeps in vector registers, rather than
        // one chain of dependent additions
        const L: usize = 8;
        let (a, b) = (&a[cols], &b[first..first + n]);
        let (ca, cb) = (a.chunks_exact(L), b.chunks_exact(L));
        let tail: f32 = ca
            .remainder()
            .iter()
            .zip(cb.remainder())
            .map(|(x, y)| x * y)
            .sum();
        let mut lanes = [0f32; L];
        for (x, y) in ca.zip(cb) {
            for l in 0..L {
                lanes[l] += x[l] * y[l];
            }
        }
        lanes.iter().sum::<f32>() + tail
    } else {
        a[cols]
            .iter()
            .zip(b[first..].iter().step_by(s))
            .map(|(x, y)| x * y)
            .sum()
    }
}

/// The depthwise convolution, for the backends that have it.
#[backend_extension(Autodiff, Flex)]
pub trait DepthwiseKernel: Backend {
    /// `x` (`[n, c, h, w]`) convolved channel by channel with `weight` (`[c, 1, kh, kw]`), no
    /// bias, padded by `before` (top, left) and `after` (bottom, right).
    fn depthwise_conv2d(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        stride: [usize; 2],
        before: [usize; 2],
        after: [usize; 2],
        dilation: [usize; 2],
    ) -> FloatTensor<Self>;
}

/// The two gradients of [`DepthwiseKernel::depthwise_conv2d`], for the backends the autodiff
/// step runs on.
pub trait DepthwiseGradients: Backend {
    /// The gradients of the input and of the weight given the output's, each where `wanted`.
    fn depthwise_conv2d_grads(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        grad: FloatTensor<Self>,
        geometry: Geometry,
        wanted: [bool; 2],
    ) -> [Option<FloatTensor<Self>>; 2];
}

/// Stride, padding before and after, and dilation, per spatial axis.
pub type Geometry = ([usize; 2], [usize; 2], [usize; 2], [usize; 2]);

fn windows(x: &FlexTensor, weight: &FlexTensor, geometry: Geometry) -> Windows {
    let (stride, before, after, dilation) = geometry;
    let [_, _, h, w] = x.shape().dims();
    let [_, _, kh, kw] = weight.shape().dims();
    let size = |input, k, a: usize| {
        super::output_size(input, k, before[a] + after[a], stride[a], dilation[a])
    };
    Windows {
        stride,
        before,
        dilation,
        input: [h, w],
        output: [size(h, kh, 0), size(w, kw, 1)],
        kernel: [kh, kw],
    }
}

impl DepthwiseKernel for Flex {
    fn depthwise_conv2d(
        x: FlexTensor,
        weight: FlexTensor,
        stride: [usize; 2],
        before: [usize; 2],
        after: [usize; 2],
        dilation: [usize; 2],
    ) -> FlexTensor {
        let [n, c, h, w] = x.shape().dims();
        if before == after {
            // burn's own SIMD loops, faster than these where no padded copy is needed
            let options = ConvOptions::new(stride, before, dilation, c);
            return <Flex as ModuleOps<Flex>>::conv2d(x, weight, None, options);
        }
        let g = windows(&x, &weight, (stride, before, after, dilation));
        let ([ho, wo], window) = (g.output, g.kernel[0] * g.kernel[1]);
        let (x, weight) = (x.to_contiguous(), weight.to_contiguous());
        let (xs, ws) = (x.storage::<f32>(), weight.storage::<f32>());
        let mut y = vec![0f32; n * c * ho * wo];
        y.par_chunks_mut(ho * wo)
            .enumerate()
            .for_each(|(plane, out)| {
                let input = &xs[plane * h * w..][..h * w];
                let kernel = &ws[(plane % c) * window..][..window];
                g.for_each_tap(|oy, iy, [i, j], cols, first| {
                    let wv = kernel[i * g.kernel[1] + j];
                    let row = &mut out[oy * wo..][..wo];
                    axpy(
                        row,
                        &input[iy * w..][..w],
                        wv,
                        cols,
                        first,
                        g.stride[1],
                        false,
                    );
                });
            });
        tensor(y, Shape::new([n, c, ho, wo]))
    }
}

impl DepthwiseGradients for Flex {
    fn depthwise_conv2d_grads(
        x: FlexTensor,
        weight: FlexTensor,
        grad: FlexTensor,
        geometry: Geometry,
        [input, weights]: [bool; 2],
    ) -> [Option<FlexTensor>; 2] {
        let g = windows(&x, &weight, geometry);
        let [n, c, h, w] = x.shape().dims();
        let ([ho, wo], [kh, kw]) = (g.output, g.kernel);
        let (x, weight, grad) = (
            x.to_contiguous(),
            weight.to_contiguous(),
            grad.to_contiguous(),
        );
        let (xs, ws, dy) = (
            x.storage::<f32>(),
            weight.storage::<f32>(),
            grad.storage::<f32>(),
        );
        // dx: each output pixel's gradient scattered back through the taps
        let dx = input.then(|| {
            let mut dx = vec![0f32; n * c * h * w];
            dx.par_chunks_mut(h * w)
                .enumerate()
                .for_each(|(plane, out)| {
                    let dy = &dy[plane * ho * wo..][..ho * wo];
                    let kernel = &ws[(plane % c) * kh * kw..][..kh * kw];
                    g.for_each_tap(|oy, iy, [i, j], cols, first| {
                        let wv = kernel[i * kw + j];
                        let row = &mut out[iy * w..][..w];
                        axpy(
                            row,
                            &dy[oy * wo..][..wo],
                            wv,
                            cols,
                            first,
                            g.stride[1],
                            true,
                        );
                    });
                });
            tensor(dx, x.shape())
        });
        // dw: per channel, the images' products summed in order
        let dw = weights.then(|| {
            let mut dw = vec![0f32; c * kh * kw];
            dw.par_chunks_mut(kh * kw)
                .enumerate()
                .for_each(|(channel, out)| {
                    for img in 0..n {
                        let plane = img * c + channel;
                        let (input, dy) = (
                            &xs[plane * h * w..][..h * w],
                            &dy[plane * ho * wo..][..ho * wo],
                        );
                        g.for_each_tap(|oy, iy, [i, j], cols, first| {
                            let row = &input[iy * w..][..w];
                            out[i * kw + j] +=
                                dot(&dy[oy * wo..][..wo], row, cols, first, g.stride[1]);
                        });
                    }
                });
            tensor(dw, weight.shape())
        });
        [dx, dw]
    }
}

impl<B: DepthwiseKernel + DepthwiseGradients, C: CheckpointStrategy> DepthwiseKernel
    for Autodiff<B, C>
{
    fn depthwise_conv2d(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        stride: [usize; 2],
        before: [usize; 2],
        after: [usize; 2],
        dilation: [usize; 2],
    ) -> FloatTensor<Self> {
        let geometry = (stride, before, after, dilation);
        super::tracked::<B, C, _>(
            B::depthwise_conv2d_grads,
            x,
            weight,
            geometry,
            |x, weight| B::depthwise_conv2d(x, weight, stride, before, after, dilation),
        )
    }
}

/// `x` convolved channel by channel with `weight` (`[c, 1, kh, kw]`), padded by `before` and
/// `after`, through [`DepthwiseKernel`].
pub fn depthwise_conv2d(
    x: Tensor<4>,
    weight: Tensor<4>,
    stride: [usize; 2],
    before: [usize; 2],
    after: [usize; 2],
    dilation: [usize; 2],
) -> Tensor<4> {
    Tensor::from_dispatch(Dispatch::depthwise_conv2d(
        x.into_dispatch(),
        weight.into_dispatch(),
        stride,
        before,
        after,
        dilation,
    ))
}
