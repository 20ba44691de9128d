//! Obuchowski-Rockette analysis of reader x modality AUCs: the two-way ANOVA of the AUCs, the
//! error variance and the three error covariances (Cov1: same reader, other modality; Cov2:
//! same modality, other reader; Cov3: both other), and the tests of Hillis (2007, 2008):
//!
//! - RRRC: F = MS(T) / [MS(T*R) + r max(Cov2 - Cov3, 0)] on (t - 1, ddf_H) df,
//!   ddf_H = [MS(T*R) + r max(Cov2 - Cov3, 0)]^2 / {MS(T*R)^2 / [(t - 1)(r - 1)]};
//! - FRRC: X2 = (t - 1) MS(T) / [Var - Cov1 + (r - 1) max(Cov2 - Cov3, 0)] on t - 1 df;
//! - RRFC: F = MS(T) / MS(T*R) on (t - 1, (t - 1)(r - 1)) df.

use super::{AucCov, CovMethod, Difference, Generalise, Inference, SingleCi, dist};
use crate::study::roc::Ratings;
use serde::Serialize;

/// An OR analysis.
#[derive(Clone, Debug, Serialize)]
pub struct OrAnalysis {
    /// Covariance estimate used.
    pub method: CovMethod,
    /// `auc[m][j]`.
    pub auc: Vec<Vec<f64>>,
    /// Mean AUC per modality.
    pub auc_mean: Vec<f64>,
    /// Mean squares: modality, reader, modality x reader.
    pub ms_t: f64,
    /// Reader mean square.
    pub ms_r: f64,
    /// Modality x reader mean square.
    pub ms_tr: f64,
    /// Reader mean square within each modality.
    pub ms_r_single: Vec<f64>,
    /// Error variance (mean of the AUC variances).
    pub var_error: f64,
    /// Same reader, other modality.
    pub cov1: f64,
    /// Same modality, other reader.
    pub cov2: f64,
    /// Other reader, other modality.
    pub cov3: f64,
    /// Error variance within each modality.
    pub var_error_single: Vec<f64>,
    /// Cov2 within each modality.
    pub cov2_single: Vec<f64>,
    /// Reader variance component.
    pub var_r: f64,
    /// Modality x reader variance component.
    pub var_tr: f64,
    /// Cases the covariances were estimated on (sizing scales them).
    pub cases: usize,
    /// Random readers, random cases.
    pub rrrc: Inference,
    /// Fixed readers, random cases.
    pub frrc: Inference,
    /// Random readers, fixed cases.
    pub rrfc: Inference,
}

/// Two-way (modality x reader) ANOVA mean squares of `theta[m][j]`: (MS_T, MS_R, MS_TR).
pub fn two_way(theta: &[Vec<f64>]) -> (f64, f64, f64) {
    let t = theta.len();
    let r = theta[0].len();
    let (tf, rf) = (t as f64, r as f64);
    let grand = theta.iter().flatten().sum::<f64>() / (tf * rf);
    let mi: Vec<f64> = theta.iter().map(|v| v.iter().sum::<f64>() / rf).collect();
    let mj: Vec<f64> = (0..r)
        .map(|j| theta.iter().map(|v| v[j]).sum::<f64>() / tf)
        .collect();
    let ms_t = rf * mi.iter().map(|m| (m - grand).powi(2)).sum::<f64>() / (tf - 1.0).max(1.0);
    let ms_r = tf * mj.iter().map(|m| (m - grand).powi(2)).sum::<f64>() / (rf - 1.0).max(1.0);
    let mut ss_tr = 0.0;
    for i in 0..t {
        for j in 0..r {
            ss_tr += (theta[i][j] - mi[i] - mj[j] + grand).powi(2);
        }
    }
    let ms_tr = ss_tr / ((tf - 1.0) * (rf - 1.0)).max(1.0);
    (ms_t, ms_r, ms_tr)
}

/// Mean of the covariances between (i, j) and (i', j') selected by `pick(i, j, i', j')`.
fn mean_cov(
    cov: &[Vec<f64>],
    t: usize,
    r: usize,
    pick: impl Fn(usize, usize, usize, usize) -> bool,
) -> f64 {
    let (mut s, mut n) = (0.0, 0usize);
    for i in 0..t {
        for j in 0..r {
            for i2 in 0..t {
                for j2 in 0..r {
                    if pick(i, j, i2, j2) {
                        s += cov[i * r + j][i2 * r + j2];
                        n += 1;
                    }
                }
            }
        }
    }
    if n == 0 { 0.0 } else { s / n as f64 }
}

