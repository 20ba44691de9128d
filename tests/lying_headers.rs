//! Files whose headers lie about their size are refused with a one-line error naming the file,
//! the attribute and both numbers, before anything is allocated: `synthscope info` runs under a
//! 2 GiB address-space limit and must exit with an error, never abort.

mod common;

use dicom::core::{DataElement, PrimitiveValue, VR};
use dicom::dictionary_std::tags;
use std::path::{Path, PathBuf};
use synthscope::io::dicom::write::{DicomWriteOptions, write_series};
use synthscope::io::phantom::{PhantomConfig, phantom_ct};
use synthscope::io::{Progress, load_paths};

/// One slice of the small phantom CT written by our exporter.
fn one_slice(dir: &Path) -> PathBuf {
    let ct = phantom_ct(&PhantomConfig::small());
    let files = write_series(&ct, &dir.join("ct"), &DicomWriteOptions::default()).unwrap();
    files[files.len() / 2].clone()
}

/// A change made to a data set.
type Edit = Box<dyn FnOnce(&mut dicom::object::DefaultDicomObject)>;

/// A copy of `src` at `dst` with `edit` applied to its data set.
fn rewrite(src: &Path, dst: &Path, edit: impl FnOnce(&mut dicom::object::DefaultDicomObject)) {
    let mut obj = dicom::object::open_file(src).unwrap();
    edit(&mut obj);
    obj.write_to_file(dst).unwrap();
}

/// `synthscope info PATH` under a 2 GiB address-space limit: (exit code, stderr). None when it
/// was killed by a signal (an abort).
fn info_limited(path: &Path) -> (Option<i32>, String) {
    let bin = env!("CARGO_BIN_EXE_synthscope");
    let out = std::process::Command::new("bash")
        .arg("-c")
        .arg(r#"ulimit -v 2097152 && exec timeout 20 "$0" info "$1""#)
        .arg(bin)
        .arg(path)
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn lying_dicom_headers_are_refused_before_allocating() {
    let dir = tempfile::tempdir().unwrap();
    let good = one_slice(dir.path());
    let us = |tag, v: u16| DataElement::new(tag, VR::US, PrimitiveValue::from(v));
    let cases: Vec<(&str, Edit, &str)> = vec![
        (
            "huge_rows_cols.dcm",
            Box::new(move |o| {
                o.put(us(tags::ROWS, 65535));
                o.put(us(tags::COLUMNS, 65535));
            }),
            "65535x65535x1 declare 4294836225 voxels",
        ),
        (
            "many_frames.dcm",
            Box::new(|o| {
                o.put(DataElement::new(
                    tags::NUMBER_OF_FRAMES,
                    VR::IS,
                    PrimitiveValue::from("999999"),
                ));
            }),
            "NumberOfFrames",
        ),
        (
            "tiny_many_frames.dcm",
            Box::new(move |o| {
                // 1x1 pixels: within the voxel limit, but not a frame count to allocate for.
                o.put(us(tags::ROWS, 1));
                o.put(us(tags::COLUMNS, 1));
                o.put(DataElement::new(
                    tags::NUMBER_OF_FRAMES,
                    VR::IS,
                    PrimitiveValue::from("500000000"),
                ));
            }),
            "NumberOfFrames (0028,0008) = 500000000, more than the 1048576 frames",
        ),
        (
            "bits64.dcm",
            Box::new(move |o| {
                o.put(us(tags::BITS_ALLOCATED, 64));
            }),
            "BitsAllocated (0028,0100) = 64",
        ),
    ];
    for (name, edit, expect) in cases {
        let bad = dir.path().join(name);
        rewrite(&good, &bad, edit);
        // In process: an error, not a volume.
        let err = load_paths(std::slice::from_ref(&bad), &Progress::default())
            .map(|o| {
                o.errors
                    .iter()
                    .map(|e| e.to_string())
                    .collect::<Vec<_>>()
                    .join("; ")
            })
            .unwrap_or_else(|e| e.to_string());
        assert!(err.contains(name) && err.contains(expect), "{name}: {err}");
        // The binary under a 2 GiB limit: a clean error exit.
        let (code, stderr) = info_limited(&bad);
        assert_eq!(code, Some(1), "{name}: {stderr}");
        assert!(stderr.contains(name), "{name}: {stderr}");
    }
}

#[test]
fn a_series_over_the_voxel_limit_is_refused_naming_both_numbers() {
    // 65535 x 65535 declared and present as far as the header goes: the voxel limit refuses it
    // from the header alone.
    let dir = tempfile::tempdir().unwrap();
    let good = one_slice(dir.path());
    let bad = dir.path().join("wide.dcm");
    rewrite(&good, &bad, |o| {
        o.put(DataElement::new(
            tags::NUMBER_OF_FRAMES,
            VR::IS,
            PrimitiveValue::from("200"),
        ));
        o.put(DataElement::new(
            tags::ROWS,
            VR::US,
            PrimitiveValue::from(8192u16),
        ));
        o.put(DataElement::new(
            tags::COLUMNS,
            VR::US,
            PrimitiveValue::from(8192u16),
        ));
    });
    let (code, stderr) = info_limited(&bad);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains("13421772800 voxels") && stderr.contains("536870912"),
        "{stderr}"
    );
}

#[test]
fn lying_nifti_dims_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let ct = phantom_ct(&PhantomConfig::small());
    let good = dir.path().join("ct.nii");
    synthscope::io::nifti::write_nifti(&ct, &good).unwrap();
    let mut bytes = std::fs::read(&good).unwrap();
    // dim[1..3] at offsets 42, 44, 46 (NIfTI-1, little endian).
    for off in [42, 44, 46] {
        bytes[off..off + 2].copy_from_slice(&32767i16.to_le_bytes());
    }
    let bad = dir.path().join("dims32767.nii");
    std::fs::write(&bad, &bytes).unwrap();
    let (code, stderr) = info_limited(&bad);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains("dims32767.nii") && stderr.contains("32767x32767x32767"),
        "{stderr}"
    );
    // The same header gzipped: still refused by the size check, not by allocation.
    let gz = dir.path().join("dims32767.nii.gz");
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(&mut enc, &bytes).unwrap();
    std::fs::write(&gz, enc.finish().unwrap()).unwrap();
    let (code, stderr) = info_limited(&gz);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("dims32767.nii.gz"), "{stderr}");
}

