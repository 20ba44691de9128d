//! The registration panel: run, watch, inspect and undo the MR-to-CT alignment.

use super::*;

/// The metric curve (MI per accepted step; one line per stage and level, drawn one after another).
pub(super) fn curve_ui(ui: &mut egui::Ui, curve: &[crate::register::IterationReport]) {
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

impl SynthScopeApp {
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

    pub(super) fn finish_registration(
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

    pub(super) fn registration_ui(&mut self, ctx: &egui::Context) {
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
}
