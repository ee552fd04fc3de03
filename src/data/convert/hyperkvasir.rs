//! Hyper-Kvasir: anatomical landmarks of the upper GI tract are normal (pooled, split
//! 75/25); each pathological finding is an anomaly class.

use std::path::Path;

use super::{Item, Writer, file_name, require_dir};
use crate::data::layout::{list_dirs, list_images};
use crate::error::Result;

pub fn convert(input: &Path, w: &mut Writer) -> Result<()> {
    let gi = require_dir(input.join("upper-gi-tract"))?;
    let landmarks = list_dirs(&require_dir(gi.join("anatomical-landmarks"))?)?;
    let findings = list_dirs(&require_dir(gi.join("pathological-findings"))?)?;
    let mut normals = Vec::new();
    for dir in landmarks {
        for image in list_images(&dir)? {
            // Landmark folders are pooled: prefix the folder so that names stay unique.
            let name = format!("{}_{}", file_name(&dir), file_name(&image));
            normals.push(Item {
                name,
                ..Item::file(image)
            });
        }
    }
    w.normals(normals)?;
    for dir in findings {
        let class = file_name(&dir);
        for image in list_images(&dir)? {
            w.anomaly(&Item::file(image), &class)?;
        }
    }
    Ok(())
}
