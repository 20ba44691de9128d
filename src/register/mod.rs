//! Rigid then affine MR-to-CT registration by Mattes mutual information: multi-resolution
//! (shrink 4-2-1), centre-of-mass initialisation, analytic metric gradient, regular-step
//! gradient descent. CPU (rayon) implementation; the same code serves the panel and the CLI.

mod gpu_metric;
mod metric;
pub mod transform;

pub use gpu_metric::{GpuMattes, GpuMetricError};
pub use metric::{MattesMi, MetricValue};
pub use transform::{Affine, Decomposition};

use crate::io::{LoadError, Progress};
use crate::volume::{Geometry, Vec3, Volume, VolumeMeta};
use rayon::prelude::*;
use serde::Serialize;
use std::time::Instant;

/// Degrees of freedom of a stage.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum Stage {
    /// 3 rotations + 3 translations.
    Rigid,
    /// 9 matrix entries + 3 translations.
    Affine,
}

/// Settings of a registration run.
#[derive(Clone, Debug, Serialize)]
pub struct RegistrationConfig {
    /// Shrink factors of the pyramid levels, coarse to fine.
    pub shrink: Vec<usize>,
    /// Histogram bins of the Mattes metric.
    pub bins: usize,
    /// Sample points at full resolution (at most); a level shrunk by f uses samples / f.
    pub samples: usize,
    /// Iterations per level (at most).
    pub iterations: usize,
    /// Run an affine stage after the rigid one.
    pub affine: bool,
    /// Initial step (mm of displacement) of the optimizer at the coarsest level.
    pub initial_step_mm: f64,
    /// Step (mm) below which a level has converged.
    pub min_step_mm: f64,
    /// Seed of the sample selection.
    pub seed: u64,
    /// Where the metric runs.
    pub backend: MetricBackend,
}

/// Where the Mattes metric is evaluated.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum MetricBackend {
    /// rayon on the CPU cores.
    Cpu,
    /// WGSL compute on the shared wgpu device.
    Gpu,
    /// Time one evaluation of each per level and use the faster.
    Auto,
}

impl Default for RegistrationConfig {
    fn default() -> Self {
        Self {
            shrink: vec![4, 2, 1],
            bins: 32,
            samples: 160_000,
            iterations: 120,
            affine: true,
            initial_step_mm: 4.0,
            min_step_mm: 0.01,
            seed: 1,
            backend: MetricBackend::Auto,
        }
    }
}

/// One optimizer step, reported live.
#[derive(Clone, Debug, Serialize)]
pub struct IterationReport {
    /// Stage.
    pub stage: Stage,
    /// Pyramid level index (0 = coarsest).
    pub level: usize,
    /// Iteration within the level.
    pub iteration: usize,
    /// Mutual information (nats; higher is better).
    pub mi: f64,
    /// Step length (mm).
    pub step_mm: f64,
}

/// Time and result of one level.
#[derive(Clone, Debug, Serialize)]
pub struct LevelReport {
    /// Stage.
    pub stage: Stage,
    /// Shrink factor.
    pub shrink: usize,
    /// Iterations run.
    pub iterations: usize,
    /// Final mutual information.
    pub mi: f64,
    /// Wall time (s).
    pub seconds: f64,
    /// Backend the level ran on.
    pub backend: MetricBackend,
    /// Measured time of one metric evaluation on the CPU and on the GPU (ms), when measured.
    pub eval_ms: (Option<f64>, Option<f64>),
}

/// The outcome of a registration.
#[derive(Clone, Debug, Serialize)]
pub struct RegistrationResult {
    /// Fixed-to-moving transform.
    #[serde(skip)]
    pub transform: Affine,
    /// The transform in readable parts.
    pub decomposition: Decomposition,
    /// Final mutual information at full resolution.
    pub final_mi: f64,
    /// Per-level reports.
    pub levels: Vec<LevelReport>,
    /// Total time (s).
    pub seconds: f64,
}

/// Errors of registration.
#[derive(Debug, thiserror::Error)]
pub enum RegisterError {
    /// An input cannot be registered (flat, empty...).
    #[error("{0}")]
    BadInput(String),
    /// Cancelled by the user.
    #[error("registration cancelled")]
    Cancelled,
}

