//! Anomaly maps: where in an image the heads see the defect. The seen, pseudo and residual
//! heads score every feature-map cell before top-K pooling, the memory every patch (and the
//! comparison methods' class, decoder and student heads their cells or pixels); each
//! head's cell map comes in the model's input frame (bilinear, averaged over scales, see
//! [`crate::model::Dra::evaluate`]), the heads are combined as the image score
//! combines them (the normal head scores only whole images and has no map), the sum is
//! smoothed by a Gaussian in the input frame and resized to the source image's own frame.
//!
//! [`MapOutputs`] gathers a test set's maps: pixel AUROC and AUPRO against the masks (in
//! the model's input frame, masks resized by nearest neighbour), per-image overlays and raw
//! maps when asked, and the examples of the run's `maps.png`.

use std::path::{Path, PathBuf};

use image::RgbImage;
use image::imageops::FilterType;

use crate::config::TrainConfig;
use crate::data::layout::{MaskOf, Masks};
use crate::data::transform::load_rgb;
use crate::error::{Error, Result};
use crate::fusion::Fusion;
use crate::metrics::pixel::PixelSet;
use crate::run::anomaly_map::AnomalyMap;
use crate::run::overlay::{self, Example, MapScale};
use crate::types::{Head, PixelMetrics, Sample};

/// A mask image as `width`×`height` booleans (nearest neighbour; any non-zero pixel is defect).
pub fn load_mask(path: &Path, width: u32, height: u32) -> Result<Vec<bool>> {
    let mask = image::open(path)
        .map_err(|source| Error::Image {
            path: path.to_path_buf(),
            source,
        })?
        .to_luma8();
    let mask = image::imageops::resize(&mask, width, height, FilterType::Nearest);
    Ok(mask.pixels().map(|p| p[0] > 0).collect())
}

/// Where per-image maps go: `<name>.png` (overlay with colour bar) and `<name>.npy`.
#[derive(Debug, Clone)]
pub struct MapFiles {
    pub dir: PathBuf,
    names: std::collections::BTreeSet<String>,
}

impl MapFiles {
    /// Writes into `dir`, creating it.
    pub fn new(dir: &Path) -> Result<Self> {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        Ok(MapFiles {
            dir: dir.to_path_buf(),
            names: Default::default(),
        })
    }

    /// A file stem for `sample` not used before: `<class>_<stem>` for a labelled sample,
    /// the image's stem otherwise, with `-2`, `-3`, … on a repeat.
    fn name(&mut self, sample: &Sample) -> String {
        let stem = sample
            .path
            .file_stem()
            .map_or("image".into(), |s| s.to_string_lossy().into_owned());
        let base = match sample.class.is_empty() {
            true => stem,
            false => format!("{}_{stem}", sample.class),
        };
        let mut name = base.clone();
        let mut k = 1;
        while !self.names.insert(name.clone()) {
            k += 1;
            name = format!("{base}-{k}");
        }
        name
    }
}

/// Anomalies and normals shown in `maps.png` (the first of each in the test order).
const EXAMPLE_ANOMALIES: usize = 4;
const EXAMPLE_NORMALS: usize = 2;

/// What scoring a set of images with maps gathers (see the module's documentation).
pub struct MapOutputs<'a> {
    fusion: &'a Fusion,
    sigma: f32,
    side: u32,
    scale: MapScale,
    files: Option<MapFiles>,
    masks: Masks,
    /// Every image's map, in the order added, when asked for ([`MapOutputs::keeping_maps`]).
    kept: Option<Vec<AnomalyMap>>,
    combined: PixelSet,
    heads: Vec<(Head, PixelSet)>,
    images: usize,
    unmasked: usize,
    examples: Vec<Example>,
}

impl<'a> MapOutputs<'a> {
    /// Maps of a run with `config`'s input size and smoothing, fused by `fusion`, drawn on
    /// the colour scale of `threshold` (the run's decision threshold), written to `files` if
    /// any, measured against `masks`.
    pub fn new(
        config: &TrainConfig,
        fusion: &'a Fusion,
        threshold: Option<f64>,
        files: Option<MapFiles>,
        masks: Masks,
    ) -> Self {
        MapOutputs {
            fusion,
            sigma: config.map_sigma,
            side: config.img_size as u32,
            scale: MapScale::of_threshold(threshold),
            files,
            masks,
            kept: None,
            combined: PixelSet::default(),
            heads: Vec::new(),
            images: 0,
            unmasked: 0,
            examples: Vec::new(),
        }
    }

