//! The Results window's part for rating studies: ROC curves (each reader's, thin, and each
//! modality's reader average, thick) and the MRMC table (OR, DBM and iMRMC; random readers and
//! cases, and the fixed variants), and 2AFC proportions correct.

use crate::study::mrmc::{Difference, MrmcReport, df_text};
use crate::study::rating_summary::{MODALITY_COLOURS, RatingSummary};

fn colour(names: &[String], m: &str, light: bool) -> egui::Color32 {
    let i = names.iter().position(|n| n == m).unwrap_or(0);
    let [r, g, b] = MODALITY_COLOURS[i % MODALITY_COLOURS.len()];
    if light {
        egui::Color32::from_rgba_unmultiplied(r, g, b, 110)
    } else {
        egui::Color32::from_rgb(r, g, b)
    }
}

/// ROC curves, the MRMC table and 2AFC results of a rating summary.
pub(super) fn rating_results_ui(ui: &mut egui::Ui, s: &RatingSummary) {
    use egui_plot::{Legend, Line, Plot, PlotPoints};
    let names: Vec<String> = s.average.iter().map(|a| a.modality.clone()).collect();
    if !s.average.is_empty() {
        ui.strong("ROC curves (empirical; thick: reader average)");
        Plot::new("study-roc")
            .height(300.0)
            .width(330.0)
            .data_aspect(1.0)
            .include_x(0.0)
            .include_x(1.0)
            .include_y(0.0)
            .include_y(1.0)
            .allow_drag(false)
            .allow_zoom(false)
            .allow_scroll(false)
            .x_axis_label("FPF (1 - specificity)")
            .y_axis_label("TPF (sensitivity)")
            .legend(Legend::default().position(egui_plot::Corner::RightBottom))
            .show(ui, |plot| {
                plot.line(
                    Line::new("chance", PlotPoints::from(vec![[0.0, 0.0], [1.0, 1.0]]))
                        .color(egui::Color32::GRAY)
                        .style(egui_plot::LineStyle::dashed_loose()),
                );
                for c in &s.curves {
                    let pts: Vec<[f64; 2]> = c.points.iter().map(|p| [p.0, p.1]).collect();
                    plot.line(
                        Line::new(format!("{} readers", c.modality), PlotPoints::from(pts))
                            .color(colour(&names, &c.modality, true))
                            .width(1.0),
                    );
                }
                for a in &s.average {
                    let pts: Vec<[f64; 2]> = a.points.iter().map(|p| [p.0, p.1]).collect();
                    plot.line(
                        Line::new(
                            format!("{}: mean AUC {:.3}", a.modality, a.mean_auc),
                            PlotPoints::from(pts),
                        )
                        .color(colour(&names, &a.modality, false))
                        .width(3.0),
                    );
                }
            });
    }
    if let Some(m) = &s.mrmc {
        mrmc_table_ui(ui, m);
    } else if let Some(n) = &s.mrmc_note {
        ui.weak(format!("No MRMC analysis: {n}"));
    }
    if !s.incomplete_subjects.is_empty() {
        ui.weak(format!(
            "{} subject(s) not rated by every reader in every modality are left out.",
            s.incomplete_subjects.len()
        ));
    }
    if !s.two_afc.is_empty() {
        ui.strong("2AFC proportion correct (= AUC)");
        egui::Grid::new("study-2afc").striped(true).show(ui, |ui| {
            for h in ["reader", "modality", "correct", "proportion", "95% CI"] {
                ui.strong(h);
            }
            ui.end_row();
            for r in &s.two_afc {
                ui.label(&r.reader);
                ui.label(&r.modality);
                ui.label(format!("{}/{}", r.correct, r.n));
                ui.label(format!("{:.3}", r.proportion));
                ui.label(format!("{:.3} – {:.3}", r.ci95.0, r.ci95.1));
                ui.end_row();
            }
        });
    }
}

/// The MRMC table: per-reader AUCs, then each method's difference with CI, df and p.
fn mrmc_table_ui(ui: &mut egui::Ui, m: &MrmcReport) {
    ui.strong(format!(
        "MRMC: {} readers, {} normal and {} abnormal cases",
        m.readers.len(),
        m.normal_cases,
        m.abnormal_cases
    ));
    egui::Grid::new("study-auc").striped(true).show(ui, |ui| {
        ui.strong("AUC");
        for r in &m.readers {
            ui.strong(r);
        }
        ui.strong("mean");
        ui.end_row();
        for (i, name) in m.modalities.iter().enumerate() {
            ui.label(name);
            for a in &m.or.auc[i] {
                ui.label(format!("{a:.3}"));
            }
            ui.strong(format!("{:.3}", m.or.auc_mean[i]));
            ui.end_row();
        }
    });
    ui.add_space(4.0);
    let mut rows: Vec<(String, &Difference)> = Vec::new();
    let or = &m.or;
    for inf in [&or.rrrc, &or.frrc, &or.rrfc] {
        for d in &inf.differences {
            rows.push((
                format!("OR ({}) {}", or.method.name(), inf.generalise.short()),
                d,
            ));
        }
    }
    for inf in [&m.dbm.rrrc, &m.dbm.frrc, &m.dbm.rrfc] {
        for d in &inf.differences {
            rows.push((format!("DBM {}", inf.generalise.short()), d));
        }
    }
    for d in &m.imrmc.differences {
        rows.push(("iMRMC U-statistic RRRC".into(), &d.rrrc));
        rows.push(("iMRMC U-statistic FRRC".into(), &d.frrc));
    }
    if let Some((_, d)) = rows.first() {
        ui.label(format!("AUC difference {} − {}:", d.a, d.b));
    }
    egui::Grid::new("study-mrmc").striped(true).show(ui, |ui| {
        for h in ["method", "estimate", "95% CI", "df", "p"] {
            ui.strong(h);
        }
        ui.end_row();
        for (method, d) in rows {
            ui.label(method);
            ui.label(format!("{:+.4}", d.estimate));
            ui.label(format!("{:+.3} … {:+.3}", d.ci95.0, d.ci95.1));
            ui.label(df_text(d.df));
            let p = format!("{:.4}", d.p);
            if d.p < 0.05 {
                ui.strong(p);
            } else {
                ui.label(p);
            }
            ui.end_row();
        }
    });
    ui.weak("RRRC: random readers and cases (Hillis df); FRRC: these readers; RRFC: these cases. iMRMC: normal reference.");
}
