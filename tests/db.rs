//! The local study database: the pydicom public samples and a phantom series imported (series,
//! instance counts, modality and size checked against pydicom's reading of the same files),
//! the list survives reopening, a series loads through the loader and can be removed, reindex
//! after the index file is deleted gives the same list, a cancelled import leaves only
//! complete series, and corrupt files are counted and named. The CLI runs the same paths.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use synthscope::db::{Database, DbError, INDEX_FILE, SeriesRecord};
use synthscope::io::dicom::write::{DicomWriteOptions, write_series};
use synthscope::io::phantom::{MrContrast, PhantomConfig, phantom_ct, phantom_mr};
use synthscope::io::{Progress, load_paths};

fn quiet(_: &str, _: usize, _: usize) {}

fn never() -> bool {
    false
}

/// Files under `dir` (recursively), hidden ones included.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// The phantom CT, T1 and T2 as three DICOM series under `dir`; (series UID, files) each.
fn phantom_series(dir: &Path) -> Vec<(String, usize)> {
    let cfg = PhantomConfig::small();
    let vols = [
        phantom_ct(&cfg),
        phantom_mr(&cfg, MrContrast::T1),
        phantom_mr(&cfg, MrContrast::T2),
    ];
    vols.iter()
        .enumerate()
        .map(|(i, v)| {
            let files = write_series(
                v,
                &dir.join(format!("s{i}")),
                &DicomWriteOptions {
                    series_number: i as i32 + 1,
                    ..Default::default()
                },
            )
            .unwrap();
            (v.meta.series_uid.clone(), files.len())
        })
        .collect()
}

/// pydicom's view of `paths`: per series UID, (instances, modality, rows, cols).
fn pydicom_series(paths: &[PathBuf]) -> BTreeMap<String, (i64, String, Option<i64>, Option<i64>)> {
    let py = common::sitk_python();
    let list: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
    let script = r#"
import json, os, sys, pydicom
from pydicom.errors import InvalidDicomError
out = {}
def visit(f):
    try:
        ds = pydicom.dcmread(f, stop_before_pixels=True)
    except Exception:
        return
    if getattr(ds, "file_meta", None) is not None and ds.file_meta.get("MediaStorageSOPClassUID") == "1.2.840.10008.1.3.10":
        return
    if not all(k in ds for k in ("SOPInstanceUID", "SeriesInstanceUID", "StudyInstanceUID")):
        return
    s = out.setdefault(str(ds.SeriesInstanceUID), {"sops": set(), "modality": str(ds.get("Modality", "")), "rows": ds.get("Rows"), "cols": ds.get("Columns")})
    s["sops"].add(str(ds.SOPInstanceUID))
for p in json.loads(sys.argv[1]):
    if os.path.isdir(p):
        for root, _, names in os.walk(p):
            for n in names:
                visit(os.path.join(root, n))
    else:
        visit(p)
print(json.dumps({k: [len(v["sops"]), v["modality"], v["rows"], v["cols"]] for k, v in out.items()}))
"#;
    let out = common::run_ok(std::process::Command::new(py).args([
        "-c",
        script,
        &serde_json::to_string(&list).unwrap(),
    ]));
    let j: BTreeMap<String, (i64, String, Option<i64>, Option<i64>)> =
        serde_json::from_slice(&out.stdout).unwrap();
    j
}

fn summary(list: &[SeriesRecord]) -> BTreeMap<String, (i64, String, Option<i64>, Option<i64>)> {
    list.iter()
        .map(|s| {
            (
                s.series_uid.clone(),
                (s.images, s.modality.clone(), s.rows, s.cols),
            )
        })
        .collect()
}

