//! Summaries of rating and 2AFC logs: the rating table (mean rating per reader, modality and
//! subject over its slices), ROC curves and AUCs, the MRMC analysis, 2AFC proportions correct,
//! and their exports (CSV of ROC points and AUCs, a PNG figure).

use super::ReaderLog;
use super::mrmc::{self, CovMethod, MrmcReport};
use super::roc::{self, AverageRoc, Ratings, ReaderRoc};
use super::stats::clopper_pearson;
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};

/// A 2AFC proportion correct (an estimate of the AUC).
#[derive(Clone, Debug, Serialize)]
pub struct AfcRow {
    /// Reader ("pooled" for all).
    pub reader: String,
    /// Modality.
    pub modality: String,
    /// Pairs answered.
    pub n: usize,
    /// Right answers.
    pub correct: usize,
    /// correct / n.
    pub proportion: f64,
    /// Exact binomial 95% interval.
    pub ci95: (f64, f64),
}

/// What rating/2AFC logs give.
#[derive(Clone, Debug, Serialize)]
pub struct RatingSummary {
    /// The fully crossed table analysed (subjects every reader rated in every modality).
    pub ratings: Option<Ratings>,
    /// Subjects left out because some reader or modality lacks a rating.
    pub incomplete_subjects: Vec<String>,
    /// Each reader's curve per modality.
    pub curves: Vec<ReaderRoc>,
    /// Reader-averaged curves.
    pub average: Vec<AverageRoc>,
    /// The MRMC analysis (None: fewer than 2 modalities or readers; see `mrmc_note`).
    pub mrmc: Option<MrmcReport>,
    /// Why there is no MRMC analysis.
    pub mrmc_note: Option<String>,
    /// 2AFC proportions correct, per reader and modality, then pooled per modality.
    pub two_afc: Vec<AfcRow>,
}

/// The rating table of rating-design answers: mean rating per (modality, reader, subject).
/// Subjects without a rating from every reader in every modality are left out (named in the
/// second value). None when no answer has a rating.
pub fn ratings_from_logs(logs: &[ReaderLog]) -> (Option<Ratings>, Vec<String>) {
    type Key = (String, String, String);
    let mut sums: BTreeMap<Key, (f64, usize)> = BTreeMap::new();
    let mut truth: BTreeMap<String, bool> = BTreeMap::new();
    let mut modalities: Vec<String> = Vec::new();
    let mut readers: Vec<String> = Vec::new();
    for l in logs {
        for a in &l.answers {
            let (Some(r), Some(ab)) = (a.rating, a.abnormal) else {
                continue;
            };
            let m = a.modality.clone().unwrap_or_default();
            let s = a.subject.clone().unwrap_or_else(|| a.case.clone());
            if !modalities.contains(&m) {
                modalities.push(m.clone());
            }
            if !readers.contains(&l.reader) {
                readers.push(l.reader.clone());
            }
            truth.insert(s.clone(), ab);
            let e = sums.entry((m, l.reader.clone(), s)).or_insert((0.0, 0));
            e.0 += r;
            e.1 += 1;
        }
    }
    if sums.is_empty() {
        return (None, Vec::new());
    }
    // Modalities by name, so the table does not depend on which reader's log came first.
    modalities.sort();
    let (mut complete, mut incomplete) = (Vec::new(), Vec::new());
    for s in truth.keys() {
        let all = modalities.iter().all(|m| {
            readers
                .iter()
                .all(|r| sums.contains_key(&(m.clone(), r.clone(), s.clone())))
        });
        if all {
            complete.push(s.clone());
        } else {
            incomplete.push(s.clone());
        }
    }
    let scores = modalities
        .iter()
        .map(|m| {
            readers
                .iter()
                .map(|r| {
                    complete
                        .iter()
                        .map(|s| {
                            let (sum, n) = sums[&(m.clone(), r.clone(), s.clone())];
                            sum / n as f64
                        })
                        .collect()
                })
                .collect()
        })
        .collect();
    let abnormal = complete.iter().map(|s| truth[s]).collect();
    let r = Ratings {
        modalities,
        readers,
        cases: complete,
        abnormal,
        scores,
    };
    (Some(r), incomplete)
}

/// 2AFC proportions correct by reader and modality (answers with a modality, no rating and a
/// partner), then pooled per modality.
pub fn two_afc(logs: &[ReaderLog]) -> Vec<AfcRow> {
    let mut cells: BTreeMap<(String, String), (usize, usize)> = BTreeMap::new();
    let mut order: BTreeSet<String> = BTreeSet::new();
    for l in logs {
        for a in &l.answers {
            if a.rating.is_some() || a.partner.is_none() || a.modality.is_none() {
                continue;
            }
            let Some(v) = &a.answer else { continue };
            let m = a.modality.clone().unwrap_or_default();
            order.insert(m.clone());
            let e = cells.entry((l.reader.clone(), m)).or_insert((0, 0));
            e.0 += 1;
            e.1 += usize::from(*v == a.truth);
        }
    }
    let row = |reader: &str, modality: &str, (n, c): (usize, usize)| {
        let proportion = if n > 0 { c as f64 / n as f64 } else { f64::NAN };
        AfcRow {
            reader: reader.into(),
            modality: modality.into(),
            n,
            correct: c,
            proportion,
            ci95: clopper_pearson(c as u64, n as u64, 0.05),
        }
    };
    let mut out: Vec<AfcRow> = cells.iter().map(|((r, m), v)| row(r, m, *v)).collect();
    for m in &order {
        let (n, c) = cells
            .iter()
            .filter(|((_, mm), _)| mm == m)
            .fold((0, 0), |acc, (_, v)| (acc.0 + v.0, acc.1 + v.1));
        out.push(row("pooled", m, (n, c)));
    }
    out
}

