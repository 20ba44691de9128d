//! One CycleGAN step: a [`Trainer`] updates both generators on the adversarial, cycle and
//! identity losses, then both discriminators on real images against pooled fakes. The epochs
//! and the run folder are [`super::fit`]'s.

use super::config::CycleganConfig;
use super::data::{Unpaired, sample};
use super::eval::Scores;
use super::pool::ImagePool;
use crate::model::cyclegan::{
    GreyHandling, PatchGan, PatchGanConfig, ResnetGenerator, ResnetGeneratorConfig,
    import_generator, to_tanh_range,
};
use crate::train::RunSummary;
use crate::train::TrainError;
use crate::train::data::Rng;
use burn::module::Module;
use burn::optim::{GradientsParams, ModuleOptimizer};
use burn::tensor::{Device, Tensor, TensorData};
use serde::{Deserialize, Serialize};

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
    // The rest is what a resume state holds besides the generators ([`super::resume`]).
    pub(super) d_a: PatchGan,
    pub(super) d_b: PatchGan,
    pub(super) opt_g_a: ModuleOptimizer,
    pub(super) opt_g_b: ModuleOptimizer,
    pub(super) opt_d_a: ModuleOptimizer,
    pub(super) opt_d_b: ModuleOptimizer,
    pub(super) pool_a: ImagePool,
    pub(super) pool_b: ImagePool,
    /// The generators' configs (G_A, G_B).
    pub g_cfg: (ResnetGeneratorConfig, ResnetGeneratorConfig),
    pub(super) channels: usize,
    pub(super) ad: Device,
    /// The data-order, flip and pool stream (one stream, so one u64 restores all three).
    pub(super) rng: Rng,
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

/// Adam as the run configures it (a fresh state: [`super::resume`] loads saved ones into it).
pub(super) fn adam(cfg: &CycleganConfig) -> ModuleOptimizer {
    crate::train::adam::adam(cfg.beta1, 0.999)
}

impl Trainer {
    /// Build (or import) the networks for `cfg`; they train on `device`'s autodiff twin.
    pub fn new(cfg: &CycleganConfig, device: &Device) -> Result<Self, TrainError> {
        cfg.validate()?;
        device.seed(cfg.seed);
        device.clone().autodiff().seed(cfg.seed);
        let (g_a, ca, note_a) = generator(cfg, false, device)?;
        let (g_b, cb, note_b) = generator(cfg, true, device)?;
        let init_note = if note_a == note_b {
            note_a
        } else {
            format!("G_A {note_a}, G_B {note_b}")
        };
        Self::assemble(cfg, device, (g_a, ca), (g_b, cb), init_note)
    }

    /// The trainer around given generators (plain-device weights): fresh discriminators,
    /// optimisers and pools, the random stream at its seed. A resume overwrites the rest.
    pub(super) fn assemble(
        cfg: &CycleganConfig,
        device: &Device,
        (g_a, ca): (ResnetGenerator, ResnetGeneratorConfig),
        (g_b, cb): (ResnetGenerator, ResnetGeneratorConfig),
        init_note: String,
    ) -> Result<Self, TrainError> {
        let ad = device.clone().autodiff();
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
        Ok(Self {
            // `fork` alone leaves the parameters untracked on the autodiff device; `train` turns
            // their gradients on (a generator that never learned, in the first runs).
            g_a: g_a.fork(&ad).train(),
            g_b: g_b.fork(&ad).train(),
            d_a: d.init(&ad),
            d_b: d.init(&ad),
            opt_g_a: adam(cfg),
            opt_g_b: adam(cfg),
            opt_d_a: adam(cfg),
            opt_d_b: adam(cfg),
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
