//! Lesion detectability and edge sharpness on one slice, for denoising (shared/METHODS.md,
//! method 4): contrast-to-noise ratio against a background ring, contrast recovery against the
//! true contrast, the gradient magnitude on the lesion border, and the 10-90% edge rise
//! distance of the radial profile.

/// A lesion's disc on a slice (pixels).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LesionDisc {
    /// Centre x.
    pub cx: f64,
    /// Centre y.
    pub cy: f64,
    /// Radius.
    pub r: f64,
    /// True contrast (lesion minus background, in the image's unit).
    pub contrast: f64,
}

/// Measurements of one lesion on one image.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize)]
pub struct LesionMeasure {
    /// |mean(lesion) - mean(ring)| / sd(ring).
    pub cnr: f64,
    /// (mean(lesion) - mean(ring)) / true contrast: 1 = full contrast kept, 0 = washed out.
    pub contrast_recovery: f64,
    /// Mean gradient magnitude on the border (|d - r| < 0.75 px) per unit of true contrast
    /// (1/px); an ideal step sampled on the grid gives about 0.5.
    pub border_gradient: f64,
    /// 10-90% rise distance of the radial profile (px); None where the profile does not cross
    /// both levels (a lesion lost in noise).
    pub edge_rise_px: Option<f64>,
    /// Standard deviation in the background ring (image unit).
    pub ring_sd: f64,
}

/// Mean and standard deviation.
fn mean_sd(v: &[f64]) -> (f64, f64) {
    let n = v.len().max(1) as f64;
    let m = v.iter().sum::<f64>() / n;
    let var = v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (n - 1.0).max(1.0);
    (m, var.sqrt())
}

/// Measure `lesion` on `image` (nx x ny, row-major). Pixels within 2 px of any disc in
/// `others` are left out of the background ring (2 to 5 px outside the border).
pub fn measure_lesion(
    image: &[f32],
    nx: usize,
    ny: usize,
    lesion: &LesionDisc,
    others: &[LesionDisc],
) -> LesionMeasure {
    let reach = lesion.r + 7.0;
    let x0 = (lesion.cx - reach).floor().max(0.0) as usize;
    let y0 = (lesion.cy - reach).floor().max(0.0) as usize;
    let x1 = ((lesion.cx + reach).ceil() as usize).min(nx.saturating_sub(1));
    let y1 = ((lesion.cy + reach).ceil() as usize).min(ny.saturating_sub(1));
    let at = |x: usize, y: usize| image[x + nx * y] as f64;
    let mut inside = Vec::new();
    let mut ring = Vec::new();
    let mut border = Vec::new();
    let mut profile: Vec<(f64, f64)> = Vec::new();
    let core = (0.7 * lesion.r).max(0.75);
    for y in y0..=y1 {
        for x in x0..=x1 {
            let d = ((x as f64 - lesion.cx).powi(2) + (y as f64 - lesion.cy).powi(2)).sqrt();
            let near_other = others.iter().any(|o| {
                ((x as f64 - o.cx).powi(2) + (y as f64 - o.cy).powi(2)).sqrt() < o.r + 2.0
            });
            if d <= core {
                inside.push(at(x, y));
            }
            if d >= lesion.r + 2.0 && d <= lesion.r + 5.0 && !near_other {
                ring.push(at(x, y));
            }
            if (d - lesion.r).abs() < 0.75 && x > 0 && y > 0 && x + 1 < nx && y + 1 < ny {
                let gx = (at(x + 1, y) - at(x - 1, y)) / 2.0;
                let gy = (at(x, y + 1) - at(x, y - 1)) / 2.0;
                border.push((gx * gx + gy * gy).sqrt());
            }
            if d <= lesion.r + 6.0 && !near_other {
                profile.push((d, at(x, y)));
            }
        }
    }
    let (m_in, _) = mean_sd(&inside);
    let (m_ring, sd_ring) = mean_sd(&ring);
    let diff = m_in - m_ring;
    let c = if lesion.contrast.abs() > 1e-9 {
        lesion.contrast
    } else {
        1.0
    };
    let (g, _) = mean_sd(&border);
    LesionMeasure {
        cnr: diff.abs() / sd_ring.max(1e-9),
        contrast_recovery: diff / c,
        border_gradient: g / c.abs(),
        edge_rise_px: edge_rise(&profile, m_in, m_ring),
        ring_sd: sd_ring,
    }
}

