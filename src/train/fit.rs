//! The training loop: batches of patches, the weighted loss, Adam, validation each epoch,
//! checkpoints and the run log.

use super::data::{Rng, SliceRef, crop, origin};
use super::losses::LossContext;
use super::parallel::{self, BatchShape, Replica};
use super::resume::{RESUME_FORMAT, ResumeState};
use super::runs::{Log, write_atomic};
use super::stream::{BatchStream, StreamSettings};
use super::{
    Control, Dataset, DeviceShare, EpochReport, LogLine, LossKind, Preview, RunSummary, StepReport,
    TrainConfig, TrainError, TrainEvent, classifier_for_run, config,
};
use crate::analysis::{psnr, ssim, tenengrad, vif_scaled};
use crate::model::checkpoint::{self, AnyModel, ModelSpec};
use crate::model::normalise::class_of_target;
use crate::model::{Classifier, Direction, Drunet, Unet};
use burn::module::Module;
use burn::optim::GradientsParams;
use burn::tensor::activation::sigmoid;
use burn::tensor::{Device, Tensor, TensorData};
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

/// A network the loop can train.
pub trait SynthNet: Module + 'static {
    /// Pre-sigmoid output.
    fn logits(&self, x: Tensor<4>) -> Tensor<4>;
    /// Wrap for checkpoints.
    fn into_any(self) -> AnyModel;
}

impl SynthNet for Unet {
    fn logits(&self, x: Tensor<4>) -> Tensor<4> {
        self.forward_logits(x)
    }
    fn into_any(self) -> AnyModel {
        AnyModel::Unet(self)
    }
}

impl SynthNet for Drunet {
    fn logits(&self, x: Tensor<4>) -> Tensor<4> {
        self.forward_logits(x)
    }
    fn into_any(self) -> AnyModel {
        AnyModel::Drunet(self)
    }
}

/// The training patch side for `cfg` and `dataset`.
pub fn patch_size(cfg: &TrainConfig, dataset: &Dataset) -> usize {
    if cfg.patch > 0 {
        return cfg.patch;
    }
    let m = cfg.multiple();
    let streamed = dataset
        .stream
        .iter()
        .flat_map(|s| s.index.patients.iter().map(|p| p.nx.max(p.ny)));
    let side = dataset
        .cases
        .iter()
        .map(|c| c.nx.max(c.ny))
        .chain(streamed)
        .max()
        .unwrap_or(m);
    side.div_ceil(m) * m
}

/// A batch of patches: (inputs [B, 1, P, P], targets [B, 1, P, P]) flattened.
pub(super) fn sample_batch(
    dataset: &Dataset,
    refs: &[SliceRef],
    p: usize,
    augment: &config::Augment,
    rng: &mut Rng,
) -> (Vec<f32>, Vec<f32>) {
    let mut xs = Vec::with_capacity(refs.len() * p * p);
    let mut ys = Vec::with_capacity(refs.len() * p * p);
    for r in refs {
        let case = &dataset.cases[r.case];
        let (input, target, _) = case.slice(r.z);
        let o = (origin(case.nx, p, rng), origin(case.ny, p, rng));
        let rot = if augment.rot90 { rng.below(4) } else { 0 };
        let flip = augment.flip && rng.below(2) == 1;
        xs.extend(crop(&input, (case.nx, case.ny), o, p, rot, flip));
        ys.extend(crop(&target, (case.nx, case.ny), o, p, rot, flip));
    }
    (xs, ys)
}

/// Repeat single-channel images [B, 1, H, W] to `channels`.
pub(super) fn repeat_channels(x: Tensor<4>, channels: usize) -> Tensor<4> {
    if channels == 1 {
        x
    } else {
        Tensor::cat(vec![x; channels], 1)
    }
}

