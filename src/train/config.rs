//! A training run's configuration: TOML (or JSON) on disk, the same struct in the app's panel.
//!
//! ```toml
//! name = "mse-unet"
//! seed = 1
//! direction = "mr_to_ct"
//! epochs = 4
//! batch_size = 4
//! learning_rate = 0.002
//! patch = 96
//! data = { kind = "demo", patients = 3 }
//! model = { kind = "unet", base_width = 8, levels = 3 }
//! losses = [{ kind = "mse", weight = 1.0 }, { kind = "contextual", weight = 0.05 }]
//! ```

use super::TrainError;
use super::parallel::{DeviceEntry, split_batch};
use crate::model::checkpoint::ModelSpec;
use crate::model::{Direction, DrunetConfig, UnetConfig};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// Where the training pairs come from.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum DataSource {
    /// Phantom patients (the demo head in different poses and noise), registered by construction.
    Demo {
        /// Number of patients.
        #[serde(default = "three")]
        patients: usize,
        /// Coarse test grids instead of the demo pair's.
        #[serde(default)]
        small: bool,
    },
    /// Varied phantom patients 0..patients: each a head of its own (size, skull, ventricles,
    /// gyri, sinuses, atrophy, lesions), pose and correlated CT noise
    /// ([`crate::io::phantom::phantom_patient_varied`]), registered by construction.
    Varied {
        /// Number of patients.
        #[serde(default = "three")]
        patients: usize,
        /// Coarse test grids instead of the demo pair's.
        #[serde(default)]
        small: bool,
    },
    /// Low-dose CT phantom patients 0..patients for CT denoising (shared/METHODS.md, method 4):
    /// abdominal phantoms with liver lesions imaged at normal and low dose in the projection
    /// domain ([`crate::synth::ldct`]).
    LowDose {
        /// Number of patients.
        #[serde(default = "three")]
        patients: usize,
        /// Phantom grid and lesions.
        #[serde(default)]
        phantom: crate::synth::ldct::LesionPhantomConfig,
        /// The two doses.
        #[serde(default)]
        dose: crate::synth::ldct::DoseConfig,
    },
    /// A SynthRAD-style folder: one sub-folder per patient with `ct`, `mr` and optional `mask`.
    Folder {
        /// The folder.
        path: PathBuf,
    },
    /// One registered pair of files.
    Pair {
        /// CT (NIfTI file or DICOM folder).
        ct: PathBuf,
        /// MR.
        mr: PathBuf,
        /// Optional head mask.
        #[serde(default)]
        mask: Option<PathBuf>,
    },
    /// The pair loaded (and registered) in the app; recorded for the run's log only.
    Loaded {
        /// What was loaded.
        description: String,
    },
}

fn three() -> usize {
    3
}

/// The synthesis network.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum ModelChoice {
    /// The baseline U-Net.
    Unet {
        /// Channels at full resolution.
        #[serde(default = "sixteen")]
        base_width: usize,
        /// Downsamplings.
        #[serde(default = "four")]
        levels: usize,
    },
    /// DRUNet-18/34/50/101.
    Drunet {
        /// 18, 34, 50 or 101.
        #[serde(default = "thirty_four")]
        depth: usize,
        /// Stem width (64 in the paper).
        #[serde(default = "sixty_four")]
        base_width: usize,
    },
}

fn sixteen() -> usize {
    16
}
fn four() -> usize {
    4
}
fn thirty_four() -> usize {
    34
}
fn sixty_four() -> usize {
    64
}

impl ModelChoice {
    /// Short name ("U-Net 16/4", "DRUNet-34").
    pub fn label(&self) -> String {
        match self {
            ModelChoice::Unet { base_width, levels } => format!("U-Net {base_width}/{levels}"),
            ModelChoice::Drunet { depth, base_width } if *base_width == 64 => {
                format!("DRUNet-{depth}")
            }
            ModelChoice::Drunet { depth, base_width } => format!("DRUNet-{depth} ({base_width})"),
        }
    }
}

