//! Unpaired US -> MR training (shared/METHODS.md method 5) on phantom patients.
//!
//! Each step draws a batch of ultrasound slices (from the ultrasound patients) and a batch of
//! MR slices (from other patients: no pair is ever seen) and takes two Adam steps:
//!
//! - networks: ultrasound reconstruction (L1, the self-supervised term that keeps the shared
//!   latent anatomical), MR reconstruction through the same MR decoder (L1), image-space
//!   adversarial loss on the synthetic MR, feature-space adversarial loss on the ultrasound
//!   latent (it must look like an MR latent), the adversarial structural constraint, and a
//!   latent cycle (the synthetic MR re-encoded by the MR encoder gives the ultrasound latent);
//! - critics: least-squares GAN on the same three pairs of real and generated inputs.
//!
//! The adversarial structural constraint, as we read the paper: a critic sees the pair of
//! structure maps (normalised gradient magnitude) of an ultrasound image and an MR image. Real
//! pairs are (the ultrasound that the networks decode from a real MR's latent, that MR), fake
//! pairs are (a real ultrasound, its synthetic MR); the networks learn to make the synthetic
//! MR's structure relate to its ultrasound's as a real MR's does to its own.
//!
//! Evaluation on a held-out patient compares the synthetic MR with that patient's own MR
//! (PSNR, SSIM, in the probe's field of view and on the whole slice), next to the same
//! metrics of the ultrasound itself (the reference any synthesis should beat).

pub mod data;
mod eval;

pub use data::{Patient, patients};
pub use eval::{
    EvalReport, SliceView, attention_heatmap, evaluate, load_run, slice_view, synthesize_patient,
};

use super::{Control, TrainError};
use crate::model::usmr::{UsMrConfig, UsMrCritics, UsMrNet};
use burn::module::Module;
use burn::optim::GradientsParams;
use burn::tensor::activation::sigmoid;
use burn::tensor::{Device, Tensor, TensorData};
use serde::{Deserialize, Serialize};
use std::path::Path;
use std::time::Instant;

/// Weights of the loss terms.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct LossWeights {
    /// Ultrasound reconstruction (L1).
    pub us_reconstruction: f64,
    /// MR reconstruction (L1).
    pub mr_reconstruction: f64,
    /// Image-space adversarial.
    pub image_adversarial: f64,
    /// Feature-space adversarial.
    pub feature_adversarial: f64,
    /// Adversarial structural constraint.
    pub structure_adversarial: f64,
    /// Latent cycle (L1).
    pub latent_cycle: f64,
}

impl Default for LossWeights {
    fn default() -> Self {
        Self {
            us_reconstruction: 10.0,
            mr_reconstruction: 10.0,
            image_adversarial: 1.0,
            feature_adversarial: 1.0,
            structure_adversarial: 1.0,
            latent_cycle: 1.0,
        }
    }
}

/// A US -> MR training run.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct UsMrTrainConfig {
    /// Run name.
    pub name: String,
    /// The networks.
    pub model: UsMrConfig,
    /// Image side (pixels; a multiple of 4).
    pub grid: usize,
    /// Optimisation steps.
    pub steps: usize,
    /// Slices per batch (of each modality).
    pub batch: usize,
    /// Adam learning rate (betas 0.5, 0.999).
    pub learning_rate: f64,
    /// Seed of the phantom, the initialisation and the sampling.
    pub seed: u64,
    /// Phantom patients giving ultrasound.
    pub us_patients: usize,
    /// Other phantom patients giving MR.
    pub mr_patients: usize,
    /// Held-out patients for evaluation.
    pub held_out: usize,
    /// Evaluate every this many steps (and at the end).
    pub eval_every: usize,
    /// Loss weights.
    pub weights: LossWeights,
}

impl Default for UsMrTrainConfig {
    fn default() -> Self {
        Self {
            name: "usmr".into(),
            model: UsMrConfig::new(),
            grid: 64,
            steps: 300,
            batch: 4,
            learning_rate: 2e-4,
            seed: 1,
            us_patients: 3,
            mr_patients: 3,
            held_out: 1,
            eval_every: 100,
            weights: LossWeights::default(),
        }
    }
}