/// Train `cfg` on `dataset`, writing the run folder `run_dir`. `device` is the plain compute
/// device (see [`crate::gpu::compute`]); training uses its autodiff twin. A config with
/// `devices` trains data-parallel on those instead (connected here, see [`super::parallel`];
/// `device` is then unused) and keeps the weights, validation and checkpoints on the first.
/// A dataset with a stream plan ([`super::load_dataset`]) takes its training batches from it.
/// Events go to `on_event` as they happen.
pub fn train(
    cfg: &TrainConfig,
    dataset: &Dataset,
    run_dir: &Path,
    device: &Device,
    control: &Control,
    on_event: &mut dyn FnMut(TrainEvent),
) -> Result<RunSummary, TrainError> {
    train_from(cfg, dataset, run_dir, device, control, on_event, None)
}

#[allow(clippy::too_many_arguments)]
pub(super) fn train_from(
    cfg: &TrainConfig,
    dataset: &Dataset,
    run_dir: &Path,
    device: &Device,
    control: &Control,
    on_event: &mut dyn FnMut(TrainEvent),
    resumed: Option<ResumeState>,
) -> Result<RunSummary, TrainError> {
    cfg.validate()?;
    if dataset.train_len() == 0 || dataset.val.is_empty() {
        return Err(TrainError::Config(
            "the data gave no training or no validation slices".into(),
        ));
    }
    std::fs::create_dir_all(run_dir.join("checkpoints"))
        .map_err(|e| TrainError::file(run_dir, format!("cannot create the run folder: {e}")))?;
    if resumed.is_none() {
        write_atomic(&run_dir.join("config.toml"), &cfg.to_toml())?;
    }
    let t0 = Instant::now();
    let replicas = if cfg.devices.is_empty() {
        vec![Replica::single(device)]
    } else {
        on_event(TrainEvent::Stage("Connecting the devices".into()));
        parallel::resolve(&cfg.devices, None)?
    };
    let device = &replicas[0].device;
    let ad = device.clone().autodiff();
    device.seed(cfg.seed);
    let p = patch_size(cfg, dataset);
    on_event(TrainEvent::Note(format!("Split {}", dataset.split_note)));
    if replicas.len() > 1 {
        let counts = parallel::split_batch(
            cfg.batch_size,
            &replicas.iter().map(|r| r.weight).collect::<Vec<_>>(),
        );
        let list: Vec<String> = replicas
            .iter()
            .zip(&counts)
            .map(|(r, n)| format!("{} ({n})", r.label))
            .collect();
        on_event(TrainEvent::Note(format!(
            "Data-parallel on {} devices, samples per step: {}; weights on {}",
            replicas.len(),
            list.join(", "),
            replicas[0].label
        )));
    }

    let needs_classifier = cfg.losses.iter().any(|t| {
        t.kind.needs_classifier() && !(t.kind == LossKind::Contextual && cfg.vgg19.is_some())
    });
    if needs_classifier && cfg.direction == Direction::CtDenoise && cfg.classifier.is_none() {
        return Err(TrainError::Config(
            "CT denoise: the activation-weighted loss needs the lesion classifier: set classifier = \"DIR/classifier.json\" \
             (written by `synthscope train --classifier-only` with this config, or by `synthscope ldct`)"
                .into(),
        ));
    }
    let vgg = match &cfg.vgg19 {
        Some(p) if cfg.losses.iter().any(|t| t.kind == LossKind::Contextual) => {
            on_event(TrainEvent::Stage("Loading VGG-19".into()));
            Some(crate::model::vgg::Vgg19::load_torchvision(p, device)?)
        }
        _ => None,
    };
    let own_classifier = run_dir.join("classifier.json");
    if needs_classifier
        && dataset.stream.is_some()
        && cfg.classifier.is_none()
        && !(resumed.is_some() && own_classifier.exists())
    {
        return Err(TrainError::Config(
            "a streamed run does not train its own MR/CT classifier: train one first \
             (`synthscope train --classifier-only` on a smaller folder) and set classifier = \"DIR/classifier.json\""
                .into(),
        ));
    }
    let classifier: Option<Classifier> = if !needs_classifier {
        None
    } else if let Some(path) = cfg.classifier.clone().or_else(|| {
        // A resumed run reuses the classifier it trained for itself.
        let own = run_dir.join("classifier.json");
        (resumed.is_some() && own.exists()).then_some(own)
    }) {
        match checkpoint::load(&path, device)? {
            (AnyModel::Classifier(c), _) => Some(c),
            _ => {
                return Err(TrainError::file(&path, "not a classifier checkpoint"));
            }
        }
    } else {
        Some(classifier_for_run(
            cfg, dataset, p, run_dir, device, control, on_event,
        )?)
    };
    let spec = cfg.model_spec(p);
    let init_from = match &resumed {
        Some(_) => Some(run_dir.join("checkpoints/resume.json")),
        None => cfg.init_from.clone(),
    };
    let model = match &init_from {
        Some(path) => {
            let (m, meta) = checkpoint::load(path, &ad)?;
            if !matches!(
                (&meta.model, &spec),
                (ModelSpec::Unet(_), ModelSpec::Unet(_))
                    | (ModelSpec::Drunet(_), ModelSpec::Drunet(_))
            ) {
                return Err(TrainError::file(
                    path,
                    format!(
                        "its network ({:?}) is not the run's ({})",
                        meta.model,
                        cfg.model.label()
                    ),
                ));
            }
            m
        }
        None => spec.init(&ad)?,
    };
    let args = LoopArgs {
        cfg,
        dataset,
        run_dir,
        device,
        ad: &ad,
        replicas: &replicas,
        spec: &spec,
        p,
        classifier: classifier.as_ref(),
        vgg: vgg.as_ref(),
        control,
        t0,
        resumed,
    };
    match model {
        AnyModel::Unet(m) => run_loop(m, args, on_event),
        AnyModel::Drunet(m) => run_loop(m, args, on_event),
        AnyModel::Classifier(_) => Err(TrainError::Config(
            "a classifier cannot be trained as a synthesis network".into(),
        )),
        AnyModel::ResnetGenerator(_) => Err(TrainError::Config(
            "a CycleGAN generator trains in a CycleGAN run (mode = \"cyclegan\")".into(),
        )),
    }
}

