//! The reference implementation's generator state dicts (`latest_net_G_A.pth` and the like):
//! keys `model.1.weight` (7x7 stem) ... `model.26.bias` (7x7 head) for 9 blocks, blocks at
//! `model.10` .. `model.18` with convolutions `conv_block.1` and `conv_block.5` (`conv_block.6`
//! with `--use_dropout`). The architecture is read off the file's keys and shapes, so 6- and
//! 9-block models, any ngf and any channel count import without being told.
//!
//! Norm statistics that old PyTorch versions stored for InstanceNorm (`running_mean`,
//! `running_var`, `num_batches_tracked`; the reference deletes them on load too) are ignored.

use super::generator::{ResnetGenerator, ResnetGeneratorConfig};
use crate::model::ModelError;
use burn::store::{ModuleSnapshot, ModuleStore, PytorchStore, SafetensorsStore};
use burn::tensor::Device;
use std::collections::BTreeMap;
use std::path::Path;

/// (reference key prefix, our module path prefix) of every parameterised layer of a generator
/// built from `cfg`, in network order.
pub fn reference_keys(cfg: &ResnetGeneratorConfig) -> Vec<(String, String)> {
    let n = cfg.blocks;
    let second = if cfg.dropout { 6 } else { 5 };
    let mut v = vec![
        ("model.1".to_string(), "stem".to_string()),
        ("model.4".into(), "down.0".into()),
        ("model.7".into(), "down.1".into()),
    ];
    for i in 0..n {
        v.push((
            format!("model.{}.conv_block.1", 10 + i),
            format!("blocks.{i}.c1"),
        ));
        v.push((
            format!("model.{}.conv_block.{second}", 10 + i),
            format!("blocks.{i}.c2"),
        ));
    }
    v.push((format!("model.{}", 10 + n), "up.0".into()));
    v.push((format!("model.{}", 13 + n), "up.1".into()));
    v.push((format!("model.{}", 17 + n), "head".into()));
    v
}

fn pattern(prefix: &str) -> String {
    format!("^{}\\.", regex_escape(prefix))
}

fn regex_escape(s: &str) -> String {
    s.replace('.', "\\.")
}

/// Name -> shape of every tensor in a state dict file.
fn file_shapes(path: &Path) -> Result<BTreeMap<String, Vec<usize>>, ModelError> {
    let e = |err: String| ModelError::file(path, err);
    let shapes = |m: &BTreeMap<String, burn::store::burn_pack::Tensor>| {
        m.iter()
            .map(|(k, t)| (k.clone(), t.shape.to_vec()))
            .collect::<BTreeMap<_, _>>()
    };
    match kind(path)? {
        FileKind::Safetensors => {
            let mut s = SafetensorsStore::from_file(path);
            Ok(shapes(s.get_all_tensors().map_err(|x| e(format!("{x}")))?))
        }
        FileKind::Pytorch => {
            let mut s = PytorchStore::from_file(path).map_indices_contiguous(false);
            Ok(shapes(s.get_all_tensors().map_err(|x| e(format!("{x}")))?))
        }
    }
}

enum FileKind {
    Safetensors,
    Pytorch,
}

fn kind(path: &Path) -> Result<FileKind, ModelError> {
    let name = path.to_string_lossy().to_ascii_lowercase();
    if name.ends_with(".safetensors") {
        Ok(FileKind::Safetensors)
    } else if name.ends_with(".pth") || name.ends_with(".pt") {
        Ok(FileKind::Pytorch)
    } else {
        Err(ModelError::file(
            path,
            "not a .pth, .pt or .safetensors file",
        ))
    }
}

fn is_norm_statistic(key: &str) -> bool {
    key.ends_with(".running_mean")
        || key.ends_with(".running_var")
        || key.ends_with(".num_batches_tracked")
}

/// The generator config a reference state dict describes (from its keys and shapes).
pub fn infer_config(
    path: &Path,
    shapes: &BTreeMap<String, Vec<usize>>,
) -> Result<ResnetGeneratorConfig, ModelError> {
    let e = |why: String| ModelError::file(path, why);
    let stem = shapes.get("model.1.weight").ok_or_else(|| {
        e(format!(
            "no `model.1.weight`: not a ResNet generator state dict of the reference CycleGAN \
             implementation (keys start {:?})",
            shapes.keys().take(3).collect::<Vec<_>>()
        ))
    })?;
    if stem.len() != 4 || stem[2] != 7 || stem[3] != 7 {
        return Err(e(format!(
            "`model.1.weight` is {stem:?}; the generator's stem is [ngf, channels, 7, 7]"
        )));
    }
    let blocks = (10..)
        .take_while(|i| shapes.contains_key(&format!("model.{i}.conv_block.1.weight")))
        .count();
    if blocks == 0 {
        return Err(e(
            "no residual blocks (`model.10.conv_block.1.weight`): a U-Net generator? Only the \
             ResNet generators import"
                .into(),
        ));
    }
    let dropout = shapes.contains_key("model.10.conv_block.6.weight");
    let head = shapes
        .get(&format!("model.{}.weight", 17 + blocks))
        .ok_or_else(|| {
            e(format!(
                "{blocks} blocks but no head `model.{}.weight`",
                17 + blocks
            ))
        })?;
    Ok(ResnetGeneratorConfig::new()
        .with_in_channels(stem[1])
        .with_ngf(stem[0])
        .with_out_channels(head[0])
        .with_blocks(blocks)
        .with_dropout(dropout))
}

