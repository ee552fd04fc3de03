//! Experiment grids (`dra grid`): every combination of the listed settings is a cell, one
//! training run each; cells that differ only in `seed` are aggregated to mean ± std. Each
//! row also carries the unsupervised kNN baseline on the same test split. A finished cell
//! (its `result.json` written last) is not run again and an interrupted one continues from
//! its last epoch checkpoint, so an interrupted grid resumes.
//!
//! ```toml
//! name = "SDD, general protocol"
//! [base]                       # any `dra train` setting, shared by all cells
//! data_root = "data"
//! class = "sdd"
//! img_size = 160
//! [grid]                       # lists: one cell per combination
//! n_anomaly = [10, 1]
//! test_threshold = [10]
//! criterion = ["deviation", "dweighted"]
//! seed = [0, 1, 2]
//! ```
//!
//! Settings that go together (a data set with its protocol) can be listed as cases, each
//! crossed with the grid; the case's `name` is the first column of the tables:
//!
//! ```toml
//! [[case]]
//! name = "sdd"
//! class = "sdd"
//! test_threshold = 10
//! [[case]]
//! name = "mt-crack"
//! class = "magnetic-tile"
//! known_class = "Crack"
//! ```

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::{Deserialize, Serialize};

use crate::baselines::{Baselines, knn_baseline_beside};
use crate::config::TrainConfig;
use crate::error::{Error, Result};
use crate::run::files::write_json;
use crate::run::{Plan, Progress, resumable, train_and_evaluate};
use crate::types::{Auc, Metrics, PixelAuc};

/// A grid file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Grid {
    /// Title of the table.
    pub name: String,
    /// Settings shared by every cell.
    #[serde(default)]
    pub base: toml::Table,
    /// Settings to vary: each key lists its values.
    #[serde(default)]
    pub grid: BTreeMap<String, Vec<toml::Value>>,
    /// Named groups of settings, each crossed with the grid (none: the base alone).
    #[serde(default, rename = "case")]
    pub cases: Vec<toml::Table>,
    /// Add the kNN baseline to every row.
    #[serde(default = "yes")]
    pub knn: bool,
}

fn yes() -> bool {
    true
}

/// Named setting values, e.g. `[("n_anomaly", "10"), ("seed", "0")]`.
pub type Settings = Vec<(String, String)>;

/// One run of the grid.
#[derive(Debug, Clone)]
pub struct Cell {
    /// Folder name: the varied settings, e.g. `n_anomaly-10_seed-0`.
    pub id: String,
    /// The varied settings and their values, in key order.
    pub values: Settings,
    pub config: TrainConfig,
}

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

/// Mean and standard deviation (population, as numpy's default) over seeds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct MeanStd {
    pub mean: f64,
    pub std: f64,
}

impl MeanStd {
    fn of(values: &[f64]) -> Self {
        let n = values.len().max(1) as f64;
        let mean = values.iter().sum::<f64>() / n;
        let std = (values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n).sqrt();
        MeanStd { mean, std }
    }
}

/// One table row: cells equal but for the seed.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Row {
    pub values: Settings,
    pub seeds: usize,
    pub auc_roc: MeanStd,
    pub auc_pr: MeanStd,
    pub knn_auc_roc: Option<MeanStd>,
    pub knn_auc_pr: Option<MeanStd>,
    pub patch_knn_auc_roc: Option<MeanStd>,
    pub patch_knn_auc_pr: Option<MeanStd>,
    /// Per-head AUC-ROC, where every cell of the row has it.
    pub heads: BTreeMap<String, MeanStd>,
    /// Pixel AUROC and AUPRO of DRA's maps and of patch kNN's.
    pub pixel_auc_roc: Option<MeanStd>,
    pub aupro: Option<MeanStd>,
    pub patch_knn_pixel_auc_roc: Option<MeanStd>,
    pub patch_knn_aupro: Option<MeanStd>,
    /// Mean wall time of a run.
    pub seconds: f64,
    /// The CPUs that timed the row's cells, each once.
    #[serde(default)]
    pub cpus: Vec<String>,
}

fn value_text(v: &toml::Value) -> String {
    match v {
        toml::Value::String(s) if s.is_empty() => "none".into(),
        toml::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn slug(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' {
                c
            } else {
                '-'
            }
        })
        .collect()
}

impl Grid {
    /// Reads a grid file.
    pub fn read(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        let mut grid: Grid = toml::from_str(&text).map_err(|e| Error::Config {
            path: path.to_path_buf(),
            message: format!("invalid grid: {}", e.message()),
        })?;
        // a relative data root or data folder is relative to the grid file
        let dir = path.parent().unwrap_or(Path::new("."));
        for table in std::iter::once(&mut grid.base).chain(&mut grid.cases) {
            for key in DATA_PATHS {
                if let Some(value) = table.get_mut(key) {
                    relative_to(dir, value);
                }
            }
        }
        Ok(grid)
    }

