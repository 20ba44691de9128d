//! Low-dose CT simulation against known answers: a disc's line integral is its chord, FBP of
//! a noiseless sinogram gives the image back, and the noise variance scales as 1 / I0.

use synthscope::synth::ldct::noise::{image_slice, noisy_sinogram};
use synthscope::synth::ldct::{
    DoseConfig, LesionPhantomConfig, ParallelBeam, SplitMix, image_volume, lesion_patient,
};

/// A disc of value `a` and radius `r` centred on an n x n image, 5 x 5 supersampled.
fn disc(n: usize, r: f64, a: f32) -> Vec<f32> {
    let c = (n as f64 - 1.0) / 2.0;
    (0..n * n)
        .map(|i| {
            let (x, y) = ((i % n) as f64 - c, (i / n) as f64 - c);
            let mut hits = 0;
            for sy in 0..5 {
                for sx in 0..5 {
                    let (u, v) = (x + (sx as f64 - 2.0) / 5.0, y + (sy as f64 - 2.0) / 5.0);
                    hits += usize::from(u * u + v * v < r * r);
                }
            }
            a * hits as f32 / 25.0
        })
        .collect()
}

#[test]
fn disc_line_integral_is_its_chord() {
    let (n, r, a) = (96, 30.0, 0.02f32);
    let s = ParallelBeam::for_image(n);
    let sino = s.forward(&disc(n, r, a));
    let mut worst: f64 = 0.0;
    for k in [0, s.angles / 7, s.angles / 3, s.angles / 2, s.angles - 1] {
        for d in 0..s.detectors {
            let u = s.bin_position(d);
            let p = sino.data[k * s.detectors + d] as f64;
            if u.abs() < r - 2.0 {
                let chord = 2.0 * a as f64 * (r * r - u * u).sqrt();
                worst = worst.max((p - chord).abs() / chord);
            } else if u.abs() > r + 2.0 {
                assert!(p.abs() < 1e-6, "ray {u} misses the disc but integrates {p}");
            }
        }
    }
    assert!(worst < 0.01, "worst relative chord error {worst}");
}

#[test]
fn fbp_of_a_noiseless_sinogram_reproduces_the_phantom() {
    let cfg = LesionPhantomConfig {
        slices: 3,
        ..Default::default()
    };
    let p = lesion_patient(&cfg, 0);
    let n = cfg.size;
    let truth = &p.truth.data[n * n..2 * n * n];
    let dose = DoseConfig::default();
    let img = image_slice(truth, n, cfg.pixel_mm, &dose, None, &mut SplitMix::new(1));
    // Error in flat regions (the 5 x 5 neighbourhood within 1 HU) inside the body, and everywhere
    // inside the body (edges included).
    let (mut flat, mut nf, mut all, mut na) = (0.0f64, 0usize, 0.0f64, 0usize);
    for y in 2..n - 2 {
        for x in 2..n - 2 {
            let t = truth[x + n * y];
            if t < -500.0 {
                continue;
            }
            let e = (img[x + n * y] - t) as f64;
            all += e * e;
            na += 1;
            let uniform = (0..25).all(|i| {
                let (dx, dy) = (i % 5, i / 5);
                (truth[(x + dx - 2) + n * (y + dy - 2)] - t).abs() < 1.0
            });
            if uniform {
                flat += e.abs();
                nf += 1;
            }
        }
    }
    let flat_mae = flat / nf as f64;
    let rmse = (all / na as f64).sqrt();
    eprintln!(
        "noiseless FBP: MAE {flat_mae:.2} HU in flat regions ({nf} px), RMSE {rmse:.1} HU in the body ({na} px)"
    );
    assert!(nf > 1000, "{nf} flat pixels");
    assert!(flat_mae < 6.0, "flat-region MAE {flat_mae} HU");
    assert!(rmse < 40.0, "body RMSE {rmse} HU");
}

#[test]
fn noise_variance_scales_as_one_over_i0() {
    let n = 96;
    let s = ParallelBeam::for_image(n);
    // Water (0.0192 /mm at 2 mm pixels) in a disc.
    let sino = s.forward(&disc(n, 40.0, 0.0384));
    let clean = s.fbp(&sino);
    let var_at = |i0: f64, seed: u64| {
        let noisy = s.fbp(&noisy_sinogram(&sino, i0, &mut SplitMix::new(seed)));
        let c = (n as f64 - 1.0) / 2.0;
        let d: Vec<f64> = (0..n * n)
            .filter(|i| ((i % n) as f64 - c).hypot((i / n) as f64 - c) < 30.0)
            .map(|i| (noisy[i] - clean[i]) as f64)
            .collect();
        let m = d.iter().sum::<f64>() / d.len() as f64;
        d.iter().map(|v| (v - m).powi(2)).sum::<f64>() / (d.len() - 1) as f64
    };
    let (v1, v4, v16) = (var_at(1.0e4, 1), var_at(4.0e4, 2), var_at(1.6e5, 3));
    let (r1, r2) = (v1 / v4, v4 / v16);
    eprintln!("variance ratios for 4x dose: {r1:.2}, {r2:.2}");
    assert!(
        (r1 - 4.0).abs() < 0.8 && (r2 - 4.0).abs() < 0.8,
        "ratios {r1} {r2}"
    );
}

#[test]
fn volumes_need_square_pixels_and_keep_their_grid() {
    let cfg = LesionPhantomConfig {
        size: 48,
        slices: 2,
        pixel_mm: 5.0,
        ..Default::default()
    };
    let p = lesion_patient(&cfg, 3);
    let dose = DoseConfig::default();
    let low = image_volume(&p.truth, &dose, Some(dose.low_dose_i0()), 1).unwrap();
    assert_eq!(low.geometry, p.truth.geometry);
    assert!(low.meta.description.contains("I0 50000"));
    let mut bad = p.truth.clone();
    bad.geometry.spacing[1] = 2.5;
    let e = image_volume(&bad, &dose, None, 1).unwrap_err().to_string();
    assert!(e.contains("square pixels"), "{e}");
    assert!(
        DoseConfig {
            dose_fraction: 0.0,
            ..dose
        }
        .validate()
        .is_err()
    );
}
