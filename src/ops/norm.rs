//! BatchNorm as the backbones apply it, with the activation that follows it: on the training
//! path the fused kernel of [`ops`](super) where the device has it (burn's own layer
//! elsewhere), the ReLU or ReLU6 after it in the same pass; at inference one scale and one
//! shift per channel folded from the running statistics, with the residual addition and the
//! activation that follow it in the same pass on `flex`.

use burn::nn::BatchNorm;
use burn::prelude::*;
use burn::tensor::DType;
use burn::tensor::activation::relu;

use super::batch_norm::{self as kernel, RELU};

/// `bn(x)`. Training (an autodiff device and a trainable layer) uses batch statistics and
/// updates the running ones as burn's layer does (`running = (1 − momentum) · running +
/// momentum · batch`, biased variance), through the fused kernel on `flex`. Inference
/// computes `x · s + t` with `s = γ / √(var + ε)` and `t = β − mean · s`: one parallel pass
/// over the map on `flex`, two elsewhere, instead of the four (subtract, divide, multiply,
/// add) of burn's generic inference path; the same values up to rounding.
pub fn batch_norm(bn: &BatchNorm, x: Tensor<4>) -> Tensor<4> {
    normalise(bn, x, None, None)
}

/// `relu(bn(x) + residual)`, or `relu(bn(x))` without a residual: one fused pass on `flex`
/// (in training only without the residual).
pub fn batch_norm_relu(bn: &BatchNorm, x: Tensor<4>, residual: Option<Tensor<4>>) -> Tensor<4> {
    normalise(bn, x, residual, RELU)
}

/// `min(relu(bn(x)), 6)` (EfficientNet's ReLU6): one fused pass on `flex`.
pub fn batch_norm_relu6(bn: &BatchNorm, x: Tensor<4>) -> Tensor<4> {
    normalise(bn, x, None, Some(6.0))
}

/// `bn(x)` (+ `residual`), then ReLU capped at `cap` where given.
fn normalise(
    bn: &BatchNorm,
    x: Tensor<4>,
    residual: Option<Tensor<4>>,
    cap: Option<f32>,
) -> Tensor<4> {
    let device = x.device();
    if !(device.is_autodiff() && bn.training.is_enabled()) {
        return inference(bn, x, residual, cap);
    }
    if !super::available(&device) || x.dtype() != DType::F32 {
        return activate(added(bn.forward(x), residual), cap);
    }
    // the kernel fuses the activation only where nothing is added before it
    let fused_cap = if residual.is_none() { cap } else { None };
    let (output, mean, variance) =
        kernel::batch_norm_fused(x, bn.gamma.val(), bn.beta.val(), bn.epsilon, fused_cap);
    let update = |running: Tensor<1>, batch: Tensor<1>| {
        (running.mul_scalar(1.0 - bn.momentum) + batch.detach().mul_scalar(bn.momentum)).detach()
    };
    bn.running_mean.update(update(
        bn.running_mean.value_sync().to_device(&device),
        mean,
    ));
    bn.running_var.update(update(
        bn.running_var.value_sync().to_device(&device),
        variance,
    ));
    match residual {
        Some(r) => activate(output + r, cap),
        None => output,
    }
}

/// `y + residual`, or `y` without one.
fn added(y: Tensor<4>, residual: Option<Tensor<4>>) -> Tensor<4> {
    match residual {
        Some(r) => y + r,
        None => y,
    }
}

/// `y` through ReLU capped at `cap` (burn's operations), or unchanged without a cap.
fn activate(y: Tensor<4>, cap: Option<f32>) -> Tensor<4> {
    match cap {
        Some(c) if c.is_finite() => relu(y).clamp_max(c),
        Some(_) => relu(y),
        None => y,
    }
}

/// `x · s + t` (+ `residual`) (then the capped ReLU) with the running statistics folded into
/// `s` and `t`: through the kernel of [`ops`](super) on `flex` without autodiff, as burn
/// tensor operations elsewhere.
fn inference(
    bn: &BatchNorm,
    x: Tensor<4>,
    residual: Option<Tensor<4>>,
    cap: Option<f32>,
) -> Tensor<4> {
    let scale = bn.gamma.val() / (bn.running_var.value() + bn.epsilon).sqrt();
    let shift = bn.beta.val() - bn.running_mean.value() * scale.clone();
    let device = x.device();
    // the kernel adds a residual only before an uncapped ReLU
    let fusable = residual.is_none() || cap == RELU;
    if !device.is_autodiff() && super::available(&device) && fusable {
        return kernel::batch_norm_affine(x, scale, shift, residual, cap);
    }
    let [c] = bn.gamma.shape().dims();
    let y = x * scale.reshape([1, c, 1, 1]) + shift.reshape([1, c, 1, 1]);
    activate(added(y, residual), cap)
}
