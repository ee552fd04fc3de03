//! KDAD (Salehi et al., CVPR 2021, multiresolution knowledge distillation), unsupervised: the
//! frozen backbone is the teacher (by default EfficientNet-Lite0, "KDAD-Lite0"; the paper's
//! VGG16 with `--backbone vgg16 --weights` and torchvision's file, not to be had offline here,
//! fed unnormalised pixels as its code does), a small VGG-like student learns to reproduce
//! its maps at strides 4, 8, 16 and 32 on the normal training images alone, unaugmented, at
//! 128²; the loss is Σ over the four taps of (1 − cos) + 0.5 · MSE, the score the same over
//! the last three, the map the same cell by cell. Its authors' trainer: batches of 64, Adam
//! 1e-3 without weight decay or schedule.

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
                "the run's --backbone, frozen: KDAD-Lite0 with the bundled weights, or the \
                 paper's VGG16 with --backbone vgg16 --weights vgg16-397923af.pth (torchvision's)",
            ),
            (
                "A12",
                "128², no augmentation, batches of 64 normal training images",
            ),
            (
                "A13",
                "the final model (no test-set selection); 30 × 20 steps rather than 601 epochs",
            ),
            (
                "A14",
                "the teacher's own input normalisation; for VGG16 none (pixels in [0, 1]), as \
                 KDAD's code",
            ),
            (
                "A15",
                "taps after Lite0 blocks 2, 4, 10, 15, the student's convs before them linear \
                 (VGG16: pool2–pool5, with a ReLU)",
            ),
            ("A16", "λ = 0.5"),
            (
                "maps",
                "each cell's (1 − cos) + λ · MSE over its channels at the last three taps, \
                 bilinear to stride 8 and summed (not KDAD's gradient attributions)",
            ),
            (
                "training",
                "Adam 1e-3, no weight decay, no schedule, no clipping",
            ),
        ]),
    }
}
