//! `dra split`.

use std::collections::BTreeMap;

use anyhow::Result;
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};

use super::DataArgs;
use dra::data::protocol::Split;

#[derive(Debug, Args)]
pub struct SplitArgs {
    #[command(flatten)]
    data: DataArgs,
    /// Print the whole split (every file with its class) as JSON.
    #[arg(long)]
    json: bool,
    /// Decode every image of the split and stop at the first that cannot be read.
    #[arg(long)]
    check_images: bool,
}

pub fn run(a: SplitArgs) -> Result<()> {
    let (split, _) = a.data.split()?;
    if a.check_images {
        check_images(&split)?;
    }
    if a.json {
        println!("{}", serde_json::to_string_pretty(&split)?);
        return Ok(());
    }
    let mut test: BTreeMap<&str, usize> = BTreeMap::new();
    for s in &split.test {
        *test.entry(&s.class).or_default() += 1;
    }
    println!(
        "training: {} normal, {} seen anomalies",
        split.train_normal.len(),
        split.train_anomaly.len()
    );
    for s in &split.train_anomaly {
        println!("  seen  {:<12} {}", s.class, s.path.display());
    }
    if !split.contamination.is_empty() {
        println!(
            "  of the normal ones, {} are unlabelled anomalies (--cont-rate):",
            split.contamination.len()
        );
        for p in &split.contamination {
            println!("  unlabelled         {}", p.display());
        }
    }
    println!("test: {} images", split.test.len());
    for (class, n) in test {
        println!("  {class:<18}{n:>6}");
    }
    Ok(())
}

fn check_images(split: &Split) -> Result<()> {
    let all: Vec<_> = split
        .train_normal
        .iter()
        .chain(&split.train_anomaly)
        .chain(&split.test)
        .collect();
    let bar = ProgressBar::new(all.len() as u64).with_style(ProgressStyle::with_template(
        "checking images {bar:30} {pos}/{len}",
    )?);
    for s in all {
        dra::data::transform::load_rgb(&s.path)?;
        bar.inc(1);
    }
    bar.finish_and_clear();
    eprintln!("all images decode");
    Ok(())
}
