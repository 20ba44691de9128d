//! The Training panel (configure, start / pause / resume / stop, live curves, a validation
//! preview) and the Runs view (overlay curves of run folders, their final table, load a run's
//! checkpoint for synthesis). Training runs on a worker thread on the shared device.

use super::jobs::{TrainData, TrainJob};
use super::*;
use crate::model::Direction;
use crate::train::runs::Run;
use crate::train::{
    DataSource, EpochReport, LossKind, LossTerm, ModelChoice, Preview, RunSummary, StepReport,
    TrainConfig, TrainEvent,
};

/// Where the Training panel takes its data from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DataChoice {
    /// The CT and MR loaded (and registered) in the viewer.
    Loaded,
    /// Phantom patients.
    Demo,
    /// A SynthRAD-style folder.
    Folder,
    /// As the run config file says (a pair of files).
    Config,
}

/// State of the Training panel and the Runs view.
pub struct TrainingState {
    /// Show the Training panel.
    pub show: bool,
    /// The run being configured (or running).
    pub cfg: TrainConfig,
    /// Data choice.
    pub data: DataChoice,
    /// Folder of patients (for `DataChoice::Folder`).
    pub folder: String,
    /// Where run folders go.
    pub runs_root: PathBuf,
    /// The running job.
    pub job: Option<TrainJob>,
    /// Steps of the current (or last) run.
    pub steps: Vec<StepReport>,
    /// Epochs of the current (or last) run.
    pub epochs: Vec<EpochReport>,
    /// Current stage.
    pub stage: String,
    /// Notes from the run (split, classifier accuracy).
    pub notes: Vec<String>,
    /// The last finished run.
    pub finished: Option<(PathBuf, Result<RunSummary, String>)>,
    preview: Option<(Preview, Vec<egui::TextureHandle>)>,
    /// UI frame times (ms) while the current run trains.
    pub frame_ms: Vec<f64>,
    /// Show the Runs view.
    pub show_runs: bool,
    /// Runs found under `runs_root`, and whether each is overlaid.
    pub runs: Vec<(Run, bool)>,
    runs_scanned: bool,
    /// Start training once the viewer's data has loaded (`--train`).
    pub start_pending: bool,
}

impl Default for TrainingState {
    fn default() -> Self {
        Self {
            show: false,
            cfg: TrainConfig {
                name: "mse-unet".into(),
                epochs: 4,
                patch: 96,
                model: ModelChoice::Unet {
                    base_width: 8,
                    levels: 4,
                },
                ..TrainConfig::default()
            },
            data: DataChoice::Demo,
            folder: String::new(),
            runs_root: PathBuf::from("runs"),
            job: None,
            steps: Vec::new(),
            epochs: Vec::new(),
            stage: String::new(),
            notes: Vec::new(),
            finished: None,
            preview: None,
            frame_ms: Vec::new(),
            show_runs: false,
            runs: Vec::new(),
            runs_scanned: false,
            start_pending: false,
        }
    }
}

/// A 0..1 image as grey, or a signed difference as the diverging map (-0.5..0.5).
fn preview_image(v: &[f32], w: usize, h: usize, signed: bool) -> egui::ColorImage {
    let table = if signed {
        Colormap::Diverging.table()
    } else {
        Colormap::Grey.table()
    };
    let rgba: Vec<u8> = v
        .iter()
        .flat_map(|x| {
            let t = if signed { x + 0.5 } else { *x };
            table[(t * 255.0).round().clamp(0.0, 255.0) as usize]
        })
        .collect();
    egui::ColorImage::from_rgba_unmultiplied([w, h], &rgba)
}

fn model_options() -> Vec<(String, ModelChoice)> {
    let mut v = vec![(
        "U-Net".to_string(),
        ModelChoice::Unet {
            base_width: 8,
            levels: 4,
        },
    )];
    for depth in [18, 34, 50, 101] {
        v.push((
            format!("DRUNet-{depth}"),
            ModelChoice::Drunet {
                depth,
                base_width: 64,
            },
        ));
    }
    v
}

