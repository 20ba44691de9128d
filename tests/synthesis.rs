//! Inference plumbing with an (untrained) checkpoint: the synthetic volume keeps the input's
//! grid and geometry, comes out in the target modality's units, writes as NIfTI and as a
//! derived DICOM series, and cancels cleanly. (Output quality needs a trained model: issue 5.)

mod common;

use synthscope::io::phantom::{MrContrast, PhantomConfig, phantom_mr};
use synthscope::io::{Progress, load_paths};
use synthscope::model::checkpoint::{ModelSpec, save};
use synthscope::model::normalise::CT_RANGE;
use synthscope::model::{Direction, UnetConfig};
use synthscope::synth::{SynthError, synthesize};
use synthscope::volume::Modality;

#[test]
fn mr_to_ct_keeps_the_grid_and_writes_nifti_and_dicom() {
    let g = synthscope::gpu::compute().unwrap();
    let mut cfg = PhantomConfig::small();
    cfg.mr_dims = [40, 36, 6];
    let mr = phantom_mr(&cfg, MrContrast::T1);
    let spec = ModelSpec::Unet(
        UnetConfig::new()
            .with_base_width(4)
            .with_levels(2)
            .with_direction(Direction::MrToCt),
    );
    let model = spec.init(&g.device).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let ck = dir.path().join("tiny_unet");
    save(&model, &spec, serde_json::Value::Null, &ck).unwrap();
    let s = synthesize(
        &model,
        Direction::MrToCt,
        &mr,
        4,
        &g.device,
        &Progress::default(),
    )
    .unwrap();
    assert_eq!(s.geometry, mr.geometry);
    assert_eq!(s.meta.modality, Modality::Ct);
    assert!(
        s.data
            .iter()
            .all(|v| *v >= CT_RANGE.0 && *v <= CT_RANGE.1 && v.fract() == 0.0),
        "HU, whole numbers, in range"
    );
    // Cancelled before it starts: a clear Cancelled, no partial volume.
    let p = Progress::default();
    p.cancel();
    assert!(matches!(
        synthesize(&model, Direction::MrToCt, &mr, 4, &g.device, &p),
        Err(SynthError::Cancelled)
    ));
    // The CLI: NIfTI and a DICOM folder.
    let input = dir.path().join("mr.nii.gz");
    synthscope::io::nifti::write_nifti(&mr, &input).unwrap();
    for out in [dir.path().join("sct.nii.gz"), dir.path().join("sct_dicom")] {
        common::run_ok(
            common::synthscope()
                .args(["synthesize", "--model"])
                .arg(ck.with_extension("json"))
                .arg("--input")
                .arg(&input)
                .arg("--out")
                .arg(&out),
        );
        let back = load_paths(std::slice::from_ref(&out), &Progress::default()).unwrap();
        let v = &back.volumes[0];
        assert_eq!(v.geometry.dims, mr.geometry.dims, "{}", out.display());
        if out.is_dir() {
            // DICOM carries the modality; NIfTI has none (guessed on load from the values).
            assert_eq!(v.meta.modality, Modality::Ct);
        }
    }
}

/// Batching and the preparing thread change nothing: the same volume through batches of 1, 3,
/// 8 slices (8 > the slice count) and 0 (sized to the device) gives the same synthetic CT.
#[test]
fn batches_of_any_size_give_the_same_volume() {
    let g = synthscope::gpu::compute().unwrap();
    let mut cfg = PhantomConfig::small();
    cfg.mr_dims = [40, 36, 7];
    let mr = phantom_mr(&cfg, MrContrast::T1);
    let (model, ..) = synthscope::model::demo::load_demo_model(&g.device).unwrap();
    let run = |batch| {
        synthesize(
            &model,
            Direction::MrToCt,
            &mr,
            batch,
            &g.device,
            &Progress::default(),
        )
        .unwrap()
        .data
    };
    let one = run(1);
    for batch in [3, 8, 0] {
        let other = run(batch);
        let worst = one
            .iter()
            .zip(&other)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        // Whole HU: a different reduction order may round one voxel the other way.
        assert!(
            worst <= 1.0,
            "batch {batch}: differs from batch 1 by {worst} HU"
        );
    }
    assert!(one.iter().any(|v| *v > 0.0), "a CT with tissue above water");
}

