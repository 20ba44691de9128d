//! What the panels ask for. UI code only draws and pushes [`Command`]s; they run here, at the
//! end of the frame, in the order they were pushed.

use super::SynthScopeApp;
use super::jobs::{LoadJob, LoadRequest, repaint};
use super::pair::Role;
use super::panels::dialogs::Dialog;
use super::viewer::auto_window;
use crate::volume::CT_PRESETS;
use std::path::PathBuf;

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
                Command::PickFiles => self.pick_files(ctx, false),
                Command::PickFolder => self.pick_files(ctx, true),
                Command::Reset => self.fit_view(),
                Command::Quit => ctx.send_viewport_cmd(egui::ViewportCommand::Close),
                Command::Dialog(d) => self.open_dialog(ctx, d),
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
                Command::StartRegistration => self.start_registration(ctx),
                Command::UndoTransform => self.pair.undo_transform(),
                Command::ResetTransform => self.pair.set_transform(None),
                Command::LoadDemoModel => self.load_demo_model(),
                Command::StartSynthesis => self.start_synthesis(ctx),
                Command::StartFeatures => self.start_features(ctx),
                Command::StartGradcam => self.start_gradcam(ctx),
                Command::StartCamPair => self.start_cam_pair(ctx),
                Command::LoadDemoClassifier => self.load_demo_classifier(),
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
                Command::SaveStudy(p) => self.save_study(&p),
                Command::OpenResults(p) => self.open_results(&p),
                Command::StartReading => self.start_reading(ctx),
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
}
