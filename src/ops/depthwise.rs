//! The depthwise convolution (one k×k filter per channel: EfficientNet's MBConv layers) and
//! both its gradients as direct loops over each channel's plane. Every output row is a sum,
//! over the kernel's taps, of a scaled run of one input row: at stride 1 both runs are
//! contiguous and the compiler vectorises them. The gradients lay each plane out by the
//! stride's phases first (`Phases`), so that each tap is one long contiguous loop over all
//! of the plane's output pixels. burn's `flex` computes the input gradient as
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

/// `dst[o] += w · src[first + (o − start)·s]` over the output columns `cols`.
#[inline(always)]
fn axpy(dst: &mut [f32], src: &[f32], w: f32, cols: Range<usize>, first: usize, s: usize) {
    let n = cols.len();
    if s == 1 {
        dst[cols]
            .iter_mut()
            .zip(&src[first..first + n])
            .for_each(|(o, v)| *o += w * v);
    } else {
        dst[cols]
            .iter_mut()
            .zip(src[first..].iter().step_by(s))
            .for_each(|(o, v)| *o += w * v);
    }
}

/// The gradients' layout of a plane: the padded input split by the stride into `sy × sx`
/// phase planes of `rows × width` values, phase `(r, q)` holding padded pixel `(y·sy + r,
/// x·sx + q)` at `y·width + x`, and the output gradient at the same row width, zero beyond its
/// columns. Every tap then meets all of a plane's output pixels in one contiguous run of
/// `ho · width` values of one phase plane: one long loop a tap, which vectorises, instead of
/// one short loop per tap and output row. A spare row of zeros takes the runs' overhang.
#[derive(Debug, Clone, Copy)]
struct Phases {
    g: Windows,
    /// How far the windows reach into the padded input, per axis.
    reach: [usize; 2],
    rows: usize,
    width: usize,
}

impl Phases {
    fn new(g: Windows) -> Self {
        let reach =
            [0, 1].map(|a| (g.output[a] - 1) * g.stride[a] + (g.kernel[a] - 1) * g.dilation[a] + 1);
        Phases {
            g,
            reach,
            rows: reach[0].div_ceil(g.stride[0]) + 1,
            width: reach[1].div_ceil(g.stride[1]),
        }
    }

    /// Values of one phase plane.
    fn plane(&self) -> usize {
        self.rows * self.width
    }

    /// Values of all the phase planes.
    fn len(&self) -> usize {
        self.g.stride[0] * self.g.stride[1] * self.plane()
    }

    /// The values every tap runs over: the output pixels at the phases' row width.
    fn run(&self) -> usize {
        self.g.output[0] * self.width
    }

    /// Where tap `(i, j)`'s run starts in the phase planes.
    fn tap(&self, i: usize, j: usize) -> usize {
        let [sy, sx] = self.g.stride;
        // the tap's padded offset from its window's corner, per axis
        let (a, b) = (i * self.g.dilation[0], j * self.g.dilation[1]);
        ((a % sy) * sx + b % sx) * self.plane() + (a / sy) * self.width + b / sx
    }

    /// Calls `f(input row, its first column, phase-plane index, count)` for each run of an
    /// input row's pixels that the windows reach and one phase plane holds side by side:
    /// input column `first + k·sx` at index `at + k`.
    fn for_each_run(&self, mut f: impl FnMut(usize, usize, usize, usize)) {
        let g = &self.g;
        let ([sy, sx], [by, bx]) = (g.stride, g.before);
        // per column phase q: the first input column whose padded column falls in it, and how
        // many of that phase the windows reach
        let columns: Vec<(usize, usize)> = (0..sx)
            .map(|q| {
                let first = (q + sx - bx % sx) % sx;
                let end = g.input[1].min(self.reach[1].saturating_sub(bx));
                (first, end.saturating_sub(first).div_ceil(sx))
            })
            .collect();
        for y in 0..g.input[0].min(self.reach[0].saturating_sub(by)) {
            let py = y + by;
            for (q, &(first, count)) in columns.iter().enumerate() {
                if count > 0 {
                    let at = ((py % sy) * sx + q) * self.plane()
                        + (py / sy) * self.width
                        + (first + bx) / sx;
                    f(y, first, at, count);
                }
            }
        }
    }

