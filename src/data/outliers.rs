//! Outlier exposure (`--outlier-root`): external images that stand in for CutMix as the
//! pseudo anomalies. Two layouts are read:
//!
//! * the reference code's: `<root>/<class>/train/good/*` of every class folder but the one
//!   being trained (point it at an MVTec AD root to use the other categories' normals);
//! * any folder of images, sub-folders included.
//!
//! The first applies when some sub-folder of the root has a `train/good` folder.

use std::path::{Path, PathBuf};

use crate::data::layout::{images_under, list_dirs, list_images};
use crate::error::{Error, Result};

/// The outlier images under `root` for a run on `class`, in a fixed order (sorted folders,
/// then sorted files).
pub fn outlier_images(root: &Path, class: &str) -> Result<Vec<PathBuf>> {
    if !root.is_dir() {
        return Err(Error::layout(root, "--outlier-root is not a folder"));
    }
    let classes: Vec<PathBuf> = list_dirs(root)?
        .into_iter()
        .filter(|d| d.join("train").join("good").is_dir())
        .collect();
    let images = match classes.is_empty() {
        true => images_under(root)?,
        false => {
            let mut all = Vec::new();
            for dir in classes.iter().filter(|d| !d.ends_with(class)) {
                all.extend(list_images(&dir.join("train").join("good"))?);
            }
            all
        }
    };
    if images.is_empty() {
        return Err(Error::layout(
            root,
            "no outlier images here (either <class>/train/good/ folders, as in MVTec AD, or any \
             images; the class being trained is left out)",
        ));
    }
    Ok(images)
}
