//! Experiment grids: cells, aggregation over seeds, tables, the kNN baseline and resuming.

mod common;

use dra::grid::{CellResult, Grid, aggregate, csv, markdown, run_grid};
use dra::types::{Auc, PixelAuc};

fn grid(text: &str) -> Grid {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("g.toml");
    std::fs::write(&path, text).unwrap();
    Grid::read(&path).unwrap()
}

/// A grid of tiny runs (32², batch 6, one scale) on the bundled ELPV subset, `epochs` ×
/// `steps`: `top` holds the grid's own keys, `rest` the further base keys and the grid.
fn tiny_grid(data: &tempfile::TempDir, top: &str, (epochs, steps): (u32, u32), rest: &str) -> Grid {
    let root = data.path().to_str().unwrap();
    grid(&format!(
        "{top}[base]\ndata_root = {root:?}\nclass = \"elpv\"\nimg_size = 32\nbatch_size = 6\n\
         epochs = {epochs}\nsteps_per_epoch = {steps}\nn_scales = 1\n{rest}"
    ))
}

#[test]
fn cells_are_every_combination_over_the_base() {
    let g = grid(
        "name = \"t\"\n[base]\ndata_root = \"d\"\nclass = \"c\"\nimg_size = 64\n[grid]\nn_anomaly = [10, 1]\ncriterion = [\"deviation\", \"dweighted\"]\nseed = [0, 1, 2]\n",
    );
    let cells = g.cells().unwrap();
    assert_eq!(cells.len(), 12);
    // keys vary in name order: criterion, n_anomaly, seed
    assert_eq!(cells[0].id, "criterion-deviation_n_anomaly-10_seed-0");
    assert_eq!(cells[11].id, "criterion-dweighted_n_anomaly-1_seed-2");
    assert!(
        cells
            .iter()
            .all(|c| c.config.img_size == 64 && c.config.class == "c")
    );
    assert!(cells[0].config.data_root.ends_with("d"));
    let bad = grid("name = \"t\"\n[grid]\nepochz = [1]\n");
    assert!(bad.cells().unwrap_err().to_string().contains("epochz"));
}

#[test]
fn cases_cross_the_grid_and_name_the_rows() {
    let g = grid(
        "name = \"t\"\n[base]\ndata_root = \"d\"\nimg_size = 64\n[[case]]\nname = \"sdd\"\nclass = \"sdd\"\ntest_threshold = 10\n[[case]]\nname = \"mt-crack\"\nclass = \"magnetic-tile\"\nknown_class = \"Crack\"\n[grid]\nseed = [0, 1]\n",
    );
    let cells = g.cells().unwrap();
    let ids: Vec<&str> = cells.iter().map(|c| c.id.as_str()).collect();
    assert_eq!(
        ids,
        [
            "case-sdd_seed-0",
            "case-sdd_seed-1",
            "case-mt-crack_seed-0",
            "case-mt-crack_seed-1"
        ]
    );
    assert_eq!(cells[0].values[0], ("case".to_string(), "sdd".to_string()));
    // the method is a column, not part of the folder name, where the grid does not vary it
    assert_eq!(
        cells[0].values[1],
        ("method".to_string(), "dra".to_string())
    );
    assert_eq!(
        (
            cells[1].config.class.as_str(),
            cells[1].config.test_threshold
        ),
        ("sdd", Some(10))
    );
    assert_eq!(cells[2].config.known_class.as_deref(), Some("Crack"));
    assert_eq!((cells[3].config.seed, cells[3].config.img_size), (1, 64));
    let unnamed = grid("name = \"t\"\n[[case]]\nclass = \"sdd\"\n");
    assert!(unnamed.cells().unwrap_err().to_string().contains("name"));
}

#[test]
fn a_case_reads_plain_folders_relative_to_the_grid_file() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("g.toml");
    std::fs::write(
        &path,
        "name = \"t\"\n[[case]]\nname = \"parts\"\nnormal = \"parts/good\"\n\
         anomalies = [\"parts/scratch\", \"/abs/dent\"]\nmasks = \"parts/masks\"\n\
         [[case]]\nname = \"sdd\"\ndata_root = \"data\"\nclass = \"sdd\"\n",
    )
    .unwrap();
    let cells = Grid::read(&path).unwrap().cells().unwrap();
    let c = &cells[0].config;
    assert_eq!(
        c.normal.as_deref(),
        Some(tmp.path().join("parts/good").as_path())
    );
    assert_eq!(
        c.anomalies,
        [
            tmp.path().join("parts/scratch"),
            std::path::PathBuf::from("/abs/dent")
        ]
    );
    assert_eq!(
        c.masks.as_deref(),
        Some(tmp.path().join("parts/masks").as_path())
    );
    // named after the folder holding the normal one; the other case keeps its data root
    assert_eq!(c.class, "parts");
    assert_eq!(cells[1].config.data_root, tmp.path().join("data"));
    assert_eq!(cells[1].config.normal, None);
}

