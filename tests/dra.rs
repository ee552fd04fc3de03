//! DRA's own pieces against hand-computed values: top-K MIL, head routing, the losses, the
//! learning-rate schedule, global gradient clipping, the anomaly score, the pyramid; and
//! whole runs: bit-identical scores for one seed, and learning on real data.

mod common;

use burn::module::Module;
use burn::nn::LinearConfig;
use burn::optim::GradientsParams;
use burn::prelude::*;
use dra::config::{Preset, TrainConfig};
use dra::fusion::Fusion;
use dra::model::backbone::{Backbone, BackboneKind};
use dra::model::heads::{top_k_count, top_k_mean};
use dra::model::loss::{Criterion, deviation, dweighted, reference_statistics, routing};
use dra::model::{Dra, HeadScores, HeadSet, ModelConfig, pyramid_level};
use dra::rng::seeded;
use dra::run::train::clip_global_norm;
use dra::types::{Head, Label};

fn t1(v: &[f32]) -> Tensor<1> {
    Tensor::from_data(TensorData::new(v.to_vec(), [v.len()]), &Device::flex())
}

fn scalar(t: Tensor<1>) -> f32 {
    t.into_scalar::<f32>()
}

/// 0, 1, 2, … in a tensor of `shape`.
fn counting(shape: [usize; 4]) -> Tensor<4> {
    let n = shape.iter().product::<usize>();
    Tensor::from_data(
        TensorData::new((0..n).map(|v| v as f32).collect::<Vec<_>>(), shape),
        &Device::flex(),
    )
}

fn values(t: Tensor<1>) -> Vec<f32> {
    t.into_data().try_to_vec().unwrap()
}

fn close(a: f32, b: f32) {
    assert!((a - b).abs() < 1e-5, "{a} != {b}");
}

#[test]
fn top_k_rule_and_mean_of_the_largest_cells() {
    assert_eq!(top_k_count(14, 14, 0.1), 19); // 448² input
    assert_eq!(top_k_count(7, 7, 0.1), 4); // 224²
    assert_eq!(top_k_count(2, 2, 0.1), 1); // never below one cell
    assert_eq!(top_k_count(4, 4, 1.0), 16);
    let map = counting([2, 1, 4, 4]);
    let v = values(top_k_mean(map.clone(), 0.25));
    assert_eq!(v, vec![13.5, 29.5]); // mean of {12..15} and {28..31}
    let v = values(top_k_mean(map, 0.1));
    assert_eq!(v, vec![15.0, 31.0]); // K = ⌊1.6⌋ = 1
}

#[test]
fn heads_are_routed_as_the_reference_code() {
    use Label::*;
    let labels = [Normal, Seen, Pseudo, Normal, Seen];
    assert_eq!(
        routing(Head::Seen, &labels),
        (vec![0, 1, 3, 4], vec![0.0, 1.0, 0.0, 1.0])
    );
    assert_eq!(
        routing(Head::Pseudo, &labels),
        (vec![0, 2, 3], vec![0.0, 1.0, 0.0])
    );
    assert_eq!(
        routing(Head::Residual, &labels),
        (vec![0, 1, 2, 3, 4], vec![0.0, 1.0, 1.0, 0.0, 1.0])
    );
    assert_eq!(
        routing(Head::Normal, &labels),
        (vec![0, 1, 2, 3, 4], vec![1.0, 0.0, 0.0, 1.0, 0.0])
    );
}

