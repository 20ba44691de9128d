//! The US -> MR tab's Train section: the main settings of [`UsMrTrainConfig`], a worker that
//! runs [`usmr::train_usmr`] (progress, Cancel through [`Control`], the loss as it goes), and
//! the finished run folder handed back to the tab, which loads it as its Load button does.
//!
//! State and work are plain Rust ([`UsMrTrainer::start`], [`UsMrTrainer::poll`],
//! [`UsMrTrainer::cancel`]); `ui` only draws and clicks.

use crate::app::jobs::{Job, Wake, Worker};
use crate::train::Control;
use crate::train::usmr::{self, EvalReport, UsMrEvent, UsMrSummary, UsMrTrainConfig};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// What a finished training job gives back: its summary, or why not.
type TrainResult = Result<UsMrSummary, String>;

/// A running US -> MR training.
struct Running {
    job: Job<TrainResult, UsMrEvent>,
    control: Arc<Control>,
    dir: PathBuf,
}

/// How a training ended, for the tab to act on.
#[derive(Clone, Debug)]
pub enum Finished {
    /// The run folder was written (also when stopped early: the weights so far are saved).
    Trained {
        /// The run folder.
        dir: PathBuf,
        /// The run's summary.
        summary: Box<UsMrSummary>,
    },
    /// It failed; the message says why.
    Failed(String),
}

/// The Train section's state.
pub struct UsMrTrainer {
    /// The run's settings (the fields the section shows; the rest keep their defaults).
    pub cfg: UsMrTrainConfig,
    /// The run folder typed (it must not hold a run yet).
    pub out: String,
    running: Option<Running>,
    /// (step, weighted network loss) of the current or last run.
    pub losses: Vec<[f64; 2]>,
    /// The critics' loss of the last step.
    pub critic_loss: Option<f64>,
    /// The last held-out evaluation of the current or last run.
    pub last_eval: Option<EvalReport>,
    /// The last run's outcome, in words.
    pub status: Option<String>,
}

impl Default for UsMrTrainer {
    fn default() -> Self {
        Self {
            cfg: UsMrTrainConfig::default(),
            out: "runs/us-mr".into(),
            running: None,
            losses: Vec::new(),
            critic_loss: None,
            last_eval: None,
            status: None,
        }
    }
}

impl UsMrTrainer {
    /// True while a run trains.
    pub fn is_running(&self) -> bool {
        self.running.is_some()
    }

    /// The running job's (stage, fraction done).
    pub fn progress(&self) -> Option<(String, f32)> {
        self.running.as_ref().map(|r| {
            let p = r.job.progress();
            (p.stage(), p.fraction())
        })
    }

    /// Train the settings into the run folder on a worker thread (on the compute device). An
    /// error, with nothing started, when a run trains already, the settings are invalid or the
    /// folder already holds a run.
    pub fn start(&mut self, wake: Wake) -> Result<(), String> {
        if self.running.is_some() {
            return Err("US -> MR: a training run is already running".into());
        }
        let out = self.out.trim();
        if out.is_empty() {
            return Err("US -> MR: type a run folder to train into".into());
        }
        let dir = PathBuf::from(out);
        if dir.join("summary.json").exists() || dir.join("usmr.json").exists() {
            return Err(format!(
                "US -> MR: {} already holds a run; choose another run folder (nothing was overwritten)",
                dir.display()
            ));
        }
        let mut cfg = self.cfg.clone();
        cfg.name = dir
            .file_name()
            .map(|s| s.to_string_lossy().to_string())
            .unwrap_or_else(|| "usmr".into());
        cfg.validate().map_err(|e| format!("US -> MR: {e}"))?;
        let control = Arc::new(Control::default());
        let c = control.clone();
        let d = dir.clone();
        let work = move |(), w: &Worker<UsMrEvent>| -> TrainResult {
            w.progress.start("Simulating the phantom patients", 1);
            let device = crate::gpu::compute_device().map_err(|e| e.to_string())?;
            let mut started = false;
            usmr::train_usmr(&cfg, &d, &device, &c, &mut |e| {
                if let UsMrEvent::Step { total, .. } = &e {
                    if !started {
                        w.progress.start("Training", *total);
                        started = true;
                    }
                    w.progress.step();
                }
                w.emit(e);
            })
            .map_err(|e| e.to_string())
        };
        let job = Job::spawn("us-mr train", (), wake, work)
            .map_err(|e| format!("US -> MR: {}", e.error))?;
        self.losses.clear();
        self.critic_loss = None;
        self.last_eval = None;
        self.status = None;
        self.running = Some(Running { job, control, dir });
        Ok(())
    }

    /// Ask the running run to stop after its current step (its weights so far are saved and
    /// loaded like a finished run's).
    pub fn cancel(&self) {
        if let Some(r) = &self.running {
            r.control.stop();
            r.job.cancel();
        }
    }

