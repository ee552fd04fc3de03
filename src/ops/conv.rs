//! A 2-D convolution (one group, any padding) as im2col copies and matrix products.
//! Forward: per tile of about 512 output pixels (a band of rows of one image, or several whole
//! images where a map is smaller than 256 pixels, so that a product is not a few dozen rows
//! long), the tile's patch matrix is copied from the NCHW map and multiplied by the weight
//! straight into the NCHW output (burn copies the whole map to NHWC on one thread first and
//! scatters each tile's product afterwards). Weight gradient:
//! `dW[co, (ci, i, j)] += dY[co, p] · col[(ci, i, j), p]` over the output pixels `p`; burn
//! derives it as a convolution of the input by the output gradient, whose matrix products are
//! only 9 (3×3) or 1 (1×1) columns wide; here the sum runs over the same kind of tiles as the
//! forward pass, images summed in a fixed number of groups so that the rounding depends on the
//! batch alone. Input gradient at stride 1: the forward product of the output gradient by the
//! kernel turned half a turn with its channel axes swapped (a full correlation; for a 1×1
//! kernel, the transposed weight times the output gradient); larger strides keep burn's own.
//! 3×3 layers at stride 1 between 16 channels or more, padded alike on both sides, take
//! Winograd's filterings instead (`winograd.rs`): F(4×4, 3×3) for the forward pass, and so the
//! input gradient, on maps from 7 × 7, F(2×2, 3×3) below; their weight gradient summed in
//! groups of images on the larger maps, over the whole batch by output channels on the small
//! ones and between many channels. Asymmetric padding
//! (EfficientNet's stem: "same" at stride 2, the odd pixel after) is only a matter of which
//! patch positions fall outside the map, so it costs no copy of the input.

use burn::backend::autodiff::Autodiff;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::flex::FlexTensor;
use burn::backend::ops::{ConvOptions, ModuleOps};
use burn::backend::tensor::FloatTensor;
use burn::backend::{Backend, DType, Dispatch, Flex, TensorMetadata, backend_extension};
use burn::nn::conv::Conv2d;
use burn::prelude::*;
use rayon::prelude::*;
use std::ops::Range;

use super::depthwise::depthwise_conv2d;
use super::jobs::{Tile, for_each_job, matmul, sum_over_groups, tiles};
use super::winograd;
use super::{Geometry, gather, output_shape, padding_pairs, tensor};

fn options((stride, before, after, dilation): Geometry) -> ConvOptions<2> {
    let pairs = [0, 1].map(|a| (before[a], after[a]));
    ConvOptions::new_with_padding(stride, pairs, dilation, 1)
}

/// The convolution, for the backends that have it.
#[backend_extension(Autodiff, Flex)]
pub trait ConvKernel: Backend {
    /// `x` (`[n, ci, h, w]`) convolved with `weight` (`[co, ci, kh, kw]`), no bias.
    fn conv2d_gemm(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        geometry: Geometry,
    ) -> FloatTensor<Self>;
}

/// The two gradients of [`ConvKernel::conv2d_gemm`], for the backends the autodiff step runs
/// on.
pub trait ConvGradients: Backend {
    /// The gradient of [`conv2d_gemm`](ConvKernel::conv2d_gemm)'s weight given its output's.
    fn conv2d_gemm_weight_grad(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        grad: FloatTensor<Self>,
        geometry: Geometry,
    ) -> FloatTensor<Self>;

    /// The gradient of [`conv2d_gemm`](ConvKernel::conv2d_gemm)'s input `x` given its
    /// output's.
    fn conv2d_gemm_input_grad(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        grad: FloatTensor<Self>,
        geometry: Geometry,
    ) -> FloatTensor<Self>;
}

