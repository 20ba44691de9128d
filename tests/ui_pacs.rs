//! The app's PACS side driven through its windows (egui_kittest) against a real Orthanc on
//! loopback: File > Open from PACS finds our phantom series by patient name with a wildcard,
//! Retrieve as CT / as MR (C-GET, C-MOVE to our storage SCP, WADO-RS) puts them in the viewer
//! through the local study database, which the series browser lists across restarts; Cancel
//! leaves nothing in the database; Test connection answers in one line; Send to PACS stores the
//! synthetic series as CT Image Storage.
//!
//! Needs Orthanc and its DICOMweb plugin (.ci/run installs them); without them each test says
//! why and passes. SYNTHSCOPE_SCREENSHOT=1 also saves the README's PACS screenshots in docs/.

#[path = "common/app_harness.rs"]
mod app_harness;
#[path = "common/orthanc.rs"]
mod orthanc;

use app_harness::{frames, harness_sized, run_until};
use egui_kittest::kittest::Queryable;
use orthanc::Orthanc;
use std::path::{Path, PathBuf};
use std::time::Duration;
use synthscope::app::Role;
use synthscope::app::panels::pacs::local::LocalAction;
use synthscope::app::panels::pacs::servers::{Endpoint, PacsServer, WebAuth};
use synthscope::db::Database;
use synthscope::io::dicom::write::{DicomWriteOptions, write_series};
use synthscope::io::phantom::{MrContrast, PhantomConfig, phantom_ct, phantom_mr};
use synthscope::pacs::Level;
use synthscope::volume::Volume;

const WAIT: Duration = Duration::from_secs(120);

/// A series we uploaded.
struct Uploaded {
    volume: Volume,
    series_uid: String,
}

/// Set StudyDate and AccessionNumber in written files (our writer leaves them to the PACS).
fn set_study_attrs(files: &[PathBuf], date: &str, accession: &str) {
    use dicom::core::{DataElement, PrimitiveValue, VR};
    use dicom::dictionary_std::tags;
    for f in files {
        let mut o = dicom::object::open_file(f).unwrap();
        o.put(DataElement::new(
            tags::STUDY_DATE,
            VR::DA,
            PrimitiveValue::from(date),
        ));
        o.put(DataElement::new(
            tags::ACCESSION_NUMBER,
            VR::SH,
            PrimitiveValue::from(accession),
        ));
        o.write_to_file(f).unwrap();
    }
}

fn write(dir: &Path, mut v: Volume, name: &str, id: &str, desc: &str, number: i32) -> Uploaded {
    v.meta.patient_name = name.into();
    v.meta.patient_id = id.into();
    v.meta.description = desc.into();
    let files = write_series(
        &v,
        dir,
        &DicomWriteOptions {
            series_number: number,
            ..Default::default()
        },
    )
    .unwrap();
    set_study_attrs(&files, "20240315", "ACC42");
    Uploaded {
        series_uid: v.meta.series_uid.clone(),
        volume: v,
    }
}

/// Orthanc holding a phantom patient's CT and MR (another seed than the app's demo pair, so
/// other UIDs) and one other patient's small CT.
fn orthanc_with_phantom() -> Option<(Orthanc, Uploaded, Uploaded, tempfile::TempDir)> {
    if let Some(why) = orthanc::missing() {
        eprintln!("skipped: {why}");
        return None;
    }
    let o = Orthanc::start();
    let dir = tempfile::tempdir().unwrap();
    let cfg = PhantomConfig {
        seed: 11,
        ..PhantomConfig::small()
    };
    let ct = write(
        &dir.path().join("ct"),
        phantom_ct(&cfg),
        "PACS^Phantom",
        "PACS-042",
        "Head CT from PACS",
        2,
    );
    let mr = write(
        &dir.path().join("mr"),
        phantom_mr(&cfg, MrContrast::T1),
        "PACS^Phantom",
        "PACS-042",
        "Head MR T1 from PACS",
        3,
    );
    let other_cfg = PhantomConfig {
        seed: 12,
        ct_dims: [32, 32, 4],
        ct_spacing: [6.0, 6.0, 12.0],
        ..PhantomConfig::small()
    };
    let _other = write(
        &dir.path().join("other"),
        phantom_ct(&other_cfg),
        "OTHER^Person",
        "OTHER-7",
        "Someone else's CT",
        1,
    );
    for sub in ["ct", "mr", "other"] {
        let mut files: Vec<PathBuf> = std::fs::read_dir(dir.path().join(sub))
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        files.sort();
        o.upload(&files);
    }
    Some((o, ct, mr, dir))
}

