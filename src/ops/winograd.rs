//! 3×3 convolutions at stride 1 by Winograd's minimal filtering F(T×T, 3×3) (Lavin and Gray,
//! "Fast Algorithms for Convolutional Neural Networks", CVPR 2016). Each T×T block of output
//! pixels is `Aᵀ [(G g Gᵀ) ⊙ (Bᵀ d B)] A` of its W×W window `d` of input (W = T + 2), so the
//! sum over input channels becomes W² matrix products, `[blocks × ci] · [ci × co]`, one per
//! position of the transformed window. F(2×2, 3×3) ([`F2`]) has 16 multiplications per block
//! and channel pair where im2col's product has 36 (2.25 times fewer); F(4×4, 3×3) ([`F4`])
//! 36 where im2col has 144 (4 times fewer), for larger transforms and a larger rounding error,
//! on the maps where it pays ([`F4::takes`]). The input gradient of such a layer is one too
//! (`conv.rs`), so both passes use it; the weight gradient sums `(A dY Aᵀ) ⊙ (Bᵀ d B)` over
//! the blocks, W² products as well, in groups of images tile by tile on the larger maps and
//! over the whole batch at once, by output channels, on the small ones ([`weight_grad3x3`]).
//! The transforms' loops run over a job's blocks side by
//! side, compiled for AVX2 or AVX-512 by `pulp` at run time; the products are `gemm`'s. Every
//! job's sums run in a fixed order and the variant depends on the map alone, so a score is
//! the same bits on every run and in every batch.

use std::array::from_fn;
use std::marker::PhantomData;
use std::ops::Range;

use rayon::prelude::*;

use super::Geometry as ConvGeometry;
use super::jobs::{Tile, for_each_job, matmul, sum_over_groups, tiles};
use super::output_shape;

/// Whether [`conv3x3`] computes a convolution of this kernel, geometry and channels (in,
/// out): 3×3 at stride 1 without dilation, padded alike on both sides (the transforms take
/// one padding), between layers of at least 16 channels, below which the transforms cost
/// more than the products save.
pub(super) fn applies(
    kernel: [usize; 2],
    (stride, before, after, dilation): ConvGeometry,
    [ci, co]: [usize; 2],
) -> bool {
    kernel == [3, 3]
        && stride == [1, 1]
        && dilation == [1, 1]
        && before == after
        && ci >= 16
        && co >= 16
}

/// One of Winograd's minimal filterings F(T×T, 3×3): blocks of T × T output pixels, each
/// from a W × W window of input, W = T + 2; the transforms act on one column (or row) at a
/// time.
trait Minimal<const T: usize, const W: usize>: Sync {
    /// Blocks per job on an output map of `[ho, wo]` pixels.
    fn tile_blocks(output: [usize; 2]) -> usize;
    /// `Bᵀ d` for a column `d` of input values.
    fn input(d: [f32; W]) -> [f32; W];
    /// `G g` for a column `g` of three kernel values.
    fn kernel(g: [f32; 3]) -> [f32; W];
    /// `Aᵀ m` for a column `m` of products.
    fn output(m: [f32; W]) -> [f32; T];
    /// `A y` for a column `y` of output gradients: the gradient of [`Self::output`].
    fn output_gradient(y: [f32; T]) -> [f32; W];
    /// `Gᵀ s` for a column `s` of sums: the gradient of [`Self::kernel`].
    fn kernel_gradient(s: [f32; W]) -> [f32; 3];
}

/// F(2×2, 3×3), interpolation points 0, 1, −1 and ∞.
struct F2;

impl Minimal<2, 4> for F2 {
    /// 128 (the job's 16 transformed windows and products stay in cache): 64 was slower on
    /// ResNet-18's 56² layers, 256 slower there and equal elsewhere.
    fn tile_blocks(_: [usize; 2]) -> usize {
        128
    }

    #[inline(always)]
    fn input([d0, d1, d2, d3]: [f32; 4]) -> [f32; 4] {
        [d0 - d2, d1 + d2, d2 - d1, d1 - d3]
    }

    #[inline(always)]
    fn kernel([g0, g1, g2]: [f32; 3]) -> [f32; 4] {
        [g0, (g0 + g1 + g2) * 0.5, (g0 - g1 + g2) * 0.5, g2]
    }

    #[inline(always)]
    fn output([m0, m1, m2, m3]: [f32; 4]) -> [f32; 2] {
        [m0 + m1 + m2, m1 - m2 - m3]
    }

    #[inline(always)]
    fn output_gradient([y0, y1]: [f32; 2]) -> [f32; 4] {
        [y0, y0 + y1, y0 - y1, -y1]
    }

    #[inline(always)]
    fn kernel_gradient([s0, s1, s2, s3]: [f32; 4]) -> [f32; 3] {
        let (plus, minus) = ((s1 + s2) * 0.5, (s1 - s2) * 0.5);
        [s0 + plus, minus, plus + s3]
    }
}

/// F(4×4, 3×3), interpolation points 0, ±1, ±2 and ∞.
struct F4;

