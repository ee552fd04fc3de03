//! BatchNorm on batch statistics as one fused CPU kernel, forward and backward, added to
//! burn's `flex` backend through a backend extension. burn composes this operation from
//! generic tensor operations: forward, two transposed copies of the map and about six
//! element-wise passes; backward, two more copies and about eight passes. Here the forward
//! reads the map once for the statistics and once to write the output, and the backward reads
//! it (with its gradient) once for the per-channel sums and once to write the input gradient.
//! A ReLU or ReLU6 after the layer is applied in the output pass, and its gradient gate in
//! the backward passes. Timings are in `docs/PERFORMANCE.md`; `tests/ops.rs` checks both
//! against burn's layer and activations.

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::autodiff::{Autodiff, NodeId};
use burn::backend::flex::FlexTensor;
use burn::backend::ops::ModuleOps;
use burn::backend::tensor::FloatTensor;
use burn::backend::{
    AutodiffBackend, Backend, DType, Dispatch, Flex, TensorMetadata, backend_extension,
};
use burn::prelude::*;
use rayon::prelude::*;

use super::{Slot, contiguous, tensor, values};

/// The fused operation and its gradient, for the backends that have them.
#[backend_extension(Autodiff, Flex)]
pub trait BatchNormKernel: Backend {
    /// BatchNorm of `x` (`[batch, channels, ...]`) on its own statistics, then ReLU capped at
    /// `cap` where given: the output, the batch mean and the biased batch variance (both
    /// `[channels]`).
    fn batch_norm_fused(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        epsilon: f64,
        cap: Option<f32>,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>);

    /// BatchNorm at inference, `x · scale + shift` per channel (`scale`, `shift`:
    /// `[channels]`), then ReLU capped at `cap` where given.
    fn batch_norm_affine(
        x: FloatTensor<Self>,
        scale: FloatTensor<Self>,
        shift: FloatTensor<Self>,
        cap: Option<f32>,
    ) -> FloatTensor<Self>;

    /// `relu(x · scale + shift + residual)`: BatchNorm at inference closing a residual block.
    fn batch_norm_add_relu(
        x: FloatTensor<Self>,
        scale: FloatTensor<Self>,
        shift: FloatTensor<Self>,
        residual: FloatTensor<Self>,
    ) -> FloatTensor<Self>;
}

/// The gradient of [`BatchNormKernel::batch_norm_fused`], for the backends the autodiff step
/// runs on.
pub trait BatchNormGradients: Backend {
    /// Gradients of `x`, `gamma` and `beta` given the output's gradient and the statistics
    /// the forward returned; with a `cap`, only where the output was strictly between 0 and
    /// the cap or at the cap (burn's ReLU and `clamp_max`), the output recomputed from `x`.
    #[allow(clippy::too_many_arguments)]
    fn batch_norm_fused_backward(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        mean: FloatTensor<Self>,
        variance: FloatTensor<Self>,
        epsilon: f64,
        cap: Option<f32>,
        grad: FloatTensor<Self>,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>);
}

/// [`BatchNormKernel::batch_norm_fused`] on tensors of a `flex` device (see
/// [`available`](super::available)).
pub fn batch_norm_fused(
    x: Tensor<4>,
    gamma: Tensor<1>,
    beta: Tensor<1>,
    epsilon: f64,
    cap: Option<f32>,
) -> (Tensor<4>, Tensor<1>, Tensor<1>) {
    let (output, mean, variance) = Dispatch::batch_norm_fused(
        x.into_dispatch(),
        gamma.into_dispatch(),
        beta.into_dispatch(),
        epsilon,
        cap,
    );
    (
        Tensor::from_dispatch(output),
        Tensor::from_dispatch(mean),
        Tensor::from_dispatch(variance),
    )
}

/// [`BatchNormKernel::batch_norm_affine`] (without `residual`) or
/// [`BatchNormKernel::batch_norm_add_relu`] (with it, `cap` then unbounded) on tensors of a
/// `flex` device.
pub fn batch_norm_affine(
    x: Tensor<4>,
    scale: Tensor<1>,
    shift: Tensor<1>,
    residual: Option<Tensor<4>>,
    cap: Option<f32>,
) -> Tensor<4> {
    let (x, scale, shift) = (
        x.into_dispatch(),
        scale.into_dispatch(),
        shift.into_dispatch(),
    );
    Tensor::from_dispatch(match residual {
        Some(r) if cap == RELU => Dispatch::batch_norm_add_relu(x, scale, shift, r.into_dispatch()),
        Some(_) => panic!("a residual is added only before a ReLU"),
        None => Dispatch::batch_norm_affine(x, scale, shift, cap),
    })
}

