//! The eframe application: linked CT / MR / checkerboard views, series browser, loading,
//! diagnostics. UI code collects commands; they run at the end of the frame.

mod chrome;
mod dialogs;
mod gradcam_panel;
use dialogs::Dialog;
pub mod jobs;
mod registration_panel;
pub mod render;
pub mod study_panel;
pub mod study_setup;
mod synthesis_panel;
pub mod training_panel;
pub mod view;
pub mod viewport;

use crate::gpu::{self, AdapterReport, SelfTest};
use crate::io::LoadError;
use crate::volume::{CT_PRESETS, Colormap, Volume, WindowLevel};
use jobs::{LoadJob, LoadRequest, ModelJob, RegisterJob, SelfTestJob, SynthJob};
use render::Combine;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
pub use study_panel::StudyOptions;
use view::{Orientation, ViewState};
use viewport::{PaneLayer, pane_ui};

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

/// Role of a series in the pair.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// Shown in the CT pane.
    Ct,
    /// Shown in the MR pane.
    Mr,
}

/// Display settings of one volume.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Display {
    /// Window.
    pub window: WindowLevel,
    /// Colormap.
    pub colormap: Colormap,
}

/// Commands collected during the frame.
enum Command {
    Open(LoadRequest),
    PickFiles,
    PickFolder,
    Reset,
    Quit,
    Dialog(Dialog),
}

/// Crop `image` to `rect` (physical pixels, clamped to the image) and write it as PNG.
pub fn save_png_crop(
    image: &egui::ColorImage,
    rect: [usize; 4],
    path: &std::path::Path,
) -> Result<(usize, usize), String> {
    let [w, h] = image.size;
    let (x0, y0) = (rect[0].min(w), rect[1].min(h));
    let (x1, y1) = ((rect[0] + rect[2]).min(w), (rect[1] + rect[3]).min(h));
    if x1 <= x0 || y1 <= y0 {
        return Err(format!(
            "{}: nothing to save (empty region)",
            path.display()
        ));
    }
    let mut buf = image::RgbaImage::new((x1 - x0) as u32, (y1 - y0) as u32);
    for y in y0..y1 {
        for x in x0..x1 {
            let c = image.pixels[y * w + x];
            buf.put_pixel(
                (x - x0) as u32,
                (y - y0) as u32,
                image::Rgba([c.r(), c.g(), c.b(), 255]),
            );
        }
    }
    buf.save_with_format(path, image::ImageFormat::Png)
        .map_err(|e| format!("{}: cannot write PNG: {e}", path.display()))?;
    Ok((x1 - x0, y1 - y0))
}

/// What is under the mouse: pane name, LPS point, and the voxel index and value there.
type Hover = (String, [f64; 3], Option<([usize; 3], f32)>);

/// Frame-time statistics (ms) of the autoscroll benchmark.
#[derive(Clone, Debug, Default)]
pub struct FrameStats {
    /// Milliseconds between consecutive frames.
    pub frame_ms: Vec<f64>,
}

