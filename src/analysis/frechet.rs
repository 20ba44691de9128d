//! Fréchet distance between two sets of feature vectors, each fitted by a Gaussian: the
//! statistic FID computes on Inception features (Heusel et al. 2017), here on whatever features
//! the caller gives (SynthScope uses its MR/CT classifier's pooled last-stage features, so the
//! figure is "FID-style", not comparable with published FIDs).
//!
//! d² = |μa − μb|² + tr(Σa) + tr(Σb) − 2 tr((Σa^½ Σb Σa^½)^½), covariances with n − 1 (as
//! numpy's `cov`). The matrix square roots come from symmetric eigendecompositions (Jacobi),
//! so the result is real and non-negative even where the covariances are singular (fewer
//! samples than features).

use super::AnalysisError;

/// Mean and covariance (n − 1) of `rows` (each of the same length).
fn moments(rows: &[Vec<f64>]) -> (Vec<f64>, Vec<f64>) {
    let d = rows[0].len();
    let n = rows.len() as f64;
    let mut mean = vec![0.0; d];
    for r in rows {
        for (m, v) in mean.iter_mut().zip(r) {
            *m += v / n;
        }
    }
    let mut cov = vec![0.0; d * d];
    for r in rows {
        for i in 0..d {
            let di = r[i] - mean[i];
            for j in i..d {
                cov[i * d + j] += di * (r[j] - mean[j]);
            }
        }
    }
    let denom = (n - 1.0).max(1.0);
    for i in 0..d {
        for j in i..d {
            let v = cov[i * d + j] / denom;
            cov[i * d + j] = v;
            cov[j * d + i] = v;
        }
    }
    (mean, cov)
}

/// Eigenvalues and eigenvectors (columns of the returned row-major matrix) of the symmetric
/// d x d matrix `a`, by cyclic Jacobi rotations.
fn sym_eig(mut a: Vec<f64>, d: usize) -> (Vec<f64>, Vec<f64>) {
    let mut v = vec![0.0; d * d];
    for i in 0..d {
        v[i * d + i] = 1.0;
    }
    let scale: f64 = a.iter().map(|x| x * x).sum::<f64>().sqrt().max(1e-300);
    for _sweep in 0..100 {
        let off: f64 = (0..d)
            .flat_map(|i| (0..d).filter(move |&j| j != i).map(move |j| (i, j)))
            .map(|(i, j)| a[i * d + j] * a[i * d + j])
            .sum::<f64>()
            .sqrt();
        if off <= 1e-15 * scale {
            break;
        }
        for p in 0..d {
            for q in p + 1..d {
                let apq = a[p * d + q];
                if apq.abs() <= 1e-300 {
                    continue;
                }
                let theta = (a[q * d + q] - a[p * d + p]) / (2.0 * apq);
                let t = theta.signum() / (theta.abs() + (theta * theta + 1.0).sqrt());
                let t = if theta == 0.0 { 1.0 } else { t };
                let c = 1.0 / (t * t + 1.0).sqrt();
                let s = t * c;
                for k in 0..d {
                    let (akp, akq) = (a[k * d + p], a[k * d + q]);
                    a[k * d + p] = c * akp - s * akq;
                    a[k * d + q] = s * akp + c * akq;
                }
                for k in 0..d {
                    let (apk, aqk) = (a[p * d + k], a[q * d + k]);
                    a[p * d + k] = c * apk - s * aqk;
                    a[q * d + k] = s * apk + c * aqk;
                }
                for k in 0..d {
                    let (vkp, vkq) = (v[k * d + p], v[k * d + q]);
                    v[k * d + p] = c * vkp - s * vkq;
                    v[k * d + q] = s * vkp + c * vkq;
                }
            }
        }
    }
    ((0..d).map(|i| a[i * d + i]).collect(), v)
}

/// The symmetric square root of a symmetric positive semi-definite matrix (negative
/// eigenvalues from rounding clipped to 0).
fn sqrt_psd(a: &[f64], d: usize) -> Vec<f64> {
    let (w, v) = sym_eig(a.to_vec(), d);
    let mut out = vec![0.0; d * d];
    for (k, wk) in w.iter().enumerate() {
        let s = wk.max(0.0).sqrt();
        for i in 0..d {
            let vik = v[i * d + k] * s;
            for j in 0..d {
                out[i * d + j] += vik * v[j * d + k];
            }
        }
    }
    out
}

fn matmul(a: &[f64], b: &[f64], d: usize) -> Vec<f64> {
    let mut out = vec![0.0; d * d];
    for i in 0..d {
        for k in 0..d {
            let aik = a[i * d + k];
            for j in 0..d {
                out[i * d + j] += aik * b[k * d + j];
            }
        }
    }
    out
}

