//! The local study database as the series browser shows it: the list of series (read on a
//! worker, again after every change), and open into a role, import a folder, remove a series,
//! each on a worker with progress and Cancel.

use super::{Fetched, Task, open_from_db};
use crate::app::jobs::{Job, Wake, Worker};
use crate::app::pair::Role;
use crate::db::{Database, SeriesRecord};
use std::path::{Path, PathBuf};

/// What the browser asks of the database.
#[derive(Clone, Debug, PartialEq)]
pub enum LocalAction {
    /// Read the list again.
    Refresh,
    /// Decode a series into a role.
    Open(String, Role),
    /// Ask for a folder, then import it.
    PickImport,
    /// Import files and folders.
    Import(Vec<PathBuf>),
    /// Remove a series (its rows and its copies).
    Remove(String),
}

/// What a database job did.
enum Done {
    /// A series to show.
    Opened(Fetched),
    /// A line to show (import or removal summary).
    Changed(String),
}

/// The browser's view of the local database.
#[derive(Default)]
pub struct LocalDb {
    /// The series, as last read (or why not).
    pub records: Option<Result<Vec<SeriesRecord>, String>>,
    list: Option<Task<Vec<SeriesRecord>>>,
    work: Option<Task<Done>>,
    pick: Option<Job<Option<PathBuf>>>,
    actions: Vec<LocalAction>,
    /// Asked to remove this series; waiting for Yes.
    pub confirm_remove: Option<String>,
    /// The database was asked for its list (the first time the browser draws).
    listed: bool,
}

impl LocalDb {
    /// Ask for `a` (run at the end of the frame).
    pub fn request(&mut self, a: LocalAction) {
        self.actions.push(a);
    }

    /// Read the list again at the end of the frame.
    pub fn refresh(&mut self) {
        self.request(LocalAction::Refresh);
    }

    /// Whether a long database job (open, import, removal) runs: its stage progress is shared
    /// memory, so the window looks again now and then.
    pub fn is_working(&self) -> bool {
        self.work.is_some()
    }

    /// Whether a database job (list, open, import, removal, folder dialog) runs.
    pub fn is_busy(&self) -> bool {
        self.list.is_some() || self.work.is_some() || self.pick.is_some()
    }

    /// Drop the queued actions; true if there were any.
    pub(super) fn take_actions(&mut self) -> bool {
        !std::mem::take(&mut self.actions).is_empty()
    }

    /// Start what was asked, on the database in `dir`.
    pub(super) fn run(&mut self, dir: &Path, wake: Wake) -> Result<(), String> {
        let mut result = Ok(());
        for a in std::mem::take(&mut self.actions) {
            let r = self.start(a, dir, wake.clone());
            if r.is_err() && result.is_ok() {
                result = r;
            }
        }
        result
    }

    fn start(&mut self, a: LocalAction, dir: &Path, wake: Wake) -> Result<(), String> {
        let dir = dir.to_path_buf();
        if a == LocalAction::Refresh {
            if self.list.is_none() {
                self.list = Some(Task::start(
                    "db-list",
                    "Reading the local database",
                    wake,
                    move |_| {
                        // Listing never creates a database where there is none yet.
                        if !dir.join(crate::db::INDEX_FILE).exists() {
                            return Ok(Vec::new());
                        }
                        Database::open(&dir)
                            .and_then(|db| db.list_series())
                            .map_err(|e| e.to_string())
                    },
                )?);
            }
            return Ok(());
        }
        if a == LocalAction::PickImport {
            if self.pick.is_none() {
                let job = Job::spawn("folder-dialog", (), wake, |(), _: &Worker<()>| {
                    rfd::FileDialog::new()
                        .set_title("Import a folder into the local database")
                        .pick_folder()
                })
                .map_err(|e| format!("Folder dialog: {}", e.error))?;
                self.pick = Some(job);
            }
            return Ok(());
        }
        if self.work.is_some() {
            return Err("The local database is busy; wait for it or cancel.".into());
        }
        let task = match a {
            LocalAction::Open(uid, role) => {
                Task::start("db-open", "Opening the series", wake, move |cx| {
                    open_from_db(&dir, &uid, Some(role), cx.progress()).map(Done::Opened)
                })?
            }
            LocalAction::Import(paths) => {
                let what = match paths.as_slice() {
                    [p] => format!("Importing {}", p.display()),
                    _ => format!("Importing {} items", paths.len()),
                };
                Task::start("db-import", what, wake, move |cx| {
                    let mut db = Database::open(&dir).map_err(|e| e.to_string())?;
                    let r = db
                        .import_with_progress(&paths, cx.progress())
                        .map_err(|e| e.to_string())?;
                    let mut s = format!(
                        "Imported {} instances in {} series into the local database",
                        r.instances_added,
                        r.series.len()
                    );
                    if r.already_present > 0 {
                        s.push_str(&format!(" ({} already there)", r.already_present));
                    }
                    if r.not_dicom > 0 {
                        s.push_str(&format!("; {} files were not DICOM", r.not_dicom));
                    }
                    if let Some(first) = r.skipped.first() {
                        s.push_str(&format!("; {} unreadable, e.g. {first}", r.skipped.len()));
                    }
                    if r.cancelled {
                        s.push_str("; cancelled: the series committed before stay, none half");
                    }
                    Ok(Done::Changed(s))
                })?
            }
            LocalAction::Remove(uid) => {
                Task::start("db-remove", "Removing the series", wake, move |_| {
                    let mut db = Database::open(&dir).map_err(|e| e.to_string())?;
                    let n = db.remove_series(&uid).map_err(|e| e.to_string())?;
                    Ok(Done::Changed(format!(
                        "Removed series {uid} ({n} instances) from the local database"
                    )))
                })?
            }
            LocalAction::Refresh | LocalAction::PickImport => return Ok(()),
        };
        self.work = Some(task);
        Ok(())
    }