impl TrainingState {
    /// Take a run config (from a file); `start`: open the panel and start it once loaded.
    pub fn set_config(&mut self, cfg: TrainConfig, start: bool) {
        self.data = match &cfg.data {
            DataSource::Demo { .. } => DataChoice::Demo,
            DataSource::Folder { path } => {
                self.folder = path.display().to_string();
                DataChoice::Folder
            }
            DataSource::Loaded { .. } => DataChoice::Loaded,
            DataSource::Pair { .. } => DataChoice::Config,
        };
        self.cfg = cfg;
        self.show = true;
        self.start_pending = start;
    }
}

impl SynthScopeApp {
    /// A unique run folder for the configured name under the runs root.
    fn next_run_dir(&self) -> PathBuf {
        let t = &self.training;
        let base = t.runs_root.join(&t.cfg.name);
        if !base.exists() {
            return base;
        }
        (2..)
            .map(|i| t.runs_root.join(format!("{}-{i}", t.cfg.name)))
            .find(|p| !p.exists())
            .unwrap_or(base)
    }

    /// Start training with the panel's settings.
    pub fn start_training(&mut self, ctx: &egui::Context) {
        if self.training.job.is_some() {
            return;
        }
        let mut cfg = self.training.cfg.clone();
        let data = match self.training.data {
            DataChoice::Loaded => {
                let (Some(ct), Some(mr)) = (self.ct_volume().cloned(), self.mr_volume().cloned())
                else {
                    self.errors.push(
                        "Training on the loaded pair needs a CT and an MR (series browser roles)."
                            .into(),
                    );
                    return;
                };
                cfg.data = DataSource::Loaded {
                    description: format!(
                        "CT \"{}\" and MR \"{}\"{}",
                        ct.meta.description,
                        mr.meta.description,
                        if self.mr_transform.is_some() {
                            ", registered"
                        } else {
                            ", unregistered"
                        }
                    ),
                };
                TrainData::Loaded {
                    ct,
                    mr,
                    transform: self.mr_transform,
                }
            }
            DataChoice::Config => TrainData::FromConfig,
            DataChoice::Demo => {
                if !matches!(cfg.data, DataSource::Demo { .. }) {
                    cfg.data = DataSource::Demo {
                        patients: 3,
                        small: false,
                    };
                }
                TrainData::FromConfig
            }
            DataChoice::Folder => {
                cfg.data = DataSource::Folder {
                    path: PathBuf::from(self.training.folder.trim()),
                };
                TrainData::FromConfig
            }
        };
        if let Err(e) = cfg.validate() {
            self.errors.push(format!("Training: {e}"));
            return;
        }
        let dir = self.next_run_dir();
        let t = &mut self.training;
        t.steps.clear();
        t.epochs.clear();
        t.notes.clear();
        t.frame_ms.clear();
        t.preview = None;
        t.finished = None;
        t.stage = "Preparing data".into();
        let c = ctx.clone();
        t.job = Some(TrainJob::start(cfg, data, dir, move || c.request_repaint()));
    }

