//! The differentiable form of [`super::cpu_conv`]'s convolution, for training (and Grad-CAM) on
//! the CPU compute device: a burn autodiff op on burn-flex whose forward pass and both gradients
//! are our own im2col + gemm kernels.
//!
//! burn 0.22.1 differentiates a convolution with burn-flex's `conv2d_x_backward` and
//! `conv2d_weight_backward`; the second runs the weight gradient as a convolution with the batch
//! as channels (a 3x3 output and an H x W "kernel"), slow at every U-Net layer. The earlier way
//! around it, [`super::cpu_conv::conv_shifted`] (nine shifted copies and one matrix product),
//! spent two fifths of a training step copying: the shifts, their concatenation, the transposes
//! of the matrix product's gradients and, worst, the slices' gradients (each a zero tensor of
//! the padded size with one slice written). Here:
//! - forward: `y = conv(x, w)` ([`super::cpu_conv::conv_nchw`]);
//! - input gradient: `dx = conv(dy, w')` with `w'[i, o, a, b] = w[o, i, k-1-a, k-1-b]` (a "same"
//!   convolution with the kernel flipped and its channels swapped);
//! - weight gradient: `dw[o, (i, a, b)] = sum over images and pixels of dy[o, p] col[(i, a, b), p]`,
//!   one gemm per tile against the im2col tile of the saved input, summed per thread.

use super::cpu_conv::{conv_nchw, im2col3, tile_rows};
use burn::backend::autodiff::NodeId;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::{
    BalancedCheckpointing, CheckpointStrategy, NoCheckpointing,
};
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::flex::FlexTensor;
use burn::backend::{Autodiff, DispatchKindConversion, DispatchTensor, Flex};
use burn::tensor::{DType, Tensor, TensorData};
use rayon::prelude::*;

/// x: [B, cin, H, W], weight: [cout, cin, k, k] (k = 1 or 3), "same" padding, stride 1 ->
/// [B, cout, H, W]; differentiable in both on an autodiff CPU (burn-flex) device. `None` where
/// the tensors are not f32 autodiff tensors on burn-flex (the caller falls back to burn's).
pub fn conv_same(x: &Tensor<4>, weight: &Tensor<4>) -> Option<Tensor<4>> {
    let [_, ci, _, _] = x.dims();
    let [_, wci, k, k2] = weight.dims();
    if wci != ci || k != k2 || !(k == 1 || k == 3) || x.dtype() != DType::F32 {
        return None;
    }
    try_strategy::<NoCheckpointing>(x, weight)
        .or_else(|| try_strategy::<BalancedCheckpointing>(x, weight))
}

/// [`conv_same`] for tensors of `Autodiff<Flex, C>`.
fn try_strategy<C: CheckpointStrategy>(x: &Tensor<4>, weight: &Tensor<4>) -> Option<Tensor<4>>
where
    DispatchTensor: DispatchKindConversion<Autodiff<Flex, C>>,
{
    let xp = x.clone().try_into_primitive::<Autodiff<Flex, C>>().ok()?;
    let wp = weight
        .clone()
        .try_into_primitive::<Autodiff<Flex, C>>()
        .ok()?;
    if xp.primitive().dtype() != DType::F32 || wp.primitive().dtype() != DType::F32 {
        return None;
    }
    let out = match ConvSame
        .prepare::<C>([xp.node(), wp.node()])
        .compute_bound()
        .stateful()
    {
        OpsKind::Tracked(mut prep) => {
            let xs = prep.checkpoint(&xp);
            let ws = prep.checkpoint(&wp);
            let y = forward(xp.primitive(), wp.primitive());
            prep.finish((xs, ws), y)
        }
        OpsKind::UnTracked(prep) => prep.finish(forward(xp.primitive(), wp.primitive())),
    };
    Some(Tensor::from_primitive::<Autodiff<Flex, C>>(out))
}

/// The autodiff step of [`conv_same`]; its state is the input's and the weight's node.
#[derive(Debug)]
struct ConvSame;

impl Backward<Flex, 2> for ConvSame {
    type State = (NodeId, NodeId);

