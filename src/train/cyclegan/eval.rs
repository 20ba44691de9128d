//! Scoring on held-out registered patients: a slice-to-slice translator (a CycleGAN generator,
//! a paired checkpoint, histogram matching) against the real CT, as MAE (HU, inside the head),
//! PSNR and SSIM (0..1 images, data range 1, whole slices, as the paired runs' validation),
//! UQI and VIF (0..1 images mapped to 0..255 for VIF's visual noise).

use crate::analysis::{psnr, ssim, tenengrad, uqi, vif_scaled};
use crate::model::ModelError;
use crate::model::checkpoint::AnyModel;
use crate::model::cyclegan::ResnetGenerator;
use crate::train::data::Case;
use burn::tensor::{Device, Tensor, TensorData};
use serde::{Deserialize, Serialize};

/// A slice translator: (slice in 0..1, nx, ny) -> the other modality's slice in 0..1.
pub type Predict<'a> = dyn FnMut(&[f32], usize, usize) -> Result<Vec<f32>, ModelError> + 'a;

/// The five figures of one method on the held-out slices.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Scores {
    /// What was scored.
    pub method: String,
    /// Mean absolute error inside the head (HU; 0..1 units for a CT -> MR score).
    pub mae_hu: f64,
    /// PSNR (dB) of 0..1 slices.
    pub psnr: f64,
    /// SSIM of 0..1 slices.
    pub ssim: f64,
    /// UQI of 0..1 slices.
    pub uqi: f64,
    /// VIF (pixel domain) of 0..1 slices mapped to 0..255.
    pub vif: f64,
    /// Slices scored.
    pub slices: usize,
    /// Mean absolute error inside the head in 0..1 units (the epoch lines' `val_loss`).
    #[serde(default)]
    pub l1: f64,
    /// Mean Tenengrad of the synthetic slices (0..1 units, threshold 0, as paired runs).
    #[serde(default)]
    pub tenengrad_pred: f64,
    /// FID-style distance: the Fréchet distance between the embedded MR/CT classifier's pooled
    /// last-stage features of the synthetic and of the real held-out slices (not comparable
    /// with published FIDs, which use Inception features). None where not measured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub feature_fd: Option<f64>,
    /// Mean Tenengrad of the real slices.
    #[serde(default)]
    pub tenengrad_ref: f64,
}

/// Score `predict` (an MR slice in 0..1, nx x ny -> a CT slice in 0..1) on every head slice
/// of `cases`; `reverse`: CT slices in, MR out, MAE in 0..1 MR units (MR has no absolute unit).
pub fn score(
    method: &str,
    cases: &[Case],
    reverse: bool,
    predict: &mut Predict<'_>,
) -> Result<Scores, ModelError> {
    score_with(method, cases, reverse, predict, None)
}

/// A slice (0..1, nx, ny) -> its feature vector, for [`Scores::feature_fd`].
pub type Embed<'a> = dyn FnMut(&[f32], usize, usize) -> Result<Vec<f64>, ModelError> + 'a;

/// The embedded MR/CT classifier's pooled features of a slice, as [`Embed`].
pub fn classifier_embed(
    c: &crate::model::Classifier,
    device: &Device,
) -> impl FnMut(&[f32], usize, usize) -> Result<Vec<f64>, ModelError> {
    move |x, nx, ny| {
        let t = Tensor::<4>::from_data(TensorData::new(x.to_vec(), [1, 1, ny, nx]), device);
        let f = crate::model::tensor_values(c.embedding(t))?;
        Ok(f.into_iter().map(f64::from).collect())
    }
}

/// [`score`], and with `embed` also the FID-style feature distance of the synthetic slices to
/// the real ones.
pub fn score_with(
    method: &str,
    cases: &[Case],
    reverse: bool,
    predict: &mut Predict<'_>,
    mut embed: Option<&mut Embed<'_>>,
) -> Result<Scores, ModelError> {
    let (mut fake_features, mut real_features) = (Vec::new(), Vec::new());
    let (mut abs, mut abs01, mut inside) = (0.0f64, 0.0f64, 0usize);
    let (mut ten_p, mut ten_r) = (0.0, 0.0);
    let (mut p, mut s, mut u, mut v, mut n) = (0.0, 0.0, 0.0, 0.0, 0usize);
    for c in cases {
        for &z in &c.slices {
            let (mr, ct, mask) = c.slice(z);
            let (input, ct) = if reverse { (ct, mr) } else { (mr, ct) };
            let fake = predict(&input, c.nx, c.ny)?;
            if let Some(e) = embed.as_mut() {
                fake_features.push(e(&fake, c.nx, c.ny)?);
                real_features.push(e(&ct, c.nx, c.ny)?);
            }
            for ((a, b), m) in fake.iter().zip(&ct).zip(&mask) {
                if *m {
                    abs01 += (a - b).abs() as f64;
                    abs += if reverse {
                        (a - b).abs() as f64
                    } else {
                        (c.target_norm.inverse(*a) - c.target_norm.inverse(*b)).abs() as f64
                    };
                    inside += 1;
                }
            }
            ten_p += tenengrad(&fake, c.nx, c.ny, 0.0);
            ten_r += tenengrad(&ct, c.nx, c.ny, 0.0);
            p += psnr(&fake, &ct, 1.0);
            s += ssim(&fake, &ct, [c.nx, c.ny, 1], 1.0, None);
            u += uqi(&fake, &ct, c.nx, c.ny);
            v += vif_scaled(&fake, &ct, c.nx, c.ny, (0.0, 1.0));
            n += 1;
        }
    }
    let k = n.max(1) as f64;
    let feature_fd = if embed.is_some() {
        crate::analysis::frechet::frechet_distance(&fake_features, &real_features).ok()
    } else {
        None
    };
    Ok(Scores {
        feature_fd,
        method: method.into(),
        mae_hu: abs / inside.max(1) as f64,
        psnr: p / k,
        ssim: s / k,
        uqi: u / k,
        vif: v / k,
        slices: n,
        l1: abs01 / inside.max(1) as f64,
        tenengrad_pred: ten_p / k,
        tenengrad_ref: ten_r / k,
    })
}

