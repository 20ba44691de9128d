//! Resuming a run after a kill or crash: what each completed epoch saves besides its weights,
//! and how a run continues from it without a gap or a repeated step in its log.

use super::fit::train_from;
use super::runs::write_atomic;
use super::{
    Control, Dataset, EpochReport, LogLine, RunSummary, TrainConfig, TrainError, TrainEvent,
};
use burn::tensor::Device;
use std::path::Path;

/// Continue the run in `run_dir` (killed, crashed or stopped) from its last completed epoch:
/// the weights, the optimiser state, the position in the schedule and the random stream come
/// back from `checkpoints/resume*`, and `metrics.jsonl` loses the steps of the unfinished epoch
/// before new lines are appended, so the steps stay contiguous. `cfg` is the run's config.
pub fn resume(
    cfg: &TrainConfig,
    dataset: &Dataset,
    run_dir: &Path,
    device: &Device,
    control: &Control,
    on_event: &mut dyn FnMut(TrainEvent),
) -> Result<RunSummary, TrainError> {
    let state = ResumeState::read(run_dir)?;
    truncate_log(&run_dir.join("metrics.jsonl"), state.epoch)?;
    on_event(TrainEvent::Note(format!(
        "Resuming after epoch {} (step {})",
        state.epoch, state.step
    )));
    train_from(
        cfg,
        dataset,
        run_dir,
        device,
        control,
        on_event,
        Some(state),
    )
}

/// Where a run stands after a completed epoch: what [`resume`] needs besides the weights
/// (`checkpoints/resume.{bpk,json}`) and the optimiser (`checkpoints/resume_optim.bpk`).
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct ResumeState {
    /// Format version.
    pub format: u32,
    /// Epochs completed.
    pub epoch: usize,
    /// Optimiser steps taken.
    pub step: usize,
    /// The data-order and augmentation random stream, as it stood.
    pub rng: u64,
    /// Images trained on.
    pub images: usize,
    /// Seconds spent in training steps.
    pub train_seconds: f64,
    /// Seconds since the run began, summed over its sessions.
    pub elapsed_s: f64,
    /// The best epoch so far.
    pub best: Option<EpochReport>,
    /// The last epoch.
    pub last: Option<EpochReport>,
}

/// The resume-state format this build writes and reads.
pub(super) const RESUME_FORMAT: u32 = 1;

impl ResumeState {
    /// Where `run_dir` keeps it.
    pub(super) fn path(run_dir: &Path) -> std::path::PathBuf {
        run_dir.join("checkpoints/resume_state.json")
    }

    /// Read `run_dir`'s resume state; an error says the run cannot be resumed and why.
    pub fn read(run_dir: &Path) -> Result<Self, TrainError> {
        let p = Self::path(run_dir);
        let text = crate::io::read_text(&p, crate::io::MAX_TEXT_BYTES).map_err(|e| {
            TrainError::file(
                &p,
                format!("cannot resume: no completed epoch was saved ({e})"),
            )
        })?;
        let s: Self = serde_json::from_str(&text)
            .map_err(|e| TrainError::file(&p, format!("not a resume state: {e}")))?;
        if s.format != RESUME_FORMAT {
            return Err(TrainError::file(
                &p,
                format!(
                    "resume format {} (this build reads {RESUME_FORMAT})",
                    s.format
                ),
            ));
        }
        Ok(s)
    }
}

/// Drop the lines after epoch `epoch`'s line from the run log (the unfinished epoch's steps, and
/// the line of an epoch whose state was not saved), rewriting it atomically. Paired and CycleGAN
/// runs resume through it.
pub(crate) fn truncate_log(log: &Path, epoch: usize) -> Result<(), TrainError> {
    let text = crate::io::read_text(log, crate::io::MAX_TEXT_BYTES)
        .map_err(|e| TrainError::file(log, format!("cannot read: {e}")))?;
    let mut kept = String::new();
    for line in text.lines() {
        kept.push_str(line);
        kept.push('\n');
        if let Ok(LogLine::Epoch(e)) = serde_json::from_str::<LogLine>(line)
            && e.epoch == epoch
        {
            return write_atomic(log, &kept);
        }
    }
    Err(TrainError::file(
        log,
        format!("cannot resume: the log has no line for epoch {epoch}"),
    ))
}