impl UsMrTrainConfig {
    /// Refuse settings the loop cannot run.
    pub fn validate(&self) -> Result<(), TrainError> {
        let bad = |m: &str| Err(TrainError::Config(m.to_string()));
        if self.grid < 16 || !self.grid.is_multiple_of(UsMrConfig::MULTIPLE) {
            return bad("grid must be a multiple of 4, at least 16");
        }
        if self.grid > 256 {
            return bad("grid above 256 pixels: the attention matrix would not fit");
        }
        if self.steps == 0 || self.batch == 0 {
            return bad("steps and batch must be at least 1");
        }
        if self.us_patients == 0 || self.mr_patients == 0 || self.held_out == 0 {
            return bad("at least one ultrasound, one MR and one held-out patient");
        }
        if !(self.learning_rate > 0.0 && self.learning_rate.is_finite()) {
            return bad("learning_rate must be positive");
        }
        Ok(())
    }

    /// Patient numbers: (ultrasound, MR, held out), disjoint.
    pub fn patient_ids(&self) -> (Vec<usize>, Vec<usize>, Vec<usize>) {
        let us: Vec<usize> = (0..self.us_patients).collect();
        let mr: Vec<usize> = (self.us_patients..self.us_patients + self.mr_patients).collect();
        let held: Vec<usize> = (1000..1000 + self.held_out).collect();
        (us, mr, held)
    }
}

/// What the loop reports.
#[derive(Clone, Debug, Serialize)]
pub enum UsMrEvent {
    /// A step: (step, total, weighted network loss, critic loss, each term).
    Step {
        /// Step (1-based).
        step: usize,
        /// Steps in the run.
        total: usize,
        /// Weighted network loss.
        loss: f64,
        /// Critic loss.
        critic_loss: f64,
        /// Each network term, unweighted.
        terms: Vec<(String, f64)>,
    },
    /// An evaluation on the held-out patients.
    Eval(EvalReport),
}

/// The outcome of a run.
#[derive(Clone, Debug, Serialize)]
pub struct UsMrSummary {
    /// The config that ran.
    pub config: UsMrTrainConfig,
    /// Steps taken.
    pub steps: usize,
    /// Wall time (s), data generation included.
    pub seconds: f64,
    /// Seconds spent simulating the phantom patients.
    pub data_seconds: f64,
    /// The last evaluation.
    pub last: Option<EvalReport>,
    /// Stopped early.
    pub stopped: bool,
}

/// Random numbers for sampling (splitmix64).
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        ((z ^ (z >> 31)) % n.max(1) as u64) as usize
    }
}

fn lsgan(scores: Tensor<4>, target: f32) -> Tensor<1> {
    (scores - target).powi_scalar(2).mean()
}

fn l1(a: Tensor<4>, b: Tensor<4>) -> Tensor<1> {
    (a - b).abs().mean()
}

/// Structure map: gradient magnitude of the 3x3-smoothed image over its mean, so ultrasound and
/// MR edges compare whatever their contrast. x: [B, 1, H, W] -> [B, 1, H, W]
pub fn structure(x: Tensor<4>) -> Tensor<4> {
    use burn::tensor::module::avg_pool2d;
    use burn::tensor::ops::AvgPoolOptions;
    let [b, c, h, w] = x.dims();
    let s = avg_pool2d(
        x,
        AvgPoolOptions::new([3, 3])
            .with_stride([1, 1])
            .with_padding([1, 1])
            .with_count_include_pad(false),
    );
    let dev = s.device();
    let dx = s.clone().narrow(3, 1, w - 1) - s.clone().narrow(3, 0, w - 1);
    let dx = Tensor::cat(vec![dx, Tensor::zeros([b, c, h, 1], &dev)], 3);
    let dy = s.clone().narrow(2, 1, h - 1) - s.narrow(2, 0, h - 1);
    let dy = Tensor::cat(vec![dy, Tensor::zeros([b, c, 1, w], &dev)], 2);
    let g = (dx.powi_scalar(2) + dy.powi_scalar(2) + 1e-6).sqrt();
    let mean = g.clone().mean_dim(3).mean_dim(2);
    g / (mean + 1e-4)
}

