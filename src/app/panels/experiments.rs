//! The Experiments view: pick an experiment file (`experiments/*.toml`), run its grid of
//! training runs on a worker (progress, time left, Cancel; a rerun resumes), see the table of
//! held-out metrics (mean ± sd over folds per arm) and the pairwise p-values, and open the
//! self-contained HTML report.
//!
//! Shaped as the study session is: [`ExperimentsState`] holds everything, [`ExperimentsState::apply`]
//! does what an [`ExperimentsEvent`] asks, and `ui` only draws and collects events.

use crate::app::jobs::{Job, Wake, Worker, repaint};
use crate::experiment::report::{Summary, summarise};
use crate::experiment::{
    ExperimentConfig, ExperimentEvent, ExperimentProgress, METRICS, REGIONS, finished_folds,
    run_experiment_with,
};
use crate::train::Control;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// What the user asked of the view.
#[derive(Clone, Debug, PartialEq)]
pub enum ExperimentsEvent {
    /// Read the experiment file named in the path field.
    Read,
    /// Pick the file with the native dialog.
    Browse,
    /// Run (or resume) the experiment.
    Start,
    /// Stop it after the current step (a later Start resumes).
    Cancel,
    /// Open the report in the system browser.
    OpenReport,
}

/// A running experiment.
struct ExperimentJob {
    job: Job<Result<PathBuf, String>, ExperimentEvent>,
    control: Arc<Control>,
}

/// The Experiments view's state.
#[derive(Default)]
pub struct ExperimentsState {
    /// The tab is open.
    pub show: bool,
    /// The experiment file, as typed or picked.
    pub config_path: String,
    /// The experiment read from it.
    pub config: Option<ExperimentConfig>,
    /// Where it writes (default: `out/NAME` beside the file).
    pub out_dir: Option<PathBuf>,
    /// Folds already finished there.
    pub finished: usize,
    /// The log of the current (or last) run.
    pub log: Vec<String>,
    /// Where the running grid stands.
    pub progress: Option<ExperimentProgress>,
    /// The tables and tests of the finished grid.
    pub summary: Option<Summary>,
    /// Its report.
    pub report: Option<PathBuf>,
    /// What went wrong, or what happened (a stop).
    pub message: Option<String>,
    /// Region of the table shown.
    pub region: usize,
    /// Metric whose pairwise tests are shown.
    pub metric: usize,
    job: Option<ExperimentJob>,
    dialog: Option<Job<Option<PathBuf>>>,
}

impl ExperimentsState {
    /// Whether an experiment is running.
    pub fn is_running(&self) -> bool {
        self.job.is_some()
    }

    /// Block until the running experiment has finished (tests); false on timeout.
    pub fn wait(&self, timeout: Duration) -> bool {
        self.job
            .as_ref()
            .is_none_or(|j| j.job.wait_finished(timeout))
    }

    /// Name the experiment file (as the path field and the dialog do) and read it.
    pub fn set_config_path(&mut self, path: &Path) {
        self.config_path = path.display().to_string();
        self.read_config();
    }

    /// Read the file in the path field; when its output folder holds the finished grid, its
    /// results are shown.
    fn read_config(&mut self) {
        self.config = None;
        self.out_dir = None;
        self.summary = None;
        self.report = None;
        self.message = None;
        self.finished = 0;
        if self.job.is_none() {
            self.log.clear();
            self.progress = None;
        }
        let path = PathBuf::from(self.config_path.trim());
        match ExperimentConfig::read(&path) {
            Ok(cfg) => {
                let out = default_out(&path, &cfg);
                self.finished = finished_folds(&cfg, &out);
                if self.finished == cfg.grid().len() && out.join("report.html").exists() {
                    match summarise(&cfg, &out) {
                        Ok((s, _)) => {
                            self.summary = Some(s);
                            self.report = Some(out.join("report.html"));
                        }
                        Err(e) => self.message = Some(e.to_string()),
                    }
                }
                self.out_dir = Some(out);
                self.config = Some(cfg);
            }
            Err(e) => self.message = Some(e.to_string()),
        }
    }

