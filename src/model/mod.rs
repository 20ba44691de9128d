//! burn networks for MR <-> CT synthesis: a U-Net baseline, DRUNet (ResNet-18/34/50/101
//! encoder with a mirrored ResNet decoder), and a small ResNet classifier (MR vs CT) for
//! Grad-CAM and contextual-loss features. Every model has a `#[derive(Config)]` config.

pub mod blocks;
pub mod checkpoint;
pub mod demo;
mod drunet;
pub mod import;
mod unet;
pub mod vgg;

pub use drunet::{Drunet, DrunetConfig};
pub use unet::{Classifier, ClassifierConfig, Unet, UnetConfig};

use burn::config::Config;

/// Which way a network translates.
#[derive(Config, Debug, Copy, PartialEq, Eq)]
pub enum Direction {
    /// MR in, synthetic CT out.
    MrToCt,
    /// CT in, synthetic MR out.
    CtToMr,
}
