//! The CPU kernels against burn's own layers: BatchNorm (inference formula, fused training
//! kernel with its gradients and running statistics), convolution (training and inference)
//! and max pooling (inference and training), over the geometries the backbones and heads use;
//! then all of them again on an emulated AVX2 CPU and one without AVX2.

#[path = "common/emulated.rs"]
mod emulated;
#[path = "common/fixtures.rs"]
mod fixtures;

use burn::prelude::*;
use burn::tensor::TensorData;
use fixtures::{relative_l2, values};

#[test]
fn eval_batchnorm_is_the_running_statistics_formula() {
    // y = (x − mean) / √(var + ε) · γ + β per channel, checked against the formula
    let device = Device::flex();
    let mut bn = burn::nn::BatchNormConfig::new(3).init(&device);
    bn.running_mean =
        burn::module::RunningState::new(Tensor::from_data([0.5f32, -1.0, 2.0], &device));
    bn.running_var =
        burn::module::RunningState::new(Tensor::from_data([4.0f32, 0.25, 1.0], &device));
    bn.gamma = burn::module::Param::from_tensor(Tensor::from_data([2.0f32, 1.0, -1.0], &device));
    bn.beta = burn::module::Param::from_tensor(Tensor::from_data([0.0f32, 1.0, 0.5], &device));
    // two images, so that the channel of each plane matters
    let x = Tensor::<4>::from_data(
        TensorData::new(vec![2.5f32, -0.5, 3.0, 2.5, -0.5, 3.0], [2, 3, 1, 1]),
        &device,
    );
    let one = [
        (2.5 - 0.5) / (4.0f32 + 1e-5).sqrt() * 2.0,
        (-0.5 + 1.0) / (0.25f32 + 1e-5).sqrt() + 1.0,
        -(3.0 - 2.0) / (1.0f32 + 1e-5).sqrt() + 0.5,
    ];
    let expected = [one, one].concat();
    let close = |y: Vec<f32>, expected: &[f32]| {
        assert_eq!(y.len(), expected.len());
        for (a, b) in y.iter().zip(expected) {
            assert!((a - b).abs() < 1e-6, "{y:?} vs {expected:?}");
        }
    };
    // burn's layer and the backbones' folded scale-and-shift (the kernel's single pass on
    // flex) give the same values
    close(values(bn.forward(x.clone())), &expected);
    close(
        values(dra::ops::norm::batch_norm(&bn, x.clone())),
        &expected,
    );
    // fused with ReLU, and with a residual added before the ReLU (one sum per sign)
    let relu = |v: f32| v.max(0.0);
    let relu_only: Vec<f32> = expected.iter().map(|&v| relu(v)).collect();
    let y = dra::ops::norm::batch_norm_relu(&bn, x.clone(), None);
    close(values(y), &relu_only);
    let r = [0.5f32, -3.0, 1.0, -2.0, 0.5, 0.25];
    let with_residual: Vec<f32> = expected.iter().zip(r).map(|(&v, r)| relu(v + r)).collect();
    let residual = Tensor::<4>::from_data(TensorData::new(r.to_vec(), [2, 3, 1, 1]), &device);
    let y = dra::ops::norm::batch_norm_relu(&bn, x.clone(), Some(residual));
    close(values(y), &with_residual);
    // ReLU6 (EfficientNet), on 4·x so that channel 0 passes the cap: 9.5 → 6, −1 → 0, −9.5 → 0
    let y = dra::ops::norm::batch_norm_relu6(&bn, x.clone().mul_scalar(4.0));
    let four = [(10.0 - 0.5) / (4.0f32 + 1e-5).sqrt() * 2.0, 0.0, 0.0].map(|v| v.min(6.0));
    close(values(y), &[four, four].concat());
    let y = dra::ops::norm::batch_norm_relu6(&bn, x);
    close(values(y), &relu_only);
}