impl F4 {
    /// Whether the forward pass on a map of `[ho, wo]` output pixels takes F(4×4) over
    /// F(2×2): from 7 × 7 (16 blocks of F(2×2), 4 of F(4×4): 256 multiplications per channel
    /// pair against 144; on 5 × 5 and 6 × 6 maps both take 144).
    fn takes([ho, wo]: [usize; 2]) -> bool {
        ho.min(wo) >= 7
    }

    /// Whether the weight gradient summed in groups of images takes it: from 28 × 28. On
    /// 14 × 14 maps its 36 sums per kernel cost more than the products save (256 channels:
    /// 0.044 s against 0.037 s).
    fn takes_gradient([ho, wo]: [usize; 2]) -> bool {
        ho.min(wo) >= 28
    }

    /// Whether it needs fewer multiplications than F(2×2) on a map of `[ho, wo]` output
    /// pixels (36 per block against 16: 7 × 7 and 4 × 4, not 5 × 5 or 6 × 6): the choice of the
    /// weight gradient summed over the whole batch at once.
    fn fewer_products([ho, wo]: [usize; 2]) -> bool {
        let blocks = |t: usize| ho.div_ceil(t) * wo.div_ceil(t);
        36 * blocks(4) < 16 * blocks(2)
    }
}

impl Minimal<4, 6> for F4 {
    /// 256 blocks (4096 pixels) from 14 × 14 up: the products of 128 or 192 blocks were too
    /// short for `gemm` (ResNet-18's 56² layer 0.035 s, against 0.031 s); on 7 × 7 maps, 128,
    /// so that a batch of 48 is cut into more than one job.
    fn tile_blocks([ho, wo]: [usize; 2]) -> usize {
        if ho.min(wo) >= 14 { 256 } else { 128 }
    }

    #[inline(always)]
    fn input([d0, d1, d2, d3, d4, d5]: [f32; 6]) -> [f32; 6] {
        let (a, b) = (d4 - 4.0 * d2, d3 - 4.0 * d1);
        let (c, e) = (d4 - d2, 2.0 * (d3 - d1));
        [
            4.0 * d0 - 5.0 * d2 + d4,
            a + b,
            a - b,
            c + e,
            c - e,
            4.0 * d1 - 5.0 * d3 + d5,
        ]
    }

    #[inline(always)]
    fn kernel([g0, g1, g2]: [f32; 3]) -> [f32; 6] {
        let (outer, inner) = (g0 + g2, g1);
        let (quarter, half) = (g0 * 0.25 + g2, g1 * 0.5);
        [
            g0 * 0.25,
            -(outer + inner) / 6.0,
            -(outer - inner) / 6.0,
            (quarter + half) / 6.0,
            (quarter - half) / 6.0,
            g2,
        ]
    }

    #[inline(always)]
    fn output([m0, m1, m2, m3, m4, m5]: [f32; 6]) -> [f32; 4] {
        let (sum1, diff1) = (m1 + m2, m1 - m2);
        let (sum3, diff3) = (m3 + m4, m3 - m4);
        [
            m0 + sum1 + sum3,
            diff1 + 2.0 * diff3,
            sum1 + 4.0 * sum3,
            diff1 + 8.0 * diff3 + m5,
        ]
    }

    #[inline(always)]
    fn output_gradient([y0, y1, y2, y3]: [f32; 4]) -> [f32; 6] {
        let (even, odd) = (y0 + y2, y1 + y3);
        let (even2, odd2) = (y0 + 4.0 * y2, 2.0 * y1 + 8.0 * y3);
        [y0, even + odd, even - odd, even2 + odd2, even2 - odd2, y3]
    }

    #[inline(always)]
    fn kernel_gradient([s0, s1, s2, s3, s4, s5]: [f32; 6]) -> [f32; 3] {
        let (sum1, diff1) = (s1 + s2, s2 - s1);
        let (sum3, diff3) = (s3 + s4, s3 - s4);
        [
            s0 * 0.25 - sum1 / 6.0 + sum3 / 24.0,
            diff1 / 6.0 + diff3 / 12.0,
            (sum3 - sum1) / 6.0 + s5,
        ]
    }
}

/// `G g Gᵀ` of every kernel of `weight` (`[co, ci, 3, 3]`), laid out `[W², co, ci]`:
/// position ξ's matrix, transposed, is the right-hand side of its product. One job per output
/// channel writes its row of all W² matrices.
fn transformed_kernels<const T: usize, const W: usize, M: Minimal<T, W>>(
    weight: &[f32],
    [ci, co]: [usize; 2],
) -> Vec<f32> {
    let len = W * W * co * ci;
    let mut u = Vec::<f32>::with_capacity(len);
    let u_addr = u.as_mut_ptr() as usize;
    (0..co).into_par_iter().for_each(|o| {
        pulp::Arch::new().dispatch(Kernels::<T, W, M> {
            weight: &weight[o * ci * 9..][..ci * 9],
            // SAFETY: position ξ's row o of `u`, which no other job writes
            planes: (0..W * W)
                .map(|xi| (u_addr as *mut f32).wrapping_add((xi * co + o) * ci))
                .collect(),
            minimal: PhantomData,
        })
    });
    // SAFETY: the jobs have written all `len` values
    unsafe { u.set_len(len) };
    u
}

