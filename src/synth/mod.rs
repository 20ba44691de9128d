//! Inference: a trained network turns a whole volume into its other modality, slice by slice in
//! batches on the shared device, with the normalisation training uses and its inverse (see
//! [`crate::model::normalise`]). The network runs in its inference form: batch norms folded into
//! their convolutions once per call ([`AnyModel::folded`]).

pub mod ldct;

use crate::io::Progress;
use crate::model::checkpoint::AnyModel;
use crate::model::half::Precision;
use crate::model::normalise::{normalisations, normalised_slices};
use crate::model::{Direction, ModelError, tensor_values};
use crate::volume::{Modality, Volume, VolumeMeta};
use burn::tensor::{Device, FloatDType, Tensor, TensorData};

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

/// How [`synthesize_with`] runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SynthOptions {
    /// Slices per batch; 0 sizes it to the device ([`auto_batch`]).
    pub batch: usize,
    /// The float type the network computes in (see [`Precision::use_f16`]).
    pub precision: Precision,
}

impl Default for SynthOptions {
    fn default() -> Self {
        Self {
            batch: 0,
            precision: Precision::Auto,
        }
    }
}

/// Slices per batch on the CPU device and remote servers: two batches of slices in flight keep
/// both stages busy, and larger batches measured no faster here (176^2 demo MR, batch 4 and
/// 16: 115 and 112 slices/s).
pub const CPU_BATCH: usize = 4;

/// The most slices one batch holds on a GPU.
pub const MAX_GPU_BATCH: usize = 32;

/// Slices per batch for `model` on `device` at a padded slice of `px` x `py`: on the shared GPU
/// as many as keep the largest activations (the first layer's width at full resolution, about
/// six such maps alive at once in the encoder-decoder, in f32 or f16) within a quarter of the
/// adapter's largest buffer and under [`MAX_GPU_BATCH`]; elsewhere [`CPU_BATCH`].
pub fn auto_batch(model: &AnyModel, device: &Device, (px, py): (usize, usize), f16: bool) -> usize {
    let Some(g) = crate::gpu::shared_if_device(device) else {
        return CPU_BATCH;
    };
    let width = model.first_filters().dims()[0].max(1);
    let bytes_per_slice = width * px * py * if f16 { 2 } else { 4 } * 6;
    let budget = (g.setup.device.limits().max_buffer_size / 4) as usize;
    (budget / bytes_per_slice.max(1)).clamp(1, MAX_GPU_BATCH)
}

/// The synthetic counterpart of `input` through `model`, on the input's grid.
///
/// `direction` says what the input is. Slices go through in batches of `batch` (0: sized to
/// the device, [`auto_batch`]); `progress` counts slices and can cancel.
pub fn synthesize(
    model: &AnyModel,
    direction: Direction,
    input: &Volume,
    batch: usize,
    device: &Device,
    progress: &Progress,
) -> Result<Volume, SynthError> {
    let opts = SynthOptions {
        batch,
        ..Default::default()
    };
    synthesize_with(model, direction, input, &opts, device, progress)
}

/// [`synthesize`] with every option.
pub fn synthesize_with(
    model: &AnyModel,
    direction: Direction,
    input: &Volume,
    opts: &SynthOptions,
    device: &Device,
    progress: &Progress,
) -> Result<Volume, SynthError> {
    synthesize_timed(model, direction, input, opts, device, progress).map(|(v, _)| v)
}

/// Wall time of each stage of [`synthesize`] (s).
#[derive(Clone, Copy, Debug, Default, serde::Serialize)]
pub struct StageTimes {
    /// Folding the batch norms into the convolutions (and casting to f16), once per call.
    pub fold: f64,
    /// Normalising, repeating and padding slices on the preparing thread: it works one batch
    /// ahead of the network, so this overlaps [`Self::network`].
    pub prepare: f64,
    /// Waiting for the preparing thread (what [`Self::prepare`] costs beyond the overlap).
    pub wait: f64,
    /// Uploading each batch, the network's forward pass and reading its output back.
    pub network: f64,
    /// Undoing the normalisation and assembling the volume.
    pub assemble: f64,
    /// Whether the network computed in f16.
    pub f16: bool,
    /// Slices per batch it used.
    pub batch: usize,
}

/// [`synthesize_with`], also reporting the time spent in each stage.
///
/// A preparing thread normalises and pads the next batch while the network runs the current
/// one (a bounded hand-over of one batch, so memory stays at two batches of input).
pub fn synthesize_timed(
    model: &AnyModel,
    direction: Direction,
    input: &Volume,
    opts: &SynthOptions,
    device: &Device,
    progress: &Progress,
) -> Result<(Volume, StageTimes), SynthError> {
    let mut times = StageTimes::default();
    let clock = std::time::Instant::now;
    let (norm_in, norm_out, out_modality) = normalisations(direction, input);
    if matches!(model, AnyModel::Classifier(_)) {
        return Err(ModelError::Unsupported("a classifier cannot synthesise images".into()).into());
    }
    let f16 = opts.precision.use_f16(device)?;
    let t = clock();
    let folded = model.folded();
    let model = &if f16 { folded.to_f16() } else { folded };
    times.fold = t.elapsed().as_secs_f64();
    times.f16 = f16;
    let (channels, multiple) = model.input_layout();
    let [nx, ny, nz] = input.geometry.dims;
    let (px, py) = (
        nx.div_ceil(multiple) * multiple,
        ny.div_ceil(multiple) * multiple,
    );
    let batch = match opts.batch {
        0 => auto_batch(model, device, (px, py), f16),
        b => b,
    };
    times.batch = batch;
    let mut out = vec![0f32; input.data.len()];
    progress.start("Synthesising", nz);
    std::thread::scope(|scope| -> Result<(), SynthError> {
        let (tx, rx) = std::sync::mpsc::sync_channel::<(usize, usize, Vec<f32>, f64)>(1);
        let norm_in = &norm_in;
        scope.spawn(move || {
            for z0 in (0..nz).step_by(batch) {
                let n = batch.min(nz - z0);
                let t0 = clock();
                let buf = normalised_slices(input, z0, n, channels, (px, py), norm_in);
                // The receiver is gone when the network failed or the user cancelled.
                if tx.send((z0, n, buf, t0.elapsed().as_secs_f64())).is_err() {
                    break;
                }
            }
        });
        loop {
            progress.check().map_err(|_| SynthError::Cancelled)?;
            let t0 = clock();
            let Ok((z0, n, buf, prep)) = rx.recv() else {
                break;
            };
            let t1 = clock();
            let x = Tensor::<4>::from_data(TensorData::new(buf, [n, channels, py, px]), device);
            // f16 in, f16 through the network, f32 out (as `half::forward_f16`).
            let x = if f16 { x.cast(FloatDType::F16) } else { x };
            let y = forward_normalised(model, x)?;
            let y = if f16 { y.cast(FloatDType::F32) } else { y };
            let vals = tensor_values(y)?;
            let t2 = clock();
            times.prepare += prep;
            times.wait += (t1 - t0).as_secs_f64();
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
        Ok(())
    })?;
    let meta = VolumeMeta {
        modality: out_modality.clone(),
        series_uid: format!("synthetic:{}", input.meta.series_uid),
        description: match direction {
            Direction::CtDenoise => format!("Denoised CT from {}", input.meta.description),
            _ => format!("Synthetic {out_modality} from {}", input.meta.description),
        },
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
