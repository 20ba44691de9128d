//! The Training panel (configure, start / pause / resume / stop, live curves, a validation
//! preview) and the Runs view (overlay curves of run folders, their final table, load a run's
//! checkpoint for synthesis). Training runs on a worker thread on the shared device.

mod cyclegan;
mod device;
mod runs;
mod settings;

pub use cyclegan::CycleganPanel;
pub use device::ComputeTarget;

use crate::app::command::{Command, TrainControl};
use crate::app::jobs::{TrainData, TrainJob, Wake};
use crate::app::pair::Pair;
use crate::model::Direction;
use crate::train::runs::Run;
use crate::train::{
    DataSource, EpochReport, ModelChoice, Preview, RunSummary, StepReport, TrainConfig, TrainEvent,
};
use crate::volume::{Colormap, Volume};
use std::path::PathBuf;
use std::sync::Arc;

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
    /// Where runs compute (this machine or a remote server).
    pub compute: ComputeTarget,
    /// The CycleGAN (unpaired) mode.
    pub cyclegan: cyclegan::CycleganPanel,
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
            compute: ComputeTarget::default(),
            cyclegan: Default::default(),
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
            DataSource::Pair { .. } | DataSource::Varied { .. } | DataSource::LowDose { .. } => {
                DataChoice::Config
            }
        };
        self.cfg = cfg;
        self.show = true;
        self.start_pending = start;
    }
}

impl TrainingState {
    /// A unique run folder for the configured name under the runs root.
    fn next_run_dir(&self) -> PathBuf {
        let t = self;
        let base = t.runs_root.join(&t.cfg.name);
        if !base.exists() {
            return base;
        }
        (2..)
            .map(|i| t.runs_root.join(format!("{}-{i}", t.cfg.name)))
            .find(|p| !p.exists())
            .unwrap_or(base)
    }
}

impl TrainingState {
    /// Start training with the panel's settings (on the loaded `pair` when chosen).
    pub(crate) fn start(
        &mut self,
        pair: &Pair,
        volumes: &[Arc<Volume>],
        wake: Wake,
    ) -> Result<(), String> {
        if self.job.is_some() {
            return Ok(());
        }
        if self.cyclegan.enabled {
            return self.start_cyclegan(wake);
        }
        let mut cfg = self.cfg.clone();
        let data = match self.data {
            DataChoice::Loaded => {
                let Some((ct, mr)) = pair.both(volumes) else {
                    return Err(
                        "Training on the loaded pair needs a CT and an MR (series browser roles)."
                            .into(),
                    );
                };
                cfg.data = DataSource::Loaded {
                    description: format!(
                        "CT \"{}\" and MR \"{}\"{}",
                        ct.meta.description,
                        mr.meta.description,
                        if pair.mr_from_ct.is_some() {
                            ", registered"
                        } else {
                            ", unregistered"
                        }
                    ),
                };
                TrainData::Loaded {
                    ct,
                    mr,
                    transform: pair.mr_from_ct,
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
                    path: PathBuf::from(self.folder.trim()),
                };
                TrainData::FromConfig
            }
        };
        cfg.validate().map_err(|e| format!("Training: {e}"))?;
        let dir = self.next_run_dir();
        self.launch(cfg, data, dir, false, wake)
    }

    /// Continue the unfinished run in `dir` from its last completed epoch, with its own config
    /// (the curves restart from the run's log).
    pub(crate) fn resume_run(&mut self, dir: PathBuf, wake: Wake) -> Result<(), String> {
        if self.job.is_some() {
            return Err("Training: a run is already in progress".into());
        }
        if crate::train::cyclegan::CycleganConfig::is_cyclegan_file(&dir.join("config.toml")) {
            return self.resume_cyclegan_run(dir, wake);
        }
        let cfg = crate::train::TrainConfig::read(&dir.join("config.toml"))
            .map_err(|e| format!("Training: {e}"))?;
        crate::train::ResumeState::read(&dir).map_err(|e| format!("Training: {e}"))?;
        self.cfg = cfg.clone();
        self.launch(cfg, TrainData::FromConfig, dir, true, wake)
    }

    fn launch(
        &mut self,
        cfg: crate::train::TrainConfig,
        data: TrainData,
        dir: PathBuf,
        resume: bool,
        wake: Wake,
    ) -> Result<(), String> {
        let t = self;
        t.steps.clear();
        t.epochs.clear();
        t.notes.clear();
        t.frame_ms.clear();
        t.preview = None;
        t.finished = None;
        let remote = t.compute.remote_spec()?;
        t.stage = "Preparing data".into();
        t.job = Some(
            TrainJob::start_on(cfg, data, dir, resume, wake, remote)
                .map_err(|e| format!("Training: {e}"))?,
        );
        Ok(())
    }

