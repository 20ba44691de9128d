//! The app's clinical DICOM side: PACS servers (File > PACS servers), File > Open from PACS
//! (search, then retrieve a series into the local study database and straight into the CT or
//! MR role), the local database in the series browser, and Send to PACS for the synthetic
//! series. Every network or database operation runs on a worker ([`Task`]) with progress and
//! Cancel; the windows only draw and queue [`Action`]s, which [`SynthScopeApp::pacs_ui`] runs
//! at the end of the frame.

pub mod local;
pub mod query;
pub mod send;
pub mod servers;
mod settings;

use crate::app::SynthScopeApp;
use crate::app::jobs::{Job, Wake, Worker, repaint};
use crate::app::pair::Role;
use crate::app::viewer::render::{Quantized, quantise};
use crate::db::Database;
use crate::io::{LoadOutcome, Progress};
use crate::pacs::{Control, FindResult, PacsError, TransferProgress};
use local::LocalDb;
use query::QueryState;
use servers::PacsServer;
use settings::SettingsUi;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// Work on a worker with a transfer counter and Cancel: the job (its result, the transfer
/// progress it streams, the stage and fraction of its other steps) and the flag the PACS
/// operations poll.
pub struct Task<T> {
    /// The worker.
    pub job: Job<Result<T, String>, TransferProgress>,
    cancel: Arc<AtomicBool>,
    /// The last transfer progress streamed.
    pub transfer: Option<TransferProgress>,
    /// What it does, for its progress line.
    pub what: String,
}

/// What a task's work sees: the worker (stage progress, events) and the cancel flag.
pub struct TaskCx<'a> {
    worker: &'a Worker<TransferProgress>,
    cancel: &'a AtomicBool,
}

impl TaskCx<'_> {
    /// The stage progress (and Cancel) for the database and the loader.
    pub fn progress(&self) -> &Progress {
        &self.worker.progress
    }

    /// Whether Cancel was pressed.
    pub fn cancelled(&self) -> bool {
        self.cancel.load(Ordering::Relaxed) || self.worker.progress.is_cancelled()
    }

    /// Run a PACS operation with a [`Control`] that streams its progress to the UI.
    pub fn control<R>(&self, f: impl FnOnce(&mut Control) -> R) -> R {
        let mut report = |p: TransferProgress| self.worker.emit(p);
        let mut c = Control {
            progress: &mut report,
            cancel: self.cancel,
        };
        f(&mut c)
    }
}

impl<T: Send + 'static> Task<T> {
    /// Run `work` on a worker thread named `name`.
    pub fn start(
        name: &str,
        what: impl Into<String>,
        wake: Wake,
        work: impl FnOnce(&TaskCx) -> Result<T, String> + Send + 'static,
    ) -> Result<Self, String> {
        let cancel = Arc::new(AtomicBool::new(false));
        let flag = cancel.clone();
        let what = what.into();
        let job = Job::spawn(name, (), wake, move |(), w: &Worker<TransferProgress>| {
            work(&TaskCx {
                worker: w,
                cancel: &flag,
            })
        })
        .map_err(|e| format!("{what}: {}", e.error))?;
        Ok(Self {
            job,
            cancel,
            transfer: None,
            what,
        })
    }
}

impl<T> Task<T> {
    /// The result once finished (`timeout`: wait that long; None: only look); takes the
    /// transfer progress streamed meanwhile.
    pub fn take(&mut self, timeout: Option<Duration>) -> Option<Result<T, String>> {
        if let Some(p) = self.job.events().pop() {
            self.transfer = Some(p);
        }
        let r = self.job.take(timeout)?;
        Some(r.unwrap_or_else(|e| Err(format!("{}: {e}", self.what))))
    }

    /// Ask the work to stop: the PACS operation at its next message, the database import
    /// at its next file (rolling the series back), the loader at its next file.
    pub fn cancel(&self) {
        self.cancel.store(true, Ordering::Relaxed);
        self.job.cancel();
    }

    /// Whether Cancel was pressed.
    pub fn is_cancelled(&self) -> bool {
        self.cancel.load(Ordering::Relaxed)
    }

