//! Every setting of a training run, with the reference code's defaults. Read from a TOML
//! file (`--config`), overridden by command-line flags, and written to `config.json`.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::choice::choice;
use crate::data::folders::{Folders, default_name};
use crate::data::layout::{DatasetLayout, Masks};
use crate::data::protocol::Protocol;
use crate::data::reference::RefMode;
use crate::data::transform::{InputNorm, Normalization};
use crate::device::DeviceChoice;
use crate::error::{Error, Result};
use crate::fusion::PartWeights;
use crate::methods::Method;
use crate::model::backbone::{BackboneKind, BackboneTraining, BnStats};
use crate::model::heads::{DECODER_SCALE, ResidualMode};
use crate::model::loss::Criterion;
use crate::model::memory::MemoryMode;
use crate::model::{HeadNorm, HeadSet, ModelConfig};
use crate::types::Head;

choice! {
    /// A named starting point for the settings, before a `--config` file and flags.
    pub enum Preset ("preset") {
        /// The tool's defaults, chosen by measurement (docs/RESULTS.md).
        Default = "default",
        /// The reference code's exact training setting: the backbone fine-tuned with batch
        /// statistics, 448², 30 epochs × 20 steps of 48, references resampled per batch,
        /// ImageNet normalisation.
        Paper = "paper",
    }
}

choice! {
    /// When in an epoch the StepLR schedule drops the learning rate.
    pub enum StepAt ("learning-rate step timing") {
        /// Stepped at the start of every epoch, as the reference DRA code does: the first drop
        /// comes one epoch early, lr · 0.1^⌊(e + 1) / step⌋.
        Start = "start",
        /// Stepped after every epoch, as DevNet's code does: lr · 0.1^⌊e / step⌋.
        End = "end",
    }
}

/// Settings of one training run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrainConfig {
    /// Data root in MVTec layout.
    pub data_root: PathBuf,
    /// Class folder under the data root; with plain folders, the data set's name.
    pub class: String,
    /// Plain folders instead of a data root: the normal images (see [`Folders`]).
    pub normal: Option<PathBuf>,
    /// Plain folders: the anomalies, a folder per type (or one folder of type folders).
    pub anomalies: Vec<PathBuf>,
    /// Plain folders: the anomalies' masks, matched by file stem.
    pub masks: Option<PathBuf>,
    /// Plain folders: seed of the 75/25 train/test split of the normal images (`dra convert
    /// folders --seed`'s).
    pub split_seed: u64,
    /// The method trained: DRA or one of its paper's comparison systems.
    pub method: Method,
    /// Seen (labelled) anomalies in training.
    pub n_anomaly: usize,
    /// Hard protocol: the one anomaly class seen in training (an empty name, useful in
    /// grids, means the general protocol).
    pub known_class: Option<String>,
    /// General protocol: index of the first test anomaly in the shuffled list.
    pub test_threshold: Option<usize>,
    /// General protocol: the fraction of the normal training images that are unlabelled
    /// anomalies (taken from the shuffled list after the seen ones, and out of the test set).
    pub cont_rate: f64,
    pub backbone: BackboneKind,
    /// Outlier exposure: external images as the pseudo anomalies instead of CutMix, or SAOE's
    /// exposure batches (`<root>/<class>/train/good/` of every other class, or any folder of
    /// images).
    pub outlier_root: Option<PathBuf>,
    /// Backbone weights; default the bundled ones (EfficientNet-Lite0).
    pub weights: Option<PathBuf>,
    pub device: DeviceChoice,
    pub criterion: Criterion,
    pub epochs: usize,
    pub steps_per_epoch: usize,
    pub batch_size: usize,
    pub img_size: usize,
    pub n_scales: usize,
    pub topk: f64,
    pub n_ref: usize,
    pub ref_mode: RefMode,
    pub heads: HeadSet,
    /// What the residual head compares each query cell with.
    pub residual: ResidualMode,
    /// How head scores are combined into the anomaly score.
    pub head_norm: HeadNorm,
    /// Whether the anomaly score also draws on a memory of normal patches.
    pub memory: MemoryMode,
    /// The weight of each part's z-score in the anomaly score and map (standardised heads).
    pub part_weights: PartWeights,
    /// The false-positive rate on the normal training images that sets the stored decision
    /// threshold (optimistic: those images were trained on).
    pub fpr: f64,
    /// The standard deviation, in pixels of the model's input, of the Gaussian that smooths
    /// anomaly maps (0: none).
    pub map_sigma: f32,
    /// Train the heads only; the backbone keeps its pretrained weights and statistics.
    pub freeze_backbone: bool,
    /// Which statistics the backbone's BatchNorm layers use in training and evaluation.
    pub bn_stats: BnStats,
    /// Momentum of the backbone's running-statistics update (`bn_stats = "batch"`).
    pub bn_momentum: f64,
    /// EfficientNet's drop-connect (stochastic depth) rate; 0 turns it off.
    pub drop_connect: f64,
    /// Input normalisation.
    pub normalization: InputNorm,
    pub lr: f64,
    pub weight_decay: f64,
    /// Epochs between learning-rate drops of ×0.1 (StepLR).
    pub lr_step: usize,
    /// When in an epoch the learning rate drops.
    pub lr_step_at: StepAt,
    /// Global gradient-norm clip.
    pub clip_norm: f64,
    pub seed: u64,
    /// Leave out images that cannot be decoded (listed in `config.json`) instead of stopping.
    pub skip_bad_images: bool,
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            data_root: PathBuf::new(),
            class: String::new(),
            normal: None,
            anomalies: Vec::new(),
            masks: None,
            split_seed: 42,
            method: Method::Dra,
            n_anomaly: 10,
            known_class: None,
            test_threshold: None,
            cont_rate: 0.0,
            outlier_root: None,
            backbone: BackboneKind::EfficientnetLite0,
            weights: None,
            device: DeviceChoice::Cpu,
            criterion: Criterion::Deviation,
            epochs: 6,
            steps_per_epoch: 20,
            batch_size: 48,
            img_size: 224,
            n_scales: 2,
            topk: 0.1,
            n_ref: 5,
            ref_mode: RefMode::Fixed,
            heads: HeadSet::all(),
            residual: ResidualMode::Nearest,
            head_norm: HeadNorm::Standardise,
            memory: MemoryMode::Patch,
            part_weights: PartWeights::default(),
            fpr: 0.01,
            map_sigma: 4.0,
            freeze_backbone: true,
            bn_stats: BnStats::Batch,
            bn_momentum: 0.1,
            drop_connect: 0.0,
            normalization: InputNorm::Auto,
            lr: 1e-3,
            weight_decay: 1e-5,
            lr_step: 10,
            lr_step_at: StepAt::Start,
            clip_norm: 1.0,
            seed: 42,
            skip_bad_images: false,
        }
    }
}

