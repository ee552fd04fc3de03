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

mod run;
mod tables;

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;

use crate::config::TrainConfig;
use crate::error::{Error, Result};

pub use run::{CellResult, finished_results, run_grid};
pub use tables::{MeanStd, Row, aggregate, csv, markdown, write_tables};

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
