//! A saved run kept loaded to score images held in memory (`dra serve`): the model, the
//! memory of normal patches, the reference images and the score rule are read once, and each
//! call scores a batch through the same path as [`super::predict`], to the same bits.

use std::path::{Path, PathBuf};

use burn::prelude::*;
use image::RgbImage;

use super::anomaly_map::AnomalyMap;
use super::evaluate::{Scoring, score_samples};
use super::files::RunRecord;
use super::maps::MapOutputs;
use super::saved::{SavedRun, load_model, recorded_references, saved_memory};
use crate::config::TrainConfig;
use crate::data::batch::{Batcher, ImageStore};
use crate::data::layout::Masks;
use crate::data::reference::RefMode;
use crate::error::{Error, Result};
use crate::fusion::Fusion;
use crate::model::Dra;
use crate::model::memory::PatchMemory;
use crate::types::{Head, Sample};

/// A trained detector, loaded once.
pub struct Detector {
    dir: PathBuf,
    record: RunRecord,
    fusion: Fusion,
    threshold: Option<f64>,
    model: Dra,
    memory: Option<PatchMemory>,
    /// The reference images, decoded into `store` once.
    references: Vec<Sample>,
    store: ImageStore,
    /// The reference images' feature maps, computed by the first call and kept.
    reference_maps: Option<Vec<Tensor<4>>>,
    scoring: Scoring,
}

/// What the detector made of one image.
#[derive(Debug, Clone)]
pub struct Detection {
    /// The anomaly score (above the threshold: anomalous).
    pub score: f32,
    /// Each part's score.
    pub heads: Vec<(Head, f32)>,
    /// The anomaly map in the model's input frame, when asked for and the run has maps.
    pub map: Option<AnomalyMap>,
}

impl Detector {
    /// Loads the run at `dir`; refuses one whose reference set is drawn anew for every
    /// batch from its training images (`ref_mode = "resample"`), which a detector away
    /// from its data cannot do.
    pub fn open(dir: &Path) -> Result<Self> {
        let run = SavedRun::open(dir)?;
        let config = &run.record.settings;
        if config.ref_mode == RefMode::Resample {
            return Err(Error::Setting(format!(
                "the run at {} draws its reference images anew from its training images for \
                 every batch (ref_mode resample); serve a run trained with --ref-mode fixed",
                dir.display()
            )));
        }
        let model = load_model(dir, &run.record)?;
        let memory = saved_memory(dir, config)?;
        let (references, _, _) = recorded_references(&run.record)?;
        let mut store = run.image_store();
        for r in &references {
            store.get(&r.path)?;
        }
        Ok(Detector {
            scoring: Scoring::of(config)?,
            dir: dir.to_path_buf(),
            model,
            memory,
            references,
            store,
            reference_maps: None,
            fusion: run.fusion,
            threshold: run.threshold,
            record: run.record,
        })
    }

    /// The run directory it was loaded from.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The run's settings.
    pub fn settings(&self) -> &TrainConfig {
        &self.record.settings
    }

    /// The decision threshold, where the run has one.
    pub fn threshold(&self) -> Option<f64> {
        self.threshold
    }

    /// The score rule.
    pub fn fusion(&self) -> &Fusion {
        &self.fusion
    }

    /// Scores `images` (decoded, any size) as one batch, with their maps when `maps` is set.
    pub fn detect(&mut self, images: &[RgbImage], maps: bool) -> Result<Vec<Detection>> {
        let keys: Vec<PathBuf> = (0..images.len())
            .map(|i| PathBuf::from(format!("\u{0}in-memory/{i}")))
            .collect();
        for (key, image) in keys.iter().zip(images) {
            self.store.insert(key.clone(), image);
        }
        let samples: Vec<Sample> = keys
            .iter()
            .map(|k| Sample {
                path: k.clone(),
                class: String::new(),
            })
            .collect();
        let (_, mut references, mut rng) = recorded_references(&self.record)?;
        let mut outputs = maps.then(|| {
            MapOutputs::new(
                &self.record.settings,
                &self.fusion,
                self.threshold,
                None,
                Masks::none(),
            )
            .keeping_maps()
        });
        let mut batcher = Batcher::new(&self.references, &[], &mut self.store);
        let scored = score_samples(
            &self.model,
            self.memory.as_ref(),
            &self.fusion,
            &self.scoring,
            &samples,
            &mut references,
            &mut self.reference_maps,
            &mut batcher,
            &mut rng,
            outputs.as_mut(),
            |_, _| {},
        );
        for key in &keys {
            self.store.remove(key);
        }
        let scored = scored?;
        let mut kept = outputs.map(|mut o| o.take_maps()).unwrap_or_default();
        if kept.len() != scored.len() {
            kept.clear(); // a run whose heads give no map
        }
        let mut kept = kept.into_iter();
        Ok(scored
            .into_iter()
            .map(|s| Detection {
                score: s.score,
                heads: s.heads,
                map: kept.next(),
            })
            .collect())
    }
}
