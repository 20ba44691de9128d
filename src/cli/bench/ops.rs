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

/// Best-of-`repeat` milliseconds of `op`'s forward pass alone and of its forward + backward pass
/// (every input's and weight's gradient, seeded through `sum(y * g)`, as the PyTorch side does)
/// on the autodiff `device`, batch norms in training mode, convolutions as `model::blocks` runs
/// them in training.
fn time_train_op(op: &Op, batch: usize, repeat: usize, device: &Device) -> (f64, f64) {
    use crate::model::cpu_conv_train::conv_same;
    let leaf = |shape: [usize; 4]| {
        Tensor::<4>::random(shape, Distribution::Normal(0.0, 1.0), device).require_grad()
    };
    let vec1 =
        |c: usize| Tensor::<1>::random([c], Distribution::Uniform(0.5, 1.5), device).require_grad();
    let fwd: Box<dyn Fn() -> Tensor<4>> = match *op {
        Op::Conv(k, a, b, s, bias) => {
            let (x, w) = (leaf([batch, a, s, s]), leaf([b, a, k, k]));
            let bias = bias.then(|| vec1(b));
            Box::new(move || {
                // As model::blocks::conv_forward: our op, the bias added after it.
                if let Some(y) = conv_same(&x, &w) {
                    return match &bias {
                        Some(b) => y + b.clone().reshape([1, -1, 1, 1]),
                        None => y,
                    };
                }
                let p = k / 2;
                conv2d(
                    x.clone(),
                    w.clone(),
                    bias.clone(),
                    ConvOptions::new([1, 1], [p, p], [1, 1], 1),
                )
            })
        }
        Op::BatchNorm(c, s) => {
            // As model::blocks::ConvBn runs it in training: our op where it applies (in the
            // network with the ReLU after it fused in; here alone, as PyTorch's is timed).
            let x = leaf([batch, c, s, s]);
            let mut bn = burn::nn::BatchNormConfig::new(c).init(device);
            bn.gamma = bn.gamma.map(|_| vec1(c));
            bn.beta = bn.beta.map(|_| vec1(c));
            Box::new(move || {
                crate::model::cpu_bn_train::batch_norm_train(&bn, &x, false)
                    .unwrap_or_else(|| bn.forward(x.clone()))
            })
        }
        Op::Relu(c, s) => {
            let x = leaf([batch, c, s, s]);
            Box::new(move || burn::tensor::activation::relu(x.clone()))
        }
        Op::MaxPool(c, s) => {
            // As the U-Net pools in training (model::cpu_pool where it applies).
            let x = leaf([batch, c, s, s]);
            let pool = burn::nn::pool::MaxPool2dConfig::new([2, 2])
                .with_strides([2, 2])
                .init();
            Box::new(move || crate::model::cpu_pool::max_pool(&pool, x.clone()))
        }
        Op::Upsample(c, s) => {
            let x = leaf([batch, c, s, s]);
            Box::new(move || {
                interpolate(
                    x.clone(),
                    InterpolateOptions::new(InterpolateMode::Nearest)
                        .with_output_size([2 * s, 2 * s]),
                )
            })
        }
        Op::Cat(a, b, s) => {
            let (x, y) = (leaf([batch, a, s, s]), leaf([batch, b, s, s]));
            Box::new(move || Tensor::cat(vec![x.clone(), y.clone()], 1))
        }
    };
    let out_shape = fwd().dims();
    let g = Tensor::<4>::random(out_shape, Distribution::Normal(0.0, 1.0), device);
    let best = |f: &dyn Fn()| {
        f();
        (0..repeat.max(1))
            .map(|_| {
                let t = Instant::now();
                f();
                t.elapsed().as_secs_f64() * 1e3
            })
            .fold(f64::INFINITY, f64::min)
    };
    // burn-flex computes eagerly: the op (and its gradients) are done when the call returns.
    let forward = best(&|| drop(fwd()));
    let both = best(&|| drop((fwd() * g.clone()).sum().backward()));
    (forward, both)
}

/// A training step of the whole U-Net taken apart: forward (with the loss), forward + backward,
/// and the full step with Adam, best-of-`repeat` milliseconds each on the autodiff `device`.
fn time_train_phases(
    (base, levels, size, batch, repeat): (usize, usize, usize, usize, usize),
    device: &Device,
) -> [f64; 3] {
    use burn::optim::GradientsParams;
    let cfg = crate::model::UnetConfig::new()
        .with_base_width(base)
        .with_levels(levels)
        .with_input_size(size);
    let mut model = Some(cfg.init(device));
    let x = Tensor::<4>::random([batch, 1, size, size], Distribution::Default, device);
    let y = Tensor::<4>::random([batch, 1, size, size], Distribution::Default, device);
    let mut optim = crate::train::adam::adam(0.9, 0.999);
    let mut best = [f64::INFINITY; 3];
    for _ in 0..repeat.max(1) + 1 {
        for (phase, slot) in best.iter_mut().enumerate() {
            let m = model
                .take()
                .unwrap_or_else(|| unreachable!("model put back below"));
            let t = Instant::now();
            let loss = (m.forward(x.clone()) - y.clone()).powi_scalar(2).mean();
            let _ = loss.clone().into_scalar::<f32>();
            let m = if phase >= 1 {
                let grads = GradientsParams::from_grads(loss.backward(), &m);
                if phase == 2 {
                    optim.step(1e-3, m, grads)
                } else {
                    m
                }
            } else {
                m
            };
            *slot = slot.min(t.elapsed().as_secs_f64() * 1e3);
            model = Some(m);
        }
    }
    best
}

