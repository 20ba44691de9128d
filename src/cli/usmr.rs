//! `train-us-mr`: the unpaired US -> MR networks trained headless on phantom ultrasound.

use crate::gpu::DeviceChoice;
use crate::model::usmr::UsMrConfig;
use crate::train::Control;
use crate::train::usmr::{self, UsMrEvent, UsMrTrainConfig};
use anyhow::anyhow;
use clap::Args;
use std::path::PathBuf;

/// `train-us-mr` arguments.
#[derive(Args, Debug)]
pub struct UsMrArgs {
    /// Run folder.
    #[arg(long)]
    pub out: PathBuf,
    /// Optimisation steps.
    #[arg(long, default_value_t = 300)]
    pub steps: usize,
    /// Slices per batch (of each modality).
    #[arg(long, default_value_t = 4)]
    pub batch: usize,
    /// Image side in pixels (a multiple of 4).
    #[arg(long, default_value_t = 64)]
    pub grid: usize,
    /// Ultrasound slices either side as extra input channels (3D neighbours; 0 = none).
    #[arg(long, default_value_t = 0)]
    pub neighbours: usize,
    /// Leave out the cross-modal attention block.
    #[arg(long)]
    pub no_attention: bool,
    /// Channels at full resolution.
    #[arg(long, default_value_t = 16)]
    pub width: usize,
    /// Adam learning rate.
    #[arg(long, default_value_t = 2e-4)]
    pub lr: f64,
    /// Seed (phantom, initialisation, sampling).
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Phantom patients giving ultrasound (as many others give MR).
    #[arg(long, default_value_t = 3)]
    pub patients: usize,
    /// Evaluate on the held-out patient every N steps.
    #[arg(long, default_value_t = 100)]
    pub eval_every: usize,
    /// Where the networks train: auto, cpu (burn-flex) or gpu (wgpu).
    #[arg(long, value_name = "auto|cpu|gpu")]
    pub device: Option<DeviceChoice>,
}

/// `train-us-mr`: train, printing each evaluation, and write the run folder.
pub(super) fn train(a: &UsMrArgs) -> anyhow::Result<()> {
    if a.out.join("summary.json").exists() {
        anyhow::bail!(
            "{}: already holds a run; choose another --out",
            a.out.display()
        );
    }
    let cfg = UsMrTrainConfig {
        name: a
            .out
            .file_name()
            .map(|s| s.to_string_lossy().to_string())
            .unwrap_or_else(|| "usmr".into()),
        model: UsMrConfig::new()
            .with_neighbours(a.neighbours)
            .with_width(a.width)
            .with_attention(!a.no_attention),
        grid: a.grid,
        steps: a.steps,
        batch: a.batch,
        learning_rate: a.lr,
        seed: a.seed,
        us_patients: a.patients,
        mr_patients: a.patients,
        held_out: 1,
        eval_every: a.eval_every,
        ..Default::default()
    };
    let g = super::compute_device(a.device)?;
    println!("device: {}", g.describe());
    let mut last_print = std::time::Instant::now();
    let mut on_event = |e: UsMrEvent| match e {
        UsMrEvent::Step {
            step,
            total,
            loss,
            critic_loss,
            terms,
        } => {
            if last_print.elapsed().as_secs_f64() > 10.0 || step == 1 {
                last_print = std::time::Instant::now();
                let t: Vec<String> = terms.iter().map(|(k, v)| format!("{k} {v:.3}")).collect();
                println!(
                    "step {step}/{total}: loss {loss:.3} critics {critic_loss:.3} ({})",
                    t.join(", ")
                );
            }
        }
        UsMrEvent::Eval(r) => println!(
            "eval step {}: FOV PSNR {:.2} dB SSIM {:.3} | whole slice PSNR {:.2} SSIM {:.3} | \
             ultrasound itself: PSNR {:.2} SSIM {:.3} | gamma {} ({} slices)",
            r.step,
            r.psnr_fov,
            r.ssim_fov,
            r.psnr,
            r.ssim,
            r.us_psnr_fov,
            r.us_ssim_fov,
            r.attention_gamma
                .map_or("-".to_string(), |g| format!("{g:.3}")),
            r.slices
        ),
    };
    let s = usmr::train_usmr(&cfg, &a.out, &g.device, &Control::default(), &mut on_event)
        .map_err(|e| anyhow!(e))?;
    println!(
        "done: {} steps in {:.0} s (phantom data {:.0} s); run folder {}",
        s.steps,
        s.seconds,
        s.data_seconds,
        a.out.display()
    );
    Ok(())
}
