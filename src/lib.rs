//! DRA: open-set supervised anomaly detection (Ding, Pang, Shen, CVPR 2022).
//!
//! The modules follow the data flow of the method, each importing only those before it:
//! [`data`] (converters → layout → protocol split → sampler and reference set →
//! augmentation → batch) → [`model`] (backbone → seen, pseudo, residual and normal heads →
//! DRA → loss) → [`fusion`] (the parts' scores and maps fused into
//! one, fitted on the normal training images) → [`methods`] (DRA and its paper's comparison systems as settings and batch
//! compositions) → [`config`] (the settings of a run) → [`run`] (plan → training →
//! evaluation → metrics and report) → [`baselines`] (kNN on the same split) → [`grid`]
//! (experiment grids). Below them: [`ops`] (CPU kernels), [`metrics`] (AUC-ROC, AUC-PR),
//! [`rng`], [`device`] and [`error`].

pub mod baselines;
mod choice;
pub mod config;
pub mod data;
pub mod device;
pub mod error;
pub mod fusion;
pub mod grid;
pub mod methods;
pub mod metrics;
pub mod model;
pub mod npy;
pub mod ops;
pub mod rng;
pub mod run;
pub mod types;

pub use error::{Error, Result};
