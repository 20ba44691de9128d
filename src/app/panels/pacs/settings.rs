//! File > PACS servers: the list of servers, the form of the chosen one (DIMSE: called AE
//! title, host, port, our AE title, our C-MOVE port; DICOMweb: URL, basic or bearer
//! authentication with the secret in a file), and Test connection (C-ECHO, or a QIDO-RS
//! search) with its one-line answer.

use super::servers::{Endpoint, PacsServer, WebAuth};
use super::{Action, Task};
use crate::app::jobs::Wake;

/// The settings window's state.
#[derive(Default)]
pub(super) struct SettingsUi {
    /// The server being edited.
    selected: usize,
    /// The running connection test, and the server it tests.
    pub test: Option<(Task<String>, String)>,
    /// The last test's answer: the server's name, and the line.
    result: Option<(String, Result<String, String>)>,
}

impl SettingsUi {
    /// Test the connection to `server` on a worker.
    pub fn test(&mut self, server: PacsServer, wake: Wake) -> Result<(), String> {
        if self.test.is_some() {
            return Ok(());
        }
        let name = server.name.clone();
        let task = Task::start("pacs-test", format!("Testing {name}"), wake, move |_| {
            server.test().map_err(|e| e.to_string())
        })?;
        self.test = Some((task, name));
        self.result = None;
        Ok(())
    }

    /// Take a finished test.
    pub fn poll(&mut self) {
        if let Some(r) = self.test.as_mut().and_then(|(t, _)| t.take(None))
            && let Some((_, name)) = self.test.take()
        {
            self.result = Some((name, r));
        }
    }

    /// The window's contents.
    pub fn ui(
        &mut self,
        ui: &mut egui::Ui,
        servers: &mut Vec<PacsServer>,
        actions: &mut Vec<Action>,
    ) {
        ui.horizontal(|ui| {
            if ui.button("Add DICOM server").clicked() {
                servers.push(PacsServer::new_dimse());
                self.selected = servers.len() - 1;
                actions.push(Action::SaveServers);
            }
            if ui.button("Add DICOMweb server").clicked() {
                servers.push(PacsServer::new_web());
                self.selected = servers.len() - 1;
                actions.push(Action::SaveServers);
            }
        });
        if servers.is_empty() {
            ui.label(
                "No server yet. Add one: a DICOM node (AE title, host, port) or a DICOMweb URL.",
            );
            return;
        }
        self.selected = self.selected.min(servers.len() - 1);
        ui.separator();
        ui.horizontal_top(|ui| {
            ui.vertical(|ui| {
                ui.set_width(160.0);
                for (i, s) in servers.iter().enumerate() {
                    ui.selectable_value(&mut self.selected, i, &s.name)
                        .on_hover_text(s.describe());
                }
            });
            ui.separator();
            ui.vertical(|ui| {
                let i = self.selected;
                let remove = server_form(ui, &mut servers[i]);
                if let Err(e) = servers[i].validate() {
                    ui.colored_label(egui::Color32::YELLOW, e);
                }
                ui.horizontal(|ui| {
                    match &self.test {
                        Some((t, _)) => {
                            if t.progress_ui(ui) {
                                t.cancel();
                            }
                        }
                        None => {
                            if ui
                                .button("Test connection")
                                .on_hover_text("C-ECHO (DIMSE), or a QIDO-RS search (DICOMweb)")
                                .clicked()
                            {
                                actions.push(Action::Test(i));
                            }
                        }
                    }
                    if remove {
                        servers.remove(i);
                        self.selected = i.saturating_sub(1);
                        actions.push(Action::SaveServers);
                    }
                });
                if let Some((name, r)) = &self.result {
                    match r {
                        Ok(s) => {
                            ui.colored_label(egui::Color32::LIGHT_GREEN, format!("{name}: {s}"))
                        }
                        Err(e) => {
                            ui.colored_label(egui::Color32::LIGHT_RED, format!("{name}: {e}"))
                        }
                    };
                }
            });
        });
    }
}