impl TrainConfig {
    /// The settings of a preset.
    pub fn preset(preset: Preset) -> Self {
        match preset {
            Preset::Default => TrainConfig::default(),
            Preset::Paper => TrainConfig {
                img_size: 448,
                epochs: 30,
                steps_per_epoch: 20,
                batch_size: 48,
                ref_mode: RefMode::Resample,
                residual: ResidualMode::Mean,
                head_norm: HeadNorm::None,
                memory: MemoryMode::None,
                freeze_backbone: false,
                bn_stats: BnStats::Batch,
                bn_momentum: 0.1,
                drop_connect: 0.0,
                normalization: InputNorm::Imagenet,
                lr: 2e-4,
                weight_decay: 1e-5,
                lr_step: 10,
                clip_norm: 1.0,
                ..TrainConfig::default()
            },
        }
    }

    /// Reads a TOML file of settings over `base` (unknown keys are an error naming the file).
    pub fn from_toml_file(path: &std::path::Path, base: &TrainConfig) -> Result<Self> {
        Self::file_layer(path, base).and_then(|table| Self::layered(base, &[table]))
    }

    /// The settings table of a TOML file, read once and checked over `base` (a syntax error,
    /// an unknown key or a wrong type is an error naming the file), to be layered.
    pub fn file_layer(path: &std::path::Path, base: &TrainConfig) -> Result<toml::Table> {
        let invalid = |message: String| Error::Config {
            path: path.to_path_buf(),
            message: format!("invalid config: {message}"),
        };
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        let table: toml::Table = toml::from_str(&text).map_err(|e| invalid(e.message().into()))?;
        Self::layered(base, std::slice::from_ref(&table)).map_err(|e| invalid(e.to_string()))?;
        Ok(table)
    }

    /// `base` with each table of `layers` set over it in turn, deserialised once (an
    /// unknown key or a wrong type is an error naming it). The one way settings are
    /// overridden: by `--config` and flags, and by a grid's base, case and values. When the
    /// layers name a method other than `base`'s (the last one named counts), that method's
    /// profile is laid over `base` first: what any layer sets explicitly still wins.
    pub fn layered(base: &TrainConfig, layers: &[toml::Table]) -> Result<Self> {
        let invalid = |m: String| Error::Setting(m);
        let mut table = toml::Table::try_from(base).map_err(|e| invalid(e.to_string()))?;
        if let Some(value) = layers.iter().rev().find_map(|l| l.get("method")) {
            let method: Method = value
                .as_str()
                .ok_or_else(|| invalid(format!("method must be a name, not {value}")))?
                .parse()?;
            if method != base.method {
                table.extend(method.spec().profile);
            }
        }
        for layer in layers {
            table.extend(layer.clone());
        }
        table
            .try_into()
            .map_err(|e: toml::de::Error| invalid(e.message().into()))
    }