    /// A spinner, the transfer or stage progress, and Cancel; true when Cancel was clicked.
    pub fn progress_ui(&self, ui: &mut egui::Ui) -> bool {
        let mut clicked = false;
        ui.horizontal(|ui| {
            ui.spinner();
            // A stage (writing, indexing, decoding) when one is set, else the transfer.
            let p = self.job.progress();
            let stage = p.stage();
            if !stage.is_empty() {
                ui.add(
                    egui::ProgressBar::new(p.fraction())
                        .desired_width(160.0)
                        .show_percentage(),
                );
                ui.label(stage);
            } else if let Some(t) = self.transfer {
                match t.total {
                    Some(n) if n > 0 => {
                        ui.add(
                            egui::ProgressBar::new(t.done as f32 / n as f32)
                                .desired_width(160.0)
                                .text(format!("{} / {n} images", t.done)),
                        );
                    }
                    _ => {
                        ui.label(format!("{} images", t.done));
                    }
                }
                if t.bytes > 0 {
                    ui.label(format!("{:.1} MB", t.bytes as f64 / 1e6));
                }
            } else {
                ui.label(&self.what);
            }
            if self.is_cancelled() {
                ui.label("cancelling…");
            } else if ui.button("Cancel").clicked() {
                clicked = true;
            }
        });
        clicked
    }
}

/// A series read from the local database, decoded and packed for the GPU, for a role.
pub struct Fetched {
    /// The decoded series (and the files that failed).
    pub outcome: LoadOutcome,
    /// Each volume packed for upload, by volume id.
    pub packed: Vec<(u64, Arc<Quantized>)>,
    /// The role it takes (None: guessed from its modality).
    pub role: Option<Role>,
    /// What happened, for the messages ("Retrieved 48 images over C-GET ... into the local
    /// database").
    pub summary: String,
}

/// Decode series `series_uid` from the database in `db_dir` and pack it for the GPU (on a
/// worker: the UI thread only copies when it first draws).
pub fn open_from_db(
    db_dir: &Path,
    series_uid: &str,
    role: Option<Role>,
    pr: &Progress,
) -> Result<Fetched, String> {
    let db = Database::open(db_dir).map_err(|e| e.to_string())?;
    let paths = db.series_paths(series_uid).map_err(|e| e.to_string())?;
    drop(db);
    let outcome = crate::io::load_paths(&paths, pr).map_err(|e| e.to_string())?;
    pr.start("Preparing GPU upload", outcome.volumes.len());
    let packed = outcome
        .volumes
        .iter()
        .map(|v| {
            let q = Arc::new(quantise(v));
            pr.step();
            (v.id, q)
        })
        .collect();
    Ok(Fetched {
        outcome,
        packed,
        role,
        summary: String::new(),
    })
}

