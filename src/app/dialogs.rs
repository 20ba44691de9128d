//! Native file dialogs on worker threads, and what their answers do.

use super::*;

/// Which file the transform dialog is for.
#[derive(Clone, Copy, Debug)]
pub(super) enum Dialog {
    SaveTfm,
    LoadTfm,
    SaveResampled,
    SaveCtOnMr,
    SaveSynthetic,
    LoadModel,
    LoadClassifier,
    OpenStudy,
    SaveStudy,
    AddStudyCase,
    OpenResults,
    SaveStudyCsv,
    SaveViewPng,
    SaveWindowPng,
    SaveSyntheticDicom,
}

impl SynthScopeApp {
    /// Save the next frame as PNG: the three panes (`views`) or the whole window.
    pub fn save_screenshot(&mut self, path: &std::path::Path, views: bool) {
        let Some(ctx) = self.ctx.clone() else {
            return;
        };
        let rect = if views && self.panes_rect.is_positive() {
            self.panes_px(&ctx)
        } else {
            [0, 0, usize::MAX / 4, usize::MAX / 4]
        };
        let (msgs, path, c) = (self.async_messages.clone(), path.to_path_buf(), ctx.clone());
        ctx.request_screenshot(move |img| {
            let m = match super::save_png_crop(&img, rect, &path) {
                Ok((w, h)) => format!("Saved {} ({w} x {h} pixels)", path.display()),
                Err(e) => e,
            };
            if let Ok(mut v) = msgs.lock() {
                v.push(m);
            }
            c.request_repaint();
        });
        ctx.request_repaint();
    }

    /// Ask for a file on a worker thread (native dialogs block their thread).
    pub(super) fn open_dialog(&mut self, ctx: &egui::Context, d: Dialog) {
        let (tx, rx) = crossbeam_channel::bounded(1);
        let c = ctx.clone();
        let spawned = std::thread::Builder::new()
            .name("file-dialog".into())
            .spawn(move || {
                let nifti = |name: &str| {
                    rfd::FileDialog::new()
                        .add_filter("NIfTI", &["nii", "gz"])
                        .set_file_name(name)
                        .save_file()
                };
                let r = match d {
                    Dialog::SaveTfm => rfd::FileDialog::new()
                        .add_filter("ITK transform", &["tfm"])
                        .set_file_name("mr_to_ct.tfm")
                        .save_file(),
                    Dialog::LoadTfm => rfd::FileDialog::new()
                        .add_filter("ITK transform", &["tfm", "txt"])
                        .pick_file(),
                    Dialog::SaveResampled => nifti("mr_on_ct.nii.gz"),
                    Dialog::SaveCtOnMr => nifti("ct_on_mr.nii.gz"),
                    Dialog::SaveSynthetic => nifti("synthetic.nii.gz"),
                    Dialog::LoadModel | Dialog::LoadClassifier => rfd::FileDialog::new()
                        .add_filter("SynthScope checkpoint", &["json", "bpk"])
                        .pick_file(),
                    Dialog::OpenStudy => rfd::FileDialog::new()
                        .add_filter("Study", &["toml", "json"])
                        .pick_file(),
                    Dialog::SaveStudy => rfd::FileDialog::new()
                        .add_filter("Study", &["toml", "json"])
                        .set_file_name("study.toml")
                        .save_file(),
                    Dialog::AddStudyCase => rfd::FileDialog::new()
                        .add_filter("Volume", &["nii", "gz", "dcm"])
                        .pick_file(),
                    Dialog::OpenResults => rfd::FileDialog::new().pick_folder(),
                    Dialog::SaveViewPng | Dialog::SaveWindowPng => rfd::FileDialog::new()
                        .add_filter("PNG", &["png"])
                        .set_file_name("synthscope_view.png")
                        .save_file(),
                    Dialog::SaveSyntheticDicom => rfd::FileDialog::new().pick_folder(),
                    Dialog::SaveStudyCsv => rfd::FileDialog::new()
                        .add_filter("CSV", &["csv"])
                        .set_file_name("answers.csv")
                        .save_file(),
                };
                let _ = tx.send(r);
                c.request_repaint();
            });
        if spawned.is_ok() {
            self.transform_dialog = Some((d, rx));
        }
    }

    pub(super) fn poll_dialog(&mut self) {
        if let Some((d, rx)) = &self.transform_dialog
            && let Ok(r) = rx.try_recv()
        {
            let d = *d;
            self.transform_dialog = None;
            if let Some(path) = r {
                self.transform_file(d, &path);
            }
        }
    }

    /// Save or load the transform, or save the MR resampled onto the CT grid.
    pub(super) fn transform_file(&mut self, d: Dialog, path: &std::path::Path) {
        match d {
            Dialog::LoadModel => self.load_model(path),
            Dialog::LoadClassifier => self.load_classifier(path),
            Dialog::OpenStudy => self.open_study(path),
            Dialog::SaveStudy => self.save_study(path),
            Dialog::AddStudyCase => self.add_study_case(path),
            Dialog::OpenResults => self.open_results(path),
            Dialog::SaveStudyCsv => self.export_study_csv(path),
            Dialog::SaveViewPng => self.save_screenshot(path, true),
            Dialog::SaveWindowPng => self.save_screenshot(path, false),
            Dialog::SaveSyntheticDicom => {
                if let Some(v) = self.synthetic.and_then(|i| self.volumes.get(i)).cloned() {
                    match crate::io::dicom_write::write_derived_series(
                        &v,
                        &v.meta,
                        &v.meta.description,
                        path,
                    ) {
                        Ok(files) => self.errors.push(format!(
                            "Saved {} DICOM files (a new DERIVED\\SECONDARY series) in {}",
                            files.len(),
                            path.display()
                        )),
                        Err(e) => self.errors.push(e.to_string()),
                    }
                }
            }
            Dialog::SaveSynthetic => {
                if let Some(v) = self.synthetic.and_then(|i| self.volumes.get(i)).cloned()
                    && let Err(e) = crate::io::nifti_io::write_nifti(&v, path)
                {
                    self.errors.push(e.to_string());
                }
            }
            Dialog::SaveTfm => {
                if let Some(t) = self.mr_transform
                    && let Err(e) = t.write_tfm(path)
                {
                    self.errors
                        .push(format!("{}: cannot write: {e}", path.display()));
                }
            }
            Dialog::LoadTfm => match crate::register::Affine::read_tfm(path) {
                Ok(t) => self.set_transform(Some(t)),
                Err(e) => self.errors.push(e),
            },
            Dialog::SaveResampled => {
                if let (Some(ct), Some(mr), Some(t)) = (
                    self.ct_volume().cloned(),
                    self.mr_volume().cloned(),
                    self.mr_transform,
                ) {
                    let (min, _) = mr.min_max();
                    let v = crate::register::resample(&mr, &ct.geometry, &t, min);
                    if let Err(e) = crate::io::nifti_io::write_nifti(&v, path) {
                        self.errors.push(e.to_string());
                    }
                }
            }
            Dialog::SaveCtOnMr => {
                // The inverse transform maps MR points to CT points.
                if let (Some(ct), Some(mr), Some(inv)) = (
                    self.ct_volume().cloned(),
                    self.mr_volume().cloned(),
                    self.mr_transform.and_then(|t| t.inverse()),
                ) {
                    let (min, _) = ct.min_max();
                    let v = crate::register::resample(&ct, &mr.geometry, &inv, min);
                    if let Err(e) = crate::io::nifti_io::write_nifti(&v, path) {
                        self.errors.push(e.to_string());
                    }
                }
            }
        }
    }
}
