//! The DRA model: a backbone, the image pyramid, the reference set and the four heads.
//!
//! Per scale s (the input taken at every 2^s-th pixel, PyTorch's nearest downsampling), the
//! backbone maps [reference images; query images] to features; the residual head compares
//! the queries' features with the reference features. Each head scores every query image;
//! head scores are averaged over scales. How the heads' scores make the anomaly score is
//! the fusion module's (one level up the data flow).

use burn::prelude::*;
use burn::tensor::s;
use serde::{Deserialize, Serialize};

use crate::model::backbone::{Backbone, BackboneKind};
use crate::model::heads::{
    BagHead, CENTRE_DIM, CentreHead, ClassHead, DecoderHead, Distillation, NormalHead, PlainHead,
    ResidualHead, ResidualMode, StudentHead, upsample,
};
use crate::model::memory::PatchMemory;
use crate::rng::materialise;
use crate::types::Head;

use super::head_set::HeadSet;
use super::scores::{Evaluation, HeadOutput, HeadScores, pooled};

/// Architecture settings of a DRA model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelConfig {
    pub backbone: BackboneKind,
    pub heads: HeadSet,
    /// Pyramid levels: scale s sees the image at 1/2^s of its side.
    pub n_scales: usize,
    /// Fraction of feature-map cells averaged by top-K MIL.
    pub topk: f64,
    /// What the residual head compares each query cell with.
    pub residual: ResidualMode,
    /// Train the heads only: the backbone keeps its pretrained weights and statistics.
    pub freeze_backbone: bool,
    /// One backbone copy per scale holds BatchNorm statistics re-estimated at that scale
    /// (`--bn-stats recalibrate`, filled by [`Dra::recalibrate`] after training).
    pub scale_statistics: bool,
}

impl Default for ModelConfig {
    /// EfficientNet-Lite0, all four heads, 2 scales, top-K 10 %, the paper's residual, the
    /// backbone trained, no per-scale statistics.
    fn default() -> Self {
        ModelConfig {
            backbone: BackboneKind::EfficientnetLite0,
            heads: HeadSet::all(),
            n_scales: 2,
            topk: 0.1,
            residual: ResidualMode::Mean,
            freeze_backbone: false,
            scale_statistics: false,
        }
    }
}

/// DRA: backbone and heads.
#[derive(Module, Debug)]
pub struct Dra {
    pub backbone: Backbone,
    seen: Option<PlainHead>,
    pseudo: Option<PlainHead>,
    residual: Option<ResidualHead>,
    normal: Option<NormalHead>,
    /// Deep SAD's head (`--method deepsad`).
    centre: Option<CentreHead>,
    /// MINNS's head (`--method minns`).
    bag: Option<BagHead>,
    /// SAOE's head (`--method saoe`).
    classes: Option<ClassHead>,
    /// MLEP's head (`--method mlep`).
    decoder: Option<DecoderHead>,
    /// KDAD's head (`--method kdad`), the backbone its teacher.
    student: Option<StudentHead>,
    /// Backbones with per-scale BatchNorm statistics (empty unless recalibrated).
    scale_backbones: Vec<Backbone>,
    n_scales: usize,
    topk: f64,
    /// What the residual head compares each query cell with.
    #[module(skip)]
    residual_mode: ResidualMode,
    frozen_backbone: bool,
}

/// Nearest-neighbour pyramid level: every 2^s-th row and column, starting at 0.
pub fn pyramid_level(x: Tensor<4>, s: usize) -> Tensor<4> {
    if s == 0 {
        return x;
    }
    let step = 1isize << s;
    x.slice(s![.., .., ..;step, ..;step])
}

impl Dra {
    /// A model with freshly initialised heads around `backbone`.
    pub fn new(config: &ModelConfig, backbone: Backbone, device: &Device) -> Self {
        let _guard = crate::rng::weight_init_lock();
        Self::new_locked(config, backbone, device)
    }

