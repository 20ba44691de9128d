//! Evaluation of US -> MR networks against the phantom's own MR, the attention heatmap of one
//! location, and whole-patient synthesis.

use super::Patient;
use crate::analysis::{psnr, ssim};
use crate::model::usmr::{UsMrConfig, UsMrNet};
use crate::train::TrainError;
use crate::volume::{Modality, Volume, VolumeMeta};
use burn::module::Module;
use burn::tensor::activation::sigmoid;
use burn::tensor::{Tensor, TensorData};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// Metrics on the held-out patients (means over their head slices; images 0..1).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct EvalReport {
    /// Step evaluated.
    pub step: usize,
    /// Slices evaluated.
    pub slices: usize,
    /// PSNR (dB) of the synthetic MR in the probe's field of view.
    pub psnr_fov: f64,
    /// SSIM of the synthetic MR in the field of view.
    pub ssim_fov: f64,
    /// PSNR (dB) over the whole slice.
    pub psnr: f64,
    /// SSIM over the whole slice.
    pub ssim: f64,
    /// Reference: PSNR of the ultrasound itself against the MR, in the field of view.
    pub us_psnr_fov: f64,
    /// Reference: SSIM of the ultrasound itself against the MR, in the field of view.
    pub us_ssim_fov: f64,
    /// The attention block's mixing weight (None without the block).
    pub attention_gamma: Option<f64>,
}

fn masked(v: &[f32], m: &[bool]) -> Vec<f32> {
    v.iter()
        .zip(m)
        .filter(|(_, m)| **m)
        .map(|(v, _)| *v)
        .collect()
}

/// The synthetic MR (0..1) of slice `z` of `p`, and its attention [hw, hw] where it has one.
pub fn synthesize_slice(
    net: &UsMrNet,
    cfg: &UsMrConfig,
    p: &Patient,
    z: usize,
) -> Result<(Vec<f32>, Option<Vec<f32>>), TrainError> {
    let device = net
        .devices()
        .into_iter()
        .next()
        .ok_or_else(|| TrainError::Config("the network has no parameters".into()))?;
    let n = p.n;
    let x = Tensor::<4>::from_data(
        TensorData::new(p.us_stack(z, cfg.neighbours), [1, cfg.us_channels(), n, n]),
        &device,
    );
    let s = net.synthesize(x);
    let out = crate::model::tensor_values(sigmoid(s.logits))?;
    let att = match s.attention {
        Some(a) => Some(crate::model::tensor_values(a)?),
        None => None,
    };
    Ok((out, att))
}

/// Evaluate on every head slice of `held` at step `step`.
pub fn evaluate(
    net: &UsMrNet,
    cfg: &UsMrConfig,
    held: &[Patient],
    step: usize,
) -> Result<EvalReport, TrainError> {
    let mut r = EvalReport {
        step,
        slices: 0,
        psnr_fov: 0.0,
        ssim_fov: 0.0,
        psnr: 0.0,
        ssim: 0.0,
        us_psnr_fov: 0.0,
        us_ssim_fov: 0.0,
        attention_gamma: None,
    };
    for p in held {
        let n = p.n;
        for &z in &p.slices {
            let (syn, _) = synthesize_slice(net, cfg, p, z)?;
            let (mr, us) = (p.mr_slice(z), p.us_slice(z));
            r.psnr += psnr(&syn, mr, 1.0);
            r.ssim += ssim(&syn, mr, [n, n, 1], 1.0, None);
            r.psnr_fov += psnr(&masked(&syn, &p.fov), &masked(mr, &p.fov), 1.0);
            r.ssim_fov += ssim(&syn, mr, [n, n, 1], 1.0, Some(&p.fov));
            r.us_psnr_fov += psnr(&masked(us, &p.fov), &masked(mr, &p.fov), 1.0);
            r.us_ssim_fov += ssim(us, mr, [n, n, 1], 1.0, Some(&p.fov));
            r.slices += 1;
        }
    }
    let k = r.slices.max(1) as f64;
    for v in [
        &mut r.psnr,
        &mut r.ssim,
        &mut r.psnr_fov,
        &mut r.ssim_fov,
        &mut r.us_psnr_fov,
        &mut r.us_ssim_fov,
    ] {
        *v /= k;
    }
    if let Some(g) = net.dec_mr.attention_gamma() {
        r.attention_gamma = crate::model::tensor_values(g)?.first().map(|v| *v as f64);
    }
    Ok(r)
}

/// The attention over the ultrasound of image pixel (`x`, `y`), as an `n` x `n` heatmap that
/// sums to 1: row `att` of the [hw, hw] attention matrix of an `n` x `n` image whose latent
/// is `n / f` on a side, spread over the f x f pixels of each latent cell.
pub fn attention_heatmap(att: &[f32], n: usize, x: usize, y: usize) -> Option<Vec<f32>> {
    let hw = (att.len() as f64).sqrt().sqrt().round() as usize;
    if hw == 0 || hw * hw * hw * hw != att.len() || !n.is_multiple_of(hw) || x >= n || y >= n {
        return None;
    }
    let f = n / hw;
    let q = (x / f) + hw * (y / f);
    let row = &att[q * hw * hw..(q + 1) * hw * hw];
    let mut out = vec![0f32; n * n];
    for yy in 0..n {
        for xx in 0..n {
            out[xx + n * yy] = row[(xx / f) + hw * (yy / f)] / (f * f) as f32;
        }
    }
    Some(out)
}

