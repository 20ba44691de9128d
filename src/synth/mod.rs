//! Inference: a trained network turns a whole volume into its other modality, slice by slice in
//! batches on the shared device, with the normalisation training uses and its inverse.
//!
//! Normalisation (the contract between training and inference):
//! - CT: Hounsfield units windowed linearly from [`CT_RANGE`] to 0..1 (clamped).
//! - MR: 0..1 from 0 (air) to the 99th percentile inside the head (values above a tenth of the
//!   range), clamped; synthetic MR comes back as 0..1000.
//! - Networks take and give 0..1 per pixel; DRUNet takes the grey image repeated to 3 channels.

use crate::io::{LoadError, Progress};
use crate::model::Direction;
use crate::model::checkpoint::AnyModel;
use crate::volume::{Volume, VolumeMeta};
use burn::tensor::{Device, Tensor, TensorData};

/// HU mapped to 0..1 for CT input and output.
pub const CT_RANGE: (f32, f32) = (-1000.0, 2000.0);

/// How a volume's values map to the network's 0..1 and back.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Normalisation {
    /// Value mapped to 0.
    pub low: f32,
    /// Value mapped to 1.
    pub high: f32,
}

impl Normalisation {
    /// CT: the fixed HU window.
    pub fn ct() -> Self {
        Self {
            low: CT_RANGE.0,
            high: CT_RANGE.1,
        }
    }

    /// MR: 0 to the 99th percentile inside the head.
    pub fn mr(v: &Volume) -> Self {
        let (_, high) = v.robust_range(1.0, 99.0);
        Self { low: 0.0, high }
    }

    /// Value -> 0..1.
    pub fn forward(&self, v: f32) -> f32 {
        ((v - self.low) / (self.high - self.low).max(1e-6)).clamp(0.0, 1.0)
    }

    /// 0..1 -> value.
    pub fn inverse(&self, t: f32) -> f32 {
        self.low + t.clamp(0.0, 1.0) * (self.high - self.low)
    }
}

/// Input normalisation, output normalisation and output modality for `direction`.
fn normalisations(
    direction: Direction,
    input: &Volume,
) -> (Normalisation, Normalisation, &'static str) {
    match direction {
        Direction::MrToCt => (Normalisation::mr(input), Normalisation::ct(), "CT"),
        Direction::CtToMr => (
            Normalisation::ct(),
            Normalisation {
                low: 0.0,
                high: 1000.0,
            },
            "MR",
        ),
    }
}

/// Slices z0..z0+n of `input`, normalised, repeated to `channels` and zero-padded to (px, py):
/// the network's input batch [n, channels, py, px], flattened.
fn normalised_slices(
    input: &Volume,
    z0: usize,
    n: usize,
    channels: usize,
    (px, py): (usize, usize),
    norm: &Normalisation,
) -> Vec<f32> {
    let [nx, ny, _] = input.geometry.dims;
    let mut buf = vec![0f32; n * channels * px * py];
    for b in 0..n {
        let plane = &input.data[(z0 + b) * nx * ny..(z0 + b + 1) * nx * ny];
        for c in 0..channels {
            let base = (b * channels + c) * px * py;
            for y in 0..ny {
                for x in 0..nx {
                    buf[base + y * px + x] = norm.forward(plane[x + nx * y]);
                }
            }
        }
    }
    buf
}

/// Slice `z` of `input` as `model` takes it (normalised, channels repeated, zero-padded to the
/// network's size multiple): (buffer [1, channels, py, px], channels, (px, py)).
fn network_slice(
    model: &AnyModel,
    direction: Direction,
    input: &Volume,
    z: usize,
) -> (Vec<f32>, usize, (usize, usize)) {
    let (norm, _, _) = normalisations(direction, input);
    let (channels, multiple) = model.input_layout();
    let [nx, ny, nz] = input.geometry.dims;
    let pad = (
        nx.div_ceil(multiple) * multiple,
        ny.div_ceil(multiple) * multiple,
    );
    let z = z.min(nz.saturating_sub(1));
    (
        normalised_slices(input, z, 1, channels, pad, &norm),
        channels,
        pad,
    )
}

/// One layer's activation for one slice: each channel as a row-major image.
#[derive(Clone, Debug)]
pub struct FeatureMaps {
    /// Layer name.
    pub layer: String,
    /// Channel images (at most the requested number).
    pub channels: Vec<Vec<f32>>,
    /// Channels in the layer.
    pub total_channels: usize,
    /// Image width.
    pub width: usize,
    /// Image height.
    pub height: usize,
}