/// `G g Gᵀ` of one output channel's kernels (`[ci, 3, 3]`), written to `planes[ξ][c]`.
struct Kernels<'a, const T: usize, const W: usize, M> {
    weight: &'a [f32],
    planes: Vec<*mut f32>,
    minimal: PhantomData<M>,
}

impl<const T: usize, const W: usize, M: Minimal<T, W>> pulp::WithSimd for Kernels<'_, T, W, M> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _: S) {
        // the kernels' taps (3·row + column) side by side, so that the loop below runs over
        // input channels
        let ci = self.weight.len() / 9;
        let mut taps = vec![0f32; 9 * ci];
        for (c, g) in self.weight.chunks_exact(9).enumerate() {
            for (a, value) in g.iter().enumerate() {
                taps[a * ci + c] = *value;
            }
        }
        let tap = |a: usize| &taps[a * ci..][..ci];
        // G g down each of the 3 kernel columns b (W rows of ci: i at b·W + i); then (G g) Gᵀ
        // across each of the W rows i, into positions W·i + j
        let mut down = vec![0f32; 3 * W * ci];
        for (b, down) in down.chunks_exact_mut(W * ci).enumerate() {
            columns(from_fn(|a| tap(3 * a + b)), split_mut(down, ci), M::kernel);
        }
        let mut rows = vec![0f32; W * W * ci];
        for (i, row) in rows.chunks_exact_mut(W * ci).enumerate() {
            let inputs = from_fn(|b| &down[(b * W + i) * ci..][..ci]);
            columns(inputs, split_mut(row, ci), M::kernel);
        }
        for (row, plane) in rows.chunks_exact(ci).zip(self.planes) {
            // SAFETY: `plane` holds this output channel's `ci` values of position ξ
            unsafe { std::ptr::copy_nonoverlapping(row.as_ptr(), plane, ci) };
        }
    }
}

/// One job's buffers: the transformed windows `[W², ci, blocks]`, the products (or the
/// transformed output gradients) `[W², co, blocks]`, and the transforms' scratch.
#[derive(Default)]
struct Buffers {
    windows: Vec<f32>,
    products: Vec<f32>,
    rows: Vec<f32>,
}

impl Buffers {
    /// Fills `windows` with `tile`'s transformed windows of every input channel and sizes
    /// `products` for `co` channels; returns the tile's block count.
    fn windows_of<const T: usize, const W: usize, M: Minimal<T, W>>(
        &mut self,
        arch: pulp::Arch,
        geometry: &Geometry<T, W, M>,
        x: &[f32],
        tile: &Tile,
        co: usize,
    ) -> usize {
        let [ci, _] = geometry.channels;
        let m = geometry.blocks_of(tile);
        self.windows.resize(W * W * ci * m, 0.0);
        self.products.resize(W * W * co * m, 0.0);
        arch.dispatch(Transform {
            side: Side::Windows,
            geometry,
            values: x,
            tile,
            channels: 0..ci,
            planes: &mut planes(&mut self.windows, ci * m),
            scratch: &mut self.rows,
        });
        m
    }
}

/// `values` cut into its planes of `len` values, one a position of the transformed window.
fn planes(values: &mut [f32], len: usize) -> Vec<&mut [f32]> {
    values.chunks_exact_mut(len).collect()
}

/// The convolution of `x` (`[n, ci, h, w]`) by `weight` (`[co, ci, 3, 3]`) at stride 1 with
/// `padding` on each side, as [`applies`] admits it: `[n, co, ho, wo]`.
pub(super) fn conv3x3(
    x: &[f32],
    shape: [usize; 4],
    weight: &[f32],
    co: usize,
    padding: [usize; 2],
) -> Vec<f32> {
    if F4::takes(output_map(shape, padding)) {
        convolve(Geometry::<4, 6, F4>::new(shape, co, padding), x, weight)
    } else {
        convolve(Geometry::<2, 4, F2>::new(shape, co, padding), x, weight)
    }
}

/// [`conv3x3`] by the filtering `M`.
fn convolve<const T: usize, const W: usize, M: Minimal<T, W>>(
    geometry: Geometry<T, W, M>,
    x: &[f32],
    weight: &[f32],
) -> Vec<f32> {
    let ([ci, co], [ho, wo], [by, bx]) = (geometry.channels, geometry.output, geometry.blocks);
    let n = geometry.images;
    let u = transformed_kernels::<T, W, M>(weight, [ci, co]);
    // as in `conv.rs`: several whole images a job only where one image's products take
    // `gemm`'s general path too, so that an image's output does not depend on its batch
    let group = (co > 64 && by * bx > 1).then_some(4);
    let jobs = tiles(0..n, [by, bx], group, M::tile_blocks(geometry.output));
    // every output value is written once, by the job of its image and block row
    let len = n * co * ho * wo;
    let mut y = Vec::<f32>::with_capacity(len);
    let y_addr = y.as_mut_ptr() as usize;
    let run = |buffers: &mut Buffers, tile: &Tile, parallelism| {
        // the transforms' loops compiled for the machine's vector width
        let arch = pulp::Arch::new();
        let m = buffers.windows_of(arch, &geometry, x, tile, co);
        for xi in 0..W * W {
            let products = buffers.products[xi * co * m..].as_mut_ptr();
            // SAFETY: each buffer holds its position's matrix: products `[co, m]`, windows
            // `[ci, m]`, kernels `[co, ci]`.
            unsafe {
                matmul(
                    [m, co, ci],
                    products,
                    [1, m],
                    false,
                    buffers.windows[xi * ci * m..].as_ptr(),
                    [1, m],
                    u[xi * co * ci..].as_ptr(),
                    [1, ci],
                    parallelism,
                );
            }
        }
        // SAFETY: the tile's rows of its images belong to this job alone
        arch.dispatch(Products {
            geometry: &geometry,
            tile,
            buffers,
            y: y_addr as *mut f32,
        });
    };
    for_each_job(&jobs, run);
    // SAFETY: the jobs have written all `len` values
    unsafe { y.set_len(len) };
    y
}

