//! A memory of normal patches (PatchCore-style), the patch-kNN baseline and DRA's optional
//! memory term (`--memory patch`): locally averaged (3×3) patches of the frozen backbone's
//! stride-16 and stride-32 maps, the latter bilinearly upsampled to the stride-16 grid and
//! concatenated; a memory bank of every patch of the normal training images, reduced by
//! greedy coreset selection when it is large; an image scores the largest distance of any
//! of its patches to the nearest patch of the bank.

use burn::nn::PaddingConfig2d;
use burn::nn::pool::AvgPool2dConfig;
use burn::prelude::*;
use burn::tensor::module::interpolate;
use burn::tensor::ops::{InterpolateMode, InterpolateOptions};
use burn::tensor::s;
use rand::Rng;
use rand_distr::StandardNormal;
use rayon::prelude::*;

use crate::choice::choice;
use crate::error::{Error, Result};
use crate::model::backbone::Backbone;
use crate::model::heads::upsample;
use crate::npy;
use crate::rng::DraRng;

choice! {
    /// Whether the anomaly score also draws on a memory of normal patches.
    pub enum MemoryMode ("memory") {
        /// The heads alone (the paper's).
        None = "none",
        /// Plus the patch memory's score, standardised and weighted as all heads together.
        Patch = "patch",
    }
}

/// Memory banks with more patches than this are reduced to it by greedy coreset selection.
pub const BANK_MAX: usize = 10_000;
/// Dimensions of the random projection in which the coreset selection measures distances.
pub const PROJECTION: usize = 128;
/// Query patches compared with the bank in one matrix product.
const QUERY_CHUNK: usize = 2048;

/// Patch features `[N, C16 + C32, h16, w16]` of a stride-16 and a stride-32 map: each map
/// averaged over 3×3 neighbourhoods (borders over the cells inside), the stride-32 one
/// bilinearly upsampled (half-pixel centres) to the stride-16 grid, then concatenated.
pub fn patch_features(stride16: Tensor<4>, stride32: Tensor<4>) -> Tensor<4> {
    let pool = AvgPool2dConfig::new([3, 3])
        .with_strides([1, 1])
        .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
        .with_count_include_pad(false)
        .init();
    let [_, _, h, w] = stride16.dims();
    let coarse = interpolate(
        pool.forward(stride32),
        InterpolateOptions::new(InterpolateMode::Bilinear)
            .with_align_corners(false)
            .with_output_size([h, w]),
    );
    Tensor::cat(vec![pool.forward(stride16), coarse], 1)
}

/// The patches of `[N, D, h, w]` features as rows `[N·h·w, D]`, image by image.
pub fn patch_rows(features: Tensor<4>) -> Tensor<2> {
    let [n, d, h, w] = features.dims();
    features.permute([0, 2, 3, 1]).reshape([n * h * w, d])
}

/// Points per block of [`coreset`]'s distance pass: a block's running sums stay in vector
/// registers while its coordinates stream past, one dimension at a time.
const BLOCK: usize = 64;

/// Greedy k-center coreset of `rows` `[B, D]`: starting from a random row, repeatedly the row
/// farthest from those chosen (distances in a seeded Gaussian projection to [`PROJECTION`]
/// dimensions when D is larger; ties to the lower index). Returns the indices of `size` rows.
pub fn coreset(rows: &Tensor<2>, size: usize, rng: &mut DraRng) -> Vec<usize> {
    let [b, d] = rows.dims();
    if size >= b {
        return (0..b).collect();
    }
    let points = if d > PROJECTION {
        let scale = 1.0 / (PROJECTION as f32).sqrt();
        let proj: Vec<f32> = (0..d * PROJECTION)
            .map(|_| rng.sample::<f32, _>(StandardNormal) * scale)
            .collect();
        let proj = Tensor::<2>::from_data(TensorData::new(proj, [d, PROJECTION]), &rows.device());
        rows.clone().matmul(proj)
    } else {
        rows.clone()
    };
    let dim = points.dims()[1];
    let blocks = Blocks::new(&points.into_data().try_to_vec().expect("f32 features"), dim);
    // padding lanes start at −∞, so that no distance lifts them and none is ever the farthest
    let mut nearest: Vec<f32> = (0..blocks.lanes())
        .map(|i| {
            if i < b {
                f32::INFINITY
            } else {
                f32::NEG_INFINITY
            }
        })
        .collect();
    let mut chosen = Vec::with_capacity(size);
    let mut last = rng.random_range(0..b);
    while chosen.len() < size {
        chosen.push(last);
        last = blocks.nearer_then_farthest(&mut nearest, &blocks.point(last));
    }
    chosen
}

