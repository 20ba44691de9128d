//! DRUNet: a U-Net whose encoder and decoder are ResNet stages (shared/METHODS.md, method 1).

use super::blocks::{BlockKind, ConvBn, Stage, Up};
use super::{Direction, ModelError};
use burn::config::Config;
use burn::module::Module;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::tensor::{Device, Tensor};

/// DRUNet settings. `depth` is 18, 34, 50 or 101.
#[derive(Config, Debug)]
pub struct DrunetConfig {
    /// ResNet depth of the encoder: 18, 34 (basic blocks), 50, 101 (bottlenecks).
    #[config(default = 34)]
    pub depth: usize,
    /// Input channels (3: the grey image repeated, as for ImageNet encoders).
    #[config(default = 3)]
    pub in_channels: usize,
    /// Output channels.
    #[config(default = 1)]
    pub out_channels: usize,
    /// Channels of the stem (64 in the paper).
    #[config(default = 64)]
    pub base_width: usize,
    /// Training/inference slice size (a multiple of 32).
    #[config(default = 256)]
    pub input_size: usize,
    /// Translation direction.
    #[config(default = "Direction::CtToMr")]
    pub direction: Direction,
    /// The image is `sigmoid(logits)` (networks SynthScope trains; BCE-with-logits needs it);
    /// false: the last convolution's output is the image (as most imported weights).
    #[config(default = false)]
    pub output_sigmoid: bool,
}

impl DrunetConfig {
    /// Block kind and stage depths of the encoder.
    pub fn layout(&self) -> Result<(BlockKind, [usize; 4]), ModelError> {
        Ok(match self.depth {
            18 => (BlockKind::Basic, [2, 2, 2, 2]),
            34 => (BlockKind::Basic, [3, 4, 6, 3]),
            50 => (BlockKind::Bottleneck, [3, 4, 6, 3]),
            101 => (BlockKind::Bottleneck, [3, 4, 23, 3]),
            d => {
                return Err(ModelError::Config(format!(
                    "DRUNet depth {d} is not one of 18, 34, 50, 101"
                )));
            }
        })
    }

    /// Encoder activations for an `input_size` slice: (channels, side) of the stem and the four
    /// stages; the last is the centre. DRUNet-101 at 448: 64x224, 256x112, 512x56, 1024x28, 2048x14.
    pub fn encoder_shapes(&self) -> Result<Vec<(usize, usize)>, ModelError> {
        let (kind, _) = self.layout()?;
        let e = if kind == BlockKind::Bottleneck { 4 } else { 1 };
        let b = self.base_width;
        let s = self.input_size;
        Ok(vec![
            (b, s / 2),
            (b * e, s / 4),
            (2 * b * e, s / 8),
            (4 * b * e, s / 16),
            (8 * b * e, s / 32),
        ])
    }

    /// Number of parameters from the layout alone, as burn's `num_params()` of `init` counts them
    /// (batch-norm running statistics included).
    pub fn param_count(&self) -> Result<usize, ModelError> {
        use super::blocks::{convbn_params, stage_params};
        let (kind, depths) = self.layout()?;
        let b = self.base_width;
        let e = if kind == BlockKind::Bottleneck { 4 } else { 1 };
        let widths = [b * e, 2 * b * e, 4 * b * e, 8 * b * e];
        let mut n = convbn_params(self.in_channels, b, 7);
        let mut cin = b;
        for (i, &w) in widths.iter().enumerate() {
            n += stage_params(kind, depths[i], cin, w, 2);
            cin = w;
        }
        let skips = [widths[2], widths[1], widths[0], b];
        let mut c = widths[3];
        for (i, &s) in skips.iter().enumerate() {
            n += convbn_params(c, s, 1) + stage_params(kind, depths[3 - i], 2 * s, s, 1);
            c = s;
        }
        n += convbn_params(b, b / 2, 1) + (b / 2) * self.out_channels + self.out_channels;
        Ok(n)
    }

    /// Build the network on `device`.
    pub fn init(&self, device: &Device) -> Result<Drunet, ModelError> {
        let (kind, depths) = self.layout()?;
        let b = self.base_width;
        let expand = if kind == BlockKind::Bottleneck { 4 } else { 1 };
        let widths = [b * expand, 2 * b * expand, 4 * b * expand, 8 * b * expand];
        let stem = ConvBn::new(self.in_channels, b, 7, 2, device);
        let mut encoder = Vec::new();
        let mut cin = b;
        for (i, &w) in widths.iter().enumerate() {
            encoder.push(Stage::new(kind, depths[i], cin, w, 2, device));
            cin = w;
        }
        // Decoder from the centre up: skips are stage 3, 2, 1 outputs and the stem.
        let skips = [widths[2], widths[1], widths[0], b];
        let mut ups = Vec::new();
        let mut decoder = Vec::new();
        let mut c = widths[3];
        for (i, &s) in skips.iter().enumerate() {
            ups.push(Up::new(c, s, device));
            decoder.push(Stage::new(kind, depths[3 - i], 2 * s, s, 1, device));
            c = s;
        }
        let final_up = Up::new(b, b / 2, device);
        let head = Conv2dConfig::new([b / 2, self.out_channels], [1, 1]).init(device);
        Ok(Drunet {
            stem,
            encoder,
            ups,
            decoder,
            final_up,
            head,
            sigmoid: self.output_sigmoid,
        })
    }
}

