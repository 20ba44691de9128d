//! The command line: `synthscope [PATH...]` opens the GUI; subcommands run the same code headless.

use crate::app::{self, AppOptions};
use crate::io::{self, LoadError, Progress, dicom_write, nifti_io, phantom};
use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// SynthScope: cross-modality MR <-> CT synthesis viewer.
#[derive(Parser, Debug)]
#[command(name = "synthscope", version, args_conflicts_with_subcommands = true)]
pub struct Cli {
    /// DICOM folders or files, or NIfTI files, to open in the viewer (default: the demo pair).
    pub paths: Vec<PathBuf>,
    /// Open the demo pair on small grids (quick start, tests).
    #[arg(long, hide = true)]
    pub small_demo: bool,
    /// Benchmark: scroll one slice per frame for N frames, print frame times and exit.
    #[arg(long, value_name = "N")]
    pub autoscroll: Option<usize>,
    /// Open the Training panel with this run config (TOML/JSON) and start it.
    #[arg(long, value_name = "CONFIG")]
    pub train: Option<PathBuf>,
    /// Save the three panes as PNG once the data is shown, then quit.
    #[arg(long, value_name = "PNG", conflicts_with = "autoscroll")]
    pub screenshot: Option<PathBuf>,
    /// Subcommand.
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// Subcommands.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// List the series found under PATHs (dims, spacing, geometry, value range, warnings).
    Info {
        /// Files or folders.
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Convert the series found in IN (folders or files) to NIfTI (OUT.nii or OUT.nii.gz).
    Convert {
        /// Inputs, then the output file last.
        #[arg(required = true, num_args = 2..)]
        args: Vec<PathBuf>,
    },
    /// Write the demo phantom (CT, T1 and T2 MR) as DICOM series and NIfTI files.
    Phantom {
        /// Output folder.
        #[arg(long)]
        out: PathBuf,
        /// Number of CT slices over the same extent (default 96).
        #[arg(long)]
        ct_slices: Option<usize>,
        /// Small grids (fast, for tests).
        #[arg(long)]
        small: bool,
        /// Noise seed.
        #[arg(long, default_value_t = 7)]
        seed: u64,
    },
    /// Align MOVING (e.g. MR) to FIXED (e.g. CT): rigid then affine, Mattes mutual information.
    Register {
        /// Fixed image (folder or file); the reference grid.
        #[arg(long)]
        fixed: PathBuf,
        /// Moving image (folder or file).
        #[arg(long)]
        moving: PathBuf,
        /// Output ITK transform file (.tfm, fixed-to-moving, LPS).
        #[arg(long)]
        out: PathBuf,
        /// Also write the moving image resampled onto the fixed grid (NIfTI).
        #[arg(long)]
        resampled: Option<PathBuf>,
        /// Mask on the fixed grid: samples are drawn where it is non-zero.
        #[arg(long)]
        mask: Option<PathBuf>,
        /// Rigid only (skip the affine stage).
        #[arg(long)]
        rigid_only: bool,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Metrics of a prediction against a reference (same grid): MAE, RMSE, PSNR, SSIM, Tenengrad,
    /// UQI over all voxels, inside the mask, and in bone (CT > 300 HU).
    Evaluate {
        /// Predicted (synthetic) image.
        #[arg(long)]
        pred: PathBuf,
        /// Reference (real) image.
        #[arg(long = "ref")]
        reference: PathBuf,
        /// Head mask on the same grid.
        #[arg(long)]
        mask: Option<PathBuf>,
        /// Data range for PSNR/SSIM (default: the reference's max - min).
        #[arg(long)]
        data_range: Option<f64>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
        /// Also write the table as CSV.
        #[arg(long)]
        csv: Option<PathBuf>,
    },
    /// Synthesise the other modality of INPUT with a checkpoint (OUT: .nii/.nii.gz, or a folder for a DICOM series).
    Synthesize {
        /// Checkpoint (.json or .bpk of the pair).
        #[arg(long)]
        model: PathBuf,
        /// Input volume (folder or file).
        #[arg(long)]
        input: PathBuf,
        /// Output NIfTI file, or a folder for a derived DICOM series.
        #[arg(long)]
        out: PathBuf,
        /// Slices per batch.
        #[arg(long, default_value_t = 4)]
        batch: usize,
    },
    /// Networks: parameter counts and encoder shapes.
    Model {
        /// What to show.
        #[command(subcommand)]
        what: ModelCmd,
    },
    /// Run the burn self-test on the shared GPU device and print the adapter.
    SelfTest {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Benchmarks.
    Bench {
        /// Which benchmark.
        #[command(subcommand)]
        what: Bench,
    },
    /// Train a synthesis network headless (the Training panel's loop) and write a run folder.
    Train {
        /// Run config (TOML or JSON; see README).
        #[arg(long)]
        config: PathBuf,
        /// Run folder (default: runs/NAME).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Train only the MR/CT classifier (config's data, seed and classifier_steps) and write
        /// OUT/classifier.{bpk,json}: the classifier Grad-CAM view and classifier losses load it.
        #[arg(long)]
        classifier_only: bool,
    },
    /// Training runs.
    Runs {
        /// What to do.
        #[command(subcommand)]
        what: RunsCmd,
    },
    /// Reader studies: blinded, randomised scoring of real against synthetic images.
    Study {
        /// What to do.
        #[command(subcommand)]
        what: StudyCmd,
    },
}

/// Reader-study subcommands.
#[derive(Subcommand, Debug)]
pub enum StudyCmd {
    /// Read a study full-screen (the blinded reading view); answers go to
    /// STUDY.answers/READER.jsonl beside the study file.
    Read {
        /// Study file (TOML or JSON).
        study: PathBuf,
        /// Reader ID (asked for in the window when not given).
        #[arg(long)]
        reader: Option<String>,
        /// Keep a normal window instead of full screen.
        #[arg(long)]
        windowed: bool,
        /// Feed these keys (as `study answer` takes them) to the window one at a time, then
        /// close it: automation and the crash test.
        #[arg(long, hide = true)]
        script_keys: Option<String>,
        /// Pause between scripted keys (ms).
        #[arg(long, hide = true, default_value_t = 100)]
        script_delay_ms: u64,
    },
    /// Print the summary of reader logs (files, or folders of *.jsonl): accuracy with 95% CI,
    /// Likert means by truth and source, Cohen's and Fleiss' kappa.
    Summary {
        /// Reader logs or folders of them.
        #[arg(required = true)]
        logs: Vec<PathBuf>,
        /// JSON instead of tables.
        #[arg(long)]
        json: bool,
        /// Also write one CSV row per answer here.
        #[arg(long)]
        csv: Option<PathBuf>,
    },
    /// Write a demo study: phantom patients' real CT and the demo model's synthetic CT of them.
    Demo {
        /// Output folder.
        #[arg(long)]
        out: PathBuf,
        /// Phantom patients (each gives a real and a synthetic case).
        #[arg(long, default_value_t = 3)]
        patients: usize,
        /// Slices kept per volume (a slab around the middle).
        #[arg(long, default_value_t = 24)]
        slab: usize,
        /// A/B pairs ("which is real?") instead of single images.
        #[arg(long)]
        pairs: bool,
    },
    /// Check a study file: its cases load and how many images each reader will see.
    Check {
        /// Study file.
        study: PathBuf,
    },
    /// Answer a study from a key script, as the reading view would (keys: r s a b 1-5 next
    /// back bs), appending to the reader's log. For scripted sessions and tests.
    Answer {
        /// Study file.
        study: PathBuf,
        /// Reader ID.
        #[arg(long)]
        reader: String,
        /// Keys, separated by spaces.
        #[arg(long)]
        keys: String,
        /// Pause before each key (ms).
        #[arg(long, default_value_t = 0)]
        delay_ms: u64,
        /// Log file (default: STUDY.answers/READER.jsonl).
        #[arg(long)]
        log: Option<PathBuf>,
    },
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

/// Model subcommands.
#[derive(Subcommand, Debug)]
pub enum ModelCmd {
    /// Turn PyTorch weights (.safetensors, .pt, .pth) of one of our architectures into a checkpoint.
    Import {
        /// The PyTorch state dict.
        #[arg(long)]
        weights: PathBuf,
        /// Architecture: unet, drunet18, drunet34, drunet50, drunet101, classifier.
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
    /// Forward-pass throughput (slices/s) of U-Net and DRUNet on the shared device, untrained
    /// weights (timing only; synthesis needs a trained checkpoint).
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
    },
    /// Registration of the demo pair: ours against SimpleITK (same metric and levels), with errors against the known answer.
    Register {
        /// MR contrast of the moving image.
        #[arg(long, default_value = "t1")]
        contrast: String,
        /// Python with SimpleITK (default: target/py-sitk/bin/python, else python3).
        #[arg(long)]
        python: Option<PathBuf>,
        /// Rigid only.
        #[arg(long)]
        rigid_only: bool,
    },
    /// Training steps/s (forward + backward + Adam, MSE) of U-Net and DRUNet-34 on the shared
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
    },
    /// Load throughput (MB/s, slices/s) of PATH, against plain file reading of the same bytes.
    Load {
        /// Folder or files.
        path: PathBuf,
        /// Repetitions (the best is reported).
        #[arg(long, default_value_t = 3)]
        repeat: usize,
    },
}

/// One series as `info --json` prints it.
#[derive(Serialize)]
struct SeriesInfo {
    series_uid: String,
    modality: String,
    description: String,
    dims: [usize; 3],
    spacing: [f64; 3],
    origin: [f64; 3],
    direction: [f64; 9],
    min: f32,
    max: f32,
    warnings: Vec<String>,
}

fn load(paths: &[PathBuf]) -> anyhow::Result<io::LoadOutcome> {
    let outcome = io::load_paths(paths, &Progress::default())?;
    if outcome.volumes.is_empty() {
        match outcome.errors.first() {
            Some(e) => bail!("{e}"),
            None => bail!("no images found"),
        }
    }
    for e in &outcome.errors {
        eprintln!("warning: skipped {e}");
    }
    Ok(outcome)
}

/// Entry point of the binary.
pub fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        None => app::run(AppOptions {
            paths: cli.paths,
            small_demo: cli.small_demo,
            self_test: true,
            autoscroll_frames: cli.autoscroll,
            train_config: cli.train,
            study: None,
            screenshot: cli.screenshot,
        }),
        Some(Command::Info { paths, json }) => info(&paths, json),
        Some(Command::Convert { mut args }) => {
            let out = args.pop().context("missing output file")?;
            convert(&args, &out)
        }
        Some(Command::Phantom {
            out,
            ct_slices,
            small,
            seed,
        }) => {
            let mut cfg = if small {
                phantom::PhantomConfig::small()
            } else {
                phantom::PhantomConfig::default()
            };
            cfg.seed = seed;
            if let Some(n) = ct_slices {
                cfg = cfg.with_ct_slices(n);
            }
            write_phantom(&cfg, &out)
        }
        Some(Command::SelfTest { json }) => {
            let g = crate::gpu::shared()?;
            let t0 = Instant::now();
            let t = crate::gpu::self_test(&g.device, 64)?;
            if json {
                println!(
                    "{}",
                    serde_json::json!({"adapter": g.report, "self_test": t, "first_run_ms": t0.elapsed().as_secs_f64() * 1e3})
                );
            } else {
                println!("adapter: {}", g.report.summary());
                println!(
                    "self-test: gpu {:.5} cpu {:.5} rel.err {:.2e} in {:.1} ms",
                    t.gpu_value, t.cpu_value, t.rel_error, t.gpu_ms
                );
            }
            if !t.passed() {
                bail!("GPU self-test failed: relative error {:.2e}", t.rel_error);
            }
            Ok(())
        }
        Some(Command::Bench {
            what: Bench::Load { path, repeat },
        }) => bench_load(&path, repeat),
        Some(Command::Bench {
            what:
                Bench::Register {
                    contrast,
                    python,
                    rigid_only,
                },
        }) => bench_register(&contrast, python, rigid_only),
        Some(Command::Evaluate {
            pred,
            reference,
            mask,
            data_range,
            json,
            csv,
        }) => evaluate_cmd(
            &pred,
            &reference,
            mask.as_deref(),
            data_range,
            json,
            csv.as_deref(),
        ),
        Some(Command::Model {
            what: ModelCmd::Summary { size },
        }) => model_summary(size),
        Some(Command::Model {
            what:
                ModelCmd::Import {
                    weights,
                    arch,
                    direction,
                    out,
                },
        }) => model_import(&weights, &arch, &direction, &out),
        Some(Command::Bench {
            what:
                Bench::Models {
                    size,
                    batch,
                    repeat,
                },
        }) => bench_models(size, batch, repeat),
        Some(Command::Bench {
            what: Bench::Synthesize { slices, batch },
        }) => bench_synthesize(slices, batch),
        Some(Command::Bench {
            what: Bench::Train { size, batch, steps },
        }) => crate::cli_train::bench_train(size, batch, steps),
        Some(Command::Train {
            config,
            out,
            classifier_only,
        }) => crate::cli_train::train_cmd(&config, out, classifier_only),
        Some(Command::Runs {
            what: RunsCmd::Compare { dirs, json },
        }) => crate::cli_train::runs_compare(&dirs, json),
        Some(Command::Study { what }) => study_cmd(what),
        Some(Command::Synthesize {
            model,
            input,
            out,
            batch,
        }) => synthesize_cmd(&model, &input, &out, batch),
        Some(Command::Register {
            fixed,
            moving,
            out,
            resampled,
            mask,
            rigid_only,
            json,
        }) => register_cmd(
            &fixed,
            &moving,
            &out,
            resampled.as_deref(),
            mask.as_deref(),
            rigid_only,
            json,
        ),
    }
}

fn info(paths: &[PathBuf], json: bool) -> anyhow::Result<()> {
    let outcome = load(paths)?;
    let series: Vec<SeriesInfo> = outcome
        .volumes
        .iter()
        .map(|v| {
            let (min, max) = v.min_max();
            SeriesInfo {
                series_uid: v.meta.series_uid.clone(),
                modality: v.meta.modality.clone(),
                description: v.meta.description.clone(),
                dims: v.geometry.dims,
                spacing: v.geometry.spacing,
                origin: v.geometry.origin,
                direction: v.geometry.direction_row_major(),
                min,
                max,
                warnings: v.meta.warnings.clone(),
            }
        })
        .collect();
    if json {
        println!("{}", serde_json::json!({ "series": series }));
    } else {
        for s in &series {
            println!("{} {} \"{}\"", s.modality, s.series_uid, s.description);
            println!(
                "  dims {:?}  spacing [{:.3}, {:.3}, {:.3}] mm  origin [{:.2}, {:.2}, {:.2}]  range [{}, {}]",
                s.dims,
                s.spacing[0],
                s.spacing[1],
                s.spacing[2],
                s.origin[0],
                s.origin[1],
                s.origin[2],
                s.min,
                s.max
            );
            for w in &s.warnings {
                println!("  warning: {w}");
            }
        }
    }
    Ok(())
}

fn convert(inputs: &[PathBuf], out: &Path) -> anyhow::Result<()> {
    if !io::is_nifti_path(out) {
        bail!("{}: the output must end in .nii or .nii.gz", out.display());
    }
    let outcome = load(inputs)?;
    let n = outcome.volumes.len();
    for (k, v) in outcome.volumes.iter().enumerate() {
        let target = if n == 1 {
            out.to_path_buf()
        } else {
            let name = out
                .file_name()
                .map(|s| s.to_string_lossy().to_string())
                .unwrap_or_default();
            let (stem, ext) = if let Some(s) = name.strip_suffix(".nii.gz") {
                (s.to_string(), "nii.gz")
            } else {
                (name.trim_end_matches(".nii").to_string(), "nii")
            };
            out.with_file_name(format!("{stem}_{}.{ext}", k + 1))
        };
        nifti_io::write_nifti(v, &target)?;
        println!(
            "{} -> {} ({} {}x{}x{})",
            v.meta.description,
            target.display(),
            v.meta.modality,
            v.geometry.dims[0],
            v.geometry.dims[1],
            v.geometry.dims[2]
        );
    }
    Ok(())
}

/// Write the phantom CT, T1 and T2 as DICOM series (`ct/`, `mr_t1/`, `mr_t2/`) and NIfTI files.
pub fn write_phantom(cfg: &phantom::PhantomConfig, out: &Path) -> anyhow::Result<()> {
    let t0 = Instant::now();
    let ct = phantom::phantom_ct(cfg);
    let t1 = phantom::phantom_mr(cfg, phantom::MrContrast::T1);
    let t2 = phantom::phantom_mr(cfg, phantom::MrContrast::T2);
    let gen_ms = t0.elapsed().as_secs_f64() * 1e3;
    std::fs::create_dir_all(out)
        .map_err(|e| LoadError::file(out, format!("cannot create folder: {e}")))?;
    for (v, dir, nii, num) in [
        (&ct, "ct", "ct.nii.gz", 1),
        (&t1, "mr_t1", "mr_t1.nii.gz", 2),
        (&t2, "mr_t2", "mr_t2.nii.gz", 3),
    ] {
        let opts = dicom_write::DicomWriteOptions {
            series_number: num,
            ..Default::default()
        };
        let files = dicom_write::write_series(v, &out.join(dir), &opts)?;
        nifti_io::write_nifti(v, &out.join(nii))?;
        println!(
            "{}: {} slices -> {}/ and {}",
            v.meta.description,
            files.len(),
            out.join(dir).display(),
            out.join(nii).display()
        );
    }
    let truth = serde_json::json!({
        "moving_from_fixed": cfg.moving_from_fixed,
        "note": "an MR point m corresponds to the CT point c with m = R (c - center) + center + translation, R = Rz*Ry*Rx",
        "config": cfg,
    });
    std::fs::write(
        out.join("phantom_truth.json"),
        serde_json::to_string_pretty(&truth)?,
    )?;
    println!(
        "generated in {gen_ms:.0} ms, written in {:.0} ms total",
        t0.elapsed().as_secs_f64() * 1e3
    );
    Ok(())
}

fn bench_load(path: &Path, repeat: usize) -> anyhow::Result<()> {
    let mut files = Vec::new();
    if path.is_dir() {
        let mut stack = vec![path.to_path_buf()];
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(&d)? {
                let p = e?.path();
                if p.is_dir() {
                    stack.push(p)
                } else {
                    files.push(p)
                }
            }
        }
    } else {
        files.push(path.to_path_buf());
    }
    let bytes: u64 = files
        .iter()
        .filter_map(|f| std::fs::metadata(f).ok())
        .map(|m| m.len())
        .sum();
    let mut best_read = f64::INFINITY;
    let mut best_load = f64::INFINITY;
    let mut slices = 0usize;
    let mut voxels = 0usize;
    for _ in 0..repeat.max(1) {
        let t = Instant::now();
        let mut n = 0usize;
        for f in &files {
            n += std::fs::read(f)?.len();
        }
        std::hint::black_box(n);
        best_read = best_read.min(t.elapsed().as_secs_f64());
        let t = Instant::now();
        let out = load(&[path.to_path_buf()])?;
        best_load = best_load.min(t.elapsed().as_secs_f64());
        slices = out.volumes.iter().map(|v| v.geometry.dims[2]).sum();
        voxels = out.volumes.iter().map(|v| v.data.len()).sum();
    }
    let mb = bytes as f64 / 1e6;
    println!(
        "files: {} ({:.1} MB), slices: {slices}, voxels: {voxels}",
        files.len(),
        mb
    );
    println!(
        "reference (plain read of the same files): {:.1} MB/s, {:.3} s",
        mb / best_read,
        best_read
    );
    println!(
        "load (scan + sort + decode + rescale):     {:.1} MB/s, {:.0} slices/s, {:.3} s",
        mb / best_load,
        slices as f64 / best_load,
        best_load
    );
    println!("ratio load/read time: {:.2}x", best_load / best_read);
    Ok(())
}

