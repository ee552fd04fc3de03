//! The score rule: how a run's parts (the network's heads and the memory of normal patches)
//! are fused into one anomaly score per image and one anomaly map, and how the rule is fitted
//! on the normal training images alone (their part scores; the memory's each against the
//! other half's bank). Every final score and map of a run comes from a [`Fusion`].

use serde::{Deserialize, Serialize};

use crate::choice::choice;
use crate::types::Head;

choice! {
    /// How the parts' z-scores over the normal training images are fused (with
    /// `head_norm = "standardise"`).
    pub enum FusionRule ("score fusion") {
        /// Σ_h z_h + n·z_memory: the memory weighted as much as the n heads together.
        Sum = "sum",
        /// max(z_heads, z_memory): the heads' sum and the memory as two views, each a z-score
        /// over the normal training images; an image is as anomalous as its more anomalous view.
        Max = "max",
        /// −log P(Z > z_heads) − log P(Z > z_memory), Z standard normal: Fisher's combination
        /// of the two views' Gaussian tail probabilities.
        Fisher = "fisher",
    }
}

/// Per-part mean and standard deviation of the scores of the normal training images.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HeadStats(pub Vec<(Head, f32, f32)>);

impl HeadStats {
    /// Mean and (population) std of each part's raw score over `scores` (one row of
    /// `(part, score)` pairs per normal image).
    pub fn of(scores: &[Vec<(Head, f32)>]) -> Self {
        let heads: Vec<Head> = scores
            .first()
            .map_or(Vec::new(), |r| r.iter().map(|(h, _)| *h).collect());
        HeadStats(
            heads
                .iter()
                .enumerate()
                .map(|(i, &h)| {
                    let (mean, std) = mean_std(scores.iter().map(|r| r[i].1 as f64));
                    (h, mean as f32, std as f32)
                })
                .collect(),
        )
    }

    /// The fixed-weight sum of raw part scores: Σ w_h · sign_h · (g_h − μ_h) / σ_h (σ floored
    /// at 1e-6, so a constant part adds nothing), w = 1 for each head of the network and, for
    /// the memory, the number of those heads: the memory counts as much as they do together.
    pub fn anomaly_score(&self, heads: &[(Head, f32)]) -> f32 {
        self.weighted_sum(heads.iter().copied())
    }

    /// [`HeadStats::anomaly_score`] of parts given one by one (a map's pixel lacks the
    /// normal head: the memory keeps the weight of all the heads the statistics cover).
    fn weighted_sum(&self, parts: impl Iterator<Item = (Head, f32)>) -> f32 {
        let learned = self.learned();
        parts
            .map(|(h, g)| {
                let (scale, mean) = self.term(h, learned);
                scale * (g - mean)
            })
            .sum()
    }

    /// The factor and offset of `head`'s term in [`HeadStats::anomaly_score`], w_h · sign_h / σ_h
    /// and μ_h, among `learned` heads of the network.
    pub fn term(&self, head: Head, learned: usize) -> (f32, f32) {
        let weight = match head {
            Head::Memory => learned.max(1) as f32,
            _ => 1.0,
        };
        let (scale, mean) = self.z(head);
        (weight * scale, mean)
    }

    /// The factor and offset of `head`'s z-score, sign_h / σ_h and μ_h (1 and 0 for a part
    /// the statistics do not cover).
    fn z(&self, head: Head) -> (f32, f32) {
        let (_, mean, std) = self
            .0
            .iter()
            .find(|(k, _, _)| *k == head)
            .copied()
            .unwrap_or((head, 0.0, 1.0));
        (head.sign() / std.max(1e-6), mean)
    }

    /// The number of the network's heads the statistics cover (the memory not counted).
    pub fn learned(&self) -> usize {
        self.0.iter().filter(|(h, _, _)| *h != Head::Memory).count()
    }
}

/// Mean and population standard deviation.
fn mean_std(values: impl Iterator<Item = f64> + Clone) -> (f64, f64) {
    let n = values.clone().count().max(1) as f64;
    let mean = values.clone().sum::<f64>() / n;
    let var = values.map(|v| (v - mean).powi(2)).sum::<f64>() / n;
    (mean, var.sqrt())
}

