//! 3×3 convolutions at stride 1 by Winograd's minimal filtering F(2×2, 3×3) (Lavin and Gray,
//! "Fast Algorithms for Convolutional Neural Networks", CVPR 2016). Each 2×2 block of output
//! pixels is `Aᵀ [(G g Gᵀ) ⊙ (Bᵀ d B)] A` of its 4×4 window `d` of input, so the sum over input
//! channels becomes 16 matrix products, `[blocks × ci] · [ci × co]`, one per position of the
//! 4×4 transformed window: 16 multiplications per block and channel pair where im2col's
//! product has 36 (2.25 times fewer; 1.7 on a 7 × 7 map, whose last row and column of blocks
//! are half outside). The input gradient of such a layer is one too (`conv.rs`), so both passes
//! use it; the weight gradient sums `(A dY Aᵀ) ⊙ (Bᵀ d B)` over the blocks, 16 products as
//! well. The transforms' loops run over a job's blocks side by side, compiled for AVX2 or
//! AVX-512 by `pulp` at run time; the products are `gemm`'s. Every job's sums run in a fixed
//! order, so a score is the same bits on every run and in every batch.

use rayon::prelude::*;

use super::Geometry as ConvGeometry;
use super::conv::{Tile, for_each_tile, matmul, sum_over_groups, tiles};

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

/// Whether [`weight_grad3x3`] computes the weight gradient of such a convolution with an
/// output of `[ho, wo]`: where [`applies`] admits it and an image has at least 32 blocks. On
/// smaller maps (7 × 7: 16 blocks) the per-position sums, `16 × co × ci` values updated by
/// products only a few hundred blocks long, cost more than im2col's 36 multiplications save.
pub(super) fn weight_grad_applies(
    kernel: [usize; 2],
    geometry: ConvGeometry,
    channels: [usize; 2],
    [ho, wo]: [usize; 2],
) -> bool {
    applies(kernel, geometry, channels) && ho.div_ceil(2) * wo.div_ceil(2) >= 32
}

/// Blocks of 2×2 output pixels per job: the job's 16 transformed windows and 16 products stay
/// in cache.
const TILE_BLOCKS: usize = 128;

/// The positions of a transformed 4×4 window.
const WINDOW: usize = 16;

/// `Bᵀ d` for a column `d` of four input values.
#[inline(always)]
fn input_transform([d0, d1, d2, d3]: [f32; 4]) -> [f32; 4] {
    [d0 - d2, d1 + d2, d2 - d1, d1 - d3]
}

/// `G g` for a column `g` of three kernel values.
#[inline(always)]
fn kernel_transform([g0, g1, g2]: [f32; 3]) -> [f32; 4] {
    [g0, (g0 + g1 + g2) * 0.5, (g0 - g1 + g2) * 0.5, g2]
}

/// `Aᵀ m` for a column `m` of four products.
#[inline(always)]
fn output_transform([m0, m1, m2, m3]: [f32; 4]) -> [f32; 2] {
    [m0 + m1 + m2, m1 - m2 - m3]
}

/// `G g Gᵀ` of every kernel of `weight` (`[co, ci, 3, 3]`), laid out `[16, co, ci]`:
/// position ξ's matrix, transposed, is the right-hand side of its product. One job per output
/// channel writes its row of all 16 matrices.
fn transformed_kernels(weight: &[f32], [ci, co]: [usize; 2]) -> Vec<f32> {
    let len = WINDOW * co * ci;
    let mut u = Vec::<f32>::with_capacity(len);
    let u_addr = u.as_mut_ptr() as usize;
    (0..co).into_par_iter().for_each(|o| {
        pulp::Arch::new().dispatch(Kernels {
            weight: &weight[o * ci * 9..][..ci * 9],
            // SAFETY: position ξ's row o of `u`, which no other job writes
            planes: std::array::from_fn(|xi| (u_addr as *mut f32).wrapping_add((xi * co + o) * ci)),
        })
    });
    // SAFETY: the jobs have written all `len` values
    unsafe { u.set_len(len) };
    u
}

