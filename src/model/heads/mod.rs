//! The four DRA heads. Each maps a feature map to one non-negative score per image.
//!
//! * normal head g_n (holistic): global average pool → Linear C→256 → ReLU → Linear 256→1 → |·|;
//!   high means "looks normal";
//! * seen head g_s and pseudo head g_p (plain): 1×1 conv C→1 → |·| → top-K MIL mean;
//! * residual head g_r (composite): (reference − features) → 3×3 conv C→C → BatchNorm →
//!   ReLU → plain scoring; the reference is the mean reference map at the same cell (the
//!   paper's) or, alignment-free, the nearest reference cell anywhere ([`ResidualMode`]).
//!
//! Beside them, the heads of the paper's comparison systems that DRA's do not already cover:
//! * centre head (Deep SAD): global average pool → Linear C→128 without bias → squared
//!   distance to a centre fixed before training;
//! * bag head (MINNS, MI-Net): every cell through a perceptron C→256→128→64, max-pooled over
//!   the cells, Linear 64→1: a logit;
//! * class head (SAOE): 1×1 conv C→3, a logit per class (normal, seen, pseudo) for every cell,
//!   each pooled by top-K MIL; the score is 1 − p(normal);
//! * decoder head (MLEP): the map upsampled back to the input, scored by the reconstruction's
//!   mean squared error;
//! * student head (KDAD): a small network of its own on the image, trained to reproduce the
//!   frozen backbone's maps at four strides, scored by how far it is from them.
//!
//! Top-K multiple-instance learning scores an image by the mean of its K largest cell
//! scores, K = max(⌊h·w·topk⌋, 1): a small defect decides the score even when most of the
//! image is normal.

mod bag;
mod centre;
mod classes;
mod decoder;
mod normal;
mod plain;
mod residual;
mod student;
mod top_k;

pub use bag::{BAG_DROPOUT, BAG_WIDTHS, BagHead};
pub use centre::{CENTRE_DIM, CENTRE_FLOOR, CentreHead};
pub use classes::{CLASSES, ClassHead, image_logits, not_normal};
pub use decoder::{DECODER_SCALE, DECODER_WIDTHS, DecoderHead, Reconstructed};
pub use normal::{NORMAL_HIDDEN, NormalHead};
pub use plain::PlainHead;
pub use residual::{ResidualHead, ResidualMode, nearest_cells};
pub use student::{Distillation, KD_LAMBDA, StudentHead, discrepancy};
pub use top_k::{top_k_count, top_k_mean};

use burn::prelude::*;
use burn::tensor::module::interpolate;
use burn::tensor::ops::{InterpolateMode, InterpolateOptions};

/// A map of cell scores `[N, 1, h, w]` in the input's pixel frame `[N, 1, H, W]` (`size` =
/// [H, W]): bilinear interpolation with half-pixel centres, so cell (i, j) covers input
/// pixels [i·H/h, (i+1)·H/h) as the feature map's stride does.
pub fn upsample(cells: Tensor<4>, size: [usize; 2]) -> Tensor<4> {
    interpolate(
        cells,
        InterpolateOptions::new(InterpolateMode::Bilinear)
            .with_align_corners(false)
            .with_output_size(size),
    )
}
