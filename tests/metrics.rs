//! AUC-ROC and average precision against values computed with scikit-learn 1.9.1
//! (`roc_auc_score`, `average_precision_score`, `roc_curve(drop_intermediate=False)`,
//! `precision_recall_curve`).

use dra::metrics::{
    auc_roc, average_precision, decisions, f1_max, per_class_auc_roc, pr_curve, roc_curve,
    threshold_at_fpr,
};

fn labels(y: &[u8]) -> Vec<bool> {
    y.iter().map(|&v| v == 1).collect()
}

fn assert_close(a: f64, b: f64) {
    assert!((a - b).abs() < 1e-12, "{a} != {b}");
}

/// (name, labels, scores, sklearn AUC-ROC, sklearn AP)
#[allow(clippy::type_complexity)]
const CASES: &[(&str, &[u8], &[f64], f64, f64)] = &[
    (
        "simple",
        &[0, 0, 1, 1],
        &[0.1, 0.4, 0.35, 0.8],
        0.75,
        0.8333333333333333,
    ),
    (
        "ties",
        &[0, 1, 0, 1, 1, 0, 1, 0],
        &[0.5, 0.5, 0.2, 0.9, 0.2, 0.7, 0.5, 0.1],
        0.65625,
        0.6928571428571428,
    ),
    (
        "all_equal",
        &[0, 1, 0, 1, 1],
        &[0.3, 0.3, 0.3, 0.3, 0.3],
        0.5,
        0.6,
    ),
    (
        "perfect",
        &[0, 0, 0, 1, 1],
        &[1.0, 2.0, 3.0, 4.0, 5.0],
        1.0,
        1.0,
    ),
    (
        "inverted",
        &[1, 1, 0, 0],
        &[0.1, 0.2, 0.3, 0.4],
        0.0,
        0.41666666666666663,
    ),
    (
        "negative_scores",
        &[1, 0, 1, 0, 0, 1, 0, 1, 1, 0],
        &[-3.2, -1.0, 2.5, 0.0, -1.0, 2.5, -7.1, 0.3, -1.0, 0.0],
        0.72,
        0.8111111111111111,
    ),
];

#[test]
fn equals_scikit_learn_on_hand_cases() {
    for (name, y, s, roc, ap) in CASES {
        let y = labels(y);
        assert!(
            (auc_roc(&y, s).unwrap() - roc).abs() < 1e-12,
            "{name} AUC-ROC"
        );
        assert!(
            (average_precision(&y, s).unwrap() - ap).abs() < 1e-12,
            "{name} AP"
        );
    }
}

#[test]
fn equals_scikit_learn_on_fifty_random_scores_with_ties() {
    let y: [u8; 50] = [
        0, 1, 1, 0, 1, 1, 1, 1, 1, 1, 1, 0, 0, 1, 0, 0, 0, 0, 0, 1, 0, 1, 1, 0, 0, 1, 1, 1, 1, 0,
        1, 0, 1, 0, 1, 1, 0, 1, 1, 0, 0, 1, 0, 1, 1, 1, 1, 1, 0, 1,
    ];
    let s: [f64; 50] = [
        -1.0,
        1.1,
        0.7,
        0.7,
        -0.9000000000000001,
        0.09999999999999998,
        0.49999999999999994,
        2.2,
        0.39999999999999997,
        0.7,
        2.2,
        1.5,
        0.6,
        0.7999999999999999,
        -1.1,
        1.4,
        1.8,
        -0.6,
        0.2,
        0.19999999999999996,
        -1.1,
        1.2999999999999998,
        0.29999999999999993,
        -0.8,
        1.0,
        -1.2,
        0.8999999999999999,
        0.7,
        0.6,
        -0.2,
        1.1,
        -1.0,
        0.49999999999999994,
        -1.7,
        0.09999999999999998,
        0.19999999999999996,
        0.3,
        -0.10000000000000009,
        0.39999999999999997,
        -0.4,
        1.1,
        0.19999999999999996,
        0.4,
        0.7,
        2.2,
        1.2999999999999998,
        0.29999999999999993,
        0.0,
        -0.4,
        0.0,
    ];
    let y = labels(&y);
    assert_close(auc_roc(&y, &s).unwrap(), 0.6441666666666668);
    assert_close(average_precision(&y, &s).unwrap(), 0.7108941923807048);
}

