//! The detection-quality settings against hand-computed values: frozen and recalibrated
//! BatchNorm statistics, the alignment-free residual, the patch-kNN baseline, and head
//! standardisation on the normal training images only.

mod common;

use burn::module::{Module, ModuleVisitor, Param};
use burn::optim::{AdamConfig, GradientsParams};
use burn::prelude::*;
use burn::tensor::module::conv2d;
use burn::tensor::ops::ConvOptions;
use burn::tensor::s;
use dra::config::TrainConfig;
use dra::fusion::{Fusion, HeadStats};
use dra::model::backbone::{Backbone, BackboneKind, BackboneTraining, BnStats};
use dra::model::heads::nearest_cells;
use dra::model::memory::{
    MemoryMode, PatchMemory, coreset, image_scores, memory_bank, patch_features,
};
use dra::model::{Dra, HeadNorm, HeadScores, ModelConfig};
use dra::rng::seeded;
use dra::types::Head;

fn tensor<const D: usize>(v: Vec<f32>, shape: [usize; D], device: &Device) -> Tensor<D> {
    Tensor::from_data(TensorData::new(v, shape), device)
}

fn values<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data().convert::<f32>().try_to_vec::<f32>().unwrap()
}

fn assert_close(a: &[f32], b: &[f32], tol: f32) {
    assert_eq!(a.len(), b.len());
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        assert!((x - y).abs() <= tol * (1.0 + y.abs()), "[{i}] {x} != {y}");
    }
}

/// Every BatchNorm's running mean and variance, layer by layer.
fn running_stats(backbone: &mut Backbone) -> Vec<Vec<f32>> {
    backbone
        .batch_norms_mut()
        .into_iter()
        .flat_map(|bn| {
            [
                values(bn.running_mean.value()),
                values(bn.running_var.value()),
            ]
        })
        .collect()
}

fn gammas(backbone: &mut Backbone) -> Vec<f32> {
    backbone
        .batch_norms_mut()
        .into_iter()
        .flat_map(|bn| values(bn.gamma.val()))
        .collect()
}

/// One Adam step of the full DRA model on random images, the loss the anomaly scores' sum.
fn train_step(stats: BnStats) -> (Backbone, Backbone) {
    let device = Device::flex().autodiff();
    device.seed(3);
    let training = BackboneTraining {
        bn_stats: stats,
        bn_momentum: 0.1,
        drop_connect: 0.0,
    };
    let backbone = Backbone::new(BackboneKind::Resnet18, &device).configure(&training);
    let config = ModelConfig {
        backbone: BackboneKind::Resnet18,
        ..ModelConfig::default()
    };
    let model = Dra::new(&config, backbone, &device);
    let before = model.backbone.valid();
    let x = Tensor::<4>::random([4, 3, 32, 32], burn::tensor::Distribution::Default, &device);
    let refs = Tensor::<4>::random([2, 3, 32, 32], burn::tensor::Distribution::Default, &device);
    let loss = paper_score(model.forward(Some(refs), x)).sum();
    let grads = GradientsParams::from_grads(loss.backward(), &model);
    let model = AdamConfig::new().init().step(1e-2, model, grads);
    (before, model.backbone.valid())
}

#[test]
fn frozen_statistics_are_unchanged_by_a_training_step_while_gamma_learns() {
    let (mut before, mut after) = train_step(BnStats::Frozen);
    assert_eq!(running_stats(&mut before), running_stats(&mut after));
    assert_ne!(
        gammas(&mut before),
        gammas(&mut after),
        "γ must still be trained"
    );
    // the same step with batch statistics moves them, so the comparison can fail
    let (mut before, mut after) = train_step(BnStats::Batch);
    assert_ne!(running_stats(&mut before), running_stats(&mut after));
}

/// A DRA model on EfficientNet-Lite0 (random weights), its backbone frozen or not.
fn lite0_model(freeze_backbone: bool) -> Dra {
    let device = Device::flex().autodiff();
    let config = ModelConfig {
        freeze_backbone,
        ..ModelConfig::default()
    };
    Dra::new(&config, Backbone::new(config.backbone, &device), &device)
}

