//! Reader studies in the viewer: the Study setup dialog (edit a study file), starting a
//! reading session, and the Results view (accuracy with 95% intervals, Likert means,
//! agreement, a chart, CSV export).

use crate::app::command::Command;
use crate::app::panels::dialogs::Dialog;
use crate::app::panels::study_reading::{ReadingState, StudyOptions};
use crate::study::stats::Summary;
use crate::study::{Design, ReaderLog, Study, StudyCase, Truth};
use crate::volume::WindowLevel;
use std::path::{Path, PathBuf};

mod roc;

/// Reader logs, their Likert questions and their summary.
pub type Results = (Vec<ReaderLog>, Vec<String>, Result<Summary, String>);

/// Study windows' state.
pub struct StudyTools {
    /// Show the setup dialog.
    pub show_setup: bool,
    /// Show the results view.
    pub show_results: bool,
    /// The study being edited.
    pub draft: Study,
    /// Its file (None: not saved yet).
    pub path: Option<PathBuf>,
    /// Reader ID for "Read this study".
    pub reader: String,
    /// Results: the logs, their Likert questions, the summary.
    pub results: Option<Results>,
    /// Rating/2AFC results of the same logs: ROC curves, MRMC analysis.
    pub rating: Option<crate::study::rating_summary::RatingSummary>,
    /// Truth given to the next added case.
    pub add_truth: Truth,
    /// Source given to the next added case.
    pub add_source: String,
    /// Last problem saving or loading.
    pub message: Option<(bool, String)>,
}

impl Default for StudyTools {
    fn default() -> Self {
        Self {
            show_setup: false,
            show_results: false,
            draft: Study {
                version: crate::study::STUDY_VERSION,
                name: "my-study".into(),
                design: Design::Single,
                allow_back: false,
                time_limit_s: None,
                slices_per_case: 3,
                seed: 1,
                window: Default::default(),
                questions: Default::default(),
                rating: Default::default(),
                view: None,
                test_pattern: false,
                cases: Vec::new(),
            },
            path: None,
            reader: String::new(),
            results: None,
            rating: None,
            add_truth: Truth::Real,
            add_source: "scanner".into(),
            message: None,
        }
    }
}

impl StudyTools {
    /// Open a study file in the setup dialog.
    pub fn open(&mut self, path: &Path) -> Result<(), String> {
        let s = Study::read(path).map_err(|e| format!("Study: {e}"))?;
        self.draft = s;
        self.path = Some(path.to_path_buf());
        self.show_setup = true;
        self.message = None;
        Ok(())
    }

    /// Save the edited study to `path` (paths of cases made relative to it when inside its
    /// folder).
    pub fn save(&mut self, path: &Path) {
        let mut s = self.draft.clone();
        if let Some(dir) = path.parent() {
            for c in &mut s.cases {
                if let Ok(rel) = c.path.strip_prefix(dir) {
                    c.path = rel.to_path_buf();
                }
            }
        }
        match s.write(path) {
            Ok(()) => {
                self.draft = s;
                self.path = Some(path.to_path_buf());
                self.message = Some((false, format!("Saved {}", path.display())));
            }
            Err(e) => self.message = Some((true, e.into())),
        }
    }

    /// Add a case file to the edited study.
    pub fn add_case(&mut self, path: &Path) {
        let t = self;
        let stem = path
            .file_name()
            .map(|s| s.to_string_lossy().to_string())
            .unwrap_or_default();
        let stem = stem
            .trim_end_matches(".gz")
            .trim_end_matches(".nii")
            .to_string();
        let mut id = stem.clone();
        let mut k = 2;
        while t.draft.cases.iter().any(|c| c.id == id) {
            id = format!("{stem}-{k}");
            k += 1;
        }
        t.draft.cases.push(StudyCase {
            id,
            path: path.to_path_buf(),
            truth: t.add_truth,
            source: t.add_source.clone(),
            slices: Vec::new(),
            pair: None,
            modality: None,
            subject: None,
            abnormal: None,
        });
    }