    /// Do what `event` asks; `wake` repaints the window when a worker has news.
    pub fn apply(&mut self, event: ExperimentsEvent, wake: Wake) {
        match event {
            ExperimentsEvent::Read => self.read_config(),
            ExperimentsEvent::Browse => {
                if self.dialog.is_none() {
                    let job = Job::spawn("experiment-dialog", (), wake, |(), _: &Worker<()>| {
                        rfd::FileDialog::new()
                            .add_filter("Experiment", &["toml"])
                            .pick_file()
                    });
                    match job {
                        Ok(j) => self.dialog = Some(j),
                        Err(e) => self.message = Some(format!("File dialog: {}", e.error)),
                    }
                }
            }
            ExperimentsEvent::Start => self.start(wake),
            ExperimentsEvent::Cancel => {
                if let Some(j) = &self.job {
                    j.control.stop();
                    self.log
                        .push("stopping after the current step (Run again resumes)…".into());
                }
            }
            ExperimentsEvent::OpenReport => {
                if let Some(r) = &self.report {
                    // The system browser, detached; the path is shown beside the button too.
                    if let Err(e) = std::process::Command::new("xdg-open").arg(r).spawn() {
                        self.message = Some(format!(
                            "Cannot start xdg-open ({e}); open {} in a browser",
                            r.display()
                        ));
                    }
                }
            }
        }
    }

    /// Start (or resume) the experiment read from the path field on a worker.
    fn start(&mut self, wake: Wake) {
        if self.job.is_some() {
            return;
        }
        let (Some(cfg), Some(out)) = (self.config.clone(), self.out_dir.clone()) else {
            self.message = Some("Choose an experiment file first".into());
            return;
        };
        self.log.clear();
        self.summary = None;
        self.report = None;
        self.message = None;
        self.progress = None;
        let control = Arc::new(Control::default());
        let c = control.clone();
        let started = Job::spawn("experiment", (), wake, move |(), w| {
            let device = crate::gpu::compute_device().map_err(|e| e.to_string())?;
            run_experiment_with(&cfg, &out, &device, &c, &mut |e| w.emit(e))
                .map_err(|e| e.to_string())
        });
        match started {
            Ok(job) => self.job = Some(ExperimentJob { job, control }),
            Err(e) => self.message = Some(format!("Experiment: {}", e.error)),
        }
    }

    /// Take the workers' news: log lines, progress, the result.
    pub fn poll(&mut self) {
        if let Some(d) = &self.dialog
            && let Some(r) = d.take(None)
        {
            self.dialog = None;
            if let Ok(Some(p)) = r {
                self.set_config_path(&p);
            }
        }
        let Some(j) = &self.job else { return };
        for e in j.job.events() {
            match e {
                ExperimentEvent::Line(l) => self.log.push(l),
                ExperimentEvent::Progress(p) => self.progress = Some(p),
            }
        }
        let Some(result) = j.job.take(None) else {
            return;
        };
        self.job = None;
        if let (Some(cfg), Some(out)) = (&self.config, &self.out_dir) {
            self.finished = finished_folds(cfg, out);
        }
        match result {
            Ok(Ok(report)) => {
                self.progress = None;
                if let (Some(cfg), Some(out)) = (&self.config, &self.out_dir) {
                    match summarise(cfg, out) {
                        Ok((s, _)) => self.summary = Some(s),
                        Err(e) => self.message = Some(e.to_string()),
                    }
                }
                self.log.push(format!("report: {}", report.display()));
                self.report = Some(report);
            }
            Ok(Err(e)) => self.message = Some(e),
            Err(e) => self.message = Some(format!("Experiment: {e}")),
        }
    }

