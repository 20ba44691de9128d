//! Reader studies: statistics against known values and scipy, the per-reader order, version
//! refusal, torn-log repair, and a session killed mid-way (the real binary, SIGKILL) that
//! resumes without losing an answer.

mod common;

use common::{run_ok, sitk_python, synthscope};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};
use synthscope::study::session::{Session, StudyKey};
use synthscope::study::stats::{clopper_pearson, cohen_kappa, fleiss_kappa, summarise};
use synthscope::study::{Design, LogWriter, Study, Truth, log_path, read_log, trials};

use common::phantom_study as make_study;

fn slices_of(study: &Study, file: &Path) -> Vec<Vec<usize>> {
    synthscope::study::resolve_slices(study, file, &Default::default()).unwrap()
}

#[test]
fn clopper_pearson_matches_scipy_exact_intervals() {
    // A value from the literature first: 5 of 10 gives 0.1871 - 0.8129.
    let (lo, hi) = clopper_pearson(5, 10, 0.05);
    assert!((lo - 0.187_086).abs() < 1e-5 && (hi - 0.812_914).abs() < 1e-5);
    let cases = [
        (5u64, 10u64),
        (0, 12),
        (12, 12),
        (37, 60),
        (1, 3),
        (180, 200),
    ];
    let script = format!(
        "import scipy.stats as st\nfor k, n in {:?}:\n    ci = st.binomtest(k, n).proportion_ci(confidence_level=0.95, method='exact')\n    print(ci.low, ci.high)",
        cases
    );
    let out = run_ok(Command::new(sitk_python()).args(["-c", &script]));
    let text = String::from_utf8_lossy(&out.stdout);
    for ((k, n), line) in cases.iter().zip(text.lines()) {
        let v: Vec<f64> = line
            .split_whitespace()
            .map(|x| x.parse().unwrap())
            .collect();
        let (lo, hi) = clopper_pearson(*k, *n, 0.05);
        assert!(
            (lo - v[0]).abs() < 1e-6 && (hi - v[1]).abs() < 1e-6,
            "{k}/{n}: ours {lo} {hi}, scipy {} {}",
            v[0],
            v[1]
        );
    }
}

#[test]
fn kappas_match_textbook_examples() {
    // Cohen: 50 items, both yes 20, A yes B no 5, A no B yes 10, both no 15: kappa = 0.4.
    let mut a = Vec::new();
    let mut b = Vec::new();
    for (n, x, y) in [
        (20, "yes", "yes"),
        (5, "yes", "no"),
        (10, "no", "yes"),
        (15, "no", "no"),
    ] {
        for _ in 0..n {
            a.push(x.to_string());
            b.push(y.to_string());
        }
    }
    assert!((cohen_kappa(&a, &b).unwrap() - 0.4).abs() < 1e-12);
    assert!((cohen_kappa(&a, &a).unwrap() - 1.0).abs() < 1e-12);
    // Fleiss (1971) as in the usual worked example: 10 items, 14 raters, 5 categories,
    // kappa = 0.210.
    let table: Vec<Vec<usize>> = vec![
        vec![0, 0, 0, 0, 14],
        vec![0, 2, 6, 4, 2],
        vec![0, 0, 3, 5, 6],
        vec![0, 3, 9, 2, 0],
        vec![2, 2, 8, 1, 1],
        vec![7, 7, 0, 0, 0],
        vec![3, 2, 6, 3, 0],
        vec![2, 5, 3, 2, 2],
        vec![6, 5, 2, 1, 0],
        vec![0, 2, 2, 3, 7],
    ];
    let k = fleiss_kappa(&table).unwrap();
    assert!((k - 0.20993).abs() < 1e-4, "Fleiss kappa {k}");
    // Uneven rater counts are refused rather than misread.
    assert!(fleiss_kappa(&[vec![1, 1], vec![2, 1]]).is_none());
}

