//! The reference CycleGAN networks: parameter counts, import of the reference implementation's
//! generator state dicts (.pth and .safetensors, with and without dropout) checked against
//! PyTorch's forward pass (stored values always; the full 9-block ngf-64 generator recomputed
//! by PyTorch where the torch venv exists), grey handling, and checkpoints in the synthesis path.

use burn::module::Module;
use burn::tensor::{Device, Distribution, Tensor, TensorData};
use std::path::{Path, PathBuf};
use std::process::Command;
use synthscope::model::checkpoint::{self, AnyModel};
use synthscope::model::cyclegan::{
    CycleganMeta, PatchGanConfig, ResnetGeneratorConfig, export_reference, import_generator,
    load_generator, reference_keys, save_generator,
};
use synthscope::model::{Direction, tensor_values};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/cyclegan")
        .join(name)
}

fn read_f32(path: &Path) -> Vec<f32> {
    std::fs::read(path)
        .unwrap()
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

fn flex() -> Device {
    Device::flex()
}

#[test]
fn parameter_counts_are_the_reference_ones() {
    let g = ResnetGeneratorConfig::new();
    assert_eq!(g.param_count(), 11_378_179);
    assert_eq!(g.init(&flex()).num_params(), 11_378_179);
    let d = PatchGanConfig::new();
    assert_eq!(d.param_count(), 2_764_737);
    assert_eq!(d.init(&flex()).num_params(), 2_764_737);
    // The 70x70 PatchGAN on 256x256 scores a 30x30 grid of patches.
    let y = PatchGanConfig::new()
        .with_ndf(8)
        .init(&flex())
        .forward(Tensor::zeros([1, 3, 256, 256], &flex()));
    assert_eq!(y.dims(), [1, 1, 30, 30]);
    // Keys: model.1 ... model.26 for 9 blocks, conv_block.6 with dropout.
    let keys = reference_keys(&g);
    assert_eq!(keys.first().unwrap().0, "model.1");
    assert_eq!(keys.last().unwrap().0, "model.26");
    assert!(keys.iter().any(|(k, _)| k == "model.18.conv_block.5"));
    let keys = reference_keys(&g.clone().with_dropout(true).with_blocks(6));
    assert!(keys.iter().any(|(k, _)| k == "model.15.conv_block.6"));
    assert_eq!(keys.last().unwrap().0, "model.23");
}

#[test]
fn stored_pytorch_output_is_reproduced_from_pth_and_safetensors() {
    // A 2-block ngf-4 generator with dropout (conv_block.6), written and run by PyTorch
    // (tests/fixtures/cyclegan/README.md).
    let x = read_f32(&fixture("tiny_input.f32"));
    let want = read_f32(&fixture("tiny_output_pytorch.f32"));
    for file in ["tiny_G_dropout.safetensors", "tiny_G_dropout.pth"] {
        let (g, cfg) = import_generator(&fixture(file), &flex()).unwrap();
        assert_eq!((cfg.ngf, cfg.blocks, cfg.dropout), (4, 2, true), "{file}");
        let xt = Tensor::<4>::from_data(TensorData::new(x.clone(), [1, 3, 32, 32]), &flex());
        let got = tensor_values(g.forward(xt)).unwrap();
        let d = max_diff(&got, &want);
        eprintln!("{file}: max |ours - PyTorch| = {d:e}");
        assert!(d < 1e-5, "{file}: max |ours - PyTorch| = {d}");
    }
}

fn torch_python() -> Option<PathBuf> {
    let py = std::env::var_os("SYNTHSCOPE_TORCH_PYTHON")
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME")
                .map(|h| PathBuf::from(h).join(".cache/synthscope/torch-venv/bin/python"))
        })?;
    Command::new(&py)
        .args(["-c", "import torch, safetensors"])
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
        .then_some(py)
}