    /// Take finished jobs: a series to show into `fetched`, lines into `messages`.
    pub(super) fn poll(&mut self, fetched: &mut Vec<Fetched>, messages: &mut Vec<String>) {
        if let Some(r) = self.list.as_mut().and_then(|t| t.take(None)) {
            self.list = None;
            self.records = Some(r);
        }
        if let Some(r) = self.pick.as_ref().and_then(|j| j.take(None)) {
            self.pick = None;
            if let Ok(Some(dir)) = r {
                self.request(LocalAction::Import(vec![dir]));
            }
        }
        if let Some(r) = self.work.as_mut().and_then(|t| t.take(None)) {
            self.work = None;
            match r {
                Ok(Done::Opened(f)) => fetched.push(f),
                Ok(Done::Changed(s)) => {
                    messages.push(s);
                    self.refresh();
                }
                Err(e) => {
                    messages.push(e);
                    self.refresh();
                }
            }
        }
    }

    /// The database part of the series browser.
    pub fn ui(&mut self, ui: &mut egui::Ui) {
        let mut asked = Vec::new();
        if !self.listed {
            self.listed = true;
            asked.push(LocalAction::Refresh);
        }
        ui.horizontal(|ui| {
            ui.strong("Local database");
            if let Some(Ok(r)) = &self.records {
                ui.label(format!("({} series)", r.len()));
            }
            if ui.small_button("Refresh").clicked() {
                asked.push(LocalAction::Refresh);
            }
            if ui
                .small_button("Import folder…")
                .on_hover_text("Copy its DICOM files into the database and index them")
                .clicked()
            {
                asked.push(LocalAction::PickImport);
            }
        });
        if let Some(t) = &self.work
            && t.progress_ui(ui)
        {
            t.cancel();
        }
        match &self.records {
            None => {
                ui.weak("Reading…");
            }
            Some(Err(e)) => {
                ui.colored_label(egui::Color32::LIGHT_RED, e);
            }
            Some(Ok(r)) if r.is_empty() => {
                ui.weak("Empty: import a folder, or retrieve from a PACS (File > Open from PACS).");
            }
            Some(Ok(records)) => {
                egui::Grid::new("db-series")
                    .striped(true)
                    .num_columns(6)
                    .show(ui, |ui| {
                        for h in [
                            "Open as", "Patient", "Study", "Series", "Modality", "Images",
                        ] {
                            ui.strong(h);
                        }
                        ui.end_row();
                        for s in records {
                            // The buttons first, as the roles of the loaded series above: a
                            // narrow dock still shows them.
                            ui.horizontal(|ui| {
                                for role in [Role::Ct, Role::Mr] {
                                    let name = super::query::role_name(role);
                                    if ui
                                        .small_button(name)
                                        .on_hover_text(format!("Open into the {name} role"))
                                        .clicked()
                                    {
                                        asked.push(LocalAction::Open(s.series_uid.clone(), role));
                                    }
                                }
                                if self.confirm_remove.as_deref() == Some(&s.series_uid) {
                                    if ui.small_button("Remove it").clicked() {
                                        asked.push(LocalAction::Remove(s.series_uid.clone()));
                                    }
                                    if ui.small_button("Keep").clicked() {
                                        self.confirm_remove = None;
                                    }
                                } else if ui
                                    .small_button("Remove…")
                                    .on_hover_text("Remove from the database (deletes its copies)")
                                    .clicked()
                                {
                                    self.confirm_remove = Some(s.series_uid.clone());
                                }
                            });
                            ui.label(format!("{} {}", s.patient_name, s.patient_id));
                            let study = if s.study_description.is_empty() {
                                s.study_date.clone()
                            } else {
                                format!("{} {}", s.study_date, s.study_description)
                            };
                            ui.label(study).on_hover_text(&s.study_uid);
                            let series = match (s.number, s.description.is_empty()) {
                                (Some(n), false) => format!("{n}: {}", s.description),
                                (Some(n), true) => n.to_string(),
                                (None, _) => s.description.clone(),
                            };
                            ui.label(series).on_hover_text(&s.series_uid);
                            ui.label(&s.modality);
                            ui.label(s.images.to_string());
                            ui.end_row();
                        }
                    });
            }
        }
        for a in asked {
            if matches!(a, LocalAction::Remove(_)) {
                self.confirm_remove = None;
            }
            self.request(a);
        }
    }
}
