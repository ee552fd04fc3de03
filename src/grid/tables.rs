//! A grid's tables: results grouped over seeds into mean ± std rows, as Markdown, CSV and
//! JSON.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::run::files::write_json;

use super::{CellResult, Settings};

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
