//! The depthwise convolution (one k×k filter per channel: EfficientNet's MBConv layers) and
//! both its gradients as direct loops over each channel's plane. Each plane is laid out by the
//! stride's phases first (`Phases`), so that every tap of the kernel is one long contiguous
//! loop over all of the plane's output pixels, which the compiler vectorises, in all three
//! passes. burn's `flex` computes the input gradient as a general transposed convolution and
//! the weight gradient as a grouped convolution of the input by the output gradient, pads a
//! strided layer's input first ("same" padding is asymmetric there), and runs its forward
//! loops one output row at a time, short on EfficientNet's 14² and 7² maps; here the padding
//! is part of the layout (`docs/PERFORMANCE.md`, issue #18, per layer). Since a plane is
//! copied into its phase planes before its output is computed, a stride-1 forward pass whose
//! input nothing else holds (inference) writes its output over the input.

use burn::backend::autodiff::Autodiff;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::flex::FlexTensor;
use burn::backend::tensor::FloatTensor;
use burn::backend::{Backend, Dispatch, Flex, TensorMetadata, backend_extension};
use burn::prelude::*;
use rayon::iter::Either;
use rayon::prelude::*;

use super::{Geometry, Slot, contiguous, gather, output_shape, tensor};

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

/// The layout of a plane for all three passes: the padded input split by the stride into
/// `sy × sx` phase planes of `rows × width` values, phase `(r, q)` holding padded pixel
/// `(y·sy + r, x·sx + q)` at `y·width + x`, and the output (or its gradient) at the same row
/// width, its values beyond `wo` columns unused (zero in a gradient). Every tap then meets all of a plane's output pixels in one contiguous run of
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

    /// Where each tap's run starts in the phase planes, taps in the kernel's order.
    fn taps(&self) -> Vec<usize> {
        let ([sy, sx], [kh, kw]) = (self.g.stride, self.g.kernel);
        let tap = |i: usize, j: usize| {
            // the tap's padded offset from its window's corner, per axis
            let (a, b) = (i * self.g.dilation[0], j * self.g.dilation[1]);
            ((a % sy) * sx + b % sx) * self.plane() + (a / sy) * self.width + b / sx
        };
        (0..kh * kw).map(|t| tap(t / kw, t % kw)).collect()
    }

    /// Calls `f(input row, its first column, phase-plane index, count)` for each run of an
    /// input row's pixels that the windows reach and one phase plane holds side by side:
    /// input column `first + k·sx` at index `at + k`. The runs come phase plane by phase
    /// plane, each plane's rows in order, so `at` only grows.
    fn for_each_run(&self, mut f: impl FnMut(usize, usize, usize, usize)) {
        let g = &self.g;
        let ([sy, sx], [by, bx]) = (g.stride, g.before);
        // the padded rows that hold input rows the windows reach
        let rows = by..by + g.input[0].min(self.reach[0].saturating_sub(by));
        let columns = g.input[1].min(self.reach[1].saturating_sub(bx));
        for r in 0..sy {
            // the first of those rows in row phase r
            let top = rows.start + (r + sy - rows.start % sy) % sy;
            for q in 0..sx {
                // the first input column whose padded column falls in column phase q, and how
                // many of that phase the windows reach
                let first = (q + sx - bx % sx) % sx;
                let count = columns.saturating_sub(first).div_ceil(sx);
                if count == 0 {
                    continue;
                }
                let plane = (r * sx + q) * self.plane() + (first + bx) / sx;
                for (k, py) in (top..rows.end).step_by(sy).enumerate() {
                    f(py - by, first, plane + (top / sy + k) * self.width, count);
                }
            }
        }
    }

    /// The plane `x` (`h × w`) split into `out`'s phase planes, zero where padded.
    fn split(&self, x: &[f32], out: &mut [f32]) {
        let (w, sx) = (self.g.input[1], self.g.stride[1]);
        // the runs come in order: zero what lies between them
        let mut zeroed = 0;
        self.for_each_run(|y, first, at, count| {
            out[zeroed..at].fill(0.0);
            zeroed = at + count;
            gather(&x[y * w + first..], sx, &mut out[at..zeroed]);
        });
        out[zeroed..].fill(0.0);
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

    /// The output `y` (`ho × wo`, written once) of its values at the phases' row width,
    /// `wide`: each row's first `wo` (the inverse of [`Phases::spread`]).
    fn narrow<S: Slot>(&self, wide: &[f32], y: &mut [S]) {
        let wo = self.g.output[1];
        for (y, row) in y.chunks_exact_mut(wo).zip(wide.chunks_exact(self.width)) {
            y.iter_mut().zip(&row[..wo]).for_each(|(o, v)| o.set(*v));
        }
    }
}

