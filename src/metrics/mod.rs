//! Image-level metrics: AUC-ROC and average precision computed as scikit-learn's
//! `roc_auc_score` and `average_precision_score` do (ties grouped at one threshold),
//! the ROC and PR curve points, and AUC-ROC per anomaly class.

pub mod pixel;

use std::collections::BTreeMap;

use serde::Serialize;

use crate::error::{Error, Result};
use crate::types::Decisions;

/// Points of a curve, one per distinct score threshold (highest threshold first).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Curve {
    pub x: Vec<f64>,
    pub y: Vec<f64>,
    pub thresholds: Vec<f64>,
}

/// Cumulative true and false positives at each distinct threshold, scores descending
/// (scikit-learn's `_binary_clf_curve`).
struct Counts {
    tps: Vec<f64>,
    fps: Vec<f64>,
    thresholds: Vec<f64>,
}

fn counts(labels: &[bool], scores: &[f64]) -> Result<Counts> {
    if labels.len() != scores.len() {
        return Err(Error::Setting(format!(
            "{} labels but {} scores",
            labels.len(),
            scores.len()
        )));
    }
    if let Some(s) = scores.iter().find(|s| !s.is_finite()) {
        return Err(Error::Setting(format!("score {s} is not finite")));
    }
    let n_pos = labels.iter().filter(|l| **l).count();
    if n_pos == 0 || n_pos == labels.len() {
        return Err(Error::Setting(
            "the metrics need both normal and anomalous samples".into(),
        ));
    }
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]));
    let (mut tp, mut fp) = (0.0, 0.0);
    let mut c = Counts {
        tps: vec![],
        fps: vec![],
        thresholds: vec![],
    };
    for (k, &i) in order.iter().enumerate() {
        if labels[i] {
            tp += 1.0;
        } else {
            fp += 1.0;
        }
        let last_of_tie = order.get(k + 1).is_none_or(|&j| scores[j] != scores[i]);
        if last_of_tie {
            c.tps.push(tp);
            c.fps.push(fp);
            c.thresholds.push(scores[i]);
        }
    }
    Ok(c)
}

/// ROC curve: x = false positive rate, y = true positive rate, starting at (0, 0)
/// with threshold +∞ (all points kept, no collinear ones dropped).
pub fn roc_curve(labels: &[bool], scores: &[f64]) -> Result<Curve> {
    let c = counts(labels, scores)?;
    let (p, n) = (*c.tps.last().unwrap(), *c.fps.last().unwrap());
    let mut curve = Curve {
        x: vec![0.0],
        y: vec![0.0],
        thresholds: vec![f64::INFINITY],
    };
    for k in 0..c.tps.len() {
        curve.x.push(c.fps[k] / n);
        curve.y.push(c.tps[k] / p);
        curve.thresholds.push(c.thresholds[k]);
    }
    Ok(curve)
}

/// Area under the ROC curve by the trapezoidal rule (= `roc_auc_score`).
pub fn auc_roc(labels: &[bool], scores: &[f64]) -> Result<f64> {
    let c = roc_curve(labels, scores)?;
    Ok(c.x
        .windows(2)
        .zip(c.y.windows(2))
        .map(|(x, y)| (x[1] - x[0]) * (y[1] + y[0]) / 2.0)
        .sum())
}

/// Precision-recall curve: x = recall, y = precision, highest threshold first.
pub fn pr_curve(labels: &[bool], scores: &[f64]) -> Result<Curve> {
    let c = counts(labels, scores)?;
    let p = *c.tps.last().unwrap();
    Ok(Curve {
        x: c.tps.iter().map(|tp| tp / p).collect(),
        y: c.tps
            .iter()
            .zip(&c.fps)
            .map(|(tp, fp)| tp / (tp + fp))
            .collect(),
        thresholds: c.thresholds,
    })
}