/// Fixed images `[n, 3, 64, 64]` with values spread over [−1, 1).
fn spread_images(n: usize, offset: usize, device: &Device) -> Tensor<4> {
    let values = (0..n * 3 * 64 * 64)
        .map(|i| ((i + offset) * 7919 % 1000) as f32 / 500.0 - 1.0)
        .collect();
    tensor(values, [n, 3, 64, 64], device)
}

/// The anomaly scores of fixed images after one Adam step of a copy of `model` (its backbone
/// frozen or not, as `freeze` says) with `training`'s backbone settings, and whether the step
/// left the backbone's running statistics as they were.
fn scores_after_a_step(model: &Dra, freeze: bool, training: BackboneTraining) -> (Vec<f32>, bool) {
    // a copy through its record: a clone's running statistics (the residual head's too) would
    // share storage with the original's, and one step's updates would reach the next copy
    let mut model = lite0_model(freeze).load_record(model.clone().into_record());
    model.backbone = model.backbone.clone().configure(&training);
    let device = Device::flex().autodiff();
    let (x, refs) = (spread_images(4, 0, &device), spread_images(2, 5, &device));
    let mut before = model.backbone.valid();
    let loss = paper_score(model.forward(Some(refs.clone()), x.clone())).sum();
    let grads = GradientsParams::from_grads(loss.backward(), &model);
    let model = AdamConfig::new().init().step(1e-2, model, grads);
    let unchanged = running_stats(&mut before) == running_stats(&mut model.backbone.valid());
    let valid = model.valid();
    let scores = valid.score(x.inner(), &valid.reference_maps(refs.inner()));
    (values(paper_score(scores)), unchanged)
}

/// The paper's score s = −g_n + g_s + g_p + g_r as a tensor, a differentiable loss here.
fn paper_score(scores: HeadScores) -> Tensor<1> {
    scores
        .iter()
        .map(|(h, t)| t.mul_scalar(h.sign()))
        .reduce(|a, b| a + b)
        .unwrap()
}

#[test]
fn a_frozen_backbone_ignores_the_fine_tuning_settings() {
    let plain = BackboneTraining {
        bn_stats: BnStats::Batch,
        bn_momentum: 0.1,
        drop_connect: 0.0,
    };
    let tuned = BackboneTraining {
        bn_momentum: 0.9,
        drop_connect: 0.5,
        ..plain
    };
    let frozen = lite0_model(true);
    let (scores, unchanged) = scores_after_a_step(&frozen, true, plain);
    assert!(unchanged, "a frozen backbone keeps its running statistics");
    assert_eq!(scores_after_a_step(&frozen, true, tuned), (scores, true));
    // fine-tuned, the same two settings give other scores, so the comparison can fail
    let fine_tuned = lite0_model(false);
    let (a, _) = scores_after_a_step(&fine_tuned, false, plain);
    let (b, _) = scores_after_a_step(&fine_tuned, false, tuned);
    assert_ne!(a, b);
    // and recalibrated statistics are only kept for a fine-tuned backbone
    let recalibrate = |freeze_backbone| {
        TrainConfig {
            freeze_backbone,
            bn_stats: BnStats::Recalibrate,
            ..TrainConfig::default()
        }
        .model()
        .scale_statistics
    };
    assert!(!recalibrate(true) && recalibrate(false));
}

/// The stem convolution's weight of a ResNet-18.
struct Conv1Weight(Option<Tensor<4>>);

impl ModuleVisitor for Conv1Weight {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        if D == 4 && self.0.is_none() {
            // the first 4-D parameter in declaration order is conv1.weight
            let t = param.val();
            let dims = t.dims();
            self.0 = Some(t.reshape([dims[0], dims[1], dims[2], dims[3]]));
        }
    }
}

