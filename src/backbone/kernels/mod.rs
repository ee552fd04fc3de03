//! CPU kernels that burn's `flex` backend lacks, added through burn's backend extensions:
//! BatchNorm on batch statistics fused into one operation, and a convolution whose weight
//! gradient is one matrix product per image. The backbones use them when training on `flex`
//! and burn's own operations everywhere else.

pub mod batch_norm;
pub mod conv;

use burn::backend::DispatchDevice;
use burn::backend::flex::FlexTensor;
use burn::prelude::*;
use burn::tensor::TensorData;

/// Whether tensors on `device` can use these kernels (the `flex` CPU backend).
pub fn available(device: &Device) -> bool {
    matches!(
        device.clone().inner().as_dispatch(),
        DispatchDevice::Flex(_)
    )
}

/// The values of an f32 tensor, in row-major order.
fn values(x: &FlexTensor) -> Vec<f32> {
    x.to_contiguous().storage::<f32>().to_vec()
}

/// An f32 tensor of `shape` holding `values`.
fn tensor(values: Vec<f32>, shape: Shape) -> FlexTensor {
    FlexTensor::from_data(TensorData::new(values, shape))
}
