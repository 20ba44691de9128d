//! Varied phantom patients: anatomy that differs between seeds, parameters within their ranges,
//! and CT noise that is correlated like a reconstruction kernel's, 3-4.5 HU, leaving grey and
//! white matter apart at the 40/80 brain window.

use synthscope::io::phantom::{
    PatientVariation, PhantomConfig, phantom_ct, phantom_patient, varied_patient_config,
};
use synthscope::volume::Volume;

/// A 1.2 mm isotropic CT grid around the brain, in the head frame.
fn grid() -> PhantomConfig {
    PhantomConfig {
        ct_dims: [150, 176, 84],
        ct_spacing: [1.2, 1.2, 1.2],
        ..PhantomConfig::small()
    }
}

/// Patient k's CT on the head-frame grid, with its noise or without.
fn patient_ct(k: usize, noise: bool) -> (Volume, PatientVariation) {
    let mut cfg = varied_patient_config(&grid(), k);
    let v = cfg.variation.clone().unwrap();
    if !noise {
        cfg.variation.as_mut().unwrap().ct_noise_hu = 0.0;
    }
    (phantom_ct(&cfg), v)
}

fn world(v: &Volume, i: usize) -> [f64; 3] {
    let [nx, ny, _] = v.geometry.dims;
    let (x, y, z) = (i % nx, (i / nx) % ny, i / (nx * ny));
    v.geometry.world_from_voxel([x as f64, y as f64, z as f64])
}

/// Head volume (ml): CT above -500 HU.
fn head_ml(v: &Volume) -> f64 {
    let s = v.geometry.spacing;
    v.data.iter().filter(|h| **h > -500.0).count() as f64 * s[0] * s[1] * s[2] / 1000.0
}

/// Ventricle volume (ml): CSF (0..12 HU) in a central box that holds no other CSF.
fn ventricles_ml(v: &Volume) -> f64 {
    let s = v.geometry.spacing;
    let n = (0..v.data.len())
        .filter(|&i| {
            let h = v.data[i];
            let w = world(v, i);
            (0.0..=12.0).contains(&h)
                && w[0].abs() < 35.0
                && w[1].abs() < 55.0
                && w[2] > -8.0
                && w[2] < 42.0
        })
        .count();
    n as f64 * s[0] * s[1] * s[2] / 1000.0
}

/// Lesions: 6-connected blobs of lesion-core voxels (56..60 HU), at least 8 voxels each.
fn lesion_count(v: &Volume) -> usize {
    let [nx, ny, nz] = v.geometry.dims;
    let core: Vec<bool> = v.data.iter().map(|h| (56.0..=60.0).contains(h)).collect();
    let mut seen = vec![false; core.len()];
    let mut count = 0;
    for start in 0..core.len() {
        if !core[start] || seen[start] {
            continue;
        }
        let mut stack = vec![start];
        seen[start] = true;
        let mut size = 0;
        while let Some(i) = stack.pop() {
            size += 1;
            let (x, y, z) = (i % nx, (i / nx) % ny, i / (nx * ny));
            let mut push = |j: usize| {
                if core[j] && !seen[j] {
                    seen[j] = true;
                    stack.push(j);
                }
            };
            if x > 0 {
                push(i - 1);
            }
            if x + 1 < nx {
                push(i + 1);
            }
            if y > 0 {
                push(i - nx);
            }
            if y + 1 < ny {
                push(i + nx);
            }
            if z > 0 {
                push(i - nx * ny);
            }
            if z + 1 < nz {
                push(i + nx * ny);
            }
        }
        if size >= 8 {
            count += 1;
        }
    }
    count
}

#[test]
fn seeds_give_different_anatomy() {
    let mut heads = Vec::new();
    let mut vents = Vec::new();
    let mut lesions = Vec::new();
    for k in 0..8 {
        let (ct, var) = patient_ct(k, false);
        let (h, ve, l) = (head_ml(&ct), ventricles_ml(&ct), lesion_count(&ct));
        println!(
            "patient {k}: head {h:.0} ml, ventricles {ve:.1} ml, lesions {l} (drawn {}), head scale {:.3?}, atrophy {:.2}",
            var.lesions.len(),
            var.head_scale,
            var.atrophy
        );
        assert_eq!(
            l,
            var.lesions.len(),
            "patient {k}: lesions measured vs drawn"
        );
        heads.push(h);
        vents.push(ve);
        lesions.push(l);
    }
    let ratio = |v: &[f64]| {
        v.iter().cloned().fold(f64::MIN, f64::max) / v.iter().cloned().fold(f64::MAX, f64::min)
    };
    println!(
        "head volume max/min {:.2}, ventricle volume max/min {:.2}",
        ratio(&heads),
        ratio(&vents)
    );
    assert!(ratio(&heads) > 1.15, "head sizes hardly differ: {heads:?}");
    assert!(
        ratio(&vents) > 1.5,
        "ventricle volumes hardly differ: {vents:?}"
    );
    assert!((heads[1] - heads[2]).abs() > 0.01 * heads[1]);
    assert!((vents[1] - vents[2]).abs() > 0.05 * vents[1]);
    let mut distinct = lesions.clone();
    distinct.sort();
    distinct.dedup();
    assert!(distinct.len() >= 3, "lesion counts {lesions:?}");
}

