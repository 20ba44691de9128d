//! `bench ...`: throughput of loading, registration, networks, synthesis and training.

mod all;
mod load;
mod ops;
mod pytorch;
mod record;
mod register;
mod stream;

pub(crate) use record::record;
use serde_json::json;

use super::data::{middle_slab, slab};
use crate::io::{Progress, phantom};
use clap::Subcommand;
pub use pytorch::PytorchArgs;
use pytorch::{BenchNet, print_against, run_pytorch};
use std::path::PathBuf;
use std::time::Instant;

/// Benchmarks.
#[derive(Subcommand, Debug)]
pub enum Bench {
    /// Whole-pipeline synthesis of demo MR slices (176 x 176) with U-Net and DRUNet-34 (untrained
    /// weights: timing only): slices/s and the time per stage.
    Synthesize {
        /// Slices to synthesise.
        #[arg(long, default_value_t = 8)]
        slices: usize,
        /// Slices per batch.
        #[arg(long, default_value_t = 4)]
        batch: usize,
    },
    /// Forward-pass throughput (slices/s) of U-Net and DRUNet on the compute device, untrained
    /// weights (timing only; synthesis needs a trained checkpoint), as trained (batch norm) and
    /// in the inference form synthesis uses (batch norm folded into the convolutions).
    Models {
        /// Slice size.
        #[arg(long, default_value_t = 256)]
        size: usize,
        /// Slices per batch.
        #[arg(long, default_value_t = 4)]
        batch: usize,
        /// Timed batches per model (after one warm-up batch).
        #[arg(long, default_value_t = 3)]
        repeat: usize,
        /// Networks, comma-separated: unet:BASE:LEVELS, drunet:DEPTH.
        #[arg(long, default_value = "unet:32:4,drunet:34")]
        models: String,
        #[command(flatten)]
        pytorch: PytorchArgs,
    },
    /// Registration of the demo pair: ours against SimpleITK (same metric and levels), with errors against the known answer.
    Register {
        /// MR contrast of the moving image.
        #[arg(long, default_value = "t1")]
        contrast: String,
        /// Python with SimpleITK (default: target/py-sitk/bin/python, else python3).
        #[arg(long)]
        python: Option<PathBuf>,
        /// Add the affine stage (ours and SimpleITK's) after the rigid one; rigid only by
        /// default, as `register` does.
        #[arg(long)]
        affine: bool,
        /// Also run elastix (the Debian package's `elastix`) on the same pair, same metric and
        /// levels.
        #[arg(long, value_name = "elastix", value_parser = ["elastix"])]
        against: Option<String>,
    },
    /// Training steps/s (forward + backward + Adam, MSE) of U-Net and DRUNet-34 on the compute
    /// device, on random data.
    Train {
        /// Patch size.
        #[arg(long, default_value_t = 128)]
        size: usize,
        /// Patches per step.
        #[arg(long, default_value_t = 4)]
        batch: usize,
        /// Timed steps per model (after one warm-up step).
        #[arg(long, default_value_t = 3)]
        steps: usize,
        /// Networks, comma-separated: unet:BASE:LEVELS, drunet:DEPTH.
        #[arg(long, default_value = "unet:16:4,unet:32:4,drunet:34")]
        models: String,
        /// Also time a whole CycleGAN step (two ResNet generators NGF:BLOCKS, two PatchGANs of
        /// ndf NGF, all four losses) at the same size and batch, as a ratio to the first network.
        #[arg(long, value_name = "NGF:BLOCKS")]
        cyclegan: Option<String>,
        #[command(flatten)]
        pytorch: PytorchArgs,
    },
    /// Where a U-Net's inference time goes: each distinct op at its shapes, timed alone on the
    /// compute device, times its count in the network (with --against-pytorch: PyTorch's time
    /// for the same op beside it).
    Ops {
        /// Channels at full resolution.
        #[arg(long, default_value_t = 32)]
        base_width: usize,
        /// Downsamplings.
        #[arg(long, default_value_t = 4)]
        levels: usize,
        /// Slice size.
        #[arg(long, default_value_t = 256)]
        size: usize,
        /// Slices per batch.
        #[arg(long, default_value_t = 4)]
        batch: usize,
        /// Timed runs per op (the best is kept, after one warm-up).
        #[arg(long, default_value_t = 3)]
        repeat: usize,
        /// The unfolded network (batch norms as separate ops).
        #[arg(long)]
        unfolded: bool,
        /// The training step instead: each op's forward and backward pass on the autodiff
        /// device (batch norms in training mode), then the step's phases (forward, backward, Adam).
        #[arg(long)]
        train: bool,
        #[command(flatten)]
        pytorch: PytorchArgs,
    },
    /// Every benchmark in one run (load, register, models, synthesize, Grad-CAM, train, frame
    /// time) on the CPU and on the GPU adapter, with the PyTorch, SimpleITK and pydicom
    /// references in the same run; `--json FILE` keeps every figure.
    All(all::AllArgs),
    /// Peak memory of training data for 10 and 100 phantom patients: streamed from an index
    /// (worker threads, bounded prefetch) against loaded whole, each in a fresh process.
    Stream(stream::StreamBenchArgs),
    /// DICOM series load time (GB/s of the stored bytes, peak memory) of PATH against a raw
    /// read of the same bytes, and with --against pydicom against pydicom in the same run.
    Load {
        /// Folder or files (default: a generated CT series, --slices of --size^2 int16, written
        /// once under the temp folder).
        path: Option<PathBuf>,
        /// Timed repetitions of each load (the median is reported).
        #[arg(long, default_value_t = 5)]
        repeat: usize,
        /// Also load the same files with pydicom (scripts/pydicom_reference.py).
        #[arg(long, value_name = "pydicom", value_parser = ["pydicom"])]
        against: Option<String>,
        /// Python with pydicom (default: target/py-sitk/bin/python, else python3).
        #[arg(long)]
        python: Option<PathBuf>,
        /// Slices of the generated series.
        #[arg(long, default_value_t = 300)]
        slices: usize,
        /// Rows and columns of the generated series.
        #[arg(long, default_value_t = 512)]
        size: usize,
        /// Internal: one load of PATH in this fresh process, printed as JSON (the parent's
        /// fresh-process row).
        #[arg(long, hide = true, requires = "path")]
        child: bool,
    },
}

