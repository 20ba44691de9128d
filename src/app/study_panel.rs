//! The reading view of a reader study: full screen, nothing but the image(s), the questions and
//! the count. No file names, patient data or series descriptions are shown; scrolling, zoom
//! and window/level work as in the viewer. Every answer is in the reader's log (fsynced) before
//! the next image appears; reopening the study resumes at the first unanswered image.

use super::view::{Orientation, ViewState};
use super::viewport::{PaneLayer, pane_ui};
use super::*;
use crate::study::session::{Session, StudyKey};
use crate::study::{Design, Study};

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
        let _ = std::thread::Builder::new()
            .name("study-cases".into())
            .spawn(move || {
                for i in jobs {
                    let r = crate::cli_study::load_case(&study, &file, i);
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
        let spawned = std::thread::Builder::new()
            .name("study-load".into())
            .spawn(move || {
                let r = (|| {
                    let study = Study::read(&file)?;
                    // Every case is checked (and its slices found) once here; the volumes
                    // are loaded again as their images come up.
                    let slices = crate::cli_study::resolve_slices(&study, &file, &p)?;
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
            Err(e) => ReadingPhase::Failed(format!("cannot start a worker thread: {e}")),
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
            Session::start(study, &self.options.file, &slices, &reader, &log)
        }) {
            Ok(session) => ReadingPhase::Reading {
                cases: Box::new(CaseCache::new(
                    session.study.clone(),
                    self.options.file.clone(),
                    self.ctx.clone(),
                )),
                session: Box::new(session),
                view: None,
            },
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

/// The window for a case: the study's per modality (MR without one: the image's robust range).
fn window_for(study: &Study, v: &Volume) -> WindowLevel {
    if v.meta.modality.eq_ignore_ascii_case("CT") {
        study.window.ct
    } else {
        study.window.mr.unwrap_or_else(|| {
            let (lo, hi) = v.robust_range(1.0, 99.5);
            WindowLevel {
                width: (hi - lo).max(1.0),
                center: 0.5 * (lo + hi),
            }
        })
    }
}

/// A view fitted to `v`, axial, on slice `z`.
fn view_on(v: &Volume, z: usize) -> ViewState {
    let mut view = ViewState::fit(&v.geometry, Orientation::Axial);
    let [nx, ny, _] = v.geometry.dims;
    view.crosshair = v
        .geometry
        .world_from_voxel([nx as f64 / 2.0, ny as f64 / 2.0, z as f64]);
    view
}

impl SynthScopeApp {
    /// The reading view (the whole window while a study is open).
    pub(super) fn reading_ui(&mut self, ui: &mut egui::Ui, ctx: &egui::Context) {
        let has_gpu = self.has_gpu_renderer;
        let Some(r) = &mut self.reading else {
            return;
        };
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
                // Scripted keys go through the same session calls as typed ones.
                if let Some((keys, every, last)) = &mut r.script {
                    if last.elapsed() >= *every {
                        *last = Instant::now();
                        match keys.pop_front() {
                            Some(k) => {
                                if let Err(e) = session.key(k) {
                                    r.error = Some(e);
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

/// Keys of the reading view pressed this frame (none while typing in the comment box).
fn study_keys(ctx: &egui::Context, pair: bool) -> Vec<StudyKey> {
    if ctx.egui_wants_keyboard_input() {
        return Vec::new();
    }
    use egui::Key;
    ctx.input(|i| {
        let mut k = Vec::new();
        let map = [
            (Key::Num1, StudyKey::Digit(1)),
            (Key::Num2, StudyKey::Digit(2)),
            (Key::Num3, StudyKey::Digit(3)),
            (Key::Num4, StudyKey::Digit(4)),
            (Key::Num5, StudyKey::Digit(5)),
            (Key::Backspace, StudyKey::Backspace),
            (Key::Enter, StudyKey::Next),
            (Key::Space, StudyKey::Next),
            (Key::ArrowLeft, StudyKey::Back),
        ];
        let verdicts = if pair {
            [(Key::A, StudyKey::A), (Key::B, StudyKey::B)]
        } else {
            [(Key::R, StudyKey::Real), (Key::S, StudyKey::Synthetic)]
        };
        for (key, sk) in verdicts.into_iter().chain(map) {
            if i.key_pressed(key) {
                k.push(sk);
            }
        }
        k
    })
}

#[allow(clippy::too_many_arguments)]
fn reading_session_ui(
    ui: &mut egui::Ui,
    ctx: &egui::Context,
    session: &mut Session,
    cases: &mut CaseCache,
    view: &mut Option<(usize, ViewState, WindowLevel)>,
    error: &mut Option<String>,
    has_gpu: bool,
) {
    let pair = session.study.design == Design::Pair;
    // Keys and the clock first, so the frame shows their effect.
    let mut saved = false;
    for k in study_keys(ctx, pair) {
        match session.key(k) {
            Ok(s) => saved |= s,
            Err(e) => *error = Some(e),
        }
    }
    match session.tick() {
        Ok(s) => saved |= s,
        Err(e) => *error = Some(e),
    }
    if saved {
        *error = None;
    }
    if session.study.time_limit_s.is_some() && !session.done() {
        ctx.request_repaint_after(Duration::from_millis(100));
    }
    let total = session.trials.len();
    if session.done() {
        egui::CentralPanel::default().show(ui, |ui| {
            ui.vertical_centered(|ui| {
                ui.add_space(ui.available_height() * 0.35);
                ui.heading("All images answered. Thank you.");
                ui.label(format!("{total} answers are saved."));
                if session.study.allow_back && ui.button("Review the last image").clicked() {
                    session.back();
                }
                if ui.button("Close").clicked() {
                    ctx.send_viewport_cmd(egui::ViewportCommand::Close);
                }
            });
        });
        return;
    }
    let Some(trial) = session.current().cloned() else {
        return;
    };
    cases.keep(&wanted_cases(session));
    let needed: Vec<usize> = std::iter::once(trial.case).chain(trial.partner).collect();
    let problem = needed.iter().find_map(|i| cases.error(*i).cloned());
    let ready: Option<Vec<Arc<Volume>>> = needed.iter().map(|i| cases.get(*i).cloned()).collect();
    // The view belongs to the trial; a new trial starts fitted on its slice.
    if let Some(vols) = &ready
        && view.as_ref().is_none_or(|(p, _, _)| *p != session.pos)
    {
        let v = &vols[0];
        *view = Some((
            session.pos,
            view_on(v, trial.slice),
            window_for(&session.study, v),
        ));
    }

    egui::Panel::top("study-top").show(ui, |ui| {
        ui.horizontal(|ui| {
            ui.strong(format!("Image {} of {total}", session.pos + 1));
            ui.separator();
            ui.label(format!("{} answered", session.answers.len()));
            if let Some(rem) = session.remaining() {
                ui.separator();
                let c = if rem < 5.0 {
                    egui::Color32::LIGHT_RED
                } else {
                    ui.visuals().text_color()
                };
                ui.colored_label(c, format!("{rem:.0} s left"));
            }
            ui.with_layout(egui::Layout::right_to_left(egui::Align::Center), |ui| {
                ui.label(format!("Reader {}", session.reader));
            });
        });
        ui.add(
            egui::ProgressBar::new(session.pos as f32 / total.max(1) as f32).desired_height(4.0),
        );
    });

    egui::Panel::bottom("study-questions").show(ui, |ui| {
        ui.add_space(6.0);
        ui.horizontal(|ui| {
            let d = &mut session.draft.verdict;
            if pair {
                ui.label("Which image is real?");
                for (v, label) in [("A", "A (left) is real  [A]"), ("B", "B (right) is real  [B]")] {
                    if ui.selectable_label(d.as_deref() == Some(v), label).clicked() {
                        *d = Some(v.into());
                    }
                }
            } else {
                ui.label("Is this image real or synthetic?");
                for (v, label) in [("real", "Real  [R]"), ("synthetic", "Synthetic  [S]")] {
                    if ui.selectable_label(d.as_deref() == Some(v), label).clicked() {
                        *d = Some(v.into());
                    }
                }
            }
        });
        let names = session.rating_names();
        let ratings = session.ratings();
        let next_empty = ratings.iter().position(Option::is_none);
        egui::Grid::new("study-ratings").show(ui, |ui| {
            for (i, (n, r)) in names.iter().zip(ratings).enumerate() {
                let title = match n.as_str() {
                    "confidence" => "Confidence (1 guess … 5 certain)".to_string(),
                    q => format!("{} (1 … 5)", capitalise(q)),
                };
                if next_empty == Some(i) {
                    ui.strong(format!("> {title}"));
                } else {
                    ui.label(title);
                }
                ui.horizontal(|ui| {
                    for v in 1..=5u8 {
                        if ui.selectable_label(r == Some(v), v.to_string()).clicked() {
                            session.set_rating(i, Some(v));
                        }
                    }
                });
                ui.end_row();
            }
        });
        if session.study.questions.free_text {
            let l = ui.label("Comment (optional)");
            ui.add(egui::TextEdit::singleline(&mut session.draft.text).desired_width(480.0))
                .labelled_by(l.id);
        }
        ui.horizontal(|ui| {
            if session.study.allow_back && ui.add_enabled(session.pos > 0, egui::Button::new("Back  [Left]")).clicked() {
                session.back();
            }
            let missing = session.missing();
            let next = ui.add_enabled(missing.is_empty(), egui::Button::new("Next  [Enter]"));
            if next.clicked() {
                match session.advance() {
                    Ok(_) => *error = None,
                    Err(e) => *error = Some(e),
                }
            }
            if !missing.is_empty() {
                ui.weak(format!("still to answer: {}", missing.join(", ")));
            }
        });
        ui.weak("Keys: R / S (or A / B), 1–5 for the marked rating, Backspace to clear it, Enter for next. Scroll: wheel or Up/Down. Window: ctrl+drag. Zoom: right-drag.");
        if let Some(e) = error {
            ui.colored_label(egui::Color32::LIGHT_RED, format!("Not saved: {e}"));
        }
        ui.add_space(4.0);
    });

    let (Some(vols), Some((_, vs, window))) = (ready, view.as_mut()) else {
        egui::CentralPanel::default().show(ui, |ui| {
            ui.centered_and_justified(|ui| match &problem {
                Some(e) => {
                    // The reader sees no file names; the organiser finds the cause on stderr.
                    log::error!("reader study: {e}");
                    ui.colored_label(
                        egui::Color32::LIGHT_RED,
                        "This image cannot be shown (its file could not be read). Please tell the study organiser; the answers so far are saved.",
                    );
                }
                None => {
                    ui.spinner();
                }
            });
        });
        return;
    };
    egui::CentralPanel::no_frame().show(ui, |ui| {
        let mut panes: Vec<(String, Arc<Volume>)> = Vec::new();
        match trial.partner {
            Some(p) => {
                let _ = p;
                let (real, synth) = (vols[1].clone(), vols[0].clone());
                let (left, right) = if trial.real_on_left {
                    (real, synth)
                } else {
                    (synth, real)
                };
                panes.push(("Image A".into(), left));
                panes.push(("Image B".into(), right));
            }
            None => panes.push((String::new(), vols[0].clone())),
        }
        let avail = ui.available_rect_before_wrap();
        let gap = 4.0;
        let n = panes.len() as f32;
        let w = ((avail.width() - gap * (n - 1.0)) / n).max(10.0);
        let mut scroll = 0;
        let (up, down) = ctx.input(|i| {
            (
                i.key_pressed(egui::Key::ArrowUp),
                i.key_pressed(egui::Key::ArrowDown),
            )
        });
        if !ctx.egui_wants_keyboard_input() {
            scroll += i32::from(up) - i32::from(down);
        }
        for (k, (title, vol)) in panes.into_iter().enumerate() {
            let rect = egui::Rect::from_min_size(
                egui::pos2(avail.min.x + k as f32 * (w + gap), avail.min.y),
                egui::vec2(w, avail.height()),
            );
            let mut child = ui.new_child(
                egui::UiBuilder::new()
                    .max_rect(rect)
                    .id_salt(("study-pane", k)),
            );
            let layer = PaneLayer {
                volume: vol,
                window: *window,
                colormap: crate::volume::Colormap::Grey,
                packed: None,
                transform: None,
            };
            let ev = pane_ui(
                &mut child,
                100 + k as u64,
                &title,
                vs,
                [Some(layer), None],
                super::render::Combine::Single,
                false,
                has_gpu,
                None,
                false,
            );
            scroll += ev.scroll;
            if let Some((dw, dc)) = ev.window_drag {
                window.width = (window.width + dw * window.width.max(1.0) * 0.005).max(1.0);
                window.center += dc * window.width.max(1.0) * 0.005;
            }
        }
        if scroll != 0 {
            vs.scroll(&vols[0].geometry, scroll);
        }
    });
}

fn capitalise(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().collect::<String>() + c.as_str(),
        None => String::new(),
    }
}