#[test]
fn parameters_stay_within_their_ranges() {
    let r = PatientVariation::RANGES;
    let mut lo = [f64::MAX; 12];
    let mut hi = [f64::MIN; 12];
    let mut counts = [0usize; PatientVariation::MAX_LESIONS + 1];
    for k in 0..500 {
        let v = varied_patient_config(&PhantomConfig::small(), k)
            .variation
            .unwrap();
        let vals = [
            v.head_scale[0],
            v.head_scale[1],
            v.head_scale[2],
            v.skull_thickness,
            v.ventricle_scale,
            v.atrophy,
            v.gyral_frequency,
            v.gyral_depth,
            v.frontal_sinus_scale[0],
            v.sphenoid_scale,
            v.ct_noise_hu,
            v.noise_kernel_voxels,
        ];
        for (i, x) in vals.iter().enumerate() {
            assert!(
                *x >= r[i].1 && *x <= r[i].2,
                "patient {k}: {} = {x} outside {:?}",
                r[i].0,
                r[i]
            );
            lo[i] = lo[i].min(*x);
            hi[i] = hi[i].max(*x);
        }
        for s in v.frontal_sinus_scale {
            assert!(s >= r[8].1 && s <= r[8].2);
        }
        counts[v.lesions.len()] += 1;
        for (_, rad) in &v.lesions {
            assert!(
                *rad >= PatientVariation::LESION_RADIUS.0
                    && *rad <= PatientVariation::LESION_RADIUS.1
            );
        }
    }
    for i in 0..12 {
        let span = (hi[i] - lo[i]) / (r[i].2 - r[i].1);
        println!(
            "{:<20} drawn {:.3}..{:.3} of {:.3}..{:.3}",
            r[i].0, lo[i], hi[i], r[i].1, r[i].2
        );
        assert!(span > 0.9, "{} covers only {span:.2} of its range", r[i].0);
    }
    println!("lesion counts 0..=4: {counts:?}");
    assert!(counts.iter().all(|c| *c > 30), "lesion counts {counts:?}");
}

#[test]
fn ct_noise_is_kernel_correlated_and_grey_white_separate() {
    for k in [0, 3] {
        let (noisy, var) = patient_ct(k, true);
        let (clean, _) = patient_ct(k, false);
        let [nx, _, _] = clean.geometry.dims;
        // Uniform white matter: a voxel and its +x neighbour both pure white matter (28 HU).
        let white: Vec<usize> = (0..clean.data.len() - 1)
            .filter(|&i| clean.data[i] == 28.0 && clean.data[i + 1] == 28.0 && (i + 1) % nx != 0)
            .collect();
        let grey: Vec<usize> = (0..clean.data.len())
            .filter(|&i| clean.data[i] == 38.0)
            .collect();
        assert!(
            white.len() > 10_000 && grey.len() > 1_000,
            "{} {}",
            white.len(),
            grey.len()
        );
        let n: Vec<f64> = white
            .iter()
            .map(|&i| (noisy.data[i] - 28.0) as f64)
            .collect();
        let m = n.iter().sum::<f64>() / n.len() as f64;
        let sd = (n.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (n.len() - 1) as f64).sqrt();
        let lag: f64 = white
            .iter()
            .map(|&i| (noisy.data[i] - 28.0) as f64 * (noisy.data[i + 1] - 28.0) as f64)
            .sum::<f64>()
            / n.len() as f64;
        let rho = (lag - m * m) / (sd * sd);
        let expected_rho = (-1.0 / (4.0 * var.noise_kernel_voxels.powi(2))).exp();
        // At 40/80 (0..80 HU shown), the windowed means of grey and white matter.
        let win = |i: &usize| noisy.data[*i].clamp(0.0, 80.0) as f64;
        let g_mean = grey.iter().map(win).sum::<f64>() / grey.len() as f64;
        let w_mean = white.iter().map(win).sum::<f64>() / white.len() as f64;
        println!(
            "patient {k}: noise sd {sd:.2} HU (drawn {:.2}), lag-1 correlation {rho:.2} (kernel {:.2} voxels, expected {expected_rho:.2}), grey - white {:.2} HU = {:.1} sd",
            var.ct_noise_hu,
            var.noise_kernel_voxels,
            g_mean - w_mean,
            (g_mean - w_mean) / sd
        );
        assert!((3.0..=6.0).contains(&sd), "noise sd {sd}");
        assert!(
            (sd - var.ct_noise_hu).abs() < 0.1 * var.ct_noise_hu,
            "sd {sd} vs drawn {}",
            var.ct_noise_hu
        );
        assert!(rho > 0.4, "lag-1 correlation {rho}");
        assert!(
            (rho - expected_rho).abs() < 0.1,
            "lag-1 correlation {rho} vs {expected_rho}"
        );
        assert!(m.abs() < 0.3, "noise mean {m}");
        assert!(
            g_mean - w_mean > 2.0 * sd,
            "grey {g_mean} white {w_mean} sd {sd}"
        );
    }
}

#[test]
fn demo_patients_are_unchanged() {
    // The plain training patients keep the demo anatomy: the lesion of the demo head only.
    let (ct, _) = phantom_patient(&grid(), 1);
    assert!(ct.data.iter().any(|h| (56.0..=60.0).contains(h)));
    assert!(PhantomConfig::default().variation.is_none());
}
