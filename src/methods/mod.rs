//! The detection methods a run can train (`--method`): DRA and the comparison systems of its
//! paper, as `BASELINES_SPEC.md` specifies them. A method is its network's heads, its loss,
//! its batch composition, its test score and its trainer profile, one file each; the layout,
//! split, transforms, backbone, training loop, evaluation, metrics and reports are shared.
//!
//! Every method here scores an image by its heads' signed sum (`model::HeadScores`) and
//! trains each head with `--criterion` on the samples routed to it (SAOE's class head, MLEP's
//! decoder and KDAD's student with their own losses; `model::loss`), so a method needs no code of its own in the loop: what
//! differs is data, namely its settings (heads, criterion, trainer) and its [`Composition`].
//! A head a method brings (Deep SAD's centre head, MINNS's bag head, SAOE's class head, MLEP's
//! decoder, KDAD's student) lives with the others in `model::heads`.

mod deepsad;
mod devnet;
mod dra;
mod flos;
mod kdad;
mod minns;
mod mlep;
mod saoe;

use crate::choice::choice;
use crate::data::sampler::Composition;

choice! {
    /// The method a run trains.
    pub enum Method ("method") {
        /// DRA: seen, pseudo, residual and normal heads, the tool's defaults.
        Dra = "dra",
        /// DevNet: the seen head alone (1×1 conv, top-K of |·|) with the deviation loss, 24
        /// normal + 24 seen images a batch, 50 epochs.
        Devnet = "devnet",
        /// FLOS: DevNet with the binary focal loss (α 1, γ 2) on its score as the logit.
        Flos = "flos",
        /// Deep SAD: the distance of a 128-d projection to the normals' centre, pulled in for
        /// normals and pushed out (inverse distance) for labelled anomalies, one scale.
        Deepsad = "deepsad",
        /// MINNS: MI-Net over the feature-map cells as a bag's instances, binary
        /// cross-entropy, DevNet's batches and trainer.
        Minns = "minns",
        /// SAOE: a normal / seen / pseudo class head, cross-entropy plus outlier exposure to
        /// the images of `--outlier-root`, scored by 1 − p(normal); DRA's batches and trainer.
        Saoe = "saoe",
        /// MLEP: the backbone as encoder and a decoder reconstructing the input; L1
        /// reconstruction of the normals plus a latent margin against the seen anomalies;
        /// scored by the reconstruction's squared error; one scale, DRA's trainer.
        Mlep = "mlep",
        /// KDAD (unsupervised): a small student learns the frozen backbone's maps at four
        /// strides on the normal images; scored by its discrepancy from them.
        Kdad = "kdad",
    }
}

/// What a method fixes about a run.
#[derive(Debug, Clone)]
pub struct MethodSpec {
    /// Its settings (heads, criterion, trainer profile), laid beneath the settings layer that
    /// names the method, so that the layer's own keys and later layers still override them.
    pub profile: toml::Table,
    /// How its training batches are filled.
    pub composition: Composition,
    /// It cannot train without labelled anomalies.
    pub needs_anomalies: bool,
    /// The reading taken of each ambiguity of its specification: (tag in
    /// `BASELINES_SPEC.md`, choice), recorded in `config.json`.
    pub choices: Vec<(String, String)>,
}

impl Method {
    /// This method's specification.
    pub fn spec(self) -> MethodSpec {
        match self {
            Method::Dra => dra::spec(),
            Method::Devnet => devnet::spec(),
            Method::Flos => flos::spec(),
            Method::Deepsad => deepsad::spec(),
            Method::Minns => minns::spec(),
            Method::Saoe => saoe::spec(),
            Method::Mlep => mlep::spec(),
            Method::Kdad => kdad::spec(),
        }
    }
}

/// The trainer the comparison methods share (BASELINES_SPEC §0): the backbone fine-tuned
/// with batch statistics, batches of 48, Adam 2e-4 with L2 1e-5, StepLR ×0.1 every 10
/// epochs, gradient norm clipped at 1, the heads' plain score and no memory.
const FINE_TUNED: &str = r#"
steps_per_epoch = 20
batch_size = 48
lr = 2e-4
weight_decay = 1e-5
lr_step = 10
clip_norm = 1.0
freeze_backbone = false
bn_stats = "batch"
head_norm = "none"
memory = "none"
"#;

/// The reading of the paper's "same backbone as DRA" that the comparison methods share.
const SAME_BACKBONE: (&str, &str) = (
    "backbone",
    "the run's --backbone (the published numbers are ImageNet ResNet-18's)",
);

/// DRA's trainer over the fine-tuned one (BASELINES_SPEC §0, the `dra-trainer`): 30 epochs,
/// the learning rate stepped at the start of an epoch, as DRA's reference code does.
const DRA_TRAINER: &str = r#"
epochs = 30
lr_step_at = "start"
"#;

/// A method's profile: the shared fine-tuned trainer with the settings of TOML `text` (part
/// of the program: its tests parse every one) over it.
fn table(text: &str) -> toml::Table {
    layers(&[FINE_TUNED, text])
}

/// A profile on DRA's trainer ([`DRA_TRAINER`]) with `text` over it.
fn on_dra_trainer(text: &str) -> toml::Table {
    layers(&[FINE_TUNED, DRA_TRAINER, text])
}

/// TOML `texts`, each over the ones before.
fn layers(texts: &[&str]) -> toml::Table {
    let mut profile = toml::Table::new();
    for text in texts {
        let layer: toml::Table = toml::from_str(text).expect("a method's profile is valid TOML");
        profile.extend(layer);
    }
    profile
}

/// Ambiguity choices from (tag, text) pairs.
fn choices(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(tag, text)| (tag.to_string(), text.to_string()))
        .collect()
}
