//! Dose: Poisson counts at an incident photon count I0 on the line integrals, and the low-dose
//! image of a normal-dose CT (forward-project, add noise, filtered back-projection).

use super::projector::{ParallelBeam, Sinogram};
use super::{DoseConfig, LdctError, SplitMix};
use crate::volume::Volume;

/// One Poisson(lambda) draw: Knuth's product of uniforms below 30, Hoermann's transformed
/// rejection with squeeze (PTRS, 1993; the method numpy uses) above.
pub fn poisson(lambda: f64, rng: &mut SplitMix) -> u64 {
    if lambda <= 0.0 {
        return 0;
    }
    if lambda < 30.0 {
        let limit = (-lambda).exp();
        let mut k = 0u64;
        let mut p = rng.uniform();
        while p > limit {
            k += 1;
            p *= rng.uniform();
        }
        return k;
    }
    let slam = lambda.sqrt();
    let loglam = lambda.ln();
    let b = 0.931 + 2.53 * slam;
    let a = -0.059 + 0.02483 * b;
    let inv_alpha = 1.1239 + 1.1328 / (b - 3.4);
    let vr = 0.9277 - 3.6224 / (b - 2.0);
    loop {
        let u = rng.uniform() - 0.5;
        let v = rng.uniform();
        let us = 0.5 - u.abs();
        let k = ((2.0 * a / us + b) * u + lambda + 0.43).floor();
        if us >= 0.07 && v <= vr {
            return k as u64;
        }
        if k < 0.0 || (us < 0.013 && v > us) {
            continue;
        }
        if v.ln() + inv_alpha.ln() - (a / (us * us) + b).ln()
            <= -lambda + k * loglam - ln_factorial(k as u64)
        {
            return k as u64;
        }
    }
}

/// ln(k!): exact sum below 16, Stirling's series (error < 1e-10) above.
fn ln_factorial(k: u64) -> f64 {
    if k < 16 {
        return (2..=k).map(|i| (i as f64).ln()).sum();
    }
    let x = k as f64 + 1.0;
    (x - 0.5) * x.ln() - x + 0.5 * (2.0 * std::f64::consts::PI).ln() + 1.0 / (12.0 * x)
        - 1.0 / (360.0 * x.powi(3))
        + 1.0 / (1260.0 * x.powi(5))
}

/// The sinogram measured with `i0` incident photons per ray: counts N ~ Poisson(i0 exp(-p)),
/// p' = ln(i0 / max(N, 1)). Var(p') is about exp(p) / i0: noise scales as 1 / i0.
pub fn noisy_sinogram(sino: &Sinogram, i0: f64, rng: &mut SplitMix) -> Sinogram {
    let data = sino
        .data
        .iter()
        .map(|p| {
            let n = poisson(i0 * (-(*p as f64)).exp(), rng).max(1);
            (i0 / n as f64).ln() as f32
        })
        .collect();
    Sinogram {
        scanner: sino.scanner,
        data,
    }
}

/// HU -> attenuation per pixel (mu_water (1 + HU / 1000) x pixel size), air (and below) 0.
pub fn hu_to_attenuation(hu: f32, dose: &DoseConfig, pixel_mm: f64) -> f32 {
    ((dose.mu_water_per_mm * (1.0 + hu as f64 / 1000.0)).max(0.0) * pixel_mm) as f32
}

/// Attenuation per pixel -> HU.
pub fn attenuation_to_hu(a: f32, dose: &DoseConfig, pixel_mm: f64) -> f32 {
    ((a as f64 / (pixel_mm * dose.mu_water_per_mm) - 1.0) * 1000.0) as f32
}

/// A square slice in HU imaged through the scanner: forward projection, Poisson noise at
/// `i0` photons per ray (`None`: noiseless), FBP, back to HU.
pub fn image_slice(
    hu: &[f32],
    n: usize,
    pixel_mm: f64,
    dose: &DoseConfig,
    i0: Option<f64>,
    rng: &mut SplitMix,
) -> Vec<f32> {
    let scanner = ParallelBeam::for_image(n);
    let a: Vec<f32> = hu
        .iter()
        .map(|v| hu_to_attenuation(*v, dose, pixel_mm))
        .collect();
    let sino = scanner.forward(&a);
    let sino = match i0 {
        Some(i0) => noisy_sinogram(&sino, i0, rng),
        None => sino,
    };
    scanner
        .fbp(&sino)
        .into_iter()
        .map(|v| attenuation_to_hu(v, dose, pixel_mm))
        .collect()
}

