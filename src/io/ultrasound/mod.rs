//! Simulated B-mode ultrasound of the phantom (or of any CT in HU): the acoustic properties
//! of each voxel come from its tissue (through its HU), each axial slice is scanned by a
//! sector or linear probe in beam space ([`beam`]), log-compressed and scan-converted back
//! onto the slice's grid, so the ultrasound volume shares its grid with the MR it was made
//! beside (the US -> MR pair is registered by construction; training ignores the pairing).
//!
//! What it models: fully developed speckle (complex Gaussian scatterers, Rayleigh envelope)
//! convolved with a Gaussian PSF; attenuation with depth (dB/cm/MHz, round trip); bright
//! specular boundaries where the impedance changes along the beam, and the energy they do not
//! pass on (acoustic shadows behind bone, total reflection at air); receive noise; time-gain
//! compensation at a set attenuation. Not modelled: refraction, reverberation, speed of sound
//! changes (every depth is mapped at 1540 m/s).

pub mod beam;
mod scan;

pub use beam::{BeamFrame, simulate};
pub use scan::{ProbeKind, scan_convert};

use crate::io::phantom::{self, PhantomConfig};
use crate::volume::{Geometry, Modality, Volume, VolumeMeta};
use rayon::prelude::*;
use serde::Serialize;

/// Acoustic properties of one point.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Tissue {
    /// Backscatter strength (variance of the scatterer amplitude; 1 = the brightest tissue).
    pub echogenicity: f32,
    /// Attenuation coefficient (dB / cm / MHz, one way).
    pub attenuation_db_cm_mhz: f32,
    /// Acoustic impedance (MRayl).
    pub impedance: f32,
}

impl Tissue {
    /// Coupling gel between the probe and the skin: anechoic, nearly lossless, water's impedance.
    pub const GEL: Tissue = Tissue {
        echogenicity: 0.0,
        attenuation_db_cm_mhz: 0.002,
        impedance: 1.48,
    };

    /// Air: no echo, total reflection at any tissue boundary.
    pub const AIR: Tissue = Tissue {
        echogenicity: 0.0,
        attenuation_db_cm_mhz: 12.0,
        impedance: 0.0004,
    };

    /// The tissue of a voxel of `hu` Hounsfield units (linear between the phantom's tissues).
    pub fn from_hu(hu: f32) -> Tissue {
        // (HU, echogenicity, attenuation, impedance): air, fat/scalp, CSF, white matter, grey
        // matter, lesion, marrow, cortical bone. Bone is the thin, partly mineralised skull of
        // the fetal scans the method was made for (adult skull attenuates 2-3 times more).
        const TABLE: [(f32, f32, f32, f32); 8] = [
            (-1000.0, 0.0, 12.0, 0.0004),
            (-40.0, 0.7, 0.6, 1.45),
            (6.0, 0.01, 0.002, 1.51),
            (28.0, 0.45, 0.8, 1.62),
            (38.0, 0.25, 0.6, 1.60),
            (58.0, 0.8, 0.7, 1.64),
            (420.0, 0.9, 2.5, 3.2),
            (1450.0, 1.0, 4.0, 5.0),
        ];
        let t = |e: (f32, f32, f32, f32)| Tissue {
            echogenicity: e.1,
            attenuation_db_cm_mhz: e.2,
            impedance: e.3,
        };
        if hu <= TABLE[0].0 {
            return t(TABLE[0]);
        }
        for w in TABLE.windows(2) {
            let (a, b) = (w[0], w[1]);
            if hu <= b.0 {
                let f = (hu - a.0) / (b.0 - a.0);
                let lerp = |x: f32, y: f32| x + (y - x) * f;
                return Tissue {
                    echogenicity: lerp(a.1, b.1),
                    attenuation_db_cm_mhz: lerp(a.2, b.2),
                    impedance: lerp(a.3, b.3),
                };
            }
        }
        t(TABLE[7])
    }
}

/// A 2D map of tissues on an axis-aligned pixel grid in the slice plane (mm).
#[derive(Clone, Debug)]
pub struct Medium {
    /// Pixels along x.
    pub nx: usize,
    /// Pixels along y.
    pub ny: usize,
    /// Pixel size (mm) along x and y.
    pub spacing: [f64; 2],
    /// Position (mm) of the centre of pixel (0, 0).
    pub origin: [f64; 2],
    /// Tissues, x fastest.
    pub tissues: Vec<Tissue>,
}

