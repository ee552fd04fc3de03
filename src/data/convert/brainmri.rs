//! Brain MRI: `no/` normal scans (split 75/25) and `yes/` tumours (test/defect).

use std::path::Path;

use super::{Item, Writer, require_dir};
use crate::data::layout::list_images;
use crate::error::Result;

pub fn convert(input: &Path, w: &mut Writer) -> Result<()> {
    let normals = list_images(&require_dir(input.join("no"))?)?;
    let tumours = list_images(&require_dir(input.join("yes"))?)?;
    w.normals(normals.into_iter().map(Item::file).collect())?;
    for t in tumours {
        w.anomaly(&Item::file(t), "defect")?;
    }
    Ok(())
}