impl From<LoadError> for RegisterError {
    fn from(e: LoadError) -> Self {
        match e {
            LoadError::Cancelled => RegisterError::Cancelled,
            other => RegisterError::BadInput(other.to_string()),
        }
    }
}

/// Shrink a volume by block-averaging `f`-cubed blocks (a box pre-filter), keeping its place in space.
pub fn shrink(v: &Volume, f: usize) -> Volume {
    if f <= 1 {
        return v.clone();
    }
    let g = &v.geometry;
    let d = [
        g.dims[0].div_ceil(f),
        g.dims[1].div_ceil(f),
        g.dims[2].div_ceil(f),
    ];
    let mut data = vec![0f32; d[0] * d[1] * d[2]];
    data.par_chunks_mut(d[0] * d[1])
        .enumerate()
        .for_each(|(z, slice)| {
            for y in 0..d[1] {
                for x in 0..d[0] {
                    let mut acc = 0f64;
                    let mut n = 0u32;
                    for zz in z * f..((z + 1) * f).min(g.dims[2]) {
                        for yy in y * f..((y + 1) * f).min(g.dims[1]) {
                            for xx in x * f..((x + 1) * f).min(g.dims[0]) {
                                acc += v.get(xx, yy, zz) as f64;
                                n += 1;
                            }
                        }
                    }
                    slice[x + d[0] * y] = (acc / n.max(1) as f64) as f32;
                }
            }
        });
    let half = (f as f64 - 1.0) / 2.0;
    let origin = g.world_from_voxel([half, half, half]);
    let geometry = Geometry {
        dims: d,
        spacing: [
            g.spacing[0] * f as f64,
            g.spacing[1] * f as f64,
            g.spacing[2] * f as f64,
        ],
        origin,
        direction: g.direction,
    };
    Volume::new(geometry, data, v.meta.clone())
}

/// Intensity-weighted centre of mass of the part of `v` above a background threshold.
pub fn center_of_mass(v: &Volume) -> Option<Vec3> {
    let (min, max) = v.min_max();
    if max <= min {
        return None;
    }
    let thr = min + 0.1 * (max - min);
    let g = &v.geometry;
    let [nx, ny, nz] = g.dims;
    let (sum, acc) = (0..nz)
        .into_par_iter()
        .map(|z| {
            let mut s = 0f64;
            let mut a = [0f64; 3];
            for y in 0..ny {
                for x in 0..nx {
                    let w = (v.get(x, y, z) - thr).max(0.0) as f64;
                    if w > 0.0 {
                        s += w;
                        a[0] += w * x as f64;
                        a[1] += w * y as f64;
                        a[2] += w * z as f64;
                    }
                }
            }
            (s, a)
        })
        .reduce(
            || (0.0, [0.0; 3]),
            |p, q| {
                (
                    p.0 + q.0,
                    [p.1[0] + q.1[0], p.1[1] + q.1[1], p.1[2] + q.1[2]],
                )
            },
        );
    if sum <= 0.0 {
        return None;
    }
    Some(g.world_from_voxel([acc[0] / sum, acc[1] / sum, acc[2] / sum]))
}

/// Parameter vector of a stage, and the transform it gives.
#[derive(Clone, Debug)]
struct Params {
    stage: Stage,
    p: Vec<f64>,
    center: Vec3,
}

