//! File > Open from PACS: the query form (patient name with wildcards, patient ID, study date
//! range, modality, accession number, study or series level), the result table (sortable by
//! any column), and Retrieve as CT / Retrieve as MR with progress and Cancel. The search and
//! the retrieval run on workers; the window only edits the form and queues [`Action`]s.

use super::servers::PacsServer;
use super::{Action, Fetched, Task, retrieve_into_db};
use crate::app::jobs::Wake;
use crate::app::pair::Role;
use crate::pacs::{FindResult, Level, PacsError, Query};
use std::cmp::Ordering;
use std::path::PathBuf;

/// The query form's fields, as typed.
#[derive(Clone, Debug, Default)]
pub struct QueryForm {
    /// PatientName; `*` and `?` are wildcards.
    pub patient_name: String,
    /// PatientID.
    pub patient_id: String,
    /// First study date, YYYYMMDD (empty: open).
    pub date_from: String,
    /// Last study date, YYYYMMDD (empty: open).
    pub date_to: String,
    /// Modality (CT, MR...).
    pub modality: String,
    /// AccessionNumber.
    pub accession: String,
    /// Study or series level.
    pub level: Level,
}

impl QueryForm {
    /// The query the form describes (dates as the DICOM range `A-B`; spaces trimmed).
    pub fn query(&self) -> Query {
        let (a, b) = (self.date_from.trim(), self.date_to.trim());
        let study_date = match (a.is_empty(), b.is_empty()) {
            (true, true) => String::new(),
            (false, true) => format!("{a}-"),
            (true, false) => format!("-{b}"),
            (false, false) if a == b => a.to_string(),
            _ => format!("{a}-{b}"),
        };
        Query {
            level: self.level,
            patient_name: self.patient_name.trim().to_string(),
            patient_id: self.patient_id.trim().to_string(),
            study_date,
            modality: self.modality.trim().to_ascii_uppercase(),
            accession: self.accession.trim().to_string(),
            ..Default::default()
        }
    }
}

/// A column of the result table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Column {
    /// Patient name.
    Patient,
    /// Patient ID.
    PatientId,
    /// Study (accession, else UID).
    Study,
    /// Series UID.
    Series,
    /// Modality.
    Modality,
    /// Study date.
    Date,
    /// Number of images.
    Images,
    /// Description.
    Description,
}

impl Column {
    /// Every column, in table order.
    pub const ALL: [Column; 8] = [
        Column::Patient,
        Column::PatientId,
        Column::Study,
        Column::Series,
        Column::Modality,
        Column::Date,
        Column::Images,
        Column::Description,
    ];

    /// Its header.
    pub fn title(self) -> &'static str {
        match self {
            Column::Patient => "Patient",
            Column::PatientId => "Patient ID",
            Column::Study => "Study",
            Column::Series => "Series",
            Column::Modality => "Modality",
            Column::Date => "Date",
            Column::Images => "Images",
            Column::Description => "Description",
        }
    }

    fn compare(self, a: &FindResult, b: &FindResult) -> Ordering {
        match self {
            Column::Patient => a.patient_name.cmp(&b.patient_name),
            Column::PatientId => a.patient_id.cmp(&b.patient_id),
            Column::Study => study_label(a).cmp(&study_label(b)),
            Column::Series => a.series_uid.cmp(&b.series_uid),
            Column::Modality => a.modality.cmp(&b.modality),
            Column::Date => a.study_date.cmp(&b.study_date),
            Column::Images => a.images.cmp(&b.images),
            Column::Description => a.description.cmp(&b.description),
        }
    }
}

/// The end of a long UID, enough to tell rows apart ("…1234.5678").
fn short_uid(uid: &str) -> String {
    let n = uid.chars().count();
    if n <= 14 {
        uid.to_string()
    } else {
        format!("…{}", uid.chars().skip(n - 12).collect::<String>())
    }
}

fn study_label(r: &FindResult) -> String {
    if r.accession.is_empty() {
        short_uid(&r.study_uid)
    } else {
        r.accession.clone()
    }
}

/// YYYYMMDD as YYYY-MM-DD (anything else as it is).
fn show_date(d: &str) -> String {
    if d.len() == 8 && d.bytes().all(|b| b.is_ascii_digit()) {
        format!("{}-{}-{}", &d[..4], &d[4..6], &d[6..])
    } else {
        d.to_string()
    }
}

