//! Where a level's metric is evaluated: on the CPU (rayon), or on the shared GPU device when that
//! measures faster.

use super::params::{Params, evaluate, rotation_derivatives};
use super::{GpuMattes, MattesMi, MetricBackend, MetricValue, Stage};

/// The metric's home for one pyramid level.
pub(super) struct MetricHome {
    gpu: Option<GpuMattes>,
    use_gpu: bool,
    /// Measured time of one evaluation on the CPU and on the GPU (ms), when measured.
    pub(super) eval_ms: (Option<f64>, Option<f64>),
}

impl MetricHome {
    /// Choose per `requested`; when Auto, one timed evaluation on each (the GPU warmed first).
    /// `gpu_lost` is set once the GPU is far slower, so later levels stop paying its upload.
    pub(super) fn choose(
        requested: MetricBackend,
        metric: &MattesMi,
        params: &Params,
        gpu_lost: &mut bool,
    ) -> Self {
        let gpu = match requested {
            MetricBackend::Cpu => None,
            // A software adapter runs on the same cores as rayon, 7-18x slower per evaluation
            // as measured on Mesa lavapipe (`synthscope bench register`): don't try it.
            MetricBackend::Auto
                if *gpu_lost
                    || crate::gpu::shared()
                        .map(|g| g.report.software)
                        .unwrap_or(true) =>
            {
                None
            }
            _ => crate::gpu::shared()
                .ok()
                .and_then(|g| GpuMattes::new(&g.setup.device, &g.setup.queue, metric).ok()),
        };
        let mut home = MetricHome {
            gpu,
            use_gpu: false,
            eval_ms: (None, None),
        };
        home.use_gpu = match (&home.gpu, requested) {
            (Some(_), MetricBackend::Gpu) => true,
            (Some(g), MetricBackend::Auto) => {
                let _ = gpu_evaluate(g, metric, params);
                let t = std::time::Instant::now();
                let ok = gpu_evaluate(g, metric, params).is_ok();
                let gpu_ms = t.elapsed().as_secs_f64() * 1e3;
                let t = std::time::Instant::now();
                let _ = evaluate(metric, params);
                let cpu_ms = t.elapsed().as_secs_f64() * 1e3;
                home.eval_ms = (Some(cpu_ms), ok.then_some(gpu_ms));
                if !ok || gpu_ms > 3.0 * cpu_ms {
                    *gpu_lost = true;
                }
                ok && gpu_ms < cpu_ms
            }
            _ => false,
        };
        home
    }

    /// The backend chosen.
    pub(super) fn backend(&self) -> MetricBackend {
        if self.use_gpu {
            MetricBackend::Gpu
        } else {
            MetricBackend::Cpu
        }
    }

    /// Metric value and gradient at `p` (the CPU answers if the GPU fails).
    pub(super) fn evaluate(&self, metric: &MattesMi, p: &Params) -> MetricValue {
        match (&self.gpu, self.use_gpu) {
            (Some(g), true) => gpu_evaluate(g, metric, p).unwrap_or_else(|_| evaluate(metric, p)),
            _ => evaluate(metric, p),
        }
    }
}

fn gpu_evaluate(
    g: &GpuMattes,
    metric: &MattesMi,
    p: &Params,
) -> Result<MetricValue, super::GpuMetricError> {
    let dr = rotation_derivatives(&p.p);
    g.evaluate(
        metric,
        &p.transform(),
        (p.stage == Stage::Rigid).then_some(&dr),
    )
}