/// `bench ...` (`device`: the `--device` flag).
pub(super) fn run(what: Bench, device: Option<crate::gpu::DeviceChoice>) -> anyhow::Result<()> {
    // Before the compute device: its start-up would weigh in the measured memory.
    if let Bench::Stream(a) = &what {
        return stream::run(a);
    }
    let c = super::compute_device(device)?;
    println!("compute device: {}", c.describe());
    match what {
        Bench::Synthesize { slices, batch } => bench_synthesize(slices, batch),
        Bench::Models {
            size,
            batch,
            repeat,
            models,
            pytorch,
        } => bench_models(size, batch, repeat, &models, &pytorch),
        Bench::Register {
            contrast,
            python,
            affine,
            against,
        } => register::bench_register(&contrast, python, affine, against.is_some()),
        Bench::Train {
            size,
            batch,
            steps,
            models,
            cyclegan,
            pytorch,
        } => {
            let rates = bench_train_rates(size, batch, steps, &models, &pytorch)?;
            match cyclegan {
                Some(c) => super::cyclegan::bench(&c, size, batch, steps, rates.first()),
                None => Ok(()),
            }
        }
        Bench::Load {
            path: Some(path),
            child: true,
            ..
        } => load::child_load(&path),
        Bench::Load {
            path,
            repeat,
            against,
            python,
            slices,
            size,
            child: _,
        } => load::bench_load(&load::LoadArgs {
            path,
            repeat,
            against_pydicom: against.is_some(),
            python,
            slices,
            size,
        }),
        Bench::All(a) => all::run(&a),
        Bench::Stream(a) => stream::run(&a),
        Bench::Ops {
            base_width,
            levels,
            size,
            batch,
            repeat,
            unfolded: _,
            train,
            pytorch,
        } if train => ops::run_train((base_width, levels, size, batch, repeat), &pytorch),
        Bench::Ops {
            base_width,
            levels,
            size,
            batch,
            repeat,
            unfolded,
            pytorch,
            ..
        } => ops::run(
            (base_width, levels, size, batch, repeat),
            !unfolded,
            &pytorch,
        ),
    }
}