/// The query dialog's state.
#[derive(Default)]
pub struct QueryState {
    /// The form.
    pub form: QueryForm,
    /// Index of the chosen server.
    pub server: usize,
    /// The running search.
    pub find: Option<Task<Vec<FindResult>>>,
    /// What the last search found, in table order.
    pub results: Vec<FindResult>,
    /// The last search's outcome line ("12 series" or why not).
    pub status: Option<Result<String, String>>,
    /// Sorted by this column, ascending when true (None: as the PACS answered).
    pub sort: Option<(Column, bool)>,
    /// The selected row (index into `results`).
    pub selected: Option<usize>,
    /// The running retrieval, and the role it is for.
    pub retrieve: Option<(Task<Fetched>, Role)>,
}

impl QueryState {
    /// Start a search with `q` on the chosen server.
    pub(super) fn search(
        &mut self,
        servers: &[PacsServer],
        q: Query,
        wake: Wake,
    ) -> Result<(), String> {
        if self.find.is_some() {
            return Ok(());
        }
        let server = servers
            .get(self.server)
            .cloned()
            .ok_or("Open from PACS: add a server in File > PACS servers first.")?;
        if let Err(e) = q.validate() {
            self.status = Some(Err(e.to_string()));
            return Ok(());
        }
        let what = format!("Searching {}", server.name);
        self.find = Some(Task::start("pacs-find", what, wake, move |cx| {
            cx.control(|c| server.find(&q, c)).map_err(|e| match e {
                PacsError::Cancelled => "Search cancelled.".to_string(),
                e => format!("{}: {e}", server.name),
            })
        })?);
        self.status = None;
        Ok(())
    }

    /// Retrieve result `i` into `role`, through the database in `db_dir`.
    pub(super) fn retrieve(
        &mut self,
        servers: &[PacsServer],
        i: usize,
        role: Role,
        db_dir: PathBuf,
        wake: Wake,
    ) -> Result<(), String> {
        if self.retrieve.is_some() {
            return Err("A retrieval is already running; cancel it first.".into());
        }
        let server = servers
            .get(self.server)
            .cloned()
            .ok_or("Open from PACS: no server chosen.")?;
        let Some(row) = self.results.get(i).cloned() else {
            return Ok(());
        };
        if row.series_uid.is_empty() {
            return Err("Choose a series to retrieve (List series of the study first).".into());
        }
        let what = format!(
            "Retrieving {} from {}",
            if row.description.is_empty() {
                short_uid(&row.series_uid)
            } else {
                row.description.clone()
            },
            server.name
        );
        let task = Task::start("pacs-retrieve", what, wake, move |cx| {
            retrieve_into_db(&server, &row, &db_dir, Some(role), cx)
        })?;
        self.retrieve = Some((task, role));
        Ok(())
    }

    /// Take finished workers: results into the table, a retrieved series into `fetched`.
    pub(super) fn poll(&mut self, fetched: &mut Vec<Fetched>, messages: &mut Vec<String>) {
        if let Some(r) = self.find.as_mut().and_then(|t| t.take(None)) {
            self.find = None;
            match r {
                Ok(rows) => {
                    let level = rows.first().map(|r| r.level);
                    let what = match level {
                        Some(Level::Series) => "series",
                        _ => "studies",
                    };
                    self.status = Some(Ok(match rows.len() {
                        0 => "No matches.".to_string(),
                        n => format!("{n} {what} found."),
                    }));
                    self.results = rows;
                    self.selected = None;
                    self.sort_results();
                }
                Err(e) => self.status = Some(Err(e)),
            }
        }
        if let Some(r) = self.retrieve.as_mut().and_then(|(t, _)| t.take(None)) {
            self.retrieve = None;
            match r {
                Ok(f) => fetched.push(f),
                Err(e) => messages.push(e),
            }
        }
    }

    fn sort_results(&mut self) {
        let Some((col, asc)) = self.sort else { return };
        let selected = self.selected.and_then(|i| self.results.get(i).cloned());
        self.results.sort_by(|a, b| {
            let o = col.compare(a, b);
            if asc { o } else { o.reverse() }
        });
        self.selected = selected.and_then(|s| self.results.iter().position(|r| *r == s));
    }

    /// Sort by `col` (ascending; again: descending).
    pub fn sort_by(&mut self, col: Column) {
        self.sort = match self.sort {
            Some((c, asc)) if c == col => Some((col, !asc)),
            _ => Some((col, true)),
        };
        self.sort_results();
    }

