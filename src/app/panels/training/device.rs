//! The Training panel's compute device: this machine's (the shared compute device) or a
//! `synthscope serve` server reached at ws://HOST:PORT with a token file. The views keep
//! drawing here; the run folder stays here either way. Several devices (the run config's
//! `devices`, data-parallel) are typed as a comma-separated list and win over both.

use super::TrainingState;
use crate::gpu::DeviceSpec;
use std::path::PathBuf;

/// Where the panel's runs compute.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ComputeTarget {
    /// On a remote server instead of this machine.
    pub remote: bool,
    /// The server, `ws://HOST:PORT` (or `.../N` for its device N).
    pub url: String,
    /// The server's token file (empty: none).
    pub token_file: String,
    /// Several devices for one run, comma-separated (`cpu, gpu@2`); mirrors the config's
    /// `devices` while not being edited.
    pub devices: String,
    /// Why `devices` does not parse.
    pub devices_error: Option<String>,
}

impl ComputeTarget {
    /// The remote device and token file to train on, None for this machine; an error naming
    /// what is wrong with the URL.
    pub fn remote_spec(&self) -> Result<Option<(DeviceSpec, Option<PathBuf>)>, String> {
        if !self.remote {
            return Ok(None);
        }
        let spec: DeviceSpec = self
            .url
            .parse()
            .map_err(|e| format!("Training: remote server: {e}"))?;
        if !matches!(spec, DeviceSpec::Remote { .. }) {
            return Err(format!(
                "Training: remote server {:?}: give it as ws://HOST:PORT",
                self.url
            ));
        }
        let token = self.token_file.trim();
        Ok(Some((
            spec,
            (!token.is_empty()).then(|| PathBuf::from(token)),
        )))
    }
}

/// The config's devices as the text field shows them.
fn devices_text(devices: &[crate::train::DeviceEntry]) -> String {
    devices
        .iter()
        .map(|d| d.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

impl TrainingState {
    /// The "Compute" row of the settings grid.
    pub(super) fn device_ui(&mut self, ui: &mut egui::Ui) {
        let here = crate::gpu::compute_if_chosen()
            .and_then(|c| c.ok())
            .map_or_else(
                || "this machine".to_string(),
                |c| format!("this machine: {}", c.short()),
            );
        let t = &mut self.compute;
        ui.label("Compute").on_hover_text(
            "where the network trains; the views always draw here, and the run folder stays here",
        );
        ui.vertical(|ui| {
            ui.horizontal(|ui| {
                ui.radio_value(&mut t.remote, false, here);
                ui.radio_value(&mut t.remote, true, "remote server");
            });
            ui.horizontal(|ui| {
                let l = ui.label("several devices");
                let r = ui
                    .add(
                        egui::TextEdit::singleline(&mut t.devices)
                            .hint_text("cpu, gpu@2, ws://host:3000")
                            .desired_width(220.0),
                    )
                    .labelled_by(l.id)
                    .on_hover_text(
                        "data-parallel: each batch is split across these devices (@N: a device's \
                         share), the first keeps the weights; empty: one device as chosen above. \
                         A ws:// device uses the remote server's token file.",
                    );
                if r.changed() {
                    match crate::train::parallel::parse_list(&t.devices) {
                        Ok(mut list) => {
                            let token = t.token_file.trim();
                            for d in &mut list {
                                if matches!(d.spec, DeviceSpec::Remote { .. }) && !token.is_empty()
                                {
                                    d.token_file = Some(PathBuf::from(token));
                                }
                            }
                            t.devices_error = None;
                            self.cfg.devices = list;
                        }
                        Err(e) => t.devices_error = Some(e),
                    }
                } else if !r.has_focus() && t.devices_error.is_none() {
                    t.devices = devices_text(&self.cfg.devices);
                }
                if let Some(e) = &t.devices_error {
                    ui.colored_label(ui.visuals().error_fg_color, e);
                }
            });
            if t.remote {
                ui.horizontal(|ui| {
                    let l = ui.label("server");
                    ui.add(
                        egui::TextEdit::singleline(&mut t.url)
                            .hint_text("ws://gpu-host:3000")
                            .desired_width(180.0),
                    )
                    .labelled_by(l.id)
                    .on_hover_text("a `synthscope serve` process; ws:// is unencrypted: tunnel it with ssh -L across networks you do not trust");
                    let l = ui.label("token file");
                    ui.add(egui::TextEdit::singleline(&mut t.token_file).desired_width(180.0))
                        .labelled_by(l.id)
                        .on_hover_text("one line, readable only by you (chmod 600)");
                });
            }
        });
        ui.end_row();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_remote_target_parses_or_names_the_problem() {
        let mut t = ComputeTarget::default();
        assert_eq!(t.remote_spec(), Ok(None));
        t.remote = true;
        t.url = "cpu".into();
        assert!(t.remote_spec().unwrap_err().contains("ws://HOST:PORT"));
        t.url = "ws://gpu:3000".into();
        t.token_file = " /home/me/.token ".into();
        let (spec, token) = t.remote_spec().unwrap().unwrap();
        assert_eq!(spec.to_string(), "ws://gpu:3000");
        assert_eq!(token, Some(PathBuf::from("/home/me/.token")));
    }
}
