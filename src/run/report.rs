//! The run directory: `config.json`, `model.safetensors`, `metrics.json`, `scores.csv`,
//! `normal_scores.csv`, `train_log.csv` and the plots (`scores`, `roc`, `pr` as PNG and SVG).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::fusion::Fusion;
use crate::metrics::{
    auc_roc, average_precision, decisions, f1_max, per_class_auc_roc, pr_curve, roc_curve,
};
use crate::run::files::write_json;
use crate::run::plot;
use crate::run::train::EpochLog;
use crate::types::{Auc, Metrics, PixelMetrics};
use crate::types::{Head, Scored};

impl Metrics {
    /// Computes the metrics of scored test images, with the standardised combination's
    /// when the heads' statistics are given and the decisions at `threshold` if any.
    pub fn of(scored: &[Scored], fusion: &Fusion, threshold: Option<f64>) -> Result<Self> {
        let labels: Vec<bool> = scored.iter().map(|s| s.anomaly).collect();
        let auc = |scores: &[f64]| -> Result<Auc> {
            Ok(Auc {
                auc_roc: auc_roc(&labels, scores)?,
                auc_pr: average_precision(&labels, scores)?,
            })
        };
        let total: Vec<f64> = scored.iter().map(|s| s.score as f64).collect();
        let overall = auc(&total)?;
        let mut heads = BTreeMap::new();
        for (k, (head, _)) in scored
            .first()
            .map(|s| s.heads.clone())
            .unwrap_or_default()
            .into_iter()
            .enumerate()
        {
            let values: Vec<f64> = scored
                .iter()
                .map(|s| (head.sign() * s.heads[k].1) as f64)
                .collect();
            heads.insert(head.name().to_string(), auc(&values)?);
        }
        let classes: Vec<Option<&str>> = scored
            .iter()
            .map(|s| s.anomaly.then_some(s.class.as_str()))
            .collect();
        let standardised = match fusion.parts.0.is_empty() {
            false => {
                let rule = fusion.standardised();
                let z: Vec<f64> = scored.iter().map(|s| rule.score(&s.heads) as f64).collect();
                Some(auc(&z)?)
            }
            true => None,
        };
        Ok(Metrics {
            auc_roc: overall.auc_roc,
            auc_pr: overall.auc_pr,
            heads,
            classes: per_class_auc_roc(&classes, &total)?,
            standardised,
            decision: threshold.map(|t| decisions(&labels, &total, t)),
            f1_max: Some(f1_max(&labels, &total)?),
            pixel: None,
        })
    }
}

fn write(path: &Path, text: &str) -> Result<()> {
    std::fs::write(path, text).map_err(|e| Error::io(path, e))
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// A CSV table: the `leading` columns, then one column per head; each row gives its
/// leading fields (already joined) and its head values.
fn csv_with_heads<'a>(
    leading: &str,
    rows: impl Iterator<Item = (String, &'a [(Head, f32)])>,
) -> String {
    let mut rows = rows.peekable();
    let mut out = String::from(leading);
    for (h, _) in rows.peek().map_or(&[][..], |(_, heads)| heads) {
        write!(out, ",{h}").unwrap();
    }
    out.push('\n');
    for (fields, heads) in rows {
        out += &fields;
        for (_, v) in heads {
            write!(out, ",{v}").unwrap();
        }
        out.push('\n');
    }
    out
}

/// The decision of `score` at `threshold` (flagged above it): `anomalous`, `normal`, or `-`
/// without a threshold.
pub fn decision_text(score: f32, threshold: Option<f64>) -> &'static str {
    match threshold.map(|t| score as f64 > t) {
        Some(true) => "anomalous",
        Some(false) => "normal",
        None => "-",
    }
}

/// `dra predict --csv`: path, score, decision at `threshold`, then one column per head.
pub fn predictions_csv(scored: &[Scored], threshold: Option<f64>) -> String {
    csv_with_heads(
        "path,score,decision",
        scored.iter().map(|s| {
            let fields = format!(
                "{},{},{}",
                csv_field(&s.path.to_string_lossy()),
                s.score,
                decision_text(s.score, threshold)
            );
            (fields, &s.heads[..])
        }),
    )
}

/// `scores.csv`: path, label (0 normal / 1 anomaly), class, score, then one column per head.
pub fn scores_csv(scored: &[Scored]) -> String {
    csv_with_heads(
        "path,label,class,score",
        scored.iter().map(|s| {
            let fields = format!(
                "{},{},{},{}",
                csv_field(&s.path.to_string_lossy()),
                u8::from(s.anomaly),
                csv_field(&s.class),
                s.score
            );
            (fields, &s.heads[..])
        }),
    )
}

