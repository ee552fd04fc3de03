//! The score rule: the weighted z-scores on hand-made scores and maps, the weights' text, and
//! a run's rule fitted on its normal training images alone.

mod common;

use std::collections::BTreeSet;

use dra::fusion::{Fusion, HeadStats, PartWeights};
use dra::types::Head;

/// Two normal training images: seen {1, 3} (μ 2, σ 1), pseudo {0, 2} (μ 1, σ 1), normal
/// {4, 2} (μ 3, σ 1), memory {10, 14} (μ 12, σ 2).
fn normals() -> Vec<Vec<(Head, f32)>> {
    vec![
        vec![
            (Head::Seen, 1.0),
            (Head::Pseudo, 0.0),
            (Head::Normal, 4.0),
            (Head::Memory, 10.0),
        ],
        vec![
            (Head::Seen, 3.0),
            (Head::Pseudo, 2.0),
            (Head::Normal, 2.0),
            (Head::Memory, 14.0),
        ],
    ]
}

/// z-scores: seen 3, pseudo 6, normal −(1 − 3) = 2, memory (20 − 12) / 2 = 4.
const QUERY: [(Head, f32); 4] = [
    (Head::Seen, 5.0),
    (Head::Pseudo, 7.0),
    (Head::Normal, 1.0),
    (Head::Memory, 20.0),
];

fn weights(text: &str) -> Option<PartWeights> {
    Some(text.parse().unwrap())
}

#[test]
fn the_weighted_z_scores_on_hand_made_scores() {
    let fit = |w| Fusion::fit(w, &normals());
    assert_eq!(
        fit(None).parts,
        HeadStats(vec![
            (Head::Seen, 2.0, 1.0),
            (Head::Pseudo, 1.0, 1.0),
            (Head::Normal, 3.0, 1.0),
            (Head::Memory, 12.0, 2.0)
        ])
    );
    // the paper's plain sum: 5 + 7 − 1 + 20
    assert_eq!(fit(None).score(&QUERY), 31.0);
    assert_eq!(Fusion::plain().score(&QUERY), 31.0);
    // the defaults: seen 3 + pseudo 0 · 6 + normal 2 + memory 6 · 4
    assert_eq!(fit(Some(PartWeights::default())).score(&QUERY), 29.0);
    assert_eq!(
        fit(weights("pseudo=1,memory=2")).score(&QUERY),
        3.0 + 6.0 + 2.0 + 8.0
    );
    assert_eq!(
        fit(weights("seen=0.5,normal=0,memory=0")).score(&QUERY),
        1.5 + 6.0
    );
    // a run written before the weights: the memory weighs as the three heads together
    let legacy = Fusion::legacy(fit(None).parts, true);
    assert_eq!(legacy.score(&QUERY), 3.0 + 6.0 + 2.0 + 3.0 * 4.0);
    assert_eq!(Fusion::legacy(fit(None).parts, false).score(&QUERY), 31.0);
    // a part constant on the normals adds nothing to them
    let flat = Fusion::fit(
        weights(""),
        &[vec![(Head::Seen, 2.0)], vec![(Head::Seen, 2.0)]],
    );
    assert_eq!(flat.score(&[(Head::Seen, 2.0)]), 0.0);
}

#[test]
fn a_map_is_fused_pixel_by_pixel_as_the_scores_are() {
    // two pixels; the normal head scores whole images and has no map
    let maps = vec![
        (Head::Seen, vec![5.0, 2.0]),
        (Head::Pseudo, vec![7.0, 1.0]),
        (Head::Memory, vec![20.0, 12.0]),
    ];
    let fusion = Fusion::fit(Some(PartWeights::default()), &normals());
    assert_eq!(fusion.map(&maps, 2), vec![3.0 + 6.0 * 4.0, 0.0]);
    assert_eq!(Fusion::plain().map(&maps, 2), vec![32.0, 15.0]);
}

#[test]
fn part_weights_read_and_write_as_name_equals_weight() {
    let w: PartWeights = " memory=8, seen=0.5 ,memory=6".parse().unwrap();
    assert_eq!(
        (w.of(Head::Memory), w.of(Head::Seen), w.of(Head::Residual)),
        (6.0, 0.5, 1.0)
    );
    assert_eq!(w.to_string(), "seen=0.5,memory=6");
    assert_eq!(PartWeights::default().to_string(), "pseudo=0,memory=6");
    let json = serde_json::to_string(&w).unwrap();
    assert_eq!(json, "\"seen=0.5,memory=6\"");
    assert_eq!(serde_json::from_str::<PartWeights>(&json).unwrap(), w);
    for (bad, says) in [
        ("tail=1", "unknown part 'tail'"),
        ("memory", "not name=weight"),
        ("memory=-1", "not a number ≥ 0"),
        ("memory=x", "not a number ≥ 0"),
    ] {
        let e = bad.parse::<PartWeights>().unwrap_err().to_string();
        assert!(e.contains(says), "{bad}: {e}");
    }
}

