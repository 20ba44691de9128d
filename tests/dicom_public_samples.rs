//! The DICOM loader against pydicom 3.0.2's bundled test files: pixel values and geometry equal
//! to what pydicom decodes (values extracted once, tests/fixtures/public_expected.json), clear
//! errors for everything else, and no panic on any file.

mod common;

use common::{expected, pydicom_file, samples_root};
use synthscope::io::{LoadError, Progress, load_paths};
use synthscope::volume::Volume;

/// Lossy transfer syntaxes: decoders may differ by a grey level from pydicom's (libjpeg) output.
const LOSSY: [&str; 4] = [
    "1.2.840.10008.1.2.4.50",
    "1.2.840.10008.1.2.4.51",
    "1.2.840.10008.1.2.4.81",
    "1.2.840.10008.1.2.4.91",
];

/// Monochrome samples pydicom decodes that dicom-rs 0.10 cannot, with the reason.
const NOT_DECODABLE: [(&str, &str); 1] = [(
    "JPGExtended.dcm",
    "12-bit JPEG Extended: jpeg-decoder reads 8-bit baseline/extended only",
)];

fn load_one(name: &str) -> Result<Volume, String> {
    let path = pydicom_file(name);
    let r =
        std::panic::catch_unwind(|| load_paths(std::slice::from_ref(&path), &Progress::default()));
    match r {
        Err(_) => Err(format!("PANIC while loading {name}")),
        Ok(Err(e)) => Err(e.to_string()),
        Ok(Ok(mut out)) => {
            if out.volumes.len() == 1 {
                Ok(out.volumes.remove(0))
            } else {
                Err(out
                    .errors
                    .iter()
                    .map(|e| e.to_string())
                    .collect::<Vec<_>>()
                    .join("; "))
            }
        }
    }
}

#[test]
fn every_sample_loads_or_fails_with_a_clear_error() {
    let dir = samples_root().join("pydicom/data/test_files");
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().to_string())
        .collect();
    names.sort();
    let mut loaded = 0;
    let mut refused = 0;
    for name in &names {
        let path = dir.join(name);
        if path.is_dir() {
            continue;
        }
        match load_one(name) {
            Ok(_) => loaded += 1,
            Err(e) => {
                assert!(!e.starts_with("PANIC"), "{e}");
                assert!(
                    e.contains(name.as_str()),
                    "the error for {name} does not name the file: {e}"
                );
                refused += 1;
            }
        }
    }
    eprintln!("{loaded} loaded, {refused} refused with an error naming the file");
    assert!(loaded >= 20, "only {loaded} samples loaded");
}

