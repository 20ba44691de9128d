//! Rating and 2AFC reader studies: the study file and log extensions (old files still read),
//! the reading order (blocks, interleaving with a washout), the session's keys, and the ROC
//! summary of the logs through `study summary`, `study mrmc` and `study size`.

use std::path::{Path, PathBuf};
use std::process::Command;
use synthscope::study::session::{Session, StudyKey};
use synthscope::study::{
    self, Design, RatingTask, ReadingOrder, Scale, Study, StudyCase, Truth, rating_summary,
};

/// A rating study of `subjects` subjects (even ones abnormal) in two modalities, one fixed
/// slice each; the case files are never loaded by these tests.
fn rating_study(subjects: usize, order: ReadingOrder, scale: Scale, design: Design) -> Study {
    let mut cases = Vec::new();
    for k in 0..subjects {
        for (m, truth) in [("real CT", Truth::Real), ("synthetic CT", Truth::Synthetic)] {
            cases.push(StudyCase {
                id: format!(
                    "s{k}-{}",
                    if truth == Truth::Real {
                        "real"
                    } else {
                        "synth"
                    }
                ),
                path: format!("s{k}_{m}.nii.gz").into(),
                truth,
                source: String::new(),
                slices: vec![0],
                pair: None,
                modality: Some(m.into()),
                subject: Some(format!("s{k}")),
                abnormal: Some(k % 2 == 0),
            });
        }
    }
    Study {
        version: study::STUDY_VERSION,
        name: "rating-test".into(),
        design,
        allow_back: false,
        time_limit_s: None,
        slices_per_case: 1,
        seed: 3,
        window: Default::default(),
        questions: Default::default(),
        rating: RatingTask {
            scale,
            order,
            washout: 4,
            ..Default::default()
        },
        view: None,
        test_pattern: true,
        cases,
    }
}

fn slices(s: &Study) -> Vec<Vec<usize>> {
    s.cases.iter().map(|c| c.slices.clone()).collect()
}

/// Answer every trial of `reader` with `rate(case)`.
fn read_all(s: &Study, file: &Path, reader: &str, rate: impl Fn(&StudyCase) -> u8) {
    let log = study::log_path(file, reader);
    let mut sess = Session::start(s.clone(), file, &slices(s), reader, &log).unwrap();
    sess.viewing = Some(study::Viewing {
        screen_px: [1920, 1080],
        pixels_per_point: 1.25,
        window: synthscope::volume::WindowLevel {
            width: 80.0,
            center: 40.0,
        },
        zoom: 1.5,
    });
    while let Some(t) = sess.current().cloned() {
        sess.key(StudyKey::Digit(rate(&s.cases[t.case]))).unwrap();
        assert!(sess.key(StudyKey::Next).unwrap(), "answer accepted");
    }
}

#[test]
fn old_study_files_still_read_and_keep_their_digest() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("old.toml");
    // A version-1 study as earlier SynthScope wrote it: none of the new fields.
    std::fs::write(
        &f,
        "version = 1\nname = \"old\"\ndesign = \"single\"\n[[cases]]\nid = \"a\"\npath = \"a.nii.gz\"\ntruth = \"real\"\n",
    )
    .unwrap();
    let s = Study::read(&f).unwrap();
    assert_eq!(s.design, Design::Single);
    assert_eq!(s.rating, RatingTask::default());
    assert!(!s.test_pattern && s.view.is_none());
    // Written back, it holds none of the new keys (an older SynthScope reads it unchanged).
    let back = dir.path().join("back.toml");
    s.write(&back).unwrap();
    let text = std::fs::read_to_string(&back).unwrap();
    for key in [
        "rating",
        "test_pattern",
        "view",
        "modality",
        "abnormal",
        "subject",
    ] {
        assert!(!text.contains(key), "{key} in {text}");
    }
    assert_eq!(Study::read(&back).unwrap().digest(), s.digest());
}

#[test]
fn rating_design_checks_its_cases() {
    let mut s = rating_study(4, ReadingOrder::Blocks, Scale::Five, Design::Rating);
    s.validate().unwrap();
    s.cases[3].abnormal = None;
    let e = s.validate().unwrap_err().to_string();
    assert!(e.contains("s1-synth") && e.contains("lesion"), "{e}");
    let mut s = rating_study(4, ReadingOrder::Blocks, Scale::Five, Design::Rating);
    for c in s
        .cases
        .iter_mut()
        .filter(|c| c.modality.as_deref() == Some("synthetic CT"))
    {
        c.abnormal = Some(false);
    }
    let e = s.validate().unwrap_err().to_string();
    assert!(
        e.contains("synthetic CT") && e.contains("0 abnormal"),
        "{e}"
    );
}

