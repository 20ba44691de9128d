//! UI tests (egui_kittest on the shared wgpu device): the app starts on the demo pair, scrolling
//! moves every linked view, W/L presets change the drawn image, volumes upload once.

#[path = "common/app_harness.rs"]
mod app_harness;
mod common;
use app_harness::harness_sized;

use egui_kittest::Harness;
use egui_kittest::kittest::Queryable;
use std::time::Duration;
use synthscope::app::{AppOptions, SynthScopeApp};
use synthscope::volume::Modality;

fn harness() -> Harness<'static, SynthScopeApp> {
    harness_sized(1200.0, 480.0)
}

fn ct_mr_slices(app: &SynthScopeApp) -> (usize, usize) {
    let ct = app.ct_volume().unwrap();
    let mr = app.mr_volume().unwrap();
    (
        app.viewer.view.slice_index(&ct.geometry).0,
        app.viewer.view.slice_index(&mr.geometry).0,
    )
}

#[test]
fn starts_on_the_demo_pair_and_scrolls_all_views() {
    let mut h = harness();
    let app = h.state();
    assert_eq!(app.volumes.len(), 2);
    assert_eq!(app.ct_volume().unwrap().meta.modality, Modality::Ct);
    assert_eq!(app.mr_volume().unwrap().meta.modality, Modality::Mr);
    // The views draw on the device burn registered.
    assert_eq!(
        app.render_device(),
        Some(&synthscope::gpu::shared().unwrap().setup.device)
    );
    let before = ct_mr_slices(app);
    // Mouse wheel over the MR pane (middle third): one notch up.
    h.hover_at(egui::pos2(600.0, 240.0));
    h.event(egui::Event::MouseWheel {
        unit: egui::MouseWheelUnit::Line,
        delta: egui::vec2(0.0, 1.0),
        modifiers: Default::default(),
        phase: egui::TouchPhase::Move,
        source: egui::MouseWheelSource::Wheel,
    });
    h.run();
    let after_wheel = ct_mr_slices(h.state());
    assert!(
        after_wheel.0 > before.0,
        "CT slice {before:?} -> {after_wheel:?}"
    );
    assert!(
        after_wheel.1 > before.1,
        "MR slice follows the crosshair: {before:?} -> {after_wheel:?}"
    );
    // Arrow keys scroll too.
    for _ in 0..3 {
        h.key_press(egui::Key::ArrowDown);
        h.run();
    }
    let after_keys = ct_mr_slices(h.state());
    assert!(
        after_keys.0 < after_wheel.0 && after_keys.1 < after_wheel.1,
        "{after_wheel:?} -> {after_keys:?}"
    );
    // Scrolling never re-uploads a volume: CT and MR went up once each.
    let _ = h.render();
    assert_eq!(h.state().gpu_uploads(), 2);
    h.snapshot("demo_pair_axial");
}

#[test]
fn window_presets_change_the_drawn_image() {
    let mut h = harness();
    let brain = h.render().expect("render");
    h.get_by_label("Bone").click();
    h.run();
    let ct = h.state().ct_volume().unwrap().clone();
    assert_eq!(h.state().viewer.display_of(&ct).window.width, 2800.0);
    let bone = h.render().expect("render");
    // Compare the CT pane (left third): the bone window must change many pixels there.
    let (w, hgt) = brain.dimensions();
    let mut changed = 0;
    for y in (hgt / 4)..(3 * hgt / 4) {
        for x in (w / 12)..(w / 4) {
            if brain.get_pixel(x, y) != bone.get_pixel(x, y) {
                changed += 1;
            }
        }
    }
    assert!(changed > 1000, "only {changed} pixels changed");
    h.snapshot("demo_pair_bone_window");
    // Coronal view via the keyboard.
    h.key_press(egui::Key::C);
    h.run();
    h.snapshot("demo_pair_coronal");
}

#[test]
fn reset_restores_the_view() {
    let mut h = harness();
    let fitted = h.state().viewer.view.clone();
    h.state_mut().viewer.view.zoom = 3.0;
    h.state_mut().viewer.view.pan = [10.0, -5.0];
    h.key_press(egui::Key::R);
    h.run();
    assert_eq!(h.state().viewer.view, fitted);
}

