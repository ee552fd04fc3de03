//! Command-line interface: one sub-module per subcommand.

mod calibrate;
mod classify;
mod convert;
mod demo;
mod eval;
mod grid;
mod output;
mod predict;
mod preview;
mod serve;
mod split;
mod train;

use std::path::PathBuf;

use anyhow::Result;
use clap::{Args, Parser, Subcommand};

use dra::config::TrainConfig;
use dra::data::protocol::Split;
use dra::device::DeviceChoice;
use dra::model::backbone::{Backbone, BackboneKind, weights};
use dra::rng::DraRng;

/// Open-set supervised anomaly detection with DRA (Ding, Pang, Shen, CVPR 2022).
///
/// Train a detector from many normal images and a handful of labelled defects that still
/// catches defect types nobody has seen. Data sets use the MVTec layout:
/// <root>/<class>/train/good, test/good, test/<defect>; `dra convert` makes it from
/// public data sets' own layouts.
#[derive(Debug, Parser)]
#[command(name = "dra", version, about, long_about, args_override_self = true)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Convert a public data set into the MVTec layout (sdd, aitex, elpv, optical, mastcam,
    /// brainmri, headct, hyperkvasir, magnetic-tile).
    Convert(convert::ConvertArgs),
    /// Show which anomalies a protocol puts into training and which into the test set.
    Split(split::SplitArgs),
    /// Draw one training batch (with its reference set) as a picture, to check augmentation.
    Preview(preview::PreviewArgs),
    /// Run the built-in demo on the bundled ELPV subset (no files needed from elsewhere).
    Demo(demo::DemoArgs),
    /// Train a DRA model, evaluate it on the test split and write a run directory.
    Train(Box<train::TrainArgs>),
    /// Re-evaluate a saved run on its test split: metrics, maps.png, pixel metrics where there
    /// are masks, every map with --maps.
    Eval(eval::EvalArgs),
    /// Set a saved run's decision threshold from your own validation images.
    Calibrate(calibrate::CalibrateArgs),
    /// Score images or folders with a saved run: score, decision, each head, maps if asked.
    Predict(predict::PredictArgs),
    /// Serve a trained detector over HTTP: POST /v1/predict with an image, a web page at /,
    /// health, readiness and Prometheus metrics; the model stays loaded and requests are
    /// batched.
    Serve(serve::ServeArgs),
    /// Top-5 ImageNet classes of images, to check that backbone weights loaded right.
    Classify(classify::ClassifyArgs),
    /// Run a grid of experiments (data sets, protocols, shots, seeds, criteria, heads, …)
    /// into mean ± std tables with the kNN baseline; rerun to resume.
    #[command(alias = "bench")]
    Grid(grid::GridArgs),
}

/// Arguments that choose a data set class and a protocol split.
#[derive(Debug, Clone, Args)]
pub struct DataArgs {
    /// Data root in MVTec layout (holds one folder per class), or plain folders: --normal
    /// and --anomalies.
    #[arg(long, required_unless_present = "normal")]
    data_root: Option<PathBuf>,
    /// Class folder under the data root; with plain folders, the data set's name.
    #[arg(long)]
    class: Option<String>,
    /// Plain folders: the normal images (sub-folders too), split 75/25 into training and
    /// test images as `dra convert folders` does.
    #[arg(
        long,
        value_name = "DIR",
        conflicts_with = "data_root",
        requires = "anomalies"
    )]
    normal: Option<PathBuf>,
    /// Plain folders: the anomalies, each folder one type named after it (a folder holding
    /// no image itself: each of its sub-folders one type).
    #[arg(long, value_name = "DIR", num_args = 1.., requires = "normal")]
    anomalies: Vec<PathBuf>,
    /// Plain folders: the anomalies' masks, `<stem>.png` or `<stem>_mask.png`.
    #[arg(long, value_name = "DIR", requires = "normal")]
    masks: Option<PathBuf>,
    /// Plain folders: seed of the 75/25 split of the normal images.
    #[arg(long, default_value_t = 42)]
    split_seed: u64,
    /// Number of labelled (seen) anomalies used in training.
    #[arg(long, default_value_t = 10)]
    n_anomaly: usize,
    /// Hard protocol: take seen anomalies from this class only and test on all other classes.
    #[arg(long)]
    known_class: Option<String>,
    /// General protocol: test anomalies start at this index of the shuffled anomaly list
    /// (default --n-anomaly). `--test-threshold 10` gives 1-shot and 10-shot runs one test set.
    #[arg(long, conflicts_with = "known_class")]
    test_threshold: Option<usize>,
    /// General protocol: the fraction of the normal training images that are unlabelled
    /// anomalies, taken from the shuffled list after the seen ones and out of the test set.
    #[arg(long, default_value_t = 0.0, conflicts_with = "known_class")]
    cont_rate: f64,
    /// Seed of every random choice (split, sampler, augmentation).
    #[arg(long, default_value_t = 42)]
    seed: u64,
}