#[test]
fn recalibration_equals_the_hand_computed_statistics_of_the_images() {
    let device = Device::flex();
    let ad = device.clone().autodiff();
    ad.seed(5);
    let backbone = Backbone::new(BackboneKind::Resnet18, &ad);
    let images = Tensor::<4>::random([3, 3, 32, 32], burn::tensor::Distribution::Default, &device);
    // the stem BatchNorm's input, computed independently: conv1 (7×7, stride 2, pad 3)
    let mut w = Conv1Weight(None);
    backbone.valid().visit(&mut w);
    let weight = w.0.expect("conv1 weight").inner();
    assert_eq!(weight.dims(), [64, 3, 7, 7]);
    let conv = conv2d(
        images.clone(),
        weight,
        None,
        ConvOptions::new([2, 2], [3, 3], [1, 1], 1),
    );
    // per channel: mean and biased variance over images and positions
    let stats = |conv: Tensor<4>| {
        let [n, c, h, w] = conv.dims();
        let per_channel = conv.permute([1, 0, 2, 3]).reshape([c, n * h * w]);
        let mean = per_channel.clone().mean_dim(1);
        let var = (per_channel - mean.clone()).powi_scalar(2).mean_dim(1);
        (values(mean), values(var))
    };
    let (mean, var) = stats(conv.clone());
    let config = ModelConfig {
        backbone: BackboneKind::Resnet18,
        n_scales: 2,
        ..ModelConfig::default()
    };
    let stem = |model: &Dra, s: usize| {
        let mut b = model.scale_backbone(s).expect("recalibrated").clone();
        let bn = b.batch_norms_mut().remove(0);
        (
            values(bn.running_mean.value()),
            values(bn.running_var.value()),
        )
    };
    let model = Dra::new(&config, backbone.clone(), &ad).recalibrate(std::slice::from_ref(&images));
    let (m0, v0) = stem(&model, 0);
    assert_close(&m0, &mean, 1e-4);
    assert_close(&v0, &var, 1e-4);
    // the second scale's statistics are those of the half-size images, so they differ
    assert_ne!(stem(&model, 1).0, m0);
    // several batches: each layer's statistics are the averages of the batches' ones
    let batches = [
        images.clone().slice(s![0..1]),
        images.clone().slice(s![1..3]),
    ];
    let model = Dra::new(&config, backbone, &ad).recalibrate(&batches);
    let (m, v) = stem(&model, 0);
    let (ma, va) = stats(conv.clone().slice(s![0..1]));
    let (mb, vb) = stats(conv.slice(s![1..3]));
    let avg = |a: &[f32], b: &[f32]| {
        a.iter()
            .zip(b)
            .map(|(x, y)| (x + y) / 2.0)
            .collect::<Vec<_>>()
    };
    assert_close(&m, &avg(&ma, &mb), 1e-4);
    assert_close(&v, &avg(&va, &vb), 1e-4);
}

#[test]
fn nearest_cells_pick_the_closest_reference_cell_anywhere() {
    let device = Device::flex();
    // one query image 1×2 cells, 2 channels: (0, 1) and (3, 0)
    let q = tensor(vec![0.0, 3.0, 1.0, 0.0], [1, 2, 1, 2], &device);
    // two reference images of one cell: (0, 0) and (3, 4)
    let r = tensor(vec![0.0, 0.0, 3.0, 4.0], [2, 2, 1, 1], &device);
    let nearest = values(nearest_cells(q, r));
    // channel-major [1, 2, 1, 2]: both cells' nearest reference is (0, 0) ((3,0): 3 < 4)
    assert_eq!(nearest, vec![0.0, 0.0, 0.0, 0.0]);
    let q = tensor(vec![2.9, 3.9], [1, 2, 1, 1], &device);
    let r = tensor(vec![0.0, 0.0, 3.0, 4.0], [2, 2, 1, 1], &device);
    assert_eq!(values(nearest_cells(q, r)), vec![3.0, 4.0]);
}

#[test]
fn patch_features_average_3x3_neighbourhoods_and_upsample_the_coarse_map() {
    let device = Device::flex();
    // stride-16 map: 3×3, zero but for 9 in the centre; stride-32 map: one cell of 2
    let mut fine = vec![0.0; 9];
    fine[4] = 9.0;
    let f = patch_features(
        tensor(fine, [1, 1, 3, 3], &device),
        tensor(vec![2.0], [1, 1, 1, 1], &device),
    );
    assert_eq!(f.dims(), [1, 2, 3, 3]);
    let v = values(f);
    // corners see 4 cells, edges 6, the centre 9 (borders average only cells inside)
    assert_close(
        &v[..9],
        &[2.25, 1.5, 2.25, 1.5, 1.0, 1.5, 2.25, 1.5, 2.25],
        1e-6,
    );
    assert_close(&v[9..], &[2.0; 9], 1e-6);
}