#[test]
fn a_bad_file_reports_an_error_and_keeps_what_was_loaded() {
    let mut h = harness();
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("broken.nii");
    std::fs::write(&bad, b"this is not an image").unwrap();
    h.state_mut().open(vec![bad]);
    // One frame, not `run`: the load's progress bar asks for frames until it ends, which on a
    // busy machine can take more than the harness's step budget.
    h.step();
    h.state_mut().wait_for_jobs(Duration::from_secs(60));
    h.run();
    let app = h.state();
    assert_eq!(app.volumes.len(), 2, "the demo pair is still there");
    assert!(app.ct_volume().is_some() && app.mr_volume().is_some());
    assert!(
        app.errors.iter().any(|e| e.contains("broken.nii")),
        "{:?}",
        app.errors
    );
}

#[test]
fn colormap_choice_changes_the_drawn_image() {
    let mut h = harness();
    let grey = h.render().expect("render");
    let mr = h.state().mr_volume().unwrap().clone();
    let mut d = h.state().viewer.display_of(&mr);
    d.colormap = synthscope::volume::Colormap::Inferno;
    h.state_mut().viewer.display.insert(mr.id, d);
    h.run();
    let inferno = h.render().expect("render");
    let (w, hgt) = grey.dimensions();
    // The MR pane (middle third) gains colour: red and blue channels differ somewhere.
    let coloured = (hgt / 4..3 * hgt / 4)
        .flat_map(|y| (w / 3 + 20..2 * w / 3 - 20).map(move |x| (x, y)))
        .filter(|&(x, y)| {
            let p = inferno.get_pixel(x, y);
            p[0].abs_diff(p[2]) > 40 && grey.get_pixel(x, y) != p
        })
        .count();
    assert!(coloured > 1000, "{coloured}");
}

#[test]
fn registration_panel_aligns_the_mr_and_undo_restores_it() {
    // Tall enough for the whole registration panel.
    let mut h = harness_sized(1200.0, 800.0);
    h.state_mut().registration.show = true;
    h.run();
    h.get_by_label("Run").click();
    h.step();
    assert!(h.state().registration.job.is_some(), "Run starts a worker");
    h.state_mut().wait_for_jobs(Duration::from_secs(120));
    h.run();
    let app = h.state();
    let t = app.pair.mr_from_ct.expect("a transform after registration");
    assert!(
        app.registration.curve.len() > 5,
        "the metric curve was streamed"
    );
    // The small demo's MR is displaced by rotations (3, -2, 5) degrees: recovered within a degree.
    let d = t.decompose();
    for (got, want) in d.rotation_deg.iter().zip([3.0, -2.0, 5.0]) {
        assert!((got - want).abs() < 1.0, "{:?}", d.rotation_deg);
    }
    h.state_mut().viewer.compare = synthscope::app::viewer::render::Combine::Difference;
    h.state_mut().registration.show = false;
    h.run();
    // Threaded floating-point sums may move the optimum by a hair: allow a few edge pixels.
    h.snapshot_options(
        "registered_difference",
        &egui_kittest::SnapshotOptions::new().max_failed_pixels(400),
    );
    h.state_mut().registration.show = true;
    h.run();
    h.get_by_label("Undo").click();
    h.run();
    assert!(h.state().pair.mr_from_ct.is_none());
}

#[test]
fn synthesis_panel_runs_a_checkpoint_and_reports_metrics() {
    use synthscope::model::checkpoint::{ModelSpec, save};
    use synthscope::model::{Direction, UnetConfig};
    let mut h = harness();
    h.state_mut().synthesis.show = true;
    h.run();
    // Without a model the panel says so, and Synthesise is disabled.
    let _ = h.get_by_label_contains("No trained model loaded");
    let dir = tempfile::tempdir().unwrap();
    let spec = ModelSpec::Unet(
        UnetConfig::new()
            .with_base_width(4)
            .with_levels(2)
            .with_direction(Direction::MrToCt),
    );
    let g = synthscope::gpu::shared().unwrap();
    save(
        &spec.init(&g.device).unwrap(),
        &spec,
        serde_json::Value::Null,
        &dir.path().join("tiny"),
    )
    .unwrap();
    h.state_mut().load_model(&dir.path().join("tiny.json"));
    h.run();
    h.get_by_label("Synthesise").click();
    h.step();
    h.state_mut().wait_for_jobs(Duration::from_secs(120));
    h.run();
    let app = h.state();
    let s = app
        .synthesis
        .synthetic
        .and_then(|i| app.volumes.get(i))
        .expect("a synthetic volume");
    assert_eq!(
        s.geometry,
        app.mr_volume().unwrap().geometry,
        "synthetic CT on the MR grid"
    );
    assert!(app.synthesis.third_shows_synthetic);
    let m = app
        .synthesis
        .metrics
        .as_ref()
        .expect("metrics")
        .as_ref()
        .expect("computed");
    assert_eq!(m[0].region, synthscope::analysis::Region::All);
    assert!(
        app.model.loaded.is_some(),
        "the model came back from the worker"
    );
    let _ = h.render().expect("renders real vs synthetic");
}