/// `ct` (HU) imaged slice by slice at `i0` incident photons per ray (`None`: noiseless), each
/// slice padded (with air) to a square; the same grid and metadata come back, the description
/// naming the photon count. Slices must be square-ish and at most 512 pixels on a side.
pub fn image_volume(
    ct: &Volume,
    dose: &DoseConfig,
    i0: Option<f64>,
    seed: u64,
) -> Result<Volume, LdctError> {
    let [nx, ny, nz] = ct.geometry.dims;
    let n = nx.max(ny);
    if n == 0 || nz == 0 {
        return Err(LdctError::Input(format!(
            "{}: the volume is empty",
            ct.meta.description
        )));
    }
    if n > 512 {
        return Err(LdctError::Input(format!(
            "{}: slices of {nx} x {ny} exceed the 512-pixel simulation limit; resample first",
            ct.meta.description
        )));
    }
    let (sx, sy) = (ct.geometry.spacing[0], ct.geometry.spacing[1]);
    if (sx - sy).abs() > 1e-3 * sx.max(sy) {
        return Err(LdctError::Input(format!(
            "{}: pixels are {sx} x {sy} mm; the projector needs square pixels",
            ct.meta.description
        )));
    }
    let (ox, oy) = ((n - nx) / 2, (n - ny) / 2);
    let mut out = ct.data.clone();
    for z in 0..nz {
        let mut sq = vec![-1000f32; n * n];
        for y in 0..ny {
            for x in 0..nx {
                sq[(x + ox) + n * (y + oy)] = ct.data[x + nx * (y + ny * z)];
            }
        }
        let mut rng = SplitMix::new(seed ^ (z as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let img = image_slice(&sq, n, sx, dose, i0, &mut rng);
        for y in 0..ny {
            for x in 0..nx {
                out[x + nx * (y + ny * z)] = img[(x + ox) + n * (y + oy)];
            }
        }
    }
    let mut meta = ct.meta.clone();
    meta.description = match i0 {
        Some(i0) => format!("{} (simulated, I0 {i0:.0})", ct.meta.description),
        None => format!("{} (noiseless FBP)", ct.meta.description),
    };
    meta.series_uid = format!("{}.ld{}", ct.meta.series_uid, i0.unwrap_or(0.0) as u64);
    meta.dicom = None;
    Ok(Volume::new(ct.geometry.clone(), out, meta))
}

/// The low-dose image of a normal-dose CT the user loads: `ct` imaged at
/// `dose.low_dose_i0()` (its own noise is kept: the simulation adds the difference in dose
/// only approximately, as projection-domain simulations from clinical images do).
pub fn low_dose_of(ct: &Volume, dose: &DoseConfig, seed: u64) -> Result<Volume, LdctError> {
    image_volume(ct, dose, Some(dose.low_dose_i0()), seed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn moments(lambda: f64, n: usize) -> (f64, f64) {
        let mut rng = SplitMix::new(9);
        let v: Vec<f64> = (0..n).map(|_| poisson(lambda, &mut rng) as f64).collect();
        let m = v.iter().sum::<f64>() / n as f64;
        let var = v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (n - 1) as f64;
        (m, var)
    }

    #[test]
    fn poisson_mean_and_variance_equal_lambda() {
        for lambda in [3.0, 25.0, 400.0, 1.0e5] {
            let (m, var) = moments(lambda, 40_000);
            let se = (lambda / 40_000.0).sqrt();
            assert!((m - lambda).abs() < 5.0 * se, "lambda {lambda}: mean {m}");
            assert!(
                (var / lambda - 1.0).abs() < 0.05,
                "lambda {lambda}: variance {var}"
            );
        }
    }

    #[test]
    fn ln_factorial_is_continuous_at_the_switch() {
        let exact: f64 = (2..=20u64).map(|i| (i as f64).ln()).sum();
        assert!((ln_factorial(20) - exact).abs() < 1e-9);
        assert!(
            (ln_factorial(15) - (2..=15u64).map(|i| (i as f64).ln()).sum::<f64>()).abs() < 1e-12
        );
    }

    #[test]
    fn hu_round_trips_through_attenuation() {
        let d = DoseConfig::default();
        for hu in [-500.0f32, 0.0, 40.0, 700.0] {
            let a = hu_to_attenuation(hu, &d, 2.0);
            assert!((attenuation_to_hu(a, &d, 2.0) - hu).abs() < 1e-2);
        }
        assert_eq!(hu_to_attenuation(-1200.0, &d, 2.0), 0.0);
    }
}
