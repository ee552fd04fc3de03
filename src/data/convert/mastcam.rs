//! Mastcam: the source's own split, `train_typical/`, `test_typical/`, and one
//! `test_novel/<class>/` folder per novel class.

use std::path::Path;

use super::{Item, Writer, file_name, require_dir};
use crate::data::layout::{list_dirs, list_images};
use crate::error::Result;

pub fn convert(input: &Path, w: &mut Writer) -> Result<()> {
    let train = list_images(&require_dir(input.join("train_typical"))?)?;
    let test = list_images(&require_dir(input.join("test_typical"))?)?;
    let novel = list_dirs(&require_dir(input.join("test_novel"))?)?;
    w.train_normals(train.into_iter().map(Item::file).collect())?;
    w.test_normals(test.into_iter().map(Item::file).collect())?;
    for dir in novel {
        let class = file_name(&dir);
        for image in list_images(&dir)? {
            w.anomaly(&Item::file(image), &class)?;
        }
    }
    Ok(())
}