#[test]
fn losses_equal_hand_computed_values() {
    let s = t1(&[0.5, 2.0, 6.0]);
    let t = t1(&[0.0, 1.0, 1.0]);
    // deviation, μ 0, σ 1: (|0.5| + max(0, 5 − 2) + max(0, 5 − 6)) / 3
    close(
        scalar(deviation(s.clone(), t.clone(), 0.0, 1.0)),
        (0.5 + 3.0 + 0.0) / 3.0,
    );
    // μ 1, σ 2: z = −0.25, 0.5, 2.5
    close(
        scalar(deviation(s.clone(), t.clone(), 1.0, 2.0)),
        (0.25 + 4.5 + 2.5) / 3.0,
    );
    // dweighted, μ 0, σ 1: ½·0.5², ½·(5 − 2)², ½·0
    close(
        scalar(dweighted(s.clone(), t.clone(), 0.0, 1.0)),
        (0.125 + 4.5 + 0.0) / 3.0,
    );
    // BCE and focal (α 1, γ 2) on logits 0.5 (t 0) and 2.0 (t 1); values from Python's math
    let mut rng = seeded(0);
    close(
        scalar(Criterion::Bce.loss(t1(&[0.5, 2.0]), &[0.0, 1.0], &mut rng)),
        0.5505025,
    );
    close(
        scalar(Criterion::Focal.loss(t1(&[0.5, 2.0]), &[0.0, 1.0], &mut rng)),
        0.18960758,
    );
}

#[test]
fn deviation_reference_is_a_seeded_standard_normal_sample() {
    let (mu, sigma) = reference_statistics(5000, &mut seeded(1));
    assert!(
        mu.abs() < 0.05 && (sigma - 1.0).abs() < 0.05,
        "{mu} {sigma}"
    );
    assert_eq!(reference_statistics(5000, &mut seeded(1)), (mu, sigma));
    // the criterion draws its reference from the generator it is given
    let (s, t) = (t1(&[0.3, 4.0]), [0.0, 1.0]);
    let mut rng = seeded(9);
    let (mu, sigma) = reference_statistics(5000, &mut rng.clone());
    close(
        scalar(Criterion::Deviation.loss(s.clone(), &t, &mut rng)),
        scalar(deviation(s.clone(), t1(&t), mu, sigma)),
    );
    // dweighted draws a reference of the batch's size
    let mut rng = seeded(9);
    let (mu, sigma) = reference_statistics(2, &mut rng.clone());
    close(
        scalar(Criterion::Dweighted.loss(s.clone(), &t, &mut rng)),
        scalar(dweighted(s, t1(&t), mu, sigma)),
    );
}

#[test]
fn learning_rate_drops_at_epochs_9_19_29() {
    let cfg = TrainConfig::preset(Preset::Paper);
    let lrs: Vec<f64> = (0..30).map(|e| cfg.lr_at(e)).collect();
    for (e, lr) in lrs.iter().enumerate() {
        let expected = match e {
            0..=8 => 2e-4,
            9..=18 => 2e-5,
            19..=28 => 2e-6,
            _ => 2e-7,
        };
        assert!((lr - expected).abs() < 1e-18, "epoch {e}: {lr}");
    }
}

#[test]
fn the_paper_preset_is_the_reference_codes_training_setting() {
    use dra::data::reference::RefMode;
    use dra::data::transform::InputNorm;
    use dra::model::backbone::BnStats;
    let p = TrainConfig::preset(Preset::Paper);
    assert_eq!(
        (
            p.img_size,
            p.epochs,
            p.steps_per_epoch,
            p.batch_size,
            p.n_ref
        ),
        (448, 30, 20, 48, 5)
    );
    assert_eq!(
        (p.lr, p.weight_decay, p.lr_step, p.clip_norm),
        (2e-4, 1e-5, 10, 1.0)
    );
    assert!(!p.freeze_backbone);
    assert_eq!(p.bn_stats, BnStats::Batch);
    assert_eq!(p.ref_mode, RefMode::Resample);
    assert_eq!(p.normalization, InputNorm::Imagenet);
    assert_eq!(
        (p.n_scales, p.topk, p.criterion),
        (2, 0.1, Criterion::Deviation)
    );
    assert_eq!(TrainConfig::preset(Preset::Default), TrainConfig::default());
    // a TOML file is read over the preset: its keys replace, the rest stays
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("c.toml");
    std::fs::write(&file, "img_size = 96\nfreeze_backbone = true\n").unwrap();
    let c = TrainConfig::from_toml_file(&file, &p).unwrap();
    assert_eq!((c.img_size, c.freeze_backbone, c.epochs), (96, true, 30));
    std::fs::write(&file, "img_sise = 96\n").unwrap();
    let e = TrainConfig::from_toml_file(&file, &p)
        .unwrap_err()
        .to_string();
    assert!(e.contains("img_sise") && e.contains("c.toml"), "{e}");
}

