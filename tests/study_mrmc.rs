//! MRMC analysis against published numbers and against known truth.
//!
//! - Van Dyke et al. (1993) ratings (tests/fixtures/vandyke: 5 readers, 2 modalities, 114
//!   cases), analysed by OR-DBM MRMC 2.51 (Hillis et al.; output kept by RJafroc): every AUC,
//!   mean square, variance component, F, df, p and interval it prints.
//! - Roe-Metz simulations: 2,000 studies under the null and 2,000 under an alternative; the 95%
//!   intervals must cover the true difference 95% +/- 2.5% of the time and the type I error must
//!   be 5% +/- 2.5% (the binomial standard error of 2,000 studies is 0.5%).

use std::path::Path;
use synthscope::study::mrmc::{self, CovMethod, lrc, sizing};
use synthscope::study::roemetz::RoeMetz;
use synthscope::train::data::Rng;

fn vandyke() -> synthscope::study::roc::Ratings {
    lrc::read_lrc(Path::new("tests/fixtures/vandyke/VD.lrc")).expect("fixture reads")
}

fn reference() -> serde_json::Value {
    let t = std::fs::read_to_string("tests/fixtures/vandyke/reference.json").unwrap();
    serde_json::from_str(&t).unwrap()
}

fn num(v: &serde_json::Value, path: &[&str]) -> f64 {
    let mut x = v;
    for p in path {
        x = &x[*p];
    }
    x.as_f64().unwrap_or_else(|| panic!("reference {path:?}"))
}

/// |a - b| within `tol` (absolute), with a message naming the quantity.
fn close(what: &str, ours: f64, theirs: f64, tol: f64) {
    assert!(
        (ours - theirs).abs() <= tol,
        "{what}: ours {ours}, published {theirs} (tolerance {tol})"
    );
}

