//! Low-dose CT commands: `ldct run` (the two-step denoising experiment of method 4),
//! `ldct simulate` (the low dose of a CT file), `phantom --low-dose` and the lesion classifier
//! of `train --classifier-only` for a `ct_denoise` config.

use crate::io::{Progress, nifti};
use crate::ldct::classifier::{
    ClassifierOptions, evaluate_classifier, save_lesion_classifier, train_lesion_classifier,
};
use crate::ldct::eval::markdown_table;
use crate::ldct::two_step::imaged_patients;
use crate::ldct::{TwoStepOptions, run_two_step};
use crate::synth::ldct::{DoseConfig, LesionPhantomConfig, lesion_patient, low_dose_of};
use crate::train::{Control, DataSource, TrainConfig, TrainEvent};
use anyhow::{Context, anyhow, bail};
use clap::Subcommand;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// `ldct` subcommands.
#[derive(Subcommand, Debug)]
pub enum LdctCmd {
    /// The two-step experiment: lesion classifier, MSE denoiser, activation-map fine-tuning
    /// (and an MSE fine-tuning control), evaluated on held-out phantom patients; writes
    /// OUT/report.{json,md} and the run folders.
    Run {
        /// Output folder.
        #[arg(long)]
        out: PathBuf,
        /// Options (TOML; fields of the experiment, see README); defaults otherwise.
        #[arg(long)]
        config: Option<PathBuf>,
        /// A tiny run (64-pixel phantoms, a few steps) to check the pipeline.
        #[arg(long)]
        quick: bool,
        /// Where the networks train: auto, cpu or gpu.
        #[arg(long, value_name = "auto|cpu|gpu")]
        device: Option<crate::gpu::DeviceChoice>,
    },
    /// Simulate the low dose of a CT (NIfTI or DICOM): forward projection, Poisson noise at
    /// dose_fraction x I0 photons per ray, filtered back-projection; writes NIfTI.
    Simulate {
        /// CT file or DICOM folder (normal dose, HU).
        input: PathBuf,
        /// Output .nii or .nii.gz.
        output: PathBuf,
        /// Low dose / normal dose.
        #[arg(long, default_value_t = 0.25)]
        dose_fraction: f64,
        /// Normal-dose photons per ray.
        #[arg(long, default_value_t = 2.0e5)]
        i0: f64,
        /// Noise seed.
        #[arg(long, default_value_t = 0)]
        seed: u64,
    },
}

/// Run an `ldct` subcommand.
pub fn run(what: LdctCmd) -> anyhow::Result<()> {
    match what {
        LdctCmd::Run {
            out,
            config,
            quick,
            device,
        } => experiment(&out, config.as_deref(), quick, device),
        LdctCmd::Simulate {
            input,
            output,
            dose_fraction,
            i0,
            seed,
        } => simulate(&input, &output, dose_fraction, i0, seed),
    }
}

/// The options of `ldct run --quick`: the whole pipeline in well under a minute.
pub fn quick_options() -> TwoStepOptions {
    TwoStepOptions {
        train_patients: 3,
        test_patients: 1,
        phantom: LesionPhantomConfig {
            size: 64,
            slices: 4,
            pixel_mm: 4.0,
            lesions_per_class: 2,
            ..Default::default()
        },
        mse_epochs: 1,
        finetune_epochs: 1,
        steps_per_epoch: Some(3),
        patch: 32,
        batch_size: 2,
        classifier: ClassifierOptions {
            steps: 10,
            batch: 8,
            ..Default::default()
        },
        ..Default::default()
    }
}

fn event_printer() -> impl FnMut(TrainEvent) {
    |e: TrainEvent| match e {
        TrainEvent::Stage(s) => println!("{s}"),
        TrainEvent::Note(n) => println!("  {n}"),
        TrainEvent::Epoch(e) => println!(
            "  epoch {:>3}: train loss {:.5}  val loss {:.5}  PSNR {:.2} dB  SSIM {:.4}  [{:.0} s]",
            e.epoch, e.train_loss, e.val_loss, e.val_psnr, e.val_ssim, e.elapsed_s
        ),
        TrainEvent::Step(_) | TrainEvent::Preview(_) => {}
    }
}

fn experiment(
    out: &Path,
    config: Option<&Path>,
    quick: bool,
    device: Option<crate::gpu::DeviceChoice>,
) -> anyhow::Result<()> {
    let opts: TwoStepOptions = match config {
        Some(p) => {
            let text = crate::io::read_text(p, crate::io::MAX_TEXT_BYTES)
                .map_err(|e| anyhow!("{}: cannot read: {e}", p.display()))?;
            crate::io::parse_settings(p, &text).map_err(|e| anyhow!(e))?
        }
        None if quick => quick_options(),
        None => TwoStepOptions::default(),
    };
    if out.join("report.json").exists() || out.join("step1_mse").exists() {
        bail!(
            "{}: already holds an experiment; choose another --out (nothing was overwritten)",
            out.display()
        );
    }
    let g = super::compute_device(device)?;
    println!("device: {}", g.describe());
    let t = Instant::now();
    let control = Control::default();
    let report = run_two_step(&opts, out, &g.device, &control, &mut event_printer())
        .map_err(|e| anyhow!(e))?;
    println!("\n{}", markdown_table(&report.arms));
    for (stage, s) in &report.seconds {
        println!("{stage}: {s:.1} s");
    }
    println!(
        "{} written in {:.1} s",
        out.join("report.md").display(),
        t.elapsed().as_secs_f64()
    );
    Ok(())
}

