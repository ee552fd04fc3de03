//! A saved run directory read back: its score rule, threshold, model, memory and split, for
//! re-evaluation (`dra eval`), refitting the score rule and scoring given images (`dra
//! predict`, and the kept-loaded [`super::detector::Detector`]).

use std::path::{Path, PathBuf};

use burn::store::{ModuleSnapshot, SafetensorsStore};

use super::evaluate::{Scoring, score_samples};
use super::files::{
    DECISION, Decision, FUSION, HEAD_STATS, RunRecord, read_json, read_record, write_json,
};
use super::maps::{MapFiles, MapOutputs};
use super::plan::test_normals;
use super::{Progress, decide, fitted, report, title};
use crate::config::TrainConfig;
use crate::data::batch::{Batcher, ImageStore};
use crate::data::layout::Masks;
use crate::data::protocol::Split;
use crate::data::reference::{RefMode, ReferenceSet};
use crate::error::{Error, Result};
use crate::fusion::{Fusion, PartWeights};
use crate::model::backbone::Backbone;
use crate::model::memory::{MEMORY_FILE, MemoryMode, PatchMemory};
use crate::model::{Dra, HeadNorm};
use crate::rng::{DraRng, seeded};
use crate::types::{Metrics, Sample, Scored};

/// The score rule of a saved run: its `fusion.json`, or for a run written before it existed,
/// the rule it was scored with (the plain sum, or the fixed weights over `head_stats.json`).
fn saved_fusion(dir: &Path, config: &TrainConfig) -> Result<Fusion> {
    let (path, stats) = (dir.join(FUSION), dir.join(HEAD_STATS));
    let standardise = config.head_norm == HeadNorm::Standardise;
    match (path.is_file(), stats.is_file(), standardise) {
        (true, _, _) => read_json(&path),
        (false, true, _) => Ok(Fusion::legacy(read_json(&stats)?, standardise)),
        (false, false, false) => Ok(Fusion::plain()),
        (false, false, true) => Err(Error::run_file(
            &path,
            "missing: the run's --head-norm standardise needs it (train the run again)",
        )),
    }
}

/// The decision threshold of a saved run (absent from runs written before it existed).
pub fn saved_decision(dir: &Path) -> Result<Option<Decision>> {
    let path = dir.join(DECISION);
    match path.is_file() {
        true => read_json(&path).map(Some),
        false => Ok(None),
    }
}

/// The model of a run directory (`record` its `config.json`) on the configured device.
pub(super) fn load_model(dir: &Path, record: &RunRecord) -> Result<Dra> {
    let device = record.settings.device.device()?;
    let backbone = Backbone::new(record.settings.backbone, &device);
    let mut model = Dra::new(&record.settings.model(), backbone, &device);
    let path = dir.join("model.safetensors");
    if !path.is_file() {
        return Err(Error::run_file(
            &path,
            "model weights missing: the run did not finish training",
        ));
    }
    let mut store = SafetensorsStore::from_file(&path);
    let result = model
        .load_from(&mut store)
        .map_err(|e| Error::run_file(&path, format!("cannot read the model: {e}")))?;
    if !result.missing.is_empty() || !result.errors.is_empty() {
        return Err(Error::run_file(
            &path,
            format!(
                "does not match config.json ({} missing tensors)",
                result.missing.len()
            ),
        ));
    }
    Ok(model)
}

/// A saved run's split as training drew it (listed, not decoded; the images training left
/// out removed again), with its reference set and the generator after both.
pub(super) fn saved_split(record: &RunRecord) -> Result<(Split, ReferenceSet, DraRng)> {
    let config = &record.settings;
    let layout = config.layout()?;
    let mut rng = seeded(config.seed);
    let mut split = Split::new(&layout, &config.protocol(), config.n_anomaly, &mut rng)?;
    if test_normals(config, &layout) != record.derived.test_normals {
        return Err(Error::layout(
            &layout.dir,
            "the normal images are not those this run was trained and tested on (its \
             config.json lists its test images): the folder has changed since",
        ));
    }
    let skipped = &record.derived.skipped_images;
    for samples in [
        &mut split.train_normal,
        &mut split.train_anomaly,
        &mut split.test,
    ] {
        samples.retain(|s| !skipped.contains(&s.path));
    }
    let n_normal = split.train_normal.len();
    let references = match config.ref_mode {
        RefMode::Fixed => ReferenceSet::fixed(record.derived.reference.clone(), n_normal)?,
        RefMode::Resample => {
            ReferenceSet::new(RefMode::Resample, config.n_ref, n_normal, &mut rng)?
        }
    };
    Ok((split, references, rng))
}

