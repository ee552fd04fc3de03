//! ImageNet classification with a backbone, so that a user can check that weights loaded
//! right: the standard 256 → 224 centre crop, the backbone's normalisation, top-5 classes.

use std::path::{Path, PathBuf};

use burn::prelude::*;
use burn::tensor::activation::softmax;
use serde::Serialize;

use crate::data::batch::Batch;
use crate::data::transform::{load_rgb, resize_shorter_center_crop};
use crate::error::Result;
use crate::model::backbone::Backbone;
use crate::types::Label;

/// The 1000 ImageNet class names, one per line, in class-index order.
const CLASS_NAMES: &str = include_str!("../../../assets/imagenet_classes.txt");

/// Name of ImageNet class `index`.
pub fn class_name(index: usize) -> &'static str {
    CLASS_NAMES.lines().nth(index).unwrap_or("?")
}

/// One of the top classes of an image.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Class {
    pub index: usize,
    pub name: &'static str,
    pub probability: f32,
}

/// The top-5 classes of one image.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Prediction {
    pub image: PathBuf,
    pub top5: Vec<Class>,
}

/// The network input for `path`: centre crop at 224² with the backbone's normalisation.
pub fn preprocess(backbone: &Backbone, path: &Path) -> Result<Batch> {
    let img = resize_shorter_center_crop(&load_rgb(path)?, 256, 224);
    Ok(Batch::new(
        &[img],
        vec![Label::Normal],
        &backbone.kind().normalization(),
    ))
}

/// Top-5 ImageNet classes of each image.
pub fn classify(
    backbone: &Backbone,
    paths: &[PathBuf],
    device: &Device,
) -> Result<Vec<Prediction>> {
    paths
        .iter()
        .map(|path| {
            let logits = backbone.logits(preprocess(backbone, path)?.to_tensor(device))?;
            let probs: Vec<f32> = softmax(logits, 1)
                .into_data()
                .try_to_vec()
                .expect("f32 logits");
            let mut order: Vec<usize> = (0..probs.len()).collect();
            order.sort_by(|&a, &b| probs[b].total_cmp(&probs[a]));
            let top5 = order[..5]
                .iter()
                .map(|&i| Class {
                    index: i,
                    name: class_name(i),
                    probability: probs[i],
                })
                .collect();
            Ok(Prediction {
                image: path.clone(),
                top5,
            })
        })
        .collect()
}
