//! The compute device: where the networks run (inference, training, Grad-CAM, feature maps).
//!
//! On a real GPU that is the shared wgpu device the views draw with. On a software adapter
//! (Mesa lavapipe) wgpu runs on the same CPU cores as burn's own CPU backend, burn-flex, which is
//! several times faster there; so `auto` times a short convolution on each candidate once per
//! machine, keeps the faster, and caches the choice (keyed by adapter and build) in
//! `$XDG_CACHE_HOME/synthscope/compute-device.json`. `--device cpu|gpu` on the command line and
//! `SYNTHSCOPE_DEVICE=auto|cpu|gpu` in the environment override it. The views always draw on
//! wgpu, and registration's GPU metric keeps using the wgpu device.

use super::{GpuError, shared};
use burn::tensor::ops::ConvOptions;
use burn::tensor::{Device, Distribution, Tensor};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Instant;

/// The environment variable that picks the compute device (`auto`, `cpu` or `gpu`).
pub const DEVICE_ENV: &str = "SYNTHSCOPE_DEVICE";

/// What the user asked for.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeviceChoice {
    /// Measure once per machine and keep the faster (cached).
    #[default]
    Auto,
    /// burn's CPU backend (burn-flex).
    Cpu,
    /// The shared wgpu device.
    Gpu,
}

impl std::str::FromStr for DeviceChoice {
    type Err = GpuError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "auto" | "" => Ok(DeviceChoice::Auto),
            "cpu" | "flex" => Ok(DeviceChoice::Cpu),
            "gpu" | "wgpu" => Ok(DeviceChoice::Gpu),
            other => Err(GpuError::Choice(format!(
                "unknown compute device {other:?}: auto, cpu or gpu"
            ))),
        }
    }
}

impl std::fmt::Display for DeviceChoice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            DeviceChoice::Auto => "auto",
            DeviceChoice::Cpu => "cpu",
            DeviceChoice::Gpu => "gpu",
        })
    }
}

impl DeviceChoice {
    /// The choice in `SYNTHSCOPE_DEVICE` (auto when unset; an error when unreadable).
    pub fn from_env() -> Result<Self, GpuError> {
        match std::env::var(DEVICE_ENV) {
            Ok(v) => v.parse(),
            Err(_) => Ok(DeviceChoice::Auto),
        }
    }
}

/// Which backend computes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ComputeKind {
    /// burn-flex on the CPU cores.
    Cpu,
    /// burn-wgpu on the shared device.
    Gpu,
    /// A device on a `synthscope serve` server (see [`super::remote`]).
    Remote,
}

/// Milliseconds of the probe convolution on each candidate (None: not measured or unavailable).
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize)]
pub struct Probe {
    /// burn-flex.
    pub cpu_ms: Option<f64>,
    /// The shared wgpu device.
    pub gpu_ms: Option<f64>,
}

/// The compute device and why it was chosen.
#[derive(Clone, Debug)]
pub struct ComputeDevice {
    /// burn's runtime device the networks run on.
    pub device: Device,
    /// Its backend.
    pub kind: ComputeKind,
    /// What was asked for.
    pub asked: DeviceChoice,
    /// Why this one, in a sentence.
    pub reason: String,
    /// The measurement behind an `auto` choice.
    pub probe: Probe,
    /// True when the choice came from the cache (no measurement in this process).
    pub cached: bool,
}

impl ComputeDevice {
    /// One line for the status bar and command output, e.g. "CPU (burn-flex, 2 threads)".
    pub fn summary(&self) -> String {
        label(&self.device)
    }

    /// A few words for the status bar: "CPU (burn-flex)" or "GPU (burn-wgpu)".
    pub fn short(&self) -> &'static str {
        match self.kind {
            ComputeKind::Cpu => "CPU (burn-flex)",
            ComputeKind::Gpu => "GPU (burn-wgpu)",
            ComputeKind::Remote => "remote (burn-remote)",
        }
    }

    /// The summary and the reason, for self-test and benchmarks.
    pub fn describe(&self) -> String {
        format!("{}: {}", self.summary(), self.reason)
    }
}

/// The backend of `device` (autodiff or not).
pub fn kind_of(device: &Device) -> ComputeKind {
    if super::remote::url_of(device).is_some() {
        ComputeKind::Remote
    } else if *device == Device::flex() {
        ComputeKind::Cpu
    } else {
        ComputeKind::Gpu
    }
}

/// One line naming `device`'s backend (and adapter), for run summaries and benchmarks.
pub fn label(device: &Device) -> String {
    match kind_of(device) {
        ComputeKind::Cpu => cpu_label(),
        ComputeKind::Gpu => gpu_label(),
        ComputeKind::Remote => format!(
            "remote ({}, burn-remote over unencrypted websocket)",
            super::remote::url_of(device).unwrap_or_default()
        ),
    }
}

fn cpu_label() -> String {
    format!(
        "CPU (burn-flex, {} threads)",
        std::thread::available_parallelism().map_or(1, |n| n.get())
    )
}

fn gpu_label() -> String {
    match shared() {
        Ok(g) => format!("GPU (burn-wgpu on {})", g.report.summary()),
        Err(_) => "GPU (burn-wgpu)".to_string(),
    }
}