#[test]
fn training_batchnorm_kernel_matches_burns_layer() {
    // the fused kernel against burn's BatchNorm, alone and with the activations fused into it
    // (ReLU, ReLU6, a residual added before a ReLU) against burn's operations after the layer:
    // output, gradients of x, γ and β, and the running statistics; one channel sits far from
    // zero (mean 50, spread 1), where a naive E[x²] − E[x]² would cancel, and channel 0
    // (γ 4) passes ReLU6's cap
    let device = Device::flex().autodiff();
    device.seed(7);
    let offset = Tensor::<4>::from_data(
        TensorData::new(vec![0f32, 50.0, -3.0], [1, 3, 1, 1]),
        &device,
    );
    let x = Tensor::<4>::random(
        [4, 3, 5, 7],
        burn::tensor::Distribution::Normal(0.0, 1.0),
        &device,
    ) + offset;
    let w = Tensor::<4>::random(
        [4, 3, 5, 7],
        burn::tensor::Distribution::Normal(0.0, 1.0),
        &device,
    );
    // a fresh layer per run: clones share their running statistics
    let layer = || burn::nn::BatchNorm {
        gamma: burn::module::Param::from_tensor(Tensor::from_data([4.0f32, 0.5, -1.0], &device)),
        beta: burn::module::Param::from_tensor(Tensor::from_data([0.1f32, 1.0, -0.5], &device)),
        ..burn::nn::BatchNormConfig::new(3)
            .with_momentum(0.3)
            .init(&device)
    };
    let run = |apply: &dyn Fn(&burn::nn::BatchNorm, Tensor<4>) -> Tensor<4>| {
        let bn = layer();
        let x = x.clone().detach().require_grad();
        let y = apply(&bn, x.clone());
        let grads = (y.clone() * w.clone()).sum().backward();
        [
            values(y),
            values(x.grad(&grads).unwrap()),
            values(bn.gamma.grad(&grads).unwrap()),
            values(bn.beta.grad(&grads).unwrap()),
            values(bn.running_mean.value_sync()),
            values(bn.running_var.value_sync()),
        ]
    };
    use burn::tensor::activation::relu;
    use dra::ops::norm::{batch_norm, batch_norm_relu, batch_norm_relu6};
    let r = Tensor::<4>::random(
        [4, 3, 5, 7],
        burn::tensor::Distribution::Normal(0.0, 1.0),
        &device,
    );
    type Apply<'a> = Box<dyn Fn(&burn::nn::BatchNorm, Tensor<4>) -> Tensor<4> + 'a>;
    let cases: [(&str, Apply, Apply); 4] = [
        (
            "none",
            Box::new(|bn, x| bn.forward(x)),
            Box::new(batch_norm),
        ),
        (
            "ReLU",
            Box::new(|bn, x| relu(bn.forward(x))),
            Box::new(|bn, x| batch_norm_relu(bn, x, None)),
        ),
        (
            "ReLU6",
            Box::new(|bn, x| relu(bn.forward(x)).clamp_max(6.0)),
            Box::new(batch_norm_relu6),
        ),
        (
            "residual + ReLU",
            Box::new(|bn, x| relu(bn.forward(x) + r.clone())),
            Box::new(|bn, x| batch_norm_relu(bn, x, Some(r.clone()))),
        ),
    ];
    let names = [
        "output",
        "x grad",
        "γ grad",
        "β grad",
        "running mean",
        "running var",
    ];
    for (case, reference, fused) in &cases {
        let burn_layer = run(reference.as_ref());
        let kernel = run(fused.as_ref());
        for ((name, a), b) in names.iter().zip(&burn_layer).zip(&kernel) {
            let err = relative_l2(b, a);
            assert!(err < 1e-5, "{case}: {name}: relative L2 {err}");
        }
        // the running mean moved by momentum · batch mean from its initial 0
        assert!((kernel[4][1] - 0.3 * 50.0).abs() < 0.3, "{:?}", kernel[4]);
        if *case == "ReLU6" {
            let capped = kernel[0].iter().filter(|&&v| v == 6.0).count();
            let zeros = kernel[0].iter().filter(|&&v| v == 0.0).count();
            assert!(
                capped > 5 && zeros > 50,
                "{capped} at the cap, {zeros} at 0"
            );
        }
    }
}