/// `count` chunks of `len` values of `values`, one a plane, or `count` times `None` where
/// that gradient is not wanted.
fn per_plane(
    values: Option<&mut Vec<f32>>,
    len: usize,
    count: usize,
) -> impl IndexedParallelIterator<Item = Option<&mut [f32]>> {
    match values {
        Some(values) => Either::Left(values.par_chunks_mut(len).map(Some)),
        None => Either::Right((0..count).into_par_iter().map(|_| None)),
    }
}

/// Which side of [`TapRuns`] each tap's run is taken from, at the tap's start.
#[derive(Clone, Copy)]
enum Side {
    /// `into += w · from[start..]`: the forward pass, gathering the input's phase planes.
    From,
    /// `into[start..] += w · from`: the input gradient, scattering into the phase planes.
    Into,
}

/// Every tap's weight times one run of `from` added to one run of `into`, taps in order,
/// each run one loop over all of a plane's output pixels. Compiled for the machine's vector
/// width by `pulp` at run time, with the same bits at every width: a multiply and an add per
/// value, neither fused nor reordered. Gathering, the first tap's run writes `into` as
/// `0 + w · v`, the bits of an addition to a zeroed `into`, which need not be zeroed first.
struct TapRuns<'a> {
    taps: &'a [usize],
    weights: &'a [f32],
    from: &'a [f32],
    into: &'a mut [f32],
    at: Side,
}

/// Output values a block of [`TapRuns`]' forward pass: the block and the taps' runs of the
/// input beside it stay in the first-level cache.
const GATHER_BLOCK: usize = 1024;

impl pulp::WithSimd for TapRuns<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _: S) {
        // gathering, a block of the output at a time takes all the taps while it stays in
        // cache (each value still sums its taps in order); scattering, the taps overlap in
        // `into`, so each tap runs whole to keep that order there too
        let (len, block) = match self.at {
            Side::From => (self.into.len(), GATHER_BLOCK),
            Side::Into => (self.from.len(), self.from.len().max(1)),
        };
        for lo in (0..len).step_by(block) {
            let hi = (lo + block).min(len);
            for (t, (&start, &w)) in self.taps.iter().zip(self.weights).enumerate() {
                let (into, from) = match self.at {
                    Side::From => (&mut self.into[lo..hi], &self.from[start + lo..start + hi]),
                    Side::Into => (&mut self.into[start + lo..start + hi], &self.from[lo..hi]),
                };
                match (self.at, t) {
                    (Side::From, 0) => into
                        .iter_mut()
                        .zip(from)
                        .for_each(|(o, v)| *o = 0.0 + w * v),
                    _ => into.iter_mut().zip(from).for_each(|(o, v)| *o += w * v),
                }
            }
        }
    }
}

/// Adds to `sums[t]` the product `Σ a[k] · b[start_t + k]` of `a` with each tap's run of
/// `b`, in [`LANES`] sums side by side rather than one chain of dependent additions; compiled
/// for the machine's vector width by `pulp`, the same bits at every width.
struct TapDots<'a> {
    taps: &'a [usize],
    a: &'a [f32],
    b: &'a [f32],
    sums: &'a mut [f32],
}

/// The partial sums of one of [`TapDots`]' products.
const LANES: usize = 16;