#[test]
fn error_map_shows_a_known_offset_in_the_right_colour() {
    let mut h = harness();
    // A "synthetic CT" that is the real CT plus 100 HU everywhere.
    let ct = h.state().ct_volume().unwrap().clone();
    let mut fake = (*ct).clone();
    fake.id = synthscope::volume::Volume::new(ct.geometry.clone(), vec![], Default::default()).id;
    fake.data.iter_mut().for_each(|v| *v += 100.0);
    let app = h.state_mut();
    app.volumes.push(std::sync::Arc::new(fake));
    app.synthesis.synthetic = Some(app.volumes.len() - 1);
    app.synthesis.third_shows_synthetic = true;
    app.viewer.compare = synthscope::app::viewer::render::Combine::SignedError {
        range: 200.0,
        background: -500.0,
    };
    h.run();
    let img = h.render().expect("render");
    let (w, hgt) = img.dimensions();
    // Centre of the third pane: +100 of +-200 is three quarters up the diverging map (red side).
    let p = img.get_pixel(w * 5 / 6, hgt / 2);
    assert!(
        p[0] > 180 && p[2] < 150,
        "expected a warm colour, got {p:?}"
    );
    h.snapshot("synthetic_error_map");
}

#[test]
fn feature_maps_of_a_chosen_layer_for_the_current_slice() {
    use synthscope::model::checkpoint::{ModelSpec, save};
    use synthscope::model::{Direction, DrunetConfig};
    let mut h = harness();
    let dir = tempfile::tempdir().unwrap();
    let spec = ModelSpec::Drunet(
        DrunetConfig::new()
            .with_depth(18)
            .with_base_width(8)
            .with_direction(Direction::MrToCt),
    );
    let g = synthscope::gpu::shared().unwrap();
    let model = spec.init(&g.device).unwrap();
    let (filters, k) = synthscope::analysis::features::first_filters(&model).unwrap();
    assert_eq!(
        (filters.len(), k),
        (8, 7),
        "DRUNet stem: base-width 7x7 filters"
    );
    save(
        &model,
        &spec,
        serde_json::Value::Null,
        &dir.path().join("tiny_drunet"),
    )
    .unwrap();
    h.state_mut()
        .load_model(&dir.path().join("tiny_drunet.json"));
    h.state_mut().features.show = true;
    h.state_mut().features.layer = 1;
    h.run();
    h.get_by_label("Compute for this slice").click();
    // A spinner repaints while the worker runs: step, don't wait for the UI to settle.
    h.step();
    let ctx = h.ctx.clone();
    h.state_mut()
        .wait_for_features(&ctx, Duration::from_secs(120));
    h.run();
    let maps = h.state().features.maps.clone().expect("feature maps");
    // Encoder 1 of DRUNet-18 at base 8: 8 channels at a quarter of the padded 96 x 96 slice.
    assert_eq!(maps.layer, "encoder 1 (H/4)");
    assert_eq!((maps.total_channels, maps.width, maps.height), (8, 24, 24));
    assert!(h.state().model.loaded.is_some(), "the model came back");
}

