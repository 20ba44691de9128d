//! The ultrasound simulator, by known answers: Rayleigh speckle, attenuation before and after
//! time-gain compensation, shadows and specular echoes at bone, the phantom volume and the CLI.

mod common;

use synthscope::io::phantom::PhantomConfig;
use synthscope::io::ultrasound::{
    self, BeamFrame, Medium, Probe, ProbeKind, Tissue, UltrasoundConfig,
};

fn soft(echo: f32, att: f32) -> Tissue {
    Tissue {
        echogenicity: echo,
        attenuation_db_cm_mhz: att,
        impedance: 1.6,
    }
}

/// A linear probe at the top of a 100 x 100 mm medium (1 mm pixels), looking down (+y).
fn linear_config() -> UltrasoundConfig {
    UltrasoundConfig {
        probe: Probe {
            kind: ProbeKind::Linear,
            origin: [50.0, 0.0],
            direction_deg: 90.0,
            width: 60.0,
            depth_mm: 90.0,
            lines: 121,
            sample_mm: 0.25,
        },
        frequency_mhz: 3.0,
        axial_sigma_mm: 0.5,
        lateral_sigma_mm: 1.0,
        tgc_db_cm_mhz: 0.0,
        noise: 0.0,
        specular_gain: 1.5,
        elevation_correlation: 0.0,
        dynamic_range_db: 50.0,
        white: 3.0,
        seed: 5,
    }
}

/// Values of `v` (laid out like `f`) on lines `lines` and depths `mm` (mm).
fn region(f: &BeamFrame, v: &[f32], lines: std::ops::Range<usize>, mm: (f64, f64)) -> Vec<f32> {
    let mut out = Vec::new();
    for l in lines {
        for s in 0..f.samples {
            let d = f.depth_mm(s);
            if d >= mm.0 && d < mm.1 {
                out.push(v[l * f.samples + s]);
            }
        }
    }
    out
}

fn mean(v: &[f32]) -> f64 {
    v.iter().map(|&x| x as f64).sum::<f64>() / v.len() as f64
}

#[test]
fn fully_developed_speckle_is_rayleigh() {
    let cfg = linear_config();
    let medium = Medium::uniform(100, 100, 1.0, soft(1.0, 0.0));
    let f = ultrasound::simulate(&medium, &cfg, 0);
    let env = region(&f, &f.raw, 10..111, (5.0, 85.0));
    let m = mean(&env);
    let var = env.iter().map(|&x| (x as f64 - m).powi(2)).sum::<f64>() / env.len() as f64;
    let ratio = m / var.sqrt();
    // Rayleigh: mean / std = sqrt(pi / (4 - pi)) = 1.913.
    assert!((ratio - 1.913).abs() < 0.06, "mean/std {ratio:.3}");
    // Unit-energy PSF: the mean intensity equals the echogenicity.
    let intensity = env.iter().map(|&x| (x as f64).powi(2)).sum::<f64>() / env.len() as f64;
    assert!(
        (intensity - 1.0).abs() < 0.06,
        "mean intensity {intensity:.3}"
    );
    // Half the echogenicity: half the intensity.
    let dim = ultrasound::simulate(&Medium::uniform(100, 100, 1.0, soft(0.5, 0.0)), &cfg, 0);
    let env2 = region(&dim, &dim.raw, 10..111, (5.0, 85.0));
    let i2 = env2.iter().map(|&x| (x as f64).powi(2)).sum::<f64>() / env2.len() as f64;
    assert!(
        (i2 / intensity - 0.5).abs() < 0.01,
        "ratio {}",
        i2 / intensity
    );
}

/// Least-squares slope (dB per cm) of 10 log10(mean intensity) over 5 mm depth bins.
fn intensity_slope_db_per_cm(f: &BeamFrame, v: &[f32]) -> f64 {
    let (mut xs, mut ys) = (Vec::new(), Vec::new());
    let mut d = 5.0;
    while d + 5.0 <= 85.0 {
        let r = region(f, v, 10..111, (d, d + 5.0));
        let i = r.iter().map(|&x| (x as f64).powi(2)).sum::<f64>() / r.len() as f64;
        xs.push((d + 2.5) / 10.0);
        ys.push(10.0 * i.log10());
        d += 5.0;
    }
    let (mx, my) = (
        xs.iter().sum::<f64>() / xs.len() as f64,
        ys.iter().sum::<f64>() / ys.len() as f64,
    );
    let sxy: f64 = xs.iter().zip(&ys).map(|(x, y)| (x - mx) * (y - my)).sum();
    let sxx: f64 = xs.iter().map(|x| (x - mx).powi(2)).sum();
    sxy / sxx
}

#[test]
fn attenuation_decays_with_depth_and_tgc_flattens_it() {
    let mut cfg = linear_config();
    let medium = Medium::uniform(100, 100, 1.0, soft(1.0, 0.5));
    let f = ultrasound::simulate(&medium, &cfg, 0);
    // Round trip at 0.5 dB/cm/MHz and 3 MHz: -3 dB per cm of depth.
    let before = intensity_slope_db_per_cm(&f, &f.raw);
    assert!(
        (before + 3.0).abs() < 0.15,
        "slope before TGC {before:.3} dB/cm"
    );
    cfg.tgc_db_cm_mhz = 0.5;
    let g = ultrasound::simulate(&medium, &cfg, 0);
    let after = intensity_slope_db_per_cm(&g, &g.compensated());
    assert!(after.abs() < 0.15, "slope after TGC {after:.3} dB/cm");
    // TGC set for a weaker attenuation leaves part of the decay.
    cfg.tgc_db_cm_mhz = 0.25;
    let h = ultrasound::simulate(&medium, &cfg, 0);
    let part = intensity_slope_db_per_cm(&h, &h.compensated());
    assert!(
        (part + 1.5).abs() < 0.15,
        "slope with half TGC {part:.3} dB/cm"
    );
}

