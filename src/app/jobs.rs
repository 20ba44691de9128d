//! Long work off the UI thread: loading files (or generating the demo pair) and the GPU self-test.

use super::render::{Quantized, quantise};
use crate::gpu::{self, SelfTest};
use crate::io::{self, LoadError, LoadOutcome, Progress};
use crossbeam_channel::{Receiver, TryRecvError, bounded};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

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

/// A running load.
pub struct LoadJob {
    /// Progress and cancellation shared with the worker.
    pub progress: Arc<Progress>,
    /// What is being loaded, for the progress window.
    pub label: String,
    /// When it started.
    pub started: Instant,
    rx: Receiver<LoadResult>,
}

impl LoadJob {
    /// Start loading on a worker thread; `wake` is called when it finishes (to repaint the UI).
    pub fn start(request: LoadRequest, wake: impl Fn() + Send + 'static) -> Self {
        let progress = Arc::new(Progress::default());
        let (tx, rx) = bounded(1);
        let label = match &request {
            LoadRequest::Paths(p) if p.len() == 1 => format!("Loading {}", p[0].display()),
            LoadRequest::Paths(p) => format!("Loading {} items", p.len()),
            LoadRequest::Demo | LoadRequest::SmallDemo => "Generating the demo pair".to_string(),
        };
        let pr = progress.clone();
        std::thread::Builder::new()
            .name("load".into())
            .spawn(move || {
                let result = match request {
                    LoadRequest::Paths(paths) => io::load_paths(&paths, &pr),
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
                // Pack for the GPU here, so the UI thread only copies when it first draws.
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
                let _ = tx.send((result, packed));
                wake();
            })
            .unwrap_or_else(|e| panic!("cannot start a worker thread: {e}"));
        Self {
            progress,
            label,
            started: Instant::now(),
            rx,
        }
    }

    /// The result, once the worker has finished.
    pub fn poll(&self) -> Option<LoadResult> {
        match self.rx.try_recv() {
            Ok(r) => Some(r),
            Err(TryRecvError::Empty) => None,
            Err(TryRecvError::Disconnected) => Some((
                Err(LoadError::file(
                    "(worker)",
                    "the loading thread stopped unexpectedly",
                )),
                Vec::new(),
            )),
        }
    }

    /// Block until the worker finishes (tests and the command line).
    pub fn wait(&self, timeout: Duration) -> Option<LoadResult> {
        self.rx.recv_timeout(timeout).ok()
    }
}

/// The start-up GPU self-test, run on a worker (its first run compiles shaders).
pub struct SelfTestJob {
    rx: Receiver<Result<SelfTest, String>>,
}

impl SelfTestJob {
    /// Start the self-test on the shared device.
    pub fn start(wake: impl Fn() + Send + 'static) -> Self {
        let (tx, rx) = bounded(1);
        std::thread::Builder::new()
            .name("gpu-self-test".into())
            .spawn(move || {
                let r = gpu::shared()
                    .map_err(|e| e.to_string())
                    .and_then(|g| gpu::self_test(&g.device, 64).map_err(|e| e.to_string()));
                let _ = tx.send(r);
                wake();
            })
            .unwrap_or_else(|e| panic!("cannot start a worker thread: {e}"));
        Self { rx }
    }

    /// The result once finished.
    pub fn poll(&self) -> Option<Result<SelfTest, String>> {
        self.rx.try_recv().ok()
    }

    /// Block until finished.
    pub fn wait(&self, timeout: Duration) -> Option<Result<SelfTest, String>> {
        self.rx.recv_timeout(timeout).ok()
    }
}

/// A registration running on a worker thread, streaming its metric curve.
pub struct RegisterJob {
    /// Progress and cancellation.
    pub progress: Arc<Progress>,
    /// Metric reports so far.
    pub curve: Vec<crate::register::IterationReport>,
    iter_rx: Receiver<crate::register::IterationReport>,
    rx: Receiver<Result<crate::register::RegistrationResult, crate::register::RegisterError>>,
}

impl RegisterJob {
    /// Register `moving` to `fixed` on a worker.
    pub fn start(
        fixed: Arc<crate::volume::Volume>,
        moving: Arc<crate::volume::Volume>,
        mask: Option<Arc<crate::volume::Volume>>,
        cfg: crate::register::RegistrationConfig,
        wake: impl Fn() + Send + Sync + 'static,
    ) -> Self {
        let progress = Arc::new(Progress::default());
        let (tx, rx) = bounded(1);
        let (itx, iter_rx) = crossbeam_channel::unbounded();
        let pr = progress.clone();
        let wake = Arc::new(wake);
        let w2 = wake.clone();
        std::thread::Builder::new()
            .name("register".into())
            .spawn(move || {
                let r =
                    crate::register::register(&fixed, &moving, mask.as_deref(), &cfg, &pr, |it| {
                        let _ = itx.send(it.clone());
                        w2();
                    });
                let _ = tx.send(r);
                wake();
            })
            .unwrap_or_else(|e| panic!("cannot start a worker thread: {e}"));
        Self {
            progress,
            curve: Vec::new(),
            iter_rx,
            rx,
        }
    }

