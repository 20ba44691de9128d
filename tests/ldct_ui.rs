//! CT denoising in the app (egui_kittest on the shared wgpu device): a held-out phantom
//! patient's low-dose CT in the CT pane; the Training panel switched to "CT denoise", given a
//! lesion classifier (typed into its field) and a tiny config with the activation-weighted
//! loss, trains a denoiser; the Synthesis panel applies the run to the loaded low-dose CT, and
//! the denoised CT differs from its input and is closer to the patient's normal dose.
//!
//! `SYNTHSCOPE_SCREENSHOT=1` also writes docs/screenshot_ct_denoise.png.

#[path = "common/app_harness.rs"]
mod app_harness;
use app_harness::{frames, harness_sized, run_until};

use burn::tensor::Device;
use egui_kittest::kittest::Queryable;
use std::sync::Arc;
use std::time::Duration;
use synthscope::app::Role;
use synthscope::ldct::TwoStepOptions;
use synthscope::ldct::classifier::{
    ClassifierOptions, evaluate_classifier, save_lesion_classifier, train_lesion_classifier,
};
use synthscope::ldct::two_step::imaged_patients;
use synthscope::model::Direction;
use synthscope::synth::ldct::{DoseConfig, LesionPhantomConfig};
use synthscope::train::{Control, DataSource, LossKind, LossTerm, ModelChoice, TrainConfig};

/// Mean squared difference (HU^2) of `a` and `b` where the phantom has body.
fn mse_in_body(a: &[f32], b: &[f32], truth: &[f32]) -> f64 {
    let (mut s, mut n) = (0.0f64, 0usize);
    for ((x, y), t) in a.iter().zip(b).zip(truth) {
        if *t > -500.0 {
            s += (*x as f64 - *y as f64).powi(2);
            n += 1;
        }
    }
    s / n.max(1) as f64
}

#[test]
fn training_panel_trains_a_ct_denoiser_and_the_synthesis_panel_denoises_the_loaded_ct() {
    let phantom = LesionPhantomConfig {
        size: 64,
        slices: 4,
        pixel_mm: 4.0,
        lesions_per_class: 2,
        ..Default::default()
    };
    let dose = DoseConfig::default();
    let opts = TwoStepOptions {
        train_patients: 4,
        test_patients: 1,
        phantom,
        dose,
        classifier: ClassifierOptions {
            steps: 40,
            batch: 8,
            ..Default::default()
        },
        ..Default::default()
    };
    // The lesion classifier step 2 needs, trained on the training patients' normal dose.
    let train = imaged_patients(&opts, 0..4).unwrap();
    let held = imaged_patients(&opts, 4..5).unwrap().remove(0);
    let cpu = Device::flex();
    let c = train_lesion_classifier(&train, &opts.classifier, &cpu, &Control::default()).unwrap();
    let report =
        evaluate_classifier(&c, std::slice::from_ref(&held), &opts.classifier, 1, &cpu).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cls = save_lesion_classifier(
        &c,
        &opts.classifier,
        &report,
        &dir.path().join("classifier"),
    )
    .unwrap();

    let mut h = harness_sized(1400.0, 950.0);
    // The held-out patient's low dose takes the CT pane.
    {
        let app = h.state_mut();
        app.volumes.push(Arc::new(held.low.clone()));
        let i = app.volumes.len() - 1;
        app.set_role(i, Some(Role::Ct));
    }
    h.run();
    assert_eq!(h.state().ct_volume().unwrap().id, held.low.id);

    // The Training panel, on the low-dose phantoms, switched to CT denoise by its radio.
    let runs = tempfile::tempdir().unwrap();
    let mut aw = LossTerm::new(LossKind::ActivationWeighted, 0.1);
    aw.layer = Some(1);
    let cfg = TrainConfig {
        name: "ldct-ui".into(),
        direction: Direction::MrToCt,
        data: DataSource::LowDose {
            patients: 4,
            phantom,
            dose,
        },
        model: ModelChoice::Unet {
            base_width: 16,
            levels: 3,
        },
        epochs: 60,
        batch_size: 3,
        patch: 64,
        validation_fraction: 0.25,
        validation_slices: 2,
        learning_rate: 2e-3,
        losses: vec![LossTerm::new(LossKind::Mse, 1.0), aw],
        ..TrainConfig::default()
    };
    {
        let app = h.state_mut();
        app.training.runs_root = runs.path().to_path_buf();
        app.training.set_config(cfg, false);
    }
    h.run();
    assert!(
        h.query_by_label("Lesion classifier").is_none(),
        "the classifier field belongs to CT denoise"
    );
    h.get_by_label("CT denoise").click();
    h.run();
    assert_eq!(h.state().training.cfg.direction, Direction::CtDenoise);
    h.get_by_label("Lesion classifier").focus();
    h.run();
    h.get_by_label("Lesion classifier")
        .type_text(&cls.display().to_string());
    h.run();
    assert_eq!(
        h.state().training.cfg.classifier.as_deref(),
        Some(cls.as_path())
    );
    h.get_by_label("Start").click();
    h.step();
    h.step();
    assert!(h.state().training.job.is_some(), "Start runs a worker");
    h.state_mut().wait_for_jobs(Duration::from_secs(600));
    run_until(&mut h, "the run to finish", Duration::from_secs(60), |a| {
        a.training.job.is_none()
    });
    let t = &h.state().training;
    let (run, summary) = t.finished.as_ref().expect("a finished run");
    let summary = summary.as_ref().expect("trained");
    assert_eq!(summary.epochs_done, 60);
    assert!(run.join("checkpoints/last.json").exists());

    // The Runs view puts the checkpoint into the Synthesis panel; Synthesise denoises the CT.
    h.state_mut().training.show_runs = true;
    h.run();
    h.get_by_label("Load into synthesis").click();
    h.run();
    assert_eq!(h.state().model.direction(), Some(Direction::CtDenoise));
    assert!(h.state().synthesis.show);
    h.get_by_label("Synthesise").click();
    h.step();
    h.state_mut().wait_for_jobs(Duration::from_secs(300));
    frames(&mut h);
    h.run();
    let app = h.state();
    assert!(app.errors.is_empty(), "{:?}", app.errors);
    let out = app
        .synthesis
        .synthetic
        .and_then(|i| app.volumes.get(i))
        .expect("the denoised CT joins the volumes")
        .clone();
    assert!(
        app.synthesis.third_shows_synthetic,
        "the third pane shows it"
    );
    assert_eq!(out.geometry, held.low.geometry, "on the CT's own grid");
    assert!(
        out.meta.description.starts_with("Denoised CT from")
            && out.meta.description.contains(&held.low.meta.description),
        "{}",
        out.meta.description
    );
    let truth = &held.patient.truth.data;
    let changed = mse_in_body(&out.data, &held.low.data, truth);
    let before = mse_in_body(&held.low.data, &held.normal.data, truth);
    let after = mse_in_body(&out.data, &held.normal.data, truth);
    eprintln!(
        "MSE in the body (HU^2): denoised vs low dose {changed:.1}; vs normal dose: low dose {before:.1}, denoised {after:.1}"
    );
    assert!(
        changed > 1.0,
        "the denoiser changed the CT (MSE {changed:.1} HU^2)"
    );
    assert!(
        after < 0.9 * before,
        "denoised CT against normal dose: MSE {after:.1} HU^2, low dose {before:.1} HU^2"
    );
    let img = h.render().expect("renders the denoised CT");
    if std::env::var_os("SYNTHSCOPE_SCREENSHOT").is_some() {
        img.save("docs/screenshot_ct_denoise.png").unwrap();
    }
}
