//! Summaries of reader logs: accuracy at telling real from synthetic with exact binomial
//! (Clopper-Pearson) 95% intervals, mean Likert scores by truth and by source model, and
//! inter-reader agreement (Cohen's kappa per pair of readers, Fleiss' kappa over all).

use super::{LogStudy, ReaderLog, StudyError};
use crate::analysis::stats::ln_gamma;
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};

/// P(X <= k) for X ~ Binomial(n, p).
fn binom_cdf(k: u64, n: u64, p: f64) -> f64 {
    if p <= 0.0 {
        return 1.0;
    }
    if p >= 1.0 {
        return if k >= n { 1.0 } else { 0.0 };
    }
    let lc = |i: u64| {
        ln_gamma(n as f64 + 1.0) - ln_gamma(i as f64 + 1.0) - ln_gamma((n - i) as f64 + 1.0)
    };
    (0..=k.min(n))
        .map(|i| (lc(i) + i as f64 * p.ln() + (n - i) as f64 * (1.0 - p).ln()).exp())
        .sum::<f64>()
        .min(1.0)
}

/// Exact (Clopper-Pearson) two-sided interval for a proportion of `k` successes in `n` trials
/// at confidence 1 - `alpha`: the p where P(X >= k) = alpha/2 and where P(X <= k) = alpha/2.
pub fn clopper_pearson(k: u64, n: u64, alpha: f64) -> (f64, f64) {
    if n == 0 {
        return (0.0, 1.0);
    }
    let solve = |f: &dyn Fn(f64) -> f64| {
        // f increases with p on [0, 1]; find f(p) = 0 by bisection.
        let (mut lo, mut hi) = (0.0f64, 1.0f64);
        for _ in 0..100 {
            let mid = 0.5 * (lo + hi);
            if f(mid) < 0.0 {
                lo = mid;
            } else {
                hi = mid;
            }
        }
        0.5 * (lo + hi)
    };
    let lower = if k == 0 {
        0.0
    } else {
        // P(X >= k) = 1 - cdf(k-1), increasing in p.
        solve(&|p| (1.0 - binom_cdf(k - 1, n, p)) - alpha / 2.0)
    };
    let upper = if k == n {
        1.0
    } else {
        // cdf(k) decreases in p: solve alpha/2 - cdf(k) = 0.
        solve(&|p| alpha / 2.0 - binom_cdf(k, n, p))
    };
    (lower, upper)
}

/// Cohen's kappa of two raters' labels on the same items (None when undefined: no items, or
/// chance agreement 1).
pub fn cohen_kappa(a: &[String], b: &[String]) -> Option<f64> {
    let n = a.len().min(b.len());
    if n == 0 {
        return None;
    }
    let cats: BTreeSet<&String> = a[..n].iter().chain(&b[..n]).collect();
    let po = (0..n).filter(|i| a[*i] == b[*i]).count() as f64 / n as f64;
    let pe: f64 = cats
        .iter()
        .map(|c| {
            let pa = a[..n].iter().filter(|x| x == c).count() as f64 / n as f64;
            let pb = b[..n].iter().filter(|x| x == c).count() as f64 / n as f64;
            pa * pb
        })
        .sum();
    if (1.0 - pe).abs() < 1e-12 {
        return None;
    }
    Some((po - pe) / (1.0 - pe))
}

/// Fleiss' kappa of a table: `counts[i][j]` = raters who put item i in category j; every item
/// rated by the same number (>= 2) of raters. None when undefined.
pub fn fleiss_kappa(counts: &[Vec<usize>]) -> Option<f64> {
    let n_items = counts.len();
    if n_items == 0 {
        return None;
    }
    let r = counts[0].iter().sum::<usize>();
    if r < 2 || counts.iter().any(|row| row.iter().sum::<usize>() != r) {
        return None;
    }
    let k = counts[0].len();
    let total = (n_items * r) as f64;
    let p_j: Vec<f64> = (0..k)
        .map(|j| counts.iter().map(|row| row[j]).sum::<usize>() as f64 / total)
        .collect();
    let p_i: Vec<f64> = counts
        .iter()
        .map(|row| {
            let s: usize = row.iter().map(|c| c * c).sum();
            (s as f64 - r as f64) / (r as f64 * (r as f64 - 1.0))
        })
        .collect();
    let p_bar = p_i.iter().sum::<f64>() / n_items as f64;
    let pe: f64 = p_j.iter().map(|p| p * p).sum();
    if (1.0 - pe).abs() < 1e-12 {
        return None;
    }
    Some((p_bar - pe) / (1.0 - pe))
}

/// Accuracy of one reader (or all pooled).
#[derive(Clone, Debug, Serialize)]
pub struct Accuracy {
    /// Reader ID ("pooled" for everyone).
    pub reader: String,
    /// Answers with a verdict.
    pub n: usize,
    /// Right verdicts.
    pub correct: usize,
    /// Timed out (no verdict).
    pub timeouts: usize,
    /// correct / n.
    pub accuracy: f64,
    /// Exact binomial 95% interval.
    pub ci95: (f64, f64),
    /// Mean seconds per answer.
    pub mean_time_s: f64,
}

