//! Grad-CAM (Selvaraju et al. 2017) on the MR/CT classifier, computed on the shared device with
//! burn autodiff: the class score's gradient with respect to the last convolutional feature map,
//! averaged over space, weights the map's channels; the ReLU of the weighted sum, upsampled to
//! the input and scaled to 0..1 per image, is the heatmap.

use super::AnalysisError;
use crate::model::checkpoint::AnyModel;
use crate::model::normalise::{Normalisation, class_of_modality, network_slice, normalisations};
use crate::model::{Classifier, Direction, ModelError, tensor_values};
use crate::volume::{Modality, Volume};
use burn::module::Module;
use burn::tensor::activation::relu;
use burn::tensor::module::interpolate;
use burn::tensor::ops::{InterpolateMode, InterpolateOptions};
use burn::tensor::{Device, Tensor, TensorData};

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
    model: &AnyModel,
    x: Tensor<4>,
    region: Tensor<4>,
    layer: usize,
) -> Result<Tensor<2>, AnalysisError> {
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
        .ok_or_else(|| ModelError::Unsupported("a classifier is not a synthesis network".into()))?;
    let (features, leaf) =
        kept.ok_or_else(|| ModelError::Unsupported("the model has no feature layers".into()))?;
    let inside = region.clone().sum().into_scalar::<f32>().max(1.0);
    let score = (out.slice([0..1, 0..1, 0..h, 0..w]) * region.autodiff()).sum() / inside;
    let grads = score.backward();
    let g = leaf
        .grad(&grads)
        .ok_or_else(|| AnalysisError::Input("no gradient reached the chosen layer".into()))?;
    let alpha = g.mean_dim(3).mean_dim(2);
    let cam = interpolate(
        cam_from(features, alpha),
        InterpolateOptions::new(InterpolateMode::Bilinear).with_output_size([h, w]),
    );
    let peak = cam.clone().max().clamp_min(1e-12);
    Ok((cam / peak.reshape([1, 1, 1, 1])).reshape([h, w]))
}

/// What the synthesis network's Grad-CAM explains: the mean output inside this region.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum CamTarget {
    /// Bone: pixels where the CT (the synthetic CT for MR -> CT, the input CT for CT -> MR) is
    /// above 300 HU.
    Bone,
    /// A disc of `radius` pixels around pixel (x, y) of the slice.
    Disc {
        /// Centre column.
        x: usize,
        /// Centre row.
        y: usize,
        /// Radius (pixels).
        radius: f32,
    },
}

/// A Grad-CAM heatmap of one input slice.
#[derive(Clone, Debug)]
pub struct CamSlice {
    /// Width.
    pub width: usize,
    /// Height.
    pub height: usize,
    /// The input slice, normalised 0..1.
    pub input: Vec<f32>,
    /// The heatmap, 0..1.
    pub cam: Vec<f32>,
    /// The target region.
    pub region: Vec<bool>,
    /// Layer name.
    pub layer: String,
    /// Wall time (s).
    pub seconds: f64,
}

