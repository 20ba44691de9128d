//! Empirical ROC analysis of confidence ratings: the fully crossed rating table (every reader
//! rates every case in every modality), each reader's empirical ROC curve and its trapezoidal
//! area (= the Mann-Whitney U statistic, ties counted one half), the structural components
//! DeLong's covariance and the jackknife are built from, and reader-averaged curves.

use serde::Serialize;

/// Ratings of a fully crossed MRMC study: `scores[m][r][k]` is reader r's rating of case k in
/// modality m (larger: more confident the case is abnormal).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Ratings {
    /// Modality names (e.g. "real CT", "synthetic CT").
    pub modalities: Vec<String>,
    /// Reader IDs.
    pub readers: Vec<String>,
    /// Case IDs.
    pub cases: Vec<String>,
    /// Truth per case: abnormal (lesion present).
    pub abnormal: Vec<bool>,
    /// `scores[m][r][k]`.
    pub scores: Vec<Vec<Vec<f64>>>,
}

/// Why a rating table cannot be analysed.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum RatingsError {
    /// Too few of something.
    #[error("an MRMC analysis needs {need}; the ratings have {have}")]
    TooFew {
        /// What is needed ("2 modalities", ...).
        need: &'static str,
        /// What there is.
        have: String,
    },
    /// A table whose shape does not match its labels.
    #[error("the rating table is {problem}")]
    Shape {
        /// What is wrong.
        problem: String,
    },
    /// A rating that is not a number.
    #[error("reader {reader:?}, case {case:?}, {modality:?}: the rating is not a number")]
    NotANumber {
        /// Modality.
        modality: String,
        /// Reader.
        reader: String,
        /// Case.
        case: String,
    },
}

impl Ratings {
    /// Check the table: shape, at least one normal and one abnormal case, finite ratings.
    /// `min_modalities`/`min_readers`: what the analysis asked for needs.
    pub fn check(&self, min_modalities: usize, min_readers: usize) -> Result<(), RatingsError> {
        let (t, r, k) = (self.modalities.len(), self.readers.len(), self.cases.len());
        if t < min_modalities {
            return Err(RatingsError::TooFew {
                need: if min_modalities >= 2 {
                    "2 modalities"
                } else {
                    "1 modality"
                },
                have: format!("{t}"),
            });
        }
        if r < min_readers {
            return Err(RatingsError::TooFew {
                need: if min_readers >= 2 {
                    "2 readers"
                } else {
                    "1 reader"
                },
                have: format!("{r}"),
            });
        }
        if self.abnormal.len() != k {
            return Err(RatingsError::Shape {
                problem: format!("{k} cases but {} truth values", self.abnormal.len()),
            });
        }
        let n1 = self.abnormal.iter().filter(|a| **a).count();
        if n1 < 2 || k - n1 < 2 {
            return Err(RatingsError::TooFew {
                need: "2 normal and 2 abnormal cases",
                have: format!("{} normal and {n1} abnormal", k - n1),
            });
        }
        if self.scores.len() != t || self.scores.iter().any(|m| m.len() != r) {
            return Err(RatingsError::Shape {
                problem: format!("not {t} modalities x {r} readers"),
            });
        }
        for (m, per) in self.scores.iter().enumerate() {
            for (j, row) in per.iter().enumerate() {
                if row.len() != k {
                    return Err(RatingsError::Shape {
                        problem: format!(
                            "missing ratings: reader {:?} in {:?} rated {} of {k} cases",
                            self.readers[j],
                            self.modalities[m],
                            row.len()
                        ),
                    });
                }
                if let Some(c) = row.iter().position(|v| !v.is_finite()) {
                    return Err(RatingsError::NotANumber {
                        modality: self.modalities[m].clone(),
                        reader: self.readers[j].clone(),
                        case: self.cases[c].clone(),
                    });
                }
            }
        }
        Ok(())
    }

    /// Indices of the normal and the abnormal cases.
    pub fn split(&self) -> (Vec<usize>, Vec<usize>) {
        let normal = (0..self.cases.len())
            .filter(|k| !self.abnormal[*k])
            .collect();
        let abnormal = (0..self.cases.len())
            .filter(|k| self.abnormal[*k])
            .collect();
        (normal, abnormal)
    }
}