/// The SynthScope application.
pub struct SynthScopeApp {
    /// Loaded volumes (series).
    pub volumes: Vec<Arc<Volume>>,
    /// Index of the CT-role volume.
    pub ct: Option<usize>,
    /// Index of the MR-role volume.
    pub mr: Option<usize>,
    /// Per-volume display settings, by volume id.
    pub display: HashMap<u64, Display>,
    /// The linked views.
    pub view: ViewState,
    /// Left-drag changes window/level (otherwise it moves the crosshair).
    pub wl_mode: bool,
    /// Zoomed inset around the crosshair in every pane (key z).
    pub show_inset: bool,
    /// The inset's magnification.
    pub inset_mag: f32,
    /// Checkerboard square size (mm).
    pub checker_mm: f32,
    /// Load errors not yet dismissed.
    pub errors: Vec<String>,
    /// Messages from work that finished outside a frame (a saved screenshot).
    pub async_messages: Arc<std::sync::Mutex<Vec<String>>>,
    /// The egui context (for work started outside a frame, e.g. a screenshot after a dialog).
    ctx: Option<egui::Context>,
    /// Where the panes were drawn last frame (points).
    pub panes_rect: egui::Rect,
    /// Warnings of loaded series.
    pub show_browser: bool,
    /// Show the diagnostics window.
    pub show_diagnostics: bool,
    /// The running load, if any.
    pub load_job: Option<LoadJob>,
    /// GPU adapter report.
    pub adapter: Option<AdapterReport>,
    /// Self-test result.
    pub self_test: Option<Result<SelfTest, String>>,
    self_test_job: Option<SelfTestJob>,
    has_gpu_renderer: bool,
    render_state: Option<eframe::egui_wgpu::RenderState>,
    packed: HashMap<u64, Arc<render::Quantized>>,
    hover: Option<Hover>,
    commands: Vec<Command>,
    file_dialog: Option<crossbeam_channel::Receiver<Option<Vec<PathBuf>>>>,
    autoscroll: Option<(usize, Instant, FrameStats)>,
    /// `--screenshot`: the file and the frames drawn since the data arrived.
    screenshot_at_start: Option<(PathBuf, u32)>,
    last_frame: Option<Instant>,
    /// Registration: maps CT (view) points to MR points; the MR is drawn through it.
    pub mr_transform: Option<crate::register::Affine>,
    /// Earlier transforms, for Undo.
    pub transform_history: Vec<Option<crate::register::Affine>>,
    /// The running registration.
    pub register_job: Option<RegisterJob>,
    /// The last registration's result (for its report and curve).
    pub register_result: Option<crate::register::RegistrationResult>,
    /// The last registration's metric curve.
    pub register_curve: Vec<crate::register::IterationReport>,
    /// Run the affine stage after the rigid one.
    pub register_affine: bool,
    /// Show the registration panel.
    pub show_registration: bool,
    /// Loaded volume used as the registration mask (samples where it is non-zero), if any.
    pub register_mask: Option<usize>,
    /// How the third pane compares CT and MR.
    pub compare: Combine,
    transform_dialog: Option<(Dialog, crossbeam_channel::Receiver<Option<PathBuf>>)>,
    /// The loaded synthesis model, its checkpoint description and file.
    pub model: Option<(
        crate::model::checkpoint::AnyModel,
        crate::model::checkpoint::CheckpointMeta,
        PathBuf,
    )>,
    /// The running synthesis.
    pub synth_job: Option<SynthJob>,
    /// Index of the synthetic volume, once made.
    pub synthetic: Option<usize>,
    /// Metrics of the synthetic volume against the reference.
    pub synth_metrics: Option<Result<Vec<crate::analysis::MetricsReport>, String>>,
    /// The registration the running or last synthesis compared through (None: unregistered).
    pub synth_registration: Option<crate::register::Affine>,
    /// Show the synthesis panel.
    pub show_synthesis: bool,
    model_pending: Option<(crate::model::checkpoint::CheckpointMeta, PathBuf)>,
    /// The third pane compares the synthetic volume with its reference (else CT with MR).
    pub third_shows_synthetic: bool,
    /// Show the feature-map window.
    pub show_features: bool,
    /// Layer whose activations the feature-map window shows.
    pub feature_layer: usize,
    /// Layer names of the loaded model.
    pub model_layers: Vec<String>,
    /// The running feature computation.
    pub feature_job: Option<ModelJob<Result<crate::synth::FeatureMaps, String>>>,
    /// The last computed feature maps.
    pub feature_maps: Option<crate::synth::FeatureMaps>,
    feature_textures: Vec<(egui::TextureHandle, f32, f32)>,
    filter_textures: Vec<egui::TextureHandle>,
    feature_enlarged: Option<usize>,
    /// Recent frame times (ms), for the diagnostics window.
    pub frame_ms: std::collections::VecDeque<f64>,
    /// The Training panel and Runs view.
    pub training: training_panel::TrainingState,
    /// The Grad-CAM window.
    pub gradcam: gradcam_panel::GradcamState,
    /// The reader-study reading view, when the app runs a study.
    pub reading: Option<study_panel::ReadingState>,
    /// Study setup and results windows.
    pub study: study_setup::StudyTools,
}