/// The gradient of [`conv3x3`]'s weight given its output's, `dy` (`[n, co, ho, wo]`):
/// `Gᵀ [Σ over blocks (A dY Aᵀ) ⊙ (Bᵀ d B)] G` for each kernel, the sum over each position's
/// blocks a matrix product `[co × blocks] · [blocks × ci]`; returns `[co, ci, 3, 3]`. The
/// blocks are summed in groups of images, tile by tile ([`weight_grad_in_groups`]), where
/// [`in_groups`] says so, otherwise all at once ([`weight_grad_by_channels`]) by the
/// filtering with fewer products; either way the rounding depends on the batch alone.
pub(super) fn weight_grad3x3(
    x: &[f32],
    shape: [usize; 4],
    dy: &[f32],
    co: usize,
    padding: [usize; 2],
) -> Vec<f32> {
    let output = output_map(shape, padding);
    if in_groups(output, [shape[1], co]) {
        if F4::takes_gradient(output) {
            weight_grad_in_groups(Geometry::<4, 6, F4>::new(shape, co, padding), x, dy)
        } else {
            weight_grad_in_groups(Geometry::<2, 4, F2>::new(shape, co, padding), x, dy)
        }
    } else if F4::fewer_products(output) {
        weight_grad_by_channels(Geometry::<4, 6, F4>::new(shape, co, padding), x, dy)
    } else {
        weight_grad_by_channels(Geometry::<2, 4, F2>::new(shape, co, padding), x, dy)
    }
}

/// Whether the weight gradient on a map of `[ho, wo]` output pixels between `[ci, co]`
/// channels sums its blocks in groups of images: where an image has at least 32 blocks of
/// 2×2 and a group's F(2×2) sums (`16 × co × ci`) take at most 16 MiB. On smaller maps each
/// tile's products are a few hundred blocks long, and each rewrites all the group's sums
/// (7 × 7 by F(4×4): 52 blocks for 13 images), and with more channels the four groups' sums
/// outgrow the caches (1280 channels: 105 MB each).
fn in_groups([ho, wo]: [usize; 2], [ci, co]: [usize; 2]) -> bool {
    ho.div_ceil(2) * wo.div_ceil(2) >= 32 && ci * co <= 512 * 512
}

/// [`weight_grad3x3`] by the filtering `M`, the images summed in groups as im2col's are
/// ([`sum_over_groups`]): each group's tiles of blocks one after the other, every product
/// adding into the group's sums of all output channels.
fn weight_grad_in_groups<const T: usize, const W: usize, M: Minimal<T, W>>(
    geometry: Geometry<T, W, M>,
    x: &[f32],
    dy: &[f32],
) -> Vec<f32> {
    let [ci, co] = geometry.channels;
    let sums = sum_over_groups(geometry.images, |images, parallelism| {
        let arch = pulp::Arch::new();
        let mut sums = vec![0f32; W * W * co * ci];
        let mut buffers = Buffers::default();
        let tile_blocks = M::tile_blocks(geometry.output);
        for (t, tile) in tiles(images, geometry.blocks, Some(1), tile_blocks)
            .iter()
            .enumerate()
        {
            let m = buffers.windows_of(arch, &geometry, x, tile, co);
            arch.dispatch(Transform {
                side: Side::Gradients,
                geometry: &geometry,
                values: dy,
                tile,
                channels: 0..co,
                planes: &mut planes(&mut buffers.products, co * m),
                scratch: &mut buffers.rows,
            });
            let (products, windows) = (&buffers.products[..], &buffers.windows[..]);
            position_sums(
                [co, ci, m],
                &mut sums,
                t > 0,
                products,
                windows,
                parallelism,
            );
        }
        sums
    });
    let mut dw = vec![0f32; co * ci * 9];
    dw.par_chunks_mut(ci * 9)
        .enumerate()
        .for_each(|(o, out)| kernel_gradients::<T, W, M>(&sums, [co, ci], o..o + 1, out));
    dw
}

/// Jobs of output channels of [`weight_grad_by_channels`]: a fixed count, so that its
/// products' sizes, and so their rounding, do not depend on the machine's threads.
const CHANNEL_JOBS: usize = 4;