/// Pad a slice with zeros to (px, py) as [1, 1, py, px].
fn padded(x: &[f32], nx: usize, ny: usize, px: usize, py: usize, device: &Device) -> Tensor<4> {
    let mut buf = vec![0f32; px * py];
    for y in 0..ny {
        buf[y * px..y * px + nx].copy_from_slice(&x[y * nx..(y + 1) * nx]);
    }
    Tensor::from_data(TensorData::new(buf, [1, 1, py, px]), device)
}

fn cropped(v: Vec<f32>, nx: usize, ny: usize, px: usize) -> Vec<f32> {
    (0..ny)
        .flat_map(|y| v[y * px..y * px + nx].to_vec())
        .collect()
}

/// A generator as a slice translator (grey 0..1 in and out).
pub fn generator_predict(
    g: &ResnetGenerator,
    device: &Device,
) -> impl FnMut(&[f32], usize, usize) -> Result<Vec<f32>, ModelError> {
    move |x, nx, ny| {
        let (px, py) = (nx.div_ceil(4) * 4, ny.div_ceil(4) * 4);
        let y = g.forward_synth(padded(x, nx, ny, px, py, device));
        Ok(cropped(crate::model::tensor_values(y)?, nx, ny, px))
    }
}

/// Any synthesis checkpoint (MR -> CT) as a slice translator, through the synthesis path's
/// network call ([`crate::synth::forward_normalised`]).
pub fn model_predict(
    m: &AnyModel,
    device: &Device,
) -> impl FnMut(&[f32], usize, usize) -> Result<Vec<f32>, ModelError> {
    let folded = m.folded();
    move |x, nx, ny| {
        let (channels, multiple) = folded.input_layout();
        let (px, py) = (
            nx.div_ceil(multiple) * multiple,
            ny.div_ceil(multiple) * multiple,
        );
        let t = padded(x, nx, ny, px, py, device);
        let t = if channels == 1 {
            t
        } else {
            Tensor::cat(vec![t; channels], 1)
        };
        let y = crate::synth::forward_normalised(&folded, t)?;
        let y = y.narrow(1, 0, 1);
        Ok(cropped(crate::model::tensor_values(y)?, nx, ny, px))
    }
}

/// Histogram matching (the intensity-mapping baseline): each MR value goes to the CT value at
/// the same quantile, the two distributions taken from the (unpaired) training domains.
#[derive(Clone, Debug)]
pub struct HistogramMatch {
    mr: Vec<f32>,
    ct: Vec<f32>,
}

impl HistogramMatch {
    /// Quantile tables (`levels` of them) of the MR and CT training values.
    pub fn fit(mr: &[&[f32]], ct: &[&[f32]], levels: usize) -> Self {
        let q = |parts: &[&[f32]]| -> Vec<f32> {
            let mut all: Vec<f32> = parts.iter().flat_map(|p| p.iter().copied()).collect();
            all.sort_by(f32::total_cmp);
            (0..levels)
                .map(|i| {
                    let k = i as f64 / (levels - 1).max(1) as f64 * (all.len().max(1) - 1) as f64;
                    all.get(k.round() as usize).copied().unwrap_or(0.0)
                })
                .collect()
        };
        Self {
            mr: q(mr),
            ct: q(ct),
        }
    }

    /// The CT value for MR value `v`: its quantile in the MR table (interpolated over ties and
    /// between entries), read off the CT table.
    pub fn map(&self, v: f32) -> f32 {
        let n = self.mr.len();
        let lo = self.mr.partition_point(|x| *x < v);
        let hi = self.mr.partition_point(|x| *x <= v);
        let q = if lo < hi {
            (lo + hi - 1) as f64 / 2.0
        } else if lo == 0 {
            0.0
        } else if lo >= n {
            (n - 1) as f64
        } else {
            let (a, b) = (self.mr[lo - 1], self.mr[lo]);
            (lo - 1) as f64 + ((v - a) / (b - a).max(1e-12)) as f64
        };
        let i = (q.floor() as usize).min(n - 1);
        let f = (q - i as f64) as f32;
        let j = (i + 1).min(n - 1);
        self.ct[i] * (1.0 - f) + self.ct[j] * f
    }
}
