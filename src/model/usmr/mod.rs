//! Ultrasound -> MR synthesis without pairs (shared/METHODS.md method 5): an ultrasound encoder
//! and an MR encoder map into one shared latent space; one MR decoder turns either latent into
//! an MR image, through the cross-modal attention block ([`CrossAttention`]) that lets the
//! decoded MR features attend to the ultrasound features; an ultrasound decoder reconstructs
//! the ultrasound (the self-supervised signal that keeps the latent anatomical).
//! Discriminators: images (real vs synthetic MR), features (MR latent vs ultrasound latent) and
//! structure pairs (the adversarial structural constraint, see `train::usmr`).
//!
//! Optional 3D context: `neighbours` slices either side of the ultrasound slice come in as
//! extra input channels.

mod attention;

pub use attention::CrossAttention;

use burn::config::Config;
use burn::module::Module;
use burn::nn::PaddingConfig2d;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::tensor::activation::leaky_relu;
use burn::tensor::module::{avg_pool2d, interpolate};
use burn::tensor::ops::{AvgPoolOptions, InterpolateMode, InterpolateOptions};
use burn::tensor::{Device, Tensor};

/// Settings of the US -> MR networks.
#[derive(Config, Debug, PartialEq)]
pub struct UsMrConfig {
    /// Ultrasound slices either side given as extra input channels (0: the slice alone).
    #[config(default = 0)]
    pub neighbours: usize,
    /// Channels at full resolution (x2 at 1/2, x4 at 1/4, the latent).
    #[config(default = 16)]
    pub width: usize,
    /// The cross-modal attention block in the MR decoder.
    #[config(default = true)]
    pub attention: bool,
    /// Width of the attention's queries and keys.
    #[config(default = 16)]
    pub attention_dim: usize,
}

impl UsMrConfig {
    /// Ultrasound input channels.
    pub fn us_channels(&self) -> usize {
        1 + 2 * self.neighbours
    }

    /// Input sides must be a multiple of this (two 2x poolings).
    pub const MULTIPLE: usize = 4;

    /// Build the generator side (encoders and decoders).
    pub fn init(&self, device: &Device) -> UsMrNet {
        let w = self.width;
        UsMrNet {
            enc_us: Encoder::new(self.us_channels(), w, device),
            enc_mr: Encoder::new(1, w, device),
            dec_mr: Decoder::new(w, self.attention.then_some(self.attention_dim), device),
            dec_us: Decoder::new(w, None, device),
        }
    }

    /// Build the three discriminators.
    pub fn init_critics(&self, device: &Device) -> UsMrCritics {
        let w = self.width;
        UsMrCritics {
            image: Critic::new(1, w, 2, device),
            feature: Critic::new(4 * w, 2 * w, 0, device),
            structure: Critic::new(2, w, 2, device),
        }
    }
}

/// A "same"-padded k x k convolution with bias.
pub(crate) fn conv(cin: usize, cout: usize, k: usize, device: &Device) -> Conv2d {
    let p = k / 2;
    Conv2dConfig::new([cin, cout], [k, k])
        .with_padding(PaddingConfig2d::Explicit(p, p, p, p))
        .init(device)
}

/// `conv.forward(x)` through the project's fast CPU paths where they apply.
pub(crate) fn conv_apply(conv: &Conv2d, x: Tensor<4>) -> Tensor<4> {
    crate::model::blocks::conv_forward(conv, x)
}

/// Instance normalisation without affine parameters. x: [B, C, H, W] -> [B, C, H, W]
fn norm(x: Tensor<4>) -> Tensor<4> {
    let mean = x.clone().mean_dim(3).mean_dim(2);
    let centred = x - mean;
    let var = centred.clone().powi_scalar(2).mean_dim(3).mean_dim(2);
    centred / (var + 1e-5).sqrt()
}

fn block(c: &Conv2d, x: Tensor<4>) -> Tensor<4> {
    leaky_relu(norm(conv_apply(c, x)), 0.2)
}

pub(crate) fn down(x: Tensor<4>) -> Tensor<4> {
    avg_pool2d(x, AvgPoolOptions::new([2, 2]))
}

fn up(x: Tensor<4>) -> Tensor<4> {
    let [_, _, h, w] = x.dims();
    interpolate(
        x,
        InterpolateOptions::new(InterpolateMode::Nearest).with_output_size([2 * h, 2 * w]),
    )
}

/// Image -> latent at 1/4 resolution.
#[derive(Module, Debug)]
pub struct Encoder {
    c1: Conv2d,
    c2: Conv2d,
    c3: Conv2d,
    c4: Conv2d,
}

impl Encoder {
    fn new(cin: usize, w: usize, device: &Device) -> Self {
        Self {
            c1: conv(cin, w, 3, device),
            c2: conv(w, 2 * w, 3, device),
            c3: conv(2 * w, 4 * w, 3, device),
            c4: conv(4 * w, 4 * w, 3, device),
        }
    }

    /// x: [B, cin, H, W] -> [B, 4w, H/4, W/4]
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let x = block(&self.c1, x);
        let x = block(&self.c2, down(x));
        let x = block(&self.c3, down(x));
        block(&self.c4, x)
    }
}

/// Latent -> image logits, with the attention block at 1/4 resolution where it has one.
#[derive(Module, Debug)]
pub struct Decoder {
    c1: Conv2d,
    attention: Option<CrossAttention>,
    c2: Conv2d,
    c3: Conv2d,
    out: Conv2d,
}