/// Import a reference generator state dict (`.pth`/`.pt` as `torch.save(net.state_dict())`
/// writes it, or `.safetensors`) onto `device`, its architecture read off the file. Every
/// generator tensor must be in the file with its shape, and the file must hold nothing else
/// (norm statistics aside).
pub fn import_generator(
    path: &Path,
    device: &Device,
) -> Result<(ResnetGenerator, ResnetGeneratorConfig), ModelError> {
    let shapes = file_shapes(path)?;
    let cfg = infer_config(path, &shapes)?;
    if cfg.param_count() > crate::model::checkpoint::MAX_PARAMS {
        return Err(ModelError::file(path, "the state dict is too large"));
    }
    let mut model = cfg.init(device);
    load_keys(&mut model, &cfg, path)?;
    Ok((model, cfg))
}

/// Load a reference state dict into an existing generator (whose architecture must be the
/// file's); the tensors loaded.
pub fn load_reference_into(model: &mut ResnetGenerator, path: &Path) -> Result<usize, ModelError> {
    let shapes = file_shapes(path)?;
    let cfg = infer_config(path, &shapes)?;
    let (ours_in, ours_out) = (model.in_channels(), model.out_channels());
    if (cfg.in_channels, cfg.out_channels, cfg.blocks, cfg.dropout)
        != (ours_in, ours_out, model.block_count(), model.has_dropout())
        || cfg.ngf != model.first_filters().dims()[0]
    {
        return Err(ModelError::file(
            path,
            format!(
                "holds a generator with {} -> {} channels, ngf {}, {} blocks{}; the network has \
                 {ours_in} -> {ours_out} channels, ngf {}, {} blocks",
                cfg.in_channels,
                cfg.out_channels,
                cfg.ngf,
                cfg.blocks,
                if cfg.dropout { " (dropout)" } else { "" },
                model.first_filters().dims()[0],
                model.block_count()
            ),
        ));
    }
    load_keys(model, &cfg, path)
}

fn load_keys(
    model: &mut ResnetGenerator,
    cfg: &ResnetGeneratorConfig,
    path: &Path,
) -> Result<usize, ModelError> {
    let e = |err: String| ModelError::file(path, err);
    let keys = reference_keys(cfg);
    let result = match kind(path)? {
        FileKind::Safetensors => {
            let mut s = SafetensorsStore::from_file(path).allow_partial(true);
            for (from, to) in &keys {
                s = s.with_key_remapping(pattern(from), format!("{to}."));
            }
            model.load_from(&mut s).map_err(|x| e(format!("{x}")))?
        }
        FileKind::Pytorch => {
            let mut s = PytorchStore::from_file(path)
                .map_indices_contiguous(false)
                .allow_partial(true);
            for (from, to) in &keys {
                s = s.with_key_remapping(pattern(from), format!("{to}."));
            }
            model.load_from(&mut s).map_err(|x| e(format!("{x}")))?
        }
    };
    if !result.errors.is_empty() {
        return Err(e(format!(
            "{} tensors do not fit: {:?}",
            result.errors.len(),
            result.errors.iter().take(3).collect::<Vec<_>>()
        )));
    }
    if !result.missing.is_empty() {
        return Err(e(format!(
            "{} generator tensors missing from the file, e.g. {:?}",
            result.missing.len(),
            result.missing.iter().take(3).collect::<Vec<_>>()
        )));
    }
    let unused: Vec<_> = result
        .unused
        .iter()
        .filter(|k| !is_norm_statistic(k))
        .collect();
    if !unused.is_empty() {
        return Err(e(format!(
            "{} tensors in the file have no place in a {}-block generator, e.g. {:?}",
            unused.len(),
            cfg.blocks,
            unused.iter().take(3).collect::<Vec<_>>()
        )));
    }
    Ok(result.applied.len())
}

/// Write `model` as a `.safetensors` state dict with the reference's key names (what
/// [`import_generator`] reads; `safetensors.torch.load_file` + `load_state_dict` in PyTorch).
pub fn export_reference(
    model: &ResnetGenerator,
    cfg: &ResnetGeneratorConfig,
    path: &Path,
) -> Result<(), ModelError> {
    let mut s = SafetensorsStore::from_file(path);
    for (to, from) in reference_keys(cfg) {
        s = s.with_key_remapping(pattern(&from), format!("{to}."));
    }
    model
        .save_into(&mut s)
        .map_err(|x| ModelError::file(path, format!("cannot write the state dict: {x}")))
}