    /// Take the training thread's events and result (every frame, which took `frame_ms`);
    /// why the run failed, once it has.
    pub(crate) fn poll(
        &mut self,
        ctx: &egui::Context,
        frame_ms: Option<f64>,
    ) -> Result<(), String> {
        let Some(job) = &self.job else {
            return Ok(());
        };
        // The result first: every event sent before it is then in the channel.
        let done = job.job.take(None);
        let events = job.job.events();
        let dir = job.run_dir.clone();
        if let Some(ms) = frame_ms {
            self.frame_ms.push(ms);
        }
        for e in events {
            match e {
                TrainEvent::Stage(s) => self.stage = s,
                TrainEvent::Note(n) => self.notes.push(n),
                TrainEvent::Step(s) => self.steps.push(s),
                TrainEvent::Epoch(e) => self.epochs.push(e),
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
                    self.preview = Some((p, tex));
                }
            }
        }
        self.cyclegan.poll(ctx);
        let Some(r) = done else {
            return Ok(());
        };
        let r = r.unwrap_or_else(|e| Err(e.to_string()));
        let failed = r.as_ref().err().map(|e| format!("Training: {e}"));
        self.stage = match &r {
            Ok(s) if s.stopped => "Stopped".into(),
            Ok(_) => "Finished".into(),
            Err(_) => "Failed".into(),
        };
        self.finished = Some((dir, r));
        self.job = None;
        self.scan_runs();
        failed.map_or(Ok(()), Err)
    }

    /// The Training panel and the Runs view.
    pub(crate) fn ui(&mut self, host: &mut egui::Ui, commands: &mut Vec<Command>) {
        let open = self.show;
        if !open {
            return;
        }
        crate::app::panels::body(host, |ui| {
            let running = self.job.is_some();
            let t = &*self;
            if t.cyclegan.enabled {
                let c = &t.cyclegan.cfg;
                ui.label(format!(
                    "CycleGAN MR <-> CT (unpaired) · ResNet generators ngf {}, {} blocks · PatchGAN ndf {}, {} layers · {} + {} decay epochs × batch {} · lr {} · {} px",
                    c.generator.ngf,
                    c.generator.blocks,
                    c.discriminator.ndf,
                    c.discriminator.layers,
                    c.epochs,
                    c.decay_epochs,
                    c.batch_size,
                    c.learning_rate,
                    c.image_size
                ));
            } else {
                ui.label(format!(
                    "{} · {} · {} · {} epochs × batch {} · lr {} · patch {}",
                    match t.cfg.direction {
                        Direction::MrToCt => "MR to CT",
                        Direction::CtToMr => "CT to MR",
                        Direction::CtDenoise => "CT denoise",
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
            }
            ui.horizontal_wrapped(|ui| {
                match &self.job {
                    None => {
                        if ui.button("Start").clicked() {
                            commands.push(Command::StartTraining);
                        }
                    }
                    Some(job) => {
                        if job.control.is_paused() {
                            if ui.button("Resume").clicked() {
                                commands.push(Command::Training(TrainControl::Resume));
                            }
                        } else if ui.button("Pause").clicked() {
                            commands.push(Command::Training(TrainControl::Pause));
                        }
                        if ui.button("Stop").clicked() {
                            commands.push(Command::Training(TrainControl::Stop));
                        }
                    }
                }
                let dir = self
                    .job
                    .as_ref()
                    .map(|j| j.run_dir.clone())
                    .or_else(|| self.finished.as_ref().map(|(d, _)| d.clone()));
                if let Some(d) = dir {
                    ui.label(format!("run folder: {}", d.display()));
                    if d.join("checkpoints/last.bpk").exists()
                        && ui.button("Load into synthesis").clicked()
                    {
                        commands.push(Command::LoadRun(d));
                    }
                }
            });
            let id = ui.make_persistent_id("train-settings-header");
            let mut state = egui::collapsing_header::CollapsingState::load_with_default_open(
                ui.ctx(),
                id,
                !running,
            );
            if running && self.steps.len() == 1 {
                // Make room for the curves once the run is under way.
                state.set_open(false);
            }
            state
                .show_header(ui, |ui| ui.strong("Settings"))
                .body(|ui| {
                    ui.add_enabled_ui(!running, |ui| {
                        if self.cyclegan.settings_ui(ui) {
                            self.settings_ui(ui)
                        }
                    })
                });
            ui.separator();
            self.progress_ui(ui);
            self.curves_ui(ui);
            self.cyclegan.results_ui(ui, &self.steps);
            if let Some((p, tex)) = &self.preview {
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
                self.show_runs = true;
                commands.push(Command::ScanRuns);
            }
        });
        self.show = open;
    }

    fn progress_ui(&self, ui: &mut egui::Ui) {
        let t = self;
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
        if let Some(s) = t.steps.last().filter(|s| s.shares.len() > 1) {
            let parts: Vec<String> = s
                .shares
                .iter()
                .map(|d| format!("{} {} samples {:.2} s", d.device, d.samples, d.seconds))
                .collect();
            ui.small(format!("Devices this step: {}", parts.join(" · ")));
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

    fn curves_ui(&self, ui: &mut egui::Ui) {
        use egui_plot::{Legend, Line, Plot, PlotPoints, Points};
        let t = self;
        if t.steps.is_empty() {
            return;
        }
        ui.columns(2, |cols| {
            // At most about a thousand points (and the last): the plot is tessellated in every
            // frame, and a long run has tens of thousands of steps.
            let stride = t.steps.len().div_ceil(1000).max(1);
            let mut train: Vec<[f64; 2]> = t
                .steps
                .iter()
                .step_by(stride)
                .map(|s| [s.step as f64, s.loss])
                .collect();
            if let Some(s) = t.steps.last()
                && !(t.steps.len() - 1).is_multiple_of(stride)
            {
                train.push([s.step as f64, s.loss]);
            }
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