#[test]
fn training_panel_trains_shows_curves_and_loads_the_run() {
    use synthscope::train::{DataSource, LossKind, LossTerm, ModelChoice, TrainConfig};
    let mut h = harness_sized(1200.0, 800.0);
    let runs = tempfile::tempdir().unwrap();
    let cfg = TrainConfig {
        name: "ui-run".into(),
        data: DataSource::Demo {
            patients: 2,
            small: true,
        },
        model: ModelChoice::Unet {
            base_width: 4,
            levels: 2,
        },
        epochs: 2,
        batch_size: 2,
        patch: 32,
        steps_per_epoch: Some(3),
        validation_slices: 1,
        losses: vec![LossTerm::new(LossKind::Mse, 1.0)],
        ..TrainConfig::default()
    };
    {
        let app = h.state_mut();
        app.training.runs_root = runs.path().to_path_buf();
        app.training.set_config(cfg, false);
    }
    h.run();
    h.get_by_label("Start").click();
    // The panel shows a spinner while it prepares: step frames rather than waiting to settle.
    h.step();
    h.step();
    assert!(h.state().training.job.is_some(), "Start runs a worker");
    // While it trains the panel offers Pause and Stop, and the UI keeps drawing.
    let _ = h.get_by_label("Pause");
    let _ = h.get_by_label("Stop");
    h.state_mut().wait_for_jobs(Duration::from_secs(300));
    h.run();
    h.run();
    let t = &h.state().training;
    assert!(t.job.is_none(), "finished");
    assert_eq!(t.steps.len(), 6);
    assert_eq!(t.epochs.len(), 2);
    let (dir, summary) = t.finished.as_ref().expect("a finished run");
    let summary = summary.as_ref().expect("trained");
    assert_eq!(summary.epochs_done, 2);
    assert!(dir.starts_with(runs.path()) && dir.join("summary.json").exists());
    assert!(
        !t.frame_ms.is_empty(),
        "frame times were recorded during the run"
    );
    // The Runs view lists it; Load puts its checkpoint into the synthesis panel.
    h.state_mut().training.show_runs = true;
    h.run();
    assert_eq!(h.state().training.runs.len(), 1);
    h.get_by_label("Load into synthesis").click();
    h.run();
    assert!(
        h.state().model.loaded.is_some(),
        "the run's checkpoint is loaded"
    );
    assert!(h.state().synthesis.show);
}

/// The reading view: answers by keyboard, nothing identifying on screen, every answer in the
/// log at once, and a new window resumes at the next image.
#[test]
fn reading_view_answers_by_keyboard_and_resumes() {
    use synthscope::app::StudyOptions;
    let dir = tempfile::tempdir().unwrap();
    let file = common::phantom_study(dir.path(), 1, synthscope::study::Design::Single);
    let gpu = synthscope::gpu::shared().expect("shared device");
    let open = |file: &std::path::Path| {
        let f = file.to_path_buf();
        let mut h = Harness::builder()
            .with_size(egui::vec2(1000.0, 700.0))
            .wgpu_setup(gpu.egui_setup())
            .build_eframe(move |cc| {
                SynthScopeApp::new(
                    cc,
                    AppOptions {
                        study: Some(StudyOptions {
                            file: f.clone(),
                            reader: Some("ui-reader".into()),
                            fullscreen: false,
                            script: None,
                        }),
                        self_test: false,
                        ..Default::default()
                    },
                )
            });
        h.state_mut()
            .reading
            .as_mut()
            .unwrap()
            .wait_ready(Duration::from_secs(60));
        h.run();
        h
    };
    let mut h = open(&file);
    let _ = h.get_by_label_contains("Image 1 of 6");
    // Nothing names the case, its file or its truth.
    for hidden in ["p0", ".nii", "study.toml", "scanner", "model A"] {
        assert!(
            h.query_by_label_contains(hidden).is_none(),
            "{hidden:?} is visible to the reader"
        );
    }
    // Next is refused until everything is answered.
    h.key_press(egui::Key::Enter);
    h.run();
    assert_eq!(
        h.state()
            .reading
            .as_ref()
            .unwrap()
            .session()
            .unwrap()
            .answers
            .len(),
        0
    );
    for k in [
        egui::Key::S,
        egui::Key::Num2,
        egui::Key::Num4,
        egui::Key::Num3,
        egui::Key::Num5,
    ] {
        h.key_press(k);
        h.run();
    }
    let _ = h.render().expect("renders the reading view");
    h.key_press(egui::Key::Enter);
    h.run();
    // Only the cases of the images around the current one are in memory.
    let r = h.state_mut().reading.as_mut().unwrap();
    r.wait_ready(Duration::from_secs(60));
    let (_, cache) = r.cases_mut().unwrap();
    assert!(
        cache.resident() <= 2 + 1,
        "{} cases resident",
        cache.resident()
    );
    h.run();
    let log = synthscope::study::log_path(&file, "ui-reader");
    let l = synthscope::study::read_log(&log).unwrap();
    assert_eq!(l.answers.len(), 1, "the answer is in the log at once");
    let a = &l.answers[0];
    assert_eq!(a.answer.as_deref(), Some("synthetic"));
    assert_eq!(a.confidence, Some(2));
    assert_eq!(a.likert.get("image quality"), Some(&4));
    let _ = h.get_by_label_contains("Image 2 of 6");
    drop(h);
    // A new window (a restart) continues at image 2.
    let h = open(&file);
    let s = h.state().reading.as_ref().unwrap().session().unwrap();
    assert_eq!((s.resumed, s.pos), (1, 1));
    let _ = h.get_by_label_contains("Image 2 of 6");
}

