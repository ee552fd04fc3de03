//! Protocol splits: exact counts, determinism from the seed, the paper's 1-shot ⊂ 10-shot
//! rule, hard-protocol exclusions and the errors for impossible requests.

mod common;

use std::collections::HashSet;
use std::path::PathBuf;

use dra::data::layout::DatasetLayout;
use dra::data::protocol::{Protocol, Split};
use dra::rng::seeded;

fn general(threshold: Option<usize>) -> Protocol {
    Protocol::General {
        test_threshold: threshold,
        cont_rate: 0.0,
    }
}

fn hard(class: &str) -> Protocol {
    Protocol::Hard {
        known_class: class.into(),
    }
}

fn fixture() -> (tempfile::TempDir, DatasetLayout) {
    let tmp = tempfile::tempdir().unwrap();
    let layout = common::tile_layout(tmp.path());
    (tmp, layout)
}

fn paths(samples: &[dra::types::Sample]) -> Vec<PathBuf> {
    samples.iter().map(|s| s.path.clone()).collect()
}

#[test]
fn general_split_counts() {
    let (_tmp, layout) = fixture();
    let split = Split::new(&layout, &general(None), 10, &mut seeded(1)).unwrap();
    assert_eq!(split.train_normal.len(), 20);
    assert_eq!(split.train_anomaly.len(), 10);
    assert_eq!(split.test.len(), 6 + 13);
    assert_eq!(split.n_test_anomalies(), 13);
    // seen anomalies never appear in the test set
    let seen: HashSet<_> = paths(&split.train_anomaly).into_iter().collect();
    assert!(split.test.iter().all(|s| !seen.contains(&s.path)));
    // test set: normals first, then anomalies sorted by path
    assert!(split.test[..6].iter().all(|s| !s.is_anomaly()));
    let anomalies = paths(&split.test[6..]);
    let mut sorted = anomalies.clone();
    sorted.sort();
    assert_eq!(anomalies, sorted);
}

#[test]
fn same_seed_same_split_other_seed_other_split() {
    let (_tmp, layout) = fixture();
    let a = Split::new(&layout, &general(None), 5, &mut seeded(7)).unwrap();
    let b = Split::new(&layout, &general(None), 5, &mut seeded(7)).unwrap();
    let c = Split::new(&layout, &general(None), 5, &mut seeded(8)).unwrap();
    assert_eq!(paths(&a.train_anomaly), paths(&b.train_anomaly));
    assert_eq!(paths(&a.test), paths(&b.test));
    assert_ne!(paths(&a.train_anomaly), paths(&c.train_anomaly));
}

#[test]
fn one_shot_is_one_of_the_ten_shots_and_shares_their_test_set() {
    let (_tmp, layout) = fixture();
    for seed in 0..20 {
        let ten = Split::new(&layout, &general(None), 10, &mut seeded(seed)).unwrap();
        let one = Split::new(&layout, &general(Some(10)), 1, &mut seeded(seed)).unwrap();
        assert_eq!(one.train_anomaly.len(), 1);
        assert!(
            ten.train_anomaly.contains(&one.train_anomaly[0]),
            "seed {seed}"
        );
        assert_eq!(paths(&one.test), paths(&ten.test), "seed {seed}");
        // without the threshold the 1-shot test set keeps the other nine
        let plain = Split::new(&layout, &general(None), 1, &mut seeded(seed)).unwrap();
        assert_eq!(plain.n_test_anomalies(), 22);
    }
}

#[test]
fn hard_protocol_sees_one_class_and_tests_on_all_others() {
    let (_tmp, layout) = fixture();
    let split = Split::new(&layout, &hard("hole"), 5, &mut seeded(3)).unwrap();
    assert_eq!(split.train_anomaly.len(), 5);
    assert!(split.train_anomaly.iter().all(|s| s.class == "hole"));
    // every other class in full, and not one hole image (not even the two unused ones)
    assert_eq!(split.n_test_anomalies(), 12 + 4);
    assert!(split.test.iter().all(|s| s.class != "hole"));
    let again = Split::new(&layout, &hard("hole"), 5, &mut seeded(3)).unwrap();
    assert_eq!(paths(&split.train_anomaly), paths(&again.train_anomaly));
}

