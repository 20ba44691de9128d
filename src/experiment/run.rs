//! Running the grid: every fold trained (or resumed) and evaluated in turn, with progress;
//! what counts as finished; the guard against resuming another experiment's folder.

use super::{ExperimentConfig, Patient, evaluate_fold, fold_value, patient, report, run_dir};
use crate::model::Direction;
use crate::train::{Case, Control, Dataset, TrainError, TrainEvent};
use burn::tensor::Device;
use std::path::{Path, PathBuf};

/// What a running experiment reports.
#[derive(Clone, Debug)]
pub enum ExperimentEvent {
    /// A line of the log (a stage, an epoch, a fold's held-out figures).
    Line(String),
    /// Where the grid stands.
    Progress(ExperimentProgress),
}

/// Where a running experiment stands.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ExperimentProgress {
    /// The fold under way (0-based index into [`ExperimentConfig::grid`]).
    pub fold: usize,
    /// Folds in the grid.
    pub total: usize,
    /// Share of the whole grid done, 0..1 (finished folds plus the steps of the current one).
    pub fraction: f64,
    /// Seconds left, from the pace of this session's work (None until there is one).
    pub eta_s: Option<f64>,
    /// What is running ("mse seed 1 fold 2: epoch 3/12").
    pub label: String,
}

/// Run (or resume) the whole experiment into `out`, then write the tables and the report.
/// `say` gets one line per stage and per epoch.
pub fn run_experiment(
    cfg: &ExperimentConfig,
    out: &Path,
    device: &Device,
    control: &Control,
    say: &mut dyn FnMut(String),
) -> Result<PathBuf, TrainError> {
    run_experiment_with(cfg, out, device, control, &mut |e| {
        if let ExperimentEvent::Line(l) = e {
            say(l)
        }
    })
}

/// Whether the run in `dir` trained to its end: a `summary.json` that was not written by a
/// stop (a stopped run writes one too, and continues from its resume state).
pub fn fold_trained(dir: &Path) -> bool {
    crate::io::read_text(&dir.join("summary.json"), crate::io::MAX_TEXT_BYTES)
        .ok()
        .and_then(|t| serde_json::from_str::<crate::train::RunSummary>(&t).ok())
        .is_some_and(|s| !s.stopped)
}

/// Whether fold `dir` is finished: trained to its end and evaluated.
pub fn fold_finished(dir: &Path) -> bool {
    fold_trained(dir) && dir.join("evaluation.json").exists()
}

/// The folds of `cfg` already finished in `out` (see [`fold_finished`]).
pub fn finished_folds(cfg: &ExperimentConfig, out: &Path) -> usize {
    cfg.grid()
        .iter()
        .filter(|(arm, seed, fold)| fold_finished(&run_dir(out, &arm.name, *seed, *fold)))
        .count()
}

/// Refuse to resume into `out` when it holds another experiment (other settings): its folds
/// would be mixed with this one's.
pub fn check_output(cfg: &ExperimentConfig, out: &Path) -> Result<(), TrainError> {
    let f = out.join("experiment.toml");
    if !f.exists() {
        return Ok(());
    }
    let text = crate::io::read_text(&f, crate::io::MAX_TEXT_BYTES)
        .map_err(|e| TrainError::file(&f, format!("cannot read: {e}")))?;
    match toml::from_str::<ExperimentConfig>(&text) {
        Ok(old) if old == *cfg => Ok(()),
        Ok(old) => Err(TrainError::file(
            &f,
            format!(
                "holds experiment '{}' with other settings; its folds cannot be resumed with these \
                 (choose another output folder, or delete this one)",
                old.name
            ),
        )),
        Err(e) => Err(TrainError::file(
            &f,
            format!("not a valid experiment ({e}); choose another output folder"),
        )),
    }
}

