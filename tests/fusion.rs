//! The score rule: each rule on hand-made scores, the Gaussian tail against scipy's values,
//! and a run's rule fitted on its normal training images alone.

mod common;

use std::collections::BTreeSet;

use dra::fusion::{Fusion, FusionRule, HeadStats, neg_log_tail};
use dra::types::Head;

/// Two normal training images: seen {1, 3} (μ 2, σ 1), normal {4, 2} (μ 3, σ 1), memory
/// {10, 14} (μ 12, σ 2); the heads' summed z-scores are −2 and 2 (μ 0, σ 2).
fn normals() -> Vec<Vec<(Head, f32)>> {
    vec![
        vec![(Head::Seen, 1.0), (Head::Normal, 4.0), (Head::Memory, 10.0)],
        vec![(Head::Seen, 3.0), (Head::Normal, 2.0), (Head::Memory, 14.0)],
    ]
}

/// z-scores seen 3, normal −(1 − 3) = 2, memory (20 − 12) / 2 = 4; the heads' view 5 / 2.
const QUERY: [(Head, f32); 3] = [(Head::Seen, 5.0), (Head::Normal, 1.0), (Head::Memory, 20.0)];

fn close(a: f32, b: f64, what: &str) {
    assert!(
        (a as f64 - b).abs() < 1e-5 * (1.0 + b.abs()),
        "{what}: {a} != {b}"
    );
}

#[test]
fn each_rule_on_hand_made_scores() {
    let fit = |rule| Fusion::fit(rule, &normals());
    let Fusion::Fitted { parts, heads, .. } = fit(FusionRule::Sum) else {
        panic!("a fitted rule")
    };
    assert_eq!(
        parts,
        HeadStats(vec![
            (Head::Seen, 2.0, 1.0),
            (Head::Normal, 3.0, 1.0),
            (Head::Memory, 12.0, 2.0)
        ])
    );
    assert_eq!(heads, (0.0, 2.0));
    // the paper's plain sum: 5 − 1 + 20
    close(Fusion::Plain.score(&QUERY), 24.0, "plain");
    // 3 + 2 + 2 · 4: the memory weighs as much as the two heads
    close(fit(FusionRule::Sum).score(&QUERY), 13.0, "sum");
    close(fit(FusionRule::Max).score(&QUERY), 4.0, "max");
    // −log P(Z > 2.5) − log P(Z > 4), scipy.stats.norm.logsf
    close(
        fit(FusionRule::Fisher).score(&QUERY),
        15.441749763805984,
        "fisher",
    );
    // the heads' view leads where it is the larger: seen 9 → z 7, view 4.5 > memory 4
    let query = [(Head::Seen, 9.0), (Head::Normal, 1.0), (Head::Memory, 20.0)];
    close(fit(FusionRule::Max).score(&query), 4.5, "max, heads' view");
}

#[test]
fn a_map_is_fused_pixel_by_pixel_as_the_scores_are() {
    // two pixels; the normal head scores whole images and has no map
    let maps = vec![
        (Head::Seen, vec![5.0, 2.0]),
        (Head::Memory, vec![20.0, 12.0]),
    ];
    let fit = |rule| Fusion::fit(rule, &normals());
    // sum: z_seen + 2 z_memory, the memory's weight that of both heads
    assert_eq!(fit(FusionRule::Sum).map(&maps, 2), vec![3.0 + 8.0, 0.0]);
    // max: the heads' view (3 / 2, then 0) against the memory's z (4, then 0)
    assert_eq!(fit(FusionRule::Max).map(&maps, 2), vec![4.0, 0.0]);
    let fisher = fit(FusionRule::Fisher).map(&maps, 2);
    for (pixel, (value, (view, memory))) in fisher.iter().zip([(1.5, 4.0), (0.0, 0.0)]).enumerate()
    {
        let expected = neg_log_tail(view) + neg_log_tail(memory);
        close(*value, expected as f64, &format!("fisher, pixel {pixel}"));
    }
    assert_eq!(Fusion::Plain.map(&maps, 2), vec![25.0, 14.0]);
}

#[test]
fn the_gaussian_tail_matches_scipy_far_into_both_tails() {
    // scipy.stats.norm.logsf, negated
    for (z, expected) in [
        (0.0, std::f64::consts::LN_2),
        (1.644_853_6, 2.9957322735539904),
        (10.0, 53.23128515051248),
        (19.99, 203.71670771720844),
        (20.01, 204.11770277865995),
        (30.0, 454.32124395634327),
        (-8.0, 6.220960574271742e-16),
    ] {
        close(neg_log_tail(z), expected, &format!("z = {z}"));
    }
}

#[test]
fn a_run_fits_its_rule_on_the_normal_training_images_alone() {
    let data = common::bundled_elpv();
    let cfg = dra::config::TrainConfig {
        fusion: FusionRule::Max,
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
    assert_eq!(fusion, Fusion::fit(FusionRule::Max, &rows));
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

    // fitted anew from those rows alone (no model), the sum rule scores what `eval` gives
    let refit = dra::run::refit_fusion(dir, FusionRule::Sum).unwrap();
    assert_eq!(refit, Fusion::fit(FusionRule::Sum, &rows));
    let record = dra::run::files::read_record(dir).unwrap();
    assert_eq!(record.settings.fusion, FusionRule::Sum);
    let metrics = dra::run::evaluate_run(dir, None, None, &mut ()).unwrap();
    let Fusion::Fitted { parts, .. } = &refit else {
        panic!("a fitted rule")
    };
    let standardised = metrics.standardised.unwrap().auc_roc;
    assert_eq!(
        metrics.auc_roc, standardised,
        "the sum rule is the standardised sum"
    );
    assert_eq!(parts, &HeadStats::of(&rows));
}
