//! 2 x 2, stride 2 max-pooling on the CPU compute device, differentiable: the forward pass
//! keeps which of the four won (one byte per output), the backward pass writes each output's
//! gradient there and zeros elsewhere, plane by plane in parallel.
//!
//! burn-flex 0.22.1 pools through its general k x k kernel with 64-bit indices of the winners
//! kept for the backward and a scatter over them (`synthscope bench ops --train`: half
//! PyTorch's speed on the U-Net's pools).

use super::cpu_conv_train::{f32s, flex};
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::{
    BalancedCheckpointing, CheckpointStrategy, NoCheckpointing,
};
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::{Autodiff, DispatchKindConversion, DispatchTensor, Flex};
use burn::nn::PaddingConfig2d;
use burn::nn::pool::MaxPool2d;
use burn::tensor::{DType, Device, Tensor};
use rayon::prelude::*;
use std::sync::Arc;

/// `pool.forward(x)`: ours on the CPU device while training (tracked) when the pool is 2 x 2
/// with stride 2, no padding, no dilation and floor rounding; burn's otherwise.
pub fn max_pool(pool: &MaxPool2d, x: Tensor<4>) -> Tensor<4> {
    let d = x.device();
    let two_by_two = pool.kernel_size == [2, 2]
        && pool.stride == [2, 2]
        && pool.dilation == [1, 1]
        && matches!(pool.padding, PaddingConfig2d::Valid)
        && !pool.ceil_mode;
    if two_by_two && d.is_autodiff() && d == Device::flex() && x.dtype() == DType::F32 {
        if let Some(y) = try_strategy::<NoCheckpointing>(&x)
            .or_else(|| try_strategy::<BalancedCheckpointing>(&x))
        {
            return y;
        }
    }
    pool.forward(x)
}

/// The op for tensors of `Autodiff<Flex, C>`.
fn try_strategy<C: CheckpointStrategy>(x: &Tensor<4>) -> Option<Tensor<4>>
where
    DispatchTensor: DispatchKindConversion<Autodiff<Flex, C>>,
{
    let xp = x.clone().try_into_primitive::<Autodiff<Flex, C>>().ok()?;
    if xp.primitive().dtype() != DType::F32 {
        return None;
    }
    let s = xp.primitive().layout().shape();
    let dims = [s[0], s[1], s[2], s[3]];
    let (y, winners) = forward(&f32s(xp.primitive()), dims);
    let out_shape = [dims[0], dims[1], dims[2] / 2, dims[3] / 2];
    let y = flex(y, &out_shape);
    let out = match MaxPool2x2
        .prepare::<C>([xp.node()])
        .compute_bound()
        .stateful()
    {
        OpsKind::Tracked(prep) => prep.finish((Arc::new(winners), dims), y),
        OpsKind::UnTracked(prep) => prep.finish(y),
    };
    Some(Tensor::from_primitive::<Autodiff<Flex, C>>(out))
}

/// The pooled values and, per output, which input won: 0..4 for (0,0), (0,1), (1,0), (1,1).
fn forward(x: &[f32], [b, c, h, w]: [usize; 4]) -> (Vec<f32>, Vec<u8>) {
    let (oh, ow) = (h / 2, w / 2);
    let mut y = vec![0f32; b * c * oh * ow];
    let mut win = vec![0u8; y.len()];
    if y.is_empty() {
        return (y, win);
    }
    y.par_chunks_mut(oh * ow)
        .zip(win.par_chunks_mut(oh * ow))
        .zip(x.par_chunks(h * w))
        .for_each(|((yp, wp), xp)| {
            for i in 0..oh {
                let (r0, r1) = (&xp[2 * i * w..][..w], &xp[(2 * i + 1) * w..][..w]);
                let (yr, wr) = (&mut yp[i * ow..][..ow], &mut wp[i * ow..][..ow]);
                for j in 0..ow {
                    let cand = [r0[2 * j], r0[2 * j + 1], r1[2 * j], r1[2 * j + 1]];
                    // The first of equal maxima wins, NaN propagates (as PyTorch pools).
                    let mut k = 0;
                    for (q, &v) in cand.iter().enumerate().skip(1) {
                        if v > cand[k] || (v.is_nan() && !cand[k].is_nan()) {
                            k = q;
                        }
                    }
                    yr[j] = cand[k];
                    wr[j] = k as u8;
                }
            }
        });
    (y, win)
}

