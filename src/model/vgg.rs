//! VGG-19's convolutional part, for the contextual loss (the DRUNet paper takes conv5_4). Its
//! weights cannot be downloaded here: users load torchvision's `vgg19` state dict from a file
//! (`.pth`/`.pt` or `.safetensors`); the keys `features.N.weight/bias` map onto our 16 layers.

use burn::module::Module;
use burn::nn::PaddingConfig2d;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::pool::{MaxPool2d, MaxPool2dConfig};
use burn::store::{KeyRemapper, ModuleSnapshot, PytorchStore, SafetensorsStore};
use burn::tensor::activation::relu;
use burn::tensor::{Device, Tensor, TensorData};
use std::path::Path;

/// Layer names, in order.
pub const VGG19_LAYERS: [&str; 16] = [
    "conv1_1", "conv1_2", "conv2_1", "conv2_2", "conv3_1", "conv3_2", "conv3_3", "conv3_4",
    "conv4_1", "conv4_2", "conv4_3", "conv4_4", "conv5_1", "conv5_2", "conv5_3", "conv5_4",
];

/// torchvision's index in `features` of each convolution.
const TORCHVISION_INDEX: [usize; 16] = [0, 2, 5, 7, 10, 12, 14, 16, 19, 21, 23, 25, 28, 30, 32, 34];

/// VGG-19 feature extractor (convolutions and max pools; no classifier head).
#[derive(Module, Debug)]
pub struct Vgg19 {
    convs: Vec<Conv2d>,
    pool: MaxPool2d,
}

impl Vgg19 {
    /// Fresh (random) weights on `device`.
    pub fn new(device: &Device) -> Self {
        let widths = [
            64, 64, 128, 128, 256, 256, 256, 256, 512, 512, 512, 512, 512, 512, 512, 512,
        ];
        let mut cin = 3;
        let convs = widths
            .iter()
            .map(|&w| {
                let c = Conv2dConfig::new([cin, w], [3, 3])
                    .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
                    .init(device);
                cin = w;
                c
            })
            .collect();
        Self {
            convs,
            pool: MaxPool2dConfig::new([2, 2]).with_strides([2, 2]).init(),
        }
    }

    /// Weights of convolution `k` (0 = conv1_1): [out, in, 3, 3].
    pub fn conv_weight(&self, k: usize) -> Tensor<4> {
        self.convs[k.min(15)].weight.val()
    }

    /// Index of a layer name ("conv5_4").
    pub fn layer_index(name: &str) -> Option<usize> {
        VGG19_LAYERS.iter().position(|n| *n == name)
    }

    /// Load torchvision weights (`features.N.weight`, `features.N.bias`; the classifier head is
    /// ignored). Every convolution must be found.
    pub fn load_torchvision(path: &Path, device: &Device) -> Result<Self, super::ModelError> {
        let mut model = Self::new(device);
        let e = |err: String| super::ModelError::file(path, err);
        let name = path.to_string_lossy().to_ascii_lowercase();
        // torchvision's `features.N.` (N skipping the ReLU and pool slots) -> our `convs.k.`.
        let remapper = TORCHVISION_INDEX
            .iter()
            .enumerate()
            .try_fold(KeyRemapper::new(), |r, (k, idx)| {
                r.add_pattern(format!(r"^features\.{idx}\."), format!("convs.{k}."))
            })
            .map_err(|err| e(err.to_string()))?;
        let result = if name.ends_with(".safetensors") {
            let mut store = SafetensorsStore::from_file(path)
                .allow_partial(true)
                .remap(remapper);
            model
                .load_from(&mut store)
                .map_err(|err| e(format!("{err:?}")))?
        } else if name.ends_with(".pth") || name.ends_with(".pt") {
            let mut store = PytorchStore::from_file(path)
                .allow_partial(true)
                .remap(remapper);
            model
                .load_from(&mut store)
                .map_err(|err| e(format!("{err:?}")))?
        } else {
            return Err(e("VGG-19 weights must be .pth, .pt or .safetensors".into()));
        };
        if !result.errors.is_empty() {
            return Err(e(format!(
                "tensors do not fit: {:?}",
                result.errors.iter().take(3).collect::<Vec<_>>()
            )));
        }
        if !result.missing.is_empty() {
            return Err(e(format!(
                "not torchvision VGG-19 weights: {} of 32 tensors missing (e.g. {:?})",
                result.missing.len(),
                result
                    .missing
                    .iter()
                    .take(2)
                    .map(|(p, _)| p)
                    .collect::<Vec<_>>()
            )));
        }
        Ok(model)
    }

    /// Features of grey images x: [B, 1, H, W] in 0..1 (repeated to RGB, ImageNet-normalised)
    /// after the ReLU of layer `layer` (see [`VGG19_LAYERS`]).
    pub fn features(&self, x: Tensor<4>, layer: usize) -> Tensor<4> {
        let device = x.device();
        let mean = Tensor::<4>::from_data(
            TensorData::new(vec![0.485f32, 0.456, 0.406], [1, 3, 1, 1]),
            &device,
        );
        let std = Tensor::<4>::from_data(
            TensorData::new(vec![0.229f32, 0.224, 0.225], [1, 3, 1, 1]),
            &device,
        );
        let mut y = (Tensor::cat(vec![x.clone(), x.clone(), x], 1) - mean) / std;
        // Pools follow conv1_2, conv2_2, conv3_4, conv4_4.
        let pool_after = [1, 3, 7, 11];
        for (k, c) in self.convs.iter().enumerate().take(layer.min(15) + 1) {
            y = relu(c.forward(y));
            if pool_after.contains(&k) && k < layer {
                y = super::cpu_pool::max_pool(&self.pool, y);
            }
        }
        y
    }
}