impl SynthScopeApp {
    /// Build the app from eframe's creation context.
    pub fn new(cc: &eframe::CreationContext<'_>, options: AppOptions) -> Self {
        let has_gpu_renderer = if let Some(rs) = &cc.wgpu_render_state {
            render::SliceRenderer::install(rs);
            true
        } else {
            false
        };
        let ctx = cc.egui_ctx.clone();
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
        let c1 = ctx.clone();
        // A reader study loads its own cases; the viewer's data stays out of sight.
        let load_job = options
            .study
            .is_none()
            .then(|| LoadJob::start(request, move || c1.request_repaint()));
        let reading = options
            .study
            .clone()
            .map(|s| study_panel::ReadingState::new(s, &ctx));
        let self_test_job = options.self_test.then(|| {
            let c2 = ctx.clone();
            SelfTestJob::start(move || c2.request_repaint())
        });
        let mut training = training_panel::TrainingState::default();
        let mut errors = Vec::new();
        if let Some(path) = &options.train_config {
            match crate::train::TrainConfig::read(path) {
                Ok(cfg) => training.set_config(cfg, true),
                Err(e) => errors.push(format!("Training: {e}")),
            }
        }
        let demo = options.paths.is_empty() && !options.small_demo && options.study.is_none();
        let mut app = Self {
            volumes: Vec::new(),
            ct: None,
            mr: None,
            display: HashMap::new(),
            view: ViewState::default(),
            wl_mode: false,
            show_inset: false,
            inset_mag: 3.0,
            checker_mm: 16.0,
            errors,
            show_browser: false,
            show_diagnostics: false,
            load_job,
            adapter,
            self_test: None,
            self_test_job,
            has_gpu_renderer,
            render_state: cc.wgpu_render_state.clone(),
            packed: HashMap::new(),
            hover: None,
            commands: Vec::new(),
            file_dialog: None,
            screenshot_at_start: options.screenshot.clone().map(|p| (p, 0)),
            autoscroll: options
                .autoscroll_frames
                .map(|n| (n, Instant::now(), FrameStats::default())),
            last_frame: None,
            frame_ms: Default::default(),
            mr_transform: None,
            transform_history: Vec::new(),
            register_job: None,
            register_result: None,
            register_curve: Vec::new(),
            register_affine: true,
            show_registration: false,
            register_mask: None,
            compare: Combine::Checker(16.0),
            transform_dialog: None,
            model: None,
            synth_job: None,
            synthetic: None,
            synth_metrics: None,
            synth_registration: None,
            show_synthesis: false,
            model_pending: None,
            third_shows_synthetic: false,
            show_features: false,
            feature_layer: 1,
            model_layers: Vec::new(),
            feature_job: None,
            feature_maps: None,
            feature_textures: Vec::new(),
            filter_textures: Vec::new(),
            feature_enlarged: None,
            training,
            gradcam: Default::default(),
            reading,
            study: Default::default(),
            async_messages: Default::default(),
            ctx: Some(ctx.clone()),
            panes_rect: egui::Rect::NOTHING,
        };
        if demo {
            // First-run synthesis shows a trained network's output, never an untrained one.
            app.load_demo_model();
            app.load_demo_classifier();
        }
        app
    }

    /// Load files or folders in the background (as File > Open and drag-and-drop do).
    pub fn open(&mut self, paths: Vec<PathBuf>) {
        self.commands.push(Command::Open(LoadRequest::Paths(paths)));
    }

