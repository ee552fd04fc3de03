//! Head CT: `labels.csv` rows `id, hemorrhage` (with or without a header) and the images
//! `NNN.png` under `head_ct/head_ct/` (the original archive) or `head_ct/` (common
//! re-uploads).

use std::path::Path;

use super::{Item, Writer, label_lines, nested_dir, require_dir, require_file};
use crate::error::{Error, Result};

pub fn convert(input: &Path, w: &mut Writer) -> Result<()> {
    let labels = require_file(input.join("labels.csv"))?;
    let (images, nesting) = nested_dir(input, "head_ct");
    let images = require_dir(images)?;
    let text = std::fs::read_to_string(&labels).map_err(|e| Error::io(&labels, e))?;
    // a header is a first line whose id is not a number
    let header = text
        .lines()
        .next()
        .and_then(|l| l.split(',').next())
        .is_some_and(|id| id.trim().parse::<u32>().is_err());
    w.layout(&format!(
        "images under {nesting}, labels.csv {} a header",
        if header { "with" } else { "without" }
    ));
    let mut normals = Vec::new();
    let mut defects = Vec::new();
    for (n, line) in label_lines(&text, header) {
        let bad = || {
            Error::layout(
                &labels,
                format!("line {n}: expected 'id, hemorrhage', got '{line}'"),
            )
        };
        let mut fields = line.split(',').map(str::trim);
        let (Some(id), Some(label)) = (fields.next(), fields.next()) else {
            return Err(bad());
        };
        let id: u32 = id.parse().map_err(|_| bad())?;
        let item = Item::file(require_file(images.join(format!("{id:03}.png")))?);
        match label {
            "0" => normals.push(item),
            "1" => defects.push(item),
            _ => return Err(bad()),
        }
    }
    w.normals(normals)?;
    for d in &defects {
        w.anomaly(d, "defect")?;
    }
    Ok(())
}