impl DataArgs {
    /// The training settings these arguments set (the others at their defaults).
    fn config(&self) -> TrainConfig {
        TrainConfig {
            data_root: self.data_root.clone().unwrap_or_default(),
            class: self.class.clone().unwrap_or_default(),
            normal: self.normal.clone(),
            anomalies: self.anomalies.clone(),
            masks: self.masks.clone(),
            split_seed: self.split_seed,
            n_anomaly: self.n_anomaly,
            known_class: self.known_class.clone(),
            test_threshold: self.test_threshold,
            cont_rate: self.cont_rate,
            seed: self.seed,
            ..TrainConfig::default()
        }
        .named()
    }

    /// Opens the data set and splits it, returning the RNG that continues after the split.
    fn split(&self) -> Result<(Split, DraRng)> {
        let config = self.config();
        let layout = config.layout()?;
        let mut rng = dra::rng::seeded(config.seed);
        let split = Split::new(&layout, &config.protocol(), config.n_anomaly, &mut rng)?;
        Ok((split, rng))
    }
}

/// Arguments that choose and load a backbone.
#[derive(Debug, Clone, Args)]
pub struct BackboneArgs {
    /// Backbone: efficientnet-lite0 (ImageNet weights bundled), efficientnet-lite0-head
    /// (its 1280-channel map), or resnet18 (the paper's; needs --weights).
    #[arg(long, default_value = "efficientnet-lite0")]
    backbone: BackboneKind,
    /// Weights file (.pth, .pt or .safetensors with PyTorch names), e.g. torchvision's
    /// resnet18-f37072fd.pth. Default: the bundled EfficientNet-Lite0 weights.
    #[arg(long)]
    weights: Option<PathBuf>,
    /// Compute device: cpu, or cuda / wgpu in builds with those features.
    #[arg(long, default_value = "cpu")]
    device: DeviceChoice,
}

impl BackboneArgs {
    /// The backbone with its weights loaded, on `device`.
    fn load(&self, device: &burn::tensor::Device) -> Result<Backbone> {
        Ok(weights::pretrained(
            self.backbone,
            self.weights.as_deref(),
            device,
        )?)
    }
}

/// An error and its causes on one line, each cause left out when the text so far already
/// says it (library errors embed their source in their own message).
pub fn one_line(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let text = c.to_string();
        if !out.contains(&text) {
            out = format!("{out}: {text}");
        }
        cause = c.source();
    }
    out
}

/// Runs the parsed command.
pub fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Convert(a) => convert::run(a),
        Command::Split(a) => split::run(a),
        Command::Preview(a) => preview::run(a),
        Command::Demo(a) => demo::run(a),
        Command::Train(a) => train::run(*a),
        Command::Eval(a) => eval::run(a),
        Command::Predict(a) => predict::run(a),
        Command::Serve(a) => serve::run(a),
        Command::Calibrate(a) => calibrate::run(a),
        Command::Classify(a) => classify::run(a),
        Command::Grid(a) => grid::run(a),
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::Cli;

    /// Every `dra …` command line of the README and the guide parses: its subcommand and
    /// flags exist and take the values shown (the files they name are not read).
    #[test]
    fn the_documented_command_lines_parse() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let mut checked = 0;
        for doc in ["README.md", "docs/GUIDE.md"] {
            let text = std::fs::read_to_string(root.join(doc)).unwrap();
            for (n, line) in text.lines().enumerate() {
                let Some(command) = line.strip_prefix("dra ") else {
                    continue;
                };
                let command = command.split(" # ").next().unwrap();
                let argv = std::iter::once("dra").chain(command.split_whitespace());
                if let Err(e) = Cli::try_parse_from(argv) {
                    panic!("{doc}:{}: {line}\n{e}", n + 1);
                }
                checked += 1;
            }
        }
        assert!(checked >= 30, "only {checked} command lines found");
    }
}