/// Mean of a Likert question over a group.
#[derive(Clone, Debug, Serialize)]
pub struct LikertMean {
    /// Question.
    pub question: String,
    /// Group ("real", "synthetic", or a source model).
    pub group: String,
    /// Answers.
    pub n: usize,
    /// Mean 1-5.
    pub mean: f64,
    /// Standard deviation.
    pub sd: f64,
}

/// Agreement between two readers.
#[derive(Clone, Debug, Serialize)]
pub struct PairAgreement {
    /// First reader.
    pub a: String,
    /// Second reader.
    pub b: String,
    /// Trials both answered.
    pub n: usize,
    /// Cohen's kappa of their verdicts.
    pub kappa: Option<f64>,
}

/// The summary of a study's logs.
#[derive(Clone, Debug, Serialize)]
pub struct Summary {
    /// Study name.
    pub study: String,
    /// Per reader, then pooled (last).
    pub accuracy: Vec<Accuracy>,
    /// Likert means by truth.
    pub likert_by_truth: Vec<LikertMean>,
    /// Likert means by source.
    pub likert_by_source: Vec<LikertMean>,
    /// Mean confidence by truth.
    pub confidence_by_truth: Vec<LikertMean>,
    /// Cohen's kappa per pair of readers.
    pub cohen: Vec<PairAgreement>,
    /// Fleiss' kappa over the trials every reader answered (None: fewer than 2 readers).
    pub fleiss: Option<f64>,
    /// Trials in the Fleiss table.
    pub fleiss_items: usize,
}

fn accuracy_of<'a>(reader: &str, answers: impl Iterator<Item = &'a super::Answer>) -> Accuracy {
    let (mut n, mut correct, mut timeouts, mut time, mut count) = (0, 0, 0, 0.0, 0);
    // Rating-design answers have a rating, not a verdict: ROC analysis summarises them.
    for a in answers.filter(|a| a.rating.is_none()) {
        count += 1;
        time += a.time_s;
        match a.correct() {
            Some(c) => {
                n += 1;
                correct += usize::from(c);
            }
            None => timeouts += 1,
        }
    }
    Accuracy {
        reader: reader.to_string(),
        n,
        correct,
        timeouts,
        accuracy: if n > 0 {
            correct as f64 / n as f64
        } else {
            f64::NAN
        },
        ci95: clopper_pearson(correct as u64, n as u64, 0.05),
        mean_time_s: if count > 0 { time / count as f64 } else { 0.0 },
    }
}

fn means(groups: BTreeMap<(String, String), Vec<f64>>) -> Vec<LikertMean> {
    groups
        .into_iter()
        .map(|((question, group), v)| {
            let n = v.len();
            let mean = v.iter().sum::<f64>() / n.max(1) as f64;
            let var = if n > 1 {
                v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1) as f64
            } else {
                0.0
            };
            LikertMean {
                question,
                group,
                n,
                mean,
                sd: var.sqrt(),
            }
        })
        .collect()
}

/// What a Likert answer is grouped under, by truth: single design "real"/"synthetic"; pair
/// design the synthetic image's source is what is rated.
fn truth_group(a: &super::Answer) -> String {
    match a.truth.as_str() {
        "real" | "synthetic" => a.truth.clone(),
        _ => "pair".into(),
    }
}

