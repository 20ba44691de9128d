//! Resuming a CycleGAN run after a kill, a crash or a stop (the reference's `--continue_train
//! --epoch_count`): what each completed epoch saves besides the generators' checkpoints, and
//! how a run continues from it with no gap and no repeated epoch in its log.
//!
//! Everything lives under `checkpoints/resume/`: `epoch_NNN/` holds G_A and G_B (checkpoint
//! pairs), D_A and D_B (`.bpk`), the four Adam states (`optim_*.bpk`, burn's optimiser records)
//! and both image pools (`pools.bin`); `state.json`, written last, names that folder and holds
//! the counters, the random stream and the schedule position. Each file is written to a
//! temporary name and renamed; `state.json`'s rename is the commit, after which the folders of
//! earlier epochs are deleted, so one state (the latest) is kept and a kill at any moment leaves
//! a whole one.

use super::config::CycleganConfig;
use super::data::Unpaired;
use super::fit::{Resumed, train_from};
use super::pool::PoolImages;
use super::run::{CycleganSummary, SampleGrid, Trainer, adam};
use crate::model::cyclegan::{PatchGan, load_generator};
use crate::train::data::Rng;
use crate::train::resume::truncate_log;
use crate::train::runs::write_atomic;
use crate::train::{Control, EpochReport, RunSummary, TrainError, TrainEvent};
use burn::module::Module;
use burn::optim::ModuleOptimizer;
use burn::tensor::Device;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// The resume-state format this build writes and reads.
pub const RESUME_FORMAT: u32 = 1;

/// The folder of a run's resume state, relative to the run folder.
pub const RESUME_DIR: &str = "checkpoints/resume";

/// Where a CycleGAN run stands after a completed epoch (`checkpoints/resume/state.json`).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CycleganResumeState {
    /// Format version.
    pub format: u32,
    /// Epochs completed (the next runs at schedule position `epoch`, 0-based).
    pub epoch: usize,
    /// Steps taken (each updates all four networks).
    pub step: usize,
    /// The data-order, flip and pool random stream, as it stood.
    pub rng: u64,
    /// Images trained on, per domain.
    pub images: usize,
    /// Seconds spent in training steps.
    pub train_seconds: f64,
    /// Seconds since the run began, summed over its sessions.
    pub elapsed_s: f64,
    /// The learning rate the completed epoch ran at (the next is the schedule's at `epoch`).
    pub learning_rate: f64,
    /// Where the generators' first weights came from (the import file is not read again).
    pub init_note: String,
    /// The completed epoch's scores.
    pub last: Option<EpochReport>,
    /// The folder under `checkpoints/resume/` holding the networks, optimisers and pools.
    pub folder: String,
    /// Images in the pools of D_A's and D_B's fakes (G_A's and G_B's outputs).
    pub pools: [usize; 2],
}

impl CycleganResumeState {
    /// Where `run_dir` keeps it.
    pub fn path(run_dir: &Path) -> PathBuf {
        run_dir.join(RESUME_DIR).join("state.json")
    }

    /// The folder holding this state's networks, optimisers and pools.
    pub fn folder_path(&self, run_dir: &Path) -> PathBuf {
        run_dir.join(RESUME_DIR).join(&self.folder)
    }

    /// Read `run_dir`'s resume state; an error names the folder and what is missing.
    pub fn read(run_dir: &Path) -> Result<Self, TrainError> {
        let p = Self::path(run_dir);
        if !p.exists() {
            return Err(TrainError::file(
                run_dir,
                format!(
                    "cannot resume this CycleGAN run: {RESUME_DIR}/state.json is missing (no \
                     completed epoch saved its discriminators, optimisers and image pools: the \
                     run ended before its first epoch did, or a build without CycleGAN resume \
                     wrote it)"
                ),
            ));
        }
        let text = crate::io::read_text(&p, crate::io::MAX_TEXT_BYTES)
            .map_err(|e| TrainError::file(&p, format!("cannot resume: {e}")))?;
        let s: Self = serde_json::from_str(&text)
            .map_err(|e| TrainError::file(&p, format!("not a CycleGAN resume state: {e}")))?;
        if s.format != RESUME_FORMAT {
            return Err(TrainError::file(
                &p,
                format!(
                    "resume format {} (this build reads {RESUME_FORMAT})",
                    s.format
                ),
            ));
        }
        // The folder name comes from the file: one plain name, never a path out of the run.
        if s.folder.is_empty() || s.folder.contains(['/', '\\']) || s.folder.starts_with('.') {
            return Err(TrainError::file(
                &p,
                format!(
                    "names the folder {:?}, not one under {RESUME_DIR}",
                    s.folder
                ),
            ));
        }
        Ok(s)
    }
}