/// Every public DICOM and NIfTI sample, mutated four ways (truncated, header bytes flipped,
/// bytes flipped anywhere, a chunk repeated), through `synthscope info` under the 2 GiB limit
/// and a 20 s timeout: each loads (exit 0) or is refused with an error naming the file (exit 1);
/// no abort, panic or hang.
#[test]
fn mutated_public_samples_load_or_are_refused() {
    let root = common::samples_root();
    let mut inputs: Vec<PathBuf> = Vec::new();
    for (dir, exts) in [
        ("pydicom/data/test_files", &["dcm"][..]),
        ("nibabel/tests/data", &["nii", "gz"][..]),
    ] {
        let mut v: Vec<PathBuf> = std::fs::read_dir(root.join(dir))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| {
                p.extension()
                    .and_then(|e| e.to_str())
                    .is_some_and(|e| exts.contains(&e))
                    && p.to_string_lossy()
                        .contains(if exts[0] == "nii" { ".nii" } else { "" })
            })
            .collect();
        v.sort();
        inputs.extend(v);
    }
    assert!(inputs.len() > 50, "{} samples", inputs.len());
    let dir = tempfile::tempdir().unwrap();
    let mut seed = 0x5eed_u64;
    let mut next = move || {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (seed >> 33) as usize
    };
    let mut runs = 0;
    let mut refused = 0;
    for (i, src) in inputs.iter().enumerate() {
        let bytes = std::fs::read(src).unwrap();
        if bytes.len() < 16 {
            continue;
        }
        let n = bytes.len();
        let name = src.file_name().unwrap().to_string_lossy().to_string();
        let mut variants: Vec<(String, Vec<u8>)> = Vec::new();
        variants.push(("trunc".into(), bytes[..n * 3 / 5].to_vec()));
        let mut head = bytes.clone();
        for _ in 0..16 {
            let k = next() % n.min(2048);
            head[k] ^= 1 << (next() % 8);
        }
        variants.push(("head".into(), head));
        let mut any = bytes.clone();
        for _ in 0..16 {
            let k = next() % n;
            any[k] ^= 1 << (next() % 8);
        }
        variants.push(("flip".into(), any));
        let mut rep = bytes[..n / 2].to_vec();
        rep.extend_from_slice(&bytes[n / 3..]);
        variants.push(("repeat".into(), rep));
        for (kind, data) in variants {
            // Keep the loader's file-type cue (.nii / .nii.gz / .dcm) in the name.
            let path = dir.path().join(format!("m{i:03}_{kind}_{name}"));
            std::fs::write(&path, &data).unwrap();
            let (code, stderr) = info_limited(&path);
            runs += 1;
            match code {
                Some(0) => {}
                Some(1) => {
                    refused += 1;
                    let text = stderr.trim();
                    assert!(
                        text.contains(&format!("m{i:03}_{kind}")),
                        "{}: the error does not name the file: {text}",
                        path.display()
                    );
                }
                other => panic!("{}: exit {other:?}: {stderr}", path.display()),
            }
            let _ = std::fs::remove_file(&path);
        }
    }
    eprintln!("{runs} mutated files: {refused} refused with an error, the rest loaded");
    assert!(runs > 200 && refused > 0);
}
