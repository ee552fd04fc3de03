//! `dra train`: settings from flags, a TOML file and a preset, then a run directory.

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;

use dra::config::{Preset, StepAt, TrainConfig};
use dra::data::reference::RefMode;
use dra::data::transform::InputNorm;
use dra::device::DeviceChoice;
use dra::fusion::PartWeights;
use dra::methods::Method;
use dra::model::backbone::{BackboneKind, BnStats};
use dra::model::heads::ResidualMode;
use dra::model::loss::Criterion;
use dra::model::memory::MemoryMode;
use dra::model::{HeadNorm, HeadSet};
use dra::run::files::read_record;
use dra::run::{self, Plan};
use serde::Serialize;

use super::output::{Bars, create_run_dir, print_metrics};

/// Every training setting; each overrides `--config` and the defaults.
#[derive(Debug, Args)]
pub struct TrainArgs {
    /// Starting point of the settings: default (the measured defaults below) or paper (the
    /// reference code's exact training setting: backbone fine-tuned, 448², 600 steps,
    /// references resampled, ImageNet normalisation; hours on a CPU). `--config` and flags
    /// override it.
    #[arg(long, default_value = "default", conflicts_with = "resume")]
    preset: Preset,
    /// TOML file with any of the settings below (snake_case keys); flags override it.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Run directory to create: config.json, checkpoint/, model, metrics.json, scores.csv, plots.
    #[arg(long, required_unless_present = "resume")]
    out: Option<PathBuf>,
    /// Replace an existing run directory.
    #[arg(long)]
    overwrite: bool,
    /// Continue an interrupted run from its last checkpoint, with its own settings; the end
    /// result equals that of an uninterrupted run.
    #[arg(long, value_name = "RUN_DIR", conflicts_with_all = ["out", "overwrite", "config"])]
    resume: Option<PathBuf>,
    /// Stop after this many epochs in this invocation; `--resume` continues later.
    #[arg(long)]
    stop_after: Option<usize>,
    #[command(flatten)]
    settings: SettingArgs,
}