    /// The plain folders these settings read, if they name a normal folder.
    pub fn folders(&self) -> Option<Folders> {
        Some(Folders {
            normal: self.normal.clone()?,
            anomalies: self.anomalies.clone(),
            masks: self.masks.clone(),
            seed: self.split_seed,
        })
    }

    /// The data set these settings name: plain folders, or a class of a data root.
    pub fn layout(&self) -> Result<DatasetLayout> {
        self.check_data_set()?;
        match self.folders() {
            Some(folders) => folders.layout(),
            None => DatasetLayout::open(&self.data_root, &self.class),
        }
    }

    /// Where the masks of the data set's test images are.
    pub fn masks(&self) -> Result<Masks> {
        match self.folders() {
            Some(folders) => folders.masks(),
            None => Ok(Masks::Beside),
        }
    }

    /// These settings with a name for plain folders that have none: the name of the folder
    /// holding the normal one.
    pub fn named(mut self) -> Self {
        if let (Some(normal), true) = (&self.normal, self.class.is_empty()) {
            self.class = default_name(normal);
        }
        self
    }

    /// Checks that the settings name one data set: a data root and a class, or plain folders.
    fn check_data_set(&self) -> Result<()> {
        let root = !self.data_root.as_os_str().is_empty();
        let message = match &self.normal {
            Some(_) if root => {
                "give the data as --data-root and --class or as --normal and --anomalies, not both"
            }
            Some(_) => return Ok(()),
            None if !self.anomalies.is_empty() || self.masks.is_some() => {
                "--anomalies and --masks read plain folders: give the normal images' folder with \
                 --normal"
            }
            None if root && !self.class.is_empty() => return Ok(()),
            None => {
                "no data: give --data-root and --class (a data set in MVTec layout) or --normal \
                 DIR and --anomalies DIR… (plain folders), on the command line or in --config"
            }
        };
        Err(Error::Setting(message.into()))
    }

    /// The protocol these settings describe.
    pub fn protocol(&self) -> Protocol {
        Protocol::new(
            self.known_class.as_deref(),
            self.test_threshold,
            self.cont_rate,
        )
    }

    /// The model architecture part of the settings.
    pub fn model(&self) -> ModelConfig {
        ModelConfig {
            backbone: self.backbone,
            heads: self.heads.clone(),
            n_scales: self.n_scales,
            topk: self.topk,
            residual: self.residual,
            freeze_backbone: self.freeze_backbone,
            scale_statistics: self.bn_stats == BnStats::Recalibrate && !self.freeze_backbone,
        }
    }

    /// The backbone's behaviour in training.
    pub fn backbone_training(&self) -> BackboneTraining {
        BackboneTraining {
            bn_stats: self.bn_stats,
            bn_momentum: self.bn_momentum,
            drop_connect: self.drop_connect,
        }
    }

    /// The input normalisation of these settings.
    pub fn normalization(&self) -> Normalization {
        match self.normalization {
            // KDAD's code feeds its VGG16 teacher unnormalised pixels (BASELINES_SPEC §5)
            InputNorm::Auto
                if self.method == Method::Kdad && self.backbone == BackboneKind::Vgg16 =>
            {
                Normalization::RAW
            }
            InputNorm::Auto => self.backbone.normalization(),
            InputNorm::Imagenet => Normalization::IMAGENET,
            InputNorm::Half => Normalization::HALF,
            InputNorm::Raw => Normalization::RAW,
        }
    }

    /// Input side at each pyramid scale: every 2^s-th pixel of the `img_size` image, so
    /// ⌈img_size / 2^s⌉.
    pub fn scale_sizes(&self) -> Vec<usize> {
        (0..self.n_scales)
            .map(|s| self.img_size.div_ceil(1 << s))
            .collect()
    }

    /// Learning rate of 0-based `epoch` (see [`StepAt`]).
    pub fn lr_at(&self, epoch: usize) -> f64 {
        let stepped = match self.lr_step_at {
            StepAt::Start => epoch + 1,
            StepAt::End => epoch,
        };
        self.lr * 0.1f64.powi((stepped / self.lr_step.max(1)) as i32)
    }

