//! `bench register`: the demo-pair registration against SimpleITK, both errors against the known answer.

use crate::io::{Progress, nifti, phantom};
use anyhow::{Context, bail};
use std::path::PathBuf;

/// `bench register`: ours (CPU, GPU, auto) against SimpleITK on the demo pair, with TREs.
pub(super) fn bench_register(
    contrast: &str,
    python: Option<PathBuf>,
    affine: bool,
    elastix: bool,
) -> anyhow::Result<()> {
    use crate::register::{RegistrationConfig, register, transform_error};
    use crate::volume::Affine;
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
    nifti::write_nifti(&ct, &fp)?;
    nifti::write_nifti(&mr, &mp)?;
    use crate::register::MetricBackend;
    let mut ours_seconds = f64::NAN;
    for backend in [MetricBackend::Cpu, MetricBackend::Gpu, MetricBackend::Auto] {
        let rc = RegistrationConfig {
            affine,
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
        super::record(
            "register",
            serde_json::json!({"tool": "synthscope", "backend": label, "seconds": ours.seconds,
                "tre_mm": tre, "tre_max_mm": max, "affine": affine}),
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
    if !affine {
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
    super::record(
        "register",
        serde_json::json!({"tool": "simpleitk", "seconds": sitk_s, "tre_mm": sitk_tre,
            "tre_max_mm": sitk_max, "affine": affine}),
    );
    println!(
        "speed-up: {:.2}x (SimpleITK time / ours, auto backend)",
        sitk_s / ours_seconds
    );
    if elastix {
        if !crate::register::elastix::available() {
            println!("elastix: not installed (Debian/Ubuntu: apt-get install elastix); skipped");
        } else {
            let e = crate::register::elastix::register(&fp, &mp, affine, &dir.join("elastix"))
                .map_err(|e| anyhow::anyhow!(e))?;
            let (tre, max) = transform_error(&e.transform, &truth, &ct);
            println!(
                "elastix {} (rigid{}, Mattes MI 32 bins, 3 levels, ASGD): {:.2} s, TRE mean {tre:.3} mm (max {max:.3}); speed-up {:.2}x (elastix time / ours)",
                e.version,
                if affine { " + affine" } else { "" },
                e.seconds,
                e.seconds / ours_seconds
            );
            super::record(
                "register",
                serde_json::json!({"tool": "elastix", "version": e.version, "seconds": e.seconds,
                    "tre_mm": tre, "tre_max_mm": max, "affine": affine}),
            );
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
