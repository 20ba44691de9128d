//! Transforms that map fixed-image points to moving-image points (ITK's convention), in LPS mm:
//! `moving = A (fixed - center) + center + translation`.

use super::{Vec3, invert3};
use std::path::Path;

/// An ITK transform file that could not be read, naming the file and the problem.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{}: {problem}", path.display())]
pub struct TransformFileError {
    /// The file.
    pub path: std::path::PathBuf,
    /// What is wrong with it.
    pub problem: String,
}

fn bad(path: &Path, problem: impl Into<String>) -> TransformFileError {
    TransformFileError {
        path: path.to_path_buf(),
        problem: problem.into(),
    }
}

/// A 3D affine transform `y = A (x - c) + c + t` (fixed to moving), as ITK's AffineTransform.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Affine {
    /// Linear part, row-major.
    pub matrix: [[f64; 3]; 3],
    /// Translation (mm).
    pub translation: Vec3,
    /// Centre of rotation (mm), ITK's fixed parameters.
    pub center: Vec3,
}

impl Default for Affine {
    fn default() -> Self {
        Self::identity([0.0; 3])
    }
}

/// The elementary rotations [Rx, Ry, Rz] about the LPS axes for angles in radians.
pub fn axis_rotations(a: Vec3) -> [[[f64; 3]; 3]; 3] {
    let (sx, cx) = a[0].sin_cos();
    let (sy, cy) = a[1].sin_cos();
    let (sz, cz) = a[2].sin_cos();
    [
        [[1.0, 0.0, 0.0], [0.0, cx, -sx], [0.0, sx, cx]],
        [[cy, 0.0, sy], [0.0, 1.0, 0.0], [-sy, 0.0, cy]],
        [[cz, -sz, 0.0], [sz, cz, 0.0], [0.0, 0.0, 1.0]],
    ]
}

/// R = Rz * Ry * Rx for angles in radians.
pub fn euler_matrix(a: Vec3) -> [[f64; 3]; 3] {
    let [rx, ry, rz] = axis_rotations(a);
    mul3(&rz, &mul3(&ry, &rx))
}

/// Product of two 3x3 matrices.
pub fn mul3(a: &[[f64; 3]; 3], b: &[[f64; 3]; 3]) -> [[f64; 3]; 3] {
    let mut m = [[0.0; 3]; 3];
    for i in 0..3 {
        for j in 0..3 {
            m[i][j] = (0..3).map(|k| a[i][k] * b[k][j]).sum();
        }
    }
    m
}

/// The transform's parts as a person reads them.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize)]
pub struct Decomposition {
    /// Rotation angles (degrees) about x, y, z with R = Rz Ry Rx.
    pub rotation_deg: Vec3,
    /// Translation (mm).
    pub translation: Vec3,
    /// Scale along each axis.
    pub scale: Vec3,
    /// Shear (xy, xz, yz) of the upper-triangular factor, relative to scale.
    pub shear: Vec3,
}

