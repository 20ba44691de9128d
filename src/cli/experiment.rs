//! `experiment`: a grid of training runs with k-fold cross-validation by patient, the tables,
//! tests and figures, and a self-contained HTML report.

use crate::experiment::{ExperimentConfig, run_experiment};
use crate::train::Control;
use anyhow::{anyhow, bail};
use clap::Args;
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
    /// Continue an interrupted experiment in OUT: finished folds are kept, an unfinished fold
    /// continues from its last epoch.
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
    let t = std::time::Instant::now();
    let control = Control::default();
    let report = run_experiment(&cfg, &out, &g.device, &control, &mut |line| {
        println!("[{:>6.0} s] {line}", t.elapsed().as_secs_f64())
    })
    .map_err(|e| anyhow!(e))?;
    println!(
        "report: {} ({:.0} s)",
        report.display(),
        t.elapsed().as_secs_f64()
    );
    Ok(())
}
