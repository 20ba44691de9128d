//! The window chrome: menu and toolbar, keyboard, status bar, series browser, diagnostics,
//! progress and messages.

use super::*;

impl SynthScopeApp {
    pub(super) fn menu_ui(&mut self, ui: &mut egui::Ui) {
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
                for o in Orientation::ALL {
                    ui.radio_value(&mut self.view.orientation, o, o.name());
                }
                ui.separator();
                ui.checkbox(&mut self.show_browser, "Series browser");
                ui.checkbox(&mut self.show_diagnostics, "Diagnostics");
                ui.checkbox(&mut self.show_registration, "Registration");
                ui.checkbox(&mut self.show_synthesis, "Synthesis");
                ui.checkbox(&mut self.show_features, "Feature maps");
                ui.checkbox(&mut self.gradcam.show, "Grad-CAM");
                ui.checkbox(&mut self.training.show, "Training");
                ui.checkbox(&mut self.training.show_runs, "Runs");
                if ui.button("Reset view (r)").clicked() {
                    self.commands.push(Command::Reset);
                }
            });
            ui.separator();
            for o in Orientation::ALL {
                ui.selectable_value(&mut self.view.orientation, o, o.name());
            }
            ui.separator();
            ui.toggle_value(&mut self.wl_mode, "W/L drag (w)");
            ui.toggle_value(&mut self.show_inset, "Zoom inset (z)")
                .on_hover_text("A magnified view of the region around the crosshair in each pane");
            if self.show_inset {
                ui.add(
                    egui::DragValue::new(&mut self.inset_mag)
                        .range(1.5..=8.0)
                        .speed(0.1)
                        .prefix("x"),
                );
            }
            ui.toggle_value(&mut self.show_registration, "Register…");
            ui.toggle_value(&mut self.show_synthesis, "Synthesise…");
            ui.toggle_value(&mut self.training.show, "Train…");
            ui.separator();
            ui.label("CT:");
            for (i, p) in CT_PRESETS.iter().enumerate() {
                if ui
                    .button(p.name)
                    .on_hover_text(format!("W {} / L {}", p.window.width, p.window.center))
                    .clicked()
                {
                    self.apply_ct_preset(i);
                }
            }
            ui.separator();
            if ui
                .button("MR auto")
                .on_hover_text("robust 2-98% window inside the head")
                .clicked()
            {
                self.auto_window_mr();
            }
            ui.separator();
            for (label, vol) in [
                ("CT map", self.ct_volume().cloned()),
                ("MR map", self.mr_volume().cloned()),
            ] {
                if let Some(v) = vol {
                    let mut d = self.display_of(&v);
                    let before = d.colormap;
                    egui::ComboBox::from_label(label)
                        .selected_text(d.colormap.name())
                        .show_ui(ui, |ui| {
                            for c in Colormap::ALL {
                                ui.selectable_value(&mut d.colormap, c, c.name());
                            }
                        });
                    if d.colormap != before {
                        self.display.insert(v.id, d);
                    }
                }
            }
            ui.separator();
            ui.add(egui::Slider::new(&mut self.checker_mm, 2.0..=64.0).text("checker mm"));
        });
    }

    pub(super) fn status_ui(&mut self, ui: &mut egui::Ui) {
        ui.horizontal(|ui| {
            match &self.hover {
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
                match &self.adapter {
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

    pub(super) fn browser_ui(&mut self, ctx: &egui::Context) {
        let mut open = self.show_browser;
        let mut role_changes = Vec::new();
        egui::Window::new("Series browser")
            .open(&mut open)
            .default_width(720.0)
            .show(ctx, |ui| {
                egui::Grid::new("series")
                    .striped(true)
                    .num_columns(8)
                    .show(ui, |ui| {
                        for h in [
                            "Role", "Patient", "Study", "Series", "Modality", "Slices", "Size",
                            "Warnings",
                        ] {
                            ui.strong(h);
                        }
                        ui.end_row();
                        for (i, v) in self.volumes.iter().enumerate() {
                            let mut role = if self.ct == Some(i) {
                                Some(Role::Ct)
                            } else if self.mr == Some(i) {
                                Some(Role::Mr)
                            } else {
                                None
                            };
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
                            ui.label(&m.modality);
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
                                ui.colored_label(
                                    egui::Color32::YELLOW,
                                    format!("{} ⚠", m.warnings.len()),
                                )
                                .on_hover_text(m.warnings.join("\n"));
                            }
                            ui.end_row();
                        }
                    });
            });
        self.show_browser = open;
        for (i, r) in role_changes {
            self.set_role(i, r);
        }
    }

    pub(super) fn diagnostics_ui(&mut self, ctx: &egui::Context) {
        let mut open = self.show_diagnostics;
        egui::Window::new("Diagnostics").open(&mut open).show(ctx, |ui| {
            match &self.adapter {
                Some(a) => {
                    ui.label(format!("Adapter: {}", a.name));
                    ui.label(format!("Type: {}  Backend: {}  Driver: {}", a.device_type, a.backend, a.driver));
                    if a.software {
                        ui.colored_label(egui::Color32::YELLOW, "Software rendering (Mesa lavapipe): no GPU found; everything works, slower.");
                    }
                }
                None => {
                    ui.label("No GPU renderer.");
                }
            }
            ui.separator();
            ui.label("One device: the views and burn share one wgpu device and queue.");
            match &self.self_test {
                None if self.self_test_job.is_some() => {
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
                    ui.colored_label(egui::Color32::LIGHT_RED, format!("burn self-test failed: {e}"));
                }
            }
            if !self.frame_ms.is_empty() {
                let mut v: Vec<f64> = self.frame_ms.iter().copied().collect();
                v.sort_by(f64::total_cmp);
                ui.label(format!("Frame time: median {:.1} ms, p95 {:.1} ms", v[v.len() / 2], v[(v.len() * 95 / 100).min(v.len() - 1)]));
            }
        });
        self.show_diagnostics = open;
    }

    pub(super) fn progress_ui(&mut self, ctx: &egui::Context) {
        let Some(job) = &self.load_job else { return };
        let mut cancel = false;
        egui::Window::new("Loading")
            .collapsible(false)
            .resizable(false)
            .anchor(egui::Align2::CENTER_CENTER, [0.0, 0.0])
            .show(ctx, |ui| {
                ui.label(&job.label);
                ui.label(job.progress.stage());
                ui.add(
                    egui::ProgressBar::new(job.progress.fraction())
                        .show_percentage()
                        .desired_width(320.0),
                );
                if ui.button("Cancel").clicked() {
                    cancel = true;
                }
            });
        if cancel {
            job.progress.cancel();
        }
        ctx.request_repaint_after(Duration::from_millis(100));
    }

    pub(super) fn errors_ui(&mut self, ctx: &egui::Context) {
        if self.errors.is_empty() {
            return;
        }
        let mut clear = false;
        egui::Window::new("Messages")
            .anchor(egui::Align2::RIGHT_BOTTOM, [-8.0, -32.0])
            .default_width(480.0)
            .show(ctx, |ui| {
                egui::ScrollArea::vertical()
                    .max_height(160.0)
                    .show(ui, |ui| {
                        for e in &self.errors {
                            ui.label(e);
                        }
                    });
                if ui.button("Dismiss").clicked() {
                    clear = true;
                }
            });
        if clear {
            self.errors.clear();
        }
    }

    pub(super) fn keyboard(&mut self, ctx: &egui::Context) {
        if ctx.egui_wants_keyboard_input() {
            return;
        }
        use egui::Key;
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
            self.wl_mode = !self.wl_mode;
        }
        if z {
            self.show_inset = !self.show_inset;
        }
        for (pressed, o) in [
            (a, Orientation::Axial),
            (c, Orientation::Coronal),
            (s, Orientation::Sagittal),
        ] {
            if pressed {
                self.view.orientation = o;
            }
        }
    }
}
