//! Backbones: the ImageNet CNNs whose stride-32 feature map the DRA heads read.
//!
//! | name | network | map used by DRA |
//! |---|---|---|
//! | `resnet18` | torchvision ResNet-18 (the paper's) | layer4, 512 channels |
//! | `efficientnet-lite0` | EfficientNet-Lite0 (weights bundled) | last MBConv block, 320 channels |
//! | `efficientnet-lite0-head` | EfficientNet-Lite0 | after the 1×1 head conv, 1280 channels |
//! | `vgg16` | torchvision VGG16 `features` (KDAD's teacher) | pool5, 512 channels |

pub mod classify;
pub mod efficientnet;
pub mod resnet;
pub mod vgg;
pub mod weights;

use burn::prelude::*;

use crate::choice::choice;
use crate::data::transform::Normalization;
use crate::error::{Error, Result};
pub use efficientnet::EfficientNetLite0;
pub use resnet::ResNet18;
pub use vgg::Vgg16;

choice! {
    /// Which backbone, and which of its feature maps, DRA uses.
    pub enum BackboneKind ("backbone") {
        /// ResNet-18 to layer4, 512 channels (the paper's; weights from the user).
        Resnet18 = "resnet18",
        /// EfficientNet-Lite0's last MBConv block, 320 channels (weights bundled).
        EfficientnetLite0 = "efficientnet-lite0",
        /// EfficientNet-Lite0 after its head convolution and ReLU6, 1280 channels.
        EfficientnetLite0Head = "efficientnet-lite0-head",
        /// torchvision VGG16's features to pool5, 512 channels (KDAD's teacher; weights from
        /// the user).
        Vgg16 = "vgg16",
    }
}

impl BackboneKind {
    /// Channels of the feature map DRA reads.
    pub fn channels(self) -> usize {
        match self {
            BackboneKind::Resnet18 => resnet::FEATURE_CHANNELS,
            BackboneKind::EfficientnetLite0 => efficientnet::BLOCKS_CHANNELS,
            BackboneKind::EfficientnetLite0Head => efficientnet::HEAD_CHANNELS,
            BackboneKind::Vgg16 => vgg::FEATURE_CHANNELS,
        }
    }

    /// Channels of the four maps [`Backbone::taps_and_features`] gives, and whether they are
    /// signed (a linear bottleneck's, EfficientNet's) rather than a ReLU's.
    pub fn taps(self) -> ([usize; 4], bool) {
        match self {
            BackboneKind::Resnet18 => ([64, 128, 256, 512], false),
            BackboneKind::EfficientnetLite0 | BackboneKind::EfficientnetLite0Head => {
                ([24, 40, 112, 320], true)
            }
            BackboneKind::Vgg16 => ([128, 256, 512, 512], false),
        }
    }

    /// Input normalisation the pretrained weights expect.
    pub fn normalization(self) -> Normalization {
        match self {
            BackboneKind::Resnet18 | BackboneKind::Vgg16 => Normalization::IMAGENET,
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
        // as much as EfficientNet's TensorFlow-SAME convolutions), or ⌊s/2⌋ (VGG's unpadded
        // 2×2 max-pools)
        let halve = |s: usize| match self {
            BackboneKind::Vgg16 => s / 2,
            _ => s.div_ceil(2),
        };
        let size = (0..5).fold(img_size, |s, _| halve(s));
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
            BackboneKind::Resnet18 | BackboneKind::Vgg16 => None,
            _ => Some(weights::bundled_efficientnet_lite0()),
        }
    }
}

choice! {
    /// Which statistics the backbone's BatchNorm layers normalise with.
    pub enum BnStats ("BatchNorm statistics mode") {
        /// The batch's in training (running ones updated), the running ones at evaluation:
        /// PyTorch's train/eval modes, as the reference code.
        Batch = "batch",
        /// The pretrained running statistics in training too (γ and β still learnt), so a
        /// score never depends on the rest of the batch.
        Frozen = "frozen",
        /// As `batch` in training; afterwards the running statistics are re-estimated on the
        /// unaugmented normal training images, one set for each pyramid scale.
        Recalibrate = "recalibrate",
    }
}

/// How the backbone behaves in training.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BackboneTraining {
    pub bn_stats: BnStats,
    /// Momentum of the running statistics' update in `batch` mode.
    pub bn_momentum: f64,
    /// EfficientNet's drop-connect rate (ignored by ResNet-18).
    pub drop_connect: f64,
}

/// A backbone network.
#[derive(Module, Debug)]
pub enum Backbone {
    Resnet18(ResNet18),
    EfficientnetLite0(EfficientNetLite0),
    EfficientnetLite0Head(EfficientNetLite0),
    Vgg16(Vgg16),
}

impl Backbone {
    /// A randomly initialised network of `kind`.
    pub fn new(kind: BackboneKind, device: &Device) -> Self {
        let _guard = crate::rng::weight_init_lock();
        let backbone = Self::new_locked(kind, device);
        crate::rng::materialise(&backbone);
        backbone
    }

    /// [`Backbone::new`] for a caller that holds [`crate::rng::weight_init_lock`]; the
    /// weights are drawn lazily.
    pub(crate) fn new_locked(kind: BackboneKind, device: &Device) -> Self {
        match kind {
            BackboneKind::Resnet18 => Backbone::Resnet18(ResNet18::new(device)),
            BackboneKind::EfficientnetLite0 => {
                Backbone::EfficientnetLite0(EfficientNetLite0::new(device))
            }
            BackboneKind::EfficientnetLite0Head => {
                Backbone::EfficientnetLite0Head(EfficientNetLite0::new(device))
            }
            BackboneKind::Vgg16 => Backbone::Vgg16(Vgg16::new(device)),
        }
    }

