//! A whole run: settings and data → split → training → evaluation → run directory; and
//! re-evaluation or prediction from a saved run directory.

use std::path::{Path, PathBuf};

use burn::prelude::*;
use burn::store::{ModuleSnapshot, SafetensorsStore};
use serde::{Deserialize, Serialize};

use crate::backbone::Backbone;
use crate::batch::Batcher;
use crate::config::TrainConfig;
use crate::error::{Error, Result};
use crate::evaluate::{Scored, score_samples};
use crate::heads::top_k;
use crate::layout::{DatasetLayout, NORMAL_CLASS};
use crate::model::Dra;
use crate::protocol::{Sample, Split};
use crate::report::{self, Metrics};
use crate::rng::{DraRng, seeded};
use crate::sampler::{BatchSampler, RefMode, ReferenceSet};
use crate::train::{StepReport, fit};

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
    let split = Split::new(&layout, &config.protocol(), config.n_anomaly, &mut rng)?;
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
    };
    Ok(Prepared {
        split,
        references,
        rng,
        derived,
    })
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

/// Trains, evaluates and writes the run directory `out`, which must exist and be writable.
pub fn train_and_evaluate(
    config: &TrainConfig,
    out: &Path,
    progress: &mut impl Progress,
) -> Result<Metrics> {
    let mut p = prepare(config)?;
    report::write_json(
        &out.join("config.json"),
        &RunRecord {
            settings: config.clone(),
            derived: p.derived.clone(),
        },
    )?;
    let mut batcher = Batcher::new(
        &p.split.train_normal,
        &p.split.train_anomaly,
        config.img_size as u32,
    );
    let (model, logs) = fit(
        config,
        &p.split,
        &mut p.references,
        &mut batcher,
        &mut p.rng,
        |r| progress.step(r),
    )?;
    report::write_train_log(out, &logs)?;
    let model = model.valid();
    save_model(&model, &out.join("model.safetensors"))?;
    let scored = score_samples(
        &model,
        config,
        &p.split.test,
        &mut p.references,
        &mut batcher,
        &mut p.rng,
        |d, t| progress.evaluated(d, t),
    )?;
    report::write_evaluation(out, &scored, &title(config))
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

/// Reads `config.json` and the model of a run directory onto the configured device.
pub fn load_run(dir: &Path) -> Result<(RunRecord, Dra)> {
    let record_path = dir.join("config.json");
    let text = std::fs::read_to_string(&record_path).map_err(|e| {
        Error::layout(
            &record_path,
            format!("not a run directory ({e}): train one with `dra train`"),
        )
    })?;
    let record: RunRecord = serde_json::from_str(&text)
        .map_err(|e| Error::layout(&record_path, format!("invalid run record: {e}")))?;
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

/// Re-evaluates a saved run on its test split, rewriting its metrics, scores and plots.
pub fn evaluate_run(dir: &Path, progress: &mut impl Progress) -> Result<Metrics> {
    let (record, model) = load_run(dir)?;
    let config = &record.settings;
    let mut p = prepare(config)?;
    let mut references = saved_references(&record, &p.split, &mut p.rng)?;
    let mut batcher = Batcher::new(
        &p.split.train_normal,
        &p.split.train_anomaly,
        config.img_size as u32,
    );
    let scored = score_samples(
        &model,
        config,
        &p.split.test,
        &mut references,
        &mut batcher,
        &mut p.rng,
        |d, t| progress.evaluated(d, t),
    )?;
    report::write_evaluation(dir, &scored, &title(config))
}

/// Scores images with a saved run's model (against its reference set).
pub fn predict(dir: &Path, images: &[PathBuf]) -> Result<Vec<Scored>> {
    let (record, model) = load_run(dir)?;
    let config = &record.settings;
    let mut p = prepare(config)?;
    let mut references = saved_references(&record, &p.split, &mut p.rng)?;
    let mut batcher = Batcher::new(
        &p.split.train_normal,
        &p.split.train_anomaly,
        config.img_size as u32,
    );
    let samples: Vec<Sample> = images
        .iter()
        .map(|p| Sample {
            path: p.clone(),
            class: NORMAL_CLASS.into(),
        })
        .collect();
    let mut scored = score_samples(
        &model,
        config,
        &samples,
        &mut references,
        &mut batcher,
        &mut p.rng,
        |_, _| {},
    )?;
    for s in &mut scored {
        s.class = String::new();
        s.anomaly = false;
    }
    Ok(scored)
}