/// A loss term.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum LossKind {
    /// Mean squared error.
    Mse,
    /// Mean absolute error.
    L1,
    /// Binary cross-entropy with logits (targets in 0..1).
    Bce,
    /// 1 - SSIM (Gaussian window 11, sigma 1.5).
    Ssim,
    /// Contextual loss on classifier (or VGG-19) features.
    Contextual,
    /// Grad-CAM-guided: |CAM(synthetic) - CAM(real)| of the target class, classifier frozen.
    GradcamGuided,
    /// MSE weighted by the real image's activation map (fine-tuning, method 4).
    ActivationWeighted,
}

impl LossKind {
    /// Every kind, for menus.
    pub const ALL: [LossKind; 7] = [
        LossKind::Mse,
        LossKind::L1,
        LossKind::Bce,
        LossKind::Ssim,
        LossKind::Contextual,
        LossKind::GradcamGuided,
        LossKind::ActivationWeighted,
    ];

    /// Display name.
    pub fn label(self) -> &'static str {
        match self {
            LossKind::Mse => "MSE",
            LossKind::L1 => "L1",
            LossKind::Bce => "BCE",
            LossKind::Ssim => "SSIM",
            LossKind::Contextual => "contextual",
            LossKind::GradcamGuided => "Grad-CAM-guided",
            LossKind::ActivationWeighted => "activation-weighted",
        }
    }

    /// True when the term needs the MR/CT classifier.
    pub fn needs_classifier(self) -> bool {
        matches!(
            self,
            LossKind::Contextual | LossKind::GradcamGuided | LossKind::ActivationWeighted
        )
    }
}

/// One weighted term of the loss.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct LossTerm {
    /// Which loss.
    pub kind: LossKind,
    /// Its weight in the sum.
    #[serde(default = "one")]
    pub weight: f32,
    /// Classifier layer for contextual / Grad-CAM terms (0 = stem .. 3); default 2 (H/8) for
    /// contextual, 1 (H/4) for the Grad-CAM terms.
    #[serde(default)]
    pub layer: Option<usize>,
    /// Contextual bandwidth h (default 0.5).
    #[serde(default)]
    pub h: Option<f32>,
}

fn one() -> f32 {
    1.0
}

impl LossTerm {
    /// A term with its default layer and bandwidth.
    pub fn new(kind: LossKind, weight: f32) -> Self {
        Self {
            kind,
            weight,
            layer: None,
            h: None,
        }
    }

    /// The classifier layer this term reads.
    pub fn layer(&self) -> usize {
        self.layer
            .unwrap_or(if self.kind == LossKind::Contextual {
                2
            } else {
                1
            })
            .min(3)
    }
}

/// Augmentation of training patches.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Augment {
    /// Rotate by 0/90/180/270 degrees at random (the DRUNet paper's augmentation).
    #[serde(default = "yes")]
    pub rot90: bool,
    /// Mirror left-right at random.
    #[serde(default = "yes")]
    pub flip: bool,
}

fn yes() -> bool {
    true
}

impl Default for Augment {
    fn default() -> Self {
        Self {
            rot90: true,
            flip: true,
        }
    }
}

/// Serde names "mr_to_ct" / "ct_to_mr" for [`Direction`].
mod direction_name {
    use crate::model::Direction;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Direction, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(match d {
            Direction::MrToCt => "mr_to_ct",
            Direction::CtToMr => "ct_to_mr",
            Direction::CtDenoise => "ct_denoise",
        })
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Direction, D::Error> {
        let s = String::deserialize(d)?;
        match s.to_ascii_lowercase().replace('-', "_").as_str() {
            "mr_to_ct" | "mr_ct" => Ok(Direction::MrToCt),
            "ct_to_mr" | "ct_mr" => Ok(Direction::CtToMr),
            "ct_denoise" | "denoise" => Ok(Direction::CtDenoise),
            other => Err(serde::de::Error::custom(format!(
                "direction `{other}` is not mr_to_ct, ct_to_mr or ct_denoise"
            ))),
        }
    }
}

