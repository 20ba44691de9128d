//! Checkpoints: the weights as a burnpack file (`NAME.bpk`) and, beside it, the config that
//! rebuilds the exact network (`NAME.json`), so one file pair alone restores a model. Both are
//! written to temporary names and renamed, so an interrupted save never leaves a torn checkpoint.

use super::cyclegan::{ResnetGenerator, ResnetGeneratorConfig};
use super::{Classifier, ClassifierConfig, Drunet, DrunetConfig, ModelError, Unet, UnetConfig};
use burn::module::Module;
use burn::tensor::Device;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// Which network a checkpoint holds, with its config.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(tag = "kind", content = "config", rename_all = "snake_case")]
pub enum ModelSpec {
    /// The baseline U-Net.
    Unet(UnetConfig),
    /// DRUNet-18/34/50/101.
    Drunet(DrunetConfig),
    /// The MR/CT classifier.
    Classifier(ClassifierConfig),
    /// A CycleGAN ResNet generator (one direction of an unpaired model, or an imported one).
    ResnetGenerator(ResnetGeneratorConfig),
}

/// A network of any kind.
// A handful of these exist per process; boxing would only add indirection.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum AnyModel {
    /// U-Net.
    Unet(Unet),
    /// DRUNet.
    Drunet(Drunet),
    /// Classifier.
    Classifier(Classifier),
    /// CycleGAN ResNet generator.
    ResnetGenerator(ResnetGenerator),
}

/// What a checkpoint file pair says about itself.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CheckpointMeta {
    /// Format version (refuse what we cannot read).
    pub format: u32,
    /// The network and its config.
    pub model: ModelSpec,
    /// Free-form notes (training run, epoch, metrics).
    #[serde(default)]
    pub notes: serde_json::Value,
}

/// The checkpoint format this build writes and reads.
pub const CHECKPOINT_FORMAT: u32 = 1;

/// The most parameters a checkpoint's config may ask for before anything is built: 2^28
/// (1 GiB of f32 weights; DRUNet-101 has ~60 M).
pub const MAX_PARAMS: usize = 1 << 28;

impl ModelSpec {
    /// Refuse a config whose sizes are outside what any network of its kind has (a torn or
    /// hostile file), before the network is built: the sizes, then the parameter count
    /// against [`MAX_PARAMS`]. The message names the field and both numbers.
    pub fn check(&self) -> Result<(), String> {
        let within = |what: &str, v: usize, lo: usize, hi: usize| {
            if (lo..=hi).contains(&v) {
                Ok(())
            } else {
                Err(format!("{what} is {v}; a network has {lo} to {hi}"))
            }
        };
        match self {
            ModelSpec::Unet(c) => {
                within("base_width", c.base_width, 1, 1024)?;
                within("levels", c.levels, 1, 8)?;
                within("in_channels", c.in_channels, 1, 64)?;
                within("out_channels", c.out_channels, 1, 64)?;
                within("input_size", c.input_size, 1, 8192)?;
            }
            ModelSpec::Drunet(c) => {
                within("base_width", c.base_width, 1, 1024)?;
                within("in_channels", c.in_channels, 1, 64)?;
                within("out_channels", c.out_channels, 1, 64)?;
                within("input_size", c.input_size, 1, 8192)?;
            }
            ModelSpec::Classifier(c) => {
                within("base_width", c.base_width, 1, 1024)?;
                within("in_channels", c.in_channels, 1, 64)?;
                within("classes", c.classes, 1, 1000)?;
            }
            ModelSpec::ResnetGenerator(c) => {
                within("ngf", c.ngf, 1, 1024)?;
                within("blocks", c.blocks, 1, 64)?;
                within("in_channels", c.in_channels, 1, 64)?;
                within("out_channels", c.out_channels, 1, 64)?;
            }
        }
        let params = match self {
            ModelSpec::Unet(c) => c.param_count(),
            ModelSpec::Drunet(c) => c.param_count().map_err(|e| e.to_string())?,
            ModelSpec::Classifier(c) => c.param_count(),
            ModelSpec::ResnetGenerator(c) => c.param_count(),
        };
        if params > MAX_PARAMS {
            return Err(format!(
                "the config asks for {params} parameters, more than the {MAX_PARAMS} a checkpoint may have"
            ));
        }
        Ok(())
    }

    /// Build the network (fresh weights) on `device`.
    pub fn init(&self, device: &Device) -> Result<AnyModel, ModelError> {
        Ok(match self {
            ModelSpec::Unet(c) => AnyModel::Unet(c.init(device)),
            ModelSpec::Drunet(c) => AnyModel::Drunet(c.init(device)?),
            ModelSpec::Classifier(c) => AnyModel::Classifier(c.init(device)),
            ModelSpec::ResnetGenerator(c) => AnyModel::ResnetGenerator(c.init(device)),
        })
    }
}