/// f16 on the wgpu device (lavapipe reports SHADER_F16) stays within 60 dB of f32 over the
/// whole synthesis path; `auto` keeps f32 on a software adapter and on the CPU device, and f16
/// is refused with a clear error on the CPU device.
#[test]
fn f16_synthesis_is_within_60_db_of_f32() {
    use synthscope::model::half::Precision;
    use synthscope::synth::{SynthOptions, synthesize_timed};
    let mut cfg = PhantomConfig::small();
    cfg.mr_dims = [48, 40, 4];
    let mr = phantom_mr(&cfg, MrContrast::T1);
    let p = Progress::default();
    let opts = |precision| SynthOptions {
        batch: 2,
        precision,
    };
    // The CPU device computes in f32 only.
    let cpu = burn::tensor::Device::flex();
    let (model, ..) = synthscope::model::demo::load_demo_model(&cpu).unwrap();
    let (_, t) = synthesize_timed(
        &model,
        Direction::MrToCt,
        &mr,
        &opts(Precision::Auto),
        &cpu,
        &p,
    )
    .unwrap();
    assert!(!t.f16, "auto on the CPU device is f32");
    let auto = SynthOptions {
        batch: 0,
        precision: Precision::F32,
    };
    let (_, t) = synthesize_timed(&model, Direction::MrToCt, &mr, &auto, &cpu, &p).unwrap();
    assert_eq!(
        t.batch,
        synthscope::synth::CPU_BATCH,
        "batch 0 on the CPU device"
    );
    let err = synthesize_timed(
        &model,
        Direction::MrToCt,
        &mr,
        &opts(Precision::F16),
        &cpu,
        &p,
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("SHADER_F16"), "{err}");

    let gpu = match synthscope::gpu::shared() {
        Ok(g) => g,
        Err(e) => return println!("f16 part skipped: no wgpu device ({e})"),
    };
    if !synthscope::model::half::device_supports_f16(&gpu.device) {
        return println!(
            "f16 part skipped: {} lacks SHADER_F16",
            gpu.report.summary()
        );
    }
    let (model, ..) = synthscope::model::demo::load_demo_model(&gpu.device).unwrap();
    let run = |precision| {
        synthesize_timed(
            &model,
            Direction::MrToCt,
            &mr,
            &opts(precision),
            &gpu.device,
            &p,
        )
        .unwrap()
    };
    let (v32, t32) = run(Precision::F32);
    let (v16, t16) = run(Precision::F16);
    assert!(!t32.f16 && t16.f16);
    let (_, ta) = run(Precision::Auto);
    assert_eq!(
        ta.f16, !gpu.report.software,
        "auto: f16 on hardware GPUs only"
    );
    let sized = synthscope::synth::auto_batch(&model, &gpu.device, (48, 48), false);
    assert!(
        (1..=synthscope::synth::MAX_GPU_BATCH).contains(&sized),
        "GPU batch {sized}"
    );
    // PSNR over the CT range the network maps to (peak = the HU span of its output range).
    let span = (CT_RANGE.1 - CT_RANGE.0) as f64;
    let mse = v32
        .data
        .iter()
        .zip(&v16.data)
        .map(|(a, b)| ((a - b) as f64).powi(2))
        .sum::<f64>()
        / v32.data.len() as f64;
    let psnr = 10.0 * (span * span / mse.max(1e-12)).log10();
    println!("f16 vs f32 synthetic CT: PSNR {psnr:.1} dB (MSE {mse:.3} HU^2)");
    assert!(psnr > 60.0, "f16 vs f32: {psnr:.1} dB");
}