/// Grad-CAM of the synthesis network for slice `z` of `input` at activation `layer`, explaining
/// the mean output inside `target` (see [`gradcam_synthesis`]).
pub fn slice_gradcam(
    model: &AnyModel,
    direction: Direction,
    input: &Volume,
    z: usize,
    layer: usize,
    target: CamTarget,
    device: &Device,
) -> Result<CamSlice, AnalysisError> {
    let t0 = std::time::Instant::now();
    let (_, norm_out, _) = normalisations(direction, input);
    let [nx, ny, nz] = input.geometry.dims;
    let z = z.min(nz.saturating_sub(1));
    let (buf, channels, (px, py)) = network_slice(model, direction, input, z);
    let slice: Vec<f32> = (0..ny)
        .flat_map(|y| (0..nx).map(move |x| (x, y)))
        .map(|(x, y)| buf[x + px * y])
        .collect();
    let x = Tensor::<4>::from_data(TensorData::new(buf, [1, channels, py, px]), device);
    let mut region = vec![false; px * py];
    match target {
        CamTarget::Bone => {
            let ct: Vec<f32> = match direction {
                Direction::MrToCt | Direction::CtDenoise => {
                    let y = match model {
                        AnyModel::Unet(m) => m.forward(x.clone()),
                        AnyModel::Drunet(m) => m.forward(x.clone()),
                        AnyModel::ResnetGenerator(m) => m.forward_synth(x.clone()),
                        AnyModel::Classifier(_) => {
                            return Err(ModelError::Unsupported(
                                "a classifier cannot synthesise".into(),
                            )
                            .into());
                        }
                    };
                    let v = tensor_values(y)?;
                    v[..px * py].iter().map(|t| norm_out.inverse(*t)).collect()
                }
                Direction::CtToMr => {
                    let mut full = vec![-1000.0; px * py];
                    for y in 0..ny {
                        for xx in 0..nx {
                            full[xx + px * y] = input.data[z * nx * ny + xx + nx * y];
                        }
                    }
                    full
                }
            };
            for y in 0..ny {
                for xx in 0..nx {
                    region[xx + px * y] = ct[xx + px * y] > 300.0;
                }
            }
        }
        CamTarget::Disc {
            x: cx,
            y: cy,
            radius,
        } => {
            for y in 0..ny {
                for xx in 0..nx {
                    let (dx, dy) = (xx as f32 - cx as f32, y as f32 - cy as f32);
                    region[xx + px * y] = dx * dx + dy * dy <= radius * radius;
                }
            }
        }
    }
    if !region.iter().any(|r| *r) {
        return Err(AnalysisError::Input(match target {
            CamTarget::Bone => {
                "no bone (CT above 300 HU) on this slice: pick another slice or a disc".into()
            }
            CamTarget::Disc { .. } => "the disc lies outside the slice".into(),
        }));
    }
    let mask = Tensor::<4>::from_data(
        TensorData::new(
            region
                .iter()
                .map(|r| f32::from(u8::from(*r)))
                .collect::<Vec<f32>>(),
            [1, 1, py, px],
        ),
        device,
    );
    let names = model.layer_names();
    let cam = gradcam_synthesis(model, x, mask, layer)?;
    let v = tensor_values(cam)?;
    let crop = |f: &dyn Fn(usize) -> f32| -> Vec<f32> {
        (0..ny)
            .flat_map(|y| (0..nx).map(move |x| x + px * y))
            .map(f)
            .collect()
    };
    // Scale to peak 1 inside the slice (the padding may have held the padded map's peak).
    let cam = crop(&|i| v[i]);
    let peak = cam.iter().cloned().fold(0.0f32, f32::max).max(1e-12);
    let cam = cam.into_iter().map(|c| c / peak).collect();
    let region = crop(&|i| f32::from(u8::from(region[i])))
        .into_iter()
        .map(|r| r > 0.5)
        .collect();
    Ok(CamSlice {
        width: nx,
        height: ny,
        input: slice,
        cam,
        region,
        layer: names
            .get(layer.min(names.len().saturating_sub(2)))
            .cloned()
            .unwrap_or_default(),
        seconds: t0.elapsed().as_secs_f64(),
    })
}

/// Method 2's view (Grad-CAM-guided U-Net): the classifier's Grad-CAM for the synthetic
/// modality's class on a real slice and on the synthetic slice at the same place, on one scale,
/// and the classifier's belief that each is that modality.
#[derive(Clone, Debug)]
pub struct CamPair {
    /// Width.
    pub width: usize,
    /// Height.
    pub height: usize,
    /// The real slice, normalised 0..1 as the classifier sees it.
    pub real: Vec<f32>,
    /// The synthetic slice, normalised 0..1.
    pub synthetic: Vec<f32>,
    /// Grad-CAM of the real slice, 0..1 on the scale shared by both maps.
    pub real_cam: Vec<f32>,
    /// Grad-CAM of the synthetic slice, on the same scale.
    pub synthetic_cam: Vec<f32>,
    /// The class explained ("CT" or "MR").
    pub class: &'static str,
    /// The classifier's probability of `class` for the real slice.
    pub p_real: f32,
    /// The same for the synthetic slice.
    pub p_synthetic: f32,
    /// Layer name.
    pub layer: String,
    /// Wall time (s).
    pub seconds: f64,
}

impl CamPair {
    /// Synthetic map minus real map, -1..1: positive where the synthetic image looks more like
    /// the class to the classifier than the real one does.
    pub fn difference(&self) -> Vec<f32> {
        self.synthetic_cam
            .iter()
            .zip(&self.real_cam)
            .map(|(s, r)| s - r)
            .collect()
    }

