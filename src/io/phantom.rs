//! The embedded demo pair: a procedural 3D head phantom imaged as CT (HU) and T1/T2 MR.
//!
//! The head is built from nested soft-edged ellipsoids in a head frame equal to the CT's
//! patient frame (LPS, mm, origin at the head centre). Each structure paints over the ones
//! before it with a coverage fraction that ramps over one voxel, which gives partial-volume
//! edges without supersampling. The MR is imaged on its own grid with the head moved by a
//! known rigid transform, `moving_from_fixed`, that registration is expected to recover.

use crate::volume::{Geometry, Modality, Vec3, Volume, VolumeMeta};
use rayon::prelude::*;
use serde::Serialize;

/// MR contrast of a phantom image.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum MrContrast {
    /// T1-weighted: fat and white matter bright, CSF dark.
    T1,
    /// T2-weighted: CSF bright, white matter darker than grey.
    T2,
}

/// A rigid transform: rotation (degrees about L, P, S axes, applied x then y then z) and translation (mm).
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Rigid {
    /// Rotation angles in degrees about the x, y, z axes.
    pub rotation_deg: Vec3,
    /// Translation in mm.
    pub translation: Vec3,
    /// Centre of rotation in mm.
    pub center: Vec3,
}

impl Rigid {
    /// The rotation matrix R = Rz * Ry * Rx.
    pub fn matrix(&self) -> [[f64; 3]; 3] {
        crate::volume::transform::euler_matrix(self.rotation_deg.map(f64::to_radians))
    }

    /// Map point p: R (p - c) + c + t.
    pub fn apply(&self, p: Vec3) -> Vec3 {
        let r = self.matrix();
        let q = [
            p[0] - self.center[0],
            p[1] - self.center[1],
            p[2] - self.center[2],
        ];
        let mut out = [0.0; 3];
        for i in 0..3 {
            out[i] = r[i][0] * q[0]
                + r[i][1] * q[1]
                + r[i][2] * q[2]
                + self.center[i]
                + self.translation[i];
        }
        out
    }

    /// Map point p by the inverse: R^T (p - c - t) + c.
    pub fn apply_inverse(&self, p: Vec3) -> Vec3 {
        let r = self.matrix();
        let q = [
            p[0] - self.center[0] - self.translation[0],
            p[1] - self.center[1] - self.translation[1],
            p[2] - self.center[2] - self.translation[2],
        ];
        let mut out = [0.0; 3];
        for i in 0..3 {
            out[i] = r[0][i] * q[0] + r[1][i] * q[1] + r[2][i] * q[2] + self.center[i];
        }
        out
    }
}

/// Settings of the phantom; `Default` is the embedded demo pair.
#[derive(Clone, Debug, Serialize)]
pub struct PhantomConfig {
    /// Seed of the noise.
    pub seed: u64,
    /// CT grid size.
    pub ct_dims: [usize; 3],
    /// CT voxel size (mm).
    pub ct_spacing: Vec3,
    /// MR grid size.
    pub mr_dims: [usize; 3],
    /// MR voxel size (mm).
    pub mr_spacing: Vec3,
    /// Where the head appears in the MR's patient frame: MR position = moving_from_fixed(CT position).
    pub moving_from_fixed: Rigid,
    /// CT noise standard deviation (HU).
    pub ct_noise_hu: f32,
    /// MR noise standard deviation, as a fraction of white-matter T1 signal.
    pub mr_noise: f32,
    /// A varied patient's anatomy and CT noise (None: the demo head, white CT noise of
    /// `ct_noise_hu`). With a variation the CT noise is correlated like a reconstruction
    /// kernel's, with the variation's standard deviation.
    pub variation: Option<PatientVariation>,
}

impl Default for PhantomConfig {
    fn default() -> Self {
        Self {
            seed: 7,
            ct_dims: [256, 256, 96],
            ct_spacing: [0.8, 0.8, 1.6],
            mr_dims: [176, 176, 128],
            mr_spacing: [1.2, 1.2, 1.2],
            moving_from_fixed: Rigid {
                rotation_deg: [3.0, -2.0, 5.0],
                translation: [4.0, -6.0, 3.0],
                center: [0.0, 0.0, 0.0],
            },
            ct_noise_hu: 8.0,
            mr_noise: 0.02,
            variation: None,
        }
    }
}

impl PhantomConfig {
    /// The same head with the CT sampled on `n` slices over the same extent (for load benchmarks).
    pub fn with_ct_slices(mut self, n: usize) -> Self {
        let extent = self.ct_spacing[2] * self.ct_dims[2] as f64;
        self.ct_dims[2] = n.max(1);
        self.ct_spacing[2] = extent / n.max(1) as f64;
        self
    }

