//! Batch norm in training mode (batch statistics), optionally with the ReLU that follows it, as
//! one burn autodiff op on the CPU compute device: forward and backward are two passes each over
//! the activation, per channel in parallel.
//!
//! burn 0.22.1 records batch norm as one autodiff op too, but burn-flex runs both halves as the
//! backend's default compositions: a transposed copy of the activation for each mean, then
//! subtract, divide, multiply, add, each a pass of its own; the backward another nine passes and
//! two transposed copies, and the ReLU after it two more each way. In a U-Net 16/4 training step
//! at 128^2 that was about a quarter of the step (`synthscope bench ops --train`: batch norm
//! 16 channels at 128^2, forward and backward, 20 ms against PyTorch's 7).
//!
//! Here, with `n = B * H * W` values per channel, `x^ = (x - mean) / sqrt(var + eps)` (biased
//! variance, as burn and PyTorch normalise) and `y = gamma x^ + beta` (then `max(y, 0)`):
//! - forward: the mean, then the centred sum of squares (both summed in f64 per plane), then
//!   `y` in one pass;
//! - backward, with `g = dy` where the ReLU passed (`y > 0`, recomputed from x) and 0 elsewhere:
//!   `dbeta = sum g`, `dgamma = sum g x^` in one pass, then
//!   `dx = gamma / sqrt(var + eps) * (g - dbeta / n - x^ dgamma / n)` in another.
//!
//! Nothing but the input is kept for the backward (the statistics are per channel), so the
//! fused ReLU also saves the activation burn's ReLU would have kept.

use super::cpu_conv_train::{f32s, flex};
use burn::backend::autodiff::NodeId;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::{
    BalancedCheckpointing, CheckpointStrategy, NoCheckpointing,
};
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::flex::FlexTensor;
use burn::backend::{Autodiff, DispatchKindConversion, DispatchTensor, Flex};
use burn::nn::BatchNorm;
use burn::tensor::{DType, Tensor, TensorData};
use rayon::prelude::*;

/// `bn.forward(x)` in training mode (then `relu` when asked), with the running statistics
/// updated as burn's [`BatchNorm`] updates them (momentum, biased variance). `None` where the
/// tensors are not f32 autodiff tensors on burn-flex, or the layer is not training: the caller
/// uses burn's.
pub fn batch_norm_train(bn: &BatchNorm, x: &Tensor<4>, relu: bool) -> Option<Tensor<4>> {
    if !x.device().is_autodiff() || !bn.training.is_enabled() || x.dtype() != DType::F32 {
        return None;
    }
    let (gamma, beta) = (bn.gamma.val(), bn.beta.val());
    let eps = bn.epsilon;
    let (y, mean, var) = try_strategy::<NoCheckpointing>(x, &gamma, &beta, eps, relu)
        .or_else(|| try_strategy::<BalancedCheckpointing>(x, &gamma, &beta, eps, relu))?;
    let device = x.device();
    let m = bn.momentum;
    let [c] = gamma.dims();
    let stat = |v: Vec<f32>| Tensor::<1>::from_data(TensorData::new(v, [c]), &device);
    let running_mean = bn.running_mean.value_sync().to_device(&device);
    let running_var = bn.running_var.value_sync().to_device(&device);
    bn.running_mean
        .update((running_mean.mul_scalar(1.0 - m) + stat(mean).mul_scalar(m)).detach());
    bn.running_var
        .update((running_var.mul_scalar(1.0 - m) + stat(var).mul_scalar(m)).detach());
    Some(y)
}

/// The op for tensors of `Autodiff<Flex, C>`: the output and the batch mean and variance.
fn try_strategy<C: CheckpointStrategy>(
    x: &Tensor<4>,
    gamma: &Tensor<1>,
    beta: &Tensor<1>,
    eps: f64,
    relu: bool,
) -> Option<(Tensor<4>, Vec<f32>, Vec<f32>)>
where
    DispatchTensor: DispatchKindConversion<Autodiff<Flex, C>>,
{
    let prim = |t: Tensor<4>| t.try_into_primitive::<Autodiff<Flex, C>>().ok();
    let prim1 = |t: Tensor<1>| t.try_into_primitive::<Autodiff<Flex, C>>().ok();
    let xp = prim(x.clone())?;
    let gp = prim1(gamma.clone())?;
    let bp = prim1(beta.clone())?;
    if [xp.primitive(), gp.primitive(), bp.primitive()]
        .iter()
        .any(|p| p.dtype() != DType::F32)
    {
        return None;
    }
    let shape = xp.primitive().layout().shape();
    let dims = [shape[0], shape[1], shape[2] * shape[3]];
    let dims4 = [shape[0], shape[1], shape[2], shape[3]];
    let (g, b) = (
        f32s(gp.primitive()).into_owned(),
        f32s(bp.primitive()).into_owned(),
    );
    if g.len() != dims[1] || b.len() != dims[1] {
        return None;
    }
    let xs = f32s(xp.primitive());
    let stats = Stats::of(&xs, dims, eps);
    let y = flex(forward(&xs, dims, &stats, &g, &b, relu), &dims4);
    let (mean, var) = (stats.mean.clone(), stats.var.clone());
    drop(xs);
    let op = BnTrain { relu };
    let out = match op
        .prepare::<C>([xp.node(), gp.node(), bp.node()])
        .compute_bound()
        .stateful()
    {
        OpsKind::Tracked(mut prep) => {
            let x_state = prep.checkpoint(&xp);
            prep.finish(
                State {
                    x: x_state,
                    stats,
                    gamma: g,
                    beta: b,
                },
                y,
            )
        }
        OpsKind::UnTracked(prep) => prep.finish(y),
    };
    Some((Tensor::from_primitive::<Autodiff<Flex, C>>(out), mean, var))
}

