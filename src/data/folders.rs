//! Plain folders as one class of a data set, the way users keep their images: a folder of
//! normal images, one folder per anomaly type (or one folder whose sub-folders are the
//! types), and optionally a folder of masks matched to the anomalies by file stem.
//!
//! `dra convert folders` writes them into the MVTec layout; `dra train --normal` reads them
//! in place. Both list the same images under the same names and split the normals with the
//! same seeded shuffle ([`split_normals`]), so both train on the same images in the same
//! order. Sub-folders are read too; hidden files and folders (a leading `.`) are not;
//! symlinked files and folders are followed, a folder reached a second time (a symlink loop)
//! is not.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use rand::seq::SliceRandom;

use crate::data::layout::{DatasetLayout, IMAGE_EXTENSIONS, Masks, file_name, file_stem, is_image};
use crate::error::{Error, Result};
use crate::rng::seeded;
use crate::types::NORMAL_CLASS;

/// The folders of one data set, as given on the command line or in the settings.
#[derive(Debug, Clone, PartialEq)]
pub struct Folders {
    /// Normal images (sub-folders included).
    pub normal: PathBuf,
    /// Each folder one anomaly type named after it, or, when it holds no image itself, each
    /// of its sub-folders one type.
    pub anomalies: Vec<PathBuf>,
    /// Masks of the anomalies: `<stem>.<ext>` or `<stem>_mask.<ext>` for the image `<stem>.*`.
    pub masks: Option<PathBuf>,
    /// Seed of the 75/25 train/test split of the normal images.
    pub seed: u64,
}

/// One image found in the folders.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    pub source: PathBuf,
    /// Its name in the MVTec layout: its path below the folder given, `/` written `_`.
    pub name: String,
    pub mask: Option<PathBuf>,
}

/// What the folders hold, checked: names unique, masks matched and of their image's size.
#[derive(Debug, Clone)]
pub struct FolderImages {
    /// The normal images, sorted by name.
    pub normals: Vec<Found>,
    /// The anomalies of each type, sorted by name.
    pub anomalies: BTreeMap<String, Vec<Found>>,
    /// Whether masks were given.
    pub masked: bool,
}

/// The name a data set read from `normal` gets when none is given: the name of the folder
/// that holds it (`parts` for `parts/good`).
pub fn default_name(normal: &Path) -> String {
    let absolute = std::path::absolute(normal).unwrap_or_else(|_| normal.to_path_buf());
    absolute
        .parent()
        .and_then(Path::file_name)
        .map_or_else(|| "folders".into(), |n| n.to_string_lossy().into_owned())
}

/// Splits normal images 75/25 into (train, test): sorted by `name`, shuffled with `seed`,
/// the first ⌈n/4⌉ to test (as scikit-learn's `train_test_split(test_size=0.25)`).
pub fn split_normals<T>(
    mut items: Vec<T>,
    name: impl Fn(&T) -> &str,
    seed: u64,
) -> (Vec<T>, Vec<T>) {
    items.sort_by(|a, b| name(a).cmp(name(b)));
    items.shuffle(&mut seeded(seed));
    let n_test = items.len().div_ceil(4);
    let train = items.split_off(n_test);
    (train, items)
}

impl Folders {
    /// Lists and checks the folders: every image found, each anomaly's mask matched.
    pub fn scan(&self) -> Result<FolderImages> {
        let normals = named(&self.normal, walk(&existing(&self.normal)?)?, "normal")?;
        let mut anomalies = BTreeMap::new();
        for dir in &self.anomalies {
            for (kind, folder) in anomaly_types(existing(dir)?)? {
                if kind == NORMAL_CLASS {
                    return Err(Error::layout(
                        &folder,
                        format!(
                            "an anomaly type cannot be named '{NORMAL_CLASS}', the normal \
                             images' name: rename the folder"
                        ),
                    ));
                }
                if anomalies.contains_key(&kind) {
                    return Err(Error::layout(
                        &folder,
                        format!("a second anomaly folder named '{kind}': rename one of them"),
                    ));
                }
                let found = named(&folder, walk(&folder)?, "anomaly")?;
                anomalies.insert(kind, found);
            }
        }
        if anomalies.is_empty() {
            return Err(Error::Setting(
                "no anomaly folders: give one or more with --anomalies DIR".into(),
            ));
        }
        let mut images = FolderImages {
            normals,
            anomalies,
            masked: self.masks.is_some(),
        };
        if let Some(masks) = &self.masks {
            images.match_masks(&walk(&existing(masks)?)?)?;
        }
        Ok(images)
    }

