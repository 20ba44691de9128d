//! The Grad-CAM window: which features of the synthesis network raise its output in bone (or in
//! a disc around the crosshair), for the input slice under the crosshair, overlaid on that slice.

use super::jobs::ModelJob;
use super::*;
use crate::synth::{CamSlice, CamTarget};

/// Grad-CAM window state.
pub struct GradcamState {
    /// Show the window.
    pub show: bool,
    /// Activation layer (index into the model's layer names).
    pub layer: usize,
    /// Explain bone (else the disc).
    pub bone: bool,
    /// Disc radius (pixels).
    pub radius: f32,
    /// Heatmap opacity.
    pub opacity: f32,
    /// Heatmap colours.
    pub colormap: Colormap,
    /// The running computation.
    pub job: Option<ModelJob<Result<CamSlice, String>>>,
    /// The last result.
    pub result: Option<CamSlice>,
    texture: Option<(egui::TextureHandle, f32, Colormap)>,
}

impl Default for GradcamState {
    fn default() -> Self {
        Self {
            show: false,
            layer: 1,
            bone: true,
            radius: 12.0,
            opacity: 0.5,
            colormap: Colormap::Jet,
            job: None,
            result: None,
            texture: None,
        }
    }
}

/// Grey slice with the heatmap blended on top; the target region's edge in white.
fn overlay(c: &CamSlice, opacity: f32, colormap: Colormap) -> egui::ColorImage {
    let table = colormap.table();
    let (w, h) = (c.width, c.height);
    let mut rgba = Vec::with_capacity(w * h * 4);
    for i in 0..w * h {
        let g = c.input[i].clamp(0.0, 1.0) * 255.0;
        let col = table[(c.cam[i].clamp(0.0, 1.0) * 255.0) as usize];
        let (x, y) = (i % w, i / w);
        let edge = c.region[i]
            && (x == 0
                || y == 0
                || x + 1 == w
                || y + 1 == h
                || !c.region[i - 1]
                || !c.region[i + 1]
                || !c.region[i - w]
                || !c.region[i + w]);
        for k in 0..3 {
            let v = if edge {
                255.0
            } else {
                g * (1.0 - opacity) + col[k] as f32 * opacity
            };
            rgba.push(v.round().clamp(0.0, 255.0) as u8);
        }
        rgba.push(255);
    }
    egui::ColorImage::from_rgba_unmultiplied([w, h], &rgba)
}

impl SynthScopeApp {
    /// Compute Grad-CAM for the input slice under the crosshair.
    pub fn start_gradcam(&mut self, ctx: &egui::Context) {
        if self.gradcam.job.is_some() || self.model.is_none() {
            return;
        }
        let Some((direction, input, v)) = self.model_input_at_crosshair("Grad-CAM") else {
            return;
        };
        let z = v[2].round().max(0.0) as usize;
        let target = if self.gradcam.bone {
            CamTarget::Bone
        } else {
            CamTarget::Disc {
                x: v[0].round().max(0.0) as usize,
                y: v[1].round().max(0.0) as usize,
                radius: self.gradcam.radius,
            }
        };
        let Some((model, meta, path)) = self.model.take() else {
            return;
        };
        self.model_pending = Some((meta, path));
        let layer = self.gradcam.layer;
        let c = ctx.clone();
        self.gradcam.job = Some(ModelJob::start(
            model,
            move |m| {
                let device = gpu::shared().map_err(|e| e.to_string())?.device.clone();
                crate::synth::slice_gradcam(m, direction, &input, z, layer, target, &device)
            },
            move || c.request_repaint(),
        ));
    }

    pub(super) fn poll_gradcam(&mut self, timeout: Option<Duration>) {
        let Some(job) = &self.gradcam.job else {
            return;
        };
        let r = match timeout {
            Some(t) => job.wait(t),
            None => job.poll(),
        };
        if let Some((r, model)) = r {
            self.gradcam.job = None;
            if let Some((meta, path)) = self.model_pending.take() {
                self.model = Some((model, meta, path));
            }
            match r {
                Ok(c) => {
                    self.gradcam.result = Some(c);
                    self.gradcam.texture = None;
                }
                Err(e) => self.errors.push(format!("Grad-CAM: {e}")),
            }
        }
    }

    pub(super) fn gradcam_ui(&mut self, ctx: &egui::Context) {
        self.poll_gradcam(None);
        let mut open = self.gradcam.show;
        if !open {
            return;
        }
        let mut run = false;
        egui::Window::new("Grad-CAM (synthesis network)")
            .open(&mut open)
            .default_width(420.0)
            .show(ctx, |ui| {
                if self.no_model_notice(ui) {
                    return;
                }
                let names: Vec<String> = self
                    .model_layers_now()
                    .into_iter()
                    .filter(|n| n != "output")
                    .collect();
                let g = &mut self.gradcam;
                g.layer = g.layer.min(names.len().saturating_sub(1));
                egui::ComboBox::from_label("Layer")
                    .selected_text(names.get(g.layer).cloned().unwrap_or_default())
                    .show_ui(ui, |ui| {
                        for (i, n) in names.iter().enumerate() {
                            ui.selectable_value(&mut g.layer, i, n);
                        }
                    });
                ui.horizontal(|ui| {
                    ui.label("Explain the mean output in");
                    ui.radio_value(&mut g.bone, true, "bone (CT > 300 HU)");
                    ui.radio_value(&mut g.bone, false, "a disc at the crosshair");
                });
                if !g.bone {
                    ui.add(egui::Slider::new(&mut g.radius, 2.0..=64.0).text("radius (px)"));
                }
                ui.add(egui::Slider::new(&mut g.opacity, 0.0..=1.0).text("opacity"));
                egui::ComboBox::from_label("Heatmap colours")
                    .selected_text(g.colormap.name())
                    .show_ui(ui, |ui| {
                        for c in [Colormap::Jet, Colormap::Inferno, Colormap::Grey] {
                            ui.selectable_value(&mut g.colormap, c, c.name());
                        }
                    });
                ui.horizontal(|ui| {
                    if g.job.is_some() {
                        ui.spinner();
                        ui.label("computing…");
                    } else if ui.button("Compute for this slice").clicked() {
                        run = true;
                    }
                });
                if let Some(c) = &g.result {
                    let stale = g
                        .texture
                        .as_ref()
                        .is_none_or(|(_, o, m)| *o != g.opacity || *m != g.colormap);
                    if stale {
                        g.texture = Some((
                            ctx.load_texture(
                                "gradcam",
                                overlay(c, g.opacity, g.colormap),
                                egui::TextureOptions::LINEAR,
                            ),
                            g.opacity,
                            g.colormap,
                        ));
                    }
                    ui.small(format!(
                        "{} · {} x {} · {:.2} s · white outline: the target region",
                        c.layer, c.width, c.height, c.seconds
                    ));
                    if let Some((t, _, _)) = &g.texture {
                        let side = 380.0;
                        let aspect = c.height as f32 / c.width.max(1) as f32;
                        ui.add(
                            egui::Image::new(t).fit_to_exact_size(egui::vec2(side, side * aspect)),
                        );
                    }
                }
            });
        self.gradcam.show = open;
        if run {
            self.start_gradcam(ctx);
        }
    }

    /// Layer names of the model (loaded or on a worker).
    fn model_layers_now(&self) -> Vec<String> {
        match &self.model {
            Some((m, _, _)) => m.layer_names(),
            None => self.model_layers.clone(),
        }
    }
}