#[test]
fn global_gradient_norm_is_clipped_to_one() {
    let device = Device::flex().autodiff();
    let linear = LinearConfig::new(2, 1).init(&device);
    // d(sum(w·x + b))/dw = x = (3, 4), /db = 1: global norm √26
    let x = Tensor::<2>::from_data([[3.0f32, 4.0]], &device);
    let loss = linear.forward(x).sum();
    let bias_grad = |grads: &GradientsParams| -> f32 {
        let id = linear.bias.as_ref().unwrap().id;
        grads.get::<1>(id).unwrap().into_scalar()
    };
    let mut grads = GradientsParams::from_grads(loss.backward(), &linear);
    let norm = clip_global_norm(&linear, &mut grads, 1.0);
    assert!((norm - 26f64.sqrt()).abs() < 1e-5);
    let scale = 1.0 / (26f32.sqrt() + 1e-6);
    let w: Vec<f32> = grads
        .get::<2>(linear.weight.id)
        .unwrap()
        .into_data()
        .try_to_vec()
        .unwrap();
    close(w[0], 3.0 * scale);
    close(w[1], 4.0 * scale);
    close(bias_grad(&grads), scale);
    // below the limit nothing changes
    let loss = linear
        .forward(Tensor::<2>::from_data([[0.1f32, 0.1]], &device))
        .sum()
        .mul_scalar(0.1);
    let mut grads = GradientsParams::from_grads(loss.backward(), &linear);
    clip_global_norm(&linear, &mut grads, 1.0);
    close(bias_grad(&grads), 0.1);
    let _ = linear.valid();
}

#[test]
fn anomaly_score_is_minus_normal_plus_the_others() {
    let scores = HeadScores::new(vec![
        (Head::Seen, t1(&[1.0, 0.0])),
        (Head::Pseudo, t1(&[2.0, 0.5])),
        (Head::Residual, t1(&[3.0, 0.25])),
        (Head::Normal, t1(&[0.5, 4.0])),
    ]);
    // the paper's plain sum, as a run without standardisation fuses the heads
    let rows: Vec<Vec<(Head, f32)>> = (0..2)
        .map(|i| {
            scores
                .iter()
                .map(|(h, t)| (h, t.into_data().try_to_vec::<f32>().unwrap()[i]))
                .collect()
        })
        .collect();
    let v: Vec<f32> = rows.iter().map(|r| Fusion::plain().score(r)).collect();
    assert_eq!(v, vec![1.0 + 2.0 + 3.0 - 0.5, 0.5 + 0.25 - 4.0]);
    assert_eq!(Fusion::plain().score(&[(Head::Seen, 1.5)]), 1.5);
}

#[test]
fn pyramid_takes_every_second_pixel_from_the_first() {
    let x = counting([1, 1, 4, 4]);
    let v: Vec<f32> = pyramid_level(x.clone(), 1)
        .into_data()
        .try_to_vec()
        .unwrap();
    assert_eq!(v, vec![0.0, 2.0, 8.0, 10.0]);
    assert_eq!(pyramid_level(x, 0).dims(), [1, 1, 4, 4]);
}

