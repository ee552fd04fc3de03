//! KDAD (Salehi et al., CVPR 2021, multiresolution knowledge distillation), unsupervised: the
//! frozen backbone is the teacher (here EfficientNet-Lite0, "KDAD-Lite0", for the paper's
//! VGG16 cannot be had offline), a small VGG-like student learns to reproduce its maps at
//! strides 4, 8, 16 and 32 on the normal training images alone, unaugmented, at 128²; the loss
//! is Σ over the four taps of (1 − cos) + 0.5 · MSE, the score the same over the last three.
//! Its authors' trainer: batches of 64, Adam 1e-3 without weight decay or schedule.

use super::{MethodSpec, choices, table};
use crate::data::sampler::Composition;

const PROFILE: &str = r#"
heads = "student"
freeze_backbone = true
img_size = 128
batch_size = 64
n_scales = 1
epochs = 30
lr = 1e-3
weight_decay = 0.0
lr_step = 1000
clip_norm = 1e9
"#;

pub(super) fn spec() -> MethodSpec {
    MethodSpec {
        profile: table(PROFILE),
        composition: Composition::PLAIN_NORMALS,
        needs_anomalies: false,
        choices: choices(&[
            (
                "teacher",
                "the run's --backbone, frozen (KDAD-Lite0 with the bundled weights; the paper's \
                 VGG16 is not available offline)",
            ),
            (
                "A12",
                "128², no augmentation, batches of 64 normal training images",
            ),
            (
                "A13",
                "the final model (no test-set selection); 30 × 20 steps rather than 601 epochs",
            ),
            ("A14", "the teacher's own input normalisation"),
            (
                "A15",
                "taps after Lite0 blocks 2, 4, 10, 15; the student's convs before them linear",
            ),
            ("A16", "λ = 0.5"),
            (
                "training",
                "Adam 1e-3, no weight decay, no schedule, no clipping",
            ),
        ]),
    }
}
