//! Model commands: `synthesize`, `evaluate`, `model summary|import`, `self-test`.

use super::data::first_volume;
use crate::io::dicom::write as dicom_write;
use crate::io::{self, Progress, nifti};
use anyhow::bail;
use clap::{Args, Subcommand};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// `evaluate` arguments.
#[derive(Args, Debug)]
pub struct EvaluateArgs {
    /// Predicted (synthetic) image.
    #[arg(long)]
    pub pred: PathBuf,
    /// Reference (real) image.
    #[arg(long = "ref")]
    pub reference: PathBuf,
    /// Head mask on the same grid.
    #[arg(long)]
    pub mask: Option<PathBuf>,
    /// Data range for PSNR/SSIM (default: the reference's max - min).
    #[arg(long)]
    pub data_range: Option<f64>,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
    /// Also write the table as CSV.
    #[arg(long)]
    pub csv: Option<PathBuf>,
}

/// `synthesize` arguments.
#[derive(Args, Debug)]
pub struct SynthesizeArgs {
    /// Checkpoint (.json or .bpk of the pair).
    #[arg(long)]
    pub model: PathBuf,
    /// Input volume (folder or file).
    #[arg(long)]
    pub input: PathBuf,
    /// Output NIfTI file, or a folder for a derived DICOM series.
    #[arg(long)]
    pub out: PathBuf,
    /// Slices per batch (0: sized to the device: 4 on the CPU, up to 32 by the adapter's
    /// largest buffer on a GPU).
    #[arg(long, default_value_t = 0)]
    pub batch: usize,
    /// Where the network runs: auto (measured once, cached), cpu (burn-flex), gpu (wgpu) or
    /// ws://HOST:PORT (a `synthscope serve` server); default: $SYNTHSCOPE_DEVICE, else auto.
    #[arg(long, value_name = "auto|cpu|gpu|ws://HOST:PORT")]
    pub device: Option<crate::gpu::DeviceSpec>,
    /// The remote server's token (one line; the file must not be readable by every user).
    #[arg(long, value_name = "FILE")]
    pub token_file: Option<PathBuf>,
    /// The float type the network computes in: auto (f16 on a hardware GPU with SHADER_F16,
    /// f32 elsewhere), f32, or f16 (refused where the device cannot compute it).
    #[arg(long, default_value = "auto", value_name = "auto|f32|f16")]
    pub precision: crate::model::half::Precision,
}

/// Model subcommands.
#[derive(Subcommand, Debug)]
pub enum ModelCmd {
    /// Turn PyTorch weights (.safetensors, .pt, .pth) of one of our architectures into a checkpoint.
    Import {
        /// The PyTorch state dict.
        #[arg(long)]
        weights: PathBuf,
        /// Architecture: unet, drunet18, drunet34, drunet50, drunet101, classifier, or cyclegan
        /// (a ResNet generator state dict of the reference CycleGAN implementation; its size is
        /// read off the file).
        #[arg(long)]
        arch: String,
        /// Direction: mr-to-ct or ct-to-mr.
        #[arg(long, default_value = "mr-to-ct")]
        direction: String,
        /// Output checkpoint (writes NAME.bpk and NAME.json).
        #[arg(long)]
        out: PathBuf,
    },
    /// Parameter counts and activation shapes of U-Net, DRUNet-18/34/50/101 and the classifier.
    Summary {
        /// Slice size.
        #[arg(long, default_value_t = 256)]
        size: usize,
    },
}

/// `model ...`.
pub(super) fn model_cmd(what: ModelCmd) -> anyhow::Result<()> {
    match what {
        ModelCmd::Summary { size } => model_summary(size),
        ModelCmd::Import {
            weights,
            arch,
            direction,
            out,
        } => model_import(&weights, &arch, &direction, &out),
    }
}