    /// Read reader logs (files, or a folder of them; a study file means its answers folder)
    /// into the results view; what went wrong, or the logs' warnings.
    pub fn open_results(&mut self, path: &Path) -> Vec<String> {
        let p = if path.is_file() && path.extension().is_some_and(|e| e == "toml" || e == "json") {
            path.with_file_name(format!(
                "{}.answers",
                path.file_stem().unwrap_or_default().to_string_lossy()
            ))
        } else {
            path.to_path_buf()
        };
        match crate::study::read_logs(&[p]) {
            Ok(crate::study::LogSet {
                logs,
                questions,
                warnings,
            }) => {
                let s = crate::study::stats::summarise(&logs).map_err(String::from);
                self.rating = crate::study::rating_summary::summarise_ratings(
                    &logs,
                    crate::study::mrmc::CovMethod::Jackknife,
                );
                self.results = Some((logs, questions, s));
                self.show_results = true;
                warnings
                    .into_iter()
                    .map(|w| format!("Study results: {w}"))
                    .collect()
            }
            Err(e) => vec![format!("Study results: {e:#}")],
        }
    }

    /// Write the open results as CSV.
    pub fn export_csv(&self, path: &Path) -> Result<(), String> {
        match &self.results {
            Some((logs, q, _)) => crate::atomic::write(path, crate::study::answers_csv(logs, q))
                .map_err(|e| e.to_string()),
            None => Ok(()),
        }
    }

    /// The reading view of the edited study (saved first), unless it cannot be saved.
    pub(crate) fn reading(&mut self, ctx: &egui::Context) -> Option<ReadingState> {
        let Some(path) = self.path.clone() else {
            self.message = Some((true, "Save the study first.".into()));
            return None;
        };
        self.save(&path);
        if matches!(self.message, Some((true, _))) {
            return None;
        }
        let reader = self.reader.trim().to_string();
        Some(ReadingState::new(
            StudyOptions {
                file: path,
                reader: (!reader.is_empty()).then_some(reader),
                fullscreen: true,
                script: None,
            },
            ctx,
        ))
    }

