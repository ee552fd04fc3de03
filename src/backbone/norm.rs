//! BatchNorm as the backbones apply it: burn's own layer on the training path, and at
//! inference one scale and one shift per channel folded from the running statistics.

use burn::nn::BatchNorm;
use burn::prelude::*;

/// `bn(x)`. Training (an autodiff device and a trainable layer) uses batch statistics
/// through burn's fused operation. Inference computes `x · s + t` with
/// `s = γ / √(var + ε)` and `t = β − mean · s`: two passes over the map instead of the four
/// (subtract, divide, multiply, add) of burn's generic inference path, the same values up
/// to rounding (measured in `docs/PERFORMANCE.md`).
pub fn batch_norm(bn: &BatchNorm, x: Tensor<4>) -> Tensor<4> {
    if x.device().is_autodiff() && bn.training.is_enabled() {
        return bn.forward(x);
    }
    let [c] = bn.gamma.shape().dims();
    let scale = bn.gamma.val() / (bn.running_var.value() + bn.epsilon).sqrt();
    let shift = bn.beta.val() - bn.running_mean.value() * scale.clone();
    x * scale.reshape([1, c, 1, 1]) + shift.reshape([1, c, 1, 1])
}
