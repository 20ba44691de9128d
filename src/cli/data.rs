//! Data commands: `info`, `convert`, `phantom`, and the loading every command shares.

use crate::io::dicom::write as dicom_write;
use crate::io::{self, LoadError, Progress, nifti, phantom};
use crate::volume::{Modality, Volume};
use anyhow::{Context, bail};
use clap::Args;
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// `phantom` arguments.
#[derive(Args, Debug)]
pub struct PhantomArgs {
    /// Output folder.
    #[arg(long)]
    pub out: PathBuf,
    /// Number of CT slices over the same extent (default 96).
    #[arg(long)]
    pub ct_slices: Option<usize>,
    /// Small grids (fast, for tests).
    #[arg(long)]
    pub small: bool,
    /// Noise seed.
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
    /// Also simulate ultrasound of the head on the MR grid (`us.nii.gz`, B-mode 0..1).
    #[arg(long)]
    pub ultrasound: bool,
    /// Instead: abdominal lesion phantoms for CT denoising, each as truth, normal-dose and
    /// simulated low-dose NIfTI (projection-domain Poisson noise) with its lesions as JSON.
    #[arg(long)]
    pub low_dose: bool,
    /// Lesion phantom patients (with --low-dose).
    #[arg(long, default_value_t = 1, requires = "low_dose")]
    pub patients: usize,
    /// Low dose / normal dose (with --low-dose).
    #[arg(long, default_value_t = 0.25, requires = "low_dose")]
    pub dose_fraction: f64,
    /// Normal-dose photons per ray (with --low-dose).
    #[arg(long, default_value_t = 2.0e5, requires = "low_dose")]
    pub i0: f64,
}

/// One series as `info --json` prints it.
#[derive(Serialize)]
struct SeriesInfo {
    series_uid: String,
    modality: Modality,
    description: String,
    dims: [usize; 3],
    spacing: [f64; 3],
    origin: [f64; 3],
    direction: [f64; 9],
    min: f32,
    max: f32,
    warnings: Vec<String>,
}

/// Everything under `paths`, skipped files reported as warnings; an error when nothing loads.
pub(super) fn load(paths: &[PathBuf]) -> anyhow::Result<io::LoadOutcome> {
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

/// The first volume under `path` (a warning when there are more).
pub(super) fn first_volume(path: &Path) -> anyhow::Result<Volume> {
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

/// Slices `z0..z0 + n` of `v` as a volume of their own (the origin moved to slice `z0`).
pub(super) fn slab(v: &Volume, z0: usize, n: usize) -> Volume {
    let [nx, ny, _] = v.geometry.dims;
    let mut geometry = v.geometry.clone();
    geometry.origin = v.geometry.world_from_voxel([0.0, 0.0, z0 as f64]);
    geometry.dims = [nx, ny, n];
    Volume::new(
        geometry,
        v.data[z0 * nx * ny..(z0 + n) * nx * ny].to_vec(),
        v.meta.clone(),
    )
}

/// The middle `n` slices of `v` (at least one, at most all).
pub(super) fn middle_slab(v: &Volume, n: usize) -> Volume {
    let nz = v.geometry.dims[2];
    let n = n.clamp(1, nz);
    slab(v, (nz - n) / 2, n)
}

/// `info`: the series under `paths`, as text or JSON.
pub(super) fn info(paths: &[PathBuf], json: bool) -> anyhow::Result<()> {
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

/// `convert IN... OUT`: the series found in the inputs as NIfTI files.
pub(super) fn convert(mut args: Vec<PathBuf>) -> anyhow::Result<()> {
    let out = args.pop().context("missing output file")?;
    let (inputs, out) = (&args[..], out.as_path());
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
        nifti::write_nifti(v, &target)?;
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

/// `phantom`: the demo phantom as DICOM series and NIfTI files.
pub(super) fn phantom(a: &PhantomArgs) -> anyhow::Result<()> {
    if a.low_dose {
        let dose = crate::synth::ldct::DoseConfig {
            i0: a.i0,
            dose_fraction: a.dose_fraction,
            ..Default::default()
        };
        return super::ldct::write_low_dose_phantom(&a.out, a.patients, &dose);
    }
    let mut cfg = if a.small {
        phantom::PhantomConfig::small()
    } else {
        phantom::PhantomConfig::default()
    };
    cfg.seed = a.seed;
    if let Some(n) = a.ct_slices {
        cfg = cfg.with_ct_slices(n);
    }
    write_phantom(&cfg, &a.out)?;
    if a.ultrasound {
        let t0 = Instant::now();
        let us = crate::io::ultrasound::phantom_ultrasound(&cfg);
        let path = a.out.join("us.nii.gz");
        nifti::write_nifti(&us, &path)?;
        println!(
            "{}: {} slices -> {} ({:.0} ms)",
            us.meta.description,
            us.geometry.dims[2],
            path.display(),
            t0.elapsed().as_secs_f64() * 1e3
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
        nifti::write_nifti(v, &out.join(nii))?;
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
    crate::atomic::write(
        &out.join("phantom_truth.json"),
        serde_json::to_string_pretty(&truth)?,
    )?;
    println!(
        "generated in {gen_ms:.0} ms, written in {:.0} ms total",
        t0.elapsed().as_secs_f64() * 1e3
    );
    Ok(())
}