/// Train `cfg`, writing `run_dir` (config.json, metrics.jsonl, usmr.{bpk,json}, summary.json,
/// and the held-out patient's ultrasound, MR and synthetic MR as NIfTI). `device` is the
/// plain compute device; training runs on its autodiff twin.
pub fn train_usmr(
    cfg: &UsMrTrainConfig,
    run_dir: &Path,
    device: &Device,
    control: &Control,
    on_event: &mut dyn FnMut(UsMrEvent),
) -> Result<UsMrSummary, TrainError> {
    cfg.validate()?;
    let t0 = Instant::now();
    std::fs::create_dir_all(run_dir)
        .map_err(|e| TrainError::file(run_dir, format!("cannot create the run folder: {e}")))?;
    let text = serde_json::to_string_pretty(cfg).map_err(|e| TrainError::Config(e.to_string()))?;
    super::write_atomic(&run_dir.join("config.json"), &text)?;
    let (us_ids, mr_ids, held_ids) = cfg.patient_ids();
    let all: Vec<usize> = us_ids
        .iter()
        .chain(&mr_ids)
        .chain(&held_ids)
        .copied()
        .collect();
    let mut pts = patients(cfg.grid, cfg.seed, &all);
    let held = pts.split_off(us_ids.len() + mr_ids.len());
    let mr_pts = pts.split_off(us_ids.len());
    let us_pts = pts;
    let data_seconds = t0.elapsed().as_secs_f64();
    if us_pts
        .iter()
        .chain(&mr_pts)
        .chain(&held)
        .any(|p| p.slices.is_empty())
    {
        return Err(TrainError::Config(
            "a phantom patient has no slice through the head at this grid".into(),
        ));
    }
    let ad = device.clone().autodiff();
    device.seed(cfg.seed);
    ad.seed(cfg.seed);
    let mut net: UsMrNet = cfg.model.init(&ad);
    let mut critics: UsMrCritics = cfg.model.init_critics(&ad);
    let mut opt_net = crate::train::adam::adam(0.5, 0.999);
    let mut opt_critics = crate::train::adam::adam(0.5, 0.999);
    let mut rng = Rng(cfg.seed ^ 0x0005_3A11);
    let (n, b, k) = (cfg.grid, cfg.batch, cfg.model.neighbours);
    let cin = cfg.model.us_channels();
    let w = &cfg.weights;
    let mut log = String::new();
    let mut last = None;
    let mut stopped = false;
    let mut step = 0;
    for s in 1..=cfg.steps {
        if control.wait() {
            stopped = true;
            break;
        }
        let (mut us_x, mut mr_x) = (Vec::new(), Vec::new());
        for _ in 0..b {
            let p = &us_pts[rng.below(us_pts.len())];
            us_x.extend(p.us_stack(p.slices[rng.below(p.slices.len())], k));
            let q = &mr_pts[rng.below(mr_pts.len())];
            mr_x.extend_from_slice(q.mr_slice(q.slices[rng.below(q.slices.len())]));
        }
        let us = Tensor::<4>::from_data(TensorData::new(us_x, [b, cin, n, n]), &ad);
        let mr = Tensor::<4>::from_data(TensorData::new(mr_x, [b, 1, n, n]), &ad);
        let us_c = us.clone().narrow(1, 0, 1);

        // Networks.
        let syn = net.synthesize(us.clone());
        let z_u = syn.latent;
        let mr_syn = sigmoid(syn.logits);
        let us_rec = sigmoid(net.dec_us.forward(z_u.clone(), z_u.clone()).0);
        let z_m = net.enc_mr.forward(mr.clone());
        let mr_rec = sigmoid(net.dec_mr.forward(z_m.clone(), z_m.clone()).0);
        let t_us = l1(us_rec, us_c.clone());
        let t_mr = l1(mr_rec, mr.clone());
        let t_img = lsgan(critics.image.forward(mr_syn.clone()), 1.0);
        let t_feat = lsgan(critics.feature.forward(z_u.clone()), 1.0);
        let fake_pair = Tensor::cat(vec![structure(us_c.clone()), structure(mr_syn.clone())], 1);
        let t_struct = lsgan(critics.structure.forward(fake_pair.clone()), 1.0);
        let t_cycle = (net.enc_mr.forward(mr_syn.clone()) - z_u.clone())
            .abs()
            .mean();
        let loss = t_us.clone() * w.us_reconstruction
            + t_mr.clone() * w.mr_reconstruction
            + t_img.clone() * w.image_adversarial
            + t_feat.clone() * w.feature_adversarial
            + t_struct.clone() * w.structure_adversarial
            + t_cycle.clone() * w.latent_cycle;
        let value = loss.clone().into_scalar::<f32>() as f64;
        if !value.is_finite() {
            return Err(TrainError::Config(format!(
                "the loss became {value} at step {s}: lower the learning rate"
            )));
        }
        let grads = GradientsParams::from_grads(loss.backward(), &net);
        net = opt_net.step(cfg.learning_rate, net, grads);

        // Critics, on detached inputs.
        let us_hat = sigmoid(net.dec_us.forward(z_m.clone(), z_m.clone()).0).detach();
        let real_pair = Tensor::cat(vec![structure(us_hat), structure(mr.clone())], 1);
        let d_loss = (lsgan(critics.image.forward(mr), 1.0)
            + lsgan(critics.image.forward(mr_syn.detach()), 0.0)
            + lsgan(critics.feature.forward(z_m.detach()), 1.0)
            + lsgan(critics.feature.forward(z_u.detach()), 0.0)
            + lsgan(critics.structure.forward(real_pair), 1.0)
            + lsgan(critics.structure.forward(fake_pair.detach()), 0.0))
            * 0.5;
        let critic_value = d_loss.clone().into_scalar::<f32>() as f64;
        let grads = GradientsParams::from_grads(d_loss.backward(), &critics);
        critics = opt_critics.step(cfg.learning_rate, critics, grads);
        step = s;

        let scalar = |t: Tensor<1>| t.into_scalar::<f32>() as f64;
        let terms = vec![
            ("us_rec".to_string(), scalar(t_us)),
            ("mr_rec".to_string(), scalar(t_mr)),
            ("image_adv".to_string(), scalar(t_img)),
            ("feature_adv".to_string(), scalar(t_feat)),
            ("structure_adv".to_string(), scalar(t_struct)),
            ("latent_cycle".to_string(), scalar(t_cycle)),
        ];
        let event = UsMrEvent::Step {
            step: s,
            total: cfg.steps,
            loss: value,
            critic_loss: critic_value,
            terms,
        };
        log_line(&mut log, &event);
        on_event(event);
        if s % cfg.eval_every.max(1) == 0 || s == cfg.steps {
            let r = evaluate(&net.valid(), &cfg.model, &held, s)?;
            let event = UsMrEvent::Eval(r.clone());
            log_line(&mut log, &event);
            on_event(event);
            last = Some(r);
        }
    }
    super::write_atomic(&run_dir.join("metrics.jsonl"), &log)?;
    let valid = net.valid();
    if last.as_ref().is_none_or(|r| r.step != step) && step > 0 {
        last = Some(evaluate(&valid, &cfg.model, &held, step)?);
    }
    save(&valid, &cfg.model, &run_dir.join("usmr"))?;
    if let Some(p) = held.first() {
        eval::write_volumes(&valid, &cfg.model, p, run_dir)?;
    }
    let summary = UsMrSummary {
        config: cfg.clone(),
        steps: step,
        seconds: t0.elapsed().as_secs_f64(),
        data_seconds,
        last,
        stopped,
    };
    let text =
        serde_json::to_string_pretty(&summary).map_err(|e| TrainError::Config(e.to_string()))?;
    super::write_atomic(&run_dir.join("summary.json"), &text)?;
    Ok(summary)
}

