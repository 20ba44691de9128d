//! The eframe application: the loaded volumes, the CT/MR pair, the linked views and the job
//! handles, with one state struct per panel. UI code only draws and collects [`Command`]s;
//! they run at the end of the frame.

mod autoscroll;
mod command;
pub mod jobs;
mod model_slot;
mod pair;
pub mod panels;
pub mod viewer;
pub mod workspace;

pub use autoscroll::FrameStats;
use command::Command;
pub use model_slot::{Checkpoint, ModelSlot, Slot};
pub use pair::{Pair, Role};
pub use panels::study_reading::StudyOptions;
pub use viewer::Display;

use crate::gpu::{self, AdapterReport};
use crate::io::LoadError;
use crate::volume::Volume;
use jobs::{LoadJob, LoadRequest, repaint};
use panels::chrome::{Diagnostics, activity_ui};
use panels::dialogs::Dialogs;
use panels::features::FeatureState;
use panels::gradcam::GradcamState;
use panels::registration::RegistrationState;
use panels::study_reading::ReadingState;
use panels::study_setup::StudyTools;
use panels::synthesis::{ModelInput, SynthesisState, model_input_at};
use panels::training::TrainingState;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use viewer::Viewer;
use viewer::view::ViewState;

/// How the app starts.
#[derive(Clone, Debug)]
pub struct AppOptions {
    /// Files or folders to open; empty means the demo pair.
    pub paths: Vec<PathBuf>,
    /// Use the small demo grids (tests).
    pub small_demo: bool,
    /// Run the GPU self-test at start-up.
    pub self_test: bool,
    /// Scroll one slice per frame for this many frames, print frame times, then quit (benchmark).
    pub autoscroll_frames: Option<usize>,
    /// Open the Training panel with this run config and start it once the data is loaded.
    pub train_config: Option<PathBuf>,
    /// Run a reader study (the reading view instead of the viewer).
    pub study: Option<StudyOptions>,
    /// Save the three panes as this PNG once the data is shown, then quit.
    pub screenshot: Option<PathBuf>,
}

impl Default for AppOptions {
    fn default() -> Self {
        Self {
            paths: Vec::new(),
            small_demo: false,
            self_test: true,
            autoscroll_frames: None,
            train_config: None,
            study: None,
            screenshot: None,
        }
    }
}

/// The SynthScope application.
pub struct SynthScopeApp {
    /// Loaded volumes (series).
    pub volumes: Vec<Arc<Volume>>,
    /// Which volumes are the CT and the MR, and the registration between them.
    pub pair: Pair,
    /// The linked panes and their display settings.
    pub viewer: Viewer,
    /// Messages not yet dismissed (errors, and what finished outside a frame).
    pub errors: Vec<String>,
    /// The synthesis network the Synthesis, Feature-map and Grad-CAM panels share.
    pub model: ModelSlot,
    /// The Registration panel.
    pub registration: RegistrationState,
    /// The Synthesis panel.
    pub synthesis: SynthesisState,
    /// The Feature-map window.
    pub features: FeatureState,
    /// The Training panel and Runs view.
    pub training: TrainingState,
    /// The Grad-CAM window.
    pub gradcam: GradcamState,
    /// The reader-study reading view, when the app runs a study.
    pub reading: Option<ReadingState>,
    /// Study setup and results windows.
    pub study: StudyTools,
    /// The running load, if any.
    load_job: Option<LoadJob>,
    /// The Diagnostics window: the adapter, the self-test, frame times.
    diagnostics: Diagnostics,
    /// PACS servers, Open from PACS, the local study database.
    pub pacs: panels::pacs::PacsState,
    /// The Experiments view.
    pub experiments: panels::experiments::ExperimentsState,
    /// The US -> MR window.
    pub usmr: panels::usmr::UsMrState,
    /// Show the series browser.
    show_browser: bool,
    /// The dock of panels around the views, and the saved arrangement.
    pub workspace: workspace::Workspace,
    /// Native file dialogs waiting for an answer.
    dialogs: Dialogs,
    commands: Vec<Command>,
    /// Messages from work that finished outside a frame (a saved screenshot).
    async_messages: Arc<Mutex<Vec<String>>>,
    /// The egui context (for work started outside a frame, e.g. a screenshot after a dialog).
    ctx: Option<egui::Context>,
    autoscroll: Option<autoscroll::Autoscroll>,
    /// `--screenshot`: the file and the frames drawn since the data arrived.
    screenshot_at_start: Option<(PathBuf, u32)>,
}