    /// Take the training thread's events and result (called every frame).
    pub(super) fn poll_training(&mut self, ctx: &egui::Context) {
        let Some(job) = &self.training.job else {
            return;
        };
        let events = job.events();
        let done = job.poll();
        let dir = job.run_dir.clone();
        if let Some(ms) = self.frame_ms.back() {
            self.training.frame_ms.push(*ms);
        }
        for e in events {
            match e {
                TrainEvent::Stage(s) => self.training.stage = s,
                TrainEvent::Note(n) => self.training.notes.push(n),
                TrainEvent::Step(s) => self.training.steps.push(s),
                TrainEvent::Epoch(e) => self.training.epochs.push(e),
                TrainEvent::Preview(p) => {
                    let diff: Vec<f32> = p
                        .synthetic
                        .iter()
                        .zip(&p.reference)
                        .map(|(a, b)| a - b)
                        .collect();
                    let tex = [
                        (&p.input, false),
                        (&p.synthetic, false),
                        (&p.reference, false),
                        (&diff, true),
                    ]
                    .iter()
                    .enumerate()
                    .map(|(k, (v, signed))| {
                        ctx.load_texture(
                            format!("train-preview-{k}"),
                            preview_image(v, p.nx, p.ny, *signed),
                            egui::TextureOptions::LINEAR,
                        )
                    })
                    .collect();
                    self.training.preview = Some((p, tex));
                }
            }
        }
        if let Some(r) = done {
            if let Err(e) = &r {
                self.errors.push(format!("Training: {e}"));
            }
            self.training.stage = match &r {
                Ok(s) if s.stopped => "Stopped".into(),
                Ok(_) => "Finished".into(),
                Err(_) => "Failed".into(),
            };
            self.training.finished = Some((dir, r));
            self.training.job = None;
            self.scan_runs();
        }
    }

    /// Read every run folder under the runs root (keeping overlay choices).
    pub fn scan_runs(&mut self) {
        let root = &self.training.runs_root;
        let mut dirs: Vec<PathBuf> = std::fs::read_dir(root)
            .map(|rd| {
                rd.filter_map(|e| e.ok().map(|e| e.path()))
                    .filter(|p| p.join("metrics.jsonl").exists())
                    .collect()
            })
            .unwrap_or_default();
        dirs.sort();
        let old: Vec<(PathBuf, bool)> = self
            .training
            .runs
            .iter()
            .map(|(r, s)| (r.dir.clone(), *s))
            .collect();
        self.training.runs = dirs
            .iter()
            .filter_map(|d| Run::read(d).ok())
            .map(|r| {
                let sel = old
                    .iter()
                    .find(|(d, _)| *d == r.dir)
                    .is_none_or(|(_, s)| *s);
                (r, sel)
            })
            .collect();
    }

    /// Load a run's best (else last) checkpoint into the synthesis panel.
    pub fn load_run_checkpoint(&mut self, dir: &std::path::Path) {
        match Run::read(dir).ok().and_then(|r| r.checkpoint()) {
            Some(p) => {
                self.load_model(&p);
                self.show_synthesis = true;
            }
            None => self
                .errors
                .push(format!("{}: no checkpoint saved yet", dir.display())),
        }
    }

