//! The panels around the views, one file each with its own state. Their `*_ui` functions only
//! draw (editing their own settings) and push [`Command`](super::command::Command)s; the work
//! a command starts lives next to the panel that asks for it.

mod browser;
pub mod chrome;
pub mod dialogs;
pub mod features;
pub mod gradcam;
pub mod registration;
pub mod study_reading;
pub mod study_setup;
pub mod synthesis;
pub mod training;

use super::command::{Command, Task};
use super::jobs::Job;

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
