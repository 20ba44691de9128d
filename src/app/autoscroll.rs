//! `--autoscroll N`: the frame-time benchmark. N/2 frames repaint without moving (the
//! reference), N/2 scroll one slice per frame; it prints mean, p50, p95 and max of each, the
//! frames over 250 ms, the time the UI thread spent in our code (the rest of a frame is
//! tessellation, the rasteriser and presenting), the load average and the upload count, then
//! quits.
//!
//! `SYNTHSCOPE_AUTOSCROLL_DURING=train,register,load` adds a phase of N/2 scrolling frames for
//! each job named, with that job running beside the scrolling (registration and loading start
//! again whenever they finish, so every frame of the phase has one running; training counts
//! from its first step, after its data is prepared). The load phase loads the demo pair again,
//! or what `SYNTHSCOPE_AUTOSCROLL_LOAD=PATH` names (a 500-slice series, say). One run, one
//! table, before and after. `SYNTHSCOPE_AUTOSCROLL_TRACE=FILE.csv` also writes every frame
//! (phase, frame time, the UI thread's part, volume uploads so far, whether a load runs), to
//! find what the slow ones have in common.

use super::SynthScopeApp;
use super::command::Command;
use super::jobs::LoadRequest;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// A frame slower than this is a bug to find (issue 14).
const SLOW_FRAME_MS: f64 = 250.0;

/// Frame-time statistics (ms) of the autoscroll benchmark.
#[derive(Clone, Debug, Default)]
pub struct FrameStats {
    /// Milliseconds between consecutive frames.
    pub frame_ms: Vec<f64>,
}

/// One phase of the benchmark.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Phase {
    /// Repaint without moving.
    Static,
    /// One slice per frame.
    Scroll,
    /// Scrolling while a training run works.
    Train,
    /// Scrolling while a registration runs.
    Register,
    /// Scrolling while the demo pair loads again.
    Load,
}

impl Phase {
    fn name(self) -> &'static str {
        match self {
            Phase::Static => "static repaint (reference)",
            Phase::Scroll => "scrolling one slice/frame",
            Phase::Train => "scrolling while training",
            Phase::Register => "scrolling while registering",
            Phase::Load => "scrolling while loading",
        }
    }

    /// The phases `SYNTHSCOPE_AUTOSCROLL_DURING` asks for, after the two every run has.
    fn from_env() -> Vec<Phase> {
        let mut v = vec![Phase::Static, Phase::Scroll];
        let during = std::env::var("SYNTHSCOPE_AUTOSCROLL_DURING").unwrap_or_default();
        for w in during.split(',').map(str::trim) {
            match w {
                "train" => v.push(Phase::Train),
                "register" => v.push(Phase::Register),
                "load" => v.push(Phase::Load),
                "all" => v.extend([Phase::Train, Phase::Register, Phase::Load]),
                "" => {}
                other => eprintln!("autoscroll: unknown phase {other:?} (train, register, load)"),
            }
        }
        v
    }
}

/// What one phase measured.
#[derive(Default)]
struct PhaseLog {
    /// Milliseconds between consecutive frames.
    frame_ms: Vec<f64>,
    /// Milliseconds of each frame spent in the app's code on the UI thread.
    ui_ms: Vec<f64>,
    /// The 1-minute load average when the phase ended.
    load_avg: Option<f64>,
    /// Per frame: volume uploads so far, and whether a load was running.
    state: Vec<(u64, bool)>,
}

/// The benchmark's state.
pub(crate) struct Autoscroll {
    per_phase: usize,
    phases: Vec<(Phase, PhaseLog)>,
    current: usize,
    last: Instant,
    /// When the current phase's job was started (a training run counts from its first step).
    job_started: Option<Instant>,
    /// What the load phase loads (None: the demo pair).
    load_path: Option<PathBuf>,
}

