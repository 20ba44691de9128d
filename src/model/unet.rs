//! The baseline U-Net and the MR/CT classifier.

use super::Direction;
use super::blocks::{BlockKind, ConvBn, Stage, Up};
use burn::config::Config;
use burn::module::Module;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::pool::{AdaptiveAvgPool2d, AdaptiveAvgPool2dConfig, MaxPool2d, MaxPool2dConfig};
use burn::nn::{Linear, LinearConfig};
use burn::tensor::{Device, Tensor};

/// U-Net settings.
#[derive(Config, Debug)]
pub struct UnetConfig {
    /// Channels at full resolution; doubled at each of `levels` downsamplings.
    #[config(default = 32)]
    pub base_width: usize,
    /// Number of downsamplings.
    #[config(default = 4)]
    pub levels: usize,
    /// Input channels.
    #[config(default = 1)]
    pub in_channels: usize,
    /// Output channels.
    #[config(default = 1)]
    pub out_channels: usize,
    /// Slice size (a multiple of 2^levels).
    #[config(default = 256)]
    pub input_size: usize,
    /// Translation direction.
    #[config(default = "Direction::MrToCt")]
    pub direction: Direction,
    /// The image is `sigmoid(logits)` (networks SynthScope trains; BCE-with-logits needs it);
    /// false: the last convolution's output is the image (as most imported weights).
    #[config(default = false)]
    pub output_sigmoid: bool,
    /// Residual output: the logits are added to logit(input) (channel 0), so a fresh network
    /// starts as the identity and learns a correction (denoising; see crate::ldct).
    #[config(default = false)]
    pub residual: bool,
}

/// Two 3x3 conv + BN + ReLU.
#[derive(Module, Debug)]
pub struct DoubleConv {
    a: ConvBn,
    b: ConvBn,
}

impl DoubleConv {
    fn new(cin: usize, cout: usize, device: &Device) -> Self {
        Self {
            a: ConvBn::new(cin, cout, 3, 1, device),
            b: ConvBn::new(cout, cout, 3, 1, device),
        }
    }

    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        self.b.forward_relu(self.a.forward_relu(x))
    }

    fn fold(self) -> Self {
        Self {
            a: self.a.fold(),
            b: self.b.fold(),
        }
    }
}

/// The U-Net.
#[derive(Module, Debug)]
pub struct Unet {
    down: Vec<DoubleConv>,
    pool: MaxPool2d,
    ups: Vec<Up>,
    up_convs: Vec<DoubleConv>,
    head: Conv2d,
    sigmoid: bool,
    residual: bool,
}

impl UnetConfig {
    /// Number of parameters, as burn's `num_params()` of `init` counts them (batch-norm running
    /// statistics included).
    pub fn param_count(&self) -> usize {
        use super::blocks::convbn_params;
        let w: Vec<usize> = (0..=self.levels).map(|i| self.base_width << i).collect();
        let dc = |a: usize, b: usize| convbn_params(a, b, 3) + convbn_params(b, b, 3);
        let mut n = dc(self.in_channels, w[0]);
        for i in 1..=self.levels {
            n += dc(w[i - 1], w[i]);
        }
        for i in 0..self.levels {
            n += convbn_params(w[i + 1], w[i], 1) + dc(2 * w[i], w[i]);
        }
        n + w[0] * self.out_channels + self.out_channels
    }

    /// Build the network on `device`.
    pub fn init(&self, device: &Device) -> Unet {
        let w: Vec<usize> = (0..=self.levels).map(|i| self.base_width << i).collect();
        let mut down = vec![DoubleConv::new(self.in_channels, w[0], device)];
        for i in 1..=self.levels {
            down.push(DoubleConv::new(w[i - 1], w[i], device));
        }
        let mut ups = Vec::new();
        let mut up_convs = Vec::new();
        for i in (0..self.levels).rev() {
            ups.push(Up::new(w[i + 1], w[i], device));
            up_convs.push(DoubleConv::new(2 * w[i], w[i], device));
        }
        Unet {
            down,
            pool: MaxPool2dConfig::new([2, 2]).with_strides([2, 2]).init(),
            ups,
            up_convs,
            head: Conv2dConfig::new([w[0], self.out_channels], [1, 1]).init(device),
            sigmoid: self.output_sigmoid,
            residual: self.residual,
        }
    }
}

