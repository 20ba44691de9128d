//! `bench ops`: the U-Net's forward pass taken apart: every distinct op with its shapes, timed
//! alone on the compute device, times how often the network runs it; the same list in PyTorch
//! (scripts/pytorch_reference.py ops) side by side. Where the time goes, per op.

use burn::tensor::module::{conv2d, interpolate, max_pool2d};
use burn::tensor::ops::{ConvOptions, InterpolateMode, InterpolateOptions, MaxPoolOptions};
use burn::tensor::{Device, Distribution, Tensor};
use std::time::Instant;

/// One op of the network at one shape.
#[derive(Clone, Debug, PartialEq)]
pub(super) enum Op {
    /// k x k convolution, "same" padding: (k, cin, cout, side, bias).
    Conv(usize, usize, usize, usize, bool),
    /// Batch norm in evaluation mode: (channels, side).
    BatchNorm(usize, usize),
    /// ReLU: (channels, side).
    Relu(usize, usize),
    /// 2x2 max-pool of (channels, side).
    MaxPool(usize, usize),
    /// Nearest x2 of (channels, side).
    Upsample(usize, usize),
    /// Concatenation on channels of (channels, channels, side).
    Cat(usize, usize, usize),
}

impl Op {
    /// The name scripts/pytorch_reference.py gives the same op.
    pub(super) fn name(&self) -> String {
        match *self {
            Op::Conv(k, a, b, s, bias) => {
                format!("conv{k}x{k} {a}->{b} @{s}{}", if bias { " +bias" } else { "" })
            }
            Op::BatchNorm(c, s) => format!("batchnorm {c} @{s}"),
            Op::Relu(c, s) => format!("relu {c} @{s}"),
            Op::MaxPool(c, s) => format!("maxpool {c} @{s}"),
            Op::Upsample(c, s) => format!("upsample {c} @{s}"),
            Op::Cat(a, b, s) => format!("cat {a}+{b} @{s}"),
        }
    }
}

/// The ops of a U-Net's evaluation-mode forward pass (see `model::unet`), in order, with
/// repeats merged: (op, count). `folded`: batch norms folded into the convolutions.
pub(super) fn unet_ops(base: usize, levels: usize, size: usize, folded: bool) -> Vec<(Op, usize)> {
    let w: Vec<usize> = (0..=levels).map(|i| base << i).collect();
    let s: Vec<usize> = (0..=levels).map(|i| size >> i).collect();
    let mut ops: Vec<Op> = Vec::new();
    let conv_bn_relu = |ops: &mut Vec<Op>, k, a, b, side| {
        ops.push(Op::Conv(k, a, b, side, folded));
        if !folded {
            ops.push(Op::BatchNorm(b, side));
        }
        ops.push(Op::Relu(b, side));
    };
    for l in 0..=levels {
        let cin = if l == 0 { 1 } else { w[l - 1] };
        if l > 0 {
            ops.push(Op::MaxPool(w[l - 1], s[l - 1]));
        }
        conv_bn_relu(&mut ops, 3, cin, w[l], s[l]);
        conv_bn_relu(&mut ops, 3, w[l], w[l], s[l]);
    }
    for l in (0..levels).rev() {
        conv_bn_relu(&mut ops, 1, w[l + 1], w[l], s[l + 1]);
        ops.push(Op::Upsample(w[l], s[l + 1]));
        ops.push(Op::Cat(w[l], w[l], s[l]));
        conv_bn_relu(&mut ops, 3, 2 * w[l], w[l], s[l]);
        conv_bn_relu(&mut ops, 3, w[l], w[l], s[l]);
    }
    ops.push(Op::Conv(1, w[0], 1, s[0], true));
    let mut merged: Vec<(Op, usize)> = Vec::new();
    for op in ops {
        match merged.iter_mut().find(|(o, _)| *o == op) {
            Some((_, n)) => *n += 1,
            None => merged.push((op, 1)),
        }
    }
    merged
}

/// Best-of-`repeat` milliseconds of `op` alone on `device` at `batch`, read back.
pub(super) fn time_op(op: &Op, batch: usize, repeat: usize, device: &Device) -> f64 {
    let rand = |shape: [usize; 4]| Tensor::<4>::random(shape, Distribution::Normal(0.0, 1.0), device);
    let vec1 = |c: usize| Tensor::<1>::random([c], Distribution::Uniform(0.5, 1.5), device);
    let run: Box<dyn Fn() -> Tensor<4>> = match *op {
        Op::Conv(k, a, b, s, bias) => {
            let (x, w) = (rand([batch, a, s, s]), rand([b, a, k, k]));
            let bias = bias.then(|| vec1(b));
            let p = k / 2;
            Box::new(move || {
                conv2d(x.clone(), w.clone(), bias.clone(), ConvOptions::new([1, 1], [p, p], [1, 1], 1))
            })
        }
        Op::BatchNorm(c, s) => {
            let x = rand([batch, c, s, s]);
            let (g, b, m, v) = (vec1(c), vec1(c), vec1(c), vec1(c));
            Box::new(move || {
                burn::tensor::module::batch_norm(x.clone(), g.clone(), b.clone(), m.clone(), v.clone(), 1e-5)
            })
        }
        Op::Relu(c, s) => {
            let x = rand([batch, c, s, s]);
            Box::new(move || burn::tensor::activation::relu(x.clone()))
        }
        Op::MaxPool(c, s) => {
            let x = rand([batch, c, s, s]);
            Box::new(move || max_pool2d(x.clone(), MaxPoolOptions::new([2, 2])))
        }
        Op::Upsample(c, s) => {
            let x = rand([batch, c, s, s]);
            Box::new(move || {
                interpolate(
                    x.clone(),
                    InterpolateOptions::new(InterpolateMode::Nearest).with_output_size([2 * s, 2 * s]),
                )
            })
        }
        Op::Cat(a, b, s) => {
            let (x, y) = (rand([batch, a, s, s]), rand([batch, b, s, s]));
            Box::new(move || Tensor::cat(vec![x.clone(), y.clone()], 1))
        }
    };
    // Read back a single value: the op's own time, not the copy of its output.
    let once = || {
        let t = Instant::now();
        let y = run();
        let _ = y.slice([0..1, 0..1, 0..1, 0..1]).into_data();
        t.elapsed().as_secs_f64() * 1e3
    };
    once();
    (0..repeat.max(1)).map(|_| once()).fold(f64::INFINITY, f64::min)
}