    pub(super) fn training_ui(&mut self, ctx: &egui::Context) {
        self.runs_ui(ctx);
        let mut open = self.training.show;
        if !open {
            return;
        }
        let mut start = false;
        let mut load: Option<PathBuf> = None;
        egui::Window::new("Training")
            .open(&mut open)
            .default_width(560.0)
            .vscroll(true)
            .show(ctx, |ui| {
                let running = self.training.job.is_some();
                let t = &self.training;
                ui.label(format!(
                    "{} · {} · {} · {} epochs × batch {} · lr {} · patch {}",
                    match t.cfg.direction {
                        Direction::MrToCt => "MR to CT",
                        Direction::CtToMr => "CT to MR",
                    },
                    t.cfg.model.label(),
                    t.cfg.loss_label(),
                    t.cfg.epochs,
                    t.cfg.batch_size,
                    t.cfg.learning_rate,
                    if t.cfg.patch == 0 {
                        "whole slice".to_string()
                    } else {
                        t.cfg.patch.to_string()
                    }
                ));
                let id = ui.make_persistent_id("train-settings-header");
                let mut state = egui::collapsing_header::CollapsingState::load_with_default_open(
                    ui.ctx(),
                    id,
                    !running,
                );
                if running && self.training.steps.len() == 1 {
                    // Make room for the curves once the run is under way.
                    state.set_open(false);
                }
                state
                    .show_header(ui, |ui| ui.strong("Settings"))
                    .body(|ui| ui.add_enabled_ui(!running, |ui| self.training_settings_ui(ui)));
                ui.separator();
                ui.horizontal(|ui| {
                    match &self.training.job {
                        None => {
                            if ui.button("Start").clicked() {
                                start = true;
                            }
                        }
                        Some(job) => {
                            if job.control.is_paused() {
                                if ui.button("Resume").clicked() {
                                    job.control.resume();
                                }
                            } else if ui.button("Pause").clicked() {
                                job.control.pause();
                            }
                            if ui.button("Stop").clicked() {
                                job.control.stop();
                            }
                        }
                    }
                    let dir = self
                        .training
                        .job
                        .as_ref()
                        .map(|j| j.run_dir.clone())
                        .or_else(|| self.training.finished.as_ref().map(|(d, _)| d.clone()));
                    if let Some(d) = dir {
                        ui.label(format!("run folder: {}", d.display()));
                        if d.join("checkpoints/last.bpk").exists()
                            && ui.button("Load into synthesis").clicked()
                        {
                            load = Some(d);
                        }
                    }
                });
                self.training_progress_ui(ui);
                self.training_curves_ui(ui);
                if let Some((p, tex)) = &self.training.preview {
                    ui.label(format!(
                        "Validation slice after epoch {}: input · synthetic · reference · synthetic − reference",
                        p.epoch
                    ));
                    ui.horizontal(|ui| {
                        for t in tex {
                            ui.add(egui::Image::new(t).fit_to_exact_size(egui::vec2(128.0, 128.0)));
                        }
                    });
                }
                ui.separator();
                if ui.button("Runs…").clicked() {
                    self.training.show_runs = true;
                    self.scan_runs();
                }
            });
        self.training.show = open;
        if start {
            self.start_training(ctx);
        }
        if let Some(d) = load {
            self.load_run_checkpoint(&d);
        }
    }

