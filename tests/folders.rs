//! Plain folders as a data set: `dra convert folders` and `dra train --normal --anomalies`
//! on small generated folders, their split, masks and refusals, and the same scores both
//! ways.

mod common;

use std::path::{Path, PathBuf};

use common::{assert_one_line_error, dra, s, write_mask, write_png};
use dra::data::folders::Folders;
use dra::data::layout::{DatasetLayout, list_images};
use rand::seq::SliceRandom;

/// `<root>/own/good` (six images, three more in `cam 2/`, one with a non-ASCII name),
/// `<root>/own/defects/{scratch,dent}` (three and two) and `<root>/own/masks` (one mask of
/// each type, named both ways).
fn own_folders(root: &Path) -> Folders {
    let own = root.join("own");
    for i in 0..6 {
        write_png(&own.join(format!("good/n{i}.png")), 16, 12, i);
    }
    for (i, name) in ["m0.png", "m1.png", "bild ü.png"].iter().enumerate() {
        write_png(&own.join("good/cam 2").join(name), 16, 12, 10 + i as u32);
    }
    for i in 0..3 {
        write_png(
            &own.join(format!("defects/scratch/s{i}.png")),
            16,
            12,
            20 + i,
        );
    }
    for i in 0..2 {
        write_png(&own.join(format!("defects/dent/d{i}.png")), 16, 12, 30 + i);
    }
    write_mask(&own.join("masks/s0_mask.png"), 16, 12, Some((2, 2, 4, 4)));
    write_mask(&own.join("masks/d1.png"), 16, 12, Some((8, 4, 3, 5)));
    Folders {
        normal: own.join("good"),
        anomalies: vec![own.join("defects")],
        masks: Some(own.join("masks")),
        seed: 42,
    }
}

/// The `dra convert folders` command line for `f` into `out`.
fn convert_args(f: &Folders, out: &Path) -> Vec<String> {
    let mut args = vec!["convert".into(), "folders".into(), "--normal".into()];
    args.push(s(&f.normal).into());
    args.push("--anomalies".into());
    args.extend(f.anomalies.iter().map(|a| s(a).to_string()));
    if let Some(m) = &f.masks {
        args.extend(["--masks".into(), s(m).into()]);
    }
    args.extend([
        "--name".into(),
        "parts".into(),
        "--output".into(),
        s(out).into(),
    ]);
    args
}

fn run(args: &[String]) -> std::process::Output {
    dra(&args.iter().map(String::as_str).collect::<Vec<_>>())
}

fn names(paths: &[PathBuf]) -> Vec<String> {
    paths
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect()
}

#[test]
fn convert_splits_the_normals_75_25_and_writes_each_type_and_its_masks() {
    let tmp = tempfile::tempdir().unwrap();
    let f = own_folders(tmp.path());
    let out = tmp.path().join("data");
    let done = run(&convert_args(&f, &out));
    let printed = common::succeeded(&done);
    assert!(printed.contains("read 9 normal images from"), "{printed}");
    assert!(printed.contains("read 2 masks from"), "{printed}");
    for line in [
        ["train/good", "6"],
        ["test/good", "3"],
        ["test/scratch", "3"],
        ["masks", "2"],
    ] {
        assert!(
            printed.lines().any(|l| l.split_whitespace().eq(line)),
            "{line:?} missing from:\n{printed}"
        );
    }
    let layout = DatasetLayout::open(&out, "parts").unwrap();
    // the seeded 75/25 split, by hand: the layout names sorted, shuffled, ⌈9/4⌉ = 3 to test
    let mut all: Vec<String> = ["n0", "n1", "n2", "n3", "n4", "n5"]
        .iter()
        .map(|n| format!("{n}.png"))
        .chain(["cam 2_m0.png", "cam 2_m1.png", "cam 2_bild ü.png"].map(String::from))
        .collect();
    all.sort();
    all.shuffle(&mut dra::rng::seeded(42));
    let mut test = all[..3].to_vec();
    let mut train = all[3..].to_vec();
    test.sort();
    train.sort();
    assert_eq!(names(&layout.test_good), test);
    assert_eq!(names(&layout.train_good), train);
    assert_eq!(
        names(&layout.anomalies["scratch"]),
        ["s0.png", "s1.png", "s2.png"]
    );
    assert_eq!(names(&layout.anomalies["dent"]), ["d0.png", "d1.png"]);
    // masks under ground_truth/<type>/<stem>_mask.png, the same pixels
    for (kind, stem, source) in [("scratch", "s0", "s0_mask.png"), ("dent", "d1", "d1.png")] {
        let written = out.join(format!("parts/ground_truth/{kind}/{stem}_mask.png"));
        let want = image::open(f.masks.as_ref().unwrap().join(source))
            .unwrap()
            .to_luma8();
        assert_eq!(
            image::open(&written).unwrap().to_luma8(),
            want,
            "{kind}/{stem}"
        );
    }
    assert_eq!(
        list_images(&out.join("parts/ground_truth/dent"))
            .unwrap()
            .len(),
        1
    );

    // read in place, the same images under the same names in the same order
    let direct = f.layout().unwrap();
    let named = |paths: &[PathBuf], base: &Path| -> Vec<String> {
        paths
            .iter()
            .map(|p| {
                p.strip_prefix(base)
                    .unwrap()
                    .to_string_lossy()
                    .replace('/', "_")
            })
            .collect()
    };
    assert_eq!(named(&direct.train_good, &f.normal), train);
    assert_eq!(named(&direct.test_good, &f.normal), test);
    assert_eq!(
        named(
            &direct.anomalies["scratch"],
            &f.anomalies[0].join("scratch")
        ),
        names(&layout.anomalies["scratch"])
    );
    // each type its own folder, or one folder of type folders: the same data set
    let apart = Folders {
        anomalies: vec![f.anomalies[0].join("scratch"), f.anomalies[0].join("dent")],
        ..f.clone()
    };
    let apart = apart.layout().unwrap();
    assert_eq!(apart.anomalies, direct.anomalies);
    assert_eq!(apart.test_good, direct.test_good);
}