/// The study setup dialog shows an opened study; the results window summarises its logs.
#[test]
fn study_setup_and_results_windows() {
    use synthscope::study::session::{Session, StudyKey};
    let dir = tempfile::tempdir().unwrap();
    let file = common::phantom_study(dir.path(), 1, synthscope::study::Design::Single);
    let s = synthscope::study::Study::read(&file).unwrap();
    let slices = synthscope::study::resolve_slices(&s, &file, &Default::default()).unwrap();
    for (reader, verdict) in [("r1", StudyKey::Real), ("r2", StudyKey::Synthetic)] {
        let log = synthscope::study::log_path(&file, reader);
        let mut sess = Session::start(s.clone(), &file, &slices, reader, &log).unwrap();
        while !sess.done() {
            for k in [
                verdict,
                StudyKey::Digit(3),
                StudyKey::Digit(3),
                StudyKey::Digit(4),
                StudyKey::Digit(2),
                StudyKey::Next,
            ] {
                sess.key(k).unwrap();
            }
        }
    }
    let mut h = harness_sized(1400.0, 900.0);
    h.state_mut().open_study(&file);
    h.run();
    let _ = h.get_by_label("Study setup");
    let _ = h.get_by_label_contains("Cases (2)");
    let _ = h.get_by_label("Read this study (full screen)");
    h.state_mut().open_results(&file);
    h.run();
    let _ = h.get_by_label("Study results");
    let _ = h.get_by_label_contains("2 reader log(s)");
    let _ = h.get_by_label_contains("pooled");
    let img = h.render().expect("renders");
    if std::env::var_os("SYNTHSCOPE_SCREENSHOT").is_some() {
        img.save("docs/screenshot_study_results.png").unwrap();
    }
}

/// The PNG export crops the frame to the panes exactly and refuses an empty region.
#[test]
fn view_png_export_crops_exactly() {
    let (w, h) = (10usize, 8usize);
    let px: Vec<egui::Color32> = (0..w * h)
        .map(|i| egui::Color32::from_rgb((i % w) as u8 * 20, (i / w) as u8 * 30, 7))
        .collect();
    let img = egui::ColorImage::new([w, h], px);
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("crop.png");
    assert_eq!(
        synthscope::app::viewer::export::save_png_crop(&img, [2, 3, 5, 4], &p).unwrap(),
        (5, 4)
    );
    let back = image::open(&p).unwrap().to_rgba8();
    assert_eq!(back.dimensions(), (5, 4));
    assert_eq!(back.get_pixel(0, 0).0, [40, 90, 7, 255]);
    assert_eq!(back.get_pixel(4, 3).0, [120, 180, 7, 255]);
    // Clamped to the image; an empty region is an error naming the file.
    assert_eq!(
        synthscope::app::viewer::export::save_png_crop(&img, [8, 6, 50, 50], &p).unwrap(),
        (2, 2)
    );
    let e = synthscope::app::viewer::export::save_png_crop(&img, [10, 0, 3, 3], &p).unwrap_err();
    assert!(e.contains("crop.png") && e.contains("empty"), "{e}");
}

