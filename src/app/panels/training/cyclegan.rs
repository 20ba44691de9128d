//! The Training panel's "CycleGAN (unpaired)" mode: its settings, the run on a worker (unpaired
//! phantom MR and CT, [`crate::train::cyclegan`]), the four losses live and the sample grid of
//! each epoch (real A, fake B, reconstructed A; real B, fake A, reconstructed B).

use super::{TrainingState, preview_image};
use crate::app::jobs::{Job, TrainJob, Wake};
use crate::model::cyclegan::GreyHandling;
use crate::train::DataSource;
use crate::train::cyclegan::{
    CycleganConfig, ResumeCheck, SampleGrid, check_resume, load_unpaired, resume_cyclegan,
    train_cyclegan,
};
use crossbeam_channel::{Receiver, unbounded};
use std::path::PathBuf;
use std::sync::Arc;

/// The mode's state.
pub struct CycleganPanel {
    /// The panel trains a CycleGAN instead of a paired network.
    pub enabled: bool,
    /// The run's settings.
    pub cfg: CycleganConfig,
    /// Imported generator for both directions ("" = from scratch).
    pub init_path: String,
    /// Grey handling of an imported 3-channel generator.
    pub grey: GreyHandling,
    grids: Option<Receiver<SampleGrid>>,
    grid: Option<(SampleGrid, Vec<egui::TextureHandle>)>,
}

impl Default for CycleganPanel {
    fn default() -> Self {
        let mut cfg = CycleganConfig::new(
            "cyclegan",
            DataSource::Varied {
                patients: 6,
                small: true,
            },
        );
        cfg.generator.ngf = 16;
        cfg.generator.blocks = 4;
        cfg.discriminator.ndf = 16;
        cfg.epochs = 3;
        cfg.decay_epochs = 3;
        Self {
            enabled: false,
            cfg,
            init_path: String::new(),
            grey: GreyHandling::Replicate,
            grids: None,
            grid: None,
        }
    }
}

impl CycleganPanel {
    /// The epoch of the sample grid on show, if any.
    pub fn grid_epoch(&self) -> Option<usize> {
        self.grid.as_ref().map(|(g, _)| g.epoch)
    }

    /// The settings grid (mode checkbox first); true when the paired settings should show.
    pub fn settings_ui(&mut self, ui: &mut egui::Ui) -> bool {
        ui.checkbox(&mut self.enabled, "CycleGAN (unpaired)")
            .on_hover_text(
                "Two generators (MR→CT, CT→MR) and two PatchGAN discriminators on MR and CT of \
             different patients; LSGAN, cycle (λ 10) and identity (0.5 λ) losses, pool of 50, \
             Adam 2e-4 / β1 0.5, constant then linearly decaying rate",
            );
        if !self.enabled {
            return true;
        }
        let c = &mut self.cfg;
        egui::Grid::new("cyclegan-settings")
            .num_columns(2)
            .spacing([12.0, 4.0])
            .show(ui, |ui| {
                let l = ui.label("Run name");
                ui.text_edit_singleline(&mut c.name).labelled_by(l.id);
                ui.end_row();
                let l = ui.label("Phantom patients").on_hover_text(
                    "varied phantoms on small grids; the last is held out (registered, metrics \
                     only), the rest split into MR-only and CT-only halves",
                );
                let mut n = match c.data {
                    DataSource::Varied { patients, .. } => patients,
                    _ => 6,
                };
                ui.add(egui::DragValue::new(&mut n).range(3..=12)).labelled_by(l.id);
                c.data = DataSource::Varied {
                    patients: n,
                    small: true,
                };
                ui.end_row();
                let l = ui.label("Generator ngf");
                ui.add(egui::DragValue::new(&mut c.generator.ngf).range(4..=64))
                    .labelled_by(l.id);
                ui.end_row();
                let l = ui.label("Generator blocks");
                ui.add(egui::DragValue::new(&mut c.generator.blocks).range(1..=9))
                    .labelled_by(l.id);
                ui.end_row();
                let l = ui.label("Discriminator ndf");
                ui.add(egui::DragValue::new(&mut c.discriminator.ndf).range(4..=64))
                    .labelled_by(l.id);
                ui.end_row();
                let l = ui.label("Epochs at the base rate");
                ui.add(egui::DragValue::new(&mut c.epochs).range(0..=200))
                    .labelled_by(l.id);
                ui.end_row();
                let l = ui.label("Epochs decaying");
                ui.add(egui::DragValue::new(&mut c.decay_epochs).range(0..=200))
                    .labelled_by(l.id);
                ui.end_row();
                let l = ui.label("Steps per epoch");
                ui.add(egui::DragValue::new(&mut c.steps_per_epoch).range(1..=10000))
                    .labelled_by(l.id);
                ui.end_row();
                let l = ui.label("Crop size");
                ui.add(egui::DragValue::new(&mut c.image_size).range(16..=256).speed(4))
                    .labelled_by(l.id);
                ui.end_row();
                let l = ui
                    .label("Pretrained generator")
                    .on_hover_text("a .pth/.safetensors state dict of the reference CycleGAN implementation; empty: from scratch");
                ui.text_edit_singleline(&mut self.init_path).labelled_by(l.id);
                ui.end_row();
                ui.label("Grey images");
                ui.horizontal(|ui| {
                    ui.radio_value(&mut self.grey, GreyHandling::Replicate, "replicate / average");
                    ui.radio_value(&mut self.grey, GreyHandling::OneChannel, "1-channel head");
                });
                ui.end_row();
            });
        false
    }

