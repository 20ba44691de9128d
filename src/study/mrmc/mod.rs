//! Multi-reader multi-case (MRMC) analysis of ROC areas: do readers' AUCs differ between
//! modalities, generalising to new readers and new cases?
//!
//! - [`or`]: Obuchowski-Rockette ANOVA of the reader x modality AUCs with jackknife or DeLong
//!   error covariances and Hillis' (2007) denominator degrees of freedom; random readers and
//!   random cases, fixed readers, fixed cases (as OR-DBM MRMC, RJafroc and MRMCaov report it).
//! - [`dbm`]: Dorfman-Berbaum-Metz: the three-way ANOVA of jackknife pseudovalues, with Hillis'
//!   df (identical tests to OR with jackknife covariance, Hillis et al. 2008).
//! - [`imrmc`]: Gallas' one-shot U-statistic variance of the reader-averaged AUC and its
//!   difference (the FDA iMRMC estimate; unbiased, no resampling).
//! - [`sizing`]: readers and cases needed for a given difference and power from pilot OR
//!   variance components (Hillis, Obuchowski & Berbaum 2011).
//! - [`lrc`]: the LABMRMC / OR-DBM MRMC text format, to analyse studies read elsewhere.
//!
//! Validation: tests/study_mrmc.rs checks every number OR-DBM MRMC 2.51 published for the
//! Van Dyke et al. data, and Roe-Metz simulations ([`crate::study::roemetz`]) check coverage
//! and type I error.

pub mod dbm;
pub mod dist;
pub mod imrmc;
pub mod lrc;
pub mod or;
pub mod sizing;

use super::roc::{Ratings, RatingsError, components};
use serde::Serialize;

/// How the OR error covariances of the AUCs are estimated.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum CovMethod {
    /// Jackknife over cases (OR-DBM MRMC's and RJafroc's default).
    #[default]
    Jackknife,
    /// DeLong's structural components (MRMCaov's default).
    DeLong,
}

impl CovMethod {
    /// "jackknife" / "DeLong".
    pub fn name(self) -> &'static str {
        match self {
            CovMethod::Jackknife => "jackknife",
            CovMethod::DeLong => "DeLong",
        }
    }
}

/// Which factors are random in an inference.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Generalise {
    /// Random readers and random cases: results apply to both populations.
    RandomReadersRandomCases,
    /// Fixed readers, random cases: these readers, the case population.
    FixedReadersRandomCases,
    /// Random readers, fixed cases: the reader population, these cases.
    RandomReadersFixedCases,
}

impl Generalise {
    /// Short name: RRRC, FRRC, RRFC.
    pub fn short(self) -> &'static str {
        match self {
            Generalise::RandomReadersRandomCases => "RRRC",
            Generalise::FixedReadersRandomCases => "FRRC",
            Generalise::RandomReadersFixedCases => "RRFC",
        }
    }
}

/// A difference in reader-averaged AUC between two modalities with its interval and test.
#[derive(Clone, Debug, Serialize)]
pub struct Difference {
    /// First modality.
    pub a: String,
    /// Second modality.
    pub b: String,
    /// mean AUC(a) - mean AUC(b).
    pub estimate: f64,
    /// Standard error.
    pub stderr: f64,
    /// Degrees of freedom of the t reference (None: normal).
    pub df: Option<f64>,
    /// 95% interval.
    pub ci95: (f64, f64),
    /// Two-sided p-value.
    pub p: f64,
}

impl Difference {
    /// The difference `estimate` with `stderr` on t(df) (None: normal).
    pub fn new(a: &str, b: &str, estimate: f64, stderr: f64, df: Option<f64>) -> Self {
        let q = match df {
            Some(d) => dist::t_quantile_two_sided(0.05, d),
            None => dist::Z975,
        };
        let z = estimate / stderr;
        let p = match df {
            Some(d) => crate::analysis::stats::t_two_sided_p(z, d),
            None => 2.0 * crate::analysis::stats::normal_sf(z.abs()),
        };
        Difference {
            a: a.into(),
            b: b.into(),
            estimate,
            stderr,
            df,
            ci95: (estimate - q * stderr, estimate + q * stderr),
            p,
        }
    }
}

/// A modality's reader-averaged AUC with its interval.
#[derive(Clone, Debug, Serialize)]
pub struct SingleCi {
    /// Modality.
    pub modality: String,
    /// Mean AUC over readers.
    pub auc: f64,
    /// Standard error.
    pub stderr: f64,
    /// Degrees of freedom (None: normal).
    pub df: Option<f64>,
    /// 95% interval.
    pub ci95: (f64, f64),
}

impl SingleCi {
    fn new(modality: &str, auc: f64, stderr: f64, df: Option<f64>) -> Self {
        let q = match df {
            Some(d) => dist::t_quantile_two_sided(0.05, d),
            None => dist::Z975,
        };
        SingleCi {
            modality: modality.into(),
            auc,
            stderr,
            df,
            ci95: (auc - q * stderr, auc + q * stderr),
        }
    }
}

