//! Optical inspection (DAGM 2007 style): `ClassN/{Train,Test}/Label/Labels.txt` (the
//! original archives) or `ClassN/ClassN/…` (common re-uploads) for N = 1..10. Rows after the header are tab-separated: index, 0 (normal) or 1 (defect),
//! image name, …, mask name. Normals of all classes are pooled and split 75/25; defects of
//! ClassN go to `test/Class{N-1}`.

use std::path::Path;

use super::{Item, Writer, nested_dir, require_file};
use crate::error::{Error, Result};

const CLASSES: u32 = 10;

pub fn convert(input: &Path, w: &mut Writer) -> Result<()> {
    let mut normals = Vec::new();
    let mut defects = Vec::new();
    let mut found = false;
    let mut layouts = std::collections::BTreeSet::new();
    for n in 1..=CLASSES {
        let (class_dir, layout) = nested_dir(input, &format!("Class{n}"));
        for split in ["Train", "Test"] {
            let dir = class_dir.join(split);
            let labels = dir.join("Label").join("Labels.txt");
            if !labels.is_file() {
                continue;
            }
            found = true;
            layouts.insert(layout.replace(&n.to_string(), "N"));
            let text = std::fs::read_to_string(&labels).map_err(|e| Error::io(&labels, e))?;
            for (k, line) in text
                .lines()
                .enumerate()
                .skip(1)
                .filter(|(_, l)| !l.trim().is_empty())
            {
                let f: Vec<&str> = line.split('\t').map(str::trim).collect();
                let bad = || {
                    Error::layout(
                        &labels,
                        format!(
                            "line {}: expected 5 tab-separated fields, got '{line}'",
                            k + 1
                        ),
                    )
                };
                if f.len() < 3 {
                    return Err(bad());
                }
                let image = require_file(dir.join(f[2]))?;
                let name = format!("Class{n}_{split}_{}", f[2]);
                if f[1] == "0" {
                    normals.push(Item {
                        name,
                        ..Item::file(image)
                    });
                } else {
                    let mask = require_file(dir.join("Label").join(f.get(4).ok_or_else(bad)?))?;
                    defects.push((
                        Item {
                            name,
                            mask: Some(mask),
                            ..Item::file(image)
                        },
                        format!("Class{}", n - 1),
                    ));
                }
            }
        }
    }
    if !found {
        return Err(Error::layout(
            input,
            "no ClassN/{Train,Test}/Label/Labels.txt found (nor ClassN/ClassN/…)",
        ));
    }
    let layouts: Vec<String> = layouts.into_iter().collect();
    w.layout(&format!("classes as {}", layouts.join(" and ")));
    w.normals(normals)?;
    for (item, class) in &defects {
        w.anomaly(item, class)?;
    }
    Ok(())
}
