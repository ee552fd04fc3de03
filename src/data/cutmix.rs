//! CutMix pseudo anomaly as the reference implementation does it (spec §4.5): a patch of
//! the image itself, colour-jittered, pasted at an independent position (a CutPaste).

use image::{Rgb, RgbImage};
use rand::Rng;
use rand::seq::SliceRandom;

use crate::rng::DraRng;

/// Patch area as a fraction of the image area, drawn uniformly from this range.
pub const AREA_RANGE: (f64, f64) = (0.02, 0.15);
/// Aspect ratio w/h drawn log-uniformly from [ASPECT, 1/ASPECT].
pub const ASPECT: f64 = 0.3;
/// Colour-jitter strength for brightness, contrast, saturation and hue.
pub const JITTER: f32 = 0.1;

/// Where a patch is cut and where it is pasted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PatchGeometry {
    pub width: u32,
    pub height: u32,
    pub source: (u32, u32),
    pub target: (u32, u32),
}

impl PatchGeometry {
    /// Draws a patch for a `width`×`height` image.
    pub fn draw(width: u32, height: u32, rng: &mut DraRng) -> Self {
        let area = rng.random_range(AREA_RANGE.0..AREA_RANGE.1) * (width * height) as f64;
        let log_ratio = rng.random_range(ASPECT.ln()..(1.0 / ASPECT).ln());
        let ratio = log_ratio.exp();
        let w = ((area * ratio).sqrt().round() as u32).clamp(1, width);
        let h = ((area / ratio).sqrt().round() as u32).clamp(1, height);
        let corner = |rng: &mut DraRng| {
            let x = (rng.random::<f64>() * (width - w) as f64) as u32;
            let y = (rng.random::<f64>() * (height - h) as f64) as u32;
            (x, y)
        };
        let source = corner(rng);
        let target = corner(rng);
        PatchGeometry {
            width: w,
            height: h,
            source,
            target,
        }
    }
}

/// The four colour operations of torchvision's `ColorJitter`, with their factors and order.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ColorJitter {
    pub brightness: f32,
    pub contrast: f32,
    pub saturation: f32,
    pub hue: f32,
    pub order: [usize; 4],
}

impl ColorJitter {
    /// Factors U(1 ± JITTER), hue shift U(±JITTER), operations in a random order.
    pub fn draw(rng: &mut DraRng) -> Self {
        let mut order = [0, 1, 2, 3];
        order.shuffle(rng);
        let lo = 1.0 - JITTER..1.0 + JITTER;
        ColorJitter {
            brightness: rng.random_range(lo.clone()),
            contrast: rng.random_range(lo.clone()),
            saturation: rng.random_range(lo),
            hue: rng.random_range(-JITTER..JITTER),
            order,
        }
    }

    /// Applies the four operations in order; each rounds back to 8 bits as PIL does.
    pub fn apply(&self, img: &mut RgbImage) {
        for op in self.order {
            match op {
                0 => blend_with(img, self.brightness, |_| [0.0; 3]),
                1 => {
                    let mean = mean_luma(img);
                    blend_with(img, self.contrast, |_| [mean; 3])
                }
                2 => blend_with(img, self.saturation, |p| [luma(p); 3]),
                _ => shift_hue(img, self.hue),
            }
        }
    }
}

fn luma(p: &Rgb<u8>) -> f32 {
    (p[0] as f32 * 299.0 + p[1] as f32 * 587.0 + p[2] as f32 * 114.0) / 1000.0
}

fn mean_luma(img: &RgbImage) -> f32 {
    let sum: f64 = img.pixels().map(|p| luma(p).floor() as f64).sum();
    (sum / (img.width() * img.height()).max(1) as f64 + 0.5).floor() as f32
}

/// p ← factor·p + (1 − factor)·other(p), clamped to [0, 255].
fn blend_with(img: &mut RgbImage, factor: f32, other: impl Fn(&Rgb<u8>) -> [f32; 3]) {
    for p in img.pixels_mut() {
        let o = other(p);
        for c in 0..3 {
            let v = factor * p[c] as f32 + (1.0 - factor) * o[c];
            p[c] = v.round().clamp(0.0, 255.0) as u8;
        }
    }
}

fn shift_hue(img: &mut RgbImage, shift: f32) {
    for p in img.pixels_mut() {
        let [r, g, b] = p.0.map(|v| v as f32 / 255.0);
        let max = r.max(g).max(b);
        let min = r.min(g).min(b);
        let delta = max - min;
        if delta == 0.0 {
            continue; // grey pixels have no hue
        }
        let s = delta / max;
        let h = if max == r {
            ((g - b) / delta).rem_euclid(6.0)
        } else if max == g {
            (b - r) / delta + 2.0
        } else {
            (r - g) / delta + 4.0
        } / 6.0;
        let h = (h + shift).rem_euclid(1.0) * 6.0;
        let v = max;
        let i = h.floor();
        let f = h - i;
        let (pv, qv, tv) = (v * (1.0 - s), v * (1.0 - s * f), v * (1.0 - s * (1.0 - f)));
        let rgb = match i as u32 % 6 {
            0 => [v, tv, pv],
            1 => [qv, v, pv],
            2 => [pv, v, tv],
            3 => [pv, qv, v],
            4 => [tv, pv, v],
            _ => [v, pv, qv],
        };
        p.0 = rgb.map(|x| (x * 255.0).round().clamp(0.0, 255.0) as u8);
    }
}

/// A pseudo anomaly made from `img`: a jittered copy of one of its patches pasted onto it.
/// Returns the image and the geometry used.
pub fn cutmix(img: &RgbImage, rng: &mut DraRng) -> (RgbImage, PatchGeometry) {
    let g = PatchGeometry::draw(img.width(), img.height(), rng);
    let mut patch =
        image::imageops::crop_imm(img, g.source.0, g.source.1, g.width, g.height).to_image();
    ColorJitter::draw(rng).apply(&mut patch);
    let mut out = img.clone();
    image::imageops::replace(&mut out, &patch, g.target.0 as i64, g.target.1 as i64);
    (out, g)
}
