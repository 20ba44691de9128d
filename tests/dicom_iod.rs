//! The series SynthScope writes are valid CT Image / MR Image instances: dciodvfy (dicom3tools)
//! finds no error in any file of the phantom's export, a synthetic CT (from a DICOM MR) or a
//! synthetic MR (from a DICOM CT); dcmtk's dcmdump parses every file; every UID in them is
//! valid by PS3.5 9.1 and every SOP Instance UID unique; the derived series sit in their
//! source's study and frame of reference and reference their source instances.

use dicom::core::VR;
use dicom::dictionary_std::{tags, uids};
use dicom::object::{InMemDicomObject, open_file};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use synthscope::io::dicom::write::{
    DicomWriteOptions, validate_uid, write_derived_series, write_series,
};
use synthscope::io::phantom::{MrContrast, PhantomConfig, phantom_ct, phantom_mr};
use synthscope::io::{Progress, load_paths};
use synthscope::volume::{Modality, Volume, VolumeMeta};

/// The tool at `name`, or None when the run may skip it (SYNTHSCOPE_SKIP_DCIODVFY=1).
fn tool(name: &str, package: &str) -> Option<PathBuf> {
    let found = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .chain([PathBuf::from("/usr/bin")])
        .map(|d| d.join(name))
        .find(|p| p.is_file());
    if found.is_none() {
        if std::env::var("SYNTHSCOPE_SKIP_DCIODVFY").as_deref() == Ok("1") {
            eprintln!("{name} not installed: its checks are skipped (SYNTHSCOPE_SKIP_DCIODVFY=1)");
            return None;
        }
        panic!(
            "{name} is not installed (Debian/Ubuntu package {package}); install it, or set \
             SYNTHSCOPE_SKIP_DCIODVFY=1 to skip the checks that need it"
        );
    }
    found
}

fn dcm_files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "dcm"))
        .collect();
    v.sort();
    v
}

/// Run dciodvfy on every file; panic on any "Error" line; the warnings, counted.
fn dciodvfy_clean(dciodvfy: &Path, files: &[PathBuf], label: &str) -> BTreeMap<String, usize> {
    let mut warnings = BTreeMap::new();
    let mut iod = HashSet::new();
    for f in files {
        let out = Command::new(dciodvfy).arg(f).output().unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let errors: Vec<&str> = text.lines().filter(|l| l.contains("Error")).collect();
        assert!(
            errors.is_empty(),
            "dciodvfy finds errors in {} ({label}):\n{}",
            f.display(),
            errors.join("\n")
        );
        for l in text.lines() {
            if l.starts_with("Warning") {
                *warnings.entry(l.to_string()).or_insert(0) += 1;
            } else if !l.trim().is_empty() {
                iod.insert(l.trim().to_string());
            }
        }
    }
    eprintln!(
        "dciodvfy, {label}: {} files, IOD {:?}, 0 errors, {} warning lines",
        files.len(),
        iod,
        warnings.values().sum::<usize>()
    );
    for (w, n) in &warnings {
        eprintln!("    {n:>4} x {w}");
    }
    warnings
}

/// dcmdump parses every file (exit 0, no "E:" line).
fn dcmdump_parses(dcmdump: &Path, files: &[PathBuf]) {
    for f in files {
        let out = Command::new(dcmdump).arg(f).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success() && !err.lines().any(|l| l.starts_with("E:")),
            "dcmdump cannot parse {}: {err}",
            f.display()
        );
    }
}

/// Every UI value of `obj` (nested sequences included).
fn uids_in(obj: &InMemDicomObject, out: &mut Vec<(String, String)>) {
    for e in obj.iter() {
        if e.vr() == VR::UI {
            let v = e.to_str().unwrap();
            for part in v.split('\\') {
                out.push((
                    format!("{:?}", e.header().tag),
                    part.trim_end_matches('\0').to_string(),
                ));
            }
        } else if let Some(items) = e.items() {
            for i in items {
                uids_in(i, out);
            }
        }
    }
}

/// All UIDs (data set and file meta) of `files` are valid; the SOP Instance UIDs are returned.
fn uids_valid(files: &[PathBuf]) -> Vec<String> {
    let mut sops = Vec::new();
    for f in files {
        let obj = open_file(f).unwrap();
        let mut all = Vec::new();
        uids_in(&obj, &mut all);
        let m = obj.meta();
        for (what, v) in [
            ("MediaStorageSOPClassUID", m.media_storage_sop_class_uid()),
            (
                "MediaStorageSOPInstanceUID",
                m.media_storage_sop_instance_uid(),
            ),
            ("TransferSyntaxUID", m.transfer_syntax()),
            ("ImplementationClassUID", m.implementation_class_uid()),
        ] {
            all.push((what.to_string(), v.trim_end_matches('\0').to_string()));
        }
        for (tag, u) in &all {
            if let Err(e) = validate_uid(u) {
                panic!("{}: {tag}: {e}", f.display());
            }
        }
        let sop = text(&obj, tags::SOP_INSTANCE_UID);
        assert_eq!(
            sop,
            m.media_storage_sop_instance_uid().trim_end_matches('\0')
        );
        sops.push(sop);
    }
    sops
}

