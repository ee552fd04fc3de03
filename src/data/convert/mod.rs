//! Converters from public data sets' own layouts to the MVTec layout DRA reads
//! (`<output>/<name>/{train/good,test/good,test/<defect>,ground_truth/<defect>}`).
//!
//! Normal images are split 75/25 into train/test with a seeded shuffle (test count
//! ⌈n/4⌉, as scikit-learn's `train_test_split(test_size=0.25)`), except where the source
//! has its own split (Mastcam). A user's plain folders go the same way ([`folders`]).

mod aitex;
mod brainmri;
mod elpv;
pub mod folders;
mod headct;
mod hyperkvasir;
mod magnetic_tile;
mod mastcam;
mod optical;
mod sdd;
mod writer;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::choice::choice;
use crate::data::layout::{file_name, file_stem};
use crate::error::{Error, Result};
pub use writer::{Item, Writer};

choice! {
    /// A supported source data set; its name is also the class folder it writes.
    pub enum Converter ("converter") {
        /// KolektorSDD.
        Sdd = "sdd",
        /// AITEX fabric.
        Aitex = "aitex",
        /// ELPV solar cells.
        Elpv = "elpv",
        /// The DAGM 2007 optical-inspection set.
        Optical = "optical",
        /// Mastcam novelty.
        Mastcam = "mastcam",
        /// Brain MRI tumours.
        BrainMri = "brainmri",
        /// Head CT haemorrhage.
        HeadCt = "headct",
        /// Hyper-Kvasir.
        HyperKvasir = "hyperkvasir",
        /// Magnetic tile defects.
        MagneticTile = "magnetic-tile",
    }
}

impl Converter {
    /// The input layout the converter expects, for help texts and errors.
    pub fn expected_input(self) -> &'static str {
        match self {
            Converter::Sdd => "kosNN/PartK.jpg with PartK_label.bmp or PartK_label.png",
            Converter::Aitex => {
                "NODefect_images/<sub>/*, Defect_images/* and Mask_images/<name>_mask.png (each folder also doubled, Defect_images/Defect_images/)"
            }
            Converter::Elpv => "labels.csv (path, probability, type) and images/",
            Converter::Optical => {
                "ClassN/{Train,Test}/Label/Labels.txt or ClassN/ClassN/… for N = 1..10"
            }
            Converter::Mastcam => "train_typical/, test_typical/, test_novel/<class>/",
            Converter::BrainMri => "no/ (normal) and yes/ (tumour)",
            Converter::HeadCt => {
                "labels.csv (id, hemorrhage; header optional) and head_ct/head_ct/NNN.png or head_ct/NNN.png"
            }
            Converter::HyperKvasir => {
                "upper-gi-tract/{anatomical-landmarks,pathological-findings}/<class>/*"
            }
            Converter::MagneticTile => {
                "MT_<Class>/Imgs/*.jpg with *.png (or .bmp) masks of the same name; MT_Free is normal"
            }
        }
    }

    /// Converts `input` into `<output>/<name>`, splitting normals with `seed`.
    pub fn run(self, input: &Path, output: &Path, seed: u64) -> Result<Summary> {
        if !input.is_dir() {
            return Err(Error::layout(
                input,
                "input folder does not exist (check --input)",
            ));
        }
        // re-uploads often wrap the data set in one or two folders of their own
        let mut root = input.to_path_buf();
        let mut first_error = None;
        for depth in 0..=2 {
            let mut w = Writer::create(output, self.name(), seed)?;
            match self.convert(&root, &mut w) {
                Ok(()) => {
                    if depth > 0 {
                        let inner = root.strip_prefix(input).unwrap_or(&root);
                        let note = format!("the data set inside {}/", inner.display());
                        w.layout(&match w.layout_noted() {
                            "" => note,
                            other => format!("{note}, {other}"),
                        });
                    }
                    return w.finish();
                }
                Err(e) => {
                    w.discard();
                    let retry = depth < 2 && matches!(e, Error::Layout { .. });
                    // the message is the one about the folder the user named
                    first_error.get_or_insert(e);
                    match only_subfolder(&root) {
                        Some(sub) if retry => root = sub,
                        _ => break,
                    }
                }
            }
        }
        Err(self.explain(first_error.expect("at least one try")))
    }

    fn convert(self, input: &Path, w: &mut Writer) -> Result<()> {
        match self {
            Converter::Sdd => sdd::convert(input, w),
            Converter::Aitex => aitex::convert(input, w),
            Converter::Elpv => elpv::convert(input, w),
            Converter::Optical => optical::convert(input, w),
            Converter::Mastcam => mastcam::convert(input, w),
            Converter::BrainMri => brainmri::convert(input, w),
            Converter::HeadCt => headct::convert(input, w),
            Converter::HyperKvasir => hyperkvasir::convert(input, w),
            Converter::MagneticTile => magnetic_tile::convert(input, w),
        }
    }

    /// A layout error with what this converter expects added.
    fn explain(self, e: Error) -> Error {
        match e {
            Error::Layout { path, message } => Error::layout(
                path,
                format!(
                    "{message} (the {} converter expects {})",
                    self.name(),
                    self.expected_input()
                ),
            ),
            other => other,
        }
    }
}

/// What a conversion wrote.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Summary {
    /// The class folder written, `<output>/<name>`.
    pub dir: PathBuf,
    pub train_good: usize,
    pub test_good: usize,
    /// Test anomalies per anomaly class.
    pub anomalies: BTreeMap<String, usize>,
    pub masks: usize,
    /// Which published layout the input had, where a data set has several.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub layout: String,
}

/// The one folder inside `dir` when it holds no other folder (files beside it, such as a
/// licence, are allowed).
fn only_subfolder(dir: &Path) -> Option<PathBuf> {
    let mut folders = std::fs::read_dir(dir)
        .ok()?
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.is_dir());
    let first = folders.next()?;
    folders.next().is_none().then_some(first)
}

/// `dir/name/name` when that folder exists (archives that repeat a folder inside itself, as
/// common re-uploads do), else `dir/name`; with the layout in words.
fn nested_dir(dir: &Path, name: &str) -> (PathBuf, String) {
    let nested = dir.join(name).join(name);
    match nested.is_dir() {
        true => (nested, format!("{name}/{name}/")),
        false => (dir.join(name), format!("{name}/")),
    }
}

/// The file `<dir>/<stem>.<ext>` for the first of `extensions` that exists, in any case of
/// the extension.
fn with_stem(dir: &Path, stem: &str, extensions: &[&str]) -> Option<PathBuf> {
    let entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    extensions.iter().find_map(|ext| {
        entries
            .iter()
            .find(|p| {
                p.file_stem().is_some_and(|s| s == stem)
                    && p.extension()
                        .is_some_and(|e| e.to_string_lossy().eq_ignore_ascii_case(ext))
            })
            .cloned()
    })
}

/// A required sub-folder of a converter input.
fn require_dir(path: PathBuf) -> Result<PathBuf> {
    if path.is_dir() {
        Ok(path)
    } else {
        Err(Error::layout(path, "folder missing"))
    }
}

/// A required file of a converter input.
fn require_file(path: PathBuf) -> Result<PathBuf> {
    if path.is_file() {
        Ok(path)
    } else {
        Err(Error::layout(path, "file missing"))
    }
}

/// The non-empty lines of a labels file's `text`, each with its number counted from 1,
/// without the first line where it is a `header`.
fn label_lines(text: &str, header: bool) -> impl Iterator<Item = (usize, &str)> {
    text.lines()
        .enumerate()
        .skip(usize::from(header))
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(n, l)| (n + 1, l))
}
