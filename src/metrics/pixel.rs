//! Pixel-level metrics of anomaly maps against ground-truth masks: pixel AUROC (every pixel
//! of every test image one sample, as scikit-learn's `roc_auc_score` on the flattened maps)
//! and AUPRO, the area under the per-region overlap curve up to a false-positive rate of 0.3,
//! divided by 0.3 (Bergmann et al., MVTec AD, IJCV 2021). Regions are the 8-connected
//! components of each mask; a region's overlap at a threshold is the fraction of its pixels
//! above it, averaged over all regions of all images, against the fraction of normal pixels
//! above it.

use imageproc::region_labelling::{Connectivity, connected_components};
use rayon::prelude::*;

use crate::error::{Error, Result};
use crate::types::PixelAuc;

/// The false-positive rate up to which AUPRO integrates.
pub const AUPRO_FPR_LIMIT: f64 = 0.3;

/// Maps and masks gathered image by image: each pixel's score, and 0 for a normal pixel or
/// the (1-based) number of the defect region it belongs to.
#[derive(Debug, Clone, Default)]
pub struct PixelSet {
    scores: Vec<f32>,
    regions: Vec<u32>,
    region_sizes: Vec<u32>,
}

impl PixelSet {
    /// Adds one image: its map and its mask (true = defect), both `width`×`height` row-major.
    pub fn add(&mut self, map: &[f32], mask: &[bool], width: u32, height: u32) {
        assert_eq!(map.len(), mask.len(), "map and mask of one size");
        assert_eq!(
            map.len(),
            (width * height) as usize,
            "width × height values"
        );
        let image = image::GrayImage::from_fn(width, height, |x, y| {
            image::Luma([u8::from(mask[(y * width + x) as usize])])
        });
        let labels = connected_components(&image, Connectivity::Eight, image::Luma([0u8]));
        let offset = self.region_sizes.len() as u32;
        let mut sizes = Vec::new();
        for label in labels.pixels().map(|p| p[0]) {
            let region = match label {
                0 => 0,
                l => {
                    if sizes.len() < l as usize {
                        sizes.resize(l as usize, 0);
                    }
                    sizes[l as usize - 1] += 1;
                    offset + l
                }
            };
            self.regions.push(region);
        }
        self.region_sizes.extend(sizes);
        self.scores.extend_from_slice(map);
    }

    /// Number of defect regions so far.
    pub fn regions(&self) -> usize {
        self.region_sizes.len()
    }

    /// Pixel AUROC and AUPRO; an error unless there are defect and normal pixels and every
    /// score is finite.
    pub fn auc(&self) -> Result<PixelAuc> {
        if let Some(s) = self.scores.iter().find(|s| !s.is_finite()) {
            return Err(Error::Setting(format!("map value {s} is not finite")));
        }
        let positives = self.regions.iter().filter(|&&r| r > 0).count() as f64;
        let negatives = self.scores.len() as f64 - positives;
        if positives == 0.0 || negatives == 0.0 {
            return Err(Error::Setting(
                "pixel metrics need defect and normal pixels".into(),
            ));
        }
        let mut order: Vec<u32> = (0..self.scores.len() as u32).collect();
        order.par_sort_unstable_by(|&a, &b| {
            self.scores[b as usize].total_cmp(&self.scores[a as usize])
        });
        // one regions' weight: each of a region's pixels adds 1 / (its size · regions)
        let weight: Vec<f64> = self
            .region_sizes
            .iter()
            .map(|&n| 1.0 / (n as f64 * self.region_sizes.len() as f64))
            .collect();
        let (mut tp, mut fp, mut pro) = (0.0f64, 0.0f64, 0.0f64);
        let (mut roc, mut aupro) = (0.0, 0.0);
        let (mut last_fpr, mut last_tpr, mut last_pro) = (0.0, 0.0, 0.0);
        for (k, &i) in order.iter().enumerate() {
            match self.regions[i as usize] {
                0 => fp += 1.0,
                r => {
                    tp += 1.0;
                    pro += weight[r as usize - 1];
                }
            }
            let next = order.get(k + 1).map(|&j| self.scores[j as usize]);
            if next == Some(self.scores[i as usize]) {
                continue; // ties make one threshold
            }
            let (fpr, tpr) = (fp / negatives, tp / positives);
            roc += (fpr - last_fpr) * (tpr + last_tpr) / 2.0;
            if last_fpr < AUPRO_FPR_LIMIT {
                let (end, end_pro) = match fpr > AUPRO_FPR_LIMIT {
                    true => {
                        let t = (AUPRO_FPR_LIMIT - last_fpr) / (fpr - last_fpr);
                        (AUPRO_FPR_LIMIT, last_pro + t * (pro - last_pro))
                    }
                    false => (fpr, pro),
                };
                aupro += (end - last_fpr) * (end_pro + last_pro) / 2.0;
            }
            (last_fpr, last_tpr, last_pro) = (fpr, tpr, pro);
        }
        Ok(PixelAuc {
            auc_roc: roc,
            aupro: aupro / AUPRO_FPR_LIMIT,
        })
    }
}
