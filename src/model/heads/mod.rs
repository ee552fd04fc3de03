//! The four DRA heads. Each maps a feature map to one non-negative score per image.
//!
//! * normal head g_n (holistic): global average pool → Linear C→256 → ReLU → Linear 256→1 → |·|;
//!   high means "looks normal";
//! * seen head g_s and pseudo head g_p (plain): 1×1 conv C→1 → |·| → top-K MIL mean;
//! * residual head g_r (composite): (reference − features) → 3×3 conv C→C → BatchNorm →
//!   ReLU → plain scoring; the reference is the mean reference map at the same cell (the
//!   paper's) or, alignment-free, the nearest reference cell anywhere ([`ResidualMode`]).
//!
//! Top-K multiple-instance learning scores an image by the mean of its K largest cell
//! scores, K = max(⌊h·w·topk⌋, 1): a small defect decides the score even when most of the
//! image is normal.

mod normal;
mod plain;
mod residual;
mod top_k;

pub use normal::{NORMAL_HIDDEN, NormalHead};
pub use plain::PlainHead;
pub use residual::{ResidualHead, ResidualMode, nearest_cells};
pub use top_k::{top_k_count, top_k_mean};
