//! `bench ops`: the U-Net's forward pass taken apart: every distinct op with its shapes, timed
//! alone on the compute device, times how often the network runs it; the same list in PyTorch
//! (scripts/pytorch_reference.py ops) side by side. Where the time goes, per op.

use crate::model::cpu_conv;
use burn::tensor::module::{conv2d, interpolate, max_pool2d};
use burn::tensor::ops::{ConvOptions, InterpolateMode, InterpolateOptions, MaxPoolOptions};
use burn::tensor::{Device, Distribution, Tensor};
use std::time::Instant;

/// One op of the network at one shape.
#[derive(Clone, Debug, PartialEq)]
enum Op {
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
    fn name(&self) -> String {
        match *self {
            Op::Conv(k, a, b, s, bias) => {
                format!(
                    "conv{k}x{k} {a}->{b} @{s}{}",
                    if bias { " +bias" } else { "" }
                )
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
fn unet_ops(base: usize, levels: usize, size: usize, folded: bool) -> Vec<(Op, usize)> {
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
fn time_op(op: &Op, batch: usize, repeat: usize, device: &Device) -> f64 {
    let rand =
        |shape: [usize; 4]| Tensor::<4>::random(shape, Distribution::Normal(0.0, 1.0), device);
    let vec1 = |c: usize| Tensor::<1>::random([c], Distribution::Uniform(0.5, 1.5), device);
    let run: Box<dyn Fn() -> Tensor<4>> = match *op {
        Op::Conv(k, a, b, s, bias) => {
            let (x, w) = (rand([batch, a, s, s]), rand([b, a, k, k]));
            // A folded (bias) 3x3 at high resolution runs on our CPU kernel, as in the network.
            let own = bias && cpu_conv::worthwhile(device, [k, k], [1, 1], [s, s]);
            let bias = bias.then(|| vec1(b));
            let p = k / 2;
            Box::new(move || {
                if own {
                    return cpu_conv::conv3x3(x.clone(), w.clone(), bias.clone());
                }
                conv2d(
                    x.clone(),
                    w.clone(),
                    bias.clone(),
                    ConvOptions::new([1, 1], [p, p], [1, 1], 1),
                )
            })
        }
        Op::BatchNorm(c, s) => {
            let x = rand([batch, c, s, s]);
            let (g, b, m, v) = (vec1(c), vec1(c), vec1(c), vec1(c));
            Box::new(move || {
                burn::tensor::module::batch_norm(
                    x.clone(),
                    g.clone(),
                    b.clone(),
                    m.clone(),
                    v.clone(),
                    1e-5,
                )
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
                    InterpolateOptions::new(InterpolateMode::Nearest)
                        .with_output_size([2 * s, 2 * s]),
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
    (0..repeat.max(1))
        .map(|_| once())
        .fold(f64::INFINITY, f64::min)
}

/// `bench ops`: the U-Net's forward pass op by op, ours and (optionally) PyTorch's.
pub(super) fn run(
    (base, levels, size, batch, repeat): (usize, usize, usize, usize, usize),
    folded: bool,
    pytorch: &super::PytorchArgs,
) -> anyhow::Result<()> {
    let c = crate::gpu::compute()?;
    let list = unet_ops(base, levels, size, folded);
    println!(
        "U-Net {base}/{levels}, batch {batch} x {size}x{size}, {}; each op alone on {}",
        if folded {
            "batch norms folded"
        } else {
            "unfolded"
        },
        c.summary()
    );
    let ours: Vec<f64> = list
        .iter()
        .map(|(op, _)| time_op(op, batch, repeat, &c.device))
        .collect();
    let theirs: Option<Vec<Option<f64>>> = if pytorch.against_pytorch {
        let mut script: Vec<String> = [
            "ops",
            "--base-width",
            &base.to_string(),
            "--levels",
            &levels.to_string(),
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        script.extend(super::script_shapes("unet", size, batch, repeat, true));
        if folded {
            script.push("--folded".into());
        }
        super::run_pytorch(pytorch, &script).map(|v| {
            list.iter()
                .map(|(op, _)| {
                    v["ops"].as_array().and_then(|a| {
                        a.iter()
                            .find(|o| o["name"].as_str() == Some(op.name().as_str()))
                            .and_then(|o| o["ms"].as_f64())
                    })
                })
                .collect()
        })
    } else {
        None
    };
    let total: f64 = list
        .iter()
        .zip(&ours)
        .map(|((_, n), ms)| *n as f64 * ms)
        .sum();
    let mut order: Vec<usize> = (0..list.len()).collect();
    order.sort_by(|&a, &b| {
        let t = |i: usize| list[i].1 as f64 * ours[i];
        t(b).total_cmp(&t(a))
    });
    println!(
        "{:<28} {:>5} {:>10} {:>10} {:>6} {:>12} {:>8}",
        "op", "count", "ours ms", "total ms", "share", "PyTorch ms", "ratio"
    );
    let mut torch_total = 0.0;
    for i in order {
        let (op, n) = &list[i];
        let t = theirs.as_ref().and_then(|v| v[i]);
        torch_total += t.unwrap_or(0.0) * *n as f64;
        println!(
            "{:<28} {:>5} {:>10.2} {:>10.1} {:>5.1}% {:>12} {:>8}",
            op.name(),
            n,
            ours[i],
            *n as f64 * ours[i],
            100.0 * *n as f64 * ours[i] / total,
            t.map_or("-".into(), |t| format!("{t:.2}")),
            t.map_or("-".into(), |t| format!("{:.2}", t / ours[i]))
        );
    }
    println!(
        "sum of ops: ours {total:.0} ms per batch{}",
        if theirs.is_some() {
            format!(
                ", PyTorch {torch_total:.0} ms (ratio PyTorch/ours time {:.2})",
                torch_total / total
            )
        } else {
            String::new()
        }
    );
    Ok(())
}
