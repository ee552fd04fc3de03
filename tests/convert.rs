//! Converters: exact counts on small synthetic inputs for every source layout, the real data
//! sets in `../shared/data` (skipped when absent), and errors for unknown layouts.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use dra::data::convert::{Converter, Summary};
use dra::data::layout::{DatasetLayout, list_images};

fn counts(s: &Summary) -> (usize, usize, BTreeMap<&str, usize>, usize) {
    (
        s.train_good,
        s.test_good,
        s.anomalies.iter().map(|(k, v)| (k.as_str(), *v)).collect(),
        s.masks,
    )
}

fn files(dir: &Path) -> Vec<String> {
    list_images(dir)
        .unwrap()
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect()
}

fn convert(c: Converter, input: &Path) -> (tempfile::TempDir, Summary) {
    let out = tempfile::tempdir().unwrap();
    let s = c.run(input, out.path(), 42).unwrap();
    // whatever a converter writes, the data layer must read back with the same counts
    let layout = DatasetLayout::open(out.path(), c.name()).unwrap();
    assert_eq!(layout.train_good.len(), s.train_good);
    assert_eq!(layout.test_good.len(), s.test_good);
    assert_eq!(layout.n_anomalies(), s.anomalies.values().sum::<usize>());
    (out, s)
}

#[test]
fn sdd_cuts_three_pieces_and_labels_by_mask() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    for (dir, part) in [("kos01", 0), ("kos01", 1), ("kos02", 0), ("kos02", 1)] {
        common::write_png(&root.join(format!("{dir}/Part{part}.jpg")), 6, 9, part);
    }
    // a defect in piece 0 of kos01/Part0 (rows 0..3), one across pieces 1 and 2 of kos02/Part1
    common::write_mask(
        &root.join("kos01/Part0_label.bmp"),
        6,
        9,
        Some((1, 1, 2, 1)),
    );
    common::write_mask(&root.join("kos01/Part1_label.png"), 6, 9, None);
    common::write_mask(&root.join("kos02/Part0_label.bmp"), 6, 9, None);
    common::write_mask(
        &root.join("kos02/Part1_label.png"),
        6,
        9,
        Some((0, 5, 1, 2)),
    );
    let (out, s) = convert(Converter::Sdd, root);
    // 12 pieces: 3 defects, 9 normals split 6/3
    assert_eq!(counts(&s), (6, 3, BTreeMap::from([("defect", 3)]), 3));
    let dir = out.path().join("sdd");
    assert_eq!(
        files(&dir.join("test/defect")),
        [
            "kos01_Part0_0.png",
            "kos02_Part1_1.png",
            "kos02_Part1_2.png"
        ]
    );
    let piece = image::open(dir.join("test/defect/kos01_Part0_0.png")).unwrap();
    assert_eq!((piece.width(), piece.height()), (6, 3));
    let mask = image::open(dir.join("ground_truth/defect/kos01_Part0_0_mask.png"))
        .unwrap()
        .to_luma8();
    assert_eq!(mask.get_pixel(1, 1).0, [255]);
    assert_eq!(mask.get_pixel(0, 0).0, [0]);
}

#[test]
fn sdd_reports_a_missing_label_and_a_wrong_layout() {
    let tmp = tempfile::tempdir().unwrap();
    common::write_png(&tmp.path().join("kos01/Part0.jpg"), 4, 6, 0);
    let out = tempfile::tempdir().unwrap();
    let err = Converter::Sdd
        .run(tmp.path(), out.path(), 42)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("kos01/Part0_label.bmp") && err.contains("label file missing"),
        "{err}"
    );

    let flat = tempfile::tempdir().unwrap();
    common::write_png(&flat.path().join("Part0.jpg"), 4, 6, 0);
    let err = Converter::Sdd
        .run(flat.path(), out.path(), 42)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("not in kosNN folders") && err.contains("sdd converter expects"),
        "{err}"
    );
}