/// The Fréchet distance (squared, as FID reports it) between Gaussians fitted to `a` and `b`.
pub fn frechet_distance(a: &[Vec<f64>], b: &[Vec<f64>]) -> Result<f64, AnalysisError> {
    if a.len() < 2 || b.len() < 2 {
        return Err(AnalysisError::Input(format!(
            "a Fréchet distance needs at least 2 feature vectors per set (got {} and {})",
            a.len(),
            b.len()
        )));
    }
    let d = a[0].len();
    if d == 0 || a.iter().chain(b).any(|r| r.len() != d) {
        return Err(AnalysisError::Input(
            "feature vectors of different lengths".into(),
        ));
    }
    if a.iter().chain(b).flatten().any(|v| !v.is_finite()) {
        return Err(AnalysisError::Input("a feature is not finite".into()));
    }
    let (ma, ca) = moments(a);
    let (mb, cb) = moments(b);
    let mean_term: f64 = ma.iter().zip(&mb).map(|(x, y)| (x - y) * (x - y)).sum();
    let trace = |m: &[f64]| (0..d).map(|i| m[i * d + i]).sum::<f64>();
    let ra = sqrt_psd(&ca, d);
    let mut m = matmul(&matmul(&ra, &cb, d), &ra, d);
    // Symmetrise what rounding left asymmetric.
    for i in 0..d {
        for j in i + 1..d {
            let s = 0.5 * (m[i * d + j] + m[j * d + i]);
            m[i * d + j] = s;
            m[j * d + i] = s;
        }
    }
    let (w, _) = sym_eig(m, d);
    let cross: f64 = w.iter().map(|x| x.max(0.0).sqrt()).sum();
    Ok((mean_term + trace(&ca) + trace(&cb) - 2.0 * cross).max(0.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rng(seed: u64) -> impl FnMut() -> f64 {
        let mut s = seed;
        move || {
            // Box-Muller on a 64-bit LCG: a standard normal sample.
            let mut u = || {
                s = s
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                ((s >> 11) as f64 + 0.5) / (1u64 << 53) as f64
            };
            let (u1, u2) = (u(), u());
            (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
        }
    }

    #[test]
    fn one_dimension_is_the_difference_of_means_and_of_deviations() {
        let a: Vec<Vec<f64>> = [1.0, 2.0, 3.0, 4.0].iter().map(|v| vec![*v]).collect();
        let b: Vec<Vec<f64>> = [2.0, 6.0, 10.0].iter().map(|v| vec![*v]).collect();
        // means 2.5 and 6, sample deviations sqrt(5/3) and 4.
        let want = (2.5f64 - 6.0).powi(2) + ((5.0f64 / 3.0).sqrt() - 4.0).powi(2);
        let got = frechet_distance(&a, &b).unwrap();
        assert!((got - want).abs() < 1e-12, "{got} vs {want}");
    }

    #[test]
    fn known_answer_with_correlated_features_and_invariances() {
        // Reference: scipy.linalg.sqrtm on the same sample covariances (numpy.cov), printed
        // with 12 digits: 2.257087447902 (trace of sqrtm(Σa Σb), as pytorch-fid computes it).
        let a = vec![
            vec![0.0, 0.0, 1.0],
            vec![1.0, 2.0, 0.0],
            vec![2.0, 1.0, 1.0],
            vec![3.0, 5.0, 2.0],
            vec![1.0, 0.5, 3.0],
        ];
        let b = vec![
            vec![2.0, 1.0, 0.0],
            vec![0.0, 3.0, 1.0],
            vec![4.0, 4.0, 4.0],
            vec![1.0, 1.0, 2.5],
            vec![3.0, 0.0, 1.0],
            vec![2.0, 2.0, 2.0],
        ];
        let got = frechet_distance(&a, &b).unwrap();
        assert!((got - 2.257087447902).abs() < 1e-9, "{got}");
        assert!(frechet_distance(&a, &a).unwrap().abs() < 1e-9);
        // The same rotation of both sets leaves the distance as it is.
        let (c, s) = (0.6, 0.8);
        let rot = |r: &Vec<f64>| vec![c * r[0] - s * r[1], s * r[0] + c * r[1], r[2]];
        let (ar, br): (Vec<_>, Vec<_>) = (a.iter().map(rot).collect(), b.iter().map(rot).collect());
        assert!((frechet_distance(&ar, &br).unwrap() - got).abs() < 1e-9);
    }

    #[test]
    fn samples_of_one_distribution_are_closer_than_of_two() {
        let mut n = rng(7);
        let set = |n: &mut dyn FnMut() -> f64, shift: f64, k: usize| -> Vec<Vec<f64>> {
            (0..k)
                .map(|_| (0..8).map(|_| n() + shift).collect())
                .collect()
        };
        let a = set(&mut n, 0.0, 400);
        let b = set(&mut n, 0.0, 400);
        let c = set(&mut n, 0.5, 400);
        let same = frechet_distance(&a, &b).unwrap();
        let shifted = frechet_distance(&a, &c).unwrap();
        // Shifted by 0.5 in 8 dimensions: about 8 x 0.25 = 2 more.
        assert!(same < 0.3, "{same}");
        assert!((shifted - same - 2.0).abs() < 0.5, "{shifted} vs {same}");
        // Fewer samples than features (singular covariances) still give a finite distance.
        assert!(frechet_distance(&a[..3], &c[..4]).unwrap().is_finite());
        assert!(frechet_distance(&a[..1], &c).is_err());
    }
}