/// The input gradient: each output's gradient at its winner.
fn backward(dy: &[f32], win: &[u8], [b, c, h, w]: [usize; 4]) -> Vec<f32> {
    let (oh, ow) = (h / 2, w / 2);
    let mut dx = vec![0f32; b * c * h * w];
    if oh * ow == 0 {
        return dx;
    }
    dx.par_chunks_mut(h * w)
        .zip(dy.par_chunks(oh * ow).zip(win.par_chunks(oh * ow)))
        .for_each(|(xp, (gp, wp))| {
            for i in 0..oh {
                for j in 0..ow {
                    let k = wp[i * ow + j] as usize;
                    xp[(2 * i + k / 2) * w + 2 * j + k % 2] = gp[i * ow + j];
                }
            }
        });
    dx
}

/// The autodiff step of [`max_pool`]; its state is the winners and the input's shape.
#[derive(Debug)]
struct MaxPool2x2;

impl Backward<Flex, 1> for MaxPool2x2 {
    type State = (Arc<Vec<u8>>, [usize; 4]);

    fn backward(
        self,
        ops: Ops<Self::State, 1>,
        grads: &mut Gradients,
        _checkpointer: &mut Checkpointer,
    ) {
        let [node] = ops.parents;
        let dy = grads.consume::<Flex>(&ops.node);
        let (win, dims) = ops.state;
        if let Some(node) = node {
            let dx = backward(&f32s(&dy), &win, dims);
            grads.register::<Flex>(node.id, flex(dx, &dims));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::nn::pool::MaxPool2dConfig;
    use burn::tensor::{Distribution, TensorData};

    /// Output and input gradient against burn's pool, odd sizes included (the last row and
    /// column dropped), and a known answer with ties.
    #[test]
    fn matches_burns_pool_and_a_known_answer() {
        let d = Device::flex().autodiff();
        let pool = MaxPool2dConfig::new([2, 2]).with_strides([2, 2]).init();
        for (b, c, h, w) in [(2, 3, 8, 6), (1, 2, 7, 9), (3, 1, 2, 2), (1, 1, 3, 3)] {
            let x = Tensor::<4>::random([b, c, h, w], Distribution::Normal(0.0, 1.0), &d)
                .require_grad();
            let want = pool.forward(x.clone());
            let got = max_pool(&pool, x.clone());
            assert_eq!(want.dims(), got.dims());
            let g = Tensor::<4>::random(want.dims(), Distribution::Normal(0.0, 1.0), &d);
            let (ga, gb) = (
                (want.clone() * g.clone()).sum().backward(),
                (got.clone() * g).sum().backward(),
            );
            let same = |p: Tensor<4>, q: Tensor<4>| p.into_data() == q.into_data();
            assert!(same(want, got), "{:?}: output", (b, c, h, w));
            if h >= 2 && w >= 2 {
                assert!(
                    same(x.grad(&ga).unwrap(), x.grad(&gb).unwrap()),
                    "{:?}: gradient",
                    (b, c, h, w)
                );
            }
        }
        // Any other pool is burn's: a 3 x 3 one, stride 1, gives burn's output shape.
        let other = MaxPool2dConfig::new([3, 3]).init();
        let x = Tensor::<4>::random([1, 1, 6, 6], Distribution::Default, &d).require_grad();
        assert_eq!(max_pool(&other, x.clone()).dims(), other.forward(x).dims());
        // Ties go to the first (row-major) of the four.
        let x = Tensor::<4>::from_data(
            TensorData::new(vec![1f32, 3., 2., 2., 3., 0., 2., 2.], [1, 1, 2, 4]),
            &d,
        )
        .require_grad();
        let y = max_pool(&pool, x.clone());
        assert_eq!(y.to_data().as_slice::<f32>().unwrap(), &[3., 2.]);
        let gx = x.grad(&y.sum().backward()).unwrap();
        assert_eq!(
            gx.into_data().as_slice::<f32>().unwrap(),
            &[0., 1., 1., 0., 0., 0., 0., 0.]
        );
    }
}