    fn backward(
        self,
        ops: Ops<Self::State, 2>,
        grads: &mut Gradients,
        checkpointer: &mut Checkpointer,
    ) {
        let [node_x, node_w] = ops.parents;
        let dy = grads.consume::<Flex>(&ops.node);
        let (xs, ws) = ops.state;
        let x: FlexTensor = checkpointer.retrieve_node_output(xs);
        let w: FlexTensor = checkpointer.retrieve_node_output(ws);
        let (dims, k) = dims_of(&x, &w);
        let [b, ci, co, h, wd] = dims;
        let dy = f32s(&dy);
        if let Some(node) = node_x {
            let dx = conv_nchw(
                &dy,
                &flip_swap(&f32s(&w), co, ci, k),
                None,
                [b, co, ci, h, wd],
                k,
            );
            grads.register::<Flex>(node.id, flex(dx, &[b, ci, h, wd]));
        }
        if let Some(node) = node_w {
            let dw = weight_grad(&f32s(&x), &dy, dims, k);
            grads.register::<Flex>(node.id, flex(dw, &[co, ci, k, k]));
        }
    }
}

/// The convolution on burn-flex primitives.
fn forward(x: &FlexTensor, w: &FlexTensor) -> FlexTensor {
    let (dims, k) = dims_of(x, w);
    let [b, _, co, h, wd] = dims;
    flex(
        conv_nchw(&f32s(x), &f32s(w), None, dims, k),
        &[b, co, h, wd],
    )
}

/// ([B, cin, cout, H, W], k) of an input and a weight.
fn dims_of(x: &FlexTensor, w: &FlexTensor) -> ([usize; 5], usize) {
    let (xs, ws) = (x.layout().shape(), w.layout().shape());
    ([xs[0], xs[1], ws[0], xs[2], xs[3]], ws[2])
}

/// A primitive's values, contiguous (borrowed when they already are). f32 primitives only
/// (every caller checks the dtype first).
pub(super) fn f32s(t: &FlexTensor) -> std::borrow::Cow<'_, [f32]> {
    match t.as_slice::<f32>() {
        Some(s) => std::borrow::Cow::Borrowed(s),
        None => std::borrow::Cow::Owned(
            t.to_contiguous()
                .as_slice::<f32>()
                .unwrap_or_else(|| unreachable!("f32 checked by the caller"))
                .to_vec(),
        ),
    }
}

/// A burn-flex primitive owning `values`.
pub(super) fn flex(values: Vec<f32>, shape: &[usize]) -> FlexTensor {
    FlexTensor::from_data(TensorData::new(values, shape.to_vec()))
}

/// The largest absolute difference of two tensors' values (tests).
#[cfg(test)]
pub(super) fn max_diff<const D: usize>(p: Tensor<D>, q: Tensor<D>) -> f32 {
    let (p, q) = (p.into_data(), q.into_data());
    let (p, q) = (p.as_slice::<f32>().unwrap(), q.as_slice::<f32>().unwrap());
    assert_eq!(p.len(), q.len());
    p.iter()
        .zip(q)
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max)
}

/// `w'[i, o, a, b] = w[o, i, k-1-a, k-1-b]`: the kernel of the input gradient.
fn flip_swap(w: &[f32], co: usize, ci: usize, k: usize) -> Vec<f32> {
    let kk = k * k;
    let mut out = vec![0f32; w.len()];
    for o in 0..co {
        for i in 0..ci {
            for s in 0..kk {
                out[(i * co + o) * kk + (kk - 1 - s)] = w[(o * ci + i) * kk + s];
            }
        }
    }
    out
}

