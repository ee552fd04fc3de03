//! DRA: open-set supervised anomaly detection (Ding, Pang, Shen, CVPR 2022).
//!
//! The modules follow the data flow of the method:
//! [`convert`] (public data sets → MVTec layout) → [`layout`] (the folders of one class) →
//! [`protocol`] (seen anomalies and test set) → [`sampler`] (batch slots, reference set) →
//! [`transform`] and [`cutmix`] (augmentation, pseudo anomalies) → [`batch`] (normalised
//! tensors) → … → [`metrics`] (AUC-ROC, AUC-PR) → [`preview`] (pictures for people).

pub mod backbone;
pub mod batch;
pub mod classify;
pub mod convert;
pub mod cutmix;
pub mod device;
pub mod error;
pub mod layout;
pub mod metrics;
pub mod preview;
pub mod protocol;
pub mod rng;
pub mod sampler;
pub mod transform;

pub use error::{Error, Result};
