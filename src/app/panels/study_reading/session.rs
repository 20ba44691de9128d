//! The reading view while a session runs: the count, the questions, and the image(s) in
//! panes that scroll, zoom and window like the viewer's.

use super::{CaseCache, wanted_cases};
use crate::app::viewer::render::Combine;
use crate::app::viewer::view::{Orientation, ViewState};
use crate::app::viewer::viewport::{PaneLayer, pane_ui};
use crate::study::session::{Session, StudyKey};
use crate::study::{Design, Scale, Study, Viewing};
use crate::volume::{Volume, WindowLevel};
use std::sync::Arc;
use std::time::Duration;

/// The window for a case: the study's fixed one, or the study's per modality (MR without one:
/// the image's robust range).
fn window_for(study: &Study, v: &Volume) -> WindowLevel {
    if let Some(w) = study.view.and_then(|f| f.window) {
        return w;
    }
    if v.meta.modality == crate::volume::Modality::Ct {
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
            (Key::Num6, StudyKey::Digit(6)),
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
pub(super) fn reading_session_ui(
    ui: &mut egui::Ui,
    ctx: &egui::Context,
    session: &mut Session,
    cases: &mut CaseCache,
    view: &mut Option<(usize, ViewState, WindowLevel)>,
    error: &mut Option<String>,
    has_gpu: bool,
) {
    let design = session.study.design;
    let pair = design.is_paired();
    // Keys and the clock first, so the frame shows their effect.
    let mut saved = false;
    for k in study_keys(ctx, pair) {
        match session.key(k) {
            Ok(s) => saved |= s,
            Err(e) => *error = Some(e.into()),
        }
    }
    match session.tick() {
        Ok(s) => saved |= s,
        Err(e) => *error = Some(e.into()),
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
            if design == Design::Rating {
                ui.label(session.study.rating.question.clone());
            } else if design == Design::TwoAfc {
                ui.label("Which image shows the lesion?");
                for (v, label) in [("A", "A (left)  [A]"), ("B", "B (right)  [B]")] {
                    if ui.selectable_label(d.as_deref() == Some(v), label).clicked() {
                        *d = Some(v.into());
                    }
                }
            } else if pair {
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
        if design == Design::Rating {
            rating_ui(ui, session);
        }
        egui::Grid::new("study-ratings").show(ui, |ui| {
            for (i, (n, r)) in names.iter().zip(ratings).enumerate() {
                if design == Design::Rating {
                    break;
                }
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
                    Err(e) => *error = Some(e.into()),
                }
            }
            if !missing.is_empty() {
                ui.weak(format!("still to answer: {}", missing.join(", ")));
            }
        });
        ui.weak(match design {
            Design::Rating => "Keys: 1–5 (or 1–6) for the rating, Backspace to clear it, Enter for next. Scroll: wheel or Up/Down. Window: ctrl+drag. Zoom: right-drag.",
            _ => "Keys: R / S (or A / B), 1–5 for the marked rating, Backspace to clear it, Enter for next. Scroll: wheel or Up/Down. Window: ctrl+drag. Zoom: right-drag.",
        });
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
            Some(_) if design == Design::TwoAfc => {
                // 2AFC: the abnormal image (the trial's case) on the left when real_on_left.
                let (abn, nor) = (vols[0].clone(), vols[1].clone());
                let (left, right) = if trial.real_on_left {
                    (abn, nor)
                } else {
                    (nor, abn)
                };
                panes.push(("Image A".into(), left));
                panes.push(("Image B".into(), right));
            }
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
        let fixed = session.study.view.unwrap_or_default();
        if let Some(z) = fixed.zoom {
            vs.zoom = z as f64;
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
                Combine::Single,
                false,
                has_gpu,
                None,
                false,
            );
            scroll += ev.scroll;
            if let Some((dw, dc)) = ev.window_drag.filter(|_| fixed.window.is_none()) {
                window.width = (window.width + dw * window.width.max(1.0) * 0.005).max(1.0);
                window.center += dc * window.width.max(1.0) * 0.005;
            }
        }
        if scroll != 0 {
            vs.scroll(&vols[0].geometry, scroll);
        }
        if let Some(z) = fixed.zoom {
            vs.zoom = z as f64;
        }
        // What the next answer is given under: the display and this view.
        let ppp = ctx.pixels_per_point();
        let screen = ctx.content_rect().size() * ppp;
        session.viewing = Some(Viewing {
            screen_px: [screen.x.round() as u32, screen.y.round() as u32],
            pixels_per_point: ppp,
            window: *window,
            zoom: vs.zoom as f32,
        });
    });
}

/// The lesion rating of the rating design: buttons for a 5- or 6-point scale, a slider 0-100.
fn rating_ui(ui: &mut egui::Ui, session: &mut Session) {
    let scale = session.study.rating.scale;
    let current = session.draft.rating;
    ui.horizontal(|ui| match scale {
        Scale::Five | Scale::Six => {
            ui.label("Confidence:");
            for v in scale.min()..=scale.max() {
                let label = match (v, scale.max()) {
                    (1, _) => "1  definitely not".to_string(),
                    (v, m) if v == m => format!("{v}  definitely"),
                    (v, _) => v.to_string(),
                };
                if ui.selectable_label(current == Some(v), label).clicked() {
                    session.set_rating(0, Some(v));
                }
            }
        }
        Scale::Slider => {
            ui.label("Confidence (0 definitely not … 100 definitely):");
            let mut v = current.unwrap_or(50);
            let r = ui.add(egui::Slider::new(&mut v, 0..=100));
            if r.changed() || r.drag_stopped() {
                session.set_rating(0, Some(v));
            }
            if current.is_none() && ui.button(format!("Rate {v}")).clicked() {
                session.set_rating(0, Some(v));
            }
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