/// Summarise logs of one study. Logs of different studies are refused.
pub fn summarise(logs: &[ReaderLog]) -> Result<Summary, StudyError> {
    let Some(first) = logs.first() else {
        return Err(StudyError::NoLogs);
    };
    for l in logs {
        if l.digest != first.digest {
            return Err(StudyError::MixedStudies {
                log: LogStudy::of(l),
                first: LogStudy::of(first),
            });
        }
    }
    let mut readers = BTreeSet::new();
    for l in logs {
        if !readers.insert(l.reader.clone()) {
            return Err(StudyError::DuplicateReader {
                path: l.path.clone(),
                reader: l.reader.clone(),
            });
        }
    }
    let mut accuracy: Vec<Accuracy> = logs
        .iter()
        .map(|l| accuracy_of(&l.reader, l.answers.iter()))
        .collect();
    accuracy.push(accuracy_of(
        "pooled",
        logs.iter().flat_map(|l| l.answers.iter()),
    ));

    let mut by_truth: BTreeMap<(String, String), Vec<f64>> = BTreeMap::new();
    let mut by_source: BTreeMap<(String, String), Vec<f64>> = BTreeMap::new();
    let mut conf: BTreeMap<(String, String), Vec<f64>> = BTreeMap::new();
    for a in logs.iter().flat_map(|l| l.answers.iter()) {
        for (q, v) in &a.likert {
            by_truth
                .entry((q.clone(), truth_group(a)))
                .or_default()
                .push(*v as f64);
            by_source
                .entry((q.clone(), a.source.clone()))
                .or_default()
                .push(*v as f64);
        }
        if let Some(c) = a.confidence {
            conf.entry(("confidence".into(), truth_group(a)))
                .or_default()
                .push(c as f64);
        }
    }

    // Agreement on verdicts (timeouts left out).
    let verdicts: Vec<BTreeMap<&str, &str>> = logs
        .iter()
        .map(|l| {
            l.answers
                .iter()
                .filter(|a| a.rating.is_none())
                .filter_map(|a| a.answer.as_deref().map(|v| (a.trial.as_str(), v)))
                .collect()
        })
        .collect();
    let mut cohen = Vec::new();
    for i in 0..logs.len() {
        for j in i + 1..logs.len() {
            let common: Vec<&str> = verdicts[i]
                .keys()
                .filter(|t| verdicts[j].contains_key(*t))
                .copied()
                .collect();
            let a: Vec<String> = common.iter().map(|t| verdicts[i][t].to_string()).collect();
            let b: Vec<String> = common.iter().map(|t| verdicts[j][t].to_string()).collect();
            cohen.push(PairAgreement {
                a: logs[i].reader.clone(),
                b: logs[j].reader.clone(),
                n: common.len(),
                kappa: cohen_kappa(&a, &b),
            });
        }
    }
    let (fleiss, fleiss_items) = if logs.len() >= 2 {
        let cats: BTreeSet<&str> = verdicts.iter().flat_map(|v| v.values().copied()).collect();
        let cats: Vec<&str> = cats.into_iter().collect();
        let items: Vec<&str> = verdicts[0]
            .keys()
            .filter(|t| verdicts.iter().all(|v| v.contains_key(*t)))
            .copied()
            .collect();
        let table: Vec<Vec<usize>> = items
            .iter()
            .map(|t| {
                cats.iter()
                    .map(|c| verdicts.iter().filter(|v| v[t] == *c).count())
                    .collect()
            })
            .collect();
        (fleiss_kappa(&table), items.len())
    } else {
        (None, 0)
    };
    Ok(Summary {
        study: first.study.clone(),
        accuracy,
        likert_by_truth: means(by_truth),
        likert_by_source: means(by_source),
        confidence_by_truth: means(conf),
        cohen,
        fleiss,
        fleiss_items,
    })
}

impl Summary {
    /// The summary as text tables (what `synthscope study summary` prints).
    pub fn to_text(&self) -> String {
        use std::fmt::Write;
        let mut s = String::new();
        let _ = writeln!(s, "Study \"{}\"", self.study);
        // A rating study has no verdicts: its ROC summary follows instead.
        let verdicts = self.accuracy.iter().any(|a| a.n + a.timeouts > 0);
        if verdicts {
            let _ = writeln!(
                s,
                "\nTelling real from synthetic (chance = 50%; 95% CI exact binomial):"
            );
            let _ = writeln!(
                s,
                "{:<16} {:>6} {:>8} {:>9} {:>17} {:>9} {:>8}",
                "reader", "n", "correct", "accuracy", "95% CI", "timeouts", "s/image"
            );
            for a in &self.accuracy {
                let _ = writeln!(
                    s,
                    "{:<16} {:>6} {:>8} {:>8.1}% {:>7.1}% – {:>5.1}% {:>9} {:>8.1}",
                    a.reader,
                    a.n,
                    a.correct,
                    100.0 * a.accuracy,
                    100.0 * a.ci95.0,
                    100.0 * a.ci95.1,
                    a.timeouts,
                    a.mean_time_s
                );
            }
        }
        for (title, rows) in [
            ("Likert means by truth", &self.likert_by_truth),
            ("Likert means by source", &self.likert_by_source),
            ("Confidence by truth", &self.confidence_by_truth),
        ] {
            if rows.is_empty() {
                continue;
            }
            let _ = writeln!(s, "\n{title} (1-5, mean ± sd):");
            for r in rows.iter() {
                let _ = writeln!(
                    s,
                    "  {:<28} {:<20} {:>4.2} ± {:<4.2} (n = {})",
                    r.question, r.group, r.mean, r.sd, r.n
                );
            }
        }
        if verdicts && !self.cohen.is_empty() {
            let _ = writeln!(s, "\nAgreement between readers (verdicts):");
            for p in &self.cohen {
                let _ = writeln!(
                    s,
                    "  Cohen's kappa {} vs {}: {} (n = {})",
                    p.a,
                    p.b,
                    p.kappa.map_or("undefined".into(), |k| format!("{k:.3}")),
                    p.n
                );
            }
            let _ = writeln!(
                s,
                "  Fleiss' kappa, all readers: {} ({} images every reader answered)",
                self.fleiss
                    .map_or("undefined".into(), |k| format!("{k:.3}")),
                self.fleiss_items
            );
        }
        s
    }
}
