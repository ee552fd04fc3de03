//! `dra eval`: re-evaluate a saved run on its test split.

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;

use dra::fusion::PartWeights;
use dra::run;

use super::output::{Bars, print_metrics};

#[derive(Debug, Args)]
pub struct EvalArgs {
    /// Run directory written by `dra train`.
    #[arg(long)]
    model: PathBuf,
    /// Also write every test image's anomaly map into this folder: `<class>_<name>.png`
    /// (the image in grey under the map, with the score scale) and `<class>_<name>.npy`
    /// (float32, the image's own height × width; `numpy.load` reads it).
    #[arg(long, value_name = "DIR")]
    maps: Option<PathBuf>,
    /// Score with these part weights (`part=weight`, as `dra train --part-weights`), fitted
    /// anew on the run's normal training images (their part scores in normal_scores.csv; no
    /// retraining), and keep them, with the decision threshold they give, in the run.
    #[arg(long, value_name = "WEIGHTS")]
    part_weights: Option<PartWeights>,
}

pub fn run(a: EvalArgs) -> Result<()> {
    let mut bars = Bars::new(0, 0);
    let metrics = run::evaluate_run(&a.model, a.maps.as_deref(), a.part_weights, &mut bars)?;
    print_metrics(&a.model, &metrics);
    if let Some(dir) = &a.maps {
        println!("maps: {}", dir.display());
    }
    Ok(())
}
