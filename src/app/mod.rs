//! The eframe application: linked CT / MR / checkerboard views, series browser, loading,
//! diagnostics. UI code collects commands; they run at the end of the frame.

pub mod jobs;
pub mod render;
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
}

impl Default for AppOptions {
    fn default() -> Self {
        Self {
            paths: Vec::new(),
            small_demo: false,
            self_test: true,
            autoscroll_frames: None,
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
}

/// What is under the mouse: pane name, LPS point, and the voxel index and value there.
type Hover = (String, [f64; 3], Option<([usize; 3], f32)>);

/// Which file the transform dialog is for.
#[derive(Clone, Copy, Debug)]
enum Dialog {
    SaveTfm,
    LoadTfm,
    SaveResampled,
    SaveCtOnMr,
    SaveSynthetic,
    LoadModel,
}

/// The metric curve (MI per accepted step; one line per stage and level, drawn one after another).
fn curve_ui(ui: &mut egui::Ui, curve: &[crate::register::IterationReport]) {
    use egui_plot::{Line, Plot, PlotPoints};
    let mut segments: Vec<(String, Vec<[f64; 2]>)> = Vec::new();
    for (i, c) in curve.iter().enumerate() {
        let name = format!("{:?} level {}", c.stage, c.level + 1);
        match segments.last_mut() {
            Some((n, pts)) if *n == name => pts.push([i as f64, c.mi]),
            _ => segments.push((name, vec![[i as f64, c.mi]])),
        }
    }
    Plot::new("mi-curve")
        .height(120.0)
        .allow_drag(false)
        .allow_zoom(false)
        .allow_scroll(false)
        .x_axis_label("accepted step")
        .y_axis_label("Mattes MI")
        .show(ui, |plot| {
            for (name, pts) in segments {
                plot.line(Line::new(name, PlotPoints::from(pts)));
            }
        });
}

/// A channel image (row-major, `w` x `h`) scaled to its own range, in JET colours.
fn jet_image(v: &[f32], w: usize, h: usize) -> egui::ColorImage {
    let (lo, hi) = v
        .iter()
        .fold((f32::INFINITY, f32::NEG_INFINITY), |(a, b), x| {
            (a.min(*x), b.max(*x))
        });
    let span = (hi - lo).max(1e-12);
    let table = Colormap::Jet.table();
    let rgba: Vec<u8> = v
        .iter()
        .flat_map(|x| table[(((x - lo) / span) * 255.0).round().clamp(0.0, 255.0) as usize])
        .collect();
    egui::ColorImage::from_rgba_unmultiplied([w, h], &rgba)
}

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
    /// Checkerboard square size (mm).
    pub checker_mm: f32,
    /// Load errors not yet dismissed.
    pub errors: Vec<String>,
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
        let load_job = Some(LoadJob::start(request, move || c1.request_repaint()));
        let self_test_job = options.self_test.then(|| {
            let c2 = ctx.clone();
            SelfTestJob::start(move || c2.request_repaint())
        });
        Self {
            volumes: Vec::new(),
            ct: None,
            mr: None,
            display: HashMap::new(),
            view: ViewState::default(),
            wl_mode: false,
            checker_mm: 16.0,
            errors: Vec::new(),
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
        }
    }

    /// Load files or folders in the background (as File > Open and drag-and-drop do).
    pub fn open(&mut self, paths: Vec<PathBuf>) {
        self.commands.push(Command::Open(LoadRequest::Paths(paths)));
    }

    /// Start registering the MR to the CT (rigid, then affine when `register_affine`).
    pub fn start_registration(&mut self, ctx: &egui::Context) {
        let (Some(ct), Some(mr)) = (self.ct_volume().cloned(), self.mr_volume().cloned()) else {
            self.errors.push(
                "Registration needs a CT and an MR: assign both roles in the series browser."
                    .into(),
            );
            return;
        };
        if self.register_job.is_some() {
            return;
        }
        let cfg = crate::register::RegistrationConfig {
            affine: self.register_affine,
            ..Default::default()
        };
        let c = ctx.clone();
        self.register_curve.clear();
        let mask = self
            .register_mask
            .and_then(|i| self.volumes.get(i).cloned());
        self.register_job = Some(RegisterJob::start(ct, mr, mask, cfg, move || {
            c.request_repaint()
        }));
    }

    /// Load a synthesis checkpoint (either file of the .json/.bpk pair) onto the shared device.
    pub fn load_model(&mut self, path: &std::path::Path) {
        let device = match gpu::shared() {
            Ok(g) => g.device.clone(),
            Err(e) => {
                self.errors.push(e.to_string());
                return;
            }
        };
        match crate::model::checkpoint::load(path, &device) {
            Ok((m, meta)) if !matches!(m, crate::model::checkpoint::AnyModel::Classifier(_)) => {
                self.model = Some((m, meta, path.to_path_buf()))
            }
            Ok(_) => self.errors.push(format!(
                "{}: a classifier cannot synthesise images",
                path.display()
            )),
            Err(e) => self.errors.push(e),
        }
    }

