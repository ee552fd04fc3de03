//! Running a grid: each cell trained (or read back when finished before), the kNN baselines
//! once a split, and the results read back.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Instant;

use serde::{Deserialize, Serialize};

use crate::baselines::{Baselines, knn_baseline_beside};
use crate::config::TrainConfig;
use crate::error::{Error, Result};
use crate::run::files::write_json;
use crate::run::{Plan, Progress, resumable, train_and_evaluate};
use crate::types::{Auc, Metrics, PixelAuc};

use super::{Cell, Grid, Settings};

/// The outcome of a cell.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CellResult {
    pub values: Settings,
    pub dra: Auc,
    pub knn: Option<Auc>,
    /// The patch-kNN baseline (absent in results written before it existed).
    #[serde(default)]
    pub patch_knn: Option<Auc>,
    /// AUC-ROC of each head's score alone (the normal head negated), by head name.
    #[serde(default)]
    pub heads: BTreeMap<String, f64>,
    /// DRA's anomaly maps against the masks, where the test set has them.
    #[serde(default)]
    pub pixel: Option<PixelAuc>,
    /// Patch kNN's maps against the masks.
    #[serde(default)]
    pub patch_knn_pixel: Option<PixelAuc>,
    /// Wall time of training and evaluation in the invocation that finished the cell (a
    /// resumed cell counts only its last part).
    pub seconds: f64,
    /// The CPU that `seconds` was measured on ([`device::cpu`](crate::device::cpu); absent in
    /// results written before it was recorded).
    #[serde(default)]
    pub cpu: Option<String>,
}

impl CellResult {
    /// The split's baselines as this cell reported them, where it has both.
    fn baselines(&self) -> Option<Baselines> {
        Some(Baselines {
            pooled: self.knn?,
            patch: self.patch_knn?,
            patch_pixel: self.patch_knn_pixel,
        })
    }
}

/// What the kNN baselines depend on: the test split, the backbone, the input size and, since
/// patch kNN is taken from a run's memory where it has one, the run's input normalisation.
fn knn_key(c: &TrainConfig) -> String {
    format!(
        "{:?}|{:?}|{:?}|{}|{}|{:?}|{}|{:?}|{}|{}|{:?}|{}|{:?}",
        c.data_root,
        c.normal,
        c.anomalies,
        c.split_seed,
        c.class,
        c.known_class,
        c.n_anomaly,
        c.test_threshold,
        c.seed,
        c.backbone,
        c.weights,
        c.img_size,
        c.normalization()
    )
}

/// The results of the cells of `grid` finished under `out` so far, running nothing.
pub fn finished_results(grid: &Grid, out: &Path) -> Result<Vec<CellResult>> {
    grid.cells()?
        .iter()
        .filter_map(|cell| read_result(&out.join(&cell.id)).transpose())
        .collect()
}

/// A finished cell's result, `None` if the cell has not finished.
fn read_result(dir: &Path) -> Result<Option<CellResult>> {
    let done = dir.join("result.json");
    let Ok(text) = std::fs::read_to_string(&done) else {
        return Ok(None);
    };
    let mut result: CellResult =
        serde_json::from_str(&text).map_err(|e| Error::run_file(&done, e.to_string()))?;
    // the cell's metrics.json is its latest evaluation (`dra eval` after training, with
    // other part weights say), and it has what results written before cells kept them lack
    if let Some(metrics) = saved_metrics(dir) {
        result.dra = Auc {
            auc_roc: metrics.auc_roc,
            auc_pr: metrics.auc_pr,
        };
        result.heads = head_aucs(&metrics);
        if let Some(p) = &metrics.pixel {
            result.pixel = Some(PixelAuc {
                auc_roc: p.auc_roc,
                aupro: p.aupro,
            });
            // the memory's map alone is patch kNN's: the same bank of the same split
            if let Some(memory) = p.heads.get("memory") {
                result.patch_knn_pixel.get_or_insert(*memory);
            }
        }
    }
    Ok(Some(result))
}

/// Runs (or, if finished before, reads) every cell under `out`, calling `on_cell(index,
/// total, cell, resumed)` before each. The kNN baselines are computed once a split: a cell
/// takes them from an earlier cell on its split, finished in this invocation or before.
pub fn run_grid(
    grid: &Grid,
    out: &Path,
    progress: &mut impl Progress,
    mut on_cell: impl FnMut(usize, usize, &Cell, bool),
) -> Result<Vec<CellResult>> {
    let cells = grid.cells()?;
    for cell in &cells {
        cell.config.validate()?;
    }
    let mut results = Vec::new();
    let mut knn_cache: BTreeMap<String, Baselines> = BTreeMap::new();
    for (i, cell) in cells.iter().enumerate() {
        let dir = out.join(&cell.id);
        let done = dir.join("result.json");
        if let Some(result) = read_result(&dir)? {
            if let Some(b) = result.baselines() {
                knn_cache.entry(knn_key(&cell.config)).or_insert(b);
            }
            on_cell(i, cells.len(), cell, true);
            results.push(result);
            continue;
        }
        on_cell(i, cells.len(), cell, false);
        // an interrupted cell continues from its last epoch; anything else there is stale
        let resume = resumable(&cell.config, &dir);
        if dir.exists() && !resume {
            std::fs::remove_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
        }
        std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
        let start = Instant::now();
        let mut plan = Plan::new(&cell.config)?;
        let metrics = train_and_evaluate(&mut plan, &dir, resume, progress)?;
        let seconds = start.elapsed().as_secs_f64();
        let knn = if grid.knn {
            let key = knn_key(&cell.config);
            let auc = match knn_cache.get(&key) {
                Some(auc) => *auc,
                None => knn_baseline_beside(&mut plan, &metrics)?,
            };
            knn_cache.insert(key, auc);
            Some(auc)
        } else {
            None
        };
        let result = CellResult {
            values: cell.values.clone(),
            dra: Auc {
                auc_roc: metrics.auc_roc,
                auc_pr: metrics.auc_pr,
            },
            knn: knn.map(|b| b.pooled),
            patch_knn: knn.map(|b| b.patch),
            heads: head_aucs(&metrics),
            pixel: metrics.pixel.as_ref().map(|p| PixelAuc {
                auc_roc: p.auc_roc,
                aupro: p.aupro,
            }),
            patch_knn_pixel: knn.and_then(|b| b.patch_pixel),
            seconds,
            cpu: Some(crate::device::cpu()),
        };
        let tmp = dir.join("result.json.tmp");
        write_json(&tmp, &result)?;
        std::fs::rename(&tmp, &done).map_err(|e| Error::io(&done, e))?;
        results.push(result);
    }
    Ok(results)
}

/// Each head's AUC-ROC alone, and the standardised combination's as `standardised`.
fn head_aucs(metrics: &Metrics) -> BTreeMap<String, f64> {
    metrics
        .heads
        .iter()
        .map(|(h, auc)| (h.clone(), auc.auc_roc))
        .chain(
            metrics
                .standardised
                .map(|a| ("standardised".to_string(), a.auc_roc)),
        )
        .collect()
}

/// A finished run's `metrics.json`.
fn saved_metrics(dir: &Path) -> Option<Metrics> {
    let text = std::fs::read_to_string(dir.join("metrics.json")).ok()?;
    serde_json::from_str(&text).ok()
}
