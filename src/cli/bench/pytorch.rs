//! The PyTorch side of `bench models|train|ops --against-pytorch`: finding a Python with torch,
//! running scripts/pytorch_reference.py on the same networks and shapes, printing the ratio.

use anyhow::{Context, bail};
use std::path::{Path, PathBuf};

/// `--against-pytorch`: run scripts/pytorch_reference.py on the same shapes in the same run.
#[derive(clap::Args, Debug, Clone)]
pub struct PytorchArgs {
    /// Also time the same networks in PyTorch (scripts/pytorch_reference.py) and print the ratio.
    #[arg(long)]
    pub against_pytorch: bool,
    /// Python with torch (default: $SYNTHSCOPE_TORCH_PYTHON, the cache's torch-venv, python3).
    #[arg(long, requires = "against_pytorch")]
    pub python: Option<PathBuf>,
    /// Where PyTorch computes: cpu, or cuda (a GPU torch sees).
    #[arg(long, default_value = "cpu", requires = "against_pytorch")]
    pub torch_device: String,
}

/// A network of `bench models|train`, from `unet:BASE:LEVELS` or `drunet:DEPTH` (the syntax
/// of scripts/pytorch_reference.py).
#[derive(Clone, Debug)]
pub(super) enum BenchNet {
    /// U-Net of `base` channels and `levels` downsamplings.
    Unet { base: usize, levels: usize },
    /// DRUNet of ResNet `depth`.
    Drunet { depth: usize },
}

impl BenchNet {
    pub(super) fn parse_list(list: &str) -> anyhow::Result<Vec<(String, BenchNet)>> {
        list.split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|spec| {
                let parts: Vec<&str> = spec.split(':').collect();
                let num = |i: usize, default: usize| -> anyhow::Result<usize> {
                    parts.get(i).map_or(Ok(default), |v| {
                        v.parse()
                            .with_context(|| format!("{spec}: {v} is not a number"))
                    })
                };
                let net = match parts[0] {
                    "unet" => BenchNet::Unet {
                        base: num(1, 32)?,
                        levels: num(2, 4)?,
                    },
                    "drunet" => BenchNet::Drunet { depth: num(1, 34)? },
                    other => bail!("unknown network {other}: unet:BASE:LEVELS or drunet:DEPTH"),
                };
                Ok((spec.to_string(), net))
            })
            .collect()
    }

    pub(super) fn name(&self) -> String {
        match self {
            BenchNet::Unet { base, levels } => format!("U-Net {base}/{levels}"),
            BenchNet::Drunet { depth } => format!("DRUNet-{depth}"),
        }
    }

    pub(super) fn spec(&self, size: usize) -> crate::model::checkpoint::ModelSpec {
        use crate::model::checkpoint::ModelSpec;
        use crate::model::{DrunetConfig, UnetConfig};
        match *self {
            BenchNet::Unet { base, levels } => ModelSpec::Unet(
                UnetConfig::new()
                    .with_base_width(base)
                    .with_levels(levels)
                    .with_input_size(size),
            ),
            BenchNet::Drunet { depth } => {
                ModelSpec::Drunet(DrunetConfig::new().with_depth(depth).with_input_size(size))
            }
        }
    }
}