/// A saved run's fixed reference set, read from the paths its `config.json` records (so
/// that scoring given images reads no other image of the data set), with the generator
/// scoring starts from.
pub(super) fn recorded_references(
    record: &RunRecord,
) -> Result<(Vec<Sample>, ReferenceSet, DraRng)> {
    let paths = &record.derived.reference_paths;
    let normals: Vec<Sample> = paths
        .iter()
        .map(|p| Sample {
            path: p.clone(),
            class: crate::types::NORMAL_CLASS.into(),
        })
        .collect();
    let references = ReferenceSet::fixed((0..paths.len()).collect(), paths.len())?;
    Ok((normals, references, seeded(record.settings.seed)))
}

/// A saved run's memory of normal patches, if it has one.
pub(super) fn saved_memory(dir: &Path, config: &TrainConfig) -> Result<Option<PatchMemory>> {
    match config.memory {
        MemoryMode::Patch => Ok(Some(PatchMemory::load(
            &dir.join(MEMORY_FILE),
            &config.device.device()?,
        )?)),
        MemoryMode::None => Ok(None),
    }
}

/// A saved run directory as `eval` and `predict` read it: its settings, head statistics and
/// decision threshold, each read once.
pub(super) struct SavedRun<'a> {
    pub(super) dir: &'a Path,
    pub(super) record: RunRecord,
    pub(super) fusion: Fusion,
    pub(super) threshold: Option<f64>,
}

impl<'a> SavedRun<'a> {
    pub(super) fn open(dir: &'a Path) -> Result<Self> {
        let record = read_record(dir)?;
        Ok(SavedRun {
            fusion: saved_fusion(dir, &record.settings)?,
            threshold: saved_decision(dir)?.map(|d| d.threshold),
            dir,
            record,
        })
    }

    /// The map outputs of the run, writing per-image maps into `dir` if given, measured
    /// against `masks`.
    fn map_outputs(&self, dir: Option<&Path>, masks: Masks) -> Result<MapOutputs<'_>> {
        let settings = &self.record.settings;
        let mapped = settings.heads.heads().iter().any(|h| h.has_map())
            || settings.memory == MemoryMode::Patch;
        if dir.is_some() && !mapped {
            return Err(Error::Setting(format!(
                "--maps: this run's heads ({}, --method {}) score whole images and give no \
                 anomaly map (the seen, pseudo and residual heads and the patch memory do)",
                settings.heads, settings.method
            )));
        }
        let files = dir.map(MapFiles::new).transpose()?;
        Ok(MapOutputs::new(
            &self.record.settings,
            &self.fusion,
            self.threshold,
            files,
            masks,
        ))
    }

    /// An empty store for images at the run's size.
    pub(super) fn image_store(&self) -> ImageStore {
        ImageStore::new(self.record.settings.img_size as u32)
    }

    /// Scores `samples` (default: the run's test split) with the run's model against its
    /// reference set. A fixed reference set is read from the paths `config.json` records, so
    /// that scoring given images reads no other image of the data set.
    fn score(
        &self,
        samples: Option<Vec<Sample>>,
        images: &mut ImageStore,
        maps: Option<&mut MapOutputs>,
        progress: &mut impl Progress,
    ) -> Result<Vec<Scored>> {
        let (record, dir) = (&self.record, self.dir);
        let model = load_model(dir, record)?;
        let config = &record.settings;
        let (normals, mut references, mut rng, samples) = match (samples, config.ref_mode) {
            (Some(samples), RefMode::Fixed) => {
                let (normals, references, rng) = recorded_references(record)?;
                (normals, references, rng, samples)
            }
            (samples, _) => {
                let (split, references, rng) = saved_split(record)?;
                let samples = samples.unwrap_or(split.test);
                (split.train_normal, references, rng, samples)
            }
        };
        let memory = saved_memory(dir, config)?;
        let mut batcher = Batcher::new(&normals, &[], images);
        score_samples(
            &model,
            memory.as_ref(),
            &self.fusion,
            &Scoring::of(config)?,
            &samples,
            &mut references,
            &mut None,
            &mut batcher,
            &mut rng,
            maps,
            |d, t| progress.evaluated(d, t),
        )
    }
}