    /// A small version for tests (coarser grids, same head).
    pub fn small() -> Self {
        Self {
            ct_dims: [96, 96, 48],
            ct_spacing: [2.2, 2.2, 3.2],
            mr_dims: [72, 72, 56],
            mr_spacing: [2.8, 2.8, 2.8],
            ..Self::default()
        }
    }

    fn anatomy(&self) -> Anatomy {
        match &self.variation {
            Some(v) => Anatomy::varied(v),
            None => Anatomy::demo(),
        }
    }

    fn ct_geometry(&self) -> Geometry {
        centred_geometry(self.ct_dims, self.ct_spacing, [0.0, 0.0, 10.0])
    }

    fn mr_geometry(&self) -> Geometry {
        centred_geometry(self.mr_dims, self.mr_spacing, [0.0, 0.0, 10.0])
    }
}

fn centred_geometry(dims: [usize; 3], spacing: Vec3, center: Vec3) -> Geometry {
    let origin = [
        center[0] - spacing[0] * (dims[0] as f64 - 1.0) / 2.0,
        center[1] - spacing[1] * (dims[1] as f64 - 1.0) / 2.0,
        center[2] - spacing[2] * (dims[2] as f64 - 1.0) / 2.0,
    ];
    Geometry::axis_aligned(dims, spacing, origin)
}

/// Tissue classes of the phantom.
#[derive(Clone, Copy, Debug)]
enum Tissue {
    Air,
    Scalp,
    Cortical,
    Marrow,
    Csf,
    Grey,
    White,
    Lesion,
}

/// (CT HU, T1 signal, T2 signal) of a tissue; MR signals in units of 1000.
fn properties(t: Tissue) -> [f32; 3] {
    match t {
        Tissue::Air => [-1000.0, 0.0, 0.0],
        Tissue::Scalp => [-40.0, 0.85, 0.55],
        Tissue::Cortical => [1450.0, 0.05, 0.03],
        Tissue::Marrow => [420.0, 0.7, 0.4],
        Tissue::Csf => [6.0, 0.12, 1.0],
        Tissue::Grey => [38.0, 0.45, 0.6],
        Tissue::White => [28.0, 0.66, 0.42],
        Tissue::Lesion => [58.0, 0.32, 0.9],
    }
}

/// An ellipsoid in head coordinates.
#[derive(Clone, Copy, Debug)]
struct Ellipsoid {
    center: Vec3,
    radii: Vec3,
}

impl Ellipsoid {
    /// Signed distance estimate (mm, negative inside) by first-order correction of the
    /// ellipsoid's implicit function.
    fn distance(&self, p: Vec3) -> f64 {
        // Far outside the bounding box: coverage is zero whatever the exact distance.
        for a in 0..3 {
            let o = (p[a] - self.center[a]).abs() - self.radii[a];
            if o > 4.0 {
                return o;
            }
        }
        let q = [
            (p[0] - self.center[0]) / self.radii[0],
            (p[1] - self.center[1]) / self.radii[1],
            (p[2] - self.center[2]) / self.radii[2],
        ];
        let r = (q[0] * q[0] + q[1] * q[1] + q[2] * q[2]).sqrt();
        if r < 1e-9 {
            return -self.radii[0].min(self.radii[1]).min(self.radii[2]);
        }
        let g = [
            q[0] / self.radii[0] / r,
            q[1] / self.radii[1] / r,
            q[2] / self.radii[2] / r,
        ];
        let gn = (g[0] * g[0] + g[1] * g[1] + g[2] * g[2]).sqrt();
        (r - 1.0) / gn
    }
}

/// Head outline radii (mm) and the shells inside it, as fractions of the radii.
const HEAD: Vec3 = [74.0, 94.0, 82.0];

/// Coverage of a shape with signed distance `d` by a voxel of size `h` (linear ramp).
#[inline]
fn coverage(d: f64, h: f64) -> f32 {
    (0.5 - d / h).clamp(0.0, 1.0) as f32
}

