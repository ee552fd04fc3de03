//! The folders of one class: images sorted per class, every image extension in any case,
//! and errors that name the folder at fault.

mod common;

use dra::data::layout::DatasetLayout;

#[test]
fn layout_lists_sorted_images_per_class() {
    let tmp = tempfile::tempdir().unwrap();
    let layout = common::tile_layout(tmp.path());
    assert_eq!(layout.train_good.len(), 20);
    assert_eq!(layout.test_good.len(), 6);
    assert_eq!(
        layout.anomalies.keys().collect::<Vec<_>>(),
        ["crack", "hole", "stain"]
    );
    assert_eq!(layout.n_anomalies(), 23);
    let mut sorted = layout.train_good.clone();
    sorted.sort();
    assert_eq!(sorted, layout.train_good);
}

#[test]
fn layout_reads_every_extension_in_any_case_and_ignores_others() {
    let tmp = tempfile::tempdir().unwrap();
    let good = tmp.path().join("c/train/good");
    for name in [
        "a.PNG",
        "b.jpg",
        "c.JPEG",
        "d.bmp",
        "e.Tif",
        "f.tiff",
        "notes.txt",
        "g.npy",
    ] {
        common::write_png(&good.join("x.png"), 2, 2, 0);
        std::fs::rename(good.join("x.png"), good.join(name)).unwrap();
    }
    common::write_png(&tmp.path().join("c/test/good/t.png"), 2, 2, 0);
    let layout = DatasetLayout::open(tmp.path(), "c").unwrap();
    let names: Vec<_> = layout
        .train_good
        .iter()
        .map(|p| p.file_name().unwrap().to_str().unwrap())
        .collect();
    assert_eq!(
        names,
        ["a.PNG", "b.jpg", "c.JPEG", "d.bmp", "e.Tif", "f.tiff"]
    );
}

#[test]
fn layout_errors_name_the_folder() {
    let tmp = tempfile::tempdir().unwrap();
    let missing = tmp.path().join("nowhere");
    let err = DatasetLayout::open(&missing, "x").unwrap_err().to_string();
    assert!(
        err.contains("nowhere") && err.contains("does not exist"),
        "{err}"
    );

    common::make_layout(tmp.path(), "a", 2, 1, &[]);
    let err = DatasetLayout::open(tmp.path(), "b")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("class folder not found") && err.contains("classes under the data root: a"),
        "{err}"
    );

    std::fs::create_dir_all(tmp.path().join("empty/train/good")).unwrap();
    let err = DatasetLayout::open(tmp.path(), "empty")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("empty/train/good") && err.contains("no normal training images"),
        "{err}"
    );
}