/// The Mann-Whitney kernel: 1 if the abnormal case is rated higher, 1/2 on a tie, 0 otherwise.
pub fn psi(normal: f64, abnormal: f64) -> f64 {
    if abnormal > normal {
        1.0
    } else if abnormal == normal {
        0.5
    } else {
        0.0
    }
}

/// A reader's area and its structural components: `v10[j]` = mean kernel of abnormal case j
/// against all normal cases, `v01[i]` = mean kernel of normal case i against all abnormal ones.
#[derive(Clone, Debug)]
pub struct Components {
    /// The trapezoidal area (= mean of v10 = mean of v01).
    pub auc: f64,
    /// Per abnormal case.
    pub v10: Vec<f64>,
    /// Per normal case.
    pub v01: Vec<f64>,
}

/// Area and structural components of ratings `x` (normal cases) and `y` (abnormal cases),
/// sorting once: O((n0 + n1) log(n0 + n1)).
pub fn components(x: &[f64], y: &[f64]) -> Components {
    let (n0, n1) = (x.len(), y.len());
    let mut xs: Vec<f64> = x.to_vec();
    let mut ys: Vec<f64> = y.to_vec();
    xs.sort_by(f64::total_cmp);
    ys.sort_by(f64::total_cmp);
    // For a value v: (count below, count equal) in a sorted list.
    let rank = |sorted: &[f64], v: f64| {
        let below = sorted.partition_point(|s| *s < v);
        let upto = sorted.partition_point(|s| *s <= v);
        (below, upto - below)
    };
    let v10: Vec<f64> = y
        .iter()
        .map(|&v| {
            let (b, e) = rank(&xs, v);
            (b as f64 + 0.5 * e as f64) / n0.max(1) as f64
        })
        .collect();
    let v01: Vec<f64> = x
        .iter()
        .map(|&v| {
            let (b, e) = rank(&ys, v);
            let above = n1 - b - e;
            (above as f64 + 0.5 * e as f64) / n1.max(1) as f64
        })
        .collect();
    let auc = v10.iter().sum::<f64>() / n1.max(1) as f64;
    Components { auc, v10, v01 }
}

/// The empirical ROC curve of ratings `x` (normal) and `y` (abnormal): (FPF, TPF) points from
/// (0, 0) to (1, 1), one per distinct rating used as a threshold ("rating >= t is positive").
pub fn empirical_roc(x: &[f64], y: &[f64]) -> Vec<(f64, f64)> {
    let mut t: Vec<f64> = x.iter().chain(y).copied().collect();
    t.sort_by(|a, b| b.total_cmp(a));
    t.dedup();
    let (n0, n1) = (x.len().max(1) as f64, y.len().max(1) as f64);
    let mut pts = vec![(0.0, 0.0)];
    for th in t {
        let fpf = x.iter().filter(|v| **v >= th).count() as f64 / n0;
        let tpf = y.iter().filter(|v| **v >= th).count() as f64 / n1;
        pts.push((fpf, tpf));
    }
    if pts.last() != Some(&(1.0, 1.0)) {
        pts.push((1.0, 1.0));
    }
    pts
}

/// Trapezoidal area under ROC points (sorted by FPF).
pub fn trapezoid(points: &[(f64, f64)]) -> f64 {
    points
        .windows(2)
        .map(|w| (w[1].0 - w[0].0) * 0.5 * (w[0].1 + w[1].1))
        .sum()
}

/// TPF of an empirical curve at `fpf` (linear between its points): (lowest, highest), which
/// differ where the curve steps vertically at `fpf`.
pub fn tpf_at(points: &[(f64, f64)], fpf: f64) -> (f64, f64) {
    let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
    for w in points.windows(2) {
        let ((x0, y0), (x1, y1)) = (w[0], w[1]);
        if fpf >= x0 && fpf <= x1 {
            let (a, b) = if x1 > x0 {
                let y = y0 + (y1 - y0) * (fpf - x0) / (x1 - x0);
                (y, y)
            } else {
                (y0.min(y1), y0.max(y1))
            };
            lo = lo.min(a);
            hi = hi.max(b);
        }
    }
    if lo > hi { (0.0, 0.0) } else { (lo, hi) }
}