/// `bench ops --train`: the U-Net's training step op by op (forward, and forward + backward),
/// ours and (optionally) PyTorch's, then the step's phases (forward, backward, Adam).
pub(super) fn run_train(
    (base, levels, size, batch, repeat): (usize, usize, usize, usize, usize),
    pytorch: &super::PytorchArgs,
) -> anyhow::Result<()> {
    let c = crate::gpu::compute()?;
    let ad = c.device.clone().autodiff();
    let list = unet_ops(base, levels, size, false);
    println!(
        "U-Net {base}/{levels} training step, batch {batch} x {size}x{size}; each op alone on {} (autodiff; backward seeded through sum(y * g) on both sides)",
        c.summary()
    );
    let theirs = if pytorch.against_pytorch {
        let mut script: Vec<String> = [
            "train-ops",
            "--base-width",
            &base.to_string(),
            "--levels",
            &levels.to_string(),
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        script.extend(super::script_shapes("unet", size, batch, repeat, true));
        super::run_pytorch(pytorch, &script)
    } else {
        None
    };
    // Ours after PyTorch's, op by op, so a change of load hits both sides alike as far as can be.
    let ours: Vec<(f64, f64)> = list
        .iter()
        .map(|(op, _)| time_train_op(op, batch, repeat, &ad))
        .collect();
    let torch_op = |name: &str| -> Option<(f64, f64)> {
        let ops = theirs.as_ref()?["ops"].as_array()?;
        let o = ops.iter().find(|o| o["name"].as_str() == Some(name))?;
        Some((o["fwd_ms"].as_f64()?, o["fwd_bwd_ms"].as_f64()?))
    };
    let mut order: Vec<usize> = (0..list.len()).collect();
    let total = |i: usize| list[i].1 as f64 * ours[i].1;
    order.sort_by(|&a, &b| total(b).total_cmp(&total(a)));
    let sum: f64 = (0..list.len()).map(total).sum();
    println!(
        "{:<28} {:>5} {:>9} {:>9} {:>9} {:>6} {:>9} {:>9} {:>7}",
        "op", "count", "fwd ms", "f+b ms", "total ms", "share", "PT fwd", "PT f+b", "ratio"
    );
    let mut torch_sum = 0.0;
    for i in order {
        let (op, n) = &list[i];
        let t = torch_op(&op.name());
        torch_sum += t.map_or(0.0, |t| t.1) * *n as f64;
        let ms = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.2}"));
        println!(
            "{:<28} {:>5} {:>9.2} {:>9.2} {:>9.1} {:>5.1}% {:>9} {:>9} {:>7}",
            op.name(),
            n,
            ours[i].0,
            ours[i].1,
            total(i),
            100.0 * total(i) / sum,
            ms(t.map(|t| t.0)),
            ms(t.map(|t| t.1)),
            t.map_or("-".into(), |t| format!("{:.2}", t.1 / ours[i].1)),
        );
        super::record(
            "train_ops",
            serde_json::json!({"op": op.name(), "count": n, "fwd_ms": ours[i].0,
                "fwd_bwd_ms": ours[i].1, "pytorch_fwd_ms": t.map(|t| t.0),
                "pytorch_fwd_bwd_ms": t.map(|t| t.1)}),
        );
    }
    println!(
        "sum of ops (forward + backward): ours {sum:.0} ms{}",
        if theirs.is_some() {
            format!(
                ", PyTorch {torch_sum:.0} ms (ratio PyTorch/ours time {:.2})",
                torch_sum / sum
            )
        } else {
            String::new()
        }
    );
    let ph = time_train_phases((base, levels, size, batch, repeat), &ad);
    let tp = theirs
        .as_ref()
        .and_then(|v| v["phases"].as_array().cloned());
    let names = ["forward + loss", "+ backward", "+ Adam (the step)"];
    for (i, name) in names.iter().enumerate() {
        let t = tp.as_ref().and_then(|a| a.get(i)).and_then(|v| v.as_f64());
        println!(
            "whole network {name:<18} ours {:8.1} ms{}",
            ph[i],
            t.map_or(String::new(), |t| format!(
                "   PyTorch {t:8.1} ms   ratio PyTorch/ours time {:.2}",
                t / ph[i]
            ))
        );
    }
    Ok(())
}
