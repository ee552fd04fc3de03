//! A whole run: a [`Plan`] (settings and data) → training → evaluation → run directory; and
//! re-evaluation or prediction from a saved run directory, which rebuild only what they
//! need from its `config.json` (or keep it loaded: [`detector::Detector`]).

pub mod anomaly_map;
pub mod calibrate;
pub mod detector;
pub mod evaluate;
pub mod files;
pub mod maps;
pub mod overlay;
pub mod plan;
pub mod plot;
pub mod report;
pub mod train;

use std::path::{Path, PathBuf};

use burn::prelude::*;
use burn::store::{ModuleSnapshot, SafetensorsStore};

use crate::config::TrainConfig;
use crate::data::batch::{Batcher, ImageStore};
use crate::data::layout::Masks;
use crate::data::protocol::Split;
use crate::data::reference::{RefMode, ReferenceSet};
use crate::error::{Error, Result};
use crate::fusion::{Fusion, PartWeights};
use crate::metrics::threshold_at_fpr;
use crate::model::backbone::Backbone;
use crate::model::backbone::weights::safetensors_writer;
use crate::model::memory::{MEMORY_FILE, MemoryMode, PatchMemory};
use crate::model::{Dra, HeadNorm};
use crate::rng::{DraRng, seeded};
use crate::types::{Head, Metrics, Sample, Scored};
use evaluate::{Scoring, score_samples};
use files::{
    DECISION, Decision, FUSION, HEAD_STATS, RunRecord, checkpoint_dir, read_json, read_record,
    write_json,
};
use maps::{MapFiles, MapOutputs};
pub use plan::Plan;
use plan::test_normals;
use train::{StepReport, Trainer};

/// Callbacks of a run, for progress display.
pub trait Progress {
    /// After every training step.
    fn step(&mut self, _report: &StepReport) {}
    /// After every evaluation batch: images scored so far and in all.
    fn evaluated(&mut self, _done: usize, _total: usize) {}
}

/// No progress display.
impl Progress for () {}

/// How a training run starts and how far it goes.
#[derive(Debug, Clone, Copy, Default)]
pub struct RunOptions {
    /// Continue from the run directory's checkpoint instead of starting afresh.
    pub resume: bool,
    /// Stop after this many epochs in this invocation (the checkpoint stays for a resume).
    pub stop_after: Option<usize>,
}

/// How a training run ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Trained to the last epoch and evaluated.
    Finished(Box<Metrics>),
    /// Stopped by [`RunOptions::stop_after`] after this many epochs in all.
    Stopped { epochs_done: usize },
}

/// Whether `out` holds an interrupted run of exactly `config`: its record has the same
/// settings and an epoch checkpoint is there to continue from.
pub fn resumable(config: &TrainConfig, out: &Path) -> bool {
    read_record(out).is_ok_and(|r| r.settings == *config)
        && Trainer::has_checkpoint(&checkpoint_dir(out))
}

/// Trains `plan` (checkpointing after every epoch), evaluates it and writes the run
/// directory `out`, which must exist and be writable.
pub fn train_run(
    plan: &mut Plan,
    out: &Path,
    options: RunOptions,
    progress: &mut impl Progress,
) -> Result<Outcome> {
    let config = plan.config.clone();
    let mut trainer = if options.resume {
        Trainer::resume(&config, &checkpoint_dir(out))?
    } else {
        write_json(
            &out.join("config.json"),
            &RunRecord {
                settings: config.clone(),
                derived: plan.derived.clone(),
            },
        )?;
        Trainer::new(plan)?
    };
    let split = &plan.split;
    // outlier images are the pseudo anomalies, unless the method exposes them in slots of
    // their own (SAOE)
    let exposure = config.method.spec().composition.exposure;
    let mut batcher = Batcher::new(&split.train_normal, &split.train_anomaly, &mut plan.images)
        .with_outliers(&plan.outliers, !exposure);
    if !options.resume && config.heads.contains(Head::Centre) {
        // Deep SAD's centre: fixed before the first step (a resumed run has it saved)
        let images = normal_batches(
            &Scoring::of(&config)?,
            &split.train_normal,
            &mut batcher,
            |x| x,
        )?;
        trainer.model = trainer.model.centred(&images);
    }
    let mut this_run = 0;
    while !trainer.finished(&config) {
        if options.stop_after == Some(this_run) {
            return Ok(Outcome::Stopped {
                epochs_done: trainer.state.epoch,
            });
        }
        trainer.run_epoch(&config, &mut batcher, |r| progress.step(r))?;
        trainer.save_checkpoint(&checkpoint_dir(out))?;
        report::write_train_log(out, &trainer.state.logs)?;
        this_run += 1;
    }
    let scoring = Scoring::of(&config)?;
    let model = match config.model().scale_statistics {
        true => {
            let images = normal_batches(&scoring, &split.train_normal, &mut batcher, |x| x)?;
            trainer.model.recalibrate(&images).valid()
        }
        false => trainer.model.valid(),
    };
    save_model(&model, &out.join("model.safetensors"))?;
    let memory = match config.memory {
        MemoryMode::Patch => {
            let features = normal_batches(&scoring, &split.train_normal, &mut batcher, |x| {
                PatchMemory::features(&plan.backbone, x)
            })?;
            // the generator of the patch-kNN baseline, so the bank is the same
            let (memory, own) = PatchMemory::build(features, &mut plan.rng.clone());
            memory.save(&out.join(MEMORY_FILE))?;
            Some((memory, own))
        }
        MemoryMode::None => None,
    };
    let st = &mut trainer.state;
    let scored = score_samples(
        &model,
        memory.as_ref().map(|m| &m.0),
        &Fusion::plain(),
        &scoring,
        &split.train_normal,
        &mut st.references,
        &mut None,
        &mut batcher,
        &mut st.rng,
        None,
        |_, _| {},
    )?;
    let mut normals = scored;
    if let Some((_, own)) = &memory {
        // each normal's memory score against the other half's bank, not its own patches
        for (s, &v) in normals.iter_mut().zip(own) {
            for (h, g) in &mut s.heads {
                if *h == Head::Memory {
                    *g = v;
                }
            }
        }
    }
    let rows: Vec<Vec<_>> = normals.iter().map(|s| s.heads.clone()).collect();
    let fusion = fitted(&config, &rows);
    for s in &mut normals {
        s.score = fusion.score(&s.heads);
    }
    report::write_normal_scores(out, &normals)?;
    let decision = decide(&fusion, &normals, config.fpr, out)?;
    let mut maps = MapOutputs::new(
        &config,
        &fusion,
        Some(decision.threshold),
        None,
        config.masks()?,
    );
    let scored = score_samples(
        &model,
        memory.as_ref().map(|m| &m.0),
        &fusion,
        &scoring,
        &split.test,
        &mut st.references,
        &mut None,
        &mut batcher,
        &mut st.rng,
        Some(&mut maps),
        |d, t| progress.evaluated(d, t),
    )?;
    Ok(Outcome::Finished(Box::new(report::write_evaluation(
        out,
        &scored,
        &fusion,
        Some(decision.threshold),
        maps.finish(Some(out))?,
        &title(&config),
    )?)))
}