fn text(obj: &InMemDicomObject, tag: dicom::core::Tag) -> String {
    obj.get(tag)
        .map(|e| {
            e.to_str()
                .unwrap()
                .trim_end_matches(['\0', ' '])
                .to_string()
        })
        .unwrap_or_default()
}

/// SOP Instance UID of each source file, by ImagePositionPatient.
fn sops_by_position(files: &[PathBuf]) -> HashMap<String, (String, String)> {
    files
        .iter()
        .map(|f| {
            let o = open_file(f).unwrap();
            (
                text(&o, tags::IMAGE_POSITION_PATIENT),
                (
                    text(&o, tags::SOP_CLASS_UID),
                    text(&o, tags::SOP_INSTANCE_UID),
                ),
            )
        })
        .collect()
}

/// The derived series in `files` was made from `source` (a volume loaded from `source_files`).
fn check_derived(
    files: &[PathBuf],
    source: &Volume,
    source_files: &[PathBuf],
    sop_class: &str,
    modality: &str,
) {
    let by_pos = sops_by_position(source_files);
    let mut series = HashSet::new();
    for f in files {
        let o = open_file(f).unwrap();
        assert_eq!(text(&o, tags::SOP_CLASS_UID), sop_class, "{}", f.display());
        assert_eq!(text(&o, tags::MODALITY), modality);
        let image_type = text(&o, tags::IMAGE_TYPE);
        let want = if modality == "CT" {
            "DERIVED\\SECONDARY\\AXIAL" // CT Image requires value 3
        } else {
            "DERIVED\\SECONDARY\\OTHER" // MR Image too; it has no AXIAL
        };
        assert_eq!(image_type, want);
        assert_eq!(text(&o, tags::STUDY_INSTANCE_UID), source.meta.study_uid);
        assert_eq!(
            text(&o, tags::FRAME_OF_REFERENCE_UID),
            source.meta.frame_of_reference_uid
        );
        assert_eq!(text(&o, tags::PATIENT_ID), source.meta.patient_id);
        assert_eq!(text(&o, tags::PATIENT_NAME), source.meta.patient_name);
        let series_uid = text(&o, tags::SERIES_INSTANCE_UID);
        assert_ne!(series_uid, source.meta.series_uid);
        series.insert(series_uid);
        let d = text(&o, tags::DERIVATION_DESCRIPTION);
        assert!(
            d.contains("test model") && d.contains(env!("CARGO_PKG_VERSION")),
            "{d}"
        );
        if modality == "CT" {
            assert_eq!(text(&o, tags::RESCALE_TYPE), "HU");
        }
        // The slice references the source instance at its own position.
        let item = &o
            .get(tags::SOURCE_IMAGE_SEQUENCE)
            .and_then(|e| e.items())
            .unwrap_or_else(|| panic!("{}: no SourceImageSequence", f.display()))[0];
        let want = &by_pos[&text(&o, tags::IMAGE_POSITION_PATIENT)];
        assert_eq!(text(item, tags::REFERENCED_SOP_CLASS_UID), want.0);
        assert_eq!(text(item, tags::REFERENCED_SOP_INSTANCE_UID), want.1);
    }
    assert_eq!(series.len(), 1, "one new series");
}

/// A synthetic `modality` volume on `source`'s grid, as crate::synth makes it.
fn synthetic(source: &Volume, values: &Volume, modality: Modality) -> Volume {
    let meta = VolumeMeta {
        modality: modality.clone(),
        series_uid: format!("synthetic:{}", source.meta.series_uid),
        description: format!("Synthetic {modality} from {}", source.meta.description),
        ..source.meta.clone()
    };
    let data = (0..source.data.len())
        .map(|i| values.data[i % values.data.len()].round())
        .collect();
    Volume::new(source.geometry.clone(), data, meta)
}