#[test]
fn convolution_kernel_matches_burns_layer() {
    // output and gradients of x, weight and bias through the kernels against burn's layer,
    // over the geometries the backbones and heads use (and dilation); the 40 × 41 map spans
    // four tiles of the forward pass, the last one shorter; batches of 2 and 5 images (the
    // weight gradient's groups: 2 of one image, then 4 of one or two)
    use burn::nn::PaddingConfig2d::{Explicit, Same, Valid};
    let device = Device::flex().autodiff();
    device.seed(3);
    #[rustfmt::skip] // one case a line: channels, kernel, stride, dilation, padding, size, batch, groups
    let cases = [
        ([3, 8], [3, 3], [1, 1], [1, 1], Explicit(1, 1, 1, 1), 9, 2, 1),
        ([3, 8], [3, 3], [1, 1], [1, 1], Explicit(1, 1, 1, 1), 40, 2, 1),
        ([3, 8], [3, 3], [1, 1], [1, 1], Explicit(1, 1, 1, 1), 9, 5, 1),
        // maps of fewer than 256 pixels: several whole images a tile, four tiles of one or
        // two images (forward pass and input gradient, more than 64 output channels), tiles
        // of two images (the weight gradient's groups)
        ([3, 72], [3, 3], [1, 1], [1, 1], Explicit(1, 1, 1, 1), 9, 7, 1),
        ([16, 72], [1, 1], [1, 1], [1, 1], Valid, 10, 13, 1),
        ([3, 8], [3, 3], [1, 1], [1, 1], Explicit(1, 1, 1, 1), 9, 7, 1),
        ([6, 4], [3, 3], [1, 1], [1, 1], Explicit(1, 1, 1, 1), 1, 3, 1),
        ([6, 4], [3, 3], [1, 1], [1, 1], Explicit(1, 1, 1, 1), 2, 3, 1),
        ([4, 6], [3, 3], [2, 2], [1, 1], Explicit(1, 1, 1, 1), 9, 2, 1),
        ([4, 6], [1, 1], [2, 2], [1, 1], Valid, 10, 5, 1),
        ([3, 5], [7, 7], [2, 2], [1, 1], Explicit(3, 3, 3, 3), 12, 2, 1),
        ([5, 7], [1, 1], [1, 1], [1, 1], Same, 6, 2, 1),
        // asymmetric padding through the im2col kernel: "same" at stride 2 (EfficientNet's
        // stem; odd map: one pixel each side, even map: the odd pixel after only), explicit at
        // stride 1 (the input gradient as a forward pass padded by what the windows reach
        // beyond each side), Winograd's geometry but for the padding, and more padding than a
        // window reaches (the input gradient through burn's)
        ([3, 8], [3, 3], [2, 2], [1, 1], Same, 9, 2, 1),
        ([3, 8], [3, 3], [2, 2], [1, 1], Same, 12, 2, 1),
        ([3, 5], [3, 3], [1, 1], [1, 1], Explicit(2, 1, 0, 1), 7, 2, 1),
        ([16, 24], [3, 3], [1, 1], [1, 1], Explicit(1, 0, 1, 2), 9, 2, 1),
        ([3, 4], [3, 3], [1, 1], [1, 1], Explicit(0, 3, 1, 0), 6, 2, 1),
        // 3×3 at stride 1 between layers of 16 channels or more (Winograd's filterings,
        // `src/ops/winograd.rs`: F(4×4, 3×3) on maps from 7 × 7, F(2×2, 3×3) below; the
        // weight gradient in groups of images from 32 blocks of 2×2 an image, by F(4×4) from
        // 28 × 28, and below that over the whole batch at once by output channels, by F(4×4)
        // on 7 × 8 and 9 × 10, by F(2×2) on 5 × 6 and 1 × 2): odd sizes (the last blocks partly
        // outside), several images a job (more than 64 output channels), several jobs an image
        // (26 × 27 for F(2×2)'s weight gradient, 66 × 67 for F(4×4)'s passes), padding 0
        // (whose input gradient pads by 2), 2 and "same", a 5 × 6 and a 1 × 2 map; 40 → 18
        // channels (the whole batch's windows in tasks of 32 input channels and 8, its output
        // channels in jobs of 5, 5, 5 and 3)
        ([16, 24], [3, 3], [1, 1], [1, 1], Explicit(1, 1, 1, 1), 9, 2, 1),
        ([16, 24], [3, 3], [1, 1], [1, 1], Explicit(1, 1, 1, 1), 5, 2, 1),
        ([16, 72], [3, 3], [1, 1], [1, 1], Explicit(1, 1, 1, 1), 7, 7, 1),
        ([16, 72], [3, 3], [1, 1], [1, 1], Explicit(1, 1, 1, 1), 14, 5, 1),
        ([24, 16], [3, 3], [1, 1], [1, 1], Same, 40, 2, 1),
        ([24, 16], [3, 3], [1, 1], [1, 1], Same, 26, 2, 1),
        ([16, 24], [3, 3], [1, 1], [1, 1], Same, 66, 2, 1),
        ([16, 20], [3, 3], [1, 1], [1, 1], Valid, 16, 3, 1),
        ([20, 16], [3, 3], [1, 1], [1, 1], Explicit(2, 2, 2, 2), 12, 2, 1),
        ([16, 80], [3, 3], [1, 1], [1, 1], Explicit(1, 1, 1, 1), 1, 3, 1),
        ([40, 18], [3, 3], [1, 1], [1, 1], Explicit(1, 1, 1, 1), 7, 3, 1),
        // 1×1 at stride 1 as the heads and EfficientNet's pointwise layers use them: one
        // output channel, 1×1 to 32 × 33 maps (three tiles), batches of 12 and 13
        ([320, 1], [1, 1], [1, 1], [1, 1], Valid, 2, 12, 1),
        ([320, 1], [1, 1], [1, 1], [1, 1], Valid, 1, 12, 1),
        ([256, 64], [1, 1], [1, 1], [1, 1], Valid, 2, 13, 1),
        ([96, 24], [1, 1], [1, 1], [1, 1], Valid, 32, 12, 1),
        ([3, 4], [3, 3], [1, 1], [1, 1], Same, 7, 5, 1),
        ([3, 4], [3, 3], [1, 1], [2, 2], Explicit(2, 2, 2, 2), 8, 2, 1),
        // depthwise (one filter per channel: `src/ops/depthwise.rs`), "same" padding
        // asymmetric at stride 2, odd and even maps, explicit asymmetric padding, dilation;
        // rows of 9 and 20 at stride 1 (the weight gradient's lanes of 16 partial sums, and a
        // tail), and a 40 × 41 map whose forward pass spans two blocks of 1024 outputs
        ([6, 6], [3, 3], [1, 1], [1, 1], Same, 9, 2, 6),
        ([3, 3], [3, 3], [1, 1], [1, 1], Same, 20, 2, 3),
        ([3, 3], [3, 3], [1, 1], [1, 1], Same, 40, 2, 3),
        ([6, 6], [3, 3], [2, 2], [1, 1], Same, 9, 3, 6),
        ([6, 6], [3, 3], [2, 2], [1, 1], Same, 10, 2, 6),
        ([6, 6], [5, 5], [2, 2], [1, 1], Same, 12, 2, 6),
        ([6, 6], [5, 5], [1, 1], [1, 1], Same, 7, 5, 6),
        ([4, 4], [3, 3], [1, 1], [2, 2], Explicit(2, 2, 2, 2), 8, 2, 4),
        ([4, 4], [3, 3], [2, 2], [1, 1], Explicit(0, 1, 2, 1), 9, 2, 4),
        ([4, 4], [3, 3], [1, 1], [1, 1], Explicit(1, 0, 1, 2), 7, 2, 4),
        ([4, 4], [3, 3], [1, 1], [1, 1], Same, 1, 3, 4),
        ([4, 4], [5, 5], [2, 2], [1, 1], Same, 2, 2, 4),
        // stride 3: the phases' generic strided copy (EfficientNet's is 2)
        ([4, 4], [3, 3], [3, 3], [1, 1], Explicit(1, 1, 1, 1), 11, 2, 4),
        // stride 2 without padding on an even map: the last row and column reach no window
        ([4, 4], [3, 3], [2, 2], [1, 1], Valid, 10, 2, 4),
        // grouped but not depthwise: burn's layer on both sides
        ([4, 8], [3, 3], [1, 1], [1, 1], Same, 6, 2, 4),
    ];
    for (channels, kernel, stride, dilation, padding, size, batch, groups) in cases {
        let case = format!(
            "{channels:?} {kernel:?} s{stride:?} d{dilation:?} {padding:?} n{batch} g{groups}"
        );
        let conv = burn::nn::conv::Conv2dConfig::new(channels, kernel)
            .with_groups(groups)
            .with_stride(stride)
            .with_dilation(dilation)
            .with_padding(padding)
            .init(&device);
        let x = Tensor::<4>::random(
            [batch, channels[0], size, size + 1],
            burn::tensor::Distribution::Normal(0.0, 1.0),
            &device,
        );
        let run = |apply: &dyn Fn(&burn::nn::conv::Conv2d, Tensor<4>) -> Tensor<4>| {
            let conv = conv.clone();
            let x = x.clone().detach().require_grad();
            let y = apply(&conv, x.clone());
            // a weight that differs between every output value, so that a gradient mixed up
            // between channels, images or positions shows (in (0, 2), so that the bias
            // gradient's sums do not cancel)
            let count = y.shape().num_elements();
            let w = Tensor::<1, Int>::arange(0..count as i64, &device)
                .float()
                .mul_scalar(0.731)
                .sin()
                .add_scalar(1.0)
                .reshape(y.shape());
            let grads = (y.clone() * w).sum().backward();
            [
                values(y),
                values(x.grad(&grads).unwrap()),
                values(conv.weight.grad(&grads).unwrap()),
                values(conv.bias.as_ref().unwrap().grad(&grads).unwrap()),
            ]
        };
        let burn_layer = run(&|conv, x| conv.forward(x));
        let kernel = run(&|conv, x| dra::ops::conv::conv2d(conv, x));
        for ((name, a), b) in ["output", "x grad", "weight grad", "bias grad"]
            .iter()
            .zip(&burn_layer)
            .zip(&kernel)
        {
            assert_eq!(a.len(), b.len(), "{case}: {name}");
            let err = relative_l2(b, a);
            assert!(err < 1e-5, "{case}: {name} relative L2 {err}");
        }
    }
}

