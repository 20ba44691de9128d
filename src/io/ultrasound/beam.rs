//! One B-mode frame in beam space: scan lines x depth samples, simulated as complex baseband
//! echoes of random scatterers (Rayleigh envelope) plus coherent specular reflections, convolved
//! with a separable Gaussian point-spread function, attenuated with depth, and then time-gain
//! compensated.

use super::{Medium, Probe, UltrasoundConfig};

/// Amplitude attenuation in nepers per dB.
const NP_PER_DB: f64 = std::f64::consts::LN_10 / 20.0;

/// The impedance (MRayl) above which a sample counts as tissue: air in front of the first
/// tissue on a line is the coupling gel, not a reflector.
const TISSUE_IMPEDANCE: f32 = 1.0;

/// A simulated frame in beam space (line-major: sample `s` of line `l` at `l * samples + s`).
#[derive(Clone, Debug)]
pub struct BeamFrame {
    /// Scan lines.
    pub lines: usize,
    /// Samples along each line.
    pub samples: usize,
    /// Depth step between samples (mm).
    pub sample_mm: f64,
    /// Echo envelope before time-gain compensation (attenuated, with receive noise).
    pub raw: Vec<f32>,
    /// Time-gain compensation per depth sample (amplitude factor).
    pub tgc: Vec<f32>,
}

impl BeamFrame {
    /// Depth of sample `s` (mm).
    pub fn depth_mm(&self, s: usize) -> f64 {
        s as f64 * self.sample_mm
    }

    /// The envelope after time-gain compensation.
    pub fn compensated(&self) -> Vec<f32> {
        let mut out = self.raw.clone();
        for line in out.chunks_mut(self.samples) {
            for (v, g) in line.iter_mut().zip(&self.tgc) {
                *v *= g;
            }
        }
        out
    }
}

/// Deterministic standard normal pair from (seed, index): splitmix64 + Box-Muller.
pub(super) fn gauss2(seed: u64, i: u64) -> (f32, f32) {
    let mut s = seed ^ i.wrapping_mul(0xD1B5_4A32_D192_ED03);
    let mut next = || {
        s = s.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = s;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    };
    let u1 = ((next() >> 11) as f64 + 0.5) / (1u64 << 53) as f64;
    let u2 = ((next() >> 11) as f64) / (1u64 << 53) as f64;
    let r = (-2.0 * u1.ln()).sqrt();
    let t = std::f64::consts::TAU * u2;
    ((r * t.cos()) as f32, (r * t.sin()) as f32)
}

/// A Gaussian kernel of standard deviation `sigma` (in samples), normalised to unit energy
/// (sum of squares 1) so that white scatterers of variance v give echoes of variance v.
fn unit_energy_kernel(sigma: f64) -> Vec<f32> {
    let sigma = sigma.max(0.3);
    let radius = (3.0 * sigma).ceil() as i64;
    let k: Vec<f64> = (-radius..=radius)
        .map(|i| (-0.5 * (i as f64 / sigma).powi(2)).exp())
        .collect();
    let e = k.iter().map(|v| v * v).sum::<f64>().sqrt();
    k.iter().map(|v| (v / e) as f32).collect()
}

/// Scatterer field of slice `slice`: complex white noise of unit power, correlated with the neighbouring
/// slices through the elevation weight (the beam's thickness), still unit variance.
fn scatterer(cfg: &UltrasoundConfig, slice: usize, i: u64) -> (f32, f32) {
    let a = cfg.elevation_correlation.clamp(0.0, 1.0) as f32;
    let field = |z: i64| {
        let seed = cfg.seed ^ (z as u64).wrapping_mul(0xA24B_AED4_963E_E407);
        gauss2(seed, i)
    };
    let z = slice as i64;
    // Each of the two components carries half the variance: E|s|^2 = 1.
    let half = std::f32::consts::FRAC_1_SQRT_2;
    let (c0, s0) = field(z);
    if a == 0.0 {
        return (c0 * half, s0 * half);
    }
    let (cm, sm) = field(z - 1);
    let (cp, sp) = field(z + 1);
    let norm = half / (1.0 + 2.0 * a * a).sqrt();
    ((c0 + a * (cm + cp)) * norm, (s0 + a * (sm + sp)) * norm)
}

