//! Plain folders ([`crate::data::folders`]): the normals split 75/25, each anomaly type a
//! `test/<type>` folder, masks to `ground_truth/<type>/`.

use std::path::Path;

use super::{Item, Summary, Writer};
use crate::data::folders::{Folders, Found};
use crate::error::{Error, Result};

/// Writes `source` into `<output>/<name>`; every check of the folders runs before anything
/// is written.
pub fn convert(source: &Folders, name: &str, output: &Path) -> Result<Summary> {
    if name.is_empty() || name.starts_with('.') || name.contains(['/', '\\']) {
        return Err(Error::Setting(format!(
            "--name '{name}' must be a folder name: not empty, no '/', no leading '.'"
        )));
    }
    let images = source.scan()?;
    images.check_distinct()?;
    let mut w = Writer::create(output, name, source.seed)?;
    let item = |f: Found| Item {
        source: f.source,
        crop: None,
        name: f.name,
        mask: f.mask,
    };
    let written = w
        .normals(images.normals.into_iter().map(item).collect())
        .and_then(|()| {
            for (kind, found) in images.anomalies {
                for f in found {
                    w.anomaly(&item(f), &kind)?;
                }
            }
            Ok(())
        });
    match written {
        Ok(()) => w.finish(),
        Err(e) => {
            w.discard();
            Err(e)
        }
    }
}
