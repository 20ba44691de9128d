//! The command line: `phantom`, `info --json` (the exact contract), `convert`, bad input.

mod common;

#[test]
fn phantom_info_convert_end_to_end() {
    let dir = tempfile::tempdir().unwrap();
    common::run_ok(
        common::synthscope()
            .args(["phantom", "--small", "--out"])
            .arg(dir.path()),
    );
    let out = common::run_ok(
        common::synthscope()
            .args(["info", "--json"])
            .arg(dir.path().join("ct")),
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let s = &v["series"][0];
    let keys: Vec<&str> = s.as_object().unwrap().keys().map(|k| k.as_str()).collect();
    for k in [
        "series_uid",
        "modality",
        "description",
        "dims",
        "spacing",
        "origin",
        "direction",
        "min",
        "max",
        "warnings",
    ] {
        assert!(keys.contains(&k), "missing {k}");
    }
    assert_eq!(keys.len(), 10, "{keys:?}");
    assert_eq!(s["modality"], "CT");
    assert_eq!(s["dims"], serde_json::json!([96, 96, 48]));
    assert_eq!(s["direction"].as_array().unwrap().len(), 9);
    let nii = dir.path().join("ct_converted.nii.gz");
    common::run_ok(
        common::synthscope()
            .arg("convert")
            .arg(dir.path().join("ct"))
            .arg(&nii),
    );
    let a = synthscope::io::nifti::read_nifti(&nii).unwrap();
    let b = synthscope::io::nifti::read_nifti(&dir.path().join("ct.nii.gz")).unwrap();
    assert_eq!(a.data, b.data);
}

#[test]
fn bad_input_exits_non_zero_with_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("broken.dcm");
    let mut bytes = vec![0u8; 128];
    bytes.extend_from_slice(b"DICM");
    bytes.extend_from_slice(&[2, 0, 0x10, 0, b'U', b'I', 200, 0]);
    std::fs::write(&bad, bytes).unwrap();
    for args in [
        vec!["info".to_string(), bad.display().to_string()],
        vec!["info".into(), "/nonexistent/x".into()],
    ] {
        let out = common::synthscope().args(&args).output().unwrap();
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(err.trim().lines().count(), 1, "{err}");
        assert!(err.starts_with("error: "), "{err}");
    }
}
