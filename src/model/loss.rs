//! Losses (`--criterion`) and the per-head targets of DRA.
//!
//! | label | normal head | seen head | pseudo head | residual head |
//! |---|---|---|---|---|
//! | normal | 1 | 0 | 0 | 0 |
//! | seen anomaly | 0 | 1 | (not fed) | 1 |
//! | pseudo anomaly | 0 | (not fed) | 1 | 1 |
//!
//! Deep SAD's centre head and MINNS's bag head take every sample: 0 for normals, 1 for
//! anomalies. SAOE's class head learns the three labels as classes by cross-entropy, whatever
//! the criterion, and the outlier-exposure images (which no other head sees) towards the
//! uniform distribution ([`exposure_loss`]). MLEP's decoder learns to reconstruct the normals
//! while their latents are pulled together and pushed from the seen anomalies' ([`margin_loss`]).
//! KDAD's student learns the teacher's maps on the normal images (their mean discrepancy).
//!
//! Each head's loss is the mean over the samples routed to it; the total is their sum.

use burn::prelude::*;
use burn::tensor::activation::{log_softmax, relu};
use rand_distr::{Distribution, StandardNormal};

use crate::choice::choice;
use crate::model::{HeadScores, Reconstruction};
use crate::rng::DraRng;
use crate::types::{Head, Label};

/// Margin a of the deviation losses: targets 1 are pushed to a z-score of at least a.
pub const MARGIN: f32 = 5.0;
/// Deep SAD's weight η of the labelled anomalies' inverse-distance term.
pub const SAD_ETA: f32 = 1.0;
/// Deep SAD's ε in η/(d + ε).
pub const SAD_EPSILON: f32 = 1e-6;
/// Size of the N(0, 1) reference sample of the deviation loss.
pub const REFERENCE_DRAWS: usize = 5000;
/// Weight of SAOE's outlier-exposure term (that of Hendrycks et al.'s code).
pub const EXPOSURE_WEIGHT: f32 = 0.5;
/// MLEP's margin m between the normals' latent distance and the anomalies'.
pub const MLEP_MARGIN: f32 = 1.0;
/// MLEP's weight λ of the margin term.
pub const MLEP_LAMBDA: f32 = 1.0;

choice! {
    /// The training criterion.
    pub enum Criterion ("criterion") {
        /// DevNet's deviation loss: (1−t)|z| + t·max(0, a − z), z against a 5000-draw N(0,1)
        /// reference.
        Deviation = "deviation",
        /// The reproduction report's variant: reference of the batch's size, (1−t)z² +
        /// t·max(0, a − z)², weighted by |t − ½| (always ½ for 0/1 targets: a constant scale).
        Dweighted = "dweighted",
        /// Binary cross-entropy with the score as logit.
        Bce = "bce",
        /// Binary focal loss, α = 1, γ = 2, with the score as logit.
        Focal = "focal",
        /// Deep SAD's, for a score that is a squared distance d: (1 − t)·d + t·η/(d + 10⁻⁶),
        /// η = 1.
        Sad = "sad",
    }
}

impl Criterion {
    /// Mean loss of `scores` `[n]` against 0/1 `targets`; reference draws come from `rng`.
    pub fn loss(self, scores: Tensor<1>, targets: &[f32], rng: &mut DraRng) -> Tensor<1> {
        let device = scores.device();
        let t = Tensor::<1>::from_data(TensorData::new(targets.to_vec(), [targets.len()]), &device);
        match self {
            Criterion::Deviation => {
                let (mu, sigma) = reference_statistics(REFERENCE_DRAWS, rng);
                deviation(scores, t, mu, sigma)
            }
            Criterion::Dweighted => {
                let (mu, sigma) = if targets.len() > 1 {
                    reference_statistics(targets.len(), rng)
                } else {
                    (0.0, 1.0)
                };
                dweighted(scores, t, mu, sigma)
            }
            Criterion::Bce => bce(scores, t).mean(),
            Criterion::Focal => {
                let b = bce(scores, t);
                let pt = b.clone().neg().exp();
                (pt.neg().add_scalar(1.0).powi_scalar(2) * b).mean()
            }
            Criterion::Sad => {
                let inverse = scores
                    .clone()
                    .add_scalar(SAD_EPSILON)
                    .recip()
                    .mul_scalar(SAD_ETA);
                (t.clone().neg().add_scalar(1.0) * scores + t * inverse).mean()
            }
        }
    }
}

