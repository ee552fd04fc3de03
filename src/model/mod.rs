//! The network: a backbone, the four heads over its feature map at each scale, DRA's
//! combination of them, and the loss that trains it.

pub mod backbone;
pub mod dra;
pub mod head_set;
pub mod heads;
pub mod loss;
pub mod memory;
pub mod scores;

pub use dra::{Dra, ModelConfig, pyramid_level};
pub use head_set::{HeadNorm, HeadSet};
pub use scores::{Evaluation, HeadScores, Reconstruction};
