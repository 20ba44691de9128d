//! Inference: a trained network turns a whole volume into its other modality, slice by slice in
//! batches on the shared device, with the normalisation training uses and its inverse (see
//! [`crate::model::normalise`]). The network runs in its inference form: batch norms folded into
//! their convolutions once per call ([`AnyModel::folded`]).

pub mod ldct;

use crate::io::Progress;
use crate::model::checkpoint::AnyModel;
use crate::model::normalise::{normalisations, normalised_slices};
use crate::model::{Direction, ModelError, tensor_values};
use crate::volume::{Modality, Volume, VolumeMeta};
use burn::tensor::{Device, Tensor, TensorData};

/// A synthesis network's output for normalised slices: x: [B, C, H, W] in 0..1 (C and the
/// size multiple from [`AnyModel::input_layout`]) -> [B, out, H, W] in 0..1. A CycleGAN
/// generator maps its tanh range to and from 0..1 itself; a classifier is refused.
pub fn forward_normalised(model: &AnyModel, x: Tensor<4>) -> Result<Tensor<4>, ModelError> {
    match model {
        AnyModel::Unet(m) => Ok(m.forward(x)),
        AnyModel::Drunet(m) => Ok(m.forward(x)),
        AnyModel::ResnetGenerator(m) => Ok(m.forward_synth(x)),
        AnyModel::Classifier(_) => Err(ModelError::Unsupported(
            "a classifier cannot synthesise images".into(),
        )),
    }
}

/// Why a synthesis produced no volume.
#[derive(Debug, thiserror::Error)]
pub enum SynthError {
    /// The network failed or cannot synthesise.
    #[error(transparent)]
    Model(#[from] ModelError),
    /// The user cancelled it.
    #[error("synthesis cancelled")]
    Cancelled,
    /// No compute device.
    #[error("no compute device: {0}")]
    Device(String),
}

/// The synthetic counterpart of `input` through `model`, on the input's grid.
///
/// `direction` says what the input is. Slices go through in batches of `batch`; `progress`
/// counts slices and can cancel.
pub fn synthesize(
    model: &AnyModel,
    direction: Direction,
    input: &Volume,
    batch: usize,
    device: &Device,
    progress: &Progress,
) -> Result<Volume, SynthError> {
    synthesize_timed(model, direction, input, batch, device, progress).map(|(v, _)| v)
}

/// Wall time of each stage of [`synthesize`] (s).
#[derive(Clone, Copy, Debug, Default, serde::Serialize)]
pub struct StageTimes {
    /// Folding the batch norms into the convolutions (once per call).
    pub fold: f64,
    /// Normalising, repeating and padding slices, and uploading them.
    pub prepare: f64,
    /// The network's forward pass, including reading its output back.
    pub network: f64,
    /// Undoing the normalisation and assembling the volume.
    pub assemble: f64,
}

/// [`synthesize`], also reporting the time spent in each stage.
pub fn synthesize_timed(
    model: &AnyModel,
    direction: Direction,
    input: &Volume,
    batch: usize,
    device: &Device,
    progress: &Progress,
) -> Result<(Volume, StageTimes), SynthError> {
    let mut times = StageTimes::default();
    let clock = std::time::Instant::now;
    let (norm_in, norm_out, out_modality) = normalisations(direction, input);
    if matches!(model, AnyModel::Classifier(_)) {
        return Err(ModelError::Unsupported("a classifier cannot synthesise images".into()).into());
    }
    let t = clock();
    let model = &model.folded();
    times.fold = t.elapsed().as_secs_f64();
    let (channels, multiple) = model.input_layout();
    let [nx, ny, nz] = input.geometry.dims;
    let (px, py) = (
        nx.div_ceil(multiple) * multiple,
        ny.div_ceil(multiple) * multiple,
    );
    let batch = batch.max(1);
    let mut out = vec![0f32; input.data.len()];
    progress.start("Synthesising", nz);
    for z0 in (0..nz).step_by(batch) {
        progress.check().map_err(|_| SynthError::Cancelled)?;
        let n = batch.min(nz - z0);
        let t0 = clock();
        let buf = normalised_slices(input, z0, n, channels, (px, py), &norm_in);
        let t = Tensor::<4>::from_data(TensorData::new(buf, [n, channels, py, px]), device);
        let t1 = clock();
        let y = forward_normalised(model, t)?;
        let vals = tensor_values(y)?;
        let t2 = clock();
        times.prepare += (t1 - t0).as_secs_f64();
        times.network += (t2 - t1).as_secs_f64();
        for b in 0..n {
            let base = b * px * py; // first output channel
            for yy in 0..ny {
                for x in 0..nx {
                    out[(z0 + b) * nx * ny + x + nx * yy] =
                        norm_out.inverse(vals[base + yy * px + x]);
                }
            }
            progress.step();
        }
        times.assemble += t2.elapsed().as_secs_f64();
    }
    let meta = VolumeMeta {
        modality: out_modality.clone(),
        series_uid: format!("synthetic:{}", input.meta.series_uid),
        description: format!("Synthetic {out_modality} from {}", input.meta.description),
        source: input.meta.source.clone(),
        ..input.meta.clone()
    };
    let mut v = Volume::new(input.geometry.clone(), out, meta);
    if out_modality == Modality::Ct {
        // Whole HU, as scanners store them.
        v.data.iter_mut().for_each(|x| *x = x.round());
    }
    Ok((v, times))
}
