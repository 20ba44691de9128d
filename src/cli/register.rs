//! `register`: align a moving image to a fixed one and write the transform.

use super::data::first_volume;
use crate::io::{Progress, nifti};
use anyhow::Context;
use clap::Args;
use std::path::PathBuf;

/// `register` arguments.
#[derive(Args, Debug)]
pub struct RegisterArgs {
    /// Fixed image (folder or file); the reference grid.
    #[arg(long)]
    pub fixed: PathBuf,
    /// Moving image (folder or file).
    #[arg(long)]
    pub moving: PathBuf,
    /// Output ITK transform file (.tfm, fixed-to-moving, LPS).
    #[arg(long)]
    pub out: PathBuf,
    /// Also write the moving image resampled onto the fixed grid (NIfTI).
    #[arg(long)]
    pub resampled: Option<PathBuf>,
    /// Mask on the fixed grid: samples are drawn where it is non-zero.
    #[arg(long)]
    pub mask: Option<PathBuf>,
    /// Add the affine stage (12 degrees of freedom) after the rigid one, for scanner distortion.
    #[arg(long, conflicts_with = "rigid_only")]
    pub affine: bool,
    /// Rigid only: the default now, kept so older scripts still run.
    #[arg(long, hide = true)]
    pub rigid_only: bool,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// `register`: align MOVING to FIXED, write the transform (and the resampled image), report.
pub(super) fn run(a: &RegisterArgs) -> anyhow::Result<()> {
    let (fixed, moving, out) = (a.fixed.as_path(), a.moving.as_path(), a.out.as_path());
    let (resampled, mask) = (a.resampled.as_deref(), a.mask.as_deref());
    let (affine, json) = (a.affine, a.json);
    use crate::register::{RegistrationConfig, register};
    use crate::volume::resample::resample;
    let f = first_volume(fixed)?;
    let m = first_volume(moving)?;
    let mk = mask.map(first_volume).transpose()?;
    let cfg = RegistrationConfig {
        affine,
        ..Default::default()
    };
    let r = register(&f, &m, mk.as_ref(), &cfg, &Progress::default(), |_| {})?;
    r.transform
        .write_tfm(out)
        .with_context(|| format!("cannot write {}", out.display()))?;
    if let Some(p) = resampled {
        let (min, _) = m.min_max();
        nifti::write_nifti(&resample(&m, &f.geometry, &r.transform, min), p)?;
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
