//! Quality metrics. PSNR and SSIM follow scikit-image (`peak_signal_noise_ratio`,
//! `structural_similarity` with `gaussian_weights=True`, sigma 1.5, truncate 3.5, K1 0.01,
//! K2 0.03, population covariance, border of 5 cropped) so values match it to 1e-4; Tenengrad
//! and UQI follow their papers (defined below).

use crate::volume::Volume;
use rayon::prelude::*;
use serde::Serialize;

/// Mean absolute error.
pub fn mae(pred: &[f32], reference: &[f32]) -> f64 {
    pred.iter()
        .zip(reference)
        .map(|(a, b)| (*a as f64 - *b as f64).abs())
        .sum::<f64>()
        / pred.len().max(1) as f64
}

/// Root mean squared error.
pub fn rmse(pred: &[f32], reference: &[f32]) -> f64 {
    mse(pred, reference).sqrt()
}

fn mse(pred: &[f32], reference: &[f32]) -> f64 {
    pred.iter()
        .zip(reference)
        .map(|(a, b)| (*a as f64 - *b as f64).powi(2))
        .sum::<f64>()
        / pred.len().max(1) as f64
}

/// Peak signal-to-noise ratio (dB) for the given data range: 10 log10(range^2 / MSE).
pub fn psnr(pred: &[f32], reference: &[f32], data_range: f64) -> f64 {
    10.0 * (data_range * data_range / mse(pred, reference)).log10()
}

/// Gaussian weights as scipy's gaussian_filter1d makes them (radius = int(truncate * sigma + 0.5)).
fn gaussian_kernel(sigma: f64, truncate: f64) -> Vec<f64> {
    let r = (truncate * sigma + 0.5) as i64;
    let w: Vec<f64> = (-r..=r)
        .map(|x| (-0.5 * (x * x) as f64 / (sigma * sigma)).exp())
        .collect();
    let s: f64 = w.iter().sum();
    w.into_iter().map(|v| v / s).collect()
}

/// scipy's 'reflect' boundary: d c b a | a b c d | d c b a.
#[inline]
fn reflect(i: i64, n: i64) -> usize {
    if n == 1 {
        return 0;
    }
    let period = 2 * n;
    let mut m = i.rem_euclid(period);
    if m >= n {
        m = period - 1 - m;
    }
    m as usize
}

/// Separable Gaussian filter along every axis longer than 1 of an [nx, ny, nz] array.
fn gaussian_filter(data: &[f64], dims: [usize; 3], kernel: &[f64]) -> Vec<f64> {
    let r = (kernel.len() / 2) as i64;
    let mut cur = data.to_vec();
    for axis in 0..3 {
        let n = dims[axis];
        if n <= 1 {
            continue;
        }
        let stride = match axis {
            0 => 1,
            1 => dims[0],
            _ => dims[0] * dims[1],
        };
        let src = cur.clone();
        cur.par_iter_mut().enumerate().for_each(|(idx, out)| {
            let pos = (idx / stride) % n;
            let base = idx - pos * stride;
            let mut acc = 0.0;
            for (k, w) in kernel.iter().enumerate() {
                let j = reflect(pos as i64 + k as i64 - r, n as i64);
                acc += w * src[base + j * stride];
            }
            *out = acc;
        });
    }
    cur
}

/// SSIM map (scikit-image's Gaussian-weighted definition) of two [nx, ny, nz] arrays.
fn ssim_map(x: &[f64], y: &[f64], dims: [usize; 3], data_range: f64) -> Vec<f64> {
    let k = gaussian_kernel(1.5, 3.5);
    let xx: Vec<f64> = x.iter().map(|v| v * v).collect();
    let yy: Vec<f64> = y.iter().map(|v| v * v).collect();
    let xy: Vec<f64> = x.iter().zip(y).map(|(a, b)| a * b).collect();
    let ux = gaussian_filter(x, dims, &k);
    let uy = gaussian_filter(y, dims, &k);
    let uxx = gaussian_filter(&xx, dims, &k);
    let uyy = gaussian_filter(&yy, dims, &k);
    let uxy = gaussian_filter(&xy, dims, &k);
    let c1 = (0.01 * data_range).powi(2);
    let c2 = (0.03 * data_range).powi(2);
    (0..x.len())
        .map(|i| {
            let vx = uxx[i] - ux[i] * ux[i];
            let vy = uyy[i] - uy[i] * uy[i];
            let vxy = uxy[i] - ux[i] * uy[i];
            ((2.0 * ux[i] * uy[i] + c1) * (2.0 * vxy + c2))
                / ((ux[i] * ux[i] + uy[i] * uy[i] + c1) * (vx + vy + c2))
        })
        .collect()
}