#[test]
fn an_images_convolution_does_not_depend_on_the_batch_around_it() {
    // small maps put several images in one product: each image's output must still be the
    // bits it has when convolved alone (`dra eval` and `dra predict` score the same image in
    // batches of different sizes)
    let device = Device::flex();
    device.seed(5);
    for (channels, kernel, padding, size) in [
        ([64, 72], 3, 1, 7),
        ([600, 96], 1, 0, 5),
        ([64, 8], 3, 1, 7),
        ([600, 1], 1, 0, 5),
        ([64, 72], 3, 1, 2),
        ([600, 72], 1, 0, 1),
    ] {
        let conv = burn::nn::conv::Conv2dConfig::new(channels, [kernel, kernel])
            .with_padding(burn::nn::PaddingConfig2d::Explicit(
                padding, padding, padding, padding,
            ))
            .init(&device);
        let x = Tensor::<4>::random(
            [12, channels[0], size, size + 1],
            burn::tensor::Distribution::Normal(0.0, 1.0),
            &device,
        );
        let batch = dra::ops::conv::conv2d(&conv, x.clone());
        for i in [0, 5, 11] {
            let alone = dra::ops::conv::conv2d(&conv, x.clone().narrow(0, i, 1));
            assert_eq!(
                values(batch.clone().narrow(0, i, 1)),
                values(alone),
                "{channels:?} {kernel}×{kernel} on {size}², image {i}"
            );
        }
    }
}

