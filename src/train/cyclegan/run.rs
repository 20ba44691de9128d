//! The CycleGAN loop: one [`Trainer`] step updates both generators on the adversarial, cycle and
//! identity losses, then both discriminators on real images against pooled fakes.

use super::config::CycleganConfig;
use super::data::{Unpaired, sample};
use super::eval::{
    Embed, HistogramMatch, Scores, classifier_embed, generator_predict, model_predict, score,
    score_with,
};
use super::pool::{ImagePool, learning_rate};
use crate::model::checkpoint::AnyModel;
use crate::model::cyclegan::{
    CycleganMeta, GreyHandling, PatchGan, PatchGanConfig, ResnetGenerator, ResnetGeneratorConfig,
    import_generator, save_generator, to_tanh_range,
};
use crate::model::{Direction, ModelError};
use crate::train::data::Rng;
use crate::train::runs::{Log, write_atomic};
use crate::train::{Control, EpochReport, LogLine, RunSummary, StepReport, TrainError, TrainEvent};
use burn::module::Module;
use burn::optim::{AdamConfig, GradientsParams, ModuleOptimizer};
use burn::tensor::{Device, Tensor, TensorData};
use serde::{Deserialize, Serialize};
use std::path::Path;
use std::time::Instant;

/// The sample grid of an epoch: rows (real A, fake B, reconstructed A) and (real B, fake A,
/// reconstructed B), each a grey nx x ny slice in 0..1.
#[derive(Clone, Debug)]
pub struct SampleGrid {
    /// Epoch.
    pub epoch: usize,
    /// Width.
    pub nx: usize,
    /// Height.
    pub ny: usize,
    /// [real MR, fake CT, reconstructed MR], [real CT, fake MR, reconstructed CT].
    pub rows: [[Vec<f32>; 3]; 2],
}

/// What a finished (or stopped) run reports.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CycleganSummary {
    /// The row `runs compare` shows.
    pub run: RunSummary,
    /// Every method scored on the held-out slices, MR -> CT (histogram matching, the compared
    /// checkpoints, this CycleGAN).
    pub scores: Vec<Scores>,
    /// This CycleGAN's G_B, CT -> MR (MAE in 0..1 MR units).
    pub reverse: Option<Scores>,
}

/// The four networks, their optimisers and pools: one step at a time.
pub struct Trainer {
    /// MR -> CT.
    pub g_a: ResnetGenerator,
    /// CT -> MR.
    pub g_b: ResnetGenerator,
    d_a: PatchGan,
    d_b: PatchGan,
    opt_g_a: ModuleOptimizer,
    opt_g_b: ModuleOptimizer,
    opt_d_a: ModuleOptimizer,
    opt_d_b: ModuleOptimizer,
    pool_a: ImagePool,
    pool_b: ImagePool,
    /// The generators' configs (G_A, G_B).
    pub g_cfg: (ResnetGeneratorConfig, ResnetGeneratorConfig),
    channels: usize,
    ad: Device,
    rng: Rng,
    /// Where the generators' first weights came from.
    pub init_note: String,
}

/// The losses of one step (unweighted adversarial, weighted cycle and identity, as the
/// reference logs them).
#[derive(Clone, Copy, Debug, Default)]
pub struct StepLosses {
    /// G_A's and G_B's least-squares adversarial losses.
    pub gan: f64,
    /// D_A's and D_B's losses (each half real, half fake).
    pub disc: f64,
    /// Cycle-consistency L1 (times lambda).
    pub cycle: f64,
    /// Identity L1 (times lambda x lambda_identity).
    pub identity: f64,
}

fn l1(a: Tensor<4>, b: Tensor<4>) -> Tensor<1> {
    (a - b).abs().mean()
}

fn lsgan(pred: Tensor<4>, target: f32) -> Tensor<1> {
    (pred - target).powi_scalar(2).mean()
}

fn scalar(t: Tensor<1>) -> f64 {
    t.into_scalar::<f32>() as f64
}

