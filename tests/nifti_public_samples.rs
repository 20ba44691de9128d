//! NIfTI-1 and NIfTI-2 against nibabel 5.4.2's bundled test files (values extracted once with
//! nibabel), our writer's round trip, and bad input.

mod common;

use common::{expected, nibabel_file};
use synthscope::io::nifti::{read_nifti, write_nifti};
use synthscope::io::phantom::{PhantomConfig, phantom_ct};
use synthscope::volume::{Geometry, Volume, VolumeMeta};

#[test]
fn nibabel_samples_match_values_and_lps_geometry() {
    let exp = expected();
    let mut checked = Vec::new();
    for (name, e) in exp["nibabel"].as_object().unwrap() {
        let path = nibabel_file(name);
        let r = std::panic::catch_unwind(|| read_nifti(&path))
            .unwrap_or_else(|_| panic!("panic reading {name}"));
        if e.get("read_error").is_some() {
            // nibabel does not read it as a NIfTI image either (CIFTI): we must refuse or load, never panic.
            if let Err(err) = r {
                assert!(err.to_string().contains(name.as_str()), "{err}");
            }
            continue;
        }
        let v = r.unwrap_or_else(|err| panic!("{name}: {err}"));
        let shape: Vec<usize> = e["shape"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_u64().unwrap() as usize)
            .collect();
        assert_eq!(v.geometry.dims.to_vec(), shape, "{name}: dims");
        let affine = v.geometry.world_from_voxel_affine();
        let want = e["world_from_voxel_lps"].as_array().unwrap();
        for r in 0..3 {
            for c in 0..3 {
                let w = want[r][c].as_f64().unwrap();
                assert!(
                    (affine[r][c] - w).abs() < 1e-4,
                    "{name}: affine[{r}][{c}] = {} vs nibabel {w}",
                    affine[r][c]
                );
            }
            let o = e["origin_lps"][r].as_f64().unwrap();
            assert!((v.geometry.origin[r] - o).abs() < 1e-3, "{name}: origin");
        }
        for p in e["probes"].as_array().unwrap() {
            let p: Vec<f64> = p
                .as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_f64().unwrap_or(f64::NAN))
                .collect();
            if p[3].is_nan() {
                assert!(
                    v.get(p[0] as usize, p[1] as usize, p[2] as usize).is_nan(),
                    "{name}: NaN voxel"
                );
                continue;
            }
            let got = v.get(p[0] as usize, p[1] as usize, p[2] as usize) as f64;
            assert!(
                (got - p[3]).abs() <= 1e-4 * p[3].abs().max(1.0),
                "{name}: voxel {p:?} = {got}"
            );
        }
        let nans = v.data.iter().filter(|x| x.is_nan()).count() as u64;
        assert_eq!(nans, e["nan_count"].as_u64().unwrap(), "{name}: NaN count");
        let sum: f64 = v
            .data
            .iter()
            .filter(|x| !x.is_nan())
            .map(|x| *x as f64)
            .sum();
        let want_sum = e["sum"].as_f64().unwrap();
        assert!(
            (sum - want_sum).abs() <= 1e-5 * want_sum.abs().max(1.0),
            "{name}: sum {sum} vs {want_sum}"
        );
        checked.push((name.clone(), e["version"].as_u64().unwrap()));
    }
    eprintln!("matched nibabel on {checked:?}");
    assert!(
        checked.iter().any(|(_, v)| *v == 2),
        "no NIfTI-2 file checked"
    );
    assert!(checked.len() >= 6);
}

#[test]
fn round_trip_keeps_values_and_oblique_geometry() {
    let dir = tempfile::tempdir().unwrap();
    // Phantom CT (integer HU -> int16 on disk).
    let ct = phantom_ct(&PhantomConfig::small());
    let p = dir.path().join("ct.nii.gz");
    write_nifti(&ct, &p).unwrap();
    let back = read_nifti(&p).unwrap();
    assert_eq!(back.data, ct.data);
    assert_eq!(back.geometry.dims, ct.geometry.dims);
    // An oblique, non-integer volume (float32 on disk) with a left-handed grid.
    let (c, s) = (20f64.to_radians().cos(), 20f64.to_radians().sin());
    let g = Geometry {
        dims: [7, 5, 4],
        spacing: [0.7, 1.1, 2.5],
        origin: [12.5, -30.25, 44.0],
        direction: [[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, -1.0]],
    };
    let data: Vec<f32> = (0..g.len()).map(|i| i as f32 * 0.37 - 3.0).collect();
    let v = Volume::new(g.clone(), data.clone(), VolumeMeta::default());
    let p = dir.path().join("oblique.nii");
    write_nifti(&v, &p).unwrap();
    let back = read_nifti(&p).unwrap();
    assert_eq!(back.data, data);
    for r in 0..3 {
        assert!((back.geometry.origin[r] - g.origin[r]).abs() < 1e-4);
        assert!((back.geometry.spacing[r] - g.spacing[r]).abs() < 1e-5);
        for a in 0..3 {
            assert!(
                (back.geometry.direction[r][a] - g.direction[r][a]).abs() < 1e-5,
                "direction[{r}][{a}]"
            );
        }
    }
}

#[test]
fn truncated_nifti_is_refused_naming_file_and_problem() {
    let dir = tempfile::tempdir().unwrap();
    let ct = phantom_ct(&PhantomConfig::small());
    let p = dir.path().join("cut.nii");
    write_nifti(&ct, &p).unwrap();
    let bytes = std::fs::read(&p).unwrap();
    std::fs::write(&p, &bytes[..bytes.len() / 2]).unwrap();
    let msg = read_nifti(&p).unwrap_err().to_string();
    assert!(
        msg.contains("cut.nii") && (msg.contains("truncated") || msg.contains("not a readable")),
        "{msg}"
    );
    std::fs::write(&p, b"hello").unwrap();
    let msg = read_nifti(&p).unwrap_err().to_string();
    assert!(msg.contains("cut.nii"), "{msg}");
}
