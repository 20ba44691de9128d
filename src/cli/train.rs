//! `train` (headless training with a progress bar) and `runs compare`.

use crate::io::Progress;
use crate::train::runs::{Run, compare_table};
use crate::train::{Control, Dataset, TrainConfig, TrainEvent, data};
use anyhow::{anyhow, bail};
use clap::{Args, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use std::path::PathBuf;
use std::time::Instant;

/// `train` arguments.
#[derive(Args, Debug)]
pub struct TrainArgs {
    /// Run config (TOML or JSON; see README).
    #[arg(long, required_unless_present = "resume")]
    pub config: Option<PathBuf>,
    /// Continue the run in this folder (killed, crashed or stopped) from its last completed
    /// epoch, with its own config.toml.
    #[arg(long, value_name = "RUNDIR", conflicts_with_all = ["config", "out", "classifier_only"])]
    pub resume: Option<PathBuf>,
    /// Run folder (default: runs/NAME).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Train only the MR/CT classifier (config's data, seed and classifier_steps) and write
    /// OUT/classifier.{bpk,json}: the classifier Grad-CAM view and classifier losses load it.
    #[arg(long)]
    pub classifier_only: bool,
    /// Where the network trains: auto (measured once, cached), cpu (burn-flex), gpu (wgpu) or
    /// ws://HOST:PORT (a `synthscope serve` server; the run folder stays here);
    /// default: $SYNTHSCOPE_DEVICE, else auto.
    #[arg(long, value_name = "auto|cpu|gpu|ws://HOST:PORT")]
    pub device: Option<crate::gpu::DeviceSpec>,
    /// The remote server's token (one line; the file must not be readable by every user).
    #[arg(long, value_name = "FILE")]
    pub token_file: Option<PathBuf>,
    /// Train data-parallel on several devices (repeat it or separate by commas: cpu,gpu or
    /// gpu@3,ws://HOST:PORT, @N being a device's relative share of each batch); replaces the
    /// config's `devices`; the first device keeps the weights. --token-file serves every
    /// ws:// device without a token_file of its own. Not with --resume: a resumed run trains
    /// on the devices its config.toml names.
    #[arg(long, value_name = "DEVICE[@WEIGHT]", value_delimiter = ',', conflicts_with_all = ["device", "resume"])]
    pub devices: Vec<String>,
}

/// Run-folder subcommands.
#[derive(Subcommand, Debug)]
pub enum RunsCmd {
    /// Table of the final validation metrics of RUNDIRs side by side.
    Compare {
        /// Run folders.
        #[arg(required = true)]
        dirs: Vec<PathBuf>,
        /// Print JSON instead of the table.
        #[arg(long)]
        json: bool,
    },
}

/// `train`: train from a config file, headless, with a progress bar.
pub(super) fn train(a: &TrainArgs) -> anyhow::Result<()> {
    let classifier_only = a.classifier_only;
    let config = match (&a.resume, &a.config) {
        (Some(dir), _) => dir.join("config.toml"),
        (None, Some(c)) => c.clone(),
        (None, None) => bail!("--config or --resume is required"),
    };
    if crate::train::cyclegan::CycleganConfig::is_cyclegan_file(&config) {
        if let Some(dir) = &a.resume {
            return super::cyclegan::resume(dir, a.device.as_ref(), a.token_file.as_deref());
        }
        let g = crate::gpu::remote::choose_spec(a.device.as_ref(), a.token_file.as_deref())?;
        return super::cyclegan::train(&config, a.out.as_deref(), &g.device, &g.describe());
    }
    let mut cfg = TrainConfig::read(&config).map_err(|e| anyhow!(e))?;
    if !a.devices.is_empty() {
        cfg.devices = a
            .devices
            .iter()
            .map(|d| d.parse::<crate::train::DeviceEntry>())
            .collect::<Result<_, _>>()
            .map_err(|e| anyhow!("--devices: {e}"))?;
        cfg.validate().map_err(|e| anyhow!("--devices: {e}"))?;
    }
    for d in &mut cfg.devices {
        if matches!(d.spec, crate::gpu::DeviceSpec::Remote { .. }) && d.token_file.is_none() {
            d.token_file = a.token_file.clone();
        }
    }
    let out = a
        .resume
        .clone()
        .or_else(|| a.out.clone())
        .unwrap_or_else(|| PathBuf::from("runs").join(&cfg.name));
    if a.resume.is_some() {
        // Refused early, before the data loads, when there is nothing to resume from.
        crate::train::ResumeState::read(&out).map_err(|e| anyhow!(e))?;
    } else if out.join("metrics.jsonl").exists() || out.join("classifier.bpk").exists() {
        bail!(
            "{}: already holds a run; choose another --out (nothing was overwritten)",
            out.display()
        );
    }
    // Several devices connect when the run starts; the first computes the classifier alone.
    let parallel = !cfg.devices.is_empty() && !classifier_only;
    let g = if parallel {
        let names: Vec<String> = cfg.devices.iter().map(|d| d.to_string()).collect();
        println!("devices: {} (data-parallel)", names.join(", "));
        crate::gpu::compute::choose(crate::gpu::DeviceChoice::Cpu)?
    } else {
        let first = cfg.devices.first().map(|d| &d.spec);
        let g =
            crate::gpu::remote::choose_spec(first.or(a.device.as_ref()), a.token_file.as_deref())?;
        println!("device: {}", g.describe());
        g
    };
    if classifier_only && cfg.direction == crate::model::Direction::CtDenoise {
        return super::ldct::lesion_classifier_only(&cfg, &out, &g.device);
    }
    let t = Instant::now();
    let dataset = if classifier_only {
        // The classifier trains on slices in memory, streamed folder or not.
        Dataset::split(
            data::load_cases(&cfg, &Progress::default()).map_err(|e| anyhow!(e))?,
            cfg.validation_fraction,
        )
    } else {
        data::load_dataset(&cfg, &Progress::default()).map_err(|e| anyhow!(e))?
    };
    println!(
        "data: {}, {} training / {} validation slices ({:.1} s); split {}",
        match &dataset.stream {
            Some(s) => format!("{} patients, streamed", s.index.patients.len()),
            None => format!("{} patients", dataset.cases.len()),
        },
        dataset.train_len(),
        dataset.val.len(),
        t.elapsed().as_secs_f64(),
        dataset.split_note
    );
    let bar = ProgressBar::new(1);
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} steps  {msg}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let control = Control::default();
    // Lines above the bar on a terminal; plain lines when output is piped (the bar is hidden).
    let say = |line: String| {
        if bar.is_hidden() {
            println!("{line}");
        } else {
            bar.println(line);
        }
    };
    let mut on_event = |e: TrainEvent| match e {
        TrainEvent::Stage(s) => bar.set_message(s),
        TrainEvent::Note(n) => say(n),
        TrainEvent::Step(s) => {
            bar.set_length(s.total_steps as u64);
            bar.set_position(s.step as u64);
            bar.set_message(format!(
                "epoch {} loss {:.4}  {:.1} img/s  ETA {:.0} s",
                s.epoch, s.loss, s.images_per_s, s.eta_s
            ));
        }
        TrainEvent::Epoch(e) => say(format!(
            "epoch {:>3}: train loss {:.4}  val loss {:.4}  PSNR {:.2} dB  SSIM {:.3}  VIF {}  MAE {:.1}  Tenengrad {:.4} (real {:.4})  [{:.0} s]",
            e.epoch,
            e.train_loss,
            e.val_loss,
            e.val_psnr,
            e.val_ssim,
            e.val_vif.map_or("-".into(), |v| format!("{v:.3}")),
            e.val_mae,
            e.val_tenengrad,
            e.ref_tenengrad,
            e.elapsed_s
        )),
        TrainEvent::Preview(_) => {}
    };
    if classifier_only {
        let p = crate::train::patch_size(&cfg, &dataset);
        g.device.seed(cfg.seed);
        crate::train::classifier_for_run(
            &cfg,
            &dataset,
            p,
            &out,
            &g.device,
            &control,
            &mut on_event,
        )
        .map_err(|e| anyhow!(e))?;
        bar.finish_and_clear();
        println!(
            "{}: {} classifier steps in {:.1} s",
            out.join("classifier.bpk").display(),
            cfg.classifier_steps,
            t.elapsed().as_secs_f64()
        );
        return Ok(());
    }
    let mut run = || {
        if a.resume.is_some() {
            crate::train::resume(&cfg, &dataset, &out, &g.device, &control, &mut on_event)
        } else {
            crate::train::train(&cfg, &dataset, &out, &g.device, &control, &mut on_event)
        }
    };
    // A remote device among several: a lost connection is reported as for one remote device.
    let remote_spec = a.device.clone().filter(|_| !parallel).or_else(|| {
        cfg.devices
            .iter()
            .map(|d| d.spec.clone())
            .find(|s| matches!(s, crate::gpu::DeviceSpec::Remote { .. }))
    });
    let summary = match &remote_spec {
        Some(spec @ crate::gpu::DeviceSpec::Remote { url, .. }) => {
            crate::gpu::remote::guard_connection(url, run)
                .map_err(|e| {
                    bar.abandon();
                    super::serve::lost_run_message(
                        &e.to_string(),
                        &out,
                        spec,
                        a.token_file.as_deref(),
                    )
                })?
                .map_err(|e| anyhow!(e))?
        }
        _ => run().map_err(|e| anyhow!(e))?,
    };
    bar.finish_and_clear();
    println!(
        "{}: {} epochs, {} steps in {:.1} s ({:.2} images/s), {} parameters",
        out.display(),
        summary.epochs_done,
        summary.steps,
        summary.seconds,
        summary.images_per_s,
        summary.params
    );
    if let Some(b) = &summary.best {
        println!(
            "best epoch {}: PSNR {:.2} dB, SSIM {:.3}; checkpoint {}",
            b.epoch,
            b.val_psnr,
            b.val_ssim,
            out.join("checkpoints/best.bpk").display()
        );
    }
    Ok(())
}

/// `runs ...`.
pub(super) fn runs(what: RunsCmd) -> anyhow::Result<()> {
    match what {
        RunsCmd::Compare { dirs, json } => runs_compare(&dirs, json),
    }
}

/// `runs compare`: the comparison table of run folders.
fn runs_compare(dirs: &[PathBuf], json: bool) -> anyhow::Result<()> {
    let runs: Vec<Run> = dirs
        .iter()
        .map(|d| Run::read(d))
        .collect::<Result<_, _>>()
        .map_err(|e| anyhow!(e))?;
    if json {
        let rows: Vec<serde_json::Value> = runs
            .iter()
            .map(|r| {
                let row = r.row();
                serde_json::json!({
                    "dir": r.dir, "name": row.name, "model": row.model, "loss": row.loss,
                    "epochs": row.epochs, "psnr": row.psnr, "ssim": row.ssim, "mae": row.mae,
                    "tenengrad": row.tenengrad, "ref_tenengrad": row.ref_tenengrad,
                    "images_per_s": row.images_per_s, "finished": row.finished,
                })
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&rows)?);
    } else {
        print!("{}", compare_table(&runs));
    }
    Ok(())
}
