//! `dra demo`: the built-in example. Converts the ELPV subset bundled in the repository,
//! trains DRA with the bundled EfficientNet-Lite0 at a small image size, evaluates it and
//! writes the run directory with its plots.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::Args;

use super::output::{Bars, create_run_dir, print_metrics};
use super::preview::{BatchArgs, write_preview};
use dra::config::TrainConfig;
use dra::data::convert::Converter;
use dra::data::reference::RefMode;
use dra::run::Plan;

/// The bundled ELPV subset, in the package's own layout.
const DEMO_DATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/data/elpv-demo");

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Folder for the demo's converted data and run (replaced if it exists).
    #[arg(long, default_value = "runs/demo")]
    out: PathBuf,
    /// Seed of every random choice.
    #[arg(long, default_value_t = 42)]
    seed: u64,
}

/// The demo's settings: the defaults of `dra train` on the bundled data.
pub fn demo_config(data_root: &Path, seed: u64) -> TrainConfig {
    TrainConfig {
        data_root: data_root.to_path_buf(),
        class: "elpv".into(),
        seed,
        ..TrainConfig::default()
    }
}

pub fn run(a: DemoArgs) -> Result<()> {
    let data_root = a.out.join("data");
    if data_root.exists() {
        std::fs::remove_dir_all(&data_root)
            .with_context(|| format!("cannot clear {}", data_root.display()))?;
    }
    println!("1. convert the bundled ELPV subset ({DEMO_DATA})");
    let s = Converter::Elpv.run(Path::new(DEMO_DATA), &data_root, a.seed)?;
    println!(
        "   {} train/good, {} test/good, anomalies {:?}",
        s.train_good, s.test_good, s.anomalies
    );

    let cfg = demo_config(&data_root, a.seed);
    let mut plan = Plan::new(&cfg)?;
    let split = &plan.split;
    println!(
        "2. general protocol, {} seen anomalies: train {} normal + {} seen, test {} ({} anomalies)",
        cfg.n_anomaly,
        split.train_normal.len(),
        split.train_anomaly.len(),
        split.test.len(),
        split.n_test_anomalies()
    );
    let run_dir = a.out.join("run");
    create_run_dir(&run_dir, true)?;
    let preview = run_dir.join("batch.png");
    let batch = BatchArgs {
        img_size: cfg.img_size as u32,
        batch_size: 12,
        n_ref: cfg.n_ref,
        ref_mode: RefMode::Fixed,
        method: cfg.method,
    };
    // from a copy of the plan's generator: the picture does not change what is trained
    write_preview(split, &batch, &mut plan.rng.clone(), &preview)?;
    println!(
        "3. a training batch with its reference set: {}",
        preview.display()
    );
    println!(
        "4. train DRA ({}, {}², {} epochs × {} steps of {}) and evaluate",
        cfg.backbone, cfg.img_size, cfg.epochs, cfg.steps_per_epoch, cfg.batch_size
    );
    let mut bars = Bars::new(cfg.epochs, cfg.steps_per_epoch);
    let metrics = dra::run::train_and_evaluate(&mut plan, &run_dir, false, &mut bars)?;
    print_metrics(&run_dir, &metrics);
    println!("5. the unsupervised baselines on the same split (no anomaly seen, nothing trained)");
    let knn = dra::baselines::knn_baseline_beside(&mut plan, &metrics)?;
    for (name, auc) in [("pooled kNN", knn.pooled), ("patch kNN", knn.patch)] {
        println!(
            "   {name:<10} AUC-ROC: {:.4}, AUC-PR: {:.4}",
            auc.auc_roc, auc.auc_pr
        );
    }
    Ok(())
}
