//! Training: Adam with coupled L2 weight decay, the reference StepLR schedule, global
//! gradient-norm clipping, and the sampler / augmentation / reference set of the data layer.

use burn::module::{Module, ModuleVisitor, Param, ParamId};
use burn::optim::decay::WeightDecayConfig;
use burn::optim::{AdamConfig, GradientsParams};
use burn::prelude::*;
use rand::RngCore;

use crate::backbone::{Backbone, weights};
use crate::batch::Batcher;
use crate::config::TrainConfig;
use crate::error::{Error, Result};
use crate::loss::dra_loss;
use crate::model::{Dra, Head};
use crate::protocol::Split;
use crate::rng::DraRng;
use crate::sampler::{BatchSampler, ReferenceSet};

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
#[derive(Debug, Clone, serde::Serialize)]
pub struct EpochLog {
    pub epoch: usize,
    pub lr: f64,
    pub loss: f32,
    pub heads: Vec<(Head, f32)>,
}

/// The backbone of `config` with its weights (given or bundled), on `device`.
pub fn load_backbone(config: &TrainConfig, device: &Device) -> Result<Backbone> {
    config.validate()?;
    let path = config
        .weights
        .clone()
        .or(config.backbone.bundled_weights())
        .expect("validated");
    let mut backbone = Backbone::new(config.backbone, device);
    weights::load(&mut backbone, &path)?;
    Ok(backbone)
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

/// Trains a fresh DRA model on `split`, calling `on_step` after every step.
/// Returns the trained model (on the autodiff device) and the per-epoch losses.
pub fn fit(
    config: &TrainConfig,
    split: &Split,
    references: &mut ReferenceSet,
    batcher: &mut Batcher,
    rng: &mut DraRng,
    mut on_step: impl FnMut(&StepReport),
) -> Result<(Dra, Vec<EpochLog>)> {
    let device = config.device.device()?.autodiff();
    device.seed(rng.next_u64());
    let backbone = load_backbone(config, &device)?;
    let mut model = Dra::new(&config.model(), backbone, &device);
    let norm = config.backbone.normalization();
    let mut sampler = BatchSampler::new(
        split.train_normal.len(),
        split.train_anomaly.len(),
        config.batch_size,
    )?;
    let mut optim = AdamConfig::new()
        .with_epsilon(1e-8)
        .with_weight_decay(Some(WeightDecayConfig::new(config.weight_decay as f32)))
        .init();
    let mut logs = Vec::new();
    for epoch in 0..config.epochs {
        let lr = config.lr_at(epoch);
        let mut sums: Vec<(Head, f32)> = Vec::new();
        let mut total = 0.0;
        for step in 0..config.steps_per_epoch {
            let refs = if model.needs_reference() {
                let slots = references.draw(rng);
                Some(
                    batcher
                        .batch(&slots, references.augmented(), &norm, rng)?
                        .to_tensor(&device),
                )
            } else {
                None
            };
            let slots = sampler.next_batch(rng);
            let batch = batcher.batch(&slots, true, &norm, rng)?;
            let scores = model.forward(refs, batch.to_tensor(&device));
            let (loss, parts) = dra_loss(config.criterion, &scores, &batch.labels, rng);
            let heads: Vec<(Head, f32)> = parts
                .iter()
                .map(|(h, l)| (*h, l.clone().into_scalar::<f32>()))
                .collect();
            if let Some((head, _)) = heads.iter().find(|(_, v)| !v.is_finite()) {
                return Err(Error::Setting(format!(
                    "the {head} head's loss is not finite at epoch {epoch}, step {step}: lower --lr"
                )));
            }
            let loss_value: f32 = loss.clone().into_scalar::<f32>();
            let mut grads = GradientsParams::from_grads(loss.backward(), &model);
            clip_global_norm(&model, &mut grads, config.clip_norm);
            model = optim.step(lr, model, grads);
            total += loss_value;
            for (h, v) in &heads {
                match sums.iter_mut().find(|(k, _)| k == h) {
                    Some((_, s)) => *s += v,
                    None => sums.push((*h, *v)),
                }
            }
            on_step(&StepReport {
                epoch,
                step,
                lr,
                loss: loss_value,
                heads,
            });
        }
        let n = config.steps_per_epoch as f32;
        logs.push(EpochLog {
            epoch,
            lr,
            loss: total / n,
            heads: sums.into_iter().map(|(h, s)| (h, s / n)).collect(),
        });
    }
    Ok((model, logs))
}