    /// Take this epoch's sample grid from the worker.
    pub fn poll(&mut self, ctx: &egui::Context) {
        let Some(rx) = &self.grids else {
            return;
        };
        while let Ok(g) = rx.try_recv() {
            let tex = g
                .rows
                .iter()
                .flatten()
                .enumerate()
                .map(|(k, v)| {
                    ctx.load_texture(
                        format!("cyclegan-grid-{k}"),
                        preview_image(v, g.nx, g.ny, false),
                        egui::TextureOptions::LINEAR,
                    )
                })
                .collect();
            self.grid = Some((g, tex));
        }
    }

    /// The four losses and the sample grid.
    pub fn results_ui(&self, ui: &mut egui::Ui, steps: &[crate::train::StepReport]) {
        use egui_plot::{Legend, Line, Plot, PlotPoints};
        if !self.enabled {
            return;
        }
        if !steps.is_empty() {
            let stride = steps.len().div_ceil(1000).max(1);
            let names: Vec<String> = steps[0].terms.iter().map(|(n, _)| n.clone()).collect();
            Plot::new("cyclegan-losses")
                .height(140.0)
                .legend(Legend::default())
                .x_axis_label("step")
                .show(ui, |plot| {
                    for (k, name) in names.iter().enumerate() {
                        let pts: Vec<[f64; 2]> = steps
                            .iter()
                            .step_by(stride)
                            .filter_map(|s| s.terms.get(k).map(|(_, v)| [s.step as f64, *v]))
                            .collect();
                        plot.line(Line::new(name.as_str(), PlotPoints::from(pts)));
                    }
                });
        }
        if let Some((g, tex)) = &self.grid {
            ui.label(format!(
                "Held-out slice after epoch {}: real MR · fake CT · reconstructed MR / real CT · fake MR · reconstructed CT",
                g.epoch
            ));
            for row in tex.chunks(3) {
                ui.horizontal(|ui| {
                    for t in row {
                        ui.add(egui::Image::new(t).fit_to_exact_size(egui::vec2(110.0, 110.0)));
                    }
                });
            }
        }
    }
}

impl TrainingState {
    /// Start the CycleGAN run the mode's settings describe.
    pub(super) fn start_cyclegan(&mut self, wake: Wake) -> Result<(), String> {
        let mut cfg = self.cyclegan.cfg.clone();
        let path = self.cyclegan.init_path.trim();
        cfg.init = (!path.is_empty()).then(|| crate::train::cyclegan::config::InitFrom {
            path: PathBuf::from(path),
            path_b: None,
            grey: self.cyclegan.grey,
        });
        cfg.validate().map_err(|e| format!("CycleGAN: {e}"))?;
        let base = self.runs_root.join(&cfg.name);
        let dir = if base.exists() {
            (2..)
                .map(|i| self.runs_root.join(format!("{}-{i}", cfg.name)))
                .find(|p| !p.exists())
                .unwrap_or(base)
        } else {
            base
        };
        self.launch_cyclegan(cfg, dir, false, wake)
    }

    /// Continue the unfinished CycleGAN run in `dir` from its resume state, with its own config
    /// (the Runs window's Resume).
    pub(super) fn resume_cyclegan_run(&mut self, dir: PathBuf, wake: Wake) -> Result<(), String> {
        let cfg =
            CycleganConfig::read(&dir.join("config.toml")).map_err(|e| format!("CycleGAN: {e}"))?;
        match check_resume(&cfg, &dir).map_err(|e| format!("CycleGAN: {e}"))? {
            ResumeCheck::Finished { epochs } => {
                return Err(format!(
                    "CycleGAN: {} is finished ({epochs} epochs); nothing to resume",
                    dir.display()
                ));
            }
            ResumeCheck::From(_) => {}
        }
        self.cyclegan.enabled = true;
        self.cyclegan.cfg = cfg.clone();
        self.launch_cyclegan(cfg, dir, true, wake)
    }

    fn launch_cyclegan(
        &mut self,
        cfg: CycleganConfig,
        dir: PathBuf,
        resume: bool,
        wake: Wake,
    ) -> Result<(), String> {
        self.steps.clear();
        self.epochs.clear();
        self.notes.clear();
        self.frame_ms.clear();
        self.preview = None;
        self.finished = None;
        self.cyclegan.grid = None;
        self.stage = "Preparing unpaired data".into();
        let (tx, rx) = unbounded();
        self.cyclegan.grids = Some(rx);
        let control = Arc::new(crate::train::Control::default());
        let (c, d) = (control.clone(), dir.clone());
        let job = Job::spawn("cyclegan", (), wake, move |(), w| {
            let device = crate::gpu::compute_device().map_err(|e| e.to_string())?;
            let data = load_unpaired(&cfg, &w.progress).map_err(|e| e.to_string())?;
            let run = if resume {
                resume_cyclegan
            } else {
                train_cyclegan
            };
            run(&cfg, &data, &d, &device, &c, &mut |e| w.emit(e), &mut |g| {
                let _ = tx.send(g);
            })
            .map(|s| s.run)
            .map_err(|e| e.to_string())
        })
        .map_err(|n| format!("CycleGAN: {}", n.error))?;
        self.job = Some(TrainJob {
            job,
            control,
            run_dir: dir,
        });
        Ok(())
    }
}
