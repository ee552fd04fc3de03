//! The plan of a training run: its settings validated once and everything that follows from
//! them and the data (the split, the reference set, the derived sizes, every image decoded,
//! the pretrained backbone), built before anything is trained or written.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::config::TrainConfig;
use crate::data::batch::ImageStore;
use crate::data::layout::{DatasetLayout, Masks};
use crate::data::outliers::outlier_images;
use crate::data::protocol::Split;
use crate::data::reference::ReferenceSet;
use crate::data::sampler::BatchSampler;
use crate::error::{Error, Result};
use crate::model::backbone::{Backbone, BackboneKind, weights};
use crate::model::heads::top_k_count;
use crate::rng::{DraRng, seeded};
use crate::types::Sample;

/// Settings derived from the configuration and the data, recorded for the reader.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Derived {
    /// Input side at each pyramid scale.
    pub scale_sizes: Vec<usize>,
    /// Feature-map side at each scale.
    pub feature_sizes: Vec<usize>,
    /// K of top-K MIL at each scale (a count of cells).
    #[serde(rename = "top_k")]
    pub top_k_count: Vec<usize>,
    pub normal_slots: usize,
    pub seen_slots: usize,
    /// Probability that a normal slot becomes a CutMix pseudo anomaly.
    #[serde(default)]
    pub pseudo_rate: f64,
    /// The method's reading of each ambiguity of its specification (tag, choice).
    #[serde(default)]
    pub method_choices: Vec<(String, String)>,
    pub lr_per_epoch: Vec<f64>,
    pub n_train_normal: usize,
    pub n_train_anomaly: usize,
    pub n_test_normal: usize,
    pub n_test_anomaly: usize,
    pub seen_anomalies: Vec<PathBuf>,
    /// Fixed reference set: indices into the sorted normal training images, and their paths.
    pub reference: Vec<usize>,
    pub reference_paths: Vec<PathBuf>,
    /// Anomalies among the normal training images, unlabelled (`cont_rate`).
    #[serde(default)]
    pub contamination: Vec<PathBuf>,
    /// Outlier images (`outlier_root`): the pseudo anomalies (0: CutMix), or SAOE's exposure.
    #[serde(default)]
    pub n_outliers: usize,
    /// Outlier-exposure slots after each batch's own (SAOE with outlier images).
    #[serde(default)]
    pub exposure_slots: usize,
    /// Images left out because they cannot be decoded (`skip_bad_images`).
    pub skipped_images: Vec<PathBuf>,
    /// Plain folders (`normal`): the normal images held out for testing, the rest trained on.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub test_normals: Vec<PathBuf>,
}

/// What [`Derived::test_normals`] records of `layout`: its normal test images where they
/// were split from plain folders (a data root's are in its own `test/good`).
pub fn test_normals(config: &TrainConfig, layout: &DatasetLayout) -> Vec<PathBuf> {
    match config.normal {
        Some(_) => layout.test_good.clone(),
        None => Vec::new(),
    }
}

/// A training run's validated settings and everything built from them and the data.
pub struct Plan {
    /// The settings, validated.
    pub config: TrainConfig,
    pub split: Split,
    pub references: ReferenceSet,
    /// The generator after drawing the split and the reference set.
    pub rng: DraRng,
    pub derived: Derived,
    /// Every image of the split, decoded and resized once (outlier images at first use).
    pub images: ImageStore,
    /// Where the test images' masks are.
    pub masks: Masks,
    /// The outlier images (`outlier_root`) that stand in for the pseudo anomalies, or that
    /// SAOE exposes.
    pub outliers: Vec<PathBuf>,
    /// The pretrained backbone on the run's (plain) device.
    pub backbone: Backbone,
}

impl Plan {
    /// Validates `config` against the data and the machine (memory), draws the split and
    /// the reference set, decodes every image and loads the backbone's weights.
    pub fn new(config: &TrainConfig) -> Result<Self> {
        config.validate()?;
        check_memory(config)?;
        let layout = config.layout()?;
        let mut rng = seeded(config.seed);
        let mut split = Split::new(&layout, &config.protocol(), config.n_anomaly, &mut rng)?;
        let mut images = ImageStore::new(config.img_size as u32);
        let skipped_images = decode_all(&mut split, &mut images, config.skip_bad_images)?;
        let references = ReferenceSet::new(
            config.ref_mode,
            config.n_ref,
            split.train_normal.len(),
            &mut rng,
        )?;
        let outliers = match &config.outlier_root {
            Some(root) => outlier_images(root, &config.class)?,
            None => Vec::new(),
        };
        let derived = derive(
            config,
            &split,
            &references,
            outliers.len(),
            skipped_images,
            test_normals(config, &layout),
        )?;
        let backbone = weights::pretrained(
            config.backbone,
            config.weights.as_deref(),
            &config.device.device()?,
        )?;
        Ok(Plan {
            config: config.clone(),
            split,
            outliers,
            references,
            rng,
            derived,
            images,
            masks: layout.masks,
            backbone,
        })
    }
}

/// What follows from the settings and the split.
fn derive(
    config: &TrainConfig,
    split: &Split,
    references: &ReferenceSet,
    n_outliers: usize,
    skipped_images: Vec<PathBuf>,
    test_normals: Vec<PathBuf>,
) -> Result<Derived> {
    let spec = config.method.spec();
    let sampler = BatchSampler::new(
        split.train_normal.len(),
        split.train_anomaly.len(),
        config.batch_size,
        spec.composition,
    )?
    .with_outliers(n_outliers);
    let mut method_choices = spec.choices;
    if spec.composition.exposure && n_outliers == 0 {
        method_choices.push((
            "A6".into(),
            "no --outlier-root: trained without the outlier-exposure term".into(),
        ));
    }
    let scale_sizes = config.scale_sizes();
    let feature_sizes = scale_sizes
        .iter()
        .map(|&s| config.backbone.feature_size(s))
        .collect::<Result<Vec<_>>>()?;
    Ok(Derived {
        top_k_count: feature_sizes
            .iter()
            .map(|&f| top_k_count(f, f, config.topk))
            .collect(),
        scale_sizes,
        feature_sizes,
        normal_slots: sampler.normal_slots(),
        seen_slots: config.batch_size - sampler.normal_slots(),
        pseudo_rate: spec.composition.pseudo_rate,
        method_choices,
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
        contamination: split.contamination.clone(),
        n_outliers,
        exposure_slots: sampler.exposure_slots(),
        skipped_images,
        test_normals,
    })
}

/// Decodes every image of `split` into `images`. An unreadable one is an error naming it,
/// or with `skip` is removed from the split; returns the removed paths.
fn decode_all(split: &mut Split, images: &mut ImageStore, skip: bool) -> Result<Vec<PathBuf>> {
    let mut bad = Vec::new();
    let mut keep = |samples: &mut Vec<Sample>| -> Result<()> {
        let mut kept = Vec::with_capacity(samples.len());
        for s in samples.drain(..) {
            match images.get(&s.path) {
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

/// Rough peak memory of a training step in bytes: a base plus activation bytes per input
/// pixel (measured with `benches/backbones.rs`) over the batch, references and scales.
pub fn training_memory_estimate(config: &TrainConfig) -> u64 {
    let per_pixel: u64 = match config.backbone {
        BackboneKind::Resnet18 => 700,
        BackboneKind::Vgg16 => 2200,
        _ => 1200,
    };
    let pixels: u64 = config
        .scale_sizes()
        .iter()
        .map(|&s| (s as u64).pow(2))
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
fn check_memory(config: &TrainConfig) -> Result<()> {
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