impl Unet {
    /// The inference form: every batch norm folded into its convolution (see
    /// [`ConvBn::fold`]); same output as the evaluation-mode network, never for training.
    pub fn fold(self) -> Self {
        Self {
            down: self.down.into_iter().map(DoubleConv::fold).collect(),
            ups: self.ups.into_iter().map(Up::fold).collect(),
            up_convs: self.up_convs.into_iter().map(DoubleConv::fold).collect(),
            ..self
        }
    }

    /// Every level's activation, shallow to deep and back: the encoder levels (full size down to
    /// the bottleneck), the decoder levels, then the output.
    pub fn forward_features(&self, x: Tensor<4>) -> Vec<Tensor<4>> {
        let mut acts = Vec::new();
        let out = self.run(x, &mut |_, t| {
            acts.push(t.clone());
            t
        });
        acts.push(self.activate(out));
        acts
    }

    /// The image, with `hook(k, activation)` standing in for activation k (in the order of
    /// [`Self::layer_names`]) wherever the network uses it (Grad-CAM swaps in a tracked copy).
    pub fn forward_hooked(
        &self,
        x: Tensor<4>,
        hook: &mut dyn FnMut(usize, Tensor<4>) -> Tensor<4>,
    ) -> Tensor<4> {
        self.activate(self.run(x, hook))
    }

    /// The forward pass (logits); every level's activation goes through `hook`.
    fn run(&self, x: Tensor<4>, hook: &mut dyn FnMut(usize, Tensor<4>) -> Tensor<4>) -> Tensor<4> {
        let mut k = 0;
        let mut skips = Vec::new();
        let base = self.residual.then(|| {
            let [b, _, h, w] = x.dims();
            let c = x
                .clone()
                .slice([0..b, 0..1, 0..h, 0..w])
                .clamp(1e-4, 1.0 - 1e-4);
            (c.clone() / (c.neg() + 1.0)).log()
        });
        let mut y = x;
        for (i, d) in self.down.iter().enumerate() {
            if i > 0 {
                y = super::cpu_pool::max_pool(&self.pool, y);
            }
            y = hook(k, d.forward(y));
            k += 1;
            skips.push(y.clone());
        }
        skips.pop();
        for (up, conv) in self.ups.iter().zip(&self.up_convs) {
            let skip = skips.pop().unwrap_or_else(|| unreachable!());
            y = hook(k, conv.forward(Tensor::cat(vec![up.forward(y), skip], 1)));
            k += 1;
        }
        let out = super::blocks::conv_forward(&self.head, y);
        match base {
            Some(b) => out + b,
            None => out,
        }
    }

    /// Weights of the first convolution: [w0, in, 3, 3].
    pub fn first_filters(&self) -> Tensor<4> {
        self.down[0].a.weight()
    }

    /// Names of [`Self::forward_features`]' entries.
    pub fn layer_names(&self) -> Vec<String> {
        let n = self.down.len();
        let mut v: Vec<String> = (0..n)
            .map(|i| {
                if i + 1 == n {
                    "bottleneck".to_string()
                } else {
                    format!("encoder {}", i + 1)
                }
            })
            .collect();
        v.extend((0..self.up_convs.len()).map(|i| format!("decoder {}", i + 1)));
        v.push("output".into());
        v
    }

    /// x: [B, in, H, W] -> [B, out, H, W]: the image.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        self.activate(self.run(x, &mut |_, t| t))
    }

    /// The last convolution's output, before the output sigmoid (if the config has one).
    pub fn forward_logits(&self, x: Tensor<4>) -> Tensor<4> {
        self.run(x, &mut |_, t| t)
    }

    fn activate(&self, logits: Tensor<4>) -> Tensor<4> {
        if self.sigmoid {
            burn::tensor::activation::sigmoid(logits)
        } else {
            logits
        }
    }
}