/// Mean SSIM of two [nx, ny, nz] arrays (nz = 1 for a slice), as scikit-image computes it:
/// Gaussian window (sigma 1.5), the 5-voxel border of every filtered axis excluded.
/// With `mask`, the mean is over the mask's voxels instead (no border crop).
pub fn ssim(
    pred: &[f32],
    reference: &[f32],
    dims: [usize; 3],
    data_range: f64,
    mask: Option<&[bool]>,
) -> f64 {
    let x: Vec<f64> = pred.iter().map(|v| *v as f64).collect();
    let y: Vec<f64> = reference.iter().map(|v| *v as f64).collect();
    let s = ssim_map(&x, &y, dims, data_range);
    if let Some(m) = mask {
        let (sum, n) = s
            .iter()
            .zip(m)
            .filter(|(_, m)| **m)
            .fold((0.0, 0usize), |(a, n), (v, _)| (a + v, n + 1));
        return sum / n.max(1) as f64;
    }
    let pad = 5usize;
    let lo = |a: usize| if dims[a] > 1 { pad } else { 0 };
    let hi = |a: usize| {
        if dims[a] > 1 {
            dims[a].saturating_sub(pad)
        } else {
            1
        }
    };
    let mut sum = 0.0;
    let mut n = 0usize;
    for z in lo(2)..hi(2) {
        for yy in lo(1)..hi(1) {
            for xx in lo(0)..hi(0) {
                sum += s[xx + dims[0] * (yy + dims[1] * z)];
                n += 1;
            }
        }
    }
    sum / n.max(1) as f64
}

/// Tenengrad sharpness of one slice: the mean squared Sobel gradient magnitude over pixels whose
/// magnitude exceeds `threshold` (Krotkov's focus measure; no reference needed). Computed on
/// values as given; we report it for images scaled to [0, 1] by the data range.
pub fn tenengrad(slice: &[f32], nx: usize, ny: usize, threshold: f64) -> f64 {
    let at = |x: usize, y: usize| slice[x + nx * y] as f64;
    let mut sum = 0.0;
    let mut n = 0usize;
    for y in 1..ny.saturating_sub(1) {
        for x in 1..nx.saturating_sub(1) {
            let gx = at(x + 1, y - 1) + 2.0 * at(x + 1, y) + at(x + 1, y + 1)
                - at(x - 1, y - 1)
                - 2.0 * at(x - 1, y)
                - at(x - 1, y + 1);
            let gy = at(x - 1, y + 1) + 2.0 * at(x, y + 1) + at(x + 1, y + 1)
                - at(x - 1, y - 1)
                - 2.0 * at(x, y - 1)
                - at(x + 1, y - 1);
            let g2 = gx * gx + gy * gy;
            if g2.sqrt() > threshold {
                sum += g2;
                n += 1;
            }
        }
    }
    if n == 0 { 0.0 } else { sum / n as f64 }
}

/// Universal quality index (Wang & Bovik 2002) of one slice: Q = 4 cov mu_x mu_y /
/// ((var_x + var_y)(mu_x^2 + mu_y^2)) over 8 x 8 sliding windows (step 1), averaged; windows
/// where the denominator vanishes count 1 when both are equal constants.
pub fn uqi(pred: &[f32], reference: &[f32], nx: usize, ny: usize) -> f64 {
    let w = 8usize;
    if nx < w || ny < w {
        return f64::NAN;
    }
    let rows: Vec<(f64, usize)> = (0..=ny - w)
        .into_par_iter()
        .map(|y0| {
            let mut s = 0.0;
            let mut n = 0;
            for x0 in 0..=nx - w {
                let (mut sx, mut sy, mut sxx, mut syy, mut sxy) = (0.0, 0.0, 0.0, 0.0, 0.0);
                for y in y0..y0 + w {
                    for x in x0..x0 + w {
                        let a = pred[x + nx * y] as f64;
                        let b = reference[x + nx * y] as f64;
                        sx += a;
                        sy += b;
                        sxx += a * a;
                        syy += b * b;
                        sxy += a * b;
                    }
                }
                let m = (w * w) as f64;
                let (mx, my) = (sx / m, sy / m);
                let vx = sxx / m - mx * mx;
                let vy = syy / m - my * my;
                let cxy = sxy / m - mx * my;
                let den = (vx + vy) * (mx * mx + my * my);
                s += if den.abs() < 1e-12 {
                    if (mx - my).abs() < 1e-12 { 1.0 } else { 0.0 }
                } else {
                    4.0 * cxy * mx * my / den
                };
                n += 1;
            }
            (s, n)
        })
        .collect();
    let (s, n) = rows.iter().fold((0.0, 0), |(a, b), (s, n)| (a + s, b + n));
    s / n.max(1) as f64
}

