//! burn networks for MR <-> CT synthesis: a U-Net baseline, DRUNet (ResNet-18/34/50/101
//! encoder with a mirrored ResNet decoder), and a small ResNet classifier (MR vs CT) for
//! Grad-CAM and contextual-loss features. Every model has a `#[derive(Config)]` config.

pub mod blocks;
pub mod checkpoint;
pub mod cpu_bn_train;
pub mod cpu_conv;
pub mod cpu_conv_train;
pub mod cpu_pool;
pub mod cyclegan;
pub mod demo;
mod drunet;
pub mod half;
pub mod import;
pub mod normalise;
mod unet;
pub mod usmr;
pub mod vgg;
pub mod winograd;

pub use drunet::{Drunet, DrunetConfig};
pub use unet::{Classifier, ClassifierConfig, Unet, UnetConfig};

use burn::config::Config;
use std::path::{Path, PathBuf};

/// What can go wrong building, saving, loading or importing a network.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// A file could not be read or written, or does not hold what it should.
    #[error("{}: {problem}", path.display())]
    File {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        problem: String,
    },
    /// A configuration asks for a network this build cannot make.
    #[error("{0}")]
    Config(String),
    /// The network cannot do what was asked of it (a classifier asked to synthesise, ...).
    #[error("{0}")]
    Unsupported(String),
    /// A tensor could not be read back from the device.
    #[error("reading a tensor from the device: {0}")]
    Tensor(String),
}

impl ModelError {
    /// A problem with `path`.
    pub fn file(path: &Path, problem: impl Into<String>) -> Self {
        ModelError::File {
            path: path.to_path_buf(),
            problem: problem.into(),
        }
    }
}

/// The values of a (small) tensor read back from its device.
pub fn tensor_values<const D: usize>(t: burn::tensor::Tensor<D>) -> Result<Vec<f32>, ModelError> {
    t.into_data()
        .try_into_vec::<f32>()
        .map_err(|e| ModelError::Tensor(format!("{e:?}")))
}

/// Which way a network translates.
#[derive(Config, Debug, Copy, PartialEq, Eq)]
pub enum Direction {
    /// MR in, synthetic CT out.
    MrToCt,
    /// CT in, synthetic MR out.
    CtToMr,
    /// Low-dose CT in, denoised CT out, on the same grid (shared/METHODS.md, method 4).
    CtDenoise,
}
