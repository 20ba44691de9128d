//! The distributions MRMC inference needs: F (central and noncentral), t and chi-square tails
//! and quantiles, on top of the regularised incomplete beta function of `analysis::stats`.

use crate::analysis::stats::{incomplete_beta, ln_gamma, normal_sf, t_two_sided_p};

/// The standard normal 97.5% quantile (two-sided 95% intervals).
pub const Z975: f64 = 1.959_963_984_540_054;

/// P(F <= f) for F ~ F(d1, d2); `d2` may be infinite (then d1 F ~ chi-square(d1)).
pub fn f_cdf(f: f64, d1: f64, d2: f64) -> f64 {
    if f.is_nan() || d1.is_nan() || d2.is_nan() || d1 <= 0.0 || d2 <= 0.0 {
        return f64::NAN;
    }
    if f <= 0.0 {
        return 0.0;
    }
    if d2.is_infinite() {
        return chi2_cdf(d1 * f, d1);
    }
    incomplete_beta(d1 / 2.0, d2 / 2.0, d1 * f / (d1 * f + d2))
}

/// P(F >= f) for F ~ F(d1, d2).
pub fn f_sf(f: f64, d1: f64, d2: f64) -> f64 {
    if (d1 - 1.0).abs() < 1e-12 && f >= 0.0 && d2.is_finite() {
        // F(1, d2) = t(d2)^2: the t tail keeps small p-values accurate.
        return t_two_sided_p(f.sqrt(), d2);
    }
    1.0 - f_cdf(f, d1, d2)
}

/// P(X <= x) for X ~ chi-square(k), by the regularised lower incomplete gamma P(k/2, x/2).
pub fn chi2_cdf(x: f64, k: f64) -> f64 {
    if x <= 0.0 {
        return 0.0;
    }
    if (k - 1.0).abs() < 1e-12 {
        return 1.0 - 2.0 * normal_sf(x.sqrt());
    }
    lower_gamma_p(k / 2.0, x / 2.0)
}

/// Regularised lower incomplete gamma P(a, x) (series below a + 1, continued fraction above).
fn lower_gamma_p(a: f64, x: f64) -> f64 {
    if x < a + 1.0 {
        let (mut sum, mut term, mut n) = (1.0 / a, 1.0 / a, a);
        for _ in 0..1000 {
            n += 1.0;
            term *= x / n;
            sum += term;
            if term.abs() < sum.abs() * 1e-16 {
                break;
            }
        }
        (sum.ln() - x + a * x.ln() - ln_gamma(a)).exp()
    } else {
        let tiny = 1e-300;
        let mut b = x + 1.0 - a;
        let mut c = 1.0 / tiny;
        let mut d = 1.0 / b;
        let mut h = d;
        for i in 1..1000 {
            let an = -(i as f64) * (i as f64 - a);
            b += 2.0;
            d = an * d + b;
            if d.abs() < tiny {
                d = tiny;
            }
            c = b + an / c;
            if c.abs() < tiny {
                c = tiny;
            }
            d = 1.0 / d;
            let del = d * c;
            h *= del;
            if (del - 1.0).abs() < 1e-16 {
                break;
            }
        }
        1.0 - (-x + a * x.ln() - ln_gamma(a)).exp() * h
    }
}

/// The two-sided (1 - alpha) quantile of t(df): t with P(|T| >= t) = alpha (df infinite: z).
pub fn t_quantile_two_sided(alpha: f64, df: f64) -> f64 {
    if df.is_infinite() {
        return z_quantile_two_sided(alpha);
    }
    if df.is_nan() || df <= 0.0 {
        return f64::NAN;
    }
    bisect(|t| t_two_sided_p(t, df) - alpha)
}

/// The two-sided (1 - alpha) standard normal quantile.
pub fn z_quantile_two_sided(alpha: f64) -> f64 {
    if (alpha - 0.05).abs() < 1e-15 {
        return Z975;
    }
    bisect(|z| 2.0 * normal_sf(z) - alpha)
}

/// The (1 - alpha) quantile of F(d1, d2).
pub fn f_quantile(alpha: f64, d1: f64, d2: f64) -> f64 {
    bisect(|f| f_sf(f, d1, d2) - alpha)
}

/// The root of a decreasing `g` on (0, inf).
fn bisect(g: impl Fn(f64) -> f64) -> f64 {
    let (mut lo, mut hi) = (0.0f64, 1.0f64);
    while g(hi) > 0.0 && hi < 1e12 {
        lo = hi;
        hi *= 2.0;
    }
    for _ in 0..200 {
        let mid = 0.5 * (lo + hi);
        if g(mid) > 0.0 {
            lo = mid;
        } else {
            hi = mid;
        }
        if hi - lo < 1e-13 * hi.max(1e-300) {
            break;
        }
    }
    0.5 * (lo + hi)
}

/// P(F' >= f) for F' ~ noncentral F(d1, d2, lambda): the Poisson(lambda/2) mixture of
/// incomplete betas I_x(d1/2 + j, d2/2), summed from the mode outward until the weights vanish.
pub fn noncentral_f_sf(f: f64, d1: f64, d2: f64, lambda: f64) -> f64 {
    if lambda <= 0.0 {
        return f_sf(f, d1, d2);
    }
    if f <= 0.0 {
        return 1.0;
    }
    let half = lambda / 2.0;
    let weight = |j: f64| (-half + j * half.ln() - ln_gamma(j + 1.0)).exp();
    let cdf_j = |j: f64| {
        if d2.is_infinite() {
            chi2_cdf(d1 * f, d1 + 2.0 * j)
        } else {
            incomplete_beta(d1 / 2.0 + j, d2 / 2.0, d1 * f / (d1 * f + d2))
        }
    };
    let mode = half.floor();
    let mut cdf = 0.0;
    let mut j = mode;
    loop {
        let w = weight(j);
        cdf += w * cdf_j(j);
        if (w < 1e-15 && j > mode) || j > mode + 10_000.0 {
            break;
        }
        j += 1.0;
    }
    let mut j = mode - 1.0;
    while j >= 0.0 {
        let w = weight(j);
        cdf += w * cdf_j(j);
        if w < 1e-15 {
            break;
        }
        j -= 1.0;
    }
    (1.0 - cdf).clamp(0.0, 1.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_quantiles_and_tails() {
        // scipy.stats: t.ppf(0.975, 4), f.sf(8.70, 1, 4), f.ppf(0.95, 1, 10), chi2 tails.
        assert!((t_quantile_two_sided(0.05, 4.0) - 2.776_445).abs() < 1e-5);
        assert!((f_sf(8.70, 1.0, 4.0) - 0.041_987_05).abs() < 1e-7);
        assert!((f_quantile(0.05, 1.0, 10.0) - 4.964_603).abs() < 1e-5);
        // chi2.sf(5.47595, 1) = 0.0192799.
        assert!((1.0 - chi2_cdf(5.47595, 1.0) - 0.019_28).abs() < 1e-4);
        // chi2.cdf(3, 4) = 0.4421746.
        assert!((chi2_cdf(3.0, 4.0) - 0.442_174_6).abs() < 1e-6);
        // scipy.stats.ncf.sf(4.964603, 1, 10, 5) = 0.523875.
        assert!((noncentral_f_sf(4.964_603, 1.0, 10.0, 5.0) - 0.523_875).abs() < 1e-5);
        assert!((noncentral_f_sf(2.0, 3.0, 20.0, 0.0) - f_sf(2.0, 3.0, 20.0)).abs() < 1e-12);
    }
}
