//! Backbones against PyTorch: ResNet-18 layer4 (eval and train BatchNorm) and
//! EfficientNet-Lite0 features and logits within 1e-4 relative L2, ImageNet top-1 of the
//! 16 reference photos through the tool's own preprocessing, weight round trips and errors;
//! then all of them again on an emulated AVX2 CPU.

mod common;
#[path = "common/emulated.rs"]
mod emulated;
#[path = "common/fixtures.rs"]
mod fixtures;

use burn::prelude::*;
use burn::tensor::Distribution;
use dra::model::backbone::{Backbone, BackboneKind, weights};
use fixtures::{parity_file, relative_l2, tensor, values};

fn resnet_from_fixture(path: &std::path::Path, device: &Device) -> Backbone {
    let mut net = Backbone::new(BackboneKind::Resnet18, device);
    weights::load_prefixed(&mut net, path, "weights.").unwrap();
    net
}

/// The fixture's network with the running statistics `layer4_eval` was computed with: the
/// fp32 `eval_stats.*` (the stored `weights.*` buffers are those after its train-mode pass).
fn resnet_with_eval_statistics(path: &std::path::Path) -> Backbone {
    use burn::module::RunningState;
    let device = Device::flex();
    let mut net = resnet_from_fixture(path, &device);
    // torchvision names of the BatchNorm layers, in the order of `batch_norms_mut`
    let mut names = vec!["bn1".to_string()];
    for layer in 1..=4 {
        for block in 0..2 {
            names.push(format!("layer{layer}.{block}.bn1"));
            names.push(format!("layer{layer}.{block}.bn2"));
            if layer > 1 && block == 0 {
                names.push(format!("layer{layer}.{block}.downsample.1"));
            }
        }
    }
    let layers = net.batch_norms_mut();
    assert_eq!(layers.len(), names.len());
    for (bn, name) in layers.into_iter().zip(&names) {
        let stat = |which: &str| {
            let (v, shape) = fixtures::read(path, &format!("eval_stats.{name}.{which}"));
            Tensor::<1>::from_data(TensorData::new(v, [shape[0]]), &device)
        };
        bn.running_mean = RunningState::new(stat("running_mean"));
        bn.running_var = RunningState::new(stat("running_var"));
    }
    net
}

#[test]
fn resnet18_layer4_matches_pytorch_in_eval_mode() {
    let Some(path) = parity_file("resnet18_random.safetensors") else {
        return;
    };
    let device = Device::flex();
    let net = resnet_with_eval_statistics(&path);
    let out = net.features(tensor::<4>(&path, "input", &device));
    assert_eq!(out.dims(), [2, 512, 7, 7]);
    let (expected, _) = fixtures::read(&path, "layer4_eval");
    let err = relative_l2(&values(out), &expected);
    eprintln!("layer4 eval relative L2 {err:.2e}");
    assert!(err < 1e-4, "relative L2 {err}");
    // with the stored (post-pass) statistics the output is far off: the fixture's order matters
    let stored = resnet_from_fixture(&path, &device).features(tensor::<4>(&path, "input", &device));
    assert!(relative_l2(&values(stored), &expected) > 0.1);
}

#[test]
fn resnet18_layer4_matches_pytorch_in_train_mode() {
    let Some(path) = parity_file("resnet18_random.safetensors") else {
        return;
    };
    let device = Device::flex().autodiff();
    let net = resnet_from_fixture(&path, &device);
    let out = net.features(tensor::<4>(&path, "input", &device));
    let (expected, _) = fixtures::read(&path, "layer4_train");
    let err = relative_l2(&values(out), &expected);
    assert!(err < 1e-4, "relative L2 {err}");
}

#[test]
fn efficientnet_lite0_features_and_logits_match_pytorch() {
    let Some(path) = parity_file("efficientnet_lite0.safetensors") else {
        return;
    };
    let device = Device::flex();
    let mut net = Backbone::new(BackboneKind::EfficientnetLite0Head, &device);
    weights::load(
        &mut net,
        &BackboneKind::EfficientnetLite0Head
            .bundled_weights()
            .unwrap(),
    )
    .unwrap();
    let input = tensor::<4>(&path, "input", &device);
    let features = net.features(input.clone());
    assert_eq!(features.dims(), [4, 1280, 7, 7]);
    let (expected, _) = fixtures::read(&path, "features");
    let err = relative_l2(&values(features), &expected);
    assert!(err < 1e-4, "features relative L2 {err}");
    let (expected, _) = fixtures::read(&path, "logits");
    let err = relative_l2(&values(net.logits(input).unwrap()), &expected);
    assert!(err < 1e-4, "logits relative L2 {err}");
}

