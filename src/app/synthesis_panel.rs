//! Synthesis and feature-map panels: load a checkpoint, synthesise, inspect activations.

use super::*;

/// A channel image (row-major, `w` x `h`) scaled to its own range, in JET colours.
pub(super) fn jet_image(v: &[f32], w: usize, h: usize) -> egui::ColorImage {
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

impl SynthScopeApp {
    /// Load the demo model embedded in the binary (see `assets/demo-model`).
    pub fn load_demo_model(&mut self) {
        let r = gpu::shared()
            .map_err(|e| e.to_string())
            .and_then(|g| crate::model::demo::load_demo_model(&g.device));
        match r {
            Ok(m) => {
                self.model_layers = m.0.layer_names();
                self.model = Some(m);
            }
            Err(e) => self.errors.push(format!("Demo model: {e}")),
        }
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
                self.model_layers = m.layer_names();
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
        self.synth_registration = self.mr_transform;
        self.synth_job = Some(SynthJob::start(
            model,
            direction,
            input,
            reference,
            move || c.request_repaint(),
        ));
        self.model_pending = Some((meta, path));
    }

    /// The loaded model's direction, its input volume (MR for MR to CT, CT for CT to MR) and the
    /// crosshair as a voxel of that volume (through the registration for the MR). Reports to the
    /// user, naming `what`, when the input is missing.
    pub(super) fn model_input_at_crosshair(
        &mut self,
        what: &str,
    ) -> Option<(crate::model::Direction, Arc<Volume>, [f64; 3])> {
        use crate::model::Direction;
        let direction = self.model_direction()?;
        let input = match direction {
            Direction::MrToCt => self.mr_volume().cloned(),
            Direction::CtToMr => self.ct_volume().cloned(),
        };
        let Some(input) = input else {
            self.errors.push(format!(
                "{what} needs the model's input volume (MR for MR to CT, CT for CT to MR)."
            ));
            return None;
        };
        let w = match (direction, self.mr_transform) {
            (Direction::MrToCt, Some(t)) => t.apply(self.view.crosshair),
            _ => self.view.crosshair,
        };
        let v = input.geometry.voxel_from_world(w);
        Some((direction, input, v))
    }

    /// Compute the chosen layer's activations for the input slice at the crosshair.
    pub fn start_features(&mut self, ctx: &egui::Context) {
        if self.feature_job.is_some() || self.synth_job.is_some() {
            return;
        }
        let Some((direction, input, v)) = self.model_input_at_crosshair("Feature maps") else {
            return;
        };
        let z = v[2].round().max(0.0) as usize;
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

    /// Collect a finished feature-map computation (`timeout`: wait that long; None: poll).
    pub(super) fn poll_features(&mut self, ctx: &egui::Context, timeout: Option<Duration>) {
        let Some((r, model)) = self.feature_job.as_ref().and_then(|j| j.finish(timeout)) else {
            return;
        };
        self.feature_job = None;
        if let Some((meta, path)) = self.model_pending.take() {
            self.model = Some((model, meta, path));
        }
        let Some(r) = r else {
            return;
        };
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

    pub(super) fn finish_synthesis(&mut self, r: jobs::SynthResult) {
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

    /// Wait for a running feature computation (tests).
    pub fn wait_for_features(&mut self, ctx: &egui::Context, timeout: Duration) {
        self.poll_features(ctx, Some(timeout));
    }

    pub(super) fn synthesis_ui(&mut self, ctx: &egui::Context) {
        let mut open = self.show_synthesis;
        let mut dialog = None;
        let mut run = false;
        let mut load_demo = false;
        egui::Window::new("Synthesis").open(&mut open).default_width(420.0).show(ctx, |ui| {
            match (&self.model, &self.model_pending) {
                (Some((_, meta, path)), _) => {
                    ui.label(format!("Model: {}", path.display()));
                    if path.as_os_str() == crate::model::demo::DEMO_MODEL_NAME {
                        ui.small("Trained on phantom heads only: a demonstration, not a clinical tool.");
                    }
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
                if ui.button("Demo model").on_hover_text(crate::model::demo::DEMO_MODEL_NAME).clicked() {
                    load_demo = true;
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
                ui.horizontal(|ui| {
                    if ui.button("Save synthetic (NIfTI)…").clicked() {
                        dialog = Some(Dialog::SaveSynthetic);
                    }
                    if ui.button("Save synthetic (DICOM series)…").on_hover_text("A new DERIVED\\SECONDARY series in a folder; patient and frame of reference from the input").clicked() {
                        dialog = Some(Dialog::SaveSyntheticDicom);
                    }
                });
            }
            match &self.synth_metrics {
                Some(Ok(m)) => {
                    if self.synth_registration.is_none() {
                        ui.colored_label(egui::Color32::YELLOW, "Not registered: the reference is compared in scanner coordinates, so these errors include any misalignment of the pair. Register (Registration panel), then synthesise again.");
                    } else if self.synth_registration != self.mr_transform {
                        ui.colored_label(egui::Color32::YELLOW, "The registration changed since these metrics were computed: synthesise again to compare through the current one.");
                    }
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
        if load_demo {
            self.load_demo_model();
        }
        if run {
            self.start_synthesis(ctx);
        }
        if let Some(d) = dialog {
            self.open_dialog(ctx, d);
        }
    }

    /// Says so, and returns true, when no model is loaded (nor out on a worker).
    pub(super) fn no_model_notice(&self, ui: &mut egui::Ui) -> bool {
        let none = self.model.is_none() && self.model_pending.is_none();
        if none {
            ui.colored_label(
                egui::Color32::YELLOW,
                "No model loaded: load a checkpoint in the Synthesis panel.",
            );
        }
        none
    }

    pub(super) fn features_ui(&mut self, ctx: &egui::Context) {
        let mut open = self.show_features;
        let mut run = false;
        egui::Window::new("Feature maps")
            .open(&mut open)
            .default_width(560.0)
            .show(ctx, |ui| {
                if self.no_model_notice(ui) {
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
                    run = super::gradcam_panel::run_button(
                        ui,
                        self.feature_job.as_ref(),
                        self.model.is_some(),
                        "Compute for this slice",
                    );
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
}