#[test]
fn full_nine_block_generator_matches_pytorch() {
    let Some(py) = torch_python() else {
        eprintln!(
            "SKIPPED: no Python with torch and safetensors (~/.cache/synthscope/torch-venv or \
             SYNTHSCOPE_TORCH_PYTHON); the stored-value test covers the import"
        );
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/cyclegan_reference.py");
    let out = Command::new(&py)
        .arg(&script)
        .args(["forward", "--size", "64", "--seed", "3", "--out"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let x = read_f32(&dir.path().join("input.f32"));
    let want = read_f32(&dir.path().join("output.f32"));
    for file in ["net_G.pth", "net_G.safetensors"] {
        let (g, cfg) = import_generator(&dir.path().join(file), &flex()).unwrap();
        assert_eq!(
            cfg,
            ResnetGeneratorConfig::new(),
            "{file}: the 9-block ngf-64 generator"
        );
        let xt = Tensor::<4>::from_data(TensorData::new(x.clone(), [1, 3, 64, 64]), &flex());
        let got = tensor_values(g.forward(xt)).unwrap();
        let d = max_diff(&got, &want);
        eprintln!("{file} (9 blocks, ngf 64): max |ours - PyTorch| = {d:e}");
        assert!(d < 1e-4, "{file}: max |ours - PyTorch| = {d}");
    }
}

#[test]
fn export_import_round_trip_and_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = ResnetGeneratorConfig::new().with_ngf(4).with_blocks(3);
    let g = cfg.init(&flex());
    let p = dir.path().join("g.safetensors");
    export_reference(&g, &cfg, &p).unwrap();
    let (back, c) = import_generator(&p, &flex()).unwrap();
    assert_eq!(c, cfg);
    let x = Tensor::<4>::random([1, 3, 16, 16], Distribution::Uniform(-1.0, 1.0), &flex());
    let d = max_diff(
        &tensor_values(g.forward(x.clone())).unwrap(),
        &tensor_values(back.forward(x)).unwrap(),
    );
    assert_eq!(d, 0.0);
    // A file of another kind names itself and what is wrong.
    let bad = dir.path().join("notes.txt");
    std::fs::write(&bad, "hello").unwrap();
    let e = import_generator(&bad, &flex()).unwrap_err().to_string();
    assert!(e.contains("notes.txt") && e.contains(".pth"), "{e}");
    // A U-Net state dict (no model.1 stem) is refused with the reason.
    let unet = synthscope::model::UnetConfig::new()
        .with_base_width(4)
        .with_levels(2)
        .init(&flex());
    let up = dir.path().join("unet.safetensors");
    let mut store = burn::store::SafetensorsStore::from_file(&up);
    use burn::store::ModuleSnapshot;
    unet.save_into(&mut store).unwrap();
    let e = import_generator(&up, &flex()).unwrap_err().to_string();
    assert!(
        e.contains("unet.safetensors") && e.contains("model.1.weight"),
        "{e}"
    );
    // A generator of another width does not load into this one.
    let other = ResnetGeneratorConfig::new().with_ngf(8).with_blocks(3);
    let op = dir.path().join("other.safetensors");
    export_reference(&other.init(&flex()), &other, &op).unwrap();
    let mut any = AnyModel::ResnetGenerator(cfg.init(&flex()));
    let e = synthscope::model::import::import_pytorch(&mut any, &op)
        .unwrap_err()
        .to_string();
    assert!(e.contains("ngf 8"), "{e}");
    synthscope::model::import::import_pytorch(&mut any, &p).unwrap();
}

#[test]
fn grey_handling_replicate_and_one_channel_head() {
    let cfg = ResnetGeneratorConfig::new().with_ngf(4).with_blocks(2);
    let g = cfg.init(&flex());
    let x = Tensor::<4>::random([1, 1, 16, 16], Distribution::Uniform(0.0, 1.0), &flex());
    // Replicate: 3-channel network, grey in and out.
    let three = g.activations(x.clone());
    assert_eq!(three.last().unwrap().dims(), [1, 1, 16, 16]);
    // One-channel head: the stem sees exactly what it saw with the replicated input.
    let grey = g.clone().to_grey();
    assert_eq!((grey.in_channels(), grey.out_channels()), (1, 1));
    let one = grey.activations(x);
    let d = max_diff(
        &tensor_values(three[0].clone()).unwrap(),
        &tensor_values(one[0].clone()).unwrap(),
    );
    assert!(d < 1e-5, "stem activations differ by {d}");
    let deepest = three.len() - 2;
    let d = max_diff(
        &tensor_values(three[deepest].clone()).unwrap(),
        &tensor_values(one[deepest].clone()).unwrap(),
    );
    assert!(d < 1e-4, "last block differs by {d}");
}

#[test]
fn generator_checkpoint_synthesises_a_volume() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = ResnetGeneratorConfig::new()
        .with_ngf(4)
        .with_blocks(2)
        .with_in_channels(1)
        .with_out_channels(1);
    let g = cfg.init(&flex());
    let meta = CycleganMeta {
        direction: Direction::CtToMr,
        role: "G_B".into(),
        epoch: 1,
        init: "scratch".into(),
    };
    let path = dir.path().join("g_b");
    save_generator(&g, &cfg, &meta, &path).unwrap();
    let (back, c) = load_generator(&path, &flex()).unwrap();
    assert_eq!(c, cfg);
    let x = Tensor::<4>::random([1, 1, 12, 12], Distribution::Uniform(0.0, 1.0), &flex());
    assert_eq!(
        max_diff(
            &tensor_values(g.forward_synth(x.clone())).unwrap(),
            &tensor_values(back.forward_synth(x)).unwrap()
        ),
        0.0
    );
    // The generic checkpoint loader and the synthesis path take it like any network.
    let (any, _) = checkpoint::load(&path, &flex()).unwrap();
    let ct = synthscope::io::phantom::phantom_ct(&synthscope::io::phantom::PhantomConfig::small());
    let mr = synthscope::synth::synthesize(
        &any,
        Direction::CtToMr,
        &ct,
        8,
        &flex(),
        &synthscope::io::Progress::default(),
    )
    .unwrap();
    assert_eq!(mr.geometry.dims, ct.geometry.dims);
    assert!(mr.data.iter().all(|v| v.is_finite()));
}