/// [`weight_grad3x3`] by the filtering `M`, every block of the batch at once: the windows of
/// all blocks transformed first (in parallel over input channels), then the output channels
/// cut into [`CHANNEL_JOBS`] jobs, each transforming its channels' output gradients, summing
/// each position's products over all the blocks in one product and turning its sums into
/// its kernels' gradients.
fn weight_grad_by_channels<const T: usize, const W: usize, M: Minimal<T, W>>(
    geometry: Geometry<T, W, M>,
    x: &[f32],
    dy: &[f32],
) -> Vec<f32> {
    const INPUTS: usize = 32;
    let [ci, co] = geometry.channels;
    let (geometry, batch) = (&geometry, &geometry.all_blocks());
    let m = geometry.blocks_of(batch);
    // `[W², ci, m]`, a task per INPUTS input channels writing its rows of each position
    let mut windows = vec![0f32; W * W * ci * m];
    let mut tasks: Vec<Vec<&mut [f32]>> = (0..ci.div_ceil(INPUTS)).map(|_| Vec::new()).collect();
    for plane in windows.chunks_exact_mut(ci * m) {
        for (task, rows) in tasks.iter_mut().zip(plane.chunks_mut(INPUTS * m)) {
            task.push(rows);
        }
    }
    tasks
        .into_par_iter()
        .enumerate()
        .for_each_init(Vec::new, |scratch, (j, mut planes)| {
            pulp::Arch::new().dispatch(Transform {
                side: Side::Windows,
                geometry,
                values: x,
                tile: batch,
                channels: j * INPUTS..(j * INPUTS + INPUTS).min(ci),
                planes: &mut planes,
                scratch,
            })
        });
    let outputs = co.div_ceil(CHANNEL_JOBS);
    let jobs: Vec<Range<usize>> = (0..co)
        .step_by(outputs)
        .map(|o| o..(o + outputs).min(co))
        .collect();
    let len = co * ci * 9;
    let mut dw = Vec::<f32>::with_capacity(len);
    let dw_addr = dw.as_mut_ptr() as usize;
    let run = |buffers: &mut Buffers, channels: &Range<usize>, parallelism| {
        let rows = channels.len();
        buffers.products.resize(W * W * rows * m, 0.0);
        pulp::Arch::new().dispatch(Transform {
            side: Side::Gradients,
            geometry,
            values: dy,
            tile: batch,
            channels: channels.clone(),
            planes: &mut planes(&mut buffers.products, rows * m),
            scratch: &mut buffers.rows,
        });
        let mut sums = vec![0f32; W * W * rows * ci];
        position_sums(
            [rows, ci, m],
            &mut sums,
            false,
            &buffers.products,
            &windows,
            parallelism,
        );
        // SAFETY: these output channels' kernels, which no other job writes
        let out = unsafe {
            let first = (dw_addr as *mut f32).add(channels.start * ci * 9);
            std::slice::from_raw_parts_mut(first, rows * ci * 9)
        };
        kernel_gradients::<T, W, M>(&sums, [rows, ci], 0..rows, out);
    };
    for_each_job(&jobs, run);
    // SAFETY: the jobs have written all `len` values
    unsafe { dw.set_len(len) };
    dw
}

/// `sums[ξ] (+)= products[ξ] · windows[ξ]ᵀ` for every position ξ of the transformed window:
/// `[rows × ci] (+)= [rows × m] · [m × ci]`, the output gradients' rows `[W², rows, m]` and the
/// windows `[W², ci, m]`.
fn position_sums(
    [rows, ci, m]: [usize; 3],
    sums: &mut [f32],
    accumulate: bool,
    products: &[f32],
    windows: &[f32],
    parallelism: gemm::Parallelism,
) {
    let positions = sums.len() / (rows * ci);
    assert!(products.len() >= positions * rows * m && windows.len() >= positions * ci * m);
    for xi in 0..positions {
        // SAFETY: the assertion above: each buffer holds its position's matrix
        unsafe {
            matmul(
                [rows, ci, m],
                sums[xi * rows * ci..].as_mut_ptr(),
                [ci, 1],
                accumulate,
                products[xi * rows * m..].as_ptr(),
                [m, 1],
                windows[xi * ci * m..].as_ptr(),
                [1, m],
                parallelism,
            );
        }
    }
}

/// The weight gradient of output channels `rows` (`[rows, ci, 3, 3]`, into `dw`) from their
/// sums over the blocks, `sums` (`[W², co, ci]`, those rows among `co`): `Gᵀ S G` of each
/// kernel's W² sums, down each column, then across each of the 3 rows.
fn kernel_gradients<const T: usize, const W: usize, M: Minimal<T, W>>(
    sums: &[f32],
    [co, ci]: [usize; 2],
    rows: Range<usize>,
    dw: &mut [f32],
) {
    pulp::Arch::new().dispatch(KernelGradients::<T, W, M> {
        sums,
        channels: [co, ci],
        rows,
        dw,
        minimal: PhantomData,
    })
}

/// [`kernel_gradients`] as a [`pulp::WithSimd`] operation.
struct KernelGradients<'a, const T: usize, const W: usize, M> {
    sums: &'a [f32],
    channels: [usize; 2],
    rows: Range<usize>,
    dw: &'a mut [f32],
    minimal: PhantomData<M>,
}

