//! The reading view of a reader study: full screen, nothing but the image(s), the questions and
//! the count. No file names, patient data or series descriptions are shown; scrolling, zoom
//! and window/level work as in the viewer. Every answer is in the reader's log (fsynced) before
//! the next image appears; reopening the study resumes at the first unanswered image.

mod pattern;
mod session;

use crate::app::viewer::view::ViewState;
use crate::study::Study;
use crate::study::session::{Session, StudyKey};
use crate::volume::{Volume, WindowLevel};
use session::reading_session_ui;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How the app was asked to run a study.
#[derive(Clone, Debug)]
pub struct StudyOptions {
    /// Study file.
    pub file: PathBuf,
    /// Reader ID (asked for when None).
    pub reader: Option<String>,
    /// Go full screen.
    pub fullscreen: bool,
    /// Scripted keys fed to the session one at a time, this far apart (automation and the
    /// crash test); the window closes when they run out.
    pub script: Option<(Vec<StudyKey>, Duration)>,
}

/// Cases prepared for reading: the study and each case's slices.
type Prepared = (Study, Vec<Vec<usize>>);

/// Case volumes for the reading view, loaded in the background: only the current image's, the
/// next image's (and, when going back is allowed, the previous image's) cases stay in memory.
pub struct CaseCache {
    loaded: std::collections::HashMap<usize, Arc<Volume>>,
    pending: std::collections::HashSet<usize>,
    failed: std::collections::HashMap<usize, String>,
    tx: crossbeam_channel::Sender<usize>,
    rx: crossbeam_channel::Receiver<(usize, Result<Arc<Volume>, String>)>,
}

impl CaseCache {
    /// A loader thread for `study`'s cases (read from `file`).
    fn new(study: Study, file: PathBuf, ctx: egui::Context) -> Self {
        let (tx, jobs) = crossbeam_channel::unbounded::<usize>();
        let (done, rx) = crossbeam_channel::unbounded();
        // Without a loader thread every case stays pending: the reading view keeps its spinner.
        let _ = crate::app::jobs::spawn("study-cases", move || {
            for i in jobs {
                let r = crate::study::load_case(&study, &file, i).map_err(String::from);
                if done.send((i, r)).is_err() {
                    break;
                }
                ctx.request_repaint();
            }
        });
        Self {
            loaded: Default::default(),
            pending: Default::default(),
            failed: Default::default(),
            tx,
            rx,
        }
    }

    /// Keep the cases in `want` (asking the loader for what is missing) and drop the others.
    pub fn keep(&mut self, want: &[usize]) {
        while let Ok((i, r)) = self.rx.try_recv() {
            self.pending.remove(&i);
            match r {
                Ok(v) => {
                    self.loaded.insert(i, v);
                }
                Err(e) => {
                    self.failed.insert(i, e);
                }
            }
        }
        self.loaded.retain(|i, _| want.contains(i));
        for &i in want {
            if !self.loaded.contains_key(&i)
                && !self.pending.contains(&i)
                && !self.failed.contains_key(&i)
                && self.tx.send(i).is_ok()
            {
                self.pending.insert(i);
            }
        }
    }

    /// Case `i`'s volume, if loaded.
    pub fn get(&self, i: usize) -> Option<&Arc<Volume>> {
        self.loaded.get(&i)
    }

    /// Why case `i` could not be loaded.
    pub fn error(&self, i: usize) -> Option<&String> {
        self.failed.get(&i)
    }

    /// Cases in memory.
    pub fn resident(&self) -> usize {
        self.loaded.len()
    }

