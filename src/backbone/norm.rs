//! BatchNorm as the backbones apply it: on the training path the fused kernel of
//! [`kernels`](super::kernels) where the device has it (burn's own layer elsewhere),
//! and at inference one scale and one shift per channel folded from the running statistics.

use burn::nn::BatchNorm;
use burn::prelude::*;

use super::kernels::{self, batch_norm as kernel};

/// `bn(x)`. Training (an autodiff device and a trainable layer) uses batch statistics and
/// updates the running ones as burn's layer does (`running = (1 − momentum) · running +
/// momentum · batch`, biased variance), through the fused kernel on `flex`. Inference
/// computes `x · s + t` with `s = γ / √(var + ε)` and `t = β − mean · s`: two passes over
/// the map instead of the four (subtract, divide, multiply, add) of burn's generic inference
/// path, the same values up to rounding (measured in `docs/PERFORMANCE.md`).
pub fn batch_norm(bn: &BatchNorm, x: Tensor<4>) -> Tensor<4> {
    let device = x.device();
    if device.is_autodiff() && bn.training.is_enabled() {
        if !kernels::available(&device) {
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
    let [c] = bn.gamma.shape().dims();
    let scale = bn.gamma.val() / (bn.running_var.value() + bn.epsilon).sqrt();
    let shift = bn.beta.val() - bn.running_mean.value() * scale.clone();
    x * scale.reshape([1, c, 1, 1]) + shift.reshape([1, c, 1, 1])
}
