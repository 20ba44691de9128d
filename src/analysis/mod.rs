//! Image-quality analysis of a synthetic image against its reference: metrics (PSNR, SSIM, MAE,
//! RMSE, Tenengrad, UQI), whole-volume and per slice, inside masks; and what the networks look
//! at: Grad-CAM of the classifier and of the synthesis network, feature maps.

pub mod features;
pub mod frechet;
pub mod gradcam;
pub mod lesion;
pub mod metrics;
pub mod stats;

use crate::model::ModelError;

/// What can go wrong while explaining a network or measuring its output.
#[derive(Debug, thiserror::Error)]
pub enum AnalysisError {
    /// The network failed or cannot do what was asked.
    #[error(transparent)]
    Model(#[from] ModelError),
    /// The inputs do not allow it (no bone on the slice, slices of different sizes, ...).
    #[error("{0}")]
    Input(String),
}

pub use gradcam::gradcam;
pub use metrics::{
    MetricsReport, Region, evaluate_volumes, mae, psnr, rmse, ssim, tenengrad, to_csv, uqi, vif,
    vif_scaled,
};
