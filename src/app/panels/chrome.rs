//! The window chrome: menu and toolbar, keyboard, status bar, diagnostics, progress and
//! messages.

use crate::app::SynthScopeApp;
use crate::app::command::{Command, Task};
use crate::app::jobs::{Job, LoadJob, LoadRequest};
use crate::app::panels::dialogs::Dialog;
use crate::app::viewer::layout::{Layout, PaneKind};
use crate::app::viewer::render::Combine;
use crate::app::viewer::view::Orientation;
use crate::app::workspace::Panel;
use crate::gpu::{AdapterReport, SelfTest};
use crate::volume::{CT_PRESETS, Colormap};
use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// The Diagnostics window: the GPU adapter, the burn self-test, recent frame times.
pub struct Diagnostics {
    /// Show the window.
    pub show: bool,
    adapter: Option<AdapterReport>,
    self_test: Option<Result<SelfTest, String>>,
    job: Option<Job<Result<SelfTest, String>>>,
    /// Recent frame times (ms).
    frame_ms: VecDeque<f64>,
    last_frame: Option<Instant>,
}

impl Diagnostics {
    /// For `adapter`, with the self-test running in `job` if started.
    pub fn new(adapter: Option<AdapterReport>, job: Option<Job<Result<SelfTest, String>>>) -> Self {
        Self {
            show: false,
            adapter,
            self_test: None,
            job,
            frame_ms: VecDeque::new(),
            last_frame: None,
        }
    }

    /// A frame starts at `now`: record the time since the last one.
    pub fn frame_at(&mut self, now: Instant) {
        if let Some(t) = self.last_frame {
            self.frame_ms
                .push_back(now.duration_since(t).as_secs_f64() * 1e3);
            if self.frame_ms.len() > 240 {
                self.frame_ms.pop_front();
            }
        }
        self.last_frame = Some(now);
    }

    /// The last frame time (ms).
    pub fn last_frame_ms(&self) -> Option<f64> {
        self.frame_ms.back().copied()
    }

    /// Take the self-test's result once finished (`timeout`: wait that long; None: only look).
    pub fn take_self_test(&mut self, timeout: Option<Duration>) {
        if let Some(r) = self.job.as_ref().and_then(|j| j.take(timeout)) {
            self.job = None;
            self.self_test = Some(r.unwrap_or_else(|e| Err(e.to_string())));
        }
    }

    /// The Diagnostics window.
    pub fn ui(&mut self, host: &mut egui::Ui) {
        let d = self;
        let open = d.show;
        super::body(host, |ui| {
            match &d.adapter {
                Some(a) => {
                    ui.label(format!("Adapter: {}", a.name));
                    ui.label(format!(
                        "Type: {}  Backend: {}  Driver: {}",
                        a.device_type, a.backend, a.driver
                    ));
                    if a.software {
                        ui.colored_label(egui::Color32::YELLOW, "Software rendering (Mesa lavapipe): no GPU found; everything works, slower.");
                    }
                }
                None => {
                    ui.label("No GPU renderer.");
                }
            }
            ui.separator();
            ui.label("The views draw on one wgpu device; the networks run on the compute device.");
            match crate::gpu::compute_if_chosen() {
                Some(Ok(c)) => ui.label(format!("Compute device: {}", c.describe())),
                Some(Err(e)) => {
                    ui.colored_label(egui::Color32::LIGHT_RED, format!("Compute device: {e}"))
                }
                None => ui.label("Compute device: being measured (once per machine)…"),
            };
            match &d.self_test {
                None if d.job.is_some() => {
                    ui.horizontal(|ui| {
                        ui.spinner();
                        ui.label("burn self-test running (first run compiles shaders)…");
                    });
                }
                None => {
                    ui.label("burn self-test not run.");
                }
                Some(Ok(t)) => {
                    let ok = if t.passed() { "passed" } else { "FAILED" };
                    ui.label(format!(
                        "burn self-test {ok}: sum(relu(A·B)) {n}x{n} = {:.4} (CPU {:.4}, rel. error {:.1e}) in {:.1} ms",
                        t.gpu_value,
                        t.cpu_value,
                        t.rel_error,
                        t.gpu_ms,
                        n = t.n
                    ));
                }
                Some(Err(e)) => {
                    ui.colored_label(
                        egui::Color32::LIGHT_RED,
                        format!("burn self-test failed: {e}"),
                    );
                }
            }
            if !d.frame_ms.is_empty() {
                let mut v: Vec<f64> = d.frame_ms.iter().copied().collect();
                v.sort_by(f64::total_cmp);
                ui.label(format!(
                    "Frame time: median {:.1} ms, p95 {:.1} ms",
                    v[v.len() / 2],
                    v[(v.len() * 95 / 100).min(v.len() - 1)]
                ));
            }
        });
        d.show = open;
    }
}