    /// Wait for running background jobs and take their results (tests, benchmarks).
    pub fn wait_for_jobs(&mut self, timeout: Duration) {
        self.poll_gradcam(Some(timeout));
        if let Some(job) = &self.training.job {
            // Its result is taken by the next frame (which also turns the preview into textures).
            job.wait_finished(timeout);
        }
        if let Some(job) = &self.load_job
            && let Some((r, packed)) = job.wait(timeout)
        {
            self.load_job = None;
            self.packed.extend(packed);
            self.finish_load(r);
        }
        if let Some(job) = &self.synth_job
            && let Some(r) = job.wait(timeout)
        {
            self.synth_job = None;
            self.finish_synthesis(r);
        }
        if let Some(job) = &mut self.register_job
            && let Some(r) = job.wait(timeout)
        {
            self.register_curve = std::mem::take(&mut job.curve);
            self.register_job = None;
            self.finish_registration(r);
        }
        if let Some(job) = &self.self_test_job
            && let Some(r) = job.wait(timeout)
        {
            self.self_test_job = None;
            self.self_test = Some(r);
        }
    }

    /// Volumes uploaded to the GPU so far (each volume once; scrolling never re-uploads).
    pub fn gpu_uploads(&self) -> u64 {
        self.render_state
            .as_ref()
            .map(render::upload_count)
            .unwrap_or(0)
    }

    /// The wgpu device the views draw with.
    pub fn render_device(&self) -> Option<&eframe::egui_wgpu::wgpu::Device> {
        self.render_state.as_ref().map(|r| &r.device)
    }

    /// The CT-role volume.
    pub fn ct_volume(&self) -> Option<&Arc<Volume>> {
        self.ct.and_then(|i| self.volumes.get(i))
    }

    /// The MR-role volume.
    pub fn mr_volume(&self) -> Option<&Arc<Volume>> {
        self.mr.and_then(|i| self.volumes.get(i))
    }

    /// The reference volume that drives the view geometry (CT, else MR).
    fn reference(&self) -> Option<&Arc<Volume>> {
        self.ct_volume().or(self.mr_volume())
    }

    fn default_display(v: &Volume) -> Display {
        let window = if v.meta.modality == "CT" {
            CT_PRESETS[0].window
        } else {
            let (lo, hi) = v.robust_range(2.0, 98.0);
            WindowLevel::from_range(lo, hi)
        };
        Display {
            window,
            colormap: Colormap::Grey,
        }
    }

    /// Display settings of volume `v` (defaults when not set yet).
    pub fn display_of(&self, v: &Volume) -> Display {
        self.display
            .get(&v.id)
            .copied()
            .unwrap_or_else(|| Self::default_display(v))
    }

    /// Apply a CT window preset (by index into `CT_PRESETS`) to the CT volume.
    pub fn apply_ct_preset(&mut self, i: usize) {
        if let (Some(v), Some(p)) = (self.ct_volume().cloned(), CT_PRESETS.get(i)) {
            let mut d = self.display_of(&v);
            d.window = p.window;
            self.display.insert(v.id, d);
        }
    }

    /// Auto-window (robust 2-98% inside the head) the MR volume.
    pub fn auto_window_mr(&mut self) {
        if let Some(v) = self.mr_volume().cloned() {
            let (lo, hi) = v.robust_range(2.0, 98.0);
            let mut d = self.display_of(&v);
            d.window = WindowLevel::from_range(lo, hi);
            self.display.insert(v.id, d);
        }
    }

    /// Assign a role to volume `i` (replacing the previous holder of that role).
    pub fn set_role(&mut self, i: usize, role: Option<Role>) {
        if self.ct == Some(i) {
            self.ct = None;
        }
        if self.mr == Some(i) {
            self.mr = None;
        }
        match role {
            Some(Role::Ct) => self.ct = Some(i),
            Some(Role::Mr) => self.mr = Some(i),
            None => {}
        }
        self.fit_view();
    }