#[test]
fn magnetic_tile_uses_free_as_normal_and_png_masks() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    for i in 0..5 {
        common::write_png(&root.join(format!("MT_Free/Imgs/f{i}.jpg")), 5, 5, i);
        common::write_mask(&root.join(format!("MT_Free/Imgs/f{i}.png")), 5, 5, None);
    }
    for (class, n) in [("Crack", 2), ("Break", 1)] {
        for i in 0..n {
            common::write_png(
                &root.join(format!("MT_{class}/Imgs/{class}{i}.jpg")),
                5,
                5,
                i,
            );
            common::write_mask(
                &root.join(format!("MT_{class}/Imgs/{class}{i}.png")),
                5,
                5,
                Some((1, 1, 1, 1)),
            );
        }
    }
    let (out, s) = convert(Converter::MagneticTile, root);
    assert_eq!(
        counts(&s),
        (3, 2, BTreeMap::from([("Break", 1), ("Crack", 2)]), 3)
    );
    assert!(
        out.path()
            .join("magnetic-tile/ground_truth/Crack/Crack1_mask.png")
            .is_file()
    );
}

#[test]
fn magnetic_tile_reads_upper_case_photos_and_bmp_masks() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    for i in 0..4 {
        common::write_png(&root.join(format!("MT_Free/Imgs/f{i}.JPG")), 5, 5, i);
    }
    common::write_png(&root.join("MT_Crack/Imgs/c0.JPG"), 5, 5, 7);
    common::write_mask(&root.join("MT_Crack/Imgs/c0.bmp"), 5, 5, Some((1, 1, 2, 2)));
    common::write_png(&root.join("MT_Crack/Imgs/c1.jpeg"), 5, 5, 8);
    common::write_mask(&root.join("MT_Crack/Imgs/c1.PNG"), 5, 5, Some((0, 0, 1, 1)));
    let (out, s) = convert(Converter::MagneticTile, root);
    // the masks are not taken for photos: 4 normals (test 1), 2 cracks with their 2 masks
    assert_eq!(counts(&s), (3, 1, BTreeMap::from([("Crack", 2)]), 2));
    for stem in ["c0", "c1"] {
        let mask = out
            .path()
            .join(format!("magnetic-tile/ground_truth/Crack/{stem}_mask.png"));
        assert!(mask.is_file(), "{}", mask.display());
    }
}

#[test]
fn normals_split_75_25_by_seed() {
    let tmp = tempfile::tempdir().unwrap();
    for i in 0..10 {
        common::write_png(&tmp.path().join(format!("no/n{i}.png")), 3, 3, i);
    }
    common::write_png(&tmp.path().join("yes/y0.png"), 3, 3, 0);
    let test_set = |seed| {
        let out = tempfile::tempdir().unwrap();
        let s = Converter::BrainMri
            .run(tmp.path(), out.path(), seed)
            .unwrap();
        assert_eq!((s.train_good, s.test_good), (7, 3)); // test = ⌈10/4⌉
        files(&out.path().join("brainmri/test/good"))
    };
    assert_eq!(test_set(42), test_set(42));
    assert!((0..5).any(|seed| test_set(seed) != test_set(42)));
}

#[test]
fn elpv_keeps_certain_labels_and_files_defects_by_cell_type() {
    let tmp = tempfile::tempdir().unwrap();
    let rows = [
        ("a", "0.0", "mono"),
        ("b", "0.0", "poly"),
        ("c", "1.0", "mono"),
        ("d", "1.0", "poly"),
        ("e", "0.3333333333333333", "mono"),
        ("f", "0.6666666666666666", "poly"),
        ("g", "1.0", "poly"),
        ("h", "0.0", "mono"),
        ("i", "0.0", "mono"),
    ];
    let mut csv = String::new();
    for (name, p, kind) in rows {
        common::write_png(&tmp.path().join(format!("images/{name}.png")), 3, 3, 0);
        csv += &format!("images/{name}.png  {p}  {kind}\n");
    }
    std::fs::write(tmp.path().join("labels.csv"), &csv).unwrap();
    let (_out, s) = convert(Converter::Elpv, tmp.path());
    assert_eq!(
        counts(&s),
        (3, 1, BTreeMap::from([("mono", 1), ("poly", 2)]), 0)
    );
    assert_eq!(
        s.layout,
        "labels.csv without a header (the original archive)"
    );
    // a re-upload with a header line converts the same
    std::fs::write(
        tmp.path().join("labels.csv"),
        format!("path probability type\n{csv}"),
    )
    .unwrap();
    let (_out, h) = convert(Converter::Elpv, tmp.path());
    assert_eq!(counts(&h), counts(&s));
    assert_eq!(h.layout, "labels.csv with a header");

    std::fs::write(tmp.path().join("labels.csv"), "images/a.png zero mono\n").unwrap();
    let out = tempfile::tempdir().unwrap();
    let err = Converter::Elpv
        .run(tmp.path(), out.path(), 42)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("labels.csv") && err.contains("line 1"),
        "{err}"
    );
}

