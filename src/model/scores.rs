//! What the model gives for a batch: each head's scores (pooled over cells, averaged over
//! scales), the class head's logits, the decoder's training terms, the maps and the memory's
//! scores.

use burn::prelude::*;

use crate::model::heads::{Distillation, Reconstructed, image_logits, not_normal, top_k_mean};
use crate::types::Head;

/// MLEP's training terms of a batch: each image's reconstruction error `[N]` (mean absolute)
/// and its latent, the backbone's map `[N, C, h, w]`.
#[derive(Debug, Clone)]
pub struct Reconstruction {
    pub l1: Tensor<1>,
    pub latent: Tensor<4>,
}

/// Scores of a batch per enabled head, each `[N]`, averaged over scales; with the class head,
/// also its image logits `[N, 3]` (averaged over scales before its score is taken from them);
/// with the decoder head, its training terms; with the student head, each image's
/// discrepancy over all four taps, which it is trained on (these two run on one scale).
#[derive(Debug, Clone)]
pub struct HeadScores {
    scores: Vec<(Head, Tensor<1>)>,
    logits: Option<Tensor<2>>,
    reconstruction: Option<Reconstruction>,
    distillation: Option<Tensor<1>>,
}

impl HeadScores {
    /// Scores per head (in paper order).
    pub fn new(scores: Vec<(Head, Tensor<1>)>) -> Self {
        HeadScores {
            scores,
            logits: None,
            reconstruction: None,
            distillation: None,
        }
    }

    /// The class head's image logits `[N, 3]` (normal, seen, pseudo), if it is enabled.
    pub fn logits(&self) -> Option<Tensor<2>> {
        self.logits.clone()
    }

    /// The decoder head's training terms, if it is enabled.
    pub fn reconstruction(&self) -> Option<Reconstruction> {
        self.reconstruction.clone()
    }

    /// The student head's discrepancy over its four taps `[N]`, if it is enabled.
    pub fn distillation(&self) -> Option<Tensor<1>> {
        self.distillation.clone()
    }

    /// The enabled heads and their scores, in paper order.
    pub fn iter(&self) -> impl Iterator<Item = (Head, Tensor<1>)> + '_ {
        self.scores.iter().map(|(h, t)| (*h, t.clone()))
    }

    /// The score of `head`, if enabled.
    pub fn get(&self, head: Head) -> Option<Tensor<1>> {
        self.iter().find(|(h, _)| *h == head).map(|(_, t)| t)
    }

    /// The sum of two scales' scores (the decoder's and the student's terms are one scale's:
    /// they run on one, `TrainConfig::validate`).
    pub(super) fn add(self, other: HeadScores) -> HeadScores {
        HeadScores {
            scores: self
                .scores
                .into_iter()
                .zip(other.scores)
                .map(|((h, a), (_, b))| (h, a + b))
                .collect(),
            logits: self.logits.zip(other.logits).map(|(a, b)| a + b),
            reconstruction: self.reconstruction.or(other.reconstruction),
            distillation: self.distillation.or(other.distillation),
        }
    }

    /// The scores scaled by `factor` (the mean over scales), the class head's score then
    /// taken from its scaled logits.
    pub(super) fn scale(self, factor: f32) -> HeadScores {
        let logits = self.logits.map(|z| z.mul_scalar(factor));
        let mut scores: Vec<_> = self
            .scores
            .into_iter()
            .map(|(h, t)| (h, t.mul_scalar(factor)))
            .collect();
        if let Some(z) = &logits {
            let n = z.dims()[0];
            scores.push((Head::Classes, not_normal(z.clone()).reshape([n])));
            scores.sort_by_key(|(h, _)| *h);
        }
        HeadScores {
            scores,
            logits,
            reconstruction: self.reconstruction,
            distillation: self.distillation,
        }
    }
}

/// What one head gives at one scale: a score per feature-map cell, pooled by top-K MIL into
/// the image's, one score per image (the normal head), the class head's logits per cell, the
/// decoder's reconstruction of the input (with the latent), or the student's taps with its
/// score and training term.
pub(super) enum HeadOutput {
    Cells(Tensor<4>),
    Image(Tensor<1>),
    Classes(Tensor<4>),
    Reconstructed(Box<(Reconstructed, Tensor<4>)>),
    Distilled(Box<Distillation>),
}

impl HeadOutput {
    /// The cells' anomaly scores `[N, 1, h, w]`, for the heads that score cells (the
    /// decoder's are the input's pixels, the student's its scored taps' cells at stride 8).
    pub(super) fn cell_scores(&self) -> Option<Tensor<4>> {
        match self {
            HeadOutput::Cells(cells) => Some(cells.clone()),
            HeadOutput::Classes(logits) => Some(not_normal(logits.clone())),
            HeadOutput::Reconstructed(r) => Some(r.0.error.clone()),
            HeadOutput::Distilled(d) => Some(d.map()),
            HeadOutput::Image(_) => None,
        }
    }
}

/// One scale's head scores: cell scores pooled by top-K MIL, the class head's cell logits
/// pooled into image logits (its score comes after the scales are averaged), the decoder's
/// pixel errors averaged.
pub(super) fn pooled(outputs: Vec<(Head, HeadOutput)>, topk: f64) -> HeadScores {
    let mut pooled = HeadScores::new(Vec::new());
    for (head, output) in outputs {
        match output {
            HeadOutput::Cells(cells) => pooled.scores.push((head, top_k_mean(cells, topk))),
            HeadOutput::Image(score) => pooled.scores.push((head, score)),
            HeadOutput::Classes(cells) => pooled.logits = Some(image_logits(cells, topk)),
            HeadOutput::Reconstructed(boxed) => {
                let (r, latent) = *boxed;
                let [n, _, h, w] = r.error.dims();
                let mse = r.error.reshape([n, h * w]).mean_dim(1).reshape([n]);
                pooled.scores.push((head, mse));
                pooled.reconstruction = Some(Reconstruction { l1: r.l1, latent });
            }
            HeadOutput::Distilled(d) => {
                pooled.scores.push((head, d.score));
                pooled.distillation = Some(d.all);
            }
        }
    }
    pooled
}

/// What [`Dra::evaluate`] gives for a batch.
#[derive(Debug, Clone)]
pub struct Evaluation {
    /// Each head's scores, averaged over scales.
    pub scores: HeadScores,
    /// Each cell-scoring head's map in the input's frame (empty unless maps were asked).
    pub maps: Vec<(Head, Tensor<4>)>,
    /// The memory's image scores and patch-distance maps in the input's frame, if a memory
    /// was given.
    pub memory: Option<(Vec<f32>, Tensor<4>)>,
}