/// What `train --resume` finds in a CycleGAN run folder.
#[derive(Clone, Debug)]
pub enum ResumeCheck {
    /// The run ended normally after all its epochs (summary.json, not stopped): nothing to do.
    Finished {
        /// Epochs it trained.
        epochs: usize,
    },
    /// It can continue from this state.
    From(CycleganResumeState),
}

/// Whether the run in `run_dir` (with its config `cfg`) is finished or can resume; an error
/// says why it can do neither. Reads only small files, so it answers before any data loads.
pub fn check_resume(cfg: &CycleganConfig, run_dir: &Path) -> Result<ResumeCheck, TrainError> {
    let summary = crate::io::read_text(&run_dir.join("summary.json"), crate::io::MAX_TEXT_BYTES)
        .ok()
        .and_then(|t| serde_json::from_str::<RunSummary>(&t).ok());
    if let Some(s) = summary
        && !s.stopped
        && s.epochs_done >= cfg.total_epochs()
    {
        return Ok(ResumeCheck::Finished {
            epochs: s.epochs_done,
        });
    }
    let state = CycleganResumeState::read(run_dir)?;
    if state.epoch > cfg.total_epochs() {
        return Err(TrainError::file(
            &run_dir.join("config.toml"),
            format!(
                "the resume state is after epoch {} but the config has {} epochs",
                state.epoch,
                cfg.total_epochs()
            ),
        ));
    }
    Ok(ResumeCheck::From(state))
}

/// Continue the CycleGAN run in `run_dir` (killed, crashed or stopped) from its last completed
/// epoch, `cfg` being its own `config.toml` (epochs may have been raised since): the networks,
/// optimisers, pools, random stream and schedule position come back from its resume state,
/// `metrics.jsonl` loses the lines of the unfinished epoch and grows from there, and the run
/// ends with the outputs an unbroken run writes. A finished run is refused (nothing to do).
pub fn resume_cyclegan(
    cfg: &CycleganConfig,
    data: &Unpaired,
    run_dir: &Path,
    device: &Device,
    control: &Control,
    on_event: &mut dyn FnMut(TrainEvent),
    on_grid: &mut dyn FnMut(SampleGrid),
) -> Result<CycleganSummary, TrainError> {
    let state = match check_resume(cfg, run_dir)? {
        ResumeCheck::Finished { epochs } => {
            return Err(TrainError::file(
                run_dir,
                format!("the run is finished ({epochs} epochs); nothing to resume"),
            ));
        }
        ResumeCheck::From(s) => s,
    };
    on_event(TrainEvent::Stage(format!(
        "Restoring the networks, optimisers and pools of epoch {}",
        state.epoch
    )));
    // Restored before the log is cut: a state that cannot load leaves the folder as it was.
    let trainer = restore(cfg, run_dir, &state, device)?;
    truncate_log(&run_dir.join("metrics.jsonl"), state.epoch)?;
    on_event(TrainEvent::Note(format!(
        "Resuming after epoch {} (step {})",
        state.epoch, state.step
    )));
    train_from(
        cfg,
        data,
        run_dir,
        device,
        control,
        on_event,
        on_grid,
        Some(Resumed { trainer, state }),
    )
}

