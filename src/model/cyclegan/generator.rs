//! The reference ResNet generator: reflection pad 3, 7x7 convolution, two stride-2 3x3
//! downsamplings, `blocks` residual blocks at 4 ngf channels (reflection-padded 3x3
//! convolutions), two transposed-convolution upsamplings, reflection pad 3, 7x7 convolution,
//! tanh. Instance norm without affine parameters after every convolution but the last.

use super::{GreyHandling, instance_norm};
use burn::config::Config;
use burn::module::{Module, Param};
use burn::nn::conv::{Conv2d, Conv2dConfig, ConvTranspose2d, ConvTranspose2dConfig};
use burn::nn::{Dropout, DropoutConfig, Initializer, PaddingConfig2d};
use burn::tensor::activation::{relu, tanh};
use burn::tensor::ops::PadMode;
use burn::tensor::{Device, Tensor};

/// ResNet generator settings (the reference's `resnet_9blocks`: ngf 64, 9 blocks).
#[derive(Config, Debug, PartialEq)]
pub struct ResnetGeneratorConfig {
    /// Input channels (3 for the reference's photo models).
    #[config(default = 3)]
    pub in_channels: usize,
    /// Output channels.
    #[config(default = 3)]
    pub out_channels: usize,
    /// Filters of the first convolution (64).
    #[config(default = 64)]
    pub ngf: usize,
    /// Residual blocks (9 for `resnet_9blocks`, 6 for `resnet_6blocks`).
    #[config(default = 9)]
    pub blocks: usize,
    /// Dropout 0.5 between a block's convolutions (`--use_dropout`); moves the second
    /// convolution's key from `conv_block.5` to `conv_block.6`.
    #[config(default = false)]
    pub dropout: bool,
    /// How grey slices go through this network (recorded for inference).
    #[config(default = "GreyHandling::Replicate")]
    pub grey: GreyHandling,
}

/// One residual block: x + IN(conv(pad(relu(IN(conv(pad(x))))))).
#[derive(Module, Debug)]
pub struct ResnetBlock {
    c1: Conv2d,
    dropout: Option<Dropout>,
    c2: Conv2d,
}

/// The ResNet generator.
#[derive(Module, Debug)]
pub struct ResnetGenerator {
    stem: Conv2d,
    down: Vec<Conv2d>,
    blocks: Vec<ResnetBlock>,
    up: Vec<ConvTranspose2d>,
    head: Conv2d,
}

fn init_weights() -> Initializer {
    // The reference's `init_weights(net, 'normal', 0.02)`.
    Initializer::Normal {
        mean: 0.0,
        std: 0.02,
    }
}

fn conv(cin: usize, cout: usize, k: usize, stride: usize, pad: usize, device: &Device) -> Conv2d {
    let mut c = Conv2dConfig::new([cin, cout], [k, k])
        .with_stride([stride, stride])
        .with_padding(PaddingConfig2d::Explicit(pad, pad, pad, pad))
        .with_initializer(init_weights())
        .init(device);
    c.bias = Some(Param::from_tensor(Tensor::zeros([cout], device)));
    c
}

fn reflect(x: Tensor<4>, p: usize) -> Tensor<4> {
    x.pad((p, p, p, p), PadMode::Reflect)
}

impl ResnetGeneratorConfig {
    /// Build with the reference's N(0, 0.02) weights and zero biases.
    pub fn init(&self, device: &Device) -> ResnetGenerator {
        let ngf = self.ngf;
        let down = (0..2)
            .map(|i| conv(ngf << i, ngf << (i + 1), 3, 2, 1, device))
            .collect();
        let width = ngf * 4;
        let blocks = (0..self.blocks)
            .map(|_| ResnetBlock {
                c1: conv(width, width, 3, 1, 0, device),
                dropout: self.dropout.then(|| DropoutConfig::new(0.5).init()),
                c2: conv(width, width, 3, 1, 0, device),
            })
            .collect();
        let up = (0..2)
            .map(|i| {
                let (cin, cout) = (ngf << (2 - i), ngf << (1 - i));
                let mut t = ConvTranspose2dConfig::new([cin, cout], [3, 3])
                    .with_stride([2, 2])
                    .with_padding([1, 1])
                    .with_padding_out([1, 1])
                    .with_initializer(init_weights())
                    .init(device);
                t.bias = Some(Param::from_tensor(Tensor::zeros([cout], device)));
                t
            })
            .collect();
        ResnetGenerator {
            stem: conv(self.in_channels, ngf, 7, 1, 0, device),
            down,
            blocks,
            up,
            head: conv(ngf, self.out_channels, 7, 1, 0, device),
        }
    }

    /// Parameter count (11,378,179 for the reference's 9-block ngf-64 3-channel generator).
    pub fn param_count(&self) -> usize {
        let c = |cin: usize, cout: usize, k: usize| cin * cout * k * k + cout;
        let ngf = self.ngf;
        let w = 4 * ngf;
        c(self.in_channels, ngf, 7)
            + c(ngf, 2 * ngf, 3)
            + c(2 * ngf, w, 3)
            + self.blocks * 2 * c(w, w, 3)
            + c(w, 2 * ngf, 3)
            + c(2 * ngf, ngf, 3)
            + c(ngf, self.out_channels, 7)
    }
}

