//! The one wgpu device of the process: created once, drawn on by egui, computed on by burn.
//!
//! burn-wgpu acquires the adapter and device (asking for the limits and features its compiler
//! needs) and registers them as its runtime exactly once; the same instance, adapter, device
//! and queue are handed to eframe as an existing setup, so views, inference and training all
//! share one device and one queue. Networks run on the compute device of [`compute`]: this one
//! on a real GPU, burn's CPU backend on a software adapter (measured, cached, overridable).

pub mod compute;
pub mod remote;

pub use compute::{
    ComputeDevice, ComputeKind, DeviceChoice, compute, compute_device, compute_if_chosen,
    init_compute,
};
pub use remote::DeviceSpec;

use burn::tensor::wgpu::{WgpuSetup, wgpu};
use burn::tensor::{Device, Tensor, TensorData};
use serde::Serialize;
use std::sync::OnceLock;
use std::time::Instant;

/// What the status bar says about the adapter.
#[derive(Clone, Debug, Serialize)]
pub struct AdapterReport {
    /// Adapter name, e.g. "llvmpipe (LLVM 15.0.6, 256 bits)".
    pub name: String,
    /// Discrete GPU, integrated GPU, CPU (software) ...
    pub device_type: String,
    /// Vulkan, Metal, DX12, GL ...
    pub backend: String,
    /// Driver name and version.
    pub driver: String,
    /// True for a software rasterizer such as Mesa lavapipe.
    pub software: bool,
}

impl AdapterReport {
    fn from_info(info: &wgpu::AdapterInfo) -> Self {
        let software = info.device_type == wgpu::DeviceType::Cpu;
        Self {
            name: info.name.clone(),
            device_type: format!("{:?}", info.device_type),
            backend: format!("{:?}", info.backend),
            driver: format!("{} {}", info.driver, info.driver_info)
                .trim()
                .to_string(),
            software,
        }
    }

    /// The report of an adapter (the one the views draw with, in the app).
    pub fn from_adapter(adapter: &wgpu::Adapter) -> Self {
        Self::from_info(&adapter.get_info())
    }

    /// One line for the status bar.
    pub fn summary(&self) -> String {
        let kind = if self.software {
            "software adapter, no GPU"
        } else {
            self.device_type.as_str()
        };
        format!("{} ({kind}, {})", self.name, self.backend)
    }
}

/// The process-wide shared device.
pub struct SharedGpu {
    /// The wgpu handles, as burn registered them.
    pub setup: WgpuSetup,
    /// burn's runtime device for those handles.
    pub device: Device,
    /// Adapter description.
    pub report: AdapterReport,
}

impl SharedGpu {
    /// The handles in the form egui-wgpu takes an existing device.
    pub fn egui_setup(&self) -> eframe::egui_wgpu::WgpuSetup {
        eframe::egui_wgpu::WgpuSetup::Existing(eframe::egui_wgpu::WgpuSetupExisting {
            instance: self.setup.instance.clone(),
            adapter: self.setup.adapter.clone(),
            device: self.setup.device.clone(),
            queue: self.setup.queue.clone(),
        })
    }
}

/// Errors creating the shared device.
#[derive(Debug, Clone, thiserror::Error)]
pub enum GpuError {
    /// No adapter, or the device could not be created or registered with burn.
    #[error(
        "no usable GPU device: {0} (on a machine without a GPU, install Mesa's software Vulkan driver: apt-get install mesa-vulkan-drivers)"
    )]
    Init(String),
    /// An unknown compute-device name (`--device`, `SYNTHSCOPE_DEVICE`).
    #[error("{0}")]
    Choice(String),
    /// A burn computation failed.
    #[error("GPU computation failed: {0}")]
    Compute(String),
}

static SHARED: OnceLock<Result<SharedGpu, GpuError>> = OnceLock::new();

/// The shared device, created (and registered with burn) on first call.
pub fn shared() -> Result<&'static SharedGpu, GpuError> {
    SHARED
        .get_or_init(|| {
            let (device, setup) = Device::wgpu_options()
                .init_with_setup()
                .map_err(|e| GpuError::Init(e.to_string()))?;
            let report = AdapterReport::from_info(&setup.adapter.get_info());
            log::info!("shared GPU device: {}", report.summary());
            Ok(SharedGpu {
                setup,
                device,
                report,
            })
        })
        .as_ref()
        .map_err(Clone::clone)
}

/// The shared device if it has been created already (never creates it).
pub fn shared_if_created() -> Option<&'static SharedGpu> {
    SHARED.get().and_then(|r| r.as_ref().ok())
}

/// The shared device when `device` is it (the only wgpu device networks compute on); never
/// creates it.
pub fn shared_if_device(device: &Device) -> Option<&'static SharedGpu> {
    shared_if_created().filter(|g| &g.device == device)
}

/// Result of the start-up self-test.
#[derive(Clone, Debug, Serialize)]
pub struct SelfTest {
    /// Matrix size of the test product.
    pub n: usize,
    /// Sum of relu(A B) computed by burn on the shared device.
    pub gpu_value: f64,
    /// The same, computed on the CPU in f64.
    pub cpu_value: f64,
    /// Relative difference.
    pub rel_error: f64,
    /// Wall time of the GPU computation including upload and read-back (ms).
    pub gpu_ms: f64,
}

impl SelfTest {
    /// True when the GPU agrees with the CPU.
    pub fn passed(&self) -> bool {
        self.rel_error < 1e-4
    }
}

/// Run a small burn computation (`sum(relu(A B))` on an n x n product) on `device` and check it
/// against the CPU.
pub fn self_test(device: &Device, n: usize) -> Result<SelfTest, GpuError> {
    let a: Vec<f32> = (0..n * n)
        .map(|i| ((i * 7 % 13) as f32 - 6.0) / 6.0)
        .collect();
    let b: Vec<f32> = (0..n * n)
        .map(|i| ((i * 5 % 11) as f32 - 5.0) / 5.0)
        .collect();
    let mut cpu = 0f64;
    for r in 0..n {
        for c in 0..n {
            let mut acc = 0f64;
            for k in 0..n {
                acc += a[r * n + k] as f64 * b[k * n + c] as f64;
            }
            cpu += acc.max(0.0);
        }
    }
    let t0 = Instant::now();
    let ta = Tensor::<2>::from_data(TensorData::new(a, [n, n]), device);
    let tb = Tensor::<2>::from_data(TensorData::new(b, [n, n]), device);
    let out = burn::tensor::activation::relu(ta.matmul(tb)).sum();
    let data = out.into_data();
    let gpu = data
        .as_slice::<f32>()
        .map_err(|e| GpuError::Compute(format!("{e:?}")))?
        .first()
        .copied()
        .unwrap_or(f32::NAN) as f64;
    let gpu_ms = t0.elapsed().as_secs_f64() * 1e3;
    device
        .sync()
        .map_err(|e| GpuError::Compute(format!("{e:?}")))?;
    let rel_error = ((gpu - cpu) / cpu.abs().max(1e-12)).abs();
    Ok(SelfTest {
        n,
        gpu_value: gpu,
        cpu_value: cpu,
        rel_error,
        gpu_ms,
    })
}