#[test]
fn bone_casts_a_shadow_and_a_bright_surface_echo() {
    let mut cfg = linear_config();
    cfg.tgc_db_cm_mhz = 0.5;
    let mut medium = Medium::uniform(100, 100, 1.0, soft(0.5, 0.5));
    // A bone disc of radius 8 mm centred at (50, 35) mm.
    for y in 0..100 {
        for x in 0..100 {
            let (dx, dy) = (x as f64 - 50.0, y as f64 - 35.0);
            if dx * dx + dy * dy <= 64.0 {
                medium.tissues[x + 100 * y] = Tissue::from_hu(1450.0);
            }
        }
    }
    let f = ultrasound::simulate(&medium, &cfg, 0);
    let env = f.compensated();
    // Line l is at x = 20 + 0.5 l mm: lines 52..69 pass within 4 mm of the disc's centre.
    let behind = mean(&region(&f, &env, 52..69, (50.0, 85.0)));
    let beside = mean(&region(&f, &env, 10..30, (50.0, 85.0)));
    assert!(
        behind < 0.2 * beside,
        "shadow {behind:.4} vs neighbourhood {beside:.4}"
    );
    // The near surface (y = 27 mm) echoes far above the speckle around it.
    let surface = region(&f, &env, 58..63, (25.0, 29.0));
    let peak = surface.iter().cloned().fold(0.0f32, f32::max) as f64;
    let speckle = mean(&region(&f, &env, 10..30, (20.0, 35.0)));
    assert!(
        peak > 3.0 * speckle,
        "surface {peak:.3} vs speckle {speckle:.3}"
    );
}

#[test]
fn tissue_table_orders_the_phantom_tissues() {
    let csf = Tissue::from_hu(6.0);
    let white = Tissue::from_hu(28.0);
    let bone = Tissue::from_hu(1450.0);
    assert!(csf.echogenicity < 0.05, "CSF is anechoic");
    assert!(white.echogenicity > 5.0 * csf.echogenicity);
    assert!(bone.impedance > 3.0 * white.impedance);
    assert!(bone.attenuation_db_cm_mhz > 4.0 * white.attenuation_db_cm_mhz);
    assert_eq!(Tissue::from_hu(-1000.0), Tissue::AIR);
}

#[test]
fn phantom_ultrasound_shares_the_mr_grid_and_is_deterministic() {
    let cfg = PhantomConfig::small();
    let us = ultrasound::phantom_ultrasound(&cfg);
    let mr = synthscope::io::phantom::phantom_mr(&cfg, synthscope::io::phantom::MrContrast::T1);
    assert_eq!(us.geometry, mr.geometry);
    assert_eq!(us.meta.modality.code(), "US");
    assert!(us.data.iter().all(|v| (0.0..=1.0).contains(v)));
    let again = ultrasound::phantom_ultrasound(&cfg);
    assert_eq!(us.data, again.data);
    // The corner behind the apex is outside the sector; most of the head is inside it.
    let [nx, ny, nz] = us.geometry.dims;
    let z = nz / 2;
    assert_eq!(us.get(0, 0, z), 0.0);
    let inside = (0..nx * ny)
        .filter(|i| us.data[z * nx * ny + i] > 0.0)
        .count();
    assert!(
        inside > nx * ny / 3,
        "{inside} of {} pixels imaged",
        nx * ny
    );
    // The skull nearest the probe echoes brighter than the brain behind it.
    let ct = ultrasound::phantom_tissue_ct(&cfg);
    let (mut bone, mut brain) = (Vec::new(), Vec::new());
    for i in 0..nx * ny {
        let (hu, v) = (ct.data[z * nx * ny + i], us.data[z * nx * ny + i]);
        if v == 0.0 {
            continue;
        }
        // Near the probe (it sits at -x, looking along +x): the first third of the grid.
        if hu > 400.0 && i % nx < nx / 3 {
            bone.push(v);
        } else if (20.0..45.0).contains(&hu) {
            brain.push(v);
        }
    }
    assert!(
        mean(&bone) > mean(&brain) + 0.05,
        "bone {} brain {}",
        mean(&bone),
        mean(&brain)
    );
}

#[test]
fn cli_phantom_writes_ultrasound_nifti() {
    let dir = tempfile::tempdir().unwrap();
    common::run_ok(
        common::synthscope()
            .args(["phantom", "--small", "--ultrasound", "--out"])
            .arg(dir.path()),
    );
    let us = synthscope::io::nifti::read_nifti(&dir.path().join("us.nii.gz")).unwrap();
    let mr = synthscope::io::nifti::read_nifti(&dir.path().join("mr_t1.nii.gz")).unwrap();
    assert_eq!(us.geometry.dims, mr.geometry.dims);
    let (lo, hi) = us.min_max();
    assert!(lo >= 0.0 && hi <= 1.0 && hi > 0.5, "range {lo}..{hi}");
}