/// The DRUNet network.
#[derive(Module, Debug)]
pub struct Drunet {
    stem: ConvBn,
    encoder: Vec<Stage>,
    ups: Vec<Up>,
    decoder: Vec<Stage>,
    final_up: Up,
    head: Conv2d,
    sigmoid: bool,
}

/// Intermediate activations, for feature-map views and Grad-CAM.
pub struct DrunetFeatures {
    /// Encoder outputs: stem (H/2), stages 1-4 (H/4 .. H/32; the last is the bottleneck centre).
    pub encoder: Vec<Tensor<4>>,
    /// Decoder outputs, deepest first (H/16 .. H/2).
    pub decoder: Vec<Tensor<4>>,
    /// Network output.
    pub output: Tensor<4>,
}

impl Drunet {
    /// The inference form: every batch norm folded into its convolution (see
    /// [`ConvBn::fold`]); same output as the evaluation-mode network, never for training.
    pub fn fold(self) -> Self {
        Self {
            stem: self.stem.fold(),
            encoder: self.encoder.into_iter().map(Stage::fold).collect(),
            ups: self.ups.into_iter().map(Up::fold).collect(),
            decoder: self.decoder.into_iter().map(Stage::fold).collect(),
            final_up: self.final_up.fold(),
            ..self
        }
    }

    /// x: [B, in, H, W] -> [B, out, H, W] (H, W multiples of 32): the image.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        self.forward_features(x).output
    }

    /// The last convolution's output, before the output sigmoid (if the config has one).
    pub fn forward_logits(&self, x: Tensor<4>) -> Tensor<4> {
        self.run(x, &mut |_, t| t).2
    }

    /// The image, with `hook(k, activation)` standing in for activation k (in the order of
    /// [`Self::layer_names`]) wherever the network uses it (Grad-CAM swaps in a tracked copy).
    pub fn forward_hooked(
        &self,
        x: Tensor<4>,
        hook: &mut dyn FnMut(usize, Tensor<4>) -> Tensor<4>,
    ) -> Tensor<4> {
        let logits = self.run(x, hook).2;
        if self.sigmoid {
            burn::tensor::activation::sigmoid(logits)
        } else {
            logits
        }
    }

    /// Names of the activations `activations` returns, in order.
    pub fn layer_names(&self) -> Vec<String> {
        let mut v = vec![
            "stem (H/2)".to_string(),
            "encoder 1 (H/4)".into(),
            "encoder 2 (H/8)".into(),
            "encoder 3 (H/16)".into(),
            "centre (H/32)".into(),
        ];
        v.extend(
            [
                "decoder 1 (H/16)",
                "decoder 2 (H/8)",
                "decoder 3 (H/4)",
                "penultimate decoder (H/2)",
                "output",
            ]
            .map(String::from),
        );
        v
    }

    /// Every stage's activation in the order of [`Self::layer_names`].
    pub fn activations(&self, x: Tensor<4>) -> Vec<Tensor<4>> {
        let f = self.forward_features(x);
        let mut v = f.encoder;
        v.extend(f.decoder);
        v.push(f.output);
        v
    }

    /// Weights of the stem's first convolution: [64, in, 7, 7].
    pub fn first_filters(&self) -> Tensor<4> {
        self.stem.weight()
    }

    /// Like `forward`, keeping every stage's activation.
    pub fn forward_features(&self, x: Tensor<4>) -> DrunetFeatures {
        let (encoder, decoder, logits) = self.run(x, &mut |_, t| t);
        let output = if self.sigmoid {
            burn::tensor::activation::sigmoid(logits)
        } else {
            logits
        };
        DrunetFeatures {
            encoder,
            decoder,
            output,
        }
    }

    /// Encoder activations, decoder activations and the logits.
    fn run(
        &self,
        x: Tensor<4>,
        hook: &mut dyn FnMut(usize, Tensor<4>) -> Tensor<4>,
    ) -> (Vec<Tensor<4>>, Vec<Tensor<4>>, Tensor<4>) {
        let mut enc = vec![hook(0, self.stem.forward_relu(x))];
        for (k, s) in self.encoder.iter().enumerate() {
            let prev = enc.last().cloned().unwrap_or_else(|| unreachable!());
            enc.push(hook(k + 1, s.forward(prev)));
        }
        let mut y = enc[4].clone();
        let mut dec = Vec::new();
        for (i, (up, stage)) in self.ups.iter().zip(&self.decoder).enumerate() {
            let skip = enc[3 - i].clone();
            y = hook(
                5 + i,
                stage.forward(Tensor::cat(vec![up.forward(y), skip], 1)),
            );
            dec.push(y.clone());
        }
        let logits = super::blocks::conv_forward(&self.head, self.final_up.forward(y));
        (enc, dec, logits)
    }
}
