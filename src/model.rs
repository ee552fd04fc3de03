//! The DRA model: a backbone, the image pyramid, the reference set and the four heads.
//!
//! Per scale s (the input taken at every 2^s-th pixel, PyTorch's nearest downsampling), the
//! backbone maps [reference images; query images] to features; the reference mean M_r is the
//! mean of the reference features. Each head scores every query image; head scores are
//! averaged over scales. The anomaly score is s = −g_n + g_s + g_p + g_r over enabled heads.

use std::fmt;
use std::str::FromStr;

use burn::prelude::*;
use burn::tensor::s;
use serde::{Deserialize, Serialize};

use crate::backbone::{Backbone, BackboneKind};
use crate::error::{Error, Result};
use crate::heads::{NormalHead, PlainHead, ResidualHead};
use crate::rng::materialise;

/// One of the four heads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Head {
    Seen,
    Pseudo,
    Residual,
    Normal,
}

impl Head {
    /// All heads, in the order the paper lists them.
    pub const ALL: [Head; 4] = [Head::Seen, Head::Pseudo, Head::Residual, Head::Normal];

    /// Name on the command line and in outputs.
    pub fn name(self) -> &'static str {
        match self {
            Head::Seen => "seen",
            Head::Pseudo => "pseudo",
            Head::Residual => "residual",
            Head::Normal => "normal",
        }
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

/// A non-empty set of heads, parsed from `seen,pseudo,residual,normal`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct HeadSet(Vec<Head>);

impl HeadSet {
    /// All four heads (full DRA).
    pub fn all() -> Self {
        HeadSet(Head::ALL.to_vec())
    }

    /// True when `head` is in the set.
    pub fn contains(&self, head: Head) -> bool {
        self.0.contains(&head)
    }

    /// The heads in paper order.
    pub fn heads(&self) -> &[Head] {
        &self.0
    }
}

impl Default for HeadSet {
    fn default() -> Self {
        HeadSet::all()
    }
}

impl FromStr for HeadSet {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        let mut heads = Vec::new();
        for name in s.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            let head = Head::ALL
                .into_iter()
                .find(|h| h.name() == name)
                .ok_or_else(|| {
                    Error::Setting(format!(
                        "unknown head '{name}' (seen, pseudo, residual, normal)"
                    ))
                })?;
            if !heads.contains(&head) {
                heads.push(head);
            }
        }
        if heads.is_empty() {
            return Err(Error::Setting(
                "--heads needs at least one of seen, pseudo, residual, normal".into(),
            ));
        }
        heads.sort();
        Ok(HeadSet(heads))
    }
}

impl TryFrom<String> for HeadSet {
    type Error = Error;
    fn try_from(s: String) -> Result<Self> {
        s.parse()
    }
}

impl From<HeadSet> for String {
    fn from(h: HeadSet) -> String {
        h.to_string()
    }
}

impl fmt::Display for HeadSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<_> = self.0.iter().map(|h| h.name()).collect();
        f.write_str(&names.join(","))
    }
}

/// Scores of a batch per enabled head, each `[N]`, averaged over scales.
#[derive(Debug, Clone)]
pub struct HeadScores(Vec<(Head, Tensor<1>)>);

impl HeadScores {
    /// Scores per head (in paper order).
    pub fn new(scores: Vec<(Head, Tensor<1>)>) -> Self {
        HeadScores(scores)
    }

    /// The enabled heads and their scores, in paper order.
    pub fn iter(&self) -> impl Iterator<Item = (Head, Tensor<1>)> + '_ {
        self.0.iter().map(|(h, t)| (*h, t.clone()))
    }

    /// The score of `head`, if enabled.
    pub fn get(&self, head: Head) -> Option<Tensor<1>> {
        self.iter().find(|(h, _)| *h == head).map(|(_, t)| t)
    }

    /// The anomaly score s = −g_n + g_s + g_p + g_r over the enabled heads.
    pub fn anomaly_score(&self) -> Tensor<1> {
        self.iter()
            .map(|(h, t)| t.mul_scalar(h.sign()))
            .reduce(|a, b| a + b)
            .expect("at least one head")
    }

    fn add(self, other: HeadScores) -> HeadScores {
        HeadScores(
            self.0
                .into_iter()
                .zip(other.0)
                .map(|((h, a), (_, b))| (h, a + b))
                .collect(),
        )
    }

    fn scale(self, factor: f32) -> HeadScores {
        HeadScores(
            self.0
                .into_iter()
                .map(|(h, t)| (h, t.mul_scalar(factor)))
                .collect(),
        )
    }
}

/// Architecture settings of a DRA model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelConfig {
    pub backbone: BackboneKind,
    pub heads: HeadSet,
    /// Pyramid levels: scale s sees the image at 1/2^s of its side.
    pub n_scales: usize,
    /// Fraction of feature-map cells averaged by top-K MIL.
    pub topk: f64,
}