    /// Take new curve points; the result once finished.
    pub fn poll(
        &mut self,
    ) -> Option<Result<crate::register::RegistrationResult, crate::register::RegisterError>> {
        self.curve.extend(self.iter_rx.try_iter());
        self.rx.try_recv().ok()
    }

    /// Block until finished.
    pub fn wait(
        &mut self,
        timeout: Duration,
    ) -> Option<Result<crate::register::RegistrationResult, crate::register::RegisterError>> {
        let r = self.rx.recv_timeout(timeout).ok();
        self.curve.extend(self.iter_rx.try_iter());
        r
    }
}

/// What a finished synthesis returns: the synthetic volume (or why not), its metrics against the
/// reference when one was given, and the model back.
pub type SynthResult = (
    Result<crate::volume::Volume, LoadError>,
    Option<Result<Vec<crate::analysis::MetricsReport>, String>>,
    crate::model::checkpoint::AnyModel,
);

/// A synthesis running on a worker thread (the model travels with it and comes back).
pub struct SynthJob {
    /// Progress and cancellation.
    pub progress: Arc<Progress>,
    rx: Receiver<SynthResult>,
}

impl SynthJob {
    /// Synthesise from `input`; with `reference` (and the fixed-to-moving transform that puts the
    /// input's grid on it), also compute metrics on the reference grid.
    pub fn start(
        model: crate::model::checkpoint::AnyModel,
        direction: crate::model::Direction,
        input: Arc<crate::volume::Volume>,
        reference: Option<(Arc<crate::volume::Volume>, Option<crate::register::Affine>)>,
        wake: impl Fn() + Send + 'static,
    ) -> Self {
        let progress = Arc::new(Progress::default());
        let (tx, rx) = bounded(1);
        let pr = progress.clone();
        std::thread::Builder::new()
            .name("synthesize".into())
            .spawn(move || {
                let device = crate::gpu::shared().map(|g| g.device.clone());
                let r = match &device {
                    Ok(d) => crate::synth::synthesize(&model, direction, &input, 4, d, &pr),
                    Err(e) => Err(LoadError::file("(gpu)", e.to_string())),
                };
                let metrics = match (&r, &reference) {
                    (Ok(s), Some((reference, t))) => {
                        let on_ref = match t {
                            Some(t) => {
                                crate::register::resample(s, &reference.geometry, t, s.min_max().0)
                            }
                            None if s.geometry.dims == reference.geometry.dims => s.clone(),
                            None => crate::register::resample(
                                s,
                                &reference.geometry,
                                &crate::register::Affine::identity([0.0; 3]),
                                s.min_max().0,
                            ),
                        };
                        Some(crate::analysis::evaluate_volumes(
                            &on_ref, reference, None, None,
                        ))
                    }
                    _ => None,
                };
                let _ = tx.send((r, metrics, model));
                wake();
            })
            .unwrap_or_else(|e| panic!("cannot start a worker thread: {e}"));
        Self { progress, rx }
    }

    /// The result once finished.
    pub fn poll(&self) -> Option<SynthResult> {
        self.rx.try_recv().ok()
    }

    /// Block until finished.
    pub fn wait(&self, timeout: Duration) -> Option<SynthResult> {
        self.rx.recv_timeout(timeout).ok()
    }
}

/// Work on the synthesis model on a worker thread: the model travels there and comes back.
/// Cancelling cannot stop a pass inside burn; it marks the result to be dropped, and the model
/// still comes back when the pass ends.
pub struct ModelJob<T> {
    rx: Receiver<(T, crate::model::checkpoint::AnyModel)>,
    cancelled: std::sync::atomic::AtomicBool,
}

impl<T: Send + 'static> ModelJob<T> {
    /// Run `work` on `model` off the UI thread.
    pub fn start(
        model: crate::model::checkpoint::AnyModel,
        work: impl FnOnce(&crate::model::checkpoint::AnyModel) -> T + Send + 'static,
        wake: impl Fn() + Send + 'static,
    ) -> Self {
        let (tx, rx) = bounded(1);
        std::thread::Builder::new()
            .name("model".into())
            .spawn(move || {
                let r = work(&model);
                let _ = tx.send((r, model));
                wake();
            })
            .unwrap_or_else(|e| panic!("cannot start a worker thread: {e}"));
        Self {
            rx,
            cancelled: Default::default(),
        }
    }