    /// Fit the views to the reference volume, crosshair at its centre.
    pub fn fit_view(&mut self) {
        let o = self.view.orientation;
        if let Some(r) = self.reference() {
            self.view = ViewState::fit(&r.geometry, o);
        }
    }

    /// Scroll all views by `n` slices of the reference volume.
    pub fn scroll(&mut self, n: i32) {
        if let Some(r) = self.reference().cloned() {
            self.view.scroll(&r.geometry, n);
        }
    }

    /// Slice index (0-based) and count of the reference volume at the crosshair.
    pub fn slice_index(&self) -> Option<(usize, usize)> {
        self.reference().map(|r| self.view.slice_index(&r.geometry))
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
                let before = (self.ct, self.mr);
                // The first CT and the first MR of what was just loaded take the panes (guessed
                // from Modality); the series browser overrides.
                let (mut got_ct, mut got_mr) = (false, false);
                for i in first_new..self.volumes.len() {
                    match self.volumes[i].meta.modality.as_str() {
                        "CT" if !got_ct => {
                            self.ct = Some(i);
                            got_ct = true;
                        }
                        "MR" if !got_mr => {
                            self.mr = Some(i);
                            got_mr = true;
                        }
                        _ => {}
                    }
                }
                // Anything else fills an empty pane.
                for i in first_new..self.volumes.len() {
                    if Some(i) == self.ct || Some(i) == self.mr {
                        continue;
                    }
                    if self.ct.is_none() {
                        self.ct = Some(i);
                    } else if self.mr.is_none() {
                        self.mr = Some(i);
                    }
                }
                if self.volumes.len() > 2 {
                    self.show_browser = true;
                }
                if (self.ct, self.mr) != before || first_new == 0 {
                    self.fit_view();
                }
            }
            Err(LoadError::Cancelled) => self
                .errors
                .push("Loading cancelled; what was loaded before is kept.".into()),
            Err(e) => self.errors.push(e.to_string()),
        }
    }

    fn poll_jobs(&mut self) {
        if let Some(job) = &self.load_job
            && let Some((r, packed)) = job.poll()
        {
            self.load_job = None;
            self.packed.extend(packed);
            self.finish_load(r);
        }
        if let Some(job) = &self.self_test_job
            && let Some(r) = job.poll()
        {
            self.self_test_job = None;
            self.self_test = Some(r);
        }
        if let Some(job) = &self.synth_job
            && let Some(r) = job.poll()
        {
            self.synth_job = None;
            self.finish_synthesis(r);
        }
        if let Some(job) = &mut self.register_job {
            let done = job.poll();
            self.register_curve.clone_from(&job.curve);
            if let Some(r) = done {
                self.register_job = None;
                self.finish_registration(r);
            }
        }
        // Packed copies are only needed until the renderer has the texture.
        if let Some(rs) = &self.render_state {
            self.packed.retain(|id, _| !render::is_uploaded(rs, *id));
        }
        if let Some(rx) = &self.file_dialog
            && let Ok(r) = rx.try_recv()
        {
            self.file_dialog = None;
            if let Some(paths) = r.filter(|p| !p.is_empty()) {
                self.commands.push(Command::Open(LoadRequest::Paths(paths)));
            }
        }
    }

    fn run_commands(&mut self, ctx: &egui::Context) {
        for cmd in std::mem::take(&mut self.commands) {
            match cmd {
                Command::Open(req) => {
                    if self.load_job.is_none() {
                        let c = ctx.clone();
                        self.load_job = Some(LoadJob::start(req, move || c.request_repaint()));
                    } else {
                        self.errors
                            .push("A load is already running; cancel it first.".into());
                    }
                }
                Command::PickFiles | Command::PickFolder => {
                    let folder = matches!(cmd, Command::PickFolder);
                    let (tx, rx) = crossbeam_channel::bounded(1);
                    let c = ctx.clone();
                    // The native dialog blocks its thread; keep the UI thread free.
                    let spawned = std::thread::Builder::new()
                        .name("file-dialog".into())
                        .spawn(move || {
                            let d = rfd::FileDialog::new()
                                .set_title("Open CT / MR (DICOM folder or files, NIfTI)");
                            let r = if folder {
                                d.pick_folder().map(|p| vec![p])
                            } else {
                                d.pick_files()
                            };
                            let _ = tx.send(r);
                            c.request_repaint();
                        });
                    if spawned.is_ok() {
                        self.file_dialog = Some(rx);
                    }
                }
                Command::Reset => self.fit_view(),
                Command::Quit => ctx.send_viewport_cmd(egui::ViewportCommand::Close),
                Command::Dialog(d) => self.open_dialog(ctx, d),
            }
        }
    }

    fn panes_ui(&mut self, ui: &mut egui::Ui) {
        let ct = self.ct_volume().cloned();
        let mr = self.mr_volume().cloned();
        let layer = |v: &Option<Arc<Volume>>, app: &Self| {
            v.as_ref().map(|v| {
                let d = app.display_of(v);
                PaneLayer {
                    volume: v.clone(),
                    window: d.window,
                    colormap: d.colormap,
                    packed: app.packed.get(&v.id).cloned(),
                    transform: None,
                }
            })
        };
        let ct_layer = layer(&ct, self);
        let mut mr_layer = layer(&mr, self);
        if let Some(l) = &mut mr_layer {
            l.transform = self.mr_transform;
        }
        // The third pane: CT against MR, or the synthetic volume against its reference.
        let synthetic = if self.third_shows_synthetic {
            self.synthetic.and_then(|i| self.volumes.get(i).cloned())
        } else {
            None
        };
        let (third_layers, names) = match (&synthetic, self.model_direction()) {
            (Some(sv), dir) => {
                let mut sl = layer(&Some(sv.clone()), self);
                let mr_to_ct = dir != Some(crate::model::Direction::CtToMr);
                // Synthetic CT lives on the MR grid: drawn through the registration, windowed like the CT.
                if let Some(l) = &mut sl {
                    if mr_to_ct {
                        l.transform = self.mr_transform;
                        if let Some(c) = &ct {
                            l.window = self.display_of(c).window;
                        }
                    } else if let Some(m) = &mr {
                        l.window = self.display_of(m).window;
                    }
                }
                let reference = if mr_to_ct {
                    ct_layer.clone()
                } else {
                    mr_layer.clone()
                };
                ([reference, sl], ("real", "synthetic"))
            }
            (None, _) => ([ct_layer.clone(), mr_layer.clone()], ("CT", "MR")),
        };
        let third = match self.compare {
            Combine::Blend(_) => format!("Fade {} → {}", names.0, names.1),
            Combine::Difference => format!("Difference {} − {} (windowed)", names.0, names.1),
            Combine::SignedError { .. } => format!("{} − {} (image units)", names.1, names.0),
            Combine::AbsError { .. } => format!("|{} − {}| (image units)", names.1, names.0),
            _ => format!("Checkerboard {} / {}", names.0, names.1),
        };
        let compare = match self.compare {
            Combine::Checker(_) => Combine::Checker(self.checker_mm),
            other => other,
        };
        let title = |role: &str, v: &Option<Arc<Volume>>| match v {
            Some(v) => format!("{role}: {}", v.meta.description),
            None => role.to_string(),
        };
        let panes = [
            (
                title("CT", &ct),
                [ct_layer.clone(), None],
                Combine::Single,
                ct.clone(),
                "CT",
            ),
            (
                title("MR", &mr),
                [mr_layer.clone(), None],
                Combine::Single,
                mr.clone(),
                "MR",
            ),
            (
                format!(
                    "{third}{}",
                    if self.mr_transform.is_some() {
                        " (registered)"
                    } else {
                        ""
                    }
                ),
                third_layers,
                compare,
                ct.clone().or(mr.clone()),
                "CT",
            ),
        ];
        let gap = 4.0;
        let avail = ui.available_rect_before_wrap();
        self.panes_rect = avail;
        let w = ((avail.width() - 2.0 * gap) / 3.0).max(10.0);
        let mut scroll = 0;
        let mut hover = None;
        for (k, (title, layers, combine, probe_vol, name)) in panes.into_iter().enumerate() {
            let rect = egui::Rect::from_min_size(
                egui::pos2(avail.min.x + k as f32 * (w + gap), avail.min.y),
                egui::vec2(w, avail.height()),
            );
            let mut child =
                ui.new_child(egui::UiBuilder::new().max_rect(rect).id_salt(("pane", k)));
            let ev = pane_ui(
                &mut child,
                k as u64,
                &title,
                &mut self.view,
                layers,
                combine,
                self.wl_mode,
                self.has_gpu_renderer,
                self.show_inset.then_some(self.inset_mag),
                true,
            );
            scroll += ev.scroll;
            if let Some(wpt) = ev.hover_world {
                let t = if name == "MR" {
                    self.mr_transform
                } else {
                    None
                };
                let probe = probe_vol
                    .as_ref()
                    .and_then(|v| view::probe(v, wpt, t.as_ref()));
                hover = Some((name.to_string(), wpt, probe));
            }
            if let (Some((dw, dc)), Some(v)) = (ev.window_drag, probe_vol.as_ref()) {
                let mut d = self.display_of(v);
                let s = d.window.width.max(1.0) * 0.005;
                d.window.width = (d.window.width + dw * s).max(1.0);
                d.window.center += dc * s;
                self.display.insert(v.id, d);
            }
        }
        ui.allocate_rect(avail, egui::Sense::hover());
        self.hover = hover;
        if scroll != 0 {
            self.scroll(scroll);
        }
    }
}