/// `conv.forward(x)` on `flex`: a depthwise layer (f32) through
/// [`DepthwiseKernel`](super::depthwise::DepthwiseKernel), one group through [`ConvKernel`];
/// through burn's layer otherwise.
pub fn conv2d(conv: &Conv2d, x: Tensor<4>) -> Tensor<4> {
    let device = x.device();
    if !super::available(&device) {
        return conv.forward(x);
    }
    let [co, per_group, _, _] = conv.weight.dims();
    let [_, _, h, w] = x.dims();
    let (before, after) = padding_pairs(&conv.padding, [h, w], conv.kernel_size, conv.stride);
    if conv.groups == co && per_group == 1 && x.dtype() == DType::F32 {
        let y = depthwise_conv2d(
            x,
            conv.weight.val(),
            conv.stride,
            before,
            after,
            conv.dilation,
        );
        return with_bias(conv, y);
    }
    if conv.groups != 1 {
        return conv.forward(x);
    }
    let y = Tensor::from_dispatch(Dispatch::conv2d_gemm(
        x.into_dispatch(),
        conv.weight.val().into_dispatch(),
        (conv.stride, before, after, conv.dilation),
    ));
    with_bias(conv, y)
}

/// `y` plus the layer's bias, if it has one.
fn with_bias(conv: &Conv2d, y: Tensor<4>) -> Tensor<4> {
    match &conv.bias {
        Some(bias) => {
            let [c] = bias.shape().dims();
            y + bias.val().reshape([1, c, 1, 1])
        }
        None => y,
    }
}

/// A batch of images (`[n, ci, h, w]`), each seen as its patch matrix `[ci·kh·kw, ho·wo]`
/// (im2col), whose rows are filled a range of output rows at a time.
struct Patches<'a> {
    x: &'a [f32],
    channels: usize,
    input: [usize; 2],
    kernel: [usize; 2],
    output: [usize; 2],
    geometry: Geometry,
}

/// Output pixels per tile (forward pass and weight gradient), whose patch matrix stays in
/// cache between the copy and the product.
const TILE_PIXELS: usize = 512;

impl<'a> Patches<'a> {
    /// The patch matrices of the images in `x`, each `[ci, h, w]`, for a kernel of `kernel`
    /// and an output of `output`.
    fn new(
        x: &'a [f32],
        [channels, h, w]: [usize; 3],
        kernel: [usize; 2],
        output: [usize; 2],
        geometry: Geometry,
    ) -> Self {
        Patches {
            x,
            channels,
            input: [h, w],
            kernel,
            output,
            geometry,
        }
    }

    /// The number of rows of each image's patch matrix.
    fn rows(&self) -> usize {
        self.channels * self.kernel[0] * self.kernel[1]
    }

    /// Fills `col` with `tile`'s patch matrix, `[rows, m]`, each row holding the tile's
    /// images side by side; returns `m`, the tile's output pixels.
    fn fill_tile(&self, tile: &Tile, col: &mut Vec<f32>) -> usize {
        let per_image = tile.rows.len() * self.output[1];
        let m = tile.images.len() * per_image;
        col.resize(self.rows() * m, 0.0);
        for (k, img) in tile.images.clone().enumerate() {
            for (row, out) in col.chunks_exact_mut(m).enumerate() {
                let out = &mut out[k * per_image..(k + 1) * per_image];
                self.fill_row(img, row, tile.rows.clone(), out);
            }
        }
        m
    }

    /// Fills `out` with image `img`'s patch-matrix row `row` (channel, kernel row, kernel
    /// column) over the output rows `oys`, `wo` values per output row.
    fn fill_row(&self, img: usize, row: usize, oys: Range<usize>, out: &mut [f32]) {
        let ([h, w], [kh, kw], [_, wo]) = (self.input, self.kernel, self.output);
        let (stride, padding, _, dilation) = self.geometry;
        let (ci, i, j) = (
            img * self.channels + row / (kh * kw),
            row / kw % kh,
            row % kw,
        );
        let plane = &self.x[ci * h * w..(ci + 1) * h * w];
        // output columns ox whose input column ox·s + j·d − p lies inside the image
        let shift = j * dilation[1];
        let first = padding[1].saturating_sub(shift).div_ceil(stride[1]).min(wo);
        let end = if w + padding[1] > shift {
            ((w + padding[1] - shift - 1) / stride[1] + 1).min(wo)
        } else {
            0
        }
        .max(first);
        for (oy, out) in oys.zip(out.chunks_exact_mut(wo)) {
            let iy = (oy * stride[0] + i * dilation[0]) as isize - padding[0] as isize;
            if iy < 0 || iy >= h as isize {
                out.fill(0.0);
                continue;
            }
            let src = &plane[iy as usize * w..(iy as usize + 1) * w];
            out[..first].fill(0.0);
            out[end..].fill(0.0);
            let ix0 = first * stride[1] + shift - padding[1];
            gather(&src[ix0..], stride[1], &mut out[first..end]);
        }
    }
}