#[test]
fn headct_reads_labels_csv() {
    let tmp = tempfile::tempdir().unwrap();
    let mut csv = String::from("id, hemorrhage\n");
    for id in 0..8u32 {
        common::write_png(
            &tmp.path().join(format!("head_ct/head_ct/{id:03}.png")),
            3,
            3,
            id,
        );
        csv += &format!("{id}, {}\n", u8::from(id >= 5));
    }
    std::fs::write(tmp.path().join("labels.csv"), csv).unwrap();
    let (_out, s) = convert(Converter::HeadCt, tmp.path());
    assert_eq!(counts(&s), (3, 2, BTreeMap::from([("defect", 3)]), 0));
    assert_eq!(
        s.layout,
        "images under head_ct/head_ct/, labels.csv with a header"
    );
}

#[test]
fn headct_reads_the_one_level_re_upload_without_a_header() {
    let tmp = tempfile::tempdir().unwrap();
    let mut csv = String::new();
    for id in 0..8u32 {
        common::write_png(&tmp.path().join(format!("head_ct/{id:03}.png")), 3, 3, id);
        csv += &format!("{id},{}\n", u8::from(id >= 6));
    }
    std::fs::write(tmp.path().join("labels.csv"), csv).unwrap();
    let (_out, s) = convert(Converter::HeadCt, tmp.path());
    assert_eq!(counts(&s), (4, 2, BTreeMap::from([("defect", 2)]), 0));
    assert_eq!(
        s.layout,
        "images under head_ct/, labels.csv without a header"
    );
}

#[test]
fn a_failed_conversion_writes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    // the label of image 3 names a file that is missing: the converter fails half-way
    let mut csv = String::from("id, hemorrhage\n");
    for id in 0..4u32 {
        if id != 3 {
            common::write_png(&tmp.path().join(format!("head_ct/{id:03}.png")), 3, 3, id);
        }
        csv += &format!("{id}, 0\n");
    }
    std::fs::write(tmp.path().join("labels.csv"), csv).unwrap();
    let out = tempfile::tempdir().unwrap();
    let err = Converter::HeadCt
        .run(tmp.path(), out.path(), 42)
        .unwrap_err()
        .to_string();
    assert!(err.contains("003.png"), "{err}");
    let left: Vec<_> = std::fs::read_dir(out.path()).unwrap().collect();
    assert!(left.is_empty(), "left behind: {left:?}");
    // and a later conversion of a fixed input succeeds into the same output
    common::write_png(&tmp.path().join("head_ct/003.png"), 3, 3, 3);
    let s = Converter::HeadCt.run(tmp.path(), out.path(), 42).unwrap();
    assert_eq!(s.train_good + s.test_good, 4);
    assert!(out.path().join("headct/train/good").is_dir());
}

#[test]
fn mastcam_keeps_its_own_split() {
    let tmp = tempfile::tempdir().unwrap();
    let r = tmp.path();
    for i in 0..4 {
        common::write_png(&r.join(format!("train_typical/t{i}.png")), 3, 3, i);
    }
    common::write_png(&r.join("test_typical/x.png"), 3, 3, 0);
    common::write_png(&r.join("test_novel/veins/v.png"), 3, 3, 0);
    common::write_png(&r.join("test_novel/drill-hole/d1.png"), 3, 3, 0);
    common::write_png(&r.join("test_novel/drill-hole/d2.png"), 3, 3, 1);
    let (_out, s) = convert(Converter::Mastcam, r);
    assert_eq!(
        counts(&s),
        (4, 1, BTreeMap::from([("drill-hole", 2), ("veins", 1)]), 0)
    );
}

#[test]
fn hyperkvasir_pools_landmarks_and_keeps_names_unique() {
    let tmp = tempfile::tempdir().unwrap();
    let gi = tmp.path().join("upper-gi-tract");
    for lm in ["pylorus", "z-line"] {
        for i in 0..3 {
            common::write_png(
                &gi.join(format!("anatomical-landmarks/{lm}/img{i}.jpg")),
                3,
                3,
                i,
            );
        }
    }
    common::write_png(&gi.join("pathological-findings/barretts/b.jpg"), 3, 3, 0);
    common::write_png(
        &gi.join("pathological-findings/esophagitis-a/e.jpg"),
        3,
        3,
        0,
    );
    let (_out, s) = convert(Converter::HyperKvasir, tmp.path());
    assert_eq!(
        counts(&s),
        (
            4,
            2,
            BTreeMap::from([("barretts", 1), ("esophagitis-a", 1)]),
            0
        )
    );
}