impl eframe::App for SynthScopeApp {
    fn ui(&mut self, ui: &mut egui::Ui, _frame: &mut eframe::Frame) {
        let ctx = ui.ctx().clone();
        let now = Instant::now();
        if let Some(t) = self.last_frame {
            self.frame_ms
                .push_back(now.duration_since(t).as_secs_f64() * 1e3);
            if self.frame_ms.len() > 240 {
                self.frame_ms.pop_front();
            }
        }
        self.last_frame = Some(now);
        if self.reading.is_some() {
            self.reading_ui(ui, &ctx);
            return;
        }
        self.poll_jobs();
        if let Ok(mut m) = self.async_messages.lock() {
            self.errors.append(&mut m);
        }
        self.poll_training(&ctx);
        if self.training.start_pending && self.load_job.is_none() {
            self.training.start_pending = false;
            self.start_training(&ctx);
        }
        self.poll_features(&ctx, None);
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
        egui::Panel::top("menu").show(ui, |ui| self.menu_ui(ui));
        egui::Panel::bottom("status").show(ui, |ui| self.status_ui(ui));
        egui::CentralPanel::no_frame().show(ui, |ui| self.panes_ui(ui));
        self.browser_ui(&ctx);
        self.diagnostics_ui(&ctx);
        self.registration_ui(&ctx);
        self.synthesis_ui(&ctx);
        self.features_ui(&ctx);
        self.training_ui(&ctx);
        self.gradcam_ui(&ctx);
        self.study_setup_ui(&ctx);
        self.study_results_ui(&ctx);
        self.poll_dialog();
        self.progress_ui(&ctx);
        self.errors_ui(&ctx);
        self.run_commands(&ctx);
        self.autoscroll_step(&ctx, now);
        self.screenshot_step(&ctx);
    }
}

