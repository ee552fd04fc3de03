//! Loading and saving backbone weights: torchvision / PyTorch `.pth` files and
//! `.safetensors` files with PyTorch names, checked key by key.

use std::path::{Path, PathBuf};

use burn::store::{
    ApplyResult, BurnToPyTorchAdapter, FloatCastAdapter, KeyRemapper, ModuleAdapter,
    ModuleSnapshot, PyTorchToBurnAdapter, PytorchStore, SafetensorsStore,
};
use burn::tensor::DType;

use burn::tensor::Device;

use super::{Backbone, BackboneKind, vgg};
use crate::error::{Error, Result};

/// The EfficientNet-Lite0 ImageNet weights shipped in the repository (Apache-2.0).
pub fn bundled_efficientnet_lite0() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("weights/efficientnet_lite0/efficientnet-lite0-57934424.pth")
}

fn regex_escape(s: &str) -> String {
    s.chars()
        .flat_map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                vec![c]
            } else {
                vec!['\\', c]
            }
        })
        .collect()
}

/// Marks tensors outside the requested prefix, so that they are ignored.
const OUTSIDE: &str = "@";

/// PyTorch names (under `prefix`) → this crate's module paths; names outside `prefix`
/// get the [`OUTSIDE`] mark.
fn remapper(prefix: &str) -> KeyRemapper {
    let marked = format!("^{OUTSIDE}{}", regex_escape(prefix));
    let mut patterns: Vec<(String, String)> = [
        ("^", OUTSIDE),
        (marked.as_str(), ""),
        (r"^module\.", ""),                       // DataParallel checkpoints
        (r"downsample\.0\.", "downsample.conv."), // torchvision shortcut projection
        (r"downsample\.1\.", "downsample.bn."),
        (r"(^|\.)_", "$1"),          // EfficientNet's _conv_stem, _blocks, …
        (r"^classifier\.", OUTSIDE), // VGG's classifier, not read
    ]
    .map(|(from, to)| (from.to_string(), to.to_string()))
    .into();
    // VGG's convolutions, numbered among its ReLUs and pools in torchvision's `features`
    for (k, index) in vgg::torchvision_conv_indices().into_iter().enumerate() {
        patterns.push((format!(r"^features\.{index}\."), format!("convs.{k}.")));
    }
    KeyRemapper::from_patterns(patterns).expect("valid patterns")
}

fn weights_error(path: &Path, message: impl Into<String>) -> Error {
    Error::Weights {
        path: path.to_path_buf(),
        message: message.into(),
    }
}

fn list(keys: &[String]) -> String {
    let shown: Vec<_> = keys.iter().take(8).map(String::as_str).collect();
    let more = keys.len().saturating_sub(shown.len());
    if more > 0 {
        format!("{} and {more} more", shown.join(", "))
    } else {
        shown.join(", ")
    }
}

/// Checks that every tensor of the network was loaded and every tensor of the file used.
fn check(path: &Path, result: ApplyResult, backbone: &str) -> Result<()> {
    let missing: Vec<String> = result.missing.into_iter().map(|(p, _)| p).collect();
    let unused: Vec<String> = result
        .unused
        .into_iter()
        .filter(|k| !k.ends_with("num_batches_tracked") && !k.starts_with(OUTSIDE))
        .collect();
    if !missing.is_empty() || !unused.is_empty() {
        let mut msg = format!("not {backbone} weights:");
        if !missing.is_empty() {
            msg += &format!(" {} missing keys ({})", missing.len(), list(&missing));
        }
        if !unused.is_empty() {
            msg += &format!(" {} unexpected keys ({})", unused.len(), list(&unused));
        }
        return Err(weights_error(path, msg));
    }
    if let Some(e) = result.errors.first() {
        return Err(weights_error(path, format!("not {backbone} weights: {e}")));
    }
    Ok(())
}

/// Weights files this process has read, for tests that count the work a run does.
static READ: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// How many weights files this process has read so far.
pub fn files_read() -> usize {
    READ.load(std::sync::atomic::Ordering::Relaxed)
}

/// The backbone `kind` with the weights of `path`, or its bundled ones without a path, on
/// `device`.
pub fn pretrained(kind: BackboneKind, path: Option<&Path>, device: &Device) -> Result<Backbone> {
    let path = match (path, kind.bundled_weights()) {
        (Some(path), _) => path.to_path_buf(),
        (None, Some(bundled)) => bundled,
        (None, None) => return Err(Error::Setting(no_weights(kind))),
    };
    let mut net = Backbone::new(kind, device);
    load(&mut net, &path)?;
    Ok(net)
}

/// What to do when `kind` has no bundled weights.
pub fn no_weights(kind: BackboneKind) -> String {
    format!("{kind} has no bundled weights: pass --weights FILE (torchvision's {kind} .pth)")
}

/// Loads `path` (`.pth`, `.pt` or `.safetensors`, PyTorch names) into `backbone`.
pub fn load(backbone: &mut Backbone, path: &Path) -> Result<()> {
    load_prefixed(backbone, path, "")
}

/// Loads the tensors of `path` whose names start with `prefix` (without it) into `backbone`;
/// other tensors of the file are ignored.
pub fn load_prefixed(backbone: &mut Backbone, path: &Path, prefix: &str) -> Result<()> {
    if !path.is_file() {
        return Err(weights_error(
            path,
            "weights file not found (check --weights)",
        ));
    }
    READ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let name = backbone.kind().name();
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or_default()
        .to_ascii_lowercase();
    let adapter = PyTorchToBurnAdapter.chain(FloatCastAdapter::to(DType::F32));
    let result = match ext.as_str() {
        "pth" | "pt" | "pkl" => {
            let mut store = PytorchStore::from_file(path)
                .remap(remapper(prefix))
                .validate(false)
                .allow_partial(true);
            backbone
                .load_from(&mut store)
                .map_err(|e| weights_error(path, format!("cannot read: {e}")))?
        }
        "safetensors" => {
            let mut store = SafetensorsStore::from_file(path)
                .with_from_adapter(adapter)
                .remap(remapper(prefix))
                .validate(false)
                .skip_enum_variants(true)
                .allow_partial(true);
            backbone
                .load_from(&mut store)
                .map_err(|e| weights_error(path, format!("cannot read: {e}")))?
        }
        _ => {
            return Err(weights_error(
                path,
                "unknown weights format: expected .pth, .pt or .safetensors",
            ));
        }
    };
    check(path, result, name)
}

/// A store that writes `path`, replacing it, with one metadata entry (who wrote it): burn's
/// default three sit in a map of random order, which would make a seed's files differ from
/// run to run in their header.
pub(crate) fn safetensors_writer(path: &Path) -> SafetensorsStore {
    SafetensorsStore::from_file(path)
        .overwrite(true)
        .clear_metadata()
        .metadata("producer", concat!("dra ", env!("CARGO_PKG_VERSION")))
}

/// Saves `backbone` as `.safetensors` with PyTorch conventions, loadable by [`load`].
pub fn save(backbone: &Backbone, path: &Path) -> Result<()> {
    let mut store = safetensors_writer(path)
        .with_to_adapter(BurnToPyTorchAdapter)
        .skip_enum_variants(true);
    backbone
        .save_into(&mut store)
        .map_err(|e| weights_error(path, format!("cannot write weights: {e}")))
}
