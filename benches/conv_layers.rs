//! The convolution kernels of `dra::ops::conv` against burn's `flex` convolution, pass by
//! pass (forward, weight gradient, input gradient), on ResNet-18's layers and the
//! residual head's 1280-channel one at a 448² input; then EfficientNet-Lite0's depthwise
//! layers (`dra::ops::depthwise`) against burn's layer, forward and backward (both
//! gradients): seconds per pass for a batch, the best of 3 runs each. `benches/conv_layers.py`
//! times the same convolution layers in PyTorch.
//!
//! ```sh
//! cargo bench --bench conv_layers              # batch 16
//! cargo bench --bench conv_layers -- depthwise # the depthwise layers alone
//! cargo bench --bench conv_layers -- batchnorm # BatchNorm's passes against a copy
//! DRA_BENCH_IMG=224 DRA_BENCH_BATCH=48 cargo bench --bench conv_layers
//! DRA_BENCH_IMG=224 DRA_BENCH_BATCH=48 python3 benches/conv_layers.py
//! ```

#[path = "support/mod.rs"]
mod support;

use std::time::Instant;

use burn::backend::Flex;
use burn::backend::flex::FlexTensor;
use burn::backend::ops::{ConvOptions, ModuleOps};
use burn::nn::PaddingConfig2d;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::prelude::*;
use burn::tensor::TensorData;
use dra::ops::batch_norm::{BatchNormGradients, BatchNormKernel};
use dra::ops::conv::{ConvGradients, ConvKernel};
use dra::ops::depthwise::DepthwiseGradients;
use support::{env_usize, print_machine};

/// A tensor of `shape` with values spread over [−1, 1).
fn filled(shape: [usize; 4]) -> FlexTensor {
    let n: usize = shape.iter().product();
    let values = (0..n)
        .map(|i| (i * 7919 % 1000) as f32 / 500.0 - 1.0)
        .collect();
    FlexTensor::from_data(TensorData::new(values, shape.to_vec()))
}

/// The shortest of three runs of `f`, in seconds.
fn best<T>(mut f: impl FnMut() -> T) -> f64 {
    shortest(|| {
        let t = Instant::now();
        drop(f());
        t.elapsed().as_secs_f64()
    })
}

/// The smallest of three timings that `f` takes and returns.
fn shortest(mut f: impl FnMut() -> f64) -> f64 {
    (0..3).map(|_| f()).fold(f64::INFINITY, f64::min)
}

fn main() {
    dra::device::reuse_freed_memory();
    let n = env_usize("DRA_BENCH_BATCH", 16);
    let img = env_usize("DRA_BENCH_IMG", 448);
    print_machine(None);
    println!("batch {n}, {img}² input, seconds per pass (burn flex / this crate's kernel)");
    if std::env::args().any(|a| a == "depthwise") {
        return depthwise_layers(n, img);
    }
    if std::env::args().any(|a| a == "batchnorm") {
        return batch_norm_passes(n, img);
    }
    println!();
    println!(
        "| layer (channels in → out, map, kernel, stride) | forward | weight gradient | input gradient |"
    );
    println!("|---|---|---|---|");
    // ResNet-18's stem, EfficientNet-Lite0's ("same" at stride 2: the odd pixel after), a 3×3
    // layer of each stage and a downsampling shortcut, then the residual head's 3×3 layer on
    // EfficientNet-Lite0's 1280 channels: (channels in, out, map, kernel, stride, padding
    // before, after)
    for (ci, co, size, k, stride, before, after) in [
        (3, 64, img, 7, 2, 3, 3),
        (3, 32, img, 3, 2, 0, 1),
        (64, 64, img / 4, 3, 1, 1, 1),
        (64, 128, img / 4, 3, 2, 1, 1),
        (64, 128, img / 4, 1, 2, 0, 0),
        (128, 128, img / 8, 3, 1, 1, 1),
        (256, 256, img / 16, 3, 1, 1, 1),
        (512, 512, img / 32, 3, 1, 1, 1),
        (1280, 1280, img / 32, 3, 1, 1, 1),
    ] {
        let out = size / stride;
        let (x, w, g) = (
            filled([n, ci, size, size]),
            filled([co, ci, k, k]),
            filled([n, co, out, out]),
        );
        let (s, d) = ([stride, stride], [1, 1]);
        let geometry = (s, [before; 2], [after; 2], d);
        let opts = || ConvOptions::new_with_padding(s, [(before, after); 2], d, 1);
        let pair = |burn: f64, ours: f64| format!("{burn:.3} / {ours:.3} ({:.2}×)", burn / ours);
        let forward = pair(
            best(|| Flex::conv2d(x.clone(), w.clone(), None, opts())),
            best(|| Flex::conv2d_gemm(x.clone(), w.clone(), geometry)),
        );
        let weight = pair(
            best(|| Flex::conv2d_weight_backward(x.clone(), w.clone(), g.clone(), opts())),
            best(|| Flex::conv2d_gemm_weight_grad(x.clone(), w.clone(), g.clone(), geometry)),
        );
        let input = pair(
            best(|| Flex::conv2d_x_backward(x.clone(), w.clone(), g.clone(), opts())),
            best(|| Flex::conv2d_gemm_input_grad(x.clone(), w.clone(), g.clone(), geometry)),
        );
        let same = if before == after { "" } else { ", same" };
        println!(
            "| {ci} → {co}, {size}², {k}×{k}, {stride}{same} | {forward} | {weight} | {input} |"
        );
    }
    depthwise_layers(n, img);
}

