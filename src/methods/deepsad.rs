//! Deep SAD (Ruff et al., ICLR 2020), adapted to images as `BASELINES_SPEC.md` §6 recommends:
//! the backbone's map pooled and projected to 128 dimensions without bias, φ(x) (the centre
//! head); its centre c the mean φ of the normal training images before training, in
//! inference mode (entries within 0.1 of 0 moved to ±0.1); the loss d = ‖φ(x) − c‖² for a
//! normal and 1/(d + 10⁻⁶) for a labelled anomaly (η = 1), the score d. One scale; DRA's
//! batches without pseudo anomalies (32 normal + 16 seen of 48) and DRA's trainer (Adam 2e-4,
//! L2 1e-5, 30 × 20 steps, StepLR 10, clip 1), the backbone fine-tuned.

use super::{MethodSpec, SAME_BACKBONE, choices, on_dra_trainer};
use crate::data::sampler::Composition;

const PROFILE: &str = r#"
heads = "centre"
criterion = "sad"
n_scales = 1
"#;

pub(super) fn spec() -> MethodSpec {
    MethodSpec {
        profile: on_dra_trainer(PROFILE),
        composition: Composition::DRA_WITHOUT_PSEUDO,
        needs_anomalies: false,
        choices: choices(&[
            SAME_BACKBONE,
            (
                "A17",
                "GAP → Linear C→128 without bias on the backbone's map; no autoencoder \
                 pretraining (the ImageNet weights replace it); c = mean φ of the normal \
                 training images only, unaugmented, entries |c_i| < 0.1 set to ±0.1",
            ),
            (
                "A18",
                "DRA's sampler without pseudo anomalies (32 normal + 16 seen of 48) and \
                 DRA's trainer (30 × 20 steps, Adam 2e-4)",
            ),
            ("scales", "one (Deep SAD has no pyramid)"),
        ]),
    }
}