#[test]
fn head_subsets_score_without_crashing() {
    let device = Device::flex();
    let x = Tensor::<4>::zeros([3, 3, 64, 64], &device);
    let refs = Tensor::<4>::ones([2, 3, 64, 64], &device);
    for heads in [
        "seen",
        "seen,pseudo",
        "seen,pseudo,residual",
        "seen,pseudo,normal",
        "residual",
        "seen,pseudo,residual,normal",
    ] {
        let cfg = ModelConfig {
            backbone: BackboneKind::EfficientnetLite0,
            heads: heads.parse::<HeadSet>().unwrap(),
            ..ModelConfig::default()
        };
        let model = Dra::new(&cfg, Backbone::new(cfg.backbone, &device), &device);
        let scores = model.forward(Some(refs.clone()), x.clone());
        assert_eq!(scores.iter().count(), cfg.heads.heads().len(), "{heads}");
        assert!(scores.iter().all(|(_, t)| t.dims() == [3]), "{heads}");
        let maps = model.reference_maps(refs.clone());
        let scores = model.score(x.clone(), &maps);
        assert!(scores.iter().all(|(_, t)| t.dims() == [3]), "{heads}");
    }
    assert!("seen,wrong".parse::<HeadSet>().is_err());
    assert!("".parse::<HeadSet>().is_err());
    assert_eq!(
        "normal,seen".parse::<HeadSet>().unwrap().to_string(),
        "seen,normal"
    );
}

#[test]
fn same_seed_gives_bit_identical_scores() {
    let data = common::bundled_elpv();
    let cfg = common::tiny_elpv(data.path());
    // the scores, and the trained model's file byte for byte (its header too)
    let runs: Vec<(String, Vec<u8>)> = (0..2)
        .map(|_| {
            let out = tempfile::tempdir().unwrap();
            common::train(&cfg, out.path());
            for f in [
                "config.json",
                "metrics.json",
                "model.safetensors",
                "train_log.csv",
                "scores.png",
                "roc.svg",
                "pr.png",
            ] {
                assert!(out.path().join(f).is_file(), "{f} missing");
            }
            (
                std::fs::read_to_string(out.path().join("scores.csv")).unwrap(),
                std::fs::read(out.path().join("model.safetensors")).unwrap(),
            )
        })
        .collect();
    assert_eq!(runs[0].0, runs[1].0);
    assert!(
        runs[0].1 == runs[1].1,
        "model.safetensors differs between the runs"
    );
    // one process's maps may iterate alike by chance: a header's metadata of several entries
    // would be written in a random order from one process to the next, so it holds one
    let model = &runs[0].1;
    let len = u64::from_le_bytes(model[..8].try_into().unwrap()) as usize;
    let header: serde_json::Value = serde_json::from_slice(&model[8..8 + len]).unwrap();
    assert_eq!(
        header["__metadata__"],
        serde_json::json!({ "producer": concat!("dra ", env!("CARGO_PKG_VERSION")) })
    );
    assert_eq!(runs[0].0.lines().count(), 1 + 75);
    let other = tempfile::tempdir().unwrap();
    common::train(&TrainConfig { seed: 7, ..cfg }, other.path());
    assert_ne!(
        std::fs::read_to_string(other.path().join("scores.csv")).unwrap(),
        runs[0].0
    );
}

#[test]
fn a_saved_run_evaluates_and_predicts_the_same_scores() {
    let data = common::bundled_elpv();
    let cfg = common::tiny_elpv(data.path());
    let out = tempfile::tempdir().unwrap();
    let trained = common::train(&cfg, out.path());
    let scores = std::fs::read_to_string(out.path().join("scores.csv")).unwrap();
    let again = dra::run::evaluate_run(out.path(), None, None, &mut ()).unwrap();
    assert_eq!(trained, again);
    assert_eq!(
        std::fs::read_to_string(out.path().join("scores.csv")).unwrap(),
        scores
    );
    // predict on the first test image gives its row of scores.csv
    let row: Vec<&str> = scores.lines().nth(1).unwrap().split(',').collect();
    let predicted = dra::run::predict(out.path(), &[row[0].into()], None, &mut ()).unwrap();
    assert_eq!(predicted.scored[0].score.to_string(), row[3]);
    // the stored threshold flags at most 1 % of the normal training images, whose scores
    // (without the memory, which saw them: see tests/quality.rs) predict gives
    let decision: dra::run::files::Decision =
        serde_json::from_str(&std::fs::read_to_string(out.path().join("decision.json")).unwrap())
            .unwrap();
    assert_eq!(predicted.threshold, Some(decision.threshold));
    assert_eq!(trained.decision.unwrap().threshold, decision.threshold);
    let d = trained.decision.unwrap();
    assert_eq!(
        d.true_positives + d.false_positives + d.true_negatives + d.false_negatives,
        75
    );
}

