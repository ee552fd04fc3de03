//! SAOE, the DRA paper's own baseline of synthetic anomalies and outlier exposure: one class
//! head over the backbone's cells (normal, seen anomaly, CutMix pseudo anomaly, each class's
//! image logit the top-K mean of its signed cell logits, averaged over the 2-scale pyramid)
//! trained by cross-entropy, plus Hendrycks et al.'s outlier exposure, 0.5 × the outlier
//! images' cross-entropy to the uniform distribution, on a batch of B external images
//! (`--outlier-root`) in the same forward pass; scored by 1 − p(normal). DRA's batches (32
//! normal slots, half of them pseudo anomalies, and 16 seen of 48) and trainer (Adam 2e-4,
//! L2 1e-5, 30 × 20 steps, StepLR 10, clip 1), the backbone fine-tuned.

use super::{MethodSpec, SAME_BACKBONE, choices, on_dra_trainer};
use crate::data::sampler::Composition;

const PROFILE: &str = r#"
heads = "classes"
n_scales = 2
topk = 0.1
"#;

pub(super) fn spec() -> MethodSpec {
    MethodSpec {
        profile: on_dra_trainer(PROFILE),
        composition: Composition::WITH_EXPOSURE,
        needs_anomalies: false,
        choices: choices(&[
            SAME_BACKBONE,
            (
                "A4",
                "1×1 conv C→3 per cell, each class's image logit the top-K mean of its signed \
                 cell logits, averaged over the 2 scales",
            ),
            (
                "A5",
                "B outlier images a step (48 beside 48), in the same forward pass",
            ),
            (
                "A6",
                "outliers from --outlier-root (MVTec-style other classes or any folder); CutMix \
                 pseudo anomalies kept beside them",
            ),
            ("A7", "DRA's trainer: Adam 2e-4, 30 × 20 steps, StepLR 10"),
            ("A8", "score 1 − softmax(z)_normal"),
        ]),
    }
}
