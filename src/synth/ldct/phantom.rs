//! Abdominal phantom patients with liver lesions for low-dose CT denoising: a body of fat and
//! muscle, liver, spleen, aorta, a vertebra with its canal and a bowel gas pocket, each patient
//! with its own sizes, and spherical lesions in the liver of three size classes and varied
//! contrast (hypo- and hyper-dense). Truth images are rendered with 3 x 3 supersampling.

use super::{DoseConfig, LdctError, SplitMix, image_volume};
use crate::volume::{Geometry, Modality, Volume, VolumeMeta};
use serde::{Deserialize, Serialize};

/// Grid and lesion count of the phantom patients.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LesionPhantomConfig {
    /// Side of each square slice (pixels).
    #[serde(default = "default_size")]
    pub size: usize,
    /// Slices per patient.
    #[serde(default = "default_slices")]
    pub slices: usize,
    /// In-plane pixel size (mm).
    #[serde(default = "default_pixel")]
    pub pixel_mm: f64,
    /// Slice spacing (mm).
    #[serde(default = "default_slice_mm")]
    pub slice_mm: f64,
    /// Lesions of each size class per patient.
    #[serde(default = "default_per_class")]
    pub lesions_per_class: usize,
}

fn default_size() -> usize {
    128
}
fn default_slices() -> usize {
    8
}
fn default_pixel() -> f64 {
    2.0
}
fn default_slice_mm() -> f64 {
    3.0
}
fn default_per_class() -> usize {
    3
}

impl Default for LesionPhantomConfig {
    fn default() -> Self {
        Self {
            size: default_size(),
            slices: default_slices(),
            pixel_mm: default_pixel(),
            slice_mm: default_slice_mm(),
            lesions_per_class: default_per_class(),
        }
    }
}

/// Lesion size class by radius.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SizeClass {
    /// Radius 2-3.5 mm (1-1.75 pixels at 2 mm).
    Small,
    /// Radius 4-6 mm.
    Medium,
    /// Radius 7-10 mm.
    Large,
}

impl SizeClass {
    /// Every class, small first.
    pub const ALL: [SizeClass; 3] = [SizeClass::Small, SizeClass::Medium, SizeClass::Large];

    /// Radius range (mm).
    pub fn radius_mm(self) -> (f64, f64) {
        match self {
            SizeClass::Small => (2.0, 3.5),
            SizeClass::Medium => (4.0, 6.0),
            SizeClass::Large => (7.0, 10.0),
        }
    }

    /// Display name.
    pub fn label(self) -> &'static str {
        match self {
            SizeClass::Small => "small",
            SizeClass::Medium => "medium",
            SizeClass::Large => "large",
        }
    }
}

/// A spherical lesion.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Lesion {
    /// Centre in voxel coordinates (x, y in pixels; z, the slice, an integer).
    pub centre: [f64; 2],
    /// Slice of the centre.
    pub slice: usize,
    /// Radius (mm).
    pub radius_mm: f64,
    /// Lesion minus liver (HU).
    pub contrast_hu: f64,
    /// Size class.
    pub class: SizeClass,
}

impl Lesion {
    /// Radius in pixels on slice `z` (0 where the sphere does not reach it).
    pub fn radius_px_on(&self, z: usize, cfg: &LesionPhantomConfig) -> f64 {
        let dz = (z as f64 - self.slice as f64) * cfg.slice_mm;
        (self.radius_mm.powi(2) - dz * dz).max(0.0).sqrt() / cfg.pixel_mm
    }
}

/// A phantom patient: the noiseless truth (HU) and its lesions.
#[derive(Clone, Debug)]
pub struct LesionPatient {
    /// Patient number.
    pub index: usize,
    /// The phantom's HU on the grid (supersampled, no noise).
    pub truth: Volume,
    /// Its lesions.
    pub lesions: Vec<Lesion>,
    /// The grid it was made on.
    pub config: LesionPhantomConfig,
}

/// An ellipse (mm, in the slice plane) with a rotation.
#[derive(Clone, Copy, Debug)]
struct Ellipse {
    c: [f64; 2],
    a: f64,
    b: f64,
    angle: f64,
}

impl Ellipse {
    /// Squared normalised radius at p (< 1 inside).
    fn rho2(&self, p: [f64; 2], scale: f64) -> f64 {
        let (s, c) = self.angle.sin_cos();
        let (dx, dy) = (p[0] - self.c[0], p[1] - self.c[1]);
        let u = dx * c + dy * s;
        let v = -dx * s + dy * c;
        (u / (self.a * scale)).powi(2) + (v / (self.b * scale)).powi(2)
    }
}

/// Anatomy of one patient.
struct Anatomy {
    body: Ellipse,
    fat_mm: f64,
    liver: Ellipse,
    spleen: Ellipse,
    aorta: Ellipse,
    vertebra: Ellipse,
    canal: Ellipse,
    gas: Ellipse,
    liver_hu: f64,
}

