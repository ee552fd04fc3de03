//! A whole run: settings and data → split → training → evaluation → run directory; and
//! re-evaluation or prediction from a saved run directory.

pub mod evaluate;
pub mod plot;
pub mod report;
pub mod train;

use std::path::{Path, PathBuf};

use burn::prelude::*;
use burn::store::{ModuleSnapshot, SafetensorsStore};
use serde::{Deserialize, Serialize};

use crate::config::TrainConfig;
use crate::data::batch::Batcher;
use crate::data::layout::DatasetLayout;
use crate::data::protocol::Split;
use crate::data::sampler::{BatchSampler, RefMode, ReferenceSet};
use crate::error::{Error, Result};
use crate::model::backbone::Backbone;
use crate::model::heads::top_k;
use crate::model::{Dra, HeadNorm, HeadStats};
use crate::rng::{DraRng, seeded};
use crate::run::evaluate::score_samples;
use crate::run::train::{StepReport, Trainer};
use crate::types::{Metrics, Sample, Scored};

/// Settings derived from the configuration and the data, recorded for the reader.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Derived {
    /// Input side at each pyramid scale.
    pub scale_sizes: Vec<usize>,
    /// Feature-map side at each scale.
    pub feature_sizes: Vec<usize>,
    /// K of top-K MIL at each scale.
    pub top_k: Vec<usize>,
    pub normal_slots: usize,
    pub seen_slots: usize,
    pub lr_per_epoch: Vec<f64>,
    pub n_train_normal: usize,
    pub n_train_anomaly: usize,
    pub n_test_normal: usize,
    pub n_test_anomaly: usize,
    pub seen_anomalies: Vec<PathBuf>,
    /// Fixed reference set: indices into the sorted normal training images, and their paths.
    pub reference: Vec<usize>,
    pub reference_paths: Vec<PathBuf>,
    /// Images left out because they cannot be decoded (`skip_bad_images`).
    pub skipped_images: Vec<PathBuf>,
}

/// `config.json`: every setting and what follows from it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    pub settings: TrainConfig,
    pub derived: Derived,
}

/// The data of a run: its split, the reference set and the generator after drawing them.
pub struct Prepared {
    pub split: Split,
    pub references: ReferenceSet,
    pub rng: DraRng,
    pub derived: Derived,
}

/// Validates the settings against the data and draws the split and the reference set.
pub fn prepare(config: &TrainConfig) -> Result<Prepared> {
    config.validate()?;
    let layout = DatasetLayout::open(&config.data_root, &config.class)?;
    let mut rng = seeded(config.seed);
    let mut split = Split::new(&layout, &config.protocol(), config.n_anomaly, &mut rng)?;
    let skipped_images = check_images(&mut split, config.skip_bad_images)?;
    let references = ReferenceSet::new(
        config.ref_mode,
        config.n_ref,
        split.train_normal.len(),
        &mut rng,
    )?;
    let sampler = BatchSampler::new(
        split.train_normal.len(),
        split.train_anomaly.len(),
        config.batch_size,
    )?;
    let scale_sizes: Vec<usize> = (0..config.n_scales)
        .map(|s| config.img_size.div_ceil(1 << s))
        .collect();
    let feature_sizes = scale_sizes
        .iter()
        .map(|&s| config.backbone.feature_size(s))
        .collect::<Result<Vec<_>>>()?;
    let derived = Derived {
        top_k: feature_sizes
            .iter()
            .map(|&f| top_k(f, f, config.topk))
            .collect(),
        scale_sizes,
        feature_sizes,
        normal_slots: sampler.normal_slots(),
        seen_slots: config.batch_size - sampler.normal_slots(),
        lr_per_epoch: (0..config.epochs).map(|e| config.lr_at(e)).collect(),
        n_train_normal: split.train_normal.len(),
        n_train_anomaly: split.train_anomaly.len(),
        n_test_normal: split.test.len() - split.n_test_anomalies(),
        n_test_anomaly: split.n_test_anomalies(),
        seen_anomalies: split.train_anomaly.iter().map(|s| s.path.clone()).collect(),
        reference: references.fixed_indices().to_vec(),
        reference_paths: references
            .fixed_indices()
            .iter()
            .map(|&i| split.train_normal[i].path.clone())
            .collect(),
        skipped_images,
    };
    Ok(Prepared {
        split,
        references,
        rng,
        derived,
    })
}

