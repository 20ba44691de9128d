//! Training losses, each a differentiable function of burn tensors on any device (the autodiff
//! device while training, the plain device for validation).
//!
//! Images are [B, 1, H, W] in the network's 0..1 units. Feature maps are [B, C, h, w].

use super::config::{LossKind, LossTerm};
use crate::analysis::gradcam::{cam_from, gradcam_weights};
use crate::model::Classifier;
use burn::tensor::Tensor;
use burn::tensor::activation::log_sigmoid;
use burn::tensor::activation::sigmoid;
use burn::tensor::module::{conv2d, interpolate};
use burn::tensor::ops::{ConvOptions, InterpolateMode, InterpolateOptions};
use burn::tensor::{Device, TensorData};

/// Mean squared error.
pub fn mse(pred: Tensor<4>, target: Tensor<4>) -> Tensor<1> {
    (pred - target).powi_scalar(2).mean()
}

/// Mean absolute error.
pub fn l1(pred: Tensor<4>, target: Tensor<4>) -> Tensor<1> {
    (pred - target).abs().mean()
}

/// Binary cross-entropy of `target` (0..1, soft labels allowed) against `sigmoid(logits)`,
/// computed from the logits for stability: -(t log s(x) + (1 - t) log s(-x)). Its minimum over
/// the logits is the target's own entropy (0 only for hard 0/1 targets).
pub fn bce_with_logits(logits: Tensor<4>, target: Tensor<4>) -> Tensor<1> {
    let pos = log_sigmoid(logits.clone()) * target.clone();
    let neg = log_sigmoid(logits.neg()) * (target.neg() + 1.0);
    (pos + neg).neg().mean()
}

/// The 11x11 Gaussian window (sigma 1.5) as a [1, 1, 11, 11] convolution kernel.
fn gaussian_window(device: &Device) -> Tensor<4> {
    let g: Vec<f32> = (-5i32..=5)
        .map(|x| (-0.5 * (x * x) as f32 / (1.5 * 1.5)).exp())
        .collect();
    let s: f32 = g.iter().sum();
    let mut w = Vec::with_capacity(121);
    for a in &g {
        for b in &g {
            w.push(a * b / (s * s));
        }
    }
    Tensor::from_data(TensorData::new(w, [1, 1, 11, 11]), device)
}

/// Mean SSIM (Gaussian window 11, sigma 1.5, K1 0.01, K2 0.03, data range 1, valid windows
/// only) as a differentiable tensor.
pub fn ssim(pred: Tensor<4>, target: Tensor<4>) -> Tensor<1> {
    let w = gaussian_window(&pred.device());
    let f = |t: Tensor<4>| {
        conv2d(
            t,
            w.clone(),
            None,
            ConvOptions::new([1, 1], [0, 0], [1, 1], 1),
        )
    };
    let (c1, c2) = (0.01f32.powi(2), 0.03f32.powi(2));
    let mx = f(pred.clone());
    let my = f(target.clone());
    let sxx = f(pred.clone() * pred.clone()) - mx.clone() * mx.clone();
    let syy = f(target.clone() * target.clone()) - my.clone() * my.clone();
    let sxy = f(pred * target) - mx.clone() * my.clone();
    let num = (mx.clone() * my.clone() * 2.0 + c1) * (sxy * 2.0 + c2);
    let den = (mx.powi_scalar(2) + my.powi_scalar(2) + c1) * (sxx + syy + c2);
    (num / den).mean()
}

/// 1 - SSIM.
pub fn ssim_loss(pred: Tensor<4>, target: Tensor<4>) -> Tensor<1> {
    ssim(pred, target).neg() + 1.0
}

/// Contextual loss (Mechrez et al. 2018; shared/METHODS.md): feature vectors s_i of the
/// synthetic image and r_j of the real one; cosine distance d_ij after centring both on the mean
/// of r; d~_ij = d_ij / (min_k d_ik + 1e-5); w_ij = exp((1 - d~_ij) / h);
/// CX_ij = w_ij / sum_k w_ik; CX = mean_j max_i CX_ij; loss = -log(CX), averaged over the batch.
///
/// Near 0 when every real feature has its own synthetic twin; grows as the synthetic features
/// stop matching any real one. Costs O((h w)^2) per image: use a layer at H/8 or coarser.
pub fn contextual(synthetic: Tensor<4>, real: Tensor<4>, h: f32) -> Tensor<1> {
    let [b, c, hh, ww] = real.dims();
    let n = hh * ww;
    let flat = |t: Tensor<4>| t.reshape([b, c, n]).swap_dims(1, 2); // [B, N, C]
    let s = flat(synthetic);
    let r = flat(real);
    let mu = r.clone().mean_dim(1); // [B, 1, C]
    let unit = |t: Tensor<3>| {
        let norm = t.clone().powi_scalar(2).sum_dim(2).sqrt() + 1e-8;
        t / norm
    };
    let s = unit(s - mu.clone());
    let r = unit(r - mu);
    let cos = s.matmul(r.swap_dims(1, 2)); // [B, Ns, Nr]
    let d = cos.neg() + 1.0;
    let dmin = d.clone().min_dim(2) + 1e-5; // [B, Ns, 1]
    let rel = d / dmin;
    let w = ((rel.neg() + 1.0) / h).exp();
    let cx = w.clone() / w.sum_dim(2);
    let cx_j = cx.max_dim(1); // [B, 1, Nr]
    let per_image = cx_j.mean_dim(2).reshape([b]); // [B]
    per_image.clamp_min(1e-12).log().neg().mean()
}

