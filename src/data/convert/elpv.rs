//! ELPV: `labels.csv` rows `path probability type` (a header line, as some re-uploads add,
//! is recognised and skipped). Probability 0 is normal, 1 is a defect filed under its cell
//! type (mono, poly); 1/3 and 2/3 are dropped.

use std::path::Path;

use super::{Item, Writer, label_lines, require_file};
use crate::error::{Error, Result};

pub fn convert(input: &Path, w: &mut Writer) -> Result<()> {
    let labels = require_file(input.join("labels.csv"))?;
    let text = std::fs::read_to_string(&labels).map_err(|e| Error::io(&labels, e))?;
    // a header is a first line that names no image and has no number as its probability
    let header = text.lines().next().is_some_and(|l| {
        let mut f = l.split_whitespace();
        let names_file = f.next().is_some_and(|p| input.join(p).is_file());
        !names_file && f.next().is_some_and(|p| p.parse::<f64>().is_err())
    });
    w.layout(match header {
        true => "labels.csv with a header",
        false => "labels.csv without a header (the original archive)",
    });
    let mut normals = Vec::new();
    let mut defects = Vec::new();
    for (n, line) in label_lines(&text, header) {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let bad = || {
            Error::layout(
                &labels,
                format!("line {n}: expected 'path probability type', got '{line}'"),
            )
        };
        let [path, prob, kind] = fields[..] else {
            return Err(bad());
        };
        let prob: f64 = prob.parse().map_err(|_| bad())?;
        let image = require_file(input.join(path))?;
        if prob == 0.0 {
            normals.push(Item::file(image));
        } else if prob == 1.0 {
            defects.push((Item::file(image), kind.to_string()));
        }
    }
    w.normals(normals)?;
    for (item, kind) in &defects {
        w.anomaly(item, kind)?;
    }
    Ok(())
}