#[test]
fn order_is_stable_per_reader_and_differs_between_readers() {
    let dir = tempfile::tempdir().unwrap();
    let file = make_study(dir.path(), 2, Design::Single);
    let s = Study::read(&file).unwrap();
    let slices = slices_of(&s, &file);
    assert!(slices.iter().all(|z| z.len() == 3), "{slices:?}");
    let a1 = trials(&s, &slices, "alice");
    let a2 = trials(&s, &slices, "alice");
    let b = trials(&s, &slices, "bob");
    assert_eq!(a1, a2, "the same reader gets the same order");
    assert_ne!(
        a1.iter().map(|t| &t.id).collect::<Vec<_>>(),
        b.iter().map(|t| &t.id).collect::<Vec<_>>(),
        "another reader gets another order"
    );
    let mut ia: Vec<_> = a1.iter().map(|t| t.id.clone()).collect();
    let mut ib: Vec<_> = b.iter().map(|t| t.id.clone()).collect();
    ia.sort();
    ib.sort();
    assert_eq!(ia, ib, "every reader sees the same images");
    assert_eq!(ia.len(), 12);
    // Sampled slices are inside the head and the same on every call.
    assert_eq!(slices, slices_of(&s, &file));
}

#[test]
fn other_versions_and_other_studies_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let file = make_study(dir.path(), 1, Design::Single);
    let text = std::fs::read_to_string(&file).unwrap();
    let v2 = dir.path().join("v2.toml");
    std::fs::write(&v2, text.replace("version = 1", "version = 2")).unwrap();
    let e = Study::read(&v2).unwrap_err().to_string();
    assert!(
        e.contains("version 2") && e.contains("reads version 1"),
        "{e}"
    );

    let s = Study::read(&file).unwrap();
    let log = dir.path().join("r.jsonl");
    let (_w, answers) = LogWriter::open(&log, &s, "r").unwrap();
    assert!(answers.is_empty());
    // A log written by another format version.
    let other = dir.path().join("other.jsonl");
    let t = std::fs::read_to_string(&log).unwrap();
    std::fs::write(&other, t.replace("\"version\":1", "\"version\":7")).unwrap();
    let e = read_log(&other).unwrap_err().to_string();
    assert!(e.contains("version 7") && e.contains("misread"), "{e}");
    assert!(LogWriter::open(&other, &s, "r").is_err());
    // The same log against an edited study (another case list).
    let mut edited = s.clone();
    edited.cases[0].slices = vec![1];
    let e = LogWriter::open(&log, &edited, "r")
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("another version of the study"), "{e}");
    // ...and another reader's log.
    let e = LogWriter::open(&log, &s, "someone-else")
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("belongs to reader"), "{e}");
}

/// Keys answering one single-design image: verdict, confidence and three Likert ratings.
fn keys_for(i: usize) -> String {
    let v = if i.is_multiple_of(3) { "s" } else { "r" };
    format!("{v} {} {} 3 4 n ", 1 + i % 5, 1 + (i + 2) % 5)
}

#[test]
fn a_torn_last_line_is_cut_and_the_session_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let file = make_study(dir.path(), 1, Design::Single);
    let s = Study::read(&file).unwrap();
    let slices = slices_of(&s, &file);
    let log = log_path(&file, "torn");
    {
        let mut sess = Session::start(s.clone(), &file, &slices, "torn", &log).unwrap();
        for k in keys_for(0)
            .split_whitespace()
            .chain(keys_for(1).split_whitespace())
        {
            sess.key(StudyKey::parse(k).unwrap()).unwrap();
        }
        assert_eq!(sess.answers.len(), 2);
    }
    // A crash in the middle of writing the third answer.
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new().append(true).open(&log).unwrap();
    f.write_all(b"{\"kind\":\"answer\",\"trial\":\"p0-re")
        .unwrap();
    drop(f);
    let l = read_log(&log).unwrap();
    assert!(l.torn_tail);
    assert_eq!(l.answers.len(), 2);
    let mut sess = Session::start(s, &file, &slices, "torn", &log).unwrap();
    assert_eq!((sess.resumed, sess.pos), (2, 2));
    for k in keys_for(2).split_whitespace() {
        sess.key(StudyKey::parse(k).unwrap()).unwrap();
    }
    let l = read_log(&log).unwrap();
    assert!(!l.torn_tail);
    assert_eq!(l.answers.len(), 3);
}