    /// The dialog.
    pub(super) fn ui(
        &mut self,
        ui: &mut egui::Ui,
        servers: &[PacsServer],
        actions: &mut Vec<Action>,
        show_settings: &mut bool,
    ) {
        if servers.is_empty() {
            ui.label("No PACS server is configured.");
            if ui.button("PACS servers…").clicked() {
                *show_settings = true;
            }
            return;
        }
        self.server = self.server.min(servers.len() - 1);
        ui.horizontal(|ui| {
            let l = ui.label("Server");
            egui::ComboBox::from_id_salt("pacs-server")
                .selected_text(&servers[self.server].name)
                .show_ui(ui, |ui| {
                    for (i, s) in servers.iter().enumerate() {
                        ui.selectable_value(&mut self.server, i, &s.name)
                            .on_hover_text(s.describe());
                    }
                })
                .response
                .labelled_by(l.id);
            ui.weak(servers[self.server].describe());
            if ui.small_button("Servers…").clicked() {
                *show_settings = true;
            }
        });
        let f = &mut self.form;
        let mut enter = false;
        egui::Grid::new("pacs-query-form")
            .num_columns(4)
            .spacing([8.0, 4.0])
            .show(ui, |ui| {
                let mut field = |ui: &mut egui::Ui, label: &str, v: &mut String, hint: &str| {
                    let l = ui.label(label);
                    // Sized, not desired: a grid cell's first frame would squeeze it.
                    let r = ui
                        .add_sized([160.0, 20.0], egui::TextEdit::singleline(v).hint_text(hint))
                        .labelled_by(l.id);
                    enter |= r.lost_focus() && ui.input(|i| i.key_pressed(egui::Key::Enter));
                };
                field(ui, "Patient name", &mut f.patient_name, "DOE^J*");
                field(ui, "Patient ID", &mut f.patient_id, "");
                ui.end_row();
                field(ui, "Study date from", &mut f.date_from, "YYYYMMDD");
                field(ui, "to", &mut f.date_to, "YYYYMMDD");
                ui.end_row();
                field(ui, "Modality", &mut f.modality, "CT, MR…");
                field(ui, "Accession", &mut f.accession, "");
                ui.end_row();
            });
        ui.horizontal(|ui| {
            ui.label("Level");
            ui.radio_value(&mut self.form.level, Level::Study, "Study");
            ui.radio_value(&mut self.form.level, Level::Series, "Series");
            ui.separator();
            match &self.find {
                Some(t) => {
                    if t.progress_ui(ui) {
                        t.cancel();
                    }
                }
                None => {
                    if ui.button("Search").clicked() || enter {
                        actions.push(Action::Search);
                    }
                }
            }
            match &self.status {
                Some(Ok(s)) => {
                    ui.label(s);
                }
                Some(Err(e)) => {
                    ui.colored_label(egui::Color32::LIGHT_RED, e);
                }
                None => {}
            }
        });
        ui.separator();
        self.table_ui(ui, actions);
        ui.separator();
        self.retrieve_ui(ui, actions);
    }

    fn table_ui(&mut self, ui: &mut egui::Ui, actions: &mut Vec<Action>) {
        let mut sort = None;
        let mut clicked = None;
        let mut open = None;
        egui::ScrollArea::both()
            .id_salt("pacs-results")
            .max_height(260.0)
            .auto_shrink([false, true])
            .show(ui, |ui| {
                egui::Grid::new("pacs-results-grid")
                    .striped(true)
                    .num_columns(Column::ALL.len())
                    .spacing([12.0, 4.0])
                    .show(ui, |ui| {
                        for c in Column::ALL {
                            let arrow = match self.sort {
                                Some((s, true)) if s == c => " ^",
                                Some((s, false)) if s == c => " v",
                                _ => "",
                            };
                            if ui
                                .add(
                                    egui::Button::new(
                                        egui::RichText::new(format!("{}{arrow}", c.title()))
                                            .strong(),
                                    )
                                    .frame(false),
                                )
                                .on_hover_text("Sort by this column")
                                .clicked()
                            {
                                sort = Some(c);
                            }
                        }
                        ui.end_row();
                        for (i, r) in self.results.iter().enumerate() {
                            let sel = self.selected == Some(i);
                            let cells = [
                                r.patient_name.clone(),
                                r.patient_id.clone(),
                                study_label(r),
                                if r.series_uid.is_empty() {
                                    "—".to_string()
                                } else {
                                    short_uid(&r.series_uid)
                                },
                                r.modality.replace('\\', ", "),
                                show_date(&r.study_date),
                                r.images.map_or("?".into(), |n| n.to_string()),
                                r.description.clone(),
                            ];
                            for (k, text) in cells.into_iter().enumerate() {
                                let mut resp = ui.selectable_label(sel, text);
                                resp = match Column::ALL[k] {
                                    Column::Study => resp.on_hover_text(&r.study_uid),
                                    Column::Series if !r.series_uid.is_empty() => {
                                        resp.on_hover_text(&r.series_uid)
                                    }
                                    _ => resp,
                                };
                                if resp.double_clicked() && r.level == Level::Study {
                                    open = Some(r.study_uid.clone());
                                } else if resp.clicked() {
                                    clicked = Some(i);
                                }
                            }
                            ui.end_row();
                        }
                    });
            });
        if let Some(i) = clicked {
            self.selected = Some(i);
        }
        if let Some(c) = sort {
            self.sort_by(c);
        }
        if let Some(study) = open {
            actions.push(Action::ListSeries(study));
        }
    }