    /// The data set as [`DatasetLayout`] lists it: the normals split with [`split_normals`],
    /// after checking that no image is both normal and an anomaly.
    pub fn layout(&self) -> Result<DatasetLayout> {
        let images = self.scan()?;
        images.check_distinct()?;
        let masks = images.masks();
        let (train, test) = split_normals(images.normals, |f| &f.name, self.seed);
        let sources = |mut found: Vec<Found>| -> Vec<PathBuf> {
            found.sort_by(|a, b| a.name.cmp(&b.name));
            found.into_iter().map(|f| f.source).collect()
        };
        let anomalies_dir = self.anomalies.first().cloned().unwrap_or_default();
        Ok(DatasetLayout {
            dir: self.normal.clone(),
            anomalies_dir,
            train_good: sources(train),
            test_good: sources(test),
            anomalies: images
                .anomalies
                .into_iter()
                .map(|(kind, found)| (kind, sources(found)))
                .collect(),
            masks,
        })
    }

    /// Where the anomalies' masks are (the folders listed, without reading every image).
    pub fn masks(&self) -> Result<Masks> {
        Ok(self.scan()?.masks())
    }
}

impl FolderImages {
    /// Each anomaly's mask by its path.
    fn masks(&self) -> Masks {
        Masks::Listed {
            of: (self.anomalies.values().flatten())
                .filter_map(|f| Some((f.source.clone(), f.mask.clone()?)))
                .collect(),
            any: self.masked,
        }
    }

    /// Gives each anomaly its mask among `masks`, refusing a mask that belongs to no image,
    /// to two, or that has another size than its image.
    fn match_masks(&mut self, masks: &[(PathBuf, String)]) -> Result<()> {
        let mut by_stem: HashMap<String, Vec<&PathBuf>> = HashMap::new();
        for (path, _) in masks {
            by_stem.entry(file_stem(path)).or_default().push(path);
        }
        let normal_stems: BTreeSet<String> =
            self.normals.iter().map(|f| file_stem(&f.source)).collect();
        let mut owner: HashMap<&PathBuf, &Path> = HashMap::new();
        for found in self.anomalies.values_mut().flatten() {
            let s = file_stem(&found.source);
            let candidates: Vec<&PathBuf> = [s.clone(), format!("{s}_mask")]
                .iter()
                .filter_map(|k| by_stem.get(k))
                .flatten()
                .copied()
                .collect();
            let mask = match candidates[..] {
                [] => continue,
                [one] => one,
                [a, b, ..] => {
                    return Err(Error::layout(
                        &found.source,
                        format!(
                            "two masks for this image, {} and {}: keep one",
                            a.display(),
                            b.display()
                        ),
                    ));
                }
            };
            if let Some(other) = owner.insert(mask, &found.source) {
                return Err(Error::layout(
                    mask,
                    format!(
                        "this mask matches two images by name, {} and {}: rename one",
                        other.display(),
                        found.source.display()
                    ),
                ));
            }
            let (mw, mh) = dimensions(mask)?;
            let (iw, ih) = dimensions(&found.source)?;
            if (mw, mh) != (iw, ih) {
                return Err(Error::layout(
                    mask,
                    format!(
                        "mask is {mw}×{mh} but its image {} is {iw}×{ih}",
                        found.source.display()
                    ),
                ));
            }
            found.mask = Some(mask.clone());
        }
        for (path, _) in masks {
            let s = file_stem(path);
            let of_normal = normal_stems.contains(&s)
                || s.strip_suffix("_mask")
                    .is_some_and(|b| normal_stems.contains(b));
            if !owner.contains_key(path) && !of_normal {
                return Err(Error::layout(
                    path,
                    format!(
                        "mask without an image: no anomaly image is named {} (masks match \
                         images by stem, as <stem>.png or <stem>_mask.png)",
                        s.strip_suffix("_mask").unwrap_or(&s)
                    ),
                ));
            }
        }
        Ok(())
    }

    /// Refuses a file that is both among the normals and among the anomalies (the same
    /// bytes, under any name).
    pub fn check_distinct(&self) -> Result<()> {
        let mut by_size: HashMap<u64, Vec<&Path>> = HashMap::new();
        for f in &self.normals {
            by_size
                .entry(file_size(&f.source)?)
                .or_default()
                .push(&f.source);
        }
        for f in self.anomalies.values().flatten() {
            let Some(same_size) = by_size.get(&file_size(&f.source)?) else {
                continue;
            };
            let bytes = read(&f.source)?;
            for normal in same_size {
                if read(normal)? == bytes {
                    return Err(Error::layout(
                        &f.source,
                        format!(
                            "this anomaly is also among the normal images, as {}: remove it \
                             from one of the folders",
                            normal.display()
                        ),
                    ));
                }
            }
        }
        Ok(())
    }
}

