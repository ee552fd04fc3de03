//! Max pooling without indices (inference) as a CPU kernel: per output row, the element-wise
//! maximum of the window's input rows, then the maximum across each window's columns, one
//! plane per task. burn's `flex` computes the indices as well, position by position with
//! integer divisions, even where nobody asks for them. Training keeps burn's pooling, whose
//! backward pass needs the indices.

use burn::backend::autodiff::Autodiff;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::flex::FlexTensor;
use burn::backend::ops::ModuleOps;
use burn::backend::tensor::FloatTensor;
use burn::backend::{Backend, DType, Dispatch, Flex, TensorMetadata, backend_extension};
use burn::nn::pool::MaxPool2d;
use burn::prelude::*;
use rayon::prelude::*;

use super::{symmetric_padding, tensor};

/// Max pooling at dilation 1, padding counted as −∞.
#[backend_extension(Autodiff, Flex)]
pub trait MaxPoolKernel: Backend {
    /// `x` (`[n, c, h, w]`) max-pooled over `kernel` windows at `stride`, `padding` each side.
    fn max_pool2d_plain(
        x: FloatTensor<Self>,
        kernel: [usize; 2],
        stride: [usize; 2],
        padding: [usize; 2],
    ) -> FloatTensor<Self>;
}

/// `pool.forward(x)`, through [`MaxPoolKernel`] on `flex` without autodiff at dilation 1,
/// floor rounding and symmetric padding, through burn's layer otherwise.
pub fn max_pool2d(pool: &MaxPool2d, x: Tensor<4>) -> Tensor<4> {
    let device = x.device();
    let padding = symmetric_padding(&pool.padding, pool.kernel_size, pool.stride, pool.dilation);
    match padding {
        Some(padding)
            if !device.is_autodiff()
                && super::available(&device)
                && pool.dilation == [1, 1]
                && !pool.ceil_mode =>
        {
            Tensor::from_dispatch(Dispatch::max_pool2d_plain(
                x.into_dispatch(),
                pool.kernel_size,
                pool.stride,
                padding,
            ))
        }
        _ => pool.forward(x),
    }
}

impl MaxPoolKernel for Flex {
    fn max_pool2d_plain(
        x: FlexTensor,
        kernel: [usize; 2],
        stride: [usize; 2],
        padding: [usize; 2],
    ) -> FlexTensor {
        if x.dtype() != DType::F32 || padding[0] >= kernel[0] || padding[1] >= kernel[1] {
            return <Flex as ModuleOps<Flex>>::max_pool2d(
                x,
                kernel,
                stride,
                padding,
                [1, 1],
                false,
            );
        }
        let [n, c, h, w] = x.shape().dims();
        let size = |input: usize, a: usize| (input + 2 * padding[a] - kernel[a]) / stride[a] + 1;
        let [ho, wo] = [size(h, 0), size(w, 1)];
        let x = x.to_contiguous();
        let xs = x.storage::<f32>();
        // the input positions, clipped to the map, of output position `o`'s window on axis `a`
        let window = |o: usize, a: usize, len: usize| {
            let start = (o * stride[a]).saturating_sub(padding[a]);
            start
                ..(o * stride[a] + kernel[a])
                    .saturating_sub(padding[a])
                    .min(len)
        };
        let mut y = vec![0f32; n * c * ho * wo];
        y.par_chunks_mut(ho * wo)
            .zip(xs.par_chunks(h * w))
            .for_each_init(
                || vec![0f32; w],
                |rows, (out, plane)| {
                    for (oy, out) in out.chunks_exact_mut(wo).enumerate() {
                        let mut iys = window(oy, 0, h);
                        let first = iys.next().expect("padding below the kernel size");
                        rows.copy_from_slice(&plane[first * w..(first + 1) * w]);
                        for iy in iys {
                            for (m, &v) in rows.iter_mut().zip(&plane[iy * w..(iy + 1) * w]) {
                                *m = m.max(v);
                            }
                        }
                        for (ox, o) in out.iter_mut().enumerate() {
                            *o = rows[window(ox, 1, w)]
                                .iter()
                                .fold(f32::NEG_INFINITY, |m, &v| m.max(v));
                        }
                    }
                },
            );
        tensor(y, Shape::new([n, c, ho, wo]))
    }
}

impl<B: MaxPoolKernel, C: CheckpointStrategy> MaxPoolKernel for Autodiff<B, C> {
    fn max_pool2d_plain(
        x: FloatTensor<Self>,
        kernel: [usize; 2],
        stride: [usize; 2],
        padding: [usize; 2],
    ) -> FloatTensor<Self> {
        // burn's own pooling and its backward pass
        <Self as ModuleOps<Self>>::max_pool2d(x, kernel, stride, padding, [1, 1], false)
    }
}
