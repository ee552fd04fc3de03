//! Anomaly maps: their smoothing and resizing against independent values, alignment of a
//! cell with its image region, and `dra eval --maps` / `dra predict --maps` on a small data
//! set with masks.

mod common;

use burn::prelude::*;
use common::{dra, s};
use dra::fusion::Fusion;
use dra::model::heads::upsample;
use dra::run::anomaly_map::AnomalyMap;
use dra::types::{Head, Metrics};

fn map(width: u32, height: u32, values: Vec<f32>) -> AnomalyMap {
    AnomalyMap {
        width,
        height,
        values,
    }
}

#[test]
fn smoothing_matches_scipy_gaussian_filter() {
    // scipy.ndimage.gaussian_filter(a, sigma, mode="reflect", truncate=4.0) of the 6×8 map
    // a[y, x] = ((8y + x) · 7 mod 11) / 10; σ = 4 reaches past the borders more than once
    let a: Vec<f32> = (0..48).map(|i| ((i * 7) % 11) as f32 / 10.0).collect();
    let cases = [
        (
            1.0,
            [
                0.2702037945967832,
                0.4485328232431197,
                0.7297962054032169,
                0.4337453905667534,
            ],
        ),
        (
            4.0,
            [
                0.47433592906480704,
                0.49492206992583787,
                0.5256640709351933,
                0.4780184959087117,
            ],
        ),
    ];
    for (sigma, expected) in cases {
        let g = map(8, 6, a.clone()).smoothed(sigma);
        for ((y, x), e) in [(0, 0), (2, 3), (5, 7), (4, 1)].into_iter().zip(expected) {
            let v = g.values[y * 8 + x] as f64;
            assert!((v - e).abs() < 1e-5, "σ {sigma} at ({y}, {x}): {v} vs {e}");
        }
    }
    assert_eq!(
        map(2, 1, vec![1.0, 2.0]).smoothed(0.0).values,
        vec![1.0, 2.0]
    );
}

#[test]
fn resizing_is_bilinear_with_half_pixel_centres() {
    // torch.nn.functional.interpolate([0, 1], size=4, mode="linear", align_corners=False)
    let wide = map(2, 1, vec![0.0, 1.0]).resized(4, 1);
    assert_eq!(wide.values, vec![0.0, 0.25, 0.75, 1.0]);
    let tall = map(1, 2, vec![0.0, 1.0]).resized(1, 4);
    assert_eq!(tall.values, vec![0.0, 0.25, 0.75, 1.0]);
}

#[test]
fn a_hot_cell_lands_on_its_image_region_also_for_a_non_square_image() {
    let device = Device::default();
    // a 7×7 feature map of a 224² input with one hot cell at row 2, column 5
    let mut cells = vec![0.0f32; 49];
    cells[2 * 7 + 5] = 1.0;
    let cells = Tensor::<4>::from_data(TensorData::new(cells, [1, 1, 7, 7]), &device);
    let input: Vec<f32> = upsample(cells, [224, 224])
        .into_data()
        .try_to_vec()
        .unwrap();
    let m = AnomalyMap::fused(&[(Head::Seen, input)], 224, &Fusion::plain()).smoothed(4.0);
    // the source image was 500 wide and 300 high: the model squashed it to 224²
    let framed = m.resized(500, 300);
    let (w, h) = (500.0, 300.0);
    let (x0, x1) = (5.0 / 7.0 * w, 6.0 / 7.0 * w);
    let (y0, y1) = (2.0 / 7.0 * h, 3.0 / 7.0 * h);
    let (best, _) = framed
        .values
        .iter()
        .enumerate()
        .fold((0, f32::MIN), |b, (i, &v)| if v > b.1 { (i, v) } else { b });
    let (bx, by) = ((best % 500) as f64, (best / 500) as f64);
    assert!(
        bx >= x0 && bx < x1 && by >= y0 && by < y1,
        "peak at ({bx}, {by})"
    );
    // most of the map's mass sits in that cell's region
    let inside: f32 = framed
        .values
        .iter()
        .enumerate()
        .filter(|(i, _)| {
            let (x, y) = ((i % 500) as f64 + 0.5, (i / 500) as f64 + 0.5);
            x >= x0 && x < x1 && y >= y0 && y < y1
        })
        .map(|(_, v)| v)
        .sum();
    let total: f32 = framed.values.iter().sum();
    assert!(inside / total > 0.5, "{inside} of {total}");
}

