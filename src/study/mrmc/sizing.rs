//! Study sizing from a pilot study's OR variance components (Hillis, Obuchowski & Berbaum
//! 2011, "Power estimation for multireader ROC methods", Acad Radiol 18:129; as OR-DBM MRMC,
//! iMRMC's sizing and MRMCaov do): with J readers and K* cases the case-driven terms scale by
//! K/K*, and for two modalities the RRRC test's F is noncentral with
//! lambda = (J d^2 / 2) / [s2_TR + Var* - Cov1* + (J - 1) max(Cov2* - Cov3*, 0)] on
//! (1, ddf) df, ddf = [denominator]^2 / {[s2_TR + Var* - Cov1* - Cov2* + Cov3*]^2 / (J - 1)}.
//! Power = P(F' > F_{1-alpha}(1, ddf)). Fixed readers: the same with s2_TR = 0 and ddf = inf.

use super::dist;
use super::or::OrAnalysis;
use serde::{Deserialize, Serialize};

/// Pilot OR variance components and the number of cases they were estimated on.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Pilot {
    /// Modality x reader variance (negative estimates are taken as 0).
    pub var_tr: f64,
    /// Error variance.
    pub var_error: f64,
    /// Same reader, other modality.
    pub cov1: f64,
    /// Same modality, other reader.
    pub cov2: f64,
    /// Other reader, other modality.
    pub cov3: f64,
    /// Cases in the pilot.
    pub cases: usize,
}

impl From<&OrAnalysis> for Pilot {
    fn from(o: &OrAnalysis) -> Self {
        Pilot {
            var_tr: o.var_tr,
            var_error: o.var_error,
            cov1: o.cov1,
            cov2: o.cov2,
            cov3: o.cov3,
            cases: o.cases,
        }
    }
}

/// Predicted power of a study design.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct Power {
    /// Readers.
    pub readers: usize,
    /// Cases.
    pub cases: usize,
    /// Power of the RRRC test (Hillis df).
    pub rrrc: f64,
    /// Its denominator df.
    pub ddf: f64,
    /// Its noncentrality.
    pub lambda: f64,
    /// Power of the FRRC (fixed readers) test.
    pub frrc: f64,
}

/// Predicted power for a true AUC difference `delta` with `readers` readers and `cases` cases,
/// two-sided test at `alpha`.
pub fn power(p: &Pilot, delta: f64, readers: usize, cases: usize, alpha: f64) -> Power {
    let j = readers as f64;
    let scale = p.cases as f64 / cases.max(1) as f64;
    let (v, c1, c2, c3) = (
        p.var_error * scale,
        p.cov1 * scale,
        p.cov2 * scale,
        p.cov3 * scale,
    );
    let tr = p.var_tr.max(0.0);
    let den = tr + v - c1 + (j - 1.0) * (c2 - c3).max(0.0);
    let ms_tr = (tr + v - c1 - c2 + c3).max(1e-300);
    let ddf = den * den / (ms_tr * ms_tr / (j - 1.0));
    let lambda = j * delta * delta / 2.0 / den;
    let fcrit = dist::f_quantile(alpha, 1.0, ddf);
    let rrrc = dist::noncentral_f_sf(fcrit, 1.0, ddf, lambda);
    let den_f = v - c1 + (j - 1.0) * (c2 - c3).max(0.0);
    let lambda_f = j * delta * delta / 2.0 / den_f;
    let crit = dist::z_quantile_two_sided(alpha).powi(2);
    let frrc = dist::noncentral_f_sf(crit, 1.0, f64::INFINITY, lambda_f);
    Power {
        readers,
        cases,
        rrrc,
        ddf,
        lambda,
        frrc,
    }
}

/// For each reader count in `readers`, the fewest cases (up to `max_cases`) giving at least
/// `target` RRRC power; None where even `max_cases` falls short.
pub fn cases_needed(
    p: &Pilot,
    delta: f64,
    target: f64,
    alpha: f64,
    readers: impl IntoIterator<Item = usize>,
    max_cases: usize,
) -> Vec<(usize, Option<Power>)> {
    readers
        .into_iter()
        .map(|j| {
            if j < 2 || power(p, delta, j, max_cases, alpha).rrrc < target {
                return (j, None);
            }
            // Power rises with cases: bisect on the smallest K.
            let (mut lo, mut hi) = (1usize, max_cases);
            while lo < hi {
                let mid = (lo + hi) / 2;
                if power(p, delta, j, mid, alpha).rrrc >= target {
                    hi = mid;
                } else {
                    lo = mid + 1;
                }
            }
            (j, Some(power(p, delta, j, lo, alpha)))
        })
        .collect()
}
