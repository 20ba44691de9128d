//! What the panels ask for. UI code only draws and pushes [`Command`]s; they run here, at the
//! end of the frame, in the order they were pushed.

use super::SynthScopeApp;
use super::jobs::{LoadJob, LoadRequest, repaint};
use super::pair::Role;
use super::panels::dialogs::Dialog;
use super::panels::gradcam::real_and_synthetic_slices;
use super::viewer::auto_window;
use crate::train::runs::Run;
use crate::volume::CT_PRESETS;
use std::path::{Path, PathBuf};

/// A background task the user can cancel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Task {
    Load,
    Registration,
    Synthesis,
    Features,
    Gradcam,
    CamPair,
}

/// Pause, resume or stop the training run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum TrainControl {
    Pause,
    Resume,
    Stop,
}

/// Commands collected during the frame.
#[derive(Debug)]
pub(crate) enum Command {
    /// Load files, folders or the demo pair.
    Open(LoadRequest),
    /// Ask for files, or a folder, to open.
    PickFiles,
    PickFolder,
    /// Fit the views again.
    Reset,
    Quit,
    /// Ask for a file to read or write.
    Dialog(Dialog),
    /// Give a loaded volume a role in the pair (or none).
    SetRole(usize, Option<Role>),
    /// A CT window preset (index into `CT_PRESETS`) on the CT.
    CtPreset(usize),
    /// The robust window on the MR.
    AutoWindowMr,
    Cancel(Task),
    StartRegistration,
    UndoTransform,
    ResetTransform,
    LoadDemoModel,
    StartSynthesis,
    StartFeatures,
    StartGradcam,
    StartCamPair,
    LoadDemoClassifier,
    StartTraining,
    Training(TrainControl),
    ScanRuns,
    /// Load a run's checkpoint into the Synthesis panel.
    LoadRun(PathBuf),
    /// Continue an unfinished run folder from its last completed epoch.
    ResumeRun(PathBuf),
    SaveStudy(PathBuf),
    OpenResults(PathBuf),
    /// Read the edited study in the reading view.
    StartReading,
}

impl SynthScopeApp {
    /// Run the commands of this frame.
    pub(super) fn run_commands(&mut self, ctx: &egui::Context) {
        let commands = std::mem::take(&mut self.commands);
        if !commands.is_empty() {
            // What they change shows in the next frame.
            ctx.request_repaint();
        }
        for cmd in commands {
            match cmd {
                Command::Open(req) => {
                    if self.load_job.is_some() {
                        self.errors
                            .push("A load is already running; cancel it first.".into());
                    } else {
                        match LoadJob::start(req, repaint(ctx)) {
                            Ok(j) => self.load_job = Some(j),
                            Err(e) => self.errors.push(format!("Loading: {e}")),
                        }
                    }
                }
                Command::PickFiles | Command::PickFolder => {
                    let folder = matches!(cmd, Command::PickFolder);
                    let r = self.dialogs.pick(folder, repaint(ctx));
                    self.report(r);
                }
                Command::Reset => self.fit_view(),
                Command::Quit => ctx.send_viewport_cmd(egui::ViewportCommand::Close),
                Command::Dialog(d) => {
                    let r = self.dialogs.ask(d, repaint(ctx));
                    self.report(r);
                }
                Command::SetRole(i, r) => self.set_role(i, r),
                Command::CtPreset(i) => {
                    if let (Some(v), Some(p)) = (self.ct_volume().cloned(), CT_PRESETS.get(i)) {
                        self.viewer.set_window(&v, p.window);
                    }
                }
                Command::AutoWindowMr => {
                    if let Some(v) = self.mr_volume().cloned() {
                        self.viewer.set_window(&v, auto_window(&v));
                    }
                }
                Command::Cancel(task) => self.cancel(task),
                Command::StartRegistration => {
                    let r = self
                        .registration
                        .start(&self.pair, &self.volumes, repaint(ctx));
                    self.report(r);
                }
                Command::UndoTransform => self.pair.undo_transform(),
                Command::ResetTransform => self.pair.set_transform(None),
                Command::LoadDemoModel => self.load_demo_model(),
                Command::StartSynthesis => {
                    let r = self.synthesis.start(
                        &mut self.model,
                        &self.pair,
                        &self.volumes,
                        repaint(ctx),
                    );
                    self.report(r);
                }
                Command::StartFeatures => {
                    if !self.features.is_running() && self.synthesis.job.is_none() {
                        let r = self.model_input("Feature maps").and_then(|input| {
                            self.features.start(&mut self.model, input, repaint(ctx))
                        });
                        self.report(r);
                    }
                }
                Command::StartGradcam => {
                    if self.gradcam.job.is_none() && self.model.loaded.is_some() {
                        let r = self.model_input("Grad-CAM").and_then(|input| {
                            self.gradcam.start(&mut self.model, input, repaint(ctx))
                        });
                        self.report(r);
                    }
                }
                Command::StartCamPair => {
                    let slices = real_and_synthetic_slices(
                        &self.volumes,
                        self.synthesis.synthetic,
                        &self.model,
                        &self.pair,
                        self.viewer.view.crosshair,
                    );
                    let r = self.gradcam.start_pair(slices, repaint(ctx));
                    self.report(r);
                }
                Command::LoadDemoClassifier => {
                    let r = self.gradcam.load_demo_classifier();
                    self.report(r);
                }
                Command::StartTraining => self.start_training(ctx),
                Command::Training(c) => {
                    if let Some(job) = &self.training.job {
                        match c {
                            TrainControl::Pause => job.control.pause(),
                            TrainControl::Resume => job.control.resume(),
                            TrainControl::Stop => job.control.stop(),
                        }
                    }
                }
                Command::ScanRuns => self.training.scan_runs(),
                Command::LoadRun(dir) => self.load_run_checkpoint(&dir),
                Command::ResumeRun(dir) => {
                    let r = self.training.resume_run(dir, repaint(ctx));
                    self.report(r);
                }
                Command::SaveStudy(p) => self.study.save(&p),
                Command::OpenResults(p) => self.open_results(&p),
                Command::StartReading => {
                    if let Some(r) = self.study.reading(ctx) {
                        self.reading = Some(r);
                    }
                }
            }
        }
    }

    /// Cancel a running task (a model pass ends in the background; its result is dropped).
    fn cancel(&mut self, task: Task) {
        let progress = match task {
            Task::Load => self.load_job.as_ref().map(|j| j.job.progress()),
            Task::Registration => self.registration.job.as_ref().map(|j| j.progress()),
            Task::Synthesis => self.synthesis.job.as_ref().map(|j| j.progress()),
            Task::Features => self.features.progress(),
            Task::Gradcam => self.gradcam.job.as_ref().map(|j| j.progress()),
            Task::CamPair => self.gradcam.pair_job.as_ref().map(|j| j.progress()),
        };
        if let Some(p) = progress {
            p.cancel();
        }
    }

    /// Load a run's best (else last) checkpoint into the synthesis panel.
    fn load_run_checkpoint(&mut self, dir: &Path) {
        match Run::read(dir).ok().and_then(|r| r.checkpoint()) {
            Some(p) => {
                self.load_model(&p);
                self.synthesis.show = true;
            }
            None => self
                .errors
                .push(format!("{}: no checkpoint saved yet", dir.display())),
        }
    }
}
