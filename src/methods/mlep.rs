//! MLEP (Liu et al., IJCAI 2019, margin learning embedded prediction) adapted to images as
//! `BASELINES_SPEC.md` §4 recommends: the backbone, fine-tuned, is the encoder and its map the
//! latent; a decoder head reconstructs the input from it (in place of the video model's
//! next-frame prediction); the loss is the anchors' and the positives' mean absolute
//! reconstruction error (the normal slots' two halves) plus max(0, 1 + D(h_a, h_p) −
//! D(h_a, h_n)), D the mean squared difference of the latents, the negatives the seen
//! anomalies. Scored by the reconstruction's mean squared error; one scale; DRA's batches
//! without pseudo anomalies (32 normal + 16 seen of 48) and DRA's trainer.

use super::{MethodSpec, choices, on_dra_trainer};
use crate::data::sampler::Composition;

const PROFILE: &str = r#"
heads = "reconstruction"
n_scales = 1
"#;

pub(super) fn spec() -> MethodSpec {
    MethodSpec {
        profile: on_dra_trainer(PROFILE),
        composition: Composition::DRA_WITHOUT_PSEUDO,
        needs_anomalies: true,
        choices: choices(&[
            (
                "backbone",
                "the run's --backbone as the encoder, fine-tuned (published: ResNet-18)",
            ),
            (
                "A9",
                "reconstruction of the normalised input by 5 × (nearest ×2, 3×3 conv, BN, \
                 ReLU; 256-128-64-32-16 channels) and a linear 3×3 conv to 3; score = its mean \
                 squared error",
            ),
            (
                "A10",
                "margin m = 1, λ = 1, one hinge a batch on whole-batch latent distances",
            ),
            ("A11", "one scale"),
            (
                "batches",
                "DRA's without pseudo anomalies: the normal slots' halves as anchors and \
                 positives, the seen slots as negatives",
            ),
        ]),
    }
}