fn generator(
    cfg: &CycleganConfig,
    b: bool,
    device: &Device,
) -> Result<(ResnetGenerator, ResnetGeneratorConfig, String), TrainError> {
    match &cfg.init {
        None => {
            let c = ResnetGeneratorConfig::new()
                .with_in_channels(1)
                .with_out_channels(1)
                .with_ngf(cfg.generator.ngf)
                .with_blocks(cfg.generator.blocks);
            Ok((c.init(device), c, "scratch".into()))
        }
        Some(init) => {
            let path = match (&init.path_b, b) {
                (Some(p), true) => p,
                _ => &init.path,
            };
            let (g, c) = import_generator(path, device)?;
            if c.in_channels != c.out_channels {
                return Err(TrainError::file(
                    path,
                    format!(
                        "a {} -> {} channel generator cannot run a cycle; both must be equal",
                        c.in_channels, c.out_channels
                    ),
                ));
            }
            let (g, c) = match init.grey {
                GreyHandling::OneChannel => (
                    g.to_grey(),
                    c.with_in_channels(1)
                        .with_out_channels(1)
                        .with_grey(GreyHandling::OneChannel),
                ),
                GreyHandling::Replicate => (g, c.with_grey(GreyHandling::Replicate)),
            };
            Ok((g, c, path.display().to_string()))
        }
    }
}

impl Trainer {
    /// Build (or import) the networks for `cfg`; they train on `device`'s autodiff twin.
    pub fn new(cfg: &CycleganConfig, device: &Device) -> Result<Self, TrainError> {
        cfg.validate()?;
        let ad = device.clone().autodiff();
        device.seed(cfg.seed);
        ad.seed(cfg.seed);
        let (g_a, ca, note_a) = generator(cfg, false, device)?;
        let (g_b, cb, note_b) = generator(cfg, true, device)?;
        if ca.in_channels != cb.in_channels {
            return Err(TrainError::Config(format!(
                "G_A takes {} channels but G_B {}: import generators of one width",
                ca.in_channels, cb.in_channels
            )));
        }
        let channels = ca.in_channels;
        let d = PatchGanConfig::new()
            .with_in_channels(channels)
            .with_ndf(cfg.discriminator.ndf)
            .with_layers(cfg.discriminator.layers);
        let adam = || AdamConfig::new().with_beta_1(cfg.beta1);
        let init_note = if note_a == note_b {
            note_a
        } else {
            format!("G_A {note_a}, G_B {note_b}")
        };
        Ok(Self {
            // `fork` alone leaves the parameters untracked on the autodiff device; `train` turns
            // their gradients on (a generator that never learned, in the first runs).
            g_a: g_a.fork(&ad).train(),
            g_b: g_b.fork(&ad).train(),
            d_a: d.init(&ad),
            d_b: d.init(&ad),
            opt_g_a: adam().init(),
            opt_g_b: adam().init(),
            opt_d_a: adam().init(),
            opt_d_b: adam().init(),
            pool_a: ImagePool::new(cfg.pool_size),
            pool_b: ImagePool::new(cfg.pool_size),
            g_cfg: (ca, cb),
            channels,
            ad,
            rng: Rng::new(cfg.seed),
            init_note,
        })
    }

    /// Grey crops [n, 1, p, p] in 0..1 as the networks' input: -1..1, repeated to their width.
    fn batch(&self, v: Vec<f32>, n: usize, p: usize) -> Tensor<4> {
        let t = to_tanh_range(Tensor::from_data(
            TensorData::new(v, [n, 1, p, p]),
            &self.ad,
        ));
        if self.channels == 1 {
            t
        } else {
            Tensor::cat(vec![t; self.channels], 1)
        }
    }

