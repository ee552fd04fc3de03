//! `dra classify`.

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;

use super::BackboneArgs;

#[derive(Debug, Args)]
pub struct ClassifyArgs {
    /// Images to classify.
    #[arg(required = true)]
    images: Vec<PathBuf>,
    #[command(flatten)]
    backbone: BackboneArgs,
    /// Print a JSON list: {"image", "top5": [{"index", "name", "probability"}, …]} per image.
    #[arg(long)]
    json: bool,
}

pub fn run(a: ClassifyArgs) -> Result<()> {
    let device = a.backbone.device.device()?;
    let net = a.backbone.load(&device)?;
    let predictions = dra::model::backbone::classify::classify(&net, &a.images, &device)?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&predictions)?);
        return Ok(());
    }
    for p in predictions {
        println!("{}", p.image.display());
        for c in p.top5 {
            println!(
                "  {:>6.2}%  {:>4}  {}",
                100.0 * c.probability,
                c.index,
                c.name
            );
        }
    }
    Ok(())
}
