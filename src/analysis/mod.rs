//! Image-quality analysis of a synthetic image against its reference: metrics (PSNR, SSIM, MAE,
//! RMSE, Tenengrad, UQI), whole-volume and per slice, inside masks.

pub mod gradcam;
pub mod metrics;

pub use gradcam::gradcam;
pub use metrics::{
    MetricsReport, Region, evaluate_volumes, mae, psnr, rmse, ssim, tenengrad, to_csv, uqi,
};
