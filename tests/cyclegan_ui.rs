//! The Training panel's CycleGAN (unpaired) mode: tick it, start a tiny run, watch the four
//! losses and the sample grid arrive, load G_A into the Synthesis panel.

#[path = "common/app_harness.rs"]
mod app_harness;
mod common;
use app_harness::harness_sized;

use egui_kittest::kittest::Queryable;
use std::time::Duration;

#[test]
fn cyclegan_mode_trains_shows_losses_and_grid_and_loads_g_a() {
    let mut h = harness_sized(1200.0, 900.0);
    let runs = tempfile::tempdir().unwrap();
    {
        let app = h.state_mut();
        app.training.runs_root = runs.path().to_path_buf();
        app.training.show = true;
    }
    h.run();
    h.get_by_label("CycleGAN (unpaired)").click();
    h.run();
    assert!(h.state().training.cyclegan.enabled);
    // Its own settings replace the paired ones, and the panel's header names them.
    let _ = h.get_by_label("Generator blocks");
    let _ = h.get_by_label_contains("CycleGAN MR <-> CT (unpaired) · ResNet generators ngf");
    assert!(
        h.query_by_label_contains(" · patch ").is_none(),
        "the paired run's header is gone"
    );
    {
        let c = &mut h.state_mut().training.cyclegan.cfg;
        c.name = "ui-cyclegan".into();
        c.data = synthscope::train::DataSource::Varied {
            patients: 3,
            small: true,
        };
        c.generator.ngf = 4;
        c.generator.blocks = 1;
        c.discriminator.ndf = 4;
        c.discriminator.layers = 2;
        c.image_size = 32;
        c.epochs = 1;
        c.decay_epochs = 1;
        c.steps_per_epoch = 3;
    }
    h.run();
    h.get_by_label("Start").click();
    h.step();
    h.step();
    assert!(h.state().training.job.is_some(), "Start runs a worker");
    h.state_mut().wait_for_jobs(Duration::from_secs(300));
    h.run();
    h.run();
    let t = &h.state().training;
    assert!(t.job.is_none(), "finished: {:?}", t.finished);
    assert_eq!(t.steps.len(), 6);
    assert_eq!(t.steps[0].terms.len(), 4, "the four losses");
    assert_eq!(t.epochs.len(), 2);
    assert_eq!(
        t.cyclegan.grid_epoch(),
        Some(2),
        "the last epoch's sample grid"
    );
    let (dir, summary) = t.finished.as_ref().expect("a finished run");
    assert!(summary.is_ok(), "{summary:?}");
    assert!(dir.join("checkpoints/last_G_B.bpk").exists());
    let _ = h.get_by_label_contains("real MR · fake CT · reconstructed MR");
    if let Ok(p) = std::env::var("SYNTHSCOPE_UI_SHOT") {
        h.render().expect("renders").save(p).unwrap();
    }
    h.get_by_label("Load into synthesis").click();
    h.run();
    assert!(
        h.state().model.loaded.is_some(),
        "G_A is loaded for synthesis"
    );
    assert_eq!(
        h.state().model.direction(),
        Some(synthscope::model::Direction::MrToCt)
    );
}