    /// One optimisation step of all four networks at learning rate `lr`.
    pub fn step(
        &mut self,
        cfg: &CycleganConfig,
        data: &Unpaired,
        lr: f64,
    ) -> Result<StepLosses, TrainError> {
        let (n, p) = (cfg.batch_size, cfg.image_size);
        let real_a = sample(&data.mr, n, p, cfg.flip, &mut self.rng);
        let real_b = sample(&data.ct, n, p, cfg.flip, &mut self.rng);
        let (real_a, real_b) = (self.batch(real_a, n, p), self.batch(real_b, n, p));
        let lam = cfg.lambda_cycle;
        let lam_idt = lam * cfg.lambda_identity;

        // Generators: D's weights take no step here.
        let fake_b = self.g_a.forward(real_a.clone());
        let rec_a = self.g_b.forward(fake_b.clone());
        let fake_a = self.g_b.forward(real_b.clone());
        let rec_b = self.g_a.forward(fake_a.clone());
        let gan = lsgan(self.d_a.forward(fake_b.clone()), 1.0)
            + lsgan(self.d_b.forward(fake_a.clone()), 1.0);
        let cycle = l1(rec_a, real_a.clone()) * lam + l1(rec_b, real_b.clone()) * lam;
        let mut loss_g = gan.clone() + cycle.clone();
        let mut identity_v = 0.0;
        if lam_idt > 0.0 {
            let identity = l1(self.g_a.forward(real_b.clone()), real_b.clone()) * lam_idt
                + l1(self.g_b.forward(real_a.clone()), real_a.clone()) * lam_idt;
            identity_v = scalar(identity.clone());
            loss_g = loss_g + identity;
        }
        let (gan_v, cycle_v) = (scalar(gan), scalar(cycle));
        let mut grads = loss_g.backward();
        let ga = GradientsParams::from_module(&mut grads, &self.g_a);
        let gb = GradientsParams::from_module(&mut grads, &self.g_b);
        self.g_a = self.opt_g_a.step(lr, self.g_a.clone(), ga);
        self.g_b = self.opt_g_b.step(lr, self.g_b.clone(), gb);

        // Discriminators: real against pooled, detached fakes.
        let fb = self.pool_b.query(fake_b, &mut self.rng);
        let fa = self.pool_a.query(fake_a, &mut self.rng);
        let d_a = (lsgan(self.d_a.forward(real_b), 1.0) + lsgan(self.d_a.forward(fb), 0.0)) * 0.5;
        let d_b = (lsgan(self.d_b.forward(real_a), 1.0) + lsgan(self.d_b.forward(fa), 0.0)) * 0.5;
        let loss_d = d_a + d_b;
        let disc_v = scalar(loss_d.clone());
        let mut grads = loss_d.backward();
        let da = GradientsParams::from_module(&mut grads, &self.d_a);
        let db = GradientsParams::from_module(&mut grads, &self.d_b);
        self.d_a = self.opt_d_a.step(lr, self.d_a.clone(), da);
        self.d_b = self.opt_d_b.step(lr, self.d_b.clone(), db);
        let losses = StepLosses {
            gan: gan_v,
            disc: disc_v,
            cycle: cycle_v,
            identity: identity_v,
        };
        if ![gan_v, disc_v, cycle_v, identity_v]
            .iter()
            .all(|v| v.is_finite())
        {
            return Err(TrainError::Config(format!(
                "a loss became non-finite ({losses:?}): lower the learning rate"
            )));
        }
        Ok(losses)
    }

    /// The generators in evaluation form, on the plain device (G_A, G_B).
    pub fn generators(&self) -> (ResnetGenerator, ResnetGenerator) {
        (self.g_a.valid(), self.g_b.valid())
    }
}

