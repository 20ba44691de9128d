//! A 3x3 "same" convolution for the CPU compute device, for the inference (folded) networks at
//! high resolution.
//!
//! burn-flex 0.22.1 converts every input to NHWC in one serial loop and runs one small gemm per
//! 512-pixel tile, which leaves its 3x3 convolutions at 60-80 GFLOPS on 256^2 and 128^2 slices
//! here (`synthscope bench ops`). This one builds im2col rows straight from the NCHW planes (each
//! a shifted copy of an input row), a few output rows per task in parallel, and lets gemm write
//! each tile into the NCHW output in place: 2-3x faster at 256^2 and 128^2, 1.3-3x at 64^2 down
//! to 8^2 (see [`worthwhile`]). Inference only: it has no
//! backward pass.

use burn::tensor::{Device, Tensor, TensorData};
use rayon::prelude::*;

/// True when this kernel beats burn-flex's: a 3x3, stride 1 convolution on the (not
/// differentiated) CPU device with at least 8 x 8 output pixels. Measured with the
/// im2col-per-tile form below against burn-flex 0.22.1's conv2d, batch 4: 1.3-5x faster from
/// 512 channels at 8^2 to 32 channels at 256^2 (the DRUNet and U-Net layers).
pub fn worthwhile(device: &Device, kernel: [usize; 2], stride: [usize; 2], hw: [usize; 2]) -> bool {
    kernel == [3, 3]
        && stride == [1, 1]
        && hw[0] * hw[1] >= 8 * 8
        && !device.is_autodiff()
        && *device == Device::flex()
}

/// True when a 3x3 or 1x1, stride 1 convolution on the CPU device is being differentiated
/// (training, Grad-CAM): then [`super::cpu_conv_train::conv_same`] computes it and both its
/// gradients with our kernels ([`conv_shifted`] where that cannot take the tensors).
/// burn 0.22.1 takes a convolution's weight gradient as a convolution of the input with the
/// output gradient, batch as channels; with batch <= 4 and <= 16 output channels burn-flex runs
/// that on its direct small-channel kernel (a 3x3 output, an H x W "kernel"), and otherwise on a
/// single 9-pixel im2col tile: 55% of a U-Net 16/4 training step went there (perf, 128^2).
pub fn differentiated(device: &Device, kernel: [usize; 2], stride: [usize; 2]) -> bool {
    (kernel == [3, 3] || kernel == [1, 1])
        && stride == [1, 1]
        && device.is_autodiff()
        && *device == Device::flex()
}

/// The same "same"-padded, stride 1 convolution as burn's, written as k x k shifted copies of
/// the padded input and one matrix product, so its gradients are matrix products too (see
/// [`differentiated`]). x: [B, cin, H, W], weight: [cout, cin, k, k] (k odd), bias: [cout]
/// -> [B, cout, H, W].
pub fn conv_shifted(x: Tensor<4>, weight: Tensor<4>, bias: Option<Tensor<1>>) -> Tensor<4> {
    use burn::tensor::ops::PadMode;
    let [b, ci, h, w] = x.dims();
    let [co, _, k, _] = weight.dims();
    let cols: Tensor<3> = if k == 1 {
        x.reshape([b, ci, h * w])
    } else {
        let p = k / 2;
        let padded = x.pad((p, p, p, p), PadMode::Constant(0.0));
        let shifts: Vec<Tensor<4>> = (0..k * k)
            .map(|s| {
                let (dy, dx) = (s / k, s % k);
                padded.clone().slice([0..b, 0..ci, dy..dy + h, dx..dx + w])
            })
            .collect();
        // Rows ordered (dy, dx, c): the weight as [cout, k, k, cin].
        Tensor::cat(shifts, 1).reshape([b, k * k * ci, h * w])
    };
    let wm: Tensor<3> = weight.permute([0, 2, 3, 1]).reshape([1, co, k * k * ci]);
    let out = wm.matmul(cols).reshape([b, co, h, w]);
    match bias {
        Some(bias) => out + bias.reshape([1, co, 1, 1]),
        None => out,
    }
}