impl ConvKernel for Flex {
    fn conv2d_gemm(x: FlexTensor, weight: FlexTensor, geometry: Geometry) -> FlexTensor {
        if x.dtype() != DType::F32 {
            return <Flex as ModuleOps<Flex>>::conv2d(x, weight, None, options(geometry));
        }
        let (stride, before, after, _) = geometry;
        let [n, ci, h, w] = x.shape().dims();
        let [co, _, kh, kw] = weight.shape().dims();
        let [ho, wo] = output_shape([h, w], [kh, kw], geometry);
        let (x, weight) = (x.to_contiguous(), weight.to_contiguous());
        let (xs, ws) = (x.storage::<f32>(), weight.storage::<f32>());
        if winograd::applies([kh, kw], geometry, [ci, co]) {
            let y = winograd::conv3x3(xs, [n, ci, h, w], ws, co, before);
            return tensor(y, Shape::new([n, co, ho, wo]));
        }
        let pixels = ho * wo;
        let patches = Patches::new(xs, [ci, h, w], [kh, kw], [ho, wo], geometry);
        let rows = patches.rows();
        // a 1×1 convolution at stride 1 is its own patch matrix, one image at a time
        let pointwise =
            [kh, kw] == [1, 1] && stride == [1, 1] && before == [0, 0] && after == before;
        // `gemm` takes other paths, with their own blocking of the sum, for products of one
        // row or column or of at most 64 rows and 64 columns: several images a tile only where
        // one image's product takes the general path too, so that an image's output does not
        // depend on the batch around it
        let group = (co > 64 && pixels > 1).then_some(4);
        let tiles = tiles(0..n, [ho, wo], group, TILE_PIXELS);
        // every output value is written once, by its tile's product (which does not read its
        // destination) or the copy after it
        let len = n * co * pixels;
        let mut y = Vec::<f32>::with_capacity(len);
        let y_addr = y.as_mut_ptr() as usize;
        // y[images][co][tile] = patchesᵀ[tile × rows] · weightᵀ[rows × co], written in place
        // for one image, through `out` for several
        let run = |(col, out): &mut (Vec<f32>, Vec<f32>), tile: &Tile, parallelism| {
            let (img, first) = (tile.images.start, tile.rows.start * wo);
            let alone = tile.images.len() == 1;
            let (lhs, lhs_cs, m) = if pointwise && alone {
                let lhs = xs[img * ci * pixels + first..].as_ptr();
                (lhs, pixels, tile.rows.len() * wo)
            } else {
                let m = patches.fill_tile(tile, col);
                (col.as_ptr(), m, m)
            };
            let (dst, dst_cs) = if alone {
                let dst = (y_addr as *mut f32).wrapping_add(img * co * pixels + first);
                (dst, pixels)
            } else {
                out.resize(co * m, 0.0);
                (out.as_mut_ptr(), m)
            };
            // SAFETY: `dst` with these strides spans this job's tile of `y`, which no other
            // job writes, or its own buffer; `lhs` and the weight hold the other two matrices.
            unsafe {
                matmul(
                    [m, co, rows],
                    dst,
                    [1, dst_cs],
                    false,
                    lhs,
                    [1, lhs_cs],
                    ws.as_ptr(),
                    [1, rows],
                    parallelism,
                );
            }
            if !alone {
                for (c, out) in out.chunks_exact(m).enumerate() {
                    for (k, image) in out.chunks_exact(pixels).enumerate() {
                        let at = (img + k) * co * pixels + c * pixels;
                        // SAFETY: whole images of `y` belong to this job alone
                        unsafe {
                            let dst = (y_addr as *mut f32).add(at);
                            std::ptr::copy_nonoverlapping(image.as_ptr(), dst, pixels);
                        }
                    }
                }
            }
        };
        for_each_job(&tiles, run);
        // SAFETY: the tiles have written all `len` values
        unsafe { y.set_len(len) };
        tensor(y, Shape::new([n, co, ho, wo]))
    }
}