/// EfficientNet-Lite0's depthwise layers ("same" padding) through burn's layer and through
/// `dra::ops::conv::conv2d` (which sends them to `dra::ops::depthwise`): the forward pass
/// without autodiff, the backward pass of `Σ y · g` on the autodiff device, and this crate's
/// two gradients apart.
fn depthwise_layers(n: usize, img: usize) {
    println!();
    println!(
        "| depthwise layer (channels, map, kernel, stride) | forward | backward (both gradients) | input / weight gradient |"
    );
    println!("|---|---|---|---|");
    let pair = |burn: f64, ours: f64| format!("{burn:.3} / {ours:.3} ({:.2}×)", burn / ours);
    for (c, size, k, stride) in [
        (32, img / 2, 3, 1),
        (96, img / 2, 3, 2),
        (144, img / 4, 3, 1),
        (144, img / 4, 5, 2),
        (240, img / 8, 5, 1),
        (240, img / 8, 3, 2),
        (480, img / 16, 3, 1),
        (672, img / 16, 5, 1),
        (672, img / 16, 5, 2),
        (1152, img / 32, 5, 1),
    ] {
        let layer = |device: &Device| -> Conv2d {
            Conv2dConfig::new([c, c], [k, k])
                .with_groups(c)
                .with_stride([stride, stride])
                .with_padding(PaddingConfig2d::Same)
                .with_bias(false)
                .init(device)
        };
        let tensor = |shape: [usize; 4], device: &Device| {
            Tensor::<4>::from_data(filled(shape).into_data(), device)
        };
        let plain = Device::flex();
        let conv = layer(&plain);
        let x = tensor([n, c, size, size], &plain);
        let forward = pair(
            best(|| conv.forward(x.clone())),
            best(|| dra::ops::conv::conv2d(&conv, x.clone())),
        );
        let ad = plain.clone().autodiff();
        let conv = layer(&ad);
        let out = size.div_ceil(stride);
        let (x, g) = (
            tensor([n, c, size, size], &ad),
            tensor([n, c, out, out], &ad),
        );
        let backward = |apply: &dyn Fn(Tensor<4>) -> Tensor<4>| {
            shortest(|| {
                let x = x.clone().require_grad();
                let loss = (apply(x) * g.clone()).sum();
                let t = Instant::now();
                drop(loss.backward());
                t.elapsed().as_secs_f64()
            })
        };
        let backward = pair(
            backward(&|x| conv.forward(x)),
            backward(&|x| dra::ops::conv::conv2d(&conv, x)),
        );
        // this crate's two gradients alone, on the plain device, with "same" padding (what
        // the windows need beyond the input, the smaller half before)
        let total = ((out - 1) * stride + k).saturating_sub(size);
        let geometry = ([stride; 2], [total / 2; 2], [total - total / 2; 2], [1, 1]);
        let (x, w, g) = (
            filled([n, c, size, size]),
            filled([c, 1, k, k]),
            filled([n, c, out, out]),
        );
        let gradient = |wanted| {
            best(|| Flex::depthwise_conv2d_grads(x.clone(), w.clone(), g.clone(), geometry, wanted))
        };
        let (input, weight) = (gradient([true, false]), gradient([false, true]));
        println!(
            "| {c}, {size}², {k}×{k}, {stride} | {forward} | {backward} | {input:.3} / {weight:.3} |"
        );
    }
}

/// The fused BatchNorm + ReLU6 on batch statistics (`dra::ops::batch_norm`), forward and
/// backward, on EfficientNet-Lite0's widest maps, beside a plain copy of the same map: the
/// forward pass moves the map 3 times (two reads, one write), the backward 5 times, so the
/// effective GB/s against the copy's says how far from memory-bound each pass is.
fn batch_norm_passes(n: usize, img: usize) {
    println!();
    println!("| map (channels, size) | copy s (GB/s) | forward s (GB/s) | backward s (GB/s) |");
    println!("|---|---|---|---|");
    for (c, size) in [
        (96, img / 2),
        (144, img / 4),
        (240, img / 8),
        (480, img / 16),
        (1152, img / 32),
    ] {
        let x = filled([n, c, size, size]);
        let g = filled([n, c, size, size]);
        let (gamma, beta) = (
            FlexTensor::from_data(TensorData::new(vec![1.5f32; c], [c])),
            FlexTensor::from_data(TensorData::new(vec![0.5f32; c], [c])),
        );
        let gb = (n * c * size * size * 4) as f64 / 1e9;
        let rate = |s: f64, moves: f64| format!("{s:.4} ({:.1})", moves * gb / s);
        let copy = best(|| x.storage::<f32>().to_vec());
        let cap = Some(6.0);
        let forward =
            best(|| Flex::batch_norm_fused(x.clone(), gamma.clone(), beta.clone(), 1e-3, cap));
        let (_, mean, var) =
            Flex::batch_norm_fused(x.clone(), gamma.clone(), beta.clone(), 1e-3, cap);
        let backward = shortest(|| {
            let g = g.storage::<f32>().to_vec();
            let g = FlexTensor::from_data(TensorData::new(g, [n, c, size, size]));
            let t = Instant::now();
            let r = Flex::batch_norm_fused_backward(
                x.clone(),
                gamma.clone(),
                beta.clone(),
                mean.clone(),
                var.clone(),
                1e-3,
                cap,
                g,
            );
            let s = t.elapsed().as_secs_f64();
            drop(r);
            s
        });
        println!(
            "| {c}, {size}² | {} | {} | {} |",
            rate(copy, 2.0),
            rate(forward, 3.0),
            rate(backward, 5.0)
        );
    }
}
