//! The `dra` binary: help, successful runs, and bad input reported as one line naming the
//! path, a non-zero exit code and no panic.

mod common;

use common::{assert_one_line_error, dra, s};

use std::path::Path;

#[test]
fn help_lists_the_subcommands() {
    let out = dra(&["--help"]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    for cmd in [
        "convert", "split", "preview", "demo", "train", "eval", "predict", "classify", "grid",
    ] {
        assert!(text.contains(cmd), "{cmd} missing from --help");
    }
    let out = dra(&["convert", "--help"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("magnetic-tile"));
}

#[test]
fn missing_data_root_and_class() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("missing-root");
    assert_one_line_error(
        &dra(&["split", "--data-root", s(&root), "--class", "x"]),
        &["missing-root", "--data-root"],
    );
    common::make_layout(tmp.path(), "tile", 3, 2, &[("crack", 2)]);
    assert_one_line_error(
        &dra(&["split", "--data-root", s(tmp.path()), "--class", "tyle"]),
        &["tyle", "tile"],
    );
}

#[test]
fn empty_train_good() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(tmp.path().join("c/train/good")).unwrap();
    common::write_png(&tmp.path().join("c/test/good/a.png"), 4, 4, 0);
    let out = dra(&["split", "--data-root", s(tmp.path()), "--class", "c"]);
    assert_one_line_error(&out, &["c/train/good", "no normal training images"]);
}

#[test]
fn unreadable_image_is_named() {
    let tmp = tempfile::tempdir().unwrap();
    common::make_layout(tmp.path(), "c", 1, 2, &[("crack", 3)]);
    let bad = tmp.path().join("c/train/good/000.png");
    std::fs::write(&bad, "this is text, not a PNG").unwrap();
    let args = [
        "--data-root",
        s(tmp.path()),
        "--class",
        "c",
        "--n-anomaly",
        "1",
    ];
    let check = [&["split", "--check-images"][..], &args].concat();
    assert_one_line_error(&dra(&check), &["cannot read image", s(&bad)]);
    let png = tmp.path().join("b.png");
    let preview = [&["preview", "--out", s(&png), "--n-ref", "1"][..], &args].concat();
    assert_one_line_error(&dra(&preview), &["cannot read image", s(&bad)]);
}

