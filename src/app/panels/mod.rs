//! The panels around the views, one file each with its own state struct. A panel's `ui` only
//! draws (editing its own settings) and pushes [`Command`]s through a [`Cx`]; the work a command
//! starts is a method of the panel's state that takes what it needs and returns what happened.

pub(crate) mod browser;
pub mod chrome;
pub mod dialogs;
pub mod experiments;
pub mod features;
pub mod gradcam;
pub mod pacs;
pub mod registration;
pub mod study_reading;
pub mod study_setup;
pub mod synthesis;
pub mod training;
pub mod usmr;

use super::command::{Command, Task};
use super::jobs::Job;
use super::model_slot::ModelSlot;
use super::pair::Pair;
use crate::volume::Volume;
use std::sync::Arc;

/// What a panel reads of the app while it draws, and where its commands go.
pub(crate) struct Cx<'a> {
    /// The loaded volumes.
    pub volumes: &'a [Arc<Volume>],
    /// The CT/MR pair and its registration.
    pub pair: &'a Pair,
    /// The shared synthesis network.
    pub model: &'a ModelSlot,
    /// Commands, run at the end of the frame.
    pub commands: &'a mut Vec<Command>,
}

impl Cx<'_> {
    /// Ask for `c` at the end of the frame.
    pub fn push(&mut self, c: Command) {
        self.commands.push(c);
    }

    /// The CT-role volume.
    pub fn ct(&self) -> Option<&Arc<Volume>> {
        self.pair.ct_volume(self.volumes)
    }

    /// The MR-role volume.
    pub fn mr(&self) -> Option<&Arc<Volume>> {
        self.pair.mr_volume(self.volumes)
    }
}

/// A panel's contents, drawn into its tab of the dock (or its floating window).
pub(crate) fn body<R>(ui: &mut egui::Ui, add: impl FnOnce(&mut egui::Ui) -> R) -> R {
    add(ui)
}

/// What a [`run_button`] was clicked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Click {
    Run,
    Cancel,
}

impl Click {
    /// The command: `run`, or cancelling `task`.
    pub(crate) fn command(self, run: Command, task: Task) -> Command {
        match self {
            Click::Run => run,
            Click::Cancel => Command::Cancel(task),
        }
    }
}

/// The button that starts a job (`label`, `enabled`), or while `job` runs a spinner with
/// Cancel (or that it was cancelled).
pub(crate) fn run_button<T, E>(
    ui: &mut egui::Ui,
    job: Option<&Job<T, E>>,
    enabled: bool,
    label: &str,
) -> Option<Click> {
    let Some(job) = job else {
        return ui
            .add_enabled(enabled, egui::Button::new(label))
            .clicked()
            .then_some(Click::Run);
    };
    ui.spinner();
    if job.is_cancelled() {
        ui.label("cancelled: the pass under way ends in the background");
    } else {
        ui.label("computing…");
        if ui.button("Cancel").clicked() {
            return Some(Click::Cancel);
        }
    }
    None
}
