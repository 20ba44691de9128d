//! Volumes: f32 voxels on a grid placed in patient space (LPS), plus the geometry maths.

pub mod resample;
pub mod transform;
mod window;

pub use transform::Affine;
pub use window::{CT_PRESETS, Colormap, WindowLevel, WindowPreset};

use serde::Serialize;
use std::sync::atomic::{AtomicU64, Ordering};

/// A 3-vector of f64 (patient coordinates in mm, or continuous voxel indices).
pub type Vec3 = [f64; 3];

/// Where a voxel grid sits in patient space.
///
/// `world_from_voxel(i, j, k) = origin + direction * diag(spacing) * [i, j, k]`,
/// with `direction` columns the unit axis vectors in LPS.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Geometry {
    /// Voxels along x (columns), y (rows), z (slices).
    pub dims: [usize; 3],
    /// Voxel size in mm along each grid axis.
    pub spacing: Vec3,
    /// LPS position of the centre of voxel (0, 0, 0), in mm.
    pub origin: Vec3,
    /// Direction cosines, row-major 3x3; column `a` is the LPS direction of grid axis `a`.
    pub direction: [[f64; 3]; 3],
}

impl Geometry {
    /// An axis-aligned grid (identity direction).
    pub fn axis_aligned(dims: [usize; 3], spacing: Vec3, origin: Vec3) -> Self {
        Self {
            dims,
            spacing,
            origin,
            direction: [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]],
        }
    }

    /// Number of voxels.
    pub fn len(&self) -> usize {
        self.dims[0] * self.dims[1] * self.dims[2]
    }

    /// True when the grid has no voxel.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Linear index of voxel (x, y, z); x varies fastest.
    #[inline]
    pub fn index(&self, x: usize, y: usize, z: usize) -> usize {
        x + self.dims[0] * (y + self.dims[1] * z)
    }

    /// Column `a` of the direction matrix scaled by the spacing: the LPS step of one voxel along axis `a`.
    pub fn axis_step(&self, a: usize) -> Vec3 {
        let d = &self.direction;
        [
            d[0][a] * self.spacing[a],
            d[1][a] * self.spacing[a],
            d[2][a] * self.spacing[a],
        ]
    }

    /// LPS position (mm) of continuous voxel index `p`.
    pub fn world_from_voxel(&self, p: Vec3) -> Vec3 {
        let mut w = self.origin;
        for a in 0..3 {
            let s = self.axis_step(a);
            for r in 0..3 {
                w[r] += s[r] * p[a];
            }
        }
        w
    }

    /// Continuous voxel index of LPS position `w` (mm).
    pub fn voxel_from_world(&self, w: Vec3) -> Vec3 {
        let d = [
            w[0] - self.origin[0],
            w[1] - self.origin[1],
            w[2] - self.origin[2],
        ];
        // direction is orthonormal in practice, but a sheared DICOM stack is not: invert the full matrix.
        let m = self.world_from_voxel_matrix();
        let inv = invert3(&m).unwrap_or(m);
        [
            inv[0][0] * d[0] + inv[0][1] * d[1] + inv[0][2] * d[2],
            inv[1][0] * d[0] + inv[1][1] * d[1] + inv[1][2] * d[2],
            inv[2][0] * d[0] + inv[2][1] * d[1] + inv[2][2] * d[2],
        ]
    }

    /// The 3x3 linear part of `world_from_voxel` (direction times spacing), row-major.
    pub fn world_from_voxel_matrix(&self) -> [[f64; 3]; 3] {
        let mut m = [[0.0; 3]; 3];
        for (r, row) in m.iter_mut().enumerate() {
            for (a, v) in row.iter_mut().enumerate() {
                *v = self.direction[r][a] * self.spacing[a];
            }
        }
        m
    }

    /// The 4x4 `world_from_voxel` affine (LPS), row-major.
    pub fn world_from_voxel_affine(&self) -> [[f64; 4]; 4] {
        let m = self.world_from_voxel_matrix();
        let o = self.origin;
        [
            [m[0][0], m[0][1], m[0][2], o[0]],
            [m[1][0], m[1][1], m[1][2], o[1]],
            [m[2][0], m[2][1], m[2][2], o[2]],
            [0.0, 0.0, 0.0, 1.0],
        ]
    }

    /// The eight corners of the grid (voxel centres) in LPS.
    pub fn corners(&self) -> [Vec3; 8] {
        let e = [
            self.dims[0].saturating_sub(1) as f64,
            self.dims[1].saturating_sub(1) as f64,
            self.dims[2].saturating_sub(1) as f64,
        ];
        let mut out = [[0.0; 3]; 8];
        for (i, c) in out.iter_mut().enumerate() {
            let p = [
                if i & 1 != 0 { e[0] } else { 0.0 },
                if i & 2 != 0 { e[1] } else { 0.0 },
                if i & 4 != 0 { e[2] } else { 0.0 },
            ];
            *c = self.world_from_voxel(p);
        }
        out
    }

    /// Axis-aligned LPS bounding box (min, max) of the voxel centres.
    pub fn world_bounds(&self) -> (Vec3, Vec3) {
        let mut lo = [f64::INFINITY; 3];
        let mut hi = [f64::NEG_INFINITY; 3];
        for c in self.corners() {
            for r in 0..3 {
                lo[r] = lo[r].min(c[r]);
                hi[r] = hi[r].max(c[r]);
            }
        }
        (lo, hi)
    }

    /// LPS centre of the grid.
    pub fn center(&self) -> Vec3 {
        let (lo, hi) = self.world_bounds();
        [
            (lo[0] + hi[0]) / 2.0,
            (lo[1] + hi[1]) / 2.0,
            (lo[2] + hi[2]) / 2.0,
        ]
    }

    /// Direction matrix flattened row-major (9 numbers), as `info --json` prints it.
    pub fn direction_row_major(&self) -> [f64; 9] {
        let d = &self.direction;
        [
            d[0][0], d[0][1], d[0][2], d[1][0], d[1][1], d[1][2], d[2][0], d[2][1], d[2][2],
        ]
    }
}

