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