fn first_volume(path: &Path) -> anyhow::Result<crate::volume::Volume> {
    let mut out = load(&[path.to_path_buf()])?;
    if out.volumes.len() > 1 {
        eprintln!(
            "warning: {} holds {} series; using the first",
            path.display(),
            out.volumes.len()
        );
    }
    Ok(out.volumes.remove(0))
}

fn register_cmd(
    fixed: &Path,
    moving: &Path,
    out: &Path,
    resampled: Option<&Path>,
    mask: Option<&Path>,
    rigid_only: bool,
    json: bool,
) -> anyhow::Result<()> {
    use crate::register::{RegistrationConfig, register, resample};
    let f = first_volume(fixed)?;
    let m = first_volume(moving)?;
    let mk = mask.map(first_volume).transpose()?;
    let cfg = RegistrationConfig {
        affine: !rigid_only,
        ..Default::default()
    };
    let r = register(&f, &m, mk.as_ref(), &cfg, &Progress::default(), |_| {})?;
    r.transform
        .write_tfm(out)
        .with_context(|| format!("cannot write {}", out.display()))?;
    if let Some(p) = resampled {
        let (min, _) = m.min_max();
        nifti_io::write_nifti(&resample(&m, &f.geometry, &r.transform, min), p)?;
    }
    if json {
        println!("{}", serde_json::to_string(&r)?);
    } else {
        let d = &r.decomposition;
        for (label, v, digits) in [
            ("rotation (deg)", d.rotation_deg, 3),
            ("translation (mm)", d.translation, 3),
            ("scale", d.scale, 4),
            ("shear", d.shear, 4),
        ] {
            println!(
                "{label:<16} {:8.digits$} {:8.digits$} {:8.digits$}",
                v[0], v[1], v[2]
            );
        }
        println!("final Mattes MI  {:.4}", r.final_mi);
        for l in &r.levels {
            println!(
                "  {:?} shrink {}: {} iterations, MI {:.4}, {:.2} s",
                l.stage, l.shrink, l.iterations, l.mi, l.seconds
            );
        }
        println!("total {:.2} s -> {}", r.seconds, out.display());
    }
    Ok(())
}