impl ConvGradients for Flex {
    fn conv2d_gemm_weight_grad(
        x: FlexTensor,
        weight: FlexTensor,
        grad: FlexTensor,
        geometry: Geometry,
    ) -> FlexTensor {
        if x.dtype() != DType::F32 {
            return <Flex as ModuleOps<Flex>>::conv2d_weight_backward(
                x,
                weight,
                grad,
                options(geometry),
            );
        }
        let [n, ci, h, w] = x.shape().dims();
        let [co, _, kh, kw] = weight.shape().dims();
        let [_, _, ho, wo] = grad.shape().dims();
        let (x, grad) = (x.to_contiguous(), grad.to_contiguous());
        let (xs, dy) = (x.storage::<f32>(), grad.storage::<f32>());
        if winograd::applies([kh, kw], geometry, [ci, co]) {
            let dw = winograd::weight_grad3x3(xs, [n, ci, h, w], dy, co, geometry.1);
            return tensor(dw, weight.shape());
        }
        let pixels = ho * wo;
        let patches = Patches::new(xs, [ci, h, w], [kh, kw], [ho, wo], geometry);
        let rows = patches.rows();
        // the images in a fixed number of groups, each summed into its own gradient on one
        // thread (the sum's order, and so its rounding, depends on the batch only)
        let dw = sum_over_groups(n, |images, parallelism| {
            let mut dw = vec![0f32; co * rows];
            let (mut col, mut dy_tiles) = (Vec::new(), Vec::new());
            // the forward pass's kind of tiles, so that each tile's patch matrix stays in cache
            for (t, tile) in tiles(images, [ho, wo], Some(1), TILE_PIXELS)
                .iter()
                .enumerate()
            {
                let m = patches.fill_tile(tile, &mut col);
                // the tile's output gradient, `[co, m]`: in place for one image, its images
                // side by side in each row for several
                let (dy_tile, dy_rs) = if tile.images.len() == 1 {
                    let first = tile.images.start * co * pixels + tile.rows.start * wo;
                    (&dy[first..], pixels)
                } else {
                    dy_tiles.clear();
                    for c in 0..co {
                        for img in tile.images.clone() {
                            let at = img * co * pixels + c * pixels;
                            dy_tiles.extend_from_slice(&dy[at..at + pixels]);
                        }
                    }
                    (&dy_tiles[..], m)
                };
                // dw[co × rows] (+)= dy_tile[co × m] · colᵀ[m × rows]
                // SAFETY: the three buffers hold these matrices and `dw` is this group's own.
                unsafe {
                    matmul(
                        [co, rows, m],
                        dw.as_mut_ptr(),
                        [rows, 1],
                        t > 0,
                        dy_tile.as_ptr(),
                        [dy_rs, 1],
                        col.as_ptr(),
                        [1, m],
                        parallelism,
                    );
                }
            }
            dw
        });
        tensor(dw, weight.shape())
    }

