//! Adam (Kingma & Ba) with its update fused into one pass per parameter tensor on the CPU
//! compute device; burn's own [`Adam`] everywhere else, with the same state record (so the
//! optimiser state of a run folder is the same file either way, and resumes either way).
//!
//! burn-optim 0.22.1 computes Adam as about ten tensor operations per parameter tensor (each a
//! pass over the tensor and a new buffer). Here one loop reads the parameter, its gradient and
//! both moments and writes the three updated, in place where the buffers are not shared, split
//! across threads. (On the 2-core machine the whole step's gain stayed within run-to-run noise:
//! Adam was a smaller share of a U-Net step than the phase split of `bench ops --train` had
//! suggested.) The arithmetic is burn's, in the same order:
//! `m = b1 m + (1 - b1) g`, `v = b2 v + (1 - b2) g^2`, and
//! `p -= lr * m * sqrt(1 - b2^t) / (1 - b1^t) / (sqrt(v) + eps sqrt(1 - b2^t))`.

use burn::backend::Flex;
use burn::backend::flex::FlexTensor;
use burn::optim::{
    Adam, AdamConfig, AdamState, AdaptiveMomentumState, LearningRate, ModuleOptimizer, Optimizer,
};
use burn::tensor::{DType, Device, Tensor};
use rayon::prelude::*;

/// Adam with `beta_1`, `beta_2` (and burn's default epsilon, 1e-5; no weight decay) as a module
/// optimiser: fused on the CPU device, burn's elsewhere.
pub fn adam(beta_1: f32, beta_2: f32) -> ModuleOptimizer {
    let config = AdamConfig::new().with_beta_1(beta_1).with_beta_2(beta_2);
    ModuleOptimizer::from(FusedAdam {
        burns: config.build(),
        beta_1,
        beta_2,
        epsilon: 1e-5,
    })
}

/// See the module documentation.
#[derive(Clone)]
pub struct FusedAdam {
    burns: Adam,
    beta_1: f32,
    beta_2: f32,
    epsilon: f32,
}

impl Optimizer for FusedAdam {
    type State<const D: usize> = AdamState<D>;

    fn step<const D: usize>(
        &self,
        lr: LearningRate,
        tensor: Tensor<D>,
        grad: Tensor<D>,
        state: Option<Self::State<D>>,
    ) -> (Tensor<D>, Option<Self::State<D>>) {
        let on_cpu = tensor.device() == Device::flex()
            && grad.device() == Device::flex()
            && tensor.dtype() == DType::F32
            && grad.dtype() == DType::F32
            && state.as_ref().is_none_or(|s| {
                s.momentum.max_moment_2.is_none()
                    && s.momentum.moment_1.dtype() == DType::F32
                    && s.momentum.moment_2.dtype() == DType::F32
            });
        if !on_cpu {
            return self.burns.step(lr, tensor, grad, state);
        }
        let shape = tensor.shape();
        let n = shape.num_elements();
        let prim = |t: Tensor<D>| t.try_into_primitive::<Flex>().ok().map(contiguous);
        let moments = match &state {
            Some(s) => match (
                prim(s.momentum.moment_1.clone()),
                prim(s.momentum.moment_2.clone()),
            ) {
                (Some(m), Some(v)) => Some((s.momentum.time + 1, m, v)),
                _ => None,
            },
            None => {
                let zeros = || FlexTensor::zeros(shape.clone(), DType::F32);
                Some((1, zeros(), zeros()))
            }
        };
        let (Some(mut p), Some(g), Some((time, mut m, mut v))) =
            (prim(tensor.clone()), prim(grad.clone()), moments)
        else {
            return self.burns.step(lr, tensor, grad, state);
        };
        // The originals go now, so the primitives hold their buffers alone and `storage_mut`
        // updates them in place instead of copying them first.
        drop((tensor, grad, state));
        let (b1, b2) = (self.beta_1, self.beta_2);
        let t = time as i32;
        let bc2 = (1.0 - b2.powi(t)).sqrt();
        let factor = bc2 / (1.0 - b1.powi(t));
        let eps = self.epsilon * bc2;
        let lr = lr as f32;
        let first = time == 1;
        let gs = g
            .as_slice::<f32>()
            .unwrap_or_else(|| unreachable!("contiguous f32"));
        let (ps, ms, vs) = (
            p.storage_mut::<f32>(),
            m.storage_mut::<f32>(),
            v.storage_mut::<f32>(),
        );
        const CHUNK: usize = 1 << 14;
        ps[..n]
            .par_chunks_mut(CHUNK)
            .zip(ms[..n].par_chunks_mut(CHUNK))
            .zip(vs[..n].par_chunks_mut(CHUNK))
            .zip(gs.par_chunks(CHUNK))
            .for_each(|(((p, m), v), g)| {
                for (((p, m), v), &g) in p.iter_mut().zip(m).zip(v).zip(g) {
                    // The first step is burn's: moments from the gradient alone.
                    let (m1, m2) = if first {
                        (g * (1.0 - b1), g * g * (1.0 - b2))
                    } else {
                        (*m * b1 + g * (1.0 - b1), *v * b2 + g * g * (1.0 - b2))
                    };
                    *m = m1;
                    *v = m2;
                    *p -= m1 * factor / (m2.sqrt() + eps) * lr;
                }
            });
        let back = |t: FlexTensor| Tensor::<D>::from_primitive::<Flex>(t);
        let state = AdaptiveMomentumState::new(time, back(m), back(v));
        (back(p), Some(AdamState::new(state)))
    }