fn log_line(log: &mut String, e: &UsMrEvent) {
    if let Ok(s) = serde_json::to_string(e) {
        log.push_str(&s);
        log.push('\n');
    }
}

/// Save the networks as `path.bpk` with their config as `path.json`.
pub fn save(net: &UsMrNet, cfg: &UsMrConfig, path: &Path) -> Result<(), TrainError> {
    let bpk = path.with_extension("bpk");
    net.clone()
        .save_file(&bpk)
        .map_err(|e| TrainError::file(&bpk, format!("cannot save: {e:?}")))?;
    let json = path.with_extension("json");
    let text = serde_json::to_string_pretty(cfg).map_err(|e| TrainError::Config(e.to_string()))?;
    super::write_atomic(&json, &text)
}

/// Load networks saved by [`save`] (either file of the pair, or their stem) onto `device`.
pub fn load(path: &Path, device: &Device) -> Result<(UsMrNet, UsMrConfig), TrainError> {
    let json = path.with_extension("json");
    let text = crate::io::read_text(&json, crate::io::MAX_TEXT_BYTES)
        .map_err(|e| TrainError::file(&json, format!("cannot read: {e}")))?;
    let cfg: UsMrConfig = serde_json::from_str(&text)
        .map_err(|e| TrainError::file(&json, format!("not a US -> MR config: {e}")))?;
    if cfg.width == 0 || cfg.width > 256 || cfg.neighbours > 8 {
        return Err(TrainError::file(&json, "width or neighbours out of range"));
    }
    let bpk = path.with_extension("bpk");
    let net = cfg
        .init(device)
        .try_load_file(&bpk)
        .map_err(|e| TrainError::file(&bpk, format!("cannot load the weights: {e:?}")))?;
    Ok((net, cfg))
}
