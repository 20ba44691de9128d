//! Reading run folders back: their curves (metrics.jsonl), final rows (summary.json) and the
//! comparison table `synthscope runs compare` prints and the Runs view shows.

use super::{EpochReport, LogLine, RunSummary, StepReport, TrainConfig, TrainError};
use std::io::Write;
use std::path::{Path, PathBuf};

/// A run folder, read back.
#[derive(Clone, Debug)]
pub struct Run {
    /// The folder.
    pub dir: PathBuf,
    /// Its config, if readable.
    pub config: Option<TrainConfig>,
    /// Its summary (absent while running or after a crash).
    pub summary: Option<RunSummary>,
    /// Step lines.
    pub steps: Vec<StepReport>,
    /// Epoch lines.
    pub epochs: Vec<EpochReport>,
}

impl Run {
    /// Read `dir`. A run without `metrics.jsonl` is an error; a torn last line (a crash while
    /// writing) is skipped.
    pub fn read(dir: &Path) -> Result<Self, TrainError> {
        let log = dir.join("metrics.jsonl");
        let text = crate::io::read_text(&log, crate::io::MAX_TEXT_BYTES).map_err(|e| {
            TrainError::file(dir, format!("not a run folder ({}: {e})", log.display()))
        })?;
        let mut steps = Vec::new();
        let mut epochs = Vec::new();
        for (i, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            match serde_json::from_str::<LogLine>(line) {
                Ok(LogLine::Step(s)) => steps.push(s),
                Ok(LogLine::Epoch(e)) => epochs.push(e),
                Err(e) if i + 1 == text.lines().count() => {
                    log::warn!("{}: last line unreadable ({e}); skipped", log.display());
                }
                Err(e) => return Err(TrainError::file(&log, format!("line {}: {e}", i + 1))),
            }
        }
        let summary = crate::io::read_text(&dir.join("summary.json"), crate::io::MAX_TEXT_BYTES)
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok());
        let config = TrainConfig::read(&dir.join("config.toml")).ok();
        Ok(Self {
            dir: dir.to_path_buf(),
            config,
            summary,
            steps,
            epochs,
        })
    }

    /// Display name: the config's name, else the folder's.
    pub fn name(&self) -> String {
        self.config
            .as_ref()
            .map(|c| c.name.clone())
            .unwrap_or_else(|| {
                self.dir
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default()
            })
    }

    /// The checkpoint to load for synthesis: best, else last.
    pub fn checkpoint(&self) -> Option<PathBuf> {
        ["best", "last"]
            .iter()
            .map(|n| self.dir.join("checkpoints").join(format!("{n}.bpk")))
            .find(|p| p.exists())
    }

    /// The row of the comparison table (from the summary, else from the last epoch).
    pub fn row(&self) -> Row {
        let last = self
            .summary
            .as_ref()
            .and_then(|s| s.last.clone())
            .or_else(|| self.epochs.last().cloned());
        let cfg = self.config.as_ref();
        Row {
            name: self.name(),
            model: self
                .summary
                .as_ref()
                .map(|s| s.model.clone())
                .or_else(|| cfg.map(|c| c.model.label()))
                .unwrap_or_default(),
            loss: cfg.map(|c| c.loss_label()).unwrap_or_default(),
            epochs: last.as_ref().map_or(0, |e| e.epoch),
            psnr: last.as_ref().map_or(f64::NAN, |e| e.val_psnr),
            ssim: last.as_ref().map_or(f64::NAN, |e| e.val_ssim),
            mae: last.as_ref().map_or(f64::NAN, |e| e.val_mae),
            tenengrad: last.as_ref().map_or(f64::NAN, |e| e.val_tenengrad),
            ref_tenengrad: last.as_ref().map_or(f64::NAN, |e| e.ref_tenengrad),
            images_per_s: self.summary.as_ref().map_or(f64::NAN, |s| s.images_per_s),
            finished: self.summary.as_ref().is_some_and(|s| !s.stopped),
        }
    }
}

/// One run's final figures.
#[derive(Clone, Debug)]
pub struct Row {
    /// Run name.
    pub name: String,
    /// Network.
    pub model: String,
    /// Loss.
    pub loss: String,
    /// Epochs validated.
    pub epochs: usize,
    /// Validation PSNR (dB, 0..1 images).
    pub psnr: f64,
    /// Validation SSIM.
    pub ssim: f64,
    /// Validation MAE in target units.
    pub mae: f64,
    /// Tenengrad of the synthetic images.
    pub tenengrad: f64,
    /// Tenengrad of the real images.
    pub ref_tenengrad: f64,
    /// Training images per second.
    pub images_per_s: f64,
    /// Completed all epochs.
    pub finished: bool,
}

/// The comparison table as text (the DRUNet paper's Tables 2 and 3: one row per run).
pub fn compare_table(runs: &[Run]) -> String {
    let rows: Vec<Row> = runs.iter().map(Run::row).collect();
    let w = |f: fn(&Row) -> &str, h: &str| {
        rows.iter()
            .map(|r| f(r).chars().count())
            .chain([h.len()])
            .max()
            .unwrap_or(0)
    };
    let (wn, wm, wl) = (
        w(|r| &r.name, "run"),
        w(|r| &r.model, "model"),
        w(|r| &r.loss, "loss"),
    );
    let mut out = format!(
        "{:wn$}  {:wm$}  {:wl$}  {:>6}  {:>9}  {:>6}  {:>8}  {:>9}  {:>9}  {:>7}\n",
        "run",
        "model",
        "loss",
        "epochs",
        "PSNR (dB)",
        "SSIM",
        "MAE",
        "Tenengrad",
        "(real)",
        "img/s"
    );
    for r in &rows {
        out.push_str(&format!(
            "{:wn$}  {:wm$}  {:wl$}  {:>6}  {:>9.2}  {:>6.3}  {:>8.1}  {:>9.4}  {:>9.4}  {:>7.2}{}\n",
            r.name,
            r.model,
            r.loss,
            r.epochs,
            r.psnr,
            r.ssim,
            r.mae,
            r.tenengrad,
            r.ref_tenengrad,
            r.images_per_s,
            if r.finished { "" } else { "  (unfinished)" }
        ));
    }
    out
}

/// Write `text` to `path` atomically (temporary file, fsync, rename: [`crate::atomic`]).
pub fn write_atomic(path: &Path, text: &str) -> Result<(), TrainError> {
    crate::atomic::write(path, text)
        .map_err(|e| TrainError::file(path, format!("cannot write: {}", e.problem)))
}

/// Appends log lines, flushed as they come.
pub(super) struct Log(std::fs::File, PathBuf);

impl Log {
    /// Open `path` for appending.
    pub(super) fn open(path: &Path) -> Result<Self, TrainError> {
        let f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|e| TrainError::file(path, format!("cannot open: {e}")))?;
        Ok(Self(f, path.to_path_buf()))
    }

    /// Append one line and flush it.
    pub(super) fn write(&mut self, line: &LogLine) -> Result<(), TrainError> {
        let text = serde_json::to_string(line).map_err(|e| TrainError::Config(e.to_string()))?;
        writeln!(self.0, "{text}")
            .and_then(|_| self.0.flush())
            .and_then(|_| self.0.sync_data())
            .map_err(|e| TrainError::file(&self.1, format!("cannot append: {e}")))
    }
}
