//! The demo model shipped in `assets/demo-model` and embedded in the binary: a small U-Net
//! trained by `synthscope train --config assets/demo-model/demo_mr_to_ct.toml` on phantom
//! patients (MR -> CT). It shows what synthesis looks like on the demo pair; it has never seen
//! a real patient.

use super::checkpoint::{self, AnyModel, CheckpointMeta};
use burn::tensor::Device;
use std::path::PathBuf;

const BPK: &[u8] = include_bytes!("../../assets/demo-model/demo_mr_to_ct.bpk");
const JSON: &str = include_str!("../../assets/demo-model/demo_mr_to_ct.json");

/// Name shown for the embedded model.
pub const DEMO_MODEL_NAME: &str = "embedded demo model (U-Net MR to CT, trained on phantoms)";

/// Load the embedded demo model onto `device`. The pair is written once to the user's cache
/// folder (burn reads checkpoints from files) and loaded from there.
pub fn load_demo_model(device: &Device) -> Result<(AnyModel, CheckpointMeta, PathBuf), String> {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(std::env::temp_dir)
        .join("synthscope");
    // Keyed by content, so a new build never reads an older model.
    let key = BPK
        .iter()
        .chain(JSON.as_bytes())
        .fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
            (h ^ *b as u64).wrapping_mul(0x0100_0000_01b3)
        });
    let stem = base.join(format!("demo-model-{key:016x}"));
    let (bpk, json) = (stem.with_extension("bpk"), stem.with_extension("json"));
    if !bpk.exists() || !json.exists() {
        std::fs::create_dir_all(&base)
            .map_err(|e| format!("{}: cannot create: {e}", base.display()))?;
        let write = |p: &PathBuf, data: &[u8]| {
            let tmp = p.with_extension("partial");
            std::fs::write(&tmp, data)
                .and_then(|_| std::fs::rename(&tmp, p))
                .map_err(|e| format!("{}: cannot write: {e}", p.display()))
        };
        write(&bpk, BPK)?;
        write(&json, JSON.as_bytes())?;
    }
    let (model, meta) = checkpoint::load(&json, device)?;
    Ok((model, meta, PathBuf::from(DEMO_MODEL_NAME)))
}