impl SynthScopeApp {
    /// Build the app from eframe's creation context.
    pub fn new(cc: &eframe::CreationContext<'_>, options: AppOptions) -> Self {
        let ctx = cc.egui_ctx.clone();
        // Background work yields to drawing (workers, and rayon's pool burn computes on).
        jobs::lower_pool_priority();
        let adapter = cc
            .wgpu_render_state
            .as_ref()
            .map(|rs| AdapterReport::from_adapter(&rs.adapter));
        let request = if options.paths.is_empty() {
            if options.small_demo {
                LoadRequest::SmallDemo
            } else {
                LoadRequest::Demo
            }
        } else {
            LoadRequest::Paths(options.paths.clone())
        };
        let mut errors = Vec::new();
        // A reader study loads its own cases; the viewer's data stays out of sight.
        let load_job = if options.study.is_none() {
            LoadJob::start(request, repaint(&ctx))
                .map_err(|e| errors.push(format!("Loading: {e}")))
                .ok()
        } else {
            None
        };
        let reading = options.study.clone().map(|s| ReadingState::new(s, &ctx));
        // The compute device is chosen off the UI thread: a first start measures it (about
        // 1.5 s here), and the status bar says so meanwhile.
        if crate::gpu::compute_if_chosen().is_none() {
            let wake = repaint(&ctx);
            let started = jobs::spawn("compute-device", move || {
                let _ = crate::gpu::compute();
                wake();
            });
            if let Err(e) = started {
                errors.push(format!("Choosing the compute device: {e}"));
            }
        }
        let self_test_job = if options.self_test {
            jobs::start_self_test(repaint(&ctx))
                .map_err(|e| errors.push(format!("GPU self-test: {e}")))
                .ok()
        } else {
            None
        };
        let mut training = TrainingState::default();
        if let Some(path) = &options.train_config {
            match crate::train::TrainConfig::read(path) {
                Ok(cfg) => training.set_config(cfg, true),
                Err(e) => errors.push(format!("Training: {e}")),
            }
        }
        let demo = options.paths.is_empty() && !options.small_demo && options.study.is_none();
        let mut app = Self {
            volumes: Vec::new(),
            pair: Pair::default(),
            viewer: Viewer::new(cc.wgpu_render_state.clone()),
            errors,
            model: ModelSlot::default(),
            registration: RegistrationState::default(),
            synthesis: SynthesisState::default(),
            features: FeatureState::default(),
            training,
            gradcam: GradcamState::default(),
            reading,
            study: StudyTools::default(),
            load_job,
            diagnostics: Diagnostics::new(adapter, self_test_job),
            pacs: Default::default(),
            experiments: Default::default(),
            usmr: Default::default(),
            show_browser: false,
            workspace: workspace::Workspace::default(),
            dialogs: Dialogs::default(),
            commands: Vec::new(),
            async_messages: Default::default(),
            ctx: Some(ctx),
            autoscroll: options.autoscroll_frames.map(autoscroll::Autoscroll::new),
            screenshot_at_start: options.screenshot.clone().map(|p| (p, 0)),
        };
        if demo {
            // First-run synthesis shows a trained network's output, never an untrained one.
            app.load_demo_model();
            let r = app.gradcam.load_demo_classifier();
            app.report(r);
        }
        app
    }