fn simulate(input: &Path, output: &Path, fraction: f64, i0: f64, seed: u64) -> anyhow::Result<()> {
    let dose = DoseConfig {
        i0,
        dose_fraction: fraction,
        ..Default::default()
    };
    dose.validate().map_err(|e| anyhow!(e))?;
    let loaded = crate::io::load_paths(&[input.to_path_buf()], &Progress::default())
        .with_context(|| format!("loading {}", input.display()))?;
    let Some(ct) = loaded.volumes.into_iter().next() else {
        bail!("{}: no image found", input.display());
    };
    let t = Instant::now();
    let low = low_dose_of(&ct, &dose, seed).map_err(|e| anyhow!("{}: {e}", input.display()))?;
    nifti::write_nifti(&low, output)?;
    println!(
        "{}: {} at {:.0}% dose (I0 {:.0} -> {:.0} photons per ray) in {:.1} s",
        output.display(),
        ct.meta.description,
        100.0 * fraction,
        i0,
        dose.low_dose_i0(),
        t.elapsed().as_secs_f64()
    );
    Ok(())
}

/// `phantom --low-dose`: lesion phantom patients 0..patients as truth, normal-dose and
/// low-dose NIfTI files plus their lesions (JSON).
pub fn write_low_dose_phantom(
    out: &Path,
    patients: usize,
    dose: &DoseConfig,
) -> anyhow::Result<()> {
    dose.validate().map_err(|e| anyhow!(e))?;
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let cfg = LesionPhantomConfig::default();
    for k in 0..patients.max(1) {
        let t = Instant::now();
        let p = lesion_patient(&cfg, k)
            .imaged(dose)
            .map_err(|e| anyhow!(e))?;
        for (v, name) in [
            (&p.patient.truth, "truth"),
            (&p.normal, "normal_dose"),
            (&p.low, "low_dose"),
        ] {
            nifti::write_nifti(v, &out.join(format!("lesion{k}_{name}.nii.gz")))?;
        }
        let lesions = serde_json::json!({
            "note": "centre in voxels (x, y) on slice `slice`; contrast in HU against the liver",
            "dose": dose, "phantom": cfg, "lesions": p.patient.lesions,
        });
        crate::atomic::write(
            &out.join(format!("lesion{k}_lesions.json")),
            serde_json::to_string_pretty(&lesions)?,
        )?;
        println!(
            "lesion phantom {k}: {} lesions; truth, normal dose (I0 {:.0}) and low dose ({:.0}%, I0 {:.0}) in {:.1} s -> {}",
            p.patient.lesions.len(),
            dose.i0,
            100.0 * dose.dose_fraction,
            dose.low_dose_i0(),
            t.elapsed().as_secs_f64(),
            out.join(format!("lesion{k}_*.nii.gz")).display()
        );
    }
    Ok(())
}

/// `train --classifier-only` for a `ct_denoise` config: the lesion classifier, trained on the
/// config's low-dose phantom patients, written as OUT/classifier.{bpk,json}.
pub fn lesion_classifier_only(
    cfg: &TrainConfig,
    out: &Path,
    device: &burn::tensor::Device,
) -> anyhow::Result<()> {
    let (patients, phantom, dose) = match &cfg.data {
        DataSource::LowDose {
            patients,
            phantom,
            dose,
        } => (*patients, *phantom, *dose),
        DataSource::Demo { patients, .. } | DataSource::Varied { patients, .. } => (
            *patients,
            LesionPhantomConfig::default(),
            DoseConfig::default(),
        ),
        other => bail!("the lesion classifier trains on the low-dose phantoms, not on {other:?}"),
    };
    let opts = TwoStepOptions {
        train_patients: patients.max(2),
        phantom,
        dose,
        classifier: ClassifierOptions {
            steps: cfg.classifier_steps,
            seed: cfg.seed,
            ..Default::default()
        },
        ..Default::default()
    };
    let t = Instant::now();
    let all = imaged_patients(&opts, 0..opts.train_patients).map_err(|e| anyhow!(e))?;
    let (train, val) = all.split_at(all.len() - 1);
    let c = train_lesion_classifier(train, &opts.classifier, device, &Control::default())
        .map_err(|e| anyhow!(e))?;
    let r = evaluate_classifier(&c, val, &opts.classifier, 1, device).map_err(|e| anyhow!(e))?;
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    save_lesion_classifier(&c, &opts.classifier, &r, &out.join("classifier"))
        .map_err(|e| anyhow!(e))?;
    println!(
        "{}: lesion classifier, {} steps in {:.1} s; on the last patient: absent {:.0}%, present small/medium/large {:.0}/{:.0}/{:.0}%",
        out.join("classifier.json").display(),
        opts.classifier.steps,
        t.elapsed().as_secs_f64(),
        100.0 * r.absent_accuracy,
        100.0 * r.present_accuracy[0],
        100.0 * r.present_accuracy[1],
        100.0 * r.present_accuracy[2]
    );
    Ok(())
}