/// x: [B, cin, H, W], weight: [cout, cin, 3, 3], bias: [cout] -> [B, cout, H, W] (padding 1).
pub fn conv3x3(x: Tensor<4>, weight: Tensor<4>, bias: Option<Tensor<1>>) -> Tensor<4> {
    let device = x.device();
    let [b, ci, h, w] = x.dims();
    let [co, wci, kh, kw] = weight.dims();
    assert!(
        wci == ci && kh == 3 && kw == 3,
        "conv3x3: weight {:?} for input {:?}",
        weight.dims(),
        x.dims()
    );
    let values = |t: TensorData| {
        t.convert::<f32>()
            .try_into_vec::<f32>()
            .unwrap_or_else(|e| unreachable!("f32 data after convert: {e:?}"))
    };
    let xs = values(x.into_data());
    let ws = values(weight.into_data());
    let bs = bias.map(|t| values(t.into_data()));
    let out = conv3x3_nchw(&xs, &ws, bs.as_deref(), [b, ci, co, h, w]);
    Tensor::from_data(TensorData::new(out, [b, co, h, w]), &device)
}

/// The output pointer shared by the tasks; each writes only its own rows of every channel.
#[derive(Clone, Copy)]
pub(super) struct OutPtr(*mut f32);
// SAFETY: tasks write disjoint regions (distinct images or distinct output rows), see below.
unsafe impl Send for OutPtr {}
unsafe impl Sync for OutPtr {}

impl OutPtr {
    /// Wraps the start of an output buffer.
    pub(super) fn new(p: *mut f32) -> Self {
        Self(p)
    }

    /// The pointer (a method, so closures capture the whole Send + Sync wrapper).
    pub(super) fn at(self, offset: usize) -> *mut f32 {
        self.0.wrapping_add(offset)
    }
}

/// Output rows per task for an h x w plane: about `pixels` output pixels, at least one row.
pub(super) fn tile_rows(h: usize, w: usize, pixels: usize) -> usize {
    (pixels / w.max(1)).clamp(1, h.max(1))
}

/// The im2col tile of `image` ([ci, h, w]) for output rows r0..r1 of a 3x3 "same" convolution:
/// [ci * 9, (r1 - r0) * w], row (c, dy, dx) holding input pixel (r + dy - 1, x + dx - 1) of plane
/// c (zero outside the image); each row a shifted copy of input rows.
pub(super) fn im2col3(
    image: &[f32],
    ci: usize,
    h: usize,
    w: usize,
    r0: usize,
    r1: usize,
) -> Vec<f32> {
    let hw = h * w;
    let l = (r1 - r0) * w;
    let mut col = vec![0f32; ci * 9 * l];
    for c in 0..ci {
        let plane = &image[c * hw..(c + 1) * hw];
        for dy in 0..3 {
            for dx in 0..3 {
                let row = (c * 9 + dy * 3 + dx) * l;
                for r in r0..r1 {
                    let dst = &mut col[row + (r - r0) * w..row + (r - r0 + 1) * w];
                    let Some(sr) = (r + dy).checked_sub(1).filter(|&s| s < h) else {
                        continue; // above or below the image: zeros
                    };
                    let src = &plane[sr * w..(sr + 1) * w];
                    match dx {
                        0 => dst[1..].copy_from_slice(&src[..w - 1]),
                        1 => dst.copy_from_slice(src),
                        _ => dst[..w - 1].copy_from_slice(&src[1..]),
                    }
                }
            }
        }
    }
    col
}

/// The kernel on plain slices: x [b, ci, h, w], wt [co, ci, 3, 3], bias [co].
pub fn conv3x3_nchw(x: &[f32], wt: &[f32], bias: Option<&[f32]>, dims: [usize; 5]) -> Vec<f32> {
    conv_nchw(x, wt, bias, dims, 3)
}

