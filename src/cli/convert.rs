//! `dra convert`.

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;

use dra::data::convert::Converter;

#[derive(Debug, Args)]
pub struct ConvertArgs {
    /// Source data set: sdd, aitex, elpv, optical, mastcam, brainmri, headct, hyperkvasir,
    /// magnetic-tile.
    name: Converter,
    /// Folder holding the data set as distributed.
    #[arg(long)]
    input: PathBuf,
    /// Data root to write into; the class folder `<output>/<name>` must not exist yet.
    #[arg(long)]
    output: PathBuf,
    /// Seed of the 75/25 train/test split of normal images.
    #[arg(long, default_value_t = 42)]
    seed: u64,
}

pub fn run(a: ConvertArgs) -> Result<()> {
    let s = a.name.run(&a.input, &a.output, a.seed)?;
    if !s.layout.is_empty() {
        println!("input layout: {}", s.layout);
    }
    println!("wrote {}", s.dir.display());
    println!("  train/good  {:>6}", s.train_good);
    println!("  test/good   {:>6}", s.test_good);
    for (class, n) in &s.anomalies {
        println!("  test/{class:<7}{n:>6}");
    }
    println!("  masks       {:>6}", s.masks);
    println!(
        "next: dra split --data-root {} --class {}",
        a.output.display(),
        a.name.name()
    );
    Ok(())
}