/// dw [co, ci, k, k] from the input x [b, ci, h, w] and the output gradient dy [b, co, h, w]:
/// by Winograd's F(2x2, 3x3) where the forward pass goes that way
/// ([`super::winograd::weight_grad`]), else [`weight_grad_direct`].
pub(super) fn weight_grad(x: &[f32], dy: &[f32], dims: [usize; 5], k: usize) -> Vec<f32> {
    let [_, ci, co, h, w] = dims;
    // On planes under 32 x 32 the 16 products have a depth of a few dozen tiles against an
    // output of 16 x co x ci: memory-bound, 0.85-1.2x the direct form's time there (U-Net 32/4
    // at 128^2, `bench ops --train`, 256 and 512 channels at 8^2 and 16^2); 1.1-1.35x faster
    // from 32^2 up.
    let winograd = k == 3
        && super::cpu_conv::winograd_enabled()
        && super::winograd::worthwhile(ci, co, h, w)
        && h * w >= 32 * 32;
    if winograd {
        return super::winograd::weight_grad(x, dy, dims);
    }
    weight_grad_direct(x, dy, dims, k)
}

/// [`weight_grad`] by im2col tiles and matrix products (the direct sum).
pub(super) fn weight_grad_direct(
    x: &[f32],
    dy: &[f32],
    [b, ci, co, h, w]: [usize; 5],
    k: usize,
) -> Vec<f32> {
    let hw = h * w;
    let kd = ci * k * k;
    // Short tiles, about 256 pixels: with 1,000-7,000 pixels (a long gemm depth, the im2col tile
    // past L2) the same sums took 3-5x longer here (U-Net layers at 64^2 and 128^2).
    let rows = tile_rows(h, w, 256);
    let tiles = h.div_ceil(rows);
    let partial = |mut acc: Vec<f32>, t: usize| {
        let (bi, ti) = (t / tiles, t % tiles);
        let (r0, r1) = (ti * rows, (ti * rows + rows).min(h));
        let l = (r1 - r0) * w;
        let image = &x[bi * ci * hw..(bi + 1) * ci * hw];
        let grad = &dy[bi * co * hw + r0 * w..];
        let col;
        // lhs (kd x l): row j of the tile's pixels.
        let (lhs, lhs_rs) = if k == 1 {
            (image[r0 * w..].as_ptr(), hw as isize)
        } else {
            col = im2col3(image, ci, h, w, r0, r1);
            (col.as_ptr(), l as isize)
        };
        // dw^T (kd x co, column-major in acc's [co, kd]) += col (kd x l) @ dy^T (l x co).
        // SAFETY: acc is co * kd, owned; lhs as above (kd rows of l pixels in bounds); rhs is
        // dy's rows r0..r1 of every channel of image bi (element (p, o) at o * hw + p).
        unsafe {
            gemm::gemm(
                kd,
                co,
                l,
                acc.as_mut_ptr(),
                kd as isize,
                1,
                true,
                lhs,
                1,
                lhs_rs,
                grad.as_ptr(),
                hw as isize,
                1,
                1.0,
                1.0,
                false,
                false,
                false,
                gemm::Parallelism::None,
            );
        }
        acc
    };
    // Fixed groups of tiles, summed in order: the same bits on every run (rayon's fold groups
    // by work stealing, so its sums differed run to run, and a resumed training run drifted
    // from the uninterrupted one).
    // Groups of four tiles, or of one where that leaves threads idle (the 8^2-32^2 layers of a
    // batch of four have 4-16 tiles: in groups of four one core summed them all).
    let n = b * tiles;
    let group = if n >= 8 * rayon::current_num_threads() {
        4
    } else {
        1
    };
    let partials: Vec<Vec<f32>> = (0..n.div_ceil(group))
        .into_par_iter()
        .map(|g| (g * group..((g + 1) * group).min(n)).fold(vec![0f32; co * kd], &partial))
        .collect();
    let mut out = vec![0f32; co * kd];
    for p in &partials {
        out.iter_mut().zip(p).for_each(|(o, q)| *o += q);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::module::conv2d;
    use burn::tensor::ops::ConvOptions;
    use burn::tensor::{Device, Distribution};

    /// Output, input gradient and weight gradient against burn's own convolution and its
    /// autodiff (burn-flex's reference kernels), on shapes with odd sizes and several tiles, and
    /// one between enough channels for the Winograd forms.
    #[test]
    fn gradients_match_burns_convolution() {
        let d = Device::flex().autodiff();
        for (b, ci, co, h, w) in [
            (2, 3, 5, 7, 6),
            (3, 4, 2, 33, 9),
            (1, 2, 3, 1, 1),
            (2, 3, 4, 48, 45),
            (2, 32, 33, 8, 9),
            (1, 32, 33, 33, 32),
        ] {
            for k in [1, 3] {
                let rand = |shape: [usize; 4]| {
                    Tensor::<4>::random(shape, Distribution::Normal(0.0, 1.0), &d).require_grad()
                };
                let (x, wt) = (rand([b, ci, h, w]), rand([co, ci, k, k]));
                let target = Tensor::<4>::random([b, co, h, w], Distribution::Normal(0.0, 1.0), &d);
                let loss = |y: Tensor<4>| (y - target.clone()).powi_scalar(2).mean();
                let opts = ConvOptions::new([1, 1], [k / 2, k / 2], [1, 1], 1);
                let want = conv2d(x.clone(), wt.clone(), None, opts);
                let got = conv_same(&x, &wt).expect("taken on the flex autodiff device");
                let what = format!("{:?} k {k}", (b, ci, co, h, w));
                assert!(max_diff(want.clone(), got.clone()) < 1e-4, "{what}: output");
                let (ga, gb) = (loss(want).backward(), loss(got).backward());
                let dx = max_diff(x.grad(&ga).unwrap(), x.grad(&gb).unwrap());
                assert!(dx < 1e-5, "{what}: input gradient differs by {dx}");
                let dw = max_diff(wt.grad(&ga).unwrap(), wt.grad(&gb).unwrap());
                assert!(dw < 1e-4, "{what}: weight gradient differs by {dw}");
            }
        }
    }

    /// The weight gradient by central finite differences of a scalar loss, on a tiny case.
    #[test]
    fn weight_gradient_matches_finite_differences() {
        let (b, ci, co, h, w, k) = (2, 2, 2, 5, 4, 3);
        let mut s = 1u32;
        let mut rnd = || {
            s = s.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            (s >> 8) as f32 / (1u32 << 24) as f32 - 0.5
        };
        let x: Vec<f32> = (0..b * ci * h * w).map(|_| rnd()).collect();
        let wt: Vec<f32> = (0..co * ci * k * k).map(|_| rnd()).collect();
        let r: Vec<f32> = (0..b * co * h * w).map(|_| rnd()).collect();
        // loss = sum(r * conv(x, w)): d loss / d y = r.
        let loss = |wt: &[f32]| -> f64 {
            let y = conv_nchw(&x, wt, None, [b, ci, co, h, w], k);
            y.iter()
                .zip(&r)
                .map(|(a, b)| (*a as f64) * (*b as f64))
                .sum()
        };
        let dw = weight_grad(&x, &r, [b, ci, co, h, w], k);
        let dx_grad = conv_nchw(&r, &flip_swap(&wt, co, ci, k), None, [b, co, ci, h, w], k);
        for j in 0..wt.len() {
            let e = 1e-2f32;
            let (mut p, mut m) = (wt.clone(), wt.clone());
            p[j] += e;
            m[j] -= e;
            let fd = (loss(&p) - loss(&m)) / (2.0 * e as f64);
            assert!(
                (fd - dw[j] as f64).abs() < 1e-3,
                "dw[{j}]: {} vs {fd}",
                dw[j]
            );
        }
        // And one input entry per image, the same way.
        for i in [0, b * ci * h * w - 1, 7] {
            let e = 1e-2f32;
            let lx = |x: &[f32]| -> f64 {
                let y = conv_nchw(x, &wt, None, [b, ci, co, h, w], k);
                y.iter()
                    .zip(&r)
                    .map(|(a, b)| (*a as f64) * (*b as f64))
                    .sum()
            };
            let (mut p, mut m) = (x.clone(), x.clone());
            p[i] += e;
            m[i] -= e;
            let fd = (lx(&p) - lx(&m)) / (2.0 * e as f64);
            assert!(
                (fd - dx_grad[i] as f64).abs() < 1e-3,
                "dx[{i}]: {} vs {fd}",
                dx_grad[i]
            );
        }
    }
}