/// Every slice of `p` synthesised: a [n, n, nz] volume 0..1 (zero off the head slices' FOV is
/// not applied: the network's output everywhere).
pub fn synthesize_patient(
    net: &UsMrNet,
    cfg: &UsMrConfig,
    p: &Patient,
) -> Result<Vec<f32>, TrainError> {
    let mut out = Vec::with_capacity(p.n * p.n * p.nz);
    for z in 0..p.nz {
        out.extend(synthesize_slice(net, cfg, p, z)?.0);
    }
    Ok(out)
}

/// Write `p`'s ultrasound, MR and synthetic MR as `us.nii.gz`, `mr.nii.gz`, `synthetic_mr.nii.gz`.
pub(super) fn write_volumes(
    net: &UsMrNet,
    cfg: &UsMrConfig,
    p: &Patient,
    dir: &Path,
) -> Result<(), TrainError> {
    let syn = synthesize_patient(net, cfg, p)?;
    let vol = |data: Vec<f32>, modality: &str, description: &str| {
        Volume::new(
            p.geometry.clone(),
            data,
            VolumeMeta {
                modality: Modality::from_code(modality),
                description: description.into(),
                series_uid: format!("usmr:{description}"),
                source: "US -> MR training run".into(),
                ..Default::default()
            },
        )
    };
    for (v, name) in [
        (vol(p.us.clone(), "US", "Held-out ultrasound"), "us.nii.gz"),
        (vol(p.mr.clone(), "MR", "Held-out MR (0..1)"), "mr.nii.gz"),
        (
            vol(syn, "MR", "Synthetic MR from ultrasound"),
            "synthetic_mr.nii.gz",
        ),
    ] {
        crate::io::nifti::write_nifti(&v, &dir.join(name))?;
    }
    Ok(())
}

/// One slice of a loaded run as the app shows it: ultrasound, synthetic MR and real MR (0..1,
/// `n` x `n`), and the attention heatmap of the query pixel over the ultrasound (sums to 1).
#[derive(Clone, Debug)]
pub struct SliceView {
    /// Image side.
    pub n: usize,
    /// Slice.
    pub z: usize,
    /// Ultrasound.
    pub us: Vec<f32>,
    /// Synthetic MR.
    pub synthetic: Vec<f32>,
    /// Real MR.
    pub mr: Vec<f32>,
    /// Attention of the query pixel (None without the block or without a query).
    pub heatmap: Option<Vec<f32>>,
}

/// A run folder's networks and its held-out patient (`us.nii.gz`, `mr.nii.gz`).
pub fn load_run(
    dir: &Path,
    device: &burn::tensor::Device,
) -> Result<(UsMrNet, UsMrConfig, Patient), TrainError> {
    let (net, cfg) = super::load(&dir.join("usmr"), device)?;
    let us = crate::io::nifti::read_nifti(&dir.join("us.nii.gz"))?;
    let mr = crate::io::nifti::read_nifti(&dir.join("mr.nii.gz"))?;
    let [n, ny, nz] = us.geometry.dims;
    if ny != n || mr.geometry.dims != us.geometry.dims || !n.is_multiple_of(UsMrConfig::MULTIPLE) {
        return Err(TrainError::file(
            dir,
            format!(
                "us.nii.gz ({:?}) and mr.nii.gz ({:?}) must share one square grid, a multiple of 4",
                us.geometry.dims, mr.geometry.dims
            ),
        ));
    }
    let patient = Patient {
        n,
        nz,
        slices: (0..nz).collect(),
        fov: vec![true; n * n],
        geometry: us.geometry.clone(),
        us: us.data,
        mr: mr.data,
    };
    Ok((net, cfg, patient))
}

/// Slice `z` of `p` through `net`, with the attention heatmap of `query` (x, y).
pub fn slice_view(
    net: &UsMrNet,
    cfg: &UsMrConfig,
    p: &Patient,
    z: usize,
    query: Option<(usize, usize)>,
) -> Result<SliceView, TrainError> {
    let z = z.min(p.nz.saturating_sub(1));
    let (synthetic, att) = synthesize_slice(net, cfg, p, z)?;
    let heatmap = match (att, query) {
        (Some(a), Some((x, y))) => attention_heatmap(&a, p.n, x, y),
        _ => None,
    };
    Ok(SliceView {
        n: p.n,
        z,
        us: p.us_slice(z).to_vec(),
        synthetic,
        mr: p.mr_slice(z).to_vec(),
        heatmap,
    })
}
