//! Helpers shared by the integration tests: tiny images and data sets in temporary folders.
#![allow(dead_code)]

pub mod http;
pub mod plain_coreset;
pub mod skip;

pub use skip::skip;

use std::path::{Path, PathBuf};

use image::{GrayImage, Luma, Rgb, RgbImage};

/// A `w`×`h` RGB image whose pixels depend on their position and `seed`.
pub fn pattern(w: u32, h: u32, seed: u32) -> RgbImage {
    RgbImage::from_fn(w, h, |x, y| {
        Rgb([
            ((x * 7 + seed * 31) % 256) as u8,
            ((y * 5 + seed * 17) % 256) as u8,
            ((x + y + seed) % 256) as u8,
        ])
    })
}

/// Writes a small pattern PNG at `path`, creating parent folders.
pub fn write_png(path: &Path, w: u32, h: u32, seed: u32) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    pattern(w, h, seed).save(path).unwrap();
}

/// Writes a grey mask: zero everywhere except a filled rectangle `(x, y, w, h)`, if any.
pub fn write_mask(path: &Path, w: u32, h: u32, rect: Option<(u32, u32, u32, u32)>) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let mask = GrayImage::from_fn(w, h, |x, y| {
        let on =
            rect.is_some_and(|(rx, ry, rw, rh)| x >= rx && x < rx + rw && y >= ry && y < ry + rh);
        Luma([if on { 255 } else { 0 }])
    });
    mask.save(path).unwrap();
}

/// An MVTec-style class `<root>/<class>` with `n_train` + `n_test` normals and the given
/// anomaly classes, each image an 8×8 PNG.
pub fn make_layout(
    root: &Path,
    class: &str,
    n_train: usize,
    n_test: usize,
    anomalies: &[(&str, usize)],
) -> PathBuf {
    let dir = root.join(class);
    for i in 0..n_train {
        write_png(&dir.join(format!("train/good/{i:03}.png")), 8, 8, i as u32);
    }
    for i in 0..n_test {
        write_png(
            &dir.join(format!("test/good/{i:03}.png")),
            8,
            8,
            100 + i as u32,
        );
    }
    for (name, n) in anomalies {
        for i in 0..*n {
            write_png(
                &dir.join(format!("test/{name}/{i:03}.png")),
                8,
                8,
                200 + i as u32,
            );
        }
    }
    dir
}

/// `../shared/data/<name>` when present; prints why a test is skipped otherwise.
pub fn shared_data(name: &str) -> Option<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/data")
        .join(name);
    if dir.is_dir() {
        Some(dir)
    } else {
        skip(&format!("{} is absent", dir.display()));
        None
    }
}

/// Runs the `dra` binary with `args`.
pub fn dra(args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_dra"))
        .args(args)
        .output()
        .unwrap()
}

/// Asserts a failed run whose stderr is one `error:` line mentioning every `needle`.
pub fn assert_one_line_error(out: &std::process::Output, needles: &[&str]) {
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

/// Asserts that a run of the binary succeeded (showing its standard error if not) and
/// returns its standard output.
pub fn succeeded(out: &std::process::Output) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A path as `&str`, for command lines.
pub fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// The ELPV subset bundled in the repository, converted into a temporary data root.
pub fn bundled_elpv() -> tempfile::TempDir {
    let data = tempfile::tempdir().unwrap();
    let demo = Path::new(env!("CARGO_MANIFEST_DIR")).join("data/elpv-demo");
    dra::data::convert::Converter::Elpv
        .run(&demo, data.path(), 42)
        .unwrap();
    data
}

/// A two-step run (one epoch of two batches of 12 at 64²) on the bundled ELPV data under
/// `root` ([`bundled_elpv`]).
pub fn tiny_elpv(root: &Path) -> dra::config::TrainConfig {
    dra::config::TrainConfig {
        data_root: root.to_path_buf(),
        class: "elpv".into(),
        img_size: 64,
        batch_size: 12,
        epochs: 1,
        steps_per_epoch: 2,
        ..dra::config::TrainConfig::default()
    }
}

/// Trains and evaluates `config` into `out` from a fresh plan, as `dra train` does.
pub fn train(config: &dra::config::TrainConfig, out: &Path) -> dra::types::Metrics {
    let mut plan = dra::run::Plan::new(config).unwrap();
    dra::run::train_and_evaluate(&mut plan, out, false, &mut ()).unwrap()
}

/// The class `tile` under `root`: 20 + 6 normals and three anomaly classes (crack 12, hole 7,
/// stain 4), opened.
pub fn tile_layout(root: &Path) -> dra::data::layout::DatasetLayout {
    make_layout(
        root,
        "tile",
        20,
        6,
        &[("crack", 12), ("hole", 7), ("stain", 4)],
    );
    dra::data::layout::DatasetLayout::open(root, "tile").unwrap()
}
