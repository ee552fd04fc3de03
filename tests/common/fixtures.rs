//! Reading tensors from the PyTorch parity fixtures in `../shared/parity`.
#![allow(dead_code)]

#[path = "skip.rs"]
mod skip;

use std::path::{Path, PathBuf};

use burn::prelude::*;
use safetensors::{Dtype, SafeTensors};

/// `../shared/parity/<name>` when present; prints why a test is skipped otherwise.
pub fn parity_file(name: &str) -> Option<PathBuf> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/parity")
        .join(name);
    if path.is_file() {
        Some(path)
    } else {
        skip::skip(&format!("{} is absent", path.display()));
        None
    }
}

/// Tensor `name` of a safetensors file as f32 values and its shape.
pub fn read(path: &Path, name: &str) -> (Vec<f32>, Vec<usize>) {
    let bytes = std::fs::read(path).unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let t = st.tensor(name).unwrap();
    let values = match t.dtype() {
        Dtype::F32 => t
            .data()
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
            .collect(),
        Dtype::F16 => t
            .data()
            .chunks_exact(2)
            .map(|c| half::f16::from_le_bytes(c.try_into().unwrap()).to_f32())
            .collect(),
        other => panic!("unsupported dtype {other:?}"),
    };
    (values, t.shape().to_vec())
}

/// Tensor `name` of a safetensors file on `device`.
pub fn tensor<const D: usize>(path: &Path, name: &str, device: &Device) -> Tensor<D> {
    let (values, shape) = read(path, name);
    Tensor::from_data(TensorData::new(values, shape), device)
}

/// ‖a − b‖₂ / ‖b‖₂.
pub fn relative_l2(a: &[f32], b: &[f32]) -> f64 {
    assert_eq!(a.len(), b.len(), "lengths differ");
    let diff: f64 = a.iter().zip(b).map(|(x, y)| ((x - y) as f64).powi(2)).sum();
    let norm: f64 = b.iter().map(|y| (*y as f64).powi(2)).sum();
    (diff / norm).sqrt()
}

/// The values of a tensor.
pub fn values<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data().try_to_vec().unwrap()
}