/// A class with masks for the `crack` anomalies (a bright square in 12×8 images) and none
/// for `hole`.
fn masked_layout(root: &std::path::Path) {
    let dir = common::make_layout(root, "part", 16, 6, &[("hole", 3)]);
    for i in 0..8u32 {
        let path = dir.join(format!("test/crack/{i:03}.png"));
        let mut img = common::pattern(12, 8, 300 + i);
        for y in 2..5 {
            for x in 6..9 {
                img.put_pixel(x, y, image::Rgb([255, 255, 255]));
            }
        }
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        img.save(&path).unwrap();
        let mask = dir.join(format!("ground_truth/crack/{i:03}_mask.png"));
        common::write_mask(&mask, 12, 8, Some((6, 2, 3, 3)));
    }
}

/// A tiny run of [`masked_layout`]'s class.
fn masked_config(root: &std::path::Path) -> dra::config::TrainConfig {
    dra::config::TrainConfig {
        data_root: root.to_path_buf(),
        class: "part".into(),
        n_anomaly: 2,
        img_size: 32,
        batch_size: 8,
        epochs: 1,
        steps_per_epoch: 2,
        ..Default::default()
    }
}

#[test]
fn eval_and_predict_write_maps_and_pixel_metrics() {
    let tmp = tempfile::tempdir().unwrap();
    masked_layout(tmp.path());
    let run = tmp.path().join("run");
    let train = dra(&[
        "train",
        "--data-root",
        s(tmp.path()),
        "--class",
        "part",
        "--n-anomaly",
        "2",
        "--img-size",
        "32",
        "--batch-size",
        "8",
        "--epochs",
        "1",
        "--steps-per-epoch",
        "2",
        "--out",
        s(&run),
    ]);
    assert!(
        train.status.success(),
        "{}",
        String::from_utf8_lossy(&train.stderr)
    );
    let stdout = String::from_utf8_lossy(&train.stdout);
    assert!(stdout.contains("pixel AUROC"));
    // the score rule it reports is the one in fusion.json: the default weights
    assert!(
        stdout.contains(
            "score: each part's z-score over the normal training images, weighted \
             pseudo=0,memory=6 (a part not named 1)"
        ),
        "{stdout}"
    );
    assert!(run.join("maps.png").is_file());
    let maps = tmp.path().join("maps");
    let eval = dra(&["eval", "--model", s(&run), "--maps", s(&maps)]);
    assert!(
        eval.status.success(),
        "{}",
        String::from_utf8_lossy(&eval.stderr)
    );
    let metrics: Metrics =
        serde_json::from_str(&std::fs::read_to_string(run.join("metrics.json")).unwrap()).unwrap();
    let pixel = metrics.pixel.expect("pixel metrics");
    // 6 normals and the 6 test cracks (2 of 8 seen in training) with masks; 3 holes without
    assert_eq!((pixel.images, pixel.regions, pixel.unmasked), (12, 6, 3));
    assert!((0.0..=1.0).contains(&pixel.auc_roc) && (0.0..=1.0).contains(&pixel.aupro));
    assert!(pixel.heads.contains_key("memory") && !pixel.heads.contains_key("normal"));
    // one overlay and one raw map per test image, the raw map in the image's own frame
    let written = std::fs::read_dir(&maps).unwrap().count();
    assert_eq!(written, 2 * 15);
    let crack = std::fs::read_dir(&maps)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().contains("crack_"))
        .min()
        .unwrap();
    let npy = std::fs::read(crack.with_extension("npy")).unwrap();
    let header = String::from_utf8_lossy(&npy[10..80]).into_owned();
    assert!(header.contains("'shape': (8, 12)"), "{header}");
    let overlay = image::open(crack.with_extension("png")).unwrap();
    assert!(overlay.width() > 12, "overlay has a colour bar");

    // predict on a folder with one corrupt file: the others scored, the bad one named
    let folder = tmp.path().join("incoming");
    std::fs::create_dir_all(folder.join("sub")).unwrap();
    for (i, name) in ["a.png", "sub/b.png"].iter().enumerate() {
        common::write_png(&folder.join(name), 12, 8, 500 + i as u32);
    }
    let bad = folder.join("bad.png");
    std::fs::write(&bad, b"not a png").unwrap();
    let csv = tmp.path().join("scores.csv");
    let pmaps = tmp.path().join("pmaps");
    let p = dra(&[
        "predict",
        "--model",
        s(&run),
        "--csv",
        s(&csv),
        "--maps",
        s(&pmaps),
        s(&folder),
    ]);
    assert!(!p.status.success());
    let stderr = String::from_utf8_lossy(&p.stderr);
    assert!(
        stderr.contains(s(&bad)) && stderr.contains("1 of 3"),
        "{stderr}"
    );
    let rows = std::fs::read_to_string(&csv).unwrap();
    let lines: Vec<&str> = rows.lines().collect();
    assert_eq!(lines.len(), 3, "{rows}");
    assert!(
        lines[0].starts_with("path,score,decision,seen"),
        "{}",
        lines[0]
    );
    assert!(lines[1].contains("a.png") && lines[2].contains("b.png"));
    assert!(lines[1].contains(",normal,") || lines[1].contains(",anomalous,"));
    assert!(pmaps.join("a.npy").is_file() && pmaps.join("b.png").is_file());
}

