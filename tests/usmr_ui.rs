//! The US -> MR tab (egui_kittest on the shared wgpu device): a tiny trained run folder typed
//! into its field and loaded shows the held-out ultrasound, synthetic MR and real MR, with the
//! attention heatmap of the centre pixel; a click on another pixel moves the heatmap. The tab's
//! Train section trains a run that loads itself into the panes, and Cancel stops a long one.

#[path = "common/app_harness.rs"]
mod app_harness;
use app_harness::{frames, harness_sized, run_until};

use burn::tensor::Device;
use egui_kittest::kittest::Queryable;
use std::time::Duration;
use synthscope::app::workspace::Panel;
use synthscope::model::usmr::UsMrConfig;
use synthscope::train::Control;
use synthscope::train::usmr::{self, UsMrTrainConfig};

#[test]
fn usmr_tab_shows_three_panes_and_the_attention_of_a_clicked_pixel() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = UsMrTrainConfig {
        model: UsMrConfig::new().with_width(4),
        grid: 32,
        steps: 3,
        batch: 1,
        us_patients: 1,
        mr_patients: 1,
        ..Default::default()
    };
    usmr::train_usmr(
        &cfg,
        dir.path(),
        &Device::flex(),
        &Control::default(),
        &mut |_| {},
    )
    .unwrap();

    let mut h = harness_sized(1500.0, 900.0);
    *h.state_mut().panel_flag_mut(Panel::UsMr) = true;
    h.run();
    assert!(h.state().workspace.is_visible(Panel::UsMr));
    h.state_mut().usmr.run_dir = dir.path().display().to_string();
    h.run();
    h.get_by_label("Load").click();
    frames(&mut h);
    run_until(&mut h, "the first view", Duration::from_secs(60), |a| {
        a.usmr.view.is_some()
    });
    assert!(h.state().usmr.error.is_none(), "{:?}", h.state().usmr.error);
    // Each pane: its title and its image (named by the same text).
    for title in [
        "Ultrasound + attention",
        "Synthetic MR",
        "Real MR (phantom)",
    ] {
        assert_eq!(h.get_all_by_label(title).count(), 2, "{title}");
    }
    let first = h.state().usmr.view.clone().unwrap();
    let heat = first
        .heatmap
        .clone()
        .expect("the network has the attention block");
    assert_eq!(first.n, 32);
    assert!((heat.iter().sum::<f32>() - 1.0).abs() < 1e-3);
    // Another query pixel: a different row of the attention.
    h.state_mut().usmr.request(first.z, Some((2, 2)));
    run_until(&mut h, "the second view", Duration::from_secs(60), |a| {
        a.usmr.query == Some((2, 2))
            && a.usmr
                .view
                .as_ref()
                .is_some_and(|v| v.heatmap.as_ref() != Some(&heat))
    });
}

/// The Train section: a tiny run trained from the tab loads into the panes by itself; the same
/// folder again is refused with a message in the tab; a long run stops on Cancel after a few
/// steps, and what it trained so far loads too.
#[test]
fn usmr_tab_trains_a_run_that_loads_itself_and_cancel_stops_one() {
    let runs = tempfile::tempdir().unwrap();
    let mut h = harness_sized(1500.0, 1100.0);
    *h.state_mut().panel_flag_mut(Panel::UsMr) = true;
    h.run();
    {
        let t = &mut h.state_mut().usmr.train;
        t.cfg.model = UsMrConfig::new().with_width(4);
        t.cfg.grid = 32;
        t.cfg.steps = 3;
        t.cfg.batch = 1;
        t.cfg.us_patients = 1;
        t.cfg.mr_patients = 1;
        t.out = runs.path().join("tiny").display().to_string();
    }
    h.run();
    assert!(h.state().usmr.view.is_none(), "nothing loaded yet");
    h.get_by_label("Train").click();
    frames(&mut h);
    assert!(
        h.state().usmr.train.is_running() || !h.state().usmr.train.losses.is_empty(),
        "Train started a worker"
    );
    run_until(
        &mut h,
        "the trained run's view",
        Duration::from_secs(300),
        |a| !a.usmr.train.is_running() && a.usmr.view.is_some(),
    );
    let u = &h.state().usmr;
    assert!(u.error.is_none(), "{:?}", u.error);
    assert_eq!(
        u.loaded_from.as_deref(),
        Some(runs.path().join("tiny").as_path())
    );
    assert!(runs.path().join("tiny/summary.json").exists());
    // Every step's loss arrived, and the held-out evaluation of the last step.
    let steps: Vec<f64> = u.train.losses.iter().map(|p| p[0]).collect();
    assert_eq!(steps, vec![1.0, 2.0, 3.0]);
    assert!(
        u.train
            .losses
            .iter()
            .all(|p| p[1].is_finite() && p[1] > 0.0)
    );
    assert_eq!(u.train.last_eval.as_ref().map(|r| r.step), Some(3));
    assert_eq!(u.view.as_ref().map(|v| v.n), Some(32));
    let status = u.train.status.clone().unwrap_or_default();
    assert!(status.starts_with("Trained 3 of 3 steps"), "{status}");
    let _ = h.get_by_label("Run: tiny");
    for title in [
        "Ultrasound + attention",
        "Synthetic MR",
        "Real MR (phantom)",
    ] {
        assert_eq!(h.get_all_by_label(title).count(), 2, "{title}");
    }

    // The same folder again: refused, with the reason in the tab, and the panes kept.
    h.get_by_label("Train").click();
    frames(&mut h);
    assert!(!h.state().usmr.train.is_running());
    let e = h.state().usmr.error.clone().unwrap_or_default();
    assert!(e.contains("already holds a run"), "{e}");
    let _ = h.get_by_label_contains("already holds a run");
    assert!(h.state().usmr.view.is_some());

    // A long run, cancelled once it has taken a step.
    h.state_mut().usmr.train.cfg.steps = 100_000;
    h.state_mut().usmr.train.out = runs.path().join("long").display().to_string();
    h.run();
    h.get_by_label("Train").click();
    frames(&mut h);
    assert!(
        h.state().usmr.train.is_running(),
        "{:?}",
        h.state().usmr.error
    );
    run_until(
        &mut h,
        "the long run's first step",
        Duration::from_secs(300),
        |a| !a.usmr.train.losses.is_empty(),
    );
    assert!(h.state().usmr.train.is_running());
    let (stage, fraction) = h.state().usmr.train.progress().unwrap();
    assert_eq!(stage, "Training");
    assert!(fraction > 0.0 && fraction < 0.01, "{fraction}");
    h.get_by_label("Cancel").click();
    run_until(
        &mut h,
        "the cancelled run to end",
        Duration::from_secs(120),
        |a| !a.usmr.train.is_running(),
    );
    run_until(
        &mut h,
        "the cancelled run's view",
        Duration::from_secs(60),
        |a| {
            a.usmr.loaded_from.as_deref() == Some(runs.path().join("long").as_path())
                && a.usmr.view.is_some()
        },
    );
    let u = &h.state().usmr;
    assert!(u.error.is_none(), "{:?}", u.error);
    let status = u.train.status.clone().unwrap_or_default();
    assert!(status.starts_with("Stopped after"), "{status}");
    let summary: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(runs.path().join("long/summary.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(summary["stopped"], true);
    let done = summary["steps"].as_u64().unwrap();
    assert!((1..1000).contains(&done), "stopped after {done} steps");
    let _ = h.get_by_label("Run: long");
}
