//! The Synthesis panel: load a checkpoint, synthesise the other modality, compare it with the
//! real one (error maps in the third pane, metrics), save it.

use super::Cx;
use crate::app::command::{Command, Task};
use crate::app::jobs::{ModelJob, SynthOutput, Wake, synthesize_and_compare};
use crate::app::model_slot::ModelSlot;
use crate::app::pair::Pair;
use crate::app::panels::dialogs::Dialog;
use crate::app::viewer::Viewer;
use crate::app::viewer::render::Combine;
use crate::model::Direction;
use crate::volume::{Affine, Volume};
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
    /// Send to PACS.
    pub send: super::pacs::send::SendToPacs,
}

/// The network's input at the crosshair: its direction, the input volume, and the crosshair
/// as a voxel of that volume.
pub(crate) type ModelInput = (Direction, Arc<Volume>, [f64; 3]);

/// The loaded network's direction, its input volume (MR for MR to CT, CT for CT to MR) and the
/// `crosshair` as a voxel of that volume (through the registration for the MR). None without a
/// network at home; an error, naming `what`, when the input is missing.
pub(crate) fn model_input_at(
    model: &ModelSlot,
    pair: &Pair,
    volumes: &[Arc<Volume>],
    crosshair: [f64; 3],
    what: &str,
) -> Result<Option<ModelInput>, String> {
    let Some(direction) = model.direction() else {
        return Ok(None);
    };
    let input = match direction {
        Direction::MrToCt => pair.mr_volume(volumes),
        Direction::CtToMr | Direction::CtDenoise => pair.ct_volume(volumes),
    };
    let Some(input) = input.cloned() else {
        return Err(format!(
            "{what} needs the model's input volume (MR for MR to CT, CT for CT to MR)."
        ));
    };
    let w = match (direction, pair.mr_from_ct) {
        (Direction::MrToCt, Some(t)) => t.apply(crosshair),
        _ => crosshair,
    };
    let v = input.geometry.voxel_from_world(w);
    Ok(Some((direction, input, v)))
}

impl SynthesisState {
    /// Synthesise with the network: MR -> CT from the MR role (metrics against the CT, through
    /// the registration when there is one), CT -> MR from the CT role.
    pub(crate) fn start(
        &mut self,
        model: &mut ModelSlot,
        pair: &Pair,
        volumes: &[Arc<Volume>],
        wake: Wake,
    ) -> Result<(), String> {
        if self.job.is_some() {
            return Ok(());
        }
        let Some(direction) = model.direction() else {
            return Err("No trained model loaded: load a checkpoint first.".into());
        };
        let mr_from_ct = pair.mr_from_ct;
        let (ct, mr) = (
            pair.ct_volume(volumes).cloned(),
            pair.mr_volume(volumes).cloned(),
        );
        let (input, reference) = match direction {
            Direction::MrToCt => (mr, ct.map(|c| (c, mr_from_ct))),
            Direction::CtToMr => (ct, mr.map(|m| (m, mr_from_ct.and_then(|t| t.inverse())))),
            // Denoising: the input is the loaded CT; no normal-dose reference to compare with.
            Direction::CtDenoise => (ct, None),
        };
        let Some(input) = input else {
            return Err("Synthesis needs an input volume in the matching role (MR for MR → CT, CT for CT → MR).".into());
        };
        let job = model.run("synthesize", wake, move |m, pr| {
            let reference = reference.as_ref().map(|(v, t)| (&**v, *t));
            synthesize_and_compare(m, direction, &input, reference, pr)
        });
        if let Some(j) = job {
            self.job = Some(j.map_err(|e| format!("Synthesis: {e}"))?);
            self.registration = mr_from_ct;
        }
        Ok(())
    }