    /// Drop the result when it arrives.
    pub fn cancel(&self) {
        self.cancelled
            .store(true, std::sync::atomic::Ordering::Relaxed);
    }

    /// Whether [`Self::cancel`] was called.
    pub fn is_cancelled(&self) -> bool {
        self.cancelled.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Once finished: the result (None when cancelled) and the model. Waits up to `timeout`
    /// (None: only looks).
    pub fn finish(
        &self,
        timeout: Option<Duration>,
    ) -> Option<(Option<T>, crate::model::checkpoint::AnyModel)> {
        let done = match timeout {
            Some(t) => self.rx.recv_timeout(t).ok(),
            None => self.rx.try_recv().ok(),
        };
        done.map(|(r, model)| ((!self.is_cancelled()).then_some(r), model))
    }
}

/// Where a run's training pairs come from, as the Training panel offers them.
#[derive(Clone)]
pub enum TrainData {
    /// The CT and MR loaded in the app, with the registration (CT point -> MR point) if any.
    Loaded {
        /// CT role.
        ct: Arc<crate::volume::Volume>,
        /// MR role.
        mr: Arc<crate::volume::Volume>,
        /// Registration.
        transform: Option<crate::register::Affine>,
    },
    /// What the config names (demo phantoms, a folder, a pair of files).
    FromConfig,
}

/// The pair loaded in the app as one training case on the input modality's grid.
fn loaded_case(
    ct: &crate::volume::Volume,
    mr: &crate::volume::Volume,
    transform: Option<crate::register::Affine>,
    direction: crate::model::Direction,
) -> Result<crate::train::Case, String> {
    use crate::model::Direction;
    use crate::register::{Affine, resample};
    let ct_to_mr = transform.unwrap_or_else(|| Affine::identity([0.0; 3]));
    match direction {
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
    }
}

/// A training run on a worker thread (on the shared device's autodiff twin).
pub struct TrainJob {
    /// Pause / resume / stop.
    pub control: Arc<crate::train::Control>,
    /// Progress of data preparation (loading a folder, resampling).
    pub progress: Arc<Progress>,
    /// The run folder.
    pub run_dir: PathBuf,
    events: Receiver<crate::train::TrainEvent>,
    rx: Receiver<Result<crate::train::RunSummary, String>>,
}

impl TrainJob {
    /// Start training `cfg` on `data`, writing `run_dir`.
    pub fn start(
        cfg: crate::train::TrainConfig,
        data: TrainData,
        run_dir: PathBuf,
        wake: impl Fn() + Send + Sync + 'static,
    ) -> Self {
        let control = Arc::new(crate::train::Control::default());
        let progress = Arc::new(Progress::default());
        let (tx, rx) = bounded(1);
        let (etx, events) = crossbeam_channel::unbounded();
        let (c, pr, dir) = (control.clone(), progress.clone(), run_dir.clone());
        std::thread::Builder::new()
            .name("train".into())
            .spawn(move || {
                let r = (|| {
                    let device = crate::gpu::shared()
                        .map_err(|e| e.to_string())?
                        .device
                        .clone();
                    let cases = match data {
                        TrainData::Loaded { ct, mr, transform } => {
                            pr.start("Resampling the loaded pair", 1);
                            vec![loaded_case(&ct, &mr, transform, cfg.direction)?]
                        }
                        TrainData::FromConfig => crate::train::data::load_cases(&cfg, &pr)?,
                    };
                    let dataset = crate::train::Dataset::split(cases, cfg.validation_fraction);
                    crate::train::train(&cfg, &dataset, &dir, &device, &c, &mut |e| {
                        let _ = etx.send(e);
                        wake();
                    })
                })();
                let _ = tx.send(r);
                wake();
            })
            .unwrap_or_else(|e| panic!("cannot start a worker thread: {e}"));
        Self {
            control,
            progress,
            run_dir,
            events,
            rx,
        }
    }

    /// Events so far.
    pub fn events(&self) -> Vec<crate::train::TrainEvent> {
        self.events.try_iter().collect()
    }

    /// The summary once finished.
    pub fn poll(&self) -> Option<Result<crate::train::RunSummary, String>> {
        self.rx.try_recv().ok()
    }

    /// Block until the run has finished (its result waits for [`Self::poll`]); false on timeout.
    pub fn wait_finished(&self, timeout: Duration) -> bool {
        let t = Instant::now();
        while self.rx.is_empty() {
            if t.elapsed() > timeout {
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        true
    }
}