/// Everything that defines a training run.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TrainConfig {
    /// Run name (the run folder's default name).
    #[serde(default = "default_name")]
    pub name: String,
    /// Seed of weight initialisation, sampling and augmentation. burn's random stream is
    /// process-wide and weights are drawn at first use: the same seed gives the same curve when
    /// nothing else in the process draws random numbers meanwhile (the app and CLI do not).
    #[serde(default)]
    pub seed: u64,
    /// MR -> CT or CT -> MR.
    #[serde(with = "direction_name", default = "mr_to_ct")]
    pub direction: Direction,
    /// Training pairs.
    pub data: DataSource,
    /// Network.
    pub model: ModelChoice,
    /// Passes over the training slices.
    #[serde(default = "default_epochs")]
    pub epochs: usize,
    /// Patches per step.
    #[serde(default = "default_batch")]
    pub batch_size: usize,
    /// Adam learning rate.
    #[serde(default = "default_lr")]
    pub learning_rate: f64,
    /// Square training patch (pixels); 0 = whole slices (padded to the largest).
    #[serde(default = "default_patch")]
    pub patch: usize,
    /// Cap on steps per epoch (None: one pass over the training slices).
    #[serde(default)]
    pub steps_per_epoch: Option<usize>,
    /// Augmentation.
    #[serde(default)]
    pub augment: Augment,
    /// Fraction of patients (or of slices, with one patient) held out for validation.
    #[serde(default = "default_val")]
    pub validation_fraction: f64,
    /// Validation slices evaluated per epoch (evenly spaced over the validation set).
    #[serde(default = "default_val_slices")]
    pub validation_slices: usize,
    /// The weighted loss terms.
    #[serde(default = "default_losses")]
    pub losses: Vec<LossTerm>,
    /// MR/CT classifier checkpoint for the contextual and Grad-CAM terms; trained at the start of
    /// the run (and saved in it) when absent.
    #[serde(default)]
    pub classifier: Option<PathBuf>,
    /// torchvision VGG-19 weights (`.pth` or `.safetensors`): the contextual loss then uses
    /// VGG-19 features (layer = index into conv1_1 .. conv5_4, default conv5_4 as the paper)
    /// instead of the classifier's.
    #[serde(default)]
    pub vgg19: Option<PathBuf>,
    /// Steps of that in-run classifier training.
    #[serde(default = "default_classifier_steps")]
    pub classifier_steps: usize,
    /// Start from this checkpoint's weights (fine-tuning) instead of random ones.
    #[serde(default)]
    pub init_from: Option<PathBuf>,
    /// Data-parallel training on several devices (`["cpu", "gpu@2", "ws://host:3000"]`, see
    /// [`super::parallel`]): each step's batch is split across them by weight and the first
    /// keeps the weights. Empty: the one device the caller gives (a plain run).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub devices: Vec<DeviceEntry>,
    /// Take the training batches from the folder's streamed index (see [`super::stream`])
    /// instead of loading every patient: true, false, or unset for automatic (a `folder` source
    /// of more than [`STREAM_AUTO_PATIENTS`] patients streams).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream: Option<bool>,
}

/// Above this many patients a `folder` source streams unless `stream = false`: a SynthRAD brain
/// patient takes about 120 MB in memory (input and target as f32, the mask), so 32 of them are
/// some 4 GB, about what a desktop can spare beside the app.
pub const STREAM_AUTO_PATIENTS: usize = 32;

fn default_name() -> String {
    "run".into()
}
fn mr_to_ct() -> Direction {
    Direction::MrToCt
}
fn default_epochs() -> usize {
    10
}
fn default_batch() -> usize {
    4
}
fn default_lr() -> f64 {
    2e-3
}
fn default_patch() -> usize {
    128
}
fn default_val() -> f64 {
    0.34
}
fn default_val_slices() -> usize {
    8
}
fn default_losses() -> Vec<LossTerm> {
    vec![LossTerm::new(LossKind::Mse, 1.0)]
}
fn default_classifier_steps() -> usize {
    80
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            name: default_name(),
            seed: 0,
            direction: Direction::MrToCt,
            data: DataSource::Demo {
                patients: 3,
                small: false,
            },
            model: ModelChoice::Unet {
                base_width: 16,
                levels: 4,
            },
            epochs: default_epochs(),
            batch_size: default_batch(),
            learning_rate: default_lr(),
            patch: default_patch(),
            steps_per_epoch: None,
            augment: Augment::default(),
            validation_fraction: default_val(),
            validation_slices: default_val_slices(),
            losses: default_losses(),
            classifier: None,
            vgg19: None,
            classifier_steps: default_classifier_steps(),
            init_from: None,
            devices: Vec::new(),
            stream: None,
        }
    }
}