/// Save the resume state of the epoch `state` describes (its generators just saved as
/// `checkpoints/G_{A,B}_epoch_NNN`), then delete the earlier epochs' folders.
pub(super) fn save(
    t: &Trainer,
    run_dir: &Path,
    mut state: CycleganResumeState,
) -> Result<(), TrainError> {
    let root = run_dir.join(RESUME_DIR);
    state.folder = format!("epoch_{:03}", state.epoch);
    let dir = root.join(&state.folder);
    std::fs::create_dir_all(&dir)
        .map_err(|e| TrainError::file(&dir, format!("cannot create the folder: {e}")))?;
    let ckpt = run_dir.join("checkpoints");
    for role in ["G_A", "G_B"] {
        crate::model::checkpoint::copy(
            &ckpt.join(format!("{role}_epoch_{:03}", state.epoch)),
            &dir.join(role),
        )?;
    }
    for (d, name) in [(&t.d_a, "D_A"), (&t.d_b, "D_B")] {
        let path = dir.join(format!("{name}.bpk"));
        let tmp = dir.join(format!("{name}.partial.bpk"));
        d.clone()
            .save_file(&tmp)
            .map_err(|e| TrainError::file(&path, format!("cannot save: {e:?}")))?;
        rename(&tmp, &path)?;
    }
    for (o, name) in [
        (&t.opt_g_a, "G_A"),
        (&t.opt_g_b, "G_B"),
        (&t.opt_d_a, "D_A"),
        (&t.opt_d_b, "D_B"),
    ] {
        let path = dir.join(format!("optim_{name}.bpk"));
        let tmp = dir.join(format!("optim_{name}.partial.bpk"));
        o.save(&tmp).map_err(|e| {
            TrainError::file(&path, format!("cannot save the optimiser state: {e:?}"))
        })?;
        rename(&tmp, &path)?;
    }
    let pools = [t.pool_a.images()?, t.pool_b.images()?];
    write_pools(&dir.join("pools.bin"), &pools)?;
    let text =
        serde_json::to_string_pretty(&state).map_err(|e| TrainError::Config(e.to_string()))?;
    write_atomic(&CycleganResumeState::path(run_dir), &text)?;
    // Committed: only the latest state is kept (they are as large as the four networks and
    // twice their parameters again). A folder that cannot be deleted costs disk, not the run.
    if let Ok(entries) = std::fs::read_dir(&root) {
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with("epoch_") && name != state.folder {
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
    }
    Ok(())
}

fn rename(tmp: &Path, path: &Path) -> Result<(), TrainError> {
    crate::atomic::sync_and_rename(tmp, path)
        .map_err(|e| TrainError::file(path, format!("cannot write: {}", e.problem)))
}

/// Run `f`, turning a panic inside burn (a damaged record it does not expect) into an error
/// about `path`.
fn guarded<T>(path: &Path, f: impl FnOnce() -> Result<T, TrainError>) -> Result<T, TrainError> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).unwrap_or_else(|panic| {
        let why = crate::panic_text(panic.as_ref()).unwrap_or_else(|| "unreadable".into());
        Err(TrainError::file(path, format!("damaged file: {why}")))
    })
}

fn load_discriminator(d: PatchGan, path: &Path) -> Result<PatchGan, TrainError> {
    guarded(path, || {
        let e = |err: burn::store::RecordError| {
            TrainError::file(path, format!("not this run's discriminator: {err:?}"))
        };
        let record = burn::store::ModuleRecord::load(path)
            .map_err(e)?
            .cast_to_module_dtype();
        d.try_load_record(record).map_err(e)
    })
}

fn load_optimiser(cfg: &CycleganConfig, path: &Path) -> Result<ModuleOptimizer, TrainError> {
    guarded(path, || {
        adam(cfg)
            .load(path)
            .map_err(|e| TrainError::file(path, format!("cannot read the optimiser state: {e:?}")))
    })
}