/// [`run_experiment`] with progress: `on` gets every log line and, at each step, where the
/// grid stands. Stopping `control` ends the run after the current step (the fold's last
/// finished epoch is kept and continues on the next run into `out`).
pub fn run_experiment_with(
    cfg: &ExperimentConfig,
    out: &Path,
    device: &Device,
    control: &Control,
    on: &mut dyn FnMut(ExperimentEvent),
) -> Result<PathBuf, TrainError> {
    check_output(cfg, out)?;
    std::fs::create_dir_all(out.join("runs"))
        .map_err(|e| TrainError::file(out, format!("cannot create the folder: {e}")))?;
    let text = toml::to_string_pretty(cfg).unwrap_or_default();
    crate::atomic::write(&out.join("experiment.toml"), text)
        .map_err(|e| TrainError::file(out, e.to_string()))?;
    let grid = cfg.grid();
    let total = grid.len();
    let started = std::time::Instant::now();
    let already = finished_folds(cfg, out) as f64 / total.max(1) as f64;
    // Progress only goes forward: a stage inside a fold keeps the share its steps reached.
    let reached = std::cell::Cell::new((0usize, 0.0f64));
    let progress = |fold: usize, within: f64, label: String| {
        let (f0, w0) = reached.get();
        let within = if fold == f0 { within.max(w0) } else { within };
        reached.set((fold, within));
        let fraction = ((fold as f64 + within.clamp(0.0, 1.0)) / total.max(1) as f64).min(1.0);
        let gained = fraction - already;
        let eta_s = (gained > 0.005)
            .then(|| started.elapsed().as_secs_f64() * (1.0 - fraction).max(0.0) / gained);
        ExperimentEvent::Progress(ExperimentProgress {
            fold,
            total,
            fraction,
            eta_s,
            label,
        })
    };
    on(progress(0, 0.0, "making the phantom patients".into()));
    on(ExperimentEvent::Line(format!(
        "making {} varied phantom patients",
        cfg.patients
    )));
    let patients: Vec<Patient> = (0..cfg.patients).map(|k| patient(cfg, k)).collect();
    let cases: Vec<Case> = patients
        .iter()
        .map(|p| {
            Case::from_pair(
                &format!("patient {}", p.index),
                &p.ct,
                &p.mr,
                None,
                Direction::MrToCt,
            )
        })
        .collect::<Result<_, _>>()?;
    for (i, (arm, seed, fold)) in grid.iter().enumerate() {
        if control.is_stopped() {
            return Err(TrainError::Config(format!(
                "stopped after {i} of {total} folds; run again with --resume to continue"
            )));
        }
        let dir = run_dir(out, &arm.name, *seed, *fold);
        let eval_file = dir.join("evaluation.json");
        let held = cfg.held_out(*fold);
        let what = format!("{} seed {seed} fold {fold}", arm.name);
        if fold_finished(&dir) {
            on(ExperimentEvent::Line(format!(
                "[{}/{total}] {what}: done, skipped",
                i + 1
            )));
            on(progress(i, 1.0, format!("{what}: done")));
            continue;
        }
        let train_idx: Vec<usize> = (0..cfg.patients).filter(|k| !held.contains(k)).collect();
        let ordered: Vec<Case> = train_idx
            .iter()
            .chain(&held)
            .map(|&k| cases[k].clone())
            .collect();
        let dataset = Dataset::split(ordered, held.len() as f64 / cfg.patients as f64);
        let description = format!(
            "varied phantom patients: train {train_idx:?}, held out {held:?} (fold {fold} of {})",
            cfg.folds
        );
        let tc = cfg.train_config(arm, *seed, *fold, &description);
        if !fold_trained(&dir) {
            // A stale evaluation of an earlier, unfinished pass is not kept.
            let _ = std::fs::remove_file(&eval_file);
            on(ExperimentEvent::Line(format!(
                "[{}/{total}] {what}: training on {train_idx:?}, held out {held:?}",
                i + 1
            )));
            let mut on_event = |e: TrainEvent| match e {
                TrainEvent::Epoch(e) => on(ExperimentEvent::Line(format!(
                    "    epoch {}: train loss {:.4}  val loss {:.4}  PSNR {:.2} dB  MAE {:.1} HU  [{:.0} s]",
                    e.epoch, e.train_loss, e.val_loss, e.val_psnr, e.val_mae, e.elapsed_s
                ))),
                TrainEvent::Step(s) => {
                    // Evaluation takes the last tenth of a fold.
                    let within = 0.9 * s.step as f64 / s.total_steps.max(1) as f64;
                    on(progress(
                        i,
                        within,
                        format!("{what}: epoch {}/{}", s.epoch, cfg.epochs),
                    ))
                }
                TrainEvent::Stage(st) => on(progress(i, 0.0, format!("{what}: {st}"))),
                _ => {}
            };
            device.seed(*seed);
            let resumable = crate::train::ResumeState::read(&dir).is_ok();
            let summary = if resumable {
                crate::train::resume(&tc, &dataset, &dir, device, control, &mut on_event)?
            } else {
                if dir.exists() {
                    std::fs::remove_dir_all(&dir).map_err(|e| {
                        TrainError::file(&dir, format!("cannot clear an unfinished fold: {e}"))
                    })?;
                }
                crate::train::train(&tc, &dataset, &dir, device, control, &mut on_event)?
            };
            if summary.stopped {
                return Err(TrainError::Config(format!(
                    "stopped in {}; run again with --resume to continue",
                    dir.display()
                )));
            }
        }
        on(progress(
            i,
            0.9,
            format!("{what}: evaluating the held-out patients"),
        ));
        let held_p: Vec<&Patient> = held.iter().map(|&k| &patients[k]).collect();
        let rows = evaluate_fold(&dir, &held_p, cfg.eval_slices, device)?;
        let json = serde_json::to_string_pretty(&rows).unwrap_or_default();
        crate::atomic::write(&eval_file, json)
            .map_err(|e| TrainError::file(&eval_file, e.to_string()))?;
        on(ExperimentEvent::Line(format!(
            "    held out: head MAE {:.1} HU, bone MAE {:.1} HU, head PSNR {:.2} dB",
            fold_value(&rows, "head", "mae"),
            fold_value(&rows, "bone", "mae"),
            fold_value(&rows, "head", "psnr")
        )));
        on(progress(i, 1.0, format!("{what}: done")));
    }
    on(ExperimentEvent::Line(
        "writing tables, statistics, figures and the report".into(),
    ));
    on(progress(total, 0.0, "writing the report".into()));
    report::write_all(cfg, out, &patients, device)
}