/// 10-90% rise distance of a radial profile (distance, value) from `inner` to `outer`: the
/// profile is averaged in 0.5 px bins, scaled to 1 inside and 0 outside, and the first
/// outward crossings of 0.9 and 0.1 are interpolated.
fn edge_rise(profile: &[(f64, f64)], inner: f64, outer: f64) -> Option<f64> {
    let step = outer - inner;
    if step.abs() < 1e-9 || profile.is_empty() {
        return None;
    }
    let bins = 40usize;
    let mut sum = vec![0.0; bins];
    let mut count = vec![0usize; bins];
    for (d, v) in profile {
        let b = (d / 0.5) as usize;
        if b < bins {
            sum[b] += v;
            count[b] += 1;
        }
    }
    // Normalised: 1 at the lesion's level, 0 at the background's.
    let pts: Vec<(f64, f64)> = (0..bins)
        .filter(|b| count[*b] > 0)
        .map(|b| {
            (
                (b as f64 + 0.5) * 0.5,
                1.0 - (sum[b] / count[b] as f64 - inner) / step,
            )
        })
        .collect();
    let crossing = |level: f64| -> Option<f64> {
        pts.windows(2).find_map(|w| {
            let ((d0, v0), (d1, v1)) = (w[0], w[1]);
            (v0 >= level && v1 < level).then(|| d0 + (v0 - level) / (v0 - v1) * (d1 - d0))
        })
    };
    let d90 = crossing(0.9)?;
    let d10 = crossing(0.1)?;
    (d10 > d90).then_some(d10 - d90)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A disc of `contrast` on 0 with a linear edge `width` px wide.
    fn disc(n: usize, r: f64, contrast: f64, width: f64) -> Vec<f32> {
        let c = (n as f64 - 1.0) / 2.0;
        (0..n * n)
            .map(|i| {
                let d = (((i % n) as f64 - c).powi(2) + ((i / n) as f64 - c).powi(2)).sqrt();
                let t = ((r + width / 2.0 - d) / width).clamp(0.0, 1.0);
                (contrast * t) as f32
            })
            .collect()
    }

    #[test]
    fn edge_rise_grows_with_blur_and_cnr_with_contrast() {
        let n = 64;
        let c = 31.5;
        let sharp = disc(n, 10.0, 50.0, 1.0);
        let blurred = disc(n, 10.0, 50.0, 5.0);
        let l = LesionDisc {
            cx: c,
            cy: c,
            r: 10.0,
            contrast: 50.0,
        };
        let ms = measure_lesion(&sharp, n, n, &l, &[]);
        let mb = measure_lesion(&blurred, n, n, &l, &[]);
        // A linear ramp of width w rises 10-90% over 0.8 w.
        let (es, eb) = (ms.edge_rise_px.unwrap(), mb.edge_rise_px.unwrap());
        assert!((eb - 4.0).abs() < 0.8, "blurred edge rise {eb}");
        assert!(es < 2.0 && es < eb, "sharp {es}");
        assert!(ms.border_gradient > mb.border_gradient);
        assert!((ms.contrast_recovery - 1.0).abs() < 0.02);
        // Noise-free background: CNR is limited by the 1e-9 floor, i.e. huge.
        assert!(ms.cnr > 1e6);
        // With a noisy ring of known sd, CNR = contrast / sd.
        let mut noisy = sharp.clone();
        let mut s = 1u64;
        for v in noisy.iter_mut() {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            *v += if (s >> 33) & 1 == 0 { 5.0 } else { -5.0 };
        }
        let m = measure_lesion(&noisy, n, n, &l, &[]);
        assert!((m.ring_sd - 5.0).abs() < 0.3, "ring sd {}", m.ring_sd);
        assert!((m.cnr - 10.0).abs() < 1.5, "cnr {}", m.cnr);
    }
}