    /// The Study setup window.
    pub(crate) fn setup_ui(&mut self, host: &mut egui::Ui, commands: &mut Vec<Command>) {
        let open = self.show_setup;
        if !open {
            return;
        }
        let mut dialog = None;
        let mut save_to: Option<PathBuf> = None;
        let mut results_of: Option<PathBuf> = None;
        let mut read = false;
        super::body(host, |ui| {
            let t = &mut *self;
            ui.horizontal(|ui| {
                if ui.button("Open study…").clicked() {
                    dialog = Some(Dialog::OpenStudy);
                }
                if ui.button("Save as…").clicked() {
                    dialog = Some(Dialog::SaveStudy);
                }
                match &t.path {
                    Some(p) => ui.weak(p.display().to_string()),
                    None => ui.weak("not saved yet"),
                };
            });
            egui::Grid::new("study-settings").num_columns(2).show(ui, |ui| {
                    let l = ui.label("Name");
                    ui.text_edit_singleline(&mut t.draft.name).labelled_by(l.id);
                    ui.end_row();
                    ui.label("Design");
                    ui.horizontal(|ui| {
                        ui.radio_value(&mut t.draft.design, Design::Single, "one image: real or synthetic?");
                        ui.radio_value(&mut t.draft.design, Design::Pair, "A/B pair: which is real?");
                        ui.radio_value(&mut t.draft.design, Design::Rating, "lesion rating (ROC, MRMC)");
                        ui.radio_value(&mut t.draft.design, Design::TwoAfc, "2AFC: which shows the lesion?");
                    });
                    ui.end_row();
                    if t.draft.design.is_detection() {
                        let rt = &mut t.draft.rating;
                        let l = ui.label("Question");
                        ui.text_edit_singleline(&mut rt.question).labelled_by(l.id);
                        ui.end_row();
                        ui.label("Scale and order");
                        ui.horizontal(|ui| {
                            ui.radio_value(&mut rt.scale, crate::study::Scale::Five, "1-5");
                            ui.radio_value(&mut rt.scale, crate::study::Scale::Six, "1-6");
                            ui.radio_value(&mut rt.scale, crate::study::Scale::Slider, "0-100");
                            ui.separator();
                            ui.radio_value(&mut rt.order, crate::study::ReadingOrder::Blocks, "blocks per modality");
                            ui.radio_value(&mut rt.order, crate::study::ReadingOrder::Interleaved, "interleaved, washout");
                            ui.add(egui::DragValue::new(&mut rt.washout).range(0..=100)).on_hover_text("Interleaved: at least this many other images between two readings of one subject");
                        });
                        ui.end_row();
                    }
                    ui.label("Display check");
                    ui.checkbox(&mut t.draft.test_pattern, "grey-scale test pattern before reading");
                    ui.end_row();
                    let l = ui.label("Slices per case");
                    ui.add(egui::DragValue::new(&mut t.draft.slices_per_case).range(1..=50))
                        .labelled_by(l.id)
                        .on_hover_text("Sampled inside the head with the seed below, the same for every reader; a case's fixed slices override it");
                    ui.end_row();
                    let l = ui.label("Sampling seed");
                    ui.add(egui::DragValue::new(&mut t.draft.seed)).labelled_by(l.id);
                    ui.end_row();
                    ui.label("Readers may go back");
                    ui.checkbox(&mut t.draft.allow_back, "allowed");
                    ui.end_row();
                    ui.label("Time limit per image");
                    ui.horizontal(|ui| {
                        let mut on = t.draft.time_limit_s.is_some();
                        ui.checkbox(&mut on, "limited");
                        if on {
                            let mut s = t.draft.time_limit_s.unwrap_or(30.0);
                            let l = ui.label("seconds");
                            ui.add(egui::DragValue::new(&mut s).range(1.0..=3600.0)).labelled_by(l.id);
                            t.draft.time_limit_s = Some(s);
                        } else {
                            t.draft.time_limit_s = None;
                        }
                    });
                    ui.end_row();
                    ui.label("CT window (W / L)");
                    ui.horizontal(|ui| {
                        let l = ui.label("W");
                        ui.add(egui::DragValue::new(&mut t.draft.window.ct.width).range(1.0..=5000.0)).labelled_by(l.id);
                        let l = ui.label("L");
                        ui.add(egui::DragValue::new(&mut t.draft.window.ct.center).range(-1500.0..=3000.0)).labelled_by(l.id);
                    });
                    ui.end_row();
                    ui.label("MR window");
                    ui.horizontal(|ui| {
                        let mut fixed = t.draft.window.mr.is_some();
                        ui.checkbox(&mut fixed, "fixed (else each image's 1–99.5% range)");
                        if fixed {
                            let w = t.draft.window.mr.get_or_insert(WindowLevel { width: 800.0, center: 400.0 });
                            let l = ui.label("W");
                            ui.add(egui::DragValue::new(&mut w.width).range(1.0..=100000.0)).labelled_by(l.id);
                            let l = ui.label("L");
                            ui.add(egui::DragValue::new(&mut w.center)).labelled_by(l.id);
                        } else {
                            t.draft.window.mr = None;
                        }
                    });
                    ui.end_row();
                    ui.label("Questions");
                    ui.vertical(|ui| {
                        ui.label("Real or synthetic (always)");
                        ui.checkbox(&mut t.draft.questions.confidence, "Confidence 1–5");
                        ui.checkbox(&mut t.draft.questions.free_text, "Free-text comment");
                        let mut remove = None;
                        for (i, q) in t.draft.questions.likert.iter_mut().enumerate() {
                            ui.horizontal(|ui| {
                                let l = ui.label(format!("Likert {}", i + 1));
                                ui.text_edit_singleline(q).labelled_by(l.id);
                                if ui.small_button("remove").clicked() {
                                    remove = Some(i);
                                }
                            });
                        }
                        if let Some(i) = remove {
                            t.draft.questions.likert.remove(i);
                        }
                        if ui.small_button("add a Likert question").clicked() {
                            t.draft.questions.likert.push("new question".into());
                        }
                    });
                    ui.end_row();
                });
            ui.separator();
            ui.strong(format!(
                "Cases ({}) — hidden from readers",
                t.draft.cases.len()
            ));
            let ids: Vec<String> = t
                .draft
                .cases
                .iter()
                .filter(|c| c.truth == Truth::Real)
                .map(|c| c.id.clone())
                .collect();
            let mut remove = None;
            egui::ScrollArea::vertical()
                .max_height(220.0)
                .show(ui, |ui| {
                    let detection = t.draft.design.is_detection();
                    egui::Grid::new("study-cases").striped(true).show(ui, |ui| {
                        let hdr: Vec<egui::Id> = [
                            "id",
                            "truth",
                            "source",
                            "fixed slices",
                            if detection {
                                "modality / subject / lesion"
                            } else {
                                "pair (A/B)"
                            },
                            "file",
                            "",
                        ]
                        .iter()
                        .map(|h| ui.strong(*h).id)
                        .collect();
                        ui.end_row();
                        for (i, c) in t.draft.cases.iter_mut().enumerate() {
                            ui.add(egui::TextEdit::singleline(&mut c.id).desired_width(90.0))
                                .labelled_by(hdr[0]);
                            egui::ComboBox::from_id_salt(("truth", i))
                                .selected_text(c.truth.name())
                                .show_ui(ui, |ui| {
                                    ui.selectable_value(&mut c.truth, Truth::Real, "real");
                                    ui.selectable_value(
                                        &mut c.truth,
                                        Truth::Synthetic,
                                        "synthetic",
                                    );
                                })
                                .response
                                .labelled_by(hdr[1]);
                            ui.add(egui::TextEdit::singleline(&mut c.source).desired_width(110.0))
                                .labelled_by(hdr[2]);
                            let mut text = c
                                .slices
                                .iter()
                                .map(|z| z.to_string())
                                .collect::<Vec<_>>()
                                .join(" ");
                            if ui
                                .add(
                                    egui::TextEdit::singleline(&mut text)
                                        .desired_width(70.0)
                                        .hint_text("sampled"),
                                )
                                .labelled_by(hdr[3])
                                .changed()
                            {
                                c.slices = text
                                    .split([' ', ','])
                                    .filter_map(|s| s.trim().parse().ok())
                                    .collect();
                            }
                            if detection {
                                ui.horizontal(|ui| {
                                    let mut m = c.modality.clone().unwrap_or_default();
                                    if ui
                                        .add(
                                            egui::TextEdit::singleline(&mut m)
                                                .desired_width(90.0)
                                                .hint_text("modality"),
                                        )
                                        .labelled_by(hdr[4])
                                        .changed()
                                    {
                                        c.modality = (!m.trim().is_empty()).then_some(m);
                                    }
                                    let mut sj = c.subject.clone().unwrap_or_default();
                                    if ui
                                        .add(
                                            egui::TextEdit::singleline(&mut sj)
                                                .desired_width(60.0)
                                                .hint_text("subject"),
                                        )
                                        .changed()
                                    {
                                        c.subject = (!sj.trim().is_empty()).then_some(sj);
                                    }
                                    let mut ab = c.abnormal.unwrap_or(false);
                                    if ui.checkbox(&mut ab, "lesion").changed()
                                        || c.abnormal.is_none()
                                    {
                                        c.abnormal = Some(ab);
                                    }
                                });
                            } else if c.truth == Truth::Synthetic {
                                egui::ComboBox::from_id_salt(("pair", i))
                                    .selected_text(c.pair.clone().unwrap_or_else(|| "none".into()))
                                    .show_ui(ui, |ui| {
                                        ui.selectable_value(&mut c.pair, None, "none");
                                        for id in &ids {
                                            ui.selectable_value(&mut c.pair, Some(id.clone()), id);
                                        }
                                    })
                                    .response
                                    .labelled_by(hdr[4]);
                            } else {
                                ui.label("");
                            }
                            ui.weak(c.path.display().to_string());
                            if ui.small_button("remove").clicked() {
                                remove = Some(i);
                            }
                            ui.end_row();
                        }
                    });
                });
            if let Some(i) = remove {
                t.draft.cases.remove(i);
            }
            ui.horizontal(|ui| {
                if ui.button("Add case…").clicked() {
                    dialog = Some(Dialog::AddStudyCase);
                }
                ui.label("as");
                ui.radio_value(&mut t.add_truth, Truth::Real, "real");
                ui.radio_value(&mut t.add_truth, Truth::Synthetic, "synthetic");
                let l = ui.label("source");
                ui.add(egui::TextEdit::singleline(&mut t.add_source).desired_width(120.0))
                    .labelled_by(l.id);
            });
            ui.separator();
            match t.draft.validate() {
                Ok(()) => {
                    ui.horizontal(|ui| {
                        if ui.button("Save").clicked() {
                            match t.path.clone() {
                                Some(p) => save_to = Some(p),
                                None => dialog = Some(Dialog::SaveStudy),
                            }
                        }
                        let l = ui.label("Reader ID");
                        ui.add(egui::TextEdit::singleline(&mut t.reader).desired_width(100.0))
                            .labelled_by(l.id);
                        if ui.button("Read this study (full screen)").clicked() {
                            read = true;
                        }
                        if ui.button("Results…").clicked()
                            && let Some(p) = &t.path
                        {
                            results_of = Some(p.clone());
                        }
                    });
                }
                Err(e) => {
                    ui.colored_label(egui::Color32::YELLOW, format!("Not ready: {e}"));
                }
            }
            if let Some((bad, m)) = &t.message {
                let c = if *bad {
                    egui::Color32::LIGHT_RED
                } else {
                    ui.visuals().weak_text_color()
                };
                ui.colored_label(c, m);
            }
        });
        self.show_setup = open;
        if let Some(p) = save_to {
            commands.push(Command::SaveStudy(p));
        }
        if let Some(p) = results_of {
            commands.push(Command::OpenResults(p));
        }
        if let Some(d) = dialog {
            commands.push(Command::Dialog(d));
        }
        if read {
            commands.push(Command::StartReading);
        }
    }