impl<const T: usize, const W: usize, M: Minimal<T, W>> pulp::WithSimd
    for KernelGradients<'_, T, W, M>
{
    type Output = ();

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _: S) {
        // each output channel's sums over its input channels side by side: Gᵀ down each
        // column j (3 rows of ci), then across each of the 3 rows into the 9 taps
        let [co, ci] = self.channels;
        let mut down = vec![0f32; 3 * W * ci];
        let mut taps = vec![0f32; 9 * ci];
        for (o, dw) in self.rows.zip(self.dw.chunks_exact_mut(9 * ci)) {
            let sum = |xi: usize| &self.sums[(xi * co + o) * ci..][..ci];
            for (j, down) in down.chunks_exact_mut(3 * ci).enumerate() {
                let inputs = from_fn(|i| sum(W * i + j));
                columns(inputs, split_mut(down, ci), M::kernel_gradient);
            }
            for (a, taps) in taps.chunks_exact_mut(3 * ci).enumerate() {
                let inputs = from_fn(|j| &down[(3 * j + a) * ci..][..ci]);
                columns(inputs, split_mut(taps, ci), M::kernel_gradient);
            }
            for (c, kernel) in dw.chunks_exact_mut(9).enumerate() {
                for (tap, value) in kernel.iter_mut().enumerate() {
                    *value = taps[tap * ci + c];
                }
            }
        }
    }
}

/// Which side of a convolution [`Transform`] transforms: its input's windows (`Bᵀ d B`) or
/// its output's gradients (`A dY Aᵀ`).
#[derive(Clone, Copy)]
enum Side {
    Windows,
    Gradients,
}

/// [`Geometry::transform_windows`] of an input or [`Geometry::transform_gradients`] of an
/// output gradient, `values`, as a [`pulp::WithSimd`] operation.
struct Transform<'a, 'p, G> {
    side: Side,
    geometry: &'a G,
    values: &'a [f32],
    tile: &'a Tile,
    channels: Range<usize>,
    planes: &'a mut [&'p mut [f32]],
    scratch: &'a mut Vec<f32>,
}

impl<const T: usize, const W: usize, M: Minimal<T, W>> pulp::WithSimd
    for Transform<'_, '_, Geometry<T, W, M>>
{
    type Output = ();

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _: S) {
        let (g, values, tile) = (self.geometry, self.values, self.tile);
        match self.side {
            Side::Windows => {
                g.transform_windows(values, tile, self.channels, self.planes, self.scratch)
            }
            Side::Gradients => {
                g.transform_gradients(values, tile, self.channels, self.planes, self.scratch)
            }
        }
    }
}

/// A convolution's sizes, for the filtering `M`: images, channels in and out, input and output
/// maps, blocks (rows, columns), padding.
struct Geometry<const T: usize, const W: usize, M> {
    images: usize,
    channels: [usize; 2],
    input: [usize; 2],
    output: [usize; 2],
    blocks: [usize; 2],
    padding: [usize; 2],
    minimal: PhantomData<M>,
}

/// [`Geometry::transform_products`] into `y` as a [`pulp::WithSimd`] operation: `y` must hold
/// the whole output, and no other thread may touch the tile's rows of it.
struct Products<'a, G> {
    geometry: &'a G,
    tile: &'a Tile,
    buffers: &'a mut Buffers,
    y: *mut f32,
}

impl<const T: usize, const W: usize, M: Minimal<T, W>> pulp::WithSimd
    for Products<'_, Geometry<T, W, M>>
{
    type Output = ();

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _: S) {
        // SAFETY: as the one who made `self` promised
        unsafe {
            self.geometry
                .transform_products(self.tile, self.buffers, self.y)
        }
    }
}

impl<const T: usize, const W: usize, M: Minimal<T, W>> Geometry<T, W, M> {
    /// The sizes of a convolution of `[n, ci, h, w]` images into `co` channels with `padding`.
    fn new(shape @ [n, ci, h, w]: [usize; 4], co: usize, padding: [usize; 2]) -> Self {
        let output = output_map(shape, padding);
        Geometry {
            images: n,
            channels: [ci, co],
            input: [h, w],
            output,
            blocks: output.map(|size| size.div_ceil(T)),
            padding,
            minimal: PhantomData,
        }
    }

    /// A tile of every block of the batch.
    fn all_blocks(&self) -> Tile {
        Tile {
            images: 0..self.images,
            rows: 0..self.blocks[0],
        }
    }

    /// The count of `tile`'s blocks.
    fn blocks_of(&self, tile: &Tile) -> usize {
        tile.images.len() * tile.rows.len() * self.blocks[1]
    }

