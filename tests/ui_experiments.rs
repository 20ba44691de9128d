//! The Experiments tab (egui_kittest on the shared wgpu device): opened from the View menu's
//! flag, it reads a tiny experiment file typed into its path field, runs it on a worker from
//! its Run button with a progress bar, and shows the table (mean ± sd per arm, from the run
//! folders) and the pairwise p-values, with the report's path; a finished grid read again shows
//! its results without training.

#[path = "common/app_harness.rs"]
mod app_harness;
use app_harness::harness_sized;

use egui_kittest::Harness;
use egui_kittest::kittest::Queryable;
use std::time::{Duration, Instant};
use synthscope::app::SynthScopeApp;
use synthscope::app::workspace::Panel;
use synthscope::experiment::report::summarise;
use synthscope::experiment::{ExperimentConfig, finished_folds};

const TOML: &str = r#"
name = "ui-tiny"
patients = 4
small = true
folds = 2
seeds = [5]
epochs = 1
batch_size = 2
patch = 32
steps_per_epoch = 2
validation_slices = 1
eval_slices = 2
networks = [{ name = "u", model = { kind = "unet", base_width = 4, levels = 1 } }]
[[losses]]
name = "mse"
losses = [{ kind = "mse" }]
[[losses]]
name = "l1"
losses = [{ kind = "l1" }]
"#;

fn harness() -> Harness<'static, SynthScopeApp> {
    harness_sized(1500.0, 900.0)
}

/// A value as the tab prints it.
fn num(v: f64) -> String {
    if v.abs() >= 100.0 {
        format!("{v:.1}")
    } else if v.abs() >= 1.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.4}")
    }
}

#[test]
fn experiments_tab_runs_a_tiny_experiment_and_shows_its_table() {
    let dir = std::env::temp_dir().join(format!("synthscope-ui-exp-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("tiny.toml");
    std::fs::write(&file, TOML).unwrap();

    let mut h = harness();
    *h.state_mut().panel_flag_mut(Panel::Experiments) = true;
    h.run();
    assert!(h.state().workspace.is_visible(Panel::Experiments));
    // The path in the field (as typed), then Read.
    h.state_mut().experiments.config_path = file.display().to_string();
    h.run();
    h.get_by_label("Read").click();
    h.run();
    let out = dir.join("out").join("ui-tiny");
    assert_eq!(
        h.state().experiments.out_dir.as_deref(),
        Some(out.as_path())
    );
    h.get_by_label_contains("2 arms (mse, l1) x 1 seeds x 2 folds = 4 training runs");

    h.get_by_label("Run").click();
    h.step();
    assert!(h.state().experiments.is_running());
    let t0 = Instant::now();
    let mut saw_progress = false;
    while h.state().experiments.is_running() {
        assert!(
            t0.elapsed() < Duration::from_secs(300),
            "not finished: {:?}",
            h.state().experiments.log
        );
        std::thread::sleep(Duration::from_millis(50));
        h.step();
        saw_progress |= h.state().experiments.progress.is_some();
    }
    h.run();
    let st = &h.state().experiments;
    assert!(st.message.is_none(), "{:?}", st.message);
    assert!(saw_progress, "a progress bar was shown while it ran");
    let report = st.report.clone().expect("a report");
    assert!(report.exists());
    let cfg = ExperimentConfig::read(&file).unwrap();
    assert_eq!(finished_folds(&cfg, &out), 4);
    // The table shows each arm's mean ± sd as the run folders give them.
    let (s, _) = summarise(&cfg, &out).unwrap();
    for arm in ["mse", "l1"] {
        let mae = s.stat(arm, "head", "mae").unwrap();
        let cell = format!("{} ± {}", num(mae.mean), num(mae.sd));
        h.get_by_label(&cell);
    }
    h.get_by_label("p (Welch)");
    h.get_by_label("Open report");
    h.get_by_label(&format!("Report: {}", report.display()));

    let _ = h.render().expect("renders the Experiments tab");
    // Read again: the finished grid's results come back without training.
    h.get_by_label("Read").click();
    h.run();
    let st = &h.state().experiments;
    assert!(!st.is_running() && st.summary.is_some() && st.report.is_some());
    // The docs' screenshot: a finished experiment named by SYNTHSCOPE_EXPERIMENT_FILE (with its
    // results in out/NAME beside it), e.g. the shipped one.
    if let (Some(_), Some(f)) = (
        std::env::var_os("SYNTHSCOPE_SCREENSHOT"),
        std::env::var_os("SYNTHSCOPE_EXPERIMENT_FILE"),
    ) {
        h.state_mut()
            .experiments
            .set_config_path(std::path::Path::new(&f));
        h.run();
        assert!(
            h.state().experiments.summary.is_some(),
            "{:?}",
            h.state().experiments.message
        );
        h.render()
            .expect("renders")
            .save("docs/screenshot_experiments.png")
            .unwrap();
    }
    let _ = std::fs::remove_dir_all(&dir);
}