#[test]
fn symlinked_files_are_read_and_symlink_loops_are_not_followed() {
    let tmp = tempfile::tempdir().unwrap();
    let f = own_folders(tmp.path());
    write_png(&tmp.path().join("elsewhere/x.png"), 16, 12, 99);
    std::os::unix::fs::symlink(tmp.path().join("elsewhere/x.png"), f.normal.join("x.png")).unwrap();
    std::os::unix::fs::symlink(&f.normal, f.normal.join("cam 2/back")).unwrap();
    let layout = f.layout().unwrap();
    assert_eq!(layout.train_good.len() + layout.test_good.len(), 10);
}

/// Every bad input is refused with one line naming the file, before anything is written.
#[test]
fn bad_folders_are_refused_by_name_and_nothing_is_written() {
    type Break = fn(&Folders, &Path);
    let cases: [(&str, Break, &[&str]); 6] = [
        (
            "an anomaly also among the normals",
            |f, _| {
                std::fs::copy(
                    f.normal.join("n3.png"),
                    f.anomalies[0].join("dent/copy.png"),
                )
                .unwrap();
            },
            &["copy.png", "n3.png", "also among the normal images"],
        ),
        (
            "a mask without an image",
            |f, _| write_mask(&f.masks.as_ref().unwrap().join("q7_mask.png"), 16, 12, None),
            &["q7_mask.png", "mask without an image"],
        ),
        (
            "a mask of another size",
            |f, _| write_mask(&f.masks.as_ref().unwrap().join("s1.png"), 8, 8, None),
            &["s1.png", "8×8", "16×12"],
        ),
        (
            "an empty anomalies folder",
            |f, _| std::fs::create_dir_all(f.anomalies[0].join("stain")).unwrap(),
            &["stain", "no anomaly images"],
        ),
        (
            "an empty normal folder",
            |f, _| {
                std::fs::remove_dir_all(&f.normal).unwrap();
                std::fs::create_dir_all(&f.normal).unwrap();
            },
            &["good", "no normal images"],
        ),
        (
            "a folder that is not there",
            |f, _| std::fs::remove_dir_all(f.masks.as_ref().unwrap()).unwrap(),
            &["masks", "does not exist"],
        ),
    ];
    for (what, break_it, needles) in cases {
        let tmp = tempfile::tempdir().unwrap();
        let f = own_folders(tmp.path());
        break_it(&f, tmp.path());
        let out = tmp.path().join("data");
        eprintln!("case: {what}");
        assert_one_line_error(&run(&convert_args(&f, &out)), needles);
        assert!(
            !out.exists() || out.read_dir().unwrap().next().is_none(),
            "{what}: something was written"
        );
        // training from the folders refuses them the same way, before the run directory
        let run_dir = tmp.path().join("run");
        let mut train: Vec<String> = ["train", "--out", s(&run_dir), "--normal", s(&f.normal)]
            .map(String::from)
            .to_vec();
        train.push("--anomalies".into());
        train.push(s(&f.anomalies[0]).into());
        train.extend(["--masks".into(), s(f.masks.as_ref().unwrap()).into()]);
        assert_one_line_error(&run(&train), needles);
        assert!(!run_dir.exists(), "{what}: the run directory was created");
    }
}

#[test]
fn data_given_twice_or_not_at_all_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let f = own_folders(tmp.path());
    let out = s(&tmp.path().join("run")).to_string();
    assert_one_line_error(
        &dra(&["train", "--out", &out, "--anomalies", s(&f.anomalies[0])]),
        &["--normal"],
    );
    assert_one_line_error(
        &dra(&[
            "train",
            "--out",
            &out,
            "--data-root",
            "/d",
            "--class",
            "c",
            "--normal",
            s(&f.normal),
        ]),
        &["not both"],
    );
    assert_one_line_error(
        &dra(&["train", "--out", &out]),
        &["--data-root", "--normal"],
    );
    assert_one_line_error(
        &dra(&[
            "convert",
            "folders",
            "--output",
            &out,
            "--normal",
            s(&f.normal),
        ]),
        &["--anomalies"],
    );
}