    fn retrieve_ui(&mut self, ui: &mut egui::Ui, actions: &mut Vec<Action>) {
        let row = self.selected.and_then(|i| self.results.get(i));
        ui.horizontal(|ui| {
            if let Some((t, role)) = &self.retrieve {
                ui.label(format!("Retrieving as {}", role_name(*role)));
                if t.progress_ui(ui) {
                    t.cancel();
                }
                return;
            }
            match row {
                None => {
                    ui.weak("Select a row. Double-click a study to list its series.");
                }
                Some(r) if r.level == Level::Study => {
                    if ui.button("List series of this study").clicked() {
                        actions.push(Action::ListSeries(r.study_uid.clone()));
                    }
                    ui.weak("Retrieve works on one series.");
                }
                Some(_) => {
                    let i = self.selected.unwrap_or(0);
                    for role in [Role::Ct, Role::Mr] {
                        if ui
                            .button(format!("Retrieve as {}", role_name(role)))
                            .on_hover_text(
                                "Into the local database, then into this role of the viewer",
                            )
                            .clicked()
                        {
                            actions.push(Action::Retrieve(i, role));
                        }
                    }
                }
            }
        });
    }
}

/// "CT" or "MR".
pub fn role_name(r: Role) -> &'static str {
    match r {
        Role::Ct => "CT",
        Role::Mr => "MR",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_form_makes_dicom_date_ranges() {
        let mut f = QueryForm {
            patient_name: " DOE^* ".into(),
            modality: "ct".into(),
            ..Default::default()
        };
        assert_eq!(f.query().study_date, "");
        assert_eq!(f.query().patient_name, "DOE^*");
        assert_eq!(f.query().modality, "CT");
        f.date_from = "20240101".into();
        assert_eq!(f.query().study_date, "20240101-");
        f.date_to = "20241231".into();
        assert_eq!(f.query().study_date, "20240101-20241231");
        f.date_from.clear();
        assert_eq!(f.query().study_date, "-20241231");
        f.date_from = "20241231".into();
        assert_eq!(f.query().study_date, "20241231");
        f.date_to = "2024".into();
        assert!(f.query().validate().is_err());
    }

    #[test]
    fn sorting_keeps_the_selection_and_flips() {
        let row = |name: &str, date: &str, n: u32| FindResult {
            patient_name: name.into(),
            study_date: date.into(),
            images: Some(n),
            ..Default::default()
        };
        let mut q = QueryState {
            results: vec![
                row("B", "2022", 5),
                row("A", "2024", 12),
                row("C", "2023", 9),
            ],
            selected: Some(1),
            ..Default::default()
        };
        q.sort_by(Column::Patient);
        let names: Vec<_> = q.results.iter().map(|r| r.patient_name.as_str()).collect();
        assert_eq!(names, ["A", "B", "C"]);
        assert_eq!(q.selected, Some(0));
        q.sort_by(Column::Patient);
        assert_eq!(q.results[0].patient_name, "C");
        assert_eq!(q.selected, Some(2));
        q.sort_by(Column::Images);
        let n: Vec<_> = q.results.iter().map(|r| r.images.unwrap()).collect();
        assert_eq!(n, [5, 9, 12]);
        assert_eq!(short_uid("1.2.840.10008.5.1.4.1.1.2"), "….5.1.4.1.1.2");
        assert_eq!(short_uid("1.2.3"), "1.2.3");
    }
}
