//! The series browser: every loaded series with its patient, study, size and warnings, and
//! the CT / MR roles; under it the local study database (kept across restarts), whose series
//! open into a role, and where a folder is imported or a series removed.

use super::Cx;
use super::pacs::local::LocalDb;
use crate::app::command::Command;
use crate::app::pair::Role;

/// The Series browser panel: the loaded series, then the local database.
pub(crate) fn browser_ui(host: &mut egui::Ui, cx: &mut Cx, local: &mut LocalDb) {
    let mut role_changes = Vec::new();
    super::body(host, |ui| {
        egui::Grid::new("series")
            .striped(true)
            .num_columns(8)
            .show(ui, |ui| {
                for h in [
                    "Role", "Patient", "Study", "Series", "Modality", "Slices", "Size", "Warnings",
                ] {
                    ui.strong(h);
                }
                ui.end_row();
                for (i, v) in cx.volumes.iter().enumerate() {
                    let mut role = cx.pair.role(i);
                    let before = role;
                    ui.horizontal(|ui| {
                        ui.radio_value(&mut role, Some(Role::Ct), "CT");
                        ui.radio_value(&mut role, Some(Role::Mr), "MR");
                        ui.radio_value(&mut role, None, "–");
                    });
                    if role != before {
                        role_changes.push((i, role));
                    }
                    let m = &v.meta;
                    ui.label(format!("{} {}", m.patient_name, m.patient_id));
                    ui.label(&m.study_description);
                    ui.label(&m.description).on_hover_text(&m.series_uid);
                    ui.label(m.modality.code());
                    let d = v.geometry.dims;
                    ui.label(d[2].to_string());
                    ui.label(format!(
                        "{}x{}x{} ({:.2}x{:.2}x{:.2} mm), {:.1} MB",
                        d[0],
                        d[1],
                        d[2],
                        v.geometry.spacing[0],
                        v.geometry.spacing[1],
                        v.geometry.spacing[2],
                        v.size_bytes() as f64 / 1e6
                    ));
                    if m.warnings.is_empty() {
                        ui.label("");
                    } else {
                        ui.colored_label(egui::Color32::YELLOW, format!("{} ⚠", m.warnings.len()))
                            .on_hover_text(m.warnings.join("\n"));
                    }
                    ui.end_row();
                }
            });
        ui.separator();
        local.ui(ui);
    });
    for (i, r) in role_changes {
        cx.push(Command::SetRole(i, r));
    }
}
