//! Training synthesis networks on the shared wgpu device (burn autodiff), headless or from the
//! app's Training panel: the same loop, the same run folder.
//!
//! A run folder holds `config.toml` (what ran), `metrics.jsonl` (one JSON line per step and per
//! epoch, appended as they happen), `checkpoints/epoch_NNN.{bpk,json}` plus `last` and `best`
//! (by validation PSNR), the in-run `classifier.{bpk,json}` when a loss needed one, and
//! `summary.json` (the final table row), each file written atomically.

pub mod config;
pub mod data;
pub mod losses;
pub mod runs;

pub use config::{DataSource, LossKind, LossTerm, ModelChoice, TrainConfig};
pub use data::{Case, Dataset};

use crate::analysis::{psnr, ssim, tenengrad};
use crate::model::checkpoint::{self, AnyModel, ModelSpec};
use crate::model::{Classifier, ClassifierConfig, Direction, Drunet, Unet};
use burn::module::Module;
use burn::nn::loss::CrossEntropyLossConfig;
use burn::optim::{AdamConfig, GradientsParams};
use burn::tensor::activation::sigmoid;
use burn::tensor::{Device, Int, Tensor, TensorData};
use data::{Rng, SliceRef, crop, origin};
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::{Duration, Instant};

/// Start / pause / stop, shared between the UI and the training thread.
#[derive(Debug, Default)]
pub struct Control(AtomicU8);

impl Control {
    const RUN: u8 = 0;
    const PAUSE: u8 = 1;
    const STOP: u8 = 2;

    /// Pause after the current step.
    pub fn pause(&self) {
        let _ = self
            .0
            .compare_exchange(Self::RUN, Self::PAUSE, Ordering::SeqCst, Ordering::SeqCst);
    }

    /// Resume a paused run.
    pub fn resume(&self) {
        let _ = self
            .0
            .compare_exchange(Self::PAUSE, Self::RUN, Ordering::SeqCst, Ordering::SeqCst);
    }

    /// Stop after the current step (the weights so far are saved).
    pub fn stop(&self) {
        self.0.store(Self::STOP, Ordering::SeqCst);
    }

    /// True while paused.
    pub fn is_paused(&self) -> bool {
        self.0.load(Ordering::SeqCst) == Self::PAUSE
    }

    /// True once stopped.
    pub fn is_stopped(&self) -> bool {
        self.0.load(Ordering::SeqCst) == Self::STOP
    }

    /// Block while paused; true if the run should stop.
    fn wait(&self) -> bool {
        while self.is_paused() {
            std::thread::sleep(Duration::from_millis(50));
        }
        self.is_stopped()
    }
}

/// One optimisation step.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct StepReport {
    /// Epoch (1-based).
    pub epoch: usize,
    /// Step (1-based, over the whole run).
    pub step: usize,
    /// Steps the run will take.
    pub total_steps: usize,
    /// The weighted loss.
    pub loss: f64,
    /// Each term's unweighted value, by label.
    pub terms: Vec<(String, f64)>,
    /// Training images per second (this epoch so far).
    pub images_per_s: f64,
    /// Seconds since the run started.
    pub elapsed_s: f64,
    /// Estimated seconds left.
    pub eta_s: f64,
}

/// End-of-epoch validation.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct EpochReport {
    /// Epoch (1-based).
    pub epoch: usize,
    /// Step at the end of the epoch.
    pub step: usize,
    /// Mean training loss over the epoch.
    pub train_loss: f64,
    /// The same weighted loss on the validation slices.
    pub val_loss: f64,
    /// PSNR (dB) on 0..1 images (data range 1), whole validation slices.
    pub val_psnr: f64,
    /// SSIM (scikit-image definition, data range 1).
    pub val_ssim: f64,
    /// Mean absolute error inside the head, in target units (HU for CT).
    pub val_mae: f64,
    /// Mean Tenengrad of the synthetic slices (0..1 units).
    pub val_tenengrad: f64,
    /// Mean Tenengrad of the real slices, for reference.
    pub ref_tenengrad: f64,
    /// Seconds since the run started.
    pub elapsed_s: f64,
}

/// A validation slice as the network sees it, refreshed each epoch.
#[derive(Clone, Debug)]
pub struct Preview {
    /// Epoch.
    pub epoch: usize,
    /// Width.
    pub nx: usize,
    /// Height.
    pub ny: usize,
    /// Input (0..1).
    pub input: Vec<f32>,
    /// Synthetic (0..1).
    pub synthetic: Vec<f32>,
    /// Reference (0..1).
    pub reference: Vec<f32>,
}