/// `G g Gᵀ` of one output channel's kernels (`[ci, 3, 3]`), written to `planes[ξ][c]`.
struct Kernels<'a> {
    weight: &'a [f32],
    planes: [*mut f32; WINDOW],
}

impl pulp::WithSimd for Kernels<'_> {
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
        let tap: [&[f32]; 9] = std::array::from_fn(|a| &taps[a * ci..][..ci]);
        let mut rows = vec![0f32; WINDOW * ci];
        let mut parts = rows.chunks_exact_mut(ci);
        let out: [&mut [f32]; WINDOW] = std::array::from_fn(|_| parts.next().expect("16 rows"));
        for c in 0..ci {
            // G g: four rows of three; then (G g) Gᵀ: each of those rows turned the same way
            let g = |a: usize| tap[a][c];
            let a0 = kernel_transform([g(0), g(3), g(6)]);
            let a1 = kernel_transform([g(1), g(4), g(7)]);
            let a2 = kernel_transform([g(2), g(5), g(8)]);
            for i in 0..4 {
                let row = kernel_transform([a0[i], a1[i], a2[i]]);
                for (j, value) in row.into_iter().enumerate() {
                    out[4 * i + j][c] = value;
                }
            }
        }
        for (row, plane) in out.iter().zip(self.planes) {
            // SAFETY: `plane` holds this output channel's `ci` values of position ξ
            unsafe { std::ptr::copy_nonoverlapping(row.as_ptr(), plane, ci) };
        }
    }
}

/// One job's buffers: the transformed windows `[16, ci, blocks]`, the products (or the
/// transformed output gradients) `[16, co, blocks]`, and the transforms' scratch.
#[derive(Default)]
struct Buffers {
    windows: Vec<f32>,
    products: Vec<f32>,
    rows: Vec<f32>,
}