    /// [`Dra::new`] for a caller that holds [`crate::rng::weight_init_lock`].
    pub(crate) fn new_locked(config: &ModelConfig, backbone: Backbone, device: &Device) -> Self {
        let c = config.backbone.channels();
        let on = |h: Head| config.heads.contains(h);
        let scale_backbones = match config.scale_statistics {
            true => (0..config.n_scales)
                .map(|_| Backbone::new_locked(config.backbone, device))
                .collect(),
            false => Vec::new(),
        };
        let backbone = match config.freeze_backbone {
            true => backbone.freeze(),
            false => backbone,
        };
        let model = Dra {
            backbone,
            scale_backbones,
            seen: on(Head::Seen).then(|| PlainHead::new(c, device)),
            pseudo: on(Head::Pseudo).then(|| PlainHead::new(c, device)),
            residual: on(Head::Residual).then(|| ResidualHead::new(c, device)),
            normal: on(Head::Normal).then(|| NormalHead::new(c, device)),
            centre: on(Head::Centre).then(|| CentreHead::new(c, device)),
            bag: on(Head::Bag).then(|| BagHead::new(c, device)),
            classes: on(Head::Classes).then(|| ClassHead::new(c, device)),
            decoder: on(Head::Reconstruction).then(|| DecoderHead::new(c, device)),
            student: on(Head::Student).then(|| {
                let (channels, signed) = config.backbone.taps();
                StudentHead::new(channels, signed, device)
            }),
            n_scales: config.n_scales,
            topk: config.topk,
            residual_mode: config.residual,
            frozen_backbone: config.freeze_backbone,
        };
        // the heads' weights, drawn in the order of their first use in `forward`
        materialise(&model.seen);
        materialise(&model.pseudo);
        materialise(&model.residual);
        materialise(&model.normal);
        materialise(&model.centre);
        materialise(&model.bag);
        materialise(&model.classes);
        materialise(&model.decoder);
        materialise(&model.student);
        model
    }

    /// The backbone with scale `s`'s recalibrated statistics, if the model has them.
    pub fn scale_backbone(&self, s: usize) -> Option<&Backbone> {
        self.scale_backbones.get(s)
    }

    /// True when the residual head, and so a reference set, is used.
    pub fn needs_reference(&self) -> bool {
        self.residual.is_some()
    }

    /// The feature map of `x` at scale `s`: a frozen backbone runs without autodiff, and a
    /// recalibrated model uses that scale's statistics.
    fn features(&self, x: Tensor<4>, s: usize) -> Tensor<4> {
        if self.frozen_backbone && x.is_autodiff() {
            return self.backbone.valid().features(x.inner()).autodiff();
        }
        match self.scale_backbones.get(s) {
            Some(b) if !x.is_autodiff() => b.features(x),
            _ => self.backbone.features(x),
        }
    }

    /// The feature map of `x` at scale `s` and, with the student head, the teacher's taps
    /// from the same pass. The student's teacher is the frozen backbone (the settings allow
    /// no other), run without autodiff; a frozen model keeps no per-scale statistics.
    fn pass(&self, x: Tensor<4>, s: usize) -> (Tensor<4>, Option<Vec<Tensor<4>>>) {
        if self.student.is_none() {
            return (self.features(x, s), None);
        }
        let (taps, features) = match x.is_autodiff() {
            true => {
                let (taps, features) = self.backbone.valid().taps_and_features(x.inner());
                let taps = taps.into_iter().map(|t| t.autodiff()).collect();
                (taps, features.autodiff())
            }
            false => self.backbone.taps_and_features(x),
        };
        (features, Some(taps))
    }