/// DRA: backbone and heads.
#[derive(Module, Debug)]
pub struct Dra {
    pub backbone: Backbone,
    seen: Option<PlainHead>,
    pseudo: Option<PlainHead>,
    residual: Option<ResidualHead>,
    normal: Option<NormalHead>,
    n_scales: usize,
    topk: f64,
}

/// Nearest-neighbour pyramid level: every 2^s-th row and column, starting at 0.
pub fn pyramid_level(x: Tensor<4>, s: usize) -> Tensor<4> {
    if s == 0 {
        return x;
    }
    let step = 1isize << s;
    x.slice(s![.., .., ..;step, ..;step])
}

impl Dra {
    /// A model with freshly initialised heads around `backbone`.
    pub fn new(config: &ModelConfig, backbone: Backbone, device: &Device) -> Self {
        let _guard = crate::rng::weight_init_lock();
        Self::draw(config, backbone, device)
    }

    /// [`Dra::new`] for a caller that holds [`crate::rng::weight_init_lock`].
    pub(crate) fn draw(config: &ModelConfig, backbone: Backbone, device: &Device) -> Self {
        let c = config.backbone.channels();
        let on = |h: Head| config.heads.contains(h);
        let model = Dra {
            backbone,
            seen: on(Head::Seen).then(|| PlainHead::new(c, device)),
            pseudo: on(Head::Pseudo).then(|| PlainHead::new(c, device)),
            residual: on(Head::Residual).then(|| ResidualHead::new(c, device)),
            normal: on(Head::Normal).then(|| NormalHead::new(c, device)),
            n_scales: config.n_scales,
            topk: config.topk,
        };
        // the heads' weights, drawn in the order of their first use in `forward`
        materialise(&model.seen);
        materialise(&model.pseudo);
        materialise(&model.residual);
        materialise(&model.normal);
        model
    }

    /// True when the residual head, and so a reference set, is used.
    pub fn needs_reference(&self) -> bool {
        self.residual.is_some()
    }

    /// Head scores of `features` at one scale, given the reference mean map when needed.
    fn heads(&self, features: Tensor<4>, reference: Option<Tensor<4>>) -> HeadScores {
        let mut out = Vec::new();
        if let Some(h) = &self.seen {
            out.push((Head::Seen, h.forward(features.clone(), self.topk)));
        }
        if let Some(h) = &self.pseudo {
            out.push((Head::Pseudo, h.forward(features.clone(), self.topk)));
        }
        if let (Some(h), Some(r)) = (&self.residual, reference) {
            out.push((Head::Residual, h.forward(features.clone(), r, self.topk)));
        }
        if let Some(h) = &self.normal {
            out.push((Head::Normal, h.forward(features)));
        }
        HeadScores(out)
    }

    /// Averages per-scale scores over the pyramid.
    fn over_scales(&self, per_scale: impl Fn(usize) -> HeadScores) -> HeadScores {
        let total = (0..self.n_scales)
            .map(per_scale)
            .reduce(HeadScores::add)
            .expect("n_scales ≥ 1");
        total.scale(1.0 / self.n_scales as f32)
    }

    /// Training forward: references (if the residual head is on) and queries go through the
    /// backbone together, so BatchNorm sees them in one batch, as in the reference code.
    pub fn forward(&self, references: Option<Tensor<4>>, queries: Tensor<4>) -> HeadScores {
        let n_ref = references.as_ref().map_or(0, |r| r.dims()[0]);
        let input = match (&references, self.needs_reference()) {
            (Some(r), true) => Tensor::cat(vec![r.clone(), queries], 0),
            _ => queries,
        };
        let n = input.dims()[0];
        self.over_scales(|s| {
            let features = self.backbone.features(pyramid_level(input.clone(), s));
            if self.needs_reference() && n_ref > 0 {
                let reference = features.clone().slice(s![0..n_ref]).mean_dim(0);
                self.heads(features.slice(s![n_ref..n]), Some(reference))
            } else {
                self.heads(features, None)
            }
        })
    }

    /// The reference mean map at each scale (evaluation: computed once, reused per batch).
    pub fn reference_maps(&self, references: Tensor<4>) -> Vec<Tensor<4>> {
        (0..self.n_scales)
            .map(|s| {
                self.backbone
                    .features(pyramid_level(references.clone(), s))
                    .mean_dim(0)
            })
            .collect()
    }

    /// Evaluation forward against precomputed reference maps (see [`Dra::reference_maps`]).
    pub fn score(&self, queries: Tensor<4>, reference_maps: &[Tensor<4>]) -> HeadScores {
        self.over_scales(|s| {
            let features = self.backbone.features(pyramid_level(queries.clone(), s));
            self.heads(features, reference_maps.get(s).cloned())
        })
    }
}