    /// The view: the file, the grid, Run / Cancel with progress, the log, the tables.
    pub fn ui(&mut self, ui: &mut egui::Ui) {
        self.poll();
        let mut events = Vec::new();
        ui.horizontal(|ui| {
            let l = ui.label("Experiment file");
            let r = ui
                .add(
                    egui::TextEdit::singleline(&mut self.config_path)
                        .hint_text("experiments/losses.toml")
                        .desired_width(180.0),
                )
                .labelled_by(l.id);
            if r.lost_focus() && ui.input(|i| i.key_pressed(egui::Key::Enter)) {
                events.push(ExperimentsEvent::Read);
            }
            if ui.button("Read").clicked() {
                events.push(ExperimentsEvent::Read);
            }
            if ui
                .add_enabled(self.dialog.is_none(), egui::Button::new("Browse…"))
                .clicked()
            {
                events.push(ExperimentsEvent::Browse);
            }
        });
        if let (Some(cfg), Some(out)) = (&self.config, &self.out_dir) {
            let grid = cfg.grid().len();
            wrapped(
                ui,
                format!(
                    "{}: {} arms ({}) x {} seeds x {} folds = {grid} training runs on {} varied phantom patients, {} epochs each",
                    cfg.name,
                    cfg.arms().len(),
                    cfg.arms()
                        .iter()
                        .map(|a| a.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", "),
                    cfg.seeds.len(),
                    cfg.folds,
                    cfg.patients,
                    cfg.epochs
                ),
            );
            wrapped(
                ui,
                format!(
                    "Output: {} ({} of {grid} folds finished there{})",
                    out.display(),
                    self.finished,
                    if self.finished > 0 && self.finished < grid {
                        "; Run continues with the rest"
                    } else {
                        ""
                    }
                ),
            );
        }
        ui.horizontal(|ui| {
            if self.job.is_some() {
                ui.spinner();
                let stopping = self.job.as_ref().is_some_and(|j| j.control.is_stopped());
                if stopping {
                    ui.label("stopping after the current step…");
                } else if ui.button("Cancel").clicked() {
                    events.push(ExperimentsEvent::Cancel);
                }
            } else {
                let label = if self.finished > 0 && self.summary.is_none() {
                    "Resume"
                } else {
                    "Run"
                };
                if ui
                    .add_enabled(self.config.is_some(), egui::Button::new(label))
                    .on_hover_text("Train every fold of every arm, evaluate, write the report")
                    .clicked()
                {
                    events.push(ExperimentsEvent::Start);
                }
            }
            if self.report.is_some()
                && ui
                    .button("Open report")
                    .on_hover_text("In the system browser (xdg-open)")
                    .clicked()
            {
                events.push(ExperimentsEvent::OpenReport);
            }
        });
        if let Some(r) = &self.report {
            wrapped(ui, format!("Report: {}", r.display()));
        }
        if let Some(p) = &self.progress {
            let eta = p
                .eta_s
                .map(|s| format!(", about {} left", human_time(s)))
                .unwrap_or_default();
            ui.add(egui::ProgressBar::new(p.fraction as f32).text(format!(
                "fold {}/{}: {}{eta}",
                (p.fold + 1).min(p.total),
                p.total,
                p.label
            )));
        }
        if let Some(m) = &self.message {
            ui.colored_label(ui.visuals().warn_fg_color, m);
        }
        if !self.log.is_empty() {
            egui::CollapsingHeader::new(format!("Log ({} lines)", self.log.len()))
                .id_salt("experiment-log")
                .default_open(self.job.is_some())
                .show(ui, |ui| {
                    egui::ScrollArea::vertical()
                        .max_height(160.0)
                        .stick_to_bottom(true)
                        .show(ui, |ui| {
                            for l in &self.log {
                                ui.monospace(l);
                            }
                        });
                });
        }
        if let Some(s) = &self.summary {
            results_ui(ui, s, &mut self.region, &mut self.metric);
        }
        if !events.is_empty() {
            let wake = repaint(ui.ctx());
            for e in events {
                self.apply(e, wake.clone());
            }
        }
        if self.job.is_some() {
            // The worker wakes the window on news; this keeps the spinner turning between.
            ui.ctx().request_repaint_after(Duration::from_millis(250));
        }
    }
}

