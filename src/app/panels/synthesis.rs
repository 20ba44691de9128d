//! The Synthesis panel: load a checkpoint, synthesise the other modality, compare it with the
//! real one (error maps in the third pane, metrics), save it.

use crate::app::SynthScopeApp;
use crate::app::command::{Command, Task};
use crate::app::jobs::{ModelJob, SynthOutput, repaint};
use crate::app::panels::dialogs::Dialog;
use crate::app::viewer::render::Combine;
use crate::volume::{Affine, Volume};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// The Synthesis panel's state.
#[derive(Default)]
pub struct SynthesisState {
    /// Show the panel.
    pub show: bool,
    /// The running synthesis.
    pub job: Option<ModelJob<SynthOutput>>,
    /// Index of the synthetic volume, once made.
    pub synthetic: Option<usize>,
    /// Metrics of the synthetic volume against the reference.
    pub metrics: Option<Result<Vec<crate::analysis::MetricsReport>, String>>,
    /// The registration the running or last synthesis compared through (None: unregistered).
    registration: Option<Affine>,
    /// The third pane compares the synthetic volume with its reference (else CT with MR).
    pub third_shows_synthetic: bool,
}

impl SynthScopeApp {
    /// Load the demo model embedded in the binary (see `assets/demo-model`).
    pub fn load_demo_model(&mut self) {
        if let Err(e) = self.model.load_demo() {
            self.errors.push(e);
        }
    }

    /// Load a synthesis checkpoint (either file of the .json/.bpk pair) onto the shared device.
    pub fn load_model(&mut self, path: &Path) {
        if let Err(e) = self.model.load(path) {
            self.errors.push(e);
        }
    }

    /// Synthesise with the loaded model: MR -> CT from the MR role (metrics against the CT,
    /// through the registration when there is one), CT -> MR from the CT role.
    pub(crate) fn start_synthesis(&mut self, ctx: &egui::Context) {
        use crate::model::Direction;
        if self.synthesis.job.is_some() {
            return;
        }
        let Some(direction) = self.model.direction() else {
            self.errors
                .push("No trained model loaded: load a checkpoint first.".into());
            return;
        };
        let mr_from_ct = self.pair.mr_from_ct;
        let (input, reference) = match direction {
            Direction::MrToCt => (
                self.mr_volume().cloned(),
                self.ct_volume().cloned().map(|c| (c, mr_from_ct)),
            ),
            Direction::CtToMr => (
                self.ct_volume().cloned(),
                self.mr_volume()
                    .cloned()
                    .map(|m| (m, mr_from_ct.and_then(|t| t.inverse()))),
            ),
        };
        let Some(input) = input else {
            self.errors.push("Synthesis needs an input volume in the matching role (MR for MR → CT, CT for CT → MR).".into());
            return;
        };
        let job = self.model.run("synthesize", repaint(ctx), move |m, pr| {
            let reference = reference.as_ref().map(|(v, t)| (&**v, *t));
            crate::app::jobs::synthesize_and_compare(m, direction, &input, reference, pr)
        });
        match job {
            Some(Ok(j)) => {
                self.synthesis.registration = mr_from_ct;
                self.synthesis.job = Some(j);
            }
            Some(Err(e)) => self.errors.push(format!("Synthesis: {e}")),
            None => {}
        }
    }

    /// Take a finished synthesis (`timeout`: wait that long; None: only look).
    pub(crate) fn take_synthesis(&mut self, timeout: Option<Duration>) {
        let Some(r) = self.synthesis.job.as_ref().and_then(|j| j.take(timeout)) else {
            return;
        };
        self.synthesis.job = None;
        let (result, metrics) = match self.model.returned(r) {
            Ok(r) => r,
            Err(e) => {
                self.errors.push(format!("Synthesis: {e}"));
                return;
            }
        };
        let s = &mut self.synthesis;
        match result {
            Ok(v) => {
                let v = Arc::new(v);
                match s.synthetic {
                    Some(i) if i < self.volumes.len() => self.volumes[i] = v,
                    _ => {
                        self.volumes.push(v);
                        s.synthetic = Some(self.volumes.len() - 1);
                    }
                }
                s.third_shows_synthetic = true;
                s.metrics = metrics;
            }
            Err(crate::synth::SynthError::Cancelled) => {
                self.errors.push("Synthesis cancelled.".into())
            }
            Err(e) => self.errors.push(format!("Synthesis: {e}")),
        }
    }

