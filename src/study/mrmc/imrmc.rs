//! Gallas' one-shot MRMC variance (Gallas 2006, Acad Radiol 13:353; the FDA iMRMC program):
//! the reader-averaged AUC is a U-statistic over three independent random indices (reader,
//! normal case, abnormal case) of the kernel h(r, i, j) = psi(x_ri, y_rj) (a difference of
//! modalities: psi_A - psi_B). Its variance is a combination of the second moments
//! E[h(r,i,j) h(r',i',j')] for the 8 patterns of equal and unequal indices, each estimated
//! without bias by averaging the products over exactly the index pairs with that pattern.
//! The estimate can be negative for tiny studies, as iMRMC's can.

use super::{Difference, SingleCi};
use crate::study::roc::{Ratings, RatingsError, psi};
use serde::Serialize;

/// The U-statistic analysis.
#[derive(Clone, Debug, Serialize)]
pub struct UStatAnalysis {
    /// Each modality's mean AUC: random readers and cases (`rrrc`), and fixed readers (`frrc`).
    pub single: Vec<UStatSingle>,
    /// Pairwise differences.
    pub differences: Vec<UStatDifference>,
}

/// One modality.
#[derive(Clone, Debug, Serialize)]
pub struct UStatSingle {
    /// Random readers, random cases.
    pub rrrc: SingleCi,
    /// Fixed readers, random cases.
    pub frrc: SingleCi,
    /// The variance estimates (RRRC, FRRC).
    pub var: (f64, f64),
}

/// One difference.
#[derive(Clone, Debug, Serialize)]
pub struct UStatDifference {
    /// Random readers, random cases (normal reference).
    pub rrrc: Difference,
    /// Fixed readers, random cases.
    pub frrc: Difference,
    /// The variance estimates (RRRC, FRRC).
    pub var: (f64, f64),
}

/// Unbiased variance of the mean of `h` (laid out `[r][i][j]` with sizes `n`), each index an
/// independent random sample. A factor of size 1 is fixed (it is never "different").
pub fn ustat_variance(h: &[f64], n: [usize; 3]) -> f64 {
    let total = (n[0] * n[1] * n[2]) as f64;
    // t[u]: sum over the values of the indices in u (bit f set: index f held) of the square of
    // the sum of h over the other indices.
    let mut t = [0.0f64; 8];
    for (u, tu) in t.iter_mut().enumerate() {
        let held = |f: usize| u & (1 << f) != 0;
        let dims: Vec<usize> = (0..3).map(|f| if held(f) { n[f] } else { 1 }).collect();
        let mut acc = vec![0.0f64; dims[0] * dims[1] * dims[2]];
        for r in 0..n[0] {
            for i in 0..n[1] {
                for j in 0..n[2] {
                    let (a, b, c) = (
                        if held(0) { r } else { 0 },
                        if held(1) { i } else { 0 },
                        if held(2) { j } else { 0 },
                    );
                    acc[(a * dims[1] + b) * dims[2] + c] += h[(r * n[1] + i) * n[2] + j];
                }
            }
        }
        *tu = acc.iter().map(|v| v * v).sum();
    }
    // Exactly-this-pattern sums by inclusion-exclusion, and their pair counts.
    let mut var = 0.0;
    let fixed: usize = (0..3).filter(|f| n[*f] == 1).map(|f| 1 << f).sum();
    let mut base = f64::NAN;
    for s in 0..8usize {
        let mut e = 0.0;
        for (u, tu) in t.iter().enumerate() {
            if u & s == s {
                let extra = (u & !s).count_ones();
                e += if extra % 2 == 0 { *tu } else { -*tu };
            }
        }
        let count: f64 = (0..3)
            .map(|f| {
                let nf = n[f] as f64;
                if s & (1 << f) != 0 {
                    nf
                } else {
                    nf * (nf - 1.0)
                }
            })
            .product();
        if count > 0.0 {
            let mu = e / count;
            var += count / (total * total) * mu;
            if s == fixed {
                base = mu;
            }
        }
    }
    var - base
}

/// Kernel array of modality `m` (or `m` minus `other`), laid out `[r][i][j]`.
fn kernel(
    r: &Ratings,
    m: usize,
    other: Option<usize>,
    normal: &[usize],
    abnormal: &[usize],
) -> Vec<f64> {
    let mut h = Vec::with_capacity(r.readers.len() * normal.len() * abnormal.len());
    for j in 0..r.readers.len() {
        let s = &r.scores[m][j];
        for &i in normal {
            for &k in abnormal {
                let mut v = psi(s[i], s[k]);
                if let Some(o) = other {
                    let so = &r.scores[o][j];
                    v -= psi(so[i], so[k]);
                }
                h.push(v);
            }
        }
    }
    h
}

