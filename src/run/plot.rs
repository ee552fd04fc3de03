//! Plots of a run, each as PNG and SVG: test scores by sample index (normals and anomalies
//! in two colours), the ROC curve and the precision-recall curve.

use std::path::Path;
use std::sync::Once;

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::FontStyle;

use crate::error::{Error, Result};
use crate::metrics::Curve;
use crate::types::Scored;

const FONT: &[u8] = include_bytes!("../../assets/DejaVuSans.ttf");
const NORMAL: RGBColor = RGBColor(40, 150, 60);
const ANOMALY: RGBColor = RGBColor(210, 40, 40);
const SIZE: (u32, u32) = (900, 560);

/// Makes the bundled font the one plotters draws `sans-serif` text with.
pub(crate) fn register_font() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        plotters::style::register_font("sans-serif", FontStyle::Normal, FONT)
            .ok()
            .expect("bundled font");
    });
}

fn plot_error(path: &Path, e: impl std::fmt::Display) -> Error {
    Error::run_file(path, format!("cannot draw plot: {e}"))
}

type Drawn = std::result::Result<(), String>;

/// Draws into `<stem>.png` with `png` and into `<stem>.svg` with `svg` (the same drawing
/// code, instantiated for each backend).
fn both(
    stem: &Path,
    png: impl FnOnce(&DrawingArea<BitMapBackend, Shift>) -> Drawn,
    svg: impl FnOnce(&DrawingArea<SVGBackend, Shift>) -> Drawn,
) -> Result<()> {
    register_font();
    let path = stem.with_extension("png");
    let root = BitMapBackend::new(&path, SIZE).into_drawing_area();
    png(&root).map_err(|e| plot_error(&path, e))?;
    root.present().map_err(|e| plot_error(&path, e))?;
    let path = stem.with_extension("svg");
    let root = SVGBackend::new(&path, SIZE).into_drawing_area();
    svg(&root).map_err(|e| plot_error(&path, e))?;
    root.present().map_err(|e| plot_error(&path, e))?;
    Ok(())
}

/// The test scores by sample index (the reproduction report's Figure 4).
pub fn scores(stem: &Path, scored: &[Scored], title: &str) -> Result<()> {
    both(
        stem,
        |r| draw_scores(r, scored, title),
        |r| draw_scores(r, scored, title),
    )
}

fn draw_scores<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    scored: &[Scored],
    title: &str,
) -> Drawn {
    let (lo, hi) = scored
        .iter()
        .fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), s| {
            (lo.min(s.score), hi.max(s.score))
        });
    let pad = ((hi - lo) * 0.05).max(1e-3);
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    let mut chart = ChartBuilder::on(root)
        .caption(title, ("sans-serif", 22))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(0f32..scored.len().max(1) as f32, (lo - pad)..(hi + pad))
        .map_err(|e| e.to_string())?;
    chart
        .configure_mesh()
        .x_desc("test sample")
        .y_desc("anomaly score")
        .draw()
        .map_err(|e| e.to_string())?;
    for (anomaly, color, label) in [(false, NORMAL, "normal"), (true, ANOMALY, "anomaly")] {
        chart
            .draw_series(
                scored
                    .iter()
                    .enumerate()
                    .filter(|(_, s)| s.anomaly == anomaly)
                    .map(|(i, s)| Circle::new((i as f32, s.score), 3, color.filled())),
            )
            .map_err(|e| e.to_string())?
            .label(label)
            .legend(move |(x, y)| Circle::new((x, y), 4, color.filled()));
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(|e| e.to_string())
}

/// A curve in the unit square, e.g. ROC (`x` false positive rate) or PR (`x` recall).
pub fn curve(
    stem: &Path,
    curve: &Curve,
    title: &str,
    x_desc: &str,
    y_desc: &str,
    step: bool,
) -> Result<()> {
    let mut points: Vec<(f64, f64)> = curve
        .x
        .iter()
        .copied()
        .zip(curve.y.iter().copied())
        .collect();
    if step {
        // precision-recall as the step function that average precision sums
        let mut stepped = Vec::new();
        let mut prev_x = 0.0;
        for (x, y) in points {
            stepped.push((prev_x, y));
            stepped.push((x, y));
            prev_x = x;
        }
        points = stepped;
    }
    let (t, x, y) = (title, x_desc, y_desc);
    both(
        stem,
        |r| draw_curve(r, &points, t, x, y),
        |r| draw_curve(r, &points, t, x, y),
    )
}

fn draw_curve<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    points: &[(f64, f64)],
    title: &str,
    x_desc: &str,
    y_desc: &str,
) -> Drawn {
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    let mut chart = ChartBuilder::on(root)
        .caption(title, ("sans-serif", 22))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(0f64..1f64, 0f64..1.02f64)
        .map_err(|e| e.to_string())?;
    chart
        .configure_mesh()
        .x_desc(x_desc)
        .y_desc(y_desc)
        .draw()
        .map_err(|e| e.to_string())?;
    chart
        .draw_series(LineSeries::new(points.to_vec(), BLUE.stroke_width(2)))
        .map_err(|e| e.to_string())?;
    Ok(())
}