    /// Direction of the loaded model.
    pub fn model_direction(&self) -> Option<crate::model::Direction> {
        use crate::model::checkpoint::ModelSpec;
        self.model
            .as_ref()
            .and_then(|(_, meta, _)| match &meta.model {
                ModelSpec::Unet(c) => Some(c.direction),
                ModelSpec::Drunet(c) => Some(c.direction),
                ModelSpec::Classifier(_) => None,
            })
    }

    /// Synthesise with the loaded model: MR -> CT from the MR role (metrics against the CT,
    /// through the registration when there is one), CT -> MR from the CT role.
    pub fn start_synthesis(&mut self, ctx: &egui::Context) {
        use crate::model::Direction;
        if self.synth_job.is_some() {
            return;
        }
        let Some(direction) = self.model_direction() else {
            self.errors
                .push("No trained model loaded: load a checkpoint first.".into());
            return;
        };
        let (input, reference) = match direction {
            Direction::MrToCt => (
                self.mr_volume().cloned(),
                self.ct_volume().cloned().map(|c| (c, self.mr_transform)),
            ),
            Direction::CtToMr => (
                self.ct_volume().cloned(),
                self.mr_volume()
                    .cloned()
                    .map(|m| (m, self.mr_transform.and_then(|t| t.inverse()))),
            ),
        };
        let Some(input) = input else {
            self.errors.push("Synthesis needs an input volume in the matching role (MR for MR → CT, CT for CT → MR).".into());
            return;
        };
        let Some((model, meta, path)) = self.model.take() else {
            return;
        };
        let c = ctx.clone();
        self.synth_job = Some(SynthJob::start(
            model,
            direction,
            input,
            reference,
            move || c.request_repaint(),
        ));
        self.model_pending = Some((meta, path));
    }

    /// Compute the chosen layer's activations for the input slice at the crosshair.
    pub fn start_features(&mut self, ctx: &egui::Context) {
        use crate::model::Direction;
        if self.feature_job.is_some() || self.synth_job.is_some() {
            return;
        }
        let Some(direction) = self.model_direction() else {
            return;
        };
        let input = match direction {
            Direction::MrToCt => self.mr_volume().cloned(),
            Direction::CtToMr => self.ct_volume().cloned(),
        };
        let Some(input) = input else {
            self.errors.push(
                "Feature maps need the model's input volume (MR for MR → CT, CT for CT → MR)."
                    .into(),
            );
            return;
        };
        // The input slice under the crosshair (through the registration for the MR).
        let w = match (direction, self.mr_transform) {
            (Direction::MrToCt, Some(t)) => t.apply(self.view.crosshair),
            _ => self.view.crosshair,
        };
        let z = input.geometry.voxel_from_world(w)[2].round().max(0.0) as usize;
        let Some((model, meta, path)) = self.model.take() else {
            return;
        };
        self.model_pending = Some((meta, path));
        let layer = self.feature_layer;
        let c = ctx.clone();
        self.feature_job = Some(ModelJob::start(
            model,
            move |m| {
                let device = gpu::shared().map_err(|e| e.to_string())?.device.clone();
                crate::synth::slice_features(m, direction, &input, z, layer, 64, &device)
            },
            move || c.request_repaint(),
        ));
    }

    fn finish_features(
        &mut self,
        ctx: &egui::Context,
        r: Result<crate::synth::FeatureMaps, String>,
        model: crate::model::checkpoint::AnyModel,
    ) {
        if let Some((meta, path)) = self.model_pending.take() {
            self.model = Some((model, meta, path));
        }
        match r {
            Ok(maps) => {
                self.feature_textures = maps
                    .channels
                    .iter()
                    .enumerate()
                    .map(|(k, ch)| {
                        let (lo, hi) = ch
                            .iter()
                            .fold((f32::INFINITY, f32::NEG_INFINITY), |(a, b), v| {
                                (a.min(*v), b.max(*v))
                            });
                        (
                            ctx.load_texture(
                                format!("feature-{k}"),
                                jet_image(ch, maps.width, maps.height),
                                egui::TextureOptions::NEAREST,
                            ),
                            lo,
                            hi,
                        )
                    })
                    .collect();
                self.feature_enlarged = None;
                self.feature_maps = Some(maps);
            }
            Err(e) => self.errors.push(format!("Feature maps: {e}")),
        }
    }

    fn finish_synthesis(&mut self, r: jobs::SynthResult) {
        let (result, metrics, model) = r;
        if let Some((meta, path)) = self.model_pending.take() {
            self.model = Some((model, meta, path));
        }
        match result {
            Ok(v) => {
                let v = Arc::new(v);
                match self.synthetic {
                    Some(i) if i < self.volumes.len() => self.volumes[i] = v,
                    _ => {
                        self.volumes.push(v);
                        self.synthetic = Some(self.volumes.len() - 1);
                    }
                }
                self.third_shows_synthetic = true;
                self.synth_metrics = metrics;
            }
            Err(LoadError::Cancelled) => self.errors.push("Synthesis cancelled.".into()),
            Err(e) => self.errors.push(format!("Synthesis: {e}")),
        }
    }