/// `self-test`: the burn self-test on the shared GPU device and on the compute device, the
/// adapter, and which device computes and why.
pub(super) fn self_test(json: bool) -> anyhow::Result<()> {
    let g = crate::gpu::shared()?;
    let t0 = Instant::now();
    let t = crate::gpu::self_test(&g.device, 64)?;
    let first_ms = t0.elapsed().as_secs_f64() * 1e3;
    let c = crate::gpu::compute()?;
    let ct = match c.kind {
        crate::gpu::ComputeKind::Gpu => t.clone(),
        crate::gpu::ComputeKind::Cpu | crate::gpu::ComputeKind::Remote => {
            crate::gpu::self_test(&c.device, 64)?
        }
    };
    if json {
        println!(
            "{}",
            serde_json::json!({
                "adapter": g.report, "self_test": t, "first_run_ms": first_ms,
                "compute": {
                    "kind": c.kind, "summary": c.summary(), "reason": c.reason,
                    "probe_ms": c.probe, "cached": c.cached, "self_test": ct,
                },
            })
        );
    } else {
        println!("adapter: {}", g.report.summary());
        println!(
            "self-test: gpu {:.5} cpu {:.5} rel.err {:.2e} in {:.1} ms",
            t.gpu_value, t.cpu_value, t.rel_error, t.gpu_ms
        );
        println!("compute device: {}", c.describe());
        if c.kind == crate::gpu::ComputeKind::Cpu {
            println!(
                "compute self-test: {:.5} rel.err {:.2e} in {:.1} ms",
                ct.gpu_value, ct.rel_error, ct.gpu_ms
            );
        }
    }
    if !t.passed() {
        bail!("GPU self-test failed: relative error {:.2e}", t.rel_error);
    }
    if !ct.passed() {
        bail!(
            "compute self-test failed: relative error {:.2e}",
            ct.rel_error
        );
    }
    Ok(())
}

/// `synthesize`: the other modality of the input with a checkpoint, as NIfTI or DICOM.
pub(super) fn synthesize(a: &SynthesizeArgs) -> anyhow::Result<()> {
    let (model, input, out, batch) = (
        a.model.as_path(),
        a.input.as_path(),
        a.out.as_path(),
        a.batch,
    );
    use crate::model::checkpoint::{ModelSpec, load};
    let g = crate::gpu::remote::choose_spec(a.device.as_ref(), a.token_file.as_deref())?;
    let (net, meta) = load(model, &g.device).map_err(|e| anyhow::anyhow!(e))?;
    let direction = match &meta.model {
        ModelSpec::Unet(c) => c.direction,
        ModelSpec::Drunet(c) => c.direction,
        ModelSpec::ResnetGenerator(_) => crate::model::cyclegan::generator_direction(&meta),
        ModelSpec::Classifier(_) => bail!(
            "{}: a classifier checkpoint cannot synthesise",
            model.display()
        ),
    };
    let v = first_volume(input)?;
    let t = Instant::now();
    let opts = crate::synth::SynthOptions {
        batch,
        precision: a.precision,
    };
    let run = || {
        crate::synth::synthesize_timed(&net, direction, &v, &opts, &g.device, &Progress::default())
    };
    let s = match &a.device {
        Some(crate::gpu::DeviceSpec::Remote { url, .. }) => {
            crate::gpu::remote::guard_connection(url, run).map_err(anyhow::Error::msg)??
        }
        _ => run()?,
    };
    let (s, times) = s;
    let secs = t.elapsed().as_secs_f64();
    if io::is_nifti_path(out) {
        nifti::write_nifti(&s, out)?;
    } else {
        dicom_write::write_derived_series(&s, &v.meta, &model.display().to_string(), out)?;
    }
    println!(
        "{} -> {} ({} slices in {:.2} s, {:.2} slices/s on {}, {}, batch {})",
        v.meta.description,
        out.display(),
        v.geometry.dims[2],
        secs,
        v.geometry.dims[2] as f64 / secs,
        g.summary(),
        if times.f16 { "f16" } else { "f32" },
        times.batch
    );
    Ok(())
}

/// `evaluate`: metrics of a prediction against a reference, as a table, JSON and CSV.
pub(super) fn evaluate(a: &EvaluateArgs) -> anyhow::Result<()> {
    let (pred, reference, mask) = (a.pred.as_path(), a.reference.as_path(), a.mask.as_deref());
    let (data_range, json, csv) = (a.data_range, a.json, a.csv.as_deref());
    let p = first_volume(pred)?;
    let r = first_volume(reference)?;
    let m = mask.map(first_volume).transpose()?;
    let reports = crate::analysis::evaluate_volumes(&p, &r, m.as_ref(), data_range)
        .map_err(|e| anyhow::anyhow!("{}: {e}", pred.display()))?;
    if let Some(c) = csv {
        crate::atomic::write(c, crate::analysis::to_csv(&reports))?;
    }
    if json {
        println!(
            "{}",
            serde_json::json!({ "pred": pred, "ref": reference, "metrics": reports })
        );
    } else {
        println!(
            "{:<6} {:>10} {:>10} {:>10} {:>9} {:>8} {:>9} {:>9} {:>7} {:>7}",
            "region",
            "voxels",
            "MAE",
            "RMSE",
            "PSNR dB",
            "SSIM",
            "Ten pred",
            "Ten ref",
            "UQI",
            "VIF"
        );
        for m in &reports {
            println!(
                "{:<6} {:>10} {:>10.3} {:>10.3} {:>9.3} {:>8.4} {:>9.4} {:>9.4} {:>7.4} {:>7.4}",
                format!("{:?}", m.region),
                m.voxels,
                m.mae,
                m.rmse,
                m.psnr,
                m.ssim,
                m.tenengrad_pred,
                m.tenengrad_ref,
                m.uqi,
                m.vif
            );
        }
        println!(
            "(PSNR/SSIM data range {:.1})",
            reports.first().map(|m| m.data_range).unwrap_or(0.0)
        );
    }
    Ok(())
}

