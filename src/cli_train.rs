//! `synthscope train`, `synthscope runs compare` and `synthscope bench train`.

use crate::io::Progress;
use crate::train::runs::{Run, compare_table};
use crate::train::{Control, Dataset, TrainConfig, TrainEvent, data};
use anyhow::{anyhow, bail};
use indicatif::{ProgressBar, ProgressStyle};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Train from a config file, headless, with a progress bar.
pub fn train_cmd(config: &Path, out: Option<PathBuf>, classifier_only: bool) -> anyhow::Result<()> {
    let cfg = TrainConfig::read(config).map_err(|e| anyhow!(e))?;
    let out = out.unwrap_or_else(|| PathBuf::from("runs").join(&cfg.name));
    if out.join("metrics.jsonl").exists() || out.join("classifier.bpk").exists() {
        bail!(
            "{}: already holds a run; choose another --out (nothing was overwritten)",
            out.display()
        );
    }
    let g = crate::gpu::shared()?;
    println!("device: {}", g.report.summary());
    let t = Instant::now();
    let cases = data::load_cases(&cfg, &Progress::default()).map_err(|e| anyhow!(e))?;
    let dataset = Dataset::split(cases, cfg.validation_fraction);
    println!(
        "data: {} patients, {} training / {} validation slices ({:.1} s); split {}",
        dataset.cases.len(),
        dataset.train.len(),
        dataset.val.len(),
        t.elapsed().as_secs_f64(),
        dataset.split_note
    );
    let bar = ProgressBar::new(1);
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} steps  {msg}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let control = Control::default();
    // Lines above the bar on a terminal; plain lines when output is piped (the bar is hidden).
    let say = |line: String| {
        if bar.is_hidden() {
            println!("{line}");
        } else {
            bar.println(line);
        }
    };
    let mut on_event = |e: TrainEvent| match e {
        TrainEvent::Stage(s) => bar.set_message(s),
        TrainEvent::Note(n) => say(n),
        TrainEvent::Step(s) => {
            bar.set_length(s.total_steps as u64);
            bar.set_position(s.step as u64);
            bar.set_message(format!(
                "epoch {} loss {:.4}  {:.1} img/s  ETA {:.0} s",
                s.epoch, s.loss, s.images_per_s, s.eta_s
            ));
        }
        TrainEvent::Epoch(e) => say(format!(
            "epoch {:>3}: train loss {:.4}  val loss {:.4}  PSNR {:.2} dB  SSIM {:.3}  MAE {:.1}  Tenengrad {:.4} (real {:.4})  [{:.0} s]",
            e.epoch,
            e.train_loss,
            e.val_loss,
            e.val_psnr,
            e.val_ssim,
            e.val_mae,
            e.val_tenengrad,
            e.ref_tenengrad,
            e.elapsed_s
        )),
        TrainEvent::Preview(_) => {}
    };
    if classifier_only {
        let p = crate::train::patch_size(&cfg, &dataset);
        g.device.seed(cfg.seed);
        crate::train::classifier_for_run(
            &cfg,
            &dataset,
            p,
            &out,
            &g.device,
            &control,
            &mut on_event,
        )
        .map_err(|e| anyhow!(e))?;
        bar.finish_and_clear();
        println!(
            "{}: {} classifier steps in {:.1} s",
            out.join("classifier.bpk").display(),
            cfg.classifier_steps,
            t.elapsed().as_secs_f64()
        );
        return Ok(());
    }
    let summary = crate::train::train(&cfg, &dataset, &out, &g.device, &control, &mut on_event)
        .map_err(|e| anyhow!(e))?;
    bar.finish_and_clear();
    println!(
        "{}: {} epochs, {} steps in {:.1} s ({:.2} images/s), {} parameters",
        out.display(),
        summary.epochs_done,
        summary.steps,
        summary.seconds,
        summary.images_per_s,
        summary.params
    );
    if let Some(b) = &summary.best {
        println!(
            "best epoch {}: PSNR {:.2} dB, SSIM {:.3}; checkpoint {}",
            b.epoch,
            b.val_psnr,
            b.val_ssim,
            out.join("checkpoints/best.bpk").display()
        );
    }
    Ok(())
}