fn result(values: &[(&str, &str)], roc: f64, pr: f64, knn: Option<f64>) -> CellResult {
    // each head a fixed step below the whole score
    let heads = [("residual", 0.1), ("seen", 0.2)]
        .iter()
        .map(|(h, d)| (h.to_string(), roc - d))
        .collect();
    CellResult {
        values: values
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        dra: Auc {
            auc_roc: roc,
            auc_pr: pr,
        },
        knn: knn.map(|k| Auc {
            auc_roc: k,
            auc_pr: k,
        }),
        patch_knn: knn.map(|k| Auc {
            auc_roc: k + 0.05,
            auc_pr: k + 0.05,
        }),
        heads,
        // the maps a fixed step below the image scores; patch kNN's only beside a kNN
        pixel: Some(PixelAuc {
            auc_roc: roc - 0.05,
            aupro: pr - 0.3,
        }),
        patch_knn_pixel: knn.map(|k| PixelAuc {
            auc_roc: k + 0.2,
            aupro: k - 0.1,
        }),
        seconds: 10.0,
        cpu: Some("CPU A".into()),
    }
}

#[test]
fn a_grid_over_methods_prints_them_side_by_side() {
    let g = grid(
        "name = \"t\"\n[base]\ndata_root = \"d\"\nclass = \"c\"\nepochs = 3\n[grid]\nmethod = [\"dra\", \"devnet\"]\nseed = [0]\n",
    );
    let cells = g.cells().unwrap();
    assert_eq!(cells[1].id, "method-devnet_seed-0");
    // the base's explicit epochs win over DevNet's profile, its other settings apply
    assert_eq!(cells[1].config.epochs, 3);
    assert_eq!(cells[1].config.heads.to_string(), "seen");
    assert_eq!(
        cells[0].config.heads.to_string(),
        "seen,pseudo,residual,normal"
    );
    let results = [
        result(
            &[("case", "sdd"), ("method", "dra"), ("seed", "0")],
            0.90,
            0.8,
            Some(0.7),
        ),
        result(
            &[("case", "sdd"), ("method", "dra"), ("seed", "1")],
            0.94,
            0.8,
            Some(0.7),
        ),
        result(
            &[("case", "sdd"), ("method", "devnet"), ("seed", "0")],
            0.80,
            0.7,
            Some(0.7),
        ),
        result(
            &[("case", "elpv"), ("method", "devnet"), ("seed", "0")],
            0.60,
            0.5,
            None,
        ),
    ];
    let md = markdown("T", &aggregate(&results));
    assert!(
        md.contains("| case | dra | devnet | kNN | patch kNN |"),
        "{md}"
    );
    assert!(
        md.contains("| sdd | 0.920±0.020 | 0.800±0.000 | 0.700±0.000 | 0.750±0.000 |"),
        "{md}"
    );
    assert!(md.contains("| elpv | – | 0.600±0.000 | – | – |"), "{md}");
    let one = markdown("T", &aggregate(&results[..2]));
    assert!(!one.contains("by method"), "{one}");
}