fn paths(path: &Path) -> (PathBuf, PathBuf) {
    (path.with_extension("bpk"), path.with_extension("json"))
}

/// Save `model` (built from `spec`) as `path` (.bpk weights + .json config).
pub fn save(
    model: &AnyModel,
    spec: &ModelSpec,
    notes: serde_json::Value,
    path: &Path,
) -> Result<(), ModelError> {
    let (bpk, json) = paths(path);
    let tmp_bpk = bpk.with_extension("bpk.partial");
    let err = |p: &Path, e: String| ModelError::file(p, format!("cannot save checkpoint: {e}"));
    let r = match model {
        AnyModel::Unet(m) => m.clone().save_file(&tmp_bpk),
        AnyModel::Drunet(m) => m.clone().save_file(&tmp_bpk),
        AnyModel::Classifier(m) => m.clone().save_file(&tmp_bpk),
        AnyModel::ResnetGenerator(m) => m.clone().save_file(&tmp_bpk),
    };
    r.map_err(|e| err(&bpk, format!("{e:?}")))?;
    let meta = CheckpointMeta {
        format: CHECKPOINT_FORMAT,
        model: spec.clone(),
        notes,
    };
    let text = serde_json::to_string_pretty(&meta).map_err(|e| err(&json, e.to_string()))?;
    // Weights first, then the config that names them: each fsynced and renamed into place.
    crate::atomic::sync_and_rename(&tmp_bpk, &bpk).map_err(|e| err(&bpk, e.problem))?;
    crate::atomic::write(&json, text).map_err(|e| err(&json, e.problem))?;
    Ok(())
}

/// Copy the checkpoint pair at `from` to `to` (file copies, each written to a temporary name and
/// renamed, as [`save`] does): a second name for saved weights without reading them back again.
pub fn copy(from: &Path, to: &Path) -> Result<(), ModelError> {
    let (src, dst) = (paths(from), paths(to));
    for (s, d) in [(&src.0, &dst.0), (&src.1, &dst.1)] {
        crate::atomic::write_with(d, |w| {
            std::io::copy(&mut std::fs::File::open(s)?, w).map(|_| ())
        })
        .map_err(|e| {
            ModelError::file(
                s,
                format!(
                    "cannot copy the checkpoint to {}: {}",
                    d.display(),
                    e.problem
                ),
            )
        })?;
    }
    Ok(())
}

/// Fill in what configs written before a field existed lack (burn's config derive reads every
/// field as required): a U-Net saved before residual outputs existed is not residual.
fn upgrade(mut v: serde_json::Value) -> serde_json::Value {
    let model = v.get_mut("model");
    if let Some(m) = model
        && m.get("kind").and_then(|k| k.as_str()) == Some("unet")
        && let Some(c) = m.get_mut("config").and_then(|c| c.as_object_mut())
    {
        c.entry("residual")
            .or_insert(serde_json::Value::Bool(false));
    }
    v
}

/// Load a checkpoint (either file of the pair, or their common stem) onto `device`.
pub fn load(path: &Path, device: &Device) -> Result<(AnyModel, CheckpointMeta), ModelError> {
    let (bpk, json) = paths(path);
    let text = crate::io::read_text(&json, crate::io::MAX_TEXT_BYTES)
        .map_err(|e| ModelError::file(&json, format!("cannot read the checkpoint config: {e}")))?;
    let meta: CheckpointMeta = serde_json::from_str::<serde_json::Value>(&text)
        .map(upgrade)
        .and_then(serde_json::from_value)
        .map_err(|e| ModelError::file(&json, format!("not a SynthScope checkpoint config: {e}")))?;
    if meta.format != CHECKPOINT_FORMAT {
        return Err(ModelError::file(
            &json,
            format!(
                "checkpoint format {} (this build reads {CHECKPOINT_FORMAT})",
                meta.format
            ),
        ));
    }
    meta.model.check().map_err(|e| ModelError::file(&json, e))?;
    if !bpk.exists() {
        return Err(ModelError::file(&bpk, "weights file missing"));
    }
    let model = meta.model.init(device)?;
    let e = |err: burn::store::RecordError| {
        ModelError::file(
            &bpk,
            format!("weights do not fit the {:?} config: {err:?}", meta.model),
        )
    };
    // The record's tensors are cast to the network's (float) dtypes: a weights file whose
    // tensors claim another dtype (an integer, found by fuzzing) is converted or refused, never
    // handed to burn as a float tensor of integers (which panics inside burn).
    let record = burn::store::ModuleRecord::load(&bpk)
        .map_err(e)?
        .cast_to_module_dtype();
    // And should burn still panic on a damaged file, the user gets an error, not a crash.
    let loaded = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| match model {
        AnyModel::Unet(m) => m.try_load_record(record).map(AnyModel::Unet),
        AnyModel::Drunet(m) => m.try_load_record(record).map(AnyModel::Drunet),
        AnyModel::Classifier(m) => m.try_load_record(record).map(AnyModel::Classifier),
        AnyModel::ResnetGenerator(m) => m.try_load_record(record).map(AnyModel::ResnetGenerator),
    }));
    let model = match loaded {
        Ok(r) => r.map_err(e)?,
        Err(panic) => {
            let why = crate::panic_text(panic.as_ref()).unwrap_or_else(|| "unreadable".into());
            return Err(ModelError::file(
                &bpk,
                format!("damaged weights file: {why}"),
            ));
        }
    };
    Ok((model, meta))
}