    /// Load files or folders in the background (as File > Open and drag-and-drop do).
    pub fn open(&mut self, paths: Vec<PathBuf>) {
        self.commands.push(Command::Open(LoadRequest::Paths(paths)));
    }

    /// Show what went wrong, if anything.
    fn report(&mut self, r: Result<(), String>) {
        if let Err(e) = r {
            self.errors.push(e);
        }
    }

    /// Load the demo model embedded in the binary (see `assets/demo-model`).
    pub fn load_demo_model(&mut self) {
        let r = self.model.load_demo();
        self.report(r);
    }

    /// Load a synthesis checkpoint (either file of the .json/.bpk pair) onto the shared device.
    pub fn load_model(&mut self, path: &Path) {
        let r = self.model.load(path);
        self.report(r);
    }

    /// Open a study file in the Study setup window.
    pub fn open_study(&mut self, path: &Path) {
        let r = self.study.open(path);
        self.report(r);
    }

    /// Read reader logs (files, a folder of them, or a study file's answers folder) into the
    /// Study results window.
    pub fn open_results(&mut self, path: &Path) {
        let messages = self.study.open_results(path);
        self.errors.extend(messages);
    }

    /// Wait for a running feature computation (tests).
    pub fn wait_for_features(&mut self, ctx: &egui::Context, timeout: Duration) {
        let r = self.features.take(ctx, &mut self.model, Some(timeout));
        self.report(r);
    }

    /// The network's input at the crosshair, for `what` (see [`model_input_at`]).
    fn model_input(&self, what: &str) -> Result<Option<ModelInput>, String> {
        model_input_at(
            &self.model,
            &self.pair,
            &self.volumes,
            self.viewer.view.crosshair,
            what,
        )
    }

    /// Start training with the Training panel's settings.
    fn start_training(&mut self, ctx: &egui::Context) {
        let r = self.training.start(&self.pair, &self.volumes, repaint(ctx));
        self.report(r);
    }

