//! Pictures for people: a training batch as a grid, each image framed in its label's colour.

use crate::types::Label;
use image::{Rgb, RgbImage};

/// Frame width in pixels.
const FRAME: u32 = 4;

/// The frame colour of a label: normal green, seen anomaly red, pseudo anomaly orange,
/// outlier-exposure image grey.
pub fn label_color(label: Label) -> Rgb<u8> {
    match label {
        Label::Normal => Rgb([40, 170, 60]),
        Label::Seen => Rgb([210, 40, 40]),
        Label::Pseudo => Rgb([240, 150, 20]),
        Label::Outlier => Rgb([128, 128, 128]),
    }
}

/// Colour of the frame around reference-set images.
pub const REFERENCE_COLOR: Rgb<u8> = Rgb([40, 90, 220]);

/// Lays out equally sized `tiles` in rows of `columns`, each inside a frame of its colour.
pub fn grid(tiles: &[(RgbImage, Rgb<u8>)], columns: usize) -> RgbImage {
    let Some((first, _)) = tiles.first() else {
        return RgbImage::new(1, 1);
    };
    let columns = columns.clamp(1, tiles.len());
    let rows = tiles.len().div_ceil(columns);
    let (tw, th) = (first.width() + 2 * FRAME, first.height() + 2 * FRAME);
    let mut out = RgbImage::from_pixel(tw * columns as u32, th * rows as u32, Rgb([255, 255, 255]));
    for (k, (img, color)) in tiles.iter().enumerate() {
        let (x0, y0) = ((k % columns) as u32 * tw, (k / columns) as u32 * th);
        for y in 0..th {
            for x in 0..tw {
                let inside =
                    x >= FRAME && y >= FRAME && x - FRAME < img.width() && y - FRAME < img.height();
                let p = if inside {
                    *img.get_pixel(x - FRAME, y - FRAME)
                } else {
                    *color
                };
                out.put_pixel(x0 + x, y0 + y, p);
            }
        }
    }
    out
}
