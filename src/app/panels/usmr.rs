//! The US -> MR window: a trained run's held-out ultrasound beside its synthetic MR and its real
//! MR, one slice at a time, and the cross-modal attention of a clicked pixel as a heatmap over
//! the ultrasound (which ultrasound regions the block draws on for that MR pixel).
//!
//! A Train section ([`train`]) trains a new run from the tab on a worker thread; when it ends
//! the run folder loads into the panes as Load loads a typed one.
//!
//! State and work are plain Rust ([`UsMrState::load`], [`UsMrState::request`],
//! [`UsMrState::poll`]); the networks run on a worker thread; `ui` only draws and clicks.

pub mod train;

use crate::app::jobs::{Job, Wake};
use crate::model::usmr::{UsMrConfig, UsMrNet};
use crate::train::usmr::{self, Patient, SliceView};
use crate::volume::Colormap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// What a view job is given and gives back (the networks travel with it).
type Loaded = (UsMrNet, UsMrConfig, Arc<Patient>);
type ViewJob = Job<(Loaded, Result<SliceView, String>)>;

/// US -> MR window state.
#[derive(Default)]
pub struct UsMrState {
    /// Show the window.
    pub show: bool,
    /// The run folder typed or chosen.
    pub run_dir: String,
    /// The run folder the panes show (set by a successful load).
    pub loaded_from: Option<PathBuf>,
    /// The Train section.
    pub train: train::UsMrTrainer,
    loaded: Option<Loaded>,
    /// Slice shown.
    pub z: usize,
    /// The pixel whose attention is shown (x, y).
    pub query: Option<(usize, usize)>,
    /// Heatmap opacity.
    pub opacity: f32,
    /// The running view job and the load it works for.
    job: Option<(u64, ViewJob)>,
    /// Counts loads: a view job of an earlier load is dropped when it returns.
    generation: u64,
    /// The last computed slice.
    pub view: Option<SliceView>,
    textures: Option<[egui::TextureHandle; 3]>,
    /// The last problem, shown until the next success.
    pub error: Option<String>,
    wanted: Option<(usize, Option<(usize, usize)>)>,
}

/// Grey `img` (0..1) with `heat` scaled to its maximum in jet on top at `opacity`.
fn image(img: &[f32], heat: Option<&[f32]>, n: usize, opacity: f32) -> egui::ColorImage {
    let table = Colormap::Jet.table();
    let top = heat.map_or(1.0, |h| h.iter().cloned().fold(1e-12f32, f32::max));
    let mut rgba = Vec::with_capacity(n * n * 4);
    for i in 0..n * n {
        let g = img[i].clamp(0.0, 1.0) * 255.0;
        match heat {
            Some(h) => {
                let c = table[((h[i] / top).clamp(0.0, 1.0) * 255.0) as usize];
                for k in 0..3 {
                    rgba.push((g * (1.0 - opacity) + c[k] as f32 * opacity).round() as u8);
                }
            }
            None => rgba.extend([g as u8; 3]),
        }
        rgba.push(255);
    }
    egui::ColorImage::from_rgba_unmultiplied([n, n], &rgba)
}

/// A run folder's name as the tab shows it (its last component, else the whole path).
fn run_name(dir: &Path) -> String {
    dir.file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_else(|| dir.display().to_string())
}

impl UsMrState {
    /// Load the run folder `run_dir` (its networks and held-out patient) on the compute device.
    pub fn load(&mut self) -> Result<(), String> {
        let dir = PathBuf::from(self.run_dir.trim());
        if self.run_dir.trim().is_empty() {
            return Err("US -> MR: type a run folder to load".into());
        }
        let device = crate::gpu::compute_device().map_err(|e| e.to_string())?;
        let (net, cfg, p) = usmr::load_run(&dir, &device).map_err(|e| e.to_string())?;
        self.loaded_from = Some(dir);
        self.error = None;
        self.z = p.nz / 2;
        self.query = Some((p.n / 2, p.n / 2));
        self.loaded = Some((net, cfg, Arc::new(p)));
        self.generation += 1;
        self.view = None;
        self.textures = None;
        self.wanted = Some((self.z, self.query));
        Ok(())
    }

    /// Ask for slice `z` with the attention of `query`: computed when the networks are free.
    pub fn request(&mut self, z: usize, query: Option<(usize, usize)>) {
        self.z = z;
        self.query = query;
        self.wanted = Some((z, query));
    }

    /// Start the wanted view if the networks are home; collect a finished one (`timeout`: wait
    /// that long; None: only look). True when a new view arrived.
    pub fn poll(&mut self, wake: Wake, timeout: Option<Duration>) -> bool {
        let mut arrived = false;
        if let Some((generation, job)) = &self.job
            && let Some(r) = job.take(timeout)
        {
            let current = *generation == self.generation;
            self.job = None;
            match r {
                // The networks of a run loaded since: dropped with their view.
                Ok(_) if !current => {}
                Ok((loaded, view)) => {
                    self.loaded = Some(loaded);
                    match view {
                        Ok(v) => {
                            self.view = Some(v);
                            self.textures = None;
                            self.error = None;
                            arrived = true;
                        }
                        Err(e) => self.error = Some(format!("US -> MR: {e}")),
                    }
                }
                Err(e) => self.error = Some(format!("US -> MR: {e}")),
            }
        }
        if self.job.is_none()
            && let Some((z, query)) = self.wanted
            && let Some(loaded) = self.loaded.take()
        {
            self.wanted = None;
            let work = move |(net, cfg, p): Loaded, _: &crate::app::jobs::Worker<()>| {
                let v = usmr::slice_view(&net, &cfg, &p, z, query).map_err(|e| e.to_string());
                ((net, cfg, p), v)
            };
            match Job::spawn("us-mr view", loaded, wake, work) {
                Ok(j) => self.job = Some((self.generation, j)),
                Err(e) => {
                    self.loaded = Some(*e.input);
                    self.error = Some(format!("US -> MR: {}", e.error));
                }
            }
        }
        arrived
    }

