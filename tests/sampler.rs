//! Batch sampler proportions, stream coverage, reference-set modes and batch assembly.

mod common;

use std::collections::HashMap;

use dra::data::batch::{Batcher, ImageStore};
use dra::data::reference::{RefMode, ReferenceSet};
use dra::data::sampler::{BatchSampler, Composition};
use dra::data::transform::Normalization;
use dra::rng::seeded;
use dra::types::{Label, Sample, Slot};

#[test]
fn batch_of_48_has_32_normal_slots_and_16_seen_anomalies() {
    let mut sampler = BatchSampler::new(100, 10, 48, Composition::DRA).unwrap();
    let mut rng = seeded(0);
    let mut counts: HashMap<Label, usize> = HashMap::new();
    let batches = 2000;
    for _ in 0..batches {
        let slots = sampler.next_batch(&mut rng);
        assert_eq!(slots.len(), 48);
        assert!(slots[..32].iter().all(|s| s.label != Label::Seen));
        assert!(slots[32..].iter().all(|s| s.label == Label::Seen));
        for s in slots {
            *counts.entry(s.label).or_default() += 1;
        }
    }
    assert_eq!(counts[&Label::Seen], 16 * batches);
    // each normal slot is a pseudo anomaly with p = 1/2: 64,000 slots, sd ≈ 126
    let pseudo = counts[&Label::Pseudo] as f64 / (32 * batches) as f64;
    assert!((pseudo - 0.5).abs() < 0.01, "{pseudo}");
    assert_eq!(
        counts[&Label::Normal] + counts[&Label::Pseudo],
        32 * batches
    );
}

#[test]
fn without_seen_anomalies_every_slot_is_normal_or_pseudo() {
    let mut sampler = BatchSampler::new(7, 0, 9, Composition::DRA).unwrap();
    assert_eq!(sampler.normal_slots(), 9);
    let slots = sampler.next_batch(&mut seeded(1));
    assert_eq!(slots.len(), 9);
    assert!(slots.iter().all(|s| s.label != Label::Seen && s.index < 7));
}

#[test]
fn streams_visit_every_image_once_per_pass() {
    // 6 batches × 16 seen slots = 96 = 8 passes over 12 anomalies: each exactly 8 times.
    let mut sampler = BatchSampler::new(50, 12, 48, Composition::DRA).unwrap();
    let mut rng = seeded(4);
    let mut seen = [0usize; 12];
    for _ in 0..6 {
        for s in sampler
            .next_batch(&mut rng)
            .into_iter()
            .filter(|s| s.label == Label::Seen)
        {
            seen[s.index] += 1;
        }
    }
    assert_eq!(seen, [8; 12]);
}

#[test]
fn sampling_is_deterministic_per_seed() {
    let draw = |seed| {
        let mut s = BatchSampler::new(30, 5, 12, Composition::DRA).unwrap();
        let mut rng = seeded(seed);
        (0..5).map(|_| s.next_batch(&mut rng)).collect::<Vec<_>>()
    };
    assert_eq!(draw(3), draw(3));
    assert_ne!(draw(3), draw(4));
}

#[test]
fn fixed_reference_set_never_changes_and_resample_does() {
    let mut rng = seeded(9);
    let mut fixed = ReferenceSet::new(RefMode::Fixed, 5, 40, &mut rng).unwrap();
    let first = fixed.slots(&mut rng);
    assert_eq!(first.len(), 5);
    assert!(first.iter().all(|s| s.label == Label::Normal));
    let mut distinct: Vec<_> = first.iter().map(|s| s.index).collect();
    distinct.sort();
    distinct.dedup();
    assert_eq!(distinct.len(), 5);
    for _ in 0..10 {
        assert_eq!(fixed.slots(&mut rng), first);
    }
    assert!(!fixed.augmented());

    let mut resample = ReferenceSet::new(RefMode::Resample, 5, 40, &mut rng).unwrap();
    assert!(resample.augmented());
    let draws: Vec<_> = (0..200).map(|_| resample.slots(&mut rng)).collect();
    assert!(draws.windows(2).any(|w| w[0] != w[1]));
    let pseudo = draws
        .iter()
        .flatten()
        .filter(|s| s.label == Label::Pseudo)
        .count() as f64
        / 1000.0;
    assert!((pseudo - 0.5).abs() < 0.06, "{pseudo}");
}

#[test]
fn reference_set_larger_than_normals_is_an_error() {
    let err = ReferenceSet::new(RefMode::Fixed, 6, 5, &mut seeded(0))
        .unwrap_err()
        .to_string();
    assert!(err.contains("--n-ref 6"), "{err}");
    assert!(ReferenceSet::new(RefMode::Fixed, 0, 5, &mut seeded(0)).is_err());
    assert!("sometimes".parse::<RefMode>().is_err());
    assert_eq!("resample".parse::<RefMode>().unwrap(), RefMode::Resample);
}