    /// Mean absolute difference of the two maps (0 = the classifier looks at the same places).
    pub fn mean_abs_difference(&self) -> f32 {
        let d = self.difference();
        d.iter().map(|v| v.abs()).sum::<f32>() / d.len().max(1) as f32
    }
}

/// Grad-CAM of `classifier` (class `modality`: CT, or MR for anything else) at `layer` (see
/// `Classifier::LAYERS`) for two row-major `width` x `height` slices in image units (HU for
/// CT, scanner units for MR): a real one and a synthetic one on the same grid. Both maps are
/// scaled by the larger peak of the two, so their difference means something.
#[allow(clippy::too_many_arguments)]
pub fn cam_pair(
    classifier: &Classifier,
    modality: &Modality,
    real: &[f32],
    synthetic: &[f32],
    (width, height): (usize, usize),
    layer: usize,
    device: &Device,
) -> Result<CamPair, AnalysisError> {
    use burn::tensor::activation::softmax;
    let t0 = std::time::Instant::now();
    let n = width * height;
    if real.len() != n || synthetic.len() != n || n == 0 {
        return Err(AnalysisError::Input(format!(
            "the slices do not match a {width} x {height} grid ({} and {} values)",
            real.len(),
            synthetic.len()
        )));
    }
    let is_ct = *modality == Modality::Ct;
    let class = if is_ct { "CT" } else { "MR" };
    let norm = |v: &[f32]| -> Normalisation {
        match is_ct {
            true => Normalisation::ct(),
            false => {
                // MR: as for inference, 0 to the 99th percentile of the slice's tissue.
                let mut sorted: Vec<f32> = v.iter().copied().filter(|x| x.is_finite()).collect();
                sorted.sort_by(f32::total_cmp);
                let high = sorted
                    .get(
                        ((sorted.len() as f64 * 0.99) as usize).min(sorted.len().saturating_sub(1)),
                    )
                    .copied()
                    .unwrap_or(1.0);
                Normalisation {
                    low: 0.0,
                    high: high.max(1e-3),
                }
            }
        }
    };
    let class_index = class_of_modality(modality);
    let multiple = 16;
    let (px, py) = (
        width.div_ceil(multiple) * multiple,
        height.div_ceil(multiple) * multiple,
    );
    let mut buf = vec![0f32; 2 * px * py];
    let mut shown = [vec![0f32; n], vec![0f32; n]];
    for (b, img) in [real, synthetic].into_iter().enumerate() {
        let nm = norm(img);
        for y in 0..height {
            for x in 0..width {
                let v = nm.forward(img[x + width * y]);
                buf[b * px * py + x + px * y] = v;
                shown[b][x + width * y] = v;
            }
        }
    }
    let x = Tensor::<4>::from_data(TensorData::new(buf, [2, 1, py, px]), device);
    let layer = layer.min(Classifier::LAYERS.len() - 1);
    let cam = gradcam_unscaled(classifier, x.clone(), class_index, layer);
    // Evaluation mode for the probabilities too (batch norm from running statistics).
    let probs = softmax(burn::module::Module::valid(classifier).forward(x), 1);
    let p = tensor_values(probs)?;
    let classes = p.len() / 2;
    let v = tensor_values(cam)?;
    let crop = |b: usize| -> Vec<f32> {
        (0..height)
            .flat_map(|y| (0..width).map(move |x| (x, y)))
            .map(|(x, y)| v[b * px * py + x + px * y])
            .collect()
    };
    let (mut rc, mut sc) = (crop(0), crop(1));
    let peak = rc
        .iter()
        .chain(&sc)
        .cloned()
        .fold(0.0f32, f32::max)
        .max(1e-12);
    rc.iter_mut().chain(sc.iter_mut()).for_each(|c| *c /= peak);
    let [real_shown, synth_shown] = shown;
    Ok(CamPair {
        width,
        height,
        real: real_shown,
        synthetic: synth_shown,
        real_cam: rc,
        synthetic_cam: sc,
        class,
        p_real: p[class_index.min(classes - 1)],
        p_synthetic: p[classes + class_index.min(classes - 1)],
        layer: Classifier::LAYERS[layer].to_string(),
        seconds: t0.elapsed().as_secs_f64(),
    })
}