impl Affine {
    /// The identity about `center`.
    pub fn identity(center: Vec3) -> Self {
        Self {
            matrix: [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]],
            translation: [0.0; 3],
            center,
        }
    }

    /// A rigid transform from Euler angles (radians, R = Rz Ry Rx) and a translation.
    pub fn rigid(angles: Vec3, translation: Vec3, center: Vec3) -> Self {
        Self {
            matrix: euler_matrix(angles),
            translation,
            center,
        }
    }

    /// Map a fixed point to the moving image.
    #[inline]
    pub fn apply(&self, x: Vec3) -> Vec3 {
        let d = [
            x[0] - self.center[0],
            x[1] - self.center[1],
            x[2] - self.center[2],
        ];
        let m = &self.matrix;
        [
            m[0][0] * d[0] + m[0][1] * d[1] + m[0][2] * d[2] + self.center[0] + self.translation[0],
            m[1][0] * d[0] + m[1][1] * d[1] + m[1][2] * d[2] + self.center[1] + self.translation[1],
            m[2][0] * d[0] + m[2][1] * d[1] + m[2][2] * d[2] + self.center[2] + self.translation[2],
        ]
    }

    /// The inverse transform (moving to fixed), or None when singular.
    pub fn inverse(&self) -> Option<Affine> {
        let inv = invert3(&self.matrix)?;
        // x = inv (y - c - t) + c; written about the same centre: x = inv (y - c) + c - inv t.
        let it = [
            -(inv[0][0] * self.translation[0]
                + inv[0][1] * self.translation[1]
                + inv[0][2] * self.translation[2]),
            -(inv[1][0] * self.translation[0]
                + inv[1][1] * self.translation[1]
                + inv[1][2] * self.translation[2]),
            -(inv[2][0] * self.translation[0]
                + inv[2][1] * self.translation[1]
                + inv[2][2] * self.translation[2]),
        ];
        Some(Affine {
            matrix: inv,
            translation: it,
            center: self.center,
        })
    }

    /// Rotation, translation, scale and shear (A = R * U with U upper triangular).
    pub fn decompose(&self) -> Decomposition {
        let a = &self.matrix;
        let col = |j: usize| [a[0][j], a[1][j], a[2][j]];
        let dot = |u: Vec3, v: Vec3| u[0] * v[0] + u[1] * v[1] + u[2] * v[2];
        let norm = |u: Vec3| dot(u, u).sqrt();
        let (a0, a1, a2) = (col(0), col(1), col(2));
        let s0 = norm(a0);
        let q0 = [a0[0] / s0, a0[1] / s0, a0[2] / s0];
        let u01 = dot(q0, a1);
        let v1 = [
            a1[0] - u01 * q0[0],
            a1[1] - u01 * q0[1],
            a1[2] - u01 * q0[2],
        ];
        let s1 = norm(v1);
        let q1 = [v1[0] / s1, v1[1] / s1, v1[2] / s1];
        let u02 = dot(q0, a2);
        let u12 = dot(q1, a2);
        let v2 = [
            a2[0] - u02 * q0[0] - u12 * q1[0],
            a2[1] - u02 * q0[1] - u12 * q1[1],
            a2[2] - u02 * q0[2] - u12 * q1[2],
        ];
        let s2 = norm(v2);
        let q2 = [v2[0] / s2, v2[1] / s2, v2[2] / s2];
        // Q columns q0, q1, q2; angles of Q = Rz Ry Rx.
        let r20 = q0[2];
        let ry = (-r20).clamp(-1.0, 1.0).asin();
        let rx = q1[2].atan2(q2[2]);
        let rz = q0[1].atan2(q0[0]);
        Decomposition {
            rotation_deg: [rx.to_degrees(), ry.to_degrees(), rz.to_degrees()],
            translation: self.translation,
            scale: [s0, s1, s2],
            shear: [u01 / s0, u02 / s0, u12 / s1],
        }
    }

    /// ITK's 12 parameters: the matrix row by row, then the translation.
    pub fn itk_parameters(&self) -> [f64; 12] {
        let m = &self.matrix;
        let t = &self.translation;
        [
            m[0][0], m[0][1], m[0][2], m[1][0], m[1][1], m[1][2], m[2][0], m[2][1], m[2][2], t[0],
            t[1], t[2],
        ]
    }

    /// The transform with ITK's 12 parameters about `center`.
    pub fn from_itk_parameters(p: &[f64], center: Vec3) -> Self {
        Affine {
            matrix: [[p[0], p[1], p[2]], [p[3], p[4], p[5]], [p[6], p[7], p[8]]],
            translation: [p[9], p[10], p[11]],
            center,
        }
    }

    /// Write as an ITK transform file (`AffineTransform_double_3_3`, LPS), as 3D Slicer and elastix read it.
    pub fn write_tfm(&self, path: &Path) -> std::io::Result<()> {
        let params: Vec<String> = self
            .itk_parameters()
            .iter()
            .map(|v| v.to_string())
            .collect();
        let c = &self.center;
        let text = format!(
            "#Insight Transform File V1.0\n#Transform 0\nTransform: AffineTransform_double_3_3\nParameters: {}\nFixedParameters: {} {} {}\n",
            params.join(" "),
            c[0],
            c[1],
            c[2]
        );
        crate::atomic::write(path, text).map_err(std::io::Error::from)
    }

    /// Read an ITK transform file holding one affine-family 3D transform.
    pub fn read_tfm(path: &Path) -> Result<Affine, TransformFileError> {
        let text = {
            // An ITK transform file is a few hundred bytes; refuse what is not one before
            // reading it whole.
            let len = std::fs::metadata(path)
                .map_err(|e| bad(path, format!("cannot read: {e}")))?
                .len();
            if len > 1 << 20 {
                return Err(bad(
                    path,
                    format!("{len} bytes: not an ITK transform file (at most 1048576)"),
                ));
            }
            std::fs::read_to_string(path).map_err(|e| bad(path, format!("cannot read: {e}")))?
        };
        let mut kind = None;
        let mut params = None;
        let mut fixed = None;
        let nums = |s: &str| {
            s.split_whitespace()
                .map(|x| x.parse::<f64>())
                .collect::<Result<Vec<f64>, _>>()
        };
        for line in text.lines() {
            if let Some(k) = line.strip_prefix("Transform:") {
                kind = Some(k.trim().to_string());
            } else if let Some(p) = line.strip_prefix("Parameters:") {
                params = Some(nums(p).map_err(|e| bad(path, format!("bad Parameters: {e}")))?);
            } else if let Some(p) = line.strip_prefix("FixedParameters:") {
                fixed = Some(nums(p).map_err(|e| bad(path, format!("bad FixedParameters: {e}")))?);
            }
        }
        let kind = kind.ok_or_else(|| bad(path, "no Transform: line"))?;
        let p = params.ok_or_else(|| bad(path, "no Parameters: line"))?;
        let c = fixed.unwrap_or_else(|| vec![0.0; 3]);
        if c.len() < 3 {
            return Err(bad(path, "FixedParameters needs 3 numbers"));
        }
        let center = [c[0], c[1], c[2]];
        if kind.starts_with("AffineTransform") || kind.starts_with("MatrixOffsetTransformBase") {
            if p.len() != 12 {
                return Err(bad(
                    path,
                    format!("{kind} needs 12 parameters, found {}", p.len()),
                ));
            }
            return Ok(Affine::from_itk_parameters(&p, center));
        }
        if kind.starts_with("Euler3DTransform") && p.len() == 6 {
            // ITK Euler3D (ZXY order by default): R = Rz Rx Ry.
            let [rx, ry, rz] = axis_rotations([p[0], p[1], p[2]]);
            return Ok(Affine {
                matrix: mul3(&rz, &mul3(&rx, &ry)),
                translation: [p[3], p[4], p[5]],
                center,
            });
        }
        Err(bad(path, format!("unsupported transform type {kind}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inverse_and_decomposition() {
        let t = Affine::rigid([0.05, -0.03, 0.08], [4.0, -6.0, 3.0], [1.0, 2.0, 3.0]);
        let x = [10.0, -20.0, 30.0];
        let back = t.inverse().unwrap().apply(t.apply(x));
        for a in 0..3 {
            assert!((back[a] - x[a]).abs() < 1e-9);
        }
        let d = t.decompose();
        assert!((d.rotation_deg[0] - 0.05f64.to_degrees()).abs() < 1e-9);
        assert!((d.rotation_deg[1] + 0.03f64.to_degrees()).abs() < 1e-9);
        assert!((d.rotation_deg[2] - 0.08f64.to_degrees()).abs() < 1e-9);
        assert!((d.scale[0] - 1.0).abs() < 1e-12 && d.shear[0].abs() < 1e-12);
    }

    #[test]
    fn tfm_round_trip() {
        let dir = std::env::temp_dir().join(format!("tfm-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("t.tfm");
        let t = Affine {
            matrix: [[1.01, 0.02, 0.0], [-0.01, 0.99, 0.03], [0.0, 0.01, 1.02]],
            translation: [1.5, -2.0, 3.25],
            center: [4.0, 5.0, 6.0],
        };
        t.write_tfm(&p).unwrap();
        assert_eq!(Affine::read_tfm(&p).unwrap(), t);
    }
}