/// [`conv3x3_nchw`] always by im2col (the direct sum, never Winograd): the reference.
pub fn conv3x3_nchw_direct(
    x: &[f32],
    wt: &[f32],
    bias: Option<&[f32]>,
    dims: [usize; 5],
) -> Vec<f32> {
    conv_nchw_tiled(x, wt, bias, dims, 3, 1024)
}

/// A k x k (k = 1 or 3) "same", stride 1 convolution on plain slices: x [b, ci, h, w],
/// wt [co, ci, k, k], bias [co] -> [b, co, h, w]. For k = 1 the gemm reads the input planes in
/// place (no im2col). A 3x3 one between many channels goes by Winograd's F(2x2, 3x3) (see
/// [`super::winograd`]).
pub fn conv_nchw(
    x: &[f32],
    wt: &[f32],
    bias: Option<&[f32]>,
    dims: [usize; 5],
    k: usize,
) -> Vec<f32> {
    let [_, ci, co, h, w] = dims;
    if k == 3 && winograd_enabled() && super::winograd::worthwhile(ci, co, h, w) {
        return super::winograd::conv3x3(x, wt, bias, dims);
    }
    conv_nchw_tiled(x, wt, bias, dims, k, 1024)
}

/// Winograd convolutions are on unless SYNTHSCOPE_WINOGRAD=0 (for measuring against im2col).
pub(super) fn winograd_enabled() -> bool {
    static ON: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ON.get_or_init(|| std::env::var("SYNTHSCOPE_WINOGRAD").map_or(true, |v| v != "0"))
}