    /// Every case crossed with every combination of the grid's values, over the base
    /// settings.
    pub fn cells(&self) -> Result<Vec<Cell>> {
        let mut starts: Vec<Vec<(String, toml::Value)>> = Vec::new();
        for case in &self.cases {
            let name = case.get("name").cloned().ok_or_else(|| {
                Error::Setting(format!("grid '{}': every [[case]] needs a name", self.name))
            })?;
            let mut start = vec![("case".to_string(), name)];
            start.extend(
                case.iter()
                    .filter(|(k, _)| *k != "name")
                    .map(|(k, v)| (k.clone(), v.clone())),
            );
            starts.push(start);
        }
        if starts.is_empty() {
            starts.push(Vec::new());
        }
        let mut combos = starts;
        for (key, values) in &self.grid {
            if values.is_empty() {
                return Err(Error::Setting(format!("grid key '{key}' lists no values")));
            }
            combos = combos
                .into_iter()
                .flat_map(|c| {
                    values
                        .iter()
                        .map(move |v| [c.clone(), vec![(key.clone(), v.clone())]].concat())
                })
                .collect();
        }
        combos
            .into_iter()
            .map(|combo| {
                let values: toml::Table = combo
                    .iter()
                    .filter(|(k, _)| k != "case")
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect();
                let config =
                    TrainConfig::layered(&TrainConfig::default(), &[self.base.clone(), values])
                        .map_err(|e| Error::Setting(format!("grid '{}': {e}", self.name)))?
                        .named();
                // the table's columns: the case's name, then the grid's keys
                let shown = |k: &str| k == "case" || self.grid.contains_key(k);
                let mut values: Vec<(String, String)> = combo
                    .iter()
                    .filter(|(k, _)| shown(k))
                    .map(|(k, v)| (k.clone(), value_text(v)))
                    .collect();
                let id = if values.is_empty() {
                    "run".to_string()
                } else {
                    values
                        .iter()
                        .map(|(k, v)| format!("{k}-{}", slug(v)))
                        .collect::<Vec<_>>()
                        .join("_")
                };
                // the method is a column even where the grid does not vary it (not in the id)
                if !values.iter().any(|(k, _)| k == "method") {
                    let at = usize::from(values.first().is_some_and(|(k, _)| k == "case"));
                    values.insert(at, ("method".into(), config.method.name().into()));
                }
                Ok(Cell { id, values, config })
            })
            .collect()
    }
}

/// The settings that name the data: paths, or lists of paths.
const DATA_PATHS: [&str; 4] = ["data_root", "normal", "anomalies", "masks"];

