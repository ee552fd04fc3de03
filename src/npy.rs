//! NumPy `.npy` files (version 1.0, float32, C order): the format of the saved memory bank
//! and of raw anomaly maps, read by `numpy.load` without custom code.

use std::path::Path;

use crate::error::{Error, Result};

const MAGIC: &[u8; 8] = b"\x93NUMPY\x01\x00";

/// The bytes of a float32 array of `shape` (row-major `values`).
pub fn encode(shape: &[usize], values: &[f32]) -> Vec<u8> {
    let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    let dims = match dims.len() {
        1 => format!("{},", dims[0]),
        _ => dims.join(", "),
    };
    let mut header = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': ({dims}), }}");
    // magic (8) + length (2) + header + newline, to a multiple of 64
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut bytes = MAGIC.to_vec();
    bytes.extend((header.len() as u16).to_le_bytes());
    bytes.extend(header.as_bytes());
    bytes.extend(values.iter().flat_map(|v| v.to_le_bytes()));
    bytes
}

/// Writes a float32 array of `shape` to `path`.
pub fn write(path: &Path, shape: &[usize], values: &[f32]) -> Result<()> {
    std::fs::write(path, encode(shape, values)).map_err(|e| Error::io(path, e))
}

/// The shape and values of a float32 C-order array in `bytes` (read from `path`, named in
/// errors).
pub fn decode(path: &Path, bytes: &[u8]) -> Result<(Vec<usize>, Vec<f32>)> {
    let bad = |m: &str| Error::run_file(path, format!("not a float32 .npy array: {m}"));
    if bytes.len() < 10 || &bytes[..8] != MAGIC {
        return Err(bad("no .npy header"));
    }
    let len = u16::from_le_bytes([bytes[8], bytes[9]]) as usize;
    let header = std::str::from_utf8(bytes.get(10..10 + len).ok_or_else(|| bad("short"))?)
        .map_err(|_| bad("header"))?;
    if !header.contains("'<f4'") || header.contains("'fortran_order': True") {
        return Err(bad("not float32 in C order"));
    }
    let shape = header
        .split("'shape': (")
        .nth(1)
        .and_then(|s| s.split(')').next())
        .ok_or_else(|| bad("no shape"))?;
    let dims: Vec<usize> = shape
        .split(',')
        .filter(|s| !s.trim().is_empty())
        .map(|s| s.trim().parse().map_err(|_| bad("shape")))
        .collect::<Result<_>>()?;
    let data = &bytes[10 + len..];
    if data.len() != dims.iter().product::<usize>() * 4 {
        return Err(bad("size does not match its shape"));
    }
    let values = data
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    Ok((dims, values))
}
