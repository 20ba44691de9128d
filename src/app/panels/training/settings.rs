//! The Training panel's settings grid: data, direction, network, losses, schedule.

use super::{DataChoice, TrainingState};
use crate::model::Direction;
use crate::train::{DataSource, LossKind, LossTerm, ModelChoice};
use std::path::PathBuf;

fn model_options() -> Vec<(String, ModelChoice)> {
    let mut v = vec![(
        "U-Net".to_string(),
        ModelChoice::Unet {
            base_width: 8,
            levels: 4,
        },
    )];
    for depth in [18, 34, 50, 101] {
        v.push((
            format!("DRUNet-{depth}"),
            ModelChoice::Drunet {
                depth,
                base_width: 64,
            },
        ));
    }
    v
}

impl TrainingState {
    pub(super) fn settings_ui(&mut self, ui: &mut egui::Ui) {
        let t = self;
        egui::Grid::new("train-settings")
            .num_columns(2)
            .spacing([12.0, 4.0])
            .show(ui, |ui| {
                let l = ui.label("Run name");
                ui.text_edit_singleline(&mut t.cfg.name).labelled_by(l.id);
                ui.end_row();
                ui.label("Data");
                ui.horizontal(|ui| {
                    ui.radio_value(&mut t.data, DataChoice::Loaded, "loaded pair");
                    ui.radio_value(&mut t.data, DataChoice::Demo, "demo phantoms");
                    ui.radio_value(&mut t.data, DataChoice::Folder, "folder of patients");
                });
                ui.end_row();
                match t.data {
                    DataChoice::Demo => {
                        let l = ui.label("Phantom patients");
                        let mut n = match t.cfg.data {
                            DataSource::Demo { patients, .. } => patients,
                            _ => 3,
                        };
                        ui.add(egui::DragValue::new(&mut n).range(1..=8)).labelled_by(l.id);
                        let small = matches!(t.cfg.data, DataSource::Demo { small: true, .. });
                        t.cfg.data = DataSource::Demo { patients: n, small };
                        ui.end_row();
                    }
                    DataChoice::Folder => {
                        let l = ui.label("Folder")
                            .on_hover_text("one sub-folder per patient with ct, mr and optional mask (NIfTI or DICOM)");
                        ui.text_edit_singleline(&mut t.folder).labelled_by(l.id);
                        ui.end_row();
                    }
                    DataChoice::Loaded => {}
                    DataChoice::Config => {
                        ui.label("Pair");
                        ui.label(format!("{:?}", t.cfg.data));
                        ui.end_row();
                    }
                }
                t.device_ui(ui);
                ui.label("Direction");
                ui.horizontal(|ui| {
                    ui.radio_value(&mut t.cfg.direction, Direction::MrToCt, "MR to CT");
                    ui.radio_value(&mut t.cfg.direction, Direction::CtToMr, "CT to MR");
                    ui.radio_value(&mut t.cfg.direction, Direction::CtDenoise, "CT denoise");
                });
                ui.end_row();
                ui.label("Model");
                ui.horizontal(|ui| {
                    let label = t.cfg.model.label();
                    egui::ComboBox::from_label("network")
                        .selected_text(label)
                        .show_ui(ui, |ui| {
                            for (name, m) in model_options() {
                                let same = std::mem::discriminant(&m)
                                    == std::mem::discriminant(&t.cfg.model)
                                    && match (&m, &t.cfg.model) {
                                        (
                                            ModelChoice::Drunet { depth: a, .. },
                                            ModelChoice::Drunet { depth: b, .. },
                                        ) => a == b,
                                        _ => true,
                                    };
                                if ui.selectable_label(same, name).clicked() {
                                    t.cfg.model = m;
                                }
                            }
                        });
                    match &mut t.cfg.model {
                        ModelChoice::Unet { base_width, levels } => {
                            let l = ui.label("width");
                            ui.add(egui::DragValue::new(base_width).range(4..=64)).labelled_by(l.id);
                            let l = ui.label("levels");
                            ui.add(egui::DragValue::new(levels).range(2..=5)).labelled_by(l.id);
                        }
                        ModelChoice::Drunet { base_width, .. } => {
                            let l = ui.label("stem width");
                            ui.add(egui::DragValue::new(base_width).range(8..=64)).labelled_by(l.id);
                        }
                    }
                });
                ui.end_row();
                ui.label("Loss");
                ui.horizontal_wrapped(|ui| {
                    for kind in LossKind::ALL {
                        ui.horizontal(|ui| {
                            let pos = t.cfg.losses.iter().position(|l| l.kind == kind);
                            let mut on = pos.is_some();
                            let cb = ui.checkbox(&mut on, kind.label());
                            let cb_id = cb.id;
                            if cb.changed() {
                                match (on, pos) {
                                    (true, None) => t.cfg.losses.push(LossTerm::new(
                                        kind,
                                        if kind.needs_classifier() { 0.1 } else { 1.0 },
                                    )),
                                    (false, Some(i)) => {
                                        t.cfg.losses.remove(i);
                                    }
                                    _ => {}
                                }
                            }
                            if let Some(i) = t.cfg.losses.iter().position(|l| l.kind == kind) {
                                ui.add(
                                    egui::DragValue::new(&mut t.cfg.losses[i].weight)
                                        .speed(0.01)
                                        .range(0.0..=100.0)
                                        .prefix("× "),
                                ).labelled_by(cb_id);
                            }
                        });
                    }
                });
                ui.end_row();
                let l = ui.label("VGG-19 weights (optional)").on_hover_text(
                    "torchvision vgg19 state dict (.pth or .safetensors): the contextual loss then uses VGG-19 features instead of the MR/CT classifier's",
                );
                let mut vgg = t
                    .cfg
                    .vgg19
                    .as_ref()
                    .map(|p| p.display().to_string())
                    .unwrap_or_default();
                if ui.text_edit_singleline(&mut vgg).labelled_by(l.id).changed() {
                    t.cfg.vgg19 = (!vgg.trim().is_empty()).then(|| PathBuf::from(vgg.trim()));
                }
                ui.end_row();
                if t.cfg.direction == Direction::CtDenoise {
                    // Step 2 of CT denoising: the activation-weighted loss reads the lesion
                    // classifier and fine-tunes the step-1 (MSE) checkpoint.
                    for (label, hint, path) in [
                        (
                            "Lesion classifier",
                            "classifier.json from `synthscope train --classifier-only` (ct_denoise config) or `synthscope ldct run`",
                            &mut t.cfg.classifier,
                        ),
                        (
                            "Fine-tune from",
                            "the step-1 (MSE) checkpoint, e.g. runs/NAME/checkpoints/last.json",
                            &mut t.cfg.init_from,
                        ),
                    ] {
                        let l = ui.label(label).on_hover_text(hint);
                        let mut text = path.as_ref().map(|p| p.display().to_string()).unwrap_or_default();
                        if ui.text_edit_singleline(&mut text).labelled_by(l.id).changed() {
                            *path = (!text.trim().is_empty()).then(|| PathBuf::from(text.trim()));
                        }
                        ui.end_row();
                    }
                }
                ui.label("Epochs / batch");
                ui.horizontal(|ui| {
                    let l = ui.label("epochs");
                    ui.add(egui::DragValue::new(&mut t.cfg.epochs).range(1..=1000)).labelled_by(l.id);
                    let l = ui.label("batch");
                    ui.add(egui::DragValue::new(&mut t.cfg.batch_size).range(1..=64)).labelled_by(l.id);
                });
                ui.end_row();
                let l = ui.label("Learning rate");
                ui.add(
                    egui::DragValue::new(&mut t.cfg.learning_rate)
                        .speed(1e-4)
                        .range(1e-6..=0.5),
                ).labelled_by(l.id);
                ui.end_row();
                let l = ui.label("Patch (0 = whole slice)");
                ui.add(egui::DragValue::new(&mut t.cfg.patch).range(0..=512)).labelled_by(l.id);
                ui.end_row();
                ui.label("Augmentation");
                ui.horizontal(|ui| {
                    ui.checkbox(&mut t.cfg.augment.rot90, "rotate 90/180/270°");
                    ui.checkbox(&mut t.cfg.augment.flip, "flip");
                });
                ui.end_row();
                ui.label("Validation share / seed");
                ui.horizontal(|ui| {
                    let l = ui.label("validation share");
                    ui.add(
                        egui::DragValue::new(&mut t.cfg.validation_fraction)
                            .speed(0.01)
                            .range(0.05..=0.9),
                    ).labelled_by(l.id);
                    let l = ui.label("seed");
                    ui.add(egui::DragValue::new(&mut t.cfg.seed)).labelled_by(l.id);
                });
                ui.end_row();
            });
    }
}