    fn to_device<const D: usize>(state: Self::State<D>, device: &Device) -> Self::State<D> {
        <Adam as Optimizer>::to_device::<D>(state, device)
    }
}

/// A primitive with its values contiguous from offset 0.
fn contiguous(t: FlexTensor) -> FlexTensor {
    if t.as_slice::<f32>()
        .is_some_and(|s| s.len() == t.layout().shape().num_elements())
        && t.storage::<f32>().len() == t.layout().shape().num_elements()
    {
        t
    } else {
        t.to_contiguous()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::{Distribution, TensorData};

    /// Several steps of ours against burn's Adam on the same parameters and gradients: the
    /// parameters and both moments agree to float rounding, and the time counts alike.
    #[test]
    fn matches_burns_adam_over_several_steps() {
        let d = Device::flex();
        let ours = FusedAdam {
            burns: AdamConfig::new().with_beta_1(0.5).build(),
            beta_1: 0.5,
            beta_2: 0.999,
            epsilon: 1e-5,
        };
        let theirs = AdamConfig::new().with_beta_1(0.5).build();
        let mut p_ours = Tensor::<2>::random([37, 1001], Distribution::Normal(0.0, 1.0), &d);
        let mut p_theirs = Tensor::<2>::from_data(p_ours.to_data(), &d);
        let (mut s_ours, mut s_theirs) = (None, None);
        for step in 0..5 {
            let g = Tensor::<2>::random([37, 1001], Distribution::Normal(0.0, 1.0), &d);
            let lr = 1e-3 * (step + 1) as f64;
            let (p, s) = ours.step(lr, p_ours, g.clone(), s_ours);
            let (q, t) = theirs.step(lr, p_theirs, g, s_theirs);
            let close = |a: TensorData, b: TensorData, what: &str| {
                let (a, b) = (
                    a.try_to_vec::<f32>().unwrap(),
                    b.try_to_vec::<f32>().unwrap(),
                );
                let e = a
                    .iter()
                    .zip(&b)
                    .map(|(x, y)| (x - y).abs())
                    .fold(0f32, f32::max);
                assert!(e < 1e-6, "step {step}: {what} differs by {e}");
            };
            close(p.to_data(), q.to_data(), "parameter");
            let (ms, mt) = (&s.as_ref().unwrap().momentum, &t.as_ref().unwrap().momentum);
            assert_eq!(ms.time, mt.time);
            close(ms.moment_1.to_data(), mt.moment_1.to_data(), "first moment");
            close(
                ms.moment_2.to_data(),
                mt.moment_2.to_data(),
                "second moment",
            );
            (p_ours, p_theirs, s_ours, s_theirs) = (p, q, s, t);
        }
    }
}