#[test]
fn optical_reads_labels_txt_of_each_class_in_both_layouts() {
    for doubled in [true, false] {
        optical_case(doubled);
    }
}

fn optical_case(doubled: bool) {
    let tmp = tempfile::tempdir().unwrap();
    for (n, split) in [(1, "Train"), (1, "Test"), (3, "Train")] {
        let class = match doubled {
            true => format!("Class{n}/Class{n}"),
            false => format!("Class{n}"),
        };
        let dir = tmp.path().join(format!("{class}/{split}"));
        let mut txt = String::from("1\n");
        for i in 0..3u32 {
            let defect = u8::from(i == 2);
            common::write_png(&dir.join(format!("{i:04}.PNG")), 4, 4, i);
            let mask = if defect == 1 {
                common::write_mask(
                    &dir.join(format!("Label/{i:04}_label.PNG")),
                    4,
                    4,
                    Some((0, 0, 2, 2)),
                );
                format!("{i:04}_label.PNG")
            } else {
                "0".into()
            };
            txt += &format!("{}\t{defect}\t{i:04}.PNG\t0\t{mask}\n", i + 1);
        }
        std::fs::create_dir_all(dir.join("Label")).unwrap();
        std::fs::write(dir.join("Label/Labels.txt"), txt).unwrap();
    }
    let (_out, s) = convert(Converter::Optical, tmp.path());
    // 6 normals pooled (test ⌈6/4⌉ = 2); defects of Class1 → Class0, Class3 → Class2
    assert_eq!(
        counts(&s),
        (4, 2, BTreeMap::from([("Class0", 2), ("Class2", 1)]), 3)
    );
    let said = if doubled { "ClassN/ClassN/" } else { "ClassN/" };
    assert_eq!(s.layout, format!("classes as {said}"));
}

#[test]
fn aitex_crops_strips_and_keeps_defect_crops_only_in_both_layouts() {
    for doubled in [true, false] {
        aitex_case(doubled);
    }
}

fn aitex_case(doubled: bool) {
    let tmp = tempfile::tempdir().unwrap();
    let r = tmp.path();
    let (defects, masks) = match doubled {
        true => ("Defect_images/Defect_images", "Mask_images/Mask_images"),
        false => ("Defect_images", "Mask_images"),
    };
    // normal strips 1024×256 → 4 crops each
    common::write_png(
        &r.join("NODefect_images/2311694-2040n7u/0001_000_05.png"),
        1024,
        256,
        0,
    );
    common::write_png(
        &r.join("NODefect_images/2608691-2040n7u/0002_000_05.png"),
        1024,
        256,
        1,
    );
    // a broken-end strip whose mask touches crops 1 and 2
    common::write_png(&r.join(format!("{defects}/0044_002_02.png")), 1024, 256, 2);
    common::write_mask(
        &r.join(format!("{masks}/0044_002_02_mask.png")),
        1024,
        256,
        Some((500, 100, 50, 20)),
    );
    // a nep strip whose mask touches crop 0
    common::write_png(&r.join(format!("{defects}/0100_030_01.png")), 1024, 256, 3);
    common::write_mask(
        &r.join(format!("{masks}/0100_030_01_mask.png")),
        1024,
        256,
        Some((10, 10, 5, 5)),
    );
    let (out, s) = convert(Converter::Aitex, r);
    assert_eq!(
        counts(&s),
        (6, 2, BTreeMap::from([("Broken_end", 2), ("Nep", 1)]), 3)
    );
    assert_eq!(
        files(&out.path().join("aitex/test/Broken_end")),
        ["0044_002_02_1.png", "0044_002_02_2.png"]
    );

    assert_eq!(
        s.layout,
        format!("defects under {defects}/, masks under {masks}/")
    );
    std::fs::remove_file(r.join(format!("{masks}/0100_030_01_mask.png"))).unwrap();
    let out = tempfile::tempdir().unwrap();
    let err = Converter::Aitex
        .run(r, out.path(), 42)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("0100_030_01_mask.png") && err.contains("file missing"),
        "{err}"
    );
}

