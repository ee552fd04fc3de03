//! Magnetic tile: `MT_<Class>/Imgs/<name>.jpg` with `<name>.png` masks (`.bmp` and any case
//! of the extensions too, as re-saved copies have them); `MT_Free` is normal.

use std::path::Path;

use super::{Item, Writer, file_name, file_stem, require_dir, with_stem};
use crate::data::layout::{list_dirs, list_images};
use crate::error::{Error, Result};

pub fn convert(input: &Path, w: &mut Writer) -> Result<()> {
    let classes: Vec<_> = list_dirs(input)?
        .into_iter()
        .filter(|d| file_name(d).starts_with("MT_"))
        .collect();
    if classes.is_empty() {
        return Err(Error::layout(input, "no MT_<Class> folders"));
    }
    let mut saw_free = false;
    for dir in classes {
        let class = file_name(&dir)["MT_".len()..].to_string();
        let imgs = require_dir(dir.join("Imgs"))?;
        let photos: Vec<_> = list_images(&imgs)?
            .into_iter()
            .filter(|p| {
                p.extension().is_some_and(|e| {
                    e.eq_ignore_ascii_case("jpg") || e.eq_ignore_ascii_case("jpeg")
                })
            })
            .collect();
        if class == "Free" {
            saw_free = true;
            w.normals(photos.into_iter().map(Item::file).collect())?;
            continue;
        }
        for photo in photos {
            let mask = with_stem(&imgs, &file_stem(&photo), &["png", "bmp"]);
            w.anomaly(
                &Item {
                    mask,
                    ..Item::file(photo)
                },
                &class,
            )?;
        }
    }
    if !saw_free {
        return Err(Error::layout(
            input.join("MT_Free"),
            "folder of normal tiles missing",
        ));
    }
    Ok(())
}