/// Why a capped ReLU is not fused into the kernel at other precisions (`ops::norm` does not
/// ask for it there).
const F32_ONLY: &str = "BatchNorm fuses its activation for f32 maps only";

/// ReLU without a cap.
pub const RELU: Option<f32> = Some(f32::INFINITY);

/// `v` through ReLU capped at `cap`, as burn's ReLU then `clamp_max` (NaN stays NaN); two
/// selects, so that the loops calling it stay vectorised (the cap is matched outside them).
#[inline(always)]
fn capped(v: f32, cap: f32) -> f32 {
    let v = if v < 0.0 { 0.0 } else { v };
    if v > cap { cap } else { v }
}

/// The two inference operations from a backend's own operations: one pass each.
fn affine_composite<B: Backend>(
    x: FloatTensor<B>,
    scale: FloatTensor<B>,
    shift: FloatTensor<B>,
    residual: Option<FloatTensor<B>>,
    cap: Option<f32>,
) -> FloatTensor<B> {
    let per_channel = |t: FloatTensor<B>| {
        let c = t.shape().num_elements();
        B::float_reshape(t, Shape::new([1, c, 1, 1]))
    };
    let y = B::float_add(B::float_mul(x, per_channel(scale)), per_channel(shift));
    let y = match residual {
        Some(r) => B::float_add(y, r),
        None => y,
    };
    match cap {
        Some(c) if c.is_finite() => B::float_clamp_max(B::relu(y), c.into()),
        Some(_) => B::relu(y),
        None => y,
    }
}

/// `[batch, channels, rest]` of a map, `rest` being the product of its spatial sizes.
fn dims(x: &FlexTensor) -> (usize, usize, usize) {
    let shape = x.shape();
    let (n, c) = (shape[0], shape[1]);
    (n, c, shape.num_elements() / (n * c).max(1))
}

/// Two sums per channel, of `f(a[i], b[i]).0` and `.1` over the channel's elements with
/// `f = per_channel(ch)`: f32 lanes within a row (one image's plane of one channel, `rest`
/// values), f64 across rows.
fn channel_sums<F: Fn(f32, f32) -> (f32, f32)>(
    a: &[f32],
    b: &[f32],
    (n, c, rest): (usize, usize, usize),
    per_channel: impl Fn(usize) -> F + Sync,
) -> Vec<(f64, f64)> {
    const L: usize = 16;
    (0..c)
        .into_par_iter()
        .map(|ch| {
            let f = per_channel(ch);
            let (mut t0, mut t1) = (0f64, 0f64);
            for img in 0..n {
                let at = (img * c + ch) * rest;
                let (ra, rb) = (&a[at..at + rest], &b[at..at + rest]);
                let (mut l0, mut l1) = ([0f32; L], [0f32; L]);
                let (ca, cb) = (ra.chunks_exact(L), rb.chunks_exact(L));
                let (ta, tb) = (ca.remainder(), cb.remainder());
                for (xa, xb) in ca.zip(cb) {
                    for l in 0..L {
                        let (u, v) = f(xa[l], xb[l]);
                        l0[l] += u;
                        l1[l] += v;
                    }
                }
                for (&x, &y) in ta.iter().zip(tb) {
                    let (u, v) = f(x, y);
                    l0[0] += u;
                    l1[0] += v;
                }
                t0 += l0.iter().map(|&v| v as f64).sum::<f64>();
                t1 += l1.iter().map(|&v| v as f64).sum::<f64>();
            }
            (t0, t1)
        })
        .collect()
}

/// `out[i] = f(out[i], b[i])` (`b[i]` = 0 without `b`) with `f = per_channel(ch)` of the
/// row's channel, rows in parallel.
fn map_rows<S: Slot, F: Fn(f32, f32) -> f32>(
    out: &mut [S],
    b: Option<&[f32]>,
    (_, c, rest): (usize, usize, usize),
    per_channel: impl Fn(usize) -> F + Sync,
) {
    let rest = rest.max(1);
    out.par_chunks_mut(rest).enumerate().for_each(|(row, o)| {
        let f = per_channel(row % c);
        match b {
            Some(b) => {
                for (o, &y) in o.iter_mut().zip(&b[row * rest..][..rest]) {
                    o.set(f(o.get(), y));
                }
            }
            None => o.iter_mut().for_each(|o| o.set(f(o.get(), 0.0))),
        }
    });
}