/// Points laid out block by block, each block dimension-major: coordinate c of point j of
/// block k at `k·dim·BLOCK + c·BLOCK + j`. A point's squared distance is still summed over
/// c = 0, 1, … in order, so vectorising across points gives the bits of a plain loop.
struct Blocks {
    values: Vec<f32>,
    dim: usize,
}

impl Blocks {
    /// `points` `[B·dim]` row-major, the last block padded with zeros.
    fn new(points: &[f32], dim: usize) -> Self {
        let n_blocks = (points.len() / dim).div_ceil(BLOCK);
        let mut values = vec![0.0; n_blocks * dim * BLOCK];
        for (i, point) in points.chunks(dim).enumerate() {
            let base = (i / BLOCK) * dim * BLOCK + i % BLOCK;
            for (c, &v) in point.iter().enumerate() {
                values[base + c * BLOCK] = v;
            }
        }
        Blocks { values, dim }
    }

    /// Points including the padding.
    fn lanes(&self) -> usize {
        self.values.len() / self.dim
    }

    /// The coordinates of point `i`.
    fn point(&self, i: usize) -> Vec<f32> {
        let base = (i / BLOCK) * self.dim * BLOCK + i % BLOCK;
        (0..self.dim)
            .map(|c| self.values[base + c * BLOCK])
            .collect()
    }

    /// Lowers each point's `nearest` squared distance to that to `centre`, and returns the
    /// point whose distance is then the largest (the lowest index among equals).
    fn nearer_then_farthest(&self, nearest: &mut [f32], centre: &[f32]) -> usize {
        let farther = |a: (f32, usize), b: (f32, usize)| match a.0.total_cmp(&b.0) {
            std::cmp::Ordering::Greater => a,
            std::cmp::Ordering::Less => b,
            std::cmp::Ordering::Equal => (a.0, a.1.min(b.1)),
        };
        nearest
            .par_chunks_mut(BLOCK)
            .zip(self.values.par_chunks(self.dim * BLOCK))
            .enumerate()
            .with_min_len(16)
            .map(|(k, (nearest, block))| {
                let mut sums = [0f32; BLOCK];
                for (coords, &y) in block.chunks_exact(BLOCK).zip(centre) {
                    for (s, &x) in sums.iter_mut().zip(coords) {
                        *s += (x - y) * (x - y);
                    }
                }
                let mut best = (f32::NEG_INFINITY, usize::MAX);
                for (j, (m, s)) in nearest.iter_mut().zip(sums).enumerate() {
                    *m = m.min(s);
                    best = farther(best, (*m, k * BLOCK + j));
                }
                best
            })
            .reduce(|| (f32::NEG_INFINITY, usize::MAX), farther)
            .1
    }
}

/// Distance of every query row `[Q, D]` to its nearest bank row `[B, D]`.
pub fn nearest_distances(bank: &Tensor<2>, queries: Tensor<2>) -> Vec<f32> {
    let [q, _] = queries.dims();
    let bank_sq = bank.clone().powi_scalar(2).sum_dim(1).transpose(); // [1, B]
    let mut out = Vec::with_capacity(q);
    let mut start = 0;
    while start < q {
        let end = (start + QUERY_CHUNK).min(q);
        let chunk = queries.clone().slice(s![start..end]);
        let q_sq = chunk.clone().powi_scalar(2).sum_dim(1); // [q, 1]
        let d2 = q_sq + bank_sq.clone() - chunk.matmul(bank.clone().transpose()).mul_scalar(2.0);
        let min: Vec<f32> = d2.min_dim(1).into_data().try_to_vec().expect("f32");
        out.extend(min.into_iter().map(|v| v.max(0.0).sqrt()));
        start = end;
    }
    out
}

/// Each image's largest patch distance, of distances listed image by image (`cells` each).
fn largest_per_image(distances: &[f32], cells: usize) -> Vec<f32> {
    distances
        .chunks(cells)
        .map(|p| p.iter().copied().fold(f32::NEG_INFINITY, f32::max))
        .collect()
}

/// Image scores of query patch features `[N, D, h, w]` against the bank: the largest
/// nearest-neighbour distance among each image's patches.
pub fn image_scores(bank: &Tensor<2>, queries: Tensor<4>) -> Vec<f32> {
    let [_, _, h, w] = queries.dims();
    largest_per_image(&nearest_distances(bank, patch_rows(queries)), h * w)
}

/// Image scores (as [`image_scores`]) and maps: every patch's nearest-neighbour distance in
/// the input's pixel frame `[N, 1, H, W]` (`size` = [H, W], bilinear from the patch grid).
pub fn scores_and_maps(
    bank: &Tensor<2>,
    queries: Tensor<4>,
    size: [usize; 2],
) -> (Vec<f32>, Tensor<4>) {
    let [n, _, h, w] = queries.dims();
    let device = queries.device();
    let distances = nearest_distances(bank, patch_rows(queries));
    let scores = largest_per_image(&distances, h * w);
    let cells = Tensor::<4>::from_data(TensorData::new(distances, [n, 1, h, w]), &device);
    (scores, upsample(cells, size))
}