impl AnyModel {
    /// The model in evaluation mode (batch norm from running statistics even when its input is
    /// tracked for a gradient, as Grad-CAM's is).
    pub fn valid(&self) -> AnyModel {
        use burn::module::Module;
        match self {
            AnyModel::Unet(m) => AnyModel::Unet(m.valid()),
            AnyModel::Drunet(m) => AnyModel::Drunet(m.valid()),
            AnyModel::Classifier(m) => AnyModel::Classifier(m.valid()),
            AnyModel::ResnetGenerator(m) => AnyModel::ResnetGenerator(m.valid()),
        }
    }

    /// The inference form of a synthesis network (batch norms folded into their convolutions,
    /// see [`super::blocks::ConvBn::fold`]); a classifier is returned as it is.
    pub fn folded(&self) -> AnyModel {
        match self {
            AnyModel::Unet(m) => AnyModel::Unet(m.valid().fold()),
            AnyModel::Drunet(m) => AnyModel::Drunet(m.valid().fold()),
            AnyModel::Classifier(m) => AnyModel::Classifier(m.valid()),
            AnyModel::ResnetGenerator(m) => AnyModel::ResnetGenerator(m.valid()),
        }
    }

    /// The same network with every weight in f16 (for [`super::half::forward_f16`]).
    pub fn to_f16(&self) -> AnyModel {
        use super::half::to_f16;
        match self {
            AnyModel::Unet(m) => AnyModel::Unet(to_f16(m.clone())),
            AnyModel::Drunet(m) => AnyModel::Drunet(to_f16(m.clone())),
            AnyModel::Classifier(m) => AnyModel::Classifier(to_f16(m.clone())),
            AnyModel::ResnetGenerator(m) => AnyModel::ResnetGenerator(to_f16(m.clone())),
        }
    }

    /// Names of the layers whose activations [`Self::activations`] returns.
    pub fn layer_names(&self) -> Vec<String> {
        match self {
            AnyModel::Unet(m) => m.layer_names(),
            AnyModel::Drunet(m) => m.layer_names(),
            AnyModel::Classifier(_) => super::Classifier::LAYERS
                .iter()
                .map(|s| s.to_string())
                .collect(),
            AnyModel::ResnetGenerator(m) => m.layer_names(),
        }
    }

    /// Every layer's activation for input x: [B, C, H, W].
    pub fn activations(&self, x: burn::tensor::Tensor<4>) -> Vec<burn::tensor::Tensor<4>> {
        match self {
            AnyModel::Unet(m) => m.forward_features(x),
            AnyModel::Drunet(m) => m.activations(x),
            AnyModel::Classifier(m) => (0..4).map(|l| m.features_at(x.clone(), l)).collect(),
            AnyModel::ResnetGenerator(m) => m.activations(x),
        }
    }

    /// The synthesised image with `hook(k, activation)` standing in for activation k (see
    /// [`Self::layer_names`]); None for a classifier.
    pub fn forward_hooked(
        &self,
        x: burn::tensor::Tensor<4>,
        hook: &mut dyn FnMut(usize, burn::tensor::Tensor<4>) -> burn::tensor::Tensor<4>,
    ) -> Option<burn::tensor::Tensor<4>> {
        match self {
            AnyModel::Unet(m) => Some(m.forward_hooked(x, hook)),
            AnyModel::Drunet(m) => Some(m.forward_hooked(x, hook)),
            AnyModel::Classifier(_) => None,
            AnyModel::ResnetGenerator(m) => Some(m.forward_hooked(x, hook)),
        }
    }

    /// The first convolution's weights: [out, in, k, k].
    pub fn first_filters(&self) -> burn::tensor::Tensor<4> {
        match self {
            AnyModel::Unet(m) => m.first_filters(),
            AnyModel::Drunet(m) => m.first_filters(),
            AnyModel::Classifier(m) => m.first_filters(),
            AnyModel::ResnetGenerator(m) => m.first_filters(),
        }
    }

    /// Input channels and the size multiple the network needs.
    pub fn input_layout(&self) -> (usize, usize) {
        match self {
            AnyModel::Unet(_) => (1, 16),
            AnyModel::Drunet(_) => (3, 32),
            AnyModel::Classifier(_) => (1, 16),
            // Grey slices in 0..1; the generator's own range is applied in `forward_synth`.
            AnyModel::ResnetGenerator(_) => (1, 4),
        }
    }
}