/// The sample grid for a held-out slice.
fn grid(
    g_a: &ResnetGenerator,
    g_b: &ResnetGenerator,
    data: &Unpaired,
    epoch: usize,
    device: &Device,
) -> Result<Option<SampleGrid>, ModelError> {
    let Some(c) = data.held_out.first() else {
        return Ok(None);
    };
    let z = c.slices[c.slices.len() / 2];
    let (mr, ct, _) = c.slice(z);
    let mut ab = generator_predict(g_a, device);
    let mut ba = generator_predict(g_b, device);
    let fake_ct = ab(&mr, c.nx, c.ny)?;
    let rec_mr = ba(&fake_ct, c.nx, c.ny)?;
    let fake_mr = ba(&ct, c.nx, c.ny)?;
    let rec_ct = ab(&fake_mr, c.nx, c.ny)?;
    Ok(Some(SampleGrid {
        epoch,
        nx: c.nx,
        ny: c.ny,
        rows: [[mr, fake_ct, rec_mr], [ct, fake_mr, rec_ct]],
    }))
}

/// Write a sample grid as a PNG (3 x 2 tiles, 0..1 as 0..255).
pub fn write_grid(g: &SampleGrid, path: &Path) -> Result<(), TrainError> {
    let (w, h) = (g.nx * 3, g.ny * 2);
    let mut px = vec![0u8; w * h];
    for (r, row) in g.rows.iter().enumerate() {
        for (c, tile) in row.iter().enumerate() {
            for y in 0..g.ny {
                for x in 0..g.nx {
                    let v = tile[x + g.nx * y].clamp(0.0, 1.0);
                    px[(r * g.ny + y) * w + c * g.nx + x] = (v * 255.0).round() as u8;
                }
            }
        }
    }
    let img = image::GrayImage::from_raw(w as u32, h as u32, px)
        .ok_or_else(|| TrainError::file(path, "grid size mismatch"))?;
    img.save(path)
        .map_err(|e| TrainError::file(path, format!("cannot write the sample grid: {e}")))
}

