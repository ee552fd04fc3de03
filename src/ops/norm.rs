//! BatchNorm as the backbones apply it: on the training path the fused kernel of
//! [`ops`](super) where the device has it (burn's own layer elsewhere),
//! and at inference one scale and one shift per channel folded from the running statistics,
//! with the residual addition and ReLU that follow it in the same pass on `flex`.

use burn::nn::BatchNorm;
use burn::prelude::*;
use burn::tensor::activation::relu;

use super::batch_norm as kernel;

/// `bn(x)`. Training (an autodiff device and a trainable layer) uses batch statistics and
/// updates the running ones as burn's layer does (`running = (1 − momentum) · running +
/// momentum · batch`, biased variance), through the fused kernel on `flex`. Inference
/// computes `x · s + t` with `s = γ / √(var + ε)` and `t = β − mean · s`: one parallel pass
/// over the map on `flex`, two elsewhere, instead of the four (subtract, divide, multiply,
/// add) of burn's generic inference path; the same values up to rounding.
pub fn batch_norm(bn: &BatchNorm, x: Tensor<4>) -> Tensor<4> {
    let device = x.device();
    if device.is_autodiff() && bn.training.is_enabled() {
        if !super::available(&device) {
            return bn.forward(x);
        }
        let (output, mean, variance) =
            kernel::batch_norm_fused(x, bn.gamma.val(), bn.beta.val(), bn.epsilon);
        let update = |running: Tensor<1>, batch: Tensor<1>| {
            (running.mul_scalar(1.0 - bn.momentum) + batch.detach().mul_scalar(bn.momentum))
                .detach()
        };
        bn.running_mean.update(update(
            bn.running_mean.value_sync().to_device(&device),
            mean,
        ));
        bn.running_var.update(update(
            bn.running_var.value_sync().to_device(&device),
            variance,
        ));
        return output;
    }
    inference(bn, x, None, false)
}

/// `relu(bn(x) + residual)`, or `relu(bn(x))` without a residual: at inference on `flex`
/// one fused pass over the map.
pub fn batch_norm_relu(bn: &BatchNorm, x: Tensor<4>, residual: Option<Tensor<4>>) -> Tensor<4> {
    if x.device().is_autodiff() && bn.training.is_enabled() {
        let y = batch_norm(bn, x);
        return relu(match residual {
            Some(r) => y + r,
            None => y,
        });
    }
    inference(bn, x, residual, true)
}

/// `x · s + t` (+ `residual`) (then ReLU) with the running statistics folded into `s` and
/// `t`: through the kernel of [`ops`](super) on `flex` without autodiff, as
/// burn tensor operations elsewhere.
fn inference(
    bn: &BatchNorm,
    x: Tensor<4>,
    residual: Option<Tensor<4>>,
    with_relu: bool,
) -> Tensor<4> {
    let scale = bn.gamma.val() / (bn.running_var.value() + bn.epsilon).sqrt();
    let shift = bn.beta.val() - bn.running_mean.value() * scale.clone();
    let device = x.device();
    if !device.is_autodiff() && super::available(&device) {
        return kernel::batch_norm_affine(x, scale, shift, residual, with_relu);
    }
    let [c] = bn.gamma.shape().dims();
    let y = x * scale.reshape([1, c, 1, 1]) + shift.reshape([1, c, 1, 1]);
    let y = match residual {
        Some(r) => y + r,
        None => y,
    };
    if with_relu { relu(y) } else { y }
}
