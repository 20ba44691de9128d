//! The Roe-Metz model of MRMC rating data (Roe & Metz 1997, Acad Radiol 4:298), to check the
//! MRMC analyses against known truth: the latent rating of case k by reader j in modality i is
//!
//!   X = d mu_i + R_j(d) + TR_ij(d) + C_k + TC_ik + RC_jk + TRC_ijk,
//!
//! d = 1 for abnormal cases, each term an independent zero-mean Gaussian. Reader effects are
//! drawn separately for the two truth classes (as in Hillis' 2012 extension), so readers'
//! AUCs vary. A reader's true AUC is Phi((mu_i + dR + dTR) / sqrt(2 s2_case)); averaged over
//! readers it is Phi(mu_i / sqrt(2 s2_case + 2 (s2_R + s2_TR))), the target of inference for
//! random readers.

use super::roc::Ratings;
use crate::analysis::stats::normal_sf;
use crate::train::data::Rng;

/// A Roe-Metz simulation design.
#[derive(Clone, Debug, PartialEq)]
pub struct RoeMetz {
    /// Separation of the abnormal cases' mean, per modality.
    pub mu: Vec<f64>,
    /// Reader variance (per truth class).
    pub var_r: f64,
    /// Modality x reader variance (per truth class).
    pub var_tr: f64,
    /// Case variance.
    pub var_c: f64,
    /// Modality x case variance.
    pub var_tc: f64,
    /// Reader x case variance.
    pub var_rc: f64,
    /// Modality x reader x case variance (with the within-reader error).
    pub var_trc: f64,
    /// Readers.
    pub readers: usize,
    /// Normal cases.
    pub normal: usize,
    /// Abnormal cases.
    pub abnormal: usize,
    /// Rating scale thresholds: None keeps the continuous latent value; Some(t) reports the
    /// number of thresholds below it plus 1 (a 1..=t.len()+1 confidence scale).
    pub thresholds: Option<Vec<f64>>,
}

impl RoeMetz {
    /// A design with the variance structure used by the validation tests: case-dominated, with
    /// reader variability (s2_R = s2_TR = 0.011, s2_C = s2_TC = 0.3, s2_RC = s2_TRC = 0.2).
    pub fn standard(mu: Vec<f64>, readers: usize, normal: usize, abnormal: usize) -> Self {
        RoeMetz {
            mu,
            var_r: 0.011,
            var_tr: 0.011,
            var_c: 0.3,
            var_tc: 0.3,
            var_rc: 0.2,
            var_trc: 0.2,
            readers,
            normal,
            abnormal,
            thresholds: None,
        }
    }

    /// The population (reader-averaged) AUC of modality `m`.
    pub fn true_auc(&self, m: usize) -> f64 {
        let case = self.var_c + self.var_tc + self.var_rc + self.var_trc;
        let s = (2.0 * case + 2.0 * (self.var_r + self.var_tr)).sqrt();
        1.0 - normal_sf(self.mu[m] / s)
    }

    /// One simulated study.
    pub fn sample(&self, rng: &mut Rng) -> Ratings {
        let t = self.mu.len();
        let k = self.normal + self.abnormal;
        let mut g = Gauss::default();
        let mut n = |v: f64, rng: &mut Rng| g.next(rng) * v.sqrt();
        // Reader effects per truth class: r[d][j], tr[d][i][j].
        let r: Vec<Vec<f64>> = (0..2)
            .map(|_| (0..self.readers).map(|_| n(self.var_r, rng)).collect())
            .collect();
        let tr: Vec<Vec<Vec<f64>>> = (0..2)
            .map(|_| {
                (0..t)
                    .map(|_| (0..self.readers).map(|_| n(self.var_tr, rng)).collect())
                    .collect()
            })
            .collect();
        let c: Vec<f64> = (0..k).map(|_| n(self.var_c, rng)).collect();
        let tc: Vec<Vec<f64>> = (0..t)
            .map(|_| (0..k).map(|_| n(self.var_tc, rng)).collect())
            .collect();
        let rc: Vec<Vec<f64>> = (0..self.readers)
            .map(|_| (0..k).map(|_| n(self.var_rc, rng)).collect())
            .collect();
        let abnormal: Vec<bool> = (0..k).map(|i| i >= self.normal).collect();
        let mut scores = vec![vec![vec![0.0; k]; self.readers]; t];
        for (i, per) in scores.iter_mut().enumerate() {
            for (j, row) in per.iter_mut().enumerate() {
                for (kk, v) in row.iter_mut().enumerate() {
                    let d = usize::from(abnormal[kk]);
                    let x = d as f64 * self.mu[i]
                        + r[d][j]
                        + tr[d][i][j]
                        + c[kk]
                        + tc[i][kk]
                        + rc[j][kk]
                        + n(self.var_trc, rng);
                    *v = match &self.thresholds {
                        Some(th) => 1.0 + th.iter().filter(|t| x > **t).count() as f64,
                        None => x,
                    };
                }
            }
        }
        Ratings {
            modalities: (0..t).map(|i| format!("modality {}", i + 1)).collect(),
            readers: (0..self.readers)
                .map(|j| format!("reader {}", j + 1))
                .collect(),
            cases: (0..k).map(|i| format!("case {i}")).collect(),
            abnormal,
            scores,
        }
    }
}

/// Standard normal draws (Box-Muller, both values used).
#[derive(Default)]
struct Gauss {
    spare: Option<f64>,
}

impl Gauss {
    fn next(&mut self, rng: &mut Rng) -> f64 {
        if let Some(s) = self.spare.take() {
            return s;
        }
        let u = |rng: &mut Rng| ((rng.next_u64() >> 11) as f64 + 0.5) / (1u64 << 53) as f64;
        let (u1, u2) = (u(rng), u(rng));
        let r = (-2.0 * u1.ln()).sqrt();
        let th = 2.0 * std::f64::consts::PI * u2;
        self.spare = Some(r * th.sin());
        r * th.cos()
    }
}
