//! Long work off the UI thread. One generic [`Job`]: a worker thread, its result on a channel,
//! a progress and cancellation flag shared with it, and events it streams while it runs. Below
//! it, the work each part of the app starts on one: loading, the GPU self-test, registration,
//! model passes (synthesis, Grad-CAM, feature maps) and training.

use super::viewer::render::{Quantized, quantise};
use crate::gpu::{self, SelfTest};
use crate::io::{self, LoadError, LoadOutcome, Progress};
use crate::model::checkpoint::AnyModel;
use crate::register::{IterationReport, RegisterError, RegistrationConfig, RegistrationResult};
use crate::volume::{Affine, Volume};
use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, TryRecvError, bounded, unbounded};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Why a job gave no result.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    /// The operating system refused a new thread.
    #[error("cannot start a worker thread: {0}")]
    Spawn(#[from] std::io::Error),
    /// The worker ended without a result (it panicked).
    #[error("the worker thread stopped unexpectedly")]
    Stopped,
}

/// A job that could not start: why, and the input it was given back.
pub struct NotStarted<I> {
    /// Why.
    pub error: JobError,
    /// The input (a network, say) that did not travel.
    pub input: Box<I>,
}

impl<I> std::fmt::Debug for NotStarted<I> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.error)
    }
}

/// Called by a worker when the UI should look again.
pub type Wake = Arc<dyn Fn() + Send + Sync>;

/// A [`Wake`] that repaints `ctx`.
pub fn repaint(ctx: &egui::Context) -> Wake {
    let c = ctx.clone();
    Arc::new(move || c.request_repaint())
}

/// Start a named worker thread: the one place the app spawns threads. It runs at a lower
/// priority than the UI thread (see [`lower_priority`]).
pub fn spawn(name: &str, f: impl FnOnce() + Send + 'static) -> Result<(), JobError> {
    std::thread::Builder::new()
        .name(name.into())
        .spawn(move || {
            lower_priority();
            f()
        })?;
    Ok(())
}

/// Run the calling thread at nice 10, below the UI thread and the rasteriser's threads: on a
/// machine with few cores a training run or a registration beside the window then takes the
/// time the window does not need, instead of starving it (measured: `--autoscroll` with
/// `SYNTHSCOPE_AUTOSCROLL_DURING`). A no-op where the platform has no per-thread priority.
/// (`SCHED_BATCH` on top was tried: no frame-time gain to show on this 2-core machine, and
/// beside a scrolling window the loader finished 3 loads of a 500-slice series in 100 frames
/// instead of 14.)
pub fn lower_priority() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: gettid and setpriority take and return plain integers; on Linux a thread id
        // given to PRIO_PROCESS changes that thread's nice value only.
        unsafe {
            let tid = libc::gettid();
            libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, 10);
        }
    }
}

/// How often at most a worker's events wake the UI, and how often the UI looks at a running
/// job that streams events anyway (see [`heartbeat`]). A repaint costs a software rasteriser
/// tens of milliseconds of both cores; a training run emits a step every few milliseconds.
pub const EVENT_REPAINT: Duration = Duration::from_millis(250);

/// While a job that streams events runs, look again within [`EVENT_REPAINT`] (events whose
/// wake [`Worker::emit`] skipped are drawn then). Call once per frame.
pub fn heartbeat(ctx: &egui::Context, running: bool) {
    if running {
        ctx.request_repaint_after(EVENT_REPAINT);
    }
}

/// Lower the priority of rayon's global pool (burn's CPU kernels, packing, resampling run
/// there) as [`lower_priority`] does for the workers. Once, when the window opens.
pub fn lower_pool_priority() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        rayon::broadcast(|_| lower_priority());
    });
}

/// What a running job's worker sees: the shared progress and a way to stream events.
pub struct Worker<E> {
    /// Progress and cancellation, shared with the UI.
    pub progress: Arc<Progress>,
    events: Sender<E>,
    wake: Wake,
    /// When the UI was last woken for an event (None: not yet).
    last_wake: std::sync::Mutex<Option<Instant>>,
}

impl<E> Worker<E> {
    /// Send an event to the UI; wake it unless an event woke it less than [`EVENT_REPAINT`]
    /// ago (the UI's [`heartbeat`] picks those up): a repaint per training step would take the
    /// cores from the training and from the drawing both.
    pub fn emit(&self, event: E) {
        let _ = self.events.send(event);
        let now = Instant::now();
        let due = match self.last_wake.lock() {
            Ok(mut last) => {
                let due = last.is_none_or(|t| now.duration_since(t) >= EVENT_REPAINT);
                if due {
                    *last = Some(now);
                }
                due
            }
            Err(_) => true,
        };
        if due {
            (self.wake)();
        }
    }
}