/// Score the baseline, the compared checkpoints and both generators on the held-out slices.
fn all_scores(
    cfg: &CycleganConfig,
    data: &Unpaired,
    g_a: &ResnetGenerator,
    g_b: &ResnetGenerator,
    device: &Device,
) -> Result<(Vec<Scores>, Scores), TrainError> {
    let mr: Vec<&[f32]> = data.mr.iter().map(|s| s.v.as_slice()).collect();
    let ct: Vec<&[f32]> = data.ct.iter().map(|s| s.v.as_slice()).collect();
    let hm = HistogramMatch::fit(&mr, &ct, 4096);
    // The FID-style distance uses the embedded MR/CT classifier's features (see Scores).
    let classifier = match crate::model::demo::load_demo_classifier(device)? {
        (AnyModel::Classifier(c), _, _) => Some(c),
        _ => None,
    };
    let mut embed = classifier.as_ref().map(|c| classifier_embed(c, device));
    let mut out = vec![score_with(
        "histogram matching (MR -> CT distribution)",
        &data.held_out,
        false,
        &mut |x, _, _| Ok(x.iter().map(|v| hm.map(*v)).collect()),
        embed.as_mut().map(|e| e as &mut Embed<'_>),
    )?];
    for path in &cfg.compare {
        let (m, _) = crate::model::checkpoint::load(path, device)?;
        let mut f = model_predict(&m, device);
        out.push(score_with(
            &format!("paired {}", path.display()),
            &data.held_out,
            false,
            &mut f,
            embed.as_mut().map(|e| e as &mut Embed<'_>),
        )?);
    }
    let mut f = generator_predict(g_a, device);
    out.push(score_with(
        &cfg.label(),
        &data.held_out,
        false,
        &mut f,
        embed.as_mut().map(|e| e as &mut Embed<'_>),
    )?);
    let mut r = generator_predict(g_b, device);
    let reverse = score(
        &format!("{} G_B (CT -> MR)", cfg.label()),
        &data.held_out,
        true,
        &mut r,
    )?;
    Ok((out, reverse))
}

/// Train `cfg` on `data`, writing the run folder `run_dir`; events (steps with the four losses,
/// epochs with the held-out scores) to `on_event`, each epoch's sample grid to `on_grid`.
pub fn train_cyclegan(
    cfg: &CycleganConfig,
    data: &Unpaired,
    run_dir: &Path,
    device: &Device,
    control: &Control,
    on_event: &mut dyn FnMut(TrainEvent),
    on_grid: &mut dyn FnMut(SampleGrid),
) -> Result<CycleganSummary, TrainError> {
    if data.mr.is_empty() || data.ct.is_empty() {
        return Err(TrainError::Config("both domains need slices".into()));
    }
    let ckpt = run_dir.join("checkpoints");
    for d in [&ckpt, &run_dir.join("samples")] {
        std::fs::create_dir_all(d)
            .map_err(|e| TrainError::file(d, format!("cannot create the folder: {e}")))?;
    }
    write_atomic(&run_dir.join("config.toml"), &cfg.to_toml())?;
    let t0 = Instant::now();
    on_event(TrainEvent::Stage(
        "Building the generators and discriminators".into(),
    ));
    let mut t = Trainer::new(cfg, device)?;
    on_event(TrainEvent::Note(format!("Split {}", data.note())));
    on_event(TrainEvent::Note(format!(
        "Generators from {} ({} channels); G {} params each, D {} params each",
        t.init_note,
        t.channels,
        t.g_cfg.0.param_count(),
        PatchGanConfig::new()
            .with_in_channels(t.channels)
            .with_ndf(cfg.discriminator.ndf)
            .with_layers(cfg.discriminator.layers)
            .param_count()
    )));
    let mut log = Log::open(&run_dir.join("metrics.jsonl"))?;
    let total = cfg.total_epochs() * cfg.steps_per_epoch;
    let (mut step, mut images, mut train_s) = (0usize, 0usize, 0.0f64);
    let mut last: Option<EpochReport> = None;
    let mut stopped = false;
    let mut epochs_done = 0;
    'epochs: for e in 0..cfg.total_epochs() {
        let lr = learning_rate(cfg.learning_rate, e, cfg.epochs, cfg.decay_epochs);
        let epoch = e + 1;
        on_event(TrainEvent::Stage(format!(
            "Epoch {epoch} (learning rate {lr:.2e})"
        )));
        let (start, mut sum_g) = (Instant::now(), 0.0);
        for k in 0..cfg.steps_per_epoch {
            if control.wait() {
                stopped = true;
                break 'epochs;
            }
            let ts = Instant::now();
            let l = t.step(cfg, data, lr)?;
            train_s += ts.elapsed().as_secs_f64();
            step += 1;
            images += cfg.batch_size;
            sum_g += l.gan + l.cycle + l.identity;
            let ips = ((k + 1) * cfg.batch_size) as f64 / start.elapsed().as_secs_f64().max(1e-9);
            let report = StepReport {
                epoch,
                step,
                total_steps: total,
                loss: l.gan + l.cycle + l.identity,
                terms: vec![
                    ("G (LSGAN)".into(), l.gan),
                    ("D (LSGAN)".into(), l.disc),
                    ("cycle".into(), l.cycle),
                    ("identity".into(), l.identity),
                ],
                images_per_s: ips,
                elapsed_s: t0.elapsed().as_secs_f64(),
                eta_s: (total - step) as f64 * cfg.batch_size as f64 / ips.max(1e-9),
                shares: Vec::new(),
            };
            log.write(&LogLine::Step(report.clone()))?;
            on_event(TrainEvent::Step(report));
        }
        on_event(TrainEvent::Stage(format!(
            "Scoring epoch {epoch} on the held-out patients"
        )));
        let (g_a, g_b) = t.generators();
        let mut f = generator_predict(&g_a, device);
        let s = score("G_A", &data.held_out, false, &mut f)?;
        let report = EpochReport {
            epoch,
            step,
            train_loss: sum_g / cfg.steps_per_epoch as f64,
            // NaN would be written as null, which the run reader refuses: every field is a
            // number. The held-out L1 (0..1 units) stands in for a validation loss.
            val_loss: s.l1,
            val_psnr: s.psnr,
            val_ssim: s.ssim,
            val_mae: s.mae_hu,
            val_tenengrad: s.tenengrad_pred,
            ref_tenengrad: s.tenengrad_ref,
            val_vif: s.vif.is_finite().then_some(s.vif),
            elapsed_s: t0.elapsed().as_secs_f64(),
        };
        log.write(&LogLine::Epoch(report.clone()))?;
        on_event(TrainEvent::Note(format!(
            "epoch {epoch}: held-out MR -> CT MAE {:.1} HU, PSNR {:.2} dB, SSIM {:.3}, UQI {:.3}, VIF {:.3}",
            s.mae_hu, s.psnr, s.ssim, s.uqi, s.vif
        )));
        on_event(TrainEvent::Epoch(report.clone()));
        save_pair(&t, &g_a, &g_b, epoch, &ckpt, true)?;
        if let Some(g) = grid(&g_a, &g_b, data, epoch, device)? {
            write_grid(&g, &run_dir.join(format!("samples/epoch_{epoch:03}.png")))?;
            on_grid(g);
        }
        last = Some(report);
        epochs_done = epoch;
    }
    let (g_a, g_b) = t.generators();
    if stopped {
        save_pair(&t, &g_a, &g_b, epochs_done, &ckpt, false)?;
    }
    on_event(TrainEvent::Stage(
        "Scoring the baseline and the compared models".into(),
    ));
    let (scores, reverse) = all_scores(cfg, data, &g_a, &g_b, device)?;
    let run = RunSummary {
        name: cfg.name.clone(),
        model: cfg.label(),
        loss: "LSGAN + cycle + identity".into(),
        direction: "MR <-> CT (unpaired)".into(),
        params: t.g_cfg.0.param_count() + t.g_cfg.1.param_count(),
        epochs_done,
        steps: step,
        seconds: t0.elapsed().as_secs_f64(),
        images_per_s: images as f64 / train_s.max(1e-9),
        stopped,
        last: last.clone(),
        best: last,
        split: data.note(),
        device: crate::gpu::compute()
            .map(|c| c.describe())
            .unwrap_or_else(|_| format!("{device:?}")),
    };
    let summary = CycleganSummary {
        run,
        scores,
        reverse: Some(reverse),
    };
    let json = |v: &dyn erased_json::Ser| v.json();
    write_atomic(&run_dir.join("summary.json"), &json(&summary.run))?;
    write_atomic(&run_dir.join("scores.json"), &json(&summary))?;
    Ok(summary)
}

mod erased_json {
    /// Pretty JSON of a value (these plain structs always serialise).
    pub trait Ser {
        fn json(&self) -> String;
    }
    impl<T: serde::Serialize> Ser for T {
        fn json(&self) -> String {
            serde_json::to_string_pretty(self).unwrap_or_default()
        }
    }
}

/// Save both generators (`G_A_epoch_NNN`, `G_B_epoch_NNN`) and `last` (G_A) / `last_G_B`.
fn save_pair(
    t: &Trainer,
    g_a: &ResnetGenerator,
    g_b: &ResnetGenerator,
    epoch: usize,
    dir: &Path,
    numbered: bool,
) -> Result<(), TrainError> {
    for (g, c, role, direction, last) in [
        (g_a, &t.g_cfg.0, "G_A", Direction::MrToCt, "last"),
        (g_b, &t.g_cfg.1, "G_B", Direction::CtToMr, "last_G_B"),
    ] {
        let meta = CycleganMeta {
            direction,
            role: role.into(),
            epoch,
            init: t.init_note.clone(),
        };
        let path = dir.join(format!("{role}_epoch_{epoch:03}"));
        if numbered {
            save_generator(g, c, &meta, &path)?;
            crate::model::checkpoint::copy(&path, &dir.join(last))?;
        } else {
            save_generator(g, c, &meta, &dir.join(last))?;
        }
    }
    Ok(())
}