/// Per-channel batch statistics.
#[derive(Clone, Debug)]
struct Stats {
    mean: Vec<f32>,
    /// Biased variance.
    var: Vec<f32>,
    /// 1 / sqrt(var + eps).
    inv_std: Vec<f32>,
}

impl Stats {
    /// Of x: [B, C, HW].
    fn of(x: &[f32], [b, c, hw]: [usize; 3], eps: f64) -> Self {
        let n = (b * hw).max(1) as f64;
        let per: Vec<(f32, f32, f32)> = (0..c)
            .into_par_iter()
            .map(|ch| {
                let planes = || (0..b).map(|i| &x[(i * c + ch) * hw..(i * c + ch + 1) * hw]);
                let mean = planes().map(|p| sum(p, |v| v)).sum::<f64>() / n;
                let m = mean as f32;
                let var = planes()
                    .map(|p| {
                        sum(p, |v| {
                            let d = v - m;
                            d * d
                        })
                    })
                    .sum::<f64>()
                    / n;
                (m, var as f32, (1.0 / (var + eps).sqrt()) as f32)
            })
            .collect();
        Self {
            mean: per.iter().map(|p| p.0).collect(),
            var: per.iter().map(|p| p.1).collect(),
            inv_std: per.iter().map(|p| p.2).collect(),
        }
    }
}

/// `sum f(v)` over a plane: eight f32 lanes over runs of 1,024 values, each run's total added
/// in f64 (so long planes keep their precision and the loop vectorises).
fn sum(p: &[f32], f: impl Fn(f32) -> f32 + Copy) -> f64 {
    p.chunks(1024)
        .map(|run| {
            let mut lanes = [0f32; 8];
            let chunks = run.chunks_exact(8);
            let tail: f32 = chunks.remainder().iter().map(|&v| f(v)).sum();
            for c in chunks {
                for (l, &v) in lanes.iter_mut().zip(c) {
                    *l += f(v);
                }
            }
            lanes.iter().sum::<f32>() as f64 + tail as f64
        })
        .sum()
}

/// y = gamma x^ + beta (then max(., 0)), plane by plane in parallel, as `(x - mean) * scale +
/// beta`: centred first, as burn does (folding the mean into the shift cancelled catastrophically
/// on planes of near-constant values: errors of 1e-4 at |x| ~ 4 with a variance near 0).
fn forward(
    x: &[f32],
    [_, c, hw]: [usize; 3],
    s: &Stats,
    g: &[f32],
    b: &[f32],
    relu: bool,
) -> Vec<f32> {
    let mut y = vec![0f32; x.len()];
    y.par_chunks_mut(hw)
        .zip(x.par_chunks(hw))
        .enumerate()
        .for_each(|(i, (out, inp))| {
            let ch = i % c;
            let scale = g[ch] * s.inv_std[ch];
            let (m, shift) = (s.mean[ch], b[ch]);
            if relu {
                out.iter_mut()
                    .zip(inp)
                    .for_each(|(o, &v)| *o = ((v - m) * scale + shift).max(0.0));
            } else {
                out.iter_mut()
                    .zip(inp)
                    .for_each(|(o, &v)| *o = (v - m) * scale + shift);
            }
        });
    y
}