/// The probe: a 3x3 convolution (32 -> 32 channels, batch 2, 128^2) and ReLU, read back.
fn probe_once(device: &Device) -> Result<f64, GpuError> {
    let x = Tensor::<4>::random([2, 32, 128, 128], Distribution::Normal(0.0, 1.0), device);
    let w = Tensor::<4>::random([32, 32, 3, 3], Distribution::Normal(0.0, 0.1), device);
    let t = Instant::now();
    let y = burn::tensor::activation::relu(burn::tensor::module::conv2d(
        x,
        w,
        None,
        ConvOptions::new([1, 1], [1, 1], [1, 1], 1),
    ));
    y.sum()
        .into_data()
        .try_to_vec::<f32>()
        .map_err(|e| GpuError::Compute(format!("{e:?}")))?;
    Ok(t.elapsed().as_secs_f64() * 1e3)
}

/// Best of three probes after one warm-up (which compiles the kernels on wgpu).
pub fn probe_ms(device: &Device) -> Result<f64, GpuError> {
    probe_once(device)?;
    let mut best = f64::INFINITY;
    for _ in 0..3 {
        best = best.min(probe_once(device)?);
    }
    Ok(best)
}

/// A cached `auto` decision.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct CacheEntry {
    kind: ComputeKind,
    probe: Probe,
    measured_unix: u64,
}

/// The cache file: decisions keyed by adapter and build.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct CacheFile {
    entries: BTreeMap<String, CacheEntry>,
}

/// Where `auto` keeps its decision: `$XDG_CACHE_HOME/synthscope/compute-device.json` (or
/// `~/.cache/...`); None without a home.
pub fn cache_path() -> Option<PathBuf> {
    std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .map(|b| b.join("synthscope").join("compute-device.json"))
}

/// The cache key: the adapter (name and driver) and this build.
fn cache_key(adapter: &str) -> String {
    format!(
        "{adapter} | synthscope {} | burn 0.22.1 | {} threads",
        env!("CARGO_PKG_VERSION"),
        std::thread::available_parallelism().map_or(1, |n| n.get())
    )
}

fn read_cache() -> CacheFile {
    cache_path()
        .and_then(|p| std::fs::read_to_string(p).ok())
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or_default()
}

/// Store a decision (written to a temporary name and renamed: concurrent processes never read
/// a torn file; a failure only costs a measurement next time).
fn write_cache(key: &str, entry: CacheEntry) {
    let Some(path) = cache_path() else { return };
    let mut file = read_cache();
    file.entries.insert(key.to_string(), entry);
    let tmp = path.with_extension(format!("json.{}.partial", std::process::id()));
    let r = path
        .parent()
        .map_or(Ok(()), std::fs::create_dir_all)
        .and_then(|_| {
            serde_json::to_string_pretty(&file).map_err(|e| std::io::Error::other(e.to_string()))
        })
        .and_then(|text| std::fs::write(&tmp, text))
        .and_then(|_| std::fs::rename(&tmp, &path));
    if let Err(e) = r {
        log::warn!("cannot cache the compute device in {}: {e}", path.display());
    }
}

/// Keep large freed blocks in the heap for reuse. burn-flex allocates every activation afresh;
/// glibc serves blocks above its mmap threshold (at most 32 MiB by default: a U-Net's
/// [4, 32, 256, 256] activation is 33.5 MB) straight from the kernel and unmaps them on free,
/// so each such tensor paid ~17 ms of page faults on first touch (the U-Net's 256^2 ReLUs took
/// 17 ms each; 1110 -> 853 ms per batch of its ops here). The cost: the process keeps its peak
/// heap instead of returning it to the system.
fn keep_large_blocks() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        static ONCE: std::sync::Once = std::sync::Once::new();
        ONCE.call_once(|| {
            // SAFETY: mallopt only sets allocator parameters; it takes the allocator's own locks.
            let ok = unsafe {
                libc::mallopt(libc::M_MMAP_THRESHOLD, 1 << 30) == 1
                    && libc::mallopt(libc::M_TRIM_THRESHOLD, 1 << 30) == 1
            };
            if !ok {
                log::warn!("mallopt refused the allocator settings for the CPU backend");
            }
        });
    }
}