#[test]
fn import_list_reopen_load_remove_reindex() {
    let work = tempfile::tempdir().unwrap();
    let db_dir = work.path().join("db");
    let src = work.path().join("src");
    let phantom = phantom_series(&src.join("phantom"));
    // Junk next to the images: a text file and a file with the DICOM magic and garbage after.
    std::fs::write(src.join("notes.txt"), "not DICOM").unwrap();
    let mut garbage = vec![0u8; 128];
    garbage.extend_from_slice(b"DICM");
    garbage.extend((0..500u32).map(|i| (i * 7919 % 251) as u8));
    let corrupt = src.join("corrupt.dcm");
    std::fs::write(&corrupt, &garbage).unwrap();
    let paths = vec![
        common::pydicom_file("CT_small.dcm"),
        common::pydicom_file("MR_small.dcm"),
        common::pydicom_file("dicomdirtests"),
        src.clone(),
    ];

    let mut db = Database::open(&db_dir).unwrap();
    let report = db.import(&paths, &quiet, &never).unwrap();
    assert!(!report.cancelled);
    // Our corrupt file is named; any other skip (pydicom's broken DICOMDIR-nooffset) is a file
    // pydicom cannot index either, or the series comparison below would differ.
    eprintln!("skipped: {:?}", report.skipped);
    assert_eq!(
        report
            .skipped
            .iter()
            .filter(|s| s.starts_with(&format!("{}: ", corrupt.display())))
            .count(),
        1,
        "{:?}",
        report.skipped
    );
    // notes.txt and the DICOMDIR at least.
    assert!(report.not_dicom >= 2, "{report:?}");
    let list = db.list_series().unwrap();
    let want = pydicom_series(&paths);
    assert_eq!(summary(&list), want, "the same series as pydicom reads");
    assert_eq!(
        report.instances_added as i64,
        want.values().map(|v| v.0).sum::<i64>()
    );
    for (uid, n) in &phantom {
        let s = list.iter().find(|s| &s.series_uid == uid).unwrap();
        assert_eq!(s.images, *n as i64);
        assert_eq!(s.patient_id, "PHANTOM-001");
        assert_eq!(s.transfer_syntaxes, vec!["1.2.840.10008.1.2.1".to_string()]);
    }
    // The copies live in the database folder; the sources can go.
    std::fs::remove_dir_all(&src).unwrap();

    // Importing again adds nothing.
    let again = db.import(&paths[..3], &quiet, &never).unwrap();
    assert_eq!(again.instances_added, 0);
    assert!(again.already_present > 0);
    drop(db);

    // Reopened: the same list; a series loads through the loader from its copies.
    let mut db = Database::open(&db_dir).unwrap();
    assert_eq!(db.list_series().unwrap(), list);
    let ct_uid = &phantom[0].0;
    let files = db.series_paths(ct_uid).unwrap();
    assert!(files.iter().all(|f| f.starts_with(&db_dir)));
    let v = load_paths(&files, &Progress::default()).unwrap();
    assert_eq!(v.volumes.len(), 1);
    assert_eq!(v.volumes[0].data, phantom_ct(&PhantomConfig::small()).data);

    // Remove: rows and files gone, the rest untouched.
    let before_files = files_under(&db_dir.join("files")).len();
    assert_eq!(db.remove_series(ct_uid).unwrap(), phantom[0].1);
    let after_remove = db.list_series().unwrap();
    assert_eq!(after_remove.len(), list.len() - 1);
    assert!(after_remove.iter().all(|s| &s.series_uid != ct_uid));
    assert_eq!(
        files_under(&db_dir.join("files")).len(),
        before_files - phantom[0].1
    );
    assert!(files.iter().all(|f| !f.exists()));
    assert!(matches!(db.series_paths(ct_uid), Err(DbError::NoSeries(_))));
    assert!(matches!(
        db.remove_series(ct_uid),
        Err(DbError::NoSeries(_))
    ));
    drop(db);

    // Reindex after the index file is lost: the same list.
    for f in std::fs::read_dir(&db_dir).unwrap() {
        let p = f.unwrap().path();
        if p.file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with(INDEX_FILE))
        {
            std::fs::remove_file(p).unwrap();
        }
    }
    let mut db = Database::open(&db_dir).unwrap();
    assert!(db.list_series().unwrap().is_empty());
    let (n, problems) = db.reindex(&quiet, &never).unwrap();
    assert!(problems.is_empty(), "{problems:?}");
    assert_eq!(n as i64, after_remove.iter().map(|s| s.images).sum::<i64>());
    assert_eq!(db.list_series().unwrap(), after_remove);
}