/// What the training thread reports.
#[derive(Clone, Debug)]
pub enum TrainEvent {
    /// A stage started ("Training the MR/CT classifier").
    Stage(String),
    /// A step finished.
    Step(StepReport),
    /// An epoch was validated (and its checkpoint saved).
    Epoch(EpochReport),
    /// A preview for the epoch.
    Preview(Preview),
    /// Something the user should know (split, classifier accuracy).
    Note(String),
}

/// The final row of a run (`summary.json`).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RunSummary {
    /// Run name.
    pub name: String,
    /// Network label.
    pub model: String,
    /// Loss label.
    pub loss: String,
    /// "MR -> CT" / "CT -> MR".
    pub direction: String,
    /// Trainable parameters (burn's count).
    pub params: usize,
    /// Epochs completed.
    pub epochs_done: usize,
    /// Steps taken.
    pub steps: usize,
    /// Training wall time (s), classifier included.
    pub seconds: f64,
    /// Mean training images per second.
    pub images_per_s: f64,
    /// Stopped before the last epoch.
    pub stopped: bool,
    /// The last epoch's validation.
    pub last: Option<EpochReport>,
    /// The epoch with the best validation PSNR.
    pub best: Option<EpochReport>,
    /// How training and validation were split.
    pub split: String,
    /// The device it ran on.
    pub device: String,
}

/// A line of `metrics.jsonl`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum LogLine {
    /// A step.
    Step(StepReport),
    /// An epoch.
    Epoch(EpochReport),
}

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

/// Write `text` to `path` atomically (temporary file, then rename).
pub fn write_atomic(path: &Path, text: &str) -> Result<(), String> {
    let tmp = path.with_extension("partial");
    std::fs::write(&tmp, text)
        .and_then(|_| std::fs::rename(&tmp, path))
        .map_err(|e| format!("{}: cannot write: {e}", path.display()))
}

/// Appends log lines, flushed as they come.
struct Log(std::fs::File, PathBuf);

impl Log {
    fn open(path: &Path) -> Result<Self, String> {
        let f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|e| format!("{}: cannot open: {e}", path.display()))?;
        Ok(Self(f, path.to_path_buf()))
    }

    fn write(&mut self, line: &LogLine) -> Result<(), String> {
        let text = serde_json::to_string(line).map_err(|e| e.to_string())?;
        writeln!(self.0, "{text}")
            .and_then(|_| self.0.flush())
            .map_err(|e| format!("{}: cannot append: {e}", self.1.display()))
    }
}

/// The class index of a modality ("MR" or "CT") in the MR/CT classifier: 0 = MR, 1 = CT.
pub fn class_of_modality(modality: &str) -> usize {
    usize::from(modality.eq_ignore_ascii_case("CT"))
}

/// The class index of the target modality in the MR/CT classifier.
fn class_of_target(direction: Direction) -> usize {
    match direction {
        Direction::MrToCt => 1,
        Direction::CtToMr => 0,
    }
}

/// The training patch side for `cfg` and `dataset`.
pub fn patch_size(cfg: &TrainConfig, dataset: &Dataset) -> usize {
    if cfg.patch > 0 {
        return cfg.patch;
    }
    let m = cfg.multiple();
    let side = dataset
        .cases
        .iter()
        .map(|c| c.nx.max(c.ny))
        .max()
        .unwrap_or(m);
    side.div_ceil(m) * m
}