#[test]
fn curve_points_equal_scikit_learn() {
    let y = labels(&[0, 1, 0, 1, 1, 0, 1, 0]);
    let s = [0.5, 0.5, 0.2, 0.9, 0.2, 0.7, 0.5, 0.1];
    let roc = roc_curve(&y, &s).unwrap();
    assert_eq!(roc.x, vec![0.0, 0.0, 0.25, 0.5, 0.75, 1.0]);
    assert_eq!(roc.y, vec![0.0, 0.25, 0.25, 0.75, 1.0, 1.0]);
    assert_eq!(roc.thresholds, vec![f64::INFINITY, 0.9, 0.7, 0.5, 0.2, 0.1]);
    // scikit-learn lists PR points lowest threshold first, ending in (recall 0, precision 1);
    // ours are highest threshold first without that end point.
    let pr = pr_curve(&y, &s).unwrap();
    assert_eq!(pr.x, vec![0.25, 0.25, 0.75, 1.0, 1.0]);
    let expected_precision = [1.0, 0.5, 0.6, 4.0 / 7.0, 0.5];
    for (p, e) in pr.y.iter().zip(expected_precision) {
        assert_close(*p, e);
    }
    assert_eq!(pr.thresholds, vec![0.9, 0.7, 0.5, 0.2, 0.1]);
}

#[test]
fn one_class_only_is_an_error_not_a_number() {
    let err = auc_roc(&[true, true], &[0.1, 0.2]).unwrap_err();
    assert!(err.to_string().contains("both normal and anomalous"));
    assert!(average_precision(&[false, false], &[0.1, 0.2]).is_err());
    assert!(auc_roc(&[true, false], &[f64::NAN, 0.2]).is_err());
    assert!(auc_roc(&[true], &[0.1, 0.2]).is_err());
}

#[test]
fn per_class_auc_uses_each_class_against_all_normals() {
    // normals 0.1, 0.4; class a: 0.3 (beats one normal), 0.9; class b: 0.05, 0.2.
    let classes = [None, None, Some("a"), Some("a"), Some("b"), Some("b")];
    let scores = [0.1, 0.4, 0.3, 0.9, 0.05, 0.2];
    let per = per_class_auc_roc(&classes, &scores).unwrap();
    assert_eq!(per.len(), 2);
    assert_close(per["a"], 0.75); // scikit-learn: roc_auc_score([0,0,1,1],[0.1,0.4,0.3,0.9])
    assert_close(per["b"], 0.25); // roc_auc_score([0,0,1,1],[0.1,0.4,0.05,0.2])
}

#[test]
fn decision_thresholds_and_their_confusion_matrix_by_hand() {
    // 100 normal scores 0, 1, …, 99: at 1 % one may lie above the threshold, so it is 98
    let normals: Vec<f64> = (0..100).rev().map(f64::from).collect();
    assert_eq!(threshold_at_fpr(&normals, 0.01).unwrap(), 98.0);
    assert_eq!(threshold_at_fpr(&normals, 0.0).unwrap(), 99.0);
    assert_eq!(threshold_at_fpr(&normals, 0.25).unwrap(), 74.0);
    // 50 normals at 1 %: none may lie above, so it is the largest
    assert_eq!(threshold_at_fpr(&normals[..50], 0.01).unwrap(), 99.0);
    assert!(threshold_at_fpr(&[], 0.01).is_err());
    assert!(threshold_at_fpr(&normals, 1.0).is_err());

    // labels and scores: anomalies 0.9, 0.8, 0.3; normals 0.7, 0.2, 0.1
    let labels = [true, true, true, false, false, false];
    let scores = [0.9, 0.8, 0.3, 0.7, 0.2, 0.1];
    let d = decisions(&labels, &scores, 0.5);
    let counts = (
        d.true_positives,
        d.false_positives,
        d.true_negatives,
        d.false_negatives,
    );
    assert_eq!(counts, (2, 1, 2, 1));
    assert!((d.precision - 2.0 / 3.0).abs() < 1e-12 && (d.recall - 2.0 / 3.0).abs() < 1e-12);
    assert!((d.f1 - 2.0 / 3.0).abs() < 1e-12);
    // a score equal to the threshold is not flagged
    assert_eq!(decisions(&labels, &scores, 0.8).true_positives, 1);
    // F1 at each cut, scores descending: 0.9 → 2/4, 0.8 → 4/5, 0.7 → 4/6, 0.3 → 6/7,
    // 0.2 → 6/8, 0.1 → 6/9; the best, 6/7, flags down to 0.3 (threshold halfway to 0.2)
    let (f1, t) = f1_max(&labels, &scores).unwrap();
    assert!((f1 - 6.0 / 7.0).abs() < 1e-12, "{f1}");
    assert!((t - 0.25).abs() < 1e-12, "{t}");
    assert!((decisions(&labels, &scores, t).f1 - f1).abs() < 1e-12);
    // a tie: anomaly, normal, normal, anomaly gives F1 2/3 flagging only the first (0.9)
    // and 2/3 flagging all four; the higher threshold wins, halfway from 0.9 to 0.8
    let labels = [true, false, false, true];
    let (f1, t) = f1_max(&labels, &[0.9, 0.8, 0.7, 0.6]).unwrap();
    assert!(
        (f1 - 2.0 / 3.0).abs() < 1e-12 && (t - 0.85).abs() < 1e-12,
        "{f1} {t}"
    );
}