/// BatchNorm's per-channel `scale = γ / √(var + ε)` and `shift = β − mean · scale`, from
/// `mean` and `var` in f64; the forward pass and the gradient's gate compute them alike.
fn scale_shift(
    gamma: &FlexTensor,
    beta: &FlexTensor,
    mean: &[f64],
    var: &[f64],
    epsilon: f64,
) -> (Vec<f32>, Vec<f32>) {
    let (g, b) = (values(gamma), values(beta));
    let scale: Vec<f32> = (0..g.len())
        .map(|ch| (g[ch] as f64 / (var[ch] + epsilon).sqrt()) as f32)
        .collect();
    let shift = (0..g.len())
        .map(|ch| (b[ch] as f64 - mean[ch] * scale[ch] as f64) as f32)
        .collect();
    (scale, shift)
}

/// A contiguous f32 buffer of `t`'s values to overwrite: its own storage where nothing else
/// holds it, a copy otherwise.
fn writable(t: FlexTensor) -> FlexTensor {
    let mut t = contiguous(t);
    if t.try_storage_mut::<f32>().is_some() {
        t
    } else {
        tensor(values(&t), t.shape())
    }
}

impl BatchNormKernel for Flex {
    fn batch_norm_fused(
        x: FlexTensor,
        gamma: FlexTensor,
        beta: FlexTensor,
        epsilon: f64,
        cap: Option<f32>,
    ) -> (FlexTensor, FlexTensor, FlexTensor) {
        if x.dtype() != DType::F32 {
            assert!(cap.is_none(), "{F32_ONLY}");
            let r = <Flex as ModuleOps<Flex>>::batch_norm_train(x, gamma, beta, epsilon);
            return (r.output, r.mean, r.variance);
        }
        let x = x.to_contiguous();
        let d = dims(&x);
        let (n, c, rest) = d;
        let xs = x.storage::<f32>();
        let count = (n * rest) as f64;
        // sums around the channel's first value, which keeps E[x²] − E[x]² from cancelling
        // when a channel's mean is large against its spread
        let first: Vec<f32> = (0..c).map(|ch| xs[ch * rest]).collect();
        let sums = channel_sums(xs, xs, d, |ch| {
            let first = first[ch];
            move |v, _| {
                let u = v - first;
                (u, u * u)
            }
        });
        let mean: Vec<f64> = (0..c)
            .map(|ch| first[ch] as f64 + sums[ch].0 / count)
            .collect();
        let var: Vec<f64> = sums
            .iter()
            .map(|&(s1, s2)| (s2 / count - (s1 / count).powi(2)).max(0.0))
            .collect();
        let (scale, shift) = scale_shift(&gamma, &beta, &mean, &var, epsilon);
        let at = |ch: usize| (scale[ch], shift[ch]);
        // the output written once, without zeroing it first
        let mut out = Vec::with_capacity(xs.len());
        let slots = &mut out.spare_capacity_mut()[..xs.len()];
        match cap {
            None => map_rows(slots, Some(xs), d, |ch| {
                let (s, t) = at(ch);
                move |_, v| v * s + t
            }),
            Some(cap) => map_rows(slots, Some(xs), d, |ch| {
                let (s, t) = at(ch);
                move |_, v| capped(v * s + t, cap)
            }),
        }
        // SAFETY: `map_rows` has written every slot
        unsafe { out.set_len(xs.len()) };
        let per_channel =
            |v: Vec<f64>| tensor(v.into_iter().map(|v| v as f32).collect(), [c].into());
        (tensor(out, x.shape()), per_channel(mean), per_channel(var))
    }

    fn batch_norm_affine(
        x: FlexTensor,
        scale: FlexTensor,
        shift: FlexTensor,
        cap: Option<f32>,
    ) -> FlexTensor {
        affine(x, scale, shift, None, cap)
    }

    fn batch_norm_add_relu(
        x: FlexTensor,
        scale: FlexTensor,
        shift: FlexTensor,
        residual: FlexTensor,
    ) -> FlexTensor {
        affine(x, scale, shift, Some(residual), RELU)
    }
}

