//! KolektorSDD: `kosNN/PartK.jpg` + `PartK_label.{bmp,png}`. Each image and its label are cut
//! into three pieces by rows; a piece is a defect when its label piece has a non-zero pixel.

use std::path::Path;

use super::{Item, Writer, file_name, file_stem, writer};
use crate::data::layout::{is_image, list_dirs, list_images};
use crate::error::{Error, Result};

const PIECES: u32 = 3;

pub fn convert(input: &Path, w: &mut Writer) -> Result<()> {
    let mut normals = Vec::new();
    let mut defects = Vec::new();
    for dir in list_dirs(input)? {
        let images = list_images(&dir)?;
        for image in images.iter().filter(|p| !file_stem(p).ends_with("_label")) {
            let stem = file_stem(image);
            let label = ["bmp", "png"]
                .iter()
                .map(|ext| dir.join(format!("{stem}_label.{ext}")))
                .find(|p| p.is_file())
                .ok_or_else(|| {
                    Error::layout(dir.join(format!("{stem}_label.bmp")), "label file missing")
                })?;
            let (iw, ih) = dims(image)?;
            let mask = writer::open(&label)?;
            if (mask.width(), mask.height()) != (iw, ih) {
                return Err(Error::layout(
                    &label,
                    format!(
                        "label is {}×{} but its image is {iw}×{ih}",
                        mask.width(),
                        mask.height()
                    ),
                ));
            }
            for i in 0..PIECES {
                let (y0, y1) = (i * ih / PIECES, (i + 1) * ih / PIECES);
                let rect = (0, y0, iw, y1 - y0);
                let item = Item {
                    source: image.clone(),
                    crop: Some(rect),
                    name: format!("{}_{stem}_{i}.png", file_name(&dir)),
                    mask: Some(label.clone()),
                };
                if writer::has_defect(&mask, rect) {
                    defects.push(item);
                } else {
                    normals.push(Item { mask: None, ..item });
                }
            }
        }
    }
    if normals.is_empty() && defects.is_empty() {
        let any = list_images(input)?.into_iter().any(|p| is_image(&p));
        let hint = if any {
            "images found directly in the input, not in kosNN folders"
        } else {
            "no kosNN/PartK images found"
        };
        return Err(Error::layout(input, hint));
    }
    w.normals(normals)?;
    for d in &defects {
        w.anomaly(d, "defect")?;
    }
    Ok(())
}

fn dims(path: &Path) -> Result<(u32, u32)> {
    image::image_dimensions(path).map_err(|source| Error::Image {
        path: path.to_path_buf(),
        source,
    })
}