#[test]
fn patch_knn_scores_the_largest_nearest_patch_distance() {
    let device = Device::flex();
    let bank = tensor(vec![0.0, 0.0, 3.0, 4.0], [2, 2], &device);
    // two query images of 1×2 patches, channel-major: image 0 patches (0,1), (3,0);
    // image 1 patches (3,4), (3,5)
    let q = tensor(
        vec![0.0, 3.0, 1.0, 0.0, 3.0, 3.0, 4.0, 5.0],
        [2, 2, 1, 2],
        &device,
    );
    // image 0: distances 1 and min(3, 4) = 3 → 3; image 1: 0 and 1 → 1
    assert_close(&image_scores(&bank, q), &[3.0, 1.0], 1e-5);
}

#[test]
fn coreset_takes_the_farthest_point_next() {
    let device = Device::flex();
    let rows = tensor(vec![0.0, 0.1, 10.0], [3, 1], &device);
    for seed in 0..6 {
        let chosen = coreset(&rows, 2, &mut seeded(seed));
        assert_eq!(chosen.len(), 2);
        assert!(chosen.contains(&2), "seed {seed}: {chosen:?}");
        assert!(chosen.contains(&0) || chosen.contains(&1), "{chosen:?}");
        if chosen[0] == 2 {
            assert_eq!(chosen[1], 0, "0 is farther from 10 than 0.1 is");
        }
    }
    assert_eq!(coreset(&rows, 5, &mut seeded(0)), vec![0, 1, 2]);
}

#[test]
fn coreset_is_the_plain_greedy_loop_bit_for_bit() {
    let device = Device::flex();
    // 1000 points (not a multiple of the 64-point blocks), and 301 of small integers, so that
    // many distances are equal and ties decide; up to 128 dimensions: no projection
    let cases = [(1000, 40, 200, 7919), (301, 128, 150, 7), (301, 3, 300, 3)];
    for (b, dim, size, modulus) in cases {
        let points: Vec<f32> = (0..b * dim)
            .map(|i| ((i * 2654435761) % modulus) as f32 / modulus as f32 * 4.0 - 2.0)
            .collect();
        let rows = tensor(points.clone(), [b, dim], &device);
        for seed in 0..3 {
            let fast = coreset(&rows, size, &mut seeded(seed));
            let plain = common::plain_coreset::plain_coreset(&points, dim, size, &mut seeded(seed));
            assert_eq!(fast, plain, "{b} points of {dim} dims, seed {seed}");
        }
    }
}

#[test]
fn head_statistics_are_a_population_mean_and_std_and_standardise_the_sum() {
    let rows = vec![
        vec![(Head::Seen, 1.0), (Head::Normal, 2.0)],
        vec![(Head::Seen, 3.0), (Head::Normal, 2.0)],
    ];
    let stats = HeadStats::of(&rows);
    assert_eq!(
        stats.0,
        vec![(Head::Seen, 2.0, 1.0), (Head::Normal, 2.0, 0.0)]
    );
    // seen (5 − 2) / 1 = 3; normal is constant on the normals: (g − 2) / 1e-6, negated
    let z = stats.z(Head::Seen, 5.0) + stats.z(Head::Normal, 2.0);
    assert!((z - 3.0).abs() < 1e-6, "{z}");
}