#[test]
fn efficientnet_lite0_top1_of_the_reference_photos() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/parity/images");
    let reference = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/weights/efficientnet_lite0/reference_outputs.json");
    if !dir.is_dir() || !reference.is_file() {
        common::skip(&format!(
            "{} or {} is absent",
            dir.display(),
            reference.display()
        ));
        return;
    }
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&reference).unwrap()).unwrap();
    let device = Device::flex();
    let kind = BackboneKind::EfficientnetLite0;
    let mut net = Backbone::new(kind, &device);
    weights::load(&mut net, &kind.bundled_weights().unwrap()).unwrap();
    let outputs = json["outputs"].as_object().unwrap();
    assert_eq!(outputs.len(), 16);
    let paths: Vec<_> = outputs
        .keys()
        .map(|name| dir.join(format!("{name}.jpg")))
        .collect();
    let predictions = dra::model::backbone::classify::classify(&net, &paths, &device).unwrap();
    for ((name, out), p) in outputs.iter().zip(&predictions) {
        let expected = out["top5_idx"][0].as_u64().unwrap() as usize;
        assert_eq!(
            p.top5[0].index, expected,
            "{name}: got {} ({})",
            p.top5[0].index, p.top5[0].name
        );
    }
}

#[test]
fn weights_round_trip_gives_the_same_outputs() {
    let device = Device::flex();
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("w.safetensors");
    for kind in [
        BackboneKind::Resnet18,
        BackboneKind::EfficientnetLite0,
        BackboneKind::Vgg16,
    ] {
        device.seed(3);
        let net = Backbone::new(kind, &device);
        weights::save(&net, &file).unwrap();
        device.seed(4);
        let mut other = Backbone::new(kind, &device);
        let input =
            Tensor::<4>::random([1, 3, 64, 64], burn::tensor::Distribution::Default, &device);
        let before = values(other.features(input.clone()));
        weights::load(&mut other, &file).unwrap();
        let a = values(net.features(input.clone()));
        let b = values(other.features(input));
        assert_eq!(a, b, "{kind}");
        assert_ne!(a, before, "{kind}: the load changed nothing");
    }
}

