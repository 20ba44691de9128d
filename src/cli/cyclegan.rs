//! CycleGAN on the command line: `train --config` with `mode = "cyclegan"` (unpaired MR <-> CT)
//! and `train --resume` of such a run,
//! `model import --arch cyclegan` (a reference generator state dict as a checkpoint) and the
//! networks' lines in `model summary`.

use crate::io::Progress;
use crate::model::Direction;
use crate::model::cyclegan::{CycleganMeta, PatchGanConfig, ResnetGeneratorConfig};
use crate::train::cyclegan::{
    CycleganConfig, ResumeCheck, Scores, check_resume, load_unpaired, resume_cyclegan,
    train_cyclegan,
};
use crate::train::{Control, TrainEvent};
use anyhow::{anyhow, bail};
use burn::tensor::Device;
use indicatif::{ProgressBar, ProgressStyle};
use std::path::{Path, PathBuf};

/// `train` of a CycleGAN config: headless, with a progress bar; prints the held-out table.
pub(super) fn train(
    config: &Path,
    out: Option<&Path>,
    device: &Device,
    describe: &str,
) -> anyhow::Result<()> {
    let cfg = CycleganConfig::read(config).map_err(|e| anyhow!(e))?;
    let out = out
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("runs").join(&cfg.name));
    if out.join("metrics.jsonl").exists() {
        bail!(
            "{}: already holds a run; choose another --out (nothing was overwritten)",
            out.display()
        );
    }
    println!("device: {describe}");
    let data = load_unpaired(&cfg, &Progress::default()).map_err(|e| anyhow!(e))?;
    with_bar(&cfg, &out, &mut |on_event| {
        train_cyclegan(
            &cfg,
            &data,
            &out,
            device,
            &Control::default(),
            on_event,
            &mut |_| {},
        )
    })
}

/// `train --resume RUNDIR` of a CycleGAN run folder: continues from the last completed epoch
/// (its own config.toml), says so and does nothing for a finished run, and refuses a folder
/// without a resume state before the device or the data are touched.
pub(super) fn resume(
    dir: &Path,
    device: Option<&crate::gpu::DeviceSpec>,
    token_file: Option<&Path>,
) -> anyhow::Result<()> {
    let cfg = CycleganConfig::read(&dir.join("config.toml")).map_err(|e| anyhow!(e))?;
    let state = match check_resume(&cfg, dir).map_err(|e| anyhow!(e))? {
        ResumeCheck::Finished { epochs } => {
            println!(
                "{}: finished ({epochs} of {} epochs, summary.json written); nothing to resume",
                dir.display(),
                cfg.total_epochs()
            );
            return Ok(());
        }
        ResumeCheck::From(s) => s,
    };
    let g = crate::gpu::remote::choose_spec(device, token_file)?;
    println!("device: {}", g.describe());
    println!(
        "Resuming after epoch {} of {} (step {})",
        state.epoch,
        cfg.total_epochs(),
        state.step
    );
    let data = load_unpaired(&cfg, &Progress::default()).map_err(|e| anyhow!(e))?;
    with_bar(&cfg, dir, &mut |on_event| {
        resume_cyclegan(
            &cfg,
            &data,
            dir,
            &g.device,
            &Control::default(),
            on_event,
            &mut |_| {},
        )
    })
}