/// (dx, dgamma, dbeta) from the input, its statistics and the output gradient.
fn backward(
    x: &[f32],
    dy: &[f32],
    [b, c, hw]: [usize; 3],
    s: &Stats,
    g: &[f32],
    beta: &[f32],
    relu: bool,
) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let n = (b * hw).max(1) as f64;
    // The ReLU passed where gamma x^ + beta > 0, i.e. (x - mean) * scale + beta > 0 (see
    // [`gate`]).
    let affine = |ch: usize| (g[ch] * s.inv_std[ch], beta[ch]);
    let sums: Vec<(f64, f64)> = (0..c)
        .into_par_iter()
        .map(|ch| {
            let (scale, shift) = affine(ch);
            let (m, inv) = (s.mean[ch], s.inv_std[ch]);
            let (mut sg, mut sgx) = (0f64, 0f64);
            for i in 0..b {
                let r = (i * c + ch) * hw..(i * c + ch + 1) * hw;
                let (xp, gp) = (&x[r.clone()], &dy[r]);
                for (xr, gr) in xp.chunks(1024).zip(gp.chunks(1024)) {
                    let (mut a, mut ax) = ([0f32; 8], [0f32; 8]);
                    let term = |v: f32, d: f32| {
                        let d = gate(d, v - m, scale, shift, relu);
                        (d, d * (v - m) * inv)
                    };
                    let (xc, gc) = (xr.chunks_exact(8), gr.chunks_exact(8));
                    let (mut tg, mut tgx) = (0f32, 0f32);
                    for (&v, &d) in xc.remainder().iter().zip(gc.remainder()) {
                        let (p, q) = term(v, d);
                        tg += p;
                        tgx += q;
                    }
                    for (xv, gv) in xc.zip(gc) {
                        for l in 0..8 {
                            let (p, q) = term(xv[l], gv[l]);
                            a[l] += p;
                            ax[l] += q;
                        }
                    }
                    sg += (a.iter().sum::<f32>() + tg) as f64;
                    sgx += (ax.iter().sum::<f32>() + tgx) as f64;
                }
            }
            (sg, sgx)
        })
        .collect();
    let dbeta: Vec<f32> = sums.iter().map(|s| s.0 as f32).collect();
    let dgamma: Vec<f32> = sums.iter().map(|s| s.1 as f32).collect();
    let mut dx = vec![0f32; x.len()];
    dx.par_chunks_mut(hw)
        .zip(x.par_chunks(hw).zip(dy.par_chunks(hw)))
        .enumerate()
        .for_each(|(i, (out, (xp, gp)))| {
            let ch = i % c;
            let (scale, shift) = affine(ch);
            let (m, inv) = (s.mean[ch], s.inv_std[ch]);
            let k = g[ch] * inv;
            let mg = (sums[ch].0 / n) as f32;
            let mgx = (sums[ch].1 / n) as f32;
            for ((o, &v), &d) in out.iter_mut().zip(xp).zip(gp) {
                let d = gate(d, v - m, scale, shift, relu);
                *o = k * (d - mg - (v - m) * inv * mgx);
            }
        });
    (dx, dgamma, dbeta)
}

/// The output gradient `d` of an input value (`centred`: minus the mean) through the fused
/// ReLU: 0 where the ReLU cut
/// (`centred * scale + shift <= 0`, the forward pass's own expression), `d` elsewhere or
/// without one.
#[inline]
fn gate(d: f32, centred: f32, scale: f32, shift: f32, relu: bool) -> f32 {
    if relu && centred * scale + shift <= 0.0 {
        0.0
    } else {
        d
    }
}

/// The autodiff step of [`batch_norm_train`].
#[derive(Debug)]
struct BnTrain {
    relu: bool,
}

/// What the backward needs: the input's node, its statistics, gamma and beta.
#[derive(Clone, Debug)]
struct State {
    x: NodeId,
    stats: Stats,
    gamma: Vec<f32>,
    beta: Vec<f32>,
}

impl Backward<Flex, 3> for BnTrain {
    type State = State;

