//! A CycleGAN run's epochs and its folder: the step loop around [`Trainer`], each epoch's
//! held-out scores, checkpoints, sample grid and resume state, the final scores and summary.

use super::config::CycleganConfig;
use super::data::Unpaired;
use super::eval::{
    Embed, HistogramMatch, Scores, classifier_embed, generator_predict, model_predict, score,
    score_with,
};
use super::pool::learning_rate;
use super::resume::{CycleganResumeState, RESUME_FORMAT};
use super::run::{CycleganSummary, SampleGrid, Trainer};
use crate::model::checkpoint::AnyModel;
use crate::model::cyclegan::{CycleganMeta, PatchGanConfig, ResnetGenerator, save_generator};
use crate::model::{Direction, ModelError};
use crate::train::runs::{Log, write_atomic};
use crate::train::{Control, EpochReport, LogLine, RunSummary, StepReport, TrainError, TrainEvent};
use burn::tensor::Device;
use std::path::Path;
use std::time::Instant;

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
    train_from(cfg, data, run_dir, device, control, on_event, on_grid, None)
}

/// A run picked up after its last completed epoch: the trainer as it stood and the counters.
pub(super) struct Resumed {
    /// Networks, optimisers, pools and random stream, restored.
    pub trainer: Trainer,
    /// Where the run stood.
    pub state: CycleganResumeState,
}

/// The seed of epoch `e`'s device random stream (dropout): drawn from the run's seed and the
/// epoch alone, so an epoch run after a resume draws what it drew in an unbroken run (burn's
/// device generator cannot be read back to be saved).
fn epoch_seed(seed: u64, e: usize) -> u64 {
    seed ^ (e as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15)
}

/// [`train_cyclegan`] from the start (`resumed` None) or after a saved epoch.
#[allow(clippy::too_many_arguments)]
pub(super) fn train_from(
    cfg: &CycleganConfig,
    data: &Unpaired,
    run_dir: &Path,
    device: &Device,
    control: &Control,
    on_event: &mut dyn FnMut(TrainEvent),
    on_grid: &mut dyn FnMut(SampleGrid),
    resumed: Option<Resumed>,
) -> Result<CycleganSummary, TrainError> {
    if data.mr.is_empty() || data.ct.is_empty() {
        return Err(TrainError::Config("both domains need slices".into()));
    }
    let ckpt = run_dir.join("checkpoints");
    for d in [&ckpt, &run_dir.join("samples")] {
        std::fs::create_dir_all(d)
            .map_err(|e| TrainError::file(d, format!("cannot create the folder: {e}")))?;
    }
    let t0 = Instant::now();
    // Counters: steps, images, seconds in steps, seconds of earlier sessions, the last epoch.
    let (mut t, first_epoch, mut step, mut images, mut train_s, before_s, mut last) = match resumed
    {
        None => {
            write_atomic(&run_dir.join("config.toml"), &cfg.to_toml())?;
            on_event(TrainEvent::Stage(
                "Building the generators and discriminators".into(),
            ));
            (Trainer::new(cfg, device)?, 0, 0, 0, 0.0, 0.0, None)
        }
        Some(Resumed { trainer, state: s }) => (
            trainer,
            s.epoch,
            s.step,
            s.images,
            s.train_seconds,
            s.elapsed_s,
            s.last,
        ),
    };
    let elapsed = || before_s + t0.elapsed().as_secs_f64();
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
    let mut stopped = false;
    let mut epochs_done = first_epoch;
    'epochs: for e in first_epoch..cfg.total_epochs() {
        let lr = learning_rate(cfg.learning_rate, e, cfg.epochs, cfg.decay_epochs);
        let epoch = e + 1;
        t.ad.seed(epoch_seed(cfg.seed, e));
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
                elapsed_s: elapsed(),
                eta_s: total.saturating_sub(step) as f64 * cfg.batch_size as f64 / ips.max(1e-9),
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
            elapsed_s: elapsed(),
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
        // Last, after the epoch's line and files: a resume state on disk always has its epoch
        // in the log, and a kill before it leaves the previous epoch's state whole.
        let state = CycleganResumeState {
            format: RESUME_FORMAT,
            epoch,
            step,
            rng: t.rng.state(),
            images,
            train_seconds: train_s,
            elapsed_s: elapsed(),
            learning_rate: lr,
            init_note: t.init_note.clone(),
            last: Some(report.clone()),
            folder: String::new(),
            pools: [t.pool_a.len(), t.pool_b.len()],
        };
        super::resume::save(&t, run_dir, state)?;
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
        seconds: elapsed(),
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