fn dimse_server(o: &Orthanc, move_port: Option<u16>) -> PacsServer {
    PacsServer {
        name: if move_port.is_some() {
            "Orthanc (C-MOVE)".into()
        } else {
            "Orthanc".into()
        },
        endpoint: Endpoint::Dimse {
            called_ae: "ORTHANC".into(),
            host: "127.0.0.1".into(),
            port: o.dicom_port,
            our_ae: orthanc::OUR_AET.into(),
            move_port,
        },
    }
}

fn web_server(o: &Orthanc) -> PacsServer {
    PacsServer {
        name: "Orthanc DICOMweb".into(),
        endpoint: Endpoint::Web {
            url: o.dicomweb(),
            auth: WebAuth::None,
        },
    }
}

/// The volume in `role` is `expected` as written: same series, grid and voxels.
fn assert_role_holds(app: &synthscope::app::SynthScopeApp, role: Role, expected: &Uploaded) {
    let v = match role {
        Role::Ct => app.ct_volume(),
        Role::Mr => app.mr_volume(),
    }
    .unwrap_or_else(|| panic!("a volume in the {role:?} role"));
    assert_eq!(v.meta.series_uid, expected.series_uid, "{role:?} role");
    assert_eq!(v.geometry.dims, expected.volume.geometry.dims);
    for k in 0..3 {
        assert!((v.geometry.spacing[k] - expected.volume.geometry.spacing[k]).abs() < 1e-4);
    }
    let max_err = v
        .data
        .iter()
        .zip(&expected.volume.data)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    let (lo, hi) = expected.volume.min_max();
    // Our writer stores 16-bit values with a rescale: at most half a step off.
    assert!(
        max_err <= (hi - lo) / 65535.0 + 0.5,
        "{role:?}: voxels differ by {max_err}"
    );
}

fn db_series(dir: &Path) -> Vec<synthscope::db::SeriesRecord> {
    Database::open(dir).unwrap().list_series().unwrap()
}

fn screenshot(h: &mut egui_kittest::Harness<'static, synthscope::app::SynthScopeApp>, name: &str) {
    let img = h.render().expect("renders");
    if std::env::var_os("SYNTHSCOPE_SCREENSHOT").is_some() {
        img.save(format!("docs/{name}")).unwrap();
    }
}