    /// Each head's output of `features` at one scale, given the reference features, the
    /// teacher's taps ([`Dra::pass`]) and the images (`[N, 3, H, W]` at that scale, for the
    /// decoder to reconstruct and the student to read) when needed.
    fn head_outputs(
        &self,
        features: Tensor<4>,
        reference: Option<Tensor<4>>,
        teacher: Option<Vec<Tensor<4>>>,
        images: Tensor<4>,
    ) -> Vec<(Head, HeadOutput)> {
        let mut out = Vec::new();
        if let Some(h) = &self.seen {
            out.push((Head::Seen, HeadOutput::Cells(h.cells(features.clone()))));
        }
        if let Some(h) = &self.pseudo {
            out.push((Head::Pseudo, HeadOutput::Cells(h.cells(features.clone()))));
        }
        if let (Some(h), Some(r)) = (&self.residual, reference) {
            let cells = h.cells(features.clone(), r, self.residual_mode);
            out.push((Head::Residual, HeadOutput::Cells(cells)));
        }
        if let Some(h) = &self.normal {
            out.push((Head::Normal, HeadOutput::Image(h.forward(features.clone()))));
        }
        if let Some(h) = &self.centre {
            out.push((Head::Centre, HeadOutput::Image(h.forward(features.clone()))));
        }
        if let Some(h) = &self.bag {
            out.push((Head::Bag, HeadOutput::Image(h.forward(features.clone()))));
        }
        if let Some(h) = &self.classes {
            out.push((
                Head::Classes,
                HeadOutput::Classes(h.cells(features.clone())),
            ));
        }
        if let Some(h) = &self.decoder {
            let reconstructed = h.reconstruct(features.clone(), images.clone());
            out.push((
                Head::Reconstruction,
                HeadOutput::Reconstructed(Box::new((reconstructed, features))),
            ));
        }
        if let Some(h) = &self.student {
            let teacher =
                teacher.expect("the teacher's taps come with the student head's features");
            let taps = teacher.into_iter().zip(h.taps(images)).collect();
            let distilled = Box::new(Distillation::new(taps));
            out.push((Head::Student, HeadOutput::Distilled(distilled)));
        }
        out
    }

    /// Head scores of `features` (of `images`) at one scale: cell scores pooled by top-K MIL.
    fn heads(
        &self,
        (features, teacher): (Tensor<4>, Option<Vec<Tensor<4>>>),
        reference: Option<Tensor<4>>,
        images: Tensor<4>,
    ) -> HeadScores {
        pooled(
            self.head_outputs(features, reference, teacher, images),
            self.topk,
        )
    }

    /// Averages per-scale scores over the pyramid.
    fn over_scales(&self, per_scale: impl Fn(usize) -> HeadScores) -> HeadScores {
        let total = (0..self.n_scales)
            .map(per_scale)
            .reduce(HeadScores::add)
            .expect("n_scales ≥ 1");
        total.scale(1.0 / self.n_scales as f32)
    }

    /// Training forward: references (if the residual head is on) and queries go through the
    /// backbone together, so BatchNorm sees them in one batch, as in the reference code.
    pub fn forward(&self, references: Option<Tensor<4>>, queries: Tensor<4>) -> HeadScores {
        let n_ref = references.as_ref().map_or(0, |r| r.dims()[0]);
        let input = match (&references, self.needs_reference()) {
            (Some(r), true) => Tensor::cat(vec![r.clone(), queries], 0),
            _ => queries,
        };
        let n = input.dims()[0];
        self.over_scales(|s| {
            let level = pyramid_level(input.clone(), s);
            let (features, teacher) = self.pass(level.clone(), s);
            if self.needs_reference() && n_ref > 0 {
                let reference = features.clone().slice(s![0..n_ref]);
                let queries = level.slice(s![n_ref..n]);
                let teacher =
                    teacher.map(|t| t.into_iter().map(|t| t.slice(s![n_ref..n])).collect());
                self.heads(
                    (features.slice(s![n_ref..n]), teacher),
                    Some(reference),
                    queries,
                )
            } else {
                self.heads((features, teacher), None, level)
            }
        })
    }

    /// The reference features at each scale (evaluation: computed once, reused per batch).
    pub fn reference_maps(&self, references: Tensor<4>) -> Vec<Tensor<4>> {
        (0..self.n_scales)
            .map(|s| self.features(pyramid_level(references.clone(), s), s))
            .collect()
    }

    /// Evaluation forward against precomputed reference maps (see [`Dra::reference_maps`]).
    pub fn score(&self, queries: Tensor<4>, reference_maps: &[Tensor<4>]) -> HeadScores {
        self.over_scales(|s| {
            let level = pyramid_level(queries.clone(), s);
            let pass = self.pass(level.clone(), s);
            self.heads(pass, reference_maps.get(s).cloned(), level)
        })
    }