#[test]
fn a_cancelled_import_leaves_only_complete_series() {
    let work = tempfile::tempdir().unwrap();
    let phantom = phantom_series(&work.path().join("src"));
    let full: BTreeMap<String, i64> = phantom
        .iter()
        .map(|(u, n)| (u.clone(), *n as i64))
        .collect();
    let total: usize = phantom.iter().map(|p| p.1).sum();
    let db_dir = work.path().join("db");
    let mut db = Database::open(&db_dir).unwrap();
    // Cancel once 60 files are copied: inside the second series whatever the order (48, 56, 56).
    let stop = AtomicBool::new(false);
    let progress = |stage: &str, done: usize, _: usize| {
        if stage.starts_with("Copying") && done >= 60 {
            stop.store(true, Ordering::SeqCst);
        }
    };
    let cancel = || stop.load(Ordering::SeqCst);
    let r = db
        .import(&[work.path().join("src")], &progress, &cancel)
        .unwrap();
    assert!(r.cancelled);
    let list = db.list_series().unwrap();
    assert_eq!(list.len(), 1, "{list:?}");
    for s in &list {
        assert_eq!(
            Some(&s.images),
            full.get(&s.series_uid),
            "complete series only"
        );
    }
    // No copy of the cancelled series is left behind.
    assert_eq!(
        files_under(&db_dir.join("files")).len() as i64,
        list[0].images
    );
    // Importing again completes the rest.
    let r = db
        .import(&[work.path().join("src")], &quiet, &never)
        .unwrap();
    assert!(!r.cancelled);
    assert_eq!(r.instances_added as i64, total as i64 - list[0].images);
    let list = db.list_series().unwrap();
    let got: BTreeMap<String, i64> = list
        .iter()
        .map(|s| (s.series_uid.clone(), s.images))
        .collect();
    assert_eq!(got, full);
}

#[test]
fn corrupt_files_are_counted_and_named_and_the_cli_runs() {
    let work = tempfile::tempdir().unwrap();
    let src = work.path().join("src");
    let phantom = phantom_series(&src);
    let good = src.join("s0/IM0001.dcm");
    let bytes = std::fs::read(&good).unwrap();
    // A copy cut inside its file meta group, and one with garbage after the magic.
    let cut = src.join("cut.dcm");
    std::fs::write(&cut, &bytes[..150]).unwrap();
    let mut garbage = bytes[..132].to_vec();
    garbage.extend(std::iter::repeat_n(0xffu8, 64));
    let junk = src.join("junk.dcm");
    std::fs::write(&junk, &garbage).unwrap();
    std::fs::write(src.join("readme.txt"), "hello").unwrap();

    // The CLI with SYNTHSCOPE_DATA_DIR: the database goes to $SYNTHSCOPE_DATA_DIR/dicom.
    let data = work.path().join("data");
    let run = |args: &[&str]| {
        let out = common::run_ok(
            common::synthscope()
                .env("SYNTHSCOPE_DATA_DIR", &data)
                .arg("db")
                .args(args),
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let out = run(&["import", "--json", &src.display().to_string()]);
    let r: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(r["not_dicom"], 1, "{r}");
    let skipped: Vec<String> = r["skipped"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_string())
        .collect();
    assert_eq!(skipped.len(), 2, "{skipped:?}");
    for f in [&cut, &junk] {
        assert!(
            skipped
                .iter()
                .any(|s| s.starts_with(&f.display().to_string())),
            "{} named in {skipped:?}",
            f.display()
        );
    }
    let total: usize = phantom.iter().map(|p| p.1).sum();
    assert_eq!(r["instances_added"], total);
    assert!(data.join("dicom").join(INDEX_FILE).exists());
    let list: Vec<serde_json::Value> = serde_json::from_str(&run(&["list", "--json"])).unwrap();
    assert_eq!(list.len(), 3);
    let text = run(&["list"]);
    assert!(text.contains("3 series"), "{text}");
    let out = run(&["remove", &phantom[1].0]);
    assert!(out.contains(&phantom[1].0), "{out}");
    let out = run(&["reindex"]);
    assert!(out.contains("in 2 series"), "{out}");
    // A series that is not there is a clear error, not a panic.
    let out = common::synthscope()
        .env("SYNTHSCOPE_DATA_DIR", &data)
        .args(["db", "remove", "1.2.3.4"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no series 1.2.3.4"), "{err}");
}
