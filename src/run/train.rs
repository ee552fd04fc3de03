//! Training: Adam with coupled L2 weight decay, the reference StepLR schedule, global
//! gradient-norm clipping, and the sampler / augmentation / reference set of the data layer.

use std::path::Path;

use burn::module::{Module, ModuleVisitor, Param, ParamId};
use burn::optim::decay::WeightDecayConfig;
use burn::optim::{AdamConfig, GradientsParams, ModuleOptimizer};
use burn::prelude::*;
use burn::store::{BurnpackStore, ModuleSnapshot};
use rand::RngCore;
use serde::{Deserialize, Serialize};

use crate::config::TrainConfig;
use crate::data::batch::Batcher;
use crate::data::reference::ReferenceSet;
use crate::data::sampler::BatchSampler;
use crate::error::{Error, Result};
use crate::model::Dra;
use crate::model::backbone::Backbone;
use crate::model::loss::dra_loss;
use crate::rng::{DraRng, weight_init_lock};
use crate::run::files::write_json;
use crate::run::plan::Plan;
use crate::types::Head;

/// What one optimisation step did.
#[derive(Debug, Clone)]
pub struct StepReport {
    pub epoch: usize,
    pub step: usize,
    pub lr: f64,
    pub loss: f32,
    pub heads: Vec<(Head, f32)>,
}

/// Mean losses of one epoch.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EpochLog {
    pub epoch: usize,
    pub lr: f64,
    pub loss: f32,
    pub heads: Vec<(Head, f32)>,
}

/// The model being trained: per-scale statistics come only after training.
fn training_model(config: &TrainConfig) -> crate::model::ModelConfig {
    crate::model::ModelConfig {
        scale_statistics: false,
        ..config.model()
    }
}

/// Collects the gradient of every float parameter.
struct GradNorm<'a> {
    grads: &'a GradientsParams,
    sum_sq: f64,
}

impl ModuleVisitor for GradNorm<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        if let Some(g) = self.grads.get::<D>(param.id) {
            let sq = g.powi_scalar(2).sum().into_scalar::<f32>();
            self.sum_sq += sq as f64;
        }
    }
}

/// Scales every gradient by `factor`.
struct GradScale<'a> {
    grads: &'a mut GradientsParams,
    factor: f32,
    ids: Vec<ParamId>,
}

impl ModuleVisitor for GradScale<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        if let Some(g) = self.grads.remove::<D>(param.id) {
            self.grads.register(param.id, g.mul_scalar(self.factor));
            self.ids.push(param.id);
        }
    }
}

/// Clips the global L2 norm of all gradients of `module` to `max_norm`, as
/// `torch.nn.utils.clip_grad_norm_`: scale by max_norm / (norm + 1e-6) when that is below 1.
/// Returns the norm before clipping.
pub fn clip_global_norm<M: Module>(module: &M, grads: &mut GradientsParams, max_norm: f64) -> f64 {
    let mut norm = GradNorm { grads, sum_sq: 0.0 };
    module.visit(&mut norm);
    let total = norm.sum_sq.sqrt();
    let coef = max_norm / (total + 1e-6);
    if coef < 1.0 {
        module.visit(&mut GradScale {
            grads,
            factor: coef as f32,
            ids: Vec::new(),
        });
    }
    total
}

/// Where training stands between epochs: everything needed to continue exactly.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TrainState {
    /// Epochs finished.
    pub epoch: usize,
    pub sampler: BatchSampler,
    pub references: ReferenceSet,
    pub rng: DraRng,
    pub logs: Vec<EpochLog>,
}

/// A model being trained, its optimiser and its [`TrainState`].
pub struct Trainer {
    pub model: Dra,
    optim: ModuleOptimizer,
    device: Device,
    pub state: TrainState,
}

fn optimizer(config: &TrainConfig) -> ModuleOptimizer {
    AdamConfig::new()
        .with_epsilon(1e-8)
        .with_weight_decay(Some(WeightDecayConfig::new(config.weight_decay as f32)))
        .init()
}

/// Files of a checkpoint inside its folder.
const STATE: &str = "state.json";
const MODEL: &str = "model.bpk";
const OPTIMIZER: &str = "optimizer.bpk";