impl pulp::WithSimd for TapDots<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _: S) {
        let n = self.a.len();
        for (sum, &start) in self.sums.iter_mut().zip(self.taps) {
            let (ca, cb) = (
                self.a.chunks_exact(LANES),
                self.b[start..start + n].chunks_exact(LANES),
            );
            let tail: f32 = ca
                .remainder()
                .iter()
                .zip(cb.remainder())
                .map(|(x, y)| x * y)
                .sum();
            let mut lanes = [0f32; LANES];
            for (x, y) in ca.zip(cb) {
                for l in 0..LANES {
                    lanes[l] += x[l] * y[l];
                }
            }
            *sum += lanes.iter().sum::<f32>() + tail;
        }
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

fn windows(x: &FlexTensor, weight: &FlexTensor, geometry: Geometry) -> Windows {
    let (stride, before, _, dilation) = geometry;
    let [_, _, h, w] = x.shape().dims();
    let [_, _, kh, kw] = weight.shape().dims();
    Windows {
        stride,
        before,
        dilation,
        input: [h, w],
        output: output_shape([h, w], [kh, kw], geometry),
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
        let g = windows(&x, &weight, (stride, before, after, dilation));
        let [n, c, h, w] = x.shape().dims();
        let ([ho, wo], [kh, kw]) = (g.output, g.kernel);
        if ho == 0 || wo == 0 {
            return tensor(Vec::new(), Shape::new([n, c, ho, wo]));
        }
        let (mut x, weight) = (contiguous(x), weight.to_contiguous());
        let ws = weight.storage::<f32>();
        let layout = Phases::new(g);
        let taps = layout.taps();
        // a plane: its phase planes laid out from `input`, then each tap's weight times the
        // tap's run of them, summed at the phases' row width (`wide`), taps in order
        let convolve = |plane: usize, input: &[f32], (wide, phases): &mut (Vec<f32>, Vec<f32>)| {
            layout.split(input, phases);
            pulp::Arch::new().dispatch(TapRuns {
                taps: &taps,
                weights: &ws[(plane % c) * kh * kw..][..kh * kw],
                from: phases,
                into: wide,
                at: Side::From,
            });
        };
        let buffers = || (vec![0f32; layout.run()], vec![0f32; layout.len()]);
        // where nothing else holds the input and the output has its shape (stride 1 at
        // inference), each plane's output overwrites the plane once its phases are laid out:
        // no second map of the same size
        if [ho, wo] == [h, w]
            && let Some(xs) = x.try_storage_mut::<f32>()
        {
            xs.par_chunks_mut(h * w).enumerate().for_each_init(
                buffers,
                |buffers, (plane, values)| {
                    convolve(plane, values, buffers);
                    layout.narrow(&buffers.0, values);
                },
            );
            return x;
        }
        let xs = x.storage::<f32>();
        let len = n * c * ho * wo;
        let mut y = Vec::<f32>::with_capacity(len);
        y.spare_capacity_mut()
            .par_chunks_mut(ho * wo)
            .enumerate()
            .for_each_init(buffers, |buffers, (plane, out)| {
                convolve(plane, &xs[plane * h * w..][..h * w], buffers);
                layout.narrow(&buffers.0, out);
            });
        // SAFETY: every plane's `ho × wo` values were written by `narrow`
        unsafe { y.set_len(len) };
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
        let (taps, run, window) = (layout.taps(), layout.run(), kh * kw);
        // one pass over the planes, each one's output gradient laid out at the phases' row
        // width once for both gradients.
        // dw: per plane and tap, one long product of the output gradient with the tap's run of
        // the input's phase planes; each channel's images summed in order below.
        // dx: each tap's weight times the output gradient, added to the tap's run of the phase
        // planes, taps in order; then the planes merged back into the input's layout.
        let mut dx = input.then(|| vec![0f32; n * c * h * w]);
        let mut products = weights.then(|| vec![0f32; n * c * window]);
        let planes = n * c;
        per_plane(dx.as_mut(), h * w, planes)
            .zip(per_plane(products.as_mut(), window, planes))
            .enumerate()
            .for_each_init(
                || (vec![0f32; run], vec![0f32; layout.len()]),
                |(spread, phases), (plane, (dx, products))| {
                    layout.spread(&dy[plane * ho * wo..][..ho * wo], spread);
                    if let Some(products) = products {
                        layout.split(&xs[plane * h * w..][..h * w], phases);
                        pulp::Arch::new().dispatch(TapDots {
                            taps: &taps,
                            a: spread,
                            b: phases,
                            sums: products,
                        });
                    }
                    if let Some(dx) = dx {
                        phases.fill(0.0);
                        pulp::Arch::new().dispatch(TapRuns {
                            taps: &taps,
                            weights: &ws[(plane % c) * window..][..window],
                            from: spread,
                            into: phases,
                            at: Side::Into,
                        });
                        layout.merge(phases, dx);
                    }
                },
            );
        let dw = products.map(|products| {
            let mut dw = vec![0f32; c * window];
            dw.par_chunks_mut(window)
                .enumerate()
                .for_each(|(channel, sums)| {
                    for img in 0..n {
                        let plane = &products[(img * c + channel) * window..][..window];
                        sums.iter_mut().zip(plane).for_each(|(s, p)| *s += p);
                    }
                });
            tensor(dw, weight.shape())
        });
        let dx = dx.map(|dx| tensor(dx, x.shape()));
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_unique_input_of_the_outputs_shape_is_overwritten_in_place() {
        let filled = |shape: [usize; 4], step: usize| {
            let n = shape.iter().product::<usize>();
            let v = (0..n)
                .map(|i| (i * step % 97) as f32 / 48.0 - 1.0)
                .collect();
            tensor(v, Shape::new(shape))
        };
        let (x, w) = (filled([2, 3, 9, 10], 31), filled([3, 1, 3, 3], 7));
        let conv = |x: FlexTensor, stride: usize| {
            Flex::depthwise_conv2d(x, w.clone(), [stride; 2], [1, 1], [1, 1], [1, 1])
        };
        // the same bits as a fresh output, written over the input's own buffer
        let fresh = conv(x.clone(), 1).storage::<f32>().to_vec();
        let at = x.storage::<f32>().as_ptr();
        let y = conv(x, 1);
        assert_eq!(y.storage::<f32>().as_ptr(), at);
        assert_eq!(y.storage::<f32>(), &fresh[..]);
        // another shape (stride 2) gets its own buffer
        let x = filled([2, 3, 9, 10], 31);
        let at = x.storage::<f32>().as_ptr();
        let y = conv(x, 2);
        assert_eq!(y.shape().dims::<4>(), [2, 3, 5, 5]);
        assert_ne!(y.storage::<f32>().as_ptr(), at);
    }
}
