//! Protocol split: which anomalies are seen in training and which make up the test set.
//!
//! * general: every anomaly of every class is shuffled with the seeded RNG; the first
//!   `n_anomaly` are the seen anomalies, the test anomalies start at `test_threshold`
//!   (default `n_anomaly`). With `--test-threshold 10` a 1-shot run and a 10-shot run share
//!   one test set and the 1-shot anomaly is the first of the ten (the paper's protocol).
//! * hard: seen anomalies come from one known class only; the test anomalies are all
//!   files of every other class (the known class leaves the test set entirely).

use std::path::PathBuf;

use rand::seq::SliceRandom;
use serde::Serialize;

use crate::data::layout::DatasetLayout;
use crate::error::{Error, Result};
use crate::rng::DraRng;
use crate::types::NORMAL_CLASS;
use crate::types::Sample;

/// How seen anomalies are chosen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Protocol {
    /// Seen anomalies from all classes; test anomalies from index `test_threshold` on.
    General { test_threshold: Option<usize> },
    /// Seen anomalies from `known_class` only; test anomalies from all other classes.
    Hard { known_class: String },
}

impl Protocol {
    /// Hard with a known class (an empty name, useful in grids, means general), else
    /// general with `test_threshold`.
    pub fn new(known_class: Option<&str>, test_threshold: Option<usize>) -> Self {
        match known_class {
            Some(known_class) if !known_class.is_empty() => Protocol::Hard {
                known_class: known_class.to_string(),
            },
            _ => Protocol::General { test_threshold },
        }
    }
}

/// The training and test sets of one run.
#[derive(Debug, Clone, Serialize)]
pub struct Split {
    /// Normal training images (`train/good`).
    pub train_normal: Vec<Sample>,
    /// Seen (labelled) anomalies, sorted by path.
    pub train_anomaly: Vec<Sample>,
    /// Test normals then test anomalies, each sorted by path.
    pub test: Vec<Sample>,
}

impl Split {
    /// Applies `protocol` to `layout`, shuffling with `rng`.
    pub fn new(
        layout: &DatasetLayout,
        protocol: &Protocol,
        n_anomaly: usize,
        rng: &mut DraRng,
    ) -> Result<Self> {
        let (train_anomaly, test_anomaly) = match protocol {
            Protocol::General { test_threshold } => {
                general(layout, n_anomaly, *test_threshold, rng)?
            }
            Protocol::Hard { known_class } => hard(layout, known_class, n_anomaly, rng)?,
        };
        let normals = |paths: &[PathBuf]| -> Vec<Sample> {
            paths
                .iter()
                .map(|p| Sample {
                    path: p.clone(),
                    class: NORMAL_CLASS.into(),
                })
                .collect()
        };
        let mut test = normals(&layout.test_good);
        test.extend(sorted(test_anomaly));
        Ok(Split {
            train_normal: normals(&layout.train_good),
            train_anomaly: sorted(train_anomaly),
            test,
        })
    }

    /// Number of anomalies in the test set.
    pub fn n_test_anomalies(&self) -> usize {
        self.test.iter().filter(|s| s.is_anomaly()).count()
    }
}

fn sorted(mut samples: Vec<Sample>) -> Vec<Sample> {
    samples.sort_by(|a, b| a.path.cmp(&b.path));
    samples
}

fn samples_of(layout: &DatasetLayout, class: &str) -> Vec<Sample> {
    layout.anomalies[class]
        .iter()
        .map(|p| Sample {
            path: p.clone(),
            class: class.to_string(),
        })
        .collect()
}

fn general(
    layout: &DatasetLayout,
    n_anomaly: usize,
    test_threshold: Option<usize>,
    rng: &mut DraRng,
) -> Result<(Vec<Sample>, Vec<Sample>)> {
    let mut all: Vec<Sample> = layout
        .anomalies
        .keys()
        .flat_map(|c| samples_of(layout, c))
        .collect();
    let total = all.len();
    if n_anomaly > 0 && total == 0 {
        return Err(Error::layout(
            layout.dir.join("test"),
            format!("no anomaly folders with images, but --n-anomaly is {n_anomaly}"),
        ));
    }
    if n_anomaly > total {
        return Err(Error::layout(
            layout.dir.join("test"),
            format!("only {total} anomalies, fewer than --n-anomaly {n_anomaly}"),
        ));
    }
    let threshold = test_threshold.unwrap_or(n_anomaly);
    if threshold < n_anomaly {
        return Err(Error::Setting(format!(
            "--test-threshold {threshold} is below --n-anomaly {n_anomaly}: seen anomalies would be tested on"
        )));
    }
    if threshold >= total {
        return Err(Error::Setting(format!(
            "--test-threshold {threshold} leaves no test anomalies ({total} anomalies in {})",
            layout.dir.display()
        )));
    }
    all.shuffle(rng);
    let test = all.split_off(threshold);
    all.truncate(n_anomaly);
    Ok((all, test))
}

fn hard(
    layout: &DatasetLayout,
    known: &str,
    n_anomaly: usize,
    rng: &mut DraRng,
) -> Result<(Vec<Sample>, Vec<Sample>)> {
    let classes: Vec<&str> = layout.anomalies.keys().map(String::as_str).collect();
    if !classes.contains(&known) {
        return Err(Error::layout(
            layout.dir.join("test"),
            format!(
                "no anomaly class '{known}' (--known-class); classes: {}",
                classes.join(", ")
            ),
        ));
    }
    if classes.len() < 2 {
        return Err(Error::layout(
            layout.dir.join("test"),
            format!(
                "the hard protocol needs at least 2 anomaly classes, this data set has only '{known}'"
            ),
        ));
    }
    let mut seen = samples_of(layout, known);
    if n_anomaly > seen.len() {
        return Err(Error::layout(
            layout.dir.join("test").join(known),
            format!(
                "only {} anomalies of the known class, fewer than --n-anomaly {n_anomaly}",
                seen.len()
            ),
        ));
    }
    seen.shuffle(rng);
    seen.truncate(n_anomaly);
    let test = classes
        .iter()
        .filter(|c| **c != known)
        .flat_map(|c| samples_of(layout, c))
        .collect();
    Ok((seen, test))
}