impl Medium {
    /// One tissue everywhere on an `nx` x `ny` grid of `spacing` mm, starting at the origin.
    pub fn uniform(nx: usize, ny: usize, spacing: f64, t: Tissue) -> Self {
        Self {
            nx,
            ny,
            spacing: [spacing, spacing],
            origin: [0.0, 0.0],
            tissues: vec![t; nx * ny],
        }
    }

    /// The tissue at point `p` (mm), bilinear between pixel centres; air outside the grid.
    pub fn at(&self, p: [f64; 2]) -> Tissue {
        let fx = (p[0] - self.origin[0]) / self.spacing[0];
        let fy = (p[1] - self.origin[1]) / self.spacing[1];
        if !(fx >= -0.5 && fy >= -0.5 && fx <= self.nx as f64 - 0.5 && fy <= self.ny as f64 - 0.5) {
            return Tissue::AIR;
        }
        let fx = fx.clamp(0.0, (self.nx - 1) as f64);
        let fy = fy.clamp(0.0, (self.ny - 1) as f64);
        let (x0, y0) = (fx.floor() as usize, fy.floor() as usize);
        let (x1, y1) = ((x0 + 1).min(self.nx - 1), (y0 + 1).min(self.ny - 1));
        let (ax, ay) = ((fx - x0 as f64) as f32, (fy - y0 as f64) as f32);
        let g = |x: usize, y: usize| self.tissues[x + self.nx * y];
        let (a, b, c, d) = (g(x0, y0), g(x1, y0), g(x0, y1), g(x1, y1));
        let mix = |f: fn(&Tissue) -> f32| {
            let top = f(&a) * (1.0 - ax) + f(&b) * ax;
            let bottom = f(&c) * (1.0 - ax) + f(&d) * ax;
            top * (1.0 - ay) + bottom * ay
        };
        Tissue {
            echogenicity: mix(|t| t.echogenicity),
            attenuation_db_cm_mhz: mix(|t| t.attenuation_db_cm_mhz),
            impedance: mix(|t| t.impedance),
        }
    }
}

/// Where the probe sits and how it scans, in the slice plane (mm).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Probe {
    /// Sector (phased array, lines fan out from an apex) or linear (parallel lines).
    pub kind: ProbeKind,
    /// Sector: the apex. Linear: the centre of the aperture.
    pub origin: [f64; 2],
    /// Direction of the central beam (degrees in the plane; 0 = +x, 90 = +y).
    pub direction_deg: f64,
    /// Sector: opening angle (degrees). Linear: aperture width (mm).
    pub width: f64,
    /// Imaging depth (mm).
    pub depth_mm: f64,
    /// Scan lines.
    pub lines: usize,
    /// Depth step of the beam-space samples (mm).
    pub sample_mm: f64,
}

/// Settings of the simulator.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct UltrasoundConfig {
    /// The probe.
    pub probe: Probe,
    /// Centre frequency (MHz).
    pub frequency_mhz: f64,
    /// Axial PSF: Gaussian standard deviation (mm).
    pub axial_sigma_mm: f64,
    /// Lateral PSF: Gaussian standard deviation (mm).
    pub lateral_sigma_mm: f64,
    /// Time-gain compensation: the attenuation it undoes (dB/cm/MHz; 0 = none).
    pub tgc_db_cm_mhz: f64,
    /// Receive noise standard deviation (envelope units; echogenicity 1 speckle has RMS 1).
    pub noise: f32,
    /// Amplitude of a specular echo per unit amplitude reflection coefficient.
    pub specular_gain: f32,
    /// Speckle correlation with the neighbouring slices (elevation beam width), 0..1.
    pub elevation_correlation: f64,
    /// Log compression: the displayed dynamic range (dB).
    pub dynamic_range_db: f64,
    /// Log compression: the envelope shown as full white.
    pub white: f32,
    /// Speckle seed.
    pub seed: u64,
}