/// The output folder of `cfg` read from `file`: `out/NAME` beside the file.
pub fn default_out(file: &Path, cfg: &ExperimentConfig) -> PathBuf {
    file.parent()
        .unwrap_or(Path::new("."))
        .join("out")
        .join(&cfg.name)
}

/// A label that wraps at the panel's width (inside the dock's two-way scroll area too).
fn wrapped(ui: &mut egui::Ui, text: String) {
    let w = ui.available_width().min(ui.clip_rect().width()).max(200.0);
    ui.allocate_ui(egui::vec2(w, 0.0), |ui| {
        ui.add(egui::Label::new(text).wrap());
    });
}

fn human_time(s: f64) -> String {
    if s < 90.0 {
        format!("{s:.0} s")
    } else {
        format!("{:.0} min", s / 60.0)
    }
}

/// A value as the report prints it.
fn num(v: f64) -> String {
    if !v.is_finite() {
        "NaN".into()
    } else if v.abs() >= 100.0 {
        format!("{v:.1}")
    } else if v.abs() >= 1.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.4}")
    }
}

/// The table (mean ± sd per arm and metric, in one region) and the pairwise tests of one metric.
fn results_ui(ui: &mut egui::Ui, s: &Summary, region: &mut usize, metric: &mut usize) {
    ui.separator();
    ui.horizontal(|ui| {
        ui.strong("Held-out metrics, mean ± sd over folds:");
        for (i, r) in REGIONS.iter().enumerate() {
            ui.selectable_value(region, i, *r);
        }
    });
    let r = REGIONS[(*region).min(REGIONS.len() - 1)];
    egui::Grid::new("experiment-table")
        .striped(true)
        .num_columns(METRICS.len() + 1)
        .show(ui, |ui| {
            ui.strong("arm");
            for m in METRICS {
                ui.strong(metric_label(m));
            }
            ui.end_row();
            for a in &s.arms {
                ui.label(a);
                for m in METRICS {
                    match s.stat(a, r, m) {
                        Some(st) => ui.label(format!("{} ± {}", num(st.mean), num(st.sd))),
                        None => ui.label("–"),
                    };
                }
                ui.end_row();
            }
        });
    ui.add_space(6.0);
    ui.horizontal(|ui| {
        ui.strong("Pairwise tests of");
        for (i, m) in METRICS.iter().enumerate() {
            ui.selectable_value(metric, i, metric_label(m));
        }
    });
    let m = METRICS[(*metric).min(METRICS.len() - 1)];
    egui::Grid::new("experiment-tests")
        .striped(true)
        .num_columns(5)
        .show(ui, |ui| {
            for h in ["A", "B", "Welch t", "p (Welch)", "p (Wilcoxon)"] {
                ui.strong(h);
            }
            ui.end_row();
            for c in s
                .comparisons
                .iter()
                .filter(|c| c.region == r && c.metric == m)
            {
                ui.label(&c.a);
                ui.label(&c.b);
                ui.label(num(c.welch.statistic));
                for p in [c.welch.p, c.wilcoxon.p] {
                    let t = egui::RichText::new(num(p));
                    if p < 0.05 {
                        ui.label(t.strong().color(ui.visuals().warn_fg_color));
                    } else {
                        ui.label(t);
                    }
                }
                ui.end_row();
            }
        });
    ui.small(
        "p < 0.05 highlighted; positive t: A is higher. Every table and test is in the report.",
    );
}

fn metric_label(m: &str) -> &'static str {
    match m {
        "psnr" => "PSNR dB",
        "ssim" => "SSIM",
        "mae" => "MAE HU",
        "rmse" => "RMSE HU",
        "tenengrad" => "Tenengrad",
        "uqi" => "UQI",
        _ => "?",
    }
}