    /// The loaded model's direction, its input volume (MR for MR to CT, CT for CT to MR) and the
    /// crosshair as a voxel of that volume (through the registration for the MR). Reports to the
    /// user, naming `what`, when the input is missing.
    pub(crate) fn model_input_at_crosshair(
        &mut self,
        what: &str,
    ) -> Option<(crate::model::Direction, Arc<Volume>, [f64; 3])> {
        use crate::model::Direction;
        let direction = self.model.direction()?;
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
        let crosshair = self.viewer.view.crosshair;
        let w = match (direction, self.pair.mr_from_ct) {
            (Direction::MrToCt, Some(t)) => t.apply(crosshair),
            _ => crosshair,
        };
        let v = input.geometry.voxel_from_world(w);
        Some((direction, input, v))
    }

    pub(crate) fn synthesis_ui(&mut self, ctx: &egui::Context) {
        let mut open = self.synthesis.show;
        let mut dialog = None;
        egui::Window::new("Synthesis").open(&mut open).default_width(420.0).show(ctx, |ui| {
            let (s, v) = (&mut self.synthesis, &mut self.viewer);
            match self.model.info() {
                Some((c, true)) => {
                    ui.label(format!("Model: {}", c.path.display()));
                    if c.path.as_os_str() == crate::model::demo::DEMO_MODEL_NAME {
                        ui.small("Trained on phantom heads only: a demonstration, not a clinical tool.");
                    }
                    ui.small(format!("{:?}", c.meta.model));
                }
                Some((c, false)) => {
                    ui.label(format!("Model: {} (running)", c.path.display()));
                }
                None => {
                    ui.colored_label(egui::Color32::YELLOW, "No trained model loaded: synthesis shows nothing until you load a checkpoint (made by training, or imported).");
                }
            }
            ui.horizontal(|ui| {
                if ui.button("Load checkpoint…").clicked() {
                    dialog = Some(Dialog::LoadModel);
                }
                if ui.button("Demo model").on_hover_text(crate::model::demo::DEMO_MODEL_NAME).clicked() {
                    self.commands.push(Command::LoadDemoModel);
                }
                if let Some(job) = &s.job {
                    ui.add(egui::ProgressBar::new(job.progress().fraction()).desired_width(180.0).show_percentage());
                    if ui.button("Cancel").clicked() {
                        self.commands.push(Command::Cancel(Task::Synthesis));
                    }
                } else if ui.add_enabled(self.model.loaded.is_some(), egui::Button::new("Synthesise")).clicked() {
                    self.commands.push(Command::StartSynthesis);
                }
            });
            if s.synthetic.is_some() {
                ui.checkbox(&mut s.third_shows_synthetic, "Third pane: real vs synthetic");
                ui.horizontal(|ui| {
                    let (mut range, background) = match v.compare {
                        Combine::SignedError { range, background } | Combine::AbsError { range, background } => (range, background),
                        _ => (200.0, if self.model.direction() == Some(crate::model::Direction::CtToMr) { 50.0 } else { -500.0 }),
                    };
                    if ui.selectable_label(matches!(v.compare, Combine::SignedError { .. }), "Error (signed)").clicked() {
                        v.compare = Combine::SignedError { range, background };
                    }
                    if ui.selectable_label(matches!(v.compare, Combine::AbsError { .. }), "|Error|").clicked() {
                        v.compare = Combine::AbsError { range, background };
                    }
                    if matches!(v.compare, Combine::SignedError { .. } | Combine::AbsError { .. }) && ui.add(egui::Slider::new(&mut range, 10.0..=2000.0).logarithmic(true).text("± range")).changed() {
                        v.compare = match v.compare {
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
            match &s.metrics {
                Some(Ok(m)) => {
                    if s.registration.is_none() {
                        ui.colored_label(egui::Color32::YELLOW, "Not registered: the reference is compared in scanner coordinates, so these errors include any misalignment of the pair. Register (Registration panel), then synthesise again.");
                    } else if s.registration != self.pair.mr_from_ct {
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
        self.synthesis.show = open;
        if let Some(d) = dialog {
            self.commands.push(Command::Dialog(d));
        }
    }
}
