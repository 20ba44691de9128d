//! Native file dialogs on worker threads (they block their thread), and what their answers do.

use crate::app::SynthScopeApp;
use crate::app::command::Command;
use crate::app::jobs::LoadRequest;
use crate::app::jobs::{Job, Worker, repaint};
use crate::volume::resample::resample;
use std::path::{Path, PathBuf};

/// Which file a dialog asks for.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Dialog {
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

/// Dialogs waiting for the user's answer.
#[derive(Default)]
pub struct Dialogs {
    /// File > Open: files or a folder.
    open: Option<Job<Option<Vec<PathBuf>>>>,
    /// Any other file, and what it is for.
    file: Option<(Dialog, Job<Option<PathBuf>>)>,
}

/// The native dialog for `d` (blocks until answered).
fn ask(d: Dialog) -> Option<PathBuf> {
    let nifti = |name: &str| {
        rfd::FileDialog::new()
            .add_filter("NIfTI", &["nii", "gz"])
            .set_file_name(name)
            .save_file()
    };
    match d {
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
    }
}

impl SynthScopeApp {
    /// Ask for files (or a `folder`) to open.
    pub(crate) fn pick_files(&mut self, ctx: &egui::Context, folder: bool) {
        let job = Job::spawn(
            "file-dialog",
            (),
            repaint(ctx),
            move |(), _: &Worker<()>| {
                let d =
                    rfd::FileDialog::new().set_title("Open CT / MR (DICOM folder or files, NIfTI)");
                if folder {
                    d.pick_folder().map(|p| vec![p])
                } else {
                    d.pick_files()
                }
            },
        );
        match job {
            Ok(j) => self.dialogs.open = Some(j),
            Err(e) => self.errors.push(format!("File dialog: {}", e.error)),
        }
    }

    /// Open what File > Open was given.
    pub(crate) fn poll_pick_files(&mut self) {
        if let Some(r) = self.dialogs.open.as_ref().and_then(|j| j.take(None)) {
            self.dialogs.open = None;
            if let Ok(Some(paths)) = r
                && !paths.is_empty()
            {
                self.commands.push(Command::Open(LoadRequest::Paths(paths)));
            }
        }
    }

    /// Ask for the file of `d`.
    pub(crate) fn open_dialog(&mut self, ctx: &egui::Context, d: Dialog) {
        match Job::spawn("file-dialog", d, repaint(ctx), |d, _: &Worker<()>| ask(d)) {
            Ok(j) => self.dialogs.file = Some((d, j)),
            Err(e) => self.errors.push(format!("File dialog: {}", e.error)),
        }
    }

    /// Act on the answer of the file dialog, once given.
    pub(crate) fn poll_dialog(&mut self) {
        if let Some((d, job)) = &self.dialogs.file
            && let Some(r) = job.take(None)
        {
            let d = *d;
            self.dialogs.file = None;
            if let Ok(Some(path)) = r {
                self.transform_file(d, &path);
            }
        }
    }

    /// Save or load the transform, or save the MR resampled onto the CT grid.
    fn transform_file(&mut self, d: Dialog, path: &Path) {
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
                if let Some(v) = self
                    .synthesis
                    .synthetic
                    .and_then(|i| self.volumes.get(i))
                    .cloned()
                {
                    match crate::io::dicom::write::write_derived_series(
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
                if let Some(v) = self
                    .synthesis
                    .synthetic
                    .and_then(|i| self.volumes.get(i))
                    .cloned()
                    && let Err(e) = crate::io::nifti::write_nifti(&v, path)
                {
                    self.errors.push(e.to_string());
                }
            }
            Dialog::SaveTfm => {
                if let Some(t) = self.pair.mr_from_ct
                    && let Err(e) = t.write_tfm(path)
                {
                    self.errors
                        .push(format!("{}: cannot write: {e}", path.display()));
                }
            }
            Dialog::LoadTfm => match crate::volume::Affine::read_tfm(path) {
                Ok(t) => self.pair.set_transform(Some(t)),
                Err(e) => self.errors.push(e.to_string()),
            },
            Dialog::SaveResampled => {
                if let (Some(ct), Some(mr), Some(t)) = (
                    self.ct_volume().cloned(),
                    self.mr_volume().cloned(),
                    self.pair.mr_from_ct,
                ) {
                    let (min, _) = mr.min_max();
                    let v = resample(&mr, &ct.geometry, &t, min);
                    if let Err(e) = crate::io::nifti::write_nifti(&v, path) {
                        self.errors.push(e.to_string());
                    }
                }
            }
            Dialog::SaveCtOnMr => {
                // The inverse transform maps MR points to CT points.
                if let (Some(ct), Some(mr), Some(inv)) = (
                    self.ct_volume().cloned(),
                    self.mr_volume().cloned(),
                    self.pair.mr_from_ct.and_then(|t| t.inverse()),
                ) {
                    let (min, _) = ct.min_max();
                    let v = resample(&ct, &mr.geometry, &inv, min);
                    if let Err(e) = crate::io::nifti::write_nifti(&v, path) {
                        self.errors.push(e.to_string());
                    }
                }
            }
        }
    }
}