    /// The Study results window.
    pub(crate) fn results_ui(&mut self, host: &mut egui::Ui, commands: &mut Vec<Command>) {
        let open = self.show_results;
        if !open {
            return;
        }
        let mut dialog = None;
        super::body(host, |ui| {
            ui.horizontal(|ui| {
                if ui.button("Open logs…").clicked() {
                    dialog = Some(Dialog::OpenResults);
                }
                if self.results.is_some() && ui.button("Export CSV…").clicked() {
                    dialog = Some(Dialog::SaveStudyCsv);
                }
            });
            let Some((logs, order, summary)) = &self.results else {
                ui.weak("Open a study's answers folder (STUDY.answers) or reader logs (*.jsonl).");
                return;
            };
            ui.weak(format!("{} reader log(s)", logs.len()));
            let s = match summary {
                Ok(s) => s,
                Err(e) => {
                    ui.colored_label(egui::Color32::LIGHT_RED, e);
                    return;
                }
            };
            if let Some(r) = &self.rating {
                roc::rating_results_ui(ui, r);
            }
            if s.accuracy.iter().any(|a| a.n > 0) {
                results_chart(ui, s);
            }
            likert_chart(ui, s, order);
            egui::ScrollArea::both().max_height(260.0).show(ui, |ui| {
                ui.add(egui::Label::new(egui::RichText::new(s.to_text()).monospace()).extend());
            });
        });
        self.show_results = open;
        if let Some(d) = dialog {
            commands.push(Command::Dialog(d));
        }
    }
}