fn bench_register(contrast: &str, python: Option<PathBuf>, rigid_only: bool) -> anyhow::Result<()> {
    use crate::register::{Affine, RegistrationConfig, register, transform_error};
    let cfg = phantom::PhantomConfig::default();
    let contrast = match contrast.to_ascii_lowercase().as_str() {
        "t1" => phantom::MrContrast::T1,
        "t2" => phantom::MrContrast::T2,
        other => bail!("unknown contrast {other}: t1 or t2"),
    };
    let ct = phantom::phantom_ct(&cfg);
    let mr = phantom::phantom_mr(&cfg, contrast);
    let r = cfg.moving_from_fixed;
    let truth = Affine::rigid(r.rotation_deg.map(f64::to_radians), r.translation, r.center);
    let dir = std::env::temp_dir().join(format!("synthscope-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let (fp, mp, tp) = (
        dir.join("ct.nii.gz"),
        dir.join("mr.nii.gz"),
        dir.join("sitk.tfm"),
    );
    nifti_io::write_nifti(&ct, &fp)?;
    nifti_io::write_nifti(&mr, &mp)?;
    use crate::register::MetricBackend;
    let mut ours_seconds = f64::NAN;
    for backend in [MetricBackend::Cpu, MetricBackend::Gpu, MetricBackend::Auto] {
        let rc = RegistrationConfig {
            affine: !rigid_only,
            backend,
            ..Default::default()
        };
        let ours = register(&ct, &mr, None, &rc, &Progress::default(), |_| {})?;
        let (tre, max) = transform_error(&ours.transform, &truth, &ct);
        let label = match backend {
            MetricBackend::Cpu => format!("CPU, rayon, {} threads", rayon::current_num_threads()),
            MetricBackend::Gpu => format!(
                "GPU, {}",
                crate::gpu::shared()
                    .map(|g| g.report.summary())
                    .unwrap_or_else(|e| e.to_string())
            ),
            MetricBackend::Auto => "auto: the faster per level, measured".to_string(),
        };
        println!(
            "SynthScope ({label}): {:.2} s, TRE mean {tre:.3} mm (max {max:.3})",
            ours.seconds
        );
        for l in &ours.levels {
            let ms = |v: Option<f64>| {
                v.map(|x| format!("{x:.1} ms"))
                    .unwrap_or_else(|| "-".into())
            };
            println!(
                "  {:?} shrink {}: {:.2} s ({:.0}%), {} iterations on {:?} (one evaluation: CPU {}, GPU {})",
                l.stage,
                l.shrink,
                l.seconds,
                100.0 * l.seconds / ours.seconds,
                l.iterations,
                l.backend,
                ms(l.eval_ms.0),
                ms(l.eval_ms.1)
            );
        }
        if backend == MetricBackend::Auto {
            ours_seconds = ours.seconds;
        }
    }
    let python = python.unwrap_or_else(|| {
        let venv = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/py-sitk/bin/python");
        if venv.exists() {
            venv
        } else {
            PathBuf::from("python3")
        }
    });
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scripts/sitk_reference.py");
    let mut cmd = std::process::Command::new(&python);
    cmd.arg(&script).arg("register").arg(&fp).arg(&mp).arg(&tp);
    if rigid_only {
        cmd.arg("--rigid-only");
    }
    let out = cmd
        .output()
        .with_context(|| format!("cannot run {}", python.display()))?;
    if !out.status.success() {
        bail!(
            "SimpleITK reference failed: {}",
            String::from_utf8_lossy(&out.stderr)
                .lines()
                .last()
                .unwrap_or("")
        );
    }
    let v: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    let sitk_s = v["seconds"].as_f64().unwrap_or(f64::NAN);
    let t = Affine::read_tfm(&tp).map_err(|e| anyhow::anyhow!(e))?;
    let (sitk_tre, sitk_max) = transform_error(&t, &truth, &ct);
    println!(
        "SimpleITK (same metric, bins, levels): {:.2} s, TRE mean {:.3} mm (max {:.3}); level times {}",
        sitk_s, sitk_tre, sitk_max, v["level_seconds"]
    );
    println!(
        "speed-up: {:.2}x (SimpleITK time / ours, auto backend)",
        sitk_s / ours_seconds
    );
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

fn evaluate_cmd(
    pred: &Path,
    reference: &Path,
    mask: Option<&Path>,
    data_range: Option<f64>,
    json: bool,
    csv: Option<&Path>,
) -> anyhow::Result<()> {
    let p = first_volume(pred)?;
    let r = first_volume(reference)?;
    let m = mask.map(first_volume).transpose()?;
    let reports = crate::analysis::evaluate_volumes(&p, &r, m.as_ref(), data_range)
        .map_err(|e| anyhow::anyhow!("{}: {e}", pred.display()))?;
    if let Some(c) = csv {
        std::fs::write(c, crate::analysis::to_csv(&reports))
            .with_context(|| format!("cannot write {}", c.display()))?;
    }
    if json {
        println!(
            "{}",
            serde_json::json!({ "pred": pred, "ref": reference, "metrics": reports })
        );
    } else {
        println!(
            "{:<6} {:>10} {:>10} {:>10} {:>9} {:>8} {:>9} {:>9} {:>7}",
            "region", "voxels", "MAE", "RMSE", "PSNR dB", "SSIM", "Ten pred", "Ten ref", "UQI"
        );
        for m in &reports {
            println!(
                "{:<6} {:>10} {:>10.3} {:>10.3} {:>9.3} {:>8.4} {:>9.4} {:>9.4} {:>7.4}",
                format!("{:?}", m.region),
                m.voxels,
                m.mae,
                m.rmse,
                m.psnr,
                m.ssim,
                m.tenengrad_pred,
                m.tenengrad_ref,
                m.uqi
            );
        }
        println!(
            "(PSNR/SSIM data range {:.1})",
            reports.first().map(|m| m.data_range).unwrap_or(0.0)
        );
    }
    Ok(())
}

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
    println!("(parameters as burn counts them: batch-norm running statistics included)");
    Ok(())
}

fn fmt_count(n: usize) -> String {
    if n >= 1_000_000 {
        format!("{:.2} M", n as f64 / 1e6)
    } else {
        format!("{:.1} k", n as f64 / 1e3)
    }
}

fn bench_models(size: usize, batch: usize, repeat: usize) -> anyhow::Result<()> {
    use crate::model::{DrunetConfig, UnetConfig};
    use burn::tensor::{Distribution, Tensor};
    let g = crate::gpu::shared()?;
    let d = &g.device;
    println!(
        "device: {}; batch {batch} x {size}x{size}",
        g.report.summary()
    );
    let time = |name: &str, cin: usize, f: &dyn Fn(Tensor<4>) -> Tensor<4>| -> anyhow::Result<()> {
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
            "{name:<10} {:8.2} slices/s  ({:.1} ms per batch of {batch}; first batch incl. kernel compilation {:.1} s)",
            batch as f64 / s,
            s * 1e3,
            warm
        );
        Ok(())
    };
    let unet = UnetConfig::new().with_input_size(size).init(d);
    time("U-Net", 1, &|x| unet.forward(x))?;
    {
        let depth = 34;
        let net = DrunetConfig::new()
            .with_depth(depth)
            .with_input_size(size)
            .init(d)
            .map_err(|e| anyhow::anyhow!(e))?;
        time(&format!("DRUNet-{depth}"), 3, &|x| net.forward(x))?;
    }
    Ok(())
}