/// The activation of layer `layer` for slice `z` of `input` (normalised as for synthesis).
pub fn slice_features(
    model: &AnyModel,
    direction: Direction,
    input: &Volume,
    z: usize,
    layer: usize,
    max_channels: usize,
    device: &Device,
) -> Result<FeatureMaps, String> {
    let (buf, channels, (px, py)) = network_slice(model, direction, input, z);
    let x = Tensor::<4>::from_data(TensorData::new(buf, [1, channels, py, px]), device);
    let names = model.layer_names();
    let layer = layer.min(names.len().saturating_sub(1));
    let act = model
        .activations(x)
        .into_iter()
        .nth(layer)
        .ok_or("no such layer")?;
    let [_, c, h, w] = act.dims();
    let data = act.into_data();
    let vals = data.as_slice::<f32>().map_err(|e| format!("{e:?}"))?;
    let channels = (0..c.min(max_channels))
        .map(|k| vals[k * h * w..(k + 1) * h * w].to_vec())
        .collect();
    Ok(FeatureMaps {
        layer: names[layer].clone(),
        channels,
        total_channels: c,
        width: w,
        height: h,
    })
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
/// the mean output inside `target` (see [`crate::analysis::gradcam::gradcam_synthesis`]).
pub fn slice_gradcam(
    model: &AnyModel,
    direction: Direction,
    input: &Volume,
    z: usize,
    layer: usize,
    target: CamTarget,
    device: &Device,
) -> Result<CamSlice, String> {
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
                Direction::MrToCt => {
                    let y = match model {
                        AnyModel::Unet(m) => m.forward(x.clone()),
                        AnyModel::Drunet(m) => m.forward(x.clone()),
                        AnyModel::Classifier(_) => {
                            return Err("a classifier cannot synthesise".into());
                        }
                    };
                    let d = y.into_data();
                    let v = d.as_slice::<f32>().map_err(|e| format!("{e:?}"))?;
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
        return Err(match target {
            CamTarget::Bone => {
                "no bone (CT above 300 HU) on this slice: pick another slice or a disc".into()
            }
            CamTarget::Disc { .. } => "the disc lies outside the slice".into(),
        });
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
    let cam = crate::analysis::gradcam::gradcam_synthesis(model, x, mask, layer)?;
    let d = cam.into_data();
    let v = d.as_slice::<f32>().map_err(|e| format!("{e:?}"))?;
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

/// Grad-CAM of `classifier` (class `modality`: "CT" or "MR") at `layer` (see
/// `Classifier::LAYERS`) for two row-major `width` x `height` slices in image units (HU for
/// CT, scanner units for MR): a real one and a synthetic one on the same grid. Both maps are
/// scaled by the larger peak of the two, so their difference means something.
#[allow(clippy::too_many_arguments)]
pub fn cam_pair(
    classifier: &crate::model::Classifier,
    modality: &str,
    real: &[f32],
    synthetic: &[f32],
    (width, height): (usize, usize),
    layer: usize,
    device: &Device,
) -> Result<CamPair, String> {
    use burn::tensor::activation::softmax;
    let t0 = std::time::Instant::now();
    let n = width * height;
    if real.len() != n || synthetic.len() != n || n == 0 {
        return Err(format!(
            "the slices do not match a {width} x {height} grid ({} and {} values)",
            real.len(),
            synthetic.len()
        ));
    }
    let class = if modality == "CT" { "CT" } else { "MR" };
    let norm = |v: &[f32]| -> Normalisation {
        match class {
            "CT" => Normalisation::ct(),
            _ => {
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
    let class_index = crate::train::class_of_modality(class);
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
    let layer = layer.min(crate::model::Classifier::LAYERS.len() - 1);
    let cam = crate::analysis::gradcam::gradcam_unscaled(classifier, x.clone(), class_index, layer);
    // Evaluation mode for the probabilities too (batch norm from running statistics).
    let probs = softmax(burn::module::Module::valid(classifier).forward(x), 1);
    let pd = probs.into_data();
    let p = pd.as_slice::<f32>().map_err(|e| format!("{e:?}"))?;
    let classes = p.len() / 2;
    let d = cam.into_data();
    let v = d.as_slice::<f32>().map_err(|e| format!("{e:?}"))?;
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
        layer: crate::model::Classifier::LAYERS[layer].to_string(),
        seconds: t0.elapsed().as_secs_f64(),
    })
}

/// The first convolution's filters, averaged over input channels: (k x k images, k).
pub fn first_filters(model: &AnyModel) -> Result<(Vec<Vec<f32>>, usize), String> {
    let w = model.first_filters();
    let [o, i, k, _] = w.dims();
    let data = w.into_data();
    let v = data.as_slice::<f32>().map_err(|e| format!("{e:?}"))?;
    let filters = (0..o)
        .map(|f| {
            (0..k * k)
                .map(|p| (0..i).map(|c| v[((f * i + c) * k * k) + p]).sum::<f32>() / i as f32)
                .collect()
        })
        .collect();
    Ok((filters, k))
}

/// The synthetic counterpart of `input` through `model`, on the input's grid.
///
/// `direction` says what the input is. Slices go through in batches of `batch`; `progress`
/// counts slices and can cancel.
pub fn synthesize(
    model: &AnyModel,
    direction: Direction,
    input: &Volume,
    batch: usize,
    device: &Device,
    progress: &Progress,
) -> Result<Volume, LoadError> {
    synthesize_timed(model, direction, input, batch, device, progress).map(|(v, _)| v)
}

/// Wall time of each stage of [`synthesize`] (s).
#[derive(Clone, Copy, Debug, Default, serde::Serialize)]
pub struct StageTimes {
    /// Normalising, repeating and padding slices, and uploading them.
    pub prepare: f64,
    /// The network's forward pass, including reading its output back.
    pub network: f64,
    /// Undoing the normalisation and assembling the volume.
    pub assemble: f64,
}

/// [`synthesize`], also reporting the time spent in each stage.
pub fn synthesize_timed(
    model: &AnyModel,
    direction: Direction,
    input: &Volume,
    batch: usize,
    device: &Device,
    progress: &Progress,
) -> Result<(Volume, StageTimes), LoadError> {
    let mut times = StageTimes::default();
    let clock = std::time::Instant::now;
    let (norm_in, norm_out, out_modality) = normalisations(direction, input);
    if matches!(model, AnyModel::Classifier(_)) {
        return Err(LoadError::file(
            "(model)",
            "a classifier cannot synthesise images",
        ));
    }
    let (channels, multiple) = model.input_layout();
    let [nx, ny, nz] = input.geometry.dims;
    let (px, py) = (
        nx.div_ceil(multiple) * multiple,
        ny.div_ceil(multiple) * multiple,
    );
    let batch = batch.max(1);
    let mut out = vec![0f32; input.data.len()];
    progress.start("Synthesising", nz);
    for z0 in (0..nz).step_by(batch) {
        progress.check()?;
        let n = batch.min(nz - z0);
        let t0 = clock();
        let buf = normalised_slices(input, z0, n, channels, (px, py), &norm_in);
        let t = Tensor::<4>::from_data(TensorData::new(buf, [n, channels, py, px]), device);
        let t1 = clock();
        let y = match model {
            AnyModel::Unet(m) => m.forward(t),
            AnyModel::Drunet(m) => m.forward(t),
            AnyModel::Classifier(_) => unreachable!("refused above"),
        };
        let data = y.into_data();
        let vals = data.as_slice::<f32>().map_err(|e| {
            LoadError::file("(model)", format!("reading the network output: {e:?}"))
        })?;
        let t2 = clock();
        times.prepare += (t1 - t0).as_secs_f64();
        times.network += (t2 - t1).as_secs_f64();
        for b in 0..n {
            let base = b * px * py; // first output channel
            for yy in 0..ny {
                for x in 0..nx {
                    out[(z0 + b) * nx * ny + x + nx * yy] =
                        norm_out.inverse(vals[base + yy * px + x]);
                }
            }
            progress.step();
        }
        times.assemble += t2.elapsed().as_secs_f64();
    }
    let meta = VolumeMeta {
        modality: out_modality.into(),
        series_uid: format!("synthetic:{}", input.meta.series_uid),
        description: format!("Synthetic {out_modality} from {}", input.meta.description),
        source: input.meta.source.clone(),
        ..input.meta.clone()
    };
    let mut v = Volume::new(input.geometry.clone(), out, meta);
    if out_modality == "CT" {
        // Whole HU, as scanners store them.
        v.data.iter_mut().for_each(|x| *x = x.round());
    }
    Ok((v, times))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalisation_round_trips() {
        let n = Normalisation::ct();
        for hu in [-1000.0, -40.0, 0.0, 400.0, 2000.0] {
            assert!((n.inverse(n.forward(hu)) - hu).abs() < 1e-3);
        }
        assert_eq!(n.forward(-3000.0), 0.0);
        assert_eq!(n.forward(5000.0), 1.0);
    }
}