/// Pixel-domain visual information fidelity (VIF-P; Sheikh & Bovik 2006) of `pred` against
/// `reference`, one slice (row-major, x fastest), as `sewar.full_ref.vifp` computes it: four
/// scales with Gaussian windows of 17, 9, 5 and 3 pixels (sigma = size / 5), each scale after the
/// first filtered ('valid') and subsampled by 2, visual noise variance `sigma_nsq` (sewar: 2,
/// meant for 0..255 images; see [`vif_scaled`]). 1 for identical images, 0 for no shared
/// information; NaN for slices smaller than the four scales need (under 41 pixels on a side).
pub fn vif(pred: &[f32], reference: &[f32], nx: usize, ny: usize, sigma_nsq: f64) -> f64 {
    const EPS: f64 = 1e-10;
    if nx < 41 || ny < 41 || pred.len() < nx * ny || reference.len() < nx * ny {
        return f64::NAN;
    }
    let mut gt = Plane::new(reference.iter().map(|v| *v as f64).collect(), nx, ny);
    let mut p = Plane::new(pred.iter().map(|v| *v as f64).collect(), nx, ny);
    let (mut num, mut den) = (0.0, 0.0);
    for scale in 1..=4u32 {
        let n = (1usize << (5 - scale)) + 1;
        let win = vif_window(n, n as f64 / 5.0);
        if scale > 1 {
            gt = gt.filter_valid(&win, n).subsample();
            p = p.filter_valid(&win, n).subsample();
        }
        let mu1 = gt.filter_valid(&win, n);
        let mu2 = p.filter_valid(&win, n);
        let s11 = gt.mul(&gt).filter_valid(&win, n);
        let s22 = p.mul(&p).filter_valid(&win, n);
        let s12 = gt.mul(&p).filter_valid(&win, n);
        for i in 0..mu1.v.len() {
            let (m1, m2) = (mu1.v[i], mu2.v[i]);
            let mut sg = (s11.v[i] - m1 * m1).max(0.0);
            let sp = (s22.v[i] - m2 * m2).max(0.0);
            let sgp = s12.v[i] - m1 * m2;
            let mut g = sgp / (sg + EPS);
            let mut sv = sp - g * sgp;
            if sg < EPS {
                g = 0.0;
                sv = sp;
                sg = 0.0;
            }
            if sp < EPS {
                g = 0.0;
                sv = 0.0;
            }
            if g < 0.0 {
                sv = sp;
                g = 0.0;
            }
            if sv <= EPS {
                sv = EPS;
            }
            num += (1.0 + g * g * sg / (sv + sigma_nsq)).log10();
            den += (1.0 + sg / sigma_nsq).log10();
        }
    }
    num / den
}

/// [`vif`] with both slices mapped to 0..255 over the reference's `(min, max)` range first, so
/// sewar's visual noise (sigma_nsq = 2, for 8-bit images) means the same for HU and MR units.
pub fn vif_scaled(pred: &[f32], reference: &[f32], nx: usize, ny: usize, range: (f64, f64)) -> f64 {
    let (lo, hi) = range;
    let k = if hi > lo { 255.0 / (hi - lo) } else { 1.0 };
    let map = |s: &[f32]| -> Vec<f32> { s.iter().map(|v| ((*v as f64 - lo) * k) as f32).collect() };
    vif(&map(pred), &map(reference), nx, ny, 2.0)
}

/// sewar's `fspecial(GAUSSIAN, ws=n, sigma)`: offsets -(n/2)..n/2, entries under
/// machine-eps x max set to 0, normalised to sum 1. Row-major n x n.
fn vif_window(n: usize, sigma: f64) -> Vec<f64> {
    let r = (n / 2) as i64;
    let mut g: Vec<f64> = (-r..=r)
        .flat_map(|y| {
            (-r..=r).map(move |x| (-((x * x + y * y) as f64) / (2.0 * sigma * sigma)).exp())
        })
        .collect();
    let max = g.iter().cloned().fold(0.0, f64::max);
    g.iter_mut()
        .filter(|v| **v < f64::EPSILON * max)
        .for_each(|v| *v = 0.0);
    let s: f64 = g.iter().sum();
    if s != 0.0 {
        g.iter_mut().for_each(|v| *v /= s);
    }
    g
}