#[test]
fn a_run_fits_its_rule_on_the_normal_training_images_alone() {
    let data = common::bundled_elpv();
    let cfg = dra::config::TrainConfig {
        part_weights: "memory=8".parse().unwrap(),
        ..common::tiny_elpv(data.path())
    };
    let out = tempfile::tempdir().unwrap();
    let mut plan = dra::run::Plan::new(&cfg).unwrap();
    dra::run::train_and_evaluate(&mut plan, out.path(), false, &mut ()).unwrap();
    let dir = out.path();
    // the rows it was fitted on are exactly the normal training images: no test image
    let csv = std::fs::read_to_string(dir.join("normal_scores.csv")).unwrap();
    let paths: BTreeSet<String> = csv
        .lines()
        .skip(1)
        .map(|l| l.split(',').next().unwrap().to_string())
        .collect();
    let train: BTreeSet<String> = plan
        .split
        .train_normal
        .iter()
        .map(|s| s.path.to_string_lossy().into_owned())
        .collect();
    assert_eq!(paths, train);
    assert!(
        plan.split
            .test
            .iter()
            .all(|s| !paths.contains(s.path.to_str().unwrap()))
    );
    // the stored rule is the fit of those rows, and it scores the test images
    let rows = dra::run::report::read_normal_scores(dir).unwrap();
    assert_eq!(rows.len(), plan.split.train_normal.len());
    let fusion: Fusion =
        serde_json::from_str(&std::fs::read_to_string(dir.join("fusion.json")).unwrap()).unwrap();
    assert_eq!(fusion, Fusion::fit(weights("memory=8"), &rows));
    let test = std::fs::read_to_string(dir.join("scores.csv")).unwrap();
    let header: Vec<&str> = test.lines().next().unwrap().split(',').collect();
    assert_eq!(
        header[4..],
        ["seen", "pseudo", "residual", "normal", "memory"]
    );
    for line in test.lines().skip(1) {
        let f: Vec<&str> = line.split(',').collect();
        let parts: Vec<(Head, f32)> = [Head::Seen, Head::Pseudo, Head::Residual, Head::Normal]
            .into_iter()
            .chain([Head::Memory])
            .zip(&f[4..])
            .map(|(h, v)| (h, v.parse().unwrap()))
            .collect();
        assert_eq!(f[3].parse::<f32>().unwrap(), fusion.score(&parts), "{line}");
    }
    // the threshold: 1 % of the normal training images above it under the rule
    let normal: Vec<f64> = rows.iter().map(|r| fusion.score(r) as f64).collect();
    let stored = dra::run::saved_decision(dir).unwrap().unwrap();
    assert_eq!(
        stored.threshold,
        dra::metrics::threshold_at_fpr(&normal, cfg.fpr).unwrap()
    );

    // fitted anew from those rows alone (no model), the default weights score as the
    // "standardised" column (the default weights) says, with a threshold of their own
    let refit = dra::run::refit_fusion(dir, PartWeights::default()).unwrap();
    assert_eq!(refit, Fusion::fit(Some(PartWeights::default()), &rows));
    let record = dra::run::files::read_record(dir).unwrap();
    assert_eq!(record.settings.part_weights, PartWeights::default());
    let metrics = dra::run::evaluate_run(dir, None, None, &mut ()).unwrap();
    assert_eq!(metrics.auc_roc, metrics.standardised.unwrap().auc_roc);
    let normal: Vec<f64> = rows.iter().map(|r| refit.score(r) as f64).collect();
    let threshold = dra::run::saved_decision(dir).unwrap().unwrap().threshold;
    assert_eq!(
        threshold,
        dra::metrics::threshold_at_fpr(&normal, cfg.fpr).unwrap()
    );
    assert_ne!(threshold, stored.threshold);
}

#[test]
fn weights_that_cannot_apply_are_refused_before_a_run() {
    use dra::config::TrainConfig;
    use dra::model::HeadNorm;
    let weights = |text: &str| text.parse::<PartWeights>().unwrap();
    // the paper's raw sum has no z-scores to weigh
    let raw = TrainConfig {
        head_norm: HeadNorm::None,
        memory: dra::model::memory::MemoryMode::None,
        part_weights: weights("memory=8"),
        ..TrainConfig::default()
    };
    let e = raw.validate().unwrap_err().to_string();
    assert!(e.contains("need --head-norm standardise"), "{e}");
    // weights that leave no part of the run's score
    let nothing = TrainConfig {
        part_weights: weights("seen=0,pseudo=0,residual=0,normal=0,memory=0"),
        ..TrainConfig::default()
    };
    let e = nothing.validate().unwrap_err().to_string();
    assert!(e.contains("leave nothing of the score"), "{e}");
    assert!(e.contains("seen, pseudo, residual, normal, memory"), "{e}");
    // the defaults pass, and so does any part with a weight
    TrainConfig::default().validate().unwrap();
    let memory_alone = TrainConfig {
        part_weights: weights("seen=0,pseudo=0,residual=0,normal=0"),
        ..TrainConfig::default()
    };
    memory_alone.validate().unwrap();
}

#[test]
fn normal_scores_read_back_as_written_with_commas_in_paths() {
    use dra::run::report::{NORMAL_SCORES, read_normal_scores, write_normal_scores};
    use dra::types::Scored;
    let dir = tempfile::tempdir().unwrap();
    let row = |path: &str, seen: f32, memory: f32| Scored {
        path: path.into(),
        class: "good".into(),
        anomaly: false,
        score: seen + memory,
        heads: vec![(Head::Seen, seen), (Head::Memory, memory)],
    };
    let scored = vec![
        row("a, b/\"c\".png", 0.25, 3.0),
        row("plain.png", -1.5, 7.125),
    ];
    write_normal_scores(dir.path(), &scored).unwrap();
    let rows = read_normal_scores(dir.path()).unwrap();
    assert_eq!(
        rows,
        vec![
            vec![(Head::Seen, 0.25), (Head::Memory, 3.0)],
            vec![(Head::Seen, -1.5), (Head::Memory, 7.125)]
        ]
    );
    // a damaged file is named with its line
    let path = dir.path().join(NORMAL_SCORES);
    let text = std::fs::read_to_string(&path)
        .unwrap()
        .replace("7.125", "x");
    std::fs::write(&path, text).unwrap();
    let e = read_normal_scores(dir.path()).unwrap_err().to_string();
    assert!(
        e.contains("normal_scores.csv") && e.contains("line 3: 'x' is not a number"),
        "{e}"
    );
}
