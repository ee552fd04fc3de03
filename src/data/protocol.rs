//! Protocol split: which anomalies are seen in training and which make up the test set.
//!
//! * general: every anomaly of every class is shuffled with the seeded RNG; the first
//!   `n_anomaly` are the seen anomalies, the test anomalies start at `test_threshold`
//!   (default `n_anomaly`). With `--test-threshold 10` a 1-shot run and a 10-shot run share
//!   one test set and the 1-shot anomaly is the first of the ten (the paper's protocol).
//!   Contamination (`--cont-rate r`): the ⌊N·r/(1 − r)⌋ anomalies after the seen ones (N the
//!   normal training images) join the normal training images unlabelled, so that a fraction
//!   r of them is anomalous, and leave the test set (the reference code keeps them there).
//! * hard: seen anomalies come from one known class only; the test anomalies are all
//!   files of every other class (the known class leaves the test set entirely).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use rand::seq::SliceRandom;
use serde::Serialize;

use crate::data::layout::DatasetLayout;
use crate::error::{Error, Result};
use crate::rng::DraRng;
use crate::types::NORMAL_CLASS;
use crate::types::Sample;

/// How seen anomalies are chosen.
#[derive(Debug, Clone, PartialEq)]
pub enum Protocol {
    /// Seen anomalies from all classes; test anomalies from index `test_threshold` on; a
    /// fraction `cont_rate` of the normal training images unlabelled anomalies.
    General {
        test_threshold: Option<usize>,
        cont_rate: f64,
    },
    /// Seen anomalies from `known_class` only; test anomalies from all other classes.
    Hard { known_class: String },
}

impl Protocol {
    /// Hard with a known class (an empty name, useful in grids, means general), else
    /// general with `test_threshold` and `cont_rate`.
    pub fn new(known_class: Option<&str>, test_threshold: Option<usize>, cont_rate: f64) -> Self {
        match known_class {
            Some(known_class) if !known_class.is_empty() => Protocol::Hard {
                known_class: known_class.to_string(),
            },
            _ => Protocol::General {
                test_threshold,
                cont_rate,
            },
        }
    }
}

/// The training and test sets of one run.
#[derive(Debug, Clone, Serialize)]
pub struct Split {
    /// Normal training images (`train/good`).
    pub train_normal: Vec<Sample>,
    /// Seen (labelled) anomalies, in the layout's order (a data root's: by path).
    pub train_anomaly: Vec<Sample>,
    /// Test normals then test anomalies, each in the layout's order.
    pub test: Vec<Sample>,
    /// The unlabelled anomalies among `train_normal` (`--cont-rate`), in the layout's order.
    pub contamination: Vec<PathBuf>,
}

impl Split {
    /// Applies `protocol` to `layout`, shuffling with `rng`.
    pub fn new(
        layout: &DatasetLayout,
        protocol: &Protocol,
        n_anomaly: usize,
        rng: &mut DraRng,
    ) -> Result<Self> {
        let (train_anomaly, test_anomaly, polluting) = match protocol {
            Protocol::General {
                test_threshold,
                cont_rate,
            } => general(layout, n_anomaly, *test_threshold, *cont_rate, rng)?,
            Protocol::Hard { known_class } => {
                let (seen, test) = hard(layout, known_class, n_anomaly, rng)?;
                (seen, test, Vec::new())
            }
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
        // the layout's own order (the anomalies by type, then the normal training images):
        // a data root's path order, and plain folders' order under their converted names
        let rank: HashMap<&Path, usize> = layout
            .anomalies
            .values()
            .flatten()
            .chain(&layout.train_good)
            .enumerate()
            .map(|(i, p)| (p.as_path(), i))
            .collect();
        let in_order = |mut paths: Vec<PathBuf>| -> Vec<PathBuf> {
            paths.sort_by_key(|p| rank[p.as_path()]);
            paths
        };
        let sorted = |mut samples: Vec<Sample>| -> Vec<Sample> {
            samples.sort_by_key(|s| rank[s.path.as_path()]);
            samples
        };
        let mut test = normals(&layout.test_good);
        test.extend(sorted(test_anomaly));
        let contamination = in_order(polluting.into_iter().map(|s| s.path).collect());
        // the polluting anomalies are, to the model, normal training images like the others
        let mut train_good = layout.train_good.clone();
        if !contamination.is_empty() {
            train_good.extend(contamination.iter().cloned());
            train_good = in_order(train_good);
        }
        Ok(Split {
            train_normal: normals(&train_good),
            train_anomaly: sorted(train_anomaly),
            test,
            contamination,
        })
    }

    /// Number of anomalies in the test set.
    pub fn n_test_anomalies(&self) -> usize {
        self.test.iter().filter(|s| s.is_anomaly()).count()
    }
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

/// The number of unlabelled anomalies that make a fraction `rate` of `n_normal` normal images
/// plus them: ⌊n_normal / (1 − rate) · rate⌋, as the reference code computes it.
pub fn n_contaminating(n_normal: usize, rate: f64) -> usize {
    (n_normal as f64 / (1.0 - rate) * rate).floor() as usize
}

/// Seen, test and contaminating anomalies of the general protocol.
type GeneralSplit = (Vec<Sample>, Vec<Sample>, Vec<Sample>);

fn general(
    layout: &DatasetLayout,
    n_anomaly: usize,
    test_threshold: Option<usize>,
    cont_rate: f64,
    rng: &mut DraRng,
) -> Result<GeneralSplit> {
    let mut all: Vec<Sample> = layout
        .anomalies
        .keys()
        .flat_map(|c| samples_of(layout, c))
        .collect();
    let total = all.len();
    if n_anomaly > 0 && total == 0 {
        return Err(Error::layout(
            layout.anomalies_dir.clone(),
            format!("no anomaly folders with images, but --n-anomaly is {n_anomaly}"),
        ));
    }
    if n_anomaly > total {
        return Err(Error::layout(
            layout.anomalies_dir.clone(),
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
            layout.anomalies_dir.display()
        )));
    }
    let n_polluting = n_contaminating(layout.train_good.len(), cont_rate);
    let polluting = n_anomaly..n_anomaly + n_polluting;
    let tested: Vec<usize> = (threshold..total)
        .filter(|i| !polluting.contains(i))
        .collect();
    if polluting.end > total || tested.is_empty() {
        return Err(Error::Setting(format!(
            "--cont-rate {cont_rate} takes {n_polluting} anomalies into the normal training \
             images: with --n-anomaly {n_anomaly} that leaves no test anomalies ({total} in {})",
            layout.anomalies_dir.display()
        )));
    }
    all.shuffle(rng);
    // the polluting anomalies follow the seen ones in the shuffled list; the test set starts
    // at the threshold and leaves them out
    let test = tested.iter().map(|&i| all[i].clone()).collect();
    let polluted = all[polluting].to_vec();
    all.truncate(n_anomaly);
    Ok((all, test, polluted))
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
            layout.anomalies_dir.clone(),
            format!(
                "no anomaly class '{known}' (--known-class); classes: {}",
                classes.join(", ")
            ),
        ));
    }
    if classes.len() < 2 {
        return Err(Error::layout(
            layout.anomalies_dir.clone(),
            format!(
                "the hard protocol needs at least 2 anomaly classes, this data set has only '{known}'"
            ),
        ));
    }
    let mut seen = samples_of(layout, known);
    if n_anomaly > seen.len() {
        return Err(Error::layout(
            layout.anomalies_dir.join(known),
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