/// Re-evaluates a saved run on its test split, rewriting its metrics (pixel metrics where
/// the test set has masks), scores, plots and `maps.png`; with `maps_dir`, also writes every
/// test image's map there.
pub fn evaluate_run(
    dir: &Path,
    maps_dir: Option<&Path>,
    refit: Option<PartWeights>,
    progress: &mut impl Progress,
) -> Result<Metrics> {
    if let Some(weights) = refit {
        refit_fusion(dir, weights)?;
    }
    let run = SavedRun::open(dir)?;
    let mut maps = run.map_outputs(maps_dir, run.record.settings.masks()?)?;
    let scored = run.score(None, &mut run.image_store(), Some(&mut maps), progress)?;
    report::write_evaluation(
        dir,
        &scored,
        &run.fusion,
        run.threshold,
        maps.finish(Some(dir))?,
        &title(&run.record.settings),
    )
}

/// Fits the score rule with part `weights` anew on a saved run's `normal_scores.csv` (no
/// model needed) and stores it with the decision threshold it gives at the run's
/// false-positive rate, and the weights in `config.json`.
pub fn refit_fusion(dir: &Path, weights: PartWeights) -> Result<Fusion> {
    let mut record = read_record(dir)?;
    if record.settings.head_norm != HeadNorm::Standardise {
        return Err(Error::Setting(format!(
            "--part-weights: the run at {} adds its heads' raw scores (--head-norm none); \
             weights apply to standardised ones",
            dir.display()
        )));
    }
    record.settings.part_weights = weights;
    let rows = report::read_normal_scores(dir)?;
    let fusion = fitted(&record.settings, &rows);
    let normals: Vec<Scored> = rows
        .into_iter()
        .map(|heads| Scored {
            path: PathBuf::new(),
            class: crate::types::NORMAL_CLASS.into(),
            anomaly: false,
            score: fusion.score(&heads),
            heads,
        })
        .collect();
    decide(&fusion, &normals, record.settings.fpr, dir)?;
    write_json(&dir.join("config.json"), &record)?;
    Ok(fusion)
}

/// What [`predict`] made of its images.
#[derive(Debug)]
pub struct Predictions {
    /// The readable images' scores, in the order given.
    pub scored: Vec<Scored>,
    /// The images that could not be read, with the reason.
    pub failed: Vec<(PathBuf, Error)>,
    /// The run's decision threshold: a score above it flags the image anomalous.
    pub threshold: Option<f64>,
}

/// Scores images with a saved run's model (against its reference set), writing their maps
/// into `maps_dir` if given. An image that cannot be read is listed in `failed` and the
/// others are still scored.
pub fn predict(
    dir: &Path,
    images: &[PathBuf],
    maps_dir: Option<&Path>,
    progress: &mut impl Progress,
) -> Result<Predictions> {
    let run = SavedRun::open(dir)?;
    let mut failed = Vec::new();
    let mut samples = Vec::new();
    let mut store = run.image_store();
    for p in images {
        match store.get(p) {
            Ok(_) => samples.push(Sample {
                path: p.clone(),
                class: String::new(),
            }),
            Err(e) => failed.push((p.clone(), e)),
        }
    }
    let mut maps = maps_dir
        .map(|d| run.map_outputs(Some(d), Masks::none()))
        .transpose()?;
    let mut scored = match samples.is_empty() {
        true => Vec::new(),
        false => run.score(Some(samples), &mut store, maps.as_mut(), progress)?,
    };
    for s in &mut scored {
        s.anomaly = false;
    }
    if let Some(maps) = maps {
        maps.finish(None)?;
    }
    Ok(Predictions {
        scored,
        failed,
        threshold: run.threshold,
    })
}
