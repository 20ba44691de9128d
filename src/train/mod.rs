//! Training synthesis networks on the shared wgpu device (burn autodiff), headless or from the
//! app's Training panel: the same loop, the same run folder.
//!
//! A run folder holds `config.toml` (what ran), `metrics.jsonl` (one JSON line per step and per
//! epoch, appended as they happen), `checkpoints/epoch_NNN.{bpk,json}` plus `last` and `best`
//! (by validation PSNR), the in-run `classifier.{bpk,json}` when a loss needed one, and
//! `summary.json` (the final table row), each file written atomically.

pub mod adam;
mod classifier;
pub mod config;
pub mod cyclegan;
pub mod data;
mod fit;
pub mod losses;
pub mod parallel;
mod resume;
pub mod runs;
pub mod stream;
pub mod usmr;

pub use classifier::{classifier_for_run, train_classifier};
pub use config::{DataSource, LossKind, LossTerm, ModelChoice, STREAM_AUTO_PATIENTS, TrainConfig};
pub use data::{Case, Dataset, load_dataset};
pub use fit::{SynthNet, patch_size, train};
pub use parallel::{DeviceEntry, Replica};
pub use resume::{ResumeState, resume};
pub use runs::write_atomic;

use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Duration;

/// What can stop a training run, naming the file or the setting at fault.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// A file or folder could not be read or written, or holds the wrong thing.
    #[error("{}: {problem}", path.display())]
    File {
        /// The file or folder.
        path: PathBuf,
        /// What is wrong.
        problem: String,
    },
    /// The configuration or the data do not allow the run.
    #[error("{0}")]
    Config(String),
    /// A network could not be built, loaded, saved or read back.
    #[error(transparent)]
    Model(#[from] crate::model::ModelError),
    /// Data could not be loaded (or loading was cancelled).
    #[error(transparent)]
    Load(#[from] crate::io::LoadError),
}

impl TrainError {
    /// A problem with `path`.
    pub fn file(path: &Path, problem: impl Into<String>) -> Self {
        TrainError::File {
            path: path.to_path_buf(),
            problem: problem.into(),
        }
    }
}

/// Start / pause / stop, shared between the UI and the training thread.
#[derive(Debug, Default)]
pub struct Control(AtomicU8);

impl Control {
    const RUN: u8 = 0;
    const PAUSE: u8 = 1;
    const STOP: u8 = 2;

    /// Pause after the current step.
    pub fn pause(&self) {
        let _ = self
            .0
            .compare_exchange(Self::RUN, Self::PAUSE, Ordering::SeqCst, Ordering::SeqCst);
    }

    /// Resume a paused run.
    pub fn resume(&self) {
        let _ = self
            .0
            .compare_exchange(Self::PAUSE, Self::RUN, Ordering::SeqCst, Ordering::SeqCst);
    }

    /// Stop after the current step (the weights so far are saved).
    pub fn stop(&self) {
        self.0.store(Self::STOP, Ordering::SeqCst);
    }

    /// True while paused.
    pub fn is_paused(&self) -> bool {
        self.0.load(Ordering::SeqCst) == Self::PAUSE
    }

    /// True once stopped.
    pub fn is_stopped(&self) -> bool {
        self.0.load(Ordering::SeqCst) == Self::STOP
    }

    /// Block while paused; true if the run should stop.
    fn wait(&self) -> bool {
        while self.is_paused() {
            std::thread::sleep(Duration::from_millis(50));
        }
        self.is_stopped()
    }
}

/// One optimisation step.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct StepReport {
    /// Epoch (1-based).
    pub epoch: usize,
    /// Step (1-based, over the whole run).
    pub step: usize,
    /// Steps the run will take.
    pub total_steps: usize,
    /// The weighted loss.
    pub loss: f64,
    /// Each term's unweighted value, by label.
    pub terms: Vec<(String, f64)>,
    /// Training images per second (this epoch so far).
    pub images_per_s: f64,
    /// Seconds since the run started.
    pub elapsed_s: f64,
    /// Estimated seconds left.
    pub eta_s: f64,
    /// Each device's part of the step in a run on several devices (empty on one device).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub shares: Vec<DeviceShare>,
}

/// One device's part of a data-parallel step.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct DeviceShare {
    /// The device, as the run config names it ("cpu", "gpu", "ws://host:3000", "cpu #2").
    pub device: String,
    /// Samples of the batch it computed.
    pub samples: usize,
    /// Seconds of its forward and backward pass.
    pub seconds: f64,
}

/// End-of-epoch validation.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct EpochReport {
    /// Epoch (1-based).
    pub epoch: usize,
    /// Step at the end of the epoch.
    pub step: usize,
    /// Mean training loss over the epoch.
    pub train_loss: f64,
    /// The same weighted loss on the validation slices.
    pub val_loss: f64,
    /// PSNR (dB) on 0..1 images (data range 1), whole validation slices.
    pub val_psnr: f64,
    /// SSIM (scikit-image definition, data range 1).
    pub val_ssim: f64,
    /// Mean absolute error inside the head, in target units (HU for CT).
    pub val_mae: f64,
    /// Mean Tenengrad of the synthetic slices (0..1 units).
    pub val_tenengrad: f64,
    /// Mean Tenengrad of the real slices, for reference.
    pub ref_tenengrad: f64,
    /// Mean pixel-domain VIF of the validation slices (0..1 images mapped to 0..255); None
    /// where no slice is large enough (41 x 41) and in runs from before it was measured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub val_vif: Option<f64>,
    /// Seconds since the run started.
    pub elapsed_s: f64,
}

/// A validation slice as the network sees it, refreshed each epoch.
#[derive(Clone, Debug)]
pub struct Preview {
    /// Epoch.
    pub epoch: usize,
    /// Width.
    pub nx: usize,
    /// Height.
    pub ny: usize,
    /// Input (0..1).
    pub input: Vec<f32>,
    /// Synthetic (0..1).
    pub synthetic: Vec<f32>,
    /// Reference (0..1).
    pub reference: Vec<f32>,
}

/// What the training thread reports.
#[derive(Clone, Debug)]
pub enum TrainEvent {
    /// A stage started ("Training the MR/CT classifier").
    Stage(String),
    /// A step finished.
    Step(StepReport),
    /// An epoch was validated (and its checkpoint saved).
    Epoch(EpochReport),
    /// A preview for the epoch.
    Preview(Preview),
    /// Something the user should know (split, classifier accuracy).
    Note(String),
}

/// The final row of a run (`summary.json`).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RunSummary {
    /// Run name.
    pub name: String,
    /// Network label.
    pub model: String,
    /// Loss label.
    pub loss: String,
    /// "MR -> CT" / "CT -> MR".
    pub direction: String,
    /// Trainable parameters (burn's count).
    pub params: usize,
    /// Epochs completed.
    pub epochs_done: usize,
    /// Steps taken.
    pub steps: usize,
    /// Training wall time (s), classifier included.
    pub seconds: f64,
    /// Mean training images per second.
    pub images_per_s: f64,
    /// Stopped before the last epoch.
    pub stopped: bool,
    /// The last epoch's validation.
    pub last: Option<EpochReport>,
    /// The epoch with the best validation PSNR.
    pub best: Option<EpochReport>,
    /// How training and validation were split.
    pub split: String,
    /// The device it ran on.
    pub device: String,
}

/// A line of `metrics.jsonl`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum LogLine {
    /// A step.
    Step(StepReport),
    /// An epoch.
    Epoch(EpochReport),
}