#[test]
fn back_changes_an_answer_and_the_latest_counts() {
    let dir = tempfile::tempdir().unwrap();
    let file = make_study(dir.path(), 1, Design::Single);
    let s = Study::read(&file).unwrap();
    let slices = slices_of(&s, &file);
    let log = log_path(&file, "b");
    let mut sess = Session::start(s, &file, &slices, "b", &log).unwrap();
    for k in "r 5 5 5 5 n s 1 1 1 1 n".split_whitespace() {
        sess.key(StudyKey::parse(k).unwrap()).unwrap();
    }
    // Incomplete answers do not move on.
    assert!(!sess.key(StudyKey::Next).unwrap());
    sess.key(StudyKey::Back).unwrap();
    assert_eq!(sess.pos, 1);
    assert_eq!(
        sess.draft.verdict.as_deref(),
        Some("synthetic"),
        "the saved answer is shown"
    );
    sess.key(StudyKey::Real).unwrap();
    assert!(sess.key(StudyKey::Next).unwrap());
    assert_eq!(sess.pos, 2, "back where the reader was");
    let l = read_log(&log).unwrap();
    assert_eq!(l.answers.len(), 2);
    assert_eq!(l.answers[1].answer.as_deref(), Some("real"));
    assert_eq!(
        std::fs::read_to_string(&log).unwrap().lines().count(),
        4,
        "header + 3 answer lines"
    );
}

