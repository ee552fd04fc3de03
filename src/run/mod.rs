//! A whole run: a [`Plan`] (settings and data) → training → evaluation → run directory; and
//! re-evaluation or prediction from a saved run directory (`saved.rs`), which rebuild only
//! what they need from its `config.json` (or keep it loaded: [`detector::Detector`]).

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
mod saved;
pub mod train;

use std::path::Path;

use burn::prelude::*;
use burn::store::ModuleSnapshot;

use crate::config::TrainConfig;
use crate::data::batch::Batcher;
use crate::error::{Error, Result};
use crate::fusion::Fusion;
use crate::metrics::threshold_at_fpr;
use crate::model::backbone::weights::safetensors_writer;
use crate::model::memory::{MEMORY_FILE, MemoryMode, PatchMemory};
use crate::model::{Dra, HeadNorm};
use crate::types::{Head, Metrics, Sample, Scored};
use evaluate::{Scoring, score_samples};
use files::{DECISION, Decision, FUSION, RunRecord, checkpoint_dir, read_record, write_json};
use maps::MapOutputs;
pub use plan::Plan;
pub use saved::{Predictions, evaluate_run, predict, refit_fusion, saved_decision};
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
        plan.masks.clone(),
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