#[test]
fn seeds_aggregate_to_mean_and_population_std() {
    let results = [
        result(&[("n_anomaly", "10"), ("seed", "0")], 0.90, 0.80, Some(0.7)),
        result(&[("n_anomaly", "10"), ("seed", "1")], 0.94, 0.84, Some(0.7)),
        result(&[("n_anomaly", "1"), ("seed", "0")], 0.60, 0.50, None),
    ];
    let rows = aggregate(&results);
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0].seeds, 2);
    assert_eq!(rows[0].cpus, ["CPU A"]);
    assert!((rows[0].auc_roc.mean - 0.92).abs() < 1e-12);
    assert!((rows[0].auc_roc.std - 0.02).abs() < 1e-12); // √(((0.02)² + (0.02)²) / 2)
    assert!((rows[0].knn_auc_roc.unwrap().mean - 0.7).abs() < 1e-12);
    assert!(rows[1].knn_auc_roc.is_none());
    let md = markdown("T", &rows);
    assert!(md.contains("| n_anomaly | seeds | AUC-ROC |"), "{md}");
    assert!(
        md.contains("| 10 | 2 | 0.920±0.020 | 0.820±0.020 | 0.700±0.000 |"),
        "{md}"
    );
    assert!(
        md.contains("| 1 | 1 | 0.600±0.000 | 0.500±0.000 | – | – |"),
        "{md}"
    );
    assert!((rows[0].heads["seen"].mean - 0.72).abs() < 1e-12);
    assert!((rows[0].heads["seen"].std - 0.02).abs() < 1e-12);
    assert!(
        md.contains(
            "| n_anomaly | pixel AUROC | AUPRO | patch kNN pixel AUROC | patch kNN AUPRO |"
        ),
        "{md}"
    );
    assert!(
        md.contains("| 10 | 0.870±0.020 | 0.520±0.020 | 0.900±0.000 | 0.600±0.000 |"),
        "{md}"
    );
    assert!(
        md.contains("| 1 | 0.550±0.000 | 0.200±0.000 | – | – |"),
        "{md}"
    );
    assert!(md.contains("| n_anomaly | residual | seen |"), "{md}");
    assert!(md.contains("| 10 | 0.820±0.020 | 0.720±0.020 |"), "{md}");
    let table = csv(&rows);
    assert!(
        table.starts_with("n_anomaly,seeds,auc_roc,auc_roc_std"),
        "{table}"
    );
    let header = table.lines().next().unwrap();
    assert!(
        header.ends_with(
            ",seconds,residual_auc_roc,residual_auc_roc_std,seen_auc_roc,seen_auc_roc_std"
        ),
        "{header}"
    );
    let line = table.lines().nth(2).unwrap();
    assert_eq!(line.split(',').count(), header.split(',').count(), "{line}");
    // the CPUs that timed the cells, each once, under the table
    assert!(
        md.contains("\ns/run: wall time of a run, on CPU A.\n"),
        "{md}"
    );
    let mut mixed = results.clone();
    mixed[1].cpu = Some("CPU B".into());
    mixed[2].cpu = None;
    let rows = aggregate(&mixed);
    assert_eq!(rows[0].cpus, ["CPU A", "CPU B"]);
    assert!(rows[1].cpus.is_empty());
    let md = markdown("T", &rows);
    assert!(
        md.contains("s/run: wall time of a run, on CPU A; CPU B.\n"),
        "{md}"
    );
}

