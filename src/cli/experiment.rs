//! `experiment`: a grid of training runs with k-fold cross-validation by patient, the tables,
//! tests and figures, and a self-contained HTML report.

use crate::experiment::{ExperimentConfig, ExperimentEvent, finished_folds, run_experiment_with};
use crate::train::Control;
use anyhow::{anyhow, bail};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use std::path::PathBuf;

/// `experiment` arguments.
#[derive(Args, Debug)]
pub struct ExperimentArgs {
    /// Experiment file (TOML; see experiments/losses.toml).
    #[arg(long)]
    pub config: PathBuf,
    /// Output folder (default: experiments/out/NAME).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Continue an interrupted (killed, or Ctrl-C) experiment in OUT: finished folds are kept,
    /// an unfinished fold continues from its last finished epoch.
    #[arg(long)]
    pub resume: bool,
    /// Where the networks train: auto, cpu or gpu (default: $SYNTHSCOPE_DEVICE, else auto).
    #[arg(long, value_name = "auto|cpu|gpu")]
    pub device: Option<crate::gpu::DeviceChoice>,
}

/// `experiment`: run (or resume) the grid and write the report.
pub(super) fn experiment(a: &ExperimentArgs) -> anyhow::Result<()> {
    let cfg = ExperimentConfig::read(&a.config).map_err(|e| anyhow!(e))?;
    let out = a
        .out
        .clone()
        .unwrap_or_else(|| PathBuf::from("experiments/out").join(&cfg.name));
    if !a.resume && out.join("runs").exists() {
        bail!(
            "{}: already holds an experiment; pass --resume to continue it or choose another --out",
            out.display()
        );
    }
    let g = super::compute_device(a.device)?;
    println!("device: {}", g.describe());
    println!(
        "{}: {} arms x {} seeds x {} folds = {} training runs",
        cfg.name,
        cfg.arms().len(),
        cfg.seeds.len(),
        cfg.folds,
        cfg.grid().len()
    );
    if a.resume {
        crate::experiment::check_output(&cfg, &out).map_err(|e| anyhow!(e))?;
        println!(
            "resuming in {}: {} of {} folds finished and kept",
            out.display(),
            finished_folds(&cfg, &out),
            cfg.grid().len()
        );
    }
    let t = std::time::Instant::now();
    let control = Control::default();
    // A bar on a terminal (the grid's share done, what runs, time left); plain lines when the
    // output is piped.
    let bar = ProgressBar::new(1000);
    bar.set_style(
        ProgressStyle::with_template("{spinner} [{elapsed_precise}] {bar:30} {percent:>3}%  {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let report = run_experiment_with(&cfg, &out, &g.device, &control, &mut |e| match e {
        ExperimentEvent::Line(line) => {
            let line = format!("[{:>6.0} s] {line}", t.elapsed().as_secs_f64());
            if bar.is_hidden() {
                println!("{line}");
            } else {
                bar.println(line);
            }
        }
        ExperimentEvent::Progress(p) => {
            bar.set_position((p.fraction * 1000.0).round() as u64);
            let eta = p
                .eta_s
                .map(|s| format!("  ETA {:.0} min", s / 60.0))
                .unwrap_or_default();
            bar.set_message(format!(
                "fold {}/{}: {}{eta}",
                (p.fold + 1).min(p.total),
                p.total,
                p.label
            ));
        }
    });
    bar.finish_and_clear();
    let report = report.map_err(|e| anyhow!(e))?;
    println!(
        "report: {} ({:.0} s)",
        report.display(),
        t.elapsed().as_secs_f64()
    );
    Ok(())
}
