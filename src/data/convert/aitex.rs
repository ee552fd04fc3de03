//! AITEX fabric: 4096×256 strips cut into crops of width 256. Every crop of a defect-free
//! strip is normal; a defect strip keeps only the crops whose mask crop is non-empty. The
//! defect class is the second `_` field of the file name. `Defect_images/` and `Mask_images/`
//! are read as they are or doubled (`Defect_images/Defect_images/`, common re-uploads).

use std::path::Path;

use super::{Item, Writer, file_stem, nested_dir, require_dir, writer};
use crate::data::layout::{list_dirs, list_images};
use crate::error::{Error, Result};

const CROP: u32 = 256;

const CLASSES: [(&str, &str); 12] = [
    ("002", "Broken_end"),
    ("006", "Broken_yarn"),
    ("010", "Broken_pick"),
    ("016", "Weft_curling"),
    ("019", "Fuzzyball"),
    ("022", "Cut_selvage"),
    ("023", "Crease"),
    ("025", "Warp_ball"),
    ("027", "Knots"),
    ("029", "Contamination"),
    ("030", "Nep"),
    ("036", "Weft_crack"),
];

fn crops(image: &Path, count: impl Fn(u32, u32) -> u32) -> Result<Vec<(u32, u32, u32, u32)>> {
    let (w, h) = image::image_dimensions(image).map_err(|source| Error::Image {
        path: image.to_path_buf(),
        source,
    })?;
    Ok((0..count(w, h))
        .map(|i| i * CROP)
        .filter(|&x| x < w)
        .map(|x| (x, 0, CROP.min(w - x), h))
        .collect())
}

pub fn convert(input: &Path, w: &mut Writer) -> Result<()> {
    let normal_dirs = list_dirs(&require_dir(input.join("NODefect_images"))?)?;
    let (defect_dir, defects) = nested_dir(input, "Defect_images");
    let (mask_dir, masks) = nested_dir(input, "Mask_images");
    let (defect_dir, mask_dir) = (require_dir(defect_dir)?, require_dir(mask_dir)?);
    w.layout(&format!("defects under {defects}, masks under {masks}"));
    let mut normals = Vec::new();
    for dir in normal_dirs {
        for image in list_images(&dir)? {
            for (i, rect) in crops(&image, |w, _| w / CROP)?.into_iter().enumerate() {
                let name = format!("{}_{i}.png", file_stem(&image));
                normals.push(Item {
                    source: image.clone(),
                    crop: Some(rect),
                    name,
                    mask: None,
                });
            }
        }
    }
    w.normals(normals)?;
    for image in list_images(&defect_dir)? {
        let stem = file_stem(&image);
        let code = stem.split('_').nth(1).unwrap_or_default();
        let class = CLASSES
            .iter()
            .find(|(c, _)| *c == code)
            .ok_or_else(|| {
                Error::layout(
                    &image,
                    format!("unknown defect code '{code}' in the file name"),
                )
            })?
            .1;
        let mask_path = mask_dir.join(format!("{stem}_mask.png"));
        let mask = writer::open(&super::require_file(mask_path.clone())?)?;
        for (i, rect) in crops(&image, |w, h| w.div_ceil(h))?.into_iter().enumerate() {
            if rect.0 + rect.2 <= mask.width() && writer::has_defect(&mask, rect) {
                let name = format!("{stem}_{i}.png");
                let item = Item {
                    source: image.clone(),
                    crop: Some(rect),
                    name,
                    mask: Some(mask_path.clone()),
                };
                w.anomaly(&item, class)?;
            }
        }
    }
    Ok(())
}