#[test]
fn inference_convolution_kernel_matches_burns_layer() {
    // without autodiff, one image: a single tile (one job, the product itself in parallel)
    // and a map of several tiles
    let device = Device::flex();
    device.seed(4);
    for (size, kernel, stride) in [(12, 3, 1), (50, 3, 1), (50, 1, 1), (50, 7, 2)] {
        let conv = burn::nn::conv::Conv2dConfig::new([4, 5], [kernel, kernel])
            .with_stride([stride, stride])
            .with_padding(burn::nn::PaddingConfig2d::Explicit(
                kernel / 2,
                kernel / 2,
                kernel / 2,
                kernel / 2,
            ))
            .init(&device);
        let x = Tensor::<4>::random(
            [1, 4, size, size + 3],
            burn::tensor::Distribution::Normal(0.0, 1.0),
            &device,
        );
        let expected = values(conv.forward(x.clone()));
        let got = values(dra::ops::conv::conv2d(&conv, x));
        assert_eq!(got.len(), expected.len());
        let err = relative_l2(&got, &expected);
        assert!(
            err < 1e-5,
            "{size} {kernel}×{kernel} s{stride}: relative L2 {err}"
        );
    }
}

/// The pooling windows the backbones use and others: ResNet's 3×3 / 2 with padding 1 on odd
/// and even sizes (the second case's `h` = `size`), 2×2 / 2, and a non-square window and
/// stride.
fn pool_cases(size: usize) -> [(burn::nn::pool::MaxPool2d, String, [usize; 2]); 4] {
    use burn::nn::PaddingConfig2d::{Explicit, Valid};
    [
        ([3, 3], [2, 2], Explicit(1, 1, 1, 1), [11, 12]),
        ([3, 3], [2, 2], Explicit(1, 1, 1, 1), [size, size + 1]),
        ([2, 2], [2, 2], Valid, [9, 10]),
        ([3, 2], [1, 2], Explicit(1, 0, 1, 0), [7, 8]),
    ]
    .map(|(kernel, stride, padding, map)| {
        let case = format!("{kernel:?} {stride:?} {padding:?}");
        let pool = burn::nn::pool::MaxPool2dConfig::new(kernel)
            .with_strides(stride)
            .with_padding(padding)
            .init();
        (pool, case, map)
    })
}