impl Decoder {
    fn new(w: usize, attention_dim: Option<usize>, device: &Device) -> Self {
        Self {
            c1: conv(4 * w, 4 * w, 3, device),
            attention: attention_dim.map(|d| CrossAttention::new(4 * w, d, device)),
            c2: conv(4 * w, 2 * w, 3, device),
            c3: conv(2 * w, w, 3, device),
            out: conv(w, 1, 3, device),
        }
    }

    /// z: [B, 4w, h, w], context: [B, 4w, h', w'] (what the attention attends to)
    /// -> (logits [B, 1, 4h, 4w], attention [B, h w, h' w'] where the decoder has the block)
    pub fn forward(&self, z: Tensor<4>, context: Tensor<4>) -> (Tensor<4>, Option<Tensor<3>>) {
        let mut x = block(&self.c1, z);
        let mut att = None;
        if let Some(a) = &self.attention {
            let (y, m) = a.forward(x, context);
            x = y;
            att = Some(m);
        }
        let x = block(&self.c2, up(x));
        let x = block(&self.c3, up(x));
        (conv_apply(&self.out, x), att)
    }

    /// True when the decoder has the attention block.
    pub fn has_attention(&self) -> bool {
        self.attention.is_some()
    }

    /// The attention block's mixing weight, where it has one.
    pub fn attention_gamma(&self) -> Option<Tensor<1>> {
        self.attention.as_ref().map(|a| a.gamma())
    }
}

/// The generator side: both encoders and both decoders.
#[derive(Module, Debug)]
pub struct UsMrNet {
    /// Ultrasound (and neighbours) -> shared latent.
    pub enc_us: Encoder,
    /// MR -> shared latent.
    pub enc_mr: Encoder,
    /// Shared latent -> MR (with the cross-modal attention).
    pub dec_mr: Decoder,
    /// Shared latent -> ultrasound (the centre slice).
    pub dec_us: Decoder,
}

/// What one synthesis pass gives.
pub struct Synthesis {
    /// Synthetic MR logits: [B, 1, H, W] (sigmoid gives 0..1).
    pub logits: Tensor<4>,
    /// The ultrasound latent: [B, 4w, H/4, W/4].
    pub latent: Tensor<4>,
    /// Attention of each latent position over the ultrasound latent: [B, hw, hw].
    pub attention: Option<Tensor<3>>,
}

impl UsMrNet {
    /// us: [B, 1 + 2 neighbours, H, W] (0..1) -> synthetic MR and what the block attended to.
    pub fn synthesize(&self, us: Tensor<4>) -> Synthesis {
        let latent = self.enc_us.forward(us);
        let (logits, attention) = self.dec_mr.forward(latent.clone(), latent.clone());
        Synthesis {
            logits,
            latent,
            attention,
        }
    }
}

/// A small convolutional critic giving a score map (least-squares GAN: real 1, fake 0).
#[derive(Module, Debug)]
pub struct Critic {
    convs: Vec<Conv2d>,
    pools: usize,
}

impl Critic {
    fn new(cin: usize, w: usize, pools: usize, device: &Device) -> Self {
        let mut convs = vec![conv(cin, w, 3, device)];
        let mut c = w;
        for _ in 0..pools {
            convs.push(conv(c, 2 * c, 3, device));
            c *= 2;
        }
        convs.push(conv(c, 1, 3, device));
        Self { convs, pools }
    }

    /// x: [B, cin, H, W] -> scores [B, 1, H / 2^pools, W / 2^pools]
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let n = self.convs.len();
        let mut x = leaky_relu(conv_apply(&self.convs[0], x), 0.2);
        for c in &self.convs[1..n - 1] {
            x = leaky_relu(conv_apply(c, down(x)), 0.2);
        }
        debug_assert_eq!(n - 2, self.pools);
        conv_apply(&self.convs[n - 1], x)
    }
}

/// The three critics of the adversarial losses.
#[derive(Module, Debug)]
pub struct UsMrCritics {
    /// Real vs synthetic MR images.
    pub image: Critic,
    /// MR latents vs ultrasound latents (the shared latent space).
    pub feature: Critic,
    /// Structure pairs (the adversarial structural constraint).
    pub structure: Critic,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes_and_attention_rows() {
        let device = Device::flex();
        for (neighbours, attention) in [(0, true), (1, false)] {
            let cfg = UsMrConfig::new()
                .with_neighbours(neighbours)
                .with_width(4)
                .with_attention(attention);
            let net = cfg.init(&device);
            let us = Tensor::<4>::ones([2, cfg.us_channels(), 16, 16], &device);
            let s = net.synthesize(us);
            assert_eq!(s.logits.dims(), [2, 1, 16, 16]);
            assert_eq!(s.latent.dims(), [2, 16, 4, 4]);
            match s.attention {
                Some(a) => {
                    assert!(attention);
                    assert_eq!(a.dims(), [2, 16, 16]);
                    let rows = crate::model::tensor_values(a.sum_dim(2)).unwrap();
                    assert!(rows.iter().all(|r| (r - 1.0).abs() < 1e-4), "{rows:?}");
                }
                None => assert!(!attention),
            }
            let critics = cfg.init_critics(&device);
            let score = critics
                .feature
                .forward(Tensor::<4>::zeros([2, 16, 4, 4], &device));
            assert_eq!(score.dims(), [2, 1, 4, 4]);
        }
    }
}