/// One group of the toolbar: its controls in a row, framed, moved whole onto the next row
/// when the rest of this row is too narrow for it (its width is remembered from the frame
/// before; a frame whose widths changed is drawn again at once).
fn tool_group(ui: &mut egui::Ui, name: &str, add: impl FnOnce(&mut egui::Ui)) {
    let id = egui::Id::unique(("toolbar-group", name));
    let width: Option<f32> = ui.ctx().data(|d| d.get_temp(id));
    let at_row_start = ui.cursor().min.x <= ui.max_rect().min.x + 1.0;
    if width.is_some_and(|w| w > ui.available_size_before_wrap().x) && !at_row_start {
        ui.end_row();
    }
    let r = ui.group(|ui| ui.horizontal(add)).response;
    let w = r.rect.width();
    if width.is_none_or(|old: f32| (old - w).abs() > 0.5) {
        ui.ctx().data_mut(|d| d.insert_temp(id, w));
        ui.ctx()
            .request_discard("the toolbar's group widths changed");
    }
}

/// The strip above the status bar: a running load's progress with Cancel, and the messages
/// not yet dismissed. Docked (a bottom panel, added before the views), so it never covers a
/// pane; absent when there is neither.
pub(crate) fn activity_ui(
    ui: &mut egui::Ui,
    load: Option<&LoadJob>,
    errors: &mut Vec<String>,
    commands: &mut Vec<Command>,
) {
    if load.is_none() && errors.is_empty() {
        return;
    }
    egui::Panel::bottom("activity")
        .resizable(false)
        .show(ui, |ui| {
            if let Some(load) = load {
                ui.horizontal(|ui| {
                    ui.spinner();
                    ui.label(&load.label);
                    ui.add(
                        egui::ProgressBar::new(load.job.progress().fraction())
                            .show_percentage()
                            .desired_width(240.0),
                    );
                    ui.label(load.job.progress().stage());
                    if ui.button("Cancel").clicked() {
                        commands.push(Command::Cancel(Task::Load));
                    }
                });
                // The progress is shared memory, not an event: look again soon (not every
                // frame: a software rasteriser's repaint takes the loader's cores).
                ui.ctx().request_repaint_after(Duration::from_millis(250));
            }
            if !errors.is_empty() {
                let mut clear = false;
                ui.horizontal(|ui| {
                    ui.strong(format!("Messages ({})", errors.len()));
                    if ui.small_button("Dismiss").clicked() {
                        clear = true;
                    }
                });
                egui::ScrollArea::vertical()
                    .id_salt("messages")
                    .max_height(72.0)
                    .stick_to_bottom(true)
                    .auto_shrink([false, true])
                    .show(ui, |ui| {
                        for e in errors.iter() {
                            ui.label(e);
                        }
                    });
                if clear {
                    errors.clear();
                }
            }
        });
}

impl SynthScopeApp {
    /// The menu bar: File, Study, View (layouts, orientation, panels, Reset layout).
    pub(crate) fn menu_ui(&mut self, ui: &mut egui::Ui) {
        egui::MenuBar::new().ui(ui, |ui| {
            ui.menu_button("File", |ui| {
                if ui.button("Open files…").clicked() {
                    self.commands.push(Command::PickFiles);
                }
                if ui.button("Open folder…").clicked() {
                    self.commands.push(Command::PickFolder);
                }
                if ui.button("Load demo pair").clicked() {
                    self.commands.push(Command::Open(LoadRequest::Demo));
                }
                if ui.button("Open from PACS…").clicked() {
                    self.pacs.show_query = true;
                }
                if ui.button("PACS servers…").clicked() {
                    self.pacs.show_settings = true;
                }
                ui.separator();
                if ui.button("Save views as PNG…").clicked() {
                    self.commands.push(Command::Dialog(Dialog::SaveViewPng));
                }
                if ui.button("Save window as PNG…").clicked() {
                    self.commands.push(Command::Dialog(Dialog::SaveWindowPng));
                }
                ui.separator();
                if ui.button("Quit").clicked() {
                    self.commands.push(Command::Quit);
                }
            });
            ui.menu_button("Study", |ui| {
                if ui.button("Study setup…").clicked() {
                    self.study.show_setup = true;
                }
                if ui.button("Open study…").clicked() {
                    self.commands.push(Command::Dialog(Dialog::OpenStudy));
                }
                if ui.button("Results…").clicked() {
                    self.study.show_results = true;
                }
            });
            ui.menu_button("View", |ui| {
                for l in Layout::ALL {
                    ui.radio_value(&mut self.viewer.layout, l, l.describe());
                }
                ui.separator();
                for o in Orientation::ALL {
                    ui.radio_value(&mut self.viewer.view.orientation, o, o.name());
                }
                ui.separator();
                for p in Panel::ALL {
                    ui.checkbox(self.panel_flag_mut(p), p.title());
                }
                ui.separator();
                ui.checkbox(&mut self.workspace.collapsed, "Fold the dock (d)");
                if ui.button("Reset layout").clicked() {
                    self.reset_layout();
                }
                if ui.button("Reset view (r)").clicked() {
                    self.commands.push(Command::Reset);
                }
            });
        });
    }

