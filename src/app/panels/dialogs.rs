//! Native file dialogs on worker threads (they block their thread), and what their answers do.

use crate::app::SynthScopeApp;
use crate::app::jobs::{Job, Wake, Worker};
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

impl Dialogs {
    /// Ask for files (or a `folder`) to open.
    pub(crate) fn pick(&mut self, folder: bool, wake: Wake) -> Result<(), String> {
        let job = Job::spawn("file-dialog", (), wake, move |(), _: &Worker<()>| {
            let d = rfd::FileDialog::new().set_title("Open CT / MR (DICOM folder or files, NIfTI)");
            if folder {
                d.pick_folder().map(|p| vec![p])
            } else {
                d.pick_files()
            }
        });
        self.open = Some(job.map_err(|e| format!("File dialog: {}", e.error))?);
        Ok(())
    }

    /// The files to open, once chosen.
    pub(crate) fn picked(&mut self) -> Option<Vec<PathBuf>> {
        let r = self.open.as_ref()?.take(None)?;
        self.open = None;
        r.ok().flatten().filter(|p| !p.is_empty())
    }

    /// Ask for the file of `d`.
    pub(crate) fn ask(&mut self, d: Dialog, wake: Wake) -> Result<(), String> {
        let job = Job::spawn("file-dialog", d, wake, |d, _: &Worker<()>| ask(d))
            .map_err(|e| format!("File dialog: {}", e.error))?;
        self.file = Some((d, job));
        Ok(())
    }

    /// The dialog answered and its file, once chosen.
    pub(crate) fn answered(&mut self) -> Option<(Dialog, PathBuf)> {
        let (d, job) = self.file.as_ref()?;
        let (d, r) = (*d, job.take(None)?);
        self.file = None;
        r.ok().flatten().map(|p| (d, p))
    }
}

impl SynthScopeApp {
    /// Act on the file chosen in dialog `d`: load or save it.
    pub(crate) fn file_chosen(&mut self, d: Dialog, path: &Path) {
        match d {
            Dialog::LoadModel => self.load_model(path),
            Dialog::LoadClassifier => {
                let r = self.gradcam.load_classifier(path);
                self.report(r);
            }
            Dialog::OpenStudy => self.open_study(path),
            Dialog::SaveStudy => self.study.save(path),
            Dialog::AddStudyCase => self.study.add_case(path),
            Dialog::OpenResults => self.open_results(path),
            Dialog::SaveStudyCsv => {
                let r = self.study.export_csv(path);
                self.report(r);
            }
            Dialog::SaveViewPng => self.save_screenshot(path, true),
            Dialog::SaveWindowPng => self.save_screenshot(path, false),
            Dialog::SaveSyntheticDicom => {
                if let Some(v) = self
                    .synthesis
                    .synthetic
                    .and_then(|i| self.volumes.get(i))
                    .cloned()
                {
                    let model = self
                        .model
                        .info()
                        .map(|(c, _)| c.path.display().to_string())
                        .unwrap_or_default();
                    match crate::io::dicom::write::write_derived_series(&v, &v.meta, &model, path) {
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
                if let (Some((ct, mr)), Some(t)) =
                    (self.pair.both(&self.volumes), self.pair.mr_from_ct)
                {
                    let (min, _) = mr.min_max();
                    let v = resample(&mr, &ct.geometry, &t, min);
                    if let Err(e) = crate::io::nifti::write_nifti(&v, path) {
                        self.errors.push(e.to_string());
                    }
                }
            }
            Dialog::SaveCtOnMr => {
                // The inverse transform maps MR points to CT points.
                if let (Some((ct, mr)), Some(inv)) = (
                    self.pair.both(&self.volumes),
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