/// The OR analysis of a table's AUCs and covariances.
pub fn analyse(ratings: &Ratings, ac: &AucCov, method: CovMethod) -> OrAnalysis {
    let names = &ratings.modalities;
    let (t, r) = (ac.auc.len(), ac.auc[0].len());
    let (tf, rf) = (t as f64, r as f64);
    let (ms_t, ms_r, ms_tr) = two_way(&ac.auc);
    let cov = &ac.cov;
    let var_error = mean_cov(cov, t, r, |i, j, i2, j2| i == i2 && j == j2);
    let cov1 = mean_cov(cov, t, r, |i, j, i2, j2| i != i2 && j == j2);
    let cov2 = mean_cov(cov, t, r, |i, j, i2, j2| i == i2 && j != j2);
    let cov3 = mean_cov(cov, t, r, |i, j, i2, j2| i != i2 && j != j2);
    let auc_mean: Vec<f64> = ac.auc.iter().map(|v| v.iter().sum::<f64>() / rf).collect();
    let ms_r_single: Vec<f64> = ac
        .auc
        .iter()
        .zip(&auc_mean)
        .map(|(v, m)| v.iter().map(|a| (a - m).powi(2)).sum::<f64>() / (rf - 1.0))
        .collect();
    let var_error_single: Vec<f64> = (0..t)
        .map(|m| mean_cov(cov, t, r, |i, j, i2, j2| i == m && i2 == m && j == j2))
        .collect();
    let cov2_single: Vec<f64> = (0..t)
        .map(|m| mean_cov(cov, t, r, |i, j, i2, j2| i == m && i2 == m && j != j2))
        .collect();
    let var_r = (ms_r - ms_tr) / tf - cov1 + cov3;
    let var_tr = ms_tr - var_error + cov1 + cov2 - cov3;
    let c23 = (cov2 - cov3).max(0.0);
    let pairs: Vec<(usize, usize)> = (0..t)
        .flat_map(|a| (a + 1..t).map(move |b| (a, b)))
        .collect();
    let diffs = |se: f64, df: Option<f64>| -> Vec<Difference> {
        pairs
            .iter()
            .map(|&(a, b)| Difference::new(&names[a], &names[b], auc_mean[a] - auc_mean[b], se, df))
            .collect()
    };

    // RRRC.
    let den = ms_tr + rf * c23;
    let ddf = den * den / (ms_tr * ms_tr / ((tf - 1.0) * (rf - 1.0)));
    let f = ms_t / den;
    let rrrc = Inference {
        generalise: Generalise::RandomReadersRandomCases,
        f,
        df1: tf - 1.0,
        df2: Some(ddf),
        p: dist::f_sf(f, tf - 1.0, ddf),
        error_term: den,
        differences: diffs((2.0 / rf * den).sqrt(), Some(ddf)),
        single: (0..t)
            .map(|m| {
                let d = ms_r_single[m] + rf * cov2_single[m].max(0.0);
                let df = d * d / (ms_r_single[m].powi(2) / (rf - 1.0));
                SingleCi::new(&names[m], auc_mean[m], (d / rf).sqrt(), Some(df))
            })
            .collect(),
    };

    // FRRC.
    let den = var_error - cov1 + (rf - 1.0) * c23;
    let x2 = (tf - 1.0) * ms_t / den;
    let frrc = Inference {
        generalise: Generalise::FixedReadersRandomCases,
        f: x2 / (tf - 1.0),
        df1: tf - 1.0,
        df2: None,
        p: 1.0 - dist::chi2_cdf(x2, tf - 1.0),
        error_term: den,
        differences: diffs((2.0 / rf * den).sqrt(), None),
        single: (0..t)
            .map(|m| {
                let v = var_error_single[m] + (rf - 1.0) * cov2_single[m].max(0.0);
                SingleCi::new(&names[m], auc_mean[m], (v / rf).sqrt(), None)
            })
            .collect(),
    };

    // RRFC.
    let df2 = (tf - 1.0) * (rf - 1.0);
    let f = ms_t / ms_tr;
    let rrfc = Inference {
        generalise: Generalise::RandomReadersFixedCases,
        f,
        df1: tf - 1.0,
        df2: Some(df2),
        p: dist::f_sf(f, tf - 1.0, df2),
        error_term: ms_tr,
        differences: diffs((2.0 / rf * ms_tr).sqrt(), Some(df2)),
        single: (0..t)
            .map(|m| {
                SingleCi::new(
                    &names[m],
                    auc_mean[m],
                    (ms_r_single[m] / rf).sqrt(),
                    Some(rf - 1.0),
                )
            })
            .collect(),
    };

    OrAnalysis {
        method,
        auc: ac.auc.clone(),
        auc_mean,
        ms_t,
        ms_r,
        ms_tr,
        ms_r_single,
        var_error,
        cov1,
        cov2,
        cov3,
        var_error_single,
        cov2_single,
        var_r,
        var_tr,
        cases: ratings.cases.len(),
        rrrc,
        frrc,
        rrfc,
    }
}