struct LoopArgs<'a> {
    cfg: &'a TrainConfig,
    dataset: &'a Dataset,
    run_dir: &'a Path,
    device: &'a Device,
    ad: &'a Device,
    replicas: &'a [Replica],
    spec: &'a ModelSpec,
    p: usize,
    classifier: Option<&'a Classifier>,
    vgg: Option<&'a crate::model::vgg::Vgg19>,
    control: &'a Control,
    t0: Instant,
    resumed: Option<ResumeState>,
}

fn run_loop<M: SynthNet>(
    mut model: M,
    a: LoopArgs<'_>,
    on_event: &mut dyn FnMut(TrainEvent),
) -> Result<RunSummary, TrainError> {
    let cfg = a.cfg;
    let mut log = Log::open(&a.run_dir.join("metrics.jsonl"))?;
    let mut optim = crate::train::adam::adam(0.9, 0.999);
    let mut rng = Rng::new(cfg.seed);
    let (mut step, mut best, mut last, mut images, mut train_seconds, mut epochs_done) =
        (0usize, None, None, 0usize, 0.0, 0);
    let mut elapsed_before = 0.0;
    if let Some(r) = &a.resumed {
        let p = a.run_dir.join("checkpoints/resume_optim.bpk");
        optim = optim
            .load(&p)
            .map_err(|e| TrainError::file(&p, format!("cannot read the optimiser state: {e:?}")))?;
        rng = Rng::from_state(r.rng);
        (step, best, last, images, train_seconds, epochs_done) = (
            r.step,
            r.best.clone(),
            r.last.clone(),
            r.images,
            r.train_seconds,
            r.epoch,
        );
        elapsed_before = r.elapsed_s;
    }
    let elapsed = || elapsed_before + a.t0.elapsed().as_secs_f64();
    let channels = cfg.channels();
    let class = class_of_target(cfg.direction);
    // The classifier, frozen: on the autodiff device for the training loss (inputs tracked,
    // weights constant, batch norm in inference mode) and on the plain device for validation.
    let cls_ad = a.classifier.map(|c| c.valid().fork(a.ad));
    let cls_plain = a.classifier.map(|c| c.valid());
    let vgg_ad = a.vgg.map(|v| v.valid().fork(a.ad));
    let vgg_plain = a.vgg.map(|v| v.valid());
    let train_ctx = LossContext {
        terms: &cfg.losses,
        classifier: cls_ad.as_ref(),
        vgg: vgg_ad.as_ref(),
        class,
    };
    let val_ctx = LossContext {
        terms: &cfg.losses,
        classifier: cls_plain.as_ref(),
        vgg: vgg_plain.as_ref(),
        class,
    };
    let b = cfg.batch_size;
    let per_epoch = {
        let full = a.dataset.train_len().div_ceil(b);
        cfg.steps_per_epoch.map_or(full, |s| s.min(full).max(1))
    };
    let total_steps = per_epoch * cfg.epochs;
    let params = model.num_params();
    let mut stopped = false;
    let first_epoch = epochs_done + 1;
    // Several devices: each one's autodiff device, share of a batch and frozen loss networks.
    let ads: Vec<Device> = a
        .replicas
        .iter()
        .map(|r| r.device.clone().autodiff())
        .collect();
    let counts = parallel::split_batch(b, &a.replicas.iter().map(|r| r.weight).collect::<Vec<_>>());
    let mut device_losses: Vec<DeviceLoss> = if a.replicas.len() > 1 {
        ads.iter()
            .map(|ad| DeviceLoss {
                cls: a.classifier.map(|c| c.valid().fork(ad)),
                vgg: a.vgg.map(|v| v.valid().fork(ad)),
            })
            .collect()
    } else {
        Vec::new()
    };
    let shard_loss = |s: &mut DeviceLoss, m: &M, x: Tensor<4>, y: Tensor<4>| {
        let ctx = LossContext {
            terms: &cfg.losses,
            classifier: s.cls.as_ref(),
            vgg: s.vgg.as_ref(),
            class,
        };
        ctx.loss(
            m.logits(repeat_channels(x, channels)),
            y,
            cfg.losses.len() > 1,
        )
    };
    // The first data-parallel step initialises the lazily drawn weights on the first device in
    // the order a one-device run draws them (forward order), before any other device forks.
    let mut first_parallel_step = true;
    'epochs: for epoch in first_epoch..=cfg.epochs {
        on_event(TrainEvent::Stage(format!("Epoch {epoch}/{}", cfg.epochs)));
        let mut batches = EpochBatches::start(&a, &mut rng, epoch, per_epoch)?;
        let epoch_start = Instant::now();
        let mut epoch_images = 0usize;
        let mut loss_sum = 0.0;
        let mut loss_n = 0usize;
        for k in 0..per_epoch {
            if a.control.wait() {
                stopped = true;
                break 'epochs;
            }
            let t_step = Instant::now();
            let (xs, ys) = batches.next(&a, k, &mut rng)?;
            let (value, terms, shares) = if a.replicas.len() > 1 {
                let shards = parallel::shard_grads(
                    &model,
                    &ads,
                    &mut device_losses,
                    &counts,
                    (&xs, &ys),
                    BatchShape {
                        batch: b,
                        side: a.p,
                    },
                    first_parallel_step,
                    &shard_loss,
                );
                first_parallel_step = false;
                let (value, terms) = parallel::combine_losses(&shards);
                check_finite(value, step)?;
                let shares = shards
                    .iter()
                    .map(|s| DeviceShare {
                        device: a.replicas[s.device].label.clone(),
                        samples: s.samples,
                        seconds: s.seconds,
                    })
                    .collect();
                model = parallel::step_on_first(&mut optim, cfg.learning_rate, model, shards, a.ad);
                // Batch norm's running statistics: each device's thread left its own update;
                // this averages them into the shared state (burn's `RunningState` sync).
                let _ = model.valid();
                (value, terms, shares)
            } else {
                let x = Tensor::<4>::from_data(TensorData::new(xs, [b, 1, a.p, a.p]), a.ad);
                let y = Tensor::<4>::from_data(TensorData::new(ys, [b, 1, a.p, a.p]), a.ad);
                let logits = model.logits(repeat_channels(x, channels));
                let (loss, terms) = train_ctx.loss(logits, y, cfg.losses.len() > 1);
                let value = loss.clone().into_scalar::<f32>() as f64;
                check_finite(value, step)?;
                let grads = GradientsParams::from_grads(loss.backward(), &model);
                model = optim.step(cfg.learning_rate, model, grads);
                (value, terms, Vec::new())
            };
            step += 1;
            images += b;
            epoch_images += b;
            train_seconds += t_step.elapsed().as_secs_f64();
            loss_sum += value;
            loss_n += 1;
            let ips = epoch_images as f64 / epoch_start.elapsed().as_secs_f64().max(1e-9);
            let report = StepReport {
                epoch,
                step,
                total_steps,
                loss: value,
                terms: if terms.is_empty() {
                    vec![(cfg.losses[0].kind.label().to_string(), value)]
                } else {
                    terms
                },
                images_per_s: ips,
                elapsed_s: elapsed(),
                eta_s: (total_steps - step) as f64 * b as f64 / ips.max(1e-9),
                shares,
            };
            log.write(&LogLine::Step(report.clone()))?;
            on_event(TrainEvent::Step(report));
        }
        drop(batches);
        on_event(TrainEvent::Stage(format!("Validating epoch {epoch}")));
        let valid = model.valid();
        let (mut report, preview) = validate(&valid, &a, &val_ctx, epoch)?;
        report.step = step;
        report.train_loss = loss_sum / loss_n.max(1) as f64;
        report.elapsed_s = elapsed();
        let any = valid.into_any();
        let notes = serde_json::json!({
            "run": cfg.name, "epoch": epoch, "val_psnr": report.val_psnr,
            "val_ssim": report.val_ssim, "loss": cfg.loss_label(),
        });
        // Saved once (one read-back of the weights); `last` and `best` are copies.
        let saved = a.run_dir.join(format!("checkpoints/epoch_{epoch:03}"));
        checkpoint::save(&any, a.spec, notes, &saved)?;
        checkpoint::copy(&saved, &a.run_dir.join("checkpoints/last"))?;
        if best.as_ref().is_none_or(|b| report.val_psnr > b.val_psnr) {
            checkpoint::copy(&saved, &a.run_dir.join("checkpoints/best"))?;
            best = Some(report.clone());
        }
        log.write(&LogLine::Epoch(report.clone()))?;
        // What a resume needs, written after the epoch's line so that a state on disk always
        // has its epoch in the log: weights (a copy), optimiser, then the small state file.
        checkpoint::copy(&saved, &a.run_dir.join("checkpoints/resume"))?;
        let optim_path = a.run_dir.join("checkpoints/resume_optim.bpk");
        let optim_tmp = a.run_dir.join("checkpoints/resume_optim.partial.bpk");
        optim.save(&optim_tmp).map_err(|e| {
            TrainError::file(
                &optim_path,
                format!("cannot save the optimiser state: {e:?}"),
            )
        })?;
        crate::atomic::sync_and_rename(&optim_tmp, &optim_path)
            .map_err(|e| TrainError::file(&optim_path, format!("cannot write: {}", e.problem)))?;
        let state = ResumeState {
            format: RESUME_FORMAT,
            epoch,
            step,
            rng: rng.state(),
            images,
            train_seconds,
            elapsed_s: elapsed(),
            best: best.clone(),
            last: Some(report.clone()),
        };
        let text =
            serde_json::to_string_pretty(&state).map_err(|e| TrainError::Config(e.to_string()))?;
        write_atomic(&ResumeState::path(a.run_dir), &text)?;
        on_event(TrainEvent::Epoch(report.clone()));
        on_event(TrainEvent::Preview(preview));
        last = Some(report);
        epochs_done = epoch;
    }
    if stopped {
        let notes = serde_json::json!({ "run": cfg.name, "stopped_at_step": step });
        checkpoint::save(
            &model.valid().into_any(),
            a.spec,
            notes,
            &a.run_dir.join("checkpoints/last"),
        )?;
    }
    let summary = RunSummary {
        name: cfg.name.clone(),
        model: cfg.model.label(),
        loss: cfg.loss_label(),
        direction: match cfg.direction {
            Direction::MrToCt => "MR -> CT".into(),
            Direction::CtToMr => "CT -> MR".into(),
            Direction::CtDenoise => "CT denoise".into(),
        },
        params,
        epochs_done,
        steps: step,
        seconds: elapsed(),
        images_per_s: images as f64 / train_seconds.max(1e-9),
        stopped,
        last,
        best,
        split: a.dataset.split_note.clone(),
        device: if a.replicas.len() > 1 {
            let names: Vec<&str> = a.replicas.iter().map(|r| r.label.as_str()).collect();
            format!("{} (data-parallel)", names.join(" + "))
        } else {
            crate::gpu::compute::label(a.device)
        },
    };
    let text =
        serde_json::to_string_pretty(&summary).map_err(|e| TrainError::Config(e.to_string()))?;
    write_atomic(&a.run_dir.join("summary.json"), &text)?;
    Ok(summary)
}

