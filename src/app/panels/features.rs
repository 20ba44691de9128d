//! The Feature-map window: the chosen layer's activations for the input slice at the
//! crosshair, one tile per channel, and the first layer's filters.

use crate::analysis::features::{FeatureMaps, first_filters, slice_features};
use crate::app::SynthScopeApp;
use crate::app::command::{Command, Task};
use crate::app::jobs::{ModelJob, repaint};
use crate::app::panels::run_button;
use crate::volume::Colormap;
use std::time::Duration;

/// The Feature-map window's state.
pub struct FeatureState {
    /// Show the window.
    pub show: bool,
    /// Layer whose activations the window shows (index into the model's layer names).
    pub layer: usize,
    /// The running computation.
    job: Option<ModelJob<Result<FeatureMaps, String>>>,
    /// The last computed feature maps.
    pub maps: Option<FeatureMaps>,
    /// One texture per channel, with the channel's range.
    textures: Vec<(egui::TextureHandle, f32, f32)>,
    filter_textures: Vec<egui::TextureHandle>,
    /// The channel shown large.
    enlarged: Option<usize>,
}

impl Default for FeatureState {
    fn default() -> Self {
        Self {
            show: false,
            layer: 1,
            job: None,
            maps: None,
            textures: Vec::new(),
            filter_textures: Vec::new(),
            enlarged: None,
        }
    }
}

impl FeatureState {
    /// Progress (and cancellation) of the running computation.
    pub(crate) fn progress(&self) -> Option<&crate::io::Progress> {
        self.job.as_ref().map(|j| j.progress())
    }
}

/// Smallest and largest value.
fn range(v: &[f32]) -> (f32, f32) {
    v.iter()
        .fold((f32::INFINITY, f32::NEG_INFINITY), |(a, b), x| {
            (a.min(*x), b.max(*x))
        })
}

/// A channel image (row-major, `w` x `h`) scaled to its own range, in JET colours.
fn jet_image(v: &[f32], w: usize, h: usize) -> egui::ColorImage {
    let (lo, hi) = range(v);
    let span = (hi - lo).max(1e-12);
    let table = Colormap::Jet.table();
    let rgba: Vec<u8> = v
        .iter()
        .flat_map(|x| table[(((x - lo) / span) * 255.0).round().clamp(0.0, 255.0) as usize])
        .collect();
    egui::ColorImage::from_rgba_unmultiplied([w, h], &rgba)
}

impl SynthScopeApp {
    /// Compute the chosen layer's activations for the input slice at the crosshair.
    pub(crate) fn start_features(&mut self, ctx: &egui::Context) {
        if self.features.job.is_some() || self.synthesis.job.is_some() {
            return;
        }
        let Some((direction, input, v)) = self.model_input_at_crosshair("Feature maps") else {
            return;
        };
        let z = v[2].round().max(0.0) as usize;
        let layer = self.features.layer;
        let job = self.model.run("model", repaint(ctx), move |m, _| {
            let device = crate::gpu::shared()
                .map_err(|e| e.to_string())?
                .device
                .clone();
            slice_features(m, direction, &input, z, layer, 64, &device).map_err(|e| e.to_string())
        });
        match job {
            Some(Ok(j)) => self.features.job = Some(j),
            Some(Err(e)) => self.errors.push(format!("Feature maps: {e}")),
            None => {}
        }
    }

    /// Collect a finished feature-map computation (`timeout`: wait that long; None: poll).
    pub(crate) fn poll_features(&mut self, ctx: &egui::Context, timeout: Option<Duration>) {
        let Some(r) = self.features.job.as_ref().and_then(|j| j.finish(timeout)) else {
            return;
        };
        self.features.job = None;
        let r = match self.model.returned(r) {
            Ok(Some(r)) => r,
            Ok(None) => return,
            Err(e) => Err(e.to_string()),
        };
        let f = &mut self.features;
        match r {
            Ok(maps) => {
                f.textures = maps
                    .channels
                    .iter()
                    .enumerate()
                    .map(|(k, ch)| {
                        let (lo, hi) = range(ch);
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
                f.enlarged = None;
                f.maps = Some(maps);
            }
            Err(e) => self.errors.push(format!("Feature maps: {e}")),
        }
    }

    /// Wait for a running feature computation (tests).
    pub fn wait_for_features(&mut self, ctx: &egui::Context, timeout: Duration) {
        self.poll_features(ctx, Some(timeout));
    }

    pub(crate) fn features_ui(&mut self, ctx: &egui::Context) {
        let mut open = self.features.show;
        egui::Window::new("Feature maps")
            .open(&mut open)
            .default_width(560.0)
            .show(ctx, |ui| {
                if self.model.notice_ui(ui) {
                    return;
                }
                let f = &mut self.features;
                ui.horizontal(|ui| {
                    let names = self.model.layers();
                    egui::ComboBox::from_label("Layer")
                        .selected_text(names.get(f.layer).cloned().unwrap_or_default())
                        .show_ui(ui, |ui| {
                            for (i, n) in names.iter().enumerate() {
                                ui.selectable_value(&mut f.layer, i, n);
                            }
                        });
                    let click = run_button(
                        ui,
                        f.job.as_ref(),
                        self.model.loaded.is_some(),
                        "Compute for this slice",
                    );
                    if let Some(c) = click {
                        self.commands
                            .push(c.command(Command::StartFeatures, Task::Features));
                    }
                });
                if let Some(maps) = &f.maps {
                    ui.label(format!(
                        "{}: {} channels of {}x{} (showing {}), each scaled to its own range, JET",
                        maps.layer,
                        maps.total_channels,
                        maps.width,
                        maps.height,
                        f.textures.len()
                    ));
                    if let Some(k) = f.enlarged
                        && let Some((t, lo, hi)) = f.textures.get(k)
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
                                for (k, (t, lo, hi)) in f.textures.iter().enumerate() {
                                    let r = ui
                                        .add(
                                            egui::Image::new(t)
                                                .fit_to_exact_size(egui::vec2(56.0, 56.0))
                                                .sense(egui::Sense::click()),
                                        )
                                        .on_hover_text(format!("channel {k}: {lo:.3} .. {hi:.3}"));
                                    if r.clicked() {
                                        f.enlarged = Some(k);
                                    }
                                }
                            });
                        });
                }
                ui.collapsing("First-layer filters", |ui| {
                    if f.filter_textures.is_empty()
                        && let Some((m, _)) = &self.model.loaded
                        && let Ok((filters, k)) = first_filters(m)
                    {
                        f.filter_textures = filters
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
                        for t in &f.filter_textures {
                            ui.add(egui::Image::new(t).fit_to_exact_size(egui::vec2(36.0, 36.0)));
                        }
                    });
                });
            });
        self.features.show = open;
    }
}
