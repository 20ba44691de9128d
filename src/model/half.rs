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