/// The form of one server; true when Remove was clicked.
fn server_form(ui: &mut egui::Ui, s: &mut PacsServer) -> bool {
    let mut remove = false;
    let text = |ui: &mut egui::Ui, label: &str, v: &mut String, hint: &str| {
        let l = ui.label(label);
        ui.add(
            egui::TextEdit::singleline(v)
                .hint_text(hint)
                .desired_width(220.0),
        )
        .labelled_by(l.id);
        ui.end_row();
    };
    egui::Grid::new("pacs-server-form")
        .num_columns(2)
        .spacing([8.0, 4.0])
        .show(ui, |ui| {
            text(ui, "Name", &mut s.name, "");
            ui.label("Protocol");
            ui.horizontal(|ui| {
                let dimse = matches!(s.endpoint, Endpoint::Dimse { .. });
                if ui.radio(dimse, "DIMSE").clicked() && !dimse {
                    s.endpoint = PacsServer::new_dimse().endpoint;
                }
                if ui.radio(!dimse, "DICOMweb").clicked() && dimse {
                    s.endpoint = PacsServer::new_web().endpoint;
                }
            });
            ui.end_row();
            match &mut s.endpoint {
                Endpoint::Dimse {
                    called_ae,
                    host,
                    port,
                    our_ae,
                    move_port,
                } => {
                    text(ui, "Called AE title", called_ae, "ORTHANC");
                    text(ui, "Host", host, "pacs.hospital.org");
                    let l = ui.label("Port");
                    ui.add(egui::DragValue::new(port).range(1..=65535))
                        .labelled_by(l.id);
                    ui.end_row();
                    text(ui, "Our AE title", our_ae, "SYNTHSCOPE");
                    ui.label("Retrieve by");
                    ui.horizontal(|ui| {
                        let mut use_move = move_port.is_some();
                        ui.radio_value(&mut use_move, false, "C-GET");
                        let l = ui.radio_value(&mut use_move, true, "C-MOVE to our port");
                        match (use_move, move_port.as_mut()) {
                            (true, Some(p)) => {
                                ui.add(egui::DragValue::new(p).range(1..=65535))
                                    .labelled_by(l.id)
                                    .on_hover_text(
                                        "Our storage SCP's port (the PACS must know it)",
                                    );
                            }
                            (true, None) => *move_port = Some(11112),
                            (false, _) => *move_port = None,
                        }
                    });
                    ui.end_row();
                }
                Endpoint::Web { url, auth } => {
                    text(ui, "URL", url, "https://pacs/dicom-web");
                    ui.label("Authentication");
                    ui.horizontal(|ui| {
                        let kind = match auth {
                            WebAuth::None => 0,
                            WebAuth::Basic { .. } => 1,
                            WebAuth::Bearer { .. } => 2,
                        };
                        for (k, label) in ["none", "basic", "bearer token"].into_iter().enumerate()
                        {
                            if ui.radio(kind == k, label).clicked() && kind != k {
                                *auth = match k {
                                    1 => WebAuth::Basic {
                                        user: String::new(),
                                        password_file: Default::default(),
                                    },
                                    2 => WebAuth::Bearer {
                                        token_file: Default::default(),
                                    },
                                    _ => WebAuth::None,
                                };
                            }
                        }
                    });
                    ui.end_row();
                    let path = |ui: &mut egui::Ui, label: &str, p: &mut std::path::PathBuf| {
                        let mut t = p.display().to_string();
                        let l = ui.label(label);
                        if ui
                            .add(
                                egui::TextEdit::singleline(&mut t)
                                    .hint_text("a file only you can read")
                                    .desired_width(220.0),
                            )
                            .labelled_by(l.id)
                            .changed()
                        {
                            *p = t.into();
                        }
                        ui.end_row();
                    };
                    match auth {
                        WebAuth::None => {}
                        WebAuth::Basic {
                            user,
                            password_file,
                        } => {
                            text(ui, "User", user, "");
                            path(ui, "Password file", password_file);
                        }
                        WebAuth::Bearer { token_file } => path(ui, "Token file", token_file),
                    }
                }
            }
        });
    if ui
        .small_button("Remove this server")
        .on_hover_text("Only from this list; nothing on the PACS changes")
        .clicked()
    {
        remove = true;
    }
    remove
}
