//! `dra convert`.

use std::path::PathBuf;
use std::str::FromStr;

use anyhow::{Result, bail};
use clap::Args;

use dra::data::convert::{self, Converter, Summary};
use dra::data::folders::{Folders, default_name};

#[derive(Debug, Args)]
pub struct ConvertArgs {
    /// What to convert: folders (your own images: --normal, --anomalies, --masks), or a
    /// public data set as distributed (--input): sdd, aitex, elpv, optical, mastcam,
    /// brainmri, headct, hyperkvasir, magnetic-tile.
    #[arg(value_name = "SOURCE")]
    source: Source,
    /// A public data set: the folder holding it as distributed.
    #[arg(long, conflicts_with_all = ["normal", "anomalies", "masks"])]
    input: Option<PathBuf>,
    /// folders: the normal images (sub-folders too), split 75/25 into train/good and
    /// test/good.
    #[arg(long, value_name = "DIR")]
    normal: Option<PathBuf>,
    /// folders: the anomalies, each folder one type named after it (a folder holding no
    /// image itself: each of its sub-folders one type), written to test/<type>.
    #[arg(long, value_name = "DIR", num_args = 1..)]
    anomalies: Vec<PathBuf>,
    /// folders: masks of the anomalies, `<stem>.png` or `<stem>_mask.png` for the image
    /// `<stem>.*` (sub-folders too), written to ground_truth/<type>.
    #[arg(long, value_name = "DIR")]
    masks: Option<PathBuf>,
    /// folders: the class folder to write [default: the name of the folder holding
    /// --normal]. A public data set's is its own name.
    #[arg(long = "name", value_name = "CLASS")]
    class: Option<String>,
    /// Data root to write into; the class folder `<output>/<name>` must not exist yet.
    #[arg(long)]
    output: PathBuf,
    /// Seed of the 75/25 train/test split of normal images.
    #[arg(long, default_value_t = 42)]
    seed: u64,
}

/// A public data set's converter, or plain folders.
#[derive(Debug, Clone, Copy)]
enum Source {
    Folders,
    Dataset(Converter),
}

impl FromStr for Source {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "folders" => Ok(Source::Folders),
            _ => s
                .parse()
                .map(Source::Dataset)
                .map_err(|e: dra::error::Error| format!("{e}, or folders (your own images)")),
        }
    }
}

pub fn run(a: ConvertArgs) -> Result<()> {
    let (s, class) = match a.source {
        Source::Dataset(converter) => {
            let Some(input) = &a.input else {
                bail!(
                    "dra convert {} needs --input: the folder holding the data set ({})",
                    converter.name(),
                    converter.expected_input()
                );
            };
            if a.class.is_some() {
                bail!("--name is for folders: a public data set is written under its own name");
            }
            let s = converter.run(input, &a.output, a.seed)?;
            (s, converter.name().to_string())
        }
        Source::Folders => {
            let (Some(normal), false) = (&a.normal, a.anomalies.is_empty()) else {
                bail!(
                    "dra convert folders needs --normal DIR (the normal images) and \
                     --anomalies DIR… (a folder per anomaly type)"
                );
            };
            let folders = Folders {
                normal: normal.clone(),
                anomalies: a.anomalies.clone(),
                masks: a.masks.clone(),
                seed: a.seed,
            };
            let class = a.class.clone().unwrap_or_else(|| default_name(normal));
            let s = convert::folders::convert(&folders, &class, &a.output)?;
            println!(
                "read {} normal images from {}",
                s.train_good + s.test_good,
                normal.display()
            );
            for dir in &a.anomalies {
                println!("read anomalies from {}", dir.display());
            }
            if let Some(masks) = &a.masks {
                println!("read {} masks from {}", s.masks, masks.display());
            }
            (s, class)
        }
    };
    print_summary(&s);
    println!(
        "next: dra split --data-root {} --class {class}",
        a.output.display(),
    );
    Ok(())
}

fn print_summary(s: &Summary) {
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
}
