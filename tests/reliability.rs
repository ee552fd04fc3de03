//! Reliability: resuming gives the uninterrupted result bit for bit, bad images are named or
//! skipped, odd image formats load, impossible settings stop before training.

mod common;

use common::{dra, s};

use std::path::Path;
use std::process::Output;

use dra::config::TrainConfig;
use dra::run::{Outcome, RunOptions, train_run};

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn tiny(data_root: &Path, class: &str) -> TrainConfig {
    TrainConfig {
        data_root: data_root.to_path_buf(),
        class: class.into(),
        img_size: 48,
        batch_size: 8,
        epochs: 3,
        steps_per_epoch: 2,
        n_scales: 1,
        ..TrainConfig::default()
    }
}

#[test]
fn a_resumed_run_ends_with_the_uninterrupted_scores() {
    let data = common::bundled_elpv();
    let cfg = tiny(data.path(), "elpv");
    let whole = tempfile::tempdir().unwrap();
    common::train(&cfg, whole.path());

    let parts = tempfile::tempdir().unwrap();
    let stop = |n| RunOptions {
        resume: false,
        stop_after: Some(n),
    };
    assert_eq!(
        train_run(
            &mut dra::run::Plan::new(&cfg).unwrap(),
            parts.path(),
            stop(1),
            &mut ()
        )
        .unwrap(),
        Outcome::Stopped { epochs_done: 1 }
    );
    assert!(parts.path().join("checkpoint/state.json").is_file());
    assert!(!parts.path().join("scores.csv").exists());
    let resume = |n| RunOptions {
        resume: true,
        stop_after: n,
    };
    assert_eq!(
        train_run(
            &mut dra::run::Plan::new(&cfg).unwrap(),
            parts.path(),
            resume(Some(1)),
            &mut ()
        )
        .unwrap(),
        Outcome::Stopped { epochs_done: 2 }
    );
    assert!(matches!(
        train_run(
            &mut dra::run::Plan::new(&cfg).unwrap(),
            parts.path(),
            resume(None),
            &mut ()
        )
        .unwrap(),
        Outcome::Finished(_)
    ));
    let read = |d: &Path, f: &str| std::fs::read(d.join(f)).unwrap();
    assert_eq!(
        read(whole.path(), "scores.csv"),
        read(parts.path(), "scores.csv")
    );
    assert_eq!(
        read(whole.path(), "train_log.csv"),
        read(parts.path(), "train_log.csv")
    );
}

/// A data set whose training normals include grey, grey+alpha, RGBA, 16-bit and 1-pixel
/// images, plus the bad files named in `bad`.
fn odd_data_set(root: &Path, bad: &[(&str, &[u8])]) {
    use image::{ImageBuffer, Luma, LumaA, Rgb, Rgba};
    common::make_layout(root, "c", 4, 3, &[("crack", 3), ("hole", 2)]);
    let good = root.join("c/train/good");
    ImageBuffer::from_pixel(20, 10, Luma([90u8]))
        .save(good.join("grey.png"))
        .unwrap();
    ImageBuffer::from_pixel(9, 9, LumaA([90u8, 200]))
        .save(good.join("grey-alpha.png"))
        .unwrap();
    ImageBuffer::from_pixel(12, 30, Rgba([1u8, 2, 3, 4]))
        .save(good.join("rgba.png"))
        .unwrap();
    ImageBuffer::from_pixel(16, 16, Luma([40000u16]))
        .save(good.join("grey16.png"))
        .unwrap();
    ImageBuffer::from_pixel(8, 8, Rgb([0u16, 30000, 65535]))
        .save(good.join("rgb16.tif"))
        .unwrap();
    ImageBuffer::from_pixel(1, 1, Rgb([7u8, 7, 7]))
        .save(good.join("dot.bmp"))
        .unwrap();
    for (name, bytes) in bad {
        std::fs::write(good.join(name), bytes).unwrap();
    }
}