#[test]
fn unknown_input_layouts_and_used_outputs_are_refused() {
    let empty = tempfile::tempdir().unwrap();
    let out = tempfile::tempdir().unwrap();
    for c in Converter::ALL {
        let err = c.run(empty.path(), out.path(), 42).unwrap_err().to_string();
        assert!(
            err.contains(empty.path().to_str().unwrap()),
            "{}: {err}",
            c.name()
        );
        assert!(!err.contains('\n'), "{}: one line, got {err}", c.name());
    }
    let err = Converter::Elpv
        .run(&empty.path().join("nope"), out.path(), 42)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("nope") && err.contains("does not exist"),
        "{err}"
    );

    std::fs::create_dir_all(out.path().join("brainmri")).unwrap();
    std::fs::write(out.path().join("brainmri/old.txt"), "x").unwrap();
    let err = Converter::BrainMri
        .run(empty.path(), out.path(), 42)
        .unwrap_err()
        .to_string();
    assert!(err.contains("not empty"), "{err}");
    assert!(
        "mvtec"
            .parse::<Converter>()
            .unwrap_err()
            .to_string()
            .contains("magnetic-tile")
    );
}

// ---- real data (../shared/data, or the elpv-dataset package) ----

#[test]
fn real_kolektorsdd_gives_the_papers_counts() {
    let Some(input) = common::shared_data("kolektorsdd") else {
        return;
    };
    let (_out, s) = convert(Converter::Sdd, &input);
    assert_eq!(counts(&s), (857, 286, BTreeMap::from([("defect", 54)]), 54));
}

#[test]
fn real_magnetic_tile_counts() {
    let Some(input) = common::shared_data("magnetic_tile") else {
        return;
    };
    let (_out, s) = convert(Converter::MagneticTile, &input);
    let classes = BTreeMap::from([
        ("Blowhole", 115),
        ("Break", 85),
        ("Crack", 57),
        ("Fray", 32),
        ("Uneven", 103),
    ]);
    assert_eq!(counts(&s), (714, 238, classes, 392));
}

/// The ELPV package's data folder: `$DRA_ELPV_DIR`, or the installed `elpv_dataset` package.
fn elpv_dir() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("DRA_ELPV_DIR") {
        return Some(dir.into());
    }
    let out = std::process::Command::new("python3")
        .args([
            "-c",
            "import elpv_dataset, os; print(os.path.dirname(elpv_dataset.__file__))",
        ])
        .output()
        .ok()?;
    let dir = PathBuf::from(String::from_utf8(out.stdout).ok()?.trim()).join("data");
    dir.join("labels.csv").is_file().then_some(dir)
}

#[test]
fn real_elpv_counts() {
    let Some(input) = elpv_dir() else {
        common::skip(
            "elpv-dataset is not installed (pip install elpv-dataset==1.0.0.post1) and DRA_ELPV_DIR is unset",
        );
        return;
    };
    let (_out, s) = convert(Converter::Elpv, &input);
    assert_eq!(
        counts(&s),
        (1131, 377, BTreeMap::from([("mono", 313), ("poly", 402)]), 0)
    );
}

#[test]
fn a_data_set_wrapped_in_folders_is_found_and_said() {
    let tmp = tempfile::tempdir().unwrap();
    // brain MRI inside two folders of a re-upload, with a licence file beside the inner one
    let inner = tmp.path().join("archive/brain_tumor_dataset");
    for i in 0..4 {
        common::write_png(&inner.join(format!("no/n{i}.png")), 3, 3, i);
    }
    common::write_png(&inner.join("yes/y0.png"), 3, 3, 9);
    std::fs::write(tmp.path().join("archive/LICENSE.txt"), "cc").unwrap();
    let (_out, s) = convert(Converter::BrainMri, tmp.path());
    assert_eq!(counts(&s), (3, 1, BTreeMap::from([("defect", 1)]), 0));
    assert_eq!(s.layout, "the data set inside archive/brain_tumor_dataset/");
    // two candidate folders: nothing is guessed, the error names the folder given
    std::fs::create_dir_all(tmp.path().join("other")).unwrap();
    let out = tempfile::tempdir().unwrap();
    let err = Converter::BrainMri
        .run(tmp.path(), out.path(), 42)
        .unwrap_err()
        .to_string();
    assert!(err.contains("no") && err.contains("expects"), "{err}");
    assert!(std::fs::read_dir(out.path()).unwrap().next().is_none());
}
