//! Send to PACS, in the Synthesis panel: the synthetic volume is written as the real image IOD
//! (CT Image Storage for MR -> CT, MR Image Storage for CT -> MR: the derived-series writer)
//! into a temporary folder on a worker, then sent with C-STORE or STOW-RS to the chosen
//! server, with progress, Cancel and the result line.

use super::servers::PacsServer;
use super::{RemoveOnDrop, Task};
use crate::app::jobs::Wake;
use crate::pacs::PacsError;
use crate::volume::Volume;
use std::sync::Arc;

/// The Send to PACS row's state.
#[derive(Default)]
pub struct SendToPacs {
    /// Index of the chosen server.
    pub server: usize,
    /// The servers' names (the app refreshes them every frame).
    names: Vec<String>,
    /// Send was clicked (the app starts the job at the end of the frame).
    requested: Option<usize>,
    /// The running send.
    pub job: Option<Task<String>>,
    /// The last send's result line.
    pub last: Option<Result<String, String>>,
}

impl SendToPacs {
    /// The names of the configured servers.
    pub(crate) fn set_servers(&mut self, names: Vec<String>) {
        if self.names != names {
            self.names = names;
        }
    }

    /// Whether a send runs.
    pub fn is_busy(&self) -> bool {
        self.job.is_some()
    }

    /// Ask to send to the chosen server (as the button does).
    pub fn request(&mut self) {
        self.requested = Some(self.server);
    }

    /// The server asked for this frame, if any.
    pub(crate) fn take_request(&mut self) -> Option<usize> {
        self.requested.take()
    }

    /// Write `synthetic` (made by `model`) as a derived series and send it to `server`.
    pub(crate) fn start(
        &mut self,
        synthetic: Arc<Volume>,
        model: String,
        server: PacsServer,
        wake: Wake,
    ) -> Result<(), String> {
        if self.job.is_some() {
            return Ok(());
        }
        let what = format!("Sending to {}", server.name);
        self.job = Some(Task::start("pacs-send", what, wake, move |cx| {
            let dir = std::env::temp_dir()
                .join(format!("synthscope-send-{}", uuid::Uuid::new_v4().simple()));
            let _cleanup = RemoveOnDrop(dir.clone());
            let files = crate::io::dicom::write::write_derived_series_with(
                &synthetic,
                &synthetic.meta,
                &model,
                &dir,
                cx.progress(),
            )
            .map_err(|e| format!("Writing the synthetic series: {e}"))?;
            // The stage is done: the row shows the transfer from here on.
            cx.progress().start("", 0);
            let sent = cx.control(|c| server.send(&files, c));
            match sent {
                Ok((s, how)) if s.failed == 0 => Ok(format!(
                    "Sent the synthetic series to {} over {how}: {}",
                    server.name,
                    s.summary()
                )),
                Ok((s, how)) => Err(format!(
                    "{how} to {}: {} of {} images refused",
                    server.name,
                    s.failed,
                    files.len()
                )),
                Err(PacsError::Cancelled) => {
                    Err("Send cancelled: the images sent before stay on the PACS.".into())
                }
                Err(e) => Err(format!("Sending to {}: {e}", server.name)),
            }
        })?);
        self.last = None;
        Ok(())
    }

    /// Take a finished send; its line also goes to `messages`.
    pub(crate) fn poll(&mut self, messages: &mut Vec<String>) {
        if let Some(r) = self.job.as_mut().and_then(|t| t.take(None)) {
            self.job = None;
            match &r {
                Ok(s) | Err(s) => messages.push(s.clone()),
            }
            self.last = Some(r);
        }
    }

    /// The Send to PACS row (under the synthetic series' save buttons).
    pub fn ui(&mut self, ui: &mut egui::Ui) {
        ui.horizontal(|ui| {
            if let Some(t) = &self.job {
                if t.progress_ui(ui) {
                    t.cancel();
                }
                return;
            }
            if self.names.is_empty() {
                ui.add_enabled(false, egui::Button::new("Send to PACS"))
                    .on_disabled_hover_text("Add a server in File > PACS servers");
                ui.weak("no PACS server configured");
                return;
            }
            self.server = self.server.min(self.names.len() - 1);
            if ui
                .button("Send to PACS")
                .on_hover_text(
                    "Write the synthetic series as CT (or MR) Image Storage in the input's study, \
                     then C-STORE / STOW-RS it",
                )
                .clicked()
            {
                self.request();
            }
            let l = ui.label("to");
            egui::ComboBox::from_id_salt("send-server")
                .selected_text(&self.names[self.server])
                .show_ui(ui, |ui| {
                    for (i, n) in self.names.iter().enumerate() {
                        ui.selectable_value(&mut self.server, i, n);
                    }
                })
                .response
                .labelled_by(l.id);
        });
        match &self.last {
            Some(Ok(s)) => {
                ui.colored_label(egui::Color32::LIGHT_GREEN, s);
            }
            Some(Err(e)) => {
                ui.colored_label(egui::Color32::LIGHT_RED, e);
            }
            None => {}
        }
    }
}