/// Decodes every image of `split`. An unreadable one is an error naming it, or with `skip`
/// is removed from the split; returns the removed paths.
fn check_images(split: &mut Split, skip: bool) -> Result<Vec<PathBuf>> {
    let mut bad = Vec::new();
    let mut keep = |samples: &mut Vec<Sample>| -> Result<()> {
        let mut kept = Vec::with_capacity(samples.len());
        for s in samples.drain(..) {
            match crate::data::transform::load_rgb(&s.path) {
                Ok(_) => kept.push(s),
                Err(e) if skip => {
                    eprintln!("skipping {}: {e}", s.path.display());
                    bad.push(s.path);
                }
                Err(e) => {
                    return Err(Error::Setting(format!(
                        "{e} (fix or remove it, or pass --skip-bad-images to leave such files out)"
                    )));
                }
            }
        }
        *samples = kept;
        Ok(())
    };
    keep(&mut split.train_normal)?;
    keep(&mut split.train_anomaly)?;
    keep(&mut split.test)?;
    if split.train_normal.is_empty() {
        return Err(Error::Setting(
            "no readable normal training image is left".into(),
        ));
    }
    Ok(bad)
}

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
    Finished(Metrics),
    /// Stopped by [`RunOptions::stop_after`] after this many epochs in all.
    Stopped { epochs_done: usize },
}

/// Whether `out` holds an interrupted run of exactly `config`: its record has the same
/// settings and an epoch checkpoint is there to continue from.
pub fn resumable(config: &TrainConfig, out: &Path) -> bool {
    read_record(out).is_ok_and(|r| r.settings == *config)
        && Trainer::has_checkpoint(&checkpoint_dir(out))
}

/// The checkpoint folder of a run directory.
pub fn checkpoint_dir(out: &Path) -> PathBuf {
    out.join("checkpoint")
}

/// Trains (checkpointing after every epoch), evaluates and writes the run directory `out`,
/// which must exist and be writable.
pub fn train_run(
    config: &TrainConfig,
    out: &Path,
    options: RunOptions,
    progress: &mut impl Progress,
) -> Result<Outcome> {
    let p = prepare(config)?;
    let mut trainer = if options.resume {
        Trainer::resume(config, &checkpoint_dir(out))?
    } else {
        check_memory(config)?;
        report::write_json(
            &out.join("config.json"),
            &RunRecord {
                settings: config.clone(),
                derived: p.derived.clone(),
            },
        )?;
        Trainer::new(config, &p.split, p.references, p.rng)?
    };
    let mut batcher = Batcher::new(
        &p.split.train_normal,
        &p.split.train_anomaly,
        config.img_size as u32,
    );
    let mut this_run = 0;
    while !trainer.finished(config) {
        if options.stop_after == Some(this_run) {
            return Ok(Outcome::Stopped {
                epochs_done: trainer.state.epoch,
            });
        }
        trainer.run_epoch(config, &mut batcher, |r| progress.step(r))?;
        trainer.save_checkpoint(&checkpoint_dir(out))?;
        report::write_train_log(out, &trainer.state.logs)?;
        this_run += 1;
    }
    let model = match config.model().scale_statistics {
        true => {
            let images = normal_batches(config, &p.split.train_normal)?;
            trainer.model.recalibrate(&images).valid()
        }
        false => trainer.model.valid(),
    };
    save_model(&model, &out.join("model.safetensors"))?;
    let st = &mut trainer.state;
    let stats = head_stats(
        &model,
        config,
        &p.split.train_normal,
        &mut st.references,
        &mut batcher,
        &mut st.rng,
    )?;
    report::write_json(&out.join(HEAD_STATS), &stats)?;
    let mut scored = score_samples(
        &model,
        config,
        &p.split.test,
        &mut st.references,
        &mut batcher,
        &mut st.rng,
        |d, t| progress.evaluated(d, t),
    )?;
    combine(config, Some(&stats), &mut scored);
    Ok(Outcome::Finished(report::write_evaluation(
        out,
        &scored,
        Some(&stats),
        &title(config),
    )?))
}

/// The run directory's per-head statistics of the normal training images.
pub const HEAD_STATS: &str = "head_stats.json";

