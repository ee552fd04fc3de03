//! DRA: open-set supervised anomaly detection (Ding, Pang, Shen, CVPR 2022).
//!
//! The modules follow the data flow of the method:
//! [`convert`] (public data sets → MVTec layout) → [`layout`] (the folders of one class) →
//! [`protocol`] (seen anomalies and test set) → [`sampler`] (batch slots, reference set) →
//! [`transform`] and [`cutmix`] (augmentation, pseudo anomalies) → [`batch`] (normalised
//! tensors) → [`backbone`] → [`heads`] and [`model`] (DRA) → [`loss`] and [`train`] →
//! [`evaluate`] (scores) → [`metrics`] (AUC-ROC, AUC-PR) → [`report`] and [`plot`] (the run
//! directory); [`run`] ties a whole run together, [`config`] holds its settings.

pub mod backbone;
pub mod baselines;
pub mod batch;
pub mod bench;
mod choice;
pub mod classify;
pub mod config;
pub mod convert;
pub mod cutmix;
pub mod device;
pub mod error;
pub mod evaluate;
pub mod heads;
pub mod knn;
pub mod layout;
pub mod loss;
pub mod metrics;
pub mod model;
pub mod patch_knn;
pub mod plot;
pub mod preview;
pub mod protocol;
pub mod report;
pub mod rng;
pub mod run;
pub mod sampler;
pub mod train;
pub mod transform;

pub use error::{Error, Result};