/// The script's arguments for the same networks and shapes.
pub(super) fn script_shapes(
    models: &str,
    size: usize,
    batch: usize,
    repeat: usize,
    conv_before_up: bool,
) -> Vec<String> {
    let mut v: Vec<String> = [
        "--models",
        models,
        "--size",
        &size.to_string(),
        "--batch",
        &batch.to_string(),
        "--repeat",
        &repeat.to_string(),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    if conv_before_up {
        v.push("--conv-before-up".into());
    }
    v
}

/// `bench models`: forward-pass throughput of U-Net and DRUNet, as trained and folded.
fn bench_models(
    size: usize,
    batch: usize,
    repeat: usize,
    models: &str,
    pytorch: &PytorchArgs,
) -> anyhow::Result<()> {
    use crate::model::checkpoint::AnyModel;
    use burn::tensor::{Distribution, Tensor};
    let nets = BenchNet::parse_list(models)?;
    let c = crate::gpu::compute()?;
    let d = &c.device;
    println!("device: {}; batch {batch} x {size}x{size}", c.summary());
    let time = |name: &str, cin: usize, f: &dyn Fn(Tensor<4>) -> Tensor<4>| -> f64 {
        let x = Tensor::<4>::random([batch, cin, size, size], Distribution::Normal(0.0, 1.0), d);
        let t = Instant::now();
        let _ = f(x.clone()).into_data();
        let warm = t.elapsed().as_secs_f64();
        let t = Instant::now();
        for _ in 0..repeat.max(1) {
            let _ = f(x.clone()).into_data();
        }
        let s = t.elapsed().as_secs_f64() / repeat.max(1) as f64;
        println!(
            "{name:<20} {:8.2} slices/s  ({:.1} ms per batch of {batch}; first batch incl. kernel compilation {:.1} s)",
            batch as f64 / s,
            s * 1e3,
            warm
        );
        record(
            "models",
            json!({"net": name, "size": size, "batch": batch, "slices_per_s": batch as f64 / s,
                   "ms_per_batch": s * 1e3, "first_batch_s": warm}),
        );
        batch as f64 / s
    };
    let mut ours = Vec::new();
    for (spec, net) in &nets {
        let model = net.spec(size).init(d).map_err(|e| anyhow::anyhow!(e))?;
        let forward = |m: &AnyModel, x: Tensor<4>| match m {
            AnyModel::Unet(m) => m.forward(x),
            AnyModel::Drunet(m) => m.forward(x),
            AnyModel::Classifier(_) | AnyModel::ResnetGenerator(_) => {
                unreachable!("not benchmarked")
            }
        };
        let (cin, _) = model.input_layout();
        time(&net.name(), cin, &|x| forward(&model, x));
        let t = Instant::now();
        let folded = model.folded();
        let fold_ms = t.elapsed().as_secs_f64() * 1e3;
        let rate = time(&format!("{} folded", net.name()), cin, &|x| {
            forward(&folded, x)
        });
        println!("{:<20} (folding the batch norms took {fold_ms:.1} ms)", "");
        ours.push((spec.clone(), net.name(), rate));
    }
    if pytorch.against_pytorch {
        let shapes = |c| script_shapes(models, size, batch, repeat, c);
        against_pytorch(
            pytorch,
            "infer",
            &shapes,
            &ours,
            ("slices_per_s", "slices/s"),
            "eval + no_grad",
        );
    }
    Ok(())
}

/// The PyTorch reference script in `mode` on the same shapes (`shapes(conv_before_up)`), twice:
/// with its up blocks as published (nearest x2 then 1x1 conv) and rewritten as ours; each run
/// printed beside `ours` as (JSON key, unit).
fn against_pytorch(
    pytorch: &PytorchArgs,
    mode: &str,
    shapes: &dyn Fn(bool) -> Vec<String>,
    ours: &[(String, String, f64)],
    (key, unit): (&str, &str),
    what: &str,
) {
    for conv_before_up in [false, true] {
        let mut script = vec![mode.to_string()];
        script.extend(shapes(conv_before_up));
        let Some(v) = run_pytorch(pytorch, &script) else {
            break;
        };
        let up = if conv_before_up {
            "Up as 1x1 conv then nearest x2 as ours"
        } else {
            "Up as nearest x2 then 1x1 conv"
        };
        print_against(&v, ours, key, unit, &format!("{what}, {up}"));
    }
}

/// `bench synthesize`: whole-pipeline synthesis and Grad-CAM timings with untrained networks.
fn bench_synthesize(slices: usize, batch: usize) -> anyhow::Result<()> {
    use crate::model::checkpoint::ModelSpec;
    use crate::model::{Direction, DrunetConfig, UnetConfig};
    let g = crate::gpu::compute()?;
    let mr = phantom::phantom_mr(&phantom::PhantomConfig::default(), phantom::MrContrast::T1);
    let input = middle_slab(&mr, slices);
    let [nx, ny, n] = input.geometry.dims;
    println!(
        "device: {}; {n} slices of {nx}x{ny}, batch {batch}",
        g.summary()
    );
    for (name, spec) in [
        (
            "U-Net",
            ModelSpec::Unet(UnetConfig::new().with_direction(Direction::MrToCt)),
        ),
        (
            "DRUNet-34",
            ModelSpec::Drunet(
                DrunetConfig::new()
                    .with_depth(34)
                    .with_direction(Direction::MrToCt),
            ),
        ),
    ] {
        let model = spec.init(&g.device).map_err(|e| anyhow::anyhow!(e))?;
        // One warm-up batch compiles the kernels.
        let warm = Instant::now();
        let one = slab(&input, 0, 1);
        crate::synth::synthesize(
            &model,
            Direction::MrToCt,
            &one,
            1,
            &g.device,
            &Progress::default(),
        )?;
        let warm = warm.elapsed().as_secs_f64();
        let t = Instant::now();
        let opts = crate::synth::SynthOptions {
            batch,
            precision: crate::model::half::Precision::F32,
        };
        let (out32, st) = crate::synth::synthesize_timed(
            &model,
            Direction::MrToCt,
            &input,
            &opts,
            &g.device,
            &Progress::default(),
        )?;
        let total = t.elapsed().as_secs_f64();
        println!(
            "{name:<10} {:7.2} slices/s; fold {:.0}%, prepare (overlapped) {:.0}%, waiting for it {:.0}%, network (incl. upload, read-back) {:.0}%, assemble {:.0}%; warm-up {:.1} s",
            n as f64 / total,
            100.0 * st.fold / total,
            100.0 * st.prepare / total,
            100.0 * st.wait / total,
            100.0 * st.network / total,
            100.0 * st.assemble / total,
            warm
        );
        record(
            "synthesize",
            json!({"net": name, "slices": n, "size": [nx, ny], "batch": batch, "precision": "f32",
                   "slices_per_s": n as f64 / total, "seconds": total, "warm_up_s": warm,
                   "share": {"fold": st.fold / total, "prepare": st.prepare / total,
                             "wait": st.wait / total,
                             "network": st.network / total, "assemble": st.assemble / total}}),
        );
        if crate::model::half::device_supports_f16(&g.device) {
            // The same volume in f16 (warm-up first: f16 kernels compile anew).
            let opts16 = crate::synth::SynthOptions {
                batch,
                precision: crate::model::half::Precision::F16,
            };
            let p = Progress::default();
            crate::synth::synthesize_with(&model, Direction::MrToCt, &one, &opts16, &g.device, &p)?;
            let t = Instant::now();
            let (out16, _) = crate::synth::synthesize_timed(
                &model,
                Direction::MrToCt,
                &input,
                &opts16,
                &g.device,
                &p,
            )?;
            let secs = t.elapsed().as_secs_f64();
            // PSNR of f16 against f32, peak = the HU range the network maps its 0..1 onto
            // (as tests/synthesis.rs; the weights are untrained, so this is the arithmetic's
            // error, not a trained model's).
            let (lo, hi) = crate::model::normalise::CT_RANGE;
            let mse = out32
                .data
                .iter()
                .zip(&out16.data)
                .map(|(a, b)| ((a - b) as f64).powi(2))
                .sum::<f64>()
                / out32.data.len().max(1) as f64;
            let psnr = 10.0 * ((hi - lo) as f64).powi(2).log10() - 10.0 * mse.max(1e-12).log10();
            println!(
                "{name:<10} {:7.2} slices/s in f16 ({:.2}x f32); f16 vs f32 output PSNR {psnr:.1} dB",
                n as f64 / secs,
                total / secs
            );
            record(
                "synthesize",
                json!({"net": name, "slices": n, "size": [nx, ny], "batch": batch, "precision": "f16",
                       "slices_per_s": n as f64 / secs, "seconds": secs,
                       "speedup_vs_f32": total / secs, "psnr_vs_f32_db": psnr}),
            );
        }
        // Grad-CAM of the middle slice (a disc target; one forward and one backward pass):
        // first call (compiles the backward kernels), then warm.
        let cam_once = || {
            let t = Instant::now();
            let r = crate::analysis::gradcam::slice_gradcam(
                &model,
                Direction::MrToCt,
                &input,
                n / 2,
                1,
                crate::analysis::gradcam::CamTarget::Disc {
                    x: nx / 2,
                    y: ny / 2,
                    radius: 16.0,
                },
                &g.device,
            );
            (t.elapsed().as_secs_f64(), r)
        };
        let (cold_s, _) = cam_once();
        let (cam_s, cam) = cam_once();
        let (rss, peak) = process_memory_mib();
        record(
            "gradcam",
            json!({"net": name, "size": [nx, ny], "warm_s": cam_s, "first_s": cold_s,
                   "ok": cam.is_ok(), "rss_mib": rss, "peak_rss_mib": peak}),
        );
        println!(
            "{name:<10} Grad-CAM of one slice {:.2} s warm ({cold_s:.1} s first){}; process memory {rss:.0} MiB (peak {peak:.0} MiB; on a CPU or software adapter this includes the tensors)",
            cam_s,
            match cam {
                Ok(_) => String::new(),
                Err(e) => format!(" (failed: {e})"),
            }
        );
    }
    Ok(())
}

/// Resident and peak resident memory of this process (MiB), from /proc/self/status (0 where
/// there is none).
fn process_memory_mib() -> (f64, f64) {
    let text = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        text.lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<f64>().ok())
            .map_or(0.0, |kb| kb / 1024.0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// `bench train`: training steps/s on the compute device, on random data.
fn bench_train(
    size: usize,
    batch: usize,
    steps: usize,
    models: &str,
    pytorch: &PytorchArgs,
) -> anyhow::Result<()> {
    bench_train_rates(size, batch, steps, models, pytorch).map(|_| ())
}

/// [`bench_train`], returning each network's name and steps/s.
fn bench_train_rates(
    size: usize,
    batch: usize,
    steps: usize,
    models: &str,
    pytorch: &PytorchArgs,
) -> anyhow::Result<Vec<(String, f64)>> {
    use crate::model::checkpoint::AnyModel;
    use burn::module::Module;
    use burn::optim::GradientsParams;
    use burn::tensor::{Distribution, Tensor};
    let nets = BenchNet::parse_list(models)?;
    let c = crate::gpu::compute()?;
    let ad = c.device.clone().autodiff();
    println!(
        "device: {}; batch {batch} x {size}x{size}, MSE, Adam",
        c.summary()
    );
    fn time<M: Module>(
        name: &str,
        mut model: M,
        cin: usize,
        forward: &dyn Fn(&M, Tensor<4>) -> Tensor<4>,
        (batch, size, steps): (usize, usize, usize),
        ad: &burn::tensor::Device,
    ) -> f64 {
        let x = Tensor::<4>::random([batch, cin, size, size], Distribution::Default, ad);
        let y = Tensor::<4>::random([batch, 1, size, size], Distribution::Default, ad);
        let mut optim = crate::train::adam::adam(0.9, 0.999);
        let mut step = |m: M| -> (M, f32) {
            let loss = (forward(&m, x.clone()) - y.clone()).powi_scalar(2).mean();
            let v = loss.clone().into_scalar::<f32>();
            let grads = GradientsParams::from_grads(loss.backward(), &m);
            (optim.step(1e-3, m, grads), v)
        };
        let t = Instant::now();
        let (m, _) = step(model);
        model = m;
        let warm = t.elapsed().as_secs_f64();
        let t = Instant::now();
        for _ in 0..steps.max(1) {
            let (m, _) = step(model);
            model = m;
        }
        let s = t.elapsed().as_secs_f64() / steps.max(1) as f64;
        println!(
            "{name:<12} {:7.3} steps/s  {:7.2} images/s  ({:.0} ms per step; first step incl. kernel compilation {:.1} s; {} parameters)",
            1.0 / s,
            batch as f64 / s,
            s * 1e3,
            warm,
            model.num_params()
        );
        record(
            "train",
            json!({"net": name, "size": size, "batch": batch, "steps_per_s": 1.0 / s,
                   "images_per_s": batch as f64 / s, "first_step_s": warm,
                   "params": model.num_params()}),
        );
        1.0 / s
    }
    let args = (batch, size, steps);
    let mut ours = Vec::new();
    for (spec, net) in &nets {
        let rate = match net.spec(size).init(&ad).map_err(|e| anyhow::anyhow!(e))? {
            AnyModel::Unet(m) => time(&net.name(), m, 1, &|m, x| m.forward(x), args, &ad),
            AnyModel::Drunet(m) => time(&net.name(), m, 3, &|m, x| m.forward(x), args, &ad),
            AnyModel::Classifier(_) | AnyModel::ResnetGenerator(_) => {
                unreachable!("not benchmarked")
            }
        };
        ours.push((spec.clone(), net.name(), rate));
    }
    if pytorch.against_pytorch {
        let shapes = |c| script_shapes(models, size, batch, steps, c);
        against_pytorch(
            pytorch,
            "train",
            &shapes,
            &ours,
            ("steps_per_s", "steps/s"),
            "train mode, MSE, Adam",
        );
    }
    Ok(ours
        .into_iter()
        .map(|(_, name, rate)| (name, rate))
        .collect())
}