#[test]
fn monochrome_samples_match_pydicom_pixels_and_geometry() {
    let exp = expected();
    let mut checked = Vec::new();
    let mut refused = Vec::new();
    for (name, e) in exp["pydicom"].as_object().unwrap() {
        let photometric = e["photometric"].as_str().unwrap_or("");
        if !photometric.starts_with("MONOCHROME") || e.get("shape").is_none() {
            continue;
        }
        let ts = e["transfer_syntax"].as_str().unwrap_or("");
        let lossy = LOSSY.contains(&ts);
        let v = match load_one(name) {
            Ok(v) => v,
            Err(err) => {
                // Allowed only where dicom-rs has no decoder, and the error must say so.
                let reason = NOT_DECODABLE
                    .iter()
                    .find(|(n, _)| n == name)
                    .map(|(_, r)| *r);
                assert!(
                    reason.is_some(),
                    "{name} ({ts}) decodes in pydicom but not here: {err}"
                );
                assert!(
                    err.contains(name.as_str()) && err.contains(ts),
                    "refusal must name the file and the syntax: {err}"
                );
                refused.push(format!("{name}: {}", reason.unwrap_or_default()));
                continue;
            }
        };
        let shape: Vec<usize> = e["shape"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_u64().unwrap() as usize)
            .collect();
        assert_eq!(
            v.geometry.dims,
            [shape[2], shape[1], shape[0]],
            "{name}: dims"
        );
        let tol = if lossy { 2.0 } else { 1e-3 };
        for p in e["probes"].as_array().unwrap() {
            let p: Vec<f64> = p
                .as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_f64().unwrap())
                .collect();
            let got = v.get(p[2] as usize, p[1] as usize, p[0] as usize) as f64;
            assert!(
                (got - p[3]).abs() <= tol * p[3].abs().max(1.0),
                "{name}: pixel (frame {}, row {}, col {}) = {got}, pydicom {}",
                p[0],
                p[1],
                p[2],
                p[3]
            );
        }
        let sum: f64 = v.data.iter().map(|x| *x as f64).sum();
        let want = e["sum"].as_f64().unwrap();
        let n = v.data.len() as f64;
        let mean_tol = if lossy { 1.0 } else { 1e-3 };
        assert!(
            (sum - want).abs() / n <= mean_tol * (want.abs() / n).max(1.0),
            "{name}: sum {sum} vs pydicom {want}"
        );
        let (min, max) = v.min_max();
        if !lossy {
            assert_eq!(min as f64, e["min"].as_f64().unwrap(), "{name}: min");
            assert_eq!(max as f64, e["max"].as_f64().unwrap(), "{name}: max");
        }
        if let Some(ps) = e.get("PixelSpacing").and_then(|x| x.as_array()) {
            let ps: Vec<f64> = ps.iter().map(|x| x.as_f64().unwrap()).collect();
            assert!(
                (v.geometry.spacing[0] - ps[1]).abs() < 1e-6
                    && (v.geometry.spacing[1] - ps[0]).abs() < 1e-6,
                "{name}: spacing"
            );
        }
        if let (Some(ipp), 1) = (
            e.get("ImagePositionPatient").and_then(|x| x.as_array()),
            shape[0],
        ) {
            for (o, want) in v.geometry.origin.iter().zip(ipp) {
                assert!((o - want.as_f64().unwrap()).abs() < 1e-6, "{name}: origin");
            }
        }
        if let Some(iop) = e.get("ImageOrientationPatient").and_then(|x| x.as_array()) {
            let iop: Vec<f64> = iop.iter().map(|x| x.as_f64().unwrap()).collect();
            let d = v.geometry.direction;
            for r in 0..3 {
                assert!(
                    (d[r][0] - iop[r]).abs() < 1e-4 && (d[r][1] - iop[3 + r]).abs() < 1e-4,
                    "{name}: direction"
                );
            }
        }
        checked.push(name.clone());
    }
    eprintln!("matched pydicom on {} samples: {checked:?}", checked.len());
    eprintln!("refused (no decoder in dicom-rs): {refused:?}");
    for must in [
        "CT_small.dcm",
        "MR_small.dcm",
        "MR_small_RLE.dcm",
        "MR_small_jp2klossless.dcm",
        "rtdose.dcm",
    ] {
        assert!(checked.iter().any(|c| c == must), "{must} was not checked");
    }
}

#[test]
fn mr_small_is_identical_in_every_transfer_syntax() {
    let reference = load_one("MR_small.dcm").unwrap();
    let variants = [
        "MR_small_implicit.dcm",
        "MR_small_bigendian.dcm",
        "MR_small_expb.dcm",
        "MR_small_RLE.dcm",
        "MR_small_jp2klossless.dcm",
        "MR_small_jpeg_ls_lossless.dcm",
        "MR_small_padded.dcm",
    ];
    for name in variants {
        let v = load_one(name).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(v.geometry, reference.geometry, "{name}: geometry");
        assert!(
            v.data == reference.data,
            "{name}: pixels differ from MR_small.dcm"
        );
    }
}

#[test]
fn truncated_pixel_data_is_refused_naming_file_and_problem() {
    let out = load_paths(&[pydicom_file("MR_truncated.dcm")], &Progress::default()).unwrap();
    assert!(out.volumes.is_empty());
    let msg = out.errors[0].to_string();
    assert!(
        msg.contains("MR_truncated.dcm") && msg.contains("truncated"),
        "{msg}"
    );
}