#[test]
fn van_dyke_matches_or_dbm_mrmc() {
    let r = vandyke();
    assert_eq!(r.readers.len(), 5);
    assert_eq!(r.modalities.len(), 2);
    assert_eq!(r.abnormal.iter().filter(|a| **a).count(), 45);
    assert_eq!(r.cases.len(), 114);
    let refv = reference();
    let rep = mrmc::analyse(&r, CovMethod::Jackknife).unwrap();
    let or = &rep.or;
    for m in 0..2 {
        for j in 0..5 {
            close(
                "reader AUC",
                or.auc[m][j],
                refv["auc"][m][j].as_f64().unwrap(),
                5e-9,
            );
        }
        close(
            "mean AUC",
            or.auc_mean[m],
            refv["auc_mean"][m].as_f64().unwrap(),
            5e-9,
        );
    }
    close(
        "difference",
        or.auc_mean[0] - or.auc_mean[1],
        num(&refv, &["difference"]),
        5e-9,
    );
    for (what, ours, key) in [
        ("MS(T)", or.ms_t, "ms_t"),
        ("MS(R)", or.ms_r, "ms_r"),
        ("MS(T*R)", or.ms_tr, "ms_tr"),
        ("Var(R)", or.var_r, "var_r"),
        ("Var(T*R)", or.var_tr, "var_tr"),
        ("Cov1", or.cov1, "cov1"),
        ("Cov2", or.cov2, "cov2"),
        ("Cov3", or.cov3, "cov3"),
        ("Var(error)", or.var_error, "var_error"),
    ] {
        close(what, ours, num(&refv, &[key]), 6e-9);
    }
    // RRRC: F 4.46 on (1, 15.26), p 0.0517, error term 0.00107626, se 0.02075, CI.
    let d = &or.rrrc.differences[0];
    close("RRRC F", or.rrrc.f, num(&refv, &["rrrc", "f"]), 0.005);
    close(
        "RRRC ddf",
        or.rrrc.df2.unwrap(),
        num(&refv, &["rrrc", "ddf"]),
        0.005,
    );
    close("RRRC p", or.rrrc.p, num(&refv, &["rrrc", "p"]), 5e-5);
    close(
        "RRRC error term",
        or.rrrc.error_term,
        num(&refv, &["rrrc", "ms_den"]),
        6e-9,
    );
    close("RRRC se", d.stderr, num(&refv, &["rrrc", "stderr"]), 5e-6);
    close(
        "RRRC CI low",
        d.ci95.0,
        refv["rrrc"]["ci"][0].as_f64().unwrap(),
        5e-6,
    );
    close(
        "RRRC CI high",
        d.ci95.1,
        refv["rrrc"]["ci"][1].as_f64().unwrap(),
        5e-6,
    );
    for m in 0..2 {
        let s = &or.rrrc.single[m];
        close(
            "single se",
            s.stderr,
            refv["single_rrrc"]["stderr"][m].as_f64().unwrap(),
            5e-9,
        );
        close(
            "single df",
            s.df.unwrap(),
            refv["single_rrrc"]["df"][m].as_f64().unwrap(),
            0.005,
        );
    }
    // FRRC: X2 5.47595, p 0.0193, se 0.01872.
    close(
        "FRRC X2",
        or.frrc.f * or.frrc.df1,
        num(&refv, &["frrc", "chi2"]),
        5e-5,
    );
    close("FRRC p", or.frrc.p, num(&refv, &["frrc", "p"]), 5e-5);
    close(
        "FRRC se",
        or.frrc.differences[0].stderr,
        num(&refv, &["frrc", "stderr"]),
        5e-6,
    );
    close(
        "FRRC CI low",
        or.frrc.differences[0].ci95.0,
        refv["frrc"]["ci"][0].as_f64().unwrap(),
        5e-6,
    );
    // RRFC: F 8.70 on (1, 4), p 0.0420, se 0.01485.
    close("RRFC F", or.rrfc.f, num(&refv, &["rrfc", "f"]), 0.005);
    close("RRFC p", or.rrfc.p, num(&refv, &["rrfc", "p"]), 5e-5);
    close(
        "RRFC se",
        or.rrfc.differences[0].stderr,
        num(&refv, &["rrfc", "stderr"]),
        5e-6,
    );
    close(
        "RRFC CI high",
        or.rrfc.differences[0].ci95.1,
        refv["rrfc"]["ci"][1].as_f64().unwrap(),
        5e-6,
    );

    // DBM: its variance components as published, and its RRRC test identical to OR's.
    let c = &rep.dbm.components;
    for (what, ours, key) in [
        ("DBM Var(R)", c.var_r, "var_r"),
        ("DBM Var(C)", c.var_c, "var_c"),
        ("DBM Var(T*R)", c.var_tr, "var_tr"),
        ("DBM Var(T*C)", c.var_tc, "var_tc"),
        ("DBM Var(R*C)", c.var_rc, "var_rc"),
        ("DBM Var(T*R*C)+error", c.var_trc_error, "var_trc_error"),
    ] {
        close(what, ours, num(&refv, &["dbm", key]), 6e-8);
    }
    close("DBM RRRC F", rep.dbm.rrrc.f, or.rrrc.f, 1e-9);
    close(
        "DBM RRRC ddf",
        rep.dbm.rrrc.df2.unwrap(),
        or.rrrc.df2.unwrap(),
        1e-7,
    );
    close(
        "DBM RRRC se",
        rep.dbm.rrrc.differences[0].stderr,
        d.stderr,
        1e-10,
    );
}

#[test]
fn van_dyke_delong_and_ustat_are_close_to_the_jackknife() {
    let r = vandyke();
    let jk = mrmc::analyse(&r, CovMethod::Jackknife).unwrap();
    let dl = mrmc::analyse(&r, CovMethod::DeLong).unwrap();
    // For the Mann-Whitney AUC the DeLong and jackknife covariances differ by factors of
    // n/(n-1) per class: within a few percent here.
    let (a, b) = (jk.or.var_error, dl.or.var_error);
    assert!(
        (a - b).abs() / a < 0.03,
        "Var(error) jackknife {a} DeLong {b}"
    );
    assert!(dl.or.var_error < jk.or.var_error);
    let (a, b) = (
        jk.or.rrrc.differences[0].stderr,
        dl.or.rrrc.differences[0].stderr,
    );
    assert!((a - b).abs() / a < 0.03, "RRRC se jackknife {a} DeLong {b}");
    let u = &jk.imrmc.differences[0];
    assert!((u.rrrc.estimate - jk.or.rrrc.differences[0].estimate).abs() < 1e-12);
    // The unbiased U-statistic variance sits near the OR variance of the difference (Gallas
    // 2009 show the two agree to first order).
    let or_var = jk.or.rrrc.differences[0].stderr.powi(2);
    assert!(
        u.var.0 > 0.3 * or_var && u.var.0 < 1.5 * or_var,
        "U-stat {} vs OR {or_var}",
        u.var.0
    );
    assert!(
        u.var.1 > 0.0 && u.var.1 < u.var.0,
        "fixed-reader variance {} below the RRRC {}",
        u.var.1,
        u.var.0
    );
    println!(
        "Van Dyke: OR jackknife se {:.5}, OR DeLong se {:.5}, iMRMC RRRC se {:.5}, iMRMC FRRC se {:.5}",
        jk.or.rrrc.differences[0].stderr,
        dl.or.rrrc.differences[0].stderr,
        u.var.0.sqrt(),
        u.var.1.sqrt()
    );
}

