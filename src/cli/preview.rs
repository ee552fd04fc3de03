//! `dra preview`.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::Args;

use super::DataArgs;
use dra::data::batch::{Batcher, ImageStore};
use dra::data::preview::{REFERENCE_COLOR, grid, label_color};
use dra::data::protocol::Split;
use dra::data::reference::{RefMode, ReferenceSet};
use dra::data::sampler::BatchSampler;
use dra::methods::Method;
use dra::rng::DraRng;

/// Settings of the batch drawn for a preview.
#[derive(Debug, Clone, Args)]
pub struct BatchArgs {
    /// Side of the square network input in pixels.
    #[arg(long, default_value_t = 224)]
    pub img_size: u32,
    /// Images per batch: for dra 2/3 normal slots (half of them pseudo anomalies) and 1/3
    /// seen anomalies; for devnet and flos half normal, half seen.
    #[arg(long, default_value_t = 12)]
    pub batch_size: usize,
    /// The method whose batches to draw.
    #[arg(long, default_value = "dra")]
    pub method: Method,
    /// Size of the reference set of normal images.
    #[arg(long, default_value_t = 5)]
    pub n_ref: usize,
    /// Reference set: `fixed` (drawn once, paper eq. 6) or `resample` (official code).
    #[arg(long, default_value = "fixed")]
    pub ref_mode: RefMode,
}

#[derive(Debug, Args)]
pub struct PreviewArgs {
    #[command(flatten)]
    data: DataArgs,
    #[command(flatten)]
    batch: BatchArgs,
    /// PNG file to write.
    #[arg(long, default_value = "batch.png")]
    out: PathBuf,
}

pub fn run(a: PreviewArgs) -> Result<()> {
    let (split, mut rng) = a.data.split()?;
    write_preview(&split, &a.batch, &mut rng, &a.out)?;
    println!(
        "wrote {} (blue: reference set, green: normal, orange: pseudo anomaly, red: seen anomaly)",
        a.out.display()
    );
    Ok(())
}

/// Draws the reference set and one batch from `split` and saves them as a grid at `out`.
pub fn write_preview(split: &Split, b: &BatchArgs, rng: &mut DraRng, out: &Path) -> Result<()> {
    let mut refs = ReferenceSet::new(b.ref_mode, b.n_ref, split.train_normal.len(), rng)?;
    let mut sampler = BatchSampler::new(
        split.train_normal.len(),
        split.train_anomaly.len(),
        b.batch_size,
        b.method.spec().composition,
    )?;
    let mut store = ImageStore::new(b.img_size);
    let mut batcher = Batcher::new(&split.train_normal, &split.train_anomaly, &mut store);
    let ref_slots = refs.slots(rng);
    let mut tiles: Vec<_> = batcher
        .images(&ref_slots, refs.augmented(), rng)?
        .into_iter()
        .map(|img| (img, REFERENCE_COLOR))
        .collect();
    let slots = sampler.next_batch(rng);
    let images = batcher.images(&slots, true, rng)?;
    tiles.extend(
        images
            .into_iter()
            .zip(&slots)
            .map(|(img, s)| (img, label_color(s.label))),
    );
    let columns = (tiles.len() as f64).sqrt().ceil() as usize;
    grid(&tiles, columns)
        .save(out)
        .with_context(|| format!("cannot write {}", out.display()))?;
    Ok(())
}