    /// Take the Train section's events, and once its run has ended load the run folder into
    /// the panes (as Load does) or show why it failed (`timeout`: wait that long for the end;
    /// None: only look). True when a run ended.
    pub fn poll_training(&mut self, timeout: Option<Duration>) -> bool {
        match self.train.poll(timeout) {
            Some(train::Finished::Trained { dir, .. }) => {
                self.run_dir = dir.display().to_string();
                if let Err(e) = self.load() {
                    self.error = Some(e);
                }
                true
            }
            Some(train::Finished::Failed(e)) => {
                self.error = Some(e);
                true
            }
            None => false,
        }
    }

    /// Start the Train section's run (errors shown in the tab).
    pub fn start_training(&mut self, wake: Wake) {
        match self.train.start(wake) {
            Ok(()) => self.error = None,
            Err(e) => self.error = Some(e),
        }
    }

    /// The window's contents.
    pub(crate) fn ui(&mut self, ui: &mut egui::Ui) {
        let ctx = ui.ctx().clone();
        self.poll_training(None);
        crate::app::jobs::heartbeat(&ctx, self.train.is_running());
        self.poll(crate::app::jobs::repaint(&ctx), None);
        ui.label(
            "A US -> MR run (trained below, or a `synthscope train-us-mr` run folder): its \
             held-out ultrasound, the synthetic MR and the real MR. Click a pixel to see what \
             the cross-modal attention draws on.",
        );
        ui.horizontal(|ui| {
            let l = ui.label("Run folder");
            ui.text_edit_singleline(&mut self.run_dir).labelled_by(l.id);
            if ui.button("Load").clicked()
                && let Err(e) = self.load()
            {
                self.error = Some(e);
            }
        });
        if self.train.ui(ui) {
            self.start_training(crate::app::jobs::repaint(&ctx));
        }
        if let Some(e) = &self.error {
            ui.colored_label(egui::Color32::LIGHT_RED, e);
        }
        if let Some(dir) = &self.loaded_from {
            ui.label(format!("Run: {}", run_name(dir)));
        }
        let Some(nz) = self
            .loaded
            .as_ref()
            .map(|l| l.2.nz)
            .or(self.view.as_ref().map(|_| self.z + 1))
        else {
            return;
        };
        let mut z = self.z;
        ui.horizontal(|ui| {
            ui.add(egui::Slider::new(&mut z, 0..=nz.saturating_sub(1)).text("slice"));
            ui.add(egui::Slider::new(&mut self.opacity, 0.0..=1.0).text("heatmap opacity"));
            if self.job.is_some() {
                ui.spinner();
            }
        });
        if z != self.z {
            self.request(z, self.query);
        }
        let Some(v) = &self.view else {
            return;
        };
        let opacity = if self.opacity == 0.0 {
            0.6
        } else {
            self.opacity
        };
        let n = v.n;
        let tex = self.textures.get_or_insert_with(|| {
            let opts = egui::TextureOptions::NEAREST;
            [
                ctx.load_texture(
                    "usmr-us",
                    image(&v.us, v.heatmap.as_deref(), n, opacity),
                    opts,
                ),
                ctx.load_texture("usmr-syn", image(&v.synthetic, None, n, 0.0), opts),
                ctx.load_texture("usmr-mr", image(&v.mr, None, n, 0.0), opts),
            ]
        });
        let side = ((ui.available_width() - 24.0) / 3.0).clamp(96.0, 4.0 * n as f32);
        let mut clicked = None;
        ui.horizontal(|ui| {
            for (t, title) in tex.iter().zip([
                "Ultrasound + attention",
                "Synthetic MR",
                "Real MR (phantom)",
            ]) {
                ui.vertical(|ui| {
                    ui.label(title);
                    let r = ui.add(
                        egui::Image::new((t.id(), egui::vec2(side, side)))
                            .alt_text(title)
                            .sense(egui::Sense::click()),
                    );
                    if let Some((qx, qy)) = self.query {
                        let p = r.rect.min
                            + egui::vec2(
                                (qx as f32 + 0.5) * side / n as f32,
                                (qy as f32 + 0.5) * side / n as f32,
                            );
                        ui.painter().circle_stroke(
                            p,
                            4.0,
                            egui::Stroke::new(1.5, egui::Color32::WHITE),
                        );
                    }
                    if r.clicked()
                        && let Some(pos) = r.interact_pointer_pos()
                    {
                        let f = (pos - r.rect.min) / side * n as f32;
                        clicked = Some((
                            (f.x.max(0.0) as usize).min(n - 1),
                            (f.y.max(0.0) as usize).min(n - 1),
                        ));
                    }
                });
            }
        });
        if v.heatmap.is_none() {
            ui.small("This network has no attention block (trained with --no-attention).");
        }
        if let Some(q) = clicked {
            self.request(self.z, Some(q));
        }
    }
}
