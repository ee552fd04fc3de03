//! The network: a backbone, the four heads over its feature map at each scale, DRA's
//! combination of them, and the loss that trains it.

pub mod backbone;
pub mod dra;
pub mod heads;
pub mod loss;
pub mod memory;

pub use dra::{Dra, HeadNorm, HeadScores, HeadSet, ModelConfig, Reconstruction, pyramid_level};