/// Summarise rating/2AFC logs (None: no rating or 2AFC answers at all).
pub fn summarise_ratings(logs: &[ReaderLog], method: CovMethod) -> Option<RatingSummary> {
    let (ratings, incomplete_subjects) = ratings_from_logs(logs);
    let two_afc = two_afc(logs);
    if ratings.is_none() && two_afc.is_empty() {
        return None;
    }
    let (mut curves, mut average, mut mrmc, mut mrmc_note) = (Vec::new(), Vec::new(), None, None);
    if let Some(r) = &ratings {
        match r.check(1, 1) {
            Ok(()) => {
                (curves, average) = roc::curves(r);
                match mrmc::analyse(r, method) {
                    Ok(m) => mrmc = Some(m),
                    Err(e) => mrmc_note = Some(e.to_string()),
                }
            }
            Err(e) => mrmc_note = Some(e.to_string()),
        }
    }
    Some(RatingSummary {
        ratings,
        incomplete_subjects,
        curves,
        average,
        mrmc,
        mrmc_note,
        two_afc,
    })
}

/// Colours of the modalities in figures (the app's and the PNG's).
pub const MODALITY_COLOURS: [[u8; 3]; 4] = [
    [40, 110, 200],
    [220, 110, 40],
    [60, 160, 80],
    [160, 70, 170],
];

impl RatingSummary {
    /// As text (after the accuracy tables of `study summary`).
    pub fn to_text(&self) -> String {
        use std::fmt::Write;
        let mut s = String::new();
        if !self.incomplete_subjects.is_empty() {
            let _ = writeln!(
                s,
                "\n{} subject(s) left out of the ROC analysis: not rated by every reader in every modality ({})",
                self.incomplete_subjects.len(),
                self.incomplete_subjects.join(", ")
            );
        }
        if !self.average.is_empty() {
            let _ = writeln!(s, "\nReader-averaged empirical ROC:");
            for a in &self.average {
                let _ = writeln!(s, "  {:<20} mean AUC {:.4}", a.modality, a.mean_auc);
            }
        }
        if let Some(m) = &self.mrmc {
            let _ = writeln!(s);
            s.push_str(&m.to_text());
        } else if let Some(n) = &self.mrmc_note {
            let _ = writeln!(s, "\nNo MRMC analysis: {n}");
        }
        if !self.two_afc.is_empty() {
            let _ = writeln!(
                s,
                "\n2AFC proportion correct (= AUC; exact binomial 95% CI):"
            );
            for r in &self.two_afc {
                let _ = writeln!(
                    s,
                    "  {:<16} {:<20} {:>4}/{:<4} {:.3} ({:.3} - {:.3})",
                    r.reader, r.modality, r.correct, r.n, r.proportion, r.ci95.0, r.ci95.1
                );
            }
        }
        s
    }

    /// CSV of the ROC curves: one row per point (modality, reader or "average", FPF, TPF),
    /// then one row per AUC (kind "auc").
    pub fn roc_csv(&self) -> String {
        let mut out = String::from("kind,modality,reader,fpf,tpf,auc\n");
        let q = |s: &str| {
            if s.contains([',', '"', '\n']) {
                format!("\"{}\"", s.replace('"', "\"\""))
            } else {
                s.to_string()
            }
        };
        for c in &self.curves {
            for (f, t) in &c.points {
                out += &format!("point,{},{},{f:.6},{t:.6},\n", q(&c.modality), q(&c.reader));
            }
        }
        for a in &self.average {
            for (f, t) in &a.points {
                out += &format!("point,{},average,{f:.6},{t:.6},\n", q(&a.modality));
            }
        }
        for c in &self.curves {
            out += &format!("auc,{},{},,,{:.6}\n", q(&c.modality), q(&c.reader), c.auc);
        }
        for a in &self.average {
            out += &format!("auc,{},average,,,{:.6}\n", q(&a.modality), a.mean_auc);
        }
        out
    }

    /// The ROC figure as PNG: each modality's reader-averaged curve (thick) over its readers'
    /// curves (dashed), colours in [`MODALITY_COLOURS`] order, the chance diagonal in grey.
    pub fn roc_png(&self, size: u32) -> Vec<u8> {
        use crate::experiment::figures::{Series, line_plot, png};
        let mut series: Vec<Series> = vec![(vec![(0.0, 0.0), (1.0, 1.0)], [170, 170, 170], true)];
        let names: Vec<&String> = self.average.iter().map(|a| &a.modality).collect();
        let colour = |m: &String| {
            let i = names.iter().position(|n| *n == m).unwrap_or(0);
            MODALITY_COLOURS[i % MODALITY_COLOURS.len()]
        };
        for c in &self.curves {
            let [r, g, b] = colour(&c.modality);
            let light = [r / 2 + 127, g / 2 + 127, b / 2 + 127];
            series.push((c.points.clone(), light, true));
        }
        for a in &self.average {
            // Thin the averaged curve to its grid so the markers do not merge.
            let pts: Vec<(f64, f64)> = a
                .points
                .iter()
                .step_by(4)
                .copied()
                .chain(a.points.last().copied())
                .collect();
            series.push((pts, colour(&a.modality), false));
        }
        png(&line_plot(&series, size, size))
    }
}
