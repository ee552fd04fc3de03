//! Every setting of a training run, with the reference code's defaults. Read from a TOML
//! file (`--config`), overridden by command-line flags, and written to `config.json`.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::backbone::BackboneKind;
use crate::device::DeviceChoice;
use crate::error::{Error, Result};
use crate::loss::Criterion;
use crate::model::{HeadSet, ModelConfig};
use crate::protocol::Protocol;
use crate::sampler::RefMode;

/// Settings of one training run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrainConfig {
    /// Data root in MVTec layout.
    pub data_root: PathBuf,
    /// Class folder under the data root.
    pub class: String,
    /// Seen (labelled) anomalies in training.
    pub n_anomaly: usize,
    /// Hard protocol: the one anomaly class seen in training (an empty name, useful in
    /// grids, means the general protocol).
    pub known_class: Option<String>,
    /// General protocol: index of the first test anomaly in the shuffled list.
    pub test_threshold: Option<usize>,
    pub backbone: BackboneKind,
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
    pub lr: f64,
    pub weight_decay: f64,
    /// Epochs between learning-rate drops of ×0.1 (StepLR).
    pub lr_step: usize,
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
            n_anomaly: 10,
            known_class: None,
            test_threshold: None,
            backbone: BackboneKind::EfficientnetLite0,
            weights: None,
            device: DeviceChoice::Cpu,
            criterion: Criterion::Deviation,
            epochs: 30,
            steps_per_epoch: 20,
            batch_size: 48,
            img_size: 448,
            n_scales: 2,
            topk: 0.1,
            n_ref: 5,
            ref_mode: RefMode::Fixed,
            heads: HeadSet::all(),
            lr: 2e-4,
            weight_decay: 1e-5,
            lr_step: 10,
            clip_norm: 1.0,
            seed: 42,
            skip_bad_images: false,
        }
    }
}

impl TrainConfig {
    /// Reads a TOML file of settings (unknown keys are an error).
    pub fn from_toml_file(path: &std::path::Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        toml::from_str(&text)
            .map_err(|e| Error::layout(path, format!("invalid config: {}", e.message())))
    }

    /// The protocol these settings describe.
    pub fn protocol(&self) -> Protocol {
        match &self.known_class {
            Some(known_class) if !known_class.is_empty() => Protocol::Hard {
                known_class: known_class.clone(),
            },
            _ => Protocol::General {
                test_threshold: self.test_threshold,
            },
        }
    }

    /// The model architecture part of the settings.
    pub fn model(&self) -> ModelConfig {
        ModelConfig {
            backbone: self.backbone,
            heads: self.heads.clone(),
            n_scales: self.n_scales,
            topk: self.topk,
        }
    }

    /// Learning rate of 0-based `epoch`: lr · 0.1^⌊(epoch + 1) / lr_step⌋ (the reference code
    /// steps its StepLR at the start of every epoch, so the first drop comes one epoch early).
    pub fn lr_at(&self, epoch: usize) -> f64 {
        self.lr * 0.1f64.powi(((epoch + 1) / self.lr_step.max(1)) as i32)
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
        let smallest = self.img_size >> (self.n_scales - 1);
        if smallest == 0 || self.backbone.feature_size(smallest).is_err() {
            return bad(format!(
                "--img-size {} with --n-scales {} gives an empty image at the smallest scale",
                self.img_size, self.n_scales
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
        if self.lr <= 0.0 || self.weight_decay < 0.0 {
            return bad("--lr must be positive and --weight-decay not negative".into());
        }
        match (&self.weights, self.backbone.bundled_weights()) {
            (None, None) => bad(format!(
                "{} has no bundled weights: pass --weights FILE (torchvision's resnet18 .pth)",
                self.backbone
            )),
            (Some(path), _) if !path.is_file() => Err(Error::layout(
                path,
                "weights file not found (check --weights)",
            )),
            _ => Ok(()),
        }
    }
}
