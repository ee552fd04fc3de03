//! `dra calibrate`: set a run's decision threshold from the user's own validation images.

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;

use dra::data::layout::images_under;
use dra::run::calibrate::calibrate;

use super::output::Bars;

#[derive(Debug, Args)]
pub struct CalibrateArgs {
    /// Run directory written by `dra train`; its decision.json is replaced.
    #[arg(long)]
    model: PathBuf,
    /// Normal validation images, or folders of them (not used in training).
    #[arg(long, required = true, num_args = 1..)]
    normal: Vec<PathBuf>,
    /// Anomalous validation images or folders: the threshold becomes the one with the best
    /// F1 on all the validation images (ties: the higher threshold).
    #[arg(long, num_args = 1..)]
    anomalies: Vec<PathBuf>,
    /// Without --anomalies: the false-positive rate to allow on the normal validation
    /// images [default: the run's --fpr].
    #[arg(long)]
    fpr: Option<f64>,
}

fn expand(paths: &[PathBuf]) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for p in paths {
        out.extend(images_under(p)?);
    }
    Ok(out)
}

pub fn run(a: CalibrateArgs) -> Result<()> {
    let (normals, anomalies) = (expand(&a.normal)?, expand(&a.anomalies)?);
    let mut bars = Bars::new(0, 0);
    let c = calibrate(&a.model, &normals, &anomalies, a.fpr, &mut bars)?;
    if let Some(old) = &c.previous {
        println!("previous threshold: {:.4} ({})", old.threshold, old.source);
    }
    let how = match (c.decision.fpr, c.decision.f1) {
        (_, Some(f1)) => format!("F1 {f1:.3}"),
        (Some(fpr), _) => format!("at most {:.1} % of them flagged", 100.0 * fpr),
        _ => String::new(),
    };
    println!(
        "new threshold: {:.4} from {} ({how}), written to {}",
        c.decision.threshold,
        c.decision.source,
        a.model.join(dra::run::files::DECISION).display()
    );
    let d = &c.on_validation;
    println!(
        "on the validation images: flagged {} of {} anomalies and {} of {} normals",
        d.true_positives,
        d.true_positives + d.false_negatives,
        d.false_positives,
        d.false_positives + d.true_negatives
    );
    Ok(())
}