#[test]
fn wrong_weights_are_clear_errors() {
    let device = Device::flex();
    let tmp = tempfile::tempdir().unwrap();
    // EfficientNet weights into a ResNet: every key missing or unexpected, listed
    let mut resnet = Backbone::new(BackboneKind::Resnet18, &device);
    let err = weights::load(
        &mut resnet,
        &BackboneKind::EfficientnetLite0.bundled_weights().unwrap(),
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("not resnet18 weights") && err.contains("missing keys"),
        "{err}"
    );
    assert!(
        err.contains("conv1.weight") && err.contains("unexpected keys"),
        "{err}"
    );
    // a truncated file
    let bytes = std::fs::read(BackboneKind::EfficientnetLite0.bundled_weights().unwrap()).unwrap();
    let cut = tmp.path().join("cut.pth");
    std::fs::write(&cut, &bytes[..bytes.len() / 3]).unwrap();
    let mut effnet = Backbone::new(BackboneKind::EfficientnetLite0, &device);
    let err = weights::load(&mut effnet, &cut).unwrap_err().to_string();
    assert!(err.contains("cut.pth"), "{err}");
    // a text file, an unknown extension, a missing file
    let txt = tmp.path().join("w.safetensors");
    std::fs::write(&txt, "hello").unwrap();
    assert!(
        weights::load(&mut effnet, &txt)
            .unwrap_err()
            .to_string()
            .contains("w.safetensors")
    );
    let onnx = tmp.path().join("w.onnx");
    std::fs::write(&onnx, "x").unwrap();
    assert!(
        weights::load(&mut effnet, &onnx)
            .unwrap_err()
            .to_string()
            .contains("unknown weights format")
    );
    let err = weights::load(&mut effnet, &tmp.path().join("none.pth"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("not found"), "{err}");
}

#[test]
fn feature_sizes_follow_the_stride_32_rule() {
    assert_eq!(BackboneKind::Resnet18.feature_size(448).unwrap(), 14);
    assert_eq!(BackboneKind::Resnet18.feature_size(224).unwrap(), 7);
    assert_eq!(
        BackboneKind::EfficientnetLite0.feature_size(448).unwrap(),
        14
    );
    assert_eq!(
        BackboneKind::EfficientnetLite0.feature_size(100).unwrap(),
        4
    );
    // VGG's unpadded 2×2 max-pools round down: 100 → 50 → 25 → 12 → 6 → 3
    assert_eq!(BackboneKind::Vgg16.feature_size(224).unwrap(), 7);
    assert_eq!(BackboneKind::Vgg16.feature_size(100).unwrap(), 3);
    assert!(BackboneKind::Vgg16.feature_size(31).is_err());
    assert!(BackboneKind::Resnet18.feature_size(0).is_err());
    let device = Device::flex();
    for &kind in BackboneKind::ALL {
        let net = Backbone::new(kind, &device);
        let out = net.features(Tensor::zeros([1, 3, 100, 100], &device));
        let s = kind.feature_size(100).unwrap();
        assert_eq!(out.dims(), [1, kind.channels(), s, s], "{kind}");
    }
}

#[test]
fn the_memorys_and_the_teachers_passes_give_the_heads_their_own_features() {
    // evaluation takes the heads' full-size features from the memory's backbone pass, and
    // KDAD's student head its teacher's taps from the pass that gives the heads theirs
    let device = Device::default();
    for kind in [
        BackboneKind::EfficientnetLite0,
        BackboneKind::EfficientnetLite0Head,
        BackboneKind::Resnet18,
        BackboneKind::Vgg16,
    ] {
        let backbone = Backbone::new(kind, &device);
        let x = Tensor::<4>::random([2, 3, 64, 64], Distribution::Normal(0.0, 1.0), &device);
        let alone: Vec<f32> = backbone
            .features(x.clone())
            .into_data()
            .try_to_vec()
            .unwrap();
        let (_, with_memory) = backbone.stride16_and_features(x.clone());
        let (taps, with_teacher) = backbone.taps_and_features(x);
        for with in [with_memory, with_teacher] {
            assert_eq!(
                alone,
                with.into_data().try_to_vec::<f32>().unwrap(),
                "{kind}"
            );
        }
        let sides: Vec<usize> = taps.iter().map(|t| t.dims()[2]).collect();
        assert_eq!(
            sides,
            [16, 8, 4, 2],
            "{kind}: taps at strides 4, 8, 16 and 32"
        );
    }
}

/// The VGG16 fixture of `tests/data/vgg16` (written by its `make_fixture.py`): torchvision's
/// structure at 1/16 of the widths.
fn vgg16_fixture(name: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/vgg16")
        .join(name)
}

#[test]
fn vgg16_from_a_torchvision_state_dict_gives_pytorchs_pool_maps() {
    use dra::model::backbone::Vgg16;
    let device = Device::flex();
    let pools = vgg16_fixture("vgg16_narrow_pools.safetensors");
    let mut net = Backbone::Vgg16(Vgg16::with_widths([4, 8, 16, 32, 32], &device));
    // `features.N.*` by torchvision's numbering; the classifier is ignored, not an error
    weights::load(&mut net, &vgg16_fixture("vgg16_narrow.pth")).unwrap();
    let input = tensor::<4>(&pools, "input", &device);
    let (taps, features) = net.taps_and_features(input.clone());
    assert_eq!(taps.len(), 4);
    for (k, tap) in taps.into_iter().enumerate() {
        let (expected, shape) = fixtures::read(&pools, &format!("pool{}", k + 2));
        assert_eq!(tap.dims().to_vec(), shape, "pool{}", k + 2);
        let err = relative_l2(&values(tap), &expected);
        assert!(err < 1e-5, "pool{}: relative L2 {err}", k + 2);
    }
    let (pool5, _) = fixtures::read(&pools, "pool5");
    let (pool4, _) = fixtures::read(&pools, "pool4");
    assert!(relative_l2(&values(features), &pool5) < 1e-5);
    let (stride16, stride32) = net.stride16_and_features(input.clone());
    assert!(relative_l2(&values(stride16), &pool4) < 1e-5);
    assert!(relative_l2(&values(stride32), &pool5) < 1e-5);
    // no classifier is loaded, so no ImageNet classes
    let err = net.logits(input).unwrap_err().to_string();
    assert!(err.contains("classify with resnet18"), "{err}");
}

#[test]
fn vgg16_weights_of_another_width_are_a_clear_error() {
    // the narrow fixture into the full-width network: the shapes differ, and the error says
    // which file and which network
    let device = Device::flex();
    let mut net = Backbone::new(BackboneKind::Vgg16, &device);
    let err = weights::load(&mut net, &vgg16_fixture("vgg16_narrow.pth"))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("vgg16_narrow.pth") && err.contains("not vgg16 weights"),
        "{err}"
    );
    let err = weights::pretrained(BackboneKind::Vgg16, None, &device)
        .unwrap_err()
        .to_string();
    assert!(err.contains("torchvision's vgg16 .pth"), "{err}");
}

/// The tests above on an AVX2 CPU without AVX-512 (emulated by QEMU), whose code paths a CPU
/// with AVX-512 does not take: the parity with PyTorch holds on both.
#[test]
fn the_backbones_match_pytorch_on_an_avx2_cpu() {
    emulated::rerun_on(
        &[emulated::AVX2],
        "the_backbones_match_pytorch_on_an_avx2_cpu",
    );
}