/// One inference (RRRC, FRRC or RRFC): the global test of equal AUCs and the differences.
#[derive(Clone, Debug, Serialize)]
pub struct Inference {
    /// What generalises.
    pub generalise: Generalise,
    /// F statistic (FRRC with OR: chi-square / (t - 1)).
    pub f: f64,
    /// Numerator df.
    pub df1: f64,
    /// Denominator df (None: infinite, a chi-square test).
    pub df2: Option<f64>,
    /// p-value of the global test.
    pub p: f64,
    /// The F statistic's denominator (its "error term").
    pub error_term: f64,
    /// Pairwise differences.
    pub differences: Vec<Difference>,
    /// Each modality's AUC with its interval.
    pub single: Vec<SingleCi>,
}

/// Per-modality, per-reader AUCs, their jackknife leave-one-case-out values and the error
/// covariance matrix of the AUCs (indexed `m * readers + j`).
#[derive(Clone, Debug)]
pub struct AucCov {
    /// `auc[m][j]`.
    pub auc: Vec<Vec<f64>>,
    /// `jack[m][j][k]`: the AUC without case k (cases in the table's order).
    pub jack: Vec<Vec<Vec<f64>>>,
    /// Covariance of the AUCs, `(t r) x (t r)`.
    pub cov: Vec<Vec<f64>>,
}

/// AUCs and their error covariance by `method`. The jackknife values are always computed
/// (DBM's pseudovalues need them); they cost O(cases) per AUC through the components.
pub fn auc_cov(r: &Ratings, method: CovMethod) -> Result<AucCov, RatingsError> {
    r.check(1, 1)?;
    let (normal, abnormal) = r.split();
    let (t, nr, k) = (r.modalities.len(), r.readers.len(), r.cases.len());
    let (n0, n1) = (normal.len() as f64, abnormal.len() as f64);
    let mut auc = vec![vec![0.0; nr]; t];
    let mut jack = vec![vec![vec![0.0; k]; nr]; t];
    let mut comps = Vec::with_capacity(t * nr);
    for m in 0..t {
        for j in 0..nr {
            let s = &r.scores[m][j];
            let x: Vec<f64> = normal.iter().map(|c| s[*c]).collect();
            let y: Vec<f64> = abnormal.iter().map(|c| s[*c]).collect();
            let c = components(&x, &y);
            auc[m][j] = c.auc;
            // Without normal case i: the other normals' kernels; without abnormal case j likewise.
            for (i, &case) in normal.iter().enumerate() {
                jack[m][j][case] = (n0 * c.auc - c.v01[i]) / (n0 - 1.0);
            }
            for (i, &case) in abnormal.iter().enumerate() {
                jack[m][j][case] = (n1 * c.auc - c.v10[i]) / (n1 - 1.0);
            }
            comps.push(c);
        }
    }
    let n = t * nr;
    let mut cov = vec![vec![0.0; n]; n];
    match method {
        CovMethod::Jackknife => {
            let kf = k as f64;
            let flat: Vec<&Vec<f64>> = jack.iter().flat_map(|m| m.iter()).collect();
            let means: Vec<f64> = flat.iter().map(|v| v.iter().sum::<f64>() / kf).collect();
            for a in 0..n {
                for b in a..n {
                    let s: f64 = (0..k)
                        .map(|c| (flat[a][c] - means[a]) * (flat[b][c] - means[b]))
                        .sum();
                    let v = (kf - 1.0) / kf * s;
                    cov[a][b] = v;
                    cov[b][a] = v;
                }
            }
        }
        CovMethod::DeLong => {
            for a in 0..n {
                for b in a..n {
                    let (ca, cb) = (&comps[a], &comps[b]);
                    let s10: f64 = (0..abnormal.len())
                        .map(|i| (ca.v10[i] - ca.auc) * (cb.v10[i] - cb.auc))
                        .sum::<f64>()
                        / (n1 - 1.0);
                    let s01: f64 = (0..normal.len())
                        .map(|i| (ca.v01[i] - ca.auc) * (cb.v01[i] - cb.auc))
                        .sum::<f64>()
                        / (n0 - 1.0);
                    let v = s10 / n1 + s01 / n0;
                    cov[a][b] = v;
                    cov[b][a] = v;
                }
            }
        }
    }
    Ok(AucCov { auc, jack, cov })
}

/// The whole MRMC analysis of a rating table: OR (the chosen covariance), DBM, iMRMC.
#[derive(Clone, Debug, Serialize)]
pub struct MrmcReport {
    /// Normal cases.
    pub normal_cases: usize,
    /// Abnormal cases.
    pub abnormal_cases: usize,
    /// Readers.
    pub readers: Vec<String>,
    /// Modalities.
    pub modalities: Vec<String>,
    /// Obuchowski-Rockette.
    pub or: or::OrAnalysis,
    /// Dorfman-Berbaum-Metz.
    pub dbm: dbm::DbmAnalysis,
    /// Gallas' U-statistic variance.
    pub imrmc: imrmc::UStatAnalysis,
}

