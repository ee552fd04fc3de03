//! The work one run does, counted: a training run decodes every image of its split once and
//! reads the backbone's weights file once; `dra predict` on one image decodes that image and
//! the fixed reference set, nothing else of the data set. The counters are per process, so
//! this file holds a single test.

mod common;

use dra::config::TrainConfig;
use dra::data::transform::images_decoded;
use dra::model::backbone::weights::files_read;
use dra::run::Plan;

#[test]
fn a_run_decodes_each_image_once_and_predict_only_its_references() {
    let data = common::bundled_elpv();
    let cfg = TrainConfig {
        data_root: data.path().to_path_buf(),
        class: "elpv".into(),
        img_size: 32,
        batch_size: 8,
        epochs: 2,
        steps_per_epoch: 2,
        n_ref: 3,
        ..TrainConfig::default()
    };
    let (decoded, read) = (images_decoded(), files_read());
    let out = tempfile::tempdir().unwrap();
    let mut plan = Plan::new(&cfg).unwrap();
    let split = &plan.split;
    let n_images = split.train_normal.len() + split.train_anomaly.len() + split.test.len();
    dra::run::train_and_evaluate(&mut plan, out.path(), false, &mut ()).unwrap();
    // training, the head statistics and the test set all read the plan's decoded images
    assert_eq!(images_decoded() - decoded, n_images);
    assert_eq!(files_read() - read, 1);
    // and the baselines reuse them too
    dra::baselines::knn_baseline(&mut plan).unwrap();
    assert_eq!(images_decoded() - decoded, n_images);
    assert_eq!(files_read() - read, 1);

    let image = plan.split.test[0].path.clone();
    let decoded = images_decoded();
    let p = dra::run::predict(out.path(), &[image], None, &mut ()).unwrap();
    assert_eq!(p.scored.len(), 1);
    assert_eq!(images_decoded() - decoded, 1 + cfg.n_ref);
    assert_eq!(
        files_read() - read,
        1,
        "predict loads the saved model, not the weights"
    );
    // the score is the one the run gave that test image
    let scores = std::fs::read_to_string(out.path().join("scores.csv")).unwrap();
    let path = plan.split.test[0].path.display().to_string();
    let line = scores.lines().find(|l| l.contains(&path)).unwrap();
    let score: f32 = line.split(',').nth(3).unwrap().parse().unwrap();
    assert_eq!(score, p.scored[0].score);
}