    /// The toolbar under the menu: groups of controls that wrap onto a second row when the
    /// window is narrow (nothing is cut off), the less used ones folded into menus.
    pub(crate) fn toolbar_ui(&mut self, ui: &mut egui::Ui) {
        ui.horizontal_wrapped(|ui| {
            ui.spacing_mut().item_spacing.x = 4.0;
            // Layout and orientation.
            tool_group(ui, "view", |ui| {
                for l in Layout::ALL {
                    ui.selectable_value(&mut self.viewer.layout, l, l.short())
                        .on_hover_text(l.describe());
                }
                if self.viewer.layout.uses_focus() {
                    egui::ComboBox::from_id_salt("focus")
                        .selected_text(self.viewer.focus.name())
                        .width(70.0)
                        .show_ui(ui, |ui| {
                            for k in PaneKind::FOCUS {
                                ui.selectable_value(&mut self.viewer.focus, k, k.name());
                            }
                        })
                        .response
                        .on_hover_text("The volume the layout shows");
                }
            });
            tool_group(ui, "orientation", |ui| {
                for (o, short) in Orientation::ALL.into_iter().zip(["Ax", "Cor", "Sag"]) {
                    ui.selectable_value(&mut self.viewer.view.orientation, o, short)
                        .on_hover_text(format!("{} ({})", o.name(), &o.name()[..1].to_lowercase()));
                }
            });
            // Mouse tools.
            tool_group(ui, "tools", |ui| {
                ui.toggle_value(&mut self.viewer.wl_mode, "W/L drag")
                    .on_hover_text("Left-drag changes window and level (w)");
                ui.toggle_value(&mut self.viewer.show_inset, "Inset")
                    .on_hover_text(
                        "A magnified view of the region around the crosshair in each pane (z)",
                    );
                if self.viewer.show_inset {
                    ui.add(
                        egui::DragValue::new(&mut self.viewer.inset_mag)
                            .range(1.5..=8.0)
                            .speed(0.1)
                            .prefix("x"),
                    );
                }
            });
            // Windows and colormaps.
            tool_group(ui, "window", |ui| {
                ui.label("CT");
                for (i, p) in CT_PRESETS.iter().enumerate() {
                    if ui
                        .small_button(p.name)
                        .on_hover_text(format!("W {} / L {}", p.window.width, p.window.center))
                        .clicked()
                    {
                        self.commands.push(Command::CtPreset(i));
                    }
                }
                if ui
                    .small_button("MR auto")
                    .on_hover_text("robust 2-98% window inside the head")
                    .clicked()
                {
                    self.commands.push(Command::AutoWindowMr);
                }
                ui.menu_button("Colours", |ui| {
                    for (label, vol) in [
                        ("CT map", self.ct_volume().cloned()),
                        ("MR map", self.mr_volume().cloned()),
                    ] {
                        if let Some(v) = vol {
                            let mut d = self.viewer.display_of(&v);
                            let before = d.colormap;
                            egui::ComboBox::from_label(label)
                                .selected_text(d.colormap.name())
                                .show_ui(ui, |ui| {
                                    for c in Colormap::ALL {
                                        ui.selectable_value(&mut d.colormap, c, c.name());
                                    }
                                });
                            if d.colormap != before {
                                self.viewer.display.insert(v.id, d);
                            }
                        }
                    }
                })
                .response
                .on_hover_text("Colormaps of the CT and the MR");
            });
            // How the compare pane mixes the pair.
            tool_group(ui, "compare", |ui| {
                let v = &mut self.viewer;
                let mode = match v.compare {
                    Combine::Checker(_) => "Checker",
                    Combine::Blend(_) => "Fade",
                    Combine::Difference => "Difference",
                    Combine::SignedError { .. } => "Error",
                    Combine::AbsError { .. } => "|Error|",
                    Combine::Single => "Single",
                };
                egui::ComboBox::from_id_salt("compare-mode")
                    .selected_text(mode)
                    .width(84.0)
                    .show_ui(ui, |ui| {
                        if ui
                            .selectable_label(matches!(v.compare, Combine::Checker(_)), "Checker")
                            .clicked()
                        {
                            v.compare = Combine::Checker(v.checker_mm);
                        }
                        if ui
                            .selectable_label(matches!(v.compare, Combine::Blend(_)), "Fade")
                            .clicked()
                        {
                            v.compare = Combine::Blend(0.5);
                        }
                        if ui
                            .selectable_label(v.compare == Combine::Difference, "Difference")
                            .clicked()
                        {
                            v.compare = Combine::Difference;
                        }
                    })
                    .response
                    .on_hover_text("How the compare pane shows the pair");
                match &mut v.compare {
                    Combine::Checker(_) => {
                        ui.add(
                            egui::DragValue::new(&mut v.checker_mm)
                                .range(2.0..=64.0)
                                .speed(0.5)
                                .suffix(" mm"),
                        )
                        .on_hover_text("Checkerboard square size");
                    }
                    Combine::Blend(w) => {
                        ui.add(
                            egui::DragValue::new(w)
                                .range(0.0..=1.0)
                                .speed(0.01)
                                .prefix("opacity "),
                        )
                        .on_hover_text("Opacity of the MR over the CT");
                    }
                    _ => {}
                }
            });
            // The panels most used, as toggles (all are in View).
            tool_group(ui, "panels", |ui| {
                ui.toggle_value(&mut self.registration.show, "Register…");
                ui.toggle_value(&mut self.synthesis.show, "Synthesise…");
                ui.toggle_value(&mut self.training.show, "Train…");
            });
        });
    }