/// A new voxel array on `geometry` with `f(world position)` at every voxel centre, slices in parallel.
pub fn fill_grid(geometry: &Geometry, f: impl Fn(Vec3) -> f32 + Sync) -> Vec<f32> {
    use rayon::prelude::*;
    let [nx, ny, nz] = geometry.dims;
    let mut data = vec![0f32; nx * ny * nz];
    data.par_chunks_mut((nx * ny).max(1))
        .enumerate()
        .for_each(|(z, slice)| {
            for y in 0..ny {
                for x in 0..nx {
                    slice[x + nx * y] =
                        f(geometry.world_from_voxel([x as f64, y as f64, z as f64]));
                }
            }
        });
    data
}

/// Inverse of a 3x3 matrix, or None when it is singular.
pub fn invert3(m: &[[f64; 3]; 3]) -> Option<[[f64; 3]; 3]> {
    let det = m[0][0] * (m[1][1] * m[2][2] - m[1][2] * m[2][1])
        - m[0][1] * (m[1][0] * m[2][2] - m[1][2] * m[2][0])
        + m[0][2] * (m[1][0] * m[2][1] - m[1][1] * m[2][0]);
    if det.abs() < 1e-12 {
        return None;
    }
    let inv_det = 1.0 / det;
    let mut r = [[0.0; 3]; 3];
    r[0][0] = (m[1][1] * m[2][2] - m[1][2] * m[2][1]) * inv_det;
    r[0][1] = (m[0][2] * m[2][1] - m[0][1] * m[2][2]) * inv_det;
    r[0][2] = (m[0][1] * m[1][2] - m[0][2] * m[1][1]) * inv_det;
    r[1][0] = (m[1][2] * m[2][0] - m[1][0] * m[2][2]) * inv_det;
    r[1][1] = (m[0][0] * m[2][2] - m[0][2] * m[2][0]) * inv_det;
    r[1][2] = (m[0][2] * m[1][0] - m[0][0] * m[1][2]) * inv_det;
    r[2][0] = (m[1][0] * m[2][1] - m[1][1] * m[2][0]) * inv_det;
    r[2][1] = (m[0][1] * m[2][0] - m[0][0] * m[2][1]) * inv_det;
    r[2][2] = (m[0][0] * m[1][1] - m[0][1] * m[1][0]) * inv_det;
    Some(r)
}

/// Imaging modality of a volume, as DICOM (0008,0060) names it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Modality {
    /// Computed tomography: values in Hounsfield units.
    Ct,
    /// Magnetic resonance: arbitrary units.
    Mr,
    /// Anything else (the DICOM code, or empty).
    Other(String),
}

impl Modality {
    /// Parse a DICOM Modality code.
    pub fn from_code(code: &str) -> Self {
        match code.trim().to_ascii_uppercase().as_str() {
            "CT" => Modality::Ct,
            "MR" => Modality::Mr,
            other => Modality::Other(other.to_string()),
        }
    }

    /// The DICOM code.
    pub fn code(&self) -> &str {
        match self {
            Modality::Ct => "CT",
            Modality::Mr => "MR",
            Modality::Other(s) => s,
        }
    }
}