/// How one phantom patient's anatomy and CT noise differ from the demo head, drawn from the
/// patient's seed by [`PatientVariation::from_seed`] within the ranges of
/// [`PatientVariation::RANGES`].
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PatientVariation {
    /// Head size and shape: scale of the head's left-right, front-back and foot-head radii.
    pub head_scale: Vec3,
    /// Skull thickness as a fraction of the head radius (the demo head: 0.05, about 4 mm).
    pub skull_thickness: f64,
    /// Scale of the lateral ventricles (before atrophy enlarges them further).
    pub ventricle_scale: f64,
    /// Atrophy 0..1: the brain shrinks from the skull, sulci widen, ventricles grow.
    pub atrophy: f64,
    /// Gyral pattern: spatial frequency scale of the cortical folding.
    pub gyral_frequency: f64,
    /// Gyral pattern: depth (mm) of the folding.
    pub gyral_depth: f64,
    /// Gyral pattern: shifts (mm) of the folding along x, y, z.
    pub gyral_shift: Vec3,
    /// Frontal sinus size (scale of its radii).
    pub frontal_sinus_scale: Vec3,
    /// Sphenoid sinus size (scale of its radii).
    pub sphenoid_scale: f64,
    /// Lesions: (centre in head mm, radius mm).
    pub lesions: Vec<(Vec3, f64)>,
    /// CT noise standard deviation (HU), after the reconstruction-kernel filter.
    pub ct_noise_hu: f64,
    /// Width (voxels, Gaussian sigma) of the in-plane kernel that correlates the CT noise.
    pub noise_kernel_voxels: f64,
}