#[test]
fn batcher_builds_normalised_nchw_batches_with_labels() {
    let tmp = tempfile::tempdir().unwrap();
    let sample = |name: &str, class: &str, seed| {
        let path = tmp.path().join(name);
        common::write_png(&path, 20, 10, seed);
        Sample {
            path,
            class: class.into(),
        }
    };
    let normals = vec![sample("n0.png", "good", 1), sample("n1.png", "good", 2)];
    let anomalies = vec![sample("a0.png", "crack", 3)];
    let mut store = ImageStore::new(16);
    let mut batcher = Batcher::new(&normals, &anomalies, &mut store);
    let mut sampler = BatchSampler::new(2, 1, 6, Composition::DRA).unwrap();
    let mut rng = seeded(0);
    let slots = sampler.next_batch(&mut rng);
    let batch = batcher
        .batch(&slots, true, &Normalization::IMAGENET, &mut rng)
        .unwrap();
    assert_eq!(batch.len(), 6);
    assert_eq!(batch.img_size, 16);
    assert_eq!(batch.pixels.len(), 6 * 3 * 16 * 16);
    assert_eq!(
        batch.labels,
        slots.iter().map(|s| s.label).collect::<Vec<_>>()
    );
    // without augmentation a normal slot is exactly the resized, normalised image
    let slot = [Slot {
        index: 1,
        label: Label::Normal,
    }];
    let plain = batcher
        .batch(&slot, false, &Normalization::HALF, &mut rng)
        .unwrap();
    let img = dra::data::transform::resize_square(
        &dra::data::transform::load_rgb(&normals[1].path).unwrap(),
        16,
    );
    let mut expected = Vec::new();
    Normalization::HALF.append_chw(&img, &mut expected);
    assert_eq!(plain.pixels, expected);
    // with augmentation the same slot is rotated: same size, different pixels
    let rotated = batcher
        .batch(&slot, true, &Normalization::HALF, &mut rng)
        .unwrap();
    assert_eq!(rotated.pixels.len(), expected.len());
    assert_ne!(rotated.pixels, expected);
}

#[test]
fn outlier_exposure_reads_both_layouts_and_replaces_cutmix() {
    use dra::data::outliers::outlier_images;
    let tmp = tempfile::tempdir().unwrap();
    // the reference code's layout: every class folder's train/good but the trained class's
    let mvtec = tmp.path().join("mvtec");
    for (i, class) in ["bottle", "carpet", "tile"].iter().enumerate() {
        for j in 0..2 {
            let path = mvtec
                .join(class)
                .join("train/good")
                .join(format!("{j}.png"));
            common::write_png(&path, 12, 9, (10 * i + j) as u32);
        }
    }
    common::write_png(&mvtec.join("tile/test/crack/0.png"), 12, 9, 99);
    let outliers = outlier_images(&mvtec, "tile").unwrap();
    let rel: Vec<String> = outliers
        .iter()
        .map(|p| p.strip_prefix(&mvtec).unwrap().display().to_string())
        .collect();
    assert_eq!(
        rel,
        [
            "bottle/train/good/0.png",
            "bottle/train/good/1.png",
            "carpet/train/good/0.png",
            "carpet/train/good/1.png"
        ]
    );
    // any folder of images, sub-folders too
    let flat = tmp.path().join("flat");
    common::write_png(&flat.join("a.png"), 12, 9, 1);
    common::write_png(&flat.join("more/b.png"), 12, 9, 2);
    assert_eq!(outlier_images(&flat, "tile").unwrap().len(), 2);
    let empty = tmp.path().join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let err = outlier_images(&empty, "tile").unwrap_err().to_string();
    assert!(
        err.contains("no outlier images") && err.contains("empty"),
        "{err}"
    );
    // a pseudo slot becomes an outlier image drawn uniformly (unaugmented: as resized), not
    // a CutMix of the normal it names
    let normals = vec![Sample {
        path: flat.join("a.png"),
        class: "good".into(),
    }];
    let mut store = ImageStore::new(8);
    let expected: Vec<image::RgbImage> = outliers
        .iter()
        .map(|p| store.get(p).unwrap().clone())
        .collect();
    let mut batcher = Batcher::new(&normals, &[], &mut store).with_outliers(&outliers, true);
    let slots = vec![
        Slot {
            index: 0,
            label: Label::Pseudo,
        };
        40
    ];
    let images = batcher.images(&slots, false, &mut seeded(5)).unwrap();
    let mut seen = [0usize; 4];
    for img in &images {
        let k = expected
            .iter()
            .position(|e| e == img)
            .expect("an outlier image");
        seen[k] += 1;
    }
    assert!(seen.iter().all(|&n| n > 0), "{seen:?}");
    // augmented, it is rotated only: the same pixels as a rotation of an outlier image
    let mut rng = seeded(6);
    let augmented = batcher.images(&slots[..1], true, &mut rng).unwrap();
    let mut again = seeded(6);
    let pick = rand::Rng::random_range(&mut again, 0..4);
    let rotated = dra::data::transform::random_rotation(&expected[pick], &mut again);
    assert_eq!(augmented[0], rotated);
    // a method without pseudo anomalies has nothing for outliers to replace
    let devnet = dra::config::TrainConfig {
        outlier_root: Some(flat.clone()),
        method: dra::methods::Method::Devnet,
        ..dra::config::TrainConfig::default()
    };
    let err = devnet.validate().unwrap_err().to_string();
    assert!(err.contains("--outlier-root"), "{err}");
}