/// Coverage and rejection counts of one method over simulated studies.
#[derive(Default)]
struct Tally {
    covered: usize,
    rejected: usize,
    n: usize,
}

impl Tally {
    fn add(&mut self, d: &mrmc::Difference, truth: f64) {
        self.n += 1;
        self.covered += usize::from(d.ci95.0 <= truth && truth <= d.ci95.1);
        self.rejected += usize::from(d.p < 0.05);
    }
    fn coverage(&self) -> f64 {
        self.covered as f64 / self.n as f64
    }
    fn rate(&self) -> f64 {
        self.rejected as f64 / self.n as f64
    }
}

#[test]
fn roe_metz_coverage_and_type_one_error() {
    const STUDIES: usize = 2000;
    let t0 = std::time::Instant::now();
    let mut report = String::new();
    for (label, mu) in [("null", vec![1.5, 1.5]), ("alternative", vec![1.2, 1.6])] {
        let design = RoeMetz::standard(mu, 5, 50, 50);
        let truth = design.true_auc(0) - design.true_auc(1);
        let mut rng = Rng::new(2026);
        let (mut or_jk, mut or_dl, mut dbm, mut u_rrrc) = (
            Tally::default(),
            Tally::default(),
            Tally::default(),
            Tally::default(),
        );
        let (mut est, mut uvar) = (Vec::new(), Vec::new());
        for _ in 0..STUDIES {
            let r = design.sample(&mut rng);
            let jk = mrmc::analyse(&r, CovMethod::Jackknife).unwrap();
            let ac = mrmc::auc_cov(&r, CovMethod::DeLong).unwrap();
            let dl = mrmc::or::analyse(&r, &ac, CovMethod::DeLong);
            or_jk.add(&jk.or.rrrc.differences[0], truth);
            or_dl.add(&dl.rrrc.differences[0], truth);
            dbm.add(&jk.dbm.rrrc.differences[0], truth);
            u_rrrc.add(&jk.imrmc.differences[0].rrrc, truth);
            est.push(jk.or.rrrc.differences[0].estimate);
            uvar.push(jk.imrmc.differences[0].var.0);
        }
        let mean = est.iter().sum::<f64>() / STUDIES as f64;
        let emp_var = est.iter().map(|e| (e - mean).powi(2)).sum::<f64>() / (STUDIES - 1) as f64;
        let mean_uvar = uvar.iter().sum::<f64>() / STUDIES as f64;
        report += &format!(
            "{label}: true difference {truth:+.4}, mean estimate {mean:+.4}; 95% CI coverage OR-jackknife {:.4}, OR-DeLong {:.4}, DBM {:.4}, iMRMC(z) {:.4}; rejection rate OR-jackknife {:.4}, OR-DeLong {:.4}, DBM {:.4}, iMRMC(z) {:.4}; empirical var of the difference {emp_var:.3e}, mean U-statistic variance {mean_uvar:.3e}\n",
            or_jk.coverage(),
            or_dl.coverage(),
            dbm.coverage(),
            u_rrrc.coverage(),
            or_jk.rate(),
            or_dl.rate(),
            dbm.rate(),
            u_rrrc.rate(),
        );
        for (name, t) in [
            ("OR jackknife", &or_jk),
            ("OR DeLong", &or_dl),
            ("DBM", &dbm),
        ] {
            assert!(
                (t.coverage() - 0.95).abs() <= 0.025,
                "{label} {name}: coverage {} outside 0.95 +/- 0.025\n{report}",
                t.coverage()
            );
            if label == "null" {
                assert!(
                    (t.rate() - 0.05).abs() <= 0.025,
                    "{name}: type I error {} outside 0.05 +/- 0.025\n{report}",
                    t.rate()
                );
            }
        }
        // The estimate is unbiased for the population difference, and so is the U-statistic
        // variance for the variance of the estimate (within 10%: the empirical variance of
        // 2,000 studies has a 3% standard error).
        assert!(
            (mean - truth).abs() < 0.003,
            "{label}: mean estimate {mean} vs truth {truth}"
        );
        assert!(
            (mean_uvar / emp_var - 1.0).abs() < 0.10,
            "{label}: U-statistic variance {mean_uvar} vs empirical {emp_var}\n{report}"
        );
    }
    println!(
        "{report}{STUDIES} studies x 2 designs in {:.1} s",
        t0.elapsed().as_secs_f64()
    );
}

