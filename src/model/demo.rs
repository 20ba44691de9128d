//! The demo model shipped in `assets/demo-model` and embedded in the binary: a small U-Net
//! trained by `synthscope train --config assets/demo-model/demo_mr_to_ct.toml` on varied
//! phantom patients 0-5 (each its own anatomy; 6-7 validated, 8-11 held out for
//! `tests/demo_model_heldout.rs`), MR -> CT. It shows what synthesis looks like on the demo
//! pair; it has never seen a real patient.

use super::ModelError;
use super::checkpoint::{self, AnyModel, CheckpointMeta};
use burn::tensor::Device;
use std::path::PathBuf;

const BPK: &[u8] = include_bytes!("../../assets/demo-model/demo_mr_to_ct.bpk");
const JSON: &str = include_str!("../../assets/demo-model/demo_mr_to_ct.json");

/// Name shown for the embedded model.
pub const DEMO_MODEL_NAME: &str = "embedded demo model (U-Net MR to CT, trained on phantoms)";

const CLASSIFIER_BPK: &[u8] = include_bytes!("../../assets/demo-model/demo_classifier.bpk");
const CLASSIFIER_JSON: &str = include_str!("../../assets/demo-model/demo_classifier.json");

/// Name shown for the embedded classifier.
pub const DEMO_CLASSIFIER_NAME: &str = "embedded demo MR/CT classifier (trained on phantoms)";

/// Load the embedded demo model onto `device`. The pair is written once to the user's cache
/// folder (burn reads checkpoints from files) and loaded from there.
pub fn load_demo_model(device: &Device) -> Result<(AnyModel, CheckpointMeta, PathBuf), ModelError> {
    let (model, meta) = load_embedded(BPK, JSON, "demo-model", device)?;
    Ok((model, meta, PathBuf::from(DEMO_MODEL_NAME)))
}

/// Load the embedded MR/CT classifier (trained by
/// `synthscope train --config assets/demo-model/demo_classifier.toml --classifier-only` on the
/// same varied phantom patients) onto `device`.
pub fn load_demo_classifier(
    device: &Device,
) -> Result<(AnyModel, CheckpointMeta, PathBuf), ModelError> {
    let (model, meta) = load_embedded(CLASSIFIER_BPK, CLASSIFIER_JSON, "demo-classifier", device)?;
    Ok((model, meta, PathBuf::from(DEMO_CLASSIFIER_NAME)))
}

/// Write an embedded checkpoint to the cache folder (once; keyed by its content, so a new build
/// never reads an older file) and load it.
fn load_embedded(
    bpk_bytes: &[u8],
    json_text: &str,
    tag: &str,
    device: &Device,
) -> Result<(AnyModel, CheckpointMeta), ModelError> {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(std::env::temp_dir)
        .join("synthscope");
    let key = bpk_bytes
        .iter()
        .chain(json_text.as_bytes())
        .fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
            (h ^ *b as u64).wrapping_mul(0x0100_0000_01b3)
        });
    let stem = base.join(format!("{tag}-{key:016x}"));
    let (bpk, json) = (stem.with_extension("bpk"), stem.with_extension("json"));
    if !bpk.exists() || !json.exists() {
        std::fs::create_dir_all(&base)
            .map_err(|e| ModelError::file(&base, format!("cannot create: {e}")))?;
        let write = |p: &PathBuf, data: &[u8]| {
            crate::atomic::write(p, data)
                .map_err(|e| ModelError::file(p, format!("cannot write: {}", e.problem)))
        };
        write(&bpk, bpk_bytes)?;
        write(&json, json_text.as_bytes())?;
    }
    checkpoint::load(&json, device)
}
