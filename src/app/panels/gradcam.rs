//! The Grad-CAM window, two views:
//! - the synthesis network: which features raise its output in bone (or in a disc around the
//!   crosshair), for the input slice under the crosshair, overlaid on that slice;
//! - the MR/CT classifier (method 2, the Grad-CAM-guided U-Net): its class map for the real and
//!   the synthetic slice at the crosshair side by side, on one scale, and their difference.

use super::Cx;
use super::synthesis::ModelInput;
use crate::analysis::gradcam::{CamPair, CamSlice, CamTarget, cam_pair, slice_gradcam};
use crate::app::command::{Command, Task};
use crate::app::jobs::{ModelJob, Wake};
use crate::app::model_slot::{ModelSlot, Slot};
use crate::app::pair::Pair;
use crate::app::panels::dialogs::Dialog;
use crate::app::panels::run_button;
use crate::gpu;
use crate::model::checkpoint::AnyModel;
use crate::volume::{Colormap, Modality, Volume};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

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
    /// Show the classifier view (else the synthesis network's).
    pub classifier_view: bool,
    /// The MR/CT classifier and where it came from.
    pub classifier: Slot<PathBuf>,
    /// Classifier layer (index into `Classifier::LAYERS`).
    pub classifier_layer: usize,
    /// The running classifier computation.
    pub pair_job: Option<ModelJob<Result<CamPair, String>>>,
    /// The last classifier result.
    pub pair: Option<CamPair>,
    pair_textures: Option<([egui::TextureHandle; 3], f32, Colormap)>,
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
            classifier_view: false,
            classifier: Slot::default(),
            classifier_layer: 2,
            pair_job: None,
            pair: None,
            pair_textures: None,
        }
    }
}

/// Grey slice with the heatmap blended on top; the target region's edge in white.
fn overlay(c: &CamSlice, opacity: f32, colormap: Colormap) -> egui::ColorImage {
    blend(
        &c.input,
        &c.cam,
        Some(&c.region),
        (c.width, c.height),
        opacity,
        colormap,
    )
}