#[test]
fn a_grid_runs_with_the_knn_baseline_and_resumes() {
    let data = common::bundled_elpv();
    let g = tiny_grid(
        &data,
        "name = \"tiny\"\n",
        (1, 1),
        "[grid]\nseed = [0, 1]\n",
    );
    let out = tempfile::tempdir().unwrap();
    let mut resumed = Vec::new();
    let first = run_grid(&g, out.path(), &mut (), |_, _, _, r| resumed.push(r)).unwrap();
    assert_eq!(resumed, [false, false]);
    assert!(first.iter().all(|r| r.knn.is_some()));
    // the baselines are those of the cell's split, computed afresh here, and another seed's
    // split gives others
    let knn = first[0].knn.unwrap();
    let cells = g.cells().unwrap();
    let fresh = |c: &dra::config::TrainConfig| {
        dra::baselines::knn_baseline(&mut dra::run::Plan::new(c).unwrap()).unwrap()
    };
    // both baselines as a fresh plan computes them, the patch kNN's without training (the
    // cell takes it from its run's memory)
    let own = fresh(&cells[0].config);
    assert_eq!((own.pooled, own.patch), (knn, first[0].patch_knn.unwrap()));
    assert_ne!(first[1].knn.unwrap(), knn);
    // each head's AUC-ROC is the one the cell's metrics.json reports
    let metrics: dra::types::Metrics = serde_json::from_str(
        &std::fs::read_to_string(out.path().join("seed-0/metrics.json")).unwrap(),
    )
    .unwrap();
    let names: Vec<&str> = first[0].heads.keys().map(String::as_str).collect();
    assert_eq!(
        names,
        [
            "memory",
            "normal",
            "pseudo",
            "residual",
            "seen",
            "standardised"
        ]
    );
    for (h, auc) in &first[0].heads {
        let expected = match h.as_str() {
            "standardised" => metrics.standardised.unwrap().auc_roc,
            _ => metrics.heads[h].auc_roc,
        };
        // serde_json reads floats back to within an ulp, not always to the bit
        assert!((auc - expected).abs() < 1e-12, "{h}");
    }
    // each cell names the CPU that timed it
    assert_eq!(first[0].cpu, Some(dra::device::cpu()));
    // a result.json written before cells kept their heads gets them from metrics.json; one
    // written before they named their CPU reads back without one
    let done = out.path().join("seed-0/result.json");
    let mut old: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&done).unwrap()).unwrap();
    old.as_object_mut().unwrap().remove("heads");
    old.as_object_mut().unwrap().remove("cpu");
    std::fs::write(&done, old.to_string()).unwrap();
    // an interrupted cell (no result.json) is run again, a finished one is read back
    std::fs::remove_file(out.path().join("seed-1/result.json")).unwrap();
    // the report of the cells finished so far runs nothing and holds only seed 0
    let so_far = dra::grid::finished_results(&g, out.path()).unwrap();
    assert_eq!(so_far.len(), 1);
    assert_eq!((so_far[0].dra, &so_far[0].cpu), (first[0].dra, &None));
    assert!(!out.path().join("seed-1/result.json").exists());
    resumed.clear();
    let second = run_grid(&g, out.path(), &mut (), |_, _, _, r| resumed.push(r)).unwrap();
    assert_eq!(resumed, [true, false]);
    assert_eq!(first[0].dra, second[0].dra);
    for (h, auc) in &first[0].heads {
        assert!((auc - second[0].heads[h]).abs() < 1e-12, "{h}");
    }
    assert_eq!(first[1].dra, second[1].dra); // same seed, same scores
    // re-evaluated with other part weights, a cell reports its new evaluation
    let weights = "memory=0".parse().unwrap();
    let cell = out.path().join("seed-0");
    let metrics = dra::run::evaluate_run(&cell, None, Some(weights), &mut ()).unwrap();
    let again = dra::grid::finished_results(&g, out.path()).unwrap();
    assert_eq!(again[0].dra.auc_roc, metrics.auc_roc);
    assert_ne!(again[0].dra.auc_roc, first[0].dra.auc_roc);
    assert_eq!(again[0].knn, first[0].knn);
}

#[test]
fn an_interrupted_cell_continues_from_its_checkpoint() {
    let data = common::bundled_elpv();
    let g = tiny_grid(
        &data,
        "name = \"tiny\"\nknn = false\n",
        (2, 1),
        "[grid]\nseed = [3]\n",
    );
    let whole = tempfile::tempdir().unwrap();
    let straight = run_grid(&g, whole.path(), &mut (), |_, _, _, _| {}).unwrap();
    // the same cell stopped after its first epoch, as a killed `dra grid` leaves it
    let cut = tempfile::tempdir().unwrap();
    let cell = &g.cells().unwrap()[0];
    let dir = cut.path().join(&cell.id);
    std::fs::create_dir_all(&dir).unwrap();
    let options = dra::run::RunOptions {
        resume: false,
        stop_after: Some(1),
    };
    dra::run::train_run(
        &mut dra::run::Plan::new(&cell.config).unwrap(),
        &dir,
        options,
        &mut (),
    )
    .unwrap();
    let log_after_one = std::fs::read_to_string(dir.join("train_log.csv")).unwrap();
    assert_eq!(log_after_one.lines().count(), 2, "{log_after_one}");
    let resumed = run_grid(&g, cut.path(), &mut (), |_, _, _, _| {}).unwrap();
    // it went on from epoch 2 (the first epoch's log line is kept) and ended where an
    // uninterrupted run ends, to the byte
    let read =
        |root: &std::path::Path, f: &str| std::fs::read(root.join(&cell.id).join(f)).unwrap();
    assert_eq!(
        read(cut.path(), "train_log.csv"),
        read(whole.path(), "train_log.csv")
    );
    assert_eq!(
        read(cut.path(), "scores.csv"),
        read(whole.path(), "scores.csv")
    );
    assert_eq!(straight[0].dra, resumed[0].dra);
}

#[test]
fn cells_on_one_split_share_the_baselines_but_not_the_training() {
    let data = common::bundled_elpv();
    let g = tiny_grid(
        &data,
        "name = \"lr\"\n",
        (1, 2),
        "seed = 4\n[grid]\nlr = [1e-3, 1e-1]\n",
    );
    let out = tempfile::tempdir().unwrap();
    let r = run_grid(&g, out.path(), &mut (), |_, _, _, _| {}).unwrap();
    assert_ne!(
        r[0].dra, r[1].dra,
        "the learning rate changes the trained model"
    );
    let cells = g.cells().unwrap();
    for (cell, result) in cells.iter().zip(&r) {
        let fresh =
            dra::baselines::knn_baseline(&mut dra::run::Plan::new(&cell.config).unwrap()).unwrap();
        assert_eq!(result.knn, Some(fresh.pooled));
        assert_eq!(result.patch_knn, Some(fresh.patch));
    }
}