/// Reader-averaged ROC curve: the readers' empirical curves averaged vertically (mean TPF at
/// each FPF of a grid of `n` + 1 points and of every reader's own points; at a reader's
/// vertical step both its lower and its upper TPF, so steps stay sharp). Every curve is linear
/// between these FPFs, so the area of the average is the mean of the readers' areas.
pub fn average_roc(curves: &[Vec<(f64, f64)>], n: usize) -> Vec<(f64, f64)> {
    if curves.is_empty() {
        return Vec::new();
    }
    let mut grid: Vec<f64> = (0..=n).map(|i| i as f64 / n.max(1) as f64).collect();
    grid.extend(curves.iter().flat_map(|c| c.iter().map(|p| p.0)));
    grid.sort_by(f64::total_cmp);
    grid.dedup_by(|a, b| (*a - *b).abs() < 1e-12);
    let k = curves.len() as f64;
    let mut out = Vec::with_capacity(2 * grid.len());
    for &f in &grid {
        let (lo, hi) = curves
            .iter()
            .map(|c| tpf_at(c, f))
            .fold((0.0, 0.0), |acc, (l, h)| (acc.0 + l, acc.1 + h));
        out.push((f, lo / k));
        if hi > lo {
            out.push((f, hi / k));
        }
    }
    out
}

/// One reader's curve and area in one modality.
#[derive(Clone, Debug, Serialize)]
pub struct ReaderRoc {
    /// Modality.
    pub modality: String,
    /// Reader.
    pub reader: String,
    /// Trapezoidal AUC (= Mann-Whitney).
    pub auc: f64,
    /// Empirical (FPF, TPF) points.
    pub points: Vec<(f64, f64)>,
}

/// A modality's reader-averaged curve.
#[derive(Clone, Debug, Serialize)]
pub struct AverageRoc {
    /// Modality.
    pub modality: String,
    /// Mean of the readers' AUCs.
    pub mean_auc: f64,
    /// Vertically averaged (FPF, TPF) points.
    pub points: Vec<(f64, f64)>,
}

/// Every reader's empirical ROC in every modality, and each modality's average.
pub fn curves(r: &Ratings) -> (Vec<ReaderRoc>, Vec<AverageRoc>) {
    let (normal, abnormal) = r.split();
    let mut per = Vec::new();
    let mut avg = Vec::new();
    for (m, name) in r.modalities.iter().enumerate() {
        let mut these = Vec::new();
        for (j, reader) in r.readers.iter().enumerate() {
            let s = &r.scores[m][j];
            let x: Vec<f64> = normal.iter().map(|k| s[*k]).collect();
            let y: Vec<f64> = abnormal.iter().map(|k| s[*k]).collect();
            let points = empirical_roc(&x, &y);
            these.push(ReaderRoc {
                modality: name.clone(),
                reader: reader.clone(),
                auc: components(&x, &y).auc,
                points,
            });
        }
        let pts: Vec<Vec<(f64, f64)>> = these.iter().map(|c| c.points.clone()).collect();
        avg.push(AverageRoc {
            modality: name.clone(),
            mean_auc: these.iter().map(|c| c.auc).sum::<f64>() / these.len().max(1) as f64,
            points: average_roc(&pts, 100),
        });
        per.extend(these);
    }
    (per, avg)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn area_is_mann_whitney_and_trapezoid() {
        let x = [1.0, 2.0, 2.0, 3.0, 1.0, 4.0];
        let y = [2.0, 3.0, 5.0, 4.0, 3.0];
        let mut u = 0.0;
        for a in x {
            for b in y {
                u += psi(a, b);
            }
        }
        let mw = u / (x.len() * y.len()) as f64;
        let c = components(&x, &y);
        assert!((c.auc - mw).abs() < 1e-12);
        assert!((trapezoid(&empirical_roc(&x, &y)) - mw).abs() < 1e-12);
        let mean01 = c.v01.iter().sum::<f64>() / x.len() as f64;
        assert!((mean01 - mw).abs() < 1e-12);
    }

    #[test]
    fn average_of_two_curves_has_the_mean_area() {
        let a = empirical_roc(&[1.0, 2.0, 3.0], &[2.5, 3.5, 4.0]);
        let b = empirical_roc(&[1.0, 5.0, 3.0], &[2.0, 4.0, 6.0]);
        let avg = average_roc(&[a.clone(), b.clone()], 200);
        let want = 0.5 * (trapezoid(&a) + trapezoid(&b));
        assert!(
            (trapezoid(&avg) - want).abs() < 1e-9,
            "{} {}",
            trapezoid(&avg),
            want
        );
    }
}