/// Mean and unbiased standard deviation of `n` draws from N(0, 1).
pub fn reference_statistics(n: usize, rng: &mut DraRng) -> (f32, f32) {
    let draws: Vec<f64> = (0..n).map(|_| StandardNormal.sample(rng)).collect();
    let mean = draws.iter().sum::<f64>() / n as f64;
    let var = draws.iter().map(|d| (d - mean).powi(2)).sum::<f64>() / (n as f64 - 1.0);
    (mean as f32, var.sqrt() as f32)
}

/// Deviation loss with reference statistics `mu`, `sigma`.
pub fn deviation(scores: Tensor<1>, t: Tensor<1>, mu: f32, sigma: f32) -> Tensor<1> {
    let z = scores.sub_scalar(mu).div_scalar(sigma);
    let inlier = t.clone().neg().add_scalar(1.0) * z.clone().abs();
    let outlier = t * relu(z.neg().add_scalar(MARGIN));
    (inlier + outlier).mean()
}

/// The reproduction report's weighted deviation loss with reference statistics `mu`, `sigma`.
pub fn dweighted(scores: Tensor<1>, t: Tensor<1>, mu: f32, sigma: f32) -> Tensor<1> {
    let dev = scores.sub_scalar(mu).div_scalar(sigma);
    let weight = t.clone().sub_scalar(0.5).abs();
    let inlier = t.clone().neg().add_scalar(1.0) * dev.clone().powi_scalar(2);
    let outlier = t * relu(dev.neg().add_scalar(MARGIN)).powi_scalar(2);
    (weight * (inlier + outlier)).mean()
}

/// Per-sample binary cross-entropy with logits: max(s, 0) − s·t + ln(1 + e^−|s|).
fn bce(scores: Tensor<1>, t: Tensor<1>) -> Tensor<1> {
    let softplus = scores.clone().abs().neg().exp().add_scalar(1.0).log();
    relu(scores.clone()) - scores * t + softplus
}

/// The positions in a batch of the samples whose label passes `keep`.
fn rows_where(labels: &[Label], keep: impl Fn(Label) -> bool) -> Vec<i64> {
    (0..labels.len() as i64)
        .filter(|&i| keep(labels[i as usize]))
        .collect()
}

/// `rows` as an index tensor on `device`.
fn index(rows: &[i64], device: &Device) -> Tensor<1, Int> {
    Tensor::from_data(TensorData::new(rows.to_vec(), [rows.len()]), device)
}

/// SAOE's loss on the class head's logits `[N, 3]`: the cross-entropy of the batch's
/// normal, seen and pseudo samples with their label as the class, plus [`EXPOSURE_WEIGHT`]
/// times the outlier images' cross-entropy to the uniform distribution,
/// mean over them of logsumexp(z) − mean(z) (Hendrycks et al.'s outlier exposure).
pub fn exposure_loss(logits: Tensor<2>, labels: &[Label]) -> Tensor<1> {
    let device = logits.device();
    let log_p = log_softmax(logits, 1);
    let select = |rows: &[i64]| log_p.clone().select(0, index(rows, &device));
    let known = rows_where(labels, |l| l != Label::Outlier);
    let classes: Vec<i64> = known.iter().map(|&i| labels[i as usize] as i64).collect();
    let classes = Tensor::<2, Int>::from_data(TensorData::new(classes, [known.len(), 1]), &device);
    let loss = select(&known).gather(1, classes).neg().mean();
    let outliers = rows_where(labels, |l| l == Label::Outlier);
    match outliers.is_empty() {
        true => loss,
        // −mean_k log p_k = logsumexp(z) − mean_k z
        false => {
            loss + select(&outliers)
                .mean_dim(1)
                .neg()
                .mean()
                .mul_scalar(EXPOSURE_WEIGHT)
        }
    }
}

