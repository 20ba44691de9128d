//! Low-dose CT denoising guided by lesion activation maps (shared/METHODS.md, method 4), built
//! on the simulation of [`crate::synth::ldct`]: the lesion classifier and its activation maps
//! ([`classifier`]), the two-step denoiser training ([`two_step`]), its held-out evaluation
//! ([`eval`]) and where the fine-tuning's weights fall ([`weights`]). It composes the training
//! loop of [`crate::train`], so it sits after it.

pub mod classifier;
pub mod eval;
pub mod two_step;
pub mod weights;

pub use two_step::{TwoStepOptions, TwoStepReport, run_two_step};