/// Wait until `log` has `lines` lines (header included) while `child` still runs, so it can be
/// killed mid-session; panics if it ends first or `timeout` passes.
fn wait_for_lines(log: &Path, lines: usize, child: &mut std::process::Child, timeout: Duration) {
    let t0 = Instant::now();
    loop {
        let n = std::fs::read_to_string(log)
            .map(|t| t.lines().count())
            .unwrap_or(0);
        if n >= lines {
            return;
        }
        assert!(t0.elapsed() < timeout, "no answers arrived in {timeout:?}");
        assert!(
            child.try_wait().unwrap().is_none(),
            "finished before it could be killed"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Spawn `study answer` with a pause between keys, kill it (SIGKILL) once a few answers are in
/// the log, restart it with the rest, and check that every answer given before the kill is in
/// the final log unchanged and that the study completes.
#[test]
fn a_killed_session_resumes_without_losing_an_answer() {
    let dir = tempfile::tempdir().unwrap();
    let file = make_study(dir.path(), 2, Design::Single);
    let s = Study::read(&file).unwrap();
    let n = trials(&s, &slices_of(&s, &file), "kim").len();
    let all: String = (0..n).map(keys_for).collect();
    let log = log_path(&file, "kim");
    let mut child = synthscope()
        .args(["study", "answer"])
        .arg(&file)
        .args(["--reader", "kim", "--delay-ms", "60", "--keys", &all])
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    wait_for_lines(&log, 5, &mut child, Duration::from_secs(120));
    child.kill().unwrap(); // SIGKILL: no chance to flush anything
    child.wait().unwrap();
    let before = read_log(&log).unwrap();
    let k = before.answers.len();
    assert!(k >= 4 && k < n, "killed mid-way: {k} of {n}");
    eprintln!("killed after {k} of {n} answers");
    // Restart with the keys for the images not yet answered.
    let rest: String = (k..n).map(keys_for).collect();
    let out = run_ok(
        synthscope()
            .args(["study", "answer"])
            .arg(&file)
            .args(["--reader", "kim", "--keys", &rest]),
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains(&format!("{k} answered before")), "{text}");
    assert!(text.contains("(done)"), "{text}");
    let after = read_log(&log).unwrap();
    assert_eq!(after.answers.len(), n);
    for a in &before.answers {
        let b = after.answers.iter().find(|x| x.trial == a.trial).unwrap();
        assert_eq!(a, b, "an answer given before the kill changed");
    }
    // Positions run 1..n without a gap or a repeat.
    let mut pos: Vec<usize> = after.answers.iter().map(|a| a.position).collect();
    pos.sort_unstable();
    assert_eq!(pos, (1..=n).collect::<Vec<_>>());
}

#[test]
fn summary_of_three_readers_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let file = make_study(dir.path(), 2, Design::Single);
    let s = Study::read(&file).unwrap();
    let slices = slices_of(&s, &file);
    // Reader "oracle" answers the truth; "always-real" says real every time; "contrary" the
    // opposite of the truth.
    for reader in ["oracle", "always-real", "contrary"] {
        let mut sess =
            Session::start(s.clone(), &file, &slices, reader, &log_path(&file, reader)).unwrap();
        while let Some(t) = sess.current().cloned() {
            let truth = s.cases[t.case].truth;
            let key = match (reader, truth) {
                ("always-real", _) => StudyKey::Real,
                ("oracle", Truth::Real) | ("contrary", Truth::Synthetic) => StudyKey::Real,
                _ => StudyKey::Synthetic,
            };
            sess.key(key).unwrap();
            for d in [4, if truth == Truth::Real { 5 } else { 2 }, 3, 3] {
                sess.key(StudyKey::Digit(d)).unwrap();
            }
            assert!(sess.key(StudyKey::Next).unwrap());
        }
    }
    let answers_dir = file.with_file_name("study.answers");
    let csv = dir.path().join("answers.csv");
    let out = run_ok(
        synthscope()
            .args(["study", "summary", "--json", "--csv"])
            .arg(&csv)
            .arg(&answers_dir),
    );
    let j: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let acc = |r: &str| {
        j["accuracy"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["reader"] == r)
            .unwrap()
            .clone()
    };
    assert_eq!(acc("oracle")["accuracy"], 1.0);
    assert_eq!(acc("contrary")["accuracy"], 0.0);
    assert_eq!(acc("always-real")["accuracy"], 0.5);
    assert_eq!(acc("pooled")["n"], 36);
    let ci = acc("oracle")["ci95"].as_array().unwrap().clone();
    assert!(
        (ci[0].as_f64().unwrap() - 0.735_351_5).abs() < 1e-6,
        "12/12: {ci:?}"
    );
    // Oracle vs contrary disagree on everything: kappa -1.
    let k = j["cohen"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| {
            (p["a"] == "contrary" && p["b"] == "oracle")
                || (p["a"] == "oracle" && p["b"] == "contrary")
        })
        .unwrap()["kappa"]
        .as_f64()
        .unwrap();
    assert!((k + 1.0).abs() < 1e-12, "kappa {k}");
    // Likert means by truth: image quality 5 for real, 2 for synthetic.
    let q = j["likert_by_truth"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["question"] == "image quality")
        .map(|m| {
            (
                m["group"].as_str().unwrap().to_string(),
                m["mean"].as_f64().unwrap(),
            )
        })
        .collect::<Vec<_>>();
    assert_eq!(q, vec![("real".into(), 5.0), ("synthetic".into(), 2.0)]);
    // By source: model A and model B are told apart.
    assert!(
        j["likert_by_source"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["group"] == "model B")
    );
    // CSV: a header and one row per answer.
    let text = std::fs::read_to_string(&csv).unwrap();
    assert_eq!(text.lines().count(), 1 + 36);
    let header = text.lines().next().unwrap();
    assert_eq!(
        header,
        "reader,trial,position,case,partner,slice,source,truth,answer,correct,confidence,likert: image quality,likert: diagnostic usability,likert: artifacts (5 = none),time_s,text,at_unix,rating,modality,subject,abnormal,screen_w,screen_h,pixels_per_point,window_width,window_center,zoom",
        "Likert columns in the study's order"
    );
    // The text form names the interval and the kappas.
    let out = run_ok(synthscope().args(["study", "summary"]).arg(&answers_dir));
    let t = String::from_utf8_lossy(&out.stdout);
    assert!(t.contains("pooled") && t.contains("Fleiss' kappa"), "{t}");
    // Library and command line agree.
    let logs: Vec<_> = ["oracle", "always-real", "contrary"]
        .iter()
        .map(|r| read_log(&log_path(&file, r)).unwrap())
        .collect();
    let sm = summarise(&logs).unwrap();
    assert_eq!(sm.accuracy.last().unwrap().correct, 18);
}

#[test]
fn pair_design_shows_real_on_shuffled_sides() {
    let dir = tempfile::tempdir().unwrap();
    let file = make_study(dir.path(), 2, Design::Pair);
    let s = Study::read(&file).unwrap();
    let slices = slices_of(&s, &file);
    let t = trials(&s, &slices, "p");
    assert_eq!(t.len(), 6, "one trial per synthetic slice");
    assert!(t.iter().all(|t| t.partner.is_some()));
    let left = t.iter().filter(|t| t.real_on_left).count();
    assert!(
        left > 0 && left < t.len(),
        "sides are shuffled: {left} of {}",
        t.len()
    );
    let log = log_path(&file, "p");
    let mut sess = Session::start(s, &file, &slices, "p", &log).unwrap();
    while let Some(tr) = sess.current().cloned() {
        sess.key(if tr.real_on_left {
            StudyKey::A
        } else {
            StudyKey::B
        })
        .unwrap();
        sess.key(StudyKey::Digit(5)).unwrap();
        assert!(sess.key(StudyKey::Next).unwrap());
    }
    let l = read_log(&log).unwrap();
    assert!(l.answers.iter().all(|a| a.correct() == Some(true)));
    assert!(
        l.answers.iter().all(|a| a.likert.is_empty()),
        "pairs ask no Likert"
    );
    // A pair whose synthetic case names no real case is refused.
    let mut bad = Study::read(&file).unwrap();
    bad.cases[1].pair = None;
    assert!(
        bad.validate()
            .unwrap_err()
            .to_string()
            .contains("names no real case")
    );
}

/// With a time limit, an image left unanswered is logged as timed out (no verdict) and the next
/// one shown; the summary counts it apart from right and wrong answers.
#[test]
fn time_limit_logs_a_timeout_and_moves_on() {
    let dir = tempfile::tempdir().unwrap();
    let file = make_study(dir.path(), 1, Design::Single);
    let mut s = Study::read(&file).unwrap();
    s.time_limit_s = Some(0.05);
    s.write(&file).unwrap();
    let slices = slices_of(&s, &file);
    let log = log_path(&file, "slow");
    let mut sess = Session::start(s, &file, &slices, "slow", &log).unwrap();
    assert!(!sess.tick().unwrap(), "not yet");
    sess.key(StudyKey::Real).unwrap();
    std::thread::sleep(Duration::from_millis(80));
    assert!(sess.tick().unwrap(), "time ran out");
    assert_eq!(sess.pos, 1);
    let l = read_log(&log).unwrap();
    assert_eq!(l.answers.len(), 1);
    assert_eq!(l.answers[0].answer, None, "incomplete answer: a timeout");
    assert!(l.answers[0].time_s >= 0.05);
    let sm = summarise(&[l]).unwrap();
    assert_eq!((sm.accuracy[0].n, sm.accuracy[0].timeouts), (0, 1));
}

/// The reading view keeps only the cases of the previous, current and next images in memory.
#[test]
fn reading_keeps_only_the_cases_around_the_current_image() {
    use synthscope::app::panels::study_reading::wanted_cases;
    let dir = tempfile::tempdir().unwrap();
    let file = make_study(dir.path(), 3, Design::Single);
    let s = Study::read(&file).unwrap();
    let slices = slices_of(&s, &file);
    let log = log_path(&file, "mem");
    let mut sess = Session::start(s, &file, &slices, "mem", &log).unwrap();
    assert_eq!(sess.trials.len(), 18);
    while let Some(t) = sess.current().cloned() {
        let w = wanted_cases(&sess);
        assert!(w.contains(&t.case));
        assert!(
            w.len() <= 3,
            "{} cases wanted at image {}",
            w.len(),
            sess.pos
        );
        if let Some(next) = sess.trials.get(sess.pos + 1) {
            assert!(
                w.contains(&next.case),
                "the next image's case is prefetched"
            );
        }
        for k in keys_for(sess.pos).split_whitespace() {
            sess.key(StudyKey::parse(k).unwrap()).unwrap();
        }
    }
}

/// Keys for image `i` as the reading window's script takes them.
fn window_keys_for(i: usize) -> String {
    keys_for(i).replace(" n ", " enter ")
}

/// The crash test on the real reading window: the GUI binary (under Xvfb, keys fed by its
/// script option through the same session calls as typed keys) is killed with SIGKILL, with
/// its whole process group, once a few answers are logged; a new window resumes at the next
/// image and finishes; nothing answered before the kill is lost or changed.
#[test]
fn the_reading_window_killed_mid_session_loses_no_answer() {
    use std::os::unix::process::CommandExt;
    assert!(
        Command::new("xvfb-run").arg("--help").output().is_ok(),
        "xvfb-run is needed for the window tests (apt-get install xvfb)"
    );
    let dir = tempfile::tempdir().unwrap();
    let file = make_study(dir.path(), 2, Design::Single);
    let s = Study::read(&file).unwrap();
    let n = trials(&s, &slices_of(&s, &file), "win").len();
    let log = log_path(&file, "win");
    let window = |keys: &str| {
        let mut c = Command::new("xvfb-run");
        c.args(["-a", "-s", "-screen 0 1280x800x24"])
            .arg(env!("CARGO_BIN_EXE_synthscope"))
            .args(["study", "read"])
            .arg(&file)
            .args(["--reader", "win", "--windowed", "--script-delay-ms", "40"])
            .args(["--script-keys", keys])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .process_group(0);
        c
    };
    let all: String = (0..n).map(window_keys_for).collect();
    let mut child = window(&all).spawn().unwrap();
    wait_for_lines(&log, 4, &mut child, Duration::from_secs(240));
    // SIGKILL to the window and Xvfb together.
    let pgid = child.id();
    run_ok(Command::new("kill").args(["-s", "KILL", "--", &format!("-{pgid}")]));
    child.wait().unwrap();
    let before = read_log(&log).unwrap();
    let k = before.answers.len();
    assert!(k >= 3 && k < n, "killed mid-way: {k} of {n}");
    eprintln!("window killed after {k} of {n} answers");
    let rest: String = (k..n).map(window_keys_for).collect();
    let st = window(&rest).status().unwrap();
    assert!(st.success(), "the resumed window failed: {st:?}");
    let after = read_log(&log).unwrap();
    assert_eq!(
        after.answers.len(),
        n,
        "the resumed window finished the study"
    );
    for a in &before.answers {
        let b = after.answers.iter().find(|x| x.trial == a.trial).unwrap();
        assert_eq!(a, b, "an answer given before the kill changed");
    }
    let mut pos: Vec<usize> = after.answers.iter().map(|a| a.position).collect();
    pos.sort_unstable();
    assert_eq!(pos, (1..=n).collect::<Vec<_>>());
}