/// A fixed (no drag, no zoom) plot of `height` from 0 to `y_max` whose x axis names the
/// categories `labels` at 0, 1, 2, …
fn category_plot(
    id: &str,
    height: f32,
    y_max: f64,
    y_label: &str,
    labels: Vec<String>,
) -> egui_plot::Plot<'static> {
    egui_plot::Plot::new(id)
        .height(height)
        .include_y(0.0)
        .include_y(y_max)
        .allow_drag(false)
        .allow_zoom(false)
        .y_axis_label(y_label)
        .x_axis_formatter(move |m, _| {
            let i = m.value.round();
            if (m.value - i).abs() < 1e-6 && i >= 0.0 {
                labels.get(i as usize).cloned().unwrap_or_default()
            } else {
                String::new()
            }
        })
}

/// Accuracy per reader and pooled, as bars with their 95% intervals and the 50% chance line.
fn results_chart(ui: &mut egui::Ui, s: &Summary) {
    use egui_plot::{Bar, BarChart, HLine, Line, PlotPoints};
    let names: Vec<String> = s.accuracy.iter().map(|a| a.reader.clone()).collect();
    let bars: Vec<Bar> = s
        .accuracy
        .iter()
        .enumerate()
        .map(|(i, a)| {
            Bar::new(i as f64, 100.0 * a.accuracy.max(0.0))
                .width(0.6)
                .name(format!(
                    "{}: {:.1}% ({:.1}–{:.1}%)",
                    a.reader,
                    100.0 * a.accuracy,
                    100.0 * a.ci95.0,
                    100.0 * a.ci95.1
                ))
        })
        .collect();
    category_plot("study-accuracy", 200.0, 100.0, "correct (%)", names).show(ui, |plot| {
        plot.bar_chart(BarChart::new("accuracy", bars));
        for (i, a) in s.accuracy.iter().enumerate() {
            let x = i as f64;
            plot.line(
                Line::new(
                    format!("95% CI {}", a.reader),
                    PlotPoints::from(vec![[x, 100.0 * a.ci95.0], [x, 100.0 * a.ci95.1]]),
                )
                .color(egui::Color32::WHITE)
                .width(2.0),
            );
        }
        plot.hline(HLine::new("chance", 50.0).color(egui::Color32::YELLOW));
    });
}

