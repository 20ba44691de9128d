//! The parameters of each stage (rigid: 3 Euler angles and a translation; affine: ITK's 12), the
//! transform they give, and the metric's gradient in them.

use super::{MattesMi, MetricValue, Stage};
use crate::volume::Vec3;
use crate::volume::transform::{self, Affine};

/// Parameter vector of a stage, and the transform it gives.
#[derive(Clone, Debug)]
pub(super) struct Params {
    pub(super) stage: Stage,
    pub(super) p: Vec<f64>,
    pub(super) center: Vec3,
}

impl Params {
    /// The rigid stage's start: no rotation, translation `t`, centred on `center`.
    pub(super) fn rigid(t: Vec3, center: Vec3) -> Self {
        Params {
            stage: Stage::Rigid,
            p: vec![0.0, 0.0, 0.0, t[0], t[1], t[2]],
            center,
        }
    }

    /// The affine stage's start: the same transform as `self`, in 12 parameters.
    pub(super) fn to_affine(&self) -> Self {
        let t = self.transform();
        Params {
            stage: Stage::Affine,
            p: t.itk_parameters().to_vec(),
            center: t.center,
        }
    }

    pub(super) fn transform(&self) -> Affine {
        match self.stage {
            Stage::Rigid => Affine::rigid(
                [self.p[0], self.p[1], self.p[2]],
                [self.p[3], self.p[4], self.p[5]],
                self.center,
            ),
            Stage::Affine => Affine::from_itk_parameters(&self.p, self.center),
        }
    }

    /// Millimetres of displacement per unit of each parameter (radius for rotations and matrix entries).
    pub(super) fn scales(&self, radius: f64) -> Vec<f64> {
        match self.stage {
            Stage::Rigid => vec![radius, radius, radius, 1.0, 1.0, 1.0],
            Stage::Affine => {
                let mut s = vec![radius; 9];
                s.extend([1.0, 1.0, 1.0]);
                s
            }
        }
    }
}

/// Derivatives of the rotation matrix in each Euler angle (rigid stage), computed once per
/// evaluation rather than per sample.
pub(super) fn rotation_derivatives(p: &[f64]) -> [[[f64; 3]; 3]; 3] {
    let [rx, ry, rz] = transform::axis_rotations([p[0], p[1], p[2]]);
    // d/da of each elementary rotation: the same matrix with cos -> -sin, sin -> cos, 1 -> 0.
    let (sx, cx) = p[0].sin_cos();
    let (sy, cy) = p[1].sin_cos();
    let (sz, cz) = p[2].sin_cos();
    let drx = [[0.0, 0.0, 0.0], [0.0, -sx, -cx], [0.0, cx, -sx]];
    let dry = [[-sy, 0.0, cy], [0.0, 0.0, 0.0], [-cy, 0.0, -sy]];
    let drz = [[-sz, -cz, 0.0], [cz, -sz, 0.0], [0.0, 0.0, 0.0]];
    [
        transform::mul3(&rz, &transform::mul3(&ry, &drx)),
        transform::mul3(&rz, &transform::mul3(&dry, &rx)),
        transform::mul3(&drz, &transform::mul3(&ry, &rx)),
    ]
}

/// Jacobian dy/dp (one column per parameter) of the transform at fixed point `x`; `dr` holds
/// [`rotation_derivatives`] for the rigid stage.
fn jacobian(params: &Params, dr: &[[[f64; 3]; 3]; 3], x: Vec3, out: &mut [[f64; 3]]) {
    let c = params.center;
    let d = [x[0] - c[0], x[1] - c[1], x[2] - c[2]];
    match params.stage {
        Stage::Rigid => {
            for (k, mk) in dr.iter().enumerate() {
                for r in 0..3 {
                    out[k][r] = mk[r][0] * d[0] + mk[r][1] * d[1] + mk[r][2] * d[2];
                }
            }
            for k in 0..3 {
                out[3 + k] = [0.0; 3];
                out[3 + k][k] = 1.0;
            }
        }
        Stage::Affine => {
            for i in 0..3 {
                for j in 0..3 {
                    out[3 * i + j] = [0.0; 3];
                    out[3 * i + j][i] = d[j];
                }
            }
            for k in 0..3 {
                out[9 + k] = [0.0; 3];
                out[9 + k][k] = 1.0;
            }
        }
    }
}

/// Metric value and gradient at `params`.
pub(super) fn evaluate(metric: &MattesMi, params: &Params) -> MetricValue {
    let dr = if params.stage == Stage::Rigid {
        rotation_derivatives(&params.p)
    } else {
        [[[0.0; 3]; 3]; 3]
    };
    metric.evaluate(
        &params.transform(),
        |x, j| jacobian(params, &dr, x, j),
        params.p.len(),
    )
}