impl SynthScopeApp {
    /// Where the panes were drawn last frame, in physical pixels: [x, y, width, height].
    pub(super) fn panes_px(&self, ctx: &egui::Context) -> [usize; 4] {
        let ppp = ctx.pixels_per_point();
        let r = self.panes_rect;
        [
            (r.min.x * ppp).round() as usize,
            (r.min.y * ppp).round() as usize,
            (r.width() * ppp).round() as usize,
            (r.height() * ppp).round() as usize,
        ]
    }

    /// `--screenshot`: once the data is shown (a few frames after loading), save the panes as
    /// PNG through the real framebuffer, print where, and quit (exit status 1 on failure).
    fn screenshot_step(&mut self, ctx: &egui::Context) {
        let Some((path, frames)) = &mut self.screenshot_at_start else {
            return;
        };
        ctx.request_repaint();
        if self.load_job.is_some() || self.volumes.is_empty() {
            return;
        }
        *frames += 1;
        if *frames < 5 {
            return;
        }
        let path = path.clone();
        self.screenshot_at_start = None;
        let rect = self.panes_px(ctx);
        let c = ctx.clone();
        ctx.request_screenshot(move |img| match save_png_crop(&img, rect, &path) {
            Ok((w, h)) => {
                println!(
                    "screenshot: {} ({w} x {h} pixels, the three panes)",
                    path.display()
                );
                c.send_viewport_cmd(egui::ViewportCommand::Close);
                c.request_repaint();
            }
            Err(e) => {
                eprintln!("error: {e}");
                std::process::exit(1);
            }
        });
    }