/// Grey `input` (0..1) with `cam` (0..1) in `colormap` blended on top at `opacity`; the edge of
/// `region`, if any, in white.
fn blend(
    input: &[f32],
    cam: &[f32],
    region: Option<&[bool]>,
    (w, h): (usize, usize),
    opacity: f32,
    colormap: Colormap,
) -> egui::ColorImage {
    let table = colormap.table();
    let mut rgba = Vec::with_capacity(w * h * 4);
    for i in 0..w * h {
        let g = input[i].clamp(0.0, 1.0) * 255.0;
        let col = table[(cam[i].clamp(0.0, 1.0) * 255.0) as usize];
        let (x, y) = (i % w, i / w);
        let edge = region.is_some_and(|r| {
            r[i] && (x == 0
                || y == 0
                || x + 1 == w
                || y + 1 == h
                || !r[i - 1]
                || !r[i + 1]
                || !r[i - w]
                || !r[i + w])
        });
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

/// A real and a synthetic slice on one grid, the grid's size and the synthetic modality.
type SlicePair = (Vec<f32>, Vec<f32>, (usize, usize), Modality);

/// A signed map (-1..1) in the diverging colormap, 0 in its middle.
fn diverging(d: &[f32], (w, h): (usize, usize)) -> egui::ColorImage {
    let table = Colormap::Diverging.table();
    let rgba: Vec<u8> = d
        .iter()
        .flat_map(|v| {
            let c = table[(((v.clamp(-1.0, 1.0) + 1.0) * 0.5) * 255.0).round() as usize];
            [c[0], c[1], c[2], 255]
        })
        .collect();
    egui::ColorImage::from_rgba_unmultiplied([w, h], &rgba)
}

impl GradcamState {
    /// Load an MR/CT classifier checkpoint for the classifier Grad-CAM view.
    pub(crate) fn load_classifier(&mut self, path: &Path) -> Result<(), String> {
        let device = gpu::compute_device().map_err(|e| e.to_string())?;
        match crate::model::checkpoint::load(path, &device) {
            Ok((m @ AnyModel::Classifier(_), _)) => {
                self.classifier.set(m, path.to_path_buf());
                self.pair = None;
                Ok(())
            }
            Ok(_) => Err(format!(
                "{}: not a classifier (a synthesis network); load it in the Synthesis panel",
                path.display()
            )),
            Err(e) => Err(e.to_string()),
        }
    }

    /// Load the embedded demo MR/CT classifier.
    pub(crate) fn load_demo_classifier(&mut self) -> Result<(), String> {
        let r = gpu::compute().map_err(|e| e.to_string()).and_then(|g| {
            crate::model::demo::load_demo_classifier(&g.device).map_err(|e| e.to_string())
        });
        match r {
            Ok((m, _, name)) => {
                self.classifier.set(m, name);
                self.pair = None;
                Ok(())
            }
            Err(e) => Err(format!("Demo classifier: {e}")),
        }
    }

    /// Compute the classifier's Grad-CAM for the real and synthetic `slices` at the crosshair.
    pub(crate) fn start_pair(
        &mut self,
        slices: Result<SlicePair, String>,
        wake: Wake,
    ) -> Result<(), String> {
        if self.pair_job.is_some() {
            return Ok(());
        }
        let (real, synth, size, modality) =
            slices.map_err(|e| format!("Classifier Grad-CAM: {e}"))?;
        let layer = self.classifier_layer;
        let job = self.classifier.run("model", wake, move |m, _| {
            let AnyModel::Classifier(cls) = m else {
                return Err("not a classifier".into());
            };
            let device = gpu::compute_device().map_err(|e| e.to_string())?;
            cam_pair(cls, &modality, &real, &synth, size, layer, &device).map_err(|e| e.to_string())
        });
        match job {
            Some(j) => {
                self.pair_job = Some(j.map_err(|e| format!("Classifier Grad-CAM: {e}"))?);
                Ok(())
            }
            None => Err("Classifier Grad-CAM: load a classifier first.".into()),
        }
    }

    /// Collect a finished classifier computation (`timeout`: wait that long; None: poll).
    pub(crate) fn take_pair(&mut self, timeout: Option<Duration>) -> Result<(), String> {
        let Some(r) = self.pair_job.as_ref().and_then(|j| j.finish(timeout)) else {
            return Ok(());
        };
        self.pair_job = None;
        match self.classifier.returned(r) {
            Ok(Some(Ok(p))) => {
                self.pair = Some(p);
                self.pair_textures = None;
                Ok(())
            }
            Ok(None) => Ok(()),
            Ok(Some(Err(e))) => Err(format!("Classifier Grad-CAM: {e}")),
            Err(e) => Err(format!("Classifier Grad-CAM: {e}")),
        }
    }

    /// Compute Grad-CAM for the slice of `input` under the crosshair (None: no network home).
    pub(crate) fn start(
        &mut self,
        model: &mut ModelSlot,
        input: Option<ModelInput>,
        wake: Wake,
    ) -> Result<(), String> {
        let Some((direction, input, v)) = input else {
            return Ok(());
        };
        let z = v[2].round().max(0.0) as usize;
        let target = if self.bone {
            CamTarget::Bone
        } else {
            CamTarget::Disc {
                x: v[0].round().max(0.0) as usize,
                y: v[1].round().max(0.0) as usize,
                radius: self.radius,
            }
        };
        let layer = self.layer;
        let job = model.run("model", wake, move |m, _| {
            let device = gpu::compute_device().map_err(|e| e.to_string())?;
            slice_gradcam(m, direction, &input, z, layer, target, &device)
                .map_err(|e| e.to_string())
        });
        if let Some(j) = job {
            self.job = Some(j.map_err(|e| format!("Grad-CAM: {e}"))?);
        }
        Ok(())
    }

    /// Collect a finished synthesis-network Grad-CAM, the network back (`timeout`: wait that
    /// long; None: poll).
    pub(crate) fn take(
        &mut self,
        model: &mut ModelSlot,
        timeout: Option<Duration>,
    ) -> Result<(), String> {
        let Some(r) = self.job.as_ref().and_then(|j| j.finish(timeout)) else {
            return Ok(());
        };
        self.job = None;
        match model.returned(r) {
            Ok(Some(Ok(c))) => {
                self.result = Some(c);
                self.texture = None;
                Ok(())
            }
            Ok(None) => Ok(()),
            Ok(Some(Err(e))) => Err(format!("Grad-CAM: {e}")),
            Err(e) => Err(format!("Grad-CAM: {e}")),
        }
    }

    /// The classifier half of the Grad-CAM window.
    fn classifier_ui(&mut self, ctx: &egui::Context, ui: &mut egui::Ui, cx: &mut Cx) {
        let g = self;
        match g.classifier.info() {
            Some((p, _)) => {
                ui.label(format!("Classifier: {}", p.display()));
            }
            None => {
                ui.colored_label(
                    egui::Color32::YELLOW,
                    "No classifier loaded: load one (a run's classifier.json, or `synthscope train --classifier-only`) or the demo classifier.",
                );
            }
        }
        ui.horizontal(|ui| {
            if ui.button("Load classifier…").clicked() {
                cx.push(Command::Dialog(Dialog::LoadClassifier));
            }
            if ui
                .button("Demo classifier")
                .on_hover_text(crate::model::demo::DEMO_CLASSIFIER_NAME)
                .clicked()
            {
                cx.push(Command::LoadDemoClassifier);
            }
        });
        egui::ComboBox::from_label("Classifier layer")
            .selected_text(crate::model::Classifier::LAYERS[g.classifier_layer.min(3)])
            .show_ui(ui, |ui| {
                for (i, n) in crate::model::Classifier::LAYERS.iter().enumerate() {
                    ui.selectable_value(&mut g.classifier_layer, i, *n);
                }
            });
        ui.add(egui::Slider::new(&mut g.opacity, 0.0..=1.0).text("opacity"));
        ui.horizontal(|ui| {
            let click = run_button(
                ui,
                g.pair_job.as_ref(),
                g.classifier.loaded.is_some(),
                "Compare real and synthetic at the crosshair",
            );
            if let Some(c) = click {
                cx.push(c.command(Command::StartCamPair, Task::CamPair));
            }
        });
        if let Some(p) = &g.pair {
            let stale = g
                .pair_textures
                .as_ref()
                .is_none_or(|(_, o, m)| *o != g.opacity || *m != g.colormap);
            if stale {
                let size = (p.width, p.height);
                let load =
                    |name: &str, img| ctx.load_texture(name, img, egui::TextureOptions::LINEAR);
                g.pair_textures = Some((
                    [
                        load(
                            "cam-real",
                            blend(&p.real, &p.real_cam, None, size, g.opacity, g.colormap),
                        ),
                        load(
                            "cam-synth",
                            blend(
                                &p.synthetic,
                                &p.synthetic_cam,
                                None,
                                size,
                                g.opacity,
                                g.colormap,
                            ),
                        ),
                        load("cam-diff", diverging(&p.difference(), size)),
                    ],
                    g.opacity,
                    g.colormap,
                ));
            }
            ui.small(format!(
                "{}-class Grad-CAM · {} · {} x {} · {:.2} s · both maps on one scale",
                p.class, p.layer, p.width, p.height, p.seconds
            ));
            if let Some((t, _, _)) = &g.pair_textures {
                let side = ((ui.available_width() - 16.0) / 3.0).clamp(80.0, 260.0);
                let aspect = p.height as f32 / p.width.max(1) as f32;
                let captions = [
                    format!("real {} · p({}) {:.2}", p.class, p.class, p.p_real),
                    format!(
                        "synthetic {} · p({}) {:.2}",
                        p.class, p.class, p.p_synthetic
                    ),
                    format!("synthetic − real · mean |Δ| {:.3}", p.mean_abs_difference()),
                ];
                ui.horizontal(|ui| {
                    for (tex, cap) in t.iter().zip(&captions) {
                        ui.vertical(|ui| {
                            ui.add(
                                egui::Image::new(tex)
                                    .fit_to_exact_size(egui::vec2(side, side * aspect)),
                            );
                            ui.small(cap);
                        });
                    }
                });
                ui.small("Difference: red where the synthetic image draws more of the classifier's attention, blue where less.");
            }
        }
    }

    /// The window.
    pub(crate) fn ui(&mut self, host: &mut egui::Ui, cx: &mut Cx) {
        let ctx = &host.ctx().clone();
        let open = self.show;
        if !open {
            return;
        }
        super::body(host, |ui| {
            ui.horizontal(|ui| {
                ui.selectable_value(&mut self.classifier_view, false, "Synthesis network");
                ui.selectable_value(
                    &mut self.classifier_view,
                    true,
                    "Classifier: real vs synthetic",
                );
            });
            ui.separator();
            if self.classifier_view {
                self.classifier_ui(ctx, ui, cx);
                return;
            }
            if cx.model.notice_ui(ui) {
                return;
            }
            let names: Vec<String> = cx
                .model
                .layers()
                .iter()
                .filter(|n| *n != "output")
                .cloned()
                .collect();
            let g = &mut *self;
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
                let click = run_button(ui, g.job.as_ref(), true, "Compute for this slice");
                if let Some(c) = click {
                    cx.push(c.command(Command::StartGradcam, Task::Gradcam));
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
                    ui.add(egui::Image::new(t).fit_to_exact_size(egui::vec2(side, side * aspect)));
                }
            }
        });
        self.show = open;
    }
}

/// The real and synthetic slices at the crosshair on the synthetic volume's grid (the
/// real one resampled through the registration), with the synthetic modality.
pub(crate) fn real_and_synthetic_slices(
    volumes: &[Arc<Volume>],
    synthetic: Option<usize>,
    model: &ModelSlot,
    pair: &Pair,
    crosshair: [f64; 3],
) -> Result<SlicePair, String> {
    use crate::model::Direction;
    use crate::volume::{Affine, resample::resample};
    let synth = synthetic
        .and_then(|i| volumes.get(i))
        .ok_or("synthesise first: the view compares the real and the synthetic image")?;
    let modality = synth.meta.modality.clone();
    let mr_from_ct = pair.mr_from_ct;
    let (real, to_real) = match model.direction() {
        Some(Direction::CtToMr) => (pair.mr_volume(volumes), mr_from_ct),
        // Denoised CT on the CT's grid, compared with the (low-dose) CT it came from.
        Some(Direction::CtDenoise) => (pair.ct_volume(volumes), None),
        _ => (
            pair.ct_volume(volumes),
            match mr_from_ct {
                Some(t) => Some(t.inverse().ok_or("the registration cannot be inverted")?),
                None => None,
            },
        ),
    };
    let real = real.ok_or(format!("no real {modality} loaded to compare with"))?;
    let w = match (model.direction(), mr_from_ct) {
        (Some(Direction::MrToCt), Some(t)) => t.apply(crosshair),
        (Some(Direction::CtToMr), Some(t)) => {
            t.inverse().map(|i| i.apply(crosshair)).unwrap_or(crosshair)
        }
        _ => crosshair,
    };
    let g = &synth.geometry;
    let [nx, ny, nz] = g.dims;
    let z = (g.voxel_from_world(w)[2].round().max(0.0) as usize).min(nz.saturating_sub(1));
    // One slice of the synthetic grid as its own geometry, so only it is resampled.
    let mut slice_grid = g.clone();
    slice_grid.dims = [nx, ny, 1];
    slice_grid.origin = g.world_from_voxel([0.0, 0.0, z as f64]);
    let t = to_real.unwrap_or_else(|| Affine::identity([0.0; 3]));
    let fill = if modality == Modality::Ct {
        -1000.0
    } else {
        0.0
    };
    let real_slice = resample(real, &slice_grid, &t, fill).data;
    let synth_slice = synth.data[z * nx * ny..(z + 1) * nx * ny].to_vec();
    Ok((real_slice, synth_slice, (nx, ny), modality))
}