/// Choose the compute device for `asked` (measuring and caching for `auto`).
pub fn choose(asked: DeviceChoice) -> Result<ComputeDevice, GpuError> {
    let cpu = |reason: String, probe: Probe, cached: bool| ComputeDevice {
        device: {
            keep_large_blocks();
            Device::flex()
        },
        kind: ComputeKind::Cpu,
        asked,
        reason,
        probe,
        cached,
    };
    match asked {
        DeviceChoice::Cpu => {
            return Ok(cpu(
                format!("asked for (--device cpu or {DEVICE_ENV}=cpu)"),
                Probe::default(),
                false,
            ));
        }
        DeviceChoice::Gpu => {
            let g = shared()?;
            return Ok(ComputeDevice {
                device: g.device.clone(),
                kind: ComputeKind::Gpu,
                asked,
                reason: format!(
                    "asked for (--device gpu or {DEVICE_ENV}=gpu){}",
                    if g.report.software {
                        "; a software adapter, expect it to be slower than the CPU backend"
                    } else {
                        ""
                    }
                ),
                probe: Probe::default(),
                cached: false,
            });
        }
        DeviceChoice::Auto => {}
    }
    let g = match shared() {
        Ok(g) => g,
        Err(e) => {
            return Ok(cpu(
                format!("no wgpu adapter to compute on ({e})"),
                Probe::default(),
                false,
            ));
        }
    };
    let key = cache_key(&format!("{} ({})", g.report.name, g.report.driver));
    let describe = |kind: ComputeKind, p: &Probe, cached: bool| {
        let ms = |v: Option<f64>| v.map_or("-".to_string(), |x| format!("{x:.1} ms"));
        format!(
            "measured {}: probe convolution CPU {} vs GPU {} on {}{}",
            if cached { "once (cached)" } else { "now" },
            ms(p.cpu_ms),
            ms(p.gpu_ms),
            g.report.summary(),
            if kind == ComputeKind::Cpu && g.report.software {
                "; the views still draw through wgpu"
            } else {
                ""
            }
        )
    };
    let gpu_device = |reason: String, probe: Probe, cached: bool| ComputeDevice {
        device: g.device.clone(),
        kind: ComputeKind::Gpu,
        asked,
        reason,
        probe,
        cached,
    };
    if let Some(e) = read_cache().entries.get(&key) {
        let reason = describe(e.kind, &e.probe, true);
        return Ok(match e.kind {
            ComputeKind::Cpu => cpu(reason, e.probe, true),
            ComputeKind::Gpu | ComputeKind::Remote => gpu_device(reason, e.probe, true),
        });
    }
    let t = Instant::now();
    let cpu_ms = probe_ms(&Device::flex()).ok();
    let gpu_ms = match probe_ms(&g.device) {
        Ok(ms) => Some(ms),
        Err(e) => {
            log::warn!("GPU probe failed: {e}");
            None
        }
    };
    let probe = Probe { cpu_ms, gpu_ms };
    let kind = match (cpu_ms, gpu_ms) {
        (Some(c), Some(g)) if g <= c => ComputeKind::Gpu,
        (None, Some(_)) => ComputeKind::Gpu,
        _ => ComputeKind::Cpu,
    };
    log::info!(
        "compute device measured in {:.1} s: {kind:?} ({probe:?})",
        t.elapsed().as_secs_f64()
    );
    write_cache(
        &key,
        CacheEntry {
            kind,
            probe,
            measured_unix: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
        },
    );
    let reason = describe(kind, &probe, false);
    Ok(match kind {
        ComputeKind::Cpu => cpu(reason, probe, false),
        ComputeKind::Gpu | ComputeKind::Remote => gpu_device(reason, probe, false),
    })
}

static COMPUTE: OnceLock<Result<ComputeDevice, GpuError>> = OnceLock::new();

/// The process-wide compute device, chosen on first call: from `asked` here when this is the
/// first call, else as first chosen (the command line calls this before any network runs).
pub fn init_compute(asked: DeviceChoice) -> Result<&'static ComputeDevice, GpuError> {
    let c = COMPUTE.get_or_init(|| {
        let c = choose(asked);
        if let Ok(c) = &c {
            log::info!("compute device: {}", c.describe());
        }
        c
    });
    let c = c.as_ref().map_err(Clone::clone)?;
    if c.asked != asked && asked != DeviceChoice::Auto {
        log::warn!(
            "compute device already chosen ({}); ignoring --device {asked}",
            c.summary()
        );
    }
    Ok(c)
}

/// The process-wide compute device (chosen per `SYNTHSCOPE_DEVICE`, default auto, unless the
/// command line chose first).
pub fn compute() -> Result<&'static ComputeDevice, GpuError> {
    match COMPUTE.get() {
        Some(c) => c.as_ref().map_err(Clone::clone),
        None => init_compute(DeviceChoice::from_env()?),
    }
}

/// The compute device, or why there is none, once it has been chosen; None while the first
/// choice is still being measured (never blocks; for the status bar and diagnostics).
pub fn compute_if_chosen() -> Option<Result<&'static ComputeDevice, GpuError>> {
    COMPUTE.get().map(|c| c.as_ref().map_err(Clone::clone))
}

/// burn's device for networks (see [`compute`]).
pub fn compute_device() -> Result<Device, GpuError> {
    compute().map(|c| c.device.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn choices_parse() {
        assert_eq!("auto".parse::<DeviceChoice>().unwrap(), DeviceChoice::Auto);
        assert_eq!("CPU".parse::<DeviceChoice>().unwrap(), DeviceChoice::Cpu);
        assert_eq!("gpu".parse::<DeviceChoice>().unwrap(), DeviceChoice::Gpu);
        assert!("tpu".parse::<DeviceChoice>().is_err());
    }

    #[test]
    fn the_cpu_probe_runs() {
        let ms = probe_ms(&Device::flex()).unwrap();
        assert!(ms.is_finite() && ms > 0.0);
    }
}