/// Mean over readers of a `[r][i][j]` kernel: the fixed-reader kernel `[1][i][j]`.
fn reader_mean(h: &[f64], n: [usize; 3]) -> Vec<f64> {
    let per = n[1] * n[2];
    (0..per)
        .map(|ij| (0..n[0]).map(|r| h[r * per + ij]).sum::<f64>() / n[0] as f64)
        .collect()
}

/// The U-statistic analysis of a fully crossed table.
pub fn analyse(r: &Ratings) -> Result<UStatAnalysis, RatingsError> {
    r.check(1, 2)?;
    let (normal, abnormal) = r.split();
    let n = [r.readers.len(), normal.len(), abnormal.len()];
    let fixed = [1, n[1], n[2]];
    let mean = |h: &[f64]| h.iter().sum::<f64>() / h.len() as f64;
    let t = r.modalities.len();
    let single = (0..t)
        .map(|m| {
            let h = kernel(r, m, None, &normal, &abnormal);
            let v = (
                ustat_variance(&h, n),
                ustat_variance(&reader_mean(&h, n), fixed),
            );
            let auc = mean(&h);
            UStatSingle {
                rrrc: SingleCi::new(&r.modalities[m], auc, v.0.max(0.0).sqrt(), None),
                frrc: SingleCi::new(&r.modalities[m], auc, v.1.max(0.0).sqrt(), None),
                var: v,
            }
        })
        .collect();
    let mut differences = Vec::new();
    for a in 0..t {
        for b in a + 1..t {
            let h = kernel(r, a, Some(b), &normal, &abnormal);
            let v = (
                ustat_variance(&h, n),
                ustat_variance(&reader_mean(&h, n), fixed),
            );
            let d = mean(&h);
            let (na, nb) = (&r.modalities[a], &r.modalities[b]);
            differences.push(UStatDifference {
                rrrc: Difference::new(na, nb, d, v.0.max(0.0).sqrt(), None),
                frrc: Difference::new(na, nb, d, v.1.max(0.0).sqrt(), None),
                var: v,
            });
        }
    }
    Ok(UStatAnalysis {
        single,
        differences,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The definition, by brute force over all pairs of index triples.
    fn brute(h: &[f64], n: [usize; 3]) -> f64 {
        let idx = |r: usize, i: usize, j: usize| h[(r * n[1] + i) * n[2] + j];
        let total = (n[0] * n[1] * n[2]) as f64;
        let mut sums = [0.0f64; 8];
        let mut counts = [0.0f64; 8];
        for r in 0..n[0] {
            for i in 0..n[1] {
                for j in 0..n[2] {
                    for r2 in 0..n[0] {
                        for i2 in 0..n[1] {
                            for j2 in 0..n[2] {
                                let s = usize::from(r == r2)
                                    | usize::from(i == i2) << 1
                                    | usize::from(j == j2) << 2;
                                sums[s] += idx(r, i, j) * idx(r2, i2, j2);
                                counts[s] += 1.0;
                            }
                        }
                    }
                }
            }
        }
        let mut v = 0.0;
        for s in 0..8 {
            if counts[s] > 0.0 {
                v += counts[s] / (total * total) * (sums[s] / counts[s]);
            }
        }
        v - sums[0] / counts[0]
    }

    #[test]
    fn fast_moments_equal_the_definition() {
        let mut rng = crate::train::data::Rng::new(7);
        let n = [3, 4, 5];
        let h: Vec<f64> = (0..60).map(|_| (rng.below(3) as f64) * 0.5 - 0.5).collect();
        let (a, b) = (ustat_variance(&h, n), brute(&h, n));
        assert!((a - b).abs() < 1e-12, "{a} vs {b}");
    }

    #[test]
    fn one_factor_is_the_variance_of_the_mean() {
        // With readers fixed and one normal case, the estimate is s^2 / n over the abnormal ones.
        let h = [0.0, 1.0, 1.0, 0.5, 1.0];
        let m = h.iter().sum::<f64>() / 5.0;
        let s2 = h.iter().map(|v| (v - m) * (v - m)).sum::<f64>() / 4.0;
        assert!((ustat_variance(&h, [1, 1, 5]) - s2 / 5.0).abs() < 1e-12);
    }
}
