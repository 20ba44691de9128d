//! Mattes mutual information (Mattes et al. 2003, as ITK's MattesMutualInformation): a joint
//! histogram with a zero-order Parzen window on the fixed intensity and a cubic B-spline window
//! on the moving intensity, so the metric has an analytic gradient in the transform parameters.

use crate::volume::transform::Affine;
use crate::volume::{Vec3, Volume, invert3};
use rayon::prelude::*;

/// Metric value and its gradient in the transform parameters.
#[derive(Clone, Debug)]
pub struct MetricValue {
    /// Mutual information (nats).
    pub mi: f64,
    /// d MI / d parameter.
    pub gradient: Vec<f64>,
    /// Samples that mapped inside the moving image.
    pub valid: usize,
}

/// A prepared metric for one pyramid level.
pub struct MattesMi<'a> {
    pub(crate) moving: &'a Volume,
    pub(crate) moving_inv: [[f64; 3]; 3],
    pub(crate) samples: Vec<(Vec3, u16)>,
    pub(crate) bins: usize,
    pub(crate) m_min: f64,
    pub(crate) m_scale: f64,
}

#[inline]
fn bspline3(u: f64) -> f64 {
    let a = u.abs();
    if a < 1.0 {
        (4.0 - 6.0 * a * a + 3.0 * a * a * a) / 6.0
    } else if a < 2.0 {
        let t = 2.0 - a;
        t * t * t / 6.0
    } else {
        0.0
    }
}

#[inline]
fn bspline3_deriv(u: f64) -> f64 {
    let a = u.abs();
    if a < 1.0 {
        -2.0 * u + 1.5 * u * a
    } else if a < 2.0 {
        let t = 2.0 - a;
        -0.5 * t * t * u.signum()
    } else {
        0.0
    }
}

fn percentile_range(v: &Volume, lo: f64, hi: f64) -> (f64, f64) {
    let mut s: Vec<f32> = v
        .data
        .iter()
        .step_by((v.data.len() / 200_000).max(1))
        .copied()
        .filter(|x| x.is_finite())
        .collect();
    s.sort_by(f32::total_cmp);
    if s.is_empty() {
        return (0.0, 1.0);
    }
    let at = |p: f64| s[((p / 100.0) * (s.len() - 1) as f64).round() as usize] as f64;
    let (a, b) = (at(lo), at(hi));
    if b > a { (a, b) } else { (a, a + 1.0) }
}

