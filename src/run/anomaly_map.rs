//! One image's anomaly map: the parts' maps fused by the score rule, smoothed, resized, and
//! written as `.npy`.

use std::path::Path;

use crate::error::Result;
use crate::fusion::Fusion;
use crate::npy;
use crate::types::Head;

/// One image's anomaly map: `width`×`height` values, row-major.
#[derive(Debug, Clone, PartialEq)]
pub struct AnomalyMap {
    pub width: u32,
    pub height: u32,
    pub values: Vec<f32>,
}

impl AnomalyMap {
    /// The map of one image from its parts' maps (each `side`×`side`, the model's input
    /// frame), fused as `fusion` fuses the image's scores.
    pub fn fused(parts: &[(Head, Vec<f32>)], side: u32, fusion: &Fusion) -> Self {
        AnomalyMap {
            width: side,
            height: side,
            values: fusion.map(parts, (side * side) as usize),
        }
    }

    /// The largest value.
    pub fn max(&self) -> f32 {
        self.values
            .iter()
            .copied()
            .fold(f32::NEG_INFINITY, f32::max)
    }

    /// The value at column `x`, row `y`.
    fn at(&self, x: usize, y: usize) -> f32 {
        self.values[y * self.width as usize + x]
    }

    /// The map transposed (rows become columns), so one pass along rows serves both axes.
    fn transposed(&self) -> Self {
        let (w, h) = (self.width as usize, self.height as usize);
        AnomalyMap {
            width: self.height,
            height: self.width,
            values: (0..w * h).map(|i| self.at(i / h, i % h)).collect(),
        }
    }

    /// Each row filtered by `f(row) -> new row` of `width` values.
    fn rows(&self, width: u32, f: impl Fn(&[f32]) -> Vec<f32>) -> Self {
        let values = self
            .values
            .chunks(self.width as usize)
            .flat_map(f)
            .collect();
        AnomalyMap {
            width,
            height: self.height,
            values,
        }
    }

    /// Smoothed by a Gaussian of standard deviation `sigma` pixels (none when `sigma` is 0),
    /// as `scipy.ndimage.gaussian_filter` does it: truncated at 4σ, borders mirrored
    /// (`reflect`: d c b a | a b c d).
    pub fn smoothed(self, sigma: f32) -> Self {
        if sigma <= 0.0 {
            return self;
        }
        let radius = (4.0 * sigma + 0.5) as isize;
        let kernel: Vec<f32> = (-radius..=radius)
            .map(|i| (-0.5 * (i as f32 / sigma).powi(2)).exp())
            .collect();
        let sum: f32 = kernel.iter().sum();
        let blur = |row: &[f32]| -> Vec<f32> {
            let n = row.len() as isize;
            let mirror = |i: isize| -> usize {
                let period = 2 * n;
                let i = i.rem_euclid(period);
                (if i < n { i } else { period - 1 - i }) as usize
            };
            (0..n)
                .map(|x| {
                    let acc: f32 = kernel
                        .iter()
                        .enumerate()
                        .map(|(k, w)| w * row[mirror(x + k as isize - radius)])
                        .sum();
                    acc / sum
                })
                .collect()
        };
        let (w, h) = (self.width, self.height);
        self.rows(w, blur).transposed().rows(h, blur).transposed()
    }

    /// Resized bilinearly to `width`×`height` with half-pixel centres (as the heads' cell maps
    /// are upsampled; borders held): the model squashes images to a square, this brings the
    /// map back to the source image's frame.
    pub fn resized(&self, width: u32, height: u32) -> Self {
        if (width, height) == (self.width, self.height) {
            return self.clone();
        }
        let resample = |to: u32| {
            move |row: &[f32]| -> Vec<f32> {
                let n = row.len();
                let ratio = n as f32 / to as f32;
                (0..to)
                    .map(|x| {
                        let src = ((x as f32 + 0.5) * ratio - 0.5).max(0.0);
                        let i = (src.floor() as usize).min(n - 1);
                        let j = (i + 1).min(n - 1);
                        let t = src - i as f32;
                        row[i] * (1.0 - t) + row[j] * t
                    })
                    .collect()
            }
        };
        self.rows(width, resample(width))
            .transposed()
            .rows(height, resample(height))
            .transposed()
    }

    /// Writes the map as a float32 `.npy` array of shape (height, width).
    pub fn save_npy(&self, path: &Path) -> Result<()> {
        npy::write(
            path,
            &[self.height as usize, self.width as usize],
            &self.values,
        )
    }
}