/// A Python that imports torch: `--python`, $SYNTHSCOPE_TORCH_PYTHON, the torch-venv in the
/// user's cache folder, target/py-torch, python3 (the first that imports torch).
pub(super) fn torch_python(asked: Option<&Path>) -> Option<PathBuf> {
    let mut candidates: Vec<PathBuf> = Vec::new();
    if let Some(p) = asked {
        candidates.push(p.to_path_buf());
    } else {
        if let Some(p) = std::env::var_os("SYNTHSCOPE_TORCH_PYTHON") {
            candidates.push(PathBuf::from(p));
        }
        if let Some(c) =
            crate::gpu::compute::cache_path().and_then(|p| p.parent().map(Path::to_path_buf))
        {
            candidates.push(c.join("torch-venv/bin/python"));
        }
        candidates
            .push(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/py-torch/bin/python"));
        candidates.push(PathBuf::from("python3"));
    }
    candidates.into_iter().find(|p| {
        std::process::Command::new(p)
            .args(["-c", "import torch"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    })
}

/// scripts/pytorch_reference.py of the source tree this binary was built from, else of the
/// current folder (a binary built in another checkout that shares the target folder).
fn reference_script() -> Option<PathBuf> {
    let rel = Path::new("scripts/pytorch_reference.py");
    [
        Path::new(env!("CARGO_MANIFEST_DIR")).join(rel),
        rel.to_path_buf(),
    ]
    .into_iter()
    .find(|p| p.is_file())
}

/// Run scripts/pytorch_reference.py (`mode`: infer or train) and parse its JSON; None (with the
/// reason printed, and how to make a torch Python) when there is no torch.
pub(super) fn run_pytorch(args: &PytorchArgs, script_args: &[String]) -> Option<serde_json::Value> {
    let Some(python) = torch_python(args.python.as_deref()) else {
        println!(
            "PyTorch reference: no Python with torch found{}; make one with\n  python3 -m venv DIR && DIR/bin/pip install torch\nthen pass --python DIR/bin/python (or set SYNTHSCOPE_TORCH_PYTHON)",
            args.python
                .as_ref()
                .map(|p| format!(" ({} does not import torch)", p.display()))
                .unwrap_or_default()
        );
        return None;
    };
    let Some(script) = reference_script() else {
        println!(
            "PyTorch reference: scripts/pytorch_reference.py is neither in the source tree this binary was built from ({}) nor under the current folder",
            env!("CARGO_MANIFEST_DIR")
        );
        return None;
    };
    let mut cmd = std::process::Command::new(&python);
    cmd.arg(&script)
        .args(script_args)
        .args(["--device", &args.torch_device]);
    let out = match cmd.output() {
        Ok(o) => o,
        Err(e) => {
            println!("PyTorch reference: cannot run {}: {e}", python.display());
            return None;
        }
    };
    if !out.status.success() {
        println!(
            "PyTorch reference failed: {}",
            String::from_utf8_lossy(&out.stderr)
                .lines()
                .last()
                .unwrap_or("")
        );
        return None;
    }
    match serde_json::from_slice::<serde_json::Value>(&out.stdout) {
        Ok(v) => Some(v),
        Err(e) => {
            println!("PyTorch reference: unreadable output: {e}");
            None
        }
    }
}

/// Print PyTorch's figures next to ours: `ours` maps a spec to our throughput, `key` names the
/// script's throughput field.
pub(super) fn print_against(
    torch: &serde_json::Value,
    ours: &[(String, String, f64)],
    key: &str,
    unit: &str,
    what: &str,
) {
    println!(
        "PyTorch {} ({}, {} threads, {what}):",
        torch["torch"].as_str().unwrap_or("?"),
        torch["device"].as_str().unwrap_or("?"),
        torch["threads"]
    );
    for (spec, name, ours) in ours {
        let Some(r) = torch["results"]
            .as_array()
            .and_then(|a| a.iter().find(|r| r["spec"].as_str() == Some(spec)))
        else {
            continue;
        };
        let theirs = r[key].as_f64().unwrap_or(f64::NAN);
        super::record(
            "pytorch",
            serde_json::json!({"net": name, "what": what, "unit": unit, "ours": ours,
                "pytorch": theirs, "ratio": ours / theirs, "torch": torch["torch"],
                "torch_device": torch["device"], "torch_threads": torch["threads"],
                "pytorch_first_s": r["first_s"]}),
        );
        println!(
            "  {name:<12} PyTorch {theirs:8.3} {unit}  ours {ours:8.3} {unit}  ratio ours/PyTorch {:.3}  (PyTorch first call {:.2} s)",
            ours / theirs,
            r["first_s"].as_f64().unwrap_or(f64::NAN)
        );
    }
}