/// MLEP's loss of a batch: the mean reconstruction error (absolute) of the anchors plus that
/// of the positives, the first and the second half of the normal samples, plus
/// λ·max(0, m + D(h_a, h_p) − D(h_a, h_n)) over as many anchors, positives and negatives (the
/// seen anomalies) as the fewest of them, D the mean squared difference of whole batches of
/// latents: one hinge a batch, as in its authors' code.
pub fn margin_loss(terms: &Reconstruction, labels: &[Label]) -> Tensor<1> {
    let device = terms.l1.device();
    let normals = rows_where(labels, |l| l == Label::Normal);
    let seen = rows_where(labels, |l| l == Label::Seen);
    let error = |rows: &[i64]| terms.l1.clone().select(0, index(rows, &device)).mean();
    let half = normals.len() / 2;
    if half == 0 {
        return error(&normals);
    }
    let (anchors, positives) = (&normals[..half], &normals[half..2 * half]);
    let prediction = error(anchors) + error(positives);
    let n = half.min(seen.len());
    if n == 0 {
        return prediction;
    }
    let latent = |rows: &[i64]| terms.latent.clone().select(0, index(&rows[..n], &device));
    let distance = |a: Tensor<4>, b: Tensor<4>| (a - b).powi_scalar(2).mean();
    let (h_a, h_p, h_n) = (latent(anchors), latent(positives), latent(&seen));
    let hinge = relu(distance(h_a.clone(), h_p) - distance(h_a, h_n) + MLEP_MARGIN);
    prediction + hinge.mul_scalar(MLEP_LAMBDA)
}

/// Which samples of a batch a head is trained on, and their targets (none for the memory,
/// the class head, the decoder and the student, which [`exposure_loss`], [`margin_loss`] and
/// the normals' mean discrepancy train).
pub fn routing(head: Head, labels: &[Label]) -> (Vec<i64>, Vec<f32>) {
    labels
        .iter()
        .enumerate()
        .filter_map(|(i, &l)| {
            let target = match (head, l) {
                (Head::Seen, Label::Pseudo) | (Head::Pseudo, Label::Seen) => return None,
                (Head::Memory | Head::Classes | Head::Reconstruction | Head::Student, _)
                | (_, Label::Outlier) => return None,
                (Head::Normal, l) => l == Label::Normal,
                (Head::Seen, l) => l == Label::Seen,
                (Head::Pseudo, l) => l == Label::Pseudo,
                (Head::Residual | Head::Centre | Head::Bag, l) => l != Label::Normal,
            };
            Some((i as i64, if target { 1.0 } else { 0.0 }))
        })
        .unzip()
}

/// The DRA loss of a batch: the sum over enabled heads of each head's mean loss on the
/// samples routed to it (the class head's, [`exposure_loss`]; the decoder's,
/// [`margin_loss`]). Returns the total and each head's value.
pub fn dra_loss(
    criterion: Criterion,
    scores: &HeadScores,
    labels: &[Label],
    rng: &mut DraRng,
) -> (Tensor<1>, Vec<(Head, Tensor<1>)>) {
    let mut parts = Vec::new();
    for (head, s) in scores.iter() {
        let (rows, targets) = routing(head, labels);
        if rows.is_empty() {
            continue;
        }
        let idx = index(&rows, &s.device());
        parts.push((head, criterion.loss(s.select(0, idx), &targets, rng)));
    }
    if let Some(logits) = scores.logits() {
        parts.push((Head::Classes, exposure_loss(logits, labels)));
    }
    if let Some(terms) = scores.reconstruction() {
        parts.push((Head::Reconstruction, margin_loss(&terms, labels)));
    }
    if let Some(discrepancy) = scores.distillation() {
        let normals = rows_where(labels, |l| l == Label::Normal);
        if !normals.is_empty() {
            let idx = index(&normals, &discrepancy.device());
            parts.push((Head::Student, discrepancy.select(0, idx).mean()));
        }
    }
    let total = parts
        .iter()
        .map(|(_, l)| l.clone())
        .reduce(|a, b| a + b)
        .expect("at least one head");
    (total, parts)
}