#[test]
fn colour_images_are_refused_clearly() {
    let out = load_paths(
        &[pydicom_file(
            "SC_rgb.dcm".replace("SC_rgb", "SC_rgb_rle").as_ref(),
        )],
        &Progress::default(),
    );
    let msg = match out {
        Ok(o) => o
            .errors
            .iter()
            .map(|e| e.to_string())
            .collect::<Vec<_>>()
            .join(";"),
        Err(e) => e.to_string(),
    };
    assert!(
        msg.contains("SC_rgb_rle.dcm") && msg.contains("colour"),
        "{msg}"
    );
}

#[test]
fn a_folder_without_images_is_an_error_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("notes.txt"), "not an image").unwrap();
    let err = load_paths(&[dir.path().to_path_buf()], &Progress::default()).unwrap_err();
    assert!(matches!(err, LoadError::File { .. }));
    assert!(
        err.to_string().contains("no DICOM or NIfTI images"),
        "{err}"
    );
}

#[test]
fn dicomdir_folders_load_their_images_and_skip_the_index() {
    let dir = samples_root().join("pydicom/data/test_files/dicomdirtests");
    let out = load_paths(&[dir], &Progress::default()).unwrap();
    assert!(!out.volumes.is_empty());
    for e in &out.errors {
        // Index files are not images, but they never produce a panic or an unnamed error.
        assert!(e.to_string().contains("dicomdirtests"), "{e}");
    }
    eprintln!(
        "{} series, {} problems",
        out.volumes.len(),
        out.errors.len()
    );
}

#[test]
fn an_image_without_pixel_data_is_refused_naming_the_problem() {
    use dicom::dictionary_std::tags;
    let src = pydicom_file("CT_small.dcm");
    let mut obj = dicom::object::open_file(&src).unwrap();
    obj.remove_element(tags::PIXEL_DATA);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("no_pixels.dcm");
    obj.write_to_file(&path).unwrap();
    let out = load_paths(std::slice::from_ref(&path), &Progress::default()).unwrap();
    let msg = out.errors[0].to_string();
    assert!(
        msg.contains("no_pixels.dcm") && msg.contains("no Pixel Data"),
        "{msg}"
    );
}

/// The declared-length walk (io::dicom::bounds) refuses nothing that dicom-rs itself reads: for
/// every sample (pydicom's and nibabel's) that dicom-rs opens whole, the walk passes; where it
/// refuses, dicom-rs's own read fails too. (The walk exists to refuse first, before dicom-rs
/// commits memory for a length the file cannot hold.)
#[test]
fn the_length_walk_refuses_only_what_dicom_rs_cannot_read() {
    use synthscope::io::dicom::bounds::{Extent, check_file};
    let mut files = Vec::new();
    let mut stack = vec![samples_root().to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0) < (64 << 20) {
                files.push(path);
            }
        }
    }
    files.sort();
    let (mut opened, mut refused_by_both) = (0, 0);
    for path in &files {
        let walk = check_file(path, Extent::Whole);
        let ours_refuses = walk.is_err();
        // Without the walk, a refused file may make dicom-rs reserve gigabytes: only ask it
        // where the walk passes, or for files the walk refuses with a modest declared length.
        if !ours_refuses {
            if dicom::object::open_file(path).is_ok() {
                opened += 1;
            }
            continue;
        }
        let message = walk.unwrap_err().to_string();
        let declared: u64 = message
            .split("declares ")
            .nth(1)
            .and_then(|s| s.split(' ').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0);
        if declared < (256 << 20) {
            assert!(
                dicom::object::open_file(path).is_err(),
                "the length walk refuses a file dicom-rs reads: {message}"
            );
        }
        refused_by_both += 1;
    }
    println!(
        "{} files: {opened} open in dicom-rs and pass the walk, {refused_by_both} refused by the walk",
        files.len()
    );
    assert!(opened > 50, "only {opened} samples opened");
}
