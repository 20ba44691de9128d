//! Our t-tests and Wilcoxon signed-rank test against scipy.stats on fixed data: statistic and
//! two-sided p-value to 1e-6.

mod common;

use synthscope::analysis::stats::{TestResult, ttest_ind, ttest_rel, wilcoxon};

/// Fixed samples: small and large, unequal variances, ties and zero differences.
fn cases() -> Vec<(Vec<f64>, Vec<f64>)> {
    let lcg = |seed: u64, n: usize, scale: f64, shift: f64| -> Vec<f64> {
        let mut s = seed;
        (0..n)
            .map(|_| {
                s = s
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                shift + scale * ((s >> 11) as f64 / (1u64 << 53) as f64 - 0.5)
            })
            .collect()
    };
    vec![
        (vec![27.1, 28.4, 26.9], vec![26.2, 27.0, 26.8]),
        (
            vec![0.81, 0.79, 0.84, 0.80, 0.83],
            vec![0.78, 0.80, 0.79, 0.77, 0.81],
        ),
        (lcg(1, 8, 2.0, 30.0), lcg(2, 8, 5.0, 29.0)),
        (lcg(3, 12, 1.0, 0.5), lcg(4, 12, 1.0, 0.2)),
        (lcg(5, 20, 10.0, 100.0), lcg(6, 20, 3.0, 98.0)),
        (lcg(7, 60, 1.0, 0.0), lcg(8, 60, 1.5, 0.3)),
        // Ties among |differences| (permutation branch in scipy's "auto").
        (
            vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0],
            vec![0.5, 2.5, 2.0, 5.0, 4.5, 5.0],
        ),
        // A zero difference.
        (
            vec![1.0, 2.0, 3.5, 4.0, 5.25, 7.0, 8.0],
            vec![1.0, 1.5, 2.0, 4.5, 3.0, 6.0, 9.5],
        ),
        // Ties with n > 13: the normal approximation.
        (
            (0..16).map(|i| (i % 5) as f64).collect(),
            (0..16).map(|i| ((i * 3) % 7) as f64 * 0.5).collect(),
        ),
    ]
}

const SCRIPT: &str = r#"
import json, sys
from scipy import stats
out = []
for a, b in json.load(sys.stdin):
    row = {}
    for name, r in [("student", stats.ttest_ind(a, b)), ("welch", stats.ttest_ind(a, b, equal_var=False)),
                    ("paired", stats.ttest_rel(a, b)), ("wilcoxon", stats.wilcoxon(a, b))]:
        row[name] = [float(r.statistic), float(r.pvalue)]
    out.append(row)
print(json.dumps(out))
"#;

#[test]
fn tests_match_scipy() {
    let py = common::sitk_python();
    let cases = cases();
    let input = serde_json::to_string(&cases).unwrap();
    let mut child = std::process::Command::new(py)
        .args(["-c", SCRIPT])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run the venv python");
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "scipy failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let expected: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    let mut worst: f64 = 0.0;
    for (i, ((a, b), e)) in cases.iter().zip(&expected).enumerate() {
        let ours: [(&str, TestResult); 4] = [
            ("student", ttest_ind(a, b, true)),
            ("welch", ttest_ind(a, b, false)),
            ("paired", ttest_rel(a, b)),
            ("wilcoxon", wilcoxon(a, b)),
        ];
        for (name, r) in ours {
            let s = e[name][0].as_f64().unwrap();
            let p = e[name][1].as_f64().unwrap();
            let ds = (r.statistic - s).abs() / s.abs().max(1.0);
            let dp = (r.p - p).abs();
            println!(
                "case {i} {name:<8} ours t={:.9} p={:.9}  scipy t={s:.9} p={p:.9}",
                r.statistic, r.p
            );
            assert!(
                ds < 1e-6,
                "case {i} {name}: statistic {} vs scipy {s}",
                r.statistic
            );
            assert!(dp < 1e-6, "case {i} {name}: p {} vs scipy {p}", r.p);
            worst = worst.max(ds).max(dp);
        }
    }
    println!("largest difference from scipy: {worst:e}");
}