    fn backward(
        self,
        ops: Ops<Self::State, 3>,
        grads: &mut Gradients,
        checkpointer: &mut Checkpointer,
    ) {
        let [node_x, node_g, node_b] = ops.parents;
        let dy = grads.consume::<Flex>(&ops.node);
        let st = ops.state;
        let x: FlexTensor = checkpointer.retrieve_node_output(st.x);
        let shape = x.layout().shape();
        let dims4 = [shape[0], shape[1], shape[2], shape[3]];
        let dims = [dims4[0], dims4[1], dims4[2] * dims4[3]];
        let (dx, dg, db) = backward(
            &f32s(&x),
            &f32s(&dy),
            dims,
            &st.stats,
            &st.gamma,
            &st.beta,
            self.relu,
        );
        if let Some(node) = node_x {
            grads.register::<Flex>(node.id, flex(dx, &dims4));
        }
        if let Some(node) = node_g {
            grads.register::<Flex>(node.id, flex(dg, &[dims4[1]]));
        }
        if let Some(node) = node_b {
            grads.register::<Flex>(node.id, flex(db, &[dims4[1]]));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::cpu_conv_train::max_diff;
    use super::*;
    use burn::nn::BatchNormConfig;
    use burn::tensor::activation::relu as burn_relu;
    use burn::tensor::{Device, Distribution};

    /// Output, the three gradients and the running statistics against burn's batch norm (and
    /// ReLU) on the same device, with a non-trivial gamma and beta, odd sizes and planes longer
    /// than one summing run.
    #[test]
    fn matches_burns_batch_norm_and_relu() {
        let d = Device::flex().autodiff();
        for (b, c, h, w) in [(2, 3, 5, 7), (3, 2, 40, 33), (1, 4, 1, 1), (4, 16, 16, 16)] {
            for relu in [false, true] {
                let x = (Tensor::<4>::random([b, c, h, w], Distribution::Normal(0.5, 2.0), &d))
                    .require_grad();
                let g = Tensor::<1>::random([c], Distribution::Normal(1.0, 0.5), &d);
                let be = Tensor::<1>::random([c], Distribution::Normal(0.0, 0.5), &d);
                // Two layers (a clone would share its running state), the same gamma and beta.
                let layer = || {
                    let mut bn = BatchNormConfig::new(c).init(&d);
                    bn.gamma = bn.gamma.map(|_| g.clone().detach().require_grad());
                    bn.beta = bn.beta.map(|_| be.clone().detach().require_grad());
                    bn
                };
                let (ours, theirs) = (layer(), layer());
                let target = Tensor::<4>::random([b, c, h, w], Distribution::Normal(0.0, 1.0), &d);
                let loss = |y: Tensor<4>| (y - target.clone()).powi_scalar(2).mean();
                let want = {
                    let y = theirs.forward(x.clone());
                    if relu { burn_relu(y) } else { y }
                };
                let got = batch_norm_train(&ours, &x, relu).expect("the flex autodiff device");
                let what = format!("{:?} relu {relu}", (b, c, h, w));
                let e = max_diff(want.clone(), got.clone());
                assert!(e < 1e-4, "{what}: output differs by {e}");
                let (ga, gb) = (loss(want).backward(), loss(got).backward());
                let dx = max_diff(x.grad(&ga).unwrap(), x.grad(&gb).unwrap());
                assert!(dx < 1e-5, "{what}: input gradient differs by {dx}");
                let dg = max_diff(
                    theirs.gamma.val().grad(&ga).unwrap(),
                    ours.gamma.val().grad(&gb).unwrap(),
                );
                assert!(dg < 1e-4, "{what}: gamma gradient differs by {dg}");
                let db = max_diff(
                    theirs.beta.val().grad(&ga).unwrap(),
                    ours.beta.val().grad(&gb).unwrap(),
                );
                assert!(db < 1e-4, "{what}: beta gradient differs by {db}");
                let rm = max_diff(theirs.running_mean.value(), ours.running_mean.value());
                let rv = max_diff(theirs.running_var.value(), ours.running_var.value());
                assert!(rm < 1e-5 && rv < 1e-4, "{what}: running stats {rm} {rv}");
            }
        }
    }

    /// One value per channel: the centred value is exactly 0, so the output is exactly beta
    /// however large the value (a mean folded into the shift left errors of ~1e-4 here).
    #[test]
    fn a_single_value_per_channel_gives_beta() {
        let d = Device::flex().autodiff();
        let mut bn = BatchNormConfig::new(2).init(&d);
        let vec1 = |v: [f32; 2]| Tensor::<1>::from_data(TensorData::new(v.to_vec(), [2]), &d);
        bn.gamma = bn.gamma.map(|_| vec1([3.0, 0.5]).require_grad());
        bn.beta = bn.beta.map(|_| vec1([0.25, -1.0]).require_grad());
        let x = Tensor::<4>::from_data(TensorData::new(vec![1000.0f32, -37.5], [1, 2, 1, 1]), &d)
            .require_grad();
        let y = batch_norm_train(&bn, &x, false).expect("the flex autodiff device");
        assert_eq!(y.into_data().as_slice::<f32>().unwrap(), &[0.25, -1.0]);
    }

    /// The statistics of a known plane: mean and biased variance of 0..n.
    #[test]
    fn statistics_of_a_known_ramp() {
        let (b, c, hw) = (2, 1, 2500);
        let x: Vec<f32> = (0..b * c * hw).map(|i| i as f32).collect();
        let s = Stats::of(&x, [b, c, hw], 1e-5);
        let n = (b * hw) as f64;
        let want_var = (n * n - 1.0) / 12.0;
        assert!((s.mean[0] as f64 - (n - 1.0) / 2.0).abs() < 1e-3);
        assert!(((s.var[0] as f64) - want_var).abs() / want_var < 1e-6);
    }
}