impl BatchNormGradients for Flex {
    fn batch_norm_fused_backward(
        x: FlexTensor,
        gamma: FlexTensor,
        beta: FlexTensor,
        mean: FlexTensor,
        variance: FlexTensor,
        epsilon: f64,
        cap: Option<f32>,
        grad: FlexTensor,
    ) -> (FlexTensor, FlexTensor, FlexTensor) {
        if x.dtype() != DType::F32 {
            assert!(cap.is_none(), "{F32_ONLY}");
            let r = <Flex as ModuleOps<Flex>>::batch_norm_train_backward(
                x, gamma, mean, variance, epsilon, grad,
            );
            return (r.x_grad, r.gamma_grad, r.beta_grad);
        }
        let x = x.to_contiguous();
        let d = dims(&x);
        let (_, c, _) = d;
        let xs = x.storage::<f32>();
        // the output's gradient is consumed here: its buffer becomes the input's gradient
        let mut dx = writable(grad);
        let dy = dx.storage_mut::<f32>();
        let (g, m, v) = (values(&gamma), values(&mean), values(&variance));
        let inv_std: Vec<f64> = v
            .iter()
            .map(|&v| 1.0 / (v as f64 + epsilon).sqrt())
            .collect();
        let pass = Pass {
            x: xs,
            d,
            mean: &m,
            gamma: &g,
            inv_std: &inv_std,
        };
        let sums = match cap {
            None => pass.run(dy, Ungated),
            Some(cap) => {
                // the output recomputed from x, as the forward pass computed it
                let wide = |v: &[f32]| v.iter().map(|&v| v as f64).collect::<Vec<_>>();
                let (scale, shift) = scale_shift(&gamma, &beta, &wide(&m), &wide(&v), epsilon);
                pass.run(dy, Capped { scale, shift, cap })
            }
        };
        let gamma_grad = (0..c).map(|ch| (sums[ch].1 * inv_std[ch]) as f32).collect();
        let beta_grad = sums.iter().map(|s| s.0 as f32).collect();
        (
            dx,
            tensor(gamma_grad, [c].into()),
            tensor(beta_grad, [c].into()),
        )
    }
}

/// What of the output's gradient reaches the normalised map: all of it without an
/// activation, where the output passed the capped ReLU with one. A type each, so that each
/// backward pass gets its own loops with the gate inlined.
trait Gate: Sync {
    /// Channel `ch`'s gate: the gradient `dy` of the output at input `x`, gated.
    fn channel(&self, ch: usize) -> impl Fn(f32, f32) -> f32;
}

/// No activation after the normalisation.
struct Ungated;

impl Gate for Ungated {
    fn channel(&self, _: usize) -> impl Fn(f32, f32) -> f32 {
        |dy, _| dy
    }
}

/// ReLU capped at `cap` after the normalisation `x · scale + shift`: burn's ReLU and
/// `clamp_max` pass the gradient where `0 < y ≤ cap`.
struct Capped {
    scale: Vec<f32>,
    shift: Vec<f32>,
    cap: f32,
}

impl Gate for Capped {
    fn channel(&self, ch: usize) -> impl Fn(f32, f32) -> f32 {
        let (s, t, cap) = (self.scale[ch], self.shift[ch], self.cap);
        move |dy, x| {
            let y = x * s + t;
            if (y > 0.0) & (y <= cap) { dy } else { 0.0 }
        }
    }
}

/// The backward pass of BatchNorm on batch statistics over one map.
struct Pass<'a> {
    x: &'a [f32],
    d: (usize, usize, usize),
    mean: &'a [f32],
    gamma: &'a [f32],
    inv_std: &'a [f64],
}

impl Pass<'_> {
    /// Writes the input's gradient over `dy` and returns Σ g and Σ g·(x − mean) per channel
    /// (β's gradient and σ times γ's), where g = `gate.channel(ch)(dy, x)` is the gradient
    /// that reached the normalised map through the activation.
    fn run(&self, dy: &mut [f32], gate: impl Gate) -> Vec<(f64, f64)> {
        let (n, c, rest) = self.d;
        let (m, inv_std) = (self.mean, self.inv_std);
        let count = (n * rest) as f64;
        let sums = channel_sums(dy, self.x, self.d, |ch| {
            let (gate, m) = (gate.channel(ch), m[ch]);
            move |dy, x| {
                let g = gate(dy, x);
                (g, g * (x - m))
            }
        });
        // dx = γ/σ · (g − mean(g) − (x − mean) · Σ g·(x − mean) / (σ² · count))
        let k: Vec<f32> = (0..c)
            .map(|ch| (self.gamma[ch] as f64 * inv_std[ch]) as f32)
            .collect();
        let a: Vec<f32> = sums.iter().map(|s| (s.0 / count) as f32).collect();
        let b: Vec<f32> = (0..c)
            .map(|ch| (sums[ch].1 * inv_std[ch] * inv_std[ch] / count) as f32)
            .collect();
        map_rows(dy, Some(self.x), self.d, |ch| {
            let (gate, k, a, m, b) = (gate.channel(ch), k[ch], a[ch], m[ch], b[ch]);
            move |dy, x| k * (gate(dy, x) - a - (x - m) * b)
        });
        sums
    }
}

