//! A CycleGAN run's configuration (TOML), told apart from a paired run by `mode = "cyclegan"`.
//!
//! ```toml
//! mode = "cyclegan"
//! name = "cyclegan-scratch"
//! seed = 1
//! epochs = 3            # at the base learning rate
//! decay_epochs = 3      # then linearly down to zero
//! steps_per_epoch = 100
//! image_size = 64
//! generator = { ngf = 16, blocks = 4 }
//! discriminator = { ndf = 16, layers = 3 }
//! data = { kind = "varied", patients = 5, small = true }
//! held_out = 1
//! # init = { path = "pretrained/photo_G.pth", grey = "replicate" }
//! ```

use crate::model::cyclegan::GreyHandling;
use crate::train::{DataSource, TrainError};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// Generator size (the reference: ngf 64, 9 blocks).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct GeneratorChoice {
    /// Filters of the first convolution.
    #[serde(default = "d_ngf")]
    pub ngf: usize,
    /// Residual blocks.
    #[serde(default = "d_blocks")]
    pub blocks: usize,
}

/// Discriminator size (the reference: ndf 64, 3 layers).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct DiscriminatorChoice {
    /// Filters of the first convolution.
    #[serde(default = "d_ngf")]
    pub ndf: usize,
    /// Stride-2 layers.
    #[serde(default = "d_layers")]
    pub layers: usize,
}

/// Start both generators from imported weights instead of scratch.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct InitFrom {
    /// The reference implementation's state dict (.pth/.pt/.safetensors) for both generators.
    pub path: PathBuf,
    /// A separate one for G_B (CT -> MR); default: `path`.
    #[serde(default)]
    pub path_b: Option<PathBuf>,
    /// Grey handling: replicate to 3 channels and average, or a 1-channel head fine-tuned.
    #[serde(default)]
    pub grey: GreyHandling,
}

/// The run.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct CycleganConfig {
    /// Always "cyclegan".
    pub mode: String,
    /// Run name.
    pub name: String,
    /// Seed of weights, sampling and pool.
    #[serde(default = "d_seed")]
    pub seed: u64,
    /// Epochs at the base learning rate (the reference's `n_epochs`).
    #[serde(default = "d_epochs")]
    pub epochs: usize,
    /// Epochs of linear decay to zero (`n_epochs_decay`).
    #[serde(default = "d_epochs")]
    pub decay_epochs: usize,
    /// Optimisation steps per epoch.
    #[serde(default = "d_steps")]
    pub steps_per_epoch: usize,
    /// Images per step (the reference: 1).
    #[serde(default = "d_batch")]
    pub batch_size: usize,
    /// Training crop side (a multiple of 4).
    #[serde(default = "d_size")]
    pub image_size: usize,
    /// Adam's base learning rate.
    #[serde(default = "d_lr")]
    pub learning_rate: f64,
    /// Adam's beta1.
    #[serde(default = "d_beta1")]
    pub beta1: f32,
    /// Weight of the cycle-consistency L1 losses.
    #[serde(default = "d_lambda")]
    pub lambda_cycle: f32,
    /// Weight of the identity losses as a fraction of `lambda_cycle`.
    #[serde(default = "d_idt")]
    pub lambda_identity: f32,
    /// Generated images the discriminators draw from.
    #[serde(default = "d_pool")]
    pub pool_size: usize,
    /// Random horizontal flips.
    #[serde(default = "d_true")]
    pub flip: bool,
    /// Generator size (ignored for an imported generator: the file decides).
    #[serde(default)]
    pub generator: GeneratorChoice,
    /// Discriminator size.
    #[serde(default)]
    pub discriminator: DiscriminatorChoice,
    /// Imported generator weights.
    #[serde(default)]
    pub init: Option<InitFrom>,
    /// Patients (registered pairs whose pairing is thrown away).
    pub data: DataSource,
    /// Patients kept out of training, with both modalities, for the metrics.
    #[serde(default = "d_held")]
    pub held_out: usize,
    /// Paired checkpoints to score on the same held-out slices (e.g. a U-Net run's best).
    #[serde(default)]
    pub compare: Vec<PathBuf>,
}

fn d_ngf() -> usize {
    64
}
fn d_blocks() -> usize {
    9
}
fn d_layers() -> usize {
    3
}
fn d_seed() -> u64 {
    1
}
fn d_epochs() -> usize {
    2
}
fn d_steps() -> usize {
    100
}
fn d_batch() -> usize {
    1
}
fn d_size() -> usize {
    64
}
fn d_lr() -> f64 {
    2e-4
}
fn d_beta1() -> f32 {
    0.5
}
fn d_lambda() -> f32 {
    10.0
}
fn d_idt() -> f32 {
    0.5
}
fn d_pool() -> usize {
    50
}
fn d_true() -> bool {
    true
}
fn d_held() -> usize {
    1
}

impl Default for GeneratorChoice {
    fn default() -> Self {
        Self {
            ngf: d_ngf(),
            blocks: d_blocks(),
        }
    }
}