    fn training_settings_ui(&mut self, ui: &mut egui::Ui) {
        let t = &mut self.training;
        egui::Grid::new("train-settings")
            .num_columns(2)
            .spacing([12.0, 4.0])
            .show(ui, |ui| {
                let l = ui.label("Run name");
                ui.text_edit_singleline(&mut t.cfg.name).labelled_by(l.id);
                ui.end_row();
                ui.label("Data");
                ui.horizontal(|ui| {
                    ui.radio_value(&mut t.data, DataChoice::Loaded, "loaded pair");
                    ui.radio_value(&mut t.data, DataChoice::Demo, "demo phantoms");
                    ui.radio_value(&mut t.data, DataChoice::Folder, "folder of patients");
                });
                ui.end_row();
                match t.data {
                    DataChoice::Demo => {
                        let l = ui.label("Phantom patients");
                        let mut n = match t.cfg.data {
                            DataSource::Demo { patients, .. } => patients,
                            _ => 3,
                        };
                        ui.add(egui::DragValue::new(&mut n).range(1..=8)).labelled_by(l.id);
                        let small = matches!(t.cfg.data, DataSource::Demo { small: true, .. });
                        t.cfg.data = DataSource::Demo { patients: n, small };
                        ui.end_row();
                    }
                    DataChoice::Folder => {
                        let l = ui.label("Folder")
                            .on_hover_text("one sub-folder per patient with ct, mr and optional mask (NIfTI or DICOM)");
                        ui.text_edit_singleline(&mut t.folder).labelled_by(l.id);
                        ui.end_row();
                    }
                    DataChoice::Loaded => {}
                    DataChoice::Config => {
                        ui.label("Pair");
                        ui.label(format!("{:?}", t.cfg.data));
                        ui.end_row();
                    }
                }
                ui.label("Direction");
                ui.horizontal(|ui| {
                    ui.radio_value(&mut t.cfg.direction, Direction::MrToCt, "MR to CT");
                    ui.radio_value(&mut t.cfg.direction, Direction::CtToMr, "CT to MR");
                });
                ui.end_row();
                ui.label("Model");
                ui.horizontal(|ui| {
                    let label = t.cfg.model.label();
                    egui::ComboBox::from_label("network")
                        .selected_text(label)
                        .show_ui(ui, |ui| {
                            for (name, m) in model_options() {
                                let same = std::mem::discriminant(&m)
                                    == std::mem::discriminant(&t.cfg.model)
                                    && match (&m, &t.cfg.model) {
                                        (
                                            ModelChoice::Drunet { depth: a, .. },
                                            ModelChoice::Drunet { depth: b, .. },
                                        ) => a == b,
                                        _ => true,
                                    };
                                if ui.selectable_label(same, name).clicked() {
                                    t.cfg.model = m;
                                }
                            }
                        });
                    match &mut t.cfg.model {
                        ModelChoice::Unet { base_width, levels } => {
                            let l = ui.label("width");
                            ui.add(egui::DragValue::new(base_width).range(4..=64)).labelled_by(l.id);
                            let l = ui.label("levels");
                            ui.add(egui::DragValue::new(levels).range(2..=5)).labelled_by(l.id);
                        }
                        ModelChoice::Drunet { base_width, .. } => {
                            let l = ui.label("stem width");
                            ui.add(egui::DragValue::new(base_width).range(8..=64)).labelled_by(l.id);
                        }
                    }
                });
                ui.end_row();
                ui.label("Loss");
                ui.horizontal_wrapped(|ui| {
                    for kind in LossKind::ALL {
                        ui.horizontal(|ui| {
                            let pos = t.cfg.losses.iter().position(|l| l.kind == kind);
                            let mut on = pos.is_some();
                            let cb = ui.checkbox(&mut on, kind.label());
                            let cb_id = cb.id;
                            if cb.changed() {
                                match (on, pos) {
                                    (true, None) => t.cfg.losses.push(LossTerm::new(
                                        kind,
                                        if kind.needs_classifier() { 0.1 } else { 1.0 },
                                    )),
                                    (false, Some(i)) => {
                                        t.cfg.losses.remove(i);
                                    }
                                    _ => {}
                                }
                            }
                            if let Some(i) = t.cfg.losses.iter().position(|l| l.kind == kind) {
                                ui.add(
                                    egui::DragValue::new(&mut t.cfg.losses[i].weight)
                                        .speed(0.01)
                                        .range(0.0..=100.0)
                                        .prefix("× "),
                                ).labelled_by(cb_id);
                            }
                        });
                    }
                });
                ui.end_row();
                let l = ui.label("VGG-19 weights (optional)").on_hover_text(
                    "torchvision vgg19 state dict (.pth or .safetensors): the contextual loss then uses VGG-19 features instead of the MR/CT classifier's",
                );
                let mut vgg = t
                    .cfg
                    .vgg19
                    .as_ref()
                    .map(|p| p.display().to_string())
                    .unwrap_or_default();
                if ui.text_edit_singleline(&mut vgg).labelled_by(l.id).changed() {
                    t.cfg.vgg19 = (!vgg.trim().is_empty()).then(|| PathBuf::from(vgg.trim()));
                }
                ui.end_row();
                ui.label("Epochs / batch");
                ui.horizontal(|ui| {
                    let l = ui.label("epochs");
                    ui.add(egui::DragValue::new(&mut t.cfg.epochs).range(1..=1000)).labelled_by(l.id);
                    let l = ui.label("batch");
                    ui.add(egui::DragValue::new(&mut t.cfg.batch_size).range(1..=64)).labelled_by(l.id);
                });
                ui.end_row();
                let l = ui.label("Learning rate");
                ui.add(
                    egui::DragValue::new(&mut t.cfg.learning_rate)
                        .speed(1e-4)
                        .range(1e-6..=0.5),
                ).labelled_by(l.id);
                ui.end_row();
                let l = ui.label("Patch (0 = whole slice)");
                ui.add(egui::DragValue::new(&mut t.cfg.patch).range(0..=512)).labelled_by(l.id);
                ui.end_row();
                ui.label("Augmentation");
                ui.horizontal(|ui| {
                    ui.checkbox(&mut t.cfg.augment.rot90, "rotate 90/180/270°");
                    ui.checkbox(&mut t.cfg.augment.flip, "flip");
                });
                ui.end_row();
                ui.label("Validation share / seed");
                ui.horizontal(|ui| {
                    let l = ui.label("validation share");
                    ui.add(
                        egui::DragValue::new(&mut t.cfg.validation_fraction)
                            .speed(0.01)
                            .range(0.05..=0.9),
                    ).labelled_by(l.id);
                    let l = ui.label("seed");
                    ui.add(egui::DragValue::new(&mut t.cfg.seed)).labelled_by(l.id);
                });
                ui.end_row();
            });
    }