/// The 1-minute load average (Linux), to print beside the figures: on a shared machine they
/// mean little without it.
fn load_average() -> Option<f64> {
    std::fs::read_to_string("/proc/loadavg")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

impl Autoscroll {
    /// `frames` frames of static repaint and scrolling, and as many for each job phase.
    pub(crate) fn new(frames: usize) -> Self {
        Self {
            per_phase: (frames / 2).max(2),
            phases: Phase::from_env()
                .into_iter()
                .map(|p| (p, PhaseLog::default()))
                .collect(),
            current: 0,
            last: Instant::now(),
            job_started: None,
            load_path: std::env::var_os("SYNTHSCOPE_AUTOSCROLL_LOAD").map(PathBuf::from),
        }
    }
}

/// Mean, median and 95th percentile of `v`.
pub(crate) fn summary(v: &[f64]) -> (f64, f64, f64) {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    let mean = v.iter().sum::<f64>() / v.len().max(1) as f64;
    (
        mean,
        v.get(v.len() / 2).copied().unwrap_or(0.0),
        v.get((v.len() * 95 / 100).min(v.len().saturating_sub(1)))
            .copied()
            .unwrap_or(0.0),
    )
}

/// The largest of `v` (0 when empty).
fn max_of(v: &[f64]) -> f64 {
    v.iter().copied().fold(0.0, f64::max)
}

impl SynthScopeApp {
    /// Whether the job of `phase` is running (and, for training, past its data preparation).
    fn phase_job_ready(&mut self, phase: Phase) -> bool {
        match phase {
            Phase::Static | Phase::Scroll => true,
            Phase::Train => self.training.job.is_some() && !self.training.steps.is_empty(),
            Phase::Register => self.registration.job.is_some(),
            Phase::Load => self.load_job.is_some(),
        }
    }

    /// Start (or start again) the job of `phase` when it is not running.
    fn phase_job_keep_running(&mut self, phase: Phase) {
        match phase {
            Phase::Static | Phase::Scroll => {}
            Phase::Train => {
                if self.training.job.is_none() && !self.training.start_pending {
                    self.training.runs_root = std::env::temp_dir().join("synthscope-autoscroll");
                    self.commands.push(Command::StartTraining);
                }
            }
            Phase::Register => {
                if self.registration.job.is_none() {
                    self.commands.push(Command::StartRegistration);
                }
            }
            Phase::Load => {
                if self.load_job.is_none() {
                    let request = match self.autoscroll.as_ref().and_then(|a| a.load_path.clone()) {
                        Some(p) => LoadRequest::Paths(vec![p]),
                        None => LoadRequest::Demo,
                    };
                    self.commands.push(Command::Open(request));
                }
            }
        }
    }

    /// Stop what the phase started.
    fn phase_job_stop(&mut self, phase: Phase) {
        if phase == Phase::Train
            && let Some(j) = &self.training.job
        {
            j.control.stop();
        }
    }

    /// One frame of the benchmark (called at the end of every frame).
    pub(super) fn autoscroll_step(&mut self, ctx: &egui::Context, now: Instant) {
        let Some(a) = &self.autoscroll else {
            return;
        };
        let phase = a.phases[a.current].0;
        let first_load = a.current == 0 && a.phases[0].1.frame_ms.is_empty();
        if (first_load && self.load_job.is_some()) || self.volumes.is_empty() {
            self.autoscroll.as_mut().unwrap().last = now;
            ctx.request_repaint();
            return;
        }
        self.phase_job_keep_running(phase);
        let ready = self.phase_job_ready(phase);
        let a = self.autoscroll.as_mut().unwrap();
        let started = *a.job_started.get_or_insert(now);
        // A training run that never reaches a step still gets measured after a minute.
        let counting = ready || now.duration_since(started) > Duration::from_secs(60);
        let dt = now.duration_since(a.last).as_secs_f64() * 1e3;
        a.last = now;
        if counting {
            let log = &mut a.phases[a.current].1;
            log.frame_ms.push(dt);
            // This frame's own work so far (called at the end of the app's frame).
            log.ui_ms
                .push(Instant::now().duration_since(now).as_secs_f64() * 1e3);
            let state = (self.gpu_uploads(), self.load_job.is_some());
            if let Some(a) = self.autoscroll.as_mut() {
                a.phases[a.current].1.state.push(state);
            }
        }
        let Some(a) = self.autoscroll.as_mut() else {
            return;
        };
        if a.phases[a.current].1.frame_ms.len() > a.per_phase {
            // The first frame of a phase includes the switch: drop it.
            let log = &mut a.phases[a.current].1;
            log.frame_ms.remove(0);
            log.ui_ms.remove(0);
            log.state.remove(0);
            log.load_avg = load_average();
            self.phase_job_stop(phase);
            let a = self.autoscroll.as_mut().unwrap();
            a.current += 1;
            a.job_started = None;
            if a.current == a.phases.len() {
                self.autoscroll_report();
                self.autoscroll = None;
                ctx.send_viewport_cmd(egui::ViewportCommand::Close);
                return;
            }
        }
        ctx.request_repaint();
        let Some(a) = self.autoscroll.as_ref() else {
            return;
        };
        let phase = a.phases[a.current].0;
        if phase == Phase::Static {
            return;
        }
        // Bounce through the volume so every frame shows a new slice.
        let left = self
            .autoscroll
            .as_ref()
            .map_or(0, |a| a.phases[a.current].1.frame_ms.len());
        let (i, n) = self.slice_index().unwrap_or((0, 1));
        let dir = if (left / n.max(1)).is_multiple_of(2) {
            1
        } else {
            -1
        };
        let dir = if i + 1 >= n {
            -1
        } else if i == 0 {
            1
        } else {
            dir
        };
        self.scroll(dir);
    }

    fn autoscroll_report(&self) {
        let Some(a) = &self.autoscroll else { return };
        let size = self
            .ctx
            .as_ref()
            .map(|c| c.content_rect().size())
            .unwrap_or_default();
        println!(
            "autoscroll: window {:.0}x{:.0} points; frame times in ms",
            size.x, size.y
        );
        let mut means = Vec::new();
        for (p, log) in &a.phases {
            let v = &log.frame_ms;
            let (m, med, p95) = summary(v);
            let (_, ui50, ui95) = summary(&log.ui_ms);
            let slow = v.iter().filter(|&&t| t > SLOW_FRAME_MS).count();
            means.push(m);
            println!(
                "autoscroll: {:<28} {:>4} frames, mean {m:7.2}, p50 {med:7.2}, p95 {p95:7.2}, max {:7.2}, over {SLOW_FRAME_MS:.0} ms {slow}, ui p50 {ui50:6.2}, ui p95 {ui95:6.2}, load {} ({:.1} fps at p50)",
                format!("{}:", p.name()),
                v.len(),
                max_of(v),
                log.load_avg
                    .map_or_else(|| "-".to_string(), |l| format!("{l:.2}")),
                1e3 / med.max(1e-9)
            );
        }
        println!(
            "autoscroll: scrolling/static mean frame time ratio {:.2}; volume uploads {}",
            means.get(1).copied().unwrap_or(0.0) / means[0].max(1e-9),
            self.gpu_uploads()
        );
        if let Some(path) = std::env::var_os("SYNTHSCOPE_AUTOSCROLL_TRACE") {
            let mut csv = String::from("phase,frame,frame_ms,ui_ms,uploads,loading\n");
            for (p, log) in &a.phases {
                for (i, ((f, u), (up, loading))) in log
                    .frame_ms
                    .iter()
                    .zip(&log.ui_ms)
                    .zip(&log.state)
                    .enumerate()
                {
                    csv.push_str(&format!(
                        "{:?},{i},{f:.2},{u:.2},{up},{}\n",
                        p,
                        u8::from(*loading)
                    ));
                }
            }
            let path = PathBuf::from(path);
            if let Err(e) = crate::io::atomic::write(&path, csv.as_bytes()) {
                eprintln!("autoscroll: {}: {e}", path.display());
            }
        }
    }
}