/// The memory bank of the normal images' patch features (each `[N, D, h, w]`), reduced to
/// [`BANK_MAX`] rows by [`coreset`] when larger.
pub fn memory_bank(features: Vec<Tensor<4>>, rng: &mut DraRng) -> Tensor<2> {
    let rows = Tensor::cat(features.into_iter().map(patch_rows).collect(), 0);
    let keep = coreset(&rows, BANK_MAX, rng);
    if keep.len() == rows.dims()[0] {
        return rows;
    }
    let idx = Tensor::<1, Int>::from_data(
        TensorData::new(keep.iter().map(|&i| i as i64).collect(), [keep.len()]),
        &rows.device(),
    );
    rows.select(0, idx)
}

/// The memory of a run: the bank of normal patches, saved in the run directory.
#[derive(Debug, Clone)]
pub struct PatchMemory {
    pub bank: Tensor<2>,
}

/// The memory's file in a run directory (NumPy `.npy`, float32 `[patches, channels]`).
pub const MEMORY_FILE: &str = "memory.npy";

impl PatchMemory {
    /// Patch features of `images` (normalised `[N, 3, H, W]`) through `backbone`.
    pub fn features(backbone: &Backbone, images: Tensor<4>) -> Tensor<4> {
        let (s16, s32) = backbone.stride16_and_features(images);
        patch_features(s16, s32)
    }

    /// The memory of the normal images' patch features (batches `[N, D, h, w]`), with each
    /// image's own score against the bank of the other half (even and odd images; scored
    /// against a bank of its own patches it would be near 0), in the images' order.
    pub fn build(features: Vec<Tensor<4>>, rng: &mut DraRng) -> (Self, Vec<f32>) {
        let images: Vec<Tensor<4>> = features
            .iter()
            .flat_map(|t| (0..t.dims()[0]).map(move |i| t.clone().slice(s![i..i + 1])))
            .collect();
        let bank = memory_bank(features, rng);
        let half =
            |k: usize| -> Vec<Tensor<4>> { images.iter().skip(k).step_by(2).cloned().collect() };
        let mut own = vec![0.0; images.len()];
        if images.len() >= 2 {
            for k in 0..2 {
                let other = memory_bank(half(1 - k), rng);
                let scores = image_scores(&other, Tensor::cat(half(k), 0));
                for (j, v) in scores.into_iter().enumerate() {
                    own[k + 2 * j] = v;
                }
            }
        }
        (PatchMemory { bank }, own)
    }

    /// Scores and maps ([`scores_and_maps`]) of `images` (normalised `[N, 3, H, W]`) through
    /// `backbone`.
    pub fn scores_and_maps(&self, backbone: &Backbone, images: Tensor<4>) -> (Vec<f32>, Tensor<4>) {
        let [_, _, height, width] = images.dims();
        let (s16, s32) = backbone.stride16_and_features(images);
        self.scores_and_maps_of(s16, s32, [height, width])
    }

    /// Scores and maps (in a `size` input frame) of images whose stride-16 and stride-32
    /// maps the backbone has already given.
    pub fn scores_and_maps_of(
        &self,
        stride16: Tensor<4>,
        stride32: Tensor<4>,
        size: [usize; 2],
    ) -> (Vec<f32>, Tensor<4>) {
        scores_and_maps(&self.bank, patch_features(stride16, stride32), size)
    }

    /// Writes the bank as `.npy` (float32, C order), a format any notebook reads.
    pub fn save(&self, path: &std::path::Path) -> Result<()> {
        let values: Vec<f32> = self.bank.to_data().try_to_vec().expect("f32 bank");
        npy::write(path, &self.bank.dims(), &values)
    }

    /// Reads a bank written by [`PatchMemory::save`] onto `device`.
    pub fn load(path: &std::path::Path, device: &Device) -> Result<Self> {
        let bytes = std::fs::read(path).map_err(|e| {
            Error::run_file(
                path,
                format!("missing ({e}): the run's --memory patch needs it"),
            )
        })?;
        let (dims, values) = npy::decode(path, &bytes)?;
        let [rows, cols] = dims[..] else {
            return Err(Error::run_file(
                path,
                "not a memory bank: not two-dimensional",
            ));
        };
        Ok(PatchMemory {
            bank: Tensor::from_data(TensorData::new(values, [rows, cols]), device),
        })
    }
}
