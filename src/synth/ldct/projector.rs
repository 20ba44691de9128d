//! A parallel-beam CT scanner in pixel units: the forward projector (line integrals by
//! bilinear sampling along each ray) and ramp-filtered back-projection (Ram-Lak kernel in the
//! spatial domain, Kak & Slaney ch. 3, eq. 61), both on square n x n images.
//!
//! Image values are attenuation per pixel (mu [1/mm] x pixel size [mm]), so a line integral is
//! dimensionless: the exponent of Beer-Lambert's law, I = I0 exp(-p).

use rayon::prelude::*;

/// The scanner: `angles` views evenly over 180 degrees, `detectors` bins one pixel wide,
/// centred on the image centre.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ParallelBeam {
    /// Side of the square image (pixels).
    pub n: usize,
    /// Views over [0, pi).
    pub angles: usize,
    /// Detector bins (one pixel wide).
    pub detectors: usize,
}

/// Line integrals: `angles` rows of `detectors` values, row-major.
#[derive(Clone, Debug, PartialEq)]
pub struct Sinogram {
    /// The scanner that measured it.
    pub scanner: ParallelBeam,
    /// p[angle * detectors + bin].
    pub data: Vec<f32>,
}

/// Sampling step along a ray (pixels).
const STEP: f64 = 0.5;

impl ParallelBeam {
    /// A scanner for n x n images: enough bins to cover the diagonal, and 3n/2 views (more
    /// than the pi n / 2 that sampling theory asks for to avoid view aliasing at this width, rounded
    /// to a multiple of 4).
    pub fn for_image(n: usize) -> Self {
        let detectors = ((n as f64 * std::f64::consts::SQRT_2).ceil() as usize + 2) | 1;
        let angles = (3 * n / 2).div_ceil(4) * 4;
        Self {
            n,
            angles,
            detectors,
        }
    }

    /// Angle of view `k` (radians).
    pub fn angle(&self, k: usize) -> f64 {
        k as f64 * std::f64::consts::PI / self.angles as f64
    }

    /// Detector coordinate of bin `d` (pixels from the centre).
    pub fn bin_position(&self, d: usize) -> f64 {
        d as f64 - (self.detectors as f64 - 1.0) / 2.0
    }

    /// Image coordinate of pixel index i (pixels from the centre).
    fn pixel_position(&self, i: usize) -> f64 {
        i as f64 - (self.n as f64 - 1.0) / 2.0
    }

    /// Line integrals of `image` (n x n, row-major, x fastest) along every ray.
    pub fn forward(&self, image: &[f32]) -> Sinogram {
        let n = self.n;
        debug_assert_eq!(image.len(), n * n);
        let c = (n as f64 - 1.0) / 2.0;
        let half = self.detectors as f64 / 2.0 + 1.0;
        let steps = (2.0 * half / STEP).ceil() as usize;
        let sample = |x: f64, y: f64| -> f64 {
            // Bilinear, zero outside the image.
            let (fx, fy) = (x + c, y + c);
            let (x0, y0) = (fx.floor(), fy.floor());
            let (tx, ty) = (fx - x0, fy - y0);
            let (x0, y0) = (x0 as i64, y0 as i64);
            let at = |xi: i64, yi: i64| -> f64 {
                if xi < 0 || yi < 0 || xi >= n as i64 || yi >= n as i64 {
                    0.0
                } else {
                    image[xi as usize + n * yi as usize] as f64
                }
            };
            (1.0 - ty) * ((1.0 - tx) * at(x0, y0) + tx * at(x0 + 1, y0))
                + ty * ((1.0 - tx) * at(x0, y0 + 1) + tx * at(x0 + 1, y0 + 1))
        };
        let data: Vec<f32> = (0..self.angles)
            .into_par_iter()
            .flat_map_iter(|k| {
                let (s, co) = self.angle(k).sin_cos();
                (0..self.detectors).map(move |d| {
                    let u = self.bin_position(d);
                    let mut sum = 0.0;
                    for i in 0..=steps {
                        let t = -half + i as f64 * STEP;
                        sum += sample(u * co - t * s, u * s + t * co);
                    }
                    (sum * STEP) as f32
                })
            })
            .collect();
        Sinogram {
            scanner: *self,
            data,
        }
    }

    /// The Ram-Lak (ramp) kernel for unit bin spacing, taps -(detectors-1)..=(detectors-1):
    /// h(0) = 1/4, h(odd k) = -1/(pi k)^2, h(even k) = 0.
    fn ramp_kernel(&self) -> Vec<f64> {
        let m = self.detectors as i64;
        (-(m - 1)..m)
            .map(|k| {
                if k == 0 {
                    0.25
                } else if k % 2 != 0 {
                    -1.0 / (std::f64::consts::PI * k as f64).powi(2)
                } else {
                    0.0
                }
            })
            .collect()
    }

    /// Filtered back-projection of `sino` onto the n x n grid (values per pixel, as `forward`
    /// takes them). Linear interpolation between bins; no apodisation window.
    pub fn fbp(&self, sino: &Sinogram) -> Vec<f32> {
        let m = self.detectors;
        let h = self.ramp_kernel();
        let filtered: Vec<f64> = (0..self.angles)
            .into_par_iter()
            .flat_map_iter(|k| {
                let row = &sino.data[k * m..(k + 1) * m];
                let h = &h;
                (0..m).map(move |d| {
                    let mut acc = 0.0;
                    for (j, p) in row.iter().enumerate() {
                        acc += *p as f64 * h[d + m - 1 - j];
                    }
                    acc
                })
            })
            .collect();
        let trig: Vec<(f64, f64)> = (0..self.angles).map(|k| self.angle(k).sin_cos()).collect();
        let scale = std::f64::consts::PI / self.angles as f64;
        let centre = (m as f64 - 1.0) / 2.0;
        let n = self.n;
        (0..n * n)
            .into_par_iter()
            .map(|idx| {
                let (x, y) = (self.pixel_position(idx % n), self.pixel_position(idx / n));
                let mut acc = 0.0;
                for (k, (s, c)) in trig.iter().enumerate() {
                    let u = x * c + y * s + centre;
                    let u0 = u.floor();
                    let t = u - u0;
                    let u0 = u0 as i64;
                    if u0 >= 0 && (u0 as usize) + 1 < m {
                        let row = &filtered[k * m..(k + 1) * m];
                        acc += (1.0 - t) * row[u0 as usize] + t * row[u0 as usize + 1];
                    }
                }
                (acc * scale) as f32
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scanner_covers_the_diagonal() {
        let s = ParallelBeam::for_image(64);
        assert!(s.detectors as f64 >= 64.0 * std::f64::consts::SQRT_2);
        assert_eq!(s.detectors % 2, 1, "a centre bin");
        assert_eq!(s.angles, 96);
    }
}