impl Trainer {
    /// A fresh model for `plan`: its pretrained backbone and new heads; the generator
    /// continues from the plan's split and reference set.
    pub fn new(plan: &Plan) -> Result<Self> {
        let config = &plan.config;
        let mut rng = plan.rng.clone();
        let device = config.device.device()?.autodiff();
        let model = {
            let _guard = weight_init_lock(); // the seed and the draws it governs, together
            device.seed(rng.next_u64());
            // drawn as if untrained, so that the heads' initial values follow the same draws
            // whichever weights the backbone then takes
            let mut backbone = Backbone::new_locked(config.backbone, &device);
            backbone.take_weights(&plan.backbone)?;
            let backbone = backbone.configure(&config.backbone_training());
            Dra::new_locked(&training_model(config), backbone, &device)
        };
        let split = &plan.split;
        let references = plan.references.clone();
        let sampler = BatchSampler::new(
            split.train_normal.len(),
            split.train_anomaly.len(),
            config.batch_size,
            config.method.spec().composition,
        )?
        .with_outliers(plan.outliers.len());
        Ok(Trainer {
            model,
            optim: optimizer(config),
            device,
            state: TrainState {
                epoch: 0,
                sampler,
                references,
                rng,
                logs: Vec::new(),
            },
        })
    }

    /// True when every epoch has run.
    pub fn finished(&self, config: &TrainConfig) -> bool {
        self.state.epoch >= config.epochs
    }

    /// Runs the next epoch, calling `on_step` after every step.
    pub fn run_epoch(
        &mut self,
        config: &TrainConfig,
        batcher: &mut Batcher,
        mut on_step: impl FnMut(&StepReport),
    ) -> Result<()> {
        let epoch = self.state.epoch;
        let device = self.device.clone();
        let norm = config.normalization();
        let lr = config.lr_at(epoch);
        let st = &mut self.state;
        let mut sums: Vec<(Head, f32)> = Vec::new();
        let mut total = 0.0;
        // a frozen backbone sees the fixed, unaugmented reference set alike at every step:
        // its features are computed once an epoch (the same values as a joint pass)
        let fixed_maps = match self.model.needs_reference()
            && config.freeze_backbone
            && !st.references.augmented()
        {
            true => {
                let slots = st.references.slots(&mut st.rng);
                let refs = batcher.batch(&slots, false, &norm, &mut st.rng)?;
                Some(self.model.reference_maps(refs.to_tensor(&device)))
            }
            false => None,
        };
        let augment = config.method.spec().composition.augment;
        for step in 0..config.steps_per_epoch {
            let refs = if self.model.needs_reference() && fixed_maps.is_none() {
                let slots = st.references.slots(&mut st.rng);
                Some(
                    batcher
                        .batch(&slots, st.references.augmented(), &norm, &mut st.rng)?
                        .to_tensor(&device),
                )
            } else {
                None
            };
            let slots = st.sampler.next_batch(&mut st.rng);
            let batch = batcher.batch(&slots, augment, &norm, &mut st.rng)?;
            // drop-connect and the bag head's dropout draw from the device's generator, which
            // every run in the process shares: seeded per step from the run's (so a resumed
            // run draws the same masks) and held, as weight initialisation holds it, for the
            // whole step (the backend may run the draws only when a value is read)
            let draws = config.drop_connect > 0.0 || config.heads.contains(Head::Bag);
            let guard = draws.then(|| {
                let guard = weight_init_lock();
                device.seed(st.rng.next_u64());
                guard
            });
            let scores = match &fixed_maps {
                Some(maps) => self.model.score(batch.to_tensor(&device), maps),
                None => self.model.forward(refs, batch.to_tensor(&device)),
            };
            let (loss, parts) = dra_loss(config.criterion, &scores, &batch.labels, &mut st.rng);
            let heads: Vec<(Head, f32)> = parts
                .iter()
                .map(|(h, l)| (*h, l.clone().into_scalar::<f32>()))
                .collect();
            if let Some((head, _)) = heads.iter().find(|(_, v)| !v.is_finite()) {
                let kept = match epoch {
                    0 => "no epoch had finished".to_string(),
                    e => format!("the checkpoint after epoch {e} is kept"),
                };
                return Err(Error::Training(format!(
                    "the {head} head's loss is not finite at epoch {epoch}, step {step} (try a lower --lr); {kept}"
                )));
            }
            let loss_value = loss.clone().into_scalar::<f32>();
            let mut grads = GradientsParams::from_grads(loss.backward(), &self.model);
            clip_global_norm(&self.model, &mut grads, config.clip_norm);
            self.model = self.optim.step(lr, self.model.clone(), grads);
            total += loss_value;
            for (h, v) in &heads {
                match sums.iter_mut().find(|(k, _)| k == h) {
                    Some((_, s)) => *s += v,
                    None => sums.push((*h, *v)),
                }
            }
            drop(guard);
            on_step(&StepReport {
                epoch,
                step,
                lr,
                loss: loss_value,
                heads,
            });
        }
        let n = config.steps_per_epoch as f32;
        st.logs.push(EpochLog {
            epoch,
            lr,
            loss: total / n,
            heads: sums.into_iter().map(|(h, s)| (h, s / n)).collect(),
        });
        st.epoch += 1;
        Ok(())
    }

