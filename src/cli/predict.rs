//! `dra predict`: score images or folders of images with a saved run.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;

use dra::data::layout::images_under;
use dra::run;
use dra::run::report::{decision_text, predictions_csv};
use dra::types::{Head, Scored};
use serde_json::{Value, json};

use super::output::Bars;

#[derive(Debug, Args)]
pub struct PredictArgs {
    /// Run directory written by `dra train`.
    #[arg(long)]
    model: PathBuf,
    /// Images to score, or folders: every image under a folder (sub-folders too, in name
    /// order).
    #[arg(required = true)]
    images: Vec<PathBuf>,
    /// Print JSON: {"path", "score", "anomalous", "threshold", "heads": {name: score}} per
    /// image.
    #[arg(long)]
    json: bool,
    /// Also write one row per image to this CSV file: path, score, decision, each head.
    #[arg(long, value_name = "FILE")]
    csv: Option<PathBuf>,
    /// Also write each image's anomaly map into this folder: `<name>.png` (the image in grey
    /// under the map, with the score scale) and `<name>.npy` (float32, the image's own
    /// height × width; `numpy.load` reads it).
    #[arg(long, value_name = "DIR")]
    maps: Option<PathBuf>,
}

pub fn run(a: PredictArgs) -> Result<()> {
    let mut images = Vec::new();
    for path in &a.images {
        images.extend(images_under(path)?);
    }
    if images.is_empty() {
        anyhow::bail!(
            "no images found in the given folders (looked for png, jpg, jpeg, bmp, tif, tiff)"
        );
    }
    let mut bars = Bars::new(0, 0);
    let run::Predictions {
        scored,
        failed,
        threshold,
    } = run::predict(&a.model, &images, a.maps.as_deref(), &mut bars)?;
    if let Some(path) = &a.csv {
        std::fs::write(path, predictions_csv(&scored, threshold))
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    print_predictions(&scored, threshold, a.json)?;
    for (_, e) in &failed {
        eprintln!("not scored: {}", super::one_line(e));
    }
    if !failed.is_empty() {
        anyhow::bail!(
            "{} of {} images could not be read (listed above); the others are scored",
            failed.len(),
            images.len()
        );
    }
    Ok(())
}

/// One image's scores as `--json` gives them (without its path): the score, the decision
/// at `threshold`, the threshold and each head's score.
pub fn prediction_json(score: f32, heads: &[(Head, f32)], threshold: Option<f64>) -> Value {
    let heads: serde_json::Map<_, _> = heads
        .iter()
        .map(|(h, v)| (h.name().to_string(), json!(v)))
        .collect();
    json!({
        "score": score,
        "anomalous": threshold.map(|t| score as f64 > t),
        "threshold": threshold,
        "heads": heads,
    })
}

/// The scores and decisions as a table (or JSON) on standard output.
fn print_predictions(scored: &[Scored], threshold: Option<f64>, json: bool) -> Result<()> {
    if json {
        let rows: Vec<_> = scored
            .iter()
            .map(|s| {
                let mut row = prediction_json(s.score, &s.heads, threshold);
                row["path"] = serde_json::json!(s.path);
                row
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(());
    }
    let heads: Vec<String> = scored
        .first()
        .map(|s| s.heads.iter().map(|(h, _)| h.to_string()).collect())
        .unwrap_or_default();
    if let Some(t) = threshold {
        println!("decision: anomalous when the score is above {t:.4} (the run's decision.json)");
    }
    print!("{:>10} {:>9}", "score", "decision");
    for h in &heads {
        print!(" {h:>10}");
    }
    println!("  image");
    for s in scored {
        print!("{:>10.4} {:>9}", s.score, decision_text(s.score, threshold));
        for (_, v) in &s.heads {
            print!(" {v:>10.4}");
        }
        println!("  {}", s.path.display());
    }
    Ok(())
}
