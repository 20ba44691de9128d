#![allow(clippy::needless_range_loop)]
//! Registration known-answer tests: the demo MR (T1 and T2) is displaced from the CT by a known
//! rigid transform; same-modality pairs are moved by known affine transforms. Targets: mean target
//! registration error over the head <= 0.5 mm, rotation error <= 0.5 degrees.

mod common;

use synthscope::io::Progress;
use synthscope::io::phantom::{MrContrast, PhantomConfig, phantom_ct, phantom_mr};
use synthscope::register::{RegisterError, RegistrationConfig, register, transform_error};
use synthscope::volume::Affine;
use synthscope::volume::Volume;
use synthscope::volume::resample::resample;

fn truth(cfg: &PhantomConfig) -> Affine {
    let r = cfg.moving_from_fixed;
    Affine::rigid(r.rotation_deg.map(f64::to_radians), r.translation, r.center)
}

fn check(name: &str, fixed: &Volume, moving: &Volume, want: &Affine, cfg: &RegistrationConfig) {
    let r = register(fixed, moving, None, cfg, &Progress::default(), |_| {}).unwrap();
    let (mean, max) = transform_error(&r.transform, want, fixed);
    let got = r.decomposition.rotation_deg;
    let exp = want.decompose().rotation_deg;
    let rot_err = (0..3).map(|a| (got[a] - exp[a]).abs()).fold(0.0, f64::max);
    eprintln!(
        "{name}: TRE mean {mean:.3} mm, max {max:.3} mm, rotation error {rot_err:.3} deg, {:.2} s, levels {:?}",
        r.seconds,
        r.levels
            .iter()
            .map(|l| (l.shrink, l.iterations))
            .collect::<Vec<_>>()
    );
    assert!(mean <= 0.5, "{name}: mean TRE {mean} mm");
    assert!(rot_err <= 0.5, "{name}: rotation error {rot_err} deg");
}

#[test]
fn demo_t1_and_t2_to_ct_recover_the_known_rigid_transform() {
    let cfg = PhantomConfig::default();
    let ct = phantom_ct(&cfg);
    let want = truth(&cfg);
    for contrast in [MrContrast::T1, MrContrast::T2] {
        let mr = phantom_mr(&cfg, contrast);
        check(
            &format!("{contrast:?} -> CT (defaults: rigid)"),
            &ct,
            &mr,
            &want,
            &RegistrationConfig::default(),
        );
    }
}

#[test]
fn same_modality_affine_is_recovered() {
    let cfg = PhantomConfig::default();
    let ct = phantom_ct(&cfg);
    let mut want = Affine::rigid([0.03, -0.05, 0.07], [5.0, -3.0, 2.0], [0.0, 0.0, 10.0]);
    // Add scale and shear.
    let s = [[1.04, 0.02, 0.0], [0.0, 0.97, 0.015], [0.0, 0.0, 1.02]];
    want.matrix = synthscope::volume::transform::mul3(&want.matrix, &s);
    let moved = resample(&ct, &ct.geometry, &want.inverse().unwrap(), -1024.0);
    check(
        "CT -> moved CT (affine)",
        &ct,
        &moved,
        &want,
        &RegistrationConfig {
            affine: true,
            ..RegistrationConfig::default()
        },
    );
}

#[test]
fn large_initial_offset_and_partial_coverage() {
    let cfg = PhantomConfig::default();
    let ct = phantom_ct(&cfg);
    // The MR grid placed 40 mm away: centres of mass bring it back before optimising.
    let mut mr = phantom_mr(&cfg, MrContrast::T1);
    let mut want = truth(&cfg);
    let off = [40.0, -25.0, 15.0];
    for a in 0..3 {
        mr.geometry.origin[a] += off[a];
        want.translation[a] += off[a];
    }
    check(
        "T1 offset by 47 mm",
        &ct,
        &mr,
        &want,
        &RegistrationConfig::default(),
    );
    // An MR that covers only the upper two thirds of the head.
    let mr = phantom_mr(&cfg, MrContrast::T1);
    let [nx, ny, nz] = mr.geometry.dims;
    let keep = nz * 2 / 3;
    let start = nz - keep;
    let mut g = mr.geometry.clone();
    g.origin = g.world_from_voxel([0.0, 0.0, start as f64]);
    g.dims = [nx, ny, keep];
    let part = Volume::new(g, mr.data[start * nx * ny..].to_vec(), mr.meta.clone());
    check(
        "T1 covering the upper 2/3",
        &ct,
        &part,
        &truth(&cfg),
        &RegistrationConfig::default(),
    );
}

#[test]
fn flat_images_are_refused_clearly() {
    let cfg = PhantomConfig::small();
    let ct = phantom_ct(&cfg);
    let flat = Volume::new(
        ct.geometry.clone(),
        vec![7.0; ct.data.len()],
        Default::default(),
    );
    let err = register(
        &ct,
        &flat,
        None,
        &RegistrationConfig::default(),
        &Progress::default(),
        |_| {},
    )
    .unwrap_err();
    assert!(matches!(err, RegisterError::BadInput(_)));
    assert!(err.to_string().contains("flat"), "{err}");
}