/// A batch of patches: (inputs [B, 1, P, P], targets [B, 1, P, P]) flattened.
fn sample_batch(
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
fn repeat_channels(x: Tensor<4>, channels: usize) -> Tensor<4> {
    if channels == 1 {
        x
    } else {
        Tensor::cat(vec![x; channels], 1)
    }
}

/// Train the MR/CT classifier on the training slices (input modality vs target modality
/// patches) on the autodiff twin of `device` (the shared plain device). Returns it (on the plain
/// device) and its accuracy on validation patches.
pub fn train_classifier(
    dataset: &Dataset,
    steps: usize,
    p: usize,
    seed: u64,
    direction: Direction,
    device: &Device,
    control: &Control,
) -> Result<(Classifier, f64), String> {
    let ad = device.clone().autodiff();
    let mut model = ClassifierConfig::new().with_base_width(16).init(&ad);
    let mut optim = AdamConfig::new().init();
    let loss_fn = CrossEntropyLossConfig::new().init(&ad);
    let mut rng = Rng::new(seed ^ 0xC1A5_51F1);
    let half = 4usize;
    let aug = config::Augment::default();
    // Label 0 = MR, 1 = CT: inputs are one, targets the other.
    let target_class = class_of_target(direction) as i64;
    let label = |is_target: bool| {
        if is_target {
            target_class
        } else {
            1 - target_class
        }
    };
    for _ in 0..steps {
        if control.wait() {
            break;
        }
        let refs: Vec<SliceRef> = (0..half)
            .map(|_| dataset.train[rng.below(dataset.train.len())])
            .collect();
        let (xs, ys) = sample_batch(dataset, &refs, p, &aug, &mut rng);
        let mut images = xs;
        images.extend(ys);
        let n = 2 * half;
        let x = Tensor::<4>::from_data(TensorData::new(images, [n, 1, p, p]), &ad);
        let labels: Vec<i64> = (0..n).map(|i| label(i >= half)).collect();
        let y = Tensor::<1, Int>::from_data(TensorData::new(labels, [n]), &ad);
        let loss = loss_fn.forward(model.forward(x), y);
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        model = optim.step(2e-3, model, grads);
    }
    // Accuracy on validation patches (random crops, not augmented).
    let plain = model.valid();
    let mut correct = 0usize;
    let mut total = 0usize;
    let mut rng = Rng::new(seed ^ 0xACC);
    let none = config::Augment {
        rot90: false,
        flip: false,
    };
    for chunk in dataset.val.chunks(4).take(4) {
        let (xs, ys) = sample_batch(dataset, chunk, p, &none, &mut rng);
        let n = chunk.len();
        let mut images = xs;
        images.extend(ys);
        let x = Tensor::<4>::from_data(TensorData::new(images, [2 * n, 1, p, p]), device);
        let pred = plain.forward(x).argmax(1).into_data();
        for (i, c) in pred.iter::<i64>().enumerate() {
            correct += usize::from(c == label(i >= n));
            total += 1;
        }
    }
    Ok((plain, correct as f64 / total.max(1) as f64))
}

/// Everything the loss needs besides prediction and target.
struct LossContext<'a> {
    terms: &'a [LossTerm],
    classifier: Option<&'a Classifier>,
    vgg: Option<&'a crate::model::vgg::Vgg19>,
    class: usize,
}

impl LossContext<'_> {
    /// Weighted sum and each term's value (for logging, when `values`).
    fn loss(
        &self,
        logits: Tensor<4>,
        target: Tensor<4>,
        values: bool,
    ) -> (Tensor<1>, Vec<(String, f64)>) {
        let pred = sigmoid(logits.clone());
        let mut total: Option<Tensor<1>> = None;
        let mut parts = Vec::new();
        for t in self.terms {
            let v = match t.kind {
                LossKind::Mse => losses::mse(pred.clone(), target.clone()),
                LossKind::L1 => losses::l1(pred.clone(), target.clone()),
                LossKind::Bce => losses::bce_with_logits(logits.clone(), target.clone()),
                LossKind::Ssim => losses::ssim_loss(pred.clone(), target.clone()),
                LossKind::Contextual if self.vgg.is_some() => {
                    let vgg = self.vgg.unwrap_or_else(|| unreachable!());
                    let layer = t.layer.unwrap_or(15).min(15);
                    losses::contextual(
                        vgg.features(pred.clone(), layer),
                        vgg.features(target.clone(), layer).detach(),
                        t.h.unwrap_or(0.5),
                    )
                }
                LossKind::Contextual | LossKind::GradcamGuided | LossKind::ActivationWeighted => {
                    let c = self.classifier.unwrap_or_else(|| unreachable!("checked"));
                    match t.kind {
                        LossKind::Contextual => losses::contextual(
                            c.features_at(pred.clone(), t.layer()),
                            c.features_at(target.clone(), t.layer()).detach(),
                            t.h.unwrap_or(0.5),
                        ),
                        LossKind::GradcamGuided => losses::gradcam_guided(
                            c,
                            pred.clone(),
                            target.clone(),
                            self.class,
                            t.layer(),
                        ),
                        _ => {
                            let w = losses::activation_weights(
                                c,
                                target.clone(),
                                self.class,
                                t.layer(),
                            );
                            losses::activation_weighted(pred.clone(), target.clone(), w)
                        }
                    }
                }
            };
            if values {
                parts.push((
                    t.kind.label().to_string(),
                    v.clone().into_scalar::<f32>() as f64,
                ));
            }
            let w = v * t.weight;
            total = Some(match total {
                Some(s) => s + w,
                None => w,
            });
        }
        (
            total.unwrap_or_else(|| unreachable!("validated: terms not empty")),
            parts,
        )
    }
}

