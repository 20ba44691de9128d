//! A CycleGAN generator as a SynthScope checkpoint pair (`NAME.bpk` + `NAME.json`, the
//! [`crate::model::checkpoint`] format with kind `resnet_generator`), so the Synthesis panel and
//! `synthesize` load it like any other network, in the direction it was trained for.

use super::generator::{ResnetGenerator, ResnetGeneratorConfig};
use crate::model::checkpoint::{self, AnyModel, ModelSpec};
use crate::model::{Direction, ModelError};
use burn::tensor::Device;
use serde::{Deserialize, Serialize};
use std::path::Path;

/// What a CycleGAN generator checkpoint records beside its config (the `notes`).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CycleganMeta {
    /// The direction this generator translates (G_A: MR -> CT, G_B: CT -> MR).
    pub direction: Direction,
    /// Which generator of the pair ("G_A" or "G_B").
    pub role: String,
    /// Epoch it was saved at.
    pub epoch: usize,
    /// Where its first weights came from ("scratch" or the imported file).
    pub init: String,
}

/// Save a generator as a checkpoint pair at `path`.
pub fn save_generator(
    model: &ResnetGenerator,
    cfg: &ResnetGeneratorConfig,
    meta: &CycleganMeta,
    path: &Path,
) -> Result<(), ModelError> {
    let notes = serde_json::to_value(meta)
        .map_err(|e| ModelError::file(path, format!("cannot write the notes: {e}")))?;
    checkpoint::save(
        &AnyModel::ResnetGenerator(model.clone()),
        &ModelSpec::ResnetGenerator(cfg.clone()),
        notes,
        path,
    )
}

/// Load a generator checkpoint pair (refusing other networks).
pub fn load_generator(
    path: &Path,
    device: &Device,
) -> Result<(ResnetGenerator, ResnetGeneratorConfig), ModelError> {
    match checkpoint::load(path, device)? {
        (
            AnyModel::ResnetGenerator(m),
            checkpoint::CheckpointMeta {
                model: ModelSpec::ResnetGenerator(c),
                ..
            },
        ) => Ok((m, c)),
        (_, meta) => Err(ModelError::file(
            path,
            format!("holds a {:?}, not a CycleGAN generator", meta.model),
        )),
    }
}

/// The direction a generator checkpoint was saved for (its notes' `direction`; MR -> CT when
/// the notes do not say, as for G_A).
pub fn generator_direction(meta: &checkpoint::CheckpointMeta) -> Direction {
    meta.notes
        .get("direction")
        .and_then(|d| serde_json::from_value(d.clone()).ok())
        .unwrap_or(Direction::MrToCt)
}