impl Default for Modality {
    fn default() -> Self {
        Modality::Other(String::new())
    }
}

/// Serialised as its DICOM code ("CT", "MR", ...), as files and JSON outputs have always had it.
impl Serialize for Modality {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.code())
    }
}

impl std::fmt::Display for Modality {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.code())
    }
}

/// Descriptive data carried with a volume (never used for geometry).
#[derive(Clone, Debug, Default, Serialize)]
pub struct VolumeMeta {
    /// Modality (CT, MR, or another DICOM code).
    pub modality: Modality,
    /// SeriesInstanceUID, or a synthetic id for NIfTI/phantom data.
    pub series_uid: String,
    /// SeriesDescription.
    pub description: String,
    /// PatientName.
    pub patient_name: String,
    /// PatientID.
    pub patient_id: String,
    /// StudyInstanceUID.
    pub study_uid: String,
    /// StudyDescription.
    pub study_description: String,
    /// FrameOfReferenceUID.
    pub frame_of_reference_uid: String,
    /// Files or source this volume came from (first one for a series).
    pub source: String,
    /// Display with inverted greys (DICOM MONOCHROME1): high values dark.
    pub monochrome1: bool,
    /// Problems found while loading that did not stop it (non-uniform spacing, missing slices...).
    pub warnings: Vec<String>,
    /// What a DICOM series was read from, for a series derived from it (None for other data).
    #[serde(skip)]
    pub dicom: Option<std::sync::Arc<DicomOrigin>>,
}

/// The DICOM instances a volume's slices were read from, and the patient and study attributes
/// of its first file: what a derived (synthetic) series references and copies.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct DicomOrigin {
    /// One per slice, in slice order.
    pub instances: Vec<SourceInstance>,
    /// Patient, General Study and Patient Study attributes as (tag, VR code, value), copied as is.
    pub header: Vec<(u32, String, String)>,
}

/// The instance (and frame of it, 1-based; 0 for a single-frame one) one slice came from.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SourceInstance {
    /// SOPClassUID.
    pub sop_class_uid: std::sync::Arc<str>,
    /// SOPInstanceUID.
    pub sop_instance_uid: std::sync::Arc<str>,
    /// Frame number within a multi-frame instance (1-based), 0 for a single-frame one.
    pub frame: u32,
}

static NEXT_VOLUME_ID: AtomicU64 = AtomicU64::new(1);

/// A scalar volume: voxels (x fastest) with geometry and metadata.
#[derive(Clone, Debug)]
pub struct Volume {
    /// Process-unique id, the key of GPU upload caches.
    pub id: u64,
    /// Grid placement in LPS.
    pub geometry: Geometry,
    /// Voxel values after rescale (HU for CT).
    pub data: Vec<f32>,
    /// Descriptive data.
    pub meta: VolumeMeta,
}

impl Volume {
    /// A new volume; panics in debug builds if `data` does not match the grid.
    pub fn new(geometry: Geometry, data: Vec<f32>, meta: VolumeMeta) -> Self {
        debug_assert_eq!(geometry.len(), data.len());
        Self {
            id: NEXT_VOLUME_ID.fetch_add(1, Ordering::Relaxed),
            geometry,
            data,
            meta,
        }
    }

    /// Value at integer voxel (x, y, z).
    #[inline]
    pub fn get(&self, x: usize, y: usize, z: usize) -> f32 {
        self.data[self.geometry.index(x, y, z)]
    }

    /// Value of the voxel nearest to continuous index `p`, or None outside the grid.
    pub fn sample_nearest(&self, p: Vec3) -> Option<f32> {
        let mut idx = [0usize; 3];
        for a in 0..3 {
            let r = p[a].round();
            if r < 0.0 || r >= self.geometry.dims[a] as f64 {
                return None;
            }
            idx[a] = r as usize;
        }
        Some(self.get(idx[0], idx[1], idx[2]))
    }