/// Work on a worker thread: one result `T`, events `E` streamed while it runs, and a progress
/// and cancellation flag shared with it.
pub struct Job<T, E = ()> {
    progress: Arc<Progress>,
    result: Receiver<T>,
    events: Receiver<E>,
}

impl<T: Send + 'static, E: Send + 'static> Job<T, E> {
    /// Run `work` on `input` on a thread named `name`; `wake` is called when it has finished
    /// (and on every event). When no thread starts, the input comes back with the error.
    pub fn spawn<I: Send + 'static>(
        name: &str,
        input: I,
        wake: Wake,
        work: impl FnOnce(I, &Worker<E>) -> T + Send + 'static,
    ) -> Result<Self, NotStarted<I>> {
        let progress = Arc::new(Progress::default());
        let (tx, result) = bounded(1);
        let (etx, events) = unbounded();
        // The input follows the thread once it runs, so a refused thread leaves it with us.
        let (itx, irx) = bounded::<I>(1);
        let worker = Worker {
            progress: progress.clone(),
            events: etx,
            wake,
            last_wake: std::sync::Mutex::new(None),
        };
        let spawned = spawn(name, move || {
            let Ok(input) = irx.recv() else { return };
            let r = work(input, &worker);
            let _ = tx.send(r);
            (worker.wake)();
        });
        match spawned {
            Ok(()) => {
                let _ = itx.send(input);
                Ok(Self {
                    progress,
                    result,
                    events,
                })
            }
            Err(error) => Err(NotStarted {
                error,
                input: Box::new(input),
            }),
        }
    }
}

impl<T, E> Job<T, E> {
    /// The result once the worker has finished: waits up to `timeout`, or only looks (None).
    pub fn take(&self, timeout: Option<Duration>) -> Option<Result<T, JobError>> {
        match timeout {
            None => match self.result.try_recv() {
                Ok(r) => Some(Ok(r)),
                Err(TryRecvError::Empty) => None,
                Err(TryRecvError::Disconnected) => Some(Err(JobError::Stopped)),
            },
            Some(t) => match self.result.recv_timeout(t) {
                Ok(r) => Some(Ok(r)),
                Err(RecvTimeoutError::Timeout) => None,
                Err(RecvTimeoutError::Disconnected) => Some(Err(JobError::Stopped)),
            },
        }
    }