    /// Wait (tests) until the cases in `want` are loaded or failed.
    pub fn wait(&mut self, want: &[usize], timeout: Duration) {
        let t0 = Instant::now();
        loop {
            self.keep(want);
            if want
                .iter()
                .all(|i| self.loaded.contains_key(i) || self.failed.contains_key(i))
                || t0.elapsed() > timeout
            {
                return;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

/// The cases the reading view needs now: the current and the next image's, and the previous
/// image's when the study allows going back.
pub fn wanted_cases(session: &Session) -> Vec<usize> {
    let mut w = Vec::new();
    let back = if session.study.allow_back { 1 } else { 0 };
    let from = session.pos.saturating_sub(back);
    for t in session
        .trials
        .iter()
        .skip(from)
        .take(2 + session.pos - from)
    {
        for c in std::iter::once(t.case).chain(t.partner) {
            if !w.contains(&c) {
                w.push(c);
            }
        }
    }
    w
}

/// Where the reading view is.
pub enum ReadingPhase {
    /// Asking for the reader ID.
    AskReader(String),
    /// Loading the cases.
    Preparing {
        /// Reader ID.
        reader: String,
        /// Progress.
        progress: Arc<crate::io::Progress>,
        /// Result.
        rx: crossbeam_channel::Receiver<Result<Prepared, String>>,
    },
    /// Reading.
    Reading {
        /// The session.
        session: Box<Session>,
        /// Case volumes (the current and next images').
        cases: Box<CaseCache>,
        /// The view of the current trial, its window, and the trial it belongs to.
        view: Option<(usize, ViewState, WindowLevel)>,
    },
    /// Could not start.
    Failed(String),
}

/// The reading view's state.
pub struct ReadingState {
    /// Scripted keys still to feed, and when the last one was fed.
    script: Option<(std::collections::VecDeque<StudyKey>, Duration, Instant)>,
    /// Options.
    pub options: StudyOptions,
    /// Phase.
    pub phase: ReadingPhase,
    /// A problem to show (e.g. an answer that could not be saved).
    pub error: Option<String>,
    /// The study's grey-scale test pattern is still to be confirmed.
    pub pattern_pending: bool,
    fullscreen_sent: bool,
    ctx: egui::Context,
}

impl ReadingState {
    /// Start: ask for the reader ID or begin loading.
    pub fn new(options: StudyOptions, ctx: &egui::Context) -> Self {
        let script = options
            .script
            .clone()
            .map(|(k, d)| (k.into_iter().collect(), d, Instant::now()));
        let mut s = Self {
            phase: ReadingPhase::AskReader(String::new()),
            options,
            error: None,
            pattern_pending: false,
            fullscreen_sent: false,
            script,
            ctx: ctx.clone(),
        };
        if let Some(r) = s.options.reader.clone()
            && !r.trim().is_empty()
        {
            s.prepare(r, ctx);
        }
        s
    }

    fn prepare(&mut self, reader: String, ctx: &egui::Context) {
        let file = self.options.file.clone();
        let progress = Arc::new(crate::io::Progress::default());
        let (tx, rx) = crossbeam_channel::bounded(1);
        let (p, c) = (progress.clone(), ctx.clone());
        let spawned = crate::app::jobs::spawn("study-load", move || {
            let r = (|| {
                let study = Study::read(&file)?;
                // Every case is checked (and its slices found) once here; the volumes
                // are loaded again as their images come up.
                let slices = crate::study::resolve_slices(&study, &file, &p)?;
                Ok((study, slices))
            })();
            let _ = tx.send(r);
            c.request_repaint();
        });
        self.phase = match spawned {
            Ok(_) => ReadingPhase::Preparing {
                reader,
                progress,
                rx,
            },
            Err(e) => ReadingPhase::Failed(e.to_string()),
        };
    }

    /// Take a finished preparation and open the session (tests call it through frames).
    fn poll(&mut self) {
        let ReadingPhase::Preparing { reader, rx, .. } = &self.phase else {
            return;
        };
        let Ok(r) = rx.try_recv() else {
            return;
        };
        let reader = reader.clone();
        self.phase = match r.and_then(|(study, slices)| {
            let log = crate::study::log_path(&self.options.file, &reader);
            Session::start(study, &self.options.file, &slices, &reader, &log).map_err(String::from)
        }) {
            Ok(session) => {
                // Scripted sessions (automation) skip the display check.
                self.pattern_pending = session.study.test_pattern && self.script.is_none();
                ReadingPhase::Reading {
                    cases: Box::new(CaseCache::new(
                        session.study.clone(),
                        self.options.file.clone(),
                        self.ctx.clone(),
                    )),
                    session: Box::new(session),
                    view: None,
                }
            }
            Err(e) => ReadingPhase::Failed(e),
        };
    }

    /// The session and its case cache, once reading.
    pub fn cases_mut(&mut self) -> Option<(&Session, &mut CaseCache)> {
        match &mut self.phase {
            ReadingPhase::Reading { session, cases, .. } => Some((session, cases)),
            _ => None,
        }
    }

    /// The session, once reading.
    pub fn session(&self) -> Option<&Session> {
        match &self.phase {
            ReadingPhase::Reading { session, .. } => Some(session),
            _ => None,
        }
    }

    /// Wait (tests) until the session is open and the current image's cases are loaded.
    pub fn wait_ready(&mut self, timeout: Duration) {
        self.wait_prepared(timeout);
        if let Some((s, c)) = self.cases_mut() {
            let want = wanted_cases(s);
            c.wait(&want, timeout);
        }
    }

    /// Wait (tests) until the cases are checked and the session is open.
    pub fn wait_prepared(&mut self, timeout: Duration) {
        if let ReadingPhase::Preparing { rx, reader, .. } = &self.phase
            && let Ok(r) = rx.recv_timeout(timeout)
        {
            let (tx, rx2) = crossbeam_channel::bounded(1);
            let _ = tx.send(r);
            self.phase = ReadingPhase::Preparing {
                reader: reader.clone(),
                progress: Arc::new(Default::default()),
                rx: rx2,
            };
            self.poll();
        }
    }
}

impl ReadingState {
    /// The reading view (the whole window while a study is open); `has_gpu`: the panes draw
    /// through the GPU renderer.
    pub(crate) fn ui(&mut self, ui: &mut egui::Ui, ctx: &egui::Context, has_gpu: bool) {
        let r = self;
        if r.options.fullscreen && !r.fullscreen_sent {
            ctx.send_viewport_cmd(egui::ViewportCommand::Fullscreen(true));
            r.fullscreen_sent = true;
        }
        r.poll();
        let mut start_reader = None;
        match &mut r.phase {
            ReadingPhase::AskReader(id) => {
                egui::CentralPanel::default().show(ui, |ui| {
                    ui.vertical_centered(|ui| {
                        ui.add_space(ui.available_height() * 0.3);
                        ui.heading("Reader study");
                        ui.label("Enter your reader ID. The images come in an order of your own; you can stop at any time and continue later with the same ID.");
                        let l = ui.label("Reader ID");
                        let resp = ui.add(egui::TextEdit::singleline(id).desired_width(240.0)).labelled_by(l.id);
                        let enter = resp.lost_focus() && ui.input(|i| i.key_pressed(egui::Key::Enter));
                        if (ui.add_enabled(!id.trim().is_empty(), egui::Button::new("Start")).clicked() || enter)
                            && !id.trim().is_empty()
                        {
                            start_reader = Some(id.trim().to_string());
                        }
                    });
                });
            }
            ReadingPhase::Preparing { progress, .. } => {
                let (f, stage) = (progress.fraction(), progress.stage());
                egui::CentralPanel::default().show(ui, |ui| {
                    ui.vertical_centered(|ui| {
                        ui.add_space(ui.available_height() * 0.4);
                        ui.label(if stage.is_empty() {
                            "Loading the cases…".to_string()
                        } else {
                            stage
                        });
                        ui.add(
                            egui::ProgressBar::new(f)
                                .desired_width(320.0)
                                .show_percentage(),
                        );
                        if ui.button("Cancel").clicked() {
                            progress.cancel();
                        }
                    });
                });
            }
            ReadingPhase::Failed(e) => {
                let e = e.clone();
                egui::CentralPanel::default().show(ui, |ui| {
                    ui.vertical_centered(|ui| {
                        ui.add_space(ui.available_height() * 0.35);
                        ui.heading("The study cannot be read");
                        ui.colored_label(egui::Color32::LIGHT_RED, e);
                        if ui.button("Quit").clicked() {
                            ctx.send_viewport_cmd(egui::ViewportCommand::Close);
                        }
                    });
                });
            }
            ReadingPhase::Reading {
                session,
                cases,
                view,
            } => {
                if r.pattern_pending {
                    if pattern::test_pattern_ui(ui, ctx) {
                        r.pattern_pending = false;
                    }
                    return;
                }
                // Scripted keys go through the same session calls as typed ones.
                if let Some((keys, every, last)) = &mut r.script {
                    if last.elapsed() >= *every {
                        *last = Instant::now();
                        match keys.pop_front() {
                            Some(k) => {
                                if let Err(e) = session.key(k) {
                                    r.error = Some(e.into());
                                }
                            }
                            None => ctx.send_viewport_cmd(egui::ViewportCommand::Close),
                        }
                    }
                    ctx.request_repaint_after(*every);
                }
                let error = &mut r.error;
                reading_session_ui(ui, ctx, session, cases, view, error, has_gpu);
            }
        }
        if let Some(id) = start_reader {
            r.prepare(id, ctx);
        }
    }
}