#[test]
fn a_resumed_grid_takes_a_splits_baselines_from_a_cell_finished_before() {
    let data = common::bundled_elpv();
    let g = tiny_grid(
        &data,
        "name = \"lr\"\n",
        (1, 1),
        "seed = 4\n[grid]\nlr = [1e-3, 1e-1]\n",
    );
    let out = tempfile::tempdir().unwrap();
    let first = run_grid(&g, out.path(), &mut (), |_, _, _, _| {}).unwrap();
    assert_eq!(first[0].knn, first[1].knn);
    // the first cell's baselines marked, the second cell run again by a new invocation:
    // it reports the marked values, so it read them rather than computing them afresh
    let cells = g.cells().unwrap();
    let done = out.path().join(&cells[0].id).join("result.json");
    let mut marked: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&done).unwrap()).unwrap();
    marked["knn"]["auc_roc"] = 0.125.into();
    marked["patch_knn"]["auc_pr"] = 0.25.into();
    std::fs::write(&done, marked.to_string()).unwrap();
    std::fs::remove_file(out.path().join(&cells[1].id).join("result.json")).unwrap();
    let mut resumed = Vec::new();
    let second = run_grid(&g, out.path(), &mut (), |_, _, _, r| resumed.push(r)).unwrap();
    assert_eq!(resumed, [true, false]);
    assert_eq!(second[1].knn.unwrap().auc_roc, 0.125);
    assert_eq!(second[1].patch_knn.unwrap().auc_pr, 0.25);
    assert_eq!(second[1].knn.unwrap().auc_pr, first[1].knn.unwrap().auc_pr);
    assert_eq!(second[1].dra, first[1].dra);
}

#[test]
fn a_cell_on_another_input_normalisation_gets_its_own_patch_knn() {
    // patch kNN is a run's memory term, which reads the run's normalised input: a cell with
    // ImageNet's normalisation does not take the one before it's, on the same split; the
    // pooled kNN reads the backbone's own normalisation and is the same for both
    let data = common::bundled_elpv();
    let g = tiny_grid(
        &data,
        "name = \"norm\"\n",
        (1, 1),
        "seed = 0\n[[case]]\nname = \"own\"\n[[case]]\nname = \"imagenet\"\nnormalization = \"imagenet\"\n",
    );
    let out = tempfile::tempdir().unwrap();
    let rows = run_grid(&g, out.path(), &mut (), |_, _, _, _| {}).unwrap();
    let memory: Vec<f64> = rows.iter().map(|r| r.heads["memory"]).collect();
    assert_ne!(
        memory[0], memory[1],
        "the two normalisations must score apart"
    );
    for (r, m) in rows.iter().zip(&memory) {
        assert_eq!(r.patch_knn.unwrap().auc_roc, *m);
    }
    assert_eq!(rows[0].knn, rows[1].knn);
}

#[test]
fn every_grid_file_reads_and_the_methods_grid_gives_each_method_120_steps() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("grids");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    for file in &files {
        let cells = Grid::read(file).and_then(|g| g.cells());
        assert!(cells.is_ok(), "{}: {:?}", file.display(), cells.err());
    }
    // issue #16's table: 3 cases × 8 methods × 3 seeds, every method at 120 steps, DRA at the
    // defaults, the comparison methods fine-tuned, KDAD at its profile's 128²
    let cells = Grid::read(&dir.join("methods.toml"))
        .unwrap()
        .cells()
        .unwrap();
    assert_eq!(cells.len(), 72);
    for cell in &cells {
        let c = &cell.config;
        assert_eq!((c.epochs, c.steps_per_epoch), (6, 20), "{}", cell.id);
        let method = c.method.to_string();
        assert_eq!(
            c.freeze_backbone,
            ["dra", "kdad"].contains(&method.as_str()),
            "{}",
            cell.id
        );
        assert_eq!(
            c.img_size,
            if method == "kdad" { 128 } else { 224 },
            "{}",
            cell.id
        );
    }
    let one_shot = cells.iter().filter(|c| c.config.n_anomaly == 1).count();
    assert_eq!(one_shot, 24);
}
