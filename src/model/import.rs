//! Weights trained in PyTorch, imported through burn-store: `.safetensors` or `.pt`/`.pth`
//! state dicts of the same architectures.
//!
//! Key mapping: a PyTorch `state_dict` key is the burn module path with the same field names
//! (`stem.conv.weight`, `encoder.0.blocks.1.c2.bn.running_var`, `decoder.3.blocks.0.shortcut.conv.weight`,
//! `ups.2.conv.conv.weight`, `head.weight`, ...); batch norm `weight`/`bias` become burn's
//! `gamma`/`beta` and linear weights are transposed (burn-store's PyTorch adapter).
//! Exporting a SynthScope model with burn-store's `BurnToPyTorchAdapter` writes exactly these
//! keys (the import test does so). A checkpoint with a `state_dict` entry (as
//! `torch.save({"state_dict": ...})` writes) is read from there.

use super::ModelError;
use super::checkpoint::AnyModel;
use burn::store::{ModuleSnapshot, PyTorchToBurnAdapter, PytorchStore, SafetensorsStore};
use std::path::Path;

/// What an import matched.
#[derive(Clone, Debug, serde::Serialize)]
pub struct ImportReport {
    /// Tensors loaded.
    pub applied: usize,
    /// Model tensors the file did not have.
    pub missing: Vec<String>,
    /// File tensors the model has no place for.
    pub unused: Vec<String>,
}

fn report(r: burn::store::ApplyResult) -> Result<ImportReport, String> {
    if !r.errors.is_empty() {
        return Err(format!(
            "{} tensors do not fit: {:?}",
            r.errors.len(),
            r.errors.iter().take(3).collect::<Vec<_>>()
        ));
    }
    Ok(ImportReport {
        applied: r.applied.len(),
        missing: r.missing.into_iter().map(|(p, _)| p).collect(),
        unused: r.unused,
    })
}

/// Load PyTorch weights from `path` into `model` (in place). Every model tensor must be found.
pub fn import_pytorch(model: &mut AnyModel, path: &Path) -> Result<ImportReport, ModelError> {
    if let AnyModel::ResnetGenerator(m) = model {
        // The reference CycleGAN implementation's keys (`model.1.weight`, ...), not ours.
        let applied = super::cyclegan::load_reference_into(m, path)?;
        return Ok(ImportReport {
            applied,
            missing: Vec::new(),
            unused: Vec::new(),
        });
    }
    let name = path.to_string_lossy().to_ascii_lowercase();
    let e = |err: String| ModelError::file(path, err);
    let result = if name.ends_with(".safetensors") {
        let mut store = SafetensorsStore::from_file(path)
            .with_from_adapter(PyTorchToBurnAdapter)
            .allow_partial(true);
        match model {
            AnyModel::Unet(m) => m.load_from(&mut store),
            AnyModel::Drunet(m) => m.load_from(&mut store),
            AnyModel::Classifier(m) => m.load_from(&mut store),
            AnyModel::ResnetGenerator(m) => m.load_from(&mut store),
        }
        .map_err(|err| e(format!("{err:?}")))?
    } else if name.ends_with(".pt") || name.ends_with(".pth") {
        let load = |store: &mut PytorchStore, model: &mut AnyModel| match model {
            AnyModel::Unet(m) => m.load_from(store),
            AnyModel::Drunet(m) => m.load_from(store),
            AnyModel::Classifier(m) => m.load_from(store),
            AnyModel::ResnetGenerator(m) => m.load_from(store),
        };
        let mut store = PytorchStore::from_file(path).allow_partial(true);
        let r = load(&mut store, model).map_err(|err| e(format!("{err:?}")))?;
        if r.applied.is_empty() {
            let mut nested = PytorchStore::from_file(path)
                .with_top_level_key("state_dict")
                .allow_partial(true);
            load(&mut nested, model).map_err(|err| e(format!("{err:?}")))?
        } else {
            r
        }
    } else {
        return Err(e("not a .safetensors, .pt or .pth file".into()));
    };
    let r = report(result).map_err(e)?;
    if !r.missing.is_empty() {
        return Err(e(format!(
            "{} model tensors missing from the file, e.g. {:?}",
            r.missing.len(),
            r.missing.iter().take(3).collect::<Vec<_>>()
        )));
    }
    Ok(r)
}