    /// Set the MR transform, remembering the previous one for Undo.
    pub fn set_transform(&mut self, t: Option<crate::register::Affine>) {
        self.transform_history.push(self.mr_transform);
        self.mr_transform = t;
    }

    /// Go back to the previous transform.
    pub fn undo_transform(&mut self) {
        if let Some(t) = self.transform_history.pop() {
            self.mr_transform = t;
        }
    }

    fn finish_registration(
        &mut self,
        r: Result<crate::register::RegistrationResult, crate::register::RegisterError>,
    ) {
        match r {
            Ok(res) => {
                self.set_transform(Some(res.transform));
                self.register_result = Some(res);
            }
            Err(e) => self.errors.push(format!("Registration: {e}")),
        }
    }

    /// Wait for a running feature computation (tests).
    pub fn wait_for_features(&mut self, ctx: &egui::Context, timeout: Duration) {
        if let Some(job) = &self.feature_job
            && let Some((r, model)) = job.wait(timeout)
        {
            self.feature_job = None;
            self.finish_features(ctx, r, model);
        }
    }

    /// Wait for running background jobs and take their results (tests, benchmarks).
    pub fn wait_for_jobs(&mut self, timeout: Duration) {
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
            }
        }
    }

    fn keyboard(&mut self, ctx: &egui::Context) {
        if ctx.egui_wants_keyboard_input() {
            return;
        }
        use egui::Key;
        let (up, down, pup, pdown, r, w, a, c, s) = ctx.input(|i| {
            (
                i.key_pressed(Key::ArrowUp),
                i.key_pressed(Key::ArrowDown),
                i.key_pressed(Key::PageUp),
                i.key_pressed(Key::PageDown),
                i.key_pressed(Key::R),
                i.key_pressed(Key::W),
                i.key_pressed(Key::A),
                i.key_pressed(Key::C),
                i.key_pressed(Key::S),
            )
        });
        let mut n = 0;
        if up {
            n += 1;
        }
        if down {
            n -= 1;
        }
        if pup {
            n += 10;
        }
        if pdown {
            n -= 10;
        }
        if n != 0 {
            self.scroll(n);
        }
        if r {
            self.commands.push(Command::Reset);
        }
        if w {
            self.wl_mode = !self.wl_mode;
        }
        for (pressed, o) in [
            (a, Orientation::Axial),
            (c, Orientation::Coronal),
            (s, Orientation::Sagittal),
        ] {
            if pressed {
                self.view.orientation = o;
            }
        }
    }

    fn menu_ui(&mut self, ui: &mut egui::Ui) {
        egui::MenuBar::new().ui(ui, |ui| {
            ui.menu_button("File", |ui| {
                if ui.button("Open files…").clicked() {
                    self.commands.push(Command::PickFiles);
                }
                if ui.button("Open folder…").clicked() {
                    self.commands.push(Command::PickFolder);
                }
                if ui.button("Load demo pair").clicked() {
                    self.commands.push(Command::Open(LoadRequest::Demo));
                }
                ui.separator();
                if ui.button("Quit").clicked() {
                    self.commands.push(Command::Quit);
                }
            });
            ui.menu_button("View", |ui| {
                for o in Orientation::ALL {
                    ui.radio_value(&mut self.view.orientation, o, o.name());
                }
                ui.separator();
                ui.checkbox(&mut self.show_browser, "Series browser");
                ui.checkbox(&mut self.show_diagnostics, "Diagnostics");
                ui.checkbox(&mut self.show_registration, "Registration");
                ui.checkbox(&mut self.show_synthesis, "Synthesis");
                ui.checkbox(&mut self.show_features, "Feature maps");
                if ui.button("Reset view (r)").clicked() {
                    self.commands.push(Command::Reset);
                }
            });
            ui.separator();
            for o in Orientation::ALL {
                ui.selectable_value(&mut self.view.orientation, o, o.name());
            }
            ui.separator();
            ui.toggle_value(&mut self.wl_mode, "W/L drag (w)");
            ui.toggle_value(&mut self.show_registration, "Register…");
            ui.toggle_value(&mut self.show_synthesis, "Synthesise…");
            ui.separator();
            ui.label("CT:");
            for (i, p) in CT_PRESETS.iter().enumerate() {
                if ui
                    .button(p.name)
                    .on_hover_text(format!("W {} / L {}", p.window.width, p.window.center))
                    .clicked()
                {
                    self.apply_ct_preset(i);
                }
            }
            ui.separator();
            if ui
                .button("MR auto")
                .on_hover_text("robust 2-98% window inside the head")
                .clicked()
            {
                self.auto_window_mr();
            }
            ui.separator();
            for (label, vol) in [
                ("CT map", self.ct_volume().cloned()),
                ("MR map", self.mr_volume().cloned()),
            ] {
                if let Some(v) = vol {
                    let mut d = self.display_of(&v);
                    let before = d.colormap;
                    egui::ComboBox::from_label(label)
                        .selected_text(d.colormap.name())
                        .show_ui(ui, |ui| {
                            for c in Colormap::ALL {
                                ui.selectable_value(&mut d.colormap, c, c.name());
                            }
                        });
                    if d.colormap != before {
                        self.display.insert(v.id, d);
                    }
                }
            }
            ui.separator();
            ui.add(egui::Slider::new(&mut self.checker_mm, 2.0..=64.0).text("checker mm"));
        });
    }

    fn status_ui(&mut self, ui: &mut egui::Ui) {
        ui.horizontal(|ui| {
            match &self.hover {
                Some((name, w, probe)) => {
                    ui.monospace(format!("LPS ({:.1}, {:.1}, {:.1}) mm", w[0], w[1], w[2]));
                    match probe {
                        Some((ijk, v)) => {
                            let unit = if name == "CT" { " HU" } else { "" };
                            ui.monospace(format!(
                                "{name} voxel [{} {} {}] = {:.1}{unit}",
                                ijk[0], ijk[1], ijk[2], v
                            ));
                        }
                        None => {
                            ui.monospace(format!("{name}: outside"));
                        }
                    }
                }
                None => {
                    ui.monospace("—");
                }
            }
            ui.with_layout(egui::Layout::right_to_left(egui::Align::Center), |ui| {
                match &self.adapter {
                    Some(a) => ui.label(format!("GPU: {}", a.summary())),
                    None => ui.colored_label(egui::Color32::LIGHT_RED, "GPU: none"),
                };
                if let Some((i, n)) = self.slice_index() {
                    ui.separator();
                    ui.monospace(format!("slice {}/{}", i + 1, n));
                }
            });
        });
    }

    fn browser_ui(&mut self, ctx: &egui::Context) {
        let mut open = self.show_browser;
        let mut role_changes = Vec::new();
        egui::Window::new("Series browser")
            .open(&mut open)
            .default_width(720.0)
            .show(ctx, |ui| {
                egui::Grid::new("series")
                    .striped(true)
                    .num_columns(8)
                    .show(ui, |ui| {
                        for h in [
                            "Role", "Patient", "Study", "Series", "Modality", "Slices", "Size",
                            "Warnings",
                        ] {
                            ui.strong(h);
                        }
                        ui.end_row();
                        for (i, v) in self.volumes.iter().enumerate() {
                            let mut role = if self.ct == Some(i) {
                                Some(Role::Ct)
                            } else if self.mr == Some(i) {
                                Some(Role::Mr)
                            } else {
                                None
                            };
                            let before = role;
                            ui.horizontal(|ui| {
                                ui.radio_value(&mut role, Some(Role::Ct), "CT");
                                ui.radio_value(&mut role, Some(Role::Mr), "MR");
                                ui.radio_value(&mut role, None, "–");
                            });
                            if role != before {
                                role_changes.push((i, role));
                            }
                            let m = &v.meta;
                            ui.label(format!("{} {}", m.patient_name, m.patient_id));
                            ui.label(&m.study_description);
                            ui.label(&m.description).on_hover_text(&m.series_uid);
                            ui.label(&m.modality);
                            let d = v.geometry.dims;
                            ui.label(d[2].to_string());
                            ui.label(format!(
                                "{}x{}x{} ({:.2}x{:.2}x{:.2} mm), {:.1} MB",
                                d[0],
                                d[1],
                                d[2],
                                v.geometry.spacing[0],
                                v.geometry.spacing[1],
                                v.geometry.spacing[2],
                                v.size_bytes() as f64 / 1e6
                            ));
                            if m.warnings.is_empty() {
                                ui.label("");
                            } else {
                                ui.colored_label(
                                    egui::Color32::YELLOW,
                                    format!("{} ⚠", m.warnings.len()),
                                )
                                .on_hover_text(m.warnings.join("\n"));
                            }
                            ui.end_row();
                        }
                    });
            });
        self.show_browser = open;
        for (i, r) in role_changes {
            self.set_role(i, r);
        }
    }

    fn registration_ui(&mut self, ctx: &egui::Context) {
        let mut open = self.show_registration;
        let mut run = false;
        let mut cancel = false;
        let mut dialog = None;
        egui::Window::new("Registration")
            .open(&mut open)
            .default_width(420.0)
            .show(ctx, |ui| {
                let name = |v: Option<&Arc<Volume>>| {
                    v.map(|v| v.meta.description.clone())
                        .unwrap_or_else(|| "(none)".into())
                };
                ui.label(format!("Fixed (CT): {}", name(self.ct_volume())));
                ui.label(format!("Moving (MR): {}", name(self.mr_volume())));
                ui.checkbox(
                    &mut self.register_affine,
                    "Affine after rigid (12 degrees of freedom)",
                );
                let mask_name = |i: Option<usize>, vols: &[Arc<Volume>]| {
                    i.and_then(|i| vols.get(i))
                        .map(|v| v.meta.description.clone())
                        .unwrap_or_else(|| "none (whole field of view)".into())
                };
                egui::ComboBox::from_label("Mask")
                    .selected_text(mask_name(self.register_mask, &self.volumes))
                    .show_ui(ui, |ui| {
                        ui.selectable_value(
                            &mut self.register_mask,
                            None,
                            "none (whole field of view)",
                        );
                        for (i, v) in self.volumes.iter().enumerate() {
                            ui.selectable_value(
                                &mut self.register_mask,
                                Some(i),
                                v.meta.description.clone(),
                            );
                        }
                    });
                ui.label(
                    "Mattes mutual information, 32 bins, pyramid 4-2-1, centre-of-mass start.",
                );
                ui.horizontal(|ui| {
                    if let Some(job) = &self.register_job {
                        ui.add(
                            egui::ProgressBar::new(job.progress.fraction())
                                .desired_width(220.0)
                                .show_percentage(),
                        );
                        if ui.button("Cancel").clicked() {
                            cancel = true;
                        }
                    } else if ui.button("Run").clicked() {
                        run = true;
                    }
                });
                if let Some(last) = self.register_curve.last() {
                    ui.label(format!(
                        "{:?} level {} iteration {}: MI {:.4}",
                        last.stage,
                        last.level + 1,
                        last.iteration + 1,
                        last.mi
                    ));
                }
                curve_ui(ui, &self.register_curve);
                if let Some(r) = &self.register_result {
                    let d = &r.decomposition;
                    egui::Grid::new("reg-result").show(ui, |ui| {
                        ui.label("rotation (°)");
                        ui.monospace(format!(
                            "{:7.3} {:7.3} {:7.3}",
                            d.rotation_deg[0], d.rotation_deg[1], d.rotation_deg[2]
                        ));
                        ui.end_row();
                        ui.label("translation (mm)");
                        ui.monospace(format!(
                            "{:7.3} {:7.3} {:7.3}",
                            d.translation[0], d.translation[1], d.translation[2]
                        ));
                        ui.end_row();
                        ui.label("scale");
                        ui.monospace(format!(
                            "{:7.4} {:7.4} {:7.4}",
                            d.scale[0], d.scale[1], d.scale[2]
                        ));
                        ui.end_row();
                        ui.label("shear");
                        ui.monospace(format!(
                            "{:7.4} {:7.4} {:7.4}",
                            d.shear[0], d.shear[1], d.shear[2]
                        ));
                        ui.end_row();
                        ui.label("final MI");
                        ui.monospace(format!("{:.4} in {:.2} s", r.final_mi, r.seconds));
                        ui.end_row();
                    });
                    for l in &r.levels {
                        ui.small(format!(
                            "{:?} shrink {}: {} iterations, MI {:.4}, {:.2} s",
                            l.stage, l.shrink, l.iterations, l.mi, l.seconds
                        ));
                    }
                }
                ui.separator();
                ui.horizontal(|ui| {
                    ui.label("Third pane:");
                    let checker = matches!(self.compare, Combine::Checker(_));
                    if ui.selectable_label(checker, "Checkerboard").clicked() {
                        self.compare = Combine::Checker(self.checker_mm);
                    }
                    if ui
                        .selectable_label(matches!(self.compare, Combine::Blend(_)), "Fade")
                        .clicked()
                    {
                        self.compare = Combine::Blend(0.5);
                    }
                    if ui
                        .selectable_label(self.compare == Combine::Difference, "Difference")
                        .clicked()
                    {
                        self.compare = Combine::Difference;
                    }
                });
                if let Combine::Blend(w) = &mut self.compare {
                    ui.add(egui::Slider::new(w, 0.0..=1.0).text("CT → MR"));
                }
                ui.horizontal(|ui| {
                    if ui
                        .add_enabled(
                            !self.transform_history.is_empty(),
                            egui::Button::new("Undo"),
                        )
                        .clicked()
                    {
                        self.undo_transform();
                    }
                    if ui
                        .add_enabled(
                            self.mr_transform.is_some(),
                            egui::Button::new("Reset to identity"),
                        )
                        .clicked()
                    {
                        self.set_transform(None);
                    }
                });
                ui.horizontal(|ui| {
                    if ui
                        .add_enabled(self.mr_transform.is_some(), egui::Button::new("Save .tfm…"))
                        .clicked()
                    {
                        dialog = Some(Dialog::SaveTfm);
                    }
                    if ui.button("Load .tfm…").clicked() {
                        dialog = Some(Dialog::LoadTfm);
                    }
                    if ui
                        .add_enabled(
                            self.mr_transform.is_some(),
                            egui::Button::new("Save MR on CT grid…"),
                        )
                        .clicked()
                    {
                        dialog = Some(Dialog::SaveResampled);
                    }
                    if ui
                        .add_enabled(
                            self.mr_transform.is_some(),
                            egui::Button::new("Save CT on MR grid…"),
                        )
                        .clicked()
                    {
                        dialog = Some(Dialog::SaveCtOnMr);
                    }
                });
            });
        self.show_registration = open;
        if run {
            self.start_registration(ctx);
        }
        if cancel && let Some(job) = &self.register_job {
            job.progress.cancel();
        }
        if let Some(d) = dialog {
            self.open_dialog(ctx, d);
        }
    }

    /// Ask for a file on a worker thread (native dialogs block their thread).
    fn open_dialog(&mut self, ctx: &egui::Context, d: Dialog) {
        let (tx, rx) = crossbeam_channel::bounded(1);
        let c = ctx.clone();
        let spawned = std::thread::Builder::new()
            .name("file-dialog".into())
            .spawn(move || {
                let nifti = |name: &str| {
                    rfd::FileDialog::new()
                        .add_filter("NIfTI", &["nii", "gz"])
                        .set_file_name(name)
                        .save_file()
                };
                let r = match d {
                    Dialog::SaveTfm => rfd::FileDialog::new()
                        .add_filter("ITK transform", &["tfm"])
                        .set_file_name("mr_to_ct.tfm")
                        .save_file(),
                    Dialog::LoadTfm => rfd::FileDialog::new()
                        .add_filter("ITK transform", &["tfm", "txt"])
                        .pick_file(),
                    Dialog::SaveResampled => nifti("mr_on_ct.nii.gz"),
                    Dialog::SaveCtOnMr => nifti("ct_on_mr.nii.gz"),
                    Dialog::SaveSynthetic => nifti("synthetic.nii.gz"),
                    Dialog::LoadModel => rfd::FileDialog::new()
                        .add_filter("SynthScope checkpoint", &["json", "bpk"])
                        .pick_file(),
                };
                let _ = tx.send(r);
                c.request_repaint();
            });
        if spawned.is_ok() {
            self.transform_dialog = Some((d, rx));
        }
    }

    fn poll_dialog(&mut self) {
        if let Some((d, rx)) = &self.transform_dialog
            && let Ok(r) = rx.try_recv()
        {
            let d = *d;
            self.transform_dialog = None;
            if let Some(path) = r {
                self.transform_file(d, &path);
            }
        }
    }

    /// Save or load the transform, or save the MR resampled onto the CT grid.
    fn transform_file(&mut self, d: Dialog, path: &std::path::Path) {
        match d {
            Dialog::LoadModel => self.load_model(path),
            Dialog::SaveSynthetic => {
                if let Some(v) = self.synthetic.and_then(|i| self.volumes.get(i)).cloned()
                    && let Err(e) = crate::io::nifti_io::write_nifti(&v, path)
                {
                    self.errors.push(e.to_string());
                }
            }
            Dialog::SaveTfm => {
                if let Some(t) = self.mr_transform
                    && let Err(e) = t.write_tfm(path)
                {
                    self.errors
                        .push(format!("{}: cannot write: {e}", path.display()));
                }
            }
            Dialog::LoadTfm => match crate::register::Affine::read_tfm(path) {
                Ok(t) => self.set_transform(Some(t)),
                Err(e) => self.errors.push(e),
            },
            Dialog::SaveResampled => {
                if let (Some(ct), Some(mr), Some(t)) = (
                    self.ct_volume().cloned(),
                    self.mr_volume().cloned(),
                    self.mr_transform,
                ) {
                    let (min, _) = mr.min_max();
                    let v = crate::register::resample(&mr, &ct.geometry, &t, min);
                    if let Err(e) = crate::io::nifti_io::write_nifti(&v, path) {
                        self.errors.push(e.to_string());
                    }
                }
            }
            Dialog::SaveCtOnMr => {
                // The inverse transform maps MR points to CT points.
                if let (Some(ct), Some(mr), Some(inv)) = (
                    self.ct_volume().cloned(),
                    self.mr_volume().cloned(),
                    self.mr_transform.and_then(|t| t.inverse()),
                ) {
                    let (min, _) = ct.min_max();
                    let v = crate::register::resample(&ct, &mr.geometry, &inv, min);
                    if let Err(e) = crate::io::nifti_io::write_nifti(&v, path) {
                        self.errors.push(e.to_string());
                    }
                }
            }
        }
    }

    fn synthesis_ui(&mut self, ctx: &egui::Context) {
        let mut open = self.show_synthesis;
        let mut dialog = None;
        let mut run = false;
        egui::Window::new("Synthesis").open(&mut open).default_width(420.0).show(ctx, |ui| {
            match (&self.model, &self.model_pending) {
                (Some((_, meta, path)), _) => {
                    ui.label(format!("Model: {}", path.display()));
                    ui.small(format!("{:?}", meta.model));
                }
                (None, Some((_, path))) => {
                    ui.label(format!("Model: {} (running)", path.display()));
                }
                (None, None) => {
                    ui.colored_label(egui::Color32::YELLOW, "No trained model loaded: synthesis shows nothing until you load a checkpoint (made by training, or imported).");
                }
            }
            ui.horizontal(|ui| {
                if ui.button("Load checkpoint…").clicked() {
                    dialog = Some(Dialog::LoadModel);
                }
                if let Some(job) = &self.synth_job {
                    ui.add(egui::ProgressBar::new(job.progress.fraction()).desired_width(180.0).show_percentage());
                    if ui.button("Cancel").clicked() {
                        job.progress.cancel();
                    }
                } else if ui.add_enabled(self.model.is_some(), egui::Button::new("Synthesise")).clicked() {
                    run = true;
                }
            });
            if self.synthetic.is_some() {
                ui.checkbox(&mut self.third_shows_synthetic, "Third pane: real vs synthetic");
                ui.horizontal(|ui| {
                    let (mut range, background) = match self.compare {
                        Combine::SignedError { range, background } | Combine::AbsError { range, background } => (range, background),
                        _ => (200.0, if self.model_direction() == Some(crate::model::Direction::CtToMr) { 50.0 } else { -500.0 }),
                    };
                    if ui.selectable_label(matches!(self.compare, Combine::SignedError { .. }), "Error (signed)").clicked() {
                        self.compare = Combine::SignedError { range, background };
                    }
                    if ui.selectable_label(matches!(self.compare, Combine::AbsError { .. }), "|Error|").clicked() {
                        self.compare = Combine::AbsError { range, background };
                    }
                    if matches!(self.compare, Combine::SignedError { .. } | Combine::AbsError { .. }) && ui.add(egui::Slider::new(&mut range, 10.0..=2000.0).logarithmic(true).text("± range")).changed() {
                        self.compare = match self.compare {
                            Combine::SignedError { .. } => Combine::SignedError { range, background },
                            _ => Combine::AbsError { range, background },
                        };
                    }
                });
                if ui.button("Save synthetic (NIfTI)…").clicked() {
                    dialog = Some(Dialog::SaveSynthetic);
                }
            }
            match &self.synth_metrics {
                Some(Ok(m)) => {
                    egui::Grid::new("synth-metrics").striped(true).show(ui, |ui| {
                        for h in ["region", "MAE", "RMSE", "PSNR dB", "SSIM", "UQI"] {
                            ui.strong(h);
                        }
                        ui.end_row();
                        for r in m {
                            ui.label(format!("{:?}", r.region));
                            ui.monospace(format!("{:.2}", r.mae));
                            ui.monospace(format!("{:.2}", r.rmse));
                            ui.monospace(format!("{:.2}", r.psnr));
                            ui.monospace(format!("{:.4}", r.ssim));
                            ui.monospace(format!("{:.4}", r.uqi));
                            ui.end_row();
                        }
                    });
                }
                Some(Err(e)) => {
                    ui.colored_label(egui::Color32::LIGHT_RED, e);
                }
                None => {}
            }
        });
        self.show_synthesis = open;
        if run {
            self.start_synthesis(ctx);
        }
        if let Some(d) = dialog {
            self.open_dialog(ctx, d);
        }
    }

    fn features_ui(&mut self, ctx: &egui::Context) {
        let mut open = self.show_features;
        let mut run = false;
        egui::Window::new("Feature maps")
            .open(&mut open)
            .default_width(560.0)
            .show(ctx, |ui| {
                if self.model.is_none() && self.model_pending.is_none() {
                    ui.colored_label(
                        egui::Color32::YELLOW,
                        "No model loaded: load a checkpoint in the Synthesis panel.",
                    );
                    return;
                }
                ui.horizontal(|ui| {
                    let names = self.model_layers.clone();
                    egui::ComboBox::from_label("Layer")
                        .selected_text(names.get(self.feature_layer).cloned().unwrap_or_default())
                        .show_ui(ui, |ui| {
                            for (i, n) in names.iter().enumerate() {
                                ui.selectable_value(&mut self.feature_layer, i, n);
                            }
                        });
                    if self.feature_job.is_some() {
                        ui.spinner();
                    } else if ui
                        .add_enabled(
                            self.model.is_some(),
                            egui::Button::new("Compute for this slice"),
                        )
                        .clicked()
                    {
                        run = true;
                    }
                });
                if let Some(maps) = &self.feature_maps {
                    ui.label(format!(
                        "{}: {} channels of {}x{} (showing {}), each scaled to its own range, JET",
                        maps.layer,
                        maps.total_channels,
                        maps.width,
                        maps.height,
                        self.feature_textures.len()
                    ));
                    if let Some(k) = self.feature_enlarged
                        && let Some((t, lo, hi)) = self.feature_textures.get(k)
                    {
                        ui.horizontal(|ui| {
                            ui.add(egui::Image::new(t).fit_to_exact_size(egui::vec2(256.0, 256.0)));
                            ui.label(format!(
                                "channel {k}\nrange {lo:.3} .. {hi:.3}\n(click a tile to change)"
                            ));
                        });
                    }
                    egui::ScrollArea::vertical()
                        .max_height(320.0)
                        .show(ui, |ui| {
                            ui.horizontal_wrapped(|ui| {
                                for (k, (t, lo, hi)) in self.feature_textures.iter().enumerate() {
                                    let r = ui
                                        .add(
                                            egui::Image::new(t)
                                                .fit_to_exact_size(egui::vec2(56.0, 56.0))
                                                .sense(egui::Sense::click()),
                                        )
                                        .on_hover_text(format!("channel {k}: {lo:.3} .. {hi:.3}"));
                                    if r.clicked() {
                                        self.feature_enlarged = Some(k);
                                    }
                                }
                            });
                        });
                }
                ui.collapsing("First-layer filters", |ui| {
                    if self.filter_textures.is_empty()
                        && let Some((m, _, _)) = &self.model
                        && let Ok((filters, k)) = crate::synth::first_filters(m)
                    {
                        self.filter_textures = filters
                            .iter()
                            .enumerate()
                            .map(|(i, f)| {
                                ctx.load_texture(
                                    format!("filter-{i}"),
                                    jet_image(f, k, k),
                                    egui::TextureOptions::NEAREST,
                                )
                            })
                            .collect();
                    }
                    ui.horizontal_wrapped(|ui| {
                        for t in &self.filter_textures {
                            ui.add(egui::Image::new(t).fit_to_exact_size(egui::vec2(36.0, 36.0)));
                        }
                    });
                });
            });
        self.show_features = open;
        if run {
            self.start_features(ctx);
        }
    }

    fn diagnostics_ui(&mut self, ctx: &egui::Context) {
        let mut open = self.show_diagnostics;
        egui::Window::new("Diagnostics").open(&mut open).show(ctx, |ui| {
            match &self.adapter {
                Some(a) => {
                    ui.label(format!("Adapter: {}", a.name));
                    ui.label(format!("Type: {}  Backend: {}  Driver: {}", a.device_type, a.backend, a.driver));
                    if a.software {
                        ui.colored_label(egui::Color32::YELLOW, "Software rendering (Mesa lavapipe): no GPU found; everything works, slower.");
                    }
                }
                None => {
                    ui.label("No GPU renderer.");
                }
            }
            ui.separator();
            ui.label("One device: the views and burn share one wgpu device and queue.");
            match &self.self_test {
                None if self.self_test_job.is_some() => {
                    ui.horizontal(|ui| {
                        ui.spinner();
                        ui.label("burn self-test running (first run compiles shaders)…");
                    });
                }
                None => {
                    ui.label("burn self-test not run.");
                }
                Some(Ok(t)) => {
                    let ok = if t.passed() { "passed" } else { "FAILED" };
                    ui.label(format!(
                        "burn self-test {ok}: sum(relu(A·B)) {n}x{n} = {:.4} (CPU {:.4}, rel. error {:.1e}) in {:.1} ms",
                        t.gpu_value,
                        t.cpu_value,
                        t.rel_error,
                        t.gpu_ms,
                        n = t.n
                    ));
                }
                Some(Err(e)) => {
                    ui.colored_label(egui::Color32::LIGHT_RED, format!("burn self-test failed: {e}"));
                }
            }
            if !self.frame_ms.is_empty() {
                let mut v: Vec<f64> = self.frame_ms.iter().copied().collect();
                v.sort_by(f64::total_cmp);
                ui.label(format!("Frame time: median {:.1} ms, p95 {:.1} ms", v[v.len() / 2], v[(v.len() * 95 / 100).min(v.len() - 1)]));
            }
        });
        self.show_diagnostics = open;
    }

    fn progress_ui(&mut self, ctx: &egui::Context) {
        let Some(job) = &self.load_job else { return };
        let mut cancel = false;
        egui::Window::new("Loading")
            .collapsible(false)
            .resizable(false)
            .anchor(egui::Align2::CENTER_CENTER, [0.0, 0.0])
            .show(ctx, |ui| {
                ui.label(&job.label);
                ui.label(job.progress.stage());
                ui.add(
                    egui::ProgressBar::new(job.progress.fraction())
                        .show_percentage()
                        .desired_width(320.0),
                );
                if ui.button("Cancel").clicked() {
                    cancel = true;
                }
            });
        if cancel {
            job.progress.cancel();
        }
        ctx.request_repaint_after(Duration::from_millis(100));
    }

    fn errors_ui(&mut self, ctx: &egui::Context) {
        if self.errors.is_empty() {
            return;
        }
        let mut clear = false;
        egui::Window::new("Messages")
            .anchor(egui::Align2::RIGHT_BOTTOM, [-8.0, -32.0])
            .default_width(480.0)
            .show(ctx, |ui| {
                egui::ScrollArea::vertical()
                    .max_height(160.0)
                    .show(ui, |ui| {
                        for e in &self.errors {
                            ui.label(e);
                        }
                    });
                if ui.button("Dismiss").clicked() {
                    clear = true;
                }
            });
        if clear {
            self.errors.clear();
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

impl AdapterReport {
    /// The report of an egui-wgpu adapter.
    pub fn from_adapter(adapter: &eframe::egui_wgpu::wgpu::Adapter) -> Self {
        let info = adapter.get_info();
        let software = info.device_type == eframe::egui_wgpu::wgpu::DeviceType::Cpu;
        Self {
            name: info.name.clone(),
            device_type: format!("{:?}", info.device_type),
            backend: format!("{:?}", info.backend),
            driver: format!("{} {}", info.driver, info.driver_info)
                .trim()
                .to_string(),
            software,
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
        self.poll_jobs();
        if let Some(job) = &self.feature_job
            && let Some((r, model)) = job.poll()
        {
            self.feature_job = None;
            self.finish_features(&ctx, r, model);
        }
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
        self.poll_dialog();
        self.progress_ui(&ctx);
        self.errors_ui(&ctx);
        self.run_commands(&ctx);
        self.autoscroll_step(&ctx, now);
    }
}

impl SynthScopeApp {
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