    /// Trilinear interpolation at continuous index `p`, or None outside the grid.
    pub fn sample_linear(&self, p: Vec3) -> Option<f32> {
        let d = self.geometry.dims;
        let mut i0 = [0usize; 3];
        let mut f = [0f64; 3];
        for a in 0..3 {
            if p[a] < -0.5 || p[a] > d[a] as f64 - 0.5 {
                return None;
            }
            let c = p[a].clamp(0.0, (d[a] - 1) as f64);
            let fl = c.floor().min((d[a].max(2) - 2) as f64).max(0.0);
            i0[a] = fl as usize;
            f[a] = if d[a] > 1 { c - fl } else { 0.0 };
        }
        let i1 = [
            (i0[0] + 1).min(d[0] - 1),
            (i0[1] + 1).min(d[1] - 1),
            (i0[2] + 1).min(d[2] - 1),
        ];
        let g = |x, y, z| self.get(x, y, z) as f64;
        let c00 = g(i0[0], i0[1], i0[2]) * (1.0 - f[0]) + g(i1[0], i0[1], i0[2]) * f[0];
        let c10 = g(i0[0], i1[1], i0[2]) * (1.0 - f[0]) + g(i1[0], i1[1], i0[2]) * f[0];
        let c01 = g(i0[0], i0[1], i1[2]) * (1.0 - f[0]) + g(i1[0], i0[1], i1[2]) * f[0];
        let c11 = g(i0[0], i1[1], i1[2]) * (1.0 - f[0]) + g(i1[0], i1[1], i1[2]) * f[0];
        let c0 = c00 * (1.0 - f[1]) + c10 * f[1];
        let c1 = c01 * (1.0 - f[1]) + c11 * f[1];
        Some((c0 * (1.0 - f[2]) + c1 * f[2]) as f32)
    }

    /// Minimum and maximum voxel value (0, 0 for an empty volume).
    pub fn min_max(&self) -> (f32, f32) {
        let mut lo = f32::INFINITY;
        let mut hi = f32::NEG_INFINITY;
        for &v in &self.data {
            if v.is_finite() {
                lo = lo.min(v);
                hi = hi.max(v);
            }
        }
        if lo > hi { (0.0, 0.0) } else { (lo, hi) }
    }

    /// Bytes of voxel data held in memory.
    pub fn size_bytes(&self) -> usize {
        self.data.len() * std::mem::size_of::<f32>()
    }

    /// Percentiles (0..100) of the values inside a rough head mask (values above a
    /// background threshold), from a 4096-bin histogram; what MR auto-window uses.
    pub fn robust_range(&self, lo_pct: f64, hi_pct: f64) -> (f32, f32) {
        let (min, max) = self.min_max();
        if max <= min {
            return (min, max + 1.0);
        }
        // Background threshold: a tenth of the way up from the minimum to a high value,
        // which separates air (noise floor) from tissue in both CT and MR.
        let stride = (self.data.len() / 2_000_000).max(1);
        let thr = min + 0.1 * (max - min);
        let bins = 4096usize;
        let mut hist = vec![0u64; bins];
        let scale = (bins - 1) as f32 / (max - min);
        let mut n = 0u64;
        for v in self.data.iter().step_by(stride) {
            if *v > thr && v.is_finite() {
                hist[((v - min) * scale) as usize] += 1;
                n += 1;
            }
        }
        if n == 0 {
            return (min, max);
        }
        let at = |pct: f64| {
            let target = (pct / 100.0 * n as f64).ceil().max(1.0) as u64;
            let mut acc = 0u64;
            for (i, c) in hist.iter().enumerate() {
                acc += c;
                if acc >= target {
                    return min + i as f32 / scale;
                }
            }
            max
        };
        let (a, b) = (at(lo_pct), at(hi_pct));
        if b > a { (a, b) } else { (a, a + 1.0) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn world_voxel_round_trip_oblique() {
        let c = 30f64.to_radians().cos();
        let s = 30f64.to_radians().sin();
        let g = Geometry {
            dims: [10, 20, 30],
            spacing: [0.5, 0.7, 2.0],
            origin: [-10.0, 5.0, 3.0],
            direction: [[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]],
        };
        let p = [3.25, 7.5, 11.0];
        let w = g.world_from_voxel(p);
        let q = g.voxel_from_world(w);
        for a in 0..3 {
            assert!((p[a] - q[a]).abs() < 1e-9);
        }
    }

    #[test]
    fn trilinear_is_exact_on_linear_ramp() {
        let g = Geometry::axis_aligned([4, 5, 6], [1.0; 3], [0.0; 3]);
        let mut data = vec![0f32; g.len()];
        for z in 0..6 {
            for y in 0..5 {
                for x in 0..4 {
                    data[g.index(x, y, z)] = (x + 10 * y + 100 * z) as f32;
                }
            }
        }
        let v = Volume::new(g, data, VolumeMeta::default());
        let s = v.sample_linear([1.5, 2.25, 3.75]).unwrap();
        assert!((s - (1.5 + 22.5 + 375.0)).abs() < 1e-3, "{s}");
        assert!(v.sample_linear([-0.6, 0.0, 0.0]).is_none());
        assert_eq!(v.sample_nearest([3.4, 4.0, 5.0]), Some(3.0 + 40.0 + 500.0));
    }
}
