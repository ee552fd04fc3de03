//! DRA (Ding, Pang, Shen, CVPR 2022): the seen, pseudo, residual and normal heads, each
//! trained by the deviation loss on its own samples, ⌊2B/3⌋ normal slots of which half become
//! CutMix pseudo anomalies. Its settings are the preset's (the tool's measured defaults, or
//! `--preset paper`), so its profile sets nothing.

use super::MethodSpec;
use crate::data::sampler::Composition;

pub(super) fn spec() -> MethodSpec {
    MethodSpec {
        profile: toml::Table::new(),
        composition: Composition::DRA,
        needs_anomalies: false,
        choices: Vec::new(),
    }
}