/// Simulate slice number `slice` of `medium` (the slice index seeds the speckle).
pub fn simulate(medium: &Medium, cfg: &UltrasoundConfig, slice: usize) -> BeamFrame {
    let probe = &cfg.probe;
    let (nl, ns) = (probe.lines.max(2), probe.samples());
    let ds = probe.sample_mm;
    let f = cfg.frequency_mhz;
    // Signal before the point-spread function (complex), line-major.
    let mut re = vec![0f32; nl * ns];
    let mut im = vec![0f32; nl * ns];
    for l in 0..nl {
        let mut coupled = false;
        // Accumulated one-way attenuation (dB) and intensity transmission.
        let (mut att_db, mut trans) = (0.0f64, 1.0f64);
        let mut z_prev = f32::NAN;
        for s in 0..ns {
            let i = l * ns + s;
            let p = probe.point(l, s as f64 * ds);
            let mut t = medium.at(p);
            if !coupled && t.impedance > TISSUE_IMPEDANCE {
                coupled = true;
            }
            if !coupled {
                t = super::Tissue::GEL;
            }
            // Specular reflection from the impedance step since the previous sample.
            let r = if z_prev.is_nan() {
                0.0
            } else {
                (t.impedance - z_prev) / (t.impedance + z_prev).max(1e-6)
            };
            z_prev = t.impedance;
            let amp = (-(2.0 * att_db) * NP_PER_DB).exp() * trans;
            let (c, q) = scatterer(cfg, slice, i as u64);
            let e = t.echogenicity.max(0.0).sqrt();
            re[i] = amp as f32 * (e * c + cfg.specular_gain * r.abs());
            im[i] = amp as f32 * e * q;
            // What passes on to deeper samples: attenuation over this step, and the energy
            // the interface did not reflect (once each way: amplitude factor per crossing).
            att_db += t.attenuation_db_cm_mhz as f64 * f * ds / 10.0;
            trans *= 1.0 - (r as f64).powi(2);
        }
    }
    // Axial PSF along each line, then lateral PSF across lines (its width in lines depends on
    // depth for a sector probe).
    let axial = unit_energy_kernel(cfg.axial_sigma_mm / ds);
    let ra = (axial.len() / 2) as i64;
    let conv_axial = |src: &[f32]| {
        let mut out = vec![0f32; src.len()];
        for l in 0..nl {
            let line = &src[l * ns..(l + 1) * ns];
            for s in 0..ns {
                let mut acc = 0.0;
                for (j, k) in axial.iter().enumerate() {
                    let t = s as i64 + j as i64 - ra;
                    if t >= 0 && (t as usize) < ns {
                        acc += k * line[t as usize];
                    }
                }
                out[l * ns + s] = acc;
            }
        }
        out
    };
    let (re, im) = (conv_axial(&re), conv_axial(&im));
    let mut out_re = vec![0f32; nl * ns];
    let mut out_im = vec![0f32; nl * ns];
    for s in 0..ns {
        let spacing = probe.line_spacing_mm(s as f64 * ds).max(1e-3);
        let lateral = unit_energy_kernel((cfg.lateral_sigma_mm / spacing).min(nl as f64 / 6.0));
        let rl = (lateral.len() / 2) as i64;
        for l in 0..nl {
            let (mut a, mut b) = (0.0, 0.0);
            for (j, k) in lateral.iter().enumerate() {
                let t = l as i64 + j as i64 - rl;
                if t >= 0 && (t as usize) < nl {
                    a += k * re[t as usize * ns + s];
                    b += k * im[t as usize * ns + s];
                }
            }
            out_re[l * ns + s] = a;
            out_im[l * ns + s] = b;
        }
    }
    // Receive noise (after the medium, before the gain) and the envelope.
    let noise_seed = cfg.seed ^ 0x05EE_D0FA_015E ^ (slice as u64).wrapping_mul(0x9E37_79B9);
    let raw: Vec<f32> = (0..nl * ns)
        .map(|i| {
            let (n1, n2) = if cfg.noise > 0.0 {
                gauss2(noise_seed, i as u64)
            } else {
                (0.0, 0.0)
            };
            let sd = cfg.noise * std::f32::consts::FRAC_1_SQRT_2;
            let a = out_re[i] + sd * n1;
            let b = out_im[i] + sd * n2;
            (a * a + b * b).sqrt()
        })
        .collect();
    let tgc = (0..ns)
        .map(|s| {
            let depth_cm = s as f64 * ds / 10.0;
            (2.0 * cfg.tgc_db_cm_mhz * f * depth_cm * NP_PER_DB).exp() as f32
        })
        .collect();
    BeamFrame {
        lines: nl,
        samples: ns,
        sample_mm: ds,
        raw,
        tgc,
    }
}

impl Probe {
    /// Samples along each line.
    pub fn samples(&self) -> usize {
        ((self.depth_mm / self.sample_mm).ceil() as usize).max(2)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_has_unit_energy() {
        for sigma in [0.5, 2.0, 7.5] {
            let k = unit_energy_kernel(sigma);
            let e: f32 = k.iter().map(|v| v * v).sum();
            assert!((e - 1.0).abs() < 1e-5, "sigma {sigma}: energy {e}");
        }
    }

    #[test]
    fn gauss_is_standard() {
        let n = 20_000;
        let (mut s, mut s2) = (0.0f64, 0.0f64);
        for i in 0..n {
            let (a, _) = gauss2(3, i);
            s += a as f64;
            s2 += (a as f64).powi(2);
        }
        let mean = s / n as f64;
        assert!(mean.abs() < 0.03);
        assert!((s2 / n as f64 - 1.0).abs() < 0.05);
    }
}
