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

use std::process::Command;
use std::time::Instant;

use burn::optim::{AdamConfig, GradientsParams};
use burn::prelude::*;
use burn::tensor::Distribution;
use dra::backbone::{Backbone, BackboneKind};

const BATCH: usize = 8;
const SIZE: usize = 448;
const BACKBONES: [BackboneKind; 2] = [BackboneKind::Resnet18, BackboneKind::EfficientnetLite0];

fn steps() -> usize {
    std::env::var("DRA_BENCH_STEPS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3)
}

/// Peak resident set size of this process in MiB (Linux).
fn peak_rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

/// Runs one case and prints `images/s peak-MiB`.
fn run_case(kind: BackboneKind, train: bool) {
    let steps = steps();
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

/// Runs a case in a child process (`program args…`) and parses `images/s peak-MiB`.
fn child(program: &str, args: &[String]) -> Option<(f64, f64)> {
    let out = Command::new(program).args(args).output().ok()?;
    if !out.status.success() {
        eprintln!(
            "{program} {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        return None;
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let mut it = text.split_whitespace().map(|v| v.parse::<f64>().ok());
    Some((it.next()??, it.next()??))
}

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    if let [flag, name, mode] = &args[..]
        && flag == "--case"
    {
        return run_case(name.parse().expect("backbone"), mode == "train");
    }
    let python = std::env::var("DRA_BENCH_PYTHON").unwrap_or_else(|_| "python3".into());
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/benches/backbones.py");
    let has_torch = Command::new(&python)
        .args(["-c", "import torch, torchvision"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !has_torch {
        eprintln!(
            "no torch + torchvision in {python}: PyTorch columns left empty (set DRA_BENCH_PYTHON)"
        );
    }
    let me = std::env::current_exe().expect("bench binary");
    let me = me.to_str().expect("utf-8 path");
    println!(
        "batch {BATCH}, {SIZE}×{SIZE}, {} timed steps after one warm-up; {} threads",
        steps(),
        rayon_threads()
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
            let ours = child(me, &case);
            let theirs = if has_torch {
                let mut a = vec![script.to_string()];
                a.extend(case.iter().cloned());
                child(&python, &a)
            } else {
                None
            };
            let fmt =
                |v: Option<f64>, digits: usize| v.map_or("–".into(), |v| format!("{v:.digits$}"));
            let workload = if mode == "train" {
                "train step (fwd+bwd+Adam)"
            } else {
                "eval forward"
            };
            println!(
                "| {kind} | {workload} | {} | {} | {} | {} | {} |",
                fmt(ours.map(|o| o.0), 2),
                fmt(theirs.map(|t| t.0), 2),
                fmt(ours.zip(theirs).map(|(o, t)| o.0 / t.0), 2),
                fmt(ours.map(|o| o.1), 0),
                fmt(theirs.map(|t| t.1), 0),
            );
        }
    }
}

fn rayon_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}