#[test]
fn discrete_five_point_ratings_keep_the_type_one_error() {
    // Ties (a 5-point scale) under the null: both modalities share the model, so the true
    // difference is 0 whatever ties do to each AUC.
    let mut design = RoeMetz::standard(vec![1.5, 1.5], 5, 40, 40);
    design.thresholds = Some(vec![-0.5, 0.3, 1.0, 1.8]);
    let mut rng = Rng::new(99);
    let mut t = Tally::default();
    for _ in 0..1000 {
        let r = design.sample(&mut rng);
        let jk = mrmc::analyse(&r, CovMethod::Jackknife).unwrap();
        t.add(&jk.or.rrrc.differences[0], 0.0);
    }
    println!(
        "5-point null: type I error {:.4}, coverage {:.4}",
        t.rate(),
        t.coverage()
    );
    assert!(
        (t.rate() - 0.05).abs() <= 0.025,
        "type I error {}",
        t.rate()
    );
}

#[test]
fn predicted_power_matches_simulated_power() {
    // The power formula against simulation: 1,000 simulated studies of 5 readers x 100 cases;
    // the OR components averaged over them (the population values, up to simulation error)
    // predict the power; the studies' own rejection rate measures it.
    let design = RoeMetz::standard(vec![1.2, 1.6], 5, 50, 50);
    let delta = design.true_auc(1) - design.true_auc(0);
    let mut rng = Rng::new(5);
    let mut rejected = 0;
    let mut sum = [0.0f64; 5];
    const N: usize = 1000;
    for _ in 0..N {
        let r = design.sample(&mut rng);
        let jk = mrmc::analyse(&r, CovMethod::Jackknife).unwrap();
        rejected += usize::from(jk.or.rrrc.p < 0.05);
        let o = &jk.or;
        for (s, v) in sum
            .iter_mut()
            .zip([o.var_tr, o.var_error, o.cov1, o.cov2, o.cov3])
        {
            *s += v / N as f64;
        }
    }
    let p = sizing::Pilot {
        var_tr: sum[0],
        var_error: sum[1],
        cov1: sum[2],
        cov2: sum[3],
        cov3: sum[4],
        cases: 100,
    };
    let predicted = sizing::power(&p, delta, 5, 100, 0.05);
    let simulated = rejected as f64 / N as f64;
    println!(
        "power at 5 readers x 100 cases, delta {delta:.4}: predicted {:.3} (ddf {:.1}, lambda {:.2}), simulated {simulated:.3} ({N} studies)",
        predicted.rrrc, predicted.ddf, predicted.lambda
    );
    // The simulated rate has a standard error of about 0.016; the formula is approximate.
    assert!(
        (predicted.rrrc - simulated).abs() < 0.06,
        "predicted {} simulated {simulated}",
        predicted.rrrc
    );
    // More readers or cases never lower the power, and the table finds the smallest case count.
    // (With few readers the reader variance caps the power whatever the cases: None.)
    let table = sizing::cases_needed(&p, 0.08, 0.8, 0.05, [3, 5, 8, 12], 20_000);
    let mut last = usize::MAX;
    for (j, pw) in &table {
        let Some(pw) = pw else {
            assert!(sizing::power(&p, 0.08, *j, 20_000, 0.05).rrrc < 0.8);
            println!("  {j} readers: power 0.8 not reachable at delta 0.08");
            continue;
        };
        assert!(pw.rrrc >= 0.8 && sizing::power(&p, 0.08, *j, pw.cases - 1, 0.05).rrrc < 0.8);
        assert!(pw.cases <= last);
        last = pw.cases;
        println!(
            "  {j} readers: {} cases for power {:.3} at delta 0.08",
            pw.cases, pw.rrrc
        );
    }
    assert!(
        table.last().unwrap().1.is_some(),
        "12 readers reach the power"
    );
}

#[test]
fn bad_lrc_files_are_named_with_the_line() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("bad.lrc");
    std::fs::write(&f, "title\nr1\n\"a\" \"b\"\nL L\n1 2\nx 3\n*\n").unwrap();
    let e = lrc::read_lrc(&f).unwrap_err().to_string();
    assert!(
        e.contains("bad.lrc") && e.contains("line 6") && e.contains("not a number"),
        "{e}"
    );
}