    /// The evaluation forward: the heads' scores; when `maps` is asked, every cell-scoring
    /// head's (all but the normal head's) cell scores in the input's pixel frame (bilinear,
    /// [`upsample`]) averaged over scales, each `[N, 1, H, W]`; and the memory's scores and
    /// maps when one is given. The
    /// memory reads the stride-16 map and the map the heads read from the same backbone pass
    /// at full size where the model's features at that scale are the backbone's own (no
    /// per-scale statistics, no student head with its teacher's pass), from a pass of its own
    /// otherwise.
    pub fn evaluate(
        &self,
        queries: Tensor<4>,
        reference_maps: &[Tensor<4>],
        memory: Option<&PatchMemory>,
        maps: bool,
    ) -> Evaluation {
        let [_, _, height, width] = queries.dims();
        let size = [height, width];
        let mut scores: Option<HeadScores> = None;
        let mut head_maps: Vec<(Head, Tensor<4>)> = Vec::new();
        let mut remembered = None;
        for s in 0..self.n_scales {
            let level = pyramid_level(queries.clone(), s);
            let shared = memory.filter(|_| s == 0 && self.scale_backbones.is_empty());
            let (features, teacher) = match shared {
                Some(m) if self.student.is_none() => {
                    let (s16, s32) = self.backbone.stride16_and_features(level.clone());
                    remembered = Some(m.scores_and_maps_of(s16, s32.clone(), size));
                    (s32, None)
                }
                _ => self.pass(level.clone(), s),
            };
            let reference = reference_maps.get(s).cloned();
            let outputs = self.head_outputs(features, reference, teacher, level);
            for (head, output) in outputs.iter().filter(|_| maps) {
                if let Some(cells) = output.cell_scores() {
                    let map = upsample(cells, size);
                    match head_maps.iter_mut().find(|(h, _)| h == head) {
                        Some((_, sum)) => *sum = sum.clone() + map,
                        None => head_maps.push((*head, map)),
                    }
                }
            }
            let level = pooled(outputs, self.topk);
            scores = Some(match scores {
                Some(total) => total.add(level),
                None => level,
            });
        }
        if let (Some(m), None) = (memory, &remembered) {
            remembered = Some(m.scores_and_maps(&self.backbone, queries));
        }
        let factor = 1.0 / self.n_scales as f32;
        Evaluation {
            scores: scores.expect("n_scales ≥ 1").scale(factor),
            maps: head_maps
                .into_iter()
                .map(|(h, m)| (h, m.mul_scalar(factor)))
                .collect(),
            memory: remembered,
        }
    }

    /// The model with the centre head's centre (if it has one) at the mean φ of `images`
    /// (plain batches of unaugmented normal images) in inference mode, at full size. Deep
    /// SAD fixes it so before training.
    pub fn centred(mut self, images: &[Tensor<4>]) -> Self {
        let Some(head) = self.centre.take() else {
            return self;
        };
        let (valid, backbone) = (head.valid(), self.backbone.valid());
        let mut sum = vec![0f64; CENTRE_DIM];
        let mut n = 0usize;
        for x in images {
            let x = match x.is_autodiff() {
                true => x.clone().inner(),
                false => x.clone(),
            };
            let features = backbone.features(x);
            let phi: Vec<f32> = valid.embed(features).into_data().try_to_vec().expect("f32");
            for row in phi.chunks(CENTRE_DIM) {
                for (s, v) in sum.iter_mut().zip(row) {
                    *s += *v as f64;
                }
                n += 1;
            }
        }
        let mean: Vec<f32> = sum.iter().map(|s| (s / n.max(1) as f64) as f32).collect();
        self.centre = Some(head.centred(&mean));
        self
    }

    /// Re-estimates the backbone's BatchNorm statistics at every scale on `images` (plain
    /// batches of unaugmented normal images; `self` on an autodiff device) and keeps one set
    /// per scale. Each layer's mean and biased variance are the averages over the batches
    /// of its batch statistics (exact for a single batch).
    pub fn recalibrate(mut self, images: &[Tensor<4>]) -> Self {
        self.scale_backbones = (0..self.n_scales)
            .map(|s| {
                let batches: Vec<Tensor<4>> =
                    images.iter().map(|x| pyramid_level(x.clone(), s)).collect();
                self.backbone.recalibrated(&batches)
            })
            .collect();
        self
    }
}
