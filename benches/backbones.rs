//! Speed of each backbone at 448², batch 8: one training step (forward, backward, Adam) and
//! an evaluation forward, in images per second with the peak resident memory of the process,
//! beside the same workload in PyTorch when a Python with torch + torchvision is present.
//!
//! ```sh
//! cargo bench --bench backbones                         # Python from $DRA_BENCH_PYTHON or python3
//! DRA_BENCH_STEPS=5 cargo bench --bench backbones
//! ```
//!
//! Each case runs in its own process so that peak memory is per case.

use std::time::Instant;

use burn::optim::{AdamConfig, GradientsParams};
use burn::prelude::*;
use burn::tensor::Distribution;
use dra::model::backbone::{Backbone, BackboneKind};

#[path = "support/mod.rs"]
mod support;

use support::{case_args, child, fmt, me, peak_rss_mib, print_machine, python_with_torch, steps};

const BATCH: usize = 8;
const SIZE: usize = 448;
const BACKBONES: [BackboneKind; 2] = [BackboneKind::Resnet18, BackboneKind::EfficientnetLite0];

/// Runs one case and prints `images/s peak-MiB`.
fn run_case(kind: BackboneKind, train: bool) {
    dra::device::reuse_freed_memory();
    let steps = steps(3);
    let base = Device::flex();
    let device = if train { base.autodiff() } else { base };
    device.seed(0);
    let mut model = Backbone::new(kind, &device);
    let x = Tensor::<4>::random(
        [BATCH, 3, SIZE, SIZE],
        Distribution::Normal(0.0, 1.0),
        &device,
    );
    let mut optim = AdamConfig::new().with_epsilon(1e-8).init();
    let mut elapsed = 0.0;
    for i in 0..=steps {
        let start = Instant::now();
        if train {
            let loss = model.features(x.clone()).mean();
            let grads = GradientsParams::from_grads(loss.backward(), &model);
            model = optim.step(1e-4, model, grads);
        } else {
            let _ = model.features(x.clone()).into_data();
        }
        if i > 0 {
            elapsed += start.elapsed().as_secs_f64(); // step 0 is warm-up
        }
    }
    println!("{} {}", (steps * BATCH) as f64 / elapsed, peak_rss_mib());
}

fn main() {
    if let Some(case) = case_args() {
        return run_case(case[0].parse().expect("backbone"), case[1] == "train");
    }
    let python = python_with_torch();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/benches/backbones.py");
    print_machine(python.as_deref());
    println!(
        "batch {BATCH}, {SIZE}×{SIZE}, {} timed steps after one warm-up",
        steps(3)
    );
    println!();
    println!(
        "| backbone | workload | burn flex img/s | PyTorch img/s | burn / PyTorch | burn peak MiB | PyTorch peak MiB |"
    );
    println!("|---|---|---|---|---|---|---|");
    for kind in BACKBONES {
        for mode in ["train", "eval"] {
            let case = vec![
                "--case".to_string(),
                kind.name().to_string(),
                mode.to_string(),
            ];
            let ours = child(&me(), &case);
            let theirs = python
                .as_ref()
                .and_then(|p| child(p, &[vec![script.to_string()], case.clone()].concat()));
            let get = |v: &Option<Vec<f64>>, i: usize| v.as_ref().and_then(|v| v.get(i).copied());
            let workload = if mode == "train" {
                "train step (fwd+bwd+Adam)"
            } else {
                "eval forward"
            };
            println!(
                "| {kind} | {workload} | {} | {} | {} | {} | {} |",
                fmt(get(&ours, 0), 2),
                fmt(get(&theirs, 0), 2),
                fmt(get(&ours, 0).zip(get(&theirs, 0)).map(|(o, t)| o / t), 2),
                fmt(get(&ours, 1), 0),
                fmt(get(&theirs, 1), 0),
            );
        }
    }
}