#[test]
fn standardisation_learns_from_the_normal_training_images_only() {
    let data = common::bundled_elpv();
    let cfg = TrainConfig {
        head_norm: HeadNorm::Standardise,
        part_weights: "memory=4,pseudo=1".parse().unwrap(),
        // the heads' statistics; the memory's own (from the other half) are tested below
        memory: MemoryMode::None,
        ..common::tiny_elpv(data.path())
    };
    let out = tempfile::tempdir().unwrap();
    common::train(&cfg, out.path());
    let stats = saved_stats(out.path());
    // the raw head scores of exactly the normal training images give the stored statistics
    let normals = dra::data::layout::list_images(&data.path().join("elpv/train/good")).unwrap();
    let scored = dra::run::predict(out.path(), &normals, None, &mut ())
        .unwrap()
        .scored;
    let rows: Vec<Vec<(Head, f32)>> = scored.iter().map(|s| s.heads.clone()).collect();
    let expected = HeadStats::of(&rows);
    for ((h, m, s), (eh, em, es)) in stats.0.iter().zip(&expected.0) {
        assert_eq!(h, eh);
        assert!(
            (m - em).abs() < 1e-5 * (1.0 + em.abs()),
            "{h} mean {m} != {em}"
        );
        assert!(
            (s - es).abs() < 1e-5 * (1.0 + es.abs()),
            "{h} std {s} != {es}"
        );
    }
    // and the test images' scores are the z-scored sums with those statistics
    let csv = std::fs::read_to_string(out.path().join("scores.csv")).unwrap();
    let test: Vec<(f32, Vec<(Head, f32)>)> = scores_csv_rows(&csv);
    assert_eq!(test.len(), 75);
    for (score, heads) in &test {
        let z = memory_4(&stats, heads);
        assert!((score - z).abs() < 1e-4 * (1.0 + z.abs()), "{score} != {z}");
    }
    // including the test images would change the statistics
    let all: Vec<Vec<(Head, f32)>> = rows
        .into_iter()
        .chain(test.into_iter().map(|(_, h)| h))
        .collect();
    assert_ne!(HeadStats::of(&all), stats);
}

/// Σ z over the parts, the memory's weighted 4 (the weights these tests train with).
fn memory_4(stats: &HeadStats, parts: &[(Head, f32)]) -> f32 {
    parts
        .iter()
        .map(|&(h, g)| if h == Head::Memory { 4.0 } else { 1.0 } * stats.z(h, g))
        .sum()
}

/// The part statistics of a run's fitted score rule.
fn saved_stats(dir: &std::path::Path) -> HeadStats {
    let path = dir.join(dra::run::files::FUSION);
    let fusion: Fusion = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    fusion.parts
}

/// `(score, head scores)` of every row of a `scores.csv`.
fn scores_csv_rows(csv: &str) -> Vec<(f32, Vec<(Head, f32)>)> {
    let header: Vec<Head> = csv
        .lines()
        .next()
        .unwrap()
        .split(',')
        .skip(4)
        .map(|h| {
            Head::ALL
                .into_iter()
                .chain([Head::Memory])
                .find(|k| k.name() == h)
                .unwrap()
        })
        .collect();
    csv.lines()
        .skip(1)
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            let heads = header
                .iter()
                .zip(&f[4..])
                .map(|(h, v)| (*h, v.parse().unwrap()))
                .collect();
            (f[3].parse().unwrap(), heads)
        })
        .collect()
}

#[test]
fn a_frozen_backbone_scores_alike_with_references_in_the_batch_or_precomputed() {
    // training computes a frozen model's fixed reference features once an epoch instead of
    // passing the references with every batch: both must give the same head scores
    let device = Device::flex().autodiff();
    device.seed(11);
    let config = ModelConfig {
        backbone: BackboneKind::Resnet18,
        freeze_backbone: true,
        residual: dra::model::heads::ResidualMode::Nearest,
        ..ModelConfig::default()
    };
    let model = Dra::new(
        &config,
        Backbone::new(BackboneKind::Resnet18, &device),
        &device,
    );
    let x = Tensor::<4>::random([3, 3, 64, 64], burn::tensor::Distribution::Default, &device);
    let refs = Tensor::<4>::random([2, 3, 64, 64], burn::tensor::Distribution::Default, &device);
    let joint = model.forward(Some(refs.clone()), x.clone());
    let cached = model.score(x, &model.reference_maps(refs));
    for ((h, a), (k, b)) in joint.iter().zip(cached.iter()) {
        assert_eq!(h, k);
        assert_close(&values(a), &values(b), 1e-6);
    }
}

