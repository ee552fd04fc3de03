//! Pictures of anomaly maps: an image in grey under its map in viridis (perceptually
//! uniform, readable in grey and by colour-blind readers) with a colour bar of the score
//! scale, and `maps.png`, several test images beside their maps and masks.

use std::path::{Path, PathBuf};

use image::{Rgb, RgbImage};
use plotters::prelude::*;

use crate::error::{Error, Result};
use crate::run::anomaly_map::AnomalyMap;
use crate::run::plot::register_font;

/// Width of the colour bar with its labels, in pixels.
const BAR: u32 = 90;
/// Height of a caption line in `maps.png`.
const CAPTION: u32 = 22;

/// The values a colour scale spans, and the decision threshold it marks.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MapScale {
    /// Fixed bounds, or each map's own minimum and maximum.
    pub range: Option<(f32, f32)>,
    pub threshold: Option<f32>,
}

impl MapScale {
    /// The scale of a run with decision threshold `t`: from min(0, t − 1) to t + max(|t|, 1),
    /// so values above the threshold take the upper half; each map's own range without one.
    pub fn of_threshold(threshold: Option<f64>) -> Self {
        let threshold = threshold.map(|t| t as f32);
        MapScale {
            range: threshold.map(|t| ((t - 1.0).min(0.0), t + t.abs().max(1.0))),
            threshold,
        }
    }

    fn bounds(&self, map: &AnomalyMap) -> (f32, f32) {
        let (lo, hi) = self.range.unwrap_or_else(|| {
            let lo = map.values.iter().copied().fold(f32::INFINITY, f32::min);
            (lo, map.max())
        });
        (lo, if hi > lo { hi } else { lo + 1.0 })
    }

    /// The scale stretched up to `map`'s maximum where the map goes beyond it, so that a map
    /// far above the threshold still shows where it peaks (the bar's labels give the values).
    pub fn stretched_to(&self, map: &AnomalyMap) -> Self {
        MapScale {
            range: self.range.map(|(lo, hi)| (lo, hi.max(map.max()))),
            ..*self
        }
    }
}

fn viridis(v: f32, lo: f32, hi: f32) -> Rgb<u8> {
    let RGBColor(r, g, b) = ViridisRGB::get_color_normalized(v.clamp(lo, hi), lo, hi);
    Rgb([r, g, b])
}

/// `image` in grey with `map` (the same size) blended over it in viridis.
pub fn overlay(image: &RgbImage, map: &AnomalyMap, scale: &MapScale) -> RgbImage {
    let (lo, hi) = scale.bounds(map);
    RgbImage::from_fn(image.width(), image.height(), |x, y| {
        let p = image.get_pixel(x, y);
        let grey = 0.299 * p[0] as f32 + 0.587 * p[1] as f32 + 0.114 * p[2] as f32;
        let c = viridis(map.values[(y * map.width + x) as usize], lo, hi);
        Rgb(std::array::from_fn(|k| {
            (0.45 * grey + 0.55 * c[k] as f32).round() as u8
        }))
    })
}

fn draw_error(e: impl std::fmt::Display) -> Error {
    Error::Setting(format!("cannot draw the map: {e}"))
}

/// Draws the colour bar of `(lo, hi)` into the rightmost [`BAR`] pixels of `canvas`, from
/// `top` to the bottom, with the bounds and the threshold labelled.
fn colour_bar(
    canvas: &mut RgbImage,
    top: u32,
    lo: f32,
    hi: f32,
    threshold: Option<f32>,
) -> Result<()> {
    register_font();
    let (w, h) = canvas.dimensions();
    let x0 = w - BAR + 8;
    let span = (h - top).saturating_sub(20).max(2);
    let y_of = |v: f32| top + 10 + ((hi - v) / (hi - lo) * (span - 1) as f32).round() as u32;
    for y in 0..span {
        let v = hi - (hi - lo) * y as f32 / (span - 1) as f32;
        for x in x0..x0 + 14 {
            canvas.put_pixel(x, top + 10 + y, viridis(v, lo, hi));
        }
    }
    let (cw, ch) = canvas.dimensions();
    let buffer: &mut [u8] = canvas;
    let root = BitMapBackend::with_buffer(buffer, (cw, ch)).into_drawing_area();
    let style = ("sans-serif", 13).into_font().color(&BLACK);
    let label = |v: f32, text: String| -> Result<()> {
        let y = y_of(v) as i32;
        root.draw(&PathElement::new(
            vec![(x0 as i32 + 14, y), (x0 as i32 + 18, y)],
            BLACK,
        ))
        .map_err(draw_error)?;
        root.draw(&Text::new(text, (x0 as i32 + 20, y - 6), style.clone()))
            .map_err(draw_error)
    };
    label(hi, format!("{hi:.2}"))?;
    label(lo, format!("{lo:.2}"))?;
    if let Some(t) = threshold.filter(|t| (lo..=hi).contains(t)) {
        label(t, format!("{t:.2} thr"))?;
    }
    root.present().map_err(draw_error)
}

