//! The registration panel: run, watch, inspect and undo the MR-to-CT alignment.

use crate::app::SynthScopeApp;
use crate::app::command::{Command, Task};
use crate::app::jobs::{RegisterJob, repaint};
use crate::app::panels::dialogs::Dialog;
use crate::app::viewer::render::Combine;
use crate::register::{IterationReport, RegisterError, RegistrationResult};
use crate::volume::Volume;
use std::sync::Arc;
use std::time::Duration;

/// The Registration panel's state.
pub struct RegistrationState {
    /// Show the panel.
    pub show: bool,
    /// Run the affine stage after the rigid one.
    pub affine: bool,
    /// Loaded volume used as the registration mask (samples where it is non-zero), if any.
    pub mask: Option<usize>,
    /// The running registration.
    pub job: Option<RegisterJob>,
    /// The last registration's result (for its report).
    pub result: Option<RegistrationResult>,
    /// The running or last registration's metric curve.
    pub curve: Vec<IterationReport>,
}

impl Default for RegistrationState {
    fn default() -> Self {
        Self {
            show: false,
            affine: true,
            mask: None,
            job: None,
            result: None,
            curve: Vec::new(),
        }
    }
}

/// The metric curve (MI per accepted step; one line per stage and level, drawn one after another).
fn curve_ui(ui: &mut egui::Ui, curve: &[IterationReport]) {
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
    /// Start registering the MR to the CT (rigid, then affine when chosen).
    pub(crate) fn start_registration(&mut self, ctx: &egui::Context) {
        let (Some(ct), Some(mr)) = (self.ct_volume().cloned(), self.mr_volume().cloned()) else {
            self.errors.push(
                "Registration needs a CT and an MR: assign both roles in the series browser."
                    .into(),
            );
            return;
        };
        let r = &mut self.registration;
        if r.job.is_some() {
            return;
        }
        let cfg = crate::register::RegistrationConfig {
            affine: r.affine,
            ..Default::default()
        };
        r.curve.clear();
        let mask = r.mask.and_then(|i| self.volumes.get(i).cloned());
        match crate::app::jobs::start_registration(ct, mr, mask, cfg, repaint(ctx)) {
            Ok(j) => r.job = Some(j),
            Err(e) => self.errors.push(format!("Registration: {e}")),
        }
    }

    /// Take the curve so far, and the result once finished (`timeout`: wait that long; None:
    /// only look).
    pub(crate) fn take_registration(&mut self, timeout: Option<Duration>) {
        let Some(job) = &self.registration.job else {
            return;
        };
        let done = job.take(timeout);
        self.registration.curve.extend(job.events());
        if let Some(r) = done {
            self.registration.job = None;
            match r {
                Ok(r) => self.finish_registration(r),
                Err(e) => self.errors.push(format!("Registration: {e}")),
            }
        }
    }

    fn finish_registration(&mut self, r: Result<RegistrationResult, RegisterError>) {
        match r {
            Ok(res) => {
                self.pair.set_transform(Some(res.transform));
                self.registration.result = Some(res);
            }
            Err(e) => self.errors.push(format!("Registration: {e}")),
        }
    }

    pub(crate) fn registration_ui(&mut self, ctx: &egui::Context) {
        let mut open = self.registration.show;
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
                let r = &mut self.registration;
                ui.checkbox(&mut r.affine, "Affine after rigid (12 degrees of freedom)");
                let mask_name = |i: Option<usize>, vols: &[Arc<Volume>]| {
                    i.and_then(|i| vols.get(i))
                        .map(|v| v.meta.description.clone())
                        .unwrap_or_else(|| "none (whole field of view)".into())
                };
                egui::ComboBox::from_label("Mask")
                    .selected_text(mask_name(r.mask, &self.volumes))
                    .show_ui(ui, |ui| {
                        ui.selectable_value(&mut r.mask, None, "none (whole field of view)");
                        for (i, v) in self.volumes.iter().enumerate() {
                            ui.selectable_value(&mut r.mask, Some(i), v.meta.description.clone());
                        }
                    });
                ui.label(
                    "Mattes mutual information, 32 bins, pyramid 4-2-1, centre-of-mass start.",
                );
                ui.horizontal(|ui| {
                    if let Some(job) = &r.job {
                        ui.add(
                            egui::ProgressBar::new(job.progress().fraction())
                                .desired_width(220.0)
                                .show_percentage(),
                        );
                        if ui.button("Cancel").clicked() {
                            self.commands.push(Command::Cancel(Task::Registration));
                        }
                    } else if ui.button("Run").clicked() {
                        self.commands.push(Command::StartRegistration);
                    }
                });
                if let Some(last) = r.curve.last() {
                    ui.label(format!(
                        "{:?} level {} iteration {}: MI {:.4}",
                        last.stage,
                        last.level + 1,
                        last.iteration + 1,
                        last.mi
                    ));
                }
                curve_ui(ui, &r.curve);
                if let Some(r) = &r.result {
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
                    let v = &mut self.viewer;
                    let checker = matches!(v.compare, Combine::Checker(_));
                    if ui.selectable_label(checker, "Checkerboard").clicked() {
                        v.compare = Combine::Checker(v.checker_mm);
                    }
                    if ui
                        .selectable_label(matches!(v.compare, Combine::Blend(_)), "Fade")
                        .clicked()
                    {
                        v.compare = Combine::Blend(0.5);
                    }
                    if ui
                        .selectable_label(v.compare == Combine::Difference, "Difference")
                        .clicked()
                    {
                        v.compare = Combine::Difference;
                    }
                });
                if let Combine::Blend(w) = &mut self.viewer.compare {
                    ui.add(egui::Slider::new(w, 0.0..=1.0).text("CT → MR"));
                }
                ui.horizontal(|ui| {
                    if ui
                        .add_enabled(self.pair.can_undo(), egui::Button::new("Undo"))
                        .clicked()
                    {
                        self.commands.push(Command::UndoTransform);
                    }
                    if ui
                        .add_enabled(
                            self.pair.mr_from_ct.is_some(),
                            egui::Button::new("Reset to identity"),
                        )
                        .clicked()
                    {
                        self.commands.push(Command::ResetTransform);
                    }
                });
                ui.horizontal(|ui| {
                    if ui
                        .add_enabled(
                            self.pair.mr_from_ct.is_some(),
                            egui::Button::new("Save .tfm…"),
                        )
                        .clicked()
                    {
                        dialog = Some(Dialog::SaveTfm);
                    }
                    if ui.button("Load .tfm…").clicked() {
                        dialog = Some(Dialog::LoadTfm);
                    }
                    if ui
                        .add_enabled(
                            self.pair.mr_from_ct.is_some(),
                            egui::Button::new("Save MR on CT grid…"),
                        )
                        .clicked()
                    {
                        dialog = Some(Dialog::SaveResampled);
                    }
                    if ui
                        .add_enabled(
                            self.pair.mr_from_ct.is_some(),
                            egui::Button::new("Save CT on MR grid…"),
                        )
                        .clicked()
                    {
                        dialog = Some(Dialog::SaveCtOnMr);
                    }
                });
            });
        self.registration.show = open;
        if let Some(d) = dialog {
            self.commands.push(Command::Dialog(d));
        }
    }
}