    fn training_progress_ui(&mut self, ui: &mut egui::Ui) {
        let t = &self.training;
        if t.job.is_none() && t.steps.is_empty() && t.finished.is_none() {
            return;
        }
        let paused = t.job.as_ref().is_some_and(|j| j.control.is_paused());
        match t.steps.last() {
            Some(s) => {
                ui.add(
                    egui::ProgressBar::new(s.step as f32 / s.total_steps.max(1) as f32).text(
                        format!(
                            "{}{} · epoch {} · step {}/{} · loss {:.4} · {:.2} images/s · ETA {}",
                            if paused { "paused · " } else { "" },
                            t.stage,
                            s.epoch,
                            s.step,
                            s.total_steps,
                            s.loss,
                            s.images_per_s,
                            fmt_secs(s.eta_s)
                        ),
                    ),
                );
            }
            None => {
                ui.horizontal(|ui| {
                    if t.job.is_some() {
                        ui.spinner();
                    }
                    ui.label(&t.stage);
                });
            }
        }
        if !t.frame_ms.is_empty() {
            let mean = t.frame_ms.iter().sum::<f64>() / t.frame_ms.len() as f64;
            ui.small(format!(
                "UI frame time while training: mean {mean:.1} ms over {} frames",
                t.frame_ms.len()
            ));
        }
        for n in &t.notes {
            ui.small(n);
        }
        if let Some((_, Ok(s))) = &t.finished {
            ui.label(format!(
                "{} after {} epochs ({} steps, {}, {:.2} images/s)",
                if s.stopped { "Stopped" } else { "Finished" },
                s.epochs_done,
                s.steps,
                fmt_secs(s.seconds),
                s.images_per_s
            ));
        }
    }

    fn training_curves_ui(&self, ui: &mut egui::Ui) {
        use egui_plot::{Legend, Line, Plot, PlotPoints, Points};
        let t = &self.training;
        if t.steps.is_empty() {
            return;
        }
        ui.columns(2, |cols| {
            let train: Vec<[f64; 2]> = t.steps.iter().map(|s| [s.step as f64, s.loss]).collect();
            let val: Vec<[f64; 2]> = t
                .epochs
                .iter()
                .map(|e| [e.step as f64, e.val_loss])
                .collect();
            Plot::new("train-loss")
                .height(150.0)
                .legend(Legend::default())
                .x_axis_label("step")
                .y_axis_label("loss")
                .show(&mut cols[0], |plot| {
                    plot.line(Line::new("training", PlotPoints::from(train)));
                    plot.line(Line::new("validation", PlotPoints::from(val.clone())));
                    plot.points(
                        Points::new("validation epochs", PlotPoints::from(val)).radius(3.0),
                    );
                });
            let psnr: Vec<[f64; 2]> = t
                .epochs
                .iter()
                .map(|e| [e.epoch as f64, e.val_psnr])
                .collect();
            let ssim: Vec<[f64; 2]> = t
                .epochs
                .iter()
                .map(|e| [e.epoch as f64, 100.0 * e.val_ssim])
                .collect();
            Plot::new("train-val")
                .height(150.0)
                .legend(Legend::default())
                .x_axis_label("epoch")
                .show(&mut cols[1], |plot| {
                    plot.line(Line::new("PSNR (dB)", PlotPoints::from(psnr)));
                    plot.line(Line::new("SSIM × 100", PlotPoints::from(ssim)));
                });
        });
    }