    /// Checks ranges that do not need the data.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(Error::Setting(m));
        if !(self.topk > 0.0 && self.topk <= 1.0) {
            return bad(format!("--topk {} must be in (0, 1]", self.topk));
        }
        if self.n_scales == 0 {
            return bad("--n-scales must be at least 1".into());
        }
        // each scale halves the image: it must still have a pixel after n_scales − 1 halvings
        let smallest = self.scale_sizes()[self.n_scales - 1];
        if self.img_size >> (self.n_scales - 1) == 0
            || self.backbone.feature_size(smallest).is_err()
        {
            return bad(format!(
                "--img-size {} with --n-scales {} gives an empty image at the smallest scale",
                self.img_size, self.n_scales
            ));
        }
        if self.heads.contains(Head::Reconstruction)
            && (self.n_scales != 1 || !self.img_size.is_multiple_of(DECODER_SCALE))
        {
            return bad(format!(
                "the reconstruction head (--method mlep) needs --n-scales 1 and an --img-size \
                 divisible by {DECODER_SCALE} (its decoder upsamples the map {DECODER_SCALE}×), \
                 not {} and {}",
                self.n_scales, self.img_size
            ));
        }
        if self.heads.contains(Head::Student)
            && (!self.freeze_backbone
                || self.n_scales != 1
                || !self.img_size.is_multiple_of(self.backbone.stride()))
        {
            return bad(format!(
                "the student head (--method kdad) needs --freeze-backbone true (the backbone is \
                 its teacher), --n-scales 1 and an --img-size divisible by 32 (its taps at \
                 strides 4 … 32 must match the teacher's), not {}, {} and {}",
                self.freeze_backbone, self.n_scales, self.img_size
            ));
        }
        if self.batch_size < 2 {
            return bad(format!(
                "--batch-size {} must be at least 2",
                self.batch_size
            ));
        }
        if self.epochs == 0 || self.steps_per_epoch == 0 {
            return bad("--epochs and --steps-per-epoch must be at least 1".into());
        }
        if !(0.0..=1.0).contains(&self.bn_momentum) {
            return bad(format!(
                "--bn-momentum {} must be in [0, 1]",
                self.bn_momentum
            ));
        }
        if !(0.0..1.0).contains(&self.drop_connect) {
            return bad(format!(
                "--drop-connect {} must be in [0, 1)",
                self.drop_connect
            ));
        }
        if self.memory == MemoryMode::Patch
            && (!self.freeze_backbone || self.head_norm != HeadNorm::Standardise)
        {
            return bad(
                "--memory patch needs --freeze-backbone true and --head-norm standardise (its \
                 patches come from the pretrained backbone, its score is added as a z-score)"
                    .into(),
            );
        }
        if self.head_norm == HeadNorm::None && self.part_weights != PartWeights::default() {
            return bad(
                "--part-weights weigh the heads' z-scores: they need --head-norm standardise \
                 (--head-norm none adds the raw scores, the paper's)"
                    .into(),
            );
        }
        let memory = (self.memory == MemoryMode::Patch).then_some(Head::Memory);
        let parts = self.heads.heads().iter().copied().chain(memory);
        if self.head_norm == HeadNorm::Standardise
            && parts.clone().all(|h| self.part_weights.of(h) == 0.0)
        {
            let names: Vec<_> = parts.map(|h| h.name()).collect();
            return bad(format!(
                "--part-weights {} leave nothing of the score: give one of {} a weight above 0",
                self.part_weights,
                names.join(", ")
            ));
        }
        if self.method.spec().needs_anomalies && self.n_anomaly == 0 {
            return bad(format!(
                "--method {} learns from labelled anomalies: --n-anomaly must be at least 1",
                self.method
            ));
        }
        if !(0.0..1.0).contains(&self.cont_rate) {
            return bad(format!("--cont-rate {} must be in [0, 1)", self.cont_rate));
        }
        if self.cont_rate > 0.0 && matches!(self.protocol(), Protocol::Hard { .. }) {
            return bad(
                "--cont-rate works with the general protocol only (no --known-class)".into(),
            );
        }
        if self.outlier_root.is_some() && self.method.spec().composition.pseudo_rate == 0.0 {
            return bad(format!(
                "--outlier-root replaces the pseudo anomalies, and --method {} trains without any",
                self.method
            ));
        }
        if !(self.map_sigma >= 0.0 && self.map_sigma.is_finite()) {
            return bad(format!("--map-sigma {} must be 0 or more", self.map_sigma));
        }
        if !(0.0..1.0).contains(&self.fpr) {
            return bad(format!("--fpr {} must be in [0, 1)", self.fpr));
        }
        if self.lr <= 0.0 || self.weight_decay < 0.0 {
            return bad("--lr must be positive and --weight-decay not negative".into());
        }
        match (&self.weights, self.backbone.bundled_weights()) {
            (None, None) => bad(crate::model::backbone::weights::no_weights(self.backbone)),
            (Some(path), _) if !path.is_file() => Err(Error::Weights {
                path: path.clone(),
                message: "weights file not found (check --weights)".into(),
            }),
            _ => Ok(()),
        }
    }
}
