//! Building blocks: conv + batch norm, ResNet basic and bottleneck blocks, nearest x2 + 1x1 up.
//!
//! For inference a [`ConvBn`] can be folded ([`ConvBn::fold`]): the batch norm's running
//! statistics, scale and shift go into the convolution's weights and a bias, so the forward pass
//! is one convolution. Folded networks are for inference only (synthesis); training, Grad-CAM
//! and feature maps use the unfolded ones.

use burn::module::{Module, Param};
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{BatchNorm, BatchNormConfig, PaddingConfig2d};
use burn::tensor::activation::relu;
use burn::tensor::module::interpolate;
use burn::tensor::ops::{InterpolateMode, InterpolateOptions};
use burn::tensor::{Device, Tensor};

/// Convolution (no bias) followed by batch norm.
#[derive(Module, Debug)]
pub struct ConvBn {
    conv: Conv2d,
    bn: BatchNorm,
    /// The batch norm is folded into `conv` (inference only; see [`ConvBn::fold`]).
    folded: bool,
}

impl ConvBn {
    /// A k x k convolution with "same" padding and the given stride.
    pub fn new(cin: usize, cout: usize, k: usize, stride: usize, device: &Device) -> Self {
        let p = k / 2;
        let conv = Conv2dConfig::new([cin, cout], [k, k])
            .with_stride([stride, stride])
            .with_padding(PaddingConfig2d::Explicit(p, p, p, p))
            .with_bias(false)
            .init(device);
        Self {
            conv,
            bn: BatchNormConfig::new(cout).init(device),
            folded: false,
        }
    }

    /// x: [B, cin, H, W] -> [B, cout, H / stride, W / stride]
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        self.run(x, false)
    }

    /// `relu(self.forward(x))`, with the ReLU fused into the batch norm where that is trained
    /// on the CPU device (see [`super::cpu_bn_train`]).
    pub fn forward_relu(&self, x: Tensor<4>) -> Tensor<4> {
        self.run(x, true)
    }

    fn run(&self, x: Tensor<4>, with_relu: bool) -> Tensor<4> {
        let y = conv_forward(&self.conv, x);
        if self.folded {
            return if with_relu { relu(y) } else { y };
        }
        if let Some(y) = super::cpu_bn_train::batch_norm_train(&self.bn, &y, with_relu) {
            return y;
        }
        let y = self.bn.forward(y);
        if with_relu { relu(y) } else { y }
    }

    /// The inference form: `w' = w * gamma / sqrt(var + eps)` per output channel and
    /// `b' = beta - mean * gamma / sqrt(var + eps)`, from the running statistics (so the same
    /// as `forward` in evaluation mode, never in training mode).
    pub fn fold(self) -> Self {
        if self.folded {
            return self;
        }
        let Self { mut conv, bn, .. } = self;
        let scale = bn.gamma.val() / (bn.running_var.value() + bn.epsilon).sqrt();
        let shift = bn.beta.val() - bn.running_mean.value() * scale.clone();
        let [cout] = scale.dims();
        let bias = match conv.bias.take() {
            Some(b) => b.val() * scale.clone() + shift,
            None => shift,
        };
        conv.weight = conv
            .weight
            .map(|w| w * scale.reshape([cout as i32, 1, 1, 1]));
        conv.bias = Some(Param::from_tensor(bias));
        Self {
            conv,
            bn,
            folded: true,
        }
    }

    /// The convolution's weights: [cout, cin, k, k].
    pub fn weight(&self) -> Tensor<4> {
        self.conv.weight.val()
    }
}

/// `conv.forward(x)` for a "same"-padded convolution (every one in these networks: k x k with
/// padding k / 2, or 1 x 1), through [`super::cpu_conv_train::conv_same`] where it is
/// differentiated on the CPU device (see [`super::cpu_conv::differentiated`]): training, Grad-CAM;
/// through [`super::cpu_conv::conv3x3`] where that is faster than burn's (inference, 3x3).
pub fn conv_forward(conv: &Conv2d, x: Tensor<4>) -> Tensor<4> {
    use super::cpu_conv::{conv_shifted, conv3x3, differentiated, worthwhile};
    let [_, _, h, w] = x.dims();
    if worthwhile(&x.device(), conv.kernel_size, conv.stride, [h, w]) {
        return conv3x3(x, conv.weight.val(), conv.bias.as_ref().map(|b| b.val()));
    }
    if !differentiated(&x.device(), conv.kernel_size, conv.stride) {
        return conv.forward(x);
    }
    let w = conv.weight.val();
    // Our differentiable op wants both operands on the autodiff device (training). Grad-CAM
    // runs an evaluation-mode model (plain weights) on a tracked activation: conv_shifted's
    // burn ops carry that mix.
    let ours = if w.is_autodiff() {
        super::cpu_conv_train::conv_same(&x, &w)
    } else {
        None
    };
    let y = match ours {
        Some(y) => y,
        None => conv_shifted(x, w, None),
    };
    match &conv.bias {
        Some(b) => y + b.val().reshape([1, -1, 1, 1]),
        None => y,
    }
}

/// Kind of residual block.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BlockKind {
    /// Two 3x3 convolutions (ResNet-18/34).
    Basic,
    /// 1x1 reduce, 3x3, 1x1 expand by 4 (ResNet-50/101).
    Bottleneck,
}

/// A residual block; downsampling is a stride-2 3x3 conv in the main path and a stride-2 1x1
/// conv in the shortcut.
#[derive(Module, Debug)]
pub struct ResBlock {
    c1: ConvBn,
    c2: ConvBn,
    c3: Option<ConvBn>,
    shortcut: Option<ConvBn>,
}

