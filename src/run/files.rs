//! The JSON files of a run directory: `config.json` (every setting and what follows from
//! it), read back by `eval`, `predict` and `--resume`, and any other value written as JSON.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::config::TrainConfig;
use crate::error::{Error, Result};
use crate::run::plan::Derived;

/// `config.json`: every setting and what follows from it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    pub settings: TrainConfig,
    pub derived: Derived,
}

/// The per-head statistics of the normal training images, in runs written before
/// [`FUSION`] (which holds them now).
pub const HEAD_STATS: &str = "head_stats.json";

/// The run directory's fitted score rule ([`crate::fusion::Fusion`]).
pub const FUSION: &str = "fusion.json";

/// The run directory's decision threshold.
pub const DECISION: &str = "decision.json";

/// `decision.json`: the score above which an image is flagged anomalous, and where it came
/// from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Decision {
    pub threshold: f64,
    /// The false-positive rate it was set for on `source`, when set by one.
    pub fpr: Option<f64>,
    /// The F1 it reached on `source`, when set as the F1-max threshold of labelled images.
    #[serde(default)]
    pub f1: Option<f64>,
    pub source: String,
}

/// The checkpoint folder of a run directory.
pub fn checkpoint_dir(out: &Path) -> PathBuf {
    out.join("checkpoint")
}

/// Writes `value` as pretty JSON.
pub fn write_json(path: &Path, value: &impl Serialize) -> Result<()> {
    let text =
        serde_json::to_string_pretty(value).map_err(|e| Error::run_file(path, e.to_string()))?;
    std::fs::write(path, text + "\n").map_err(|e| Error::io(path, e))
}

/// Reads `config.json` of a run directory.
pub fn read_record(dir: &Path) -> Result<RunRecord> {
    read_json(&dir.join("config.json"))
}

/// Reads one JSON file of a run directory.
pub fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        Error::run_file(
            path,
            format!(
                "not a run directory, or one that did not finish ({e}): train one with `dra train`"
            ),
        )
    })?;
    serde_json::from_str(&text).map_err(|e| Error::run_file(path, format!("invalid run file: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_threshold_reads_back_as_written() {
        // 9.656787872314453 (an f32 score) read back as …451 by serde_json's default parser
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(DECISION);
        for threshold in [9.656787872314453, 10.126394271850586, 0.1 + 0.2, -3.0e-7] {
            let decision = Decision {
                threshold,
                fpr: Some(0.05),
                f1: None,
                source: "a test".into(),
            };
            write_json(&path, &decision).unwrap();
            let back: Decision = read_json(&path).unwrap();
            assert_eq!(back.threshold.to_bits(), threshold.to_bits(), "{threshold}");
        }
    }
}