    /// These outputs also keeping every image's map (in the model's input frame), for
    /// [`MapOutputs::take_maps`].
    pub fn keeping_maps(self) -> Self {
        MapOutputs {
            kept: Some(Vec::new()),
            ..self
        }
    }

    /// The maps kept so far, in the order the images were added.
    pub fn take_maps(&mut self) -> Vec<AnomalyMap> {
        self.kept.as_mut().map(std::mem::take).unwrap_or_default()
    }

    /// Adds one scored image (`input`: as the model took it): its anomaly score and its
    /// parts' maps in the input frame.
    pub fn add(
        &mut self,
        sample: &Sample,
        input: &RgbImage,
        score: f32,
        heads: &[(Head, Vec<f32>)],
    ) -> Result<()> {
        if heads.is_empty() {
            return Ok(()); // a model whose heads score whole images only has no map
        }
        let side = self.side;
        let map = AnomalyMap::fused(heads, side, self.fusion).smoothed(self.sigma);
        if let Some(kept) = &mut self.kept {
            kept.push(map.clone());
        }
        let mask = match self.masks.of(sample) {
            MaskOf::File(path) => Some(load_mask(&path, side, side)?),
            // a normal counts where its data set has masks at all
            MaskOf::Clean => Some(vec![false; map.values.len()]),
            MaskOf::Unknown => None,
        };
        if let Some(mask) = &mask {
            self.images += 1;
            self.combined.add(&map.values, mask, side, side);
            for (head, values) in heads {
                let alone = AnomalyMap::fused(&[(*head, values.clone())], side, &Fusion::plain())
                    .smoothed(self.sigma);
                let set = match self.heads.iter_mut().find(|(h, _)| h == head) {
                    Some((_, set)) => set,
                    None => {
                        self.heads.push((*head, PixelSet::default()));
                        &mut self.heads.last_mut().expect("pushed").1
                    }
                };
                set.add(&alone.values, mask, side, side);
            }
        } else if sample.is_anomaly() {
            self.unmasked += 1;
        }
        let wanted = match sample.is_anomaly() {
            true => EXAMPLE_ANOMALIES,
            false => EXAMPLE_NORMALS,
        };
        let shown = self
            .examples
            .iter()
            .filter(|e| e.anomaly == sample.is_anomaly())
            .count();
        if shown < wanted && !sample.class.is_empty() {
            self.examples.push(Example {
                path: sample.path.clone(),
                image: input.clone(),
                label: sample.class.clone(),
                anomaly: sample.is_anomaly(),
                score,
                map: map.clone(),
                mask,
            });
        }
        if let Some(files) = &mut self.files {
            let name = files.name(sample);
            let source = load_rgb(&sample.path)?;
            let framed = map.resized(source.width(), source.height());
            framed.save_npy(&files.dir.join(format!("{name}.npy")))?;
            let path = files.dir.join(format!("{name}.png"));
            overlay::overlay_with_bar(&source, &framed, &self.scale)?
                .save(&path)
                .map_err(|source| Error::Image { path, source })?;
        }
        Ok(())
    }

    /// Draws `maps.png` into `run_dir` (when there are examples) and returns the pixel
    /// metrics (when some image had a mask and there are defect pixels).
    pub fn finish(self, run_dir: Option<&Path>) -> Result<Option<PixelMetrics>> {
        if let (Some(dir), false) = (run_dir, self.examples.is_empty()) {
            overlay::figure(&dir.join("maps.png"), &self.examples, &self.scale)?;
        }
        if self.combined.regions() == 0 {
            return Ok(None);
        }
        let all = self.combined.auc()?;
        let mut heads = std::collections::BTreeMap::new();
        for (head, set) in &self.heads {
            heads.insert(head.name().to_string(), set.auc()?);
        }
        Ok(Some(PixelMetrics {
            auc_roc: all.auc_roc,
            aupro: all.aupro,
            heads,
            images: self.images,
            regions: self.combined.regions(),
            unmasked: self.unmasked,
        }))
    }
}
