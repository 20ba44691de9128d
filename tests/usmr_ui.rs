//! The US -> MR tab (egui_kittest on the shared wgpu device): a tiny trained run folder typed
//! into its field and loaded shows the held-out ultrasound, synthetic MR and real MR, with the
//! attention heatmap of the centre pixel; a click on another pixel moves the heatmap.

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
