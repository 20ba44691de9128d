//! Dorfman-Berbaum-Metz analysis: jackknife pseudovalues Y_ijk = K A_ij - (K - 1) A_ij(-k)
//! analysed as a modality x reader x case ANOVA (one value per cell), with Hillis' df for the
//! random-reader random-case test (Hillis, Berbaum & Metz 2008):
//! F = MS(T) / [MS(T*R) + max(MS(T*C) - MS(T*R*C), 0)].

use super::{AucCov, Difference, Generalise, Inference, SingleCi, dist};
use crate::study::roc::Ratings;
use serde::Serialize;

/// DBM mean squares.
#[derive(Clone, Debug, Serialize)]
pub struct DbmMeanSquares {
    /// Modality.
    pub t: f64,
    /// Reader.
    pub r: f64,
    /// Case.
    pub c: f64,
    /// Modality x reader.
    pub tr: f64,
    /// Modality x case.
    pub tc: f64,
    /// Reader x case.
    pub rc: f64,
    /// Modality x reader x case.
    pub trc: f64,
}

/// DBM variance components (of pseudovalues).
#[derive(Clone, Debug, Serialize)]
pub struct DbmComponents {
    /// Reader.
    pub var_r: f64,
    /// Case.
    pub var_c: f64,
    /// Modality x reader.
    pub var_tr: f64,
    /// Modality x case.
    pub var_tc: f64,
    /// Reader x case.
    pub var_rc: f64,
    /// Modality x reader x case plus error.
    pub var_trc_error: f64,
}

/// A DBM analysis.
#[derive(Clone, Debug, Serialize)]
pub struct DbmAnalysis {
    /// Mean squares.
    pub ms: DbmMeanSquares,
    /// Variance components.
    pub components: DbmComponents,
    /// Random readers, random cases.
    pub rrrc: Inference,
    /// Fixed readers, random cases.
    pub frrc: Inference,
    /// Random readers, fixed cases.
    pub rrfc: Inference,
}

/// Two-way reader x case ANOVA of one modality's pseudovalues `y[j][k]`: (MS_R, MS_C, MS_RC).
fn reader_case(y: &[Vec<f64>]) -> (f64, f64, f64) {
    let (r, c) = (y.len(), y[0].len());
    let (rf, cf) = (r as f64, c as f64);
    let g = y.iter().flatten().sum::<f64>() / (rf * cf);
    let mj: Vec<f64> = y.iter().map(|v| v.iter().sum::<f64>() / cf).collect();
    let mk: Vec<f64> = (0..c)
        .map(|k| y.iter().map(|v| v[k]).sum::<f64>() / rf)
        .collect();
    let ms_r = cf * mj.iter().map(|m| (m - g).powi(2)).sum::<f64>() / (rf - 1.0);
    let ms_c = rf * mk.iter().map(|m| (m - g).powi(2)).sum::<f64>() / (cf - 1.0);
    let mut ss = 0.0;
    for j in 0..r {
        for k in 0..c {
            ss += (y[j][k] - mj[j] - mk[k] + g).powi(2);
        }
    }
    (ms_r, ms_c, ss / ((rf - 1.0) * (cf - 1.0)))
}

