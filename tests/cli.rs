//! The `dra` binary: help, successful runs, and bad input reported as one line naming the
//! path, a non-zero exit code and no panic.

mod common;

use std::path::Path;
use std::process::{Command, Output};

fn dra(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_dra"))
        .args(args)
        .output()
        .unwrap()
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Asserts a failed run whose stderr is one `error:` line mentioning every `needle`.
fn assert_one_line_error(out: &Output, needles: &[&str]) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "expected failure, got success: {stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
    let lines: Vec<_> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "one line expected: {stderr}");
    assert!(lines[0].starts_with("error: "), "{stderr}");
    for n in needles {
        assert!(lines[0].contains(n), "'{n}' missing from: {stderr}");
    }
}

#[test]
fn help_lists_the_subcommands() {
    let out = dra(&["--help"]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    for cmd in [
        "convert", "split", "preview", "demo", "train", "eval", "predict", "classify", "bench",
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
fn unbuilt_commands_say_so() {
    assert_one_line_error(&dra(&["train"]), &["not built yet"]);
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
        eprintln!("skipped the koala photo: {} is absent", img.display());
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