/// The convolution of `x` (`[n, ci, h, w]`) by `weight` (`[co, ci, 3, 3]`) at stride 1 with
/// `padding` on each side, as [`applies`] admits it: `[n, co, ho, wo]`.
pub(super) fn conv3x3(
    x: &[f32],
    [n, ci, h, w]: [usize; 4],
    weight: &[f32],
    co: usize,
    padding: [usize; 2],
) -> Vec<f32> {
    let geometry = Geometry::new([ci, h, w], co, padding);
    let ([ho, wo], [by, bx]) = (geometry.output, geometry.blocks);
    let u = transformed_kernels(weight, [ci, co]);
    // as in `conv.rs`: several whole images a job only where one image's products take
    // `gemm`'s general path too, so that an image's output does not depend on its batch
    let group = (co > 64 && by * bx > 1).then_some(4);
    let jobs = tiles(0..n, [by, bx], group, TILE_BLOCKS);
    // every output value is written once, by the job of its image and block row
    let len = n * co * ho * wo;
    let mut y = Vec::<f32>::with_capacity(len);
    let y_addr = y.as_mut_ptr() as usize;
    let run = |buffers: &mut Buffers, tile: &Tile, parallelism| {
        // the transforms' loops compiled for the machine's vector width
        let arch = pulp::Arch::new();
        let m = arch.dispatch(Windows {
            geometry: &geometry,
            x,
            tile,
            buffers,
        });
        for xi in 0..WINDOW {
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
    for_each_tile(&jobs, run);
    // SAFETY: the jobs have written all `len` values
    unsafe { y.set_len(len) };
    y
}

/// The gradient of [`conv3x3`]'s weight given its output's, `dy` (`[n, co, ho, wo]`):
/// `Gᵀ [Σ over blocks (A dY Aᵀ) ⊙ (Bᵀ d B)] G` for each kernel, the sum over each position's
/// blocks a matrix product `[co × blocks] · [blocks × ci]`, 16 products of a quarter of
/// im2col's length. The images are summed in groups as im2col's are ([`sum_over_groups`]),
/// so that the rounding depends on the batch alone; returns `[co, ci, 3, 3]`.
pub(super) fn weight_grad3x3(
    x: &[f32],
    [n, ci, h, w]: [usize; 4],
    dy: &[f32],
    co: usize,
    padding: [usize; 2],
) -> Vec<f32> {
    let geometry = Geometry::new([ci, h, w], co, padding);
    let sums = sum_over_groups(n, |images, parallelism| {
        let arch = pulp::Arch::new();
        let mut sums = vec![0f32; WINDOW * co * ci];
        let mut buffers = Buffers::default();
        for (t, tile) in tiles(images, geometry.blocks, Some(1), TILE_BLOCKS)
            .iter()
            .enumerate()
        {
            let geometry = &geometry;
            let m = arch.dispatch(Windows {
                geometry,
                x,
                tile,
                buffers: &mut buffers,
            });
            arch.dispatch(Gradients {
                geometry,
                dy,
                tile,
                buffers: &mut buffers,
            });
            for xi in 0..WINDOW {
                // sums[ξ][co × ci] (+)= (A dY Aᵀ)[ξ][co × m] · (Bᵀ d B)[ξ]ᵀ[m × ci]
                // SAFETY: the three buffers hold these matrices and `sums` is this group's own
                unsafe {
                    matmul(
                        [co, ci, m],
                        sums[xi * co * ci..].as_mut_ptr(),
                        [ci, 1],
                        t > 0,
                        buffers.products[xi * co * m..].as_ptr(),
                        [m, 1],
                        buffers.windows[xi * ci * m..].as_ptr(),
                        [1, m],
                        parallelism,
                    );
                }
            }
        }
        sums
    });
    // Gᵀ S G of each kernel's 16 sums: down each column, then across each of the 3 rows
    let mut dw = vec![0f32; co * ci * 9];
    dw.par_chunks_mut(9).enumerate().for_each(|(k, out)| {
        let sum = |xi: usize| sums[xi * co * ci + k];
        let columns: [[f32; 3]; 4] =
            std::array::from_fn(|j| kernel_gradient([sum(j), sum(4 + j), sum(8 + j), sum(12 + j)]));
        for i in 0..3 {
            let row = kernel_gradient([columns[0][i], columns[1][i], columns[2][i], columns[3][i]]);
            out[3 * i..3 * i + 3].copy_from_slice(&row);
        }
    });
    dw
}

/// `Gᵀ s` for a column `s` of four sums: the gradient of [`kernel_transform`].
#[inline(always)]
fn kernel_gradient([s0, s1, s2, s3]: [f32; 4]) -> [f32; 3] {
    let (plus, minus) = ((s1 + s2) * 0.5, (s1 - s2) * 0.5);
    [s0 + plus, minus, plus + s3]
}

/// `A y` for a column `y` of two output gradients: the gradient of [`output_transform`].
#[inline(always)]
fn output_gradient([y0, y1]: [f32; 2]) -> [f32; 4] {
    [y0, y0 + y1, y0 - y1, -y1]
}

/// [`Geometry::transform_gradients`] as a [`pulp::WithSimd`] operation.
struct Gradients<'a> {
    geometry: &'a Geometry,
    dy: &'a [f32],
    tile: &'a Tile,
    buffers: &'a mut Buffers,
}

impl pulp::WithSimd for Gradients<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _: S) {
        self.geometry
            .transform_gradients(self.dy, self.tile, self.buffers)
    }
}

/// A convolution's sizes: channels in and out, input and output maps, blocks (rows, columns),
/// padding.
struct Geometry {
    channels: [usize; 2],
    input: [usize; 2],
    output: [usize; 2],
    blocks: [usize; 2],
    padding: [usize; 2],
}

