//! Writes converted images, masks and the seeded 75/25 split of normals.

use std::path::{Path, PathBuf};

use image::{DynamicImage, GenericImageView};

use super::Summary;
use crate::data::folders::split_normals;
use crate::error::{Error, Result};
use crate::types::NORMAL_CLASS;

/// One output image: a source file, optionally a crop `(x, y, w, h)` of it, written under
/// `name`, with an optional mask (cropped the same way).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item {
    pub source: PathBuf,
    pub crop: Option<(u32, u32, u32, u32)>,
    pub name: String,
    pub mask: Option<PathBuf>,
}

impl Item {
    /// A whole file copied under its own name.
    pub fn file(source: PathBuf) -> Self {
        let name = super::file_name(&source);
        Item {
            source,
            crop: None,
            name,
            mask: None,
        }
    }
}

/// Writes items into a temporary folder beside the output class folder, renamed into place
/// by [`Writer::finish`], so a converter that fails leaves nothing behind.
pub struct Writer {
    /// Where items are written: `<output>/.<name>.partial`.
    dir: PathBuf,
    seed: u64,
    summary: Summary,
}

impl Writer {
    /// Starts `<output>/<name>`; refuses one that already holds files.
    pub fn create(output: &Path, name: &str, seed: u64) -> Result<Self> {
        let target = output.join(name);
        if target.read_dir().is_ok_and(|mut d| d.next().is_some()) {
            return Err(Error::layout(
                &target,
                "output already exists and is not empty: remove it or choose another --output",
            ));
        }
        let dir = output.join(format!(".{name}.partial"));
        let _ = std::fs::remove_dir_all(&dir); // left by a killed run
        std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
        let summary = Summary {
            dir: target,
            ..Summary::default()
        };
        Ok(Writer { dir, seed, summary })
    }

    /// Notes which of the data set's published layouts the input has.
    pub fn layout(&mut self, description: &str) {
        self.summary.layout = description.to_string();
    }

    /// The layout noted so far (empty if none).
    pub fn layout_noted(&self) -> &str {
        &self.summary.layout
    }

    /// Splits normals 75/25 with the seed ([`split_normals`]) and writes them.
    pub fn normals(&mut self, items: Vec<Item>) -> Result<()> {
        let (train, test) = split_normals(items, |i| &i.name, self.seed);
        self.train_normals(train)?;
        self.test_normals(test)
    }

    /// Writes normal training images as given (no split).
    pub fn train_normals(&mut self, items: Vec<Item>) -> Result<()> {
        for item in items {
            self.put(&item, "train", NORMAL_CLASS)?;
            self.summary.train_good += 1;
        }
        Ok(())
    }

    /// Writes normal test images as given (no split).
    pub fn test_normals(&mut self, items: Vec<Item>) -> Result<()> {
        for item in items {
            self.put(&item, "test", NORMAL_CLASS)?;
            self.summary.test_good += 1;
        }
        Ok(())
    }

    /// Writes one anomaly of `class`, and its mask to `ground_truth/<class>/` if it has one.
    pub fn anomaly(&mut self, item: &Item, class: &str) -> Result<()> {
        self.put(item, "test", class)?;
        *self.summary.anomalies.entry(class.to_string()).or_default() += 1;
        if let Some(mask) = &item.mask {
            let stem = Path::new(&item.name)
                .file_stem()
                .unwrap_or_default()
                .to_string_lossy();
            let out = self
                .folder("ground_truth", class)?
                .join(format!("{stem}_mask.png"));
            let img = open(mask)?;
            crop(&img, item.crop)
                .to_luma8()
                .save(&out)
                .map_err(|e| save_error(&out, e))?;
            self.summary.masks += 1;
        }
        Ok(())
    }

    /// Moves the written class folder into place and returns the summary.
    pub fn finish(self) -> Result<Summary> {
        let target = &self.summary.dir;
        if target.is_dir() {
            // empty, as `create` checked
            std::fs::remove_dir(target).map_err(|e| Error::io(target, e))?;
        }
        std::fs::rename(&self.dir, target).map_err(|e| Error::io(target, e))?;
        Ok(self.summary)
    }

    /// Removes everything written (the converter failed).
    pub fn discard(self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }

    fn folder(&self, split: &str, class: &str) -> Result<PathBuf> {
        let dir = self.dir.join(split).join(class);
        std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
        Ok(dir)
    }

    fn put(&self, item: &Item, split: &str, class: &str) -> Result<()> {
        let out = self.folder(split, class)?.join(&item.name);
        if out.exists() {
            return Err(Error::layout(
                &item.source,
                format!("two inputs map to {}", out.display()),
            ));
        }
        match item.crop {
            None => std::fs::copy(&item.source, &out)
                .map(|_| ())
                .map_err(|e| Error::io(&item.source, e)),
            Some(_) => crop(&open(&item.source)?, item.crop)
                .save(&out)
                .map_err(|e| save_error(&out, e)),
        }
    }
}

/// Decodes an image for cropping or inspection.
pub fn open(path: &Path) -> Result<DynamicImage> {
    image::ImageReader::open(path)
        .map_err(|e| Error::io(path, e))?
        .with_guessed_format()
        .map_err(|e| Error::io(path, e))?
        .decode()
        .map_err(|source| Error::Image {
            path: path.to_path_buf(),
            source,
        })
}

fn crop(img: &DynamicImage, rect: Option<(u32, u32, u32, u32)>) -> DynamicImage {
    match rect {
        Some((x, y, w, h)) => img.crop_imm(x, y, w, h),
        None => img.clone(),
    }
}

/// True when the `rect` crop of `mask` has a non-zero pixel.
pub fn has_defect(mask: &DynamicImage, rect: (u32, u32, u32, u32)) -> bool {
    let (x, y, w, h) = rect;
    mask.view(x, y, w, h)
        .pixels()
        .any(|(_, _, p)| p.0.iter().take(3).any(|&v| v != 0))
}

fn save_error(path: &Path, source: image::ImageError) -> Error {
    Error::Image {
        path: path.to_path_buf(),
        source,
    }
}