/// A fitted score rule (`fusion.json` in a run directory).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Fusion {
    /// The paper's plain signed sum of raw head scores, −g_n + g_s + g_p + g_r
    /// (`head_norm = "none"`).
    Plain,
    /// A rule over the parts' z-scores.
    Fitted {
        rule: FusionRule,
        /// Each part's mean and std on the normal training images.
        parts: HeadStats,
        /// Mean and std of the heads' summed z-scores on the same images: the heads' view.
        heads: (f32, f32),
    },
}

impl Fusion {
    /// `rule` fitted on the part scores of the normal training images (one row each).
    pub fn fit(rule: FusionRule, normals: &[Vec<(Head, f32)>]) -> Self {
        let parts = HeadStats::of(normals);
        let sums = normals.iter().map(|row| heads_sum(&parts, row) as f64);
        let (mean, std) = mean_std(sums);
        Fusion::Fitted {
            rule,
            parts,
            heads: (mean as f32, std as f32),
        }
    }

    /// The parts' statistics, where the rule has them.
    pub fn stats(&self) -> Option<&HeadStats> {
        match self {
            Fusion::Plain => None,
            Fusion::Fitted { parts, .. } => Some(parts),
        }
    }

    /// The anomaly score of one image's raw part scores.
    pub fn score(&self, parts: &[(Head, f32)]) -> f32 {
        self.fuse(parts.iter().copied())
    }

    /// The anomaly map of one image from its parts' maps (each `len` values in one frame;
    /// the normal head scores whole images and has none), fused pixel by pixel as
    /// [`Fusion::score`] fuses the images' scores.
    pub fn map(&self, parts: &[(Head, Vec<f32>)], len: usize) -> Vec<f32> {
        (0..len)
            .map(|i| self.fuse(parts.iter().map(|(h, m)| (*h, m[i]))))
            .collect()
    }

    fn fuse(&self, parts: impl Iterator<Item = (Head, f32)> + Clone) -> f32 {
        let Fusion::Fitted {
            rule,
            parts: stats,
            heads,
        } = self
        else {
            return parts.map(|(h, g)| h.sign() * g).sum();
        };
        if *rule == FusionRule::Sum {
            return stats.weighted_sum(parts);
        }
        let mut views = Vec::with_capacity(2);
        if stats.learned() > 0 {
            let sum: f32 = parts
                .clone()
                .filter(|(h, _)| *h != Head::Memory)
                .map(|(h, g)| z_of(stats, h, g))
                .sum();
            views.push((sum - heads.0) / heads.1.max(1e-6));
        }
        views.extend(
            parts
                .filter(|(h, _)| *h == Head::Memory)
                .map(|(h, g)| z_of(stats, h, g)),
        );
        match rule {
            FusionRule::Max => views.into_iter().fold(f32::NEG_INFINITY, f32::max),
            _ => views.into_iter().map(neg_log_tail).sum(),
        }
    }
}

/// The z-score of part `head`'s raw score `g`.
fn z_of(stats: &HeadStats, head: Head, g: f32) -> f32 {
    let (scale, mean) = stats.z(head);
    scale * (g - mean)
}

/// Σ z_h over the network's heads of one row.
fn heads_sum(stats: &HeadStats, row: &[(Head, f32)]) -> f32 {
    row.iter()
        .filter(|(h, _)| *h != Head::Memory)
        .map(|&(h, g)| z_of(stats, h, g))
        .sum()
}

/// −log P(Z > z) for a standard normal Z, accurate far into both tails.
pub fn neg_log_tail(z: f32) -> f32 {
    let z = z as f64;
    let value = if z < 20.0 {
        -(0.5 * libm::erfc(z / std::f64::consts::SQRT_2)).ln()
    } else {
        // beyond f64's erfc, the asymptotic series of the Mills ratio
        let series = 1.0 - 1.0 / (z * z) + 3.0 / z.powi(4);
        0.5 * z * z + (z * (2.0 * std::f64::consts::PI).sqrt()).ln() - series.ln()
    };
    value as f32
}