impl TrainConfig {
    /// Read a TOML (`.toml`) or JSON file.
    pub fn read(path: &Path) -> Result<Self, TrainError> {
        let text = crate::io::read_text(path, crate::io::MAX_TEXT_BYTES)
            .map_err(|e| TrainError::file(path, format!("cannot read: {e}")))?;
        let cfg: Self = crate::io::parse_settings(path, &text)?;
        cfg.validate()
            .map_err(|e| TrainError::file(path, e.to_string()))?;
        Ok(cfg)
    }

    /// As TOML text.
    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).unwrap_or_else(|e| format!("# cannot write TOML: {e}\n"))
    }

    /// Refuse settings that cannot train.
    pub fn validate(&self) -> Result<(), TrainError> {
        if self.epochs == 0 || self.batch_size == 0 {
            return Err(TrainError::Config(
                "epochs and batch_size must be at least 1".into(),
            ));
        }
        if !(self.learning_rate > 0.0 && self.learning_rate < 1.0) {
            return Err(TrainError::Config(format!(
                "learning_rate {} is outside (0, 1)",
                self.learning_rate
            )));
        }
        if self.losses.is_empty() {
            return Err(TrainError::Config("no loss terms".into()));
        }
        if !(0.0..1.0).contains(&self.validation_fraction) || self.validation_fraction == 0.0 {
            return Err(TrainError::Config(
                "validation_fraction must be in (0, 1)".into(),
            ));
        }
        let m = self.multiple();
        if self.patch != 0 && !self.patch.is_multiple_of(m) {
            return Err(TrainError::Config(format!(
                "patch {} must be a multiple of {m} for {}",
                self.patch,
                self.model.label()
            )));
        }
        if let ModelChoice::Drunet { depth, .. } = self.model
            && ![18, 34, 50, 101].contains(&depth)
        {
            return Err(TrainError::Config(format!(
                "DRUNet depth {depth} is not 18, 34, 50 or 101"
            )));
        }
        if !self.devices.is_empty() {
            let w: Vec<f64> = self.devices.iter().map(|d| d.weight).collect();
            let counts = split_batch(self.batch_size, &w);
            if let Some(i) = counts.iter().position(|&n| n == 0) {
                return Err(TrainError::Config(format!(
                    "devices: batch_size {} gives device {} ({}) no sample of a batch (shares {:?}): \
                     raise batch_size or that device's weight",
                    self.batch_size, i, self.devices[i], counts
                )));
            }
        }
        if self.stream == Some(true) && !matches!(self.data, DataSource::Folder { .. }) {
            return Err(TrainError::Config(
                "stream = true streams a patient folder: it needs data = { kind = \"folder\", path = ... }"
                    .into(),
            ));
        }
        Ok(())
    }

    /// True when a `folder` source of `patients` patients trains from the streamed index.
    pub fn streams(&self, patients: usize) -> bool {
        matches!(self.data, DataSource::Folder { .. })
            && self.stream.unwrap_or(patients > STREAM_AUTO_PATIENTS)
    }

    /// The size multiple the network needs.
    pub fn multiple(&self) -> usize {
        match self.model {
            ModelChoice::Unet { levels, .. } => 1 << levels,
            ModelChoice::Drunet { .. } => 32,
        }
    }

    /// Input channels (DRUNet repeats the grey image to 3).
    pub fn channels(&self) -> usize {
        match self.model {
            ModelChoice::Unet { .. } => 1,
            ModelChoice::Drunet { .. } => 3,
        }
    }

    /// The checkpoint spec of the network this run trains (sigmoid output).
    pub fn model_spec(&self, input_size: usize) -> ModelSpec {
        match self.model {
            ModelChoice::Unet { base_width, levels } => ModelSpec::Unet(
                UnetConfig::new()
                    .with_base_width(base_width)
                    .with_levels(levels)
                    .with_input_size(input_size)
                    .with_direction(self.direction)
                    .with_output_sigmoid(true)
                    .with_residual(self.direction == Direction::CtDenoise),
            ),
            ModelChoice::Drunet { depth, base_width } => ModelSpec::Drunet(
                DrunetConfig::new()
                    .with_depth(depth)
                    .with_base_width(base_width)
                    .with_input_size(input_size)
                    .with_direction(self.direction)
                    .with_output_sigmoid(true),
            ),
        }
    }

    /// "MSE", "MSE + 0.05 contextual".
    pub fn loss_label(&self) -> String {
        self.losses
            .iter()
            .map(|t| {
                if (t.weight - 1.0).abs() < 1e-6 {
                    t.kind.label().to_string()
                } else {
                    format!("{} {}", t.weight, t.kind.label())
                }
            })
            .collect::<Vec<_>>()
            .join(" + ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn toml_round_trips_and_defaults_fill_in() {
        let text = r#"
            name = "t"
            direction = "ct_to_mr"
            data = { kind = "demo", small = true }
            model = { kind = "drunet", depth = 18 }
            losses = [{ kind = "contextual", weight = 0.5 }]
        "#;
        let cfg: TrainConfig = toml::from_str(text).unwrap();
        assert_eq!(cfg.direction, Direction::CtToMr);
        assert_eq!(
            cfg.data,
            DataSource::Demo {
                patients: 3,
                small: true
            }
        );
        assert_eq!(cfg.losses[0].layer(), 2);
        assert_eq!(cfg.epochs, 10);
        let back: TrainConfig = toml::from_str(&cfg.to_toml()).unwrap();
        assert_eq!(back, cfg);
        assert!(toml::from_str::<TrainConfig>("bogus = 1\n").is_err());
        let bad = TrainConfig {
            patch: 100,
            ..TrainConfig::default()
        };
        assert!(
            bad.validate()
                .unwrap_err()
                .to_string()
                .contains("multiple of 16")
        );
    }

    #[test]
    fn devices_and_stream_parse_and_are_checked() {
        let text = r#"
            data = { kind = "folder", path = "/data" }
            model = { kind = "unet" }
            batch_size = 2
            stream = true
            devices = ["cpu", "gpu@2", { device = "ws://h:3000", token_file = "/t" }]
        "#;
        let cfg: TrainConfig = toml::from_str(text).unwrap();
        assert_eq!(cfg.devices.len(), 3);
        assert_eq!(cfg.devices[1].weight, 2.0);
        assert_eq!(cfg.devices[2].token_file, Some(PathBuf::from("/t")));
        assert!(cfg.streams(1));
        let back: TrainConfig = toml::from_str(&cfg.to_toml()).unwrap();
        assert_eq!(back, cfg);
        // 2 samples over weights 1, 2, 1 (exact shares 0.5, 1, 0.5): the last device gets none.
        let e = cfg.validate().unwrap_err().to_string();
        assert!(e.contains("no sample"), "{e}");
        assert!(
            toml::from_str::<TrainConfig>(
                "data = { kind = \"demo\" }\nmodel = { kind = \"unet\" }\ndevices = [\"tpu\"]\n"
            )
            .unwrap_err()
            .to_string()
            .contains("tpu")
        );
        let plain = TrainConfig::default();
        assert!(!plain.to_toml().contains("devices"));
        assert!(!plain.streams(1000));
        let auto = TrainConfig {
            data: DataSource::Folder { path: "/d".into() },
            ..TrainConfig::default()
        };
        assert!(!auto.streams(STREAM_AUTO_PATIENTS) && auto.streams(STREAM_AUTO_PATIENTS + 1));
        let bad = TrainConfig {
            stream: Some(true),
            ..TrainConfig::default()
        };
        assert!(bad.validate().unwrap_err().to_string().contains("folder"));
    }
}