impl Anatomy {
    fn new(rng: &mut SplitMix) -> Self {
        let a = rng.range(100.0, 115.0);
        let b = rng.range(72.0, 86.0);
        let circle = |c: [f64; 2], r: f64| Ellipse {
            c,
            a: r,
            b: r,
            angle: 0.0,
        };
        Self {
            body: Ellipse {
                c: [0.0, 0.0],
                a,
                b,
                angle: 0.0,
            },
            fat_mm: rng.range(7.0, 14.0),
            liver: Ellipse {
                c: [rng.range(-42.0, -32.0), rng.range(-12.0, -2.0)],
                a: rng.range(52.0, 60.0),
                b: rng.range(40.0, 48.0),
                angle: rng.range(-0.3, 0.3),
            },
            spleen: Ellipse {
                c: [rng.range(52.0, 62.0), rng.range(5.0, 20.0)],
                a: rng.range(18.0, 24.0),
                b: rng.range(12.0, 16.0),
                angle: rng.range(0.3, 0.9),
            },
            aorta: circle([rng.range(8.0, 16.0), b * 0.42], rng.range(8.0, 11.0)),
            vertebra: circle([0.0, b * 0.68], rng.range(13.0, 16.0)),
            canal: circle([0.0, b * 0.68 + 17.0], 6.0),
            gas: circle([rng.range(20.0, 40.0), -b * 0.45], rng.range(5.0, 9.0)),
            liver_hu: rng.range(55.0, 65.0),
        }
    }

    /// HU at p (mm) on a slice where organs are scaled by `s`.
    fn hu(&self, p: [f64; 2], s: f64) -> f64 {
        if self.body.rho2(p, 1.0) >= 1.0 {
            return -1000.0;
        }
        let inner = Ellipse {
            a: self.body.a - self.fat_mm,
            b: self.body.b - self.fat_mm,
            ..self.body
        };
        if inner.rho2(p, 1.0) >= 1.0 {
            return -100.0;
        }
        if self.gas.rho2(p, s) < 1.0 {
            return -900.0;
        }
        if self.canal.rho2(p, 1.0) < 1.0 {
            return 20.0;
        }
        let v = self.vertebra.rho2(p, 1.0);
        if v < 1.0 {
            return if v > 0.7 { 700.0 } else { 250.0 };
        }
        if self.aorta.rho2(p, 1.0) < 1.0 {
            return 150.0;
        }
        if self.liver.rho2(p, s) < 1.0 {
            return self.liver_hu;
        }
        if self.spleen.rho2(p, s) < 1.0 {
            return 48.0;
        }
        40.0
    }
}