fn synthesize_cmd(model: &Path, input: &Path, out: &Path, batch: usize) -> anyhow::Result<()> {
    use crate::model::checkpoint::{ModelSpec, load};
    let g = crate::gpu::shared()?;
    let (net, meta) = load(model, &g.device).map_err(|e| anyhow::anyhow!(e))?;
    let direction = match &meta.model {
        ModelSpec::Unet(c) => c.direction,
        ModelSpec::Drunet(c) => c.direction,
        ModelSpec::Classifier(_) => bail!(
            "{}: a classifier checkpoint cannot synthesise",
            model.display()
        ),
    };
    let v = first_volume(input)?;
    let t = Instant::now();
    let s = crate::synth::synthesize(&net, direction, &v, batch, &g.device, &Progress::default())?;
    let secs = t.elapsed().as_secs_f64();
    if io::is_nifti_path(out) {
        nifti_io::write_nifti(&s, out)?;
    } else {
        dicom_write::write_derived_series(&s, &v.meta, &s.meta.description, out)?;
    }
    println!(
        "{} -> {} ({} slices in {:.2} s, {:.2} slices/s on {})",
        v.meta.description,
        out.display(),
        v.geometry.dims[2],
        secs,
        v.geometry.dims[2] as f64 / secs,
        g.report.summary()
    );
    Ok(())
}