/// The DBM analysis of a table's jackknife AUCs.
pub fn analyse(ratings: &Ratings, ac: &AucCov) -> DbmAnalysis {
    let names = &ratings.modalities;
    let (t, r, c) = (ac.auc.len(), ac.auc[0].len(), ratings.cases.len());
    let (tf, rf, cf) = (t as f64, r as f64, c as f64);
    // Pseudovalues.
    let y: Vec<Vec<Vec<f64>>> = (0..t)
        .map(|i| {
            (0..r)
                .map(|j| {
                    (0..c)
                        .map(|k| cf * ac.auc[i][j] - (cf - 1.0) * ac.jack[i][j][k])
                        .collect()
                })
                .collect()
        })
        .collect();
    let g = y.iter().flatten().flatten().sum::<f64>() / (tf * rf * cf);
    let mi: Vec<f64> = y
        .iter()
        .map(|v| v.iter().flatten().sum::<f64>() / (rf * cf))
        .collect();
    let mj: Vec<f64> = (0..r)
        .map(|j| (0..t).map(|i| y[i][j].iter().sum::<f64>()).sum::<f64>() / (tf * cf))
        .collect();
    let mk: Vec<f64> = (0..c)
        .map(|k| {
            (0..t)
                .flat_map(|i| (0..r).map(move |j| (i, j)))
                .map(|(i, j)| y[i][j][k])
                .sum::<f64>()
                / (tf * rf)
        })
        .collect();
    let mij: Vec<Vec<f64>> = (0..t)
        .map(|i| (0..r).map(|j| y[i][j].iter().sum::<f64>() / cf).collect())
        .collect();
    let mik: Vec<Vec<f64>> = (0..t)
        .map(|i| {
            (0..c)
                .map(|k| (0..r).map(|j| y[i][j][k]).sum::<f64>() / rf)
                .collect()
        })
        .collect();
    let mjk: Vec<Vec<f64>> = (0..r)
        .map(|j| {
            (0..c)
                .map(|k| (0..t).map(|i| y[i][j][k]).sum::<f64>() / tf)
                .collect()
        })
        .collect();
    let sq = |v: f64| v * v;
    let ss_t = rf * cf * mi.iter().map(|m| sq(m - g)).sum::<f64>();
    let ss_r = tf * cf * mj.iter().map(|m| sq(m - g)).sum::<f64>();
    let ss_c = tf * rf * mk.iter().map(|m| sq(m - g)).sum::<f64>();
    let (mut ss_tr, mut ss_tc, mut ss_rc, mut ss_trc) = (0.0, 0.0, 0.0, 0.0);
    for i in 0..t {
        for j in 0..r {
            ss_tr += cf * sq(mij[i][j] - mi[i] - mj[j] + g);
        }
        for k in 0..c {
            ss_tc += rf * sq(mik[i][k] - mi[i] - mk[k] + g);
        }
    }
    for j in 0..r {
        for k in 0..c {
            ss_rc += tf * sq(mjk[j][k] - mj[j] - mk[k] + g);
        }
    }
    for i in 0..t {
        for j in 0..r {
            for k in 0..c {
                ss_trc +=
                    sq(y[i][j][k] - mij[i][j] - mik[i][k] - mjk[j][k] + mi[i] + mj[j] + mk[k] - g);
            }
        }
    }
    let ms = DbmMeanSquares {
        t: ss_t / (tf - 1.0),
        r: ss_r / (rf - 1.0),
        c: ss_c / (cf - 1.0),
        tr: ss_tr / ((tf - 1.0) * (rf - 1.0)),
        tc: ss_tc / ((tf - 1.0) * (cf - 1.0)),
        rc: ss_rc / ((rf - 1.0) * (cf - 1.0)),
        trc: ss_trc / ((tf - 1.0) * (rf - 1.0) * (cf - 1.0)),
    };
    let components = DbmComponents {
        var_r: (ms.r - ms.tr - ms.rc + ms.trc) / (tf * cf),
        var_c: (ms.c - ms.tc - ms.rc + ms.trc) / (tf * rf),
        var_tr: (ms.tr - ms.trc) / cf,
        var_tc: (ms.tc - ms.trc) / rf,
        var_rc: (ms.rc - ms.trc) / tf,
        var_trc_error: ms.trc,
    };
    let pairs: Vec<(usize, usize)> = (0..t)
        .flat_map(|a| (a + 1..t).map(move |b| (a, b)))
        .collect();
    let diffs = |den: f64, df: Option<f64>| -> Vec<Difference> {
        pairs
            .iter()
            .map(|&(a, b)| {
                Difference::new(
                    &names[a],
                    &names[b],
                    mi[a] - mi[b],
                    (2.0 * den / (rf * cf)).sqrt(),
                    df,
                )
            })
            .collect()
    };
    let single: Vec<(f64, f64, f64)> = y.iter().map(|yi| reader_case(yi)).collect();

    let den = ms.tr + (ms.tc - ms.trc).max(0.0);
    let ddf = den * den / (ms.tr * ms.tr / ((tf - 1.0) * (rf - 1.0)));
    let f = ms.t / den;
    let rrrc = Inference {
        generalise: Generalise::RandomReadersRandomCases,
        f,
        df1: tf - 1.0,
        df2: Some(ddf),
        p: dist::f_sf(f, tf - 1.0, ddf),
        error_term: den,
        differences: diffs(den, Some(ddf)),
        single: (0..t)
            .map(|i| {
                let (msr, msc, msrc) = single[i];
                let d = msr + (msc - msrc).max(0.0);
                let df = d * d / (msr * msr / (rf - 1.0));
                SingleCi::new(&names[i], mi[i], (d / (rf * cf)).sqrt(), Some(df))
            })
            .collect(),
    };
    let df2 = (tf - 1.0) * (cf - 1.0);
    let f = ms.t / ms.tc;
    let frrc = Inference {
        generalise: Generalise::FixedReadersRandomCases,
        f,
        df1: tf - 1.0,
        df2: Some(df2),
        p: dist::f_sf(f, tf - 1.0, df2),
        error_term: ms.tc,
        differences: diffs(ms.tc, Some(df2)),
        single: (0..t)
            .map(|i| {
                SingleCi::new(
                    &names[i],
                    mi[i],
                    (single[i].1 / (rf * cf)).sqrt(),
                    Some(cf - 1.0),
                )
            })
            .collect(),
    };
    let df2 = (tf - 1.0) * (rf - 1.0);
    let f = ms.t / ms.tr;
    let rrfc = Inference {
        generalise: Generalise::RandomReadersFixedCases,
        f,
        df1: tf - 1.0,
        df2: Some(df2),
        p: dist::f_sf(f, tf - 1.0, df2),
        error_term: ms.tr,
        differences: diffs(ms.tr, Some(df2)),
        single: (0..t)
            .map(|i| {
                SingleCi::new(
                    &names[i],
                    mi[i],
                    (single[i].0 / (rf * cf)).sqrt(),
                    Some(rf - 1.0),
                )
            })
            .collect(),
    };
    DbmAnalysis {
        ms,
        components,
        rrrc,
        frrc,
        rrfc,
    }
}