/// Removes a folder when dropped (the retrieval's incoming folder, whatever happens).
struct RemoveOnDrop(PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Said when a retrieval was cancelled.
pub const RETRIEVE_CANCELLED: &str =
    "Retrieve cancelled: nothing of that series was added to the local database.";

/// Retrieve the series of `row` from `server` into the database in `db_dir` (through an
/// incoming folder that is always removed), then decode it for `role`. A cancel before the
/// import's commit leaves nothing in the database (the import rolls its series back).
pub fn retrieve_into_db(
    server: &PacsServer,
    row: &FindResult,
    db_dir: &Path,
    role: Option<Role>,
    cx: &TaskCx,
) -> Result<Fetched, String> {
    let incoming = db_dir.join(format!("incoming-{}", uuid::Uuid::new_v4().simple()));
    let _cleanup = RemoveOnDrop(incoming.clone());
    let r = cx.control(|c| server.retrieve(&row.study_uid, &row.series_uid, &incoming, c));
    let got = match r {
        Ok(r) => r,
        Err(PacsError::Cancelled) => return Err(RETRIEVE_CANCELLED.into()),
        Err(e) if cx.cancelled() => return Err(format!("{RETRIEVE_CANCELLED} ({e})")),
        Err(e) => return Err(format!("Retrieving from {}: {e}", server.name)),
    };
    if cx.cancelled() {
        return Err(RETRIEVE_CANCELLED.into());
    }
    let mut db = Database::open(db_dir).map_err(|e| e.to_string())?;
    let report = db
        .import_with_progress(std::slice::from_ref(&incoming), cx.progress())
        .map_err(|e| format!("Indexing the retrieved series: {e}"))?;
    if report.cancelled {
        return Err(RETRIEVE_CANCELLED.into());
    }
    if !report.series.contains(&row.series_uid) && report.already_present == 0 {
        let why = report.skipped.first().cloned().unwrap_or_else(|| {
            format!(
                "{} files, none a DICOM instance of the series",
                report.files
            )
        });
        return Err(format!(
            "Retrieved {} images over {} but none could be indexed: {why}",
            got.stats.images, got.how
        ));
    }
    drop(db);
    let mut f = open_from_db(db_dir, &row.series_uid, role, cx.progress())?;
    f.summary = format!(
        "Retrieved {} over {} from {} into the local database ({}{})",
        if row.description.is_empty() {
            &row.series_uid
        } else {
            &row.description
        },
        got.how,
        server.name,
        got.stats.summary(),
        if report.already_present > 0 {
            format!("; {} images were there already", report.already_present)
        } else {
            String::new()
        }
    );
    Ok(f)
}

/// What the PACS windows and the browser ask for; run by [`SynthScopeApp::pacs_ui`].
#[derive(Clone, Debug)]
pub enum Action {
    /// Search with the query form on the chosen server.
    Search,
    /// List the series of this study (a series-level search).
    ListSeries(String),
    /// Retrieve result `index` of the table into a role.
    Retrieve(usize, Role),
    /// Test the connection to server `index`.
    Test(usize),
    /// Save the server list now.
    SaveServers,
}

/// The state of the PACS windows, the local database and the server list.
#[derive(Default)]
pub struct PacsState {
    /// The configured servers.
    pub servers: Vec<PacsServer>,
    /// Show File > PACS servers.
    pub show_settings: bool,
    /// Show File > Open from PACS.
    pub show_query: bool,
    /// The query dialog.
    pub query: QueryState,
    /// The local database (listed in the series browser).
    pub local: LocalDb,
    settings: SettingsUi,
    /// Where the server list is saved (None: not saved, e.g. in tests).
    servers_file: Option<PathBuf>,
    /// What was last saved (or read).
    saved: Vec<PacsServer>,
    last_save: Option<Instant>,
    /// Actions of this frame.
    pub actions: Vec<Action>,
    /// The database folder (None: [`crate::db::default_dir`]).
    db_dir: Option<PathBuf>,
}

impl PacsState {
    /// Read the server list from `path` and save it there when it changes (`run` does; tests
    /// set `servers` directly).
    pub fn use_settings(&mut self, path: Option<PathBuf>) -> Result<(), String> {
        self.servers_file = path.clone();
        let Some(path) = path else { return Ok(()) };
        let servers = servers::read_servers(&path)?;
        self.saved = servers.clone();
        self.servers = servers;
        Ok(())
    }

    /// Use the study database in `dir` (tests; the default is [`crate::db::default_dir`]).
    pub fn set_db_dir(&mut self, dir: PathBuf) {
        self.db_dir = Some(dir);
        self.local.refresh();
    }

    /// The database folder.
    pub fn db_dir(&self) -> Result<PathBuf, String> {
        match &self.db_dir {
            Some(d) => Ok(d.clone()),
            None => crate::db::default_dir().map_err(|e| e.to_string()),
        }
    }

    /// Whether a search, a retrieval, a send, a test or a database job runs.
    pub fn is_busy(&self) -> bool {
        self.query.find.is_some()
            || self.query.retrieve.is_some()
            || self.settings.test.is_some()
            || self.local.is_busy()
    }

    /// Save the server list if it changed (at most once a second, unless `now` is None).
    pub(crate) fn save_servers(&mut self, now: Option<Instant>) -> Result<(), String> {
        let Some(path) = self.servers_file.clone() else {
            return Ok(());
        };
        if self.servers == self.saved {
            return Ok(());
        }
        if let Some(now) = now {
            if self
                .last_save
                .is_some_and(|t| now.duration_since(t) < Duration::from_secs(1))
            {
                return Ok(());
            }
            self.last_save = Some(now);
        }
        // Said once: the next try compares against what failed.
        self.saved = self.servers.clone();
        servers::write_servers(&path, &self.servers)
    }
}

impl SynthScopeApp {
    /// The PACS windows, the results of their workers, and their actions (every frame).
    pub(crate) fn pacs_ui(&mut self, ctx: &egui::Context) {
        self.poll_pacs();
        let names: Vec<String> = self.pacs.servers.iter().map(|s| s.name.clone()).collect();
        self.synthesis.send.set_servers(names);
        if self.pacs.show_settings {
            let p = &mut self.pacs;
            let mut open = true;
            egui::Window::new("PACS servers")
                .open(&mut open)
                .default_width(520.0)
                .show(ctx, |ui| {
                    p.settings.ui(ui, &mut p.servers, &mut p.actions);
                });
            self.pacs.show_settings = open;
        }
        if self.pacs.show_query {
            let p = &mut self.pacs;
            let mut open = true;
            egui::Window::new("Open from PACS")
                .open(&mut open)
                .default_width(900.0)
                .default_height(460.0)
                .show(ctx, |ui| {
                    p.query
                        .ui(ui, &p.servers, &mut p.actions, &mut p.show_settings);
                });
            self.pacs.show_query = open;
        }
        self.run_pacs_actions(ctx);
        let r = self.pacs.save_servers(Some(Instant::now()));
        self.report(r);
        // The stages of a retrieval, a database job or a send (writing, indexing, decoding)
        // report through shared memory, not events: look again now and then while one runs.
        // Searches, tests and transfers wake the window themselves.
        if self.pacs.query.retrieve.is_some()
            || self.pacs.local.is_working()
            || self.synthesis.send.is_busy()
        {
            ctx.request_repaint_after(Duration::from_millis(250));
        }
    }

    /// Wait up to `timeout` for the PACS and database workers and take their results (tests).
    pub fn wait_for_pacs(&mut self, timeout: Duration) {
        let t0 = Instant::now();
        while (self.pacs.is_busy() || self.synthesis.send.is_busy()) && t0.elapsed() < timeout {
            std::thread::sleep(Duration::from_millis(20));
            self.poll_pacs();
        }
        self.poll_pacs();
    }

    /// Take what the PACS workers finished.
    fn poll_pacs(&mut self) {
        let mut fetched = Vec::new();
        let mut messages = Vec::new();
        self.pacs.query.poll(&mut fetched, &mut messages);
        self.pacs.settings.poll();
        self.pacs.local.poll(&mut fetched, &mut messages);
        self.synthesis.send.poll(&mut messages);
        if fetched.iter().any(|f| !f.summary.is_empty()) {
            // A retrieval added a series to the database.
            self.pacs.local.refresh();
        }
        self.errors.extend(messages);
        for f in fetched {
            self.add_fetched(f);
        }
    }

    /// Show a series read from the database: it joins the volumes (replacing an earlier copy of
    /// the same series) and takes its role.
    fn add_fetched(&mut self, f: Fetched) {
        if !f.summary.is_empty() {
            self.errors.push(f.summary);
        }
        for e in f.outcome.errors {
            self.errors.push(e.to_string());
        }
        self.viewer.packed.extend(f.packed);
        let first_new = self.volumes.len();
        let mut placed = Vec::new();
        for v in f.outcome.volumes {
            for w in &v.meta.warnings {
                self.errors
                    .push(format!("{} ({}): {w}", v.meta.description, v.meta.source));
            }
            let v = Arc::new(v);
            match self
                .volumes
                .iter()
                .position(|o| o.meta.series_uid == v.meta.series_uid)
            {
                Some(k) => {
                    self.volumes[k] = v;
                    placed.push(k);
                }
                None => {
                    self.volumes.push(v);
                    placed.push(self.volumes.len() - 1);
                }
            }
        }
        match (f.role, placed.first()) {
            (Some(role), Some(&i)) => self.set_role(i, Some(role)),
            (None, Some(_)) => {
                self.pair.assign_new(&self.volumes, first_new);
                self.fit_view();
            }
            _ => {}
        }
    }

    /// Run the actions the PACS windows queued this frame.
    fn run_pacs_actions(&mut self, ctx: &egui::Context) {
        let wake = repaint(ctx);
        for a in std::mem::take(&mut self.pacs.actions) {
            let r = match a {
                Action::Search => {
                    let q = self.pacs.query.form.query();
                    self.pacs.query.search(&self.pacs.servers, q, wake.clone())
                }
                Action::ListSeries(study) => self.pacs.query.search(
                    &self.pacs.servers,
                    PacsServer::series_query(&study),
                    wake.clone(),
                ),
                Action::Retrieve(i, role) => match self.pacs.db_dir() {
                    Ok(dir) => {
                        self.pacs
                            .query
                            .retrieve(&self.pacs.servers, i, role, dir, wake.clone())
                    }
                    Err(e) => Err(e),
                },
                Action::Test(i) => match self.pacs.servers.get(i) {
                    Some(s) => self.pacs.settings.test(s.clone(), wake.clone()),
                    None => Ok(()),
                },
                Action::SaveServers => self.pacs.save_servers(None),
            };
            self.report(r);
        }
        // The series browser's database actions.
        match self.pacs.db_dir() {
            Ok(dir) => {
                let r = self.pacs.local.run(&dir, wake.clone());
                self.report(r);
            }
            Err(e) => {
                if self.pacs.local.take_actions() {
                    self.errors.push(e);
                }
            }
        }
        // Send to PACS from the Synthesis panel.
        if let Some(i) = self.synthesis.send.take_request() {
            let synthetic = self
                .synthesis
                .synthetic
                .and_then(|k| self.volumes.get(k))
                .cloned();
            let model = self
                .model
                .info()
                .map(|(c, _)| c.path.display().to_string())
                .unwrap_or_default();
            let r = match (synthetic, self.pacs.servers.get(i).cloned()) {
                (Some(v), Some(server)) => {
                    self.synthesis.send.start(v, model, server, wake.clone())
                }
                (None, _) => Err("Send to PACS: synthesise first.".into()),
                (_, None) => Err("Send to PACS: add a server in File > PACS servers.".into()),
            };
            self.report(r);
        }
    }
}