#[test]
fn the_stored_threshold_is_the_fpr_quantile_of_the_normal_training_scores() {
    let data = common::bundled_elpv();
    let cfg = TrainConfig {
        memory: dra::model::memory::MemoryMode::None,
        fpr: 0.05,
        ..common::tiny_elpv(data.path())
    };
    let out = tempfile::tempdir().unwrap();
    common::train(&cfg, out.path());
    let normals = dra::data::layout::list_images(&data.path().join("elpv/train/good")).unwrap();
    let scores: Vec<f64> = dra::run::predict(out.path(), &normals, None, &mut ())
        .unwrap()
        .scored
        .iter()
        .map(|s| s.score as f64)
        .collect();
    let expected = dra::metrics::threshold_at_fpr(&scores, 0.05).unwrap();
    let stored = dra::run::saved_decision(out.path()).unwrap().unwrap();
    assert_eq!((stored.threshold, stored.fpr), (expected, Some(0.05)));
    let above = scores.iter().filter(|&&s| s > expected).count();
    assert!(above <= scores.len() / 20, "{above} of {}", scores.len());
}

#[test]
fn learns_on_real_kolektorsdd_pieces() {
    let Some(input) = common::shared_data("kolektorsdd") else {
        return;
    };
    let converted = tempfile::tempdir().unwrap();
    let summary = dra::data::convert::Converter::Sdd
        .run(&input, converted.path(), 42)
        .unwrap();
    // a small class: 80 normal training pieces, 30 normal test pieces, every defect piece
    let root = tempfile::tempdir().unwrap();
    let class = root.path().join("sdd");
    let take = |from: &str, to: &str, n: usize| {
        std::fs::create_dir_all(class.join(to)).unwrap();
        for f in dra::data::layout::list_images(&summary.dir.join(from))
            .unwrap()
            .into_iter()
            .take(n)
        {
            std::fs::copy(&f, class.join(to).join(f.file_name().unwrap())).unwrap();
        }
    };
    take("train/good", "train/good", 80);
    take("test/good", "test/good", 30);
    take("test/defect", "test/defect", usize::MAX);
    let cfg = TrainConfig {
        data_root: root.path().to_path_buf(),
        class: "sdd".into(),
        img_size: 128,
        batch_size: 16,
        epochs: 3,
        steps_per_epoch: 6,
        ..TrainConfig::default()
    };
    let out = tempfile::tempdir().unwrap();
    let metrics = common::train(&cfg, out.path());
    let log = std::fs::read_to_string(out.path().join("train_log.csv")).unwrap();
    let losses: Vec<f32> = log
        .lines()
        .skip(1)
        .map(|l| l.split(',').nth(2).unwrap().parse().unwrap())
        .collect();
    eprintln!(
        "epoch losses {losses:?}, AUC-ROC {:.4}, AUC-PR {:.4}",
        metrics.auc_roc, metrics.auc_pr
    );
    assert!(
        losses[2] < losses[0],
        "training loss did not fall: {losses:?}"
    );
    assert!(metrics.auc_roc > 0.5, "AUC-ROC {}", metrics.auc_roc);
}