/// The trainer as it stood when `state` was saved.
fn restore(
    cfg: &CycleganConfig,
    run_dir: &Path,
    state: &CycleganResumeState,
    device: &Device,
) -> Result<Trainer, TrainError> {
    let dir = state.folder_path(run_dir);
    if !dir.is_dir() {
        return Err(TrainError::file(
            &dir,
            "cannot resume: the folder the resume state names is missing",
        ));
    }
    let g_a = load_generator(&dir.join("G_A"), device)?;
    let g_b = load_generator(&dir.join("G_B"), device)?;
    let mut t = Trainer::assemble(cfg, device, g_a, g_b, state.init_note.clone())?;
    t.d_a = load_discriminator(t.d_a.clone(), &dir.join("D_A.bpk"))?;
    t.d_b = load_discriminator(t.d_b.clone(), &dir.join("D_B.bpk"))?;
    t.opt_g_a = load_optimiser(cfg, &dir.join("optim_G_A.bpk"))?;
    t.opt_g_b = load_optimiser(cfg, &dir.join("optim_G_B.bpk"))?;
    t.opt_d_a = load_optimiser(cfg, &dir.join("optim_D_A.bpk"))?;
    t.opt_d_b = load_optimiser(cfg, &dir.join("optim_D_B.bpk"))?;
    let path = dir.join("pools.bin");
    let [a, b] = read_pools(&path)?;
    if [a.len(), b.len()] != state.pools {
        return Err(TrainError::file(
            &path,
            format!(
                "holds {} and {} images; the state says {:?}",
                a.len(),
                b.len(),
                state.pools
            ),
        ));
    }
    let bad = |e: TrainError| TrainError::file(&path, e.to_string());
    t.pool_a.restore(&a, &t.ad).map_err(bad)?;
    t.pool_b.restore(&b, &t.ad).map_err(bad)?;
    t.rng = Rng::from_state(state.rng);
    Ok(t)
}

/// The pools file's first bytes.
const POOLS_MAGIC: &[u8; 8] = b"SSPOOL01";

/// Both pools as one file: the magic, then per pool n, C, H, W (u64 little-endian) and its
/// n x C x H x W f32 values (little-endian), bit for bit what the pool held.
fn write_pools(path: &Path, pools: &[PoolImages; 2]) -> Result<(), TrainError> {
    crate::atomic::write_with(path, |w| {
        w.write_all(POOLS_MAGIC)?;
        for p in pools {
            let [c, h, wd] = p.dims;
            for v in [p.len(), c, h, wd] {
                w.write_all(&(v as u64).to_le_bytes())?;
            }
            for v in &p.values {
                w.write_all(&v.to_le_bytes())?;
            }
        }
        Ok(())
    })
    .map_err(|e| TrainError::file(path, format!("cannot write: {}", e.problem)))
}

/// Read what [`write_pools`] wrote, refusing a file whose sizes do not add up.
fn read_pools(path: &Path) -> Result<[PoolImages; 2], TrainError> {
    let bytes =
        std::fs::read(path).map_err(|e| TrainError::file(path, format!("cannot read: {e}")))?;
    let bad = |m: &str| TrainError::file(path, format!("not a pools file: {m}"));
    let mut rest = bytes
        .strip_prefix(POOLS_MAGIC.as_slice())
        .ok_or_else(|| bad("wrong first bytes"))?;
    let mut out = Vec::with_capacity(2);
    for _ in 0..2 {
        let mut dims = [0usize; 4];
        for d in &mut dims {
            let v = u64::from_le_bytes(
                take(&mut rest, 8)
                    .and_then(|b| b.try_into().ok())
                    .ok_or_else(|| bad("cut short"))?,
            );
            *d = usize::try_from(v).map_err(|_| bad("size out of range"))?;
        }
        let [n, c, h, w] = dims;
        let count = [n, c, h, w]
            .iter()
            .try_fold(1usize, |a, &d| a.checked_mul(d))
            .and_then(|v| v.checked_mul(4))
            .ok_or_else(|| bad("size out of range"))?;
        let values = take(&mut rest, count)
            .ok_or_else(|| bad("cut short"))?
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        out.push(PoolImages {
            dims: [c, h, w],
            values,
        });
    }
    if !rest.is_empty() {
        return Err(bad("bytes after the second pool"));
    }
    let b = out.pop().ok_or_else(|| bad("cut short"))?;
    let a = out.pop().ok_or_else(|| bad("cut short"))?;
    Ok([a, b])
}

/// The first `n` bytes of `rest`, which moves past them (None when it is shorter).
fn take<'a>(rest: &mut &'a [u8], n: usize) -> Option<&'a [u8]> {
    if rest.len() < n {
        return None;
    }
    let (a, b) = rest.split_at(n);
    *rest = b;
    Some(a)
}