/// Grad-CAM's Cancel: the result of a cancelled pass is dropped, the model comes back, and a
/// new computation can start.
#[test]
fn gradcam_cancel_drops_the_result_and_returns_the_model() {
    let mut h = harness();
    h.state_mut().load_demo_model();
    h.state_mut().gradcam.show = true;
    h.state_mut().gradcam.bone = false;
    h.run();
    h.get_by_label("Compute for this slice").click();
    h.step();
    h.step();
    h.get_by_label("Cancel").click();
    h.step();
    h.step();
    h.state_mut().wait_for_jobs(Duration::from_secs(120));
    h.run();
    assert!(
        h.state().gradcam.result.is_none(),
        "a cancelled result is dropped"
    );
    assert!(h.state().model.loaded.is_some(), "the model came back");
    // And the next one runs to the end.
    h.get_by_label("Compute for this slice").click();
    h.step();
    h.state_mut().wait_for_jobs(Duration::from_secs(120));
    h.run();
    assert!(h.state().gradcam.result.is_some());
}

/// A volume larger than one frame's upload budget goes to the GPU over several frames, each
/// frame copying at most the budget, and is drawn once all of it is there (the renderer asks
/// for the frames itself); the demo pair's small volumes went up whole in one frame.
#[test]
fn a_large_series_uploads_over_a_few_frames_then_shows() {
    use synthscope::app::Role;
    use synthscope::app::viewer::render::UPLOAD_BYTES_PER_FRAME;
    use synthscope::volume::{Geometry, Volume, VolumeMeta};
    let mut h = harness();
    let _ = h.render();
    let before = h.state().gpu_uploads();
    // 256 x 256 x 640 voxels: 80 MiB packed, five frames' budget.
    let dims = [256usize, 256, 640];
    let g = Geometry::axis_aligned(dims, [0.8, 0.8, 0.25], [-102.0, -102.0, -80.0]);
    let data: Vec<f32> = (0..dims[0] * dims[1] * dims[2])
        .map(|i| ((i % dims[0]) as f32 * 7.0) - 1000.0)
        .collect();
    let meta = VolumeMeta {
        modality: Modality::Ct,
        series_uid: "large-test-series".into(),
        description: "large".into(),
        ..Default::default()
    };
    let v = std::sync::Arc::new(Volume::new(g, data, meta));
    let id = v.id;
    let bytes = v.data.len() * 2;
    h.state_mut().volumes.push(v);
    let n = h.state().volumes.len();
    h.state_mut().set_role(n - 1, Some(Role::Ct));
    let mut frames = 0;
    while !h.state().viewer.is_on_gpu(id) {
        h.step();
        let _ = h.render();
        frames += 1;
        assert!(frames < 40, "not on the GPU after {frames} frames");
    }
    let least = bytes.div_ceil(UPLOAD_BYTES_PER_FRAME);
    assert!(
        frames >= least,
        "{bytes} bytes in {frames} frames: more than the budget per frame"
    );
    assert!(frames <= least + 2, "{frames} frames for {least} budgets");
    assert_eq!(h.state().gpu_uploads(), before + 1, "one upload, in parts");
    // Once there it is drawn: the CT pane is no longer black.
    let img = h.render().expect("render");
    let (w, hgt) = img.dimensions();
    let lit = (hgt / 4..3 * hgt / 4)
        .flat_map(|y| (20..w / 3 - 20).map(move |x| (x, y)))
        .filter(|&(x, y)| img.get_pixel(x, y)[0] > 40)
        .count();
    assert!(lit > 1000, "{lit} lit pixels in the CT pane");
}

/// Messages dock in a strip above the status bar (no window over the views); Dismiss takes
/// the strip away and the views get their height back.
#[test]
fn messages_dock_below_the_views_and_dismiss() {
    let mut h = harness();
    let full = h.state().viewer.panes_rect;
    h.state_mut().errors.push("something to say".into());
    h.run();
    let _ = h.get_by_label("something to say");
    let panes = h.state().viewer.panes_rect;
    assert!(
        panes.height() < full.height() && panes.height() > 0.6 * full.height(),
        "the views make room for the strip: {panes:?} of {full:?}"
    );
    for p in [
        panes.center(),
        panes.right_bottom() + egui::vec2(-8.0, -8.0),
    ] {
        assert_eq!(
            h.ctx.layer_id_at(p).map(|l| l.order),
            Some(egui::Order::Background),
            "something covers the views at {p:?}"
        );
    }
    h.get_by_label("Dismiss").click();
    h.run();
    assert!(h.state().errors.is_empty());
    assert_eq!(h.state().viewer.panes_rect, full);
}
