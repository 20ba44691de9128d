//! The registration panel: run, watch, inspect and undo the MR-to-CT alignment.

use super::Cx;
use crate::app::command::{Command, Task};
use crate::app::jobs::{RegisterJob, Wake, start_registration};
use crate::app::pair::Pair;
use crate::app::panels::dialogs::Dialog;
use crate::app::viewer::Viewer;
use crate::app::viewer::render::Combine;
use crate::register::{IterationReport, RegistrationResult};
use crate::volume::{Affine, Volume};
use std::sync::Arc;
use std::time::Duration;

/// The Registration panel's state (rigid by default: one patient's head does not change shape).
#[derive(Default)]
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

impl RegistrationState {
    /// Start registering the pair's MR to its CT (rigid, then affine when chosen).
    pub(crate) fn start(
        &mut self,
        pair: &Pair,
        volumes: &[Arc<Volume>],
        wake: Wake,
    ) -> Result<(), String> {
        let Some((ct, mr)) = pair.both(volumes) else {
            return Err(
                "Registration needs a CT and an MR: assign both roles in the series browser."
                    .into(),
            );
        };
        if self.job.is_some() {
            return Ok(());
        }
        let cfg = crate::register::RegistrationConfig {
            affine: self.affine,
            ..Default::default()
        };
        self.curve.clear();
        let mask = self.mask.and_then(|i| volumes.get(i).cloned());
        let job = start_registration(ct, mr, mask, cfg, wake)
            .map_err(|e| format!("Registration: {e}"))?;
        self.job = Some(job);
        Ok(())
    }

    /// Take the curve so far; once finished, the transform found (its report kept here) or
    /// why not (`timeout`: wait that long; None: only look).
    pub(crate) fn take(&mut self, timeout: Option<Duration>) -> Option<Result<Affine, String>> {
        let job = self.job.as_ref()?;
        let done = job.take(timeout);
        self.curve.extend(job.events());
        let r = done?;
        self.job = None;
        Some(match r {
            Ok(Ok(res)) => {
                let t = res.transform;
                self.result = Some(res);
                Ok(t)
            }
            Ok(Err(e)) => Err(format!("Registration: {e}")),
            Err(e) => Err(format!("Registration: {e}")),
        })
    }

    /// The panel's window.
    pub(crate) fn ui(&mut self, host: &mut egui::Ui, cx: &mut Cx, viewer: &mut Viewer) {
        let open = self.show;
        let mut dialog = None;
        super::body(host, |ui| {
            let name = |v: Option<&Arc<Volume>>| {
                v.map(|v| v.meta.description.clone())
                    .unwrap_or_else(|| "(none)".into())
            };
            ui.label(format!("Fixed (CT): {}", name(cx.ct())));
            ui.label(format!("Moving (MR): {}", name(cx.mr())));
            ui.checkbox(
                &mut self.affine,
                "Affine after rigid (12 degrees of freedom: for scanner distortion)",
            );
            let mask_name = |i: Option<usize>, vols: &[Arc<Volume>]| {
                i.and_then(|i| vols.get(i))
                    .map(|v| v.meta.description.clone())
                    .unwrap_or_else(|| "none (whole field of view)".into())
            };
            egui::ComboBox::from_label("Mask")
                .selected_text(mask_name(self.mask, cx.volumes))
                .show_ui(ui, |ui| {
                    ui.selectable_value(&mut self.mask, None, "none (whole field of view)");
                    for (i, v) in cx.volumes.iter().enumerate() {
                        ui.selectable_value(&mut self.mask, Some(i), v.meta.description.clone());
                    }
                });
            ui.label("Mattes mutual information, 32 bins, pyramid 4-2-1, centre-of-mass start.");
            ui.horizontal(|ui| {
                if let Some(job) = &self.job {
                    ui.add(
                        egui::ProgressBar::new(job.progress().fraction())
                            .desired_width(220.0)
                            .show_percentage(),
                    );
                    if ui.button("Cancel").clicked() {
                        cx.push(Command::Cancel(Task::Registration));
                    }
                } else if ui.button("Run").clicked() {
                    cx.push(Command::StartRegistration);
                }
            });
            if let Some(last) = self.curve.last() {
                ui.label(format!(
                    "{:?} level {} iteration {}: MI {:.4}",
                    last.stage,
                    last.level + 1,
                    last.iteration + 1,
                    last.mi
                ));
            }
            curve_ui(ui, &self.curve);
            if let Some(r) = &self.result {
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
                let v = &mut *viewer;
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
            if let Combine::Blend(w) = &mut viewer.compare {
                ui.add(egui::Slider::new(w, 0.0..=1.0).text("CT → MR"));
            }
            ui.horizontal(|ui| {
                if ui
                    .add_enabled(cx.pair.can_undo(), egui::Button::new("Undo"))
                    .clicked()
                {
                    cx.push(Command::UndoTransform);
                }
                if ui
                    .add_enabled(
                        cx.pair.mr_from_ct.is_some(),
                        egui::Button::new("Reset to identity"),
                    )
                    .clicked()
                {
                    cx.push(Command::ResetTransform);
                }
            });
            ui.horizontal(|ui| {
                if ui
                    .add_enabled(
                        cx.pair.mr_from_ct.is_some(),
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
                        cx.pair.mr_from_ct.is_some(),
                        egui::Button::new("Save MR on CT grid…"),
                    )
                    .clicked()
                {
                    dialog = Some(Dialog::SaveResampled);
                }
                if ui
                    .add_enabled(
                        cx.pair.mr_from_ct.is_some(),
                        egui::Button::new("Save CT on MR grid…"),
                    )
                    .clicked()
                {
                    dialog = Some(Dialog::SaveCtOnMr);
                }
            });
        });
        self.show = open;
        if let Some(d) = dialog {
            cx.push(Command::Dialog(d));
        }
    }
}
