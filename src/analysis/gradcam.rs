//! Grad-CAM (Selvaraju et al. 2017) on the MR/CT classifier, computed on the shared device with
//! burn autodiff: the class score's gradient with respect to the last convolutional feature map,
//! averaged over space, weights the map's channels; the ReLU of the weighted sum, upsampled to
//! the input and scaled to 0..1 per image, is the heatmap.

use crate::model::Classifier;
use burn::module::Module;
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
    let cam = gradcam_unscaled(model, x, class, layer);
    let peak = cam.clone().max_dim(3).max_dim(2).clamp_min(1e-12);
    (cam / peak).reshape([b, h, w])
}

/// [`gradcam`] before the per-image scaling: ReLU(sum_k alpha_k A_k) upsampled to the input,
/// x: [B, 1, H, W] -> [B, 1, H, W], so maps of a batch can share one scale.
pub fn gradcam_unscaled(model: &Classifier, x: Tensor<4>, class: usize, layer: usize) -> Tensor<4> {
    let [_, _, h, w] = x.dims();
    // Evaluation mode: batch norm must not take statistics from the (tracked) batch.
    let model = &model.valid();
    let features = model.features_at(x, layer).detach();
    let alpha = gradcam_weights(model, features.clone(), class, layer);
    interpolate(
        cam_from(features, alpha),
        InterpolateOptions::new(InterpolateMode::Bilinear).with_output_size([h, w]),
    )
}

/// Grad-CAM's channel weights alpha_k: the spatial mean of the gradient of `class`'s score with
/// respect to `features` (the activation after layer `layer`): [B, C, h, w] -> [B, C, 1, 1].
/// The result is a constant (detached) whatever device `features` live on.
pub fn gradcam_weights(
    model: &Classifier,
    features: Tensor<4>,
    class: usize,
    layer: usize,
) -> Tensor<4> {
    let [b, ..] = features.dims();
    let features = features.detach();
    let leaf = features.clone().autodiff().require_grad();
    let logits = model.forward_from(leaf.clone(), layer);
    let [_, classes] = logits.dims();
    let c = class.min(classes - 1);
    let score = logits.slice([0..b, c..c + 1]).sum();
    let grads = score.backward();
    let g = leaf.grad(&grads).unwrap_or_else(|| features.zeros_like());
    g.mean_dim(3).mean_dim(2).detach()
}

/// The class-activation map from features and their weights: ReLU(sum_k alpha_k A_k),
/// [B, C, h, w] x [B, C, 1, 1] -> [B, 1, h, w] (differentiable in `features`).
pub fn cam_from(features: Tensor<4>, alpha: Tensor<4>) -> Tensor<4> {
    relu((features * alpha).sum_dim(1))
}

/// Grad-CAM of a synthesis network with a regression target (Selvaraju et al.'s recipe with the
/// class score replaced by the mean synthetic value inside `region`): x: [1, C, H, W],
/// region: [1, 1, H, W] (1 inside), activation `layer` of [`AnyModel::layer_names`] ->
/// [H, W] in 0..1, where the layer's features raise the region's output.
///
/// `model` may live on the plain device: the activation is swapped for a tracked copy, the
/// rest of the network acts as constants.
pub fn gradcam_synthesis(
    model: &crate::model::checkpoint::AnyModel,
    x: Tensor<4>,
    region: Tensor<4>,
    layer: usize,
) -> Result<Tensor<2>, String> {
    let [_, _, h, w] = x.dims();
    // Evaluation mode: batch norm must not take statistics from the (tracked) batch.
    let model = &model.valid();
    // The output itself is not a feature map.
    let layer = layer.min(model.layer_names().len().saturating_sub(2));
    // One forward pass: the chosen activation is kept and a tracked copy goes on in its place.
    let mut kept: Option<(Tensor<4>, Tensor<4>)> = None;
    let out = model
        .forward_hooked(x.autodiff(), &mut |k, t| {
            if k != layer {
                return t;
            }
            let features = t.detach();
            let leaf = features.clone().require_grad();
            kept = Some((features, leaf.clone()));
            leaf
        })
        .ok_or("a classifier is not a synthesis network")?;
    let (features, leaf) = kept.ok_or("the model has no feature layers")?;
    let inside = region.clone().sum().into_scalar::<f32>().max(1.0);
    let score = (out.slice([0..1, 0..1, 0..h, 0..w]) * region.autodiff()).sum() / inside;
    let grads = score.backward();
    let g = leaf
        .grad(&grads)
        .ok_or("no gradient reached the chosen layer")?;
    let alpha = g.mean_dim(3).mean_dim(2);
    let cam = interpolate(
        cam_from(features, alpha),
        InterpolateOptions::new(InterpolateMode::Bilinear).with_output_size([h, w]),
    );
    let peak = cam.clone().max().clamp_min(1e-12);
    Ok((cam / peak.reshape([1, 1, 1, 1])).reshape([h, w]))
}