/// [`Geometry::transform_windows`] as a [`pulp::WithSimd`] operation.
struct Windows<'a> {
    geometry: &'a Geometry,
    x: &'a [f32],
    tile: &'a Tile,
    buffers: &'a mut Buffers,
}

impl pulp::WithSimd for Windows<'_> {
    type Output = usize;

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _: S) -> usize {
        self.geometry
            .transform_windows(self.x, self.tile, self.buffers)
    }
}

/// [`Geometry::transform_products`] into `y` as a [`pulp::WithSimd`] operation: `y` must hold
/// the whole output, and no other thread may touch the tile's rows of it.
struct Products<'a> {
    geometry: &'a Geometry,
    tile: &'a Tile,
    buffers: &'a mut Buffers,
    y: *mut f32,
}

impl pulp::WithSimd for Products<'_> {
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

impl Geometry {
    /// The sizes of a convolution of `[ci, h, w]` images into `co` channels with `padding`.
    fn new([ci, h, w]: [usize; 3], co: usize, padding: [usize; 2]) -> Self {
        let output = [h + 2 * padding[0] - 2, w + 2 * padding[1] - 2];
        Geometry {
            channels: [ci, co],
            input: [h, w],
            output,
            blocks: output.map(|size| size.div_ceil(2)),
            padding,
        }
    }

    /// Fills `buffers.products` with `A dY Aᵀ` of every block's 2×2 output gradients in `dy`
    /// (zero outside the map), for every output channel, after
    /// [`transform_windows`](Self::transform_windows) sized it for `tile`.
    #[inline(always)]
    fn transform_gradients(&self, dy: &[f32], tile: &Tile, buffers: &mut Buffers) {
        let ([_, co], [ho, wo], [_, bx]) = (self.channels, self.output, self.blocks);
        let rows = tile.rows.len();
        let m = tile.images.len() * rows * bx;
        // per block row, its two output rows' even and odd columns (bx each), then A across
        // each of the two rows (4 × bx each)
        buffers.rows.resize(4 * bx + 8 * bx, 0.0);
        let (split, across) = buffers.rows.split_at_mut(4 * bx);
        let mut planes: Vec<&mut [f32]> = buffers.products.chunks_exact_mut(co * m).collect();
        for (k, img) in tile.images.clone().enumerate() {
            for o in 0..co {
                let plane = &dy[(img * co + o) * ho * wo..][..ho * wo];
                for (r, block_row) in tile.rows.clone().enumerate() {
                    let at = o * m + (k * rows + r) * bx;
                    for (a, (split, across)) in split
                        .chunks_exact_mut(2 * bx)
                        .zip(across.chunks_exact_mut(4 * bx))
                        .enumerate()
                    {
                        let (even, odd) = split.split_at_mut(bx);
                        let oy = 2 * block_row + a;
                        let row = (oy < ho).then(|| &plane[oy * wo..][..wo]);
                        split_row(row, 0, even, odd);
                        columns([even, odd], split_mut(across, bx), output_gradient);
                    }
                    // then A down each column j, into positions 4·i + j
                    let (top, bottom) = across.split_at(4 * bx);
                    for j in 0..4 {
                        let inputs = [out_of(top, j, bx), out_of(bottom, j, bx)];
                        let outputs = planes
                            .get_disjoint_mut([j, 4 + j, 8 + j, 12 + j])
                            .expect("four distinct positions")
                            .map(|plane| &mut plane[at..at + bx]);
                        columns(inputs, outputs, output_gradient);
                    }
                }
            }
        }
    }

