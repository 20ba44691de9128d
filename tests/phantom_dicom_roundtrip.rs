//! The demo phantom written as DICOM by our exporter and read back by our loader: geometry,
//! values and the known MR displacement survive; the CLI's `info --json` prints the contract.

use synthscope::io::dicom::write::{DicomWriteOptions, write_series};
use synthscope::io::phantom::{MrContrast, PhantomConfig, phantom_ct, phantom_mr};
use synthscope::io::{Progress, load_paths};
use synthscope::volume::Modality;

#[test]
fn phantom_ct_and_mr_round_trip_through_dicom() {
    let cfg = PhantomConfig::small();
    let ct = phantom_ct(&cfg);
    let mr = phantom_mr(&cfg, MrContrast::T1);
    let dir = tempfile::tempdir().unwrap();
    write_series(&ct, &dir.path().join("ct"), &DicomWriteOptions::default()).unwrap();
    write_series(
        &mr,
        &dir.path().join("mr"),
        &DicomWriteOptions {
            series_number: 2,
            ..Default::default()
        },
    )
    .unwrap();
    // Shuffle file names so sorting must use positions, not names.
    let files: Vec<_> = std::fs::read_dir(dir.path().join("ct"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    for (i, f) in files.iter().enumerate() {
        std::fs::rename(
            f,
            f.with_file_name(format!("x{:04}.dcm", (i * 7919) % 1000)),
        )
        .unwrap();
    }
    let out = load_paths(&[dir.path().to_path_buf()], &Progress::default()).unwrap();
    assert!(out.errors.is_empty(), "{:?}", out.errors);
    assert_eq!(out.volumes.len(), 2);
    let ct2 = out
        .volumes
        .iter()
        .find(|v| v.meta.modality == Modality::Ct)
        .unwrap();
    let mr2 = out
        .volumes
        .iter()
        .find(|v| v.meta.modality == Modality::Mr)
        .unwrap();
    assert_eq!(ct2.data, ct.data, "HU survive exactly");
    assert_eq!(mr2.data, mr.data);
    for (a, b) in [(ct2, &ct), (mr2, &mr)] {
        assert_eq!(a.geometry.dims, b.geometry.dims);
        for r in 0..3 {
            assert!((a.geometry.origin[r] - b.geometry.origin[r]).abs() < 1e-4);
            assert!((a.geometry.spacing[r] - b.geometry.spacing[r]).abs() < 1e-4);
        }
        assert!(a.meta.warnings.is_empty(), "{:?}", a.meta.warnings);
    }
}

#[test]
fn phantom_geometry_and_known_displacement() {
    let cfg = PhantomConfig::default();
    let ct = phantom_ct(&cfg);
    let mr = phantom_mr(&cfg, MrContrast::T1);
    assert_eq!(ct.geometry.spacing[0], 0.8);
    assert_eq!(mr.geometry.spacing[0], 1.2);
    // CT: air, soft tissue, CSF and bone all present, in HU.
    let (min, max) = ct.min_max();
    assert!(min <= -1000.0 && max > 1000.0, "{min} {max}");
    // The lesion centre (26, -24, 26) in head coordinates is bright on CT at that LPS point...
    let at = |v: &synthscope::volume::Volume, w: [f64; 3]| {
        v.sample_linear(v.geometry.voxel_from_world(w)).unwrap()
    };
    let lesion_ct = at(&ct, [26.0, -24.0, 26.0]);
    assert!((lesion_ct - 58.0).abs() < 30.0, "{lesion_ct}");
    // ...and in the MR it sits where the known rigid transform puts it, dark on T1 against white matter.
    let m = cfg.moving_from_fixed.apply([26.0, -24.0, 26.0]);
    let lesion_mr = at(&mr, m);
    let wm_mr = at(&mr, cfg.moving_from_fixed.apply([-30.0, 30.0, 30.0]));
    assert!(
        lesion_mr < 0.75 * wm_mr,
        "lesion {lesion_mr} vs white matter {wm_mr}"
    );
    // Without the transform, the MR at the CT position would not show the lesion as clearly.
    let ventricle_moved = at(&mr, cfg.moving_from_fixed.apply([9.0, 2.0, 14.0]));
    assert!(
        ventricle_moved < 0.4 * wm_mr,
        "ventricle (CSF) dark on T1: {ventricle_moved}"
    );
}

#[test]
fn demo_pair_generates_quickly() {
    let t = std::time::Instant::now();
    let (ct, mr) = synthscope::io::phantom::demo_pair();
    let ms = t.elapsed().as_secs_f64() * 1e3;
    eprintln!(
        "demo pair: CT {:?}, MR {:?} in {ms:.0} ms",
        ct.geometry.dims, mr.geometry.dims
    );
    assert!(ct.data.len() > 1_000_000 && mr.data.len() > 1_000_000);
}