/// [`overlay`] with a colour bar of the score scale on its right, on white; the scale
/// stretched to the map's maximum ([`MapScale::stretched_to`]).
pub fn overlay_with_bar(image: &RgbImage, map: &AnomalyMap, scale: &MapScale) -> Result<RgbImage> {
    let scale = &scale.stretched_to(map);
    let blended = overlay(image, map, scale);
    let (w, h) = blended.dimensions();
    let mut canvas = RgbImage::from_pixel(w + BAR, h.max(80), Rgb([255, 255, 255]));
    image::imageops::overlay(&mut canvas, &blended, 0, 0);
    let (lo, hi) = scale.bounds(map);
    colour_bar(&mut canvas, 0, lo, hi, scale.threshold)?;
    Ok(canvas)
}

/// One test image of `maps.png`.
#[derive(Debug, Clone)]
pub struct Example {
    pub path: PathBuf,
    /// The image as the model took it (resized to its square input).
    pub image: RgbImage,
    /// Its class folder (`good`, or the defect's).
    pub label: String,
    pub anomaly: bool,
    pub score: f32,
    /// The map in the model's input frame (square).
    pub map: AnomalyMap,
    /// The mask in the same frame, if known.
    pub mask: Option<Vec<bool>>,
}

/// Each map on its own range, minimum to maximum.
const OWN_RANGE: MapScale = MapScale {
    range: None,
    threshold: None,
};

/// `maps.png`: one row per example, the image (squashed to the model's square input, as the
/// model sees it), its map over it on the common scale (the colour bar's), the map again on
/// its own range (where it peaks, whether far above the threshold or below it), and its mask
/// (black for normals; an anomaly without one says so), captioned with the class, the score
/// and the map's own range.
pub fn figure(path: &Path, examples: &[Example], scale: &MapScale) -> Result<()> {
    // without fixed bounds, one scale over all the examples' maps
    let values = examples.iter().flat_map(|e| e.map.values.iter().copied());
    let (lo, hi) = values.fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), v| {
        (lo.min(v), hi.max(v))
    });
    let scale = &MapScale {
        range: scale.range.or(Some((lo, hi))),
        ..*scale
    };
    let side = examples.first().map_or(1, |e| e.map.width);
    let rows = examples.len() as u32;
    let mut canvas = RgbImage::from_pixel(
        4 * side + 3 * 4 + BAR,
        rows * (side + CAPTION),
        Rgb([255, 255, 255]),
    );
    for (i, e) in examples.iter().enumerate() {
        let top = i as u32 * (side + CAPTION) + CAPTION;
        let image = &e.image;
        let mask = RgbImage::from_fn(side, side, |x, y| {
            let on = e.mask.as_ref().is_some_and(|m| m[(y * side + x) as usize]);
            if on {
                Rgb([255, 255, 255])
            } else {
                Rgb([0, 0, 0])
            }
        });
        image::imageops::overlay(&mut canvas, image, 0, top as i64);
        let blended = overlay(image, &e.map, scale);
        image::imageops::overlay(&mut canvas, &blended, (side + 4) as i64, top as i64);
        let own = overlay(image, &e.map, &OWN_RANGE);
        image::imageops::overlay(&mut canvas, &own, (2 * side + 8) as i64, top as i64);
        image::imageops::overlay(&mut canvas, &mask, (3 * side + 12) as i64, top as i64);
    }
    let (lo, hi) = examples
        .first()
        .map_or((0.0, 1.0), |e| scale.bounds(&e.map));
    colour_bar(&mut canvas, CAPTION, lo, hi, scale.threshold)?;
    register_font();
    let (w, h) = canvas.dimensions();
    {
        let buffer: &mut [u8] = &mut canvas;
        let root = BitMapBackend::with_buffer(buffer, (w, h)).into_drawing_area();
        let style = ("sans-serif", 14).into_font().color(&BLACK);
        for (i, e) in examples.iter().enumerate() {
            let y = (i as u32 * (side + CAPTION)) as i32 + 4;
            let name = e.path.file_name().map(|n| n.to_string_lossy().into_owned());
            let mask = match (e.anomaly, &e.mask) {
                (true, None) => "no mask",
                _ => "mask",
            };
            let (lo, hi) = OWN_RANGE.bounds(&e.map);
            let text = format!(
                "{} · {} · score {:.2}   (image | map | map from {lo:.2} to {hi:.2} | {mask})",
                e.label,
                name.unwrap_or_default(),
                e.score
            );
            root.draw(&Text::new(text, (4, y), style.clone()))
                .map_err(draw_error)?;
        }
        root.present().map_err(draw_error)?;
    }
    canvas.save(path).map_err(|source| Error::Image {
        path: path.to_path_buf(),
        source,
    })
}