    /// Fills `buffers.windows` with `Bᵀ d B` of the 4×4 window of every block of `tile`, for
    /// every input channel, and sizes `buffers.products`; returns the tile's block count.
    #[inline(always)]
    fn transform_windows(&self, x: &[f32], tile: &Tile, buffers: &mut Buffers) -> usize {
        let ([ci, co], [h, w], [_, bx], [py, px]) =
            (self.channels, self.input, self.blocks, self.padding);
        let rows = tile.rows.len();
        let m = tile.images.len() * rows * bx;
        buffers.windows.resize(WINDOW * ci * m, 0.0);
        buffers.products.resize(WINDOW * co * m, 0.0);
        // per image, the padded input rows the tile's blocks read (2 a block row, and 2 more),
        // each as its even and then its odd columns, bx + 1 of each; then every block's
        // window with its rows turned (16 × m)
        let (band, half) = (2 * rows + 2, bx + 1);
        let padded = 2 * half;
        buffers.rows.resize(band * padded + WINDOW * m, 0.0);
        let (split, turned) = buffers.rows.split_at_mut(band * padded);
        let mut planes: Vec<&mut [f32]> = buffers.windows.chunks_exact_mut(ci * m).collect();
        for c in 0..ci {
            for (k, img) in tile.images.clone().enumerate() {
                let plane = &x[(img * ci + c) * h * w..][..h * w];
                for (q, split) in split.chunks_exact_mut(padded).enumerate() {
                    let iy = (2 * tile.rows.start + q).wrapping_sub(py);
                    let (even, odd) = split.split_at_mut(half);
                    let row = (iy < h).then(|| &plane[iy * w..][..w]);
                    split_row(row, px, even, odd);
                }
                // Bᵀ across window row i of every block of block row r: block b's window
                // columns are even[b], odd[b], even[b + 1], odd[b + 1] of padded row 2r + i
                for r in 0..rows {
                    let first = (k * rows + r) * bx;
                    for i in 0..4 {
                        let (even, odd) = split[(2 * r + i) * padded..][..padded].split_at(half);
                        let inputs = [&even[..bx], &odd[..bx], &even[1..], &odd[1..]];
                        let outputs = [0, 1, 2, 3].map(|jj| (4 * i + jj) * m + first);
                        let outputs = turned
                            .get_disjoint_mut(outputs.map(|at| at..at + bx))
                            .expect("four distinct positions");
                        columns(inputs, outputs, input_transform);
                    }
                }
            }
            // then Bᵀ down each window column j
            for j in 0..4 {
                let inputs = [0, 1, 2, 3].map(|i| out_of(turned, 4 * i + j, m));
                let outputs = planes
                    .get_disjoint_mut([j, 4 + j, 8 + j, 12 + j])
                    .expect("four distinct positions")
                    .map(|plane| &mut plane[c * m..][..m]);
                columns(inputs, outputs, input_transform);
            }
        }
        m
    }

    /// Writes `Aᵀ M A` of every block's 16 products in `buffers.products` into its 2×2 output
    /// pixels of `y` (`[n, co, ho, wo]`), those inside the map.
    ///
    /// # Safety
    /// `y` must hold the whole output, and no other thread may touch `tile`'s rows of it.
    #[inline(always)]
    unsafe fn transform_products(&self, tile: &Tile, buffers: &mut Buffers, y: *mut f32) {
        let ([_, co], [ho, wo], [_, bx]) = (self.channels, self.output, self.blocks);
        let rows = tile.rows.len();
        let m = tile.images.len() * rows * bx;
        // Aᵀ down each column j (two rows of four, m each), then across into the 2×2 pixels
        // (four of m)
        buffers.rows.resize(12 * m, 0.0);
        let (down, pixels) = buffers.rows.split_at_mut(8 * m);
        for o in 0..co {
            let product = |xi: usize| &buffers.products[(xi * co + o) * m..][..m];
            for j in 0..4 {
                let inputs = [0, 1, 2, 3].map(|i| product(4 * i + j));
                let (first, second) = down.split_at_mut(4 * m);
                let outputs = [&mut first[j * m..][..m], &mut second[j * m..][..m]];
                columns(inputs, outputs, output_transform);
            }
            for (a, out) in down.chunks_exact(4 * m).zip(pixels.chunks_exact_mut(2 * m)) {
                let inputs = [0, 1, 2, 3].map(|j| out_of(a, j, m));
                columns(inputs, split_mut(out, m), output_transform);
            }
            for (k, img) in tile.images.clone().enumerate() {
                for (r, block_row) in tile.rows.clone().enumerate() {
                    let first = (k * rows + r) * bx;
                    for a in 0..2 {
                        let oy = 2 * block_row + a;
                        if oy >= ho {
                            continue;
                        }
                        let left = &pixels[2 * a * m + first..][..bx];
                        let right = &pixels[(2 * a + 1) * m + first..][..bx];
                        let at = ((img * co + o) * ho + oy) * wo;
                        // SAFETY: as the caller promised
                        let out = unsafe { std::slice::from_raw_parts_mut(y.add(at), wo) };
                        let mut pairs = out.chunks_exact_mut(2);
                        for (pair, (l, r)) in (&mut pairs).zip(left.iter().zip(right)) {
                            (pair[0], pair[1]) = (*l, *r);
                        }
                        if let [last] = pairs.into_remainder() {
                            *last = left[bx - 1];
                        }
                    }
                }
            }
        }
    }
}