#[test]
fn blocks_and_washout_orders() {
    let s = rating_study(10, ReadingOrder::Blocks, Scale::Five, Design::Rating);
    let t = study::trials(&s, &slices(&s), "r1");
    assert_eq!(t.len(), 20);
    // Blocks: the first 10 trials are one modality, the next 10 the other.
    let m = |i: usize| s.cases[t[i].case].modality.clone().unwrap();
    assert!((1..10).all(|i| m(i) == m(0)) && (11..20).all(|i| m(i) == m(10)) && m(0) != m(10));
    // Counterbalanced: some reader starts with the other modality.
    let first: std::collections::BTreeSet<String> = (0..8)
        .map(|r| {
            let t = study::trials(&s, &slices(&s), &format!("reader{r}"));
            s.cases[t[0].case].modality.clone().unwrap()
        })
        .collect();
    assert_eq!(first.len(), 2, "modality order varies over readers");
    let s = rating_study(10, ReadingOrder::Interleaved, Scale::Five, Design::Rating);
    for r in ["a", "b", "c"] {
        let t = study::trials(&s, &slices(&s), r);
        let gap = study::order::min_gap(&t, &s).unwrap();
        assert!(
            gap >= 4,
            "reader {r}: two readings of one subject {gap} images apart"
        );
        // Interleaved: both modalities within the first half.
        let mods: std::collections::BTreeSet<_> = t[..10]
            .iter()
            .map(|x| s.cases[x.case].modality.clone())
            .collect();
        assert_eq!(mods.len(), 2);
    }
}

#[test]
fn rating_session_logs_the_rating_and_roc_follows() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("study.toml");
    let s = rating_study(8, ReadingOrder::Interleaved, Scale::Six, Design::Rating);
    s.write(&file).unwrap();
    // Keys: 7 is no rating; 6 is on a 6-point scale; Next needs a rating.
    let log = study::log_path(&file, "oracle");
    let mut sess = Session::start(s.clone(), &file, &slices(&s), "oracle", &log).unwrap();
    assert!(!sess.key(StudyKey::Next).unwrap(), "no rating: not saved");
    assert_eq!(sess.missing(), vec!["rating".to_string()]);
    assert_eq!(StudyKey::parse("7"), None);
    assert_eq!(StudyKey::parse("v=55"), Some(StudyKey::Value(55)));
    sess.key(StudyKey::Value(40)).unwrap(); // not a slider study: ignored
    assert_eq!(sess.draft.rating, None);
    drop(sess);
    // The oracle rates 6 for lesions and 1 otherwise; a guesser rates by subject parity
    // flipped in the synthetic CT.
    read_all(&s, &file, "oracle", |c| {
        if c.abnormal == Some(true) { 6 } else { 1 }
    });
    read_all(&s, &file, "second", |c| {
        let k: usize = c.subject.as_ref().unwrap()[1..].parse().unwrap();
        match (c.modality.as_deref(), c.abnormal) {
            (Some("real CT"), Some(true)) => 5,
            (Some("real CT"), _) => 2,
            (_, _) => 1 + (k % 3) as u8,
        }
    });
    let text = std::fs::read_to_string(&log).unwrap();
    let line = text.lines().nth(1).unwrap();
    let v: serde_json::Value = serde_json::from_str(line).unwrap();
    assert_eq!(v["kind"], "answer");
    assert!(
        v["rating"].as_f64().is_some() && v["modality"].is_string() && v["abnormal"].is_boolean(),
        "{line}"
    );
    let set = study::read_logs(&[study::answers_dir(&file)]).unwrap();
    let r =
        rating_summary::summarise_ratings(&set.logs, study::mrmc::CovMethod::Jackknife).unwrap();
    let table = r.ratings.as_ref().unwrap();
    assert_eq!(table.cases.len(), 8);
    assert_eq!(
        table.modalities,
        vec!["real CT".to_string(), "synthetic CT".to_string()]
    );
    let auc = |m: &str, reader: &str| {
        r.curves
            .iter()
            .find(|c| c.modality == m && c.reader == reader)
            .unwrap()
            .auc
    };
    assert_eq!(auc("real CT", "oracle"), 1.0);
    assert_eq!(auc("synthetic CT", "oracle"), 1.0);
    assert_eq!(auc("real CT", "second"), 1.0);
    // Synthetic CT, second reader: abnormal subjects 0,2,4,6 rate 1,3,2,1; normal 1,3,5,7 rate
    // 2,1,3,2: Mann-Whitney by hand = (0 + 0.5*1 + 1 + 0.5*1 ... ) computed below.
    let ab = [1.0, 3.0, 2.0, 1.0];
    let no = [2.0, 1.0, 3.0, 2.0];
    let mut u = 0.0;
    for a in ab {
        for n in no {
            u += if a > n {
                1.0
            } else if a == n {
                0.5
            } else {
                0.0
            };
        }
    }
    assert!((auc("synthetic CT", "second") - u / 16.0).abs() < 1e-12);
    let m = r.mrmc.as_ref().expect("two readers, two modalities: MRMC");
    assert!(m.or.rrrc.differences[0].estimate > 0.0);
    // The CSV has the rating columns and the viewing conditions; the ROC CSV its AUC rows.
    let csv = study::answers_csv(&set.logs, &set.questions);
    assert!(
        csv.lines()
            .nth(1)
            .unwrap()
            .ends_with(",1920,1080,1.25,80,40,1.500"),
        "{csv}"
    );
    assert!(csv.lines().next().unwrap().ends_with("rating,modality,subject,abnormal,screen_w,screen_h,pixels_per_point,window_width,window_center,zoom"));
    let roc = r.roc_csv();
    assert!(roc.contains("auc,real CT,oracle,,,1.000000"), "{roc}");
    let png = r.roc_png(300);
    let img = image::load_from_memory(&png).unwrap();
    assert_eq!((img.width(), img.height()), (300, 300));
}