impl Params {
    fn transform(&self) -> Affine {
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
    fn scales(&self, radius: f64) -> Vec<f64> {
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
fn rotation_derivatives(p: &[f64]) -> [[[f64; 3]; 3]; 3] {
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
fn evaluate(metric: &MattesMi, params: &Params) -> MetricValue {
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

/// Register `moving` to `fixed`: the returned transform maps fixed (CT) points to moving (MR) points.
///
/// `mask`, when given, is a volume on the fixed grid: samples are drawn where it is non-zero.
/// `on_iteration` is called after every optimizer step (for live curves).
pub fn register(
    fixed: &Volume,
    moving: &Volume,
    mask: Option<&Volume>,
    cfg: &RegistrationConfig,
    progress: &Progress,
    mut on_iteration: impl FnMut(&IterationReport),
) -> Result<RegistrationResult, RegisterError> {
    let t0 = Instant::now();
    for (v, name) in [(fixed, "fixed"), (moving, "moving")] {
        let (min, max) = v.min_max();
        if v.data.is_empty() || max <= min {
            return Err(RegisterError::BadInput(format!(
                "the {name} image ({}) is empty or flat: nothing to align",
                v.meta.description
            )));
        }
    }
    let cf = center_of_mass(fixed)
        .ok_or_else(|| RegisterError::BadInput("fixed image has no foreground".into()))?;
    let cm = center_of_mass(moving)
        .ok_or_else(|| RegisterError::BadInput("moving image has no foreground".into()))?;
    let (lo, hi) = fixed.geometry.world_bounds();
    let radius = (0..3)
        .map(|a| (hi[a] - lo[a]) / 2.0)
        .fold(0.0, f64::max)
        .clamp(20.0, 150.0)
        * 0.6;
    // Pyramid levels that keep at least 24 voxels along every axis of the fixed image.
    let min_dim = *fixed.geometry.dims.iter().min().unwrap_or(&1);
    let mut shrinks: Vec<usize> = cfg
        .shrink
        .iter()
        .copied()
        .filter(|&f| f == 1 || min_dim / f >= 24)
        .collect();
    if shrinks.is_empty() {
        shrinks.push(1);
    }
    // Rigid, centred on the fixed centre of mass. Start from whichever initial translation gives
    // the best metric at the coarsest level: none (same frame of reference), centres of mass
    // (large offsets), or geometric centres (partial coverage skews the centre of mass).
    let gf = fixed.geometry.center();
    let gm = moving.geometry.center();
    let candidates = [
        [0.0; 3],
        [cm[0] - cf[0], cm[1] - cf[1], cm[2] - cf[2]],
        [gm[0] - gf[0], gm[1] - gf[1], gm[2] - gf[2]],
    ];
    let coarse = shrinks[0];
    let (fx0, mv0) = (shrink(fixed, coarse), shrink(moving, coarse));
    let mk0 = mask.map(|m| shrink(m, coarse));
    let probe = MattesMi::new(
        &fx0,
        &mv0,
        mk0.as_ref(),
        cfg.bins,
        cfg.samples / 2,
        cfg.seed,
    );
    let mut best = (f64::NEG_INFINITY, candidates[0]);
    for t in candidates {
        let a = Affine::rigid([0.0; 3], t, cf);
        let v = probe.evaluate(&a, |_, _| {}, 0);
        // MI over the samples that land inside the moving image, if enough of them do
        // (an MR covering part of the CT leaves the rest outside).
        let score = if v.valid * 4 >= probe.sample_count() {
            v.mi
        } else {
            f64::NEG_INFINITY
        };
        if score > best.0 {
            best = (score, t);
        }
    }
    let t0v = best.1;
    let mut params = Params {
        stage: Stage::Rigid,
        p: vec![0.0, 0.0, 0.0, t0v[0], t0v[1], t0v[2]],
        center: cf,
    };
    let mut levels = Vec::new();
    let stages: Vec<Stage> = if cfg.affine {
        vec![Stage::Rigid, Stage::Affine]
    } else {
        vec![Stage::Rigid]
    };
    let total_levels = shrinks.len() * stages.len();
    progress.start("Registering", total_levels * cfg.iterations);
    let mut final_mi = 0.0;
    let mut gpu_lost = false;
    for stage in stages {
        if stage == Stage::Affine {
            let t = params.transform();
            params = Params {
                stage: Stage::Affine,
                p: t.itk_parameters().to_vec(),
                center: t.center,
            };
        }
        // The affine stage refines at the finer levels (at shrink 4 its extra freedom fits noise).
        let stage_shrinks: Vec<usize> = if stage == Stage::Affine && shrinks.len() > 1 {
            shrinks.iter().copied().filter(|f| *f <= 2).collect()
        } else {
            shrinks.clone()
        };
        for (li, &f) in stage_shrinks.iter().enumerate() {
            progress.check()?;
            let lt = Instant::now();
            let fx = shrink(fixed, f);
            let mv = shrink(moving, f);
            let mk = mask.map(|m| shrink(m, f));
            let metric = MattesMi::new(
                &fx,
                &mv,
                mk.as_ref(),
                cfg.bins,
                cfg.samples / f,
                cfg.seed + li as u64,
            );
            if metric.sample_count() < 100 {
                return Err(RegisterError::BadInput(format!(
                    "only {} sample points inside the mask/foreground at shrink {f}",
                    metric.sample_count()
                )));
            }
            let scales = params.scales(radius);
            let step = cfg.initial_step_mm / (1usize << li.min(3)) as f64
                * if stage == Stage::Affine { 0.5 } else { 1.0 };
            let min_step = cfg.min_step_mm;
            // L-BFGS on -MI in scaled (mm) units, with a backtracking (Armijo) line search and
            // steps capped at `step` mm; rotation/shear trade-offs make plain gradient ascent crawl.
            let n = params.p.len();
            // The metric's home: measured when Auto (one timed evaluation each, the GPU warmed first).
            let gpu_metric = match cfg.backend {
                MetricBackend::Cpu => None,
                // A software adapter runs on the same cores as rayon, 7-18x slower per evaluation
                // as measured on Mesa lavapipe (`synthscope bench register`): don't try it.
                MetricBackend::Auto
                    if gpu_lost
                        || crate::gpu::shared()
                            .map(|g| g.report.software)
                            .unwrap_or(true) =>
                {
                    None
                }
                _ => crate::gpu::shared()
                    .ok()
                    .and_then(|g| GpuMattes::new(&g.setup.device, &g.setup.queue, &metric).ok()),
            };
            let gpu_eval = |g: &GpuMattes, p: &Params| {
                let dr = rotation_derivatives(&p.p);
                g.evaluate(
                    &metric,
                    &p.transform(),
                    (p.stage == Stage::Rigid).then_some(&dr),
                )
            };
            let mut eval_ms = (None, None);
            let use_gpu = match (&gpu_metric, cfg.backend) {
                (Some(_), MetricBackend::Gpu) => true,
                (Some(g), MetricBackend::Auto) => {
                    let _ = gpu_eval(g, &params);
                    let t = Instant::now();
                    let ok = gpu_eval(g, &params).is_ok();
                    let gpu_ms = t.elapsed().as_secs_f64() * 1e3;
                    let t = Instant::now();
                    let _ = evaluate(&metric, &params);
                    let cpu_ms = t.elapsed().as_secs_f64() * 1e3;
                    eval_ms = (Some(cpu_ms), ok.then_some(gpu_ms));
                    // Far slower once: stop paying for the GPU upload at later levels.
                    if !ok || gpu_ms > 3.0 * cpu_ms {
                        gpu_lost = true;
                    }
                    ok && gpu_ms < cpu_ms
                }
                _ => false,
            };
            let backend = if use_gpu {
                MetricBackend::Gpu
            } else {
                MetricBackend::Cpu
            };
            let eval = |p: &Params| match (&gpu_metric, use_gpu) {
                (Some(g), true) => gpu_eval(g, p).unwrap_or_else(|_| evaluate(&metric, p)),
                _ => evaluate(&metric, p),
            };
            let to_grad = |v: &MetricValue| -> Vec<f64> {
                v.gradient
                    .iter()
                    .zip(&scales)
                    .map(|(g, s)| -g / s)
                    .collect()
            };
            let dot = |a: &[f64], b: &[f64]| a.iter().zip(b).map(|(x, y)| x * y).sum::<f64>();
            let mut value = eval(&params);
            let mut g = to_grad(&value);
            let mut hist: std::collections::VecDeque<(Vec<f64>, Vec<f64>)> = Default::default();
            let mut iterations = 0;
            let mut prev_mi = value.mi;
            for it in 0..cfg.iterations {
                progress.check()?;
                iterations = it + 1;
                // Two-loop recursion: d = -H g.
                let mut q = g.clone();
                let mut alphas = Vec::with_capacity(hist.len());
                for (sv, yv) in hist.iter().rev() {
                    let rho = 1.0 / dot(yv, sv);
                    let a = rho * dot(sv, &q);
                    q.iter_mut().zip(yv).for_each(|(qi, yi)| *qi -= a * yi);
                    alphas.push((a, rho));
                }
                if let Some((sv, yv)) = hist.back() {
                    let gamma = dot(sv, yv) / dot(yv, yv);
                    q.iter_mut().for_each(|x| *x *= gamma);
                }
                for ((sv, yv), (a, rho)) in hist.iter().zip(alphas.into_iter().rev()) {
                    let b = rho * dot(yv, &q);
                    q.iter_mut()
                        .zip(sv)
                        .for_each(|(qi, si)| *qi += (a - b) * si);
                }
                let mut d: Vec<f64> = q.iter().map(|x| -x).collect();
                if dot(&g, &d) >= 0.0 || hist.is_empty() {
                    hist.clear();
                    d = g.iter().map(|x| -x).collect();
                }
                let dn = dot(&d, &d).sqrt();
                if dn <= 1e-14 {
                    break;
                }
                let mut alpha = if dn > step || hist.is_empty() {
                    step / dn
                } else {
                    1.0
                };
                let slope = dot(&g, &d);
                let mut accepted = None;
                for _ in 0..8 {
                    let mut trial = params.clone();
                    for k in 0..n {
                        trial.p[k] += alpha * d[k] / scales[k];
                    }
                    let v = eval(&trial);
                    if -v.mi <= -value.mi + 1e-4 * alpha * slope {
                        accepted = Some((trial, v));
                        break;
                    }
                    alpha *= 0.5;
                }
                let Some((trial, v)) = accepted else { break };
                let g_new = to_grad(&v);
                let sv: Vec<f64> = d.iter().map(|x| alpha * x).collect();
                let yv: Vec<f64> = g_new.iter().zip(&g).map(|(a, b)| a - b).collect();
                let moved = dot(&sv, &sv).sqrt();
                if dot(&sv, &yv) > 1e-12 {
                    hist.push_back((sv, yv));
                    if hist.len() > 6 {
                        hist.pop_front();
                    }
                }
                params = trial;
                value = v;
                g = g_new;
                on_iteration(&IterationReport {
                    stage,
                    level: li,
                    iteration: it,
                    mi: value.mi,
                    step_mm: moved,
                });
                progress.step();
                // Converged when steps stay tiny and the metric stops improving.
                if moved < min_step && (value.mi - prev_mi).abs() < 1e-7 {
                    break;
                }
                prev_mi = value.mi;
            }
            final_mi = value.mi;
            levels.push(LevelReport {
                stage,
                shrink: f,
                iterations,
                mi: value.mi,
                seconds: lt.elapsed().as_secs_f64(),
                backend,
                eval_ms,
            });
        }
    }
    let transform = params.transform();
    Ok(RegistrationResult {
        transform,
        decomposition: transform.decompose(),
        final_mi,
        levels,
        seconds: t0.elapsed().as_secs_f64(),
    })
}

/// Resample `moving` onto `grid` through `fixed_to_moving` (trilinear; `background` outside).
pub fn resample(
    moving: &Volume,
    grid: &Geometry,
    fixed_to_moving: &Affine,
    background: f32,
) -> Volume {
    let data = crate::volume::fill_grid(grid, |w| {
        let p = moving.geometry.voxel_from_world(fixed_to_moving.apply(w));
        moving.sample_linear(p).unwrap_or(background)
    });
    let meta = VolumeMeta {
        description: format!("{} (resampled)", moving.meta.description),
        ..moving.meta.clone()
    };
    Volume::new(grid.clone(), data, meta)
}

/// Mean and maximum distance (mm) between two transforms over the foreground voxels of `grid_volume`
/// (target registration error against a known answer).
pub fn transform_error(a: &Affine, b: &Affine, grid_volume: &Volume) -> (f64, f64) {
    let (min, max) = grid_volume.min_max();
    let thr = min + 0.1 * (max - min);
    let g = &grid_volume.geometry;
    let [nx, ny, nz] = g.dims;
    let mut sum = 0.0;
    let mut n = 0usize;
    let mut worst = 0f64;
    for z in (0..nz).step_by(2) {
        for y in (0..ny).step_by(2) {
            for x in (0..nx).step_by(2) {
                if grid_volume.get(x, y, z) > thr {
                    let w = g.world_from_voxel([x as f64, y as f64, z as f64]);
                    let (p, q) = (a.apply(w), b.apply(w));
                    let d = ((p[0] - q[0]).powi(2) + (p[1] - q[1]).powi(2) + (p[2] - q[2]).powi(2))
                        .sqrt();
                    sum += d;
                    worst = worst.max(d);
                    n += 1;
                }
            }
        }
    }
    (sum / n.max(1) as f64, worst)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::io::phantom::{MrContrast, PhantomConfig, phantom_ct, phantom_mr};

    #[test]
    fn analytic_gradient_matches_finite_differences() {
        let cfg = PhantomConfig::small();
        let ct = phantom_ct(&cfg);
        let mr = phantom_mr(&cfg, MrContrast::T1);
        // Samples well inside both images: the analytic gradient ignores samples crossing the edge.
        let mask = Volume::new(
            ct.geometry.clone(),
            ct.data
                .iter()
                .map(|v| if *v > -500.0 { 1.0 } else { 0.0 })
                .collect(),
            VolumeMeta::default(),
        );
        let metric = MattesMi::new(&ct, &mr, Some(&mask), 32, 20_000, 3);
        let mut bad = Vec::new();
        for stage in [Stage::Rigid, Stage::Affine] {
            let p0 = match stage {
                Stage::Rigid => vec![0.02, -0.01, 0.03, 1.0, -2.0, 0.5],
                Stage::Affine => vec![
                    1.01, 0.02, 0.0, -0.01, 0.99, 0.01, 0.0, 0.02, 1.0, 1.0, -2.0, 0.5,
                ],
            };
            let params = Params {
                stage,
                p: p0.clone(),
                center: [0.0, 0.0, 10.0],
            };
            let v = evaluate(&metric, &params);
            let norm = v.gradient.iter().map(|g| g * g).sum::<f64>().sqrt();
            for k in 0..p0.len() {
                let h = if k < 3 || (stage == Stage::Affine && k < 9) {
                    1e-4
                } else {
                    0.05
                };
                let mut pp = params.clone();
                pp.p[k] += h;
                let up = evaluate(&metric, &pp).mi;
                pp.p[k] -= 2.0 * h;
                let dn = evaluate(&metric, &pp).mi;
                let fd = (up - dn) / (2.0 * h);
                let g = v.gradient[k];
                eprintln!("{stage:?} param {k}: analytic {g:.5e} numeric {fd:.5e}");
                if (g - fd).abs() > 0.2 * fd.abs().max(g.abs()) + 0.03 * norm {
                    bad.push(format!("{stage:?} param {k}: analytic {g} vs numeric {fd}"));
                }
            }
        }
        assert!(bad.is_empty(), "{bad:?}");
    }

    #[test]
    fn gpu_metric_matches_the_cpu_metric() {
        let cfg = PhantomConfig::small();
        let ct = phantom_ct(&cfg);
        let mr = phantom_mr(&cfg, MrContrast::T1);
        let metric = MattesMi::new(&ct, &mr, None, 32, 30_000, 4);
        let gpu = crate::gpu::shared().expect("shared device");
        let g = GpuMattes::new(&gpu.setup.device, &gpu.setup.queue, &metric).unwrap();
        for stage in [Stage::Rigid, Stage::Affine] {
            let p = match stage {
                Stage::Rigid => vec![0.03, -0.02, 0.05, 2.0, -3.0, 1.0],
                Stage::Affine => vec![
                    1.01, 0.02, 0.0, -0.01, 0.99, 0.01, 0.0, 0.02, 1.0, 1.0, -2.0, 0.5,
                ],
            };
            let params = Params {
                stage,
                p,
                center: [0.0, 0.0, 10.0],
            };
            let cpu = evaluate(&metric, &params);
            let dr = rotation_derivatives(&params.p);
            let on_gpu = g
                .evaluate(
                    &metric,
                    &params.transform(),
                    (stage == Stage::Rigid).then_some(&dr),
                )
                .unwrap();
            assert_eq!(cpu.valid, on_gpu.valid, "{stage:?}: valid samples");
            assert!(
                (cpu.mi - on_gpu.mi).abs() < 1e-3 * cpu.mi.abs(),
                "{stage:?}: MI cpu {} gpu {}",
                cpu.mi,
                on_gpu.mi
            );
            let norm = cpu.gradient.iter().map(|x| x * x).sum::<f64>().sqrt();
            for (k, (a, b)) in cpu.gradient.iter().zip(&on_gpu.gradient).enumerate() {
                assert!(
                    (a - b).abs() <= 0.02 * norm + 0.02 * a.abs(),
                    "{stage:?} param {k}: cpu {a} gpu {b}"
                );
            }
        }
    }
}
