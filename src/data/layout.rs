//! Data set layout: the MVTec-style folders of one class, listed in a machine-independent order.
//!
//! ```text
//! <root>/<class>/train/good/*          normal training images
//! <root>/<class>/test/good/*           normal test images
//! <root>/<class>/test/<defect>/*       anomalies, one folder per anomaly class
//! <root>/<class>/ground_truth/<defect>/<name>_mask.png   optional pixel masks
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// File extensions read as images (compared case-insensitively).
pub const IMAGE_EXTENSIONS: [&str; 6] = ["png", "jpg", "jpeg", "bmp", "tif", "tiff"];

pub use crate::types::NORMAL_CLASS;

/// True when `path` has one of [`IMAGE_EXTENSIONS`], in any case.
pub fn is_image(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| IMAGE_EXTENSIONS.iter().any(|x| e.eq_ignore_ascii_case(x)))
}

/// The image files directly inside `dir`, sorted by path.
pub fn list_images(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for entry in read_dir(dir)? {
        if entry.is_file() && is_image(&entry) {
            files.push(entry);
        }
    }
    Ok(files)
}

/// The images of `path`: itself if it is not a folder, else every image under it, sub-folders
/// too, each folder's images (sorted) before its sub-folders (sorted).
pub fn images_under(path: &Path) -> Result<Vec<PathBuf>> {
    if !path.is_dir() {
        return Ok(vec![path.to_path_buf()]);
    }
    let mut out = list_images(path)?;
    for dir in list_dirs(path)? {
        out.extend(images_under(&dir)?);
    }
    Ok(out)
}

/// The sub-folders directly inside `dir`, sorted by path.
pub fn list_dirs(dir: &Path) -> Result<Vec<PathBuf>> {
    Ok(read_dir(dir)?.into_iter().filter(|p| p.is_dir()).collect())
}

fn read_dir(dir: &Path) -> Result<Vec<PathBuf>> {
    let entries = std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))?;
    let mut paths = entries
        .map(|e| e.map(|e| e.path()).map_err(|err| Error::io(dir, err)))
        .collect::<Result<Vec<_>>>()?;
    paths.sort();
    Ok(paths)
}

/// The file name of `path` as a string.
pub fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// The file stem of `path` as a string.
pub fn file_stem(path: &Path) -> String {
    path.file_stem()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// The images of one class of a data set, as found on disk.
#[derive(Debug, Clone)]
pub struct DatasetLayout {
    /// `<root>/<class>`, or the normal folder of plain folders.
    pub dir: PathBuf,
    /// Where the anomalies are, for messages: `<root>/<class>/test`, or the first anomaly
    /// folder of plain folders.
    pub anomalies_dir: PathBuf,
    /// Normal training images (`train/good`).
    pub train_good: Vec<PathBuf>,
    /// Normal test images (`test/good`).
    pub test_good: Vec<PathBuf>,
    /// Anomalies per anomaly class (`test/<defect>`), classes in name order.
    pub anomalies: BTreeMap<String, Vec<PathBuf>>,
    /// Where the test images' masks are.
    pub masks: Masks,
}

impl DatasetLayout {
    /// Reads `<data_root>/<class>`, checking that it holds normal training and test images.
    pub fn open(data_root: &Path, class: &str) -> Result<Self> {
        if !data_root.is_dir() {
            return Err(Error::layout(
                data_root,
                "data root does not exist or is not a folder (check --data-root)",
            ));
        }
        let dir = data_root.join(class);
        if !dir.is_dir() {
            let classes: Vec<String> = list_dirs(data_root)?.iter().map(|p| file_name(p)).collect();
            return Err(Error::layout(
                &dir,
                format!(
                    "class folder not found (check --class; classes under the data root: {})",
                    if classes.is_empty() {
                        "none".to_string()
                    } else {
                        classes.join(", ")
                    }
                ),
            ));
        }
        let train_good = required_images(&dir.join("train").join(NORMAL_CLASS), "normal training")?;
        let test_good = required_images(&dir.join("test").join(NORMAL_CLASS), "normal test")?;
        let mut anomalies = BTreeMap::new();
        for sub in list_dirs(&dir.join("test"))? {
            let name = file_name(&sub);
            if name != NORMAL_CLASS {
                let files = list_images(&sub)?;
                if !files.is_empty() {
                    anomalies.insert(name, files);
                }
            }
        }
        Ok(DatasetLayout {
            masks: Masks::Beside,
            anomalies_dir: dir.join("test"),
            dir,
            train_good,
            test_good,
            anomalies,
        })
    }

    /// Number of anomalies over all anomaly classes.
    pub fn n_anomalies(&self) -> usize {
        self.anomalies.values().map(Vec::len).sum()
    }
}

/// Where the masks of a data set's test images are.
#[derive(Debug, Clone, PartialEq)]
pub enum Masks {
    /// `<class>/ground_truth/<type>/<stem>_mask.png` beside the image's `<class>/test/<type>/`
    /// folder (the MVTec layout).
    Beside,
    /// Each anomaly's mask by its path (plain folders); `any`: the data set has masks, so a
    /// normal test image counts as clean.
    Listed {
        of: std::collections::HashMap<PathBuf, PathBuf>,
        any: bool,
    },
}

/// The mask a test image has.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MaskOf {
    /// This file.
    File(PathBuf),
    /// None, and no defect: a normal image of a data set with masks.
    Clean,
    /// None known: pixel metrics leave the image out.
    Unknown,
}

impl Masks {
    /// No masks (images scored without labels).
    pub fn none() -> Self {
        Masks::Listed {
            of: Default::default(),
            any: false,
        }
    }

    /// The mask of `sample`.
    pub fn of(&self, sample: &crate::types::Sample) -> MaskOf {
        let (file, any) = match self {
            Masks::Beside => (beside(sample), beside_dir(sample).is_some()),
            Masks::Listed { of, any } => (of.get(&sample.path).cloned(), *any),
        };
        match file {
            Some(path) => MaskOf::File(path),
            None if !sample.is_anomaly() && any => MaskOf::Clean,
            None => MaskOf::Unknown,
        }
    }
}

/// The `<class>/ground_truth` folder of a test image in the MVTec layout, if its data set has
/// masks at all.
fn beside_dir(sample: &crate::types::Sample) -> Option<PathBuf> {
    let dir = sample
        .path
        .parent()?
        .parent()?
        .parent()?
        .join("ground_truth");
    dir.is_dir().then_some(dir)
}

/// The mask of a test image in the MVTec layout, when it exists (normals have none).
fn beside(sample: &crate::types::Sample) -> Option<PathBuf> {
    let stem = sample.path.file_stem()?.to_string_lossy();
    let mask = beside_dir(sample)?
        .join(&sample.class)
        .join(format!("{stem}_mask.png"));
    mask.is_file().then_some(mask)
}

fn required_images(dir: &Path, what: &str) -> Result<Vec<PathBuf>> {
    if !dir.is_dir() {
        return Err(Error::layout(
            dir,
            format!("folder missing: put the {what} images there (MVTec layout)"),
        ));
    }
    let files = list_images(dir)?;
    if files.is_empty() {
        return Err(Error::layout(
            dir,
            format!(
                "no {what} images here (looked for {})",
                IMAGE_EXTENSIONS.join(", ")
            ),
        ));
    }
    Ok(files)
}
