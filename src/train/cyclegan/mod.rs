//! CycleGAN training on unpaired MR and CT (method 3): generators G_A (MR -> CT) and G_B
//! (CT -> MR), PatchGAN discriminators D_A (real CT vs G_A's) and D_B (real MR vs G_B's),
//! least-squares GAN losses, cycle consistency (lambda 10) and identity (0.5 lambda) L1 losses,
//! a pool of 50 generated images per discriminator, Adam (2e-4, beta1 0.5), the rate constant
//! then linearly down to zero. Generators start from scratch (N(0, 0.02)) or from an imported
//! reference state dict ([`crate::model::cyclegan::import_generator`]).
//!
//! The run folder is a paired run's ([`crate::train`]): `config.toml`, `metrics.jsonl`
//! (steps with the four losses as terms, epochs scored on the held-out registered patients),
//! `checkpoints/` (`G_A_epoch_NNN`, `G_B_epoch_NNN`, `last`/`best` = G_A and `last_G_B`/
//! `best_G_B`; each a checkpoint pair the Synthesis panel loads), `samples/epoch_NNN.png`
//! (real A, fake B, reconstructed A; real B, fake A, reconstructed B), `scores.json` (every
//! method on the held-out slices) and `summary.json`, so `runs compare` lists it beside
//! paired runs. Every completed epoch also saves a resume state (`checkpoints/resume/`: both
//! discriminators, the four Adam states, both pools, the counters and random stream), from which
//! [`resume_cyclegan`] (`train --resume RUNDIR`) continues a killed, crashed or stopped run.

pub mod config;
pub mod data;
pub mod eval;
mod fit;
pub mod pool;
pub mod resume;
mod run;

pub use config::CycleganConfig;
pub use data::Unpaired;
pub use eval::{HistogramMatch, Scores};
pub use fit::{train_cyclegan, write_grid};
pub use resume::{CycleganResumeState, ResumeCheck, check_resume, resume_cyclegan};
pub use run::{CycleganSummary, SampleGrid, StepLosses, Trainer};

use crate::io::Progress;
use crate::model::Direction;
use crate::train::TrainError;

/// Load the run's patients (MR input, CT target, registered) and split them unpaired.
pub fn load_unpaired(cfg: &CycleganConfig, progress: &Progress) -> Result<Unpaired, TrainError> {
    let paired = crate::train::TrainConfig {
        data: cfg.data.clone(),
        direction: Direction::MrToCt,
        ..Default::default()
    };
    let cases = crate::train::data::load_cases(&paired, progress)?;
    Unpaired::from_cases(cases, cfg.held_out)
}

/// Time CycleGAN steps (both generators and both discriminators, all four losses, pools):
/// `steps` timed steps after one warm-up, on random unpaired `size` x `size` slices. Returns
/// (warm-up seconds, steps per second).
pub fn bench_steps(
    ngf: usize,
    blocks: usize,
    size: usize,
    batch: usize,
    steps: usize,
    device: &burn::tensor::Device,
) -> Result<(f64, f64), TrainError> {
    let mut cfg = CycleganConfig::new(
        "bench",
        crate::train::DataSource::Demo {
            patients: 3,
            small: true,
        },
    );
    cfg.generator = config::GeneratorChoice { ngf, blocks };
    cfg.discriminator.ndf = ngf;
    cfg.image_size = size;
    cfg.batch_size = batch;
    let mut rng = crate::train::data::Rng::new(1);
    let mut slices = |n: usize| -> Vec<data::Slice> {
        (0..n)
            .map(|_| data::Slice {
                nx: size,
                ny: size,
                v: (0..size * size)
                    .map(|_| rng.below(1000) as f32 / 1000.0)
                    .collect(),
            })
            .collect()
    };
    let domains = Unpaired {
        mr: slices(4),
        ct: slices(4),
        mr_patients: vec!["random".into()],
        ct_patients: vec!["random".into()],
        held_out: Vec::new(),
    };
    let mut t = run::Trainer::new(&cfg, device)?;
    let clock = std::time::Instant::now();
    t.step(&cfg, &domains, cfg.learning_rate)?;
    let warm = clock.elapsed().as_secs_f64();
    let clock = std::time::Instant::now();
    for _ in 0..steps.max(1) {
        t.step(&cfg, &domains, cfg.learning_rate)?;
    }
    Ok((warm, steps.max(1) as f64 / clock.elapsed().as_secs_f64()))
}