/// Phantom patient `k` (its anatomy and lesions drawn from seed k): truth in HU.
pub fn lesion_patient(cfg: &LesionPhantomConfig, k: usize) -> LesionPatient {
    let mut rng = SplitMix::new(0x1E51_0000 + k as u64);
    let anat = Anatomy::new(&mut rng);
    let (n, nz) = (cfg.size, cfg.slices.max(1));
    // Organs shrink a little away from the middle slice.
    let scale = |z: usize| 1.0 - 0.04 * ((z as f64 - (nz as f64 - 1.0) / 2.0).abs());
    let mm = |i: f64| (i - (n as f64 - 1.0) / 2.0) * cfg.pixel_mm;
    // Lesions: in the liver on their centre slice, 6 pixels from its border, 6 mm apart.
    let mut lesions: Vec<Lesion> = Vec::new();
    for class in SizeClass::ALL {
        let (r0, r1) = class.radius_mm();
        let mut placed = 0;
        let mut tries = 0;
        while placed < cfg.lesions_per_class && tries < 2000 {
            tries += 1;
            let r = rng.range(r0, r1);
            let z = if nz > 2 {
                1 + (rng.next_u64() as usize) % (nz - 2)
            } else {
                0
            };
            let c = [
                rng.range(0.0, n as f64 - 1.0),
                rng.range(0.0, n as f64 - 1.0),
            ];
            let p = [mm(c[0]), mm(c[1])];
            let shrunk = Ellipse {
                a: anat.liver.a * scale(z) - r - 6.0 * cfg.pixel_mm,
                b: anat.liver.b * scale(z) - r - 6.0 * cfg.pixel_mm,
                ..anat.liver
            };
            if shrunk.a <= 0.0 || shrunk.b <= 0.0 || shrunk.rho2(p, 1.0) >= 1.0 {
                continue;
            }
            let apart = lesions.iter().all(|o| {
                let d = ((o.centre[0] - c[0]).powi(2) + (o.centre[1] - c[1]).powi(2)).sqrt()
                    * cfg.pixel_mm;
                d > o.radius_mm + r + 6.0
                    || (o.slice as f64 - z as f64).abs() * cfg.slice_mm > o.radius_mm + r
            });
            // The lesion and a ring 6 pixels wide around it lie in liver itself (not in the
            // aorta or spleen where the ellipses overlap): the background ring of the lesion
            // measures (crate::analysis::lesion) stays in liver.
            let in_liver = |q: [f64; 2]| (anat.hu(q, scale(z)) - anat.liver_hu).abs() < 1e-9;
            let margin = 6.0 * cfg.pixel_mm;
            let ring = (0..24).all(|i| {
                let t = i as f64 * std::f64::consts::PI / 12.0;
                [0.5, 1.0].iter().all(|f| {
                    let d = r + f * margin;
                    in_liver([p[0] + d * t.cos(), p[1] + d * t.sin()])
                })
            });
            if !apart || !ring || !in_liver(p) {
                continue;
            }
            let magnitude = rng.range(25.0, 70.0);
            let contrast = if rng.uniform() < 0.6 {
                -magnitude
            } else {
                magnitude
            };
            lesions.push(Lesion {
                centre: c,
                slice: z,
                radius_mm: r,
                contrast_hu: contrast,
                class,
            });
            placed += 1;
        }
    }
    let mut data = vec![0f32; n * n * nz];
    for z in 0..nz {
        let s = scale(z);
        let on_slice: Vec<(Lesion, f64)> = lesions
            .iter()
            .map(|l| (*l, l.radius_px_on(z, cfg)))
            .filter(|(_, r)| *r > 0.0)
            .collect();
        for y in 0..n {
            for x in 0..n {
                let mut acc = 0.0;
                for sy in 0..3 {
                    for sx in 0..3 {
                        let (fx, fy) = (
                            x as f64 + (sx as f64 - 1.0) / 3.0,
                            y as f64 + (sy as f64 - 1.0) / 3.0,
                        );
                        let p = [mm(fx), mm(fy)];
                        let mut v = anat.hu(p, s);
                        for (l, r) in &on_slice {
                            if (fx - l.centre[0]).powi(2) + (fy - l.centre[1]).powi(2) < r * r {
                                v += l.contrast_hu;
                            }
                        }
                        acc += v;
                    }
                }
                data[x + n * (y + n * z)] = (acc / 9.0) as f32;
            }
        }
    }
    let geometry = Geometry::axis_aligned(
        [n, n, nz],
        [cfg.pixel_mm, cfg.pixel_mm, cfg.slice_mm],
        [
            -(n as f64 - 1.0) / 2.0 * cfg.pixel_mm,
            -(n as f64 - 1.0) / 2.0 * cfg.pixel_mm,
            0.0,
        ],
    );
    let meta = VolumeMeta {
        modality: Modality::Ct,
        series_uid: format!("2.25.{}", 7_000_000 + k),
        description: format!("Lesion phantom {k} (truth, HU)"),
        patient_name: format!("SynthScope^Lesion{k}"),
        patient_id: format!("LESION-{k:03}"),
        source: "lesion phantom (src/synth/ldct/phantom.rs)".into(),
        ..Default::default()
    };
    LesionPatient {
        index: k,
        truth: Volume::new(geometry, data, meta),
        lesions,
        config: *cfg,
    }
}

/// A patient imaged twice: normal dose and low dose (independent noise).
#[derive(Clone, Debug)]
pub struct ImagedPatient {
    /// The phantom.
    pub patient: LesionPatient,
    /// At `dose.i0`.
    pub normal: Volume,
    /// At `dose.low_dose_i0()`.
    pub low: Volume,
}

impl LesionPatient {
    /// Image this patient at normal and low dose (seeded by its index).
    pub fn imaged(self, dose: &DoseConfig) -> Result<ImagedPatient, LdctError> {
        dose.validate()?;
        let seed = 0xD05E ^ (self.index as u64) << 20;
        let mut normal = image_volume(&self.truth, dose, Some(dose.i0), seed)?;
        let mut low = image_volume(&self.truth, dose, Some(dose.low_dose_i0()), seed ^ 0xABCD)?;
        normal.meta.description = format!(
            "Lesion phantom {} normal dose (I0 {:.0})",
            self.index, dose.i0
        );
        low.meta.description = format!(
            "Lesion phantom {} low dose ({:.0}% dose, I0 {:.0})",
            self.index,
            100.0 * dose.dose_fraction,
            dose.low_dose_i0()
        );
        Ok(ImagedPatient {
            patient: self,
            normal,
            low,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patients_differ_and_hold_their_lesions() {
        // The default in-plane grid (a coarser one leaves too little liver for the 6-pixel margins).
        let cfg = LesionPhantomConfig {
            slices: 5,
            ..Default::default()
        };
        let a = lesion_patient(&cfg, 0);
        let b = lesion_patient(&cfg, 1);
        assert_ne!(a.truth.data, b.truth.data);
        assert!(a.lesions.len() >= 6, "{} lesions placed", a.lesions.len());
        for l in &a.lesions {
            let (x, y) = (l.centre[0].round() as usize, l.centre[1].round() as usize);
            let v = a.truth.get(x, y, l.slice) as f64;
            // Centre pixel: liver (55-65 HU) plus the contrast, partial volume aside.
            if l.class != SizeClass::Small {
                assert!((v - 60.0 - l.contrast_hu).abs() < 12.0, "{l:?}: {v}");
            }
        }
    }
}