fn train_args<'a>(root: &'a Path, out: &'a Path) -> Vec<&'a str> {
    vec![
        "train",
        "--data-root",
        s(root),
        "--class",
        "c",
        "--out",
        s(out),
        "--n-anomaly",
        "2",
        "--img-size",
        "32",
        "--batch-size",
        "6",
        "--epochs",
        "1",
        "--steps-per-epoch",
        "1",
        "--n-scales",
        "1",
    ]
}

#[test]
fn odd_formats_train_and_bad_files_are_named_or_skipped() {
    let root = tempfile::tempdir().unwrap();
    let mut png = Vec::new();
    image::RgbImage::from_pixel(40, 40, image::Rgb([5, 6, 7]))
        .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
        .unwrap();
    let truncated = &png[..png.len() / 2];
    odd_data_set(
        root.path(),
        &[
            ("cut.png", truncated),
            ("notes.jpg", b"a text file"),
            ("empty.png", b""),
        ],
    );
    let out = root.path().join("run");

    let refused = dra(&train_args(root.path(), &out));
    assert!(!refused.status.success());
    let err = stderr(&refused);
    assert!(
        err.contains("cannot read image") && err.contains("--skip-bad-images"),
        "{err}"
    );
    assert!(
        err.contains("cut.png") || err.contains("empty.png") || err.contains("notes.jpg"),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(!out.exists());

    let mut args = train_args(root.path(), &out);
    args.push("--skip-bad-images");
    let ok = dra(&args);
    assert!(ok.status.success(), "{}", stderr(&ok));
    for name in ["cut.png", "notes.jpg", "empty.png"] {
        assert!(
            stderr(&ok).contains(name),
            "{name} not listed: {}",
            stderr(&ok)
        );
    }
    let record: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("config.json")).unwrap()).unwrap();
    assert_eq!(
        record["derived"]["skipped_images"]
            .as_array()
            .unwrap()
            .len(),
        3
    );
    assert_eq!(record["derived"]["n_train_normal"], 4 + 6);
}

#[test]
fn impossible_settings_stop_before_training() {
    let root = tempfile::tempdir().unwrap();
    odd_data_set(root.path(), &[]);
    let out = root.path().join("run");
    let with = |extra: &[&str]| dra(&[train_args(root.path(), &out), extra.to_vec()].concat());
    // memory: refused from the estimate, before anything is allocated
    let r = with(&["--batch-size", "200000"]);
    assert!(
        stderr(&r).contains("GiB") && stderr(&r).contains("lower --batch-size"),
        "{}",
        stderr(&r)
    );
    // weights: a truncated file and a file of another network
    let bundled = dra::model::backbone::BackboneKind::EfficientnetLite0
        .bundled_weights()
        .unwrap();
    let cut = root.path().join("cut.pth");
    let bytes = std::fs::read(&bundled).unwrap();
    std::fs::write(&cut, &bytes[..1000]).unwrap();
    assert!(stderr(&with(&["--weights", s(&cut)])).contains("cut.pth"));
    assert!(
        stderr(&with(&["--backbone", "resnet18", "--weights", s(&bundled)]))
            .contains("not resnet18 weights")
    );
    // an output that cannot be created
    let file = root.path().join("a-file");
    std::fs::write(&file, "x").unwrap();
    let inside = file.join("run");
    let r = dra(&[train_args(root.path(), &inside)].concat());
    assert!(
        stderr(&r).contains("cannot create") && stderr(&r).contains("a-file"),
        "{}",
        stderr(&r)
    );
    assert!(!out.exists());
    // --resume takes the run's own settings only, and needs a checkpoint
    let r = dra(&["train", "--resume", s(root.path()), "--epochs", "3"]);
    assert!(stderr(&r).contains("own settings"), "{}", stderr(&r));
    let r = dra(&["train", "--resume", s(root.path())]);
    assert!(stderr(&r).contains("not a run directory"), "{}", stderr(&r));
}