/// Grad-CAM of `class` at classifier layer `layer`, differentiable with respect to `x`, the
/// channel weights (the spatial mean of the class score's gradient) taken as constants — burn
/// has no double backward, and this is how Grad-CAM-guided losses are usually computed.
/// x: [B, 1, H, W] -> [B, 1, h, w], each image scaled to peak 1 (the peak a constant too).
pub fn gradcam_map(classifier: &Classifier, x: Tensor<4>, class: usize, layer: usize) -> Tensor<4> {
    let features = classifier.features_at(x, layer);
    let alpha = gradcam_weights(classifier, features.clone().detach(), class, layer);
    let cam = cam_from(features, alpha);
    let peak = cam.clone().detach().max_dim(3).max_dim(2).clamp_min(1e-6);
    cam / peak
}

/// Grad-CAM-guided loss (shared/METHODS.md, method 2): mean absolute difference between the
/// target class's Grad-CAM maps of the synthetic and the real image, with the classifier frozen.
pub fn gradcam_guided(
    classifier: &Classifier,
    synthetic: Tensor<4>,
    real: Tensor<4>,
    class: usize,
    layer: usize,
) -> Tensor<1> {
    let cam_s = gradcam_map(classifier, synthetic, class, layer);
    let cam_r = gradcam_map(classifier, real.detach(), class, layer).detach();
    (cam_s - cam_r).abs().mean()
}

/// The real image's Grad-CAM map at full resolution, as a constant weight: [B, 1, H, W] in 0..1.
pub fn activation_weights(
    classifier: &Classifier,
    real: Tensor<4>,
    class: usize,
    layer: usize,
) -> Tensor<4> {
    let [_, _, h, w] = real.dims();
    let cam = gradcam_map(classifier, real.detach(), class, layer).detach();
    interpolate(
        cam,
        InterpolateOptions::new(InterpolateMode::Bilinear).with_output_size([h, w]),
    )
}

/// Activation-map-weighted MSE (shared/METHODS.md, method 4): the squared error multiplied by
/// the real image's activation map `weights` (squared, as the paper multiplies both images of
/// the pair by it), normalised by the weights' mean so its scale stays that of a plain MSE.
pub fn activation_weighted(pred: Tensor<4>, target: Tensor<4>, weights: Tensor<4>) -> Tensor<1> {
    let w2 = weights.powi_scalar(2);
    let num = ((pred - target).powi_scalar(2) * w2.clone()).mean();
    num / (w2.mean() + 1e-6)
}

/// Everything the loss needs besides prediction and target.
pub(super) struct LossContext<'a> {
    pub(super) terms: &'a [LossTerm],
    pub(super) classifier: Option<&'a Classifier>,
    pub(super) vgg: Option<&'a crate::model::vgg::Vgg19>,
    pub(super) class: usize,
}

impl LossContext<'_> {
    /// Weighted sum and each term's value (for logging, when `values`).
    pub(super) fn loss(
        &self,
        logits: Tensor<4>,
        target: Tensor<4>,
        values: bool,
    ) -> (Tensor<1>, Vec<(String, f64)>) {
        let pred = sigmoid(logits.clone());
        let mut total: Option<Tensor<1>> = None;
        let mut parts = Vec::new();
        for t in self.terms {
            let v = match t.kind {
                LossKind::Mse => mse(pred.clone(), target.clone()),
                LossKind::L1 => l1(pred.clone(), target.clone()),
                LossKind::Bce => bce_with_logits(logits.clone(), target.clone()),
                LossKind::Ssim => ssim_loss(pred.clone(), target.clone()),
                LossKind::Contextual if self.vgg.is_some() => {
                    let vgg = self.vgg.unwrap_or_else(|| unreachable!());
                    let layer = t.layer.unwrap_or(15).min(15);
                    contextual(
                        vgg.features(pred.clone(), layer),
                        vgg.features(target.clone(), layer).detach(),
                        t.h.unwrap_or(0.5),
                    )
                }
                LossKind::Contextual | LossKind::GradcamGuided | LossKind::ActivationWeighted => {
                    let c = self.classifier.unwrap_or_else(|| unreachable!("checked"));
                    match t.kind {
                        LossKind::Contextual => contextual(
                            c.features_at(pred.clone(), t.layer()),
                            c.features_at(target.clone(), t.layer()).detach(),
                            t.h.unwrap_or(0.5),
                        ),
                        LossKind::GradcamGuided => {
                            gradcam_guided(c, pred.clone(), target.clone(), self.class, t.layer())
                        }
                        _ => {
                            let w = activation_weights(c, target.clone(), self.class, t.layer());
                            activation_weighted(pred.clone(), target.clone(), w)
                        }
                    }
                }
            };
            if values {
                parts.push((
                    t.kind.label().to_string(),
                    v.clone().into_scalar::<f32>() as f64,
                ));
            }
            let w = v * t.weight;
            total = Some(match total {
                Some(s) => s + w,
                None => w,
            });
        }
        (
            total.unwrap_or_else(|| unreachable!("validated: terms not empty")),
            parts,
        )
    }
}