/// `value` (a path or a list of paths) taken relative to `dir`.
fn relative_to(dir: &Path, value: &mut toml::Value) {
    match value {
        toml::Value::String(p) => *p = dir.join(&*p).to_string_lossy().into_owned(),
        toml::Value::Array(items) => items.iter_mut().for_each(|v| relative_to(dir, v)),
        _ => {}
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

/// Groups results that differ only in `seed` into rows, in first-seen order.
pub fn aggregate(results: &[CellResult]) -> Vec<Row> {
    let mut groups: Vec<(Settings, Vec<&CellResult>)> = Vec::new();
    for r in results {
        let key: Vec<_> = r
            .values
            .iter()
            .filter(|(k, _)| k != "seed")
            .cloned()
            .collect();
        match groups.iter_mut().find(|(k, _)| *k == key) {
            Some((_, g)) => g.push(r),
            None => groups.push((key, vec![r])),
        }
    }
    groups
        .into_iter()
        .map(|(values, g)| {
            let stat = |f: &dyn Fn(&CellResult) -> Option<f64>| {
                let v: Option<Vec<f64>> = g.iter().map(|r| f(r)).collect();
                v.map(|v| MeanStd::of(&v))
            };
            Row {
                values,
                seeds: g.len(),
                auc_roc: stat(&|r| Some(r.dra.auc_roc)).expect("present"),
                auc_pr: stat(&|r| Some(r.dra.auc_pr)).expect("present"),
                knn_auc_roc: stat(&|r| r.knn.map(|k| k.auc_roc)),
                knn_auc_pr: stat(&|r| r.knn.map(|k| k.auc_pr)),
                patch_knn_auc_roc: stat(&|r| r.patch_knn.map(|k| k.auc_roc)),
                patch_knn_auc_pr: stat(&|r| r.patch_knn.map(|k| k.auc_pr)),
                heads: g[0]
                    .heads
                    .keys()
                    .filter_map(|h| Some((h.clone(), stat(&|r| r.heads.get(h).copied())?)))
                    .collect(),
                pixel_auc_roc: stat(&|r| r.pixel.map(|p| p.auc_roc)),
                aupro: stat(&|r| r.pixel.map(|p| p.aupro)),
                patch_knn_pixel_auc_roc: stat(&|r| r.patch_knn_pixel.map(|p| p.auc_roc)),
                patch_knn_aupro: stat(&|r| r.patch_knn_pixel.map(|p| p.aupro)),
                seconds: g.iter().map(|r| r.seconds).sum::<f64>() / g.len() as f64,
                cpus: distinct(g.iter().filter_map(|r| r.cpu.as_ref())),
            }
        })
        .collect()
}

/// The strings of `items`, each once, in their first order.
fn distinct<'a>(items: impl IntoIterator<Item = &'a String>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for s in items {
        if !out.contains(s) {
            out.push(s.clone());
        }
    }
    out
}

fn pm(m: Option<MeanStd>) -> String {
    m.map_or("–".into(), |m| format!("{:.3}±{:.3}", m.mean, m.std))
}

/// The setting names of the rows' first column(s).
fn keys(rows: &[Row]) -> Vec<&str> {
    rows.first()
        .map(|r| r.values.iter().map(|(k, _)| k.as_str()).collect())
        .unwrap_or_default()
}

/// The heads whose AUC-ROC the rows carry (those of the first row).
fn head_names(rows: &[Row]) -> Vec<&str> {
    rows.first()
        .map(|r| r.heads.keys().map(String::as_str).collect())
        .unwrap_or_default()
}

/// A Markdown table: the rows' settings, then `columns` filled by `cells`.
fn md_table(rows: &[Row], columns: &[&str], cells: impl Fn(&Row) -> Vec<String>) -> String {
    let keys = keys(rows);
    let mut out = String::from("|");
    for k in keys.iter().chain(columns) {
        write!(out, " {k} |").unwrap();
    }
    out += "\n|";
    out += &"---|".repeat(keys.len() + columns.len());
    out.push('\n');
    for r in rows {
        out.push('|');
        for v in r.values.iter().map(|(_, v)| v.clone()).chain(cells(r)) {
            write!(out, " {v} |").unwrap();
        }
        out.push('\n');
    }
    out
}

/// The rows with more than one method as the paper's Table 1: one row per setting of the
/// other keys, the AUC-ROC of each method in a column, then both kNN baselines' (the same
/// split for every method); `None` when the rows hold one method.
fn by_method(rows: &[Row]) -> Option<String> {
    let method_of = |r: &Row| {
        r.values
            .iter()
            .find(|(k, _)| k == "method")
            .map(|(_, v)| v.clone())
    };
    let mut methods: Vec<String> = Vec::new();
    for m in rows.iter().filter_map(method_of) {
        if !methods.contains(&m) {
            methods.push(m);
        }
    }
    if methods.len() < 2 {
        return None;
    }
    let others = |r: &Row| -> Settings {
        r.values
            .iter()
            .filter(|(k, _)| k != "method")
            .cloned()
            .collect()
    };
    let mut groups: Vec<(Settings, Vec<&Row>)> = Vec::new();
    for r in rows {
        match groups.iter_mut().find(|(k, _)| *k == others(r)) {
            Some((_, g)) => g.push(r),
            None => groups.push((others(r), vec![r])),
        }
    }
    let keys: Vec<String> = groups[0].0.iter().map(|(k, _)| k.clone()).collect();
    let mut out = String::from("|");
    for k in keys.iter().chain(&methods) {
        write!(out, " {k} |").unwrap();
    }
    out += " kNN | patch kNN |\n|";
    out += &"---|".repeat(keys.len() + methods.len() + 2);
    out.push('\n');
    for (settings, group) in &groups {
        out.push('|');
        for (_, v) in settings {
            write!(out, " {v} |").unwrap();
        }
        for m in &methods {
            let row = group.iter().find(|r| method_of(r).as_ref() == Some(m));
            write!(out, " {} |", pm(row.map(|r| r.auc_roc))).unwrap();
        }
        let knn = group.iter().find_map(|r| r.knn_auc_roc);
        let patch = group.iter().find_map(|r| r.patch_knn_auc_roc);
        writeln!(out, " {} | {} |", pm(knn), pm(patch)).unwrap();
    }
    Some(out)
}

/// The rows as Markdown: the main table, the methods side by side where there are several,
/// then each head's AUC-ROC where the cells have it.
pub fn markdown(name: &str, rows: &[Row]) -> String {
    let columns = [
        "seeds",
        "AUC-ROC",
        "AUC-PR",
        "kNN AUC-ROC",
        "kNN AUC-PR",
        "patch kNN AUC-ROC",
        "patch kNN AUC-PR",
        "s/run",
    ];
    let mut out = format!("### {name}\n\n");
    out += &md_table(rows, &columns, |r| {
        vec![
            r.seeds.to_string(),
            pm(Some(r.auc_roc)),
            pm(Some(r.auc_pr)),
            pm(r.knn_auc_roc),
            pm(r.knn_auc_pr),
            pm(r.patch_knn_auc_roc),
            pm(r.patch_knn_auc_pr),
            format!("{:.0}", r.seconds),
        ]
    });
    let cpus = distinct(rows.iter().flat_map(|r| &r.cpus));
    if !cpus.is_empty() {
        writeln!(out, "\ns/run: wall time of a run, on {}.", cpus.join("; ")).unwrap();
    }
    if let Some(table) = by_method(rows) {
        out += "\nAUC-ROC by method (the paper's Table 1 form):\n\n";
        out += &table;
    }
    if rows.iter().any(|r| r.pixel_auc_roc.is_some()) {
        out += "\nAnomaly maps against the masks (pixel AUROC, AUPRO to FPR 0.3):\n\n";
        let columns = [
            "pixel AUROC",
            "AUPRO",
            "patch kNN pixel AUROC",
            "patch kNN AUPRO",
        ];
        out += &md_table(rows, &columns, |r| {
            [
                r.pixel_auc_roc,
                r.aupro,
                r.patch_knn_pixel_auc_roc,
                r.patch_knn_aupro,
            ]
            .map(pm)
            .to_vec()
        });
    }
    let heads = head_names(rows);
    if !heads.is_empty() {
        out += "\nAUC-ROC of each head's score alone:\n\n";
        out += &md_table(rows, &heads, |r| {
            heads.iter().map(|h| pm(r.heads.get(*h).copied())).collect()
        });
    }
    out
}

/// The rows as CSV (means and standard deviations in separate columns).
pub fn csv(rows: &[Row]) -> String {
    let keys = keys(rows);
    let heads = head_names(rows);
    let mut out = keys.join(",");
    if !keys.is_empty() {
        out.push(',');
    }
    out += "seeds,auc_roc,auc_roc_std,auc_pr,auc_pr_std,knn_auc_roc,knn_auc_roc_std,knn_auc_pr,knn_auc_pr_std,patch_knn_auc_roc,patch_knn_auc_roc_std,patch_knn_auc_pr,patch_knn_auc_pr_std,pixel_auc_roc,pixel_auc_roc_std,aupro,aupro_std,patch_knn_pixel_auc_roc,patch_knn_pixel_auc_roc_std,patch_knn_aupro,patch_knn_aupro_std,seconds";
    for h in &heads {
        write!(out, ",{h}_auc_roc,{h}_auc_roc_std").unwrap();
    }
    out.push('\n');
    for r in rows {
        for (_, v) in &r.values {
            write!(out, "{v},").unwrap();
        }
        let opt =
            |m: Option<MeanStd>| m.map_or(",".to_string(), |m| format!("{},{}", m.mean, m.std));
        write!(
            out,
            "{},{},{},{},{},{},{},{},{},{},{},{},{},{:.1}",
            r.seeds,
            r.auc_roc.mean,
            r.auc_roc.std,
            r.auc_pr.mean,
            r.auc_pr.std,
            opt(r.knn_auc_roc),
            opt(r.knn_auc_pr),
            opt(r.patch_knn_auc_roc),
            opt(r.patch_knn_auc_pr),
            opt(r.pixel_auc_roc),
            opt(r.aupro),
            opt(r.patch_knn_pixel_auc_roc),
            opt(r.patch_knn_aupro),
            r.seconds
        )
        .unwrap();
        for h in &heads {
            write!(out, ",{}", opt(r.heads.get(*h).copied())).unwrap();
        }
        out.push('\n');
    }
    out
}

/// Writes `results.md`, `results.csv` and `results.json` into `out`; returns their paths.
pub fn write_tables(out: &Path, name: &str, rows: &[Row]) -> Result<Vec<PathBuf>> {
    let md = out.join("results.md");
    std::fs::write(&md, markdown(name, rows)).map_err(|e| Error::io(&md, e))?;
    let c = out.join("results.csv");
    std::fs::write(&c, csv(rows)).map_err(|e| Error::io(&c, e))?;
    let j = out.join("results.json");
    write_json(&j, &rows)?;
    Ok(vec![md, c, j])
}
