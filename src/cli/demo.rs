//! `dra demo`: the built-in example on the ELPV subset bundled in the repository.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::Args;

use super::preview::{BatchArgs, write_preview};
use dra::convert::Converter;
use dra::layout::DatasetLayout;
use dra::protocol::{Protocol, Split};

/// The bundled ELPV subset, in the package's own layout.
const DEMO_DATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/data/elpv-demo");

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Folder for the demo's converted data and outputs (replaced if it exists).
    #[arg(long, default_value = "runs/demo")]
    out: PathBuf,
    /// Seed of every random choice.
    #[arg(long, default_value_t = 42)]
    seed: u64,
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

    let layout = DatasetLayout::open(&data_root, "elpv")?;
    let mut rng = dra::rng::seeded(a.seed);
    let split = Split::new(
        &layout,
        &Protocol::General {
            test_threshold: None,
        },
        10,
        &mut rng,
    )?;
    println!(
        "2. general protocol, 10 seen anomalies: train {} normal + {} seen, test {} ({} anomalies)",
        split.train_normal.len(),
        split.train_anomaly.len(),
        split.test.len(),
        split.n_test_anomalies()
    );

    let out = a.out.join("batch.png");
    let batch = BatchArgs {
        img_size: 160,
        batch_size: 12,
        n_ref: 5,
        ref_mode: dra::sampler::RefMode::Fixed,
    };
    write_preview(&split, &batch, &mut rng, &out)?;
    println!(
        "3. one training batch with its reference set: {}",
        out.display()
    );
    println!(
        "   (blue: reference set, green: normal, orange: CutMix pseudo anomaly, red: seen anomaly)"
    );
    println!("training and evaluation of the DRA model are not built yet (issue #4)");
    Ok(())
}
