//! The Results window of a rating study: ROC curves and the MRMC table, on logs that four
//! simulated readers (Roe-Metz ratings on a 5-point scale) wrote through the reading session.
//! With SYNTHSCOPE_SCREENSHOT set it saves docs/screenshot_study_roc.png.

#[path = "common/app_harness.rs"]
mod app_harness;

use app_harness::harness_sized;
use egui_kittest::kittest::Queryable;
use synthscope::study::roemetz::RoeMetz;
use synthscope::study::session::{Session, StudyKey};
use synthscope::study::{self, Design, RatingTask, ReadingOrder, Study, StudyCase, Truth};
use synthscope::train::data::Rng;

/// A rating study (real against synthetic CT) and its simulated readers' logs.
fn simulated_rating_study(dir: &std::path::Path) -> std::path::PathBuf {
    let mut design = RoeMetz::standard(vec![1.9, 1.3], 4, 30, 30);
    design.thresholds = Some(vec![-0.3, 0.5, 1.2, 2.0]);
    let sim = design.sample(&mut Rng::new(11));
    let mods = ["real CT", "synthetic CT"];
    let mut cases = Vec::new();
    for (k, ab) in sim.abnormal.iter().enumerate() {
        for (m, truth) in mods.iter().zip([Truth::Real, Truth::Synthetic]) {
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
                modality: Some(m.to_string()),
                subject: Some(format!("s{k}")),
                abnormal: Some(*ab),
            });
        }
    }
    let s = Study {
        version: study::STUDY_VERSION,
        name: "simulated-rating".into(),
        design: Design::Rating,
        allow_back: false,
        time_limit_s: None,
        slices_per_case: 1,
        seed: 1,
        window: Default::default(),
        questions: Default::default(),
        rating: RatingTask {
            order: ReadingOrder::Interleaved,
            ..Default::default()
        },
        view: None,
        test_pattern: false,
        cases,
    };
    let file = dir.join("study.toml");
    s.write(&file).unwrap();
    let slices: Vec<Vec<usize>> = s.cases.iter().map(|c| c.slices.clone()).collect();
    for j in 0..4 {
        let reader = format!("reader-{}", j + 1);
        let log = study::log_path(&file, &reader);
        let mut sess = Session::start(s.clone(), &file, &slices, &reader, &log).unwrap();
        while let Some(t) = sess.current().cloned() {
            let (k, m) = (t.case / 2, t.case % 2);
            sess.key(StudyKey::Digit(sim.scores[m][j][k] as u8))
                .unwrap();
            assert!(sess.key(StudyKey::Next).unwrap());
        }
    }
    file
}

#[test]
fn results_window_shows_roc_curves_and_the_mrmc_table() {
    let dir = tempfile::tempdir().unwrap();
    let file = simulated_rating_study(dir.path());
    let mut h = harness_sized(1400.0, 1000.0);
    h.state_mut().open_results(&file);
    h.run();
    let _ = h.get_by_label("Study results");
    let _ = h.get_by_label_contains("4 reader log(s)");
    let _ = h.get_by_label_contains("ROC curves");
    let _ = h.get_by_label_contains("MRMC: 4 readers, 30 normal and 30 abnormal cases");
    let _ = h.get_by_label_contains("OR (jackknife) RRRC");
    let _ = h.get_by_label_contains("DBM RRRC");
    let _ = h.get_by_label("iMRMC U-statistic RRRC");
    // The table's numbers are the library's.
    let r = h.state().study.rating.clone().expect("rating summary");
    let m = r.mrmc.expect("MRMC");
    let d = &m.or.rrrc.differences[0];
    assert!(
        h.query_all_by_label(&format!("{:+.4}", d.estimate)).count() >= 5,
        "the estimate in each row"
    );
    assert!(
        d.estimate > 0.0,
        "real CT rated better by construction: {}",
        d.estimate
    );
    let img = h.render().expect("renders");
    if std::env::var_os("SYNTHSCOPE_SCREENSHOT").is_some() {
        img.save("docs/screenshot_study_roc.png").unwrap();
    }
}

/// The README's screenshot of `synthscope study demo --design rating --out DIR`'s results:
/// SYNTHSCOPE_ROC_DEMO=DIR/study.toml (skipped without it).
#[test]
fn demo_rating_study_results_screenshot() {
    let Some(file) = std::env::var_os("SYNTHSCOPE_ROC_DEMO") else {
        return;
    };
    let mut h = harness_sized(1400.0, 1000.0);
    h.state_mut().open_results(std::path::Path::new(&file));
    h.run();
    let _ = h.get_by_label_contains("ROC curves");
    let _ = h.get_by_label_contains("OR (jackknife) RRRC");
    let img = h.render().expect("renders");
    img.save("docs/screenshot_study_roc.png").unwrap();
}
