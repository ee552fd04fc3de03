//! How the convolution kernels (`conv.rs`, `winograd.rs`) share out their work: an output cut
//! into tiles of rows or images, jobs run on the threads with their own buffers, the matrix
//! product, and a sum over groups of images added in a fixed order.

use rayon::prelude::*;
use std::ops::Range;

/// One job's share of a convolution's output: output rows `rows` of each image in `images`.
pub(super) struct Tile {
    pub images: Range<usize>,
    pub rows: Range<usize>,
}

/// `images` cut into tiles of about `per_tile` output pixels for an output of `ho` rows of
/// `wo` pixels: bands of whole rows of one image where an image has at least half that many
/// or `group` is `None`, otherwise several whole images a tile (so that the products are not
/// a few dozen rows long), shared out evenly over a count of tiles rounded up to a multiple
/// of `group`.
pub(super) fn tiles(
    images: Range<usize>,
    [ho, wo]: [usize; 2],
    group: Option<usize>,
    per_tile: usize,
) -> Vec<Tile> {
    let Some(multiple) = group.filter(|_| 2 * ho * wo < per_tile) else {
        let band = (per_tile / wo).clamp(1, ho);
        return images
            .flat_map(|img| {
                (0..ho).step_by(band).map(move |oy| Tile {
                    images: img..img + 1,
                    rows: oy..(oy + band).min(ho),
                })
            })
            .collect();
    };
    let n = images.len();
    let count = (n * ho * wo).div_ceil(per_tile);
    let count = if count > 1 {
        count.next_multiple_of(multiple)
    } else {
        count
    }
    .min(n);
    let start = images.start;
    (0..count)
        .map(|t| Tile {
            images: start + t * n / count..start + (t + 1) * n / count,
            rows: 0..ho,
        })
        .collect()
}

/// `dst[m × n] = (dst +) lhs[m × k] · rhs[k × n]`, each matrix given by its row and column
/// strides.
///
/// # Safety
/// The pointers and strides must describe buffers that hold the three matrices, and `dst`
/// must not overlap the others.
#[allow(clippy::too_many_arguments)]
pub(super) unsafe fn matmul(
    [m, n, k]: [usize; 3],
    dst: *mut f32,
    [dst_rs, dst_cs]: [usize; 2],
    accumulate: bool,
    lhs: *const f32,
    [lhs_rs, lhs_cs]: [usize; 2],
    rhs: *const f32,
    [rhs_rs, rhs_cs]: [usize; 2],
    parallelism: gemm::Parallelism,
) {
    // SAFETY: as the caller promised
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst,
            dst_cs as isize,
            dst_rs as isize,
            accumulate,
            lhs,
            lhs_cs as isize,
            lhs_rs as isize,
            rhs,
            rhs_cs as isize,
            rhs_rs as isize,
            if accumulate { 1.0 } else { 0.0 },
            1.0,
            false,
            false,
            false,
            parallelism,
        )
    }
}

/// The weight gradient's groups of images, summed in parallel and then in order.
const WEIGHT_GRAD_GROUPS: usize = 4;

/// Runs `run` on every job (a tile of a batch, or a range of channels) with its thread's
/// buffers: the jobs in parallel, each product on one thread, where there are at least as
/// many jobs as threads; one after the other with each product in parallel otherwise.
pub(super) fn for_each_job<J: Sync, B: Default + Send>(
    jobs: &[J],
    run: impl Fn(&mut B, &J, gemm::Parallelism) + Sync,
) {
    if jobs.len() >= rayon::current_num_threads() {
        jobs.par_iter().for_each_init(B::default, |buffers, job| {
            run(buffers, job, gemm::Parallelism::None)
        });
    } else {
        let mut buffers = B::default();
        for job in jobs {
            run(&mut buffers, job, gemm::Parallelism::Rayon(0));
        }
    }
}

/// The sum of `group(images, parallelism)` over the `n` images cut into
/// [`WEIGHT_GRAD_GROUPS`] groups: the groups computed in parallel (or one after the other with
/// `parallelism` for their products where there are fewer groups than threads) and added in
/// order, so that the sum's rounding depends on the batch alone.
pub(super) fn sum_over_groups(
    n: usize,
    group: impl Fn(Range<usize>, gemm::Parallelism) -> Vec<f32> + Sync,
) -> Vec<f32> {
    let groups = n.min(WEIGHT_GRAD_GROUPS);
    let images = |g: usize| g * n / groups..(g + 1) * n / groups;
    let partial: Vec<Vec<f32>> = if groups >= rayon::current_num_threads() {
        (0..groups)
            .into_par_iter()
            .map(|g| group(images(g), gemm::Parallelism::None))
            .collect()
    } else {
        (0..groups)
            .map(|g| group(images(g), gemm::Parallelism::Rayon(0)))
            .collect()
    };
    let mut partial = partial.into_iter();
    let mut sum = partial.next().expect("a batch of at least one image");
    for p in partial {
        sum.par_chunks_mut(1 << 14)
            .zip(p.par_chunks(1 << 14))
            .for_each(|(a, b)| a.iter_mut().zip(b).for_each(|(a, b)| *a += b));
    }
    sum
}