#[test]
fn the_memorys_map_alone_is_the_patch_knn_baselines() {
    let tmp = tempfile::tempdir().unwrap();
    masked_layout(tmp.path());
    let cfg = masked_config(tmp.path());
    let out = tempfile::tempdir().unwrap();
    let mut plan = dra::run::Plan::new(&cfg).unwrap();
    let metrics = dra::run::train_and_evaluate(&mut plan, out.path(), false, &mut ()).unwrap();
    let knn = dra::baselines::knn_baseline(&mut plan).unwrap();
    let memory = metrics.pixel.unwrap().heads["memory"];
    assert_eq!(knn.patch_pixel, Some(memory));
}

#[test]
fn calibrate_sets_the_threshold_from_validation_images() {
    let tmp = tempfile::tempdir().unwrap();
    masked_layout(tmp.path());
    let cfg = masked_config(tmp.path());
    let run = tmp.path().join("run");
    std::fs::create_dir_all(&run).unwrap();
    common::train(&cfg, &run);
    let part = tmp.path().join("part/test");
    let normals = dra::data::layout::images_under(&part.join("good")).unwrap();
    let holes = dra::data::layout::images_under(&part.join("hole")).unwrap();
    let score = |paths: &[std::path::PathBuf]| -> Vec<f64> {
        let p = dra::run::predict(&run, paths, None, &mut ()).unwrap();
        p.scored.iter().map(|s| s.score as f64).collect()
    };
    // normals only, at FPR 0: the largest normal score
    let c = dra::run::calibrate::calibrate(&run, &normals, &[], Some(0.0), &mut ()).unwrap();
    let largest = score(&normals).into_iter().fold(f64::MIN, f64::max);
    assert_eq!(c.decision.threshold, largest);
    assert_eq!(c.on_validation.false_positives, 0);
    // with anomalies, from the command line: F1-max over both, and eval then uses it
    let out = dra(&[
        "calibrate",
        "--model",
        s(&run),
        "--normal",
        s(&part.join("good")),
        "--anomalies",
        s(&part.join("hole")),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("previous threshold") && stdout.contains("F1"),
        "{stdout}"
    );
    let labels: Vec<bool> = (0..normals.len() + holes.len())
        .map(|i| i >= normals.len())
        .collect();
    let all: Vec<_> = normals.iter().chain(&holes).cloned().collect();
    let (_, expected) = dra::metrics::f1_max(&labels, &score(&all)).unwrap();
    let decision = dra::run::saved_decision(&run).unwrap().unwrap();
    assert_eq!((decision.threshold, decision.fpr), (expected, None));
    let metrics = dra::run::evaluate_run(&run, None, None, &mut ()).unwrap();
    assert_eq!(metrics.decision.unwrap().threshold, expected);
    // an unreadable validation image writes nothing
    let bad = tmp.path().join("bad.png");
    std::fs::write(&bad, b"no").unwrap();
    let err = dra::run::calibrate::calibrate(&run, std::slice::from_ref(&bad), &[], None, &mut ())
        .unwrap_err();
    assert!(err.to_string().contains(s(&bad)), "{err}");
    assert_eq!(
        dra::run::saved_decision(&run).unwrap().unwrap().threshold,
        expected
    );
}

#[test]
fn a_map_far_above_the_threshold_keeps_its_peak_visible() {
    use dra::run::overlay::MapScale;
    // threshold 2: the run's scale spans min(0, 2 − 1) = 0 to 2 + 2 = 4
    let scale = MapScale::of_threshold(Some(2.0));
    assert_eq!(scale.range, Some((0.0, 4.0)));
    let map = |values: Vec<f32>| AnomalyMap {
        width: 2,
        height: 1,
        values,
    };
    // a map 30× the threshold: its scale reaches its maximum, so the peak alone is bright
    let far = scale.stretched_to(&map(vec![1.0, 60.0]));
    assert_eq!((far.range, far.threshold), (Some((0.0, 60.0)), Some(2.0)));
    // a calm map keeps the run's scale
    let calm = scale.stretched_to(&map(vec![0.5, 1.0]));
    assert_eq!(calm.range, Some((0.0, 4.0)));
    // and a run without a threshold draws each map on its own range
    let own = MapScale::of_threshold(None).stretched_to(&map(vec![1.0, 60.0]));
    assert_eq!(own.range, None);
}