    /// Fills plane ξ of `planes` with position ξ of `A dY Aᵀ` of every block's T×T output
    /// gradients in `dy` (zero outside the map), for the output channels `channels`: row
    /// `o − channels.start` of `tile`'s blocks.
    #[inline(always)]
    fn transform_gradients(
        &self,
        dy: &[f32],
        tile: &Tile,
        channels: Range<usize>,
        planes: &mut [&mut [f32]],
        scratch: &mut Vec<f32>,
    ) {
        let ([_, co], [ho, wo], [_, bx]) = (self.channels, self.output, self.blocks);
        let rows = tile.rows.len();
        let m = self.blocks_of(tile);
        // per block row, each of its T output rows cut into its T phases of columns (bx
        // each), then A across each of the T rows (W × bx each)
        scratch.resize(T * bx + T * W * bx, 0.0);
        let (split, across) = scratch.split_at_mut(T * bx);
        for (k, img) in tile.images.clone().enumerate() {
            for (ch, o) in channels.clone().enumerate() {
                let plane = &dy[(img * co + o) * ho * wo..][..ho * wo];
                for (r, block_row) in tile.rows.clone().enumerate() {
                    let at = ch * m + (k * rows + r) * bx;
                    for (a, across) in across.chunks_exact_mut(W * bx).enumerate() {
                        let oy = T * block_row + a;
                        let row = (oy < ho).then(|| &plane[oy * wo..][..wo]);
                        split_row(row, 0, split_mut::<T>(split, bx));
                        let phases = from_fn(|t| out_of(split, t, bx));
                        columns(phases, split_mut(across, bx), M::output_gradient);
                    }
                    // then A down each column j, into positions W·i + j
                    for j in 0..W {
                        let inputs = from_fn(|a| out_of(across, a * W + j, bx));
                        let outputs = planes
                            .get_disjoint_mut(from_fn::<_, W, _>(|i| W * i + j))
                            .expect("distinct positions")
                            .map(|plane| &mut plane[at..at + bx]);
                        columns(inputs, outputs, M::output_gradient);
                    }
                }
            }
        }
    }

    /// Fills plane ξ of `planes` with position ξ of `Bᵀ d B` of the W×W window of every block
    /// of `tile`, for the input channels `channels`: row `c − channels.start` of the blocks.
    #[inline(always)]
    fn transform_windows(
        &self,
        x: &[f32],
        tile: &Tile,
        channels: Range<usize>,
        planes: &mut [&mut [f32]],
        scratch: &mut Vec<f32>,
    ) {
        let ([ci, _], [h, w], [_, bx], [py, px]) =
            (self.channels, self.input, self.blocks, self.padding);
        let rows = tile.rows.len();
        let m = self.blocks_of(tile);
        // per image, the padded input rows the tile's blocks read (T a block row, and 2
        // more), each cut into its T phases of columns, bx + 1 of each; then every block's
        // window with its rows turned (W² × m)
        let (band, phase) = (T * rows + 2, bx + 1);
        let padded = T * phase;
        scratch.resize(band * padded + W * W * m, 0.0);
        let (split, turned) = scratch.split_at_mut(band * padded);
        for (ch, c) in channels.enumerate() {
            for (k, img) in tile.images.clone().enumerate() {
                let plane = &x[(img * ci + c) * h * w..][..h * w];
                for (q, split) in split.chunks_exact_mut(padded).enumerate() {
                    let iy = (T * tile.rows.start + q).wrapping_sub(py);
                    let row = (iy < h).then(|| &plane[iy * w..][..w]);
                    split_row(row, px, split_mut::<T>(split, phase));
                }
                // Bᵀ across window row i of every block of block row r: block b's window
                // column jj is padded column T·b + jj of padded row T·r + i, entry
                // b + jj / T of phase jj mod T
                for r in 0..rows {
                    let first = (k * rows + r) * bx;
                    for i in 0..W {
                        let phases = &split[(T * r + i) * padded..][..padded];
                        let inputs = from_fn(|jj| &phases[(jj % T) * phase + jj / T..][..bx]);
                        let outputs = turned
                            .get_disjoint_mut(from_fn::<_, W, _>(|jj| {
                                let at = (W * i + jj) * m + first;
                                at..at + bx
                            }))
                            .expect("distinct positions");
                        columns(inputs, outputs, M::input);
                    }
                }
            }
            // then Bᵀ down each window column j
            for j in 0..W {
                let inputs = from_fn(|i| out_of(turned, W * i + j, m));
                let outputs = planes
                    .get_disjoint_mut(from_fn::<_, W, _>(|i| W * i + j))
                    .expect("distinct positions")
                    .map(|plane| &mut plane[ch * m..][..m]);
                columns(inputs, outputs, M::input);
            }
        }
    }

    /// Writes `Aᵀ M A` of every block's W² products in `buffers.products` into its T×T output
    /// pixels of `y` (`[n, co, ho, wo]`), those inside the map.
    ///
    /// # Safety
    /// `y` must hold the whole output, and no other thread may touch `tile`'s rows of it.
    #[inline(always)]
    unsafe fn transform_products(&self, tile: &Tile, buffers: &mut Buffers, y: *mut f32) {
        let ([_, co], [ho, wo], [_, bx]) = (self.channels, self.output, self.blocks);
        let (rows, m) = (tile.rows.len(), self.blocks_of(tile));
        // Aᵀ down each column j (T rows of W, m each), then across into the T×T pixels (T² of
        // m, pixel row a's column t at a·T + t)
        buffers.rows.resize(T * W * m + T * T * m, 0.0);
        let (down, pixels) = buffers.rows.split_at_mut(T * W * m);
        for o in 0..co {
            let product = |xi: usize| &buffers.products[(xi * co + o) * m..][..m];
            for j in 0..W {
                let inputs = from_fn(|i| product(W * i + j));
                let outputs = down
                    .get_disjoint_mut(from_fn::<_, T, _>(|a| {
                        let at = (a * W + j) * m;
                        at..at + m
                    }))
                    .expect("distinct rows");
                columns(inputs, outputs, M::output);
            }
            for (a, out) in down.chunks_exact(W * m).zip(pixels.chunks_exact_mut(T * m)) {
                let inputs = from_fn(|j| out_of(a, j, m));
                columns(inputs, split_mut::<T>(out, m), M::output);
            }
            for (k, img) in tile.images.clone().enumerate() {
                for (r, block_row) in tile.rows.clone().enumerate() {
                    let first = (k * rows + r) * bx;
                    for a in 0..T {
                        let oy = T * block_row + a;
                        if oy >= ho {
                            continue;
                        }
                        let at = ((img * co + o) * ho + oy) * wo;
                        // SAFETY: as the caller promised
                        let out = unsafe { std::slice::from_raw_parts_mut(y.add(at), wo) };
                        let pixel: [&[f32]; T] =
                            from_fn(|t| &pixels[(a * T + t) * m + first..][..bx]);
                        let mut chunks = out.chunks_exact_mut(T);
                        for (b, chunk) in (&mut chunks).enumerate() {
                            for (value, plane) in chunk.iter_mut().zip(pixel) {
                                *value = plane[b];
                            }
                        }
                        let last = wo / T;
                        for (value, plane) in chunks.into_remainder().iter_mut().zip(pixel) {
                            *value = plane[last];
                        }
                    }
                }
            }
        }
    }
}

