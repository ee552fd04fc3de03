//! BatchNorm on batch statistics as one fused CPU kernel, forward and backward, added to
//! burn's `flex` backend through a backend extension. burn composes this operation from
//! generic tensor operations: forward, two transposed copies of the map and about six
//! element-wise passes; backward, two more copies and about eight passes. Here the forward
//! reads the map once for the statistics and once to write the output, and the backward reads
//! it (with its gradient) once for the per-channel sums and once to write the input gradient.
//! Timings are in `docs/PERFORMANCE.md`; `tests/backbone.rs` checks both against burn's.

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

use super::{contiguous, tensor, values};

/// The fused operation and its gradient, for the backends that have them.
#[backend_extension(Autodiff, Flex)]
pub trait BatchNormKernel: Backend {
    /// BatchNorm of `x` (`[batch, channels, ...]`) on its own statistics: the output, the
    /// batch mean and the biased batch variance (both `[channels]`).
    fn batch_norm_fused(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        epsilon: f64,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>);

    /// BatchNorm at inference, `x · scale + shift` per channel (`scale`, `shift`:
    /// `[channels]`), then ReLU where asked.
    fn batch_norm_affine(
        x: FloatTensor<Self>,
        scale: FloatTensor<Self>,
        shift: FloatTensor<Self>,
        relu: bool,
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
    /// the forward returned.
    fn batch_norm_fused_backward(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        mean: FloatTensor<Self>,
        variance: FloatTensor<Self>,
        epsilon: f64,
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
) -> (Tensor<4>, Tensor<1>, Tensor<1>) {
    let (output, mean, variance) = Dispatch::batch_norm_fused(
        x.into_dispatch(),
        gamma.into_dispatch(),
        beta.into_dispatch(),
        epsilon,
    );
    (
        Tensor::from_dispatch(output),
        Tensor::from_dispatch(mean),
        Tensor::from_dispatch(variance),
    )
}

/// [`BatchNormKernel::batch_norm_affine`] (without `residual`) or
/// [`BatchNormKernel::batch_norm_add_relu`] (with it, `relu` then set) on tensors of a
/// `flex` device.
pub fn batch_norm_affine(
    x: Tensor<4>,
    scale: Tensor<1>,
    shift: Tensor<1>,
    residual: Option<Tensor<4>>,
    relu: bool,
) -> Tensor<4> {
    let (x, scale, shift) = (
        x.into_dispatch(),
        scale.into_dispatch(),
        shift.into_dispatch(),
    );
    Tensor::from_dispatch(match residual {
        Some(r) if relu => Dispatch::batch_norm_add_relu(x, scale, shift, r.into_dispatch()),
        Some(_) => panic!("a residual is added only before a ReLU"),
        None => Dispatch::batch_norm_affine(x, scale, shift, relu),
    })
}

/// The two inference operations from a backend's own operations: one pass each.
fn affine_composite<B: Backend>(
    x: FloatTensor<B>,
    scale: FloatTensor<B>,
    shift: FloatTensor<B>,
    residual: Option<FloatTensor<B>>,
    relu: bool,
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
    if relu { B::relu(y) } else { y }
}

/// `[batch, channels, rest]` of a map, `rest` being the product of its spatial sizes.
fn dims(x: &FlexTensor) -> (usize, usize, usize) {
    let shape = x.shape();
    let (n, c) = (shape[0], shape[1]);
    (n, c, shape.num_elements() / (n * c).max(1))
}

/// Two sums per channel, of `f(ch, a[i], b[i]).0` and `.1` over the channel's elements: f32
/// lanes within a row (one image's plane of one channel, `rest` values), f64 across rows.
fn channel_sums(
    a: &[f32],
    b: &[f32],
    (n, c, rest): (usize, usize, usize),
    f: impl Fn(usize, f32, f32) -> (f32, f32) + Sync,
) -> Vec<(f64, f64)> {
    const L: usize = 16;
    (0..c)
        .into_par_iter()
        .map(|ch| {
            let (mut t0, mut t1) = (0f64, 0f64);
            for img in 0..n {
                let at = (img * c + ch) * rest;
                let (ra, rb) = (&a[at..at + rest], &b[at..at + rest]);
                let (mut l0, mut l1) = ([0f32; L], [0f32; L]);
                let (ca, cb) = (ra.chunks_exact(L), rb.chunks_exact(L));
                let (ta, tb) = (ca.remainder(), cb.remainder());
                for (xa, xb) in ca.zip(cb) {
                    for l in 0..L {
                        let (u, v) = f(ch, xa[l], xb[l]);
                        l0[l] += u;
                        l1[l] += v;
                    }
                }
                for (&x, &y) in ta.iter().zip(tb) {
                    let (u, v) = f(ch, x, y);
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

/// `out[i] = f(ch, out[i], b[i])` over every row (`b[i]` = 0 without `b`), rows in parallel.
fn map_rows(
    out: &mut [f32],
    b: Option<&[f32]>,
    (_, c, rest): (usize, usize, usize),
    f: impl Fn(usize, f32, f32) -> f32 + Sync,
) {
    let rest = rest.max(1);
    out.par_chunks_mut(rest).enumerate().for_each(|(row, o)| {
        let ch = row % c;
        match b {
            Some(b) => {
                for (o, &y) in o.iter_mut().zip(&b[row * rest..(row + 1) * rest]) {
                    *o = f(ch, *o, y);
                }
            }
            None => o.iter_mut().for_each(|o| *o = f(ch, *o, 0.0)),
        }
    });
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
    ) -> (FlexTensor, FlexTensor, FlexTensor) {
        if x.dtype() != DType::F32 {
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
        let sums = channel_sums(xs, xs, d, |ch, v, _| {
            let u = v - first[ch];
            (u, u * u)
        });
        let mean: Vec<f64> = (0..c)
            .map(|ch| first[ch] as f64 + sums[ch].0 / count)
            .collect();
        let var: Vec<f64> = sums
            .iter()
            .map(|&(s1, s2)| (s2 / count - (s1 / count).powi(2)).max(0.0))
            .collect();
        let (g, b) = (values(&gamma), values(&beta));
        let scale: Vec<f32> = (0..c)
            .map(|ch| (g[ch] as f64 / (var[ch] + epsilon).sqrt()) as f32)
            .collect();
        let shift: Vec<f32> = (0..c)
            .map(|ch| (b[ch] as f64 - mean[ch] * scale[ch] as f64) as f32)
            .collect();
        let mut out = vec![0f32; xs.len()];
        map_rows(&mut out, Some(xs), d, |ch, _, v| v * scale[ch] + shift[ch]);
        let per_channel =
            |v: Vec<f64>| tensor(v.into_iter().map(|v| v as f32).collect(), [c].into());
        (tensor(out, x.shape()), per_channel(mean), per_channel(var))
    }

    fn batch_norm_affine(
        x: FlexTensor,
        scale: FlexTensor,
        shift: FlexTensor,
        relu: bool,
    ) -> FlexTensor {
        affine(x, scale, shift, None, relu)
    }

    fn batch_norm_add_relu(
        x: FlexTensor,
        scale: FlexTensor,
        shift: FlexTensor,
        residual: FlexTensor,
    ) -> FlexTensor {
        affine(x, scale, shift, Some(residual), true)
    }
}

impl BatchNormGradients for Flex {
    fn batch_norm_fused_backward(
        x: FlexTensor,
        gamma: FlexTensor,
        mean: FlexTensor,
        variance: FlexTensor,
        epsilon: f64,
        grad: FlexTensor,
    ) -> (FlexTensor, FlexTensor, FlexTensor) {
        if x.dtype() != DType::F32 {
            let r = <Flex as ModuleOps<Flex>>::batch_norm_train_backward(
                x, gamma, mean, variance, epsilon, grad,
            );
            return (r.x_grad, r.gamma_grad, r.beta_grad);
        }
        let x = x.to_contiguous();
        let d = dims(&x);
        let (n, c, rest) = d;
        let xs = x.storage::<f32>();
        // the output's gradient is consumed here: its buffer becomes the input's gradient
        let mut dx = writable(grad);
        let dy = dx.storage_mut::<f32>();
        let (g, m, v) = (values(&gamma), values(&mean), values(&variance));
        let count = (n * rest) as f64;
        let inv_std: Vec<f64> = v
            .iter()
            .map(|&v| 1.0 / (v as f64 + epsilon).sqrt())
            .collect();
        // Σ dy and Σ dy·(x − mean) per channel
        let sums = channel_sums(dy, xs, d, |ch, g, x| (g, g * (x - m[ch])));
        // dx = γ/σ · (dy − mean(dy) − (x − mean) · Σ dy·(x − mean) / (σ² · count))
        let k: Vec<f32> = (0..c)
            .map(|ch| (g[ch] as f64 * inv_std[ch]) as f32)
            .collect();
        let a: Vec<f32> = sums.iter().map(|s| (s.0 / count) as f32).collect();
        let b: Vec<f32> = (0..c)
            .map(|ch| (sums[ch].1 * inv_std[ch] * inv_std[ch] / count) as f32)
            .collect();
        map_rows(dy, Some(xs), d, |ch, g, x| {
            k[ch] * (g - a[ch] - (x - m[ch]) * b[ch])
        });
        let gamma_grad = (0..c).map(|ch| (sums[ch].1 * inv_std[ch]) as f32).collect();
        let beta_grad = sums.iter().map(|s| s.0 as f32).collect();
        (
            dx,
            tensor(gamma_grad, [c].into()),
            tensor(beta_grad, [c].into()),
        )
    }
}

/// Both inference operations on `flex`: one parallel pass, in `x`'s buffer where nothing
/// else holds it.
fn affine(
    x: FlexTensor,
    scale: FlexTensor,
    shift: FlexTensor,
    residual: Option<FlexTensor>,
    relu: bool,
) -> FlexTensor {
    if x.dtype() != DType::F32 {
        return affine_composite::<Flex>(x, scale, shift, residual, relu);
    }
    let d = dims(&x);
    let (scale, shift) = (values(&scale), values(&shift));
    let residual = residual.map(|r| r.to_contiguous());
    let mut y = writable(x);
    map_rows(
        y.storage_mut::<f32>(),
        residual.as_ref().map(|r| r.storage::<f32>()),
        d,
        |ch, v, r| {
            let v = v * scale[ch] + shift[ch] + r;
            // `v < 0` rather than `max`, so that NaN stays NaN as in burn's ReLU
            if relu && v < 0.0 { 0.0 } else { v }
        },
    );
    y
}

/// The backward step of the fused operation in the autodiff graph.
#[derive(Debug)]
struct FusedBackward;

impl<B: BatchNormGradients> Backward<B, 3> for FusedBackward {
    /// The input and γ (checkpointed), the batch statistics and ε.
    type State = (NodeId, NodeId, FloatTensor<B>, FloatTensor<B>, f64);

    fn backward(
        self,
        ops: Ops<Self::State, 3>,
        grads: &mut Gradients,
        checkpointer: &mut Checkpointer,
    ) {
        let [node_x, node_gamma, node_beta] = ops.parents;
        let grad = grads.consume::<B>(&ops.node);
        let (x, gamma, mean, variance, epsilon) = ops.state;
        let x = checkpointer.retrieve_node_output::<FloatTensor<B>>(x);
        let gamma = checkpointer.retrieve_node_output::<FloatTensor<B>>(gamma);
        let (dx, dgamma, dbeta) =
            B::batch_norm_fused_backward(x, gamma, mean, variance, epsilon, grad);
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
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
        let mut kind = FusedBackward
            .prepare::<C>([x.node(), gamma.node(), beta.node()])
            .compute_bound()
            .stateful();
        // a tracked operation checkpoints its inputs before they are consumed
        let checkpoints = match &mut kind {
            OpsKind::Tracked(prep) => Some((prep.checkpoint(&x), prep.checkpoint(&gamma))),
            OpsKind::UnTracked(_) => None,
        };
        let (output, mean, variance) = B::batch_norm_fused(
            x.into_primitive(),
            gamma.into_primitive(),
            beta.into_primitive(),
            epsilon,
        );
        let output = match kind {
            OpsKind::Tracked(prep) => {
                let (x, gamma) = checkpoints.expect("taken above for a tracked operation");
                let state = (x, gamma, mean.clone(), variance.clone(), epsilon);
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
        relu: bool,
    ) -> FloatTensor<Self> {
        affine_composite::<Self>(x, scale, shift, None, relu)
    }

    fn batch_norm_add_relu(
        x: FloatTensor<Self>,
        scale: FloatTensor<Self>,
        shift: FloatTensor<Self>,
        residual: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        affine_composite::<Self>(x, scale, shift, Some(residual), true)
    }
}
