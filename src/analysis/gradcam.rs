//! Grad-CAM (Selvaraju et al. 2017) on the MR/CT classifier, computed on the shared device with
//! burn autodiff: the class score's gradient with respect to the last convolutional feature map,
//! averaged over space, weights the map's channels; the ReLU of the weighted sum, upsampled to
//! the input and scaled to 0..1 per image, is the heatmap.

use crate::model::Classifier;
use burn::tensor::Tensor;
use burn::tensor::activation::relu;
use burn::tensor::module::interpolate;
use burn::tensor::ops::{InterpolateMode, InterpolateOptions};

/// Grad-CAM heatmaps of `class` at layer `layer` (see [`Classifier::LAYERS`]) for a batch:
/// x: [B, 1, H, W] -> [B, H, W] in 0..1. Deeper layers see more but localise coarser.
///
/// `model` may live on a plain (non-autodiff) device: only the feature map is tracked, the
/// rest of the network's weights act as constants.
pub fn gradcam(model: &Classifier, x: Tensor<4>, class: usize, layer: usize) -> Tensor<3> {
    let [b, _, h, w] = x.dims();
    let features = model.features_at(x, layer).detach();
    let leaf = features.clone().autodiff().require_grad();
    let logits = model.forward_from(leaf.clone(), layer);
    let [_, classes] = logits.dims();
    let score = logits
        .slice([0..b, class.min(classes - 1)..class.min(classes - 1) + 1])
        .sum();
    let grads = score.backward();
    let g = leaf.grad(&grads).unwrap_or_else(|| features.zeros_like());
    // alpha_k: spatial mean of the gradient, one weight per channel.
    let alpha = g.mean_dim(3).mean_dim(2);
    let cam = relu((features * alpha).sum_dim(1));
    let cam = interpolate(
        cam,
        InterpolateOptions::new(InterpolateMode::Bilinear).with_output_size([h, w]),
    );
    let peak = cam.clone().max_dim(3).max_dim(2).clamp_min(1e-12);
    (cam / peak).reshape([b, h, w])
}