#[test]
fn tfm_written_by_the_cli_reads_back_and_resamples() {
    let dir = tempfile::tempdir().unwrap();
    let st = common::synthscope()
        .args(["phantom", "--small", "--out"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(st.status.success());
    let tfm = dir.path().join("t.tfm");
    let res = dir.path().join("mr_on_ct.nii.gz");
    let out = common::run_ok(
        common::synthscope()
            .args(["register", "--affine", "--json", "--fixed"])
            .arg(dir.path().join("ct"))
            .arg("--moving")
            .arg(dir.path().join("mr_t1"))
            .arg("--out")
            .arg(&tfm)
            .arg("--resampled")
            .arg(&res),
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(json["final_mi"].as_f64().unwrap() > 0.1);
    assert!(json["levels"].as_array().unwrap().len() >= 3);
    let t = Affine::read_tfm(&tfm).unwrap();
    let cfg = PhantomConfig::small();
    let ct = phantom_ct(&cfg);
    let (mean, _) = transform_error(&t, &truth(&cfg), &ct);
    assert!(mean < 1.5, "small phantom (2.2-2.8 mm voxels): TRE {mean}");
    let v = synthscope::io::nifti::read_nifti(&res).unwrap();
    assert_eq!(
        v.geometry.dims, ct.geometry.dims,
        "resampled onto the CT grid"
    );
}

/// SimpleITK reads our .tfm and NIfTI files and resamples: the image must equal ours. The moving
/// image sits on an oblique grid so directions, RAS/LPS and the transform centre all matter.
#[test]
fn simpleitk_resamples_our_transform_like_we_do() {
    use synthscope::io::nifti::{read_nifti, write_nifti};
    let py = common::sitk_python();
    let dir = tempfile::tempdir().unwrap();
    let cfg = PhantomConfig::small();
    let ct = phantom_ct(&cfg);
    let mut mr = phantom_mr(&cfg, MrContrast::T2);
    // Oblique moving grid: rotate its axes by 12 degrees about z and shift it.
    let r = synthscope::volume::transform::euler_matrix([0.05, 0.0, 12f64.to_radians()]);
    mr.geometry.direction = r;
    mr.geometry.origin = [-90.0, -110.0, -60.0];
    let t = Affine {
        matrix: synthscope::volume::transform::mul3(
            &synthscope::volume::transform::euler_matrix([0.04, -0.03, 0.09]),
            &[[1.03, 0.01, 0.0], [0.0, 0.98, 0.0], [0.0, 0.0, 1.01]],
        ),
        translation: [3.0, -4.0, 2.5],
        center: [5.0, -7.0, 11.0],
    };
    let (f, m, tfm, ours_p, theirs_p) = (
        dir.path().join("ct.nii.gz"),
        dir.path().join("mr.nii.gz"),
        dir.path().join("t.tfm"),
        dir.path().join("ours.nii.gz"),
        dir.path().join("sitk.nii.gz"),
    );
    write_nifti(&ct, &f).unwrap();
    write_nifti(&mr, &m).unwrap();
    t.write_tfm(&tfm).unwrap();
    let (lo, _) = mr.min_max();
    let ours = resample(&mr, &ct.geometry, &t, lo);
    write_nifti(&ours, &ours_p).unwrap();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/sitk_reference.py");
    let _ = common::run_ok(
        std::process::Command::new(py)
            .arg(script)
            .arg("resample")
            .args([&f, &m, &tfm, &theirs_p]),
    );
    let theirs = read_nifti(&theirs_p).unwrap();
    assert_eq!(theirs.geometry.dims, ours.geometry.dims);
    let (_, hi) = mr.min_max();
    let mut worst = 0f32;
    let mut differing = 0;
    for (a, b) in ours.data.iter().zip(&theirs.data) {
        let d = (a - b).abs();
        worst = worst.max(d);
        if d > 1e-3 * hi {
            differing += 1;
        }
    }
    eprintln!(
        "SimpleITK vs ours: max |diff| {worst} (range {hi}), {differing} voxels above 0.1% of range"
    );
    // Only voxels on the field-of-view edge may differ (inside/outside decided at the last half voxel).
    assert!(
        differing * 1000 <= ours.data.len(),
        "{differing} of {} voxels differ",
        ours.data.len()
    );
    let inside: Vec<f32> = ours
        .data
        .iter()
        .zip(&theirs.data)
        .filter(|(a, b)| **a > lo && **b > lo)
        .map(|(a, b)| (a - b).abs())
        .collect();
    let mean = inside.iter().sum::<f32>() / inside.len().max(1) as f32;
    assert!(mean < 1e-3 * hi, "mean difference inside {mean}");
}