    /// Which backbone this is.
    pub fn kind(&self) -> BackboneKind {
        match self {
            Backbone::Resnet18(_) => BackboneKind::Resnet18,
            Backbone::EfficientnetLite0(_) => BackboneKind::EfficientnetLite0,
            Backbone::EfficientnetLite0Head(_) => BackboneKind::EfficientnetLite0Head,
            Backbone::Vgg16(_) => BackboneKind::Vgg16,
        }
    }

    /// The feature map DRA reads, `[N, channels, S/32, S/32]`.
    pub fn features(&self, x: Tensor<4>) -> Tensor<4> {
        match self {
            Backbone::Resnet18(n) => n.features(x),
            Backbone::EfficientnetLite0(n) => n.block_features(x),
            Backbone::EfficientnetLite0Head(n) => n.head_features(n.block_features(x)),
            Backbone::Vgg16(n) => n.features(x),
        }
    }

    /// The stride-16 map and the map DRA reads (stride 32), for the patch-kNN baseline.
    pub fn stride16_and_features(&self, x: Tensor<4>) -> (Tensor<4>, Tensor<4>) {
        match self {
            Backbone::Resnet18(n) => n.stride16_and_features(x),
            Backbone::EfficientnetLite0(n) => n.stride16_and_block_features(x),
            Backbone::EfficientnetLite0Head(n) => {
                let (s16, blocks) = n.stride16_and_block_features(x);
                (s16, n.head_features(blocks))
            }
            Backbone::Vgg16(n) => n.stride16_and_features(x),
        }
    }

    /// The maps at strides 4, 8, 16 and 32 that KDAD distils ([`BackboneKind::taps`]) and,
    /// from the same pass, the map DRA reads (the last tap, or the head's map of it).
    pub fn taps_and_features(&self, x: Tensor<4>) -> (Vec<Tensor<4>>, Tensor<4>) {
        let taps = match self {
            Backbone::Resnet18(n) => n.taps(x),
            Backbone::EfficientnetLite0(n) | Backbone::EfficientnetLite0Head(n) => n.taps(x),
            Backbone::Vgg16(n) => n.taps(x),
        };
        let last = taps.last().expect("4 taps").clone();
        let features = match self {
            Backbone::EfficientnetLite0Head(n) => n.head_features(last),
            _ => last,
        };
        (taps, features)
    }

    /// Every BatchNorm layer of the network.
    pub fn batch_norms_mut(&mut self) -> Vec<&mut burn::nn::BatchNorm> {
        match self {
            Backbone::Resnet18(n) => n.batch_norms_mut(),
            Backbone::EfficientnetLite0(n) | Backbone::EfficientnetLite0Head(n) => {
                n.batch_norms_mut()
            }
            Backbone::Vgg16(_) => Vec::new(),
        }
    }

    /// Takes the parameters and running statistics of `other` (the same kind), on this
    /// backbone's own device.
    pub fn take_weights(&mut self, other: &Backbone) -> Result<()> {
        use burn::store::ModuleSnapshot;
        let result = self.apply(other.collect(None, None, false), None, None, false);
        match result.errors.first() {
            None if result.missing.is_empty() => Ok(()),
            e => Err(Error::Setting(format!(
                "a {} backbone cannot take these weights ({} missing{})",
                self.kind(),
                result.missing.len(),
                e.map_or(String::new(), |e| format!(", {e}"))
            ))),
        }
    }

    /// A plain copy (autodiff device, BatchNorm training flags on) whose running
    /// statistics are re-estimated on `batches`: each layer's mean and biased variance averaged
    /// over the batches' statistics (momentum 1/k at the k-th batch). `self` is unchanged.
    pub fn recalibrated(&self, batches: &[Tensor<4>]) -> Backbone {
        use burn::module::{Module, RunningState};
        let mut copy = self.clone().no_grad();
        for bn in copy.batch_norms_mut() {
            // fresh state: a clone's running statistics share storage with the original's
            bn.running_mean = RunningState::new(bn.running_mean.value());
            bn.running_var = RunningState::new(bn.running_var.value());
        }
        for (k, x) in batches.iter().enumerate() {
            for bn in copy.batch_norms_mut() {
                bn.momentum = 1.0 / (k + 1) as f64;
            }
            let _ = copy.features(x.clone().autodiff());
        }
        copy.valid()
    }

    /// Applies the training settings: BatchNorm momentum, frozen statistics (the layers'
    /// training flags off, their γ and β still trainable) and drop-connect.
    pub fn configure(mut self, training: &BackboneTraining) -> Self {
        for bn in self.batch_norms_mut() {
            bn.momentum = training.bn_momentum;
            if training.bn_stats == BnStats::Frozen {
                bn.training = bn.training.clone().with_value(false);
            }
        }
        if let Backbone::EfficientnetLite0(n) | Backbone::EfficientnetLite0Head(n) = &mut self {
            n.set_drop_connect(training.drop_connect);
        }
        self
    }

    /// ImageNet logits, `[N, 1000]`; an error for VGG16, whose classifier is not loaded.
    pub fn logits(&self, x: Tensor<4>) -> Result<Tensor<2>> {
        match self {
            Backbone::Resnet18(n) => Ok(n.classify(n.features(x))),
            Backbone::EfficientnetLite0(n) | Backbone::EfficientnetLite0Head(n) => {
                Ok(n.classify(n.head_features(n.block_features(x))))
            }
            Backbone::Vgg16(_) => Err(Error::Setting(
                "vgg16 loads torchvision's features without the classifier, so it gives no \
                 ImageNet classes: classify with resnet18 or efficientnet-lite0"
                    .into(),
            )),
        }
    }
}