/// The bundled ELPV cells as a user keeps them: `parts/good` (a third in `line 2/`),
/// `parts/set9/mono/` and `parts/set8/poly/` (their paths in the other order than their
/// types' names), and a mask for the first three anomalies of each type.
fn elpv_folders(root: &Path) -> Folders {
    let data = common::bundled_elpv();
    let elpv = data.path().join("elpv");
    let parts = root.join("parts");
    let normals = [elpv.join("train/good"), elpv.join("test/good")]
        .iter()
        .flat_map(|d| list_images(d).unwrap())
        .collect::<Vec<_>>();
    for (i, p) in normals.iter().enumerate() {
        let sub = if i % 3 == 0 { "good/line 2" } else { "good" };
        let to = parts.join(sub).join(p.file_name().unwrap());
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::copy(p, to).unwrap();
    }
    let layout = DatasetLayout::open(data.path(), "elpv").unwrap();
    let mut anomalies = Vec::new();
    for (k, (kind, files)) in layout.anomalies.iter().enumerate() {
        anomalies.push(parts.join(format!("set{}", 9 - k)).join(kind));
        for (i, p) in files.iter().enumerate() {
            let to = anomalies[k].join(p.file_name().unwrap());
            std::fs::create_dir_all(to.parent().unwrap()).unwrap();
            std::fs::copy(p, &to).unwrap();
            if i < 3 {
                let (w, h) = image::image_dimensions(p).unwrap();
                let stem = p.file_stem().unwrap().to_string_lossy();
                let rect = Some((w / 4, h / 4, w / 3, h / 5 + i as u32));
                write_mask(&parts.join(format!("masks/{stem}_mask.png")), w, h, rect);
            }
        }
    }
    Folders {
        normal: parts.join("good"),
        anomalies,
        masks: Some(parts.join("masks")),
        seed: 42,
    }
}

/// `scores.csv` without its path column.
fn scores_without_paths(run: &Path) -> Vec<String> {
    std::fs::read_to_string(run.join("scores.csv"))
        .unwrap()
        .lines()
        .map(|l| l.split_once(',').unwrap().1.to_string())
        .collect()
}

const TINY: [&str; 8] = [
    "--img-size",
    "64",
    "--batch-size",
    "12",
    "--epochs",
    "1",
    "--steps-per-epoch",
    "2",
];

#[test]
fn training_from_folders_scores_as_converting_first() {
    let tmp = tempfile::tempdir().unwrap();
    let f = elpv_folders(tmp.path());
    let data = tmp.path().join("data");
    let converted = run(&convert_args(&f, &data));
    common::succeeded(&converted);

    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    let mut first = vec![
        "train",
        "--out",
        s(&a),
        "--data-root",
        s(&data),
        "--class",
        "parts",
    ];
    first.extend(TINY);
    let done = dra(&first);
    common::succeeded(&done);
    let mut direct = vec![
        "train",
        "--out",
        s(&b),
        "--normal",
        s(&f.normal),
        "--anomalies",
    ];
    direct.extend(f.anomalies.iter().map(|a| s(a)));
    direct.extend(["--masks", s(f.masks.as_ref().unwrap())]);
    direct.extend(TINY);
    let done = dra(&direct);
    common::succeeded(&done);

    assert_eq!(scores_without_paths(&a), scores_without_paths(&b));
    let metrics = |run: &Path| -> serde_json::Value {
        serde_json::from_str(&std::fs::read_to_string(run.join("metrics.json")).unwrap()).unwrap()
    };
    assert_eq!(metrics(&a), metrics(&b));
    assert!(
        metrics(&b)["pixel"].is_object(),
        "the masks give pixel metrics"
    );

    // the split is in config.json, named after the folder that holds the normal one
    let record = dra::run::files::read_record(&b).unwrap();
    assert_eq!(record.settings.class, "parts");
    let layout = DatasetLayout::open(&data, "parts").unwrap();
    let recorded: Vec<String> = (record.derived.test_normals.iter())
        .map(|p| {
            p.strip_prefix(&f.normal)
                .unwrap()
                .to_string_lossy()
                .replace('/', "_")
        })
        .collect();
    assert_eq!(recorded, names(&layout.test_good));

    // a re-evaluation reads the same split; a changed folder is refused, not re-split
    let eval = dra(&["eval", "--model", s(&b)]);
    common::succeeded(&eval);
    assert_eq!(scores_without_paths(&a), scores_without_paths(&b));
    write_png(&f.normal.join("new.png"), 32, 32, 7);
    assert_one_line_error(&dra(&["eval", "--model", s(&b)]), &["good", "changed"]);
}

#[test]
fn split_reads_plain_folders() {
    let tmp = tempfile::tempdir().unwrap();
    let f = own_folders(tmp.path());
    let out = dra(&[
        "split",
        "--normal",
        s(&f.normal),
        "--anomalies",
        s(&f.anomalies[0]),
        "--n-anomaly",
        "2",
    ]);
    let text = common::succeeded(&out);
    assert!(
        text.contains("training: 6 normal, 2 seen anomalies"),
        "{text}"
    );
    assert!(text.contains("test: 6 images"), "{text}");
}
