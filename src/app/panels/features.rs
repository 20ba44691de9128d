//! The Feature-map window: the chosen layer's activations for the input slice at the
//! crosshair, one tile per channel, and the first layer's filters.

use super::Cx;
use super::synthesis::ModelInput;
use crate::analysis::features::{FeatureMaps, first_filters, slice_features};
use crate::app::command::{Command, Task};
use crate::app::jobs::{ModelJob, Wake};
use crate::app::model_slot::ModelSlot;
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
    /// Whether a computation is running.
    pub(crate) fn is_running(&self) -> bool {
        self.job.is_some()
    }

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

impl FeatureState {
    /// Compute the chosen layer's activations for the slice of `input` (None: no network home).
    pub(crate) fn start(
        &mut self,
        model: &mut ModelSlot,
        input: Option<ModelInput>,
        wake: Wake,
    ) -> Result<(), String> {
        let Some((direction, input, v)) = input else {
            return Ok(());
        };
        let z = v[2].round().max(0.0) as usize;
        let layer = self.layer;
        let job = model.run("model", wake, move |m, _| {
            let device = crate::gpu::compute_device().map_err(|e| e.to_string())?;
            slice_features(m, direction, &input, z, layer, 64, &device).map_err(|e| e.to_string())
        });
        if let Some(j) = job {
            self.job = Some(j.map_err(|e| format!("Feature maps: {e}"))?);
        }
        Ok(())
    }

    /// Collect a finished computation, the network back (`timeout`: wait that long; None:
    /// only look).
    pub(crate) fn take(
        &mut self,
        ctx: &egui::Context,
        model: &mut ModelSlot,
        timeout: Option<Duration>,
    ) -> Result<(), String> {
        let Some(r) = self.job.as_ref().and_then(|j| j.finish(timeout)) else {
            return Ok(());
        };
        self.job = None;
        let r = match model.returned(r) {
            Ok(Some(r)) => r,
            Ok(None) => return Ok(()),
            Err(e) => Err(e.to_string()),
        };
        let f = self;
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
            Err(e) => return Err(format!("Feature maps: {e}")),
        }
        Ok(())
    }

    /// The window.
    pub(crate) fn ui(&mut self, host: &mut egui::Ui, cx: &mut Cx) {
        let ctx = &host.ctx().clone();
        let open = self.show;
        super::body(host, |ui| {
            if cx.model.notice_ui(ui) {
                return;
            }
            let f = &mut *self;
            ui.horizontal(|ui| {
                let names = cx.model.layers();
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
                    cx.model.loaded.is_some(),
                    "Compute for this slice",
                );
                if let Some(c) = click {
                    cx.push(c.command(Command::StartFeatures, Task::Features));
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
                    && let Some((m, _)) = &cx.model.loaded
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
        self.show = open;
    }
}