    fn runs_ui(&mut self, ctx: &egui::Context) {
        use egui_plot::{Legend, Line, Plot, PlotPoints};
        let mut open = self.training.show_runs;
        if !open {
            return;
        }
        let mut rescan = !self.training.runs_scanned;
        self.training.runs_scanned = true;
        let mut load = None;
        egui::Window::new("Runs")
            .open(&mut open)
            .default_width(640.0)
            .show(ctx, |ui| {
                ui.horizontal(|ui| {
                    ui.label(format!(
                        "Run folders under {}",
                        self.training.runs_root.display()
                    ));
                    if ui.button("Rescan").clicked() {
                        rescan = true;
                    }
                });
                if self.training.runs.is_empty() {
                    ui.label(
                        "No runs yet: train one in the Training panel or with `synthscope train`.",
                    );
                    return;
                }
                ui.columns(2, |cols| {
                    Plot::new("runs-loss")
                        .height(170.0)
                        .legend(Legend::default())
                        .x_axis_label("step")
                        .y_axis_label("training loss")
                        .show(&mut cols[0], |plot| {
                            for (r, on) in &self.training.runs {
                                if *on {
                                    let pts: Vec<[f64; 2]> =
                                        r.steps.iter().map(|s| [s.step as f64, s.loss]).collect();
                                    plot.line(Line::new(r.name(), PlotPoints::from(pts)));
                                }
                            }
                        });
                    Plot::new("runs-psnr")
                        .height(170.0)
                        .legend(Legend::default())
                        .x_axis_label("epoch")
                        .y_axis_label("validation PSNR (dB)")
                        .show(&mut cols[1], |plot| {
                            for (r, on) in &self.training.runs {
                                if *on {
                                    let pts: Vec<[f64; 2]> = r
                                        .epochs
                                        .iter()
                                        .map(|e| [e.epoch as f64, e.val_psnr])
                                        .collect();
                                    plot.line(Line::new(r.name(), PlotPoints::from(pts)));
                                }
                            }
                        });
                });
                egui::Grid::new("runs-table")
                    .striped(true)
                    .num_columns(9)
                    .show(ui, |ui| {
                        for h in [
                            "run (overlaid)",
                            "model",
                            "loss",
                            "epochs",
                            "PSNR",
                            "SSIM",
                            "MAE",
                            "Tenengrad",
                            "",
                        ] {
                            ui.strong(h);
                        }
                        ui.end_row();
                        for (r, on) in &mut self.training.runs {
                            let row = r.row();
                            ui.checkbox(on, &row.name);
                            ui.label(&row.model);
                            ui.label(&row.loss);
                            ui.label(format!(
                                "{}{}",
                                row.epochs,
                                if row.finished { "" } else { " (unfinished)" }
                            ));
                            ui.label(format!("{:.2} dB", row.psnr));
                            ui.label(format!("{:.3}", row.ssim));
                            ui.label(format!("{:.1}", row.mae));
                            ui.label(format!(
                                "{:.4} (real {:.4})",
                                row.tenengrad, row.ref_tenengrad
                            ));
                            if r.checkpoint().is_some() && ui.button("Load").clicked() {
                                load = Some(r.dir.clone());
                            }
                            ui.end_row();
                        }
                    });
            });
        self.training.show_runs = open;
        if !open {
            self.training.runs_scanned = false;
        }
        if rescan {
            self.scan_runs();
        }
        if let Some(d) = load {
            self.load_run_checkpoint(&d);
        }
    }
}

/// "3 min 20 s", "45 s".
fn fmt_secs(s: f64) -> String {
    if !s.is_finite() {
        return "–".into();
    }
    let s = s.round() as u64;
    if s >= 3600 {
        format!("{} h {} min", s / 3600, (s % 3600) / 60)
    } else if s >= 60 {
        format!("{} min {} s", s / 60, s % 60)
    } else {
        format!("{s} s")
    }
}
