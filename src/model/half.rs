//! f16 inference on adapters that compute in half precision (wgpu's `SHADER_F16`): the network's
//! weights cast once, the input cast on the way in and the output back to f32 on the way out.
//! burn 0.22.1's wgpu backend (cubecl-wgpu 0.11) registers f16 as a usable element type only
//! where the adapter reports `SHADER_F16`; elsewhere f16 tensors fail at kernel compilation, so
//! callers check [`supports_f16`] first. The CPU device (burn-flex) computes f16 by converting
//! to f32 and back around every op (no gain), so this is for GPUs only.

use burn::module::{Module, ModuleMapper, Param};
use burn::tensor::{FloatDType, Tensor};

/// Casts every float parameter (and running statistic) of a module to one float type.
struct CastFloats(FloatDType);

impl ModuleMapper for CastFloats {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let dtype = self.0;
        param.map(|t| t.cast(dtype))
    }
}

/// The module with every float tensor in f16 (for [`forward_f16`]).
pub fn to_f16<M: Module>(module: M) -> M {
    module.map(&mut CastFloats(FloatDType::F16))
}

/// The module with every float tensor back in f32.
pub fn to_f32<M: Module>(module: M) -> M {
    module.map(&mut CastFloats(FloatDType::F32))
}

/// `forward` of an f16 module ([`to_f16`]) on an f32 input, the output in f32.
pub fn forward_f16(x: Tensor<4>, forward: impl FnOnce(Tensor<4>) -> Tensor<4>) -> Tensor<4> {
    forward(x.cast(FloatDType::F16)).cast(FloatDType::F32)
}

/// Whether the wgpu device `features` were created with can run f16 kernels.
pub fn supports_f16(features: burn::tensor::wgpu::wgpu::Features) -> bool {
    features.contains(burn::tensor::wgpu::wgpu::Features::SHADER_F16)
}

/// The float type inference computes in.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Precision {
    /// f16 on a hardware GPU that computes it (`SHADER_F16`), f32 everywhere else.
    #[default]
    Auto,
    /// Always f32.
    F32,
    /// f16 (refused on a device that cannot compute it).
    F16,
}

impl std::str::FromStr for Precision {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "auto" | "" => Ok(Precision::Auto),
            "f32" | "fp32" | "float32" => Ok(Precision::F32),
            "f16" | "fp16" | "half" | "float16" => Ok(Precision::F16),
            other => Err(format!("unknown precision {other:?}: auto, f32 or f16")),
        }
    }
}

impl std::fmt::Display for Precision {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Precision::Auto => "auto",
            Precision::F32 => "f32",
            Precision::F16 => "f16",
        })
    }
}

/// Whether `device` can run f16 kernels: the shared wgpu device on an adapter reporting
/// `SHADER_F16` (burn-flex and remote devices: no).
pub fn device_supports_f16(device: &burn::tensor::Device) -> bool {
    crate::gpu::shared_if_device(device).is_some_and(|g| supports_f16(g.setup.device.features()))
}

impl Precision {
    /// Whether to compute in f16 on `device`: `Auto` picks it on a hardware GPU that computes
    /// f16 (on a software adapter such as lavapipe it gains nothing), `F16` insists and is an
    /// error where the device cannot.
    pub fn use_f16(self, device: &burn::tensor::Device) -> Result<bool, super::ModelError> {
        match self {
            Precision::F32 => Ok(false),
            Precision::Auto => Ok(crate::gpu::shared_if_device(device).is_some_and(|g| {
                !g.report.software && supports_f16(g.setup.device.features())
            })),
            Precision::F16 if device_supports_f16(device) => Ok(true),
            Precision::F16 => Err(super::ModelError::Unsupported(
                "f16 needs the wgpu device on an adapter with SHADER_F16 (burn's CPU backend and remote devices compute in f32): use --precision f32 or --device gpu"
                    .into(),
            )),
        }
    }
}