/// Classifier settings (a small ResNet telling MR from CT slices).
#[derive(Config, Debug)]
pub struct ClassifierConfig {
    /// Classes (2: MR, CT).
    #[config(default = 2)]
    pub classes: usize,
    /// Input channels.
    #[config(default = 1)]
    pub in_channels: usize,
    /// Stem width; doubled per stage.
    #[config(default = 32)]
    pub base_width: usize,
}

/// The classifier.
#[derive(Module, Debug)]
pub struct Classifier {
    stem: ConvBn,
    stages: Vec<Stage>,
    pool: AdaptiveAvgPool2d,
    fc: Linear,
}

impl ClassifierConfig {
    /// Number of parameters, as burn's `num_params()` of `init` counts them (batch-norm running
    /// statistics included).
    pub fn param_count(&self) -> usize {
        use super::blocks::{convbn_params, stage_params};
        let b = self.base_width;
        convbn_params(self.in_channels, b, 3)
            + stage_params(BlockKind::Basic, 2, b, b, 2)
            + stage_params(BlockKind::Basic, 2, b, 2 * b, 2)
            + stage_params(BlockKind::Basic, 2, 2 * b, 4 * b, 2)
            + 4 * b * self.classes
            + self.classes
    }

    /// Build on `device`.
    pub fn init(&self, device: &Device) -> Classifier {
        let b = self.base_width;
        let stages = vec![
            Stage::new(BlockKind::Basic, 2, b, b, 2, device),
            Stage::new(BlockKind::Basic, 2, b, 2 * b, 2, device),
            Stage::new(BlockKind::Basic, 2, 2 * b, 4 * b, 2, device),
        ];
        Classifier {
            stem: ConvBn::new(self.in_channels, b, 3, 2, device),
            stages,
            pool: AdaptiveAvgPool2dConfig::new([1, 1]).init(),
            fc: LinearConfig::new(4 * b, self.classes).init(device),
        }
    }
}

impl Classifier {
    /// Names of the layers Grad-CAM and feature views can read, shallow to deep.
    pub const LAYERS: [&'static str; 4] = [
        "stem (H/2)",
        "stage 1 (H/4)",
        "stage 2 (H/8)",
        "stage 3 (H/16)",
    ];

    /// Activation after layer `layer` (0 = stem .. 3 = last stage): x: [B, in, H, W] -> [B, C, H / 2^(layer+1), W / 2^(layer+1)]
    pub fn features_at(&self, x: Tensor<4>, layer: usize) -> Tensor<4> {
        let mut y = self.stem.forward_relu(x);
        for s in self.stages.iter().take(layer.min(self.stages.len())) {
            y = s.forward(y);
        }
        y
    }

    /// Logits from the activation after layer `layer`: the rest of the network.
    pub fn forward_from(&self, features: Tensor<4>, layer: usize) -> Tensor<2> {
        let mut y = features;
        for s in self.stages.iter().skip(layer.min(self.stages.len())) {
            y = s.forward(y);
        }
        self.head(y)
    }

    /// Weights of the stem convolution: [base, in, 3, 3].
    pub fn first_filters(&self) -> Tensor<4> {
        self.stem.weight()
    }

    /// The last convolutional feature map: x: [B, in, H, W] -> [B, 4 base, H/16, W/16]
    pub fn features(&self, x: Tensor<4>) -> Tensor<4> {
        self.features_at(x, self.stages.len())
    }

    /// Class logits from a feature map: [B, C, h, w] -> [B, classes]
    pub fn head(&self, features: Tensor<4>) -> Tensor<2> {
        let pooled: Tensor<2> = self.pool.forward(features).flatten(1, 3);
        self.fc.forward(pooled)
    }

    /// The pooled last-stage features, the head's input: x: [B, in, H, W] -> [B, 4 x base]
    /// (what [`crate::analysis::frechet`] compares for an FID-style distance).
    pub fn embedding(&self, x: Tensor<4>) -> Tensor<2> {
        self.pool
            .forward(self.features_at(x, Self::LAYERS.len() - 1))
            .flatten(1, 3)
    }

    /// x: [B, in, H, W] -> logits [B, classes]
    pub fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        self.head(self.features(x))
    }
}