#[test]
fn impossible_requests_are_clear_errors() {
    let (_tmp, layout) = fixture();
    let msg = |p: Protocol, n: usize| {
        Split::new(&layout, &p, n, &mut seeded(0))
            .unwrap_err()
            .to_string()
    };
    assert!(msg(hard("scratch"), 1).contains("no anomaly class 'scratch'"));
    assert!(msg(hard("scratch"), 1).contains("crack, hole, stain"));
    assert!(msg(hard("stain"), 5).contains("only 4 anomalies of the known class"));
    assert!(msg(general(None), 24).contains("only 23 anomalies"));
    assert!(msg(general(Some(3)), 5).contains("below --n-anomaly"));
    assert!(msg(general(Some(23)), 5).contains("leaves no test anomalies"));

    let tmp = tempfile::tempdir().unwrap();
    common::make_layout(tmp.path(), "sdd", 4, 2, &[("defect", 6)]);
    let single = DatasetLayout::open(tmp.path(), "sdd").unwrap();
    let err = Split::new(&single, &hard("defect"), 1, &mut seeded(0))
        .unwrap_err()
        .to_string();
    assert!(err.contains("at least 2 anomaly classes"), "{err}");

    common::make_layout(tmp.path(), "clean", 4, 2, &[]);
    let clean = DatasetLayout::open(tmp.path(), "clean").unwrap();
    let err = Split::new(&clean, &general(None), 1, &mut seeded(0))
        .unwrap_err()
        .to_string();
    assert!(err.contains("no anomaly folders"), "{err}");
}

fn contaminated(threshold: Option<usize>, rate: f64) -> Protocol {
    Protocol::General {
        test_threshold: threshold,
        cont_rate: rate,
    }
}

#[test]
fn contamination_moves_the_next_anomalies_into_the_normals_and_out_of_the_test_set() {
    let (_tmp, layout) = fixture();
    // 20 normal training images at rate 0.1: ⌊20 / 0.9 · 0.1⌋ = 2 unlabelled anomalies
    assert_eq!(dra::data::protocol::n_contaminating(20, 0.1), 2);
    assert_eq!(dra::data::protocol::n_contaminating(20, 0.2), 5);
    let plain = Split::new(&layout, &general(None), 3, &mut seeded(4)).unwrap();
    let split = Split::new(&layout, &contaminated(None, 0.1), 3, &mut seeded(4)).unwrap();
    assert_eq!(split.train_anomaly, plain.train_anomaly);
    assert_eq!(split.contamination.len(), 2);
    assert_eq!(split.train_normal.len(), 22);
    assert_eq!(
        (split.n_test_anomalies(), plain.n_test_anomalies()),
        (18, 20)
    );
    let normal: HashSet<PathBuf> = paths(&split.train_normal).into_iter().collect();
    let test: HashSet<PathBuf> = paths(&split.test).into_iter().collect();
    for p in &split.contamination {
        assert!(normal.contains(p) && !test.contains(p), "{}", p.display());
    }
    // the polluting anomalies are the two after the seen ones: the first two of the plain
    // split's test anomalies in the shuffled order, i.e. together with the contaminated
    // split's test anomalies exactly the plain ones
    let anomalies = |s: &Split| -> Vec<PathBuf> {
        s.test
            .iter()
            .filter(|t| t.is_anomaly())
            .map(|t| t.path.clone())
            .collect()
    };
    let mut union: Vec<PathBuf> = split.contamination.clone();
    union.extend(anomalies(&split));
    union.sort();
    let mut expected = anomalies(&plain);
    expected.sort();
    assert_eq!(union, expected);
    // with the paper's --test-threshold 10 the two come from before the threshold: the test
    // set is the uncontaminated one
    let ten = Split::new(&layout, &contaminated(Some(10), 0.1), 1, &mut seeded(4)).unwrap();
    let ten_plain = Split::new(&layout, &general(Some(10)), 1, &mut seeded(4)).unwrap();
    assert_eq!(ten.test, ten_plain.test);
    assert_eq!(ten.train_normal.len(), 22);
    // too much contamination leaves no test anomaly: an error that says so
    let err = Split::new(&layout, &contaminated(None, 0.5), 3, &mut seeded(4))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("--cont-rate 0.5") && err.contains("no test anomalies"),
        "{err}"
    );
}