    pub(crate) fn status_ui(&mut self, ui: &mut egui::Ui) {
        ui.horizontal(|ui| {
            match &self.viewer.hover {
                Some((name, w, probe)) => {
                    ui.monospace(format!("LPS ({:.1}, {:.1}, {:.1}) mm", w[0], w[1], w[2]));
                    match probe {
                        Some((ijk, v)) => {
                            let unit = if name == "CT" { " HU" } else { "" };
                            ui.monospace(format!(
                                "{name} voxel [{} {} {}] = {:.1}{unit}",
                                ijk[0], ijk[1], ijk[2], v
                            ));
                        }
                        None => {
                            ui.monospace(format!("{name}: outside"));
                        }
                    }
                }
                None => {
                    ui.monospace("—");
                }
            }
            ui.with_layout(egui::Layout::right_to_left(egui::Align::Center), |ui| {
                // Measured off the UI thread at start (once per machine, then cached).
                match crate::gpu::compute_if_chosen() {
                    Some(Ok(c)) => ui
                        .label(format!("Compute: {}", c.short()))
                        .on_hover_text(c.describe()),
                    Some(Err(e)) => {
                        ui.colored_label(egui::Color32::LIGHT_RED, format!("Compute: {e}"))
                    }
                    None => ui.label("Compute: measuring…"),
                };
                ui.separator();
                match &self.diagnostics.adapter {
                    Some(a) => ui.label(format!("GPU: {}", a.summary())),
                    None => ui.colored_label(egui::Color32::LIGHT_RED, "GPU: none"),
                };
                if let Some((i, n)) = self.slice_index() {
                    ui.separator();
                    ui.monospace(format!("slice {}/{}", i + 1, n));
                }
            });
        });
    }

    pub(crate) fn keyboard(&mut self, ctx: &egui::Context) {
        if ctx.egui_wants_keyboard_input() {
            return;
        }
        use egui::Key;
        let layout_keys = [Key::Num1, Key::Num2, Key::Num3, Key::Num4];
        let (layout, dock) = ctx.input(|i| {
            (
                layout_keys.iter().position(|k| i.key_pressed(*k)),
                i.key_pressed(Key::D),
            )
        });
        if let Some(k) = layout {
            self.viewer.layout = Layout::ALL[k];
        }
        if dock {
            self.workspace.collapsed = !self.workspace.collapsed;
        }
        let (up, down, pup, pdown, r, w, a, c, s, z) = ctx.input(|i| {
            (
                i.key_pressed(Key::ArrowUp),
                i.key_pressed(Key::ArrowDown),
                i.key_pressed(Key::PageUp),
                i.key_pressed(Key::PageDown),
                i.key_pressed(Key::R),
                i.key_pressed(Key::W),
                i.key_pressed(Key::A),
                i.key_pressed(Key::C),
                i.key_pressed(Key::S),
                i.key_pressed(Key::Z),
            )
        });
        let mut n = 0;
        if up {
            n += 1;
        }
        if down {
            n -= 1;
        }
        if pup {
            n += 10;
        }
        if pdown {
            n -= 10;
        }
        if n != 0 {
            self.scroll(n);
        }
        if r {
            self.commands.push(Command::Reset);
        }
        if w {
            self.viewer.wl_mode = !self.viewer.wl_mode;
        }
        if z {
            self.viewer.show_inset = !self.viewer.show_inset;
        }
        for (pressed, o) in [
            (a, Orientation::Axial),
            (c, Orientation::Coronal),
            (s, Orientation::Sagittal),
        ] {
            if pressed {
                self.viewer.view.orientation = o;
            }
        }
    }
}
