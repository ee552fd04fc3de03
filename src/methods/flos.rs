//! FLOS (the focal-loss classifier of Lin et al.), as the DRA paper ran it: DevNet's network,
//! data and trainer with the deviation loss replaced by the binary focal loss, α = 1, γ = 2,
//! on the image's score taken as a logit. That score is a top-K mean of absolute values, so
//! σ(s) ≥ ½ for every image and a normal's loss never falls below ¼·ln 2; the ranking still
//! learns, and this is the code behind the published numbers.

use super::{MethodSpec, choices, devnet, table};

pub(super) fn spec() -> MethodSpec {
    let mut profile = table(devnet::PROFILE);
    profile.insert("criterion".into(), "focal".into());
    let mut list = devnet::CHOICES.to_vec();
    list.push((
        "A3",
        "the score, a top-K mean of |S| (so ≥ 0), is the logit, as in the authors' code",
    ));
    MethodSpec {
        profile,
        composition: devnet::spec().composition,
        needs_anomalies: true,
        choices: choices(&list),
    }
}
