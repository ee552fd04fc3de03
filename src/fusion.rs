//! The score rule: how a run's parts (the network's heads and the memory of normal patches)
//! are fused into one anomaly score per image and one anomaly map, and how the rule is fitted
//! on the normal training images alone (their part scores; the memory's each against the
//! other half's bank). Every final score and map of a run comes from a [`Fusion`].

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::types::Head;

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
        let n = scores.len().max(1) as f64;
        HeadStats(
            heads
                .iter()
                .enumerate()
                .map(|(i, &h)| {
                    let mean = scores.iter().map(|r| r[i].1 as f64).sum::<f64>() / n;
                    let var = scores
                        .iter()
                        .map(|r| (r[i].1 as f64 - mean).powi(2))
                        .sum::<f64>()
                        / n;
                    (h, mean as f32, var.sqrt() as f32)
                })
                .collect(),
        )
    }

    /// The z-score of part `head`'s raw score `g`, sign_h · (g − μ_h) / σ_h, σ floored at 1e-6
    /// so that a part constant on the normals adds nothing to them (the raw score, signed,
    /// for a part the statistics do not cover).
    pub fn z(&self, head: Head, g: f32) -> f32 {
        let (mean, std) = self.mean_std(head);
        head.sign() * (g - mean) / std.max(1e-6)
    }

    /// Mean and std of part `head` (0 and 1 for a part the statistics do not cover).
    fn mean_std(&self, head: Head) -> (f32, f32) {
        self.0
            .iter()
            .find(|(k, _, _)| *k == head)
            .map_or((0.0, 1.0), |&(_, mean, std)| (mean, std))
    }
}

/// The weight of each part in the fused score, written `seen=1,pseudo=0,memory=8`; a part
/// not named weighs 1.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct PartWeights(Vec<(Head, f32)>);

impl PartWeights {
    /// The weight of `head`.
    pub fn of(&self, head: Head) -> f32 {
        self.0
            .iter()
            .find(|(h, _)| *h == head)
            .map_or(1.0, |(_, w)| *w)
    }

    /// Each head of the network 1 and the memory `n`, the number of heads in `stats`: the
    /// rule of runs written before the weights were a setting.
    fn memory_as_all_heads(stats: &HeadStats) -> Self {
        let heads = stats
            .0
            .iter()
            .filter(|(h, _, _)| *h != Head::Memory)
            .count();
        PartWeights(vec![(Head::Memory, heads.max(1) as f32)])
    }
}

impl Default for PartWeights {
    /// The seen, residual and normal heads 1, the pseudo head 0 (its CutMix patches say
    /// little of real defects), the memory 6: chosen on BrainMRI, KolektorSDD and magnetic
    /// tile (docs/RESULTS.md).
    fn default() -> Self {
        PartWeights(vec![(Head::Pseudo, 0.0), (Head::Memory, 6.0)])
    }
}

impl FromStr for PartWeights {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        let names = || {
            let all: Vec<_> = Head::parts().map(|h| h.name()).collect();
            all.join(", ")
        };
        let mut weights = Vec::new();
        for item in s.split(',').map(str::trim).filter(|i| !i.is_empty()) {
            let (name, value) = item.split_once('=').ok_or_else(|| {
                Error::Setting(format!(
                    "part weight '{item}' is not name=weight (e.g. memory=4)"
                ))
            })?;
            let head = Head::named(name.trim())
                .ok_or_else(|| Error::Setting(format!("unknown part '{name}' ({})", names())))?;
            let weight: f32 = value
                .trim()
                .parse()
                .ok()
                .filter(|w: &f32| w.is_finite() && *w >= 0.0)
                .ok_or_else(|| {
                    Error::Setting(format!(
                        "the weight of {name}, '{value}', is not a number ≥ 0"
                    ))
                })?;
            weights.retain(|(h, _)| *h != head);
            weights.push((head, weight));
        }
        weights.sort_by_key(|(h, _)| *h);
        Ok(PartWeights(weights))
    }
}

impl TryFrom<String> for PartWeights {
    type Error = Error;
    fn try_from(s: String) -> Result<Self> {
        s.parse()
    }
}

impl From<PartWeights> for String {
    fn from(w: PartWeights) -> String {
        w.to_string()
    }
}

impl fmt::Display for PartWeights {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let items: Vec<_> = self.0.iter().map(|(h, w)| format!("{h}={w}")).collect();
        f.write_str(&items.join(","))
    }
}

impl fmt::Display for Fusion {
    /// The rule in a line, as `dra train` and `dra eval` report it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.weights {
            Some(w) => write!(
                f,
                "each part's z-score over the normal training images, weighted {w} (a part \
                 not named 1)"
            ),
            None => f.write_str("the plain sum of the heads' raw scores (the paper's)"),
        }
    }
}

/// A fitted score rule (`fusion.json` in a run directory): the parts' statistics on the
/// normal training images and how they are fused.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Fusion {
    /// Each part's mean and std on the normal training images.
    pub parts: HeadStats,
    /// Weighted z-scores, or (without weights) the paper's plain signed sum of raw scores,
    /// −g_n + g_s + g_p + g_r (`head_norm = "none"`).
    pub weights: Option<PartWeights>,
}

impl Fusion {
    /// The rule weighing the parts' z-scores by `weights` (`None`: the plain sum), fitted on
    /// the part scores of the normal training images (one row each).
    pub fn fit(weights: Option<PartWeights>, normals: &[Vec<(Head, f32)>]) -> Self {
        Fusion {
            parts: HeadStats::of(normals),
            weights,
        }
    }

    /// The paper's plain signed sum, without statistics (a part's map drawn alone).
    pub fn plain() -> Self {
        Fusion {
            parts: HeadStats(Vec::new()),
            weights: None,
        }
    }

    /// The rule of a run written before `fusion.json`: the plain sum, or the memory
    /// weighted as all the heads together over its `head_stats.json`.
    pub fn legacy(parts: HeadStats, standardise: bool) -> Self {
        let weights = standardise.then(|| PartWeights::memory_as_all_heads(&parts));
        Fusion { parts, weights }
    }

    /// The same statistics fused by the default weights (the "standardised" column of a run
    /// that adds raw scores).
    pub fn standardised(&self) -> Self {
        Fusion {
            parts: self.parts.clone(),
            weights: Some(PartWeights::default()),
        }
    }

    /// The anomaly score of one image's raw part scores: Σ_p w_p z_p.
    pub fn score(&self, parts: &[(Head, f32)]) -> f32 {
        parts.iter().map(|&(h, g)| self.term(h)(g)).sum()
    }

    /// The anomaly map of one image from its parts' maps (each `len` values in one frame;
    /// the normal head scores whole images and has none), fused pixel by pixel as
    /// [`Fusion::score`] fuses the images' scores.
    pub fn map(&self, parts: &[(Head, Vec<f32>)], len: usize) -> Vec<f32> {
        let terms: Vec<_> = parts.iter().map(|(h, m)| (self.term(*h), m)).collect();
        (0..len)
            .map(|i| terms.iter().map(|(term, m)| term(m[i])).sum())
            .collect()
    }

    /// Part `head`'s term as a function of its raw score, its weight and statistics looked
    /// up once (a map applies it to every pixel).
    fn term(&self, head: Head) -> impl Fn(f32) -> f32 {
        let sign = head.sign();
        let standardised = self
            .weights
            .as_ref()
            .map(|w| (w.of(head), self.parts.mean_std(head)));
        move |g| match standardised {
            Some((weight, (mean, std))) => weight * (sign * (g - mean) / std.max(1e-6)),
            None => sign * g,
        }
    }
}