    /// Once finished, the synthetic volume joins `volumes` (replacing the one made before) and
    /// the network comes back (`timeout`: wait that long; None: only look).
    pub(crate) fn take(
        &mut self,
        model: &mut ModelSlot,
        volumes: &mut Vec<Arc<Volume>>,
        timeout: Option<Duration>,
    ) -> Result<(), String> {
        let Some(r) = self.job.as_ref().and_then(|j| j.take(timeout)) else {
            return Ok(());
        };
        self.job = None;
        let (result, metrics) = model.returned(r).map_err(|e| format!("Synthesis: {e}"))?;
        match result {
            Ok(v) => {
                let v = Arc::new(v);
                match self.synthetic {
                    Some(i) if i < volumes.len() => volumes[i] = v,
                    _ => {
                        volumes.push(v);
                        self.synthetic = Some(volumes.len() - 1);
                    }
                }
                self.third_shows_synthetic = true;
                self.metrics = metrics;
                Ok(())
            }
            Err(crate::synth::SynthError::Cancelled) => Err("Synthesis cancelled.".into()),
            Err(e) => Err(format!("Synthesis: {e}")),
        }
    }

    /// The panel's window.
    pub(crate) fn ui(&mut self, host: &mut egui::Ui, cx: &mut Cx, viewer: &mut Viewer) {
        let open = self.show;
        let mut dialog = None;
        super::body(host, |ui| {
            let (s, v) = (&mut *self, &mut *viewer);
            match cx.model.info() {
                Some((c, true)) => {
                    ui.label(format!("Model: {}", c.path.display()));
                    if c.path.as_os_str() == crate::model::demo::DEMO_MODEL_NAME {
                        ui.small(
                            "Trained on phantom heads only: a demonstration, not a clinical tool.",
                        );
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
                if ui
                    .button("Demo model")
                    .on_hover_text(crate::model::demo::DEMO_MODEL_NAME)
                    .clicked()
                {
                    cx.push(Command::LoadDemoModel);
                }
                if let Some(job) = &s.job {
                    ui.add(
                        egui::ProgressBar::new(job.progress().fraction())
                            .desired_width(180.0)
                            .show_percentage(),
                    );
                    if ui.button("Cancel").clicked() {
                        cx.push(Command::Cancel(Task::Synthesis));
                    }
                } else if ui
                    .add_enabled(cx.model.loaded.is_some(), egui::Button::new("Synthesise"))
                    .clicked()
                {
                    cx.push(Command::StartSynthesis);
                }
            });
            if s.synthetic.is_some() {
                ui.checkbox(
                    &mut s.third_shows_synthetic,
                    "Third pane: real vs synthetic",
                );
                ui.horizontal(|ui| {
                    let (mut range, background) = match v.compare {
                        Combine::SignedError { range, background }
                        | Combine::AbsError { range, background } => (range, background),
                        _ => (
                            200.0,
                            if cx.model.direction() == Some(crate::model::Direction::CtToMr) {
                                50.0
                            } else {
                                -500.0
                            },
                        ),
                    };
                    if ui
                        .selectable_label(
                            matches!(v.compare, Combine::SignedError { .. }),
                            "Error (signed)",
                        )
                        .clicked()
                    {
                        v.compare = Combine::SignedError { range, background };
                    }
                    if ui
                        .selectable_label(matches!(v.compare, Combine::AbsError { .. }), "|Error|")
                        .clicked()
                    {
                        v.compare = Combine::AbsError { range, background };
                    }
                    if matches!(
                        v.compare,
                        Combine::SignedError { .. } | Combine::AbsError { .. }
                    ) && ui
                        .add(
                            egui::Slider::new(&mut range, 10.0..=2000.0)
                                .logarithmic(true)
                                .text("± range"),
                        )
                        .changed()
                    {
                        v.compare = match v.compare {
                            Combine::SignedError { .. } => {
                                Combine::SignedError { range, background }
                            }
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
                s.send.ui(ui);
            }
            match &s.metrics {
                Some(Ok(m)) => {
                    if s.registration.is_none() {
                        ui.colored_label(egui::Color32::YELLOW, "Not registered: the reference is compared in scanner coordinates, so these errors include any misalignment of the pair. Register (Registration panel), then synthesise again.");
                    } else if s.registration != cx.pair.mr_from_ct {
                        ui.colored_label(egui::Color32::YELLOW, "The registration changed since these metrics were computed: synthesise again to compare through the current one.");
                    }
                    egui::Grid::new("synth-metrics")
                        .striped(true)
                        .show(ui, |ui| {
                            for h in ["region", "MAE", "RMSE", "PSNR dB", "SSIM", "UQI", "VIF"] {
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
                                ui.monospace(format!("{:.4}", r.vif));
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
        self.show = open;
        if let Some(d) = dialog {
            cx.push(Command::Dialog(d));
        }
    }
}