impl ResnetBlock {
    /// x: [B, C, H, W] -> [B, C, H, W]
    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let mut y = relu(instance_norm(self.c1.forward(reflect(x.clone(), 1))));
        if let Some(d) = &self.dropout {
            y = d.forward(y);
        }
        x + instance_norm(self.c2.forward(reflect(y, 1)))
    }
}

impl ResnetGenerator {
    /// x: [B, in, H, W] in -1..1 (H, W multiples of 4) -> [B, out, H, W] in -1..1
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        self.run(x, &mut |_, t| t)
    }

    /// The forward pass with `hook(k, activation)` standing in for activation k (stem, the
    /// downsamplings, the blocks, the upsamplings: see [`Self::layer_names`]).
    fn run(&self, x: Tensor<4>, hook: &mut dyn FnMut(usize, Tensor<4>) -> Tensor<4>) -> Tensor<4> {
        let mut k = 0;
        let mut step = |t: Tensor<4>| {
            let t = hook(k, t);
            k += 1;
            t
        };
        let mut x = step(relu(instance_norm(self.stem.forward(reflect(x, 3)))));
        for d in &self.down {
            x = step(relu(instance_norm(d.forward(x))));
        }
        for b in &self.blocks {
            x = step(b.forward(x));
        }
        for u in &self.up {
            x = step(relu(instance_norm(u.forward(x))));
        }
        tanh(self.head.forward(reflect(x, 3)))
    }

    /// Names of the hooked activations and, last, the output.
    pub fn layer_names(&self) -> Vec<String> {
        let mut v = vec!["stem".to_string(), "down 1".into(), "down 2".into()];
        v.extend((1..=self.blocks.len()).map(|i| format!("block {i}")));
        v.extend(["up 1".to_string(), "up 2".into(), "output".into()]);
        v
    }

    /// A grey slice in the synthesis range through the network, with every activation through
    /// `hook`: x: [B, 1, H, W] in 0..1 -> [B, 1, H, W] in 0..1 (see [`Self::forward_grey`]).
    pub fn forward_hooked(
        &self,
        x: Tensor<4>,
        hook: &mut dyn FnMut(usize, Tensor<4>) -> Tensor<4>,
    ) -> Tensor<4> {
        let x = self.grey_in(super::to_tanh_range(x));
        super::from_tanh_range(self.grey_out(self.run(x, hook)))
    }

    /// x: [B, 1, H, W] in 0..1 -> [B, 1, H, W] in 0..1: the synthesis contract of the other
    /// networks (normalised slices in, normalised slices out).
    pub fn forward_synth(&self, x: Tensor<4>) -> Tensor<4> {
        self.forward_hooked(x, &mut |_, t| t)
    }

    /// Every hooked activation for a grey x in 0..1, then the output (0..1).
    pub fn activations(&self, x: Tensor<4>) -> Vec<Tensor<4>> {
        let mut acts = Vec::new();
        let out = self.forward_hooked(x, &mut |_, t| {
            acts.push(t.clone());
            t
        });
        acts.push(out);
        acts
    }

    fn grey_in(&self, x: Tensor<4>) -> Tensor<4> {
        let cin = self.in_channels();
        if cin == 1 {
            x
        } else {
            Tensor::cat(vec![x; cin], 1)
        }
    }

    fn grey_out(&self, y: Tensor<4>) -> Tensor<4> {
        if self.out_channels() == 1 {
            y
        } else {
            y.mean_dim(1)
        }
    }

    /// Input channels of the first convolution.
    pub fn in_channels(&self) -> usize {
        self.stem.weight.dims()[1]
    }

    /// Output channels of the last convolution.
    pub fn out_channels(&self) -> usize {
        self.head.weight.dims()[0]
    }

    /// A grey slice through the network: x: [B, 1, H, W] in -1..1 -> [B, 1, H, W] in -1..1.
    /// A 1-channel network takes it as it is; a 3-channel one (or any other width) gets it
    /// repeated and its output channels averaged ([`GreyHandling::Replicate`]).
    pub fn forward_grey(&self, x: Tensor<4>) -> Tensor<4> {
        self.grey_out(self.forward(self.grey_in(x)))
    }

    /// The 1-channel form of this network ([`GreyHandling::OneChannel`]): the first
    /// convolution's weights summed over its input channels (the same output for a grey input
    /// repeated to every channel) and the last one's weights and bias averaged over its
    /// outputs (the mean of the outputs before tanh, close to the mean after it).
    pub fn to_grey(mut self) -> Self {
        if self.in_channels() != 1 {
            self.stem.weight = self.stem.weight.map(|w| w.sum_dim(1));
        }
        if self.out_channels() != 1 {
            self.head.weight = self.head.weight.map(|w| w.mean_dim(0));
            if let Some(b) = self.head.bias.take() {
                self.head.bias = Some(b.map(|b| b.mean().reshape([1])));
            }
        }
        self
    }

    /// The first convolution's weights: [ngf, in, 7, 7].
    pub fn first_filters(&self) -> Tensor<4> {
        self.stem.weight.val()
    }

    /// Residual blocks.
    pub fn block_count(&self) -> usize {
        self.blocks.len()
    }

    /// Whether the blocks carry dropout (the reference's `--use_dropout`).
    pub fn has_dropout(&self) -> bool {
        self.blocks.first().is_some_and(|b| b.dropout.is_some())
    }
}