    /// Block until the result is there (it waits for [`Self::take`]); false on timeout.
    pub fn wait_finished(&self, timeout: Duration) -> bool {
        let t = Instant::now();
        while self.result.is_empty() {
            if t.elapsed() > timeout {
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        true
    }

    /// Events streamed since the last call.
    pub fn events(&self) -> Vec<E> {
        self.events.try_iter().collect()
    }

    /// Progress (stage, fraction) of the work.
    pub fn progress(&self) -> &Progress {
        &self.progress
    }

    /// Ask the work to stop (work that cannot stop has its result dropped, see [`ModelJob`]).
    pub fn cancel(&self) {
        self.progress.cancel();
    }

    /// Whether [`Self::cancel`] was called.
    pub fn is_cancelled(&self) -> bool {
        self.progress.is_cancelled()
    }
}

/// Work on a network on a worker thread: the network travels there and comes back with the
/// result. Cancelling cannot stop a pass inside burn: [`Job::finish`] drops the result of a
/// cancelled pass, and the network still comes back when the pass ends.
pub type ModelJob<T> = Job<(T, AnyModel)>;

impl<T: Send + 'static> Job<(T, AnyModel)> {
    /// Run `work` on `model` (with the job's progress) off the UI thread.
    pub fn with_model(
        name: &str,
        model: AnyModel,
        wake: Wake,
        work: impl FnOnce(&AnyModel, &Progress) -> T + Send + 'static,
    ) -> Result<Self, NotStarted<AnyModel>> {
        Self::spawn(name, model, wake, move |m, w: &Worker<()>| {
            let r = work(&m, &w.progress);
            (r, m)
        })
    }

    /// Once finished: the result (None when cancelled) and the model. Waits up to `timeout`
    /// (None: only looks).
    pub fn finish(
        &self,
        timeout: Option<Duration>,
    ) -> Option<Result<(Option<T>, AnyModel), JobError>> {
        self.take(timeout)
            .map(|r| r.map(|(r, model)| ((!self.is_cancelled()).then_some(r), model)))
    }
}

/// What to load.
#[derive(Clone, Debug)]
pub enum LoadRequest {
    /// Files and folders from disk.
    Paths(Vec<PathBuf>),
    /// The embedded demo pair (full size).
    Demo,
    /// The demo pair on small grids (fast; for tests).
    SmallDemo,
}

/// A finished load: the outcome, and each new volume packed for the GPU (by volume id).
pub type LoadResult = (Result<LoadOutcome, LoadError>, Vec<(u64, Arc<Quantized>)>);

/// A running load and what it loads (for the progress window).
pub struct LoadJob {
    /// The worker.
    pub job: Job<LoadResult>,
    /// What is being loaded.
    pub label: String,
}

impl LoadJob {
    /// Start loading on a worker thread.
    pub fn start(request: LoadRequest, wake: Wake) -> Result<Self, JobError> {
        let label = match &request {
            LoadRequest::Paths(p) if p.len() == 1 => format!("Loading {}", p[0].display()),
            LoadRequest::Paths(p) => format!("Loading {} items", p.len()),
            LoadRequest::Demo | LoadRequest::SmallDemo => "Generating the demo pair".to_string(),
        };
        let job = Job::spawn("load", request, wake, |r, w: &Worker<()>| {
            load(r, &w.progress)
        })
        .map_err(|n| n.error)?;
        Ok(Self { job, label })
    }
}

/// Load (or generate) and pack for the GPU here, so the UI thread only copies when it first draws.
fn load(request: LoadRequest, pr: &Progress) -> LoadResult {
    let result = match request {
        LoadRequest::Paths(paths) => io::load_paths(&paths, pr),
        LoadRequest::Demo | LoadRequest::SmallDemo => {
            pr.start("Generating the demo phantom", 1);
            let cfg = if matches!(request, LoadRequest::SmallDemo) {
                io::phantom::PhantomConfig::small()
            } else {
                io::phantom::PhantomConfig::default()
            };
            let (ct, mr) = rayon::join(
                || io::phantom::phantom_ct(&cfg),
                || io::phantom::phantom_mr(&cfg, io::phantom::MrContrast::T1),
            );
            pr.step();
            Ok(LoadOutcome {
                volumes: vec![ct, mr],
                errors: Vec::new(),
            })
        }
    };
    let packed = match &result {
        Ok(out) => {
            pr.start("Preparing GPU upload", out.volumes.len());
            out.volumes
                .iter()
                .map(|v| {
                    let q = Arc::new(quantise(v));
                    pr.step();
                    (v.id, q)
                })
                .collect()
        }
        Err(_) => Vec::new(),
    };
    (result, packed)
}

/// The start-up GPU self-test on the shared device (its first run compiles shaders).
pub fn start_self_test(wake: Wake) -> Result<Job<Result<SelfTest, String>>, JobError> {
    Job::spawn("gpu-self-test", (), wake, |(), _: &Worker<()>| {
        let r = gpu::shared()
            .map_err(|e| e.to_string())
            .and_then(|g| gpu::self_test(&g.device, 64).map_err(|e| e.to_string()));
        // Choose the compute device here, off the UI thread (`auto` measures once per machine).
        if let Err(e) = gpu::compute() {
            log::warn!("no compute device: {e}");
        }
        r
    })
    .map_err(|n| n.error)
}

/// A registration on a worker thread, streaming its metric curve.
pub type RegisterJob = Job<Result<RegistrationResult, RegisterError>, IterationReport>;

/// Register `moving` to `fixed` (samples where `mask` is non-zero, if given) on a worker.
pub fn start_registration(
    fixed: Arc<Volume>,
    moving: Arc<Volume>,
    mask: Option<Arc<Volume>>,
    cfg: RegistrationConfig,
    wake: Wake,
) -> Result<RegisterJob, JobError> {
    Job::spawn("register", (), wake, move |(), w| {
        crate::register::register(&fixed, &moving, mask.as_deref(), &cfg, &w.progress, |it| {
            w.emit(it.clone())
        })
    })
    .map_err(|n| n.error)
}

/// What a finished synthesis returns: the synthetic volume (or why not), and its metrics
/// against the reference when one was given.
pub type SynthOutput = (
    Result<Volume, crate::synth::SynthError>,
    Option<Result<Vec<crate::analysis::MetricsReport>, String>>,
);

/// Synthesise from `input` with `model` (on the job's `progress`); with `reference` (and the
/// transform that maps the reference's points to the input's), also compute metrics on the
/// reference grid.
pub fn synthesize_and_compare(
    model: &AnyModel,
    direction: crate::model::Direction,
    input: &Volume,
    reference: Option<(&Volume, Option<Affine>)>,
    progress: &Progress,
) -> SynthOutput {
    use crate::volume::resample::resample;
    let r = match gpu::compute() {
        Ok(g) => crate::synth::synthesize(model, direction, input, 0, &g.device, progress),
        Err(e) => Err(crate::synth::SynthError::Device(e.to_string())),
    };
    let metrics = match (&r, reference) {
        (Ok(s), Some((reference, t))) => {
            let on_ref = match t {
                Some(t) => resample(s, &reference.geometry, &t, s.min_max().0),
                None if s.geometry.dims == reference.geometry.dims => s.clone(),
                None => resample(
                    s,
                    &reference.geometry,
                    &Affine::identity([0.0; 3]),
                    s.min_max().0,
                ),
            };
            Some(
                crate::analysis::evaluate_volumes(&on_ref, reference, None, None)
                    .map_err(|e| e.to_string()),
            )
        }
        _ => None,
    };
    (r, metrics)
}

/// Where a run's training pairs come from, as the Training panel offers them.
#[derive(Clone)]
pub enum TrainData {
    /// The CT and MR loaded in the app, with the registration (CT point -> MR point) if any.
    Loaded {
        /// CT role.
        ct: Arc<Volume>,
        /// MR role.
        mr: Arc<Volume>,
        /// Registration.
        transform: Option<Affine>,
    },
    /// What the config names (demo phantoms, a folder, a pair of files).
    FromConfig,
}

/// The pair loaded in the app as one training case on the input modality's grid.
fn loaded_case(
    ct: &Volume,
    mr: &Volume,
    transform: Option<Affine>,
    direction: crate::model::Direction,
) -> Result<crate::train::Case, String> {
    use crate::model::Direction;
    use crate::volume::resample::resample;
    let ct_to_mr = transform.unwrap_or_else(|| Affine::identity([0.0; 3]));
    let case = match direction {
        Direction::MrToCt => {
            let mr_to_ct = ct_to_mr
                .inverse()
                .ok_or("the registration cannot be inverted")?;
            let ct_on_mr = resample(ct, &mr.geometry, &mr_to_ct, -1000.0);
            crate::train::Case::from_pair("loaded pair", &ct_on_mr, mr, None, direction)
        }
        Direction::CtToMr => {
            let mr_on_ct = resample(mr, &ct.geometry, &ct_to_mr, 0.0);
            crate::train::Case::from_pair("loaded pair", ct, &mr_on_ct, None, direction)
        }
        // The loaded CT is the normal dose; its low dose is simulated in the projection domain.
        Direction::CtDenoise => {
            let dose = crate::synth::ldct::DoseConfig::default();
            let low = crate::synth::ldct::low_dose_of(ct, &dose, 0).map_err(|e| e.to_string())?;
            crate::train::data::denoise_case("loaded CT (simulated low dose)", &low, ct)
        }
    };
    case.map_err(|e| e.to_string())
}

/// A training run on a worker thread (on the shared device's autodiff twin).
pub struct TrainJob {
    /// The worker: the run's summary at the end, its events as it goes.
    pub job: Job<Result<crate::train::RunSummary, String>, crate::train::TrainEvent>,
    /// Pause / resume / stop.
    pub control: Arc<crate::train::Control>,
    /// The run folder.
    pub run_dir: PathBuf,
}

impl TrainJob {
    /// Start training `cfg` on `data`, writing `run_dir` (continuing it from its last completed
    /// epoch when `resume`).
    pub fn start(
        cfg: crate::train::TrainConfig,
        data: TrainData,
        run_dir: PathBuf,
        resume: bool,
        wake: Wake,
    ) -> Result<Self, JobError> {
        Self::start_on(cfg, data, run_dir, resume, wake, None)
    }