/// A parameter's range: (name, low, high).
pub type ParamRange = (&'static str, f64, f64);

impl PatientVariation {
    /// Ranges of the drawn parameters (each scalar; vector parameters apply per axis).
    pub const RANGES: [ParamRange; 12] = [
        ("head_scale_x", 0.90, 1.08),
        ("head_scale_y", 0.92, 1.08),
        ("head_scale_z", 0.92, 1.06),
        ("skull_thickness", 0.035, 0.07),
        ("ventricle_scale", 0.7, 1.5),
        ("atrophy", 0.0, 1.0),
        ("gyral_frequency", 0.8, 1.25),
        ("gyral_depth", 1.0, 2.4),
        ("frontal_sinus_scale", 0.5, 1.4),
        ("sphenoid_scale", 0.7, 1.25),
        ("ct_noise_hu", 3.0, 4.5),
        ("noise_kernel_voxels", 0.7, 1.1),
    ];

    /// Most lesions a patient has (0..=MAX_LESIONS, uniformly).
    pub const MAX_LESIONS: usize = 4;
    /// Lesion radius range (mm).
    pub const LESION_RADIUS: (f64, f64) = (2.5, 6.5);

    /// The variation of the patient with `seed`.
    pub fn from_seed(seed: u64) -> Self {
        let mut s = seed ^ 0xA076_1D64_78BD_642F;
        let mut next = move || {
            s = s.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = s;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64
        };
        let r = Self::RANGES;
        let mut draw = |i: usize| r[i].1 + (r[i].2 - r[i].1) * next();
        let head_scale = [draw(0), draw(1), draw(2)];
        let skull_thickness = draw(3);
        let ventricle_scale = draw(4);
        let atrophy = draw(5);
        let gyral_frequency = draw(6);
        let gyral_depth = draw(7);
        let frontal_sinus_scale = [draw(8), draw(8), draw(8)];
        let sphenoid_scale = draw(9);
        let ct_noise_hu = draw(10);
        let noise_kernel_voxels = draw(11);
        let gyral_shift = [60.0 * next(), 60.0 * next(), 60.0 * next()];
        let n_lesions = ((Self::MAX_LESIONS + 1) as f64 * next()) as usize;
        let mut lesions: Vec<(Vec3, f64)> = Vec::new();
        let (r_lo, r_hi) = Self::LESION_RADIUS;
        // Lesions in the white matter, apart from each other so that each stays one blob.
        let mut tries = 0;
        while lesions.len() < n_lesions.min(Self::MAX_LESIONS) && tries < 200 {
            tries += 1;
            let u = [2.0 * next() - 1.0, 2.0 * next() - 1.0, 2.0 * next() - 1.0];
            let radius = r_lo + (r_hi - r_lo) * next();
            if u[0] * u[0] + u[1] * u[1] + u[2] * u[2] > 1.0 || u[0].abs() < 0.35 {
                continue;
            }
            let c = [
                u[0] * 0.5 * HEAD[0] * head_scale[0],
                u[1] * 0.5 * HEAD[1] * head_scale[1],
                8.0 + u[2] * 0.4 * HEAD[2] * head_scale[2],
            ];
            let apart = lesions.iter().all(|(o, ro)| {
                let d =
                    ((c[0] - o[0]).powi(2) + (c[1] - o[1]).powi(2) + (c[2] - o[2]).powi(2)).sqrt();
                d > radius + ro + 8.0
            });
            if apart {
                lesions.push((c, radius));
            }
        }
        Self {
            head_scale,
            skull_thickness,
            ventricle_scale,
            atrophy,
            gyral_frequency,
            gyral_depth,
            gyral_shift,
            frontal_sinus_scale,
            sphenoid_scale,
            lesions,
            ct_noise_hu,
            noise_kernel_voxels,
        }
    }
}

/// Every shape of one head; [`Anatomy::demo`] is the embedded demo head, number for number.
#[derive(Clone, Debug)]
struct Anatomy {
    head: Vec3,
    nose: Ellipsoid,
    ears: [Ellipsoid; 2],
    neck: f64,
    floor: f64,
    /// Outer cortical, marrow, inner cortical, CSF and grey-matter shells (fractions of `head`).
    shells: [f64; 5],
    gyri_amp: f64,
    gyri_freq: [f64; 4],
    gyri_shift: Vec3,
    white: Ellipsoid,
    eyes: [Ellipsoid; 2],
    ventricles: [Ellipsoid; 2],
    nuclei: [Ellipsoid; 2],
    lesions: Vec<Ellipsoid>,
    frontal_sinus: Ellipsoid,
    sphenoid_bone: Ellipsoid,
    sphenoid_air: Ellipsoid,
}

fn ell(center: Vec3, radii: Vec3) -> Ellipsoid {
    Ellipsoid { center, radii }
}

impl Anatomy {
    fn demo() -> Self {
        Self {
            head: HEAD,
            nose: ell([0.0, -93.0, -30.0], [10.0, 14.0, 20.0]),
            ears: [
                ell([74.0, 6.0, -12.0], [7.0, 13.0, 19.0]),
                ell([-74.0, 6.0, -12.0], [7.0, 13.0, 19.0]),
            ],
            neck: 52.0,
            floor: 34.0,
            shells: [0.94, 0.915, 0.89, 0.865, 0.84],
            gyri_amp: 1.5,
            gyri_freq: [0.21, 0.17, 0.19, 0.13],
            gyri_shift: [0.0, 0.0, 0.0],
            white: ell(
                [0.0, 0.0, 8.0],
                [HEAD[0] * 0.7, HEAD[1] * 0.7, HEAD[2] * 0.62],
            ),
            eyes: [
                ell([-31.0, -70.0, -24.0], [11.0, 11.0, 11.0]),
                ell([31.0, -71.5, -24.0], [11.0, 11.0, 11.0]),
            ],
            ventricles: [
                ell([-9.0, 2.0, 14.0], [6.0, 24.0, 9.0]),
                ell([9.0, 2.0, 14.0], [6.0, 24.0, 9.0]),
            ],
            nuclei: [
                ell([-20.0, 6.0, 2.0], [7.0, 12.0, 8.0]),
                ell([20.0, 6.0, 2.0], [7.0, 12.0, 8.0]),
            ],
            lesions: vec![ell([26.0, -24.0, 26.0], [5.0, 5.0, 5.0])],
            frontal_sinus: ell([0.0, -84.0, 6.0], [13.0, 5.0, 9.0]),
            sphenoid_bone: ell([0.0, -28.0, -42.0], [16.0, 14.0, 9.0]),
            sphenoid_air: ell([0.0, -28.0, -42.0], [11.0, 9.0, 6.0]),
        }
    }

    /// The head of a varied patient.
    fn varied(v: &PatientVariation) -> Self {
        let s = v.head_scale;
        let head = [HEAD[0] * s[0], HEAD[1] * s[1], HEAD[2] * s[2]];
        let sc = |p: Vec3| [p[0] * s[0], p[1] * s[1], p[2] * s[2]];
        let a = v.atrophy;
        let t = v.skull_thickness;
        // Atrophy widens the CSF space under the skull and shrinks the white matter.
        let csf = 0.94 - t - 0.025;
        let grey = csf - 0.025 - 0.045 * a;
        let brain = 1.0 - 0.08 * a;
        let vs = v.ventricle_scale * (1.0 + 0.6 * a);
        let f = v.gyral_frequency;
        let fs = v.frontal_sinus_scale;
        let ss = v.sphenoid_scale;
        let side = |x: f64, c: Vec3, r: Vec3| [ell([-x, c[1], c[2]], r), ell([x, c[1], c[2]], r)];
        Self {
            head,
            nose: ell(sc([0.0, -93.0, -30.0]), [10.0, 14.0, 20.0]),
            ears: [
                ell(sc([74.0, 6.0, -12.0]), [7.0, 13.0, 19.0]),
                ell(sc([-74.0, 6.0, -12.0]), [7.0, 13.0, 19.0]),
            ],
            neck: 52.0 * s[2],
            floor: 34.0 * s[2],
            shells: [0.94, 0.94 - t / 2.0, 0.94 - t, csf, grey],
            gyri_amp: v.gyral_depth * (1.0 + 0.5 * a),
            gyri_freq: [0.21 * f, 0.17 * f, 0.19 * f, 0.13 * f],
            gyri_shift: v.gyral_shift,
            white: ell(
                [0.0, 0.0, 8.0 * s[2]],
                [
                    head[0] * 0.7 * brain,
                    head[1] * 0.7 * brain,
                    head[2] * 0.62 * brain,
                ],
            ),
            eyes: [
                ell(sc([-31.0, -70.0, -24.0]), [11.0, 11.0, 11.0]),
                ell(sc([31.0, -71.5, -24.0]), [11.0, 11.0, 11.0]),
            ],
            ventricles: side(
                9.0 * s[0] * vs.sqrt(),
                sc([0.0, 2.0, 14.0]),
                [6.0 * vs, 24.0 * vs.sqrt() * s[1], 9.0 * vs],
            ),
            nuclei: side(20.0 * s[0], sc([0.0, 6.0, 2.0]), [7.0, 12.0, 8.0]),
            lesions: v.lesions.iter().map(|(c, r)| ell(*c, [*r; 3])).collect(),
            frontal_sinus: ell(
                sc([0.0, -84.0, 6.0]),
                [13.0 * fs[0], 5.0 * fs[1], 9.0 * fs[2]],
            ),
            sphenoid_bone: ell(sc([0.0, -28.0, -42.0]), [16.0, 14.0, 9.0]),
            sphenoid_air: ell(sc([0.0, -28.0, -42.0]), [11.0 * ss, 9.0 * ss, 6.0 * ss]),
        }
    }
}

/// Tissue properties of the demo head at `p`.
#[cfg(test)]
fn head_properties(p: Vec3, h: f64) -> [f32; 3] {
    head_properties_of(&Anatomy::demo(), p, h)
}

/// Tissue properties at head point `p`, blended over edges of width `h` (mm).
fn head_properties_of(a: &Anatomy, p: Vec3, h: f64) -> [f32; 3] {
    let head = a.head;
    // The scan stops at the neck: everything below z = -52 mm is outside the field of view.
    let neck = (p[2] + a.neck) / h;
    // All shells share the head's centre and shape, so one implicit-function evaluation gives
    // the distance to each: d(f) = (r - f) / |grad r|.
    let q = [p[0] / head[0], p[1] / head[1], p[2] / head[2]];
    let r = (q[0] * q[0] + q[1] * q[1] + q[2] * q[2]).sqrt().max(1e-9);
    let g = [q[0] / head[0] / r, q[1] / head[1] / r, q[2] / head[2] / r];
    let gn = (g[0] * g[0] + g[1] * g[1] + g[2] * g[2]).sqrt();
    let shell_d = |f: f64| (r - f) / gn;
    // Nothing (head, nose, ears) reaches beyond 1.25 head radii: most of the grid is air.
    if r > 1.25 + h / 70.0 {
        return properties(Tissue::Air);
    }
    let scalp_d = shell_d(1.0);
    // Nose and ears stick out of the head outline: they break its symmetry, as real heads do.
    let nose = a.nose.distance(p);
    let ear_l = a.ears[0].distance(p);
    let ear_r = a.ears[1].distance(p);
    let appendage = nose.min(ear_l).min(ear_r);
    if (scalp_d > h && appendage > h) || neck < -1.0 {
        return properties(Tissue::Air);
    }
    let mut v = properties(Tissue::Air);
    let mut paint = |t: Tissue, f: f32| {
        if f > 0.0 {
            let pr = properties(t);
            for c in 0..3 {
                v[c] = v[c] * (1.0 - f) + pr[c] * f;
            }
        }
    };
    let in_fov = (neck + 0.5).clamp(0.0, 1.0) as f32;
    let sh = a.shells;
    paint(Tissue::Scalp, coverage(scalp_d.min(appendage), h) * in_fov);
    paint(Tissue::Cortical, coverage(shell_d(sh[0]), h) * in_fov);
    paint(Tissue::Marrow, coverage(shell_d(sh[1]), h) * in_fov);
    paint(Tissue::Cortical, coverage(shell_d(sh[2]), h) * in_fov);
    // Skull base: a bony floor under the brain.
    let floor = (p[2] + a.floor) / h;
    paint(
        Tissue::Csf,
        (coverage(shell_d(sh[3]), h) as f64 * (floor + 0.5).clamp(0.0, 1.0)) as f32,
    );
    // Cortical folding: the grey-matter surface undulates like gyri and sulci.
    let (gf, gs) = (a.gyri_freq, a.gyri_shift);
    let gyri = a.gyri_amp
        * (((p[0] - gs[0]) * gf[0]).sin() * ((p[1] - gs[1]) * gf[1]).sin()
            + ((p[2] - gs[2]) * gf[2]).sin() * (p[1] * gf[3] + 1.0).cos());
    paint(
        Tissue::Grey,
        (coverage(shell_d(sh[4]) + gyri.min(0.0), h) as f64
            * (floor - 2.0 / h + 0.5).clamp(0.0, 1.0)) as f32,
    );
    paint(Tissue::White, coverage(a.white.distance(p) - gyri, h));
    // Eyes: vitreous globes in the orbits, in front of the brain and asymmetric in depth.
    for e in &a.eyes {
        paint(Tissue::Csf, coverage(e.distance(p), h));
    }
    // Lateral ventricles: two elongated CSF bodies either side of the midline.
    for e in &a.ventricles {
        paint(Tissue::Csf, coverage(e.distance(p), h));
    }
    // Grey-matter nuclei near the ventricles (deep grey).
    for e in &a.nuclei {
        paint(Tissue::Grey, coverage(e.distance(p), h));
    }
    // Lesions (the demo head: one small lesion in the left frontal white matter).
    for e in &a.lesions {
        paint(Tissue::Lesion, coverage(e.distance(p), h));
    }
    // Air sinuses: frontal (in the skull, anterior) and sphenoid (in the skull base).
    paint(Tissue::Air, coverage(a.frontal_sinus.distance(p), h));
    paint(
        Tissue::Cortical,
        coverage(a.sphenoid_bone.distance(p), h) * in_fov,
    );
    paint(
        Tissue::Air,
        coverage(a.sphenoid_air.distance(p), h) * in_fov,
    );
    v
}

/// Deterministic standard normal from (seed, index): splitmix64 + Box-Muller.
fn gauss(seed: u64, i: u64) -> (f32, f32) {
    let mut s = seed ^ i.wrapping_mul(0x9E37_79B9_7F4A_7C15);
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

/// Render the phantom on `geometry`, mapping grid points to head points through `head_from_world`.
fn render(
    anatomy: &Anatomy,
    geometry: &Geometry,
    head_from_world: impl Fn(Vec3) -> Vec3 + Sync,
    channel: usize,
) -> Vec<f32> {
    let h = geometry.spacing[0]
        .max(geometry.spacing[1])
        .max(geometry.spacing[2]);
    crate::volume::fill_grid(geometry, |w| {
        head_properties_of(anatomy, head_from_world(w), h)[channel]
    })
}

/// CT noise shaped like a reconstruction kernel's: white noise filtered in-plane by a separable
/// Gaussian of `sigma` voxels, scaled to standard deviation `std` (HU). The 1-D kernel has unit
/// energy, so the filtered field keeps the white noise's variance before scaling; neighbouring
/// voxels correlate by about exp(-1 / (4 sigma^2)).
fn correlated_noise(seed: u64, dims: [usize; 3], sigma: f64, std: f64) -> Vec<f32> {
    let [nx, ny, nz] = dims;
    let radius = (3.0 * sigma).ceil().max(1.0) as i64;
    let mut k: Vec<f64> = (-radius..=radius)
        .map(|i| (-(i * i) as f64 / (2.0 * sigma * sigma)).exp())
        .collect();
    let energy = k.iter().map(|v| v * v).sum::<f64>().sqrt();
    k.iter_mut().for_each(|v| *v /= energy);
    let plane = nx * ny;
    let mut out = vec![0f32; plane * nz];
    out.par_chunks_mut(plane.max(1))
        .enumerate()
        .for_each(|(z, slice)| {
            let white: Vec<f64> = (0..plane)
                .map(|i| gauss(seed, (z * plane + i) as u64).0 as f64)
                .collect();
            // Rows, then columns; edges wrap so that every voxel gets the full kernel.
            let mut rows = vec![0f64; plane];
            for y in 0..ny {
                for x in 0..nx {
                    let mut acc = 0.0;
                    for (j, kv) in k.iter().enumerate() {
                        let xx = (x as i64 + j as i64 - radius).rem_euclid(nx as i64) as usize;
                        acc += kv * white[xx + nx * y];
                    }
                    rows[x + nx * y] = acc;
                }
            }
            for y in 0..ny {
                for x in 0..nx {
                    let mut acc = 0.0;
                    for (j, kv) in k.iter().enumerate() {
                        let yy = (y as i64 + j as i64 - radius).rem_euclid(ny as i64) as usize;
                        acc += kv * rows[x + nx * yy];
                    }
                    slice[x + nx * y] = (acc * std) as f32;
                }
            }
        });
    out
}

fn meta(
    cfg: &PhantomConfig,
    modality: Modality,
    description: &str,
    uid_suffix: &str,
) -> VolumeMeta {
    // Valid DICOM UIDs (2.25.<UUID>), the same in every run for the same configuration and
    // different for different ones (another seed is another patient's series).
    use crate::io::dicom::write::uid_from;
    let key = serde_json::to_string(cfg).unwrap_or_default();
    VolumeMeta {
        modality,
        series_uid: uid_from(&format!("phantom:{key}:series:{uid_suffix}")),
        description: description.to_string(),
        patient_name: "SynthScope^Phantom".to_string(),
        patient_id: "PHANTOM-001".to_string(),
        study_uid: uid_from(&format!("phantom:{key}:study")),
        study_description: "Procedural head phantom".to_string(),
        frame_of_reference_uid: uid_from(&format!("phantom:{key}:frame-of-reference")),
        source: "embedded demo phantom".to_string(),
        ..Default::default()
    }
}

/// The phantom CT in HU on the CT grid (patient frame = head frame).
pub fn phantom_ct(cfg: &PhantomConfig) -> Volume {
    let v = render_ct(cfg, cfg.ct_geometry(), |w| w);
    Volume::new(v.0, v.1, meta(cfg, Modality::Ct, "Phantom CT (HU)", "2"))
}

/// The phantom CT on the MR grid, the head in the MR's pose: the CT half of a perfectly
/// registered pair (training data, known-answer tests).
pub fn phantom_ct_on_mr_grid(cfg: &PhantomConfig) -> Volume {
    let rigid = cfg.moving_from_fixed;
    let v = render_ct(cfg, cfg.mr_geometry(), |w| rigid.apply_inverse(w));
    Volume::new(
        v.0,
        v.1,
        meta(cfg, Modality::Ct, "Phantom CT on the MR grid (HU)", "5"),
    )
}

/// CT values on `g` with the CT noise, in whole HU as a scanner stores them.
fn render_ct(
    cfg: &PhantomConfig,
    g: Geometry,
    head_from_world: impl Fn(Vec3) -> Vec3 + Sync,
) -> (Geometry, Vec<f32>) {
    let mut data = render(&cfg.anatomy(), &g, head_from_world, 0);
    let seed = cfg.seed;
    match &cfg.variation {
        None => data.par_iter_mut().enumerate().for_each(|(i, v)| {
            let (n, _) = gauss(seed, i as u64);
            *v = (*v + cfg.ct_noise_hu * n).round().clamp(-1024.0, 3071.0);
        }),
        Some(var) => {
            let noise = if var.ct_noise_hu > 0.0 {
                correlated_noise(seed, g.dims, var.noise_kernel_voxels, var.ct_noise_hu)
            } else {
                vec![0.0; data.len()]
            };
            data.par_iter_mut().zip(noise).for_each(|(v, n)| {
                *v = (*v + n).round().clamp(-1024.0, 3071.0);
            });
        }
    }
    (g, data)
}

/// Phantom "patient" `k` for training: the demo head in its own pose and noise, as a registered
/// (CT, T1 MR) pair on the MR grid. Patient 0 has the demo pair's pose. The anatomy is the same
/// for every patient; only the pose, the noise and (through the pose) the MR bias field differ.
pub fn phantom_patient(base: &PhantomConfig, k: usize) -> (Volume, Volume) {
    let f = k as f64;
    let cfg = PhantomConfig {
        seed: base.seed.wrapping_add(1000 * k as u64),
        moving_from_fixed: Rigid {
            rotation_deg: [3.0 - 4.0 * f, -2.0 + 3.0 * f, 5.0 - 7.0 * f],
            translation: [4.0 - 3.0 * f, -6.0 + 4.0 * f, 3.0 - 2.0 * f],
            center: [0.0, 0.0, 0.0],
        },
        ..base.clone()
    };
    rayon::join(
        || phantom_ct_on_mr_grid(&cfg),
        || phantom_mr(&cfg, MrContrast::T1),
    )
}

/// The config of varied phantom patient `k` (see [`phantom_patient_varied`]): its own anatomy
/// ([`PatientVariation::from_seed`] of its seed), pose (within +-8 degrees, +-6 mm) and noise.
pub fn varied_patient_config(base: &PhantomConfig, k: usize) -> PhantomConfig {
    let seed = base.seed.wrapping_add(1000 * k as u64).wrapping_add(0x5EED);
    let mut s = seed;
    let mut u = move || {
        s = s.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = s;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0
    };
    PhantomConfig {
        seed,
        moving_from_fixed: Rigid {
            rotation_deg: [8.0 * u(), 8.0 * u(), 8.0 * u()],
            translation: [6.0 * u(), 6.0 * u(), 6.0 * u()],
            center: [0.0, 0.0, 0.0],
        },
        variation: Some(PatientVariation::from_seed(seed)),
        ..base.clone()
    }
}

/// Varied phantom patient `k`: a head of its own (size and shape, skull, ventricles, gyri,
/// sinuses, atrophy, lesions) in its own pose, with kernel-correlated CT noise, as a registered
/// (CT, T1 MR) pair on the MR grid. The demo pair and [`phantom_patient`] are unchanged.
pub fn phantom_patient_varied(base: &PhantomConfig, k: usize) -> (Volume, Volume) {
    let cfg = varied_patient_config(base, k);
    rayon::join(
        || phantom_ct_on_mr_grid(&cfg),
        || phantom_mr(&cfg, MrContrast::T1),
    )
}

/// The phantom MR on the MR grid, the head moved by `cfg.moving_from_fixed`, with Rician
/// noise and a smooth multiplicative bias field.
pub fn phantom_mr(cfg: &PhantomConfig, contrast: MrContrast) -> Volume {
    let g = cfg.mr_geometry();
    let channel = match contrast {
        MrContrast::T1 => 1,
        MrContrast::T2 => 2,
    };
    let rigid = cfg.moving_from_fixed;
    let mut data = render(&cfg.anatomy(), &g, |w| rigid.apply_inverse(w), channel);
    let seed = cfg.seed.wrapping_add(channel as u64 * 1_000_003);
    let sigma = cfg.mr_noise * 1000.0;
    let [nx, ny, _] = g.dims;
    data.par_chunks_mut(nx * ny)
        .enumerate()
        .for_each(|(z, slice)| {
            for y in 0..ny {
                for x in 0..nx {
                    let i = x + nx * (y + ny * z);
                    let w = g.world_from_voxel([x as f64, y as f64, z as f64]);
                    // Receive-coil bias: smooth, about +-15% over the head.
                    let bias = 1.0 + 0.12 * (w[0] / 90.0) - 0.08 * (w[1] / 110.0)
                        + 0.1 * (w[2] / 80.0)
                        - 0.05 * ((w[0] * w[0] + w[1] * w[1]) / 9000.0);
                    let s = slice[x + nx * y] * 1000.0 * bias as f32;
                    let (n1, n2) = gauss(seed, i as u64);
                    let m = ((s + sigma * n1).powi(2) + (sigma * n2).powi(2)).sqrt();
                    slice[x + nx * y] = m.round().min(4095.0);
                }
            }
        });
    let name = match contrast {
        MrContrast::T1 => ("Phantom T1 MR", "3"),
        MrContrast::T2 => ("Phantom T2 MR", "4"),
    };
    Volume::new(g, data, meta(cfg, Modality::Mr, name.0, name.1))
}

/// The embedded demo pair: (CT, T1 MR).
pub fn demo_pair() -> (Volume, Volume) {
    let cfg = PhantomConfig::default();
    rayon::join(|| phantom_ct(&cfg), || phantom_mr(&cfg, MrContrast::T1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rigid_inverse_round_trips() {
        let r = PhantomConfig::default().moving_from_fixed;
        let p = [12.0, -30.0, 44.0];
        let q = r.apply_inverse(r.apply(p));
        for a in 0..3 {
            assert!((p[a] - q[a]).abs() < 1e-9);
        }
    }

    #[test]
    fn tissues_have_expected_values_at_known_points() {
        let h = 0.5;
        // Centre of the left ventricle: CSF.
        assert!((head_properties([9.0, 2.0, 14.0], h)[0] - 6.0).abs() < 1.0);
        // Deep white matter.
        assert!((head_properties([-30.0, 30.0, 30.0], h)[0] - 28.0).abs() < 1.0);
        // Skull along +x: between 0.89 and 0.94 of 74 mm is bone (cortical or marrow).
        assert!(head_properties([0.915 * 74.0 + 0.95, 0.0, 0.0], h)[0] > 300.0);
        // Outside the head: air.
        assert_eq!(head_properties([0.0, 0.0, 95.0], h)[0], -1000.0);
        // Lesion centre.
        assert!((head_properties([26.0, -24.0, 26.0], h)[0] - 58.0).abs() < 1.0);
    }

    #[test]
    fn small_phantom_is_deterministic() {
        let cfg = PhantomConfig::small();
        let a = phantom_mr(&cfg, MrContrast::T1);
        let b = phantom_mr(&cfg, MrContrast::T1);
        assert_eq!(a.data, b.data);
    }
}