/// Every setting of a run as an optional flag, merged over the preset and `--config`
/// exactly as a grid cell's values are: only the flags given are set (TOML leaves out the
/// fields that are `None`).
#[derive(Debug, Default, Args, Serialize)]
pub struct SettingArgs {
    /// Data root in MVTec layout (or plain folders: --normal and --anomalies).
    #[arg(long)]
    data_root: Option<PathBuf>,
    /// Class folder under the data root; with plain folders, the data set's name [default:
    /// the name of the folder holding --normal].
    #[arg(long)]
    class: Option<String>,
    /// Plain folders: the normal images (sub-folders too), split 75/25 into training and
    /// test images as `dra convert folders` does.
    #[arg(long, value_name = "DIR")]
    normal: Option<PathBuf>,
    /// Plain folders: the anomalies, each folder one type named after it (a folder holding
    /// no image itself: each of its sub-folders one type).
    #[arg(long, value_name = "DIR", num_args = 1..)]
    anomalies: Option<Vec<PathBuf>>,
    /// Plain folders: masks of the anomalies, `<stem>.png` or `<stem>_mask.png` for the
    /// image `<stem>.*` (sub-folders too).
    #[arg(long, value_name = "DIR")]
    masks: Option<PathBuf>,
    /// Plain folders: seed of the 75/25 split of the normal images [default: 42].
    #[arg(long)]
    split_seed: Option<u64>,
    /// dra, or a comparison system of the DRA paper: devnet (the seen head alone, deviation
    /// loss, 24 normal + 24 seen a batch, 50 epochs, backbone fine-tuned, lr 2e-4), flos
    /// (devnet with the focal loss), deepsad (distance to the normals' centre, one scale, 30
    /// epochs), minns (MI-Net over the cells, cross-entropy, devnet's batches and trainer),
    /// saoe (normal / seen / pseudo classes, outlier exposure with --outlier-root), mlep
    /// (reconstruction with a latent margin) or kdad (unsupervised: a student distils the
    /// frozen backbone, the paper's teacher with --backbone vgg16 --weights
    /// vgg16-397923af.pth). A method sets its own heads, criterion and trainer profile; the
    /// other flags and --config keys override them [default: dra].
    #[arg(long)]
    method: Option<Method>,
    /// Seen anomalies used in training [default: 10].
    #[arg(long)]
    n_anomaly: Option<usize>,
    /// Hard protocol: seen anomalies from this class only; test on all other classes.
    #[arg(long)]
    known_class: Option<String>,
    /// General protocol: first test anomaly in the shuffled list [default: --n-anomaly].
    #[arg(long)]
    test_threshold: Option<usize>,
    /// General protocol: the fraction of the normal training images that are unlabelled
    /// anomalies (taken after the seen ones from the shuffled list, and out of the test set)
    /// [default: 0].
    #[arg(long)]
    cont_rate: Option<f64>,
    /// Outlier exposure: pseudo anomalies drawn from these images instead of CutMix (with
    /// --method saoe, a batch of them beside each batch instead), either
    /// `<root>/<class>/train/good/` of every class but the one trained (an MVTec AD root, the
    /// reference code's layout) or any folder of images [default: CutMix].
    #[arg(long)]
    outlier_root: Option<PathBuf>,
    /// efficientnet-lite0 (bundled weights), efficientnet-lite0-head, resnet18 or vgg16 (both
    /// need --weights: torchvision's .pth).
    #[arg(long)]
    backbone: Option<BackboneKind>,
    /// Backbone weights (.pth / .safetensors with PyTorch names).
    #[arg(long)]
    weights: Option<PathBuf>,
    /// cpu, cuda or wgpu (the last two need builds with those features) [default: cpu].
    #[arg(long)]
    device: Option<DeviceChoice>,
    /// deviation, dweighted (reproduction report's variant), bce, focal or sad (Deep SAD's)
    /// [default: deviation].
    #[arg(long)]
    criterion: Option<Criterion>,
    /// Epochs [default: 6; --preset paper: 30].
    #[arg(long)]
    epochs: Option<usize>,
    /// Steps per epoch [default: 20].
    #[arg(long)]
    steps_per_epoch: Option<usize>,
    /// Images per batch, also for evaluation [default: 48].
    #[arg(long)]
    batch_size: Option<usize>,
    /// Side of the square input [default: 224; --preset paper: 448].
    #[arg(long)]
    img_size: Option<usize>,
    /// Pyramid levels, each half the side of the previous [default: 2].
    #[arg(long)]
    n_scales: Option<usize>,
    /// Fraction of feature cells averaged by top-K MIL [default: 0.1].
    #[arg(long)]
    topk: Option<f64>,
    /// Reference-set size [default: 5].
    #[arg(long)]
    n_ref: Option<usize>,
    /// fixed (drawn once, paper eq. 6) or resample (official code) [default: fixed;
    /// --preset paper: resample].
    #[arg(long)]
    ref_mode: Option<RefMode>,
    /// Heads to use, e.g. seen,pseudo (the paper's ablations); centre is Deep SAD's, bag
    /// MINNS's [default: DRA's four].
    #[arg(long)]
    heads: Option<HeadSet>,
    /// Adam learning rate; the paper states 1e-3, the code uses 2e-4 [default: 1e-3;
    /// --preset paper: 2e-4].
    #[arg(long)]
    lr: Option<f64>,
    /// Coupled L2 weight decay; paper 1e-2, code 1e-5 [default: 1e-5].
    #[arg(long)]
    weight_decay: Option<f64>,
    /// Epochs between learning-rate drops of ×0.1 (StepLR) [default: 10].
    #[arg(long)]
    lr_step: Option<usize>,
    /// When the learning rate drops: start of an epoch (the DRA code's, one epoch early) or
    /// end (DevNet's) [default: start; --method devnet, flos: end].
    #[arg(long)]
    lr_step_at: Option<StepAt>,
    /// Global gradient-norm clip [default: 1.0].
    #[arg(long)]
    clip_norm: Option<f64>,
    /// Residual head against the mean reference map at the same cell (mean, the paper's) or
    /// the nearest reference cell anywhere (nearest, alignment-free) [default: nearest;
    /// --preset paper: mean].
    #[arg(long)]
    residual: Option<ResidualMode>,
    /// Anomaly score as the plain signed sum of the heads (none) or of their z-scores over
    /// the normal training images (standardise) [default: standardise; --preset paper:
    /// none].
    #[arg(long)]
    head_norm: Option<HeadNorm>,
    /// Add to the score a memory of normal patches (patch, PatchCore-style, counted as much
    /// as all heads together) or not (none, the paper's) [default: patch; --preset paper:
    /// none].
    #[arg(long)]
    memory: Option<MemoryMode>,
    /// With --head-norm standardise, the weight of each part's z-score (over the normal
    /// training images) in the score and the map, `part=weight` comma-separated; a part not
    /// named weighs 1 [default: pseudo=0,memory=6].
    #[arg(long, value_name = "WEIGHTS")]
    part_weights: Option<PartWeights>,
    /// False-positive rate on the normal training images that sets the stored decision
    /// threshold (optimistic, as the model saw them) [default: 0.01].
    #[arg(long)]
    fpr: Option<f64>,
    /// Standard deviation, in pixels of the model's input, of the Gaussian that smooths the
    /// anomaly maps; 0 for none [default: 4].
    #[arg(long)]
    map_sigma: Option<f32>,
    /// Train the heads only (true) or fine-tune the backbone too (false) [default: true;
    /// --preset paper: false].
    #[arg(long, num_args = 0..=1, default_missing_value = "true", value_name = "BOOL")]
    freeze_backbone: Option<bool>,
    /// Backbone BatchNorm statistics: batch (PyTorch's train mode), frozen (the pretrained
    /// running statistics throughout) or recalibrate (batch, then re-estimated per scale on
    /// the normal training images) [default: batch].
    #[arg(long)]
    bn_stats: Option<BnStats>,
    /// Momentum of the backbone's running-statistics update [default: 0.1, PyTorch's].
    #[arg(long)]
    bn_momentum: Option<f64>,
    /// EfficientNet drop-connect rate (0.2 in its ImageNet training) [default: 0].
    #[arg(long)]
    drop_connect: Option<f64>,
    /// Input normalisation: auto (what the weights expect; none for kdad's vgg16 teacher, as
    /// its code), imagenet, half, none (pixels in [0, 1]) [default: auto; --preset paper:
    /// imagenet].
    #[arg(long)]
    normalization: Option<InputNorm>,
    /// Leave out images that cannot be decoded (listed in config.json) instead of stopping.
    #[arg(long, num_args = 0..=1, default_missing_value = "true", value_name = "BOOL")]
    skip_bad_images: Option<bool>,
    /// Seed of every random choice [default: 42].
    #[arg(long)]
    seed: Option<u64>,
}