    /// [`Self::start`] on `remote` (a `ws://` device and its token file) instead of the shared
    /// compute device when given: connected on the worker, and a dropped connection ends the
    /// run with a message naming the server and the checkpoint to resume from.
    pub fn start_on(
        cfg: crate::train::TrainConfig,
        data: TrainData,
        run_dir: PathBuf,
        resume: bool,
        wake: Wake,
        remote: Option<(gpu::DeviceSpec, Option<PathBuf>)>,
    ) -> Result<Self, JobError> {
        let control = Arc::new(crate::train::Control::default());
        let (c, dir) = (control.clone(), run_dir.clone());
        let job = Job::spawn("train", (), wake, move |(), w| {
            let device = match &remote {
                None => gpu::compute_device().map_err(|e| e.to_string())?,
                Some((spec, token)) => {
                    w.progress.start(&format!("Connecting to {spec}"), 1);
                    gpu::remote::choose_spec(Some(spec), token.as_deref())
                        .map_err(|e| e.to_string())?
                        .device
                }
            };
            // A config's data loads whole, or streams from an index when the folder is large
            // or the config says `stream = true` (train::load_dataset).
            let dataset = match data {
                TrainData::Loaded { ct, mr, transform } => {
                    w.progress.start("Resampling the loaded pair", 1);
                    let cases = vec![loaded_case(&ct, &mr, transform, cfg.direction)?];
                    crate::train::Dataset::split(cases, cfg.validation_fraction)
                }
                TrainData::FromConfig => {
                    crate::train::load_dataset(&cfg, &w.progress).map_err(|e| e.to_string())?
                }
            };
            let run = if resume {
                crate::train::resume
            } else {
                crate::train::train
            };
            let go = || {
                run(&cfg, &dataset, &dir, &device, &c, &mut |e| w.emit(e)).map_err(|e| e.to_string())
            };
            match &remote {
                Some((gpu::DeviceSpec::Remote { url, .. }, _)) => {
                    gpu::remote::guard_connection(url, go).map_err(|lost| {
                        match crate::train::ResumeState::read(&dir) {
                            Ok(s) => format!(
                                "{lost}; {} holds the resumable checkpoint of epoch {} (Resume it once the server is back)",
                                dir.display(),
                                s.epoch
                            ),
                            Err(_) => format!("{lost}; no epoch had finished"),
                        }
                    })?
                }
                _ => go(),
            }
        })
        .map_err(|n| n.error)?;
        Ok(Self {
            job,
            control,
            run_dir,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_wake() -> Wake {
        Arc::new(|| {})
    }

    #[test]
    fn a_job_streams_events_then_gives_its_result() {
        let job: Job<u32, u32> = Job::spawn("test", 3, no_wake(), |n, w| {
            for i in 0..n {
                w.emit(i);
            }
            n * 10
        })
        .expect("a thread");
        let r = job.take(Some(Duration::from_secs(10)));
        assert!(matches!(r, Some(Ok(30))));
        assert_eq!(job.events(), vec![0, 1, 2]);
    }

    #[test]
    fn events_wake_the_ui_at_most_every_event_repaint() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let wakes = Arc::new(AtomicUsize::new(0));
        let w = wakes.clone();
        let wake: Wake = Arc::new(move || {
            w.fetch_add(1, Ordering::SeqCst);
        });
        let job: Job<(), u32> = Job::spawn("test", (), wake, |(), w| {
            // A burst: one wake for all of it.
            for i in 0..1000 {
                w.emit(i);
            }
            std::thread::sleep(EVENT_REPAINT + Duration::from_millis(20));
            // After a quiet spell an event wakes the UI at once.
            w.emit(1000);
        })
        .expect("a thread");
        assert!(matches!(
            job.take(Some(Duration::from_secs(10))),
            Some(Ok(()))
        ));
        // Every event arrives; the wakes: the burst's first, the late event, the result.
        assert_eq!(job.events().len(), 1001);
        // The result's wake follows its send (the UI must find it when woken), so `take` can
        // return just before it: wait for it, then check no further wake comes.
        let t = Instant::now();
        while wakes.load(Ordering::SeqCst) < 3 && t.elapsed() < Duration::from_secs(5) {
            std::thread::sleep(Duration::from_millis(5));
        }
        std::thread::sleep(Duration::from_millis(50));
        assert_eq!(wakes.load(Ordering::SeqCst), 3);
    }

    #[test]
    fn a_worker_that_panics_is_reported() {
        let job: Job<()> =
            Job::spawn("test", (), no_wake(), |(), _| panic!("boom")).expect("a thread");
        assert!(matches!(
            job.take(Some(Duration::from_secs(10))),
            Some(Err(JobError::Stopped))
        ));
    }

    #[test]
    fn cancelling_sets_the_shared_flag() {
        let (go, wait) = bounded::<()>(1);
        let job: Job<bool> = Job::spawn("test", (), no_wake(), move |(), w| {
            let _ = wait.recv();
            w.progress.is_cancelled()
        })
        .expect("a thread");
        job.cancel();
        let _ = go.send(());
        assert!(job.is_cancelled());
        assert!(matches!(
            job.take(Some(Duration::from_secs(10))),
            Some(Ok(true))
        ));
    }
}
