//! The values that pass between the stages, defined below all of them: an image of the
//! data set, a batch slot and its label, a head, an image's scores and a test set's metrics.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// Name of the folder that holds normal images.
pub const NORMAL_CLASS: &str = "good";

/// One image with its class folder name (`good` for normals).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Sample {
    pub path: PathBuf,
    pub class: String,
}

impl Sample {
    /// True for anything but the normal class.
    pub fn is_anomaly(&self) -> bool {
        self.class != NORMAL_CLASS
    }
}

/// Label of a training sample.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Label {
    /// A normal image (0).
    Normal = 0,
    /// A labelled, seen anomaly (1).
    Seen = 1,
    /// A CutMix pseudo anomaly made from a normal image (2).
    Pseudo = 2,
    /// An external image shown for outlier exposure (SAOE), of no class of its own (3).
    Outlier = 3,
}

/// One batch position: an index into the normal pool (Normal, Pseudo), the seen anomalies
/// (Seen) or the outlier images (Outlier), and its label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Slot {
    pub index: usize,
    pub label: Label,
}

/// One of DRA's four heads, a comparison method's head (Deep SAD's centre, MINNS's bag, SAOE's
/// classes, MLEP's reconstruction, KDAD's student), or
/// the memory of normal patches (a score term, not a head of the network: `--memory patch`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Head {
    Seen,
    Pseudo,
    Residual,
    Normal,
    Memory,
    Centre,
    Bag,
    Classes,
    Reconstruction,
    Student,
}

impl Head {
    /// DRA's four heads, in the order the paper lists them.
    pub const ALL: [Head; 4] = [Head::Seen, Head::Pseudo, Head::Residual, Head::Normal];
    /// Every head a network can have (`--heads`): DRA's, Deep SAD's centre head, MINNS's bag
    /// head, SAOE's class head, MLEP's decoder and KDAD's student.
    pub const NETWORK: [Head; 9] = [
        Head::Seen,
        Head::Pseudo,
        Head::Residual,
        Head::Normal,
        Head::Centre,
        Head::Bag,
        Head::Classes,
        Head::Reconstruction,
        Head::Student,
    ];

    /// Name on the command line and in outputs.
    pub fn name(self) -> &'static str {
        match self {
            Head::Seen => "seen",
            Head::Pseudo => "pseudo",
            Head::Residual => "residual",
            Head::Normal => "normal",
            Head::Memory => "memory",
            Head::Centre => "centre",
            Head::Bag => "bag",
            Head::Classes => "classes",
            Head::Reconstruction => "reconstruction",
            Head::Student => "student",
        }
    }

    /// True for the heads that score every feature-map cell, and so give an anomaly map
    /// (and the memory, which scores every patch).
    pub fn has_map(self) -> bool {
        matches!(
            self,
            Head::Seen
                | Head::Pseudo
                | Head::Residual
                | Head::Memory
                | Head::Classes
                | Head::Reconstruction
        )
    }

    /// Every part a score can have: the network's heads, then the memory.
    pub fn parts() -> impl Iterator<Item = Head> {
        Head::NETWORK.into_iter().chain([Head::Memory])
    }

    /// The part of `name`, as [`Head::name`] writes it.
    pub fn named(name: &str) -> Option<Head> {
        Head::parts().find(|h| h.name() == name)
    }

    /// Sign of the head in the anomaly score: −1 for the normal head, +1 otherwise.
    pub fn sign(self) -> f32 {
        if self == Head::Normal { -1.0 } else { 1.0 }
    }
}

impl fmt::Display for Head {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The scores of one test image.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Scored {
    pub path: PathBuf,
    /// Class folder (`good` for normals).
    pub class: String,
    pub anomaly: bool,
    /// Anomaly score −g_n + g_s + g_p + g_r.
    pub score: f32,
    /// Raw head scores (the normal head's is a normality score).
    pub heads: Vec<(Head, f32)>,
}

/// AUC-ROC and AUC-PR (average precision) of one score.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Auc {
    pub auc_roc: f64,
    pub auc_pr: f64,
}

/// Image-level metrics of a test set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Metrics {
    /// Of the anomaly score.
    pub auc_roc: f64,
    pub auc_pr: f64,
    /// Of each head alone (the normal head negated, so that high means anomalous).
    pub heads: BTreeMap<String, Auc>,
    /// AUC-ROC of each anomaly class against all normals.
    pub classes: BTreeMap<String, f64>,
    /// Of the sum of the heads' z-scores over the normal training images (`--head-norm
    /// standardise`), whichever combination the run used.
    #[serde(default)]
    pub standardised: Option<Auc>,
    /// At the run's stored decision threshold (`decision.json`), if it has one.
    #[serde(default)]
    pub decision: Option<Decisions>,
    /// The best F1 over all thresholds, and a threshold that gives it.
    #[serde(default)]
    pub f1_max: Option<(f64, f64)>,
    /// Of the anomaly maps against the test set's masks, where it has masks.
    #[serde(default)]
    pub pixel: Option<PixelMetrics>,
}

/// Pixel AUROC and AUPRO of a set of anomaly maps.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PixelAuc {
    pub auc_roc: f64,
    pub aupro: f64,
}

/// Pixel metrics of a test set's maps: the combined map's and each head's alone.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PixelMetrics {
    pub auc_roc: f64,
    pub aupro: f64,
    /// Each head's map alone (the memory's is the patch-kNN baseline's), by head name.
    pub heads: BTreeMap<String, PixelAuc>,
    /// Images in the metrics: normals and the anomalies that have a mask.
    pub images: usize,
    /// Defect regions (8-connected components of the masks).
    pub regions: usize,
    /// Anomalies left out for want of a mask.
    pub unmasked: usize,
}

/// What a decision threshold does on a test set: an image is flagged anomalous when its
/// score is above the threshold.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Decisions {
    pub threshold: f64,
    /// Anomalies flagged, normals flagged, normals passed, anomalies passed.
    pub true_positives: usize,
    pub false_positives: usize,
    pub true_negatives: usize,
    pub false_negatives: usize,
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
}
