//! The reference 70x70 PatchGAN (`NLayerDiscriminator`, n_layers 3): 4x4 convolutions, ndf
//! filters doubling to 8 ndf, LeakyReLU 0.2, instance norm without affine parameters on every
//! convolution but the first and the last.

use super::instance_norm;
use burn::config::Config;
use burn::module::{Module, Param};
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{Initializer, PaddingConfig2d};
use burn::tensor::activation::leaky_relu;
use burn::tensor::{Device, Tensor};

/// PatchGAN settings (the reference's `basic`: ndf 64, 3 layers).
#[derive(Config, Debug, PartialEq)]
pub struct PatchGanConfig {
    /// Input channels.
    #[config(default = 3)]
    pub in_channels: usize,
    /// Filters of the first convolution.
    #[config(default = 64)]
    pub ndf: usize,
    /// Stride-2 layers (3: a 70x70 receptive field).
    #[config(default = 3)]
    pub layers: usize,
}

/// The PatchGAN discriminator: one real/fake score per overlapping patch.
#[derive(Module, Debug)]
pub struct PatchGan {
    convs: Vec<Conv2d>,
}

impl PatchGanConfig {
    fn widths(&self) -> Vec<(usize, usize, usize)> {
        // (cin, cout, stride) of every convolution, as the reference builds them.
        let mut v = vec![(self.in_channels, self.ndf, 2)];
        let mut mult = 1;
        for n in 1..self.layers {
            let prev = mult;
            mult = (1 << n).min(8);
            v.push((self.ndf * prev, self.ndf * mult, 2));
        }
        let prev = mult;
        mult = (1 << self.layers).min(8);
        v.push((self.ndf * prev, self.ndf * mult, 1));
        v.push((self.ndf * mult, 1, 1));
        v
    }

    /// Build with N(0, 0.02) weights and zero biases.
    pub fn init(&self, device: &Device) -> PatchGan {
        let convs = self
            .widths()
            .into_iter()
            .map(|(cin, cout, s)| {
                let mut c = Conv2dConfig::new([cin, cout], [4, 4])
                    .with_stride([s, s])
                    .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
                    .with_initializer(Initializer::Normal {
                        mean: 0.0,
                        std: 0.02,
                    })
                    .init(device);
                c.bias = Some(Param::from_tensor(Tensor::zeros([cout], device)));
                c
            })
            .collect();
        PatchGan { convs }
    }

    /// Parameter count (2,764,737 for ndf 64, 3 layers, 3 input channels).
    pub fn param_count(&self) -> usize {
        self.widths()
            .into_iter()
            .map(|(cin, cout, _)| cin * cout * 16 + cout)
            .sum()
    }
}

impl PatchGan {
    /// x: [B, in, H, W] -> [B, 1, H / 8 - 2, W / 8 - 2] (3 layers) raw scores.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let last = self.convs.len() - 1;
        let mut x = x;
        for (i, c) in self.convs.iter().enumerate() {
            x = c.forward(x);
            if i == last {
                break;
            }
            if i > 0 {
                x = instance_norm(x);
            }
            x = leaky_relu(x, 0.2);
        }
        x
    }

    /// The reference's state-dict key of each convolution (`model.0`, `model.2`, `model.5`, ...).
    pub fn reference_prefixes(layers: usize) -> Vec<String> {
        let mut v = vec!["model.0".to_string()];
        let mut idx = 2;
        for _ in 1..=layers {
            v.push(format!("model.{idx}"));
            idx += 3;
        }
        v.push(format!("model.{idx}"));
        v
    }
}