impl SettingArgs {
    /// The flags given, as a settings table.
    fn table(&self) -> Result<toml::Table> {
        Ok(toml::Table::try_from(self)?)
    }
}

impl TrainArgs {
    /// Preset ← `--config` file ← flags.
    pub fn config(&self) -> Result<TrainConfig> {
        let preset = TrainConfig::preset(self.preset);
        let mut layers = Vec::new();
        if let Some(path) = &self.config {
            layers.push(TrainConfig::file_layer(path, &preset)?);
        }
        layers.push(self.settings.table()?);
        // one layering, so that a method named by a flag lays its profile beneath the file
        Ok(TrainConfig::layered(&preset, &layers)?.named())
    }
}

pub fn run(a: TrainArgs) -> Result<()> {
    let options = run::RunOptions {
        resume: a.resume.is_some(),
        stop_after: a.stop_after,
    };
    let (cfg, out) = match &a.resume {
        Some(dir) => {
            if !a.settings.table()?.is_empty() {
                anyhow::bail!(
                    "--resume continues with the run's own settings (its config.json): drop the other settings flags"
                );
            }
            (read_record(dir)?.settings, dir.clone())
        }
        None => (a.config()?, a.out.clone().expect("clap requires --out")),
    };
    // every check of settings, data, weights and memory before the run directory is touched
    let mut plan = Plan::new(&cfg)?;
    if cfg.method.spec().composition.exposure && plan.derived.exposure_slots == 0 {
        eprintln!(
            "note: --method {} without --outlier-root trains without its outlier-exposure term",
            cfg.method
        );
    }
    if !options.resume {
        create_run_dir(&out, a.overwrite)?;
    }
    let mut bars = Bars::new(cfg.epochs, cfg.steps_per_epoch);
    match run::train_run(&mut plan, &out, options, &mut bars)? {
        run::Outcome::Finished(metrics) => print_metrics(&out, &metrics),
        run::Outcome::Stopped { epochs_done } => println!(
            "stopped after epoch {epochs_done} of {}; continue with: dra train --resume {}",
            cfg.epochs,
            out.display()
        ),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use clap::{CommandFactory, Parser};

    use super::*;

    /// `dra train` alone, to parse its flags.
    #[derive(Debug, Parser)]
    struct Train {
        #[command(flatten)]
        args: TrainArgs,
    }

    /// A value other than the default for every setting, as the flag would give it.
    fn changed(key: &str) -> &'static str {
        match key {
            "data_root" => "/data",
            "class" => "tile",
            "normal" => "/good",
            "anomalies" => "/bad",
            "masks" => "/masks",
            "split_seed" => "7",
            "n_anomaly" => "3",
            "known_class" => "crack",
            "test_threshold" => "4",
            "method" => "devnet",
            "cont_rate" => "0.1",
            "outlier_root" => "/outliers",
            "backbone" => "resnet18",
            "weights" => "/w.pth",
            "device" => "wgpu",
            "criterion" => "focal",
            "epochs" => "9",
            "steps_per_epoch" => "7",
            "batch_size" => "10",
            "img_size" => "96",
            "n_scales" => "3",
            "topk" => "0.2",
            "n_ref" => "8",
            "ref_mode" => "resample",
            "heads" => "seen,residual",
            "residual" => "mean",
            "head_norm" => "none",
            "memory" => "none",
            "part_weights" => "memory=2,seen=0.5",
            "fpr" => "0.05",
            "map_sigma" => "2.5",
            "freeze_backbone" => "false",
            "bn_stats" => "frozen",
            "bn_momentum" => "0.01",
            "drop_connect" => "0.2",
            "normalization" => "imagenet",
            "lr" => "0.5",
            "weight_decay" => "0.25",
            "lr_step" => "3",
            "lr_step_at" => "end",
            "clip_norm" => "2.5",
            "seed" => "5",
            "skip_bad_images" => "true",
            other => panic!("setting {other} has no test value: add one here"),
        }
    }

    /// Every setting's name, from the settings themselves (JSON keeps the `None` ones).
    fn setting_keys() -> Vec<String> {
        match serde_json::to_value(TrainConfig::default()).unwrap() {
            serde_json::Value::Object(map) => map.keys().cloned().collect(),
            _ => unreachable!(),
        }
    }

    /// The settings as JSON values, by name.
    fn values(c: &TrainConfig) -> serde_json::Map<String, serde_json::Value> {
        match serde_json::to_value(c).unwrap() {
            serde_json::Value::Object(map) => map,
            _ => unreachable!(),
        }
    }

    #[test]
    fn every_setting_has_a_flag_and_a_toml_key() {
        let default = values(&TrainConfig::default());
        let flags: Vec<String> = Train::command()
            .get_arguments()
            .map(|a| a.get_id().to_string())
            .collect();
        let dir = tempfile::tempdir().unwrap();
        let keys = setting_keys();
        for key in &keys {
            assert!(flags.contains(key), "no --{} flag", key.replace('_', "-"));
            // the flag alone sets exactly that setting
            let flag = format!("--{}", key.replace('_', "-"));
            let argv = ["dra", "--out", "x", &flag, changed(key)];
            let cfg = TrainConfig::layered(
                &TrainConfig::default(),
                &[Train::try_parse_from(argv)
                    .unwrap()
                    .args
                    .settings
                    .table()
                    .unwrap()],
            )
            .unwrap();
            let got = values(&cfg);
            // a method also lays its profile: against the defaults with that profile, the
            // method is all that the flag changes
            let reference = match key.as_str() {
                "method" => values(
                    &TrainConfig::layered(
                        &TrainConfig::default(),
                        &[Method::Devnet.spec().profile],
                    )
                    .unwrap(),
                ),
                _ => default.clone(),
            };
            for k in &keys {
                assert_eq!(got[k] != reference[k], k == key, "--{key} changed {k}");
            }
            // and so does the key in a TOML file
            let value = match default[key] {
                serde_json::Value::Array(_) => format!("[\"{}\"]", changed(key)),
                serde_json::Value::String(_) | serde_json::Value::Null
                    if !matches!(key.as_str(), "n_anomaly" | "test_threshold") =>
                {
                    format!("\"{}\"", changed(key))
                }
                _ => changed(key).to_string(),
            };
            let file = dir.path().join("c.toml");
            std::fs::write(&file, format!("{key} = {value}\n")).unwrap();
            let from_file = TrainConfig::from_toml_file(&file, &TrainConfig::default()).unwrap();
            assert_eq!(from_file, cfg, "{key} in TOML");
        }
    }

    /// Whether a help text's default `text` names `value`: the same string, number or
    /// boolean (a default described in words is listed with the value it stands for).
    fn names_value(key: &str, text: &str, value: &serde_json::Value) -> bool {
        let described = [
            ("test_threshold", "--n-anomaly"),
            ("outlier_root", "CutMix"),
            ("heads", "DRA's four"),
            ("class", "the name of the folder holding --normal"),
        ];
        if described.contains(&(key, text)) {
            return true;
        }
        match value {
            serde_json::Value::String(v) => v == text,
            serde_json::Value::Number(v) => text.parse::<f64>().ok() == v.as_f64(),
            serde_json::Value::Bool(v) => text.parse::<bool>().ok() == Some(*v),
            _ => false,
        }
    }

    /// Every `[default: X]` (and `--preset paper: Y`) in the flags' help is the setting's
    /// value in `TrainConfig::default()` (and the paper preset).
    #[test]
    fn the_defaults_in_the_help_are_the_settings_defaults() {
        let default = values(&TrainConfig::default());
        let paper = values(&TrainConfig::preset(Preset::Paper));
        let mut checked = 0;
        for arg in Train::command().get_arguments() {
            let key = arg.get_id().as_str();
            let Some(value) = default.get(key) else {
                continue;
            };
            let help = (arg.get_long_help().or(arg.get_help()))
                .map(|h| h.to_string().replace('\n', " "))
                .unwrap_or_default();
            let Some(start) = help.find("[default: ") else {
                continue;
            };
            let inner = &help[start + "[default: ".len()..];
            let inner = &inner[..inner.find(']').expect("a closing bracket")];
            let mut parts = inner.split(';').map(str::trim);
            let first = parts.next().unwrap();
            let plain = first.split(", ").next().unwrap();
            assert!(
                names_value(key, first, value) || names_value(key, plain, value),
                "--{key}: the help says [default: {first}], the default is {value}"
            );
            for part in parts {
                if let Some(text) = part.strip_prefix("--preset paper: ") {
                    assert!(
                        names_value(key, text, &paper[key]),
                        "--{key}: the help says --preset paper: {text}, the preset has {}",
                        paper[key]
                    );
                }
            }
            checked += 1;
        }
        assert!(checked >= 30, "only {checked} flags state a default");
    }

    #[test]
    fn flags_override_the_file_and_the_file_the_preset() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("c.toml");
        std::fs::write(
            &file,
            "data_root = \"/d\"\nclass = \"c\"\nepochs = 4\nlr = 0.5\n",
        )
        .unwrap();
        let argv = [
            "dra",
            "--preset",
            "paper",
            "--config",
            file.to_str().unwrap(),
            "--out",
            "x",
        ];
        let parsed = |extra: &[&str]| {
            let argv: Vec<&str> = argv.iter().chain(extra).copied().collect();
            Train::try_parse_from(argv).unwrap().args.config().unwrap()
        };
        let c = parsed(&["--lr", "0.25"]);
        assert_eq!((c.epochs, c.lr, c.img_size), (4, 0.25, 448));
        assert_eq!(parsed(&[]).lr, 0.5);
    }
}