/// A 2-D f64 image, x fastest.
struct Plane {
    v: Vec<f64>,
    nx: usize,
    ny: usize,
}

impl Plane {
    fn new(v: Vec<f64>, nx: usize, ny: usize) -> Self {
        Self { v, nx, ny }
    }

    fn mul(&self, o: &Plane) -> Plane {
        Plane::new(
            self.v.iter().zip(&o.v).map(|(a, b)| a * b).collect(),
            self.nx,
            self.ny,
        )
    }

    /// scipy's `convolve2d(img, rot90(win, 2), 'valid')`: the window's correlation where it fits.
    fn filter_valid(&self, win: &[f64], n: usize) -> Plane {
        if self.nx < n || self.ny < n {
            return Plane::new(Vec::new(), 0, 0);
        }
        let (ox, oy) = (self.nx + 1 - n, self.ny + 1 - n);
        let v: Vec<f64> = (0..oy)
            .into_par_iter()
            .flat_map_iter(|y| {
                (0..ox).map(move |x| {
                    let mut acc = 0.0;
                    for j in 0..n {
                        let row = &self.v[(y + j) * self.nx + x..(y + j) * self.nx + x + n];
                        let w = &win[j * n..(j + 1) * n];
                        acc += row.iter().zip(w).map(|(a, b)| a * b).sum::<f64>();
                    }
                    acc
                })
            })
            .collect();
        Plane::new(v, ox, oy)
    }

    /// Every second pixel from the first, both ways (numpy's `[::2, ::2]`).
    fn subsample(&self) -> Plane {
        let (ox, oy) = (self.nx.div_ceil(2), self.ny.div_ceil(2));
        let v = (0..oy)
            .flat_map(|y| (0..ox).map(move |x| (y, x)))
            .map(|(y, x)| self.v[2 * y * self.nx + 2 * x])
            .collect();
        Plane::new(v, ox, oy)
    }
}

/// Where metrics are computed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum Region {
    /// Every voxel.
    All,
    /// Inside the head mask.
    Head,
    /// Inside bone (reference CT above 300 HU, within the head mask).
    Bone,
}

/// Metrics of a prediction against its reference in one region.
#[derive(Clone, Debug, Serialize)]
pub struct MetricsReport {
    /// Region.
    pub region: Region,
    /// Voxels counted.
    pub voxels: usize,
    /// Mean absolute error (image units; HU for CT).
    pub mae: f64,
    /// Root mean squared error.
    pub rmse: f64,
    /// PSNR (dB) for `data_range`.
    pub psnr: f64,
    /// Data range used by PSNR and SSIM.
    pub data_range: f64,
    /// Mean SSIM (scikit-image definition for All; mean of the SSIM map inside the mask otherwise).
    pub ssim: f64,
    /// Mean Tenengrad of the prediction's slices (values scaled to 0..1 by the data range).
    pub tenengrad_pred: f64,
    /// Mean Tenengrad of the reference's slices.
    pub tenengrad_ref: f64,
    /// Mean UQI over slices (8 x 8 windows).
    pub uqi: f64,
    /// Mean pixel-domain VIF over slices ([`vif_scaled`] over the reference's range; slices
    /// under 41 x 41 pixels, where it is undefined, are left out: NaN when all are).
    pub vif: f64,
}