/// Print the comparison table of run folders.
pub fn runs_compare(dirs: &[PathBuf], json: bool) -> anyhow::Result<()> {
    let runs: Vec<Run> = dirs
        .iter()
        .map(|d| Run::read(d))
        .collect::<Result<_, _>>()
        .map_err(|e| anyhow!(e))?;
    if json {
        let rows: Vec<serde_json::Value> = runs
            .iter()
            .map(|r| {
                let row = r.row();
                serde_json::json!({
                    "dir": r.dir, "name": row.name, "model": row.model, "loss": row.loss,
                    "epochs": row.epochs, "psnr": row.psnr, "ssim": row.ssim, "mae": row.mae,
                    "tenengrad": row.tenengrad, "ref_tenengrad": row.ref_tenengrad,
                    "images_per_s": row.images_per_s, "finished": row.finished,
                })
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&rows)?);
    } else {
        print!("{}", compare_table(&runs));
    }
    Ok(())
}

/// Training throughput on the shared device.
pub fn bench_train(size: usize, batch: usize, steps: usize) -> anyhow::Result<()> {
    use crate::model::{DrunetConfig, UnetConfig};
    use burn::module::Module;
    use burn::optim::{AdamConfig, GradientsParams};
    use burn::tensor::{Distribution, Tensor};
    let g = crate::gpu::shared()?;
    let ad = g.device.clone().autodiff();
    println!(
        "device: {}; batch {batch} x {size}x{size}, MSE, Adam",
        g.report.summary()
    );
    fn time<M: Module>(
        name: &str,
        mut model: M,
        cin: usize,
        forward: &dyn Fn(&M, Tensor<4>) -> Tensor<4>,
        (batch, size, steps): (usize, usize, usize),
        ad: &burn::tensor::Device,
    ) {
        let x = Tensor::<4>::random([batch, cin, size, size], Distribution::Default, ad);
        let y = Tensor::<4>::random([batch, 1, size, size], Distribution::Default, ad);
        let mut optim = AdamConfig::new().init();
        let mut step = |m: M| -> (M, f32) {
            let loss = (forward(&m, x.clone()) - y.clone()).powi_scalar(2).mean();
            let v = loss.clone().into_scalar::<f32>();
            let grads = GradientsParams::from_grads(loss.backward(), &m);
            (optim.step(1e-3, m, grads), v)
        };
        let t = Instant::now();
        let (m, _) = step(model);
        model = m;
        let warm = t.elapsed().as_secs_f64();
        let t = Instant::now();
        for _ in 0..steps.max(1) {
            let (m, _) = step(model);
            model = m;
        }
        let s = t.elapsed().as_secs_f64() / steps.max(1) as f64;
        println!(
            "{name:<12} {:7.3} steps/s  {:7.2} images/s  ({:.0} ms per step; first step incl. kernel compilation {:.1} s; {} parameters)",
            1.0 / s,
            batch as f64 / s,
            s * 1e3,
            warm,
            model.num_params()
        );
    }
    let args = (batch, size, steps);
    let small = UnetConfig::new()
        .with_base_width(16)
        .with_levels(4)
        .with_input_size(size)
        .init(&ad);
    time("U-Net 16/4", small, 1, &|m, x| m.forward(x), args, &ad);
    let unet = UnetConfig::new().with_input_size(size).init(&ad);
    time("U-Net 32/4", unet, 1, &|m, x| m.forward(x), args, &ad);
    let d34 = DrunetConfig::new()
        .with_depth(34)
        .with_input_size(size)
        .init(&ad)
        .map_err(|e| anyhow!(e))?;
    time("DRUNet-34", d34, 3, &|m, x| m.forward(x), args, &ad);
    Ok(())
}