impl Default for DiscriminatorChoice {
    fn default() -> Self {
        Self {
            ndf: d_ngf(),
            layers: d_layers(),
        }
    }
}

impl CycleganConfig {
    /// A run on `data` with the reference's settings.
    pub fn new(name: &str, data: DataSource) -> Self {
        Self {
            mode: "cyclegan".into(),
            name: name.into(),
            seed: d_seed(),
            epochs: d_epochs(),
            decay_epochs: d_epochs(),
            steps_per_epoch: d_steps(),
            batch_size: d_batch(),
            image_size: d_size(),
            learning_rate: d_lr(),
            beta1: d_beta1(),
            lambda_cycle: d_lambda(),
            lambda_identity: d_idt(),
            pool_size: d_pool(),
            flip: true,
            generator: GeneratorChoice::default(),
            discriminator: DiscriminatorChoice::default(),
            init: None,
            data,
            held_out: d_held(),
            compare: Vec::new(),
        }
    }

    /// True when the text (TOML or JSON) is a CycleGAN run's config (`mode = "cyclegan"`).
    pub fn is_cyclegan(text: &str) -> bool {
        let mode = toml::from_str::<toml::Table>(text)
            .ok()
            .and_then(|t| t.get("mode").and_then(|m| m.as_str().map(str::to_string)))
            .or_else(|| {
                serde_json::from_str::<serde_json::Value>(text)
                    .ok()
                    .and_then(|v| v.get("mode")?.as_str().map(str::to_string))
            });
        mode.as_deref() == Some("cyclegan")
    }

    /// True when the file at `path` is a CycleGAN run's config (false when unreadable: the
    /// paired reader then reports the problem).
    pub fn is_cyclegan_file(path: &Path) -> bool {
        crate::io::read_text(path, crate::io::MAX_TEXT_BYTES)
            .map(|t| Self::is_cyclegan(&t))
            .unwrap_or(false)
    }

    /// Read a config file (TOML, or JSON by extension).
    pub fn read(path: &Path) -> Result<Self, TrainError> {
        let text = crate::io::read_text(path, crate::io::MAX_TEXT_BYTES)
            .map_err(|e| TrainError::file(path, format!("cannot read: {e}")))?;
        let cfg: Self = if path.extension().is_some_and(|e| e == "json") {
            serde_json::from_str(&text).map_err(|e| TrainError::file(path, e.to_string()))?
        } else {
            toml::from_str(&text).map_err(|e| TrainError::file(path, e.to_string()))?
        };
        cfg.validate()
            .map_err(|e| TrainError::file(path, e.to_string()))?;
        Ok(cfg)
    }

    /// The config as TOML (the run folder's `config.toml`).
    pub fn to_toml(&self) -> String {
        toml::to_string(self).unwrap_or_default()
    }

    /// Refuse settings that cannot train.
    pub fn validate(&self) -> Result<(), TrainError> {
        let bad = |m: String| Err(TrainError::Config(m));
        if self.mode != "cyclegan" {
            return bad(format!(
                "mode is {:?}; a CycleGAN run has mode = \"cyclegan\"",
                self.mode
            ));
        }
        if self.image_size < 16 || !self.image_size.is_multiple_of(4) || self.image_size > 1024 {
            return bad(format!(
                "image_size is {}; it must be a multiple of 4 from 16 to 1024",
                self.image_size
            ));
        }
        if self.epochs + self.decay_epochs == 0 || self.steps_per_epoch == 0 || self.batch_size == 0
        {
            return bad(
                "epochs + decay_epochs, steps_per_epoch and batch_size must be positive".into(),
            );
        }
        if !(self.learning_rate > 0.0 && self.learning_rate < 1.0) {
            return bad(format!(
                "learning_rate is {}; use 0 < lr < 1",
                self.learning_rate
            ));
        }
        let g = &self.generator;
        if !(1..=512).contains(&g.ngf) || !(1..=32).contains(&g.blocks) {
            return bad(format!(
                "generator ngf {} / blocks {} out of range (1..512 / 1..32)",
                g.ngf, g.blocks
            ));
        }
        let d = &self.discriminator;
        if !(1..=512).contains(&d.ndf) || !(1..=5).contains(&d.layers) {
            return bad(format!(
                "discriminator ndf {} / layers {} out of range (1..512 / 1..5)",
                d.ndf, d.layers
            ));
        }
        if self.image_size >> (d.layers + 1) < 2 {
            return bad(format!(
                "image_size {} is too small for a {}-layer PatchGAN",
                self.image_size, d.layers
            ));
        }
        Ok(())
    }

    /// Total epochs.
    pub fn total_epochs(&self) -> usize {
        self.epochs + self.decay_epochs
    }

    /// Network label for the Runs table.
    pub fn label(&self) -> String {
        match &self.init {
            Some(i) => format!(
                "CycleGAN (fine-tuned from {}, {:?})",
                i.path
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default(),
                i.grey
            ),
            None => format!(
                "CycleGAN ResNet {}/{} (scratch)",
                self.generator.ngf, self.generator.blocks
            ),
        }
    }
}
