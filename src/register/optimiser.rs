//! L-BFGS on -MI in scaled (mm) units, with a backtracking (Armijo) line search and steps capped
//! at a level's step length; rotation/shear trade-offs make plain gradient ascent crawl.

use super::params::Params;
use super::{MetricValue, RegisterError};
use crate::io::Progress;
use std::collections::VecDeque;

/// What one pyramid level's optimisation is allowed.
pub(super) struct Level {
    /// Millimetres of displacement per unit of each parameter.
    pub(super) scales: Vec<f64>,
    /// Largest step (mm).
    pub(super) step: f64,
    /// Converged when steps stay below this (mm) and the metric stops improving.
    pub(super) min_step: f64,
    /// Iteration limit.
    pub(super) iterations: usize,
}

/// Maximise the metric `eval` from `params`: (the parameters reached, their metric value,
/// iterations run). `on_step(iteration, mi, step_mm)` follows every accepted step.
pub(super) fn lbfgs(
    eval: &dyn Fn(&Params) -> MetricValue,
    mut params: Params,
    level: &Level,
    progress: &Progress,
    on_step: &mut dyn FnMut(usize, f64, f64),
) -> Result<(Params, MetricValue, usize), RegisterError> {
    let scales = &level.scales;
    let n = params.p.len();
    let to_grad = |v: &MetricValue| -> Vec<f64> {
        v.gradient.iter().zip(scales).map(|(g, s)| -g / s).collect()
    };
    let dot = |a: &[f64], b: &[f64]| a.iter().zip(b).map(|(x, y)| x * y).sum::<f64>();
    let mut value = eval(&params);
    let mut g = to_grad(&value);
    let mut hist: VecDeque<(Vec<f64>, Vec<f64>)> = Default::default();
    let mut iterations = 0;
    let mut prev_mi = value.mi;
    for it in 0..level.iterations {
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
        let mut alpha = if dn > level.step || hist.is_empty() {
            level.step / dn
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
        on_step(it, value.mi, moved);
        progress.step();
        // Converged when steps stay tiny and the metric stops improving.
        if moved < level.min_step && (value.mi - prev_mi).abs() < 1e-7 {
            break;
        }
        prev_mi = value.mi;
    }
    Ok((params, value, iterations))
}
