//! Speed of the real DRA workload: one full training step (4 heads, 2 scales, batch 48 plus
//! 5 reference images, deviation loss, global clipping, Adam) and inference (scores against
//! a precomputed reference set), for each backbone, beside the same workload in PyTorch
//! (`benches/dra_step.py`) when a Python with torch + torchvision is present.
//!
//! ```sh
//! cargo bench --bench dra_step                                  # 448², batch 48 + 5
//! DRA_BENCH_IMG=224 DRA_BENCH_BATCH=24 cargo bench --bench dra_step
//! ```
//!
//! Output per case: images/s, peak MiB, and for training the seconds of forward + loss,
//! backward, and clipping + Adam of one step.

#[path = "support/mod.rs"]
mod support;

use std::time::Instant;

use burn::optim::decay::WeightDecayConfig;
use burn::optim::{AdamConfig, GradientsParams};
use burn::prelude::*;
use burn::tensor::Distribution;
use dra::model::backbone::{Backbone, BackboneKind};
use dra::model::loss::{Criterion, dra_loss};
use dra::model::{Dra, HeadSet, ModelConfig};
use dra::rng::seeded;
use dra::run::train::clip_global_norm;
use dra::types::Label;
use support::{
    case_args, child, env_usize, fmt, me, peak_rss_mib, print_machine, python_with_torch, steps,
};

const N_REF: usize = 5;

/// Labels of a reference-style batch: ⌊2B/3⌋ normal slots alternating normal / pseudo, then
/// seen anomalies.
fn labels(batch: usize) -> Vec<Label> {
    let normal = 2 * batch / 3;
    (0..batch)
        .map(|i| match i {
            i if i >= normal => Label::Seen,
            i if i % 2 == 0 => Label::Normal,
            _ => Label::Pseudo,
        })
        .collect()
}

fn run_case(kind: BackboneKind, train: bool, img: usize, batch: usize) {
    dra::device::reuse_freed_memory();
    let steps = steps(1);
    let base = Device::flex();
    let device = if train { base.autodiff() } else { base };
    device.seed(0);
    let cfg = ModelConfig {
        backbone: kind,
        heads: HeadSet::all(),
        ..ModelConfig::default()
    };
    let mut model = Dra::new(&cfg, Backbone::new(kind, &device), &device);
    let x = Tensor::<4>::random(
        [batch, 3, img, img],
        Distribution::Normal(0.0, 1.0),
        &device,
    );
    let refs = Tensor::<4>::random(
        [N_REF, 3, img, img],
        Distribution::Normal(0.0, 1.0),
        &device,
    );
    let labels = labels(batch);
    let mut rng = seeded(0);
    let mut optim = AdamConfig::new()
        .with_epsilon(1e-8)
        .with_weight_decay(Some(WeightDecayConfig::new(1e-5)))
        .init();
    let maps = if train {
        Vec::new()
    } else {
        model.reference_maps(refs.clone())
    };
    let (mut total, mut fwd, mut bwd, mut opt) = (0.0, 0.0, 0.0, 0.0);
    for i in 0..=steps {
        let t0 = Instant::now();
        if train {
            let scores = model.forward(Some(refs.clone()), x.clone());
            let (loss, _) = dra_loss(Criterion::Deviation, &scores, &labels, &mut rng);
            let _ = loss.clone().into_scalar::<f32>();
            let t1 = Instant::now();
            let mut grads = GradientsParams::from_grads(loss.backward(), &model);
            let t2 = Instant::now();
            clip_global_norm(&model, &mut grads, 1.0);
            model = optim.step(2e-4, model, grads);
            let t3 = Instant::now();
            if i > 0 {
                fwd += (t1 - t0).as_secs_f64();
                bwd += (t2 - t1).as_secs_f64();
                opt += (t3 - t2).as_secs_f64();
            }
        } else {
            for (_, scores) in model.score(x.clone(), &maps).iter() {
                let _ = scores.into_data();
            }
        }
        if i > 0 {
            total += t0.elapsed().as_secs_f64();
        }
    }
    let n = steps as f64;
    println!(
        "{} {} {} {} {}",
        (steps * batch) as f64 / total,
        peak_rss_mib(),
        fwd / n,
        bwd / n,
        opt / n
    );
}

fn main() {
    let img = env_usize("DRA_BENCH_IMG", 448);
    let batch = env_usize("DRA_BENCH_BATCH", 48);
    if let Some(case) = case_args() {
        return run_case(
            case[0].parse().expect("backbone"),
            case[1] == "train",
            img,
            batch,
        );
    }
    let python = python_with_torch();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/benches/dra_step.py");
    print_machine(python.as_deref());
    println!(
        "DRA, 4 heads, 2 scales ({img}² and {}²), batch {batch} + {N_REF} references, {} timed step(s) after one warm-up",
        img / 2,
        steps(1)
    );
    println!();
    println!(
        "| backbone | workload | burn img/s | PyTorch img/s | burn / PyTorch | burn peak MiB | PyTorch peak MiB | burn fwd / bwd / optim s | PyTorch fwd / bwd / optim s |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    for kind in [
        BackboneKind::Resnet18,
        BackboneKind::EfficientnetLite0,
        BackboneKind::EfficientnetLite0Head,
    ] {
        for mode in ["train", "eval"] {
            let case: Vec<String> = ["--case", kind.name(), mode].map(String::from).to_vec();
            let ours = child(&me(), &case);
            let theirs = python
                .as_ref()
                .and_then(|p| child(p, &[vec![script.to_string()], case.clone()].concat()));
            let get = |v: &Option<Vec<f64>>, i: usize| v.as_ref().and_then(|v| v.get(i).copied());
            let phases = |v: &Option<Vec<f64>>| match (mode, v) {
                ("train", Some(v)) if v.len() >= 5 => {
                    format!("{:.1} / {:.1} / {:.2}", v[2], v[3], v[4])
                }
                _ => "–".into(),
            };
            let workload = if mode == "train" {
                "training step"
            } else {
                "inference"
            };
            println!(
                "| {kind} | {workload} | {} | {} | {} | {} | {} | {} | {} |",
                fmt(get(&ours, 0), 2),
                fmt(get(&theirs, 0), 2),
                fmt(get(&ours, 0).zip(get(&theirs, 0)).map(|(o, t)| o / t), 2),
                fmt(get(&ours, 1), 0),
                fmt(get(&theirs, 1), 0),
                phases(&ours),
                phases(&theirs),
            );
        }
    }
}
