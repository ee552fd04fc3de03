//! DevNet (Pang et al.), the image version of its authors' code: the backbone's last map
//! scored cell by cell by one 1×1 convolution, an image's score the top-K mean of the cells'
//! absolute values averaged over the 2-scale pyramid — DRA's seen head alone — trained by
//! the deviation loss (normal 0, seen 1) on batches of 24 normal and 24 seen images, no
//! pseudo anomaly and no reference set, with the authors' trainer: Adam 2e-4 (L2 1e-5), 50
//! epochs of 20 steps, the learning rate ×0.1 after every 10th epoch, gradient norm clipped
//! at 1, the backbone fine-tuned.

use super::{MethodSpec, SAME_BACKBONE, choices, table};
use crate::data::sampler::Composition;

/// The settings DevNet and FLOS share over the fine-tuned trainer (BASELINES_SPEC §0, the
/// `devnet-trainer`).
pub(super) const PROFILE: &str = r#"
heads = "seen"
criterion = "deviation"
epochs = 50
n_scales = 2
topk = 0.1
lr_step_at = "end"
"#;

/// The readings DevNet and FLOS share.
pub(super) const CHOICES: &[(&str, &str)] = &[
    SAME_BACKBONE,
    (
        "A1",
        "50 epochs of 20 steps, the default of the authors' code",
    ),
    (
        "A2",
        "24 normal + 24 seen images a batch of 48, no CutMix (the authors' sampler)",
    ),
];

pub(super) fn spec() -> MethodSpec {
    MethodSpec {
        profile: table(PROFILE),
        composition: Composition::HALVES,
        needs_anomalies: true,
        choices: choices(CHOICES),
    }
}