/// Run `f` with a progress bar fed by its events, then print the summary and the held-out table.
fn with_bar(
    cfg: &CycleganConfig,
    out: &Path,
    f: &mut dyn FnMut(
        &mut dyn FnMut(TrainEvent),
    )
        -> Result<crate::train::cyclegan::CycleganSummary, crate::train::TrainError>,
) -> anyhow::Result<()> {
    let bar = ProgressBar::new((cfg.total_epochs() * cfg.steps_per_epoch) as u64);
    bar.set_style(
        ProgressStyle::with_template("{bar:30} {pos}/{len} steps  {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    // Lines above the bar on a terminal; plain lines when output is piped (the bar is hidden).
    let say = |line: String| {
        if bar.is_hidden() {
            println!("{line}");
        } else {
            bar.println(line);
        }
    };
    let mut on_event = |e: TrainEvent| match e {
        TrainEvent::Step(s) => {
            bar.set_position(s.step as u64);
            let t: Vec<String> = s.terms.iter().map(|(k, v)| format!("{k} {v:.3}")).collect();
            bar.set_message(format!("{}  {:.2} img/s", t.join("  "), s.images_per_s));
        }
        TrainEvent::Note(n) => say(n),
        TrainEvent::Stage(s) => say(s),
        _ => {}
    };
    let summary = f(&mut on_event).map_err(|e| anyhow!(e))?;
    bar.finish_and_clear();
    println!(
        "{}: {} epochs, {} steps in {:.1} s ({:.2} images/s); run folder {}",
        summary.run.name,
        summary.run.epochs_done,
        summary.run.steps,
        summary.run.seconds,
        summary.run.images_per_s,
        out.display()
    );
    println!("{}", scores_table(&summary.scores));
    if let Some(r) = &summary.reverse {
        println!(
            "CT -> MR (G_B): MAE {:.4} (0..1 MR units), PSNR {:.2} dB, SSIM {:.3}, UQI {:.3}, VIF {:.3}",
            r.mae_hu, r.psnr, r.ssim, r.uqi, r.vif
        );
    }
    Ok(())
}

/// The held-out table: one row per method, MR -> CT.
pub fn scores_table(scores: &[Scores]) -> String {
    let w = scores
        .iter()
        .map(|s| s.method.chars().count())
        .chain([6])
        .max()
        .unwrap_or(6);
    let mut t = format!(
        "{:w$}  {:>9}  {:>9}  {:>6}  {:>6}  {:>6}  {:>8}  {:>6}\n",
        "method", "MAE (HU)", "PSNR (dB)", "SSIM", "UQI", "VIF", "feat. FD", "slices"
    );
    for s in scores {
        let fd = s.feature_fd.map_or("-".into(), |d| format!("{d:.4}"));
        t.push_str(&format!(
            "{:w$}  {:>9.1}  {:>9.2}  {:>6.3}  {:>6.3}  {:>6.3}  {:>8}  {:>6}\n",
            s.method, s.mae_hu, s.psnr, s.ssim, s.uqi, s.vif, fd, s.slices
        ));
    }
    t.push_str(
        "feat. FD: FID-style Fréchet distance of the embedded MR/CT classifier's pooled features \
         (synthetic vs real held-out CT slices; not comparable with Inception FIDs)\n",
    );
    t
}

/// `model import --arch cyclegan`: a reference generator state dict as a checkpoint pair.
pub(super) fn import(weights: &Path, direction: Direction, out: &Path) -> anyhow::Result<()> {
    let device = Device::flex();
    let (g, cfg) =
        crate::model::cyclegan::import_generator(weights, &device).map_err(|e| anyhow!(e))?;
    let meta = CycleganMeta {
        direction,
        role: "imported".into(),
        epoch: 0,
        init: weights.display().to_string(),
    };
    crate::model::cyclegan::save_generator(&g, &cfg, &meta, out).map_err(|e| anyhow!(e))?;
    println!(
        "ResNet generator ({} -> {} channels, ngf {}, {} blocks{}, {} parameters) imported from {} -> {}.json/.bpk",
        cfg.in_channels,
        cfg.out_channels,
        cfg.ngf,
        cfg.blocks,
        if cfg.dropout { ", dropout" } else { "" },
        cfg.param_count(),
        weights.display(),
        out.display()
    );
    Ok(())
}

/// The CycleGAN networks' lines of `model summary`.
pub(super) fn summary_lines(size: usize) {
    let g = ResnetGeneratorConfig::new();
    let d = PatchGanConfig::new();
    let patches = (size / 8).saturating_sub(2);
    println!(
        "{:<14} {:>12}  input 3x{size}x{size}, ResNet 9 blocks, ngf 64 ({} parameters)",
        "CycleGAN G",
        super::model::fmt_count(g.param_count()),
        g.param_count()
    );
    println!(
        "{:<14} {:>12}  input 3x{size}x{size}, 70x70 PatchGAN, ndf 64 ({} parameters), {patches}x{patches} patch scores",
        "CycleGAN D",
        super::model::fmt_count(d.param_count()),
        d.param_count()
    );
}

/// `bench train --cyclegan NGF:BLOCKS`: steps/s of a whole CycleGAN step, beside the first
/// paired network timed in the same run.
pub(super) fn bench(
    spec: &str,
    size: usize,
    batch: usize,
    steps: usize,
    reference: Option<&(String, f64)>,
) -> anyhow::Result<()> {
    let parse = || -> Option<(usize, usize)> {
        let (a, b) = spec.split_once(':')?;
        Some((a.parse().ok()?, b.parse().ok()?))
    };
    let Some((ngf, blocks)) = parse() else {
        bail!("--cyclegan {spec}: expected NGF:BLOCKS, e.g. 16:4 or 64:9");
    };
    let c = crate::gpu::compute()?;
    let (warm, rate) =
        crate::train::cyclegan::bench_steps(ngf, blocks, size, batch, steps, &c.device)
            .map_err(|e| anyhow!(e))?;
    let vs = reference
        .map(|(name, r)| format!("; {:.3}x the steps/s of {name}", rate / r))
        .unwrap_or_default();
    println!(
        "{:<12} {rate:7.3} steps/s  {:7.2} images/s per domain  (G_A, G_B, D_A, D_B; first step {warm:.1} s{vs})",
        format!("cyclegan:{ngf}:{blocks}"),
        rate * batch as f64,
    );
    super::bench::record(
        "train",
        serde_json::json!({"net": format!("cyclegan:{ngf}:{blocks}"), "size": size, "batch": batch,
               "steps_per_s": rate, "first_step_s": warm,
               "ratio_to": reference.map(|(n, r)| serde_json::json!({"net": n, "ratio": rate / r}))}),
    );
    Ok(())
}

/// `study demo --source cyclegan`: real CTs of unseen varied phantom patients (small grids, as
/// the CycleGAN runs train) beside CycleGAN G_A's synthetic CTs of their MRs.
pub(super) fn study_demo(
    out: &Path,
    model: &Path,
    patients: usize,
    slab: usize,
    design: crate::study::Design,
) -> anyhow::Result<()> {
    use crate::io::phantom::{PhantomConfig, phantom_patient_varied};
    let g = crate::gpu::compute()?;
    let (net, meta) = crate::model::checkpoint::load(model, &g.device).map_err(|e| anyhow!(e))?;
    if !matches!(net, crate::model::checkpoint::AnyModel::ResnetGenerator(_))
        || crate::model::cyclegan::generator_direction(&meta) != Direction::MrToCt
    {
        bail!(
            "{}: not a CycleGAN MR -> CT generator (use a run's checkpoints/last, its G_A)",
            model.display()
        );
    }
    let label = format!("CycleGAN G_A MR to CT ({})", model.display());
    super::study::demo_with(out, patients, design, &label, &mut |k| {
        // Patients 20+ are outside every CycleGAN run's data (they use 0..12).
        // The CT comes on the MR's grid, registered by construction.
        let (ct, mr) = phantom_patient_varied(&PhantomConfig::small(), 20 + k);
        let (ct, mr) = (
            super::data::middle_slab(&ct, slab),
            super::data::middle_slab(&mr, slab),
        );
        let synth = crate::synth::synthesize(
            &net,
            Direction::MrToCt,
            &mr,
            4,
            &g.device,
            &Progress::default(),
        )?;
        Ok((ct, synth))
    })
}