#[test]
fn written_series_are_valid_ct_and_mr_image_instances() {
    let dciodvfy = tool("dciodvfy", "dicom3tools");
    let dcmdump = tool("dcmdump", "dcmtk");
    let cfg = PhantomConfig::small();
    let ct = phantom_ct(&cfg);
    let mr = phantom_mr(&cfg, MrContrast::T1);
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // The phantom's own export (what `synthscope phantom` writes).
    write_series(&ct, &d.join("ct"), &DicomWriteOptions::default()).unwrap();
    write_series(
        &mr,
        &d.join("mr"),
        &DicomWriteOptions {
            series_number: 2,
            ..Default::default()
        },
    )
    .unwrap();
    let load = |p: &Path| {
        let mut out = load_paths(&[p.to_path_buf()], &Progress::default()).unwrap();
        assert!(out.errors.is_empty(), "{:?}", out.errors);
        out.volumes.remove(0)
    };
    let mr_dicom = load(&d.join("mr"));
    let ct_dicom = load(&d.join("ct"));
    let origin = mr_dicom
        .meta
        .dicom
        .as_ref()
        .expect("the loader keeps the DICOM origin");
    assert_eq!(origin.instances.len(), mr.geometry.dims[2]);
    // MR -> CT: a synthetic CT in the MR's study; CT -> MR likewise. The app and the CLI pass
    // the synthetic volume's own metadata (inherited from its input) as the source.
    let syn_ct = synthetic(&mr_dicom, &ct, Modality::Ct);
    let n = write_derived_series(&syn_ct, &syn_ct.meta, "test model", &d.join("syn_ct"))
        .unwrap()
        .len();
    assert_eq!(n, mr.geometry.dims[2]);
    let syn_mr = synthetic(&ct_dicom, &mr, Modality::Mr);
    write_derived_series(&syn_mr, &ct_dicom.meta, "test model", &d.join("syn_mr")).unwrap();

    let series: Vec<(&str, Vec<PathBuf>)> = ["ct", "mr", "syn_ct", "syn_mr"]
        .into_iter()
        .map(|s| (s, dcm_files(&d.join(s))))
        .collect();
    check_derived(
        &series[2].1,
        &mr_dicom,
        &series[1].1,
        uids::CT_IMAGE_STORAGE,
        "CT",
    );
    check_derived(
        &series[3].1,
        &ct_dicom,
        &series[0].1,
        uids::MR_IMAGE_STORAGE,
        "MR",
    );
    // Another phantom patient (seed) is another study and series.
    let other = phantom_ct(&PhantomConfig {
        seed: cfg.seed + 1,
        ..cfg.clone()
    });
    assert_ne!(other.meta.series_uid, ct.meta.series_uid);
    assert_ne!(other.meta.study_uid, ct.meta.study_uid);
    assert_eq!(
        phantom_ct(&cfg).meta.series_uid,
        ct.meta.series_uid,
        "stable"
    );
    // UIDs: all valid, SOP instances unique over every file written.
    let mut seen = HashSet::new();
    for (label, files) in &series {
        for sop in uids_valid(files) {
            assert!(
                seen.insert(sop.clone()),
                "{label}: SOP Instance UID {sop} repeats"
            );
        }
    }
    // Exporting again into the same folder keeps the first export.
    let before: Vec<Vec<u8>> = series[2]
        .1
        .iter()
        .map(|f| std::fs::read(f).unwrap())
        .collect();
    write_derived_series(&syn_ct, &syn_ct.meta, "test model", &d.join("syn_ct")).unwrap();
    let after = dcm_files(&d.join("syn_ct"));
    assert_eq!(
        after.len(),
        2 * n,
        "a second export is added beside the first"
    );
    for (f, b) in series[2].1.iter().zip(&before) {
        assert_eq!(&std::fs::read(f).unwrap(), b, "{} unchanged", f.display());
    }
    let second: Vec<PathBuf> = after
        .into_iter()
        .filter(|f| !series[2].1.contains(f))
        .collect();
    for sop in uids_valid(&second) {
        assert!(
            seen.insert(sop.clone()),
            "second export: SOP Instance UID {sop} repeats"
        );
    }

    if let Some(dcmdump) = dcmdump {
        for (_, files) in &series {
            dcmdump_parses(&dcmdump, files);
        }
    }
    if let Some(dciodvfy) = dciodvfy {
        for (label, files) in &series {
            dciodvfy_clean(&dciodvfy, files, label);
        }
    }
}

#[test]
fn an_invalid_source_uid_is_replaced_by_a_valid_one() {
    // A frame of reference UID breaking PS3.5 9.1 (leading zero) in the volume to write.
    let Some(dciodvfy) = tool("dciodvfy", "dicom3tools") else {
        return;
    };
    let cfg = PhantomConfig::small();
    let mut ct = phantom_ct(&cfg);
    ct.meta.frame_of_reference_uid = "1.2.03.4".into();
    assert!(validate_uid(&ct.meta.frame_of_reference_uid).is_err());
    let dir = tempfile::tempdir().unwrap();
    let files = write_series(&ct, dir.path(), &DicomWriteOptions::default()).unwrap();
    // The writer replaced it by a valid one: dciodvfy finds nothing to complain about.
    let o = open_file(&files[0]).unwrap();
    let written = text(&o, tags::FRAME_OF_REFERENCE_UID);
    assert_ne!(written, "1.2.03.4");
    validate_uid(&written).unwrap();
    dciodvfy_clean(&dciodvfy, &files[..1], "invalid FoR UID replaced");
}