#[test]
fn unknown_converter_input_layout() {
    let input = tempfile::tempdir().unwrap();
    let output = tempfile::tempdir().unwrap();
    std::fs::write(input.path().join("readme.txt"), "hello").unwrap();
    let out = dra(&[
        "convert",
        "magnetic-tile",
        "--input",
        s(input.path()),
        "--output",
        s(output.path()),
    ]);
    assert_one_line_error(&out, &[s(input.path()), "no MT_<Class> folders"]);
    let out = dra(&[
        "convert",
        "kolektor",
        "--input",
        s(input.path()),
        "--output",
        s(output.path()),
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown converter 'kolektor'"));
}

#[test]
fn split_and_preview_on_a_small_data_set() {
    let tmp = tempfile::tempdir().unwrap();
    common::make_layout(tmp.path(), "c", 8, 3, &[("crack", 4), ("hole", 3)]);
    let args = [
        "--data-root",
        s(tmp.path()),
        "--class",
        "c",
        "--n-anomaly",
        "2",
        "--seed",
        "5",
    ];
    let out = dra(&[&["split", "--json", "--check-images"][..], &args].concat());
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["train_normal"].as_array().unwrap().len(), 8);
    assert_eq!(json["train_anomaly"].as_array().unwrap().len(), 2);
    assert_eq!(json["test"].as_array().unwrap().len(), 3 + 5);

    let hard = dra(&[&["split", "--known-class", "hole"][..], &args].concat());
    let text = String::from_utf8_lossy(&hard.stdout);
    assert!(
        text.contains("training: 8 normal, 2 seen anomalies"),
        "{text}"
    );
    let test_part = text.split("test:").nth(1).unwrap();
    assert!(
        test_part.contains("crack") && !test_part.contains("hole"),
        "hole must leave the test set: {text}"
    );

    let png = tmp.path().join("batch.png");
    let out = dra(&[
        &[
            "preview",
            "--img-size",
            "32",
            "--batch-size",
            "6",
            "--out",
            s(&png),
        ][..],
        &args,
    ]
    .concat());
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // 5 references + 6 batch images in a 4×3 grid of 32 px tiles with 4 px frames
    assert_eq!(image::image_dimensions(&png).unwrap(), (4 * 40, 3 * 40));
}

#[test]
fn classify_prints_top5_json_and_refuses_missing_devices() {
    let img = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/parity/images/koala.jpg");
    if img.is_file() {
        let out = dra(&["classify", "--json", s(&img)]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let top5 = json[0]["top5"].as_array().unwrap();
        assert_eq!(json[0]["image"], s(&img));
        assert_eq!(top5.len(), 5);
        assert_eq!(top5[0]["index"], 105);
        assert_eq!(top5[0]["name"], "koala");
        assert!(top5[0]["probability"].as_f64().unwrap() > 0.5);
    } else {
        common::skip(&format!("the koala photo: {} is absent", img.display()));
    }
    let tmp = tempfile::tempdir().unwrap();
    let photo = tmp.path().join("p.png");
    common::write_png(&photo, 40, 30, 1);
    assert_one_line_error(
        &dra(&["classify", "--device", "cuda", s(&photo)]),
        &["no cuda support", "--features cuda"],
    );
    assert_one_line_error(
        &dra(&["classify", "--backbone", "resnet18", s(&photo)]),
        &["--weights"],
    );
    let bad = tmp.path().join("w.pth");
    std::fs::write(&bad, "not a checkpoint").unwrap();
    assert_one_line_error(
        &dra(&["classify", "--weights", s(&bad), s(&photo)]),
        &["w.pth"],
    );
}

#[test]
fn train_refuses_bad_settings_before_touching_the_run_directory() {
    let tmp = tempfile::tempdir().unwrap();
    common::make_layout(tmp.path(), "c", 6, 3, &[("crack", 4)]);
    let out = tmp.path().join("run");
    let base = [
        "train",
        "--data-root",
        s(tmp.path()),
        "--class",
        "c",
        "--out",
        s(&out),
    ];
    let with = |extra: &[&str]| {
        let n: &[&str] = if extra.contains(&"--n-anomaly") {
            &[]
        } else {
            &["--n-anomaly", "2"]
        };
        dra(&[&base[..], n, extra].concat())
    };
    assert_one_line_error(&with(&["--topk", "1.5"]), &["--topk 1.5"]);
    assert_one_line_error(&with(&["--n-ref", "7"]), &["--n-ref 7"]);
    assert_one_line_error(&with(&["--n-anomaly", "9"]), &["fewer than --n-anomaly 9"]);
    assert_one_line_error(
        &with(&["--img-size", "2", "--n-scales", "3"]),
        &["empty image"],
    );
    assert_one_line_error(
        &with(&["--known-class", "crack"]),
        &["at least 2 anomaly classes"],
    );
    assert_one_line_error(&with(&["--backbone", "resnet18"]), &["--weights"]);
    assert!(!out.exists(), "nothing may be written for a refused run");
    std::fs::create_dir_all(&out).unwrap();
    assert_one_line_error(
        &with(&["--epochs", "1"]),
        &["already exists", "--overwrite"],
    );
    let cfg = tmp.path().join("bad.toml");
    std::fs::write(&cfg, "epochz = 3\n").unwrap();
    assert_one_line_error(
        &dra(&["train", "--config", s(&cfg), "--out", s(&out)]),
        &["bad.toml", "epochz"],
    );
}

#[test]
fn train_reads_a_toml_config_and_flags_override_it() {
    let tmp = tempfile::tempdir().unwrap();
    common::make_layout(tmp.path(), "c", 6, 3, &[("crack", 4), ("hole", 3)]);
    let cfg = tmp.path().join("run.toml");
    let toml = format!(
        "data_root = {:?}\nclass = \"c\"\nn_anomaly = 2\nimg_size = 32\nbatch_size = 6\nepochs = 1\nsteps_per_epoch = 1\nn_scales = 1\nheads = \"seen,pseudo\"\ncriterion = \"focal\"\n",
        s(tmp.path())
    );
    std::fs::write(&cfg, toml).unwrap();
    let out = tmp.path().join("run");
    let res = dra(&[
        "train",
        "--config",
        s(&cfg),
        "--out",
        s(&out),
        "--n-anomaly",
        "3",
        "--seed",
        "5",
    ]);
    assert!(
        res.status.success(),
        "{}",
        String::from_utf8_lossy(&res.stderr)
    );
    let text = String::from_utf8_lossy(&res.stdout);
    assert!(
        text.contains("AUC-ROC") && text.contains("scores.png"),
        "{text}"
    );
    let record: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("config.json")).unwrap()).unwrap();
    let settings = &record["settings"];
    assert_eq!(settings["n_anomaly"], 3); // the flag wins over the file
    assert_eq!(settings["img_size"], 32); // the file wins over the default
    assert_eq!(settings["seed"], 5);
    assert_eq!(settings["heads"], "seen,pseudo");
    assert_eq!(settings["criterion"], "focal");
    assert_eq!(record["derived"]["top_k"], serde_json::json!([1]));
    assert_eq!(record["derived"]["normal_slots"], 4);
    let metrics: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("metrics.json")).unwrap()).unwrap();
    for key in ["auc_roc", "auc_pr", "heads", "classes"] {
        assert!(!metrics[key].is_null(), "{key} missing from metrics.json");
    }
    assert!(metrics["heads"]["seen"]["auc_roc"].is_number());
    assert!(metrics["classes"]["hole"].is_number());
    // predict prints the scores of given images; eval rewrites the same metrics
    let img = tmp.path().join("c/test/good/000.png");
    let p = dra(&["predict", "--model", s(&out), "--json", s(&img)]);
    assert!(p.status.success(), "{}", String::from_utf8_lossy(&p.stderr));
    let rows: serde_json::Value = serde_json::from_slice(&p.stdout).unwrap();
    assert!(rows[0]["score"].is_number() && rows[0]["heads"]["pseudo"].is_number());
    // a corrupt file and a missing one among the images: the readable one is still scored,
    // each failure is named once on stderr without its cause repeated, and the exit code
    // says so (folders are scored image by image: tests/maps.rs)
    let missing = tmp.path().join("missing.png");
    let bad = tmp.path().join("bad.png");
    std::fs::write(&bad, b"not a png").unwrap();
    let p = dra(&[
        "predict",
        "--model",
        s(&out),
        "--json",
        s(&img),
        s(&bad),
        s(&missing),
    ]);
    assert!(!p.status.success());
    let rows: serde_json::Value = serde_json::from_slice(&p.stdout).unwrap();
    assert_eq!(rows.as_array().unwrap().len(), 1);
    assert_eq!(rows[0]["path"], s(&img));
    let stderr = String::from_utf8_lossy(&p.stderr);
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 3, "{stderr}");
    assert!(
        lines[0].starts_with("not scored: ") && lines[0].contains("bad.png"),
        "{stderr}"
    );
    assert!(lines[1].contains(s(&missing)), "{stderr}");
    assert!(lines[2].starts_with("error: 2 of 3 images"), "{stderr}");
    for l in &lines[..2] {
        // no clause of the message is said twice
        let parts: Vec<&str> = l.split(": ").collect();
        for (i, a) in parts.iter().enumerate() {
            assert!(!parts[i + 1..].contains(a), "repeated '{a}' in {l}");
        }
    }
    let e = dra(&["eval", "--model", s(&out)]);
    assert!(e.status.success(), "{}", String::from_utf8_lossy(&e.stderr));
    assert_one_line_error(
        &dra(&["eval", "--model", s(tmp.path())]),
        &["not a run directory"],
    );
}