    /// Take the running job's events, and its outcome once it has ended (`timeout`: wait that
    /// long for it; None: only look).
    pub fn poll(&mut self, timeout: Option<Duration>) -> Option<Finished> {
        let r = self.running.as_ref()?;
        for e in r.job.events() {
            match e {
                UsMrEvent::Step {
                    step,
                    loss,
                    critic_loss,
                    ..
                } => {
                    self.losses.push([step as f64, loss]);
                    self.critic_loss = Some(critic_loss);
                }
                UsMrEvent::Eval(report) => self.last_eval = Some(report),
            }
        }
        let outcome = r.job.take(timeout)?;
        let Running { dir, .. } = self.running.take()?;
        let finished = match outcome {
            Ok(Ok(summary)) => {
                if summary.last.is_some() {
                    self.last_eval.clone_from(&summary.last);
                }
                self.status = Some(format!(
                    "{} {} of {} steps in {:.0} s into {}",
                    if summary.stopped {
                        "Stopped after"
                    } else {
                        "Trained"
                    },
                    summary.steps,
                    summary.config.steps,
                    summary.seconds,
                    dir.display()
                ));
                Finished::Trained {
                    dir,
                    summary: Box::new(summary),
                }
            }
            Ok(Err(e)) => Finished::Failed(format!("US -> MR training: {e}")),
            Err(e) => Finished::Failed(format!("US -> MR training: {e}")),
        };
        Some(finished)
    }

    /// The section's contents; true when Train was clicked (the tab starts it).
    pub(crate) fn ui(&mut self, ui: &mut egui::Ui) -> bool {
        let mut train = false;
        let idle = self.running.is_none();
        egui::CollapsingHeader::new("Train a new run")
            .id_salt("usmr-train")
            .default_open(true)
            .show(ui, |ui| {
                ui.add_enabled_ui(idle, |ui| self.settings_ui(ui));
                ui.horizontal(|ui| {
                    if let Some((stage, fraction)) = self.progress() {
                        ui.add(
                            egui::ProgressBar::new(fraction)
                                .desired_width(200.0)
                                .text(format!("{stage} {:.0}%", 100.0 * fraction)),
                        );
                        let stopping = self.running.as_ref().is_some_and(|r| r.job.is_cancelled());
                        if ui
                            .add_enabled(!stopping, egui::Button::new("Cancel"))
                            .clicked()
                        {
                            self.cancel();
                        }
                    } else if ui.button("Train").clicked() {
                        train = true;
                    }
                });
                self.loss_ui(ui);
            });
        train
    }

    fn settings_ui(&mut self, ui: &mut egui::Ui) {
        let c = &mut self.cfg;
        egui::Grid::new("usmr-train-settings")
            .num_columns(2)
            .show(ui, |ui| {
                let l = ui.label("Steps");
                ui.add(egui::DragValue::new(&mut c.steps).range(1..=100_000))
                    .labelled_by(l.id);
                ui.end_row();
                let l = ui.label("Width");
                ui.add(egui::DragValue::new(&mut c.model.width).range(2..=64))
                    .labelled_by(l.id)
                    .on_hover_text("channels at full resolution (x2 at 1/2, x4 at 1/4)");
                ui.end_row();
                let l = ui.label("Grid");
                ui.add(egui::DragValue::new(&mut c.grid).range(16..=256).speed(4.0))
                    .labelled_by(l.id)
                    .on_hover_text("image side in pixels, a multiple of 4");
                ui.end_row();
                let l = ui.label("Seed");
                ui.add(egui::DragValue::new(&mut c.seed)).labelled_by(l.id);
                ui.end_row();
                ui.label("Networks");
                ui.horizontal(|ui| {
                    ui.checkbox(&mut c.model.attention, "Cross-modal attention");
                    let mut neighbours = c.model.neighbours > 0;
                    if ui
                        .checkbox(&mut neighbours, "3D neighbours")
                        .on_hover_text("the ultrasound slices either side as extra input channels")
                        .changed()
                    {
                        c.model.neighbours = usize::from(neighbours);
                    }
                });
                ui.end_row();
                let l = ui.label("Train into");
                ui.text_edit_singleline(&mut self.out)
                    .labelled_by(l.id)
                    .on_hover_text("a new run folder; it loads into the panes below when done");
                ui.end_row();
            });
    }

    fn loss_ui(&self, ui: &mut egui::Ui) {
        if let Some(&[step, loss]) = self.losses.last() {
            ui.label(format!(
                "step {step:.0}: loss {loss:.4}{}",
                self.critic_loss
                    .map_or(String::new(), |c| format!(", critics {c:.4}"))
            ));
            let stride = self.losses.len().div_ceil(1000).max(1);
            let points: Vec<[f64; 2]> = self.losses.iter().step_by(stride).copied().collect();
            egui_plot::Plot::new("usmr-loss")
                .height(110.0)
                .x_axis_label("step")
                .y_axis_label("loss")
                .show(ui, |plot| {
                    plot.line(egui_plot::Line::new(
                        "network loss",
                        egui_plot::PlotPoints::from(points),
                    ));
                });
        }
        if let Some(r) = &self.last_eval {
            ui.label(format!(
                "held out, step {}: PSNR {:.2} dB, SSIM {:.3} in the probe's view (the ultrasound itself: {:.2} dB, {:.3})",
                r.step, r.psnr_fov, r.ssim_fov, r.us_psnr_fov, r.us_ssim_fov
            ));
        }
        if let Some(s) = &self.status {
            ui.label(s);
        }
    }
}