/// Trains `plan` to the last epoch (from the checkpoint in `out` with `resume`), evaluates
/// it and writes the run directory `out`.
pub fn train_and_evaluate(
    plan: &mut Plan,
    out: &Path,
    resume: bool,
    progress: &mut impl Progress,
) -> Result<Metrics> {
    let options = RunOptions {
        resume,
        stop_after: None,
    };
    match train_run(plan, out, options, progress)? {
        Outcome::Finished(m) => Ok(*m),
        Outcome::Stopped { .. } => unreachable!("no stop requested"),
    }
}

/// `each` of the unaugmented normal training images' batches, as tensors.
fn normal_batches<T>(
    scoring: &Scoring,
    normals: &[Sample],
    batcher: &mut Batcher,
    mut each: impl FnMut(Tensor<4>) -> T,
) -> Result<Vec<T>> {
    normals
        .chunks(scoring.batch_size)
        .map(|chunk| {
            batcher
                .eval_batch(chunk, &scoring.norm)
                .map(|b| each(b.to_tensor(&scoring.device)))
        })
        .collect()
}

/// The score rule of `config` fitted on the part scores of the normal training images.
fn fitted(config: &TrainConfig, normals: &[Vec<(Head, f32)>]) -> Fusion {
    let weights = match config.head_norm {
        HeadNorm::None => None,
        HeadNorm::Standardise => Some(config.part_weights.clone()),
    };
    Fusion::fit(weights, normals)
}

/// Writes the fitted rule and the decision threshold it gives at `fpr` on the normal
/// training images (`normals`, scored by the rule), returning the decision.
fn decide(fusion: &Fusion, normals: &[Scored], fpr: f64, out: &Path) -> Result<Decision> {
    write_json(&out.join(FUSION), fusion)?;
    let scores: Vec<f64> = normals.iter().map(|s| s.score as f64).collect();
    let decision = Decision {
        threshold: threshold_at_fpr(&scores, fpr)?,
        fpr: Some(fpr),
        f1: None,
        source: format!(
            "the {} normal training images (optimistic: the model saw them)",
            normals.len()
        ),
    };
    write_json(&out.join(DECISION), &decision)?;
    Ok(decision)
}

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

fn title(config: &TrainConfig) -> String {
    format!(
        "{} / {}, {} seen",
        config.class, config.backbone, config.n_anomaly
    )
}

fn save_model(model: &Dra, path: &Path) -> Result<()> {
    let mut store = safetensors_writer(path);
    model
        .save_into(&mut store)
        .map_err(|e| Error::run_file(path, format!("cannot write the model: {e}")))
}

/// The model of a run directory (`record` its `config.json`) on the configured device.
fn load_model(dir: &Path, record: &RunRecord) -> Result<Dra> {
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
fn saved_split(record: &RunRecord) -> Result<(Split, ReferenceSet, DraRng)> {
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
fn recorded_references(record: &RunRecord) -> Result<(Vec<Sample>, ReferenceSet, DraRng)> {
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
fn saved_memory(dir: &Path, config: &TrainConfig) -> Result<Option<PatchMemory>> {
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
struct SavedRun<'a> {
    dir: &'a Path,
    record: RunRecord,
    fusion: Fusion,
    threshold: Option<f64>,
}

impl<'a> SavedRun<'a> {
    fn open(dir: &'a Path) -> Result<Self> {
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
    fn image_store(&self) -> ImageStore {
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
