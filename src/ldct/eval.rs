//! Held-out evaluation of denoisers: PSNR and SSIM against the normal-dose image and against
//! the noiseless phantom, and per lesion size class the lesion CNR, contrast recovery, border
//! gradient and 10-90% edge rise distance ([`crate::analysis::lesion`]).

use crate::analysis::lesion::{LesionDisc, measure_lesion};
use crate::analysis::{psnr, ssim};
use crate::model::normalise::Normalisation;
use crate::synth::ldct::SizeClass;
use crate::synth::ldct::phantom::ImagedPatient;
use crate::volume::Volume;
use serde::Serialize;

/// One size class's lesion measures, averaged over its lesions.
#[derive(Clone, Debug, Serialize)]
pub struct ClassMetrics {
    /// Size class.
    pub class: SizeClass,
    /// Lesions measured.
    pub lesions: usize,
    /// Mean CNR.
    pub cnr: f64,
    /// Mean contrast recovery (1 = the true contrast).
    pub contrast_recovery: f64,
    /// Mean border gradient per unit contrast (1/px).
    pub border_gradient: f64,
    /// Median 10-90% edge rise distance (px) over lesions where it was found.
    pub edge_rise_px: Option<f64>,
    /// Lesions whose edge rise was found.
    pub edge_found: usize,
}

/// One image set's (low dose, a denoiser's output, ...) metrics over the held-out patients.
#[derive(Clone, Debug, Serialize)]
pub struct ArmMetrics {
    /// What was measured.
    pub arm: String,
    /// PSNR (dB) against normal dose inside the body, data range 3000 HU (the network's 0..1).
    pub psnr_vs_normal: f64,
    /// SSIM against normal dose inside the body (0..1 units).
    pub ssim_vs_normal: f64,
    /// PSNR against the noiseless phantom.
    pub psnr_vs_truth: f64,
    /// SSIM against the noiseless phantom.
    pub ssim_vs_truth: f64,
    /// Mean standard deviation (HU) in the lesions' background rings.
    pub ring_sd_hu: f64,
    /// By size class, small first.
    pub by_class: Vec<ClassMetrics>,
}

/// Measure `images[i]` (HU, on patient i's grid) against `patients[i]`.
pub fn evaluate_arm(arm: &str, patients: &[ImagedPatient], images: &[&Volume]) -> ArmMetrics {
    let norm = Normalisation::ct();
    let (mut pn, mut sn, mut pt, mut st, mut k) = (0.0, 0.0, 0.0, 0.0, 0usize);
    let mut per: Vec<Vec<crate::analysis::lesion::LesionMeasure>> = vec![Vec::new(); 3];
    let mut ring_sd = Vec::new();
    for (p, img) in patients.iter().zip(images) {
        let [nx, ny, nz] = p.normal.geometry.dims;
        let plane = nx * ny;
        for z in 0..nz {
            let range = z * plane..(z + 1) * plane;
            let body: Vec<bool> = p.patient.truth.data[range.clone()]
                .iter()
                .map(|v| *v > -500.0)
                .collect();
            let f = |v: &Volume| -> Vec<f32> {
                v.data[range.clone()]
                    .iter()
                    .map(|h| norm.forward(*h))
                    .collect()
            };
            let (x, n, t) = (f(img), f(&p.normal), f(&p.patient.truth));
            let inside = |a: &[f32]| -> Vec<f32> {
                a.iter()
                    .zip(&body)
                    .filter(|(_, b)| **b)
                    .map(|(v, _)| *v)
                    .collect()
            };
            pn += psnr(&inside(&x), &inside(&n), 1.0);
            pt += psnr(&inside(&x), &inside(&t), 1.0);
            sn += ssim(&x, &n, [nx, ny, 1], 1.0, Some(&body));
            st += ssim(&x, &t, [nx, ny, 1], 1.0, Some(&body));
            k += 1;
        }
        for l in &p.patient.lesions {
            let z = l.slice;
            let disc = |o: &crate::synth::ldct::Lesion| LesionDisc {
                cx: o.centre[0],
                cy: o.centre[1],
                r: o.radius_px_on(z, &p.patient.config),
                contrast: o.contrast_hu,
            };
            let others: Vec<LesionDisc> = p
                .patient
                .lesions
                .iter()
                .filter(|o| !std::ptr::eq(*o, l))
                .map(disc)
                .filter(|d| d.r > 0.0)
                .collect();
            let slice = &img.data[z * plane..(z + 1) * plane];
            let m = measure_lesion(slice, nx, ny, &disc(l), &others);
            ring_sd.push(m.ring_sd);
            let i = SizeClass::ALL
                .iter()
                .position(|c| *c == l.class)
                .unwrap_or(0);
            per[i].push(m);
        }
    }
    let kf = k.max(1) as f64;
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len().max(1) as f64;
    let by_class = SizeClass::ALL
        .iter()
        .zip(&per)
        .map(|(c, ms)| {
            let mut rises: Vec<f64> = ms.iter().filter_map(|m| m.edge_rise_px).collect();
            rises.sort_by(f64::total_cmp);
            ClassMetrics {
                class: *c,
                lesions: ms.len(),
                cnr: mean(&ms.iter().map(|m| m.cnr).collect::<Vec<_>>()),
                contrast_recovery: mean(
                    &ms.iter().map(|m| m.contrast_recovery).collect::<Vec<_>>(),
                ),
                border_gradient: mean(&ms.iter().map(|m| m.border_gradient).collect::<Vec<_>>()),
                edge_rise_px: (!rises.is_empty()).then(|| rises[rises.len() / 2]),
                edge_found: rises.len(),
            }
        })
        .collect();
    ArmMetrics {
        arm: arm.to_string(),
        psnr_vs_normal: pn / kf,
        ssim_vs_normal: sn / kf,
        psnr_vs_truth: pt / kf,
        ssim_vs_truth: st / kf,
        ring_sd_hu: mean(&ring_sd),
        by_class,
    }
}

/// The arms as a Markdown table (one row per arm and size class).
pub fn markdown_table(arms: &[ArmMetrics]) -> String {
    let mut s = String::from(
        "| arm | PSNR vs ND (dB) | SSIM vs ND | PSNR vs truth | SSIM vs truth | ring SD (HU) | class | n | CNR | contrast recovery | border gradient | edge rise 10-90% (px, found) |\n|---|---|---|---|---|---|---|---|---|---|---|---|\n",
    );
    for a in arms {
        for (i, c) in a.by_class.iter().enumerate() {
            let head = if i == 0 {
                format!(
                    "| {} | {:.2} | {:.4} | {:.2} | {:.4} | {:.1} ",
                    a.arm,
                    a.psnr_vs_normal,
                    a.ssim_vs_normal,
                    a.psnr_vs_truth,
                    a.ssim_vs_truth,
                    a.ring_sd_hu
                )
            } else {
                "| | | | | | ".to_string()
            };
            s.push_str(&format!(
                "{head}| {} | {} | {:.2} | {:.3} | {:.3} | {} |\n",
                c.class.label(),
                c.lesions,
                c.cnr,
                c.contrast_recovery,
                c.border_gradient,
                match c.edge_rise_px {
                    Some(e) => format!("{e:.2} ({}/{})", c.edge_found, c.lesions),
                    None => format!("- (0/{})", c.lesions),
                }
            ));
        }
    }
    s
}