/// Train the run's MR/CT classifier on `dataset`'s training slices (`cfg.classifier_steps`
/// steps of `p`² patches), save it as `run_dir/classifier.{bpk,json}` with its validation
/// accuracy, and return it.
pub fn classifier_for_run(
    cfg: &TrainConfig,
    dataset: &Dataset,
    p: usize,
    run_dir: &Path,
    device: &Device,
    control: &Control,
    on_event: &mut dyn FnMut(TrainEvent),
) -> Result<Classifier, String> {
    on_event(TrainEvent::Stage("Training the MR/CT classifier".into()));
    let (c, acc) = train_classifier(
        dataset,
        cfg.classifier_steps,
        p,
        cfg.seed,
        cfg.direction,
        device,
        control,
    )?;
    let spec = ModelSpec::Classifier(ClassifierConfig::new().with_base_width(16));
    let any = AnyModel::Classifier(c);
    std::fs::create_dir_all(run_dir)
        .map_err(|e| format!("{}: cannot create the folder: {e}", run_dir.display()))?;
    checkpoint::save(
        &any,
        &spec,
        serde_json::json!({ "run": cfg.name, "validation_accuracy": acc,
            "classes": ["MR", "CT"], "steps": cfg.classifier_steps, "patch": p }),
        &run_dir.join("classifier"),
    )?;
    on_event(TrainEvent::Note(format!(
        "MR/CT classifier: {:.0}% correct on validation patches",
        100.0 * acc
    )));
    match any {
        AnyModel::Classifier(c) => Ok(c),
        _ => unreachable!("built as a classifier above"),
    }
}