/// [`conv_nchw`] with about `pixels` output pixels per task (1024 there: the im2col tile,
/// kd x pixels, near L2 size).
fn conv_nchw_tiled(
    x: &[f32],
    wt: &[f32],
    bias: Option<&[f32]>,
    [b, ci, co, h, w]: [usize; 5],
    k: usize,
    pixels: usize,
) -> Vec<f32> {
    assert!(k == 1 || k == 3, "conv_nchw: kernel {k}");
    assert_eq!(x.len(), b * ci * h * w, "conv_nchw: input size");
    assert_eq!(wt.len(), co * ci * k * k, "conv_nchw: weight size");
    let kd = ci * k * k;
    let hw = h * w;
    let rows = tile_rows(h, w, pixels);
    let tiles = h.div_ceil(rows);
    let mut out = vec![0f32; b * co * hw];
    let out_ptr = OutPtr(out.as_mut_ptr());
    (0..b * tiles).into_par_iter().for_each(|t| {
        let (bi, ti) = (t / tiles, t % tiles);
        let (r0, r1) = (ti * rows, (ti * rows + rows).min(h));
        let l = (r1 - r0) * w;
        let image = &x[bi * ci * hw..(bi + 1) * ci * hw];
        let col;
        // rhs (kd x l): row j of the tile's pixels.
        let (rhs, rhs_rs) = if k == 1 {
            (image[r0 * w..].as_ptr(), hw as isize)
        } else {
            col = im2col3(image, ci, h, w, r0, r1);
            (col.as_ptr(), l as isize)
        };
        // The tile of the output: channel rows of stride hw, pixels r0*w .. r0*w + l.
        let base = bi * co * hw + r0 * w;
        if let Some(bias) = bias {
            for (o, &bv) in bias.iter().enumerate() {
                // SAFETY: base + o*hw + [0, l) lies inside image bi's rows r0..r1 of channel o,
                // written by this task only.
                let dst = unsafe { std::slice::from_raw_parts_mut(out_ptr.at(base + o * hw), l) };
                dst.fill(bv);
            }
        }
        // SAFETY: dst is co x l with row stride hw and column stride 1, inside this task's
        // region (as above); lhs is co x kd row-major, rhs kd x l with row stride rhs_rs, both
        // in bounds (for k = 1 rows r0..r1 of each of the image's ci planes).
        unsafe {
            gemm::gemm(
                co,
                l,
                kd,
                out_ptr.at(base),
                1,
                hw as isize,
                bias.is_some(),
                wt.as_ptr(),
                1,
                kd as isize,
                rhs,
                1,
                rhs_rs,
                1.0,
                1.0,
                false,
                false,
                false,
                gemm::Parallelism::None,
            );
        }
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::Distribution;
    use burn::tensor::module::conv2d;
    use burn::tensor::ops::ConvOptions;

    #[test]
    fn shifted_form_matches_burns_convolution_and_its_gradients() {
        let d = Device::flex().autodiff();
        let (b, ci, co, h, w) = (2, 3, 5, 7, 6);
        for k in [1, 3] {
            let rand = |shape: [usize; 4]| {
                Tensor::<4>::random(shape, Distribution::Normal(0.0, 1.0), &d).require_grad()
            };
            let (x, wt) = (rand([b, ci, h, w]), rand([co, ci, k, k]));
            let bias = Tensor::<1>::random([co], Distribution::Normal(0.0, 1.0), &d).require_grad();
            let target = Tensor::<4>::random([b, co, h, w], Distribution::Normal(0.0, 1.0), &d);
            let loss = |y: Tensor<4>| (y - target.clone()).powi_scalar(2).mean();
            let opts = ConvOptions::new([1, 1], [k / 2, k / 2], [1, 1], 1);
            let ga = loss(conv2d(
                x.clone(),
                wt.clone(),
                Some(bias.clone()),
                opts.clone(),
            ))
            .backward();
            let gb = loss(conv_shifted(x.clone(), wt.clone(), Some(bias.clone()))).backward();
            let close = |p: Tensor<4>, q: Tensor<4>, what: &str| {
                let (p, q) = (p.into_data(), q.into_data());
                let (p, q) = (p.as_slice::<f32>().unwrap(), q.as_slice::<f32>().unwrap());
                let diff = p
                    .iter()
                    .zip(q)
                    .map(|(a, b)| (a - b).abs())
                    .fold(0f32, f32::max);
                assert!(diff < 1e-4, "k {k}, {what}: max |diff| {diff}");
            };
            close(x.grad(&ga).unwrap(), x.grad(&gb).unwrap(), "input gradient");
            close(
                wt.grad(&ga).unwrap(),
                wt.grad(&gb).unwrap(),
                "weight gradient",
            );
            let (ba, bb) = (bias.grad(&ga).unwrap(), bias.grad(&gb).unwrap());
            close(
                ba.reshape([1, co, 1, 1]),
                bb.reshape([1, co, 1, 1]),
                "bias gradient",
            );
            let out = conv_shifted(x.clone(), wt.clone(), None);
            close(conv2d(x, wt, None, opts), out, "output");
        }
    }

    #[test]
    fn matches_burns_convolution() {
        let d = Device::flex();
        for (b, ci, co, h, w) in [(2, 3, 5, 17, 9), (1, 8, 4, 6, 33), (3, 1, 2, 5, 5)] {
            let x = Tensor::<4>::random([b, ci, h, w], Distribution::Normal(0.0, 1.0), &d);
            let wt = Tensor::<4>::random([co, ci, 3, 3], Distribution::Normal(0.0, 1.0), &d);
            let bias = Tensor::<1>::random([co], Distribution::Normal(0.0, 1.0), &d);
            for bias in [None, Some(bias)] {
                let want = conv2d(
                    x.clone(),
                    wt.clone(),
                    bias.clone(),
                    ConvOptions::new([1, 1], [1, 1], [1, 1], 1),
                );
                let got = conv3x3(x.clone(), wt.clone(), bias);
                let (a, g) = (want.into_data(), got.into_data());
                let (a, g) = (a.as_slice::<f32>().unwrap(), g.as_slice::<f32>().unwrap());
                let diff = a
                    .iter()
                    .zip(g)
                    .map(|(p, q)| (p - q).abs())
                    .fold(0f32, f32::max);
                assert!(diff < 1e-4, "{:?}: max |diff| {diff}", (b, ci, co, h, w));
            }
        }
    }
}