/// Both inference operations on `flex`: one parallel pass, in `x`'s buffer where nothing
/// else holds it.
fn affine(
    x: FlexTensor,
    scale: FlexTensor,
    shift: FlexTensor,
    residual: Option<FlexTensor>,
    cap: Option<f32>,
) -> FlexTensor {
    if x.dtype() != DType::F32 {
        return affine_composite::<Flex>(x, scale, shift, residual, cap);
    }
    let d = dims(&x);
    let (scale, shift) = (values(&scale), values(&shift));
    let at = |ch: usize| (scale[ch], shift[ch]);
    let residual = residual.map(|r| r.to_contiguous());
    let mut y = writable(x);
    let (out, r) = (
        y.storage_mut::<f32>(),
        residual.as_ref().map(|r| r.storage::<f32>()),
    );
    match cap {
        None => map_rows(out, r, d, |ch| {
            let (s, t) = at(ch);
            move |v, r| v * s + t + r
        }),
        Some(cap) => map_rows(out, r, d, |ch| {
            let (s, t) = at(ch);
            move |v, r| capped(v * s + t + r, cap)
        }),
    }
    y
}

/// The backward step of the fused operation in the autodiff graph.
#[derive(Debug)]
struct FusedBackward;

impl<B: BatchNormGradients> Backward<B, 3> for FusedBackward {
    /// The input, γ and β (checkpointed), the batch statistics, ε and the activation's cap.
    type State = (
        [NodeId; 3],
        FloatTensor<B>,
        FloatTensor<B>,
        f64,
        Option<f32>,
    );

    fn backward(
        self,
        ops: Ops<Self::State, 3>,
        grads: &mut Gradients,
        checkpointer: &mut Checkpointer,
    ) {
        let [node_x, node_gamma, node_beta] = ops.parents;
        let grad = grads.consume::<B>(&ops.node);
        let (inputs, mean, variance, epsilon, cap) = ops.state;
        let [x, gamma, beta] =
            inputs.map(|id| checkpointer.retrieve_node_output::<FloatTensor<B>>(id));
        let (dx, dgamma, dbeta) =
            B::batch_norm_fused_backward(x, gamma, beta, mean, variance, epsilon, cap, grad);
        for (node, g) in [(node_x, dx), (node_gamma, dgamma), (node_beta, dbeta)] {
            if let Some(node) = node {
                grads.register::<B>(node.id, g);
            }
        }
    }
}

impl<B: BatchNormKernel + BatchNormGradients, C: CheckpointStrategy> BatchNormKernel
    for Autodiff<B, C>
{
    fn batch_norm_fused(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        epsilon: f64,
        cap: Option<f32>,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
        let mut kind = FusedBackward
            .prepare::<C>([x.node(), gamma.node(), beta.node()])
            .compute_bound()
            .stateful();
        // a tracked operation checkpoints its inputs before they are consumed
        let checkpoints = match &mut kind {
            OpsKind::Tracked(prep) => Some([&x, &gamma, &beta].map(|t| prep.checkpoint(t))),
            OpsKind::UnTracked(_) => None,
        };
        let (output, mean, variance) = B::batch_norm_fused(
            x.into_primitive(),
            gamma.into_primitive(),
            beta.into_primitive(),
            epsilon,
            cap,
        );
        let output = match kind {
            OpsKind::Tracked(prep) => {
                let inputs = checkpoints.expect("taken above for a tracked operation");
                let state = (inputs, mean.clone(), variance.clone(), epsilon, cap);
                prep.finish(state, output)
            }
            OpsKind::UnTracked(prep) => prep.finish(output),
        };
        (output, Self::from_inner(mean), Self::from_inner(variance))
    }

    // differentiable through burn's own operations
    fn batch_norm_affine(
        x: FloatTensor<Self>,
        scale: FloatTensor<Self>,
        shift: FloatTensor<Self>,
        cap: Option<f32>,
    ) -> FloatTensor<Self> {
        affine_composite::<Self>(x, scale, shift, None, cap)
    }

    fn batch_norm_add_relu(
        x: FloatTensor<Self>,
        scale: FloatTensor<Self>,
        shift: FloatTensor<Self>,
        residual: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        affine_composite::<Self>(x, scale, shift, Some(residual), RELU)
    }
}