/// Average precision, Σ (Rₖ − Rₖ₋₁)·Pₖ (= `average_precision_score`, step-wise, not trapezoidal).
pub fn average_precision(labels: &[bool], scores: &[f64]) -> Result<f64> {
    let c = pr_curve(labels, scores)?;
    let mut prev = 0.0;
    let mut ap = 0.0;
    for (r, p) in c.x.iter().zip(&c.y) {
        ap += (r - prev) * p;
        prev = *r;
    }
    Ok(ap)
}

/// AUC-ROC of each anomaly class against all normals; `classes[i]` is `None` for a normal.
pub fn per_class_auc_roc(
    classes: &[Option<&str>],
    scores: &[f64],
) -> Result<BTreeMap<String, f64>> {
    let names: std::collections::BTreeSet<&str> = classes.iter().flatten().copied().collect();
    let mut out = BTreeMap::new();
    for name in names {
        let (labels, sub): (Vec<bool>, Vec<f64>) = classes
            .iter()
            .zip(scores)
            .filter(|(c, _)| c.is_none() || **c == Some(name))
            .map(|(c, s)| (c.is_some(), *s))
            .unzip();
        out.insert(name.to_string(), auc_roc(&labels, &sub)?);
    }
    Ok(out)
}

/// The decision threshold that flags at most ⌊fpr · n⌋ of `normal_scores` (flagged: above
/// the threshold): the (n − ⌊fpr · n⌋)-th smallest of them.
pub fn threshold_at_fpr(normal_scores: &[f64], fpr: f64) -> Result<f64> {
    if normal_scores.is_empty() || !(0.0..1.0).contains(&fpr) {
        return Err(Error::Setting(format!(
            "a threshold at --fpr {fpr} needs normal scores and 0 <= fpr < 1"
        )));
    }
    let mut sorted = normal_scores.to_vec();
    sorted.sort_by(f64::total_cmp);
    let allowed = ((fpr * sorted.len() as f64).floor() as usize).min(sorted.len() - 1);
    Ok(sorted[sorted.len() - 1 - allowed])
}

/// The confusion matrix, precision, recall and F1 of flagging scores above `threshold`.
pub fn decisions(labels: &[bool], scores: &[f64], threshold: f64) -> Decisions {
    let count = |anomaly: bool, flagged: bool| {
        labels
            .iter()
            .zip(scores)
            .filter(|&(&l, &s)| l == anomaly && (s > threshold) == flagged)
            .count()
    };
    let (tp, fp) = (count(true, true), count(false, true));
    let (tn, fneg) = (count(false, false), count(true, false));
    let ratio = |a: usize, b: usize| if b == 0 { 0.0 } else { a as f64 / b as f64 };
    let (precision, recall) = (ratio(tp, tp + fp), ratio(tp, tp + fneg));
    let f1 = match precision + recall {
        0.0 => 0.0,
        sum => 2.0 * precision * recall / sum,
    };
    Decisions {
        threshold,
        true_positives: tp,
        false_positives: fp,
        true_negatives: tn,
        false_negatives: fneg,
        precision,
        recall,
        f1,
    }
}

/// The largest F1 over all thresholds, with a threshold that gives it (halfway between the
/// lowest flagged score and the next lower one).
pub fn f1_max(labels: &[bool], scores: &[f64]) -> Result<(f64, f64)> {
    let c = counts(labels, scores)?;
    let positives = *c.tps.last().expect("non-empty");
    let mut best = (0.0, f64::INFINITY);
    for i in 0..c.tps.len() {
        let (tp, fp) = (c.tps[i], c.fps[i]);
        let f1 = 2.0 * tp / (tp + fp + positives);
        if f1 > best.0 {
            let below = c
                .thresholds
                .get(i + 1)
                .copied()
                .unwrap_or(c.thresholds[i] - 1.0);
            best = (f1, (c.thresholds[i] + below) / 2.0);
        }
    }
    Ok(best)
}