impl UltrasoundConfig {
    /// A 2.5 MHz sector probe at the temporal window: apex beside the head's right side (-x),
    /// looking across it (+x), for a grid centred on the head like the phantom's.
    pub fn phantom_default(g: &Geometry) -> Self {
        let c = g.world_from_voxel([
            (g.dims[0] as f64 - 1.0) / 2.0,
            (g.dims[1] as f64 - 1.0) / 2.0,
            0.0,
        ]);
        Self {
            probe: Probe {
                kind: ProbeKind::Sector,
                origin: [c[0] - 88.0, c[1]],
                direction_deg: 0.0,
                width: 80.0,
                depth_mm: 176.0,
                lines: 192,
                sample_mm: 0.25,
            },
            frequency_mhz: 2.5,
            axial_sigma_mm: 0.6,
            lateral_sigma_mm: 1.2,
            tgc_db_cm_mhz: 0.6,
            noise: 3e-5,
            specular_gain: 1.5,
            elevation_correlation: 0.5,
            dynamic_range_db: 50.0,
            white: 3.0,
            seed: 11,
        }
    }

    /// Log compression of one envelope value into 0..1.
    pub fn compress(&self, envelope: f32) -> f32 {
        let db = 20.0 * (envelope.max(1e-12) / self.white).log10();
        (1.0 + db / self.dynamic_range_db as f32).clamp(0.0, 1.0)
    }
}

/// The medium of axial slice `z` of a CT volume in HU (axis-aligned grids only; the slice
/// plane's x and y are the grid's first two axes).
pub fn medium_of_slice(ct_hu: &Volume, z: usize) -> Medium {
    let g = &ct_hu.geometry;
    let [nx, ny, _] = g.dims;
    let o = g.world_from_voxel([0.0, 0.0, z as f64]);
    let slice = &ct_hu.data[z * nx * ny..(z + 1) * nx * ny];
    Medium {
        nx,
        ny,
        spacing: [g.spacing[0], g.spacing[1]],
        origin: [o[0], o[1]],
        tissues: slice.iter().map(|&hu| Tissue::from_hu(hu)).collect(),
    }
}

/// The simulated ultrasound of a CT volume in HU, on the CT's grid: log-compressed 0..1 B-mode
/// slices, zero outside the probe's field of view.
pub fn ultrasound_of_ct(ct_hu: &Volume, cfg: &UltrasoundConfig) -> Volume {
    let g = ct_hu.geometry.clone();
    let [nx, ny, nz] = g.dims;
    let slices: Vec<Vec<f32>> = (0..nz)
        .into_par_iter()
        .map(|z| {
            let medium = medium_of_slice(ct_hu, z);
            let frame = simulate(&medium, cfg, z);
            let shown: Vec<f32> = frame
                .compensated()
                .iter()
                .map(|&e| cfg.compress(e))
                .collect();
            scan_convert(&frame, &shown, &cfg.probe, &medium)
        })
        .collect();
    let mut data = Vec::with_capacity(nx * ny * nz);
    for s in slices {
        data.extend(s);
    }
    let meta = VolumeMeta {
        modality: Modality::Other("US".into()),
        series_uid: format!("{}.9", ct_hu.meta.series_uid),
        description: "Simulated ultrasound (B-mode, 0..1)".into(),
        source: "ultrasound simulator".into(),
        ..ct_hu.meta.clone()
    };
    Volume::new(g, data, meta)
}

/// The phantom's noise-free CT on its MR grid: what the simulator reads the tissues from.
pub fn phantom_tissue_ct(cfg: &PhantomConfig) -> Volume {
    let mut quiet = cfg.clone();
    quiet.ct_noise_hu = 0.0;
    if let Some(v) = quiet.variation.as_mut() {
        v.ct_noise_hu = 0.0;
    }
    phantom::phantom_ct_on_mr_grid(&quiet)
}

/// The phantom's ultrasound on its MR grid (registered with `phantom_mr(cfg, ..)`), with the
/// default probe for that grid and the phantom's seed.
pub fn phantom_ultrasound(cfg: &PhantomConfig) -> Volume {
    let ct = phantom_tissue_ct(cfg);
    let mut us = UltrasoundConfig::phantom_default(&ct.geometry);
    us.seed = cfg.seed.wrapping_mul(31).wrapping_add(11);
    let mut v = ultrasound_of_ct(&ct, &us);
    v.meta.description = "Phantom ultrasound (simulated B-mode, 0..1)".into();
    v
}
