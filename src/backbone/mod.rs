//! Backbones: the ImageNet CNNs whose stride-32 feature map the DRA heads read.
//!
//! | name | network | map used by DRA |
//! |---|---|---|
//! | `resnet18` | torchvision ResNet-18 (the paper's) | layer4, 512 channels |
//! | `efficientnet-lite0` | EfficientNet-Lite0 (weights bundled) | last MBConv block, 320 channels |
//! | `efficientnet-lite0-head` | EfficientNet-Lite0 | after the 1×1 head conv, 1280 channels |

pub mod efficientnet;
pub mod kernels;
pub mod norm;
pub mod resnet;
pub mod weights;

use std::fmt;
use std::str::FromStr;

use burn::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::transform::Normalization;
pub use efficientnet::EfficientNetLite0;
pub use resnet::ResNet18;

/// Which backbone, and which of its feature maps, DRA uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BackboneKind {
    Resnet18,
    EfficientnetLite0,
    EfficientnetLite0Head,
}

impl BackboneKind {
    /// Every backbone, in the order `--help` lists them.
    pub const ALL: [BackboneKind; 3] = [
        BackboneKind::Resnet18,
        BackboneKind::EfficientnetLite0,
        BackboneKind::EfficientnetLite0Head,
    ];

    /// Name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            BackboneKind::Resnet18 => "resnet18",
            BackboneKind::EfficientnetLite0 => "efficientnet-lite0",
            BackboneKind::EfficientnetLite0Head => "efficientnet-lite0-head",
        }
    }

    /// Channels of the feature map DRA reads.
    pub fn channels(self) -> usize {
        match self {
            BackboneKind::Resnet18 => resnet::FEATURE_CHANNELS,
            BackboneKind::EfficientnetLite0 => efficientnet::BLOCKS_CHANNELS,
            BackboneKind::EfficientnetLite0Head => efficientnet::HEAD_CHANNELS,
        }
    }

    /// Input normalisation the pretrained weights expect.
    pub fn normalization(self) -> Normalization {
        match self {
            BackboneKind::Resnet18 => Normalization::IMAGENET,
            BackboneKind::EfficientnetLite0 | BackboneKind::EfficientnetLite0Head => {
                Normalization::HALF
            }
        }
    }

    /// Spatial downsampling factor of the feature map.
    pub fn stride(self) -> usize {
        32
    }

    /// Side of the feature map for a square input of `img_size`, or an error if it is empty.
    pub fn feature_size(self, img_size: usize) -> Result<usize> {
        // five stride-2 layers, each giving ⌈s/2⌉ (ResNet's padded 7×7 conv and 3×3 max-pool
        // as much as EfficientNet's TensorFlow-SAME convolutions)
        let size = (0..5).fold(img_size, |s, _| s.div_ceil(2));
        if size == 0 {
            return Err(Error::Setting(format!(
                "--img-size {img_size} gives an empty feature map"
            )));
        }
        Ok(size)
    }

    /// The bundled ImageNet weights of this backbone, if any.
    pub fn bundled_weights(self) -> Option<std::path::PathBuf> {
        match self {
            BackboneKind::Resnet18 => None,
            _ => Some(weights::bundled_efficientnet_lite0()),
        }
    }
}

impl fmt::Display for BackboneKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for BackboneKind {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        BackboneKind::ALL
            .into_iter()
            .find(|k| k.name() == s)
            .ok_or_else(|| {
                let names: Vec<_> = BackboneKind::ALL.iter().map(|k| k.name()).collect();
                Error::Setting(format!(
                    "unknown backbone '{s}' (one of {})",
                    names.join(", ")
                ))
            })
    }
}

/// A backbone network.
#[derive(Module, Debug)]
pub enum Backbone {
    Resnet18(ResNet18),
    EfficientnetLite0(EfficientNetLite0),
    EfficientnetLite0Head(EfficientNetLite0),
}

impl Backbone {
    /// A randomly initialised network of `kind`.
    pub fn new(kind: BackboneKind, device: &Device) -> Self {
        let _guard = crate::rng::weight_init_lock();
        let backbone = Self::draw(kind, device);
        crate::rng::materialise(&backbone);
        backbone
    }

    /// [`Backbone::new`] for a caller that holds [`crate::rng::weight_init_lock`]; the
    /// weights are drawn lazily.
    pub(crate) fn draw(kind: BackboneKind, device: &Device) -> Self {
        match kind {
            BackboneKind::Resnet18 => Backbone::Resnet18(ResNet18::new(device)),
            BackboneKind::EfficientnetLite0 => {
                Backbone::EfficientnetLite0(EfficientNetLite0::new(device))
            }
            BackboneKind::EfficientnetLite0Head => {
                Backbone::EfficientnetLite0Head(EfficientNetLite0::new(device))
            }
        }
    }

    /// Which backbone this is.
    pub fn kind(&self) -> BackboneKind {
        match self {
            Backbone::Resnet18(_) => BackboneKind::Resnet18,
            Backbone::EfficientnetLite0(_) => BackboneKind::EfficientnetLite0,
            Backbone::EfficientnetLite0Head(_) => BackboneKind::EfficientnetLite0Head,
        }
    }

    /// The feature map DRA reads, `[N, channels, S/32, S/32]`.
    pub fn features(&self, x: Tensor<4>) -> Tensor<4> {
        match self {
            Backbone::Resnet18(n) => n.features(x),
            Backbone::EfficientnetLite0(n) => n.block_features(x),
            Backbone::EfficientnetLite0Head(n) => n.head_features(n.block_features(x)),
        }
    }

    /// ImageNet logits, `[N, 1000]`.
    pub fn logits(&self, x: Tensor<4>) -> Tensor<2> {
        match self {
            Backbone::Resnet18(n) => n.classify(n.features(x)),
            Backbone::EfficientnetLite0(n) | Backbone::EfficientnetLite0Head(n) => {
                n.classify(n.head_features(n.block_features(x)))
            }
        }
    }
}
