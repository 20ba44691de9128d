//! The networks of the reference CycleGAN implementation (pytorch-CycleGAN-and-pix2pix): the
//! ResNet generator and the 70x70 PatchGAN discriminator, both with instance norm without affine
//! parameters (so every convolution carries a bias), their import from that implementation's
//! state dicts, and their checkpoints.
//!
//! Grey images meet 3-channel pretrained generators in one of two ways ([`GreyHandling`]):
//! the grey slice is repeated to 3 channels and the 3 output channels averaged, or the network
//! is made 1-channel in and out ([`ResnetGenerator::to_grey`]) and that head is fine-tuned.

mod checkpoint;
mod generator;
mod import;
mod patchgan;

pub use checkpoint::{CycleganMeta, generator_direction, load_generator, save_generator};
pub use generator::{ResnetGenerator, ResnetGeneratorConfig};
pub use import::{
    export_reference, import_generator, infer_config, load_reference_into, reference_keys,
};
pub use patchgan::{PatchGan, PatchGanConfig};

use burn::tensor::Tensor;
use serde::{Deserialize, Serialize};

/// How a grey (1-channel) slice goes through a generator.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GreyHandling {
    /// A 3-channel network: the grey input repeated to 3 channels, the 3 outputs averaged.
    #[default]
    Replicate,
    /// A 1-channel network: the first convolution's weights summed over its 3 input channels
    /// (exact for a replicated grey input) and the last one's averaged over its 3 outputs, then
    /// fine-tuned.
    OneChannel,
}

/// Instance normalisation without affine parameters (PyTorch's `InstanceNorm2d` default:
/// biased variance, eps 1e-5). x: [B, C, H, W] -> [B, C, H, W]
pub fn instance_norm(x: Tensor<4>) -> Tensor<4> {
    let mean = x.clone().mean_dim(3).mean_dim(2);
    let centred = x - mean;
    let var = centred.clone().powi_scalar(2).mean_dim(3).mean_dim(2);
    centred / (var + 1e-5).sqrt()
}

/// Images in the generator's range -1..1 from the training range 0..1.
pub fn to_tanh_range(x: Tensor<4>) -> Tensor<4> {
    x * 2.0 - 1.0
}

/// Images in the training range 0..1 from the generator's -1..1.
pub fn from_tanh_range(x: Tensor<4>) -> Tensor<4> {
    (x + 1.0) * 0.5
}