/// Train `cfg` on `dataset`, writing the run folder `run_dir`. `device` is the shared plain
/// device; training uses its autodiff twin. Events go to `on_event` as they happen.
pub fn train(
    cfg: &TrainConfig,
    dataset: &Dataset,
    run_dir: &Path,
    device: &Device,
    control: &Control,
    on_event: &mut dyn FnMut(TrainEvent),
) -> Result<RunSummary, String> {
    cfg.validate()?;
    if dataset.train.is_empty() || dataset.val.is_empty() {
        return Err("the data gave no training or no validation slices".into());
    }
    std::fs::create_dir_all(run_dir.join("checkpoints"))
        .map_err(|e| format!("{}: cannot create the run folder: {e}", run_dir.display()))?;
    write_atomic(&run_dir.join("config.toml"), &cfg.to_toml())?;
    let t0 = Instant::now();
    let ad = device.clone().autodiff();
    device.seed(cfg.seed);
    let p = patch_size(cfg, dataset);
    on_event(TrainEvent::Note(format!("Split {}", dataset.split_note)));

    let needs_classifier = cfg.losses.iter().any(|t| {
        t.kind.needs_classifier() && !(t.kind == LossKind::Contextual && cfg.vgg19.is_some())
    });
    let vgg = match &cfg.vgg19 {
        Some(p) if cfg.losses.iter().any(|t| t.kind == LossKind::Contextual) => {
            on_event(TrainEvent::Stage("Loading VGG-19".into()));
            Some(crate::model::vgg::Vgg19::load_torchvision(p, device)?)
        }
        _ => None,
    };
    let classifier: Option<Classifier> = if !needs_classifier {
        None
    } else if let Some(path) = &cfg.classifier {
        match checkpoint::load(path, device)? {
            (AnyModel::Classifier(c), _) => Some(c),
            _ => return Err(format!("{}: not a classifier checkpoint", path.display())),
        }
    } else {
        Some(classifier_for_run(
            cfg, dataset, p, run_dir, device, control, on_event,
        )?)
    };
    let spec = cfg.model_spec(p);
    let model = match &cfg.init_from {
        Some(path) => {
            let (m, meta) = checkpoint::load(path, &ad)?;
            if !matches!(
                (&meta.model, &spec),
                (ModelSpec::Unet(_), ModelSpec::Unet(_))
                    | (ModelSpec::Drunet(_), ModelSpec::Drunet(_))
            ) {
                return Err(format!(
                    "{}: its network ({:?}) is not the run's ({})",
                    path.display(),
                    meta.model,
                    cfg.model.label()
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
        spec: &spec,
        p,
        classifier: classifier.as_ref(),
        vgg: vgg.as_ref(),
        control,
        t0,
    };
    match model {
        AnyModel::Unet(m) => run_loop(m, args, on_event),
        AnyModel::Drunet(m) => run_loop(m, args, on_event),
        AnyModel::Classifier(_) => {
            Err("a classifier cannot be trained as a synthesis network".into())
        }
    }
}

struct LoopArgs<'a> {
    cfg: &'a TrainConfig,
    dataset: &'a Dataset,
    run_dir: &'a Path,
    device: &'a Device,
    ad: &'a Device,
    spec: &'a ModelSpec,
    p: usize,
    classifier: Option<&'a Classifier>,
    vgg: Option<&'a crate::model::vgg::Vgg19>,
    control: &'a Control,
    t0: Instant,
}

fn run_loop<M: SynthNet>(
    mut model: M,
    a: LoopArgs<'_>,
    on_event: &mut dyn FnMut(TrainEvent),
) -> Result<RunSummary, String> {
    let cfg = a.cfg;
    let mut log = Log::open(&a.run_dir.join("metrics.jsonl"))?;
    let mut optim = AdamConfig::new().init();
    let mut rng = Rng::new(cfg.seed);
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
        let full = a.dataset.train.len().div_ceil(b);
        cfg.steps_per_epoch.map_or(full, |s| s.min(full).max(1))
    };
    let total_steps = per_epoch * cfg.epochs;
    let params = model.num_params();
    let mut step = 0usize;
    let mut best: Option<EpochReport> = None;
    let mut last: Option<EpochReport> = None;
    let mut images = 0usize;
    let mut train_seconds = 0.0;
    let mut stopped = false;
    let mut epochs_done = 0;
    'epochs: for epoch in 1..=cfg.epochs {
        on_event(TrainEvent::Stage(format!("Epoch {epoch}/{}", cfg.epochs)));
        let mut order = a.dataset.train.clone();
        rng.shuffle(&mut order);
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
            let refs: Vec<SliceRef> = (0..b).map(|i| order[(k * b + i) % order.len()]).collect();
            let (xs, ys) = sample_batch(a.dataset, &refs, a.p, &cfg.augment, &mut rng);
            let x = Tensor::<4>::from_data(TensorData::new(xs, [b, 1, a.p, a.p]), a.ad);
            let y = Tensor::<4>::from_data(TensorData::new(ys, [b, 1, a.p, a.p]), a.ad);
            let logits = model.logits(repeat_channels(x, channels));
            let (loss, terms) = train_ctx.loss(logits, y, cfg.losses.len() > 1);
            let value = loss.clone().into_scalar::<f32>() as f64;
            if !value.is_finite() {
                return Err(format!(
                    "the loss became {value} at step {}: lower the learning rate",
                    step + 1
                ));
            }
            let grads = GradientsParams::from_grads(loss.backward(), &model);
            model = optim.step(cfg.learning_rate, model, grads);
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
                elapsed_s: a.t0.elapsed().as_secs_f64(),
                eta_s: (total_steps - step) as f64 * b as f64 / ips.max(1e-9),
            };
            log.write(&LogLine::Step(report.clone()))?;
            on_event(TrainEvent::Step(report));
        }
        on_event(TrainEvent::Stage(format!("Validating epoch {epoch}")));
        let valid = model.valid();
        let (mut report, preview) = validate(&valid, &a, &val_ctx, epoch)?;
        report.step = step;
        report.train_loss = loss_sum / loss_n.max(1) as f64;
        report.elapsed_s = a.t0.elapsed().as_secs_f64();
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
        },
        params,
        epochs_done,
        steps: step,
        seconds: a.t0.elapsed().as_secs_f64(),
        images_per_s: images as f64 / train_seconds.max(1e-9),
        stopped,
        last,
        best,
        split: a.dataset.split_note.clone(),
        device: crate::gpu::shared()
            .map(|g| g.report.summary())
            .unwrap_or_else(|e| e.to_string()),
    };
    let text = serde_json::to_string_pretty(&summary).map_err(|e| e.to_string())?;
    write_atomic(&a.run_dir.join("summary.json"), &text)?;
    Ok(summary)
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
) -> Result<(EpochReport, Preview), String> {
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
        elapsed_s: 0.0,
    };
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
        let out = sigmoid(logits).into_data();
        let out = out.as_slice::<f32>().map_err(|e| format!("{e:?}"))?;
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
    Ok((
        report,
        preview.unwrap_or_else(|| unreachable!("at least one slice")),
    ))
}