#[test]
fn inference_max_pool_kernel_matches_burns_layer() {
    // all values negative somewhere, so a zero in place of the −∞ padding would show
    let device = Device::flex();
    device.seed(5);
    for (pool, case, [h, w]) in pool_cases(112) {
        let x = Tensor::<4>::random(
            [2, 3, h, w],
            burn::tensor::Distribution::Normal(-1.0, 1.0),
            &device,
        );
        let expected = pool.forward(x.clone());
        let got = dra::ops::pool::max_pool2d(&pool, x);
        assert_eq!(got.dims(), expected.dims(), "{case}");
        assert_eq!(values(got), values(expected), "{case}");
    }
}

#[test]
fn training_max_pool_kernel_matches_burns_layer() {
    // output and input gradient against burn's layer (which keeps the indices), on maps of
    // five values only, so that most windows hold their maximum twice or more: the gradient
    // must go to the first in row-major order, as burn's index does
    let device = Device::flex().autodiff();
    device.seed(6);
    for (pool, case, [h, w]) in pool_cases(56) {
        let x = Tensor::<4>::random(
            [2, 3, h, w],
            burn::tensor::Distribution::Uniform(-2.0, 3.0),
            &device,
        )
        .floor();
        let run = |apply: &dyn Fn(Tensor<4>) -> Tensor<4>| {
            let x = x.clone().detach().require_grad();
            let y = apply(x.clone());
            let g = Tensor::<4>::ones(y.shape(), &device).cumsum(3).sin();
            let grads = (y.clone() * g).sum().backward();
            (values(y), values(x.grad(&grads).unwrap()))
        };
        let (expected, expected_grad) = run(&|x| pool.forward(x));
        let (got, got_grad) = run(&|x| dra::ops::pool::max_pool2d(&pool, x));
        assert_eq!(got, expected, "{case}: output");
        assert_eq!(got_grad, expected_grad, "{case}: x grad");
    }
}

/// The tests above on an AVX2 CPU without AVX-512 and on one without AVX2 (emulated by QEMU),
/// whose code paths a CPU with AVX-512 does not take.
#[test]
fn the_kernels_match_on_cpus_with_fewer_vector_instructions() {
    emulated::rerun_on(
        &[emulated::AVX2, emulated::PLAIN],
        "the_kernels_match_on_cpus_with_fewer_vector_instructions",
    );
}