/// The unaugmented normal training images in batches of `config.batch_size`, as tensors.
fn normal_batches(config: &TrainConfig, normals: &[Sample]) -> Result<Vec<Tensor<4>>> {
    let device = config.device.device()?;
    let mut store = crate::data::batch::ImageStore::new(config.img_size as u32);
    normals
        .chunks(config.batch_size)
        .map(|chunk| {
            crate::data::batch::eval_batch(&mut store, chunk, &config.normalization())
                .map(|b| b.to_tensor(&device))
        })
        .collect()
}

/// Mean and std of every head's score over the normal training images (unaugmented), the
/// only images [`HeadNorm::Standardise`] learns its scale from.
pub fn head_stats(
    model: &Dra,
    config: &TrainConfig,
    normals: &[Sample],
    references: &mut ReferenceSet,
    batcher: &mut Batcher,
    rng: &mut DraRng,
) -> Result<HeadStats> {
    let scored = score_samples(model, config, normals, references, batcher, rng, |_, _| {})?;
    let rows: Vec<Vec<_>> = scored.into_iter().map(|s| s.heads).collect();
    Ok(HeadStats::of(&rows))
}

/// The head statistics of a saved run: required by `--head-norm standardise`, absent from
/// runs written before they existed.
fn saved_head_stats(dir: &Path, config: &TrainConfig) -> Result<Option<HeadStats>> {
    let path = dir.join(HEAD_STATS);
    match (path.is_file(), config.head_norm) {
        (true, _) => read_json(&path).map(Some),
        (false, HeadNorm::None) => Ok(None),
        (false, HeadNorm::Standardise) => Err(Error::layout(
            &path,
            "missing: the run's --head-norm standardise needs it (train the run again)",
        )),
    }
}

/// Sets each image's anomaly score as the settings combine the heads.
fn combine(config: &TrainConfig, stats: Option<&HeadStats>, scored: &mut [Scored]) {
    if let (HeadNorm::Standardise, Some(stats)) = (config.head_norm, stats) {
        for s in scored {
            s.score = stats.anomaly_score(&s.heads);
        }
    }
}

/// Trains from scratch to the last epoch, evaluates and writes the run directory `out`.
pub fn train_and_evaluate(
    config: &TrainConfig,
    out: &Path,
    resume: bool,
    progress: &mut impl Progress,
) -> Result<Metrics> {
    let options = RunOptions {
        resume,
        stop_after: None,
    };
    match train_run(config, out, options, progress)? {
        Outcome::Finished(m) => Ok(m),
        Outcome::Stopped { .. } => unreachable!("no stop requested"),
    }
}

/// Rough peak memory of a training step in bytes: a base plus activation bytes per input
/// pixel (measured with `benches/backbones.rs`) over the batch, references and scales.
pub fn training_memory_estimate(config: &TrainConfig) -> u64 {
    let per_pixel: u64 = match config.backbone {
        crate::model::backbone::BackboneKind::Resnet18 => 700,
        _ => 1200,
    };
    let pixels: u64 = (0..config.n_scales)
        .map(|s| (config.img_size.div_ceil(1 << s) as u64).pow(2))
        .sum();
    (400 << 20) + per_pixel * pixels * (config.batch_size + config.n_ref) as u64
}

/// Memory the system can still give (Linux `MemAvailable`), if known.
fn available_memory() -> Option<u64> {
    let info = std::fs::read_to_string("/proc/meminfo").ok()?;
    let kb: u64 = info
        .lines()
        .find_map(|l| l.strip_prefix("MemAvailable:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kb * 1024)
}

/// Refuses settings whose training step would not fit in memory, before allocating it.
pub fn check_memory(config: &TrainConfig) -> Result<()> {
    let need = training_memory_estimate(config);
    match available_memory() {
        Some(have) if need > have => Err(Error::Setting(format!(
            "--batch-size {} at --img-size {} needs about {:.1} GiB to train, more than the {:.1} GiB available: \
             lower --batch-size or --img-size",
            config.batch_size,
            config.img_size,
            need as f64 / (1u64 << 30) as f64,
            have as f64 / (1u64 << 30) as f64
        ))),
        _ => Ok(()),
    }
}

fn title(config: &TrainConfig) -> String {
    format!(
        "{} / {}, {} seen",
        config.class, config.backbone, config.n_anomaly
    )
}

fn save_model(model: &Dra, path: &Path) -> Result<()> {
    let mut store = SafetensorsStore::from_file(path).overwrite(true);
    model
        .save_into(&mut store)
        .map_err(|e| Error::layout(path, format!("cannot write the model: {e}")))
}

/// Reads `config.json` of a run directory.
pub fn read_record(dir: &Path) -> Result<RunRecord> {
    read_json(&dir.join("config.json"))
}

/// Reads one JSON file of a run directory.
fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        Error::layout(
            path,
            format!(
                "not a run directory, or one that did not finish ({e}): train one with `dra train`"
            ),
        )
    })?;
    serde_json::from_str(&text).map_err(|e| Error::layout(path, format!("invalid run file: {e}")))
}

