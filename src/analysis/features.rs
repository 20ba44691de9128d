//! Feature maps: what one layer of a synthesis network computes for the slice at hand, and the
//! first layer's filters.

use super::AnalysisError;
use crate::model::Direction;
use crate::model::checkpoint::AnyModel;
use crate::model::normalise::network_slice;
use crate::model::tensor_values;
use crate::volume::Volume;
use burn::tensor::{Device, Tensor, TensorData};

/// One layer's activation for one slice: each channel as a row-major image.
#[derive(Clone, Debug)]
pub struct FeatureMaps {
    /// Layer name.
    pub layer: String,
    /// Channel images (at most the requested number).
    pub channels: Vec<Vec<f32>>,
    /// Channels in the layer.
    pub total_channels: usize,
    /// Image width.
    pub width: usize,
    /// Image height.
    pub height: usize,
}

/// The activation of layer `layer` for slice `z` of `input` (normalised as for synthesis).
pub fn slice_features(
    model: &AnyModel,
    direction: Direction,
    input: &Volume,
    z: usize,
    layer: usize,
    max_channels: usize,
    device: &Device,
) -> Result<FeatureMaps, AnalysisError> {
    let (buf, channels, (px, py)) = network_slice(model, direction, input, z);
    let x = Tensor::<4>::from_data(TensorData::new(buf, [1, channels, py, px]), device);
    let names = model.layer_names();
    let layer = layer.min(names.len().saturating_sub(1));
    let act = model
        .activations(x)
        .into_iter()
        .nth(layer)
        .ok_or_else(|| AnalysisError::Input("no such layer".into()))?;
    let [_, c, h, w] = act.dims();
    let vals = tensor_values(act)?;
    let channels = (0..c.min(max_channels))
        .map(|k| vals[k * h * w..(k + 1) * h * w].to_vec())
        .collect();
    Ok(FeatureMaps {
        layer: names[layer].clone(),
        channels,
        total_channels: c,
        width: w,
        height: h,
    })
}

/// The first convolution's filters, averaged over input channels: (k x k images, k).
pub fn first_filters(model: &AnyModel) -> Result<(Vec<Vec<f32>>, usize), AnalysisError> {
    let w = model.first_filters();
    let [o, i, k, _] = w.dims();
    let v = tensor_values(w)?;
    let filters = (0..o)
        .map(|f| {
            (0..k * k)
                .map(|p| (0..i).map(|c| v[((f * i + c) * k * k) + p]).sum::<f32>() / i as f32)
                .collect()
        })
        .collect();
    Ok((filters, k))
}