/// Mean Likert score per question (in the study's `order`), real against synthetic (grouped
/// bars, 1-5).
fn likert_chart(ui: &mut egui::Ui, s: &Summary, order: &[String]) {
    use egui_plot::{Bar, BarChart, Legend};
    // The study's order first.
    let mut questions: Vec<String> = order
        .iter()
        .filter(|q| s.likert_by_truth.iter().any(|m| &m.question == *q))
        .cloned()
        .collect();
    for m in &s.likert_by_truth {
        if !questions.contains(&m.question) {
            questions.push(m.question.clone());
        }
    }
    if questions.is_empty() {
        return;
    }
    let group = |truth: &str, offset: f64, colour: egui::Color32| {
        let bars: Vec<Bar> = questions
            .iter()
            .enumerate()
            .filter_map(|(i, q)| {
                s.likert_by_truth
                    .iter()
                    .find(|m| &m.question == q && m.group == truth)
                    .map(|m| {
                        Bar::new(i as f64 + offset, m.mean)
                            .width(0.35)
                            .name(format!(
                                "{q}, {truth}: {:.2} ± {:.2} (n = {})",
                                m.mean, m.sd, m.n
                            ))
                    })
            })
            .collect();
        BarChart::new(truth.to_string(), bars).color(colour)
    };
    category_plot(
        "study-likert",
        160.0,
        5.0,
        "mean Likert (1-5)",
        questions.clone(),
    )
    .legend(Legend::default())
    .show(ui, |plot| {
        plot.bar_chart(group("real", -0.18, egui::Color32::from_rgb(90, 160, 230)));
        plot.bar_chart(group(
            "synthetic",
            0.18,
            egui::Color32::from_rgb(230, 140, 70),
        ));
    });
}