/// Reads `config.json` and the model of a run directory onto the configured device.
pub fn load_run(dir: &Path) -> Result<(RunRecord, Dra)> {
    let record = read_record(dir)?;
    let device = record.settings.device.device()?;
    let backbone = Backbone::new(record.settings.backbone, &device);
    let mut model = Dra::new(&record.settings.model(), backbone, &device);
    let path = dir.join("model.safetensors");
    if !path.is_file() {
        return Err(Error::layout(
            &path,
            "model weights missing: the run did not finish training",
        ));
    }
    let mut store = SafetensorsStore::from_file(&path);
    let result = model
        .load_from(&mut store)
        .map_err(|e| Error::layout(&path, format!("cannot read the model: {e}")))?;
    if !result.missing.is_empty() || !result.errors.is_empty() {
        return Err(Error::layout(
            &path,
            format!(
                "does not match config.json ({} missing tensors)",
                result.missing.len()
            ),
        ));
    }
    Ok((record, model))
}

/// The reference set of a saved run, over the normal training images of `split`.
fn saved_references(record: &RunRecord, split: &Split, rng: &mut DraRng) -> Result<ReferenceSet> {
    match record.settings.ref_mode {
        RefMode::Fixed => {
            ReferenceSet::fixed(record.derived.reference.clone(), split.train_normal.len())
        }
        RefMode::Resample => ReferenceSet::new(
            RefMode::Resample,
            record.settings.n_ref,
            split.train_normal.len(),
            rng,
        ),
    }
}

/// Scores `samples` (default: the run's test split) with a saved run's model against its
/// reference set.
fn score_saved(
    dir: &Path,
    samples: Option<Vec<Sample>>,
    progress: &mut impl Progress,
) -> Result<(RunRecord, Vec<Scored>)> {
    let (record, model) = load_run(dir)?;
    let config = &record.settings;
    let stats = saved_head_stats(dir, config)?;
    let mut p = prepare(config)?;
    let mut references = saved_references(&record, &p.split, &mut p.rng)?;
    let mut batcher = Batcher::new(
        &p.split.train_normal,
        &p.split.train_anomaly,
        config.img_size as u32,
    );
    let samples = samples.unwrap_or_else(|| p.split.test.clone());
    let mut scored = score_samples(
        &model,
        config,
        &samples,
        &mut references,
        &mut batcher,
        &mut p.rng,
        |d, t| progress.evaluated(d, t),
    )?;
    combine(config, stats.as_ref(), &mut scored);
    Ok((record, scored))
}

/// Re-evaluates a saved run on its test split, rewriting its metrics, scores and plots.
pub fn evaluate_run(dir: &Path, progress: &mut impl Progress) -> Result<Metrics> {
    let (record, scored) = score_saved(dir, None, progress)?;
    let stats = saved_head_stats(dir, &record.settings)?;
    report::write_evaluation(dir, &scored, stats.as_ref(), &title(&record.settings))
}

/// What [`predict`] made of its images.
#[derive(Debug)]
pub struct Predictions {
    /// The readable images' scores, in the order given.
    pub scored: Vec<Scored>,
    /// The images that could not be read, with the reason.
    pub failed: Vec<(PathBuf, Error)>,
}

/// Scores images with a saved run's model (against its reference set). An image that
/// cannot be read is listed in `failed` and the others are still scored.
pub fn predict(dir: &Path, images: &[PathBuf]) -> Result<Predictions> {
    let mut failed = Vec::new();
    let mut samples = Vec::new();
    for p in images {
        match crate::data::transform::load_rgb(p) {
            Ok(_) => samples.push(Sample {
                path: p.clone(),
                class: String::new(),
            }),
            Err(e) => failed.push((p.clone(), e)),
        }
    }
    let mut scored = match samples.is_empty() {
        true => Vec::new(),
        false => score_saved(dir, Some(samples), &mut ())?.1,
    };
    for s in &mut scored {
        s.anomaly = false;
    }
    Ok(Predictions { scored, failed })
}
