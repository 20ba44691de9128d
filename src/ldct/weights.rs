//! Where the fine-tuning's weights fall: the activation-weighted loss of step 2 applied to
//! normal-dose patches of phantom patients whose lesions are known, measured per lesion size
//! class against the body and the air. It answers "does the map light up small lesions, and
//! how much of the loss do they get?" with numbers (`synthscope ldct run` reports it).

use super::classifier::{LESION_CLASS, normalised_slice};
use crate::model::{Classifier, tensor_values};
use crate::synth::ldct::SizeClass;
use crate::synth::ldct::phantom::ImagedPatient;
use crate::train::TrainError;
use crate::train::data::crop;
use crate::train::losses::activation_weights;
use burn::tensor::{Device, Tensor, TensorData};
use serde::Serialize;

/// How the step-2 weights fall on the patches of some patients.
#[derive(Clone, Debug, Serialize)]
pub struct WeightCheck {
    /// Classifier layer of the Grad-CAM.
    pub layer: usize,
    /// Patch side (the windows tile each slice, as the training crops it).
    pub patch: usize,
    /// Patches measured.
    pub patches: usize,
    /// Mean weight inside lesions by size class (small, medium, large), in units of the mean
    /// weight over every pixel (1 = no emphasis). The weight is what the loss multiplies the
    /// squared error by: the map squared.
    pub lesion_weight: [f64; 3],
    /// Mean weight in the body outside lesions (same units).
    pub body_weight: f64,
    /// Mean weight outside the body (same units).
    pub air_weight: f64,
    /// Share of the total weight on lesion pixels, by size class.
    pub lesion_share: [f64; 3],
    /// Share of the pixels that are lesion pixels, by size class (what the share would be
    /// without the map).
    pub lesion_pixel_share: [f64; 3],
    /// Share of pixels whose weight is below 1% of the mean (the loss ignores them).
    pub near_zero: f64,
    /// Mean weight inside lesions by size class, counting only patches that hold a lesion of
    /// another, larger class too (the per-patch peak then sits on that one).
    pub small_with_larger: Option<f64>,
}

fn class_index(c: SizeClass) -> usize {
    SizeClass::ALL.iter().position(|k| *k == c).unwrap_or(0)
}

/// The step-2 weights (the activation map of [`activation_weights`], squared, as the loss
/// applies it) on `patch`-pixel windows tiling every slice of `patients`' normal dose.
pub fn weight_check(
    classifier: &Classifier,
    patients: &[ImagedPatient],
    patch: usize,
    layer: usize,
    device: &Device,
) -> Result<WeightCheck, TrainError> {
    if patch == 0 {
        return Err(TrainError::Config("patch must be at least 1 pixel".into()));
    }
    // Per pixel: (weight, label) with label 0..3 lesion class, 3 body, 4 air; and whether the
    // patch holds a lesion larger than small.
    let mut pixels: Vec<(f32, u8, bool)> = Vec::new();
    let mut patches = 0;
    for p in patients {
        let [nx, ny, nz] = p.normal.geometry.dims;
        for z in 0..nz {
            let img = normalised_slice(&p.normal, z);
            let mut label = vec![4u8; nx * ny];
            for y in 0..ny {
                for x in 0..nx {
                    if p.patient.truth.get(x, y, z) > -500.0 {
                        label[x + nx * y] = 3;
                    }
                }
            }
            for l in &p.patient.lesions {
                let r = l.radius_px_on(z, &p.patient.config);
                if r <= 0.0 {
                    continue;
                }
                for y in 0..ny {
                    for x in 0..nx {
                        if (x as f64 - l.centre[0]).hypot(y as f64 - l.centre[1]) < r {
                            label[x + nx * y] = class_index(l.class) as u8;
                        }
                    }
                }
            }
            let mut windows = Vec::new();
            let mut labels = Vec::new();
            for oy in (0..ny).step_by(patch) {
                for ox in (0..nx).step_by(patch) {
                    let o = (ox as i64, oy as i64);
                    let w = crop(&img, (nx, ny), o, patch, 0, false);
                    let lab: Vec<u8> = (0..patch * patch)
                        .map(|i| {
                            let (x, y) = (ox + i % patch, oy + i / patch);
                            if x < nx && y < ny {
                                label[x + nx * y]
                            } else {
                                4
                            }
                        })
                        .collect();
                    // Only windows with body, as the training samples them.
                    if lab.iter().filter(|l| **l < 4).count() * 10 >= patch * patch {
                        windows.push(w);
                        labels.push(lab);
                    }
                }
            }
            if windows.is_empty() {
                continue;
            }
            let n = windows.len();
            patches += n;
            let x = Tensor::<4>::from_data(
                TensorData::new(windows.concat(), [n, 1, patch, patch]),
                device,
            );
            let w = tensor_values(activation_weights(classifier, x, LESION_CLASS, layer))
                .map_err(|e| TrainError::Config(e.to_string()))?;
            for (k, lab) in labels.iter().enumerate() {
                let larger = lab.iter().any(|l| *l == 1 || *l == 2);
                for (i, l) in lab.iter().enumerate() {
                    let v = w[k * patch * patch + i];
                    pixels.push((v * v, *l, larger));
                }
            }
        }
    }
    if pixels.is_empty() {
        return Err(TrainError::Config(
            "no window of the patients holds body".into(),
        ));
    }
    let total: f64 = pixels.iter().map(|p| p.0 as f64).sum();
    let mean_all = (total / pixels.len() as f64).max(1e-12);
    let mut sum = [0.0f64; 5];
    let mut count = [0usize; 5];
    let (mut sl, mut nsl, mut near_zero) = (0.0f64, 0usize, 0usize);
    for (v, l, larger) in &pixels {
        sum[*l as usize] += *v as f64;
        count[*l as usize] += 1;
        if (*v as f64) < 0.01 * mean_all {
            near_zero += 1;
        }
        if *l == 0 && *larger {
            sl += *v as f64;
            nsl += 1;
        }
    }
    let rel = |k: usize| sum[k] / count[k].max(1) as f64 / mean_all;
    let n = pixels.len() as f64;
    Ok(WeightCheck {
        layer,
        patch,
        patches,
        lesion_weight: [rel(0), rel(1), rel(2)],
        body_weight: rel(3),
        air_weight: rel(4),
        lesion_share: [0, 1, 2].map(|k| sum[k] / total.max(1e-12)),
        lesion_pixel_share: [0, 1, 2].map(|k| count[k] as f64 / n),
        near_zero: near_zero as f64 / n,
        small_with_larger: (nsl > 0).then(|| sl / nsl as f64 / mean_all),
    })
}