    /// Wait for running background jobs and take their results (tests, benchmarks).
    pub fn wait_for_jobs(&mut self, timeout: Duration) {
        let r = self.gradcam.take(&mut self.model, Some(timeout));
        self.report(r);
        if let Some(t) = &self.training.job {
            // Its result is taken by the next frame (which also turns the preview into textures).
            t.job.wait_finished(timeout);
        }
        self.take_load(Some(timeout));
        let r = self
            .synthesis
            .take(&mut self.model, &mut self.volumes, Some(timeout));
        self.report(r);
        self.take_registration(Some(timeout));
        self.diagnostics.take_self_test(Some(timeout));
        let t0 = std::time::Instant::now();
        while crate::gpu::compute_if_chosen().is_none() && t0.elapsed() < timeout {
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Take the registration's curve, and its transform once found.
    fn take_registration(&mut self, timeout: Option<Duration>) {
        match self.registration.take(timeout) {
            Some(Ok(t)) => self.pair.set_transform(Some(t)),
            Some(Err(e)) => self.errors.push(e),
            None => {}
        }
    }

    /// Volumes uploaded to the GPU so far (each volume once; scrolling never re-uploads).
    pub fn gpu_uploads(&self) -> u64 {
        self.viewer.gpu_uploads()
    }

    /// The wgpu device the views draw with.
    pub fn render_device(&self) -> Option<&eframe::egui_wgpu::wgpu::Device> {
        self.viewer.render_state.as_ref().map(|r| &r.device)
    }

    /// The CT-role volume.
    pub fn ct_volume(&self) -> Option<&Arc<Volume>> {
        self.pair.ct_volume(&self.volumes)
    }

    /// The MR-role volume.
    pub fn mr_volume(&self) -> Option<&Arc<Volume>> {
        self.pair.mr_volume(&self.volumes)
    }

    /// The reference volume that drives the view geometry (CT, else MR).
    fn reference(&self) -> Option<&Arc<Volume>> {
        self.ct_volume().or(self.mr_volume())
    }

    /// Assign a role to volume `i` (replacing the previous holder of that role).
    pub fn set_role(&mut self, i: usize, role: Option<Role>) {
        self.pair.set_role(i, role);
        self.fit_view();
    }

    /// Fit the views to the reference volume, crosshair at its centre.
    pub fn fit_view(&mut self) {
        let o = self.viewer.view.orientation;
        if let Some(r) = self.reference() {
            self.viewer.view = ViewState::fit(&r.geometry, o);
        }
    }

    /// Scroll all views by `n` slices of the reference volume.
    pub fn scroll(&mut self, n: i32) {
        if let Some(r) = self.reference().cloned() {
            self.viewer.view.scroll(&r.geometry, n);
        }
    }

    /// Scroll by `n` slices of the reference volume along the normal of orientation `o` (a
    /// pane of another orientation than the views').
    pub fn scroll_in(&mut self, o: viewer::view::Orientation, n: i32) {
        if let Some(r) = self.reference().cloned() {
            let main = self.viewer.view.orientation;
            self.viewer.view.orientation = o;
            self.viewer.view.scroll(&r.geometry, n);
            self.viewer.view.orientation = main;
        }
    }

    /// Slice index (0-based) and count of the reference volume at the crosshair.
    pub fn slice_index(&self) -> Option<(usize, usize)> {
        self.reference()
            .map(|r| self.viewer.view.slice_index(&r.geometry))
    }

    /// Take a finished load (`timeout`: wait that long; None: only look).
    fn take_load(&mut self, timeout: Option<Duration>) {
        let Some(r) = self.load_job.as_ref().and_then(|j| j.job.take(timeout)) else {
            return;
        };
        self.load_job = None;
        match r {
            Ok((r, packed)) => {
                self.viewer.packed.extend(packed);
                self.finish_load(r);
            }
            Err(e) => self.errors.push(format!("Loading: {e}")),
        }
    }

    fn finish_load(&mut self, result: Result<crate::io::LoadOutcome, LoadError>) {
        match result {
            Ok(outcome) => {
                for e in outcome.errors {
                    self.errors.push(e.to_string());
                }
                let first_new = self.volumes.len();
                for v in outcome.volumes {
                    for w in &v.meta.warnings {
                        self.errors
                            .push(format!("{} ({}): {w}", v.meta.description, v.meta.source));
                    }
                    // A series loaded again replaces the old copy (same UID), keeping its roles.
                    if let Some(k) = self
                        .volumes
                        .iter()
                        .position(|o| o.meta.series_uid == v.meta.series_uid)
                    {
                        self.volumes[k] = Arc::new(v);
                    } else {
                        self.volumes.push(Arc::new(v));
                    }
                }
                let before = (self.pair.ct, self.pair.mr);
                self.pair.assign_new(&self.volumes, first_new);
                if self.volumes.len() > 2 {
                    self.show_browser = true;
                }
                if (self.pair.ct, self.pair.mr) != before || first_new == 0 {
                    self.fit_view();
                }
            }
            Err(LoadError::Cancelled) => self
                .errors
                .push("Loading cancelled; what was loaded before is kept.".into()),
            Err(e) => self.errors.push(e.to_string()),
        }
    }

    /// Take what the workers have finished (every frame).
    fn poll_jobs(&mut self, ctx: &egui::Context) {
        self.take_load(None);
        self.diagnostics.take_self_test(None);
        let r = self
            .synthesis
            .take(&mut self.model, &mut self.volumes, None);
        self.report(r);
        self.take_registration(None);
        self.viewer.forget_uploaded();
        if let Some(paths) = self.dialogs.picked() {
            self.commands.push(Command::Open(LoadRequest::Paths(paths)));
        }
        if let Ok(mut m) = self.async_messages.lock() {
            self.errors.append(&mut m);
        }
        let r = self.training.poll(ctx, self.diagnostics.last_frame_ms());
        self.report(r);
        jobs::heartbeat(
            ctx,
            self.training.job.is_some() || self.registration.job.is_some(),
        );
        if self.training.start_pending && self.load_job.is_none() {
            self.training.start_pending = false;
            self.start_training(ctx);
        }
        let r = self.features.take(ctx, &mut self.model, None);
        self.report(r);
        let r = self.gradcam.take(&mut self.model, None);
        self.report(r);
        let r = self.gradcam.take_pair(None);
        self.report(r);
    }
}

impl eframe::App for SynthScopeApp {
    fn ui(&mut self, ui: &mut egui::Ui, _frame: &mut eframe::Frame) {
        let ctx = ui.ctx().clone();
        let now = Instant::now();
        self.diagnostics.frame_at(now);
        if let Some(r) = &mut self.reading {
            r.ui(ui, &ctx, self.viewer.has_gpu_renderer);
            return;
        }
        self.poll_jobs(&ctx);
        // Files dropped on the window.
        let dropped: Vec<PathBuf> = ctx.input(|i| {
            i.raw
                .dropped_files
                .iter()
                .map(|f| f.path().to_path_buf())
                .filter(|p| !p.as_os_str().is_empty())
                .collect()
        });
        if !dropped.is_empty() {
            self.commands
                .push(Command::Open(LoadRequest::Paths(dropped)));
        }
        self.keyboard(&ctx);
        self.viewer.settle_displays(&self.volumes);
        egui::Panel::top("menu").show(ui, |ui| self.menu_ui(ui));
        egui::Panel::top("toolbar").show(ui, |ui| self.toolbar_ui(ui));
        egui::Panel::bottom("status").show(ui, |ui| self.status_ui(ui));
        activity_ui(
            ui,
            self.load_job.as_ref(),
            &mut self.errors,
            &mut self.commands,
        );
        let messages_shown = self.errors.len();
        self.dock_ui(ui);
        egui::CentralPanel::no_frame().show(ui, |ui| self.panes_ui(ui));
        if let Some((d, path)) = self.dialogs.answered() {
            self.file_chosen(d, &path);
        }
        self.pacs_ui(&ctx);
        self.run_commands(&ctx);
        self.autoscroll_step(&ctx, now);
        self.screenshot_step(&ctx);
        self.save_settings(Some(now));
        if self.errors.len() != messages_shown {
            // A message from later in this frame: show it in the strip now.
            ctx.request_repaint();
        }
    }

    fn on_exit(&mut self) {
        self.save_settings(None);
        let _ = self.pacs.save_servers(None);
    }
}

/// Run the GUI (blocks until the window closes).
pub fn run(options: AppOptions) -> anyhow::Result<()> {
    let gpu = gpu::shared()?;
    let native = eframe::NativeOptions {
        viewport: egui::ViewportBuilder::default()
            .with_title("SynthScope")
            .with_inner_size([1440.0, 720.0])
            .with_drag_and_drop(true),
        renderer: eframe::Renderer::Wgpu,
        wgpu_options: eframe::egui_wgpu::WgpuConfiguration {
            wgpu_setup: gpu.egui_setup(),
            surface: eframe::egui_wgpu::SurfaceConfig {
                present_mode: viewer::present_mode(gpu.report.software),
                ..eframe::egui_wgpu::SurfaceConfig::HIGH_THROUGHPUT
            },
            ..Default::default()
        },
        ..Default::default()
    };
    eframe::run_native(
        "SynthScope",
        native,
        Box::new(move |cc| {
            let study = options.study.is_some();
            let mut app = SynthScopeApp::new(cc, options);
            // The arrangement of the last session (not for a reader study, which is full screen).
            if !study {
                app.use_settings(workspace::settings_path());
                let r = app.pacs.use_settings(panels::pacs::servers::servers_path());
                app.report(r);
            }
            Ok(Box::new(app))
        }),
    )
    .map_err(|e| anyhow::anyhow!("cannot open the window: {e}"))
}