/// `train_log.csv`: epoch, lr, mean loss, then each head's mean loss.
pub fn train_log_csv(logs: &[EpochLog]) -> String {
    csv_with_heads(
        "epoch,lr,loss",
        logs.iter()
            .map(|l| (format!("{},{},{}", l.epoch, l.lr, l.loss), &l.heads[..])),
    )
}

/// Writes metrics, scores and plots of an evaluation into `dir`; returns the metrics.
pub fn write_evaluation(
    dir: &Path,
    scored: &[Scored],
    fusion: &Fusion,
    threshold: Option<f64>,
    pixel: Option<PixelMetrics>,
    title: &str,
) -> Result<Metrics> {
    let metrics = Metrics {
        pixel,
        ..Metrics::of(scored, fusion, threshold)?
    };
    write_json(&dir.join("metrics.json"), &metrics)?;
    write(&dir.join("scores.csv"), &scores_csv(scored))?;
    let labels: Vec<bool> = scored.iter().map(|s| s.anomaly).collect();
    let total: Vec<f64> = scored.iter().map(|s| s.score as f64).collect();
    plot::scores(
        &dir.join("scores"),
        scored,
        &format!(
            "{title}: AUC-ROC {:.4}, AUC-PR {:.4}",
            metrics.auc_roc, metrics.auc_pr
        ),
    )?;
    plot::curve(
        &dir.join("roc"),
        &roc_curve(&labels, &total)?,
        &format!("ROC, AUC {:.4}", metrics.auc_roc),
        "false positive rate",
        "true positive rate",
        false,
    )?;
    plot::curve(
        &dir.join("pr"),
        &pr_curve(&labels, &total)?,
        &format!("precision-recall, AP {:.4}", metrics.auc_pr),
        "recall",
        "precision",
        true,
    )?;
    Ok(metrics)
}

/// The plot files an evaluation writes into `dir`.
pub fn plot_files(dir: &Path) -> Vec<PathBuf> {
    ["scores", "roc", "pr"]
        .iter()
        .flat_map(|s| ["png", "svg"].map(|e| dir.join(format!("{s}.{e}"))))
        .collect()
}

/// Writes `normal_scores.csv`: the normal training images' part scores that the score rule
/// is fitted on and their scores under it, which set the decision threshold (the memory's
/// against the other half's bank), kept so that the rule can be fitted again without the
/// model.
pub fn write_normal_scores(dir: &Path, normals: &[Scored]) -> Result<()> {
    write(&dir.join(NORMAL_SCORES), &scores_csv(normals))
}

/// The run directory's scores of the normal training images ([`write_normal_scores`]).
pub const NORMAL_SCORES: &str = "normal_scores.csv";

/// The part scores of each row of a run's `normal_scores.csv` (the parts named by the last
/// columns of its header; a path's quoted commas come before them).
pub fn read_normal_scores(dir: &Path) -> Result<Vec<Vec<(Head, f32)>>> {
    let path = dir.join(NORMAL_SCORES);
    let bad = |m: String| Error::run_file(&path, m);
    let text = std::fs::read_to_string(&path).map_err(|e| {
        bad(format!(
            "cannot read it ({e}): the run was trained before runs kept it, train it again"
        ))
    })?;
    let mut lines = text.lines();
    let parts: Vec<Head> = lines
        .next()
        .unwrap_or_default()
        .split(',')
        .skip(4)
        .map(|name| {
            Head::named(name).ok_or_else(|| bad(format!("unknown part '{name}' in the header")))
        })
        .collect::<Result<_>>()?;
    lines
        .enumerate()
        .map(|(i, line)| {
            let fields: Vec<&str> = line.rsplitn(parts.len() + 1, ',').collect();
            if fields.len() != parts.len() + 1 {
                return Err(bad(format!("line {} has too few fields", i + 2)));
            }
            parts
                .iter()
                .zip(fields.iter().rev().skip(1))
                .map(|(&h, v)| {
                    let value = v
                        .parse()
                        .map_err(|_| bad(format!("line {}: '{v}' is not a number", i + 2)))?;
                    Ok((h, value))
                })
                .collect()
        })
        .collect()
}

/// Writes the per-epoch losses.
pub fn write_train_log(dir: &Path, logs: &[EpochLog]) -> Result<()> {
    write(&dir.join("train_log.csv"), &train_log_csv(logs))
}
