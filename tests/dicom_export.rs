//! Derived-series export (the synthetic volume as DICOM): the source's study, new series UIDs, DERIVED\SECONDARY, patient
//! and frame of reference kept, values and positions round-tripping through our loader and
//! through pydicom.

mod common;

use synthscope::io::dicom::write::write_derived_series;
use synthscope::io::phantom::{MrContrast, PhantomConfig, phantom_ct, phantom_mr};
use synthscope::io::{Progress, load_paths};

#[test]
fn derived_series_round_trips_through_our_loader_and_pydicom() {
    let cfg = PhantomConfig::small();
    let source = phantom_mr(&cfg, MrContrast::T1);
    // Stand-in for a synthetic CT on the MR grid: the phantom CT values (HU), MR geometry.
    let ct = phantom_ct(&cfg);
    let mut synthetic = source.clone();
    synthetic.meta.modality = synthscope::volume::Modality::Ct;
    synthetic.data = (0..source.data.len())
        .map(|i| ct.data[i % ct.data.len()])
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let files =
        write_derived_series(&synthetic, &source.meta, "Synthetic CT (test)", dir.path()).unwrap();
    assert_eq!(files.len(), source.geometry.dims[2]);
    let out = load_paths(&[dir.path().to_path_buf()], &Progress::default()).unwrap();
    let v = &out.volumes[0];
    assert_eq!(v.data, synthetic.data, "HU round-trip exactly");
    assert_eq!(v.geometry.dims, source.geometry.dims);
    for a in 0..3 {
        assert!((v.geometry.origin[a] - source.geometry.origin[a]).abs() < 1e-4);
    }
    assert_ne!(v.meta.series_uid, source.meta.series_uid);
    assert_eq!(
        v.meta.study_uid, source.meta.study_uid,
        "in the source's study"
    );
    assert_eq!(
        v.meta.frame_of_reference_uid,
        source.meta.frame_of_reference_uid
    );
    assert_eq!(v.meta.patient_id, source.meta.patient_id);
    // pydicom reads what we wrote: tags and rescaled pixels.
    let py = common::sitk_python();
    let script = format!(
        r#"
import json, glob, numpy as np, pydicom
from pydicom.pixels import apply_modality_lut
fs = sorted(glob.glob("{dir}/*.dcm"))
ds = pydicom.dcmread(fs[3])
px = apply_modality_lut(ds.pixel_array, ds).astype(np.float64)
print(json.dumps(dict(image_type=list(ds.ImageType), patient=ds.PatientID, for_uid=ds.FrameOfReferenceUID, modality=ds.Modality, sum=float(px.sum()), ipp=[float(x) for x in ds.ImagePositionPatient])))
"#,
        dir = dir.path().display()
    );
    let out = common::run_ok(std::process::Command::new(py).args(["-c", &script]));
    let j: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        j["image_type"],
        serde_json::json!(["DERIVED", "SECONDARY", "AXIAL"])
    );
    assert_eq!(j["patient"], source.meta.patient_id);
    assert_eq!(j["for_uid"], source.meta.frame_of_reference_uid);
    assert_eq!(j["modality"], "CT");
    let [nx, ny, _] = source.geometry.dims;
    let want: f64 = synthetic.data[3 * nx * ny..4 * nx * ny]
        .iter()
        .map(|x| *x as f64)
        .sum();
    assert!((j["sum"].as_f64().unwrap() - want).abs() < 1e-6 * want.abs().max(1.0));
    let ipp = source.geometry.world_from_voxel([0.0, 0.0, 3.0]);
    for a in 0..3 {
        assert!((j["ipp"][a].as_f64().unwrap() - ipp[a]).abs() < 1e-3);
    }
}