#[test]
fn two_afc_pairs_a_lesion_with_a_normal_image_of_its_modality() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("afc.toml");
    let s = rating_study(6, ReadingOrder::Blocks, Scale::Five, Design::TwoAfc);
    s.write(&file).unwrap();
    let t = study::trials(&s, &slices(&s), "r");
    assert_eq!(t.len(), 6, "3 abnormal subjects x 2 modalities");
    for x in &t {
        let (a, n) = (&s.cases[x.case], &s.cases[x.partner.unwrap()]);
        assert_eq!(a.abnormal, Some(true));
        assert_eq!(n.abnormal, Some(false));
        assert_eq!(a.modality, n.modality);
    }
    // A reader who always finds the lesion: proportion correct 1 in both modalities.
    let log = study::log_path(&file, "r");
    let mut sess = Session::start(s.clone(), &file, &slices(&s), "r", &log).unwrap();
    while let Some(x) = sess.current().cloned() {
        sess.key(if x.real_on_left {
            StudyKey::A
        } else {
            StudyKey::B
        })
        .unwrap();
        sess.key(StudyKey::Digit(4)).unwrap();
        assert!(sess.key(StudyKey::Next).unwrap());
    }
    let set = study::read_logs(&[study::answers_dir(&file)]).unwrap();
    let r =
        rating_summary::summarise_ratings(&set.logs, study::mrmc::CovMethod::Jackknife).unwrap();
    let pooled: Vec<_> = r.two_afc.iter().filter(|x| x.reader == "pooled").collect();
    assert_eq!(pooled.len(), 2);
    assert!(pooled.iter().all(|x| x.n == 3 && x.proportion == 1.0));
}

fn synthscope() -> Command {
    Command::new(env!("CARGO_BIN_EXE_synthscope"))
}

#[test]
fn cli_mrmc_and_size_on_van_dyke() {
    let vd = PathBuf::from("tests/fixtures/vandyke/VD.lrc");
    let out = synthscope()
        .args(["study", "mrmc", "--json"])
        .arg(&vd)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let f = v["or"]["rrrc"]["f"].as_f64().unwrap();
    assert!((f - 4.456).abs() < 0.01, "F {f}");
    let out = synthscope()
        .args(["study", "mrmc"])
        .arg(&vd)
        .output()
        .unwrap();
    let t = String::from_utf8_lossy(&out.stdout);
    assert!(
        t.contains("OR RRRC") && t.contains("DBM RRRC") && t.contains("iMRMC"),
        "{t}"
    );
    let out = synthscope()
        .args([
            "study",
            "size",
            "--delta",
            "0.05",
            "--power",
            "0.8",
            "--max-readers",
            "8",
            "--json",
        ])
        .arg(&vd)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let rows = v["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 6, "3..=8 readers");
    let cases: Vec<u64> = rows
        .iter()
        .filter_map(|r| r["design"]["cases"].as_u64())
        .collect();
    assert!(
        cases.windows(2).all(|w| w[1] <= w[0]),
        "more readers, fewer cases: {cases:?}"
    );
    // A missing file is named.
    let out = synthscope()
        .args(["study", "mrmc", "nowhere.lrc"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("nowhere.lrc"));
}
