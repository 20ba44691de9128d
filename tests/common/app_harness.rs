//! The app in an egui_kittest harness on the shared wgpu device, on the small demo pair (as
//! tests/ui.rs and tests/ui_workspace.rs build it). Include with
//! `#[path = "common/app_harness.rs"] mod app_harness;`.
#![allow(dead_code)]

use egui_kittest::Harness;
use std::time::{Duration, Instant};
use synthscope::app::{AppOptions, SynthScopeApp};

/// The app at `w` x `h` points, its start-up jobs finished.
pub fn harness_sized(w: f32, h: f32) -> Harness<'static, SynthScopeApp> {
    let gpu = synthscope::gpu::shared().expect("shared device");
    let mut h = Harness::builder()
        .with_size(egui::vec2(w, h))
        .wgpu_setup(gpu.egui_setup())
        .build_eframe(|cc| {
            SynthScopeApp::new(
                cc,
                AppOptions {
                    small_demo: true,
                    self_test: false,
                    ..Default::default()
                },
            )
        });
    h.state_mut().wait_for_jobs(Duration::from_secs(120));
    h.run();
    h
}

/// Draw frames until `done` holds (panics with `what` after `timeout`).
pub fn run_until(
    h: &mut Harness<'static, SynthScopeApp>,
    what: &str,
    timeout: Duration,
    done: impl Fn(&SynthScopeApp) -> bool,
) {
    let t0 = Instant::now();
    while !done(h.state()) {
        assert!(
            t0.elapsed() < timeout,
            "{what}: not done after {timeout:?}; messages: {:?}",
            h.state().errors
        );
        std::thread::sleep(Duration::from_millis(20));
        h.step();
    }
    frames(h);
}

/// A few frames, enough for a click to take effect and its result to be drawn (`run` refuses
/// to return while a spinner repaints).
pub fn frames(h: &mut Harness<'static, SynthScopeApp>) {
    for _ in 0..3 {
        h.step();
    }
}
