//! Calibration: a run's decision threshold set again from the user's own validation images,
//! which the model did not train on: the F1-max threshold when labelled anomalies are given,
//! else the score that flags at most the target false-positive rate of the normals.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::metrics::{decisions, f1_max, threshold_at_fpr};
use crate::run::files::{DECISION, Decision, read_record, write_json};
use crate::run::{Progress, predict, saved_decision};
use crate::types::Decisions;

/// What calibration did.
#[derive(Debug, Clone)]
pub struct Calibration {
    /// The new threshold, now in the run's `decision.json`.
    pub decision: Decision,
    /// The one it replaced, if any.
    pub previous: Option<Decision>,
    /// What the new threshold does on the validation images.
    pub on_validation: Decisions,
}

/// Sets the decision threshold of the run in `dir` from `normals` and `anomalies` (validation
/// images; `fpr`, default the run's, when there are no anomalies) and writes it to the run's
/// `decision.json`. Every image must be readable: nothing is written otherwise.
pub fn calibrate(
    dir: &Path,
    normals: &[PathBuf],
    anomalies: &[PathBuf],
    fpr: Option<f64>,
    progress: &mut impl Progress,
) -> Result<Calibration> {
    if normals.is_empty() {
        return Err(Error::Setting(
            "calibration needs normal validation images (--normal)".into(),
        ));
    }
    let fpr = match fpr {
        Some(f) => f,
        None => read_record(dir)?.settings.fpr,
    };
    let images: Vec<PathBuf> = normals.iter().chain(anomalies).cloned().collect();
    let p = predict(dir, &images, None, progress)?;
    if let Some((_, e)) = p.failed.into_iter().next() {
        // the error names the file
        return Err(Error::Setting(format!(
            "cannot calibrate, every validation image must be readable: {e}"
        )));
    }
    let labels: Vec<bool> = (0..images.len()).map(|i| i >= normals.len()).collect();
    let scores: Vec<f64> = p.scored.iter().map(|s| s.score as f64).collect();
    let decision = match anomalies.is_empty() {
        true => Decision {
            threshold: threshold_at_fpr(&scores, fpr)?,
            fpr: Some(fpr),
            f1: None,
            source: format!("{} normal validation images", normals.len()),
        },
        false => {
            let (f1, threshold) = f1_max(&labels, &scores)?;
            Decision {
                threshold,
                fpr: None,
                f1: Some(f1),
                source: format!(
                    "F1-max on {} normal and {} anomalous validation images",
                    normals.len(),
                    anomalies.len()
                ),
            }
        }
    };
    let previous = saved_decision(dir)?;
    write_json(&dir.join(DECISION), &decision)?;
    Ok(Calibration {
        on_validation: decisions(&labels, &scores, decision.threshold),
        decision,
        previous,
    })
}