/// OR, DBM and iMRMC analyses of `r` (at least 2 modalities, 2 readers, 2 normal and 2
/// abnormal cases).
pub fn analyse(r: &Ratings, method: CovMethod) -> Result<MrmcReport, RatingsError> {
    r.check(2, 2)?;
    let ac = auc_cov(r, method)?;
    let or = or::analyse(r, &ac, method);
    let dbm = dbm::analyse(r, &ac);
    let imrmc = imrmc::analyse(r)?;
    let (normal, abnormal) = r.split();
    Ok(MrmcReport {
        normal_cases: normal.len(),
        abnormal_cases: abnormal.len(),
        readers: r.readers.clone(),
        modalities: r.modalities.clone(),
        or,
        dbm,
        imrmc,
    })
}

/// Format an optional df ("inf" for a normal/chi-square reference).
pub fn df_text(df: Option<f64>) -> String {
    df.map_or("inf".into(), |d| format!("{d:.2}"))
}

impl MrmcReport {
    /// The report as text tables (what `study summary` prints for a rating study).
    pub fn to_text(&self) -> String {
        use std::fmt::Write;
        let mut s = String::new();
        let _ = writeln!(
            s,
            "MRMC analysis: {} modalities, {} readers, {} cases ({} normal, {} abnormal)",
            self.modalities.len(),
            self.readers.len(),
            self.normal_cases + self.abnormal_cases,
            self.normal_cases,
            self.abnormal_cases
        );
        let _ = writeln!(s, "\nAUC (trapezoidal = Mann-Whitney) per reader:");
        let _ = write!(s, "  {:<16}", "reader");
        for m in &self.modalities {
            let _ = write!(s, " {m:>16}");
        }
        let _ = writeln!(s);
        for (j, rd) in self.readers.iter().enumerate() {
            let _ = write!(s, "  {rd:<16}");
            for m in 0..self.modalities.len() {
                let _ = write!(s, " {:>16.4}", self.or.auc[m][j]);
            }
            let _ = writeln!(s);
        }
        let _ = write!(s, "  {:<16}", "mean");
        for a in &self.or.auc_mean {
            let _ = write!(s, " {a:>16.4}");
        }
        let _ = writeln!(s);
        let _ = writeln!(
            s,
            "\nObuchowski-Rockette ({} covariance; Hillis df): Var(R) {:.3e}, Var(TR) {:.3e}, Var(error) {:.3e}, Cov1 {:.3e}, Cov2 {:.3e}, Cov3 {:.3e}",
            self.or.method.name(),
            self.or.var_r,
            self.or.var_tr,
            self.or.var_error,
            self.or.cov1,
            self.or.cov2,
            self.or.cov3
        );
        for inf in [&self.or.rrrc, &self.or.frrc, &self.or.rrfc] {
            write_inference(&mut s, "OR", inf);
        }
        let c = &self.dbm.components;
        let _ = writeln!(
            s,
            "\nDorfman-Berbaum-Metz (jackknife pseudovalues): Var(R) {:.3e}, Var(C) {:.3e}, Var(TR) {:.3e}, Var(TC) {:.3e}, Var(RC) {:.3e}, Var(TRC+error) {:.3e}",
            c.var_r, c.var_c, c.var_tr, c.var_tc, c.var_rc, c.var_trc_error
        );
        for inf in [&self.dbm.rrrc, &self.dbm.frrc, &self.dbm.rrfc] {
            write_inference(&mut s, "DBM", inf);
        }
        let _ = writeln!(
            s,
            "\niMRMC one-shot U-statistic variance (Gallas 2006; normal reference):"
        );
        for d in &self.imrmc.differences {
            let _ = writeln!(
                s,
                "  {} - {}: {:+.4}  RRRC se {:.4} 95% CI ({:+.4}, {:+.4}) p {:.4};  FRRC se {:.4} 95% CI ({:+.4}, {:+.4}) p {:.4}",
                d.rrrc.a,
                d.rrrc.b,
                d.rrrc.estimate,
                d.rrrc.stderr,
                d.rrrc.ci95.0,
                d.rrrc.ci95.1,
                d.rrrc.p,
                d.frrc.stderr,
                d.frrc.ci95.0,
                d.frrc.ci95.1,
                d.frrc.p
            );
        }
        s
    }
}

fn write_inference(s: &mut String, method: &str, inf: &Inference) {
    use std::fmt::Write;
    let _ = writeln!(
        s,
        "  {method} {}: F({:.0}, {}) = {:.3}, p = {:.4}",
        inf.generalise.short(),
        inf.df1,
        df_text(inf.df2),
        inf.f,
        inf.p
    );
    for d in &inf.differences {
        let _ = writeln!(
            s,
            "    {} - {}: {:+.4} (se {:.4}, df {}) 95% CI ({:+.4}, {:+.4}), p = {:.4}",
            d.a,
            d.b,
            d.estimate,
            d.stderr,
            df_text(d.df),
            d.ci95.0,
            d.ci95.1,
            d.p
        );
    }
}