/// Metrics of `pred` against `reference` (same grid) over the whole volume, inside `head`
/// (a mask volume on the same grid, non-zero inside), and in bone when the reference is CT.
/// `data_range`: the reference's max minus min when None.
pub fn evaluate_volumes(
    pred: &Volume,
    reference: &Volume,
    head: Option<&Volume>,
    data_range: Option<f64>,
) -> Result<Vec<MetricsReport>, super::AnalysisError> {
    if pred.geometry.dims != reference.geometry.dims {
        return Err(super::AnalysisError::Input(format!(
            "prediction {:?} and reference {:?} are on different grids: resample first",
            pred.geometry.dims, reference.geometry.dims
        )));
    }
    if let Some(m) = head
        && m.geometry.dims != reference.geometry.dims
    {
        return Err(super::AnalysisError::Input(
            "the mask is on a different grid from the reference".into(),
        ));
    }
    let (lo, hi) = reference.min_max();
    let range = data_range.unwrap_or((hi - lo) as f64).max(1e-9);
    let dims = reference.geometry.dims;
    let [nx, ny, nz] = dims;
    let head_mask: Vec<bool> = match head {
        Some(m) => m.data.iter().map(|v| *v > 0.0).collect(),
        None => vec![true; reference.data.len()],
    };
    let mut regions = vec![(Region::All, vec![true; reference.data.len()])];
    if head.is_some() {
        regions.push((Region::Head, head_mask.clone()));
    }
    if reference.meta.modality == crate::volume::Modality::Ct {
        regions.push((
            Region::Bone,
            reference
                .data
                .iter()
                .zip(&head_mask)
                .map(|(v, h)| *v > 300.0 && *h)
                .collect(),
        ));
    }
    let scale = |v: &[f32]| -> Vec<f32> {
        v.iter()
            .map(|x| ((*x as f64 - lo as f64) / range) as f32)
            .collect()
    };
    let (sp, sr) = (scale(&pred.data), scale(&reference.data));
    let plane = nx * ny;
    let per_slice = |f: &dyn Fn(usize) -> f64| (0..nz).map(f).sum::<f64>() / nz.max(1) as f64;
    let ten_p = per_slice(&|z| tenengrad(&sp[z * plane..(z + 1) * plane], nx, ny, 0.0));
    let ten_r = per_slice(&|z| tenengrad(&sr[z * plane..(z + 1) * plane], nx, ny, 0.0));
    let u = per_slice(&|z| {
        uqi(
            &pred.data[z * plane..(z + 1) * plane],
            &reference.data[z * plane..(z + 1) * plane],
            nx,
            ny,
        )
    });
    let vifs: Vec<f64> = (0..nz)
        .map(|z| {
            let s = z * plane..(z + 1) * plane;
            vif_scaled(
                &pred.data[s.clone()],
                &reference.data[s],
                nx,
                ny,
                (lo as f64, lo as f64 + range),
            )
        })
        .filter(|v| v.is_finite())
        .collect();
    let vif_mean = if vifs.is_empty() {
        f64::NAN
    } else {
        vifs.iter().sum::<f64>() / vifs.len() as f64
    };
    let mut out = Vec::new();
    for (region, mask) in regions {
        let (p, r): (Vec<f32>, Vec<f32>) = pred
            .data
            .iter()
            .zip(&reference.data)
            .zip(&mask)
            .filter(|(_, m)| **m)
            .map(|((a, b), _)| (*a, *b))
            .unzip();
        let ssim_v = if region == Region::All {
            ssim(&pred.data, &reference.data, dims, range, None)
        } else {
            ssim(&pred.data, &reference.data, dims, range, Some(&mask))
        };
        out.push(MetricsReport {
            region,
            voxels: p.len(),
            mae: mae(&p, &r),
            rmse: rmse(&p, &r),
            psnr: psnr(&p, &r, range),
            data_range: range,
            ssim: ssim_v,
            tenengrad_pred: ten_p,
            tenengrad_ref: ten_r,
            uqi: u,
            vif: vif_mean,
        });
    }
    Ok(out)
}

/// Reports as CSV (header + one row per region).
pub fn to_csv(reports: &[MetricsReport]) -> String {
    let mut s = String::from(
        "region,voxels,mae,rmse,psnr_db,data_range,ssim,tenengrad_pred,tenengrad_ref,uqi,vif\n",
    );
    for r in reports {
        s += &format!(
            "{:?},{},{},{},{},{},{},{},{},{},{}\n",
            r.region,
            r.voxels,
            r.mae,
            r.rmse,
            r.psnr,
            r.data_range,
            r.ssim,
            r.tenengrad_pred,
            r.tenengrad_ref,
            r.uqi,
            r.vif
        );
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identical_images_are_perfect() {
        let a: Vec<f32> = (0..32 * 32).map(|i| ((i * 37) % 101) as f32).collect();
        assert_eq!(mae(&a, &a), 0.0);
        assert!(psnr(&a, &a, 100.0).is_infinite());
        assert!((ssim(&a, &a, [32, 32, 1], 100.0, None) - 1.0).abs() < 1e-12);
        assert!((uqi(&a, &a, 32, 32) - 1.0).abs() < 1e-9);
    }

    #[test]
    fn reflect_matches_scipy() {
        let n = 4;
        let got: Vec<usize> = (-3..7).map(|i| reflect(i, n)).collect();
        // scipy 'reflect' of [a b c d] extended: c b a | a b c d | d c b
        assert_eq!(got, vec![2, 1, 0, 0, 1, 2, 3, 3, 2, 1]);
    }

    #[test]
    fn psnr_known_value() {
        let a = vec![0.0f32; 100];
        let b = vec![1.0f32; 100];
        assert!((psnr(&b, &a, 10.0) - 20.0).abs() < 1e-12);
    }
}