#[test]
fn query_shows_rows_and_retrieve_puts_the_series_in_the_ct_and_mr_roles() {
    let Some((o, ct, mr, files)) = orthanc_with_phantom() else {
        return;
    };
    let db = tempfile::tempdir().unwrap();
    let mut h = harness_sized(1440.0, 800.0);
    {
        let app = h.state_mut();
        app.pacs.set_db_dir(db.path().to_path_buf());
        app.pacs.servers = vec![dimse_server(&o, None)];
        app.pacs.show_query = true;
        let f = &mut app.pacs.query.form;
        f.patient_name = "PACS^*".into();
        f.date_from = "20240101".into();
        f.date_to = "20241231".into();
        f.level = Level::Series;
    }
    frames(&mut h);
    h.get_by_label("Search").click();
    frames(&mut h);
    run_until(&mut h, "C-FIND", WAIT, |a| a.pacs.query.find.is_none());
    // The wildcard found this patient's two series and not the other patient's.
    let q = &h.state().pacs.query;
    assert_eq!(
        q.status,
        Some(Ok("2 series found.".into())),
        "{:?}",
        q.results
    );
    let mut modalities: Vec<_> = q.results.iter().map(|r| r.modality.clone()).collect();
    modalities.sort();
    assert_eq!(modalities, ["CT", "MR"]);
    assert!(q.results.iter().all(|r| r.patient_id == "PACS-042"));
    let n_ct = ct.volume.geometry.dims[2];
    let ct_row = q
        .results
        .iter()
        .find(|r| r.series_uid == ct.series_uid)
        .expect("the CT row");
    assert_eq!(ct_row.images, Some(n_ct as u32));
    // The rows are in the table.
    let _ = h.get_by_label("Head CT from PACS");
    let _ = h.get_by_label("Head MR T1 from PACS");
    assert_eq!(h.get_all_by_label("2024-03-15").count(), 2);
    // Sorting by a column header reorders the rows.
    h.get_by_role_and_label(egui::Role::Button, "Modality")
        .click();
    frames(&mut h);
    assert_eq!(h.state().pacs.query.results[0].modality, "CT");
    h.get_by_role_and_label(egui::Role::Button, "Modality ^")
        .click();
    frames(&mut h);
    assert_eq!(h.state().pacs.query.results[0].modality, "MR");
    h.get_by_label("Head CT from PACS").click();
    frames(&mut h);
    screenshot(&mut h, "screenshot_pacs_query.png");

    // Retrieve as CT: into the local database, then into the CT role.
    h.get_by_label("Retrieve as CT").click();
    frames(&mut h);
    run_until(&mut h, "C-GET of the CT", WAIT, |a| {
        a.pacs.query.retrieve.is_none()
    });
    assert_role_holds(h.state(), Role::Ct, &ct);
    assert!(
        h.state()
            .errors
            .iter()
            .any(|e| e.contains("over C-GET") && e.contains(&format!("{n_ct} images"))),
        "{:?}",
        h.state().errors
    );
    let listed = db_series(db.path());
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].series_uid, ct.series_uid);
    assert_eq!(listed[0].images, n_ct as i64);
    // No incoming folder is left behind.
    let leftovers: Vec<_> = std::fs::read_dir(db.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("incoming-"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");

    // Then the MR into the MR role.
    h.get_by_label("Head MR T1 from PACS").click();
    frames(&mut h);
    h.get_by_label("Retrieve as MR").click();
    frames(&mut h);
    run_until(&mut h, "C-GET of the MR", WAIT, |a| {
        a.pacs.query.retrieve.is_none()
    });
    assert_role_holds(h.state(), Role::Mr, &mr);
    assert_role_holds(h.state(), Role::Ct, &ct);
    assert_eq!(db_series(db.path()).len(), 2);
    for m in h
        .state()
        .errors
        .iter()
        .filter(|m| m.starts_with("Retrieved"))
    {
        eprintln!("{m}");
    }

    // The series browser lists the database.
    {
        let app = h.state_mut();
        app.pacs.show_query = false;
        app.errors.clear();
        *app.panel_flag_mut(synthscope::app::workspace::Panel::Browser) = true;
    }
    frames(&mut h);
    run_until(&mut h, "listing the database", WAIT, |a| {
        !a.pacs.local.is_busy() && matches!(&a.pacs.local.records, Some(Ok(r)) if r.len() == 2)
    });
    let _ = h.get_by_label_contains("(2 series)");
    // Loaded (the upper list) and in the database (the lower one).
    assert_eq!(
        h.get_all_by_label_contains("Head MR T1 from PACS").count(),
        2
    );
    screenshot(&mut h, "screenshot_pacs_retrieved.png");
    drop(h);

    // Across a restart: a new app on the same database lists both and opens one into a role.
    let mut h = harness_sized(1440.0, 800.0);
    h.state_mut().pacs.set_db_dir(db.path().to_path_buf());
    *h.state_mut()
        .panel_flag_mut(synthscope::app::workspace::Panel::Browser) = true;
    frames(&mut h);
    run_until(
        &mut h,
        "listing after a restart",
        WAIT,
        |a| matches!(&a.pacs.local.records, Some(Ok(r)) if r.len() == 2),
    );
    let _ = h.get_by_label_contains("2: Head CT from PACS");
    h.state_mut()
        .pacs
        .local
        .request(LocalAction::Open(mr.series_uid.clone(), Role::Mr));
    frames(&mut h);
    run_until(&mut h, "opening from the database", WAIT, |a| {
        !a.pacs.local.is_busy()
    });
    assert_role_holds(h.state(), Role::Mr, &mr);
    // Remove a series: asked, confirmed, gone from the list and from the disk.
    h.get_all_by_label("Remove…").next().unwrap().click();
    frames(&mut h);
    h.get_by_label("Remove it").click();
    frames(&mut h);
    run_until(&mut h, "removing a series", WAIT, |a| {
        !a.pacs.local.is_busy() && matches!(&a.pacs.local.records, Some(Ok(r)) if r.len() == 1)
    });
    let left = db_series(db.path());
    assert_eq!(left.len(), 1);
    let folders = std::fs::read_dir(db.path().join("files")).unwrap().count();
    assert_eq!(folders, 1, "the removed series' copies are gone");
    // Import a folder (as Import folder… does once a folder is chosen).
    h.state_mut().errors.clear();
    h.state_mut()
        .pacs
        .local
        .request(LocalAction::Import(vec![files.path().join("other")]));
    frames(&mut h);
    run_until(&mut h, "importing a folder", WAIT, |a| {
        !a.pacs.local.is_busy() && matches!(&a.pacs.local.records, Some(Ok(r)) if r.len() == 2)
    });
    assert!(
        h.state()
            .errors
            .iter()
            .any(|e| e.contains("Imported 4 instances in 1 series")),
        "{:?}",
        h.state().errors
    );
    let _ = h.get_by_label_contains("OTHER^Person");
}

#[test]
fn dicomweb_and_c_move_retrieve_and_cancel_leaves_nothing() {
    let Some((o, ct, mr, _files)) = orthanc_with_phantom() else {
        return;
    };
    let db = tempfile::tempdir().unwrap();
    let mut h = harness_sized(1440.0, 800.0);
    {
        let app = h.state_mut();
        app.pacs.set_db_dir(db.path().to_path_buf());
        app.pacs.servers = vec![web_server(&o), dimse_server(&o, Some(o.scp_port))];
        app.pacs.show_query = true;
        app.pacs.query.form.patient_id = "PACS-042".into();
        app.pacs.query.form.level = Level::Study;
    }
    frames(&mut h);
    // QIDO-RS at study level: one study; list its series.
    h.get_by_label("Search").click();
    frames(&mut h);
    run_until(&mut h, "QIDO-RS", WAIT, |a| a.pacs.query.find.is_none());
    assert_eq!(
        h.state().pacs.query.status,
        Some(Ok("1 studies found.".into()))
    );
    h.get_by_label("PACS^Phantom").click();
    frames(&mut h);
    h.get_by_label("List series of this study").click();
    frames(&mut h);
    run_until(&mut h, "the study's series", WAIT, |a| {
        a.pacs.query.find.is_none()
    });
    assert_eq!(h.state().pacs.query.results.len(), 2);

    // Cancel at once: nothing reaches the database.
    h.get_by_label("Head MR T1 from PACS").click();
    frames(&mut h);
    h.get_by_label("Retrieve as MR").click();
    frames(&mut h);
    assert!(h.state().pacs.query.retrieve.is_some());
    h.get_by_label("Cancel").click();
    frames(&mut h);
    run_until(&mut h, "cancelled retrieve", WAIT, |a| {
        a.pacs.query.retrieve.is_none()
    });
    assert!(
        h.state()
            .errors
            .iter()
            .any(|e| e.contains("Retrieve cancelled")),
        "{:?}",
        h.state().errors
    );
    let index = db.path().join(synthscope::db::INDEX_FILE);
    if index.exists() {
        assert!(db_series(db.path()).is_empty());
    }
    assert!(
        !std::fs::read_dir(db.path()).unwrap().any(|e| e
            .unwrap()
            .file_name()
            .to_string_lossy()
            .starts_with("incoming-")),
        "the incoming folder is removed"
    );
    assert_ne!(
        h.state().mr_volume().map(|v| v.meta.series_uid.clone()),
        Some(mr.series_uid.clone())
    );

    // WADO-RS into the MR role.
    h.get_by_label("Retrieve as MR").click();
    frames(&mut h);
    run_until(&mut h, "WADO-RS", WAIT, |a| a.pacs.query.retrieve.is_none());
    assert_role_holds(h.state(), Role::Mr, &mr);
    assert!(h.state().errors.iter().any(|e| e.contains("over WADO-RS")));

    // C-MOVE to our storage SCP on the port Orthanc knows, into the CT role.
    {
        let app = h.state_mut();
        app.pacs.query.server = 1;
        app.pacs.query.form.level = Level::Series;
        app.pacs.query.form.modality = "CT".into();
    }
    frames(&mut h);
    h.get_by_label("Search").click();
    frames(&mut h);
    run_until(&mut h, "C-FIND for the CT", WAIT, |a| {
        a.pacs.query.find.is_none()
    });
    assert_eq!(h.state().pacs.query.results.len(), 1);
    h.get_by_label("Head CT from PACS").click();
    frames(&mut h);
    h.get_by_label("Retrieve as CT").click();
    frames(&mut h);
    run_until(&mut h, "C-MOVE", WAIT, |a| a.pacs.query.retrieve.is_none());
    assert_role_holds(h.state(), Role::Ct, &ct);
    assert!(
        h.state().errors.iter().any(|e| e.contains("over C-MOVE")),
        "{:?}",
        h.state().errors
    );
    assert_eq!(db_series(db.path()).len(), 2);
    for m in h
        .state()
        .errors
        .iter()
        .filter(|m| m.starts_with("Retrieved"))
    {
        eprintln!("{m}");
    }
}

#[test]
fn test_connection_and_send_the_synthetic_series() {
    let Some((o, _ct, _mr, _files)) = orthanc_with_phantom() else {
        return;
    };
    let before = o.instance_count();
    let mut h = harness_sized(1440.0, 800.0);
    let mut wrong_ae = dimse_server(&o, None);
    wrong_ae.name = "Wrong AE".into();
    if let Endpoint::Dimse { called_ae, .. } = &mut wrong_ae.endpoint {
        *called_ae = "NOT_ORTHANC".into();
    }
    {
        let app = h.state_mut();
        app.pacs.servers = vec![dimse_server(&o, None), wrong_ae, web_server(&o)];
        app.pacs.show_settings = true;
    }
    frames(&mut h);
    // Test connection: C-ECHO to the first.
    h.get_by_label("Test connection").click();
    frames(&mut h);
    run_until(&mut h, "C-ECHO", WAIT, |a| !a.pacs.is_busy());
    let _ = h.get_by_label_contains("Orthanc: C-ECHO ORTHANC@127.0.0.1");
    // A wrong called AE title: the association is rejected, in one line.
    h.get_by_label("Wrong AE").click();
    frames(&mut h);
    h.get_by_label("Test connection").click();
    frames(&mut h);
    run_until(&mut h, "C-ECHO, wrong AE", WAIT, |a| !a.pacs.is_busy());
    let _ = h.get_by_label_contains("Wrong AE: association rejected");
    // DICOMweb: a QIDO-RS search.
    h.get_by_label("Orthanc DICOMweb").click();
    frames(&mut h);
    h.get_by_label("Test connection").click();
    frames(&mut h);
    run_until(&mut h, "QIDO-RS ping", WAIT, |a| !a.pacs.is_busy());
    let _ = h.get_by_label_contains("(2 studies)");
    h.state_mut().pacs.show_settings = false;

    // A synthetic CT (the demo CT stands in for the network's output: the writer and the send
    // are what is tested here; tests/ui.rs runs the network).
    let n = {
        let app = h.state_mut();
        let mut v = (**app.ct_volume().unwrap()).clone();
        v.meta.description = "Synthetic CT".into();
        let n = v.geometry.dims[2];
        app.volumes.push(std::sync::Arc::new(v));
        app.synthesis.synthetic = Some(app.volumes.len() - 1);
        app.synthesis.show = true;
        n
    };
    frames(&mut h);
    frames(&mut h);
    h.get_by_label("Send to PACS").click();
    frames(&mut h);
    run_until(&mut h, "C-STORE of the synthetic series", WAIT, |a| {
        !a.synthesis.send.is_busy()
    });
    let line = match &h.state().synthesis.send.last {
        Some(Ok(s)) => s.clone(),
        other => panic!("send: {other:?}"),
    };
    assert!(
        line.contains("over C-STORE") && line.contains(&format!("{n} images")),
        "{line}"
    );
    assert_eq!(o.instance_count(), before + n);
    // What Orthanc holds is CT Image Storage, DERIVED\SECONDARY.
    let instances = o.get("/instances").unwrap();
    let tags: Vec<serde_json::Value> = instances
        .as_array()
        .unwrap()
        .iter()
        .map(|id| {
            o.get(&format!(
                "/instances/{}/simplified-tags",
                id.as_str().unwrap()
            ))
            .unwrap()
        })
        .collect();
    let derived: Vec<_> = tags
        .iter()
        .filter(|t| {
            t["ImageType"]
                .as_str()
                .is_some_and(|s| s.starts_with("DERIVED\\SECONDARY"))
        })
        .collect();
    let types: std::collections::BTreeSet<String> =
        tags.iter().map(|t| t["ImageType"].to_string()).collect();
    assert_eq!(derived.len(), n, "image types at the PACS: {types:?}");
    assert!(
        derived
            .iter()
            .all(|t| t["SOPClassUID"] == "1.2.840.10008.5.1.4.1.1.2" && t["Modality"] == "CT")
    );
}
