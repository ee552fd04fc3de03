//! What the subcommands print: progress bars for training and evaluation, the metrics of a
//! run and where its files are, and the run directory's creation.

use std::path::Path;

use anyhow::{Context, Result};
use indicatif::{ProgressBar, ProgressStyle};

use dra::fusion::Fusion;
use dra::run::Progress;
use dra::run::files::{FUSION, read_json};
use dra::run::report::plot_files;
use dra::run::train::StepReport;
use dra::types::Metrics;

/// Progress bars: one per epoch with the running loss, seconds per step and the time the
/// rest of the training should take, then one for evaluation.
pub struct Bars {
    steps: usize,
    epochs: usize,
    bar: Option<ProgressBar>,
    running: f32,
    /// When the first step of this invocation began, and steps done since.
    started: Option<(std::time::Instant, usize)>,
}

impl Bars {
    pub fn new(epochs: usize, steps: usize) -> Self {
        Bars {
            steps,
            epochs,
            bar: None,
            running: 0.0,
            started: None,
        }
    }

    fn style(template: &str) -> ProgressStyle {
        ProgressStyle::with_template(template)
            .expect("valid template")
            .progress_chars("=> ")
    }
}

impl Progress for Bars {
    fn step(&mut self, r: &StepReport) {
        if r.step == 0 {
            let bar = ProgressBar::new(self.steps as u64)
                .with_style(Self::style("epoch {prefix} [{bar:25}] {pos}/{len} {msg}"));
            bar.set_prefix(format!("{:>2}/{}", r.epoch + 1, self.epochs));
            self.bar = Some(bar);
            self.running = 0.0;
        }
        self.running += r.loss;
        // the bar's clock starts after the first step (which also loads the images), so
        // the rate counts the steps after it
        let (start, done) = self.started.get_or_insert((std::time::Instant::now(), 0));
        let per_step = match *done {
            0 => None,
            n => Some(start.elapsed().as_secs_f64() / n as f64),
        };
        *done += 1;
        if let Some(bar) = &self.bar {
            let left = (self.epochs - r.epoch - 1) * self.steps + (self.steps - r.step - 1);
            let timing = per_step.map_or(String::new(), |t| {
                format!(
                    ", {t:.1} s/step, training done in {}",
                    minutes(t * left as f64)
                )
            });
            bar.set_message(format!(
                "loss {:.4} lr {:.1e}{timing}",
                self.running / (r.step + 1) as f32,
                r.lr
            ));
            bar.inc(1);
            if r.step + 1 == self.steps {
                bar.finish();
            }
        }
    }

    fn evaluated(&mut self, done: usize, total: usize) {
        if self
            .bar
            .as_ref()
            .is_none_or(|b| b.length() != Some(total as u64) || b.is_finished())
        {
            self.bar = Some(
                ProgressBar::new(total as u64)
                    .with_style(Self::style("evaluate [{bar:25}] {pos}/{len} ({elapsed})")),
            );
        }
        if let Some(bar) = &self.bar {
            bar.set_position(done as u64);
            if done == total {
                bar.finish();
            }
        }
    }
}

/// `1 h 05 min`, `4 min 10 s` or `35 s`.
fn minutes(seconds: f64) -> String {
    let s = seconds.round() as u64;
    match s {
        0..60 => format!("{s} s"),
        60..3600 => format!("{} min {:02} s", s / 60, s % 60),
        _ => format!("{} h {:02} min", s / 3600, s % 3600 / 60),
    }
}

/// Creates the run directory, refusing an existing one unless `overwrite`.
pub fn create_run_dir(dir: &Path, overwrite: bool) -> Result<()> {
    if dir.exists() {
        if !overwrite {
            anyhow::bail!(
                "{} already exists: choose another --out or pass --overwrite",
                dir.display()
            );
        }
        std::fs::remove_dir_all(dir).with_context(|| format!("cannot clear {}", dir.display()))?;
    }
    std::fs::create_dir_all(dir)
        .with_context(|| format!("cannot create {} (is it writable?)", dir.display()))
}

/// Prints the metrics and where the outputs are.
pub fn print_metrics(dir: &Path, m: &Metrics) {
    println!("AUC-ROC: {:.4}, AUC-PR: {:.4}", m.auc_roc, m.auc_pr);
    for (head, a) in &m.heads {
        println!(
            "  {head:<9} head alone: AUC-ROC {:.4}, AUC-PR {:.4}",
            a.auc_roc, a.auc_pr
        );
    }
    for (class, auc) in &m.classes {
        println!("  class {class:<12} AUC-ROC {auc:.4}");
    }
    if let Ok(fusion) = read_json::<Fusion>(&dir.join(FUSION)) {
        println!("score: {fusion}");
    }
    if let Some(d) = &m.decision {
        println!(
            "at the stored threshold {:.4}: precision {:.3}, recall {:.3}, F1 {:.3} (flagged {} of {} anomalies and {} of {} normals)",
            d.threshold,
            d.precision,
            d.recall,
            d.f1,
            d.true_positives,
            d.true_positives + d.false_negatives,
            d.false_positives,
            d.false_positives + d.true_negatives
        );
    }
    if let Some((f1, t)) = m.f1_max {
        println!("best F1 over all thresholds: {f1:.3} (at {t:.4})");
    }
    if let Some(p) = &m.pixel {
        println!(
            "anomaly maps against the masks ({} images, {} defect regions): pixel AUROC {:.4}, AUPRO {:.4}",
            p.images, p.regions, p.auc_roc, p.aupro
        );
        for (head, a) in &p.heads {
            println!(
                "  {head:<9} map alone: pixel AUROC {:.4}, AUPRO {:.4}",
                a.auc_roc, a.aupro
            );
        }
        if p.unmasked > 0 {
            println!("  ({} anomalies without a mask left out)", p.unmasked);
        }
    }
    println!("run directory: {}", dir.display());
    let plots: Vec<_> = plot_files(dir)
        .iter()
        .map(|p| p.display().to_string())
        .collect();
    println!("plots: {}", plots.join(", "));
}
