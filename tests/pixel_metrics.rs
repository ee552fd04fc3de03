//! Pixel AUROC and AUPRO against values computed independently with scikit-learn
//! (`roc_auc_score`) and a brute-force AUPRO in NumPy (scipy.ndimage.label with a 3×3
//! structure, every distinct threshold, trapezoid to FPR 0.3 with interpolation).

use dra::metrics::pixel::PixelSet;

const W: u32 = 6;
const H: u32 = 5;

/// Two 6×5 maps: the first with two defect regions (one of them joined only diagonally),
/// the second an image without defect.
fn hand_made() -> PixelSet {
    let mut a: Vec<f32> = (0..W * H).map(|i| ((i * 7) % 11) as f32 / 10.0).collect();
    let b: Vec<f32> = (0..W * H)
        .map(|i| ((i * 5 + 3) % 13) as f32 / 12.0)
        .collect();
    let mut mask = vec![false; (W * H) as usize];
    for (x, y) in [
        (0, 0),
        (1, 0),
        (0, 1),
        (1, 1),
        (2, 2),
        (4, 3),
        (5, 3),
        (4, 4),
        (5, 4),
    ] {
        mask[y * W as usize + x] = true;
    }
    for (v, m) in a.iter_mut().zip(&mask) {
        if *m {
            *v += 0.45;
        }
    }
    let mut set = PixelSet::default();
    set.add(&a, &mask, W, H);
    set.add(&b, &vec![false; (W * H) as usize], W, H);
    set
}

#[test]
fn pixel_auroc_and_aupro_match_the_reference_values() {
    let set = hand_made();
    // the diagonal pixel joins the first region: 8-connected (4-connected would make 3)
    assert_eq!(set.regions(), 2);
    let auc = set.auc().unwrap();
    assert!((auc.auc_roc - 0.8736383442265796).abs() < 1e-12, "{auc:?}");
    assert!((auc.aupro - 0.7161764705882353).abs() < 1e-12, "{auc:?}");
}

#[test]
fn a_perfect_map_scores_one_and_a_constant_map_one_half() {
    let mask: Vec<bool> = (0..W * H).map(|i| i % 6 < 2).collect();
    let perfect: Vec<f32> = mask.iter().map(|&m| if m { 1.0 } else { 0.0 }).collect();
    let mut set = PixelSet::default();
    set.add(&perfect, &mask, W, H);
    let auc = set.auc().unwrap();
    assert!(
        (auc.auc_roc - 1.0).abs() < 1e-12 && (auc.aupro - 1.0).abs() < 1e-12,
        "{auc:?}"
    );
    let mut flat = PixelSet::default();
    flat.add(&vec![0.5; (W * H) as usize], &mask, W, H);
    let auc = flat.auc().unwrap();
    // one threshold: (0, 0) → (1, 1); the overlap curve is cut at FPR 0.3 where it is 0.3
    assert!((auc.auc_roc - 0.5).abs() < 1e-12);
    assert!((auc.aupro - 0.15).abs() < 1e-12, "{auc:?}");
}

#[test]
fn maps_without_defect_pixels_are_an_error() {
    let mut set = PixelSet::default();
    set.add(&[0.1; 4], &[false; 4], 2, 2);
    assert!(set.auc().is_err());
}