    fn autoscroll_step(&mut self, ctx: &egui::Context, now: Instant) {
        let Some((left, last, stats)) = &mut self.autoscroll else {
            return;
        };
        if self.load_job.is_some() || self.volumes.is_empty() {
            *last = now;
            ctx.request_repaint();
            return;
        }
        stats
            .frame_ms
            .push(now.duration_since(*last).as_secs_f64() * 1e3);
        *last = now;
        if *left == 0 {
            // First half: repaint without moving (reference); second half: one slice per frame.
            let all = &stats.frame_ms[1..];
            let half = all.len() / 2;
            let summary = |v: &[f64]| {
                let mut v = v.to_vec();
                v.sort_by(f64::total_cmp);
                let mean = v.iter().sum::<f64>() / v.len().max(1) as f64;
                (
                    mean,
                    v.get(v.len() / 2).copied().unwrap_or(0.0),
                    v.get((v.len() * 95 / 100).min(v.len().saturating_sub(1)))
                        .copied()
                        .unwrap_or(0.0),
                )
            };
            let (sm, smed, sp95) = summary(&all[..half]);
            let (m, med, p95) = summary(&all[half..]);
            println!(
                "autoscroll: static repaint (reference): {half} frames, mean {sm:.2} ms, median {smed:.2} ms, p95 {sp95:.2} ms"
            );
            println!(
                "autoscroll: scrolling one slice/frame:  {} frames, mean {m:.2} ms, median {med:.2} ms, p95 {p95:.2} ms",
                all.len() - half
            );
            println!(
                "autoscroll: scrolling/static mean frame time ratio {:.2}; volume uploads {}",
                m / sm.max(1e-9),
                self.gpu_uploads()
            );
            self.autoscroll = None;
            ctx.send_viewport_cmd(egui::ViewportCommand::Close);
            return;
        }
        *left -= 1;
        let total = stats.frame_ms.len() + *left;
        if *left > total / 2 {
            ctx.request_repaint();
            return;
        }
        // Bounce through the volume so every frame shows a new slice.
        let left = *left;
        let (i, n) = self.slice_index().unwrap_or((0, 1));
        let dir = if (left / n.max(1)) % 2 == 0 { 1 } else { -1 };
        let dir = if i + 1 >= n {
            -1
        } else if i == 0 {
            1
        } else {
            dir
        };
        self.scroll(dir);
        ctx.request_repaint();
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
            ..Default::default()
        },
        ..Default::default()
    };
    eframe::run_native(
        "SynthScope",
        native,
        Box::new(move |cc| Ok(Box::new(SynthScopeApp::new(cc, options)))),
    )
    .map_err(|e| anyhow::anyhow!("cannot open the window: {e}"))
}
