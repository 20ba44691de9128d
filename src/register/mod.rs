//! Rigid then affine MR-to-CT registration by Mattes mutual information: multi-resolution
//! (shrink 4-2-1), centre-of-mass initialisation, analytic metric gradient, regular-step
//! gradient descent. CPU (rayon) implementation; the same code serves the panel and the CLI.

mod backend;
pub mod elastix;
mod gpu_metric;
mod metric;
mod optimiser;
mod params;
mod pyramid;

use crate::volume::resample::shrink;
use crate::volume::transform::{Affine, Decomposition};
pub use gpu_metric::{GpuMattes, GpuMetricError};
pub use metric::{MattesMi, MetricValue};

use crate::io::{LoadError, Progress};
use crate::volume::{Vec3, Volume};
use params::Params;
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
    /// Run an affine stage after the rigid one. Off by default: the CT and MR of one patient
    /// differ by a rigid motion, and on real heads (MNI152 T1 against a pseudo-CT) the affine
    /// stage took 2-4 % of scale that was not there; ask for it when the scanner distorts.
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
            affine: false,
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
    let radius = pyramid::rotation_radius(fixed);
    let shrinks = pyramid::levels(&cfg.shrink, fixed);
    let start = pyramid::initial_translation(fixed, moving, mask, cfg, shrinks[0], cf, cm);
    let mut params = Params::rigid(start, cf);
    let mut levels = Vec::new();
    let stages: Vec<Stage> = if cfg.affine {
        vec![Stage::Rigid, Stage::Affine]
    } else {
        vec![Stage::Rigid]
    };
    progress.start("Registering", shrinks.len() * stages.len() * cfg.iterations);
    let mut final_mi = 0.0;
    let mut gpu_lost = false;
    for stage in stages {
        if stage == Stage::Affine {
            params = params.to_affine();
        }
        for (li, &f) in pyramid::stage_levels(stage, &shrinks).iter().enumerate() {
            progress.check()?;
            let lt = Instant::now();
            let (fx, mv) = (shrink(fixed, f), shrink(moving, f));
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
            let home = backend::MetricHome::choose(cfg.backend, &metric, &params, &mut gpu_lost);
            let step = cfg.initial_step_mm / (1usize << li.min(3)) as f64
                * if stage == Stage::Affine { 0.5 } else { 1.0 };
            let level = optimiser::Level {
                scales: params.scales(radius),
                step,
                min_step: cfg.min_step_mm,
                iterations: cfg.iterations,
            };
            let (p, value, iterations) = optimiser::lbfgs(
                &|p: &Params| home.evaluate(&metric, p),
                params,
                &level,
                progress,
                &mut |iteration, mi, step_mm| {
                    on_iteration(&IterationReport {
                        stage,
                        level: li,
                        iteration,
                        mi,
                        step_mm,
                    })
                },
            )?;
            params = p;
            final_mi = value.mi;
            levels.push(LevelReport {
                stage,
                shrink: f,
                iterations,
                mi: value.mi,
                seconds: lt.elapsed().as_secs_f64(),
                backend: home.backend(),
                eval_ms: home.eval_ms,
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
    use super::params::{evaluate, rotation_derivatives};
    use super::*;
    use crate::io::phantom::{MrContrast, PhantomConfig, phantom_ct, phantom_mr};
    use crate::volume::VolumeMeta;

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