/// `model summary`: parameter counts and encoder shapes of our networks.
fn model_summary(size: usize) -> anyhow::Result<()> {
    use crate::model::{ClassifierConfig, DrunetConfig, UnetConfig};
    let unet = UnetConfig::new().with_input_size(size);
    println!(
        "{:<14} {:>12}  input 1x{size}x{size}",
        "U-Net",
        fmt_count(unet.param_count())
    );
    for depth in [18, 34, 50, 101] {
        let c = DrunetConfig::new().with_depth(depth).with_input_size(size);
        let shapes = c.encoder_shapes().map_err(|e| anyhow::anyhow!(e))?;
        let s: Vec<String> = shapes
            .iter()
            .map(|(ch, side)| format!("{ch}x{side}"))
            .collect();
        println!(
            "{:<14} {:>12}  input 3x{size}x{size}, encoder {}",
            format!("DRUNet-{depth}"),
            fmt_count(c.param_count().map_err(|e| anyhow::anyhow!(e))?),
            s.join(" -> ")
        );
    }
    println!(
        "{:<14} {:>12}  MR vs CT, 2 classes",
        "Classifier",
        fmt_count(ClassifierConfig::new().param_count())
    );
    super::cyclegan::summary_lines(size);
    println!("(parameters as burn counts them: batch-norm running statistics included)");
    Ok(())
}

pub(super) fn fmt_count(n: usize) -> String {
    if n >= 1_000_000 {
        format!("{:.2} M", n as f64 / 1e6)
    } else {
        format!("{:.1} k", n as f64 / 1e3)
    }
}

/// `model import`: PyTorch weights of one of our architectures as a checkpoint.
fn model_import(weights: &Path, arch: &str, direction: &str, out: &Path) -> anyhow::Result<()> {
    use crate::model::checkpoint::{ModelSpec, save};
    use crate::model::{ClassifierConfig, Direction, DrunetConfig, UnetConfig};
    let direction = match direction {
        "mr-to-ct" => Direction::MrToCt,
        "ct-to-mr" => Direction::CtToMr,
        "ct-denoise" => Direction::CtDenoise,
        other => bail!("unknown direction {other}: mr-to-ct, ct-to-mr or ct-denoise"),
    };
    if arch == "cyclegan" {
        return super::cyclegan::import(weights, direction, out);
    }
    let spec = match arch {
        "unet" => ModelSpec::Unet(UnetConfig::new().with_direction(direction)),
        "classifier" => ModelSpec::Classifier(ClassifierConfig::new()),
        d if d.starts_with("drunet") => {
            let depth: usize = d
                .trim_start_matches("drunet")
                .parse()
                .map_err(|_| anyhow::anyhow!("unknown architecture {d}"))?;
            ModelSpec::Drunet(
                DrunetConfig::new()
                    .with_depth(depth)
                    .with_direction(direction),
            )
        }
        other => {
            bail!("unknown architecture {other}: unet, drunet18/34/50/101, classifier, cyclegan")
        }
    };
    let device = crate::gpu::compute_device()?;
    let mut model = spec.init(&device).map_err(|e| anyhow::anyhow!(e))?;
    let r = crate::model::import::import_pytorch(&mut model, weights)
        .map_err(|e| anyhow::anyhow!(e))?;
    save(
        &model,
        &spec,
        serde_json::json!({ "imported_from": weights, "tensors": r.applied }),
        out,
    )
    .map_err(|e| anyhow::anyhow!(e))?;
    println!(
        "{} tensors imported from {} -> {}.json/.bpk{}",
        r.applied,
        weights.display(),
        out.display(),
        if r.unused.is_empty() {
            String::new()
        } else {
            format!(" ({} unused keys ignored)", r.unused.len())
        }
    );
    Ok(())
}
