//! The Runs view: overlay the curves of run folders, their final table, and load a run's
//! checkpoint for synthesis.

use super::TrainingState;
use crate::app::command::Command;
use crate::train::runs::Run;
use std::path::PathBuf;

impl TrainingState {
    /// Read every run folder under the runs root (keeping overlay choices).
    pub fn scan_runs(&mut self) {
        let root = &self.runs_root;
        let mut dirs: Vec<PathBuf> = std::fs::read_dir(root)
            .map(|rd| {
                rd.filter_map(|e| e.ok().map(|e| e.path()))
                    .filter(|p| p.join("metrics.jsonl").exists())
                    .collect()
            })
            .unwrap_or_default();
        dirs.sort();
        let old: Vec<(PathBuf, bool)> =
            self.runs.iter().map(|(r, s)| (r.dir.clone(), *s)).collect();
        self.runs = dirs
            .iter()
            .filter_map(|d| Run::read(d).ok())
            .map(|r| {
                let sel = old
                    .iter()
                    .find(|(d, _)| *d == r.dir)
                    .is_none_or(|(_, s)| *s);
                (r, sel)
            })
            .collect();
    }
}

impl TrainingState {
    /// The Runs view.
    pub(crate) fn runs_ui(&mut self, host: &mut egui::Ui, commands: &mut Vec<Command>) {
        use egui_plot::{Legend, Line, Plot, PlotPoints};
        let open = self.show_runs;
        if !open {
            return;
        }
        let mut rescan = !self.runs_scanned;
        self.runs_scanned = true;
        crate::app::panels::body(host, |ui| {
            ui.horizontal(|ui| {
                ui.label(format!("Run folders under {}", self.runs_root.display()));
                if ui.button("Rescan").clicked() {
                    rescan = true;
                }
            });
            if self.runs.is_empty() {
                ui.label(
                    "No runs yet: train one in the Training panel or with `synthscope train`.",
                );
                return;
            }
            ui.columns(2, |cols| {
                Plot::new("runs-loss")
                    .height(170.0)
                    .legend(Legend::default())
                    .x_axis_label("step")
                    .y_axis_label("training loss")
                    .show(&mut cols[0], |plot| {
                        for (r, on) in &self.runs {
                            if *on {
                                let pts: Vec<[f64; 2]> =
                                    r.steps.iter().map(|s| [s.step as f64, s.loss]).collect();
                                plot.line(Line::new(r.name(), PlotPoints::from(pts)));
                            }
                        }
                    });
                Plot::new("runs-psnr")
                    .height(170.0)
                    .legend(Legend::default())
                    .x_axis_label("epoch")
                    .y_axis_label("validation PSNR (dB)")
                    .show(&mut cols[1], |plot| {
                        for (r, on) in &self.runs {
                            if *on {
                                let pts: Vec<[f64; 2]> = r
                                    .epochs
                                    .iter()
                                    .map(|e| [e.epoch as f64, e.val_psnr])
                                    .collect();
                                plot.line(Line::new(r.name(), PlotPoints::from(pts)));
                            }
                        }
                    });
            });
            egui::Grid::new("runs-table")
                .striped(true)
                .num_columns(9)
                .show(ui, |ui| {
                    for h in [
                        "run (overlaid)",
                        "model",
                        "loss",
                        "epochs",
                        "PSNR",
                        "SSIM",
                        "MAE",
                        "Tenengrad",
                        "",
                    ] {
                        ui.strong(h);
                    }
                    ui.end_row();
                    for (r, on) in &mut self.runs {
                        let row = r.row();
                        ui.checkbox(on, &row.name);
                        ui.label(&row.model);
                        ui.label(&row.loss);
                        ui.label(format!(
                            "{}{}",
                            row.epochs,
                            if row.finished { "" } else { " (unfinished)" }
                        ));
                        ui.label(format!("{:.2} dB", row.psnr));
                        ui.label(format!("{:.3}", row.ssim));
                        ui.label(format!("{:.1}", row.mae));
                        ui.label(format!(
                            "{:.4} (real {:.4})",
                            row.tenengrad, row.ref_tenengrad
                        ));
                        ui.horizontal(|ui| {
                            if r.checkpoint().is_some() && ui.button("Load").clicked() {
                                commands.push(Command::LoadRun(r.dir.clone()));
                            }
                            let resumable = !row.finished
                                && (r.dir.join("checkpoints/resume_state.json").exists()
                                    || r.dir.join("checkpoints/resume/state.json").exists());
                            if resumable
                                && ui
                                    .button("Resume")
                                    .on_hover_text(
                                        "Continue from the last completed epoch \
                                             (weights, optimiser, data order)",
                                    )
                                    .clicked()
                            {
                                commands.push(Command::ResumeRun(r.dir.clone()));
                            }
                        });
                        ui.end_row();
                    }
                });
        });
        self.show_runs = open;
        if !open {
            self.runs_scanned = false;
        }
        if rescan {
            commands.push(Command::ScanRuns);
        }
    }
}