/// The output map of a 3×3 convolution at stride 1 of `[n, ci, h, w]` images with `padding`
/// on each side ([`output_shape`] of that geometry).
fn output_map([_, _, h, w]: [usize; 4], padding: [usize; 2]) -> [usize; 2] {
    output_shape([h, w], [3, 3], ([1, 1], padding, padding, [1, 1]))
}

/// Slice `j` of `len` values in `values`.
fn out_of(values: &[f32], j: usize, len: usize) -> &[f32] {
    &values[j * len..][..len]
}

/// Cuts an input row `src`, padded by `px` zeros on the left and by zeros on the right up to
/// `T × phases[0].len()` columns, into its T phases: padded column q is `phases[q % T][q / T]`;
/// all zeros for a row of the padding (`None`).
#[inline(always)]
fn split_row<const T: usize>(src: Option<&[f32]>, px: usize, mut phases: [&mut [f32]; T]) {
    let Some(src) = src else {
        phases.iter_mut().for_each(|phase| phase.fill(0.0));
        return;
    };
    let len = phases[0].len();
    let padded = T * len;
    let column = |q: usize| q.checked_sub(px).and_then(|s| src.get(s)).copied();
    // the padded columns before the first whole group of T inside the row, and from the last
    // whole group on, one at a time
    let start = px.next_multiple_of(T);
    let groups = (px + src.len()).saturating_sub(start) / T;
    let end = start + T * groups;
    for q in (0..start).chain(end..padded) {
        phases[q % T][q / T] = column(q).unwrap_or(0.0);
    }
    // then each whole group of T input columns into entry q / T of the T phases
    let (first, inside) = (start / T, src.get(start - px..end - px).unwrap_or_default());
    for (g, group) in inside.chunks_exact(T).enumerate() {
        for (phase, value) in phases.iter_mut().zip(group) {
            phase[first + g] = *value;
        }
    }
}

/// The first `O` slices of `len` values in `values`.
fn split_mut<const O: usize>(values: &mut [f32], len: usize) -> [&mut [f32]; O] {
    let mut parts = values.chunks_exact_mut(len);
    from_fn(|_| parts.next().expect("enough values"))
}

/// `outputs[·][t] = f(inputs[·][t])` for every `t`: one transform applied to every block of a
/// tile, the blocks side by side in each slice.
#[inline(always)]
fn columns<const I: usize, const O: usize>(
    inputs: [&[f32]; I],
    outputs: [&mut [f32]; O],
    f: impl Fn([f32; I]) -> [f32; O],
) {
    let len = inputs[0].len();
    let inputs = inputs.map(|values| &values[..len]);
    let mut outputs = outputs.map(|values| &mut values[..len]);
    for t in 0..len {
        let values = f(from_fn(|i| inputs[i][t]));
        for (out, value) in outputs.iter_mut().zip(values) {
            out[t] = value;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One block of each filtering on a W × W input, one channel in and out, padding 0,
    /// against the T × T output by the definition.
    fn one_block<const T: usize, const W: usize, M: Minimal<T, W>>() {
        let x: Vec<f32> = (0..W * W).map(|v| v as f32 * 0.5 - 3.0).collect();
        let g = [1.0, -2.0, 0.5, 3.0, 0.25, -1.0, 2.0, 1.5, -0.75];
        let y = convolve(Geometry::<T, W, M>::new([1, 1, W, W], 1, [0, 0]), &x, &g);
        assert_eq!(y.len(), T * T);
        for (p, value) in y.iter().enumerate() {
            let (oy, ox) = (p / T, p % T);
            let direct: f32 = (0..9)
                .map(|k| g[k] * x[(oy + k / 3) * W + ox + k % 3])
                .sum();
            assert!(
                (value - direct).abs() < 1e-4,
                "F({T}): {p}: {value} vs {direct}"
            );
        }
    }

    #[test]
    fn one_block_is_the_direct_sum() {
        one_block::<2, 4, F2>();
        one_block::<4, 6, F4>();
    }
}