    /// Writes the checkpoint folder `dir` atomically: into `dir.tmp`, then renamed over `dir`.
    pub fn save_checkpoint(&self, dir: &Path) -> Result<()> {
        let tmp = dir.with_extension("tmp");
        let old = dir.with_extension("old");
        let _ = std::fs::remove_dir_all(&tmp);
        std::fs::create_dir_all(&tmp).map_err(|e| Error::io(&tmp, e))?;
        let mut store = BurnpackStore::from_file(tmp.join(MODEL))
            .auto_extension(false)
            .overwrite(true);
        // `valid()` syncs the BatchNorm running statistics, which a snapshot of the autodiff
        // module would read stale
        self.model
            .valid()
            .save_into(&mut store)
            .map_err(|e| Error::run_file(tmp.join(MODEL), e.to_string()))?;
        self.optim
            .save(tmp.join(OPTIMIZER))
            .map_err(|e| Error::run_file(tmp.join(OPTIMIZER), e.to_string()))?;
        write_json(&tmp.join(STATE), &self.state)?;
        if dir.exists() {
            let _ = std::fs::remove_dir_all(&old);
            std::fs::rename(dir, &old).map_err(|e| Error::io(dir, e))?;
        }
        std::fs::rename(&tmp, dir).map_err(|e| Error::io(dir, e))?;
        let _ = std::fs::remove_dir_all(&old);
        Ok(())
    }

    /// Whether `dir` (or the previous checkpoint beside it) holds a checkpoint to resume.
    pub fn has_checkpoint(dir: &Path) -> bool {
        dir.join(STATE).is_file() || dir.with_extension("old").join(STATE).is_file()
    }

    /// Continues from the checkpoint folder `dir` (or the `dir.old` a crash between the two
    /// renames of [`Trainer::save_checkpoint`] may leave).
    pub fn resume(config: &TrainConfig, dir: &Path) -> Result<Self> {
        let dir = if dir.join(STATE).is_file() {
            dir.to_path_buf()
        } else {
            dir.with_extension("old")
        };
        let state_path = dir.join(STATE);
        let text = std::fs::read_to_string(&state_path).map_err(|e| {
            Error::run_file(&state_path, format!("no checkpoint to resume from ({e})"))
        })?;
        let state: TrainState = serde_json::from_str(&text)
            .map_err(|e| Error::run_file(&state_path, format!("invalid checkpoint: {e}")))?;
        let device = config.device.device()?.autodiff();
        let backbone =
            Backbone::new(config.backbone, &device).configure(&config.backbone_training());
        let mut model = Dra::new(&training_model(config), backbone, &device);
        let mut store = BurnpackStore::from_file(dir.join(MODEL)).auto_extension(false);
        let result = model
            .load_from(&mut store)
            .map_err(|e| Error::run_file(dir.join(MODEL), format!("cannot read: {e}")))?;
        if !result.missing.is_empty() || !result.errors.is_empty() {
            return Err(Error::run_file(
                dir.join(MODEL),
                "does not match the run's config.json",
            ));
        }
        let optim = optimizer(config)
            .load(dir.join(OPTIMIZER))
            .map_err(|e| Error::run_file(dir.join(OPTIMIZER), format!("cannot read: {e}")))?;
        Ok(Trainer {
            model,
            optim,
            device,
            state,
        })
    }
}