/// splitmix64 of (seed, index), for reproducible sampling.
fn hash(seed: u64, i: u64) -> u64 {
    let mut z = seed ^ i.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

impl<'a> MattesMi<'a> {
    /// Prepare samples on `fixed` (inside `mask` when given, else its foreground) and the
    /// moving image's gradient.
    pub fn new(
        fixed: &Volume,
        moving: &'a Volume,
        mask: Option<&Volume>,
        bins: usize,
        max_samples: usize,
        seed: u64,
    ) -> Self {
        let bins = bins.max(8);
        let (f_min, f_max) = percentile_range(fixed, 0.5, 99.5);
        let (m_min, m_max) = percentile_range(moving, 0.5, 99.5);
        let (vmin, vmax) = fixed.min_max();
        let thr = vmin + 0.05 * (vmax - vmin);
        let g = &fixed.geometry;
        let inside = |i: usize, x: usize, y: usize, z: usize| -> bool {
            match mask {
                Some(m) if m.geometry.dims == g.dims => m.data[i] > 0.0,
                Some(m) => m
                    .sample_nearest(
                        m.geometry
                            .voxel_from_world(g.world_from_voxel([x as f64, y as f64, z as f64])),
                    )
                    .is_some_and(|v| v > 0.0),
                // Without a mask, the whole field of view: background matters, or the metric
                // rewards scaling the head outline away from the sampled region.
                None => fixed.data[i].is_finite() && thr.is_finite(),
            }
        };
        let [nx, ny, nz] = g.dims;
        let count: usize = (0..nz)
            .into_par_iter()
            .map(|z| {
                (0..ny)
                    .flat_map(|y| (0..nx).map(move |x| (x, y)))
                    .filter(|&(x, y)| inside(g.index(x, y, z), x, y, z))
                    .count()
            })
            .sum();
        let p = (max_samples as f64 / count.max(1) as f64).min(1.0);
        let threshold = (p * u64::MAX as f64) as u64;
        let fscale = bins as f64 / (f_max - f_min).max(1e-9);
        let samples: Vec<(Vec3, u16)> = (0..nz)
            .into_par_iter()
            .flat_map_iter(|z| {
                let mut out = Vec::new();
                for y in 0..ny {
                    for x in 0..nx {
                        let i = g.index(x, y, z);
                        if inside(i, x, y, z) && (p >= 1.0 || hash(seed, i as u64) <= threshold) {
                            let f = fixed.data[i] as f64;
                            let b = (((f - f_min) * fscale).floor() as i64)
                                .clamp(0, bins as i64 - 1)
                                as u16;
                            out.push((g.world_from_voxel([x as f64, y as f64, z as f64]), b));
                        }
                    }
                }
                out
            })
            .collect();
        let mg = &moving.geometry;
        let minv = invert3(&mg.world_from_voxel_matrix()).unwrap_or([
            [1.0, 0.0, 0.0],
            [0.0, 1.0, 0.0],
            [0.0, 0.0, 1.0],
        ]);
        let m_scale = (bins as f64 - 5.0) / (m_max - m_min).max(1e-9);
        Self {
            moving,
            moving_inv: minv,
            samples,
            bins,
            m_min,
            m_scale,
        }
    }

    /// The affine map from a fixed point straight to a moving voxel index, for `transform`.
    pub(crate) fn fixed_to_voxel(&self, transform: &Affine) -> [[f64; 4]; 3] {
        let origin = self.moving.geometry.origin;
        let minv = self.moving_inv;
        // p = minv (A (x - c) + c + t - origin) = (minv A) x + minv (c + t - origin - A c).
        let a = transform.matrix;
        let ct = transform.center;
        let off = [
            ct[0] + transform.translation[0]
                - origin[0]
                - (a[0][0] * ct[0] + a[0][1] * ct[1] + a[0][2] * ct[2]),
            ct[1] + transform.translation[1]
                - origin[1]
                - (a[1][0] * ct[0] + a[1][1] * ct[1] + a[1][2] * ct[2]),
            ct[2] + transform.translation[2]
                - origin[2]
                - (a[2][0] * ct[0] + a[2][1] * ct[1] + a[2][2] * ct[2]),
        ];
        let ma = crate::volume::transform::mul3(&minv, &a);
        let mut vox = [[0f64; 4]; 3];
        for r in 0..3 {
            vox[r] = [
                ma[r][0],
                ma[r][1],
                ma[r][2],
                minv[r][0] * off[0] + minv[r][1] * off[1] + minv[r][2] * off[2],
            ];
        }
        vox
    }

    /// Number of sample points.
    pub fn sample_count(&self) -> usize {
        self.samples.len()
    }

    /// Trilinear value and gradient of the moving image at continuous index p, if inside.
    #[inline]
    fn sample(&self, p: Vec3) -> Option<(f64, [f64; 3])> {
        let d = self.moving.geometry.dims;
        let mut i0 = [0usize; 3];
        let mut f = [0f64; 3];
        for a in 0..3 {
            if !(p[a] >= 0.0 && p[a] <= (d[a] - 1) as f64) {
                return None;
            }
            let fl = p[a].floor().min((d[a].max(2) - 2) as f64);
            i0[a] = fl as usize;
            f[a] = p[a] - fl;
        }
        let nx = d[0];
        let nxy = d[0] * d[1];
        let base = i0[0] + nx * i0[1] + nxy * i0[2];
        let sx = if d[0] > 1 { 1 } else { 0 };
        let sy = if d[1] > 1 { nx } else { 0 };
        let sz = if d[2] > 1 { nxy } else { 0 };
        let (fx, fy, fz) = (f[0], f[1], f[2]);
        let c = |i: usize| self.moving.data[i] as f64;
        let (c000, c100, c010, c110) = (c(base), c(base + sx), c(base + sy), c(base + sx + sy));
        let (c001, c101, c011, c111) = (
            c(base + sz),
            c(base + sx + sz),
            c(base + sy + sz),
            c(base + sx + sy + sz),
        );
        // Value and exact derivative of the trilinear interpolant (what the metric sees).
        let x00 = c000 + (c100 - c000) * fx;
        let x10 = c010 + (c110 - c010) * fx;
        let x01 = c001 + (c101 - c001) * fx;
        let x11 = c011 + (c111 - c011) * fx;
        let y0 = x00 + (x10 - x00) * fy;
        let y1 = x01 + (x11 - x01) * fy;
        let v = y0 + (y1 - y0) * fz;
        let dfx = ((c100 - c000) * (1.0 - fy) + (c110 - c010) * fy) * (1.0 - fz)
            + ((c101 - c001) * (1.0 - fy) + (c111 - c011) * fy) * fz;
        let dfy = (x10 - x00) * (1.0 - fz) + (x11 - x01) * fz;
        let dfz = y1 - y0;
        let gp = [dfx, dfy, dfz];
        let m = &self.moving_inv;
        // dm/dw = (M^-1)^T dm/dp.
        let g = [
            m[0][0] * gp[0] + m[1][0] * gp[1] + m[2][0] * gp[2],
            m[0][1] * gp[0] + m[1][1] * gp[1] + m[2][1] * gp[2],
            m[0][2] * gp[0] + m[1][2] * gp[1] + m[2][2] * gp[2],
        ];
        Some((v, g))
    }

    /// Mutual information and its gradient for `transform`, whose Jacobian at a fixed point
    /// `jacobian(x, out)` writes into `out` (one [dy/dp] column per parameter).
    pub fn evaluate(
        &self,
        transform: &Affine,
        jacobian: impl Fn(Vec3, &mut [[f64; 3]]) + Sync,
        nparams: usize,
    ) -> MetricValue {
        let b = self.bins;
        let hi = (b - 3) as f64;
        let vox = self.fixed_to_voxel(transform);
        let (hist, dhist, valid) = self
            .samples
            .par_chunks(2048)
            .fold(
                || (vec![0f64; b * b], vec![0f64; b * b * nparams], 0usize),
                |(mut hist, mut dhist, mut valid), chunk| {
                    let mut jac = vec![[0f64; 3]; nparams];
                    let mut dmdp = vec![0f64; nparams];
                    for &(x, fb) in chunk {
                        // Fixed point -> moving voxel index in one affine map.
                        let p = [
                            vox[0][0] * x[0] + vox[0][1] * x[1] + vox[0][2] * x[2] + vox[0][3],
                            vox[1][0] * x[0] + vox[1][1] * x[1] + vox[1][2] * x[2] + vox[1][3],
                            vox[2][0] * x[0] + vox[2][1] * x[1] + vox[2][2] * x[2] + vox[2][3],
                        ];
                        let Some((m, gm)) = self.sample(p) else {
                            continue;
                        };
                        valid += 1;
                        let raw = 2.0 + (m - self.m_min) * self.m_scale;
                        let kc = raw.clamp(2.0, hi);
                        let dk_dm = if raw > 2.0 && raw < hi {
                            self.m_scale
                        } else {
                            0.0
                        };
                        if dk_dm != 0.0 {
                            jacobian(x, &mut jac);
                            for (d, j) in dmdp.iter_mut().zip(&jac) {
                                *d = gm[0] * j[0] + gm[1] * j[1] + gm[2] * j[2];
                            }
                        }
                        let row = fb as usize * b;
                        let k0 = kc.floor() as usize;
                        for k in (k0 - 1)..=(k0 + 2).min(b - 1) {
                            let u = k as f64 - kc;
                            let w = bspline3(u);
                            hist[row + k] += w;
                            let dw = -bspline3_deriv(u) * dk_dm;
                            if dw != 0.0 {
                                let base = (row + k) * nparams;
                                for (h, d) in dhist[base..base + nparams].iter_mut().zip(&dmdp) {
                                    *h += dw * d;
                                }
                            }
                        }
                    }
                    (hist, dhist, valid)
                },
            )
            .reduce(
                || (vec![0f64; b * b], vec![0f64; b * b * nparams], 0usize),
                |mut a, c| {
                    a.0.iter_mut().zip(&c.0).for_each(|(x, y)| *x += y);
                    a.1.iter_mut().zip(&c.1).for_each(|(x, y)| *x += y);
                    (a.0, a.1, a.2 + c.2)
                },
            );
        finish(&hist, &dhist, valid, b, nparams)
    }
}

/// Mutual information and its gradient from the joint histogram `hist` (bins x bins) and its
/// parameter derivatives `dhist` (bins x bins x nparams), accumulated over `valid` samples.
pub fn finish(hist: &[f64], dhist: &[f64], valid: usize, b: usize, nparams: usize) -> MetricValue {
    let n = valid.max(1) as f64;
    let mut pf = vec![0f64; b];
    let mut pm = vec![0f64; b];
    for i in 0..b {
        for k in 0..b {
            let p = hist[i * b + k] / n;
            pf[i] += p;
            pm[k] += p;
        }
    }
    let mut mi = 0.0;
    let mut gradient = vec![0f64; nparams];
    for i in 0..b {
        for k in 0..b {
            let p = hist[i * b + k] / n;
            if p > 1e-16 && pm[k] > 1e-16 && pf[i] > 1e-16 {
                mi += p * (p / (pf[i] * pm[k])).ln();
                let l = (p / pm[k]).ln();
                let base = (i * b + k) * nparams;
                for (pi, g) in gradient.iter_mut().enumerate() {
                    *g += dhist[base + pi] / n * l;
                }
            }
        }
    }
    MetricValue {
        mi,
        gradient,
        valid,
    }
}