#[test]
fn a_diverging_loss_stops_with_its_epoch_step_and_head() {
    let root = tempfile::tempdir().unwrap();
    odd_data_set(root.path(), &[]);
    let out = root.path().join("run");
    let r = dra(&[
        train_args(root.path(), &out),
        vec!["--lr", "1e30", "--epochs", "3", "--steps-per-epoch", "3"],
    ]
    .concat());
    assert!(!r.status.success());
    let err = stderr(&r);
    assert!(
        err.contains("loss is not finite at epoch")
            && err.contains("head")
            && err.contains("lower --lr"),
        "{err}"
    );
}

#[test]
fn a_run_killed_at_random_points_resumes_to_the_same_scores() {
    use rand::{Rng, SeedableRng};
    use std::process::{Command, Stdio};
    use std::time::{Duration, Instant};
    let data = common::bundled_elpv();
    let root = data.path().to_str().unwrap().to_string();
    let fresh = |out: &Path| -> Vec<String> {
        [
            "train",
            "--data-root",
            &root,
            "--class",
            "elpv",
            "--img-size",
            "48",
            "--batch-size",
            "8",
            "--epochs",
            "6",
            "--steps-per-epoch",
            "3",
            "--n-scales",
            "1",
            "--overwrite",
            "--out",
            s(out),
        ]
        .map(String::from)
        .to_vec()
    };
    let dirs = tempfile::tempdir().unwrap();
    let whole = dirs.path().join("whole");
    let args = fresh(&whole);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let t0 = Instant::now();
    let r = dra(&args);
    let whole_run = t0.elapsed();
    assert!(r.status.success(), "{}", stderr(&r));
    let expected = std::fs::read_to_string(whole.join("scores.csv")).unwrap();
    // the same run, SIGKILLed after random delays (in an epoch, in a checkpoint write, in
    // the evaluation) and continued with --resume, or started again before any checkpoint
    let out = dirs.path().join("killed");
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
    let (mut kills, mut resumed, mut finished) = (0, 0, false);
    // the first attempts are killed the moment a checkpoint write has begun (its temporary
    // folder exists), until one is caught inside the write; the rest at random times
    let (mut in_write, mut aimed) = (0, 0);
    let tmp = out.join("checkpoint.tmp");
    for _ in 0..40 {
        let checkpoint = ["checkpoint", "checkpoint.old"]
            .iter()
            .any(|c| out.join(c).join("state.json").is_file());
        resumed += usize::from(checkpoint);
        let args = match checkpoint {
            true => vec!["train".to_string(), "--resume".into(), s(&out).into()],
            false => fresh(&out),
        };
        let mut child = Command::new(env!("CARGO_BIN_EXE_dra"))
            .args(&args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        // between a third of the whole run's time and all of it
        let kill_at = whole_run.mul_f64(rng.random_range(0.33..1.0));
        let aim_at_write = in_write == 0 && aimed < 10;
        aimed += usize::from(aim_at_write);
        let start = Instant::now();
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break Some(status);
            }
            let due = match aim_at_write {
                true => tmp.is_dir(),
                false => start.elapsed() >= kill_at,
            };
            if due {
                child.kill().unwrap(); // SIGKILL
                child.wait().unwrap();
                in_write += usize::from(tmp.is_dir());
                break None;
            }
            match aim_at_write {
                true => std::thread::sleep(Duration::from_micros(200)),
                false => std::thread::sleep(Duration::from_millis(5)),
            }
        };
        match status {
            Some(status) => {
                assert!(status.success(), "a resumed run failed ({args:?})");
                finished = true;
                break;
            }
            None => kills += 1,
        }
    }
    assert!(finished, "the run never finished within 40 attempts");
    assert!(
        kills >= 1 && resumed >= 1,
        "{kills} kills, {resumed} resumes"
    );
    assert!(
        in_write >= 1,
        "no kill landed inside a checkpoint write in {aimed} tries"
    );
    eprintln!(
        "{kills} kills ({in_write} inside a checkpoint write), {resumed} resumes, whole run {whole_run:?}"
    );
    assert_eq!(
        std::fs::read_to_string(out.join("scores.csv")).unwrap(),
        expected
    );
}