    /// The plane `x` (`h × w`) split into `out`'s phase planes, zero where padded.
    fn split(&self, x: &[f32], out: &mut [f32]) {
        out.fill(0.0);
        let (w, sx) = (self.g.input[1], self.g.stride[1]);
        self.for_each_run(|y, first, at, count| {
            let src = &x[y * w + first..];
            let dst = &mut out[at..at + count];
            if sx == 1 {
                dst.copy_from_slice(&src[..count]);
            } else {
                dst.iter_mut()
                    .zip(src.iter().step_by(sx))
                    .for_each(|(o, v)| *o = *v);
            }
        });
    }

    /// The input pixels of the phase planes `phases`, written to the plane `x` (`h × w`); the
    /// pixels no window reaches keep their values (zero in a fresh gradient).
    fn merge(&self, phases: &[f32], x: &mut [f32]) {
        let (w, sx) = (self.g.input[1], self.g.stride[1]);
        self.for_each_run(|y, first, at, count| {
            let dst = &mut x[y * w + first..];
            let src = &phases[at..at + count];
            if sx == 1 {
                dst[..count].copy_from_slice(src);
            } else {
                dst.iter_mut()
                    .step_by(sx)
                    .zip(src)
                    .for_each(|(o, v)| *o = *v);
            }
        });
    }

    /// The output gradient `dy` (`ho × wo`) at the phases' row width, zero beyond `wo`.
    fn spread(&self, dy: &[f32], out: &mut [f32]) {
        let wo = self.g.output[1];
        for (row, dy) in out.chunks_exact_mut(self.width).zip(dy.chunks_exact(wo)) {
            row[..wo].copy_from_slice(dy);
            row[wo..].fill(0.0);
        }
    }
}

/// `Σ a[k] · b[k]` in `L` sums side by side, which the compiler keeps in vector registers,
/// rather than one chain of dependent additions.
fn dot(a: &[f32], b: &[f32]) -> f32 {
    const L: usize = 16;
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
                    axpy(row, &input[iy * w..][..w], wv, cols, first, g.stride[1]);
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
        if ho == 0 || wo == 0 {
            let zeros = |shape: Shape| tensor(vec![0f32; shape.num_elements()], shape);
            return [
                input.then(|| zeros(x.shape())),
                weights.then(|| zeros(weight.shape())),
            ];
        }
        let layout = Phases::new(g);
        let taps: Vec<usize> = (0..kh * kw).map(|t| layout.tap(t / kw, t % kw)).collect();
        let run = layout.run();
        // dx: each tap's weight times the output gradient, added to the tap's run of the phase
        // planes, taps in order; then the planes merged back into the input's layout
        let dx = input.then(|| {
            let mut dx = vec![0f32; n * c * h * w];
            dx.par_chunks_mut(h * w).enumerate().for_each_init(
                || (vec![0f32; run], vec![0f32; layout.len()]),
                |(spread, phases), (plane, out)| {
                    layout.spread(&dy[plane * ho * wo..][..ho * wo], spread);
                    phases.fill(0.0);
                    let kernel = &ws[(plane % c) * kh * kw..][..kh * kw];
                    for (&at, &wv) in taps.iter().zip(kernel) {
                        phases[at..at + run]
                            .iter_mut()
                            .zip(spread.iter())
                            .for_each(|(o, v)| *o += wv * v);
                    }
                    layout.merge(phases, out);
                },
            );
            tensor(dx, x.shape())
        });
        // dw: per channel and tap, one long product of the output gradient with the tap's run
        // of the input's phase planes, the images' products summed in order
        let dw = weights.then(|| {
            let mut dw = vec![0f32; c * kh * kw];
            dw.par_chunks_mut(kh * kw).enumerate().for_each_init(
                || (vec![0f32; run], vec![0f32; layout.len()]),
                |(spread, phases), (channel, out)| {
                    for img in 0..n {
                        let plane = img * c + channel;
                        layout.split(&xs[plane * h * w..][..h * w], phases);
                        layout.spread(&dy[plane * ho * wo..][..ho * wo], spread);
                        for (o, &at) in out.iter_mut().zip(&taps) {
                            *o += dot(spread, &phases[at..at + run]);
                        }
                    }
                },
            );
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