/// Slice `j` of `len` values in `values`.
fn out_of(values: &[f32], j: usize, len: usize) -> &[f32] {
    &values[j * len..][..len]
}

/// The even and odd columns of an input row `src` padded by `px` zeros on the left and by
/// zeros on the right up to `even.len() + odd.len()` columns; all zeros for a row of the
/// padding (`None`).
#[inline(always)]
fn split_row(src: Option<&[f32]>, px: usize, even: &mut [f32], odd: &mut [f32]) {
    let Some(src) = src else {
        even.fill(0.0);
        odd.fill(0.0);
        return;
    };
    let padded = even.len() + odd.len();
    for q in (0..px).chain(px + src.len()..padded) {
        *if q % 2 == 0 {
            &mut even[q / 2]
        } else {
            &mut odd[q / 2]
        } = 0.0;
    }
    // padded column 2j + px takes input column 2j, and 2j + 1 + px input column 2j + 1
    let (first, second) = if px.is_multiple_of(2) {
        (even, odd)
    } else {
        (odd, even)
    };
    let (first, second) = (&mut first[px / 2..], &mut second[px.div_ceil(2)..]);
    let pairs = src.chunks_exact(2);
    if let [last] = pairs.remainder() {
        first[src.len() / 2] = *last;
    }
    for ((a, b), pair) in first.iter_mut().zip(second.iter_mut()).zip(pairs) {
        (*a, *b) = (pair[0], pair[1]);
    }
}

/// The first `O` slices of `len` values in `values`.
fn split_mut<const O: usize>(values: &mut [f32], len: usize) -> [&mut [f32]; O] {
    let mut parts = values.chunks_exact_mut(len);
    std::array::from_fn(|_| parts.next().expect("enough values"))
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
        let values = f(std::array::from_fn(|i| inputs[i][t]));
        for (out, value) in outputs.iter_mut().zip(values) {
            out[t] = value;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_block_is_the_direct_sum() {
        // a 4×4 input, one channel in and out, padding 0: the 2×2 output by the definition
        let x: Vec<f32> = (0..16).map(|v| v as f32 * 0.5 - 3.0).collect();
        let g = [1.0, -2.0, 0.5, 3.0, 0.25, -1.0, 2.0, 1.5, -0.75];
        let y = conv3x3(&x, [1, 1, 4, 4], &g, 1, [0, 0]);
        assert_eq!(y.len(), 4);
        for (p, value) in y.iter().enumerate() {
            let (oy, ox) = (p / 2, p % 2);
            let direct: f32 = (0..9)
                .map(|k| g[k] * x[(oy + k / 3) * 4 + ox + k % 3])
                .sum();
            assert!((value - direct).abs() < 1e-5, "{p}: {value} vs {direct}");
        }
    }
}