/// A non-finite loss stops the run with what to change.
fn check_finite(value: f64, step: usize) -> Result<(), TrainError> {
    if value.is_finite() {
        Ok(())
    } else {
        Err(TrainError::Config(format!(
            "the loss became {value} at step {}: lower the learning rate",
            step + 1
        )))
    }
}

/// The frozen loss networks of one device in a data-parallel run.
struct DeviceLoss {
    cls: Option<Classifier>,
    vgg: Option<crate::model::vgg::Vgg19>,
}

/// Where an epoch's batches come from: the shuffled slices in memory, or a stream of them read
/// from the index on worker threads.
enum EpochBatches {
    Memory(Vec<SliceRef>),
    Stream(BatchStream),
}

impl EpochBatches {
    /// The epoch's order, shuffled by `rng` (the same permutation in both cases); a stream's
    /// crops and augmentations draw from (seed, epoch) so that a resumed epoch reads the same.
    fn start(
        a: &LoopArgs<'_>,
        rng: &mut Rng,
        epoch: usize,
        steps: usize,
    ) -> Result<Self, TrainError> {
        match &a.dataset.stream {
            None => {
                let mut order = a.dataset.train.clone();
                rng.shuffle(&mut order);
                Ok(Self::Memory(order))
            }
            Some(plan) => {
                let mut order = plan.train.clone();
                rng.shuffle(&mut order);
                let settings = StreamSettings {
                    batch: a.cfg.batch_size,
                    patch: a.p,
                    augment: a.cfg.augment.clone(),
                    seed: a.cfg.seed ^ (epoch as u64).wrapping_mul(0xA24B_AED4_963E_E407),
                    workers: plan.workers,
                    prefetch: plan.prefetch,
                };
                BatchStream::start(plan.index.clone(), Arc::new(order), steps, settings)
                    .map(Self::Stream)
            }
        }
    }