impl ResBlock {
    /// A block from `cin` to `cout` channels (for bottlenecks `cout` is the expanded width).
    pub fn new(kind: BlockKind, cin: usize, cout: usize, stride: usize, device: &Device) -> Self {
        let shortcut =
            (stride != 1 || cin != cout).then(|| ConvBn::new(cin, cout, 1, stride, device));
        match kind {
            BlockKind::Basic => Self {
                c1: ConvBn::new(cin, cout, 3, stride, device),
                c2: ConvBn::new(cout, cout, 3, 1, device),
                c3: None,
                shortcut,
            },
            BlockKind::Bottleneck => {
                let w = (cout / 4).max(1);
                Self {
                    c1: ConvBn::new(cin, w, 1, 1, device),
                    c2: ConvBn::new(w, w, 3, stride, device),
                    c3: Some(ConvBn::new(w, cout, 1, 1, device)),
                    shortcut,
                }
            }
        }
    }

    /// x: [B, cin, H, W] -> [B, cout, H / stride, W / stride]
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let identity = match &self.shortcut {
            Some(s) => s.forward(x.clone()),
            None => x.clone(),
        };
        let y = self.c1.forward_relu(x);
        let y = match &self.c3 {
            Some(c3) => c3.forward(self.c2.forward_relu(y)),
            None => self.c2.forward(y),
        };
        relu(y + identity)
    }

    /// Every batch norm folded (see [`ConvBn::fold`]).
    pub fn fold(self) -> Self {
        Self {
            c1: self.c1.fold(),
            c2: self.c2.fold(),
            c3: self.c3.map(ConvBn::fold),
            shortcut: self.shortcut.map(ConvBn::fold),
        }
    }
}

/// A stage of residual blocks; the first may downsample.
#[derive(Module, Debug)]
pub struct Stage {
    blocks: Vec<ResBlock>,
}

impl Stage {
    /// `depth` blocks from `cin` to `cout`, the first with `stride`.
    pub fn new(
        kind: BlockKind,
        depth: usize,
        cin: usize,
        cout: usize,
        stride: usize,
        device: &Device,
    ) -> Self {
        let blocks = (0..depth.max(1))
            .map(|i| {
                ResBlock::new(
                    kind,
                    if i == 0 { cin } else { cout },
                    cout,
                    if i == 0 { stride } else { 1 },
                    device,
                )
            })
            .collect();
        Self { blocks }
    }

    /// x: [B, cin, H, W] -> [B, cout, H / stride, W / stride]
    pub fn forward(&self, mut x: Tensor<4>) -> Tensor<4> {
        for b in &self.blocks {
            x = b.forward(x);
        }
        x
    }

    /// Every batch norm folded (see [`ConvBn::fold`]).
    pub fn fold(self) -> Self {
        Self {
            blocks: self.blocks.into_iter().map(ResBlock::fold).collect(),
        }
    }
}

/// Nearest-neighbour x2 upsampling followed by a 1x1 convolution (no transposed convolution,
/// so no checkerboard artifacts).
///
/// Computed as 1x1 conv + batch norm + ReLU first and the upsampling last: every one of them is
/// per pixel and nearest upsampling only repeats pixels, so the output is the same (the batch
/// statistics too: each value repeated four times has the same mean and variance) for a quarter
/// of the work and memory.
#[derive(Module, Debug)]
pub struct Up {
    conv: ConvBn,
}

impl Up {
    /// From `cin` to `cout` channels.
    pub fn new(cin: usize, cout: usize, device: &Device) -> Self {
        Self {
            conv: ConvBn::new(cin, cout, 1, 1, device),
        }
    }

    /// x: [B, cin, H, W] -> [B, cout, 2H, 2W]
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let [_, _, h, w] = x.dims();
        interpolate(
            self.conv.forward_relu(x),
            InterpolateOptions::new(InterpolateMode::Nearest).with_output_size([2 * h, 2 * w]),
        )
    }

    /// The batch norm folded (see [`ConvBn::fold`]).
    pub fn fold(self) -> Self {
        Self {
            conv: self.conv.fold(),
        }
    }
}

/// Parameters of a ConvBn as burn's `num_params` counts them: the conv weights (no bias) and
/// the batch norm's scale, shift, running mean and running variance.
pub fn convbn_params(cin: usize, cout: usize, k: usize) -> usize {
    cin * cout * k * k + 4 * cout
}

/// Parameters of a residual block (see [`ResBlock::new`]).
pub fn block_params(kind: BlockKind, cin: usize, cout: usize, stride: usize) -> usize {
    let shortcut = if stride != 1 || cin != cout {
        convbn_params(cin, cout, 1)
    } else {
        0
    };
    shortcut
        + match kind {
            BlockKind::Basic => convbn_params(cin, cout, 3) + convbn_params(cout, cout, 3),
            BlockKind::Bottleneck => {
                let w = (cout / 4).max(1);
                convbn_params(cin, w, 1) + convbn_params(w, w, 3) + convbn_params(w, cout, 1)
            }
        }
}

/// Parameters of a stage (see [`Stage::new`]).
pub fn stage_params(
    kind: BlockKind,
    depth: usize,
    cin: usize,
    cout: usize,
    stride: usize,
) -> usize {
    (0..depth.max(1))
        .map(|i| {
            block_params(
                kind,
                if i == 0 { cin } else { cout },
                cout,
                if i == 0 { stride } else { 1 },
            )
        })
        .sum()
}