    fn conv2d_gemm_input_grad(
        x: FlexTensor,
        weight: FlexTensor,
        grad: FlexTensor,
        geometry: Geometry,
    ) -> FlexTensor {
        let (stride, before, after, dilation) = geometry;
        let [co, ci, kh, kw] = weight.shape().dims();
        // at stride 1, dx[ci, y, x] = Σ dy[co, y + b − i·d, x + b − j·d] · w[co, ci, i, j] is
        // the forward convolution of dy by the kernel turned half a turn with its channels
        // swapped, padded by (k − 1)·d − b before and (k − 1)·d − a after
        let reach = [(kh - 1) * dilation[0], (kw - 1) * dilation[1]];
        let within = |p: [usize; 2]| p[0] <= reach[0] && p[1] <= reach[1];
        let transposable = stride == [1, 1] && within(before) && within(after);
        if x.dtype() != DType::F32 || !transposable {
            return <Flex as ModuleOps<Flex>>::conv2d_x_backward(
                x,
                weight,
                grad,
                options(geometry),
            );
        }
        // turning both kernel axes reverses each kernel's row-major values; the channel axes
        // swapped a block of input channels a job, whose kernels lie side by side in each
        // output channel's row (a 1280 × 1280 × 3 × 3 weight is 59 MB)
        let (weight, window) = (weight.to_contiguous(), kh * kw);
        let w = weight.storage::<f32>();
        let mut turned = vec![0f32; w.len()];
        const BLOCK: usize = 16;
        turned
            .par_chunks_mut(BLOCK * co * window)
            .enumerate()
            .for_each(|(block, out)| {
                let first = block * BLOCK;
                let inputs = out.len() / (co * window);
                for c_out in 0..co {
                    let row = &w[(c_out * ci + first) * window..][..inputs * window];
                    for (k, kernel) in row.chunks_exact(window).enumerate() {
                        let dst = &mut out[(k * co + c_out) * window..][..window];
                        dst.iter_mut()
                            .zip(kernel.iter().rev())
                            .for_each(|(o, v)| *o = *v);
                    }
                }
            });
        let turned = tensor(turned, Shape::new([ci, co, kh, kw]));
        let turn = |p: [usize; 2]| [reach[0] - p[0], reach[1] - p[1]];
        Self::conv2d_gemm(grad, turned, ([1, 1], turn(before), turn(after), dilation))
    }
}

/// [`ConvGradients`] as the autodiff step asks for them: the input's and the weight's where
/// `wanted`.
fn conv_gradients<B: ConvGradients>(
    x: FloatTensor<B>,
    weight: FloatTensor<B>,
    grad: FloatTensor<B>,
    geometry: Geometry,
    [input, weights]: [bool; 2],
) -> [Option<FloatTensor<B>>; 2] {
    let dx =
        input.then(|| B::conv2d_gemm_input_grad(x.clone(), weight.clone(), grad.clone(), geometry));
    let dw = weights.then(|| B::conv2d_gemm_weight_grad(x, weight, grad, geometry));
    [dx, dw]
}

impl<B: ConvKernel + ConvGradients, C: CheckpointStrategy> ConvKernel for Autodiff<B, C> {
    fn conv2d_gemm(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        geometry: Geometry,
    ) -> FloatTensor<Self> {
        super::tracked::<B, C, _>(conv_gradients::<B>, x, weight, geometry, |x, weight| {
            B::conv2d_gemm(x, weight, geometry)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tiles_are_bands_of_rows_or_groups_of_whole_images() {
        let shape = |tiles: Vec<Tile>| -> Vec<(Range<usize>, Range<usize>)> {
            tiles.into_iter().map(|t| (t.images, t.rows)).collect()
        };
        // 56 × 56: bands of 512 / 56 = 9 rows, the last one 2 rows
        let bands = shape(tiles(3..5, [56, 56], Some(4), TILE_PIXELS));
        assert_eq!(bands.len(), 14);
        assert_eq!(bands[0], (3..4, 0..9));
        assert_eq!(bands[6], (3..4, 54..56));
        assert_eq!(bands[13], (4..5, 54..56));
        // 7 × 7 (49 pixels): 48 images in ⌈48·49 / 512⌉ = 5 tiles, rounded up to 8 of 6
        let groups = shape(tiles(0..48, [7, 7], Some(4), TILE_PIXELS));
        assert_eq!(groups.len(), 8);
        assert!(
            groups
                .iter()
                .enumerate()
                .all(|(t, g)| *g == (6 * t..6 * t + 6, 0..7))
        );
        // not rounded: 12 images in 2 tiles; 3 images in 1; never more tiles than images
        assert_eq!(
            shape(tiles(12..24, [7, 7], Some(1), TILE_PIXELS)),
            [(12..18, 0..7), (18..24, 0..7)]
        );
        assert_eq!(
            shape(tiles(0..2, [7, 7], None, TILE_PIXELS)),
            [(0..1, 0..7), (1..2, 0..7)]
        );
        assert_eq!(
            shape(tiles(0..3, [7, 7], Some(4), TILE_PIXELS)),
            [(0..3, 0..7)]
        );
        assert_eq!(shape(tiles(0..6, [10, 20], Some(4), TILE_PIXELS)).len(), 4);
    }
}