fn model_import(weights: &Path, arch: &str, direction: &str, out: &Path) -> anyhow::Result<()> {
    use crate::model::checkpoint::{ModelSpec, save};
    use crate::model::{ClassifierConfig, Direction, DrunetConfig, UnetConfig};
    let direction = match direction {
        "mr-to-ct" => Direction::MrToCt,
        "ct-to-mr" => Direction::CtToMr,
        other => bail!("unknown direction {other}: mr-to-ct or ct-to-mr"),
    };
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
        other => bail!("unknown architecture {other}: unet, drunet18/34/50/101, classifier"),
    };
    let g = crate::gpu::shared()?;
    let mut model = spec.init(&g.device).map_err(|e| anyhow::anyhow!(e))?;
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

fn bench_synthesize(slices: usize, batch: usize) -> anyhow::Result<()> {
    use crate::model::checkpoint::ModelSpec;
    use crate::model::{Direction, DrunetConfig, UnetConfig};
    let g = crate::gpu::shared()?;
    let mr = phantom::phantom_mr(&phantom::PhantomConfig::default(), phantom::MrContrast::T1);
    let [nx, ny, nz] = mr.geometry.dims;
    let n = slices.clamp(1, nz);
    let z0 = (nz - n) / 2;
    let mut geometry = mr.geometry.clone();
    geometry.origin = geometry.world_from_voxel([0.0, 0.0, z0 as f64]);
    geometry.dims = [nx, ny, n];
    let input = crate::volume::Volume::new(
        geometry,
        mr.data[z0 * nx * ny..(z0 + n) * nx * ny].to_vec(),
        mr.meta.clone(),
    );
    println!(
        "device: {}; {n} slices of {nx}x{ny}, batch {batch}",
        g.report.summary()
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
        let one = crate::volume::Volume::new(
            crate::volume::Geometry {
                dims: [nx, ny, 1],
                ..input.geometry.clone()
            },
            input.data[..nx * ny].to_vec(),
            input.meta.clone(),
        );
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
        let (_, st) = crate::synth::synthesize_timed(
            &model,
            Direction::MrToCt,
            &input,
            batch,
            &g.device,
            &Progress::default(),
        )?;
        let total = t.elapsed().as_secs_f64();
        println!(
            "{name:<10} {:7.2} slices/s; prepare {:.0}%, network (incl. read-back) {:.0}%, assemble {:.0}%; warm-up {:.1} s",
            n as f64 / total,
            100.0 * st.prepare / total,
            100.0 * st.network / total,
            100.0 * st.assemble / total,
            warm
        );
        // Grad-CAM of the middle slice (a disc target; one forward and one backward pass):
        // first call (compiles the backward kernels), then warm.
        let cam_once = || {
            let t = Instant::now();
            let r = crate::synth::slice_gradcam(
                &model,
                Direction::MrToCt,
                &input,
                n / 2,
                1,
                crate::synth::CamTarget::Disc {
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
        println!(
            "{name:<10} Grad-CAM of one slice {:.2} s warm ({cold_s:.1} s first){}; process memory {rss:.0} MiB (peak {peak:.0} MiB; on a software adapter this includes the \"GPU\" buffers)",
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
pub fn process_memory_mib() -> (f64, f64) {
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

fn study_cmd(what: StudyCmd) -> anyhow::Result<()> {
    use crate::cli_study;
    match what {
        StudyCmd::Read {
            study,
            reader,
            windowed,
            script_keys,
            script_delay_ms,
        } => app::run(AppOptions {
            study: Some(app::StudyOptions {
                file: study,
                reader,
                fullscreen: !windowed,
                script: match script_keys {
                    Some(k) => Some((
                        k.split_whitespace()
                            .map(|s| {
                                crate::study::session::StudyKey::parse(s)
                                    .ok_or_else(|| anyhow::anyhow!("unknown key {s:?}"))
                            })
                            .collect::<anyhow::Result<Vec<_>>>()?,
                        std::time::Duration::from_millis(script_delay_ms),
                    )),
                    None => None,
                },
            }),
            self_test: false,
            ..Default::default()
        }),
        StudyCmd::Summary { logs, json, csv } => cli_study::summary(&logs, json, csv),
        StudyCmd::Demo {
            out,
            patients,
            slab,
            pairs,
        } => cli_study::demo(
            &out,
            patients,
            slab,
            if pairs {
                crate::study::Design::Pair
            } else {
                crate::study::Design::Single
            },
        ),
        StudyCmd::Check { study } => {
            let s = crate::study::Study::read(&study).map_err(|e| anyhow::anyhow!(e))?;
            let slices = cli_study::resolve_slices(&s, &study, &Progress::default())
                .map_err(|e| anyhow::anyhow!(e))?;
            let trials = crate::study::trials(&s, &slices, "check");
            println!(
                "{}: study \"{}\" ({:?} design), {} cases, {} images per reader; digest {}",
                study.display(),
                s.name,
                s.design,
                s.cases.len(),
                trials.len(),
                s.digest()
            );
            for (c, z) in s.cases.iter().zip(&slices) {
                println!("  {:<20} {:<10} slices {:?}", c.id, c.truth.name(), z);
            }
            Ok(())
        }
        StudyCmd::Answer {
            study,
            reader,
            keys,
            delay_ms,
            log,
        } => cli_study::answer(&study, &reader, &keys, delay_ms, log),
    }
}