    /// Batch `k`: (inputs, targets), [B, 1, P, P] flattened.
    fn next(
        &mut self,
        a: &LoopArgs<'_>,
        k: usize,
        rng: &mut Rng,
    ) -> Result<(Vec<f32>, Vec<f32>), TrainError> {
        match self {
            Self::Memory(order) => {
                let b = a.cfg.batch_size;
                let refs: Vec<SliceRef> =
                    (0..b).map(|i| order[(k * b + i) % order.len()]).collect();
                Ok(sample_batch(a.dataset, &refs, a.p, &a.cfg.augment, rng))
            }
            Self::Stream(stream) => match stream.next() {
                Some(batch) => batch.map(|b| (b.inputs, b.targets)),
                None => Err(TrainError::Config(format!(
                    "the batch stream ended before batch {k}"
                ))),
            },
        }
    }
}

/// Validation slices: up to `validation_slices`, evenly spaced over the validation set.
fn validation_refs(dataset: &Dataset, n: usize) -> Vec<SliceRef> {
    let v = &dataset.val;
    let n = n.clamp(1, v.len());
    (0..n).map(|i| v[(2 * i + 1) * v.len() / (2 * n)]).collect()
}

fn validate<M: SynthNet>(
    model: &M,
    a: &LoopArgs<'_>,
    ctx: &LossContext<'_>,
    epoch: usize,
) -> Result<(EpochReport, Preview), TrainError> {
    let m = a.cfg.multiple();
    let mut report = EpochReport {
        epoch,
        step: 0,
        train_loss: 0.0,
        val_loss: 0.0,
        val_psnr: 0.0,
        val_ssim: 0.0,
        val_mae: 0.0,
        val_tenengrad: 0.0,
        ref_tenengrad: 0.0,
        val_vif: None,
        elapsed_s: 0.0,
    };
    let mut vifs = Vec::new();
    let refs = validation_refs(a.dataset, a.cfg.validation_slices);
    let mut preview = None;
    // The preview shows the middle validation slice (mid-head rather than its top).
    let shown = refs.len() / 2;
    for (i, r) in refs.iter().enumerate() {
        let case = &a.dataset.cases[r.case];
        let (input, target, mask) = case.slice(r.z);
        let (nx, ny) = (case.nx, case.ny);
        // The whole slice, centred in a square the network accepts.
        let side = nx.max(ny).div_ceil(m) * m;
        let (ox, oy) = ((side - nx) / 2, (side - ny) / 2);
        let at = (-(ox as i64), -(oy as i64));
        let xs = crop(&input, (nx, ny), at, side, 0, false);
        let ys = crop(&target, (nx, ny), at, side, 0, false);
        let x = Tensor::<4>::from_data(TensorData::new(xs, [1, 1, side, side]), a.device);
        let y = Tensor::<4>::from_data(TensorData::new(ys, [1, 1, side, side]), a.device);
        let logits = model.logits(repeat_channels(x, a.cfg.channels()));
        let (loss, _) = ctx.loss(logits.clone(), y, false);
        report.val_loss += loss.into_scalar::<f32>() as f64;
        let out = crate::model::tensor_values(sigmoid(logits))?;
        // Undo the centred padding.
        let mut synthetic = vec![0f32; nx * ny];
        for yy in 0..ny {
            for xx in 0..nx {
                synthetic[xx + nx * yy] = out[(xx + ox) + side * (yy + oy)];
            }
        }
        report.val_psnr += psnr(&synthetic, &target, 1.0);
        report.val_ssim += ssim(&synthetic, &target, [nx, ny, 1], 1.0, None);
        report.val_tenengrad += tenengrad(&synthetic, nx, ny, 0.0);
        report.ref_tenengrad += tenengrad(&target, nx, ny, 0.0);
        let v = vif_scaled(&synthetic, &target, nx, ny, (0.0, 1.0));
        if v.is_finite() {
            vifs.push(v);
        }
        let span = (case.target_norm.high - case.target_norm.low) as f64;
        let (s, n) = synthetic
            .iter()
            .zip(&target)
            .zip(&mask)
            .filter(|(_, m)| **m)
            .fold((0.0, 0usize), |(s, n), ((a, b), _)| {
                (s + (*a as f64 - *b as f64).abs(), n + 1)
            });
        report.val_mae += span * s / n.max(1) as f64;
        if i == shown {
            preview = Some(Preview {
                epoch,
                nx,
                ny,
                input,
                synthetic,
                reference: target,
            });
        }
    }
    let k = refs.len().max(1) as f64;
    report.val_loss /= k;
    report.val_psnr /= k;
    report.val_ssim /= k;
    report.val_mae /= k;
    report.val_tenengrad /= k;
    report.ref_tenengrad /= k;
    report.val_vif = (!vifs.is_empty()).then(|| vifs.iter().sum::<f64>() / vifs.len() as f64);
    Ok((
        report,
        preview.unwrap_or_else(|| unreachable!("at least one slice")),
    ))
}