/// `dir` if it is a folder, else an error naming it.
fn existing(dir: &Path) -> Result<PathBuf> {
    match dir.is_dir() {
        true => Ok(dir.to_path_buf()),
        false if dir.exists() => Err(Error::layout(dir, "not a folder: give a folder of images")),
        false => Err(Error::layout(dir, "folder does not exist")),
    }
}

/// The anomaly types of one `--anomalies` folder with the folder of each: itself when it
/// holds images, else each of its sub-folders.
fn anomaly_types(dir: PathBuf) -> Result<Vec<(String, PathBuf)>> {
    let (files, dirs) = entries(&dir)?;
    if files.iter().any(|p| is_image(p)) || dirs.is_empty() {
        return Ok(vec![(file_name(&dir), dir)]);
    }
    Ok(dirs.into_iter().map(|d| (file_name(&d), d)).collect())
}

/// The images under `dir` (sub-folders too, each folder's own images first, all sorted),
/// each with its path below `dir`.
fn walk(dir: &Path) -> Result<Vec<(PathBuf, String)>> {
    let mut out = Vec::new();
    let mut seen = BTreeSet::new();
    walk_into(dir, "", &mut seen, &mut out)?;
    Ok(out)
}

fn walk_into(
    dir: &Path,
    prefix: &str,
    seen: &mut BTreeSet<PathBuf>,
    out: &mut Vec<(PathBuf, String)>,
) -> Result<()> {
    // a folder reached again through a symlink is a loop (or a copy): not read twice
    let real = dir.canonicalize().map_err(|e| Error::io(dir, e))?;
    if !seen.insert(real) {
        return Ok(());
    }
    let (files, dirs) = entries(dir)?;
    for file in files.into_iter().filter(|p| is_image(p)) {
        let relative = format!("{prefix}{}", file_name(&file));
        out.push((file, relative));
    }
    for sub in dirs {
        let prefix = format!("{prefix}{}/", file_name(&sub));
        walk_into(&sub, &prefix, seen, out)?;
    }
    Ok(())
}

/// The files and the folders directly inside `dir`, each sorted, hidden ones left out.
fn entries(dir: &Path) -> Result<(Vec<PathBuf>, Vec<PathBuf>)> {
    let mut paths = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))? {
        let path = entry.map_err(|e| Error::io(dir, e))?.path();
        if !file_name(&path).starts_with('.') {
            paths.push(path);
        }
    }
    paths.sort();
    // `is_dir` follows symlinks; a broken one is neither and is left out
    let (dirs, files): (Vec<PathBuf>, Vec<PathBuf>) = paths.into_iter().partition(|p| p.is_dir());
    Ok((files.into_iter().filter(|p| p.is_file()).collect(), dirs))
}

/// The images of one folder under their layout names, which must be unique.
fn named(dir: &Path, images: Vec<(PathBuf, String)>, what: &str) -> Result<Vec<Found>> {
    if images.is_empty() {
        return Err(Error::layout(
            dir,
            format!(
                "no {what} images in this folder or its sub-folders (looked for {})",
                IMAGE_EXTENSIONS.join(", ")
            ),
        ));
    }
    let mut found: Vec<Found> = images
        .into_iter()
        .map(|(source, relative)| Found {
            source,
            name: relative.replace('/', "_"),
            mask: None,
        })
        .collect();
    found.sort_by(|a, b| a.name.cmp(&b.name));
    if let Some(w) = found.windows(2).find(|w| w[0].name == w[1].name) {
        return Err(Error::layout(
            &w[1].source,
            format!(
                "both this image and {} would be named {} in the data set: rename one",
                w[0].source.display(),
                w[1].name
            ),
        ));
    }
    Ok(found)
}

fn dimensions(path: &Path) -> Result<(u32, u32)> {
    image::image_dimensions(path).map_err(|source| Error::Image {
        path: path.to_path_buf(),
        source,
    })
}

fn file_size(path: &Path) -> Result<u64> {
    Ok(std::fs::metadata(path)
        .map_err(|e| Error::io(path, e))?
        .len())
}

fn read(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| Error::io(path, e))
}