#[test]
fn the_memory_term_is_the_patch_knn_standardised_on_the_other_half_of_the_normals() {
    let data = common::bundled_elpv();
    let cfg = TrainConfig {
        memory: MemoryMode::Patch,
        part_weights: "memory=4,pseudo=1".parse().unwrap(),
        ..common::tiny_elpv(data.path())
    };
    let out = tempfile::tempdir().unwrap();
    let mut plan = dra::run::Plan::new(&cfg).unwrap();
    let metrics = dra::run::train_and_evaluate(&mut plan, out.path(), false, &mut ()).unwrap();
    // its bank is the baseline's: the memory alone scores what the patch kNN does
    let knn = dra::baselines::knn_baseline(&mut plan).unwrap();
    assert_eq!(metrics.heads["memory"], knn.patch);

    // its statistics: the normal training images scored against the bank of the other half
    // (even against odd, odd against even), computed here from the library's pieces
    let device = Device::flex();
    let norm = cfg.normalization();
    let images: Vec<Tensor<4>> = plan
        .split
        .train_normal
        .iter()
        .map(|s| {
            let b = dra::data::batch::eval_batch(&mut plan.images, std::slice::from_ref(s), &norm);
            PatchMemory::features(&plan.backbone, b.unwrap().to_tensor(&device))
        })
        .collect();
    let mut rng = plan.rng.clone();
    let bank = memory_bank(images.clone(), &mut rng);
    let half = |k: usize| -> Vec<Tensor<4>> { images.iter().skip(k).step_by(2).cloned().collect() };
    let mut own = Vec::new();
    for k in 0..2 {
        let other = memory_bank(half(1 - k), &mut rng);
        own.extend(image_scores(&other, Tensor::cat(half(k), 0)));
    }
    let mean = own.iter().sum::<f32>() / own.len() as f32;
    let std = (own.iter().map(|v| (v - mean).powi(2)).sum::<f32>() / own.len() as f32).sqrt();
    let stats = saved_stats(out.path());
    let (_, m, s) = stats
        .0
        .iter()
        .find(|(h, _, _)| *h == Head::Memory)
        .copied()
        .unwrap();
    assert!(
        (m - mean).abs() < 1e-4 * mean.abs() && (s - std).abs() < 1e-3 * std,
        "{m} {s}"
    );
    // the decision threshold: 1 % of the normal training images above it, each scored with
    // its memory score against the other half's bank (the order of `own`: even, then odd)
    let n_even = plan.split.train_normal.len().div_ceil(2);
    let own_of = |i: usize| match i % 2 {
        0 => own[i / 2],
        _ => own[n_even + i / 2],
    };
    let normals: Vec<_> = plan
        .split
        .train_normal
        .iter()
        .map(|s| s.path.clone())
        .collect();
    let scores: Vec<f64> = dra::run::predict(out.path(), &normals, None, &mut ())
        .unwrap()
        .scored
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let heads: Vec<(Head, f32)> = s
                .heads
                .iter()
                .map(|&(h, g)| (h, if h == Head::Memory { own_of(i) } else { g }))
                .collect();
            memory_4(&stats, &heads) as f64
        })
        .collect();
    let stored = dra::run::saved_decision(out.path()).unwrap().unwrap();
    let expected = dra::metrics::threshold_at_fpr(&scores, 0.01).unwrap();
    assert!((stored.threshold - expected).abs() < 1e-4 * (1.0 + expected.abs()));
    // the saved bank is that bank
    let saved = PatchMemory::load(&out.path().join("memory.npy"), &device).unwrap();
    assert_eq!(saved.bank.to_data(), bank.to_data());

    // the score: each head's z-score plus four times the memory's (as much as the heads)
    let csv = std::fs::read_to_string(out.path().join("scores.csv")).unwrap();
    for (score, heads) in scores_csv_rows(&csv) {
        let z = |h: Head| {
            let (_, m, s) = stats.0.iter().find(|(k, _, _)| *k == h).copied().unwrap();
            let g = heads.iter().find(|(k, _)| *k == h).unwrap().1;
            h.sign() * (g - m) / s
        };
        let expected = z(Head::Seen)
            + z(Head::Pseudo)
            + z(Head::Residual)
            + z(Head::Normal)
            + 4.0 * z(Head::Memory);
        assert!(
            (score - expected).abs() < 1e-4 * (1.0 + expected.abs()),
            "{score} {expected}"
        );
    }
    // and a saved run scores an image as training did, through the saved bank
    let first = &plan.split.test[0].path;
    let p = dra::run::predict(out.path(), std::slice::from_ref(first), None, &mut ()).unwrap();
    let line = csv
        .lines()
        .find(|l| l.contains(first.to_str().unwrap()))
        .unwrap();
    assert_eq!(
        p.scored[0].score,
        line.split(',').nth(3).unwrap().parse::<f32>().unwrap()
    );
}
