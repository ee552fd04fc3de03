//! Batch assembly: turns sampler slots into augmented images and then into one
//! normalised CHW float buffer with its labels.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use burn::tensor::{Device, Tensor, TensorData};
use image::RgbImage;
use rand::Rng;

use crate::data::cutmix::cutmix;
use crate::data::transform::{Normalization, load_rgb, random_rotation, resize_square};
use crate::error::Result;
use crate::rng::DraRng;
use crate::types::{Label, Sample, Slot};

/// A batch ready for the network: `len` images of 3×`img_size`×`img_size` in NCHW order.
#[derive(Debug, Clone, PartialEq)]
pub struct Batch {
    pub pixels: Vec<f32>,
    pub labels: Vec<Label>,
    pub img_size: usize,
}

impl Batch {
    /// Normalises `images` (all `img_size` square) into one buffer.
    pub fn new(images: &[RgbImage], labels: Vec<Label>, norm: &Normalization) -> Self {
        let img_size = images.first().map_or(0, |i| i.width() as usize);
        let mut pixels = Vec::with_capacity(images.len() * 3 * img_size * img_size);
        for img in images {
            norm.append_chw(img, &mut pixels);
        }
        Batch {
            pixels,
            labels,
            img_size,
        }
    }

    /// Number of images.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// True when the batch holds no image.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// The pixels as a `[len, 3, img_size, img_size]` tensor on `device`.
    pub fn to_tensor(&self, device: &Device) -> Tensor<4> {
        let shape = [self.len(), 3, self.img_size, self.img_size];
        Tensor::from_data(TensorData::new(self.pixels.clone(), shape), device)
    }
}

/// Decoded images resized to `img_size`², kept in memory after their first use.
#[derive(Debug, Default)]
pub struct ImageStore {
    img_size: u32,
    cache: HashMap<PathBuf, RgbImage>,
}

impl ImageStore {
    /// An empty store for images of side `img_size`.
    pub fn new(img_size: u32) -> Self {
        ImageStore {
            img_size,
            cache: HashMap::new(),
        }
    }

    /// The resized image at `path`, decoding it on first use.
    pub fn get(&mut self, path: &Path) -> Result<&RgbImage> {
        if !self.cache.contains_key(path) {
            let img = resize_square(&load_rgb(path)?, self.img_size);
            self.cache.insert(path.to_path_buf(), img);
        }
        Ok(&self.cache[path])
    }

    /// Keeps `image` (decoded elsewhere, any size) under `key`, resized as a file would be.
    pub fn insert(&mut self, key: PathBuf, image: &RgbImage) {
        self.cache.insert(key, resize_square(image, self.img_size));
    }

    /// Forgets the image under `key`.
    pub fn remove(&mut self, key: &Path) {
        self.cache.remove(key);
    }
}

/// Materialises slots from the training normals, seen anomalies and outlier images (as the
/// pseudo anomalies or for outlier exposure), and batches of any images, through one store
/// of decoded images.
#[derive(Debug)]
pub struct Batcher<'a> {
    normals: &'a [Sample],
    anomalies: &'a [Sample],
    outliers: &'a [PathBuf],
    /// The outlier images stand in for CutMix's pseudo anomalies.
    outliers_as_pseudo: bool,
    store: &'a mut ImageStore,
}

impl<'a> Batcher<'a> {
    /// A batcher over the training images of a split, decoding through `store`.
    pub fn new(normals: &'a [Sample], anomalies: &'a [Sample], store: &'a mut ImageStore) -> Self {
        Batcher {
            normals,
            anomalies,
            outliers: &[],
            outliers_as_pseudo: false,
            store,
        }
    }

    /// The batcher with `outliers` for the slots that name one, and, when `as_pseudo`, its
    /// pseudo anomalies drawn uniformly from them instead of CutMix of the normals (none
    /// keeps CutMix).
    pub fn with_outliers(self, outliers: &'a [PathBuf], as_pseudo: bool) -> Self {
        Batcher {
            outliers,
            outliers_as_pseudo: as_pseudo && !outliers.is_empty(),
            ..self
        }
    }

    /// The normalised, unaugmented batch of `samples` (test images, say), labelled normal
    /// or anomalous.
    pub fn eval_batch(&mut self, samples: &[Sample], norm: &Normalization) -> Result<Batch> {
        eval_batch(self.store, samples, norm)
    }

    /// The image at `path` as the model takes it (decoded once, resized).
    pub fn image(&mut self, path: &Path) -> Result<&RgbImage> {
        self.store.get(path)
    }

    /// The images of `slots`: with `augment`, normals, seen anomalies and outlier images are
    /// randomly rotated and pseudo anomalies are CutMix-ed then rotated (an outlier image
    /// standing in for one, drawn uniformly, is only rotated); without, images are as resized.
    pub fn images(
        &mut self,
        slots: &[Slot],
        augment: bool,
        rng: &mut DraRng,
    ) -> Result<Vec<RgbImage>> {
        slots
            .iter()
            .map(|slot| {
                let outlier = slot.label == Label::Pseudo && self.outliers_as_pseudo;
                let path = match slot.label {
                    // an outlier image in place of the normal the slot names
                    _ if outlier => &self.outliers[rng.random_range(0..self.outliers.len())],
                    Label::Outlier => &self.outliers[slot.index],
                    Label::Seen => &self.anomalies[slot.index].path,
                    Label::Normal | Label::Pseudo => &self.normals[slot.index].path,
                };
                let img = self.store.get(path)?;
                Ok(match (augment, slot.label) {
                    (false, _) => img.clone(),
                    (true, Label::Pseudo) if !outlier => random_rotation(&cutmix(img, rng).0, rng),
                    (true, _) => random_rotation(img, rng),
                })
            })
            .collect()
    }

    /// The normalised batch of `slots` (see [`Batcher::images`]).
    pub fn batch(
        &mut self,
        slots: &[Slot],
        augment: bool,
        norm: &Normalization,
        rng: &mut DraRng,
    ) -> Result<Batch> {
        let images = self.images(slots, augment, rng)?;
        Ok(Batch::new(
            &images,
            slots.iter().map(|s| s.label).collect(),
            norm,
        ))
    }
}

/// The normalised, unaugmented batch of test images at `paths`.
pub fn eval_batch(
    store: &mut ImageStore,
    samples: &[Sample],
    norm: &Normalization,
) -> Result<Batch> {
    let images = samples
        .iter()
        .map(|s| store.get(&s.path).cloned())
        .collect::<Result<Vec<_>>>()?;
    let labels = samples
        .iter()
        .map(|s| {
            if s.is_anomaly() {
                Label::Seen
            } else {
                Label::Normal
            }
        })
        .collect();
    Ok(Batch::new(&images, labels, norm))
}
