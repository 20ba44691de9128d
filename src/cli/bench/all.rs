//! `bench all`: every benchmark in one command — loading, registration, the networks,
//! synthesis, Grad-CAM, training and the window's frame time — on the CPU compute device and on
//! the GPU adapter, with the outside references (PyTorch, SimpleITK, pydicom) measured in the
//! same run, written as one JSON file with `--json`.
//!
//! Each compute device runs in a child process of its own (the compute device is chosen once per
//! process): `cpu` runs everything, `gpu` the network benchmarks. The parent lists every wgpu
//! adapter it finds, merges the children's records and prints a summary.

use super::record::{record, take};
use burn::tensor::wgpu::wgpu;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::Command;

/// `bench all` options.
#[derive(clap::Args, Debug, Clone)]
pub struct AllArgs {
    /// Write every record of the run to this JSON file.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Smaller shapes and fewer repetitions (a few minutes on 2 cores; the full run is what the
    /// figures in the README come from).
    #[arg(long)]
    pub quick: bool,
    /// Skip the PyTorch reference (it needs a Python with torch).
    #[arg(long)]
    pub no_pytorch: bool,
    /// Python with torch for the reference (default: as `--against-pytorch` finds it).
    #[arg(long)]
    pub python: Option<PathBuf>,
    /// Only these compute devices (comma-separated: cpu, gpu); default both where present.
    #[arg(long, default_value = "cpu,gpu")]
    pub devices: String,
    /// Internal: run one device's share in this process and write its records to --json.
    #[arg(long, hide = true, value_parser = ["full", "nets"])]
    pub child: Option<String>,
}

/// Run `bench all`.
pub(super) fn run(a: &AllArgs) -> anyhow::Result<()> {
    if let Some(share) = &a.child {
        run_child(a, share == "full");
        let records = take();
        if let Some(p) = &a.json {
            crate::atomic::write(p, serde_json::to_string_pretty(&records)?)?;
        }
        return Ok(());
    }
    let started = std::time::Instant::now();
    let adapters = adapters();
    for ad in &adapters {
        println!("adapter: {}", ad["summary"].as_str().unwrap_or("?"));
    }
    let has_gpu = !adapters.is_empty();
    let mut results = Vec::new();
    let exe = std::env::current_exe()?;
    let tmp = tempfile_dir()?;
    for dev in a
        .devices
        .split(',')
        .map(str::trim)
        .filter(|d| !d.is_empty())
    {
        let share = match dev {
            "cpu" => "full",
            "gpu" if has_gpu => "nets",
            "gpu" => {
                println!("== gpu: no wgpu adapter found; skipped");
                results.push(json!({"bench": "all", "device": "gpu", "skipped": "no adapter"}));
                continue;
            }
            other => anyhow::bail!("unknown device {other:?} (cpu, gpu)"),
        };
        println!("\n== compute device {dev} ({share} set)");
        let out = tmp.join(format!("{dev}.json"));
        let mut cmd = Command::new(&exe);
        cmd.args(["bench", "--device", dev, "all", "--child", share, "--json"])
            .arg(&out);
        let software_gpu = dev == "gpu" && adapters.iter().all(|a| a["software"] == true);
        if a.quick || software_gpu {
            cmd.arg("--quick");
        }
        if a.no_pytorch {
            cmd.arg("--no-pytorch");
        }
        if let Some(p) = &a.python {
            cmd.arg("--python").arg(p);
        }
        let status = cmd.status()?;
        let mut recs: Vec<Value> = std::fs::read_to_string(&out)
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok())
            .unwrap_or_default();
        if !status.success() {
            recs.push(
                json!({"bench": "all", "error": format!("the {dev} run exited with {status}")}),
            );
        }
        for r in &mut recs {
            r["device"] = json!(dev);
            if software_gpu {
                r["quick"] = json!(true);
            }
        }
        results.extend(recs);
    }
    let _ = std::fs::remove_dir_all(&tmp);
    summary(&results);
    if let Some(p) = &a.json {
        let doc = json!({
            "synthscope": env!("CARGO_PKG_VERSION"),
            "unix_time": crate::study::now_unix(),
            "seconds": started.elapsed().as_secs_f64(),
            "quick": a.quick,
            "machine": {
                "cpus": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
                "adapters": adapters,
            },
            "results": results,
        });
        crate::atomic::write(p, serde_json::to_string_pretty(&doc)?)?;
        println!("\nwrote {}", p.display());
    }
    Ok(())
}

fn tempfile_dir() -> anyhow::Result<PathBuf> {
    let d = std::env::temp_dir().join(format!("synthscope-bench-all-{}", std::process::id()));
    std::fs::create_dir_all(&d)?;
    Ok(d)
}

/// Every wgpu adapter of every backend, as the status bar describes them.
fn adapters() -> Vec<Value> {
    let instance = wgpu::Instance::default();
    pollster::block_on(instance.enumerate_adapters(wgpu::Backends::all()))
        .iter()
        .map(|a| {
            let r = crate::gpu::AdapterReport::from_adapter(a);
            let features = a.features();
            json!({
                "summary": r.summary(),
                "name": r.name,
                "device_type": r.device_type,
                "backend": r.backend,
                "driver": r.driver,
                "software": r.software,
                "shader_f16": features.contains(wgpu::Features::SHADER_F16),
            })
        })
        .collect()
}

/// One benchmark, its failure kept as a record instead of ending the run.
fn step(name: &str, f: impl FnOnce() -> anyhow::Result<()>) {
    println!("\n-- {name}");
    if let Err(e) = f() {
        println!("{name} failed: {e:#}");
        record(name, json!({"error": format!("{e:#}")}));
    }
}

fn run_child(a: &AllArgs, full: bool) {
    let q = a.quick;
    let pytorch = super::PytorchArgs {
        against_pytorch: !a.no_pytorch,
        python: a.python.clone(),
        torch_device: torch_device_for_child(a),
    };
    let (size, batch, repeat) = if q { (128, 4, 1) } else { (256, 4, 3) };
    step("synthesize", || {
        super::bench_synthesize(if q { 4 } else { 8 }, 4)
    });
    step("models", || {
        super::bench_models(size, batch, repeat, "unet:32:4,drunet:34", &pytorch)
    });
    step("train", || {
        super::bench_train(
            if q { 64 } else { 128 },
            4,
            if q { 1 } else { 3 },
            "unet:16:4,unet:32:4,drunet:34",
            &pytorch,
        )
    });
    if !full {
        return;
    }
    step("load", || {
        super::load::bench_load(&super::load::LoadArgs {
            path: None,
            repeat: if q { 2 } else { 5 },
            against_pydicom: true,
            python: None,
            slices: if q { 100 } else { 300 },
            size: 512,
        })
    });
    step("register", || {
        super::register::bench_register("t1", None, false, true)
    });
    step("frame_time", || frame_time(q));
}

/// The PyTorch reference on this child's device: CUDA beside a GPU when torch sees one.
fn torch_device_for_child(a: &AllArgs) -> String {
    let gpu_child = crate::gpu::compute_if_chosen()
        .and_then(|r| r.ok())
        .is_some_and(|c| !matches!(c.kind, crate::gpu::ComputeKind::Cpu));
    if gpu_child {
        let python = super::pytorch::torch_python(a.python.as_deref());
        let cuda = python.is_some_and(|p| {
            Command::new(p)
                .args([
                    "-c",
                    "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)",
                ])
                .status()
                .is_ok_and(|s| s.success())
        });
        if cuda {
            return "cuda".into();
        }
    }
    "cpu".into()
}

/// The window's frame time: `synthscope --autoscroll N` on the demo pair (under xvfb-run when
/// there is no display), its phases parsed into records.
fn frame_time(quick: bool) -> anyhow::Result<()> {
    let exe = std::env::current_exe()?;
    let frames = if quick { "60" } else { "240" };
    let headless =
        std::env::var_os("DISPLAY").is_none() && std::env::var_os("WAYLAND_DISPLAY").is_none();
    let mut cmd = if headless && which("xvfb-run") {
        let mut c = Command::new("xvfb-run");
        c.args(["-a", "-s", "-screen 0 1600x900x24"]).arg(&exe);
        c
    } else {
        Command::new(&exe)
    };
    let out = cmd.args(["--autoscroll", frames]).output()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let mut found = 0;
    for line in text.lines().filter(|l| l.starts_with("autoscroll:")) {
        println!("{line}");
        if let Some(r) = parse_phase(line) {
            record("frame_time", r);
            found += 1;
        }
    }
    if found == 0 {
        anyhow::bail!(
            "no frame times from the window ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
                .lines()
                .last()
                .unwrap_or("")
        );
    }
    Ok(())
}

fn which(tool: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| Path::new(&d).join(tool).is_file()))
}

/// "autoscroll: scrolling:   120 frames, mean 5.1, p50 4.9, p95 7.2 (...)" into a record.
fn parse_phase(line: &str) -> Option<Value> {
    let rest = line.strip_prefix("autoscroll:")?.trim();
    let (phase, nums) = rest.split_once(':')?;
    let num_after = |key: &str| -> Option<f64> {
        let i = nums.find(key)? + key.len();
        nums[i..]
            .trim_start()
            .split(|c: char| !(c.is_ascii_digit() || c == '.'))
            .next()?
            .parse()
            .ok()
    };
    let frames = nums.split_whitespace().next()?.parse::<f64>().ok()?;
    let mut r = json!({
        "phase": phase.trim(),
        "frames": frames,
        "mean_ms": num_after("mean")?,
        "p50_ms": num_after("p50")?,
        "p95_ms": num_after("p95")?,
    });
    // Later fields (max, frames over 250 ms, the UI thread's share, the load average).
    for (key, field) in [
        ("max", "max_ms"),
        ("250 ms", "over_250ms"),
        ("ui p50", "ui_p50_ms"),
        ("ui p95", "ui_p95_ms"),
        ("load", "load_avg"),
    ] {
        if let Some(v) = num_after(key) {
            r[field] = json!(v);
        }
    }
    Some(r)
}

/// The headline figures of the run, a line each.
fn summary(results: &[Value]) {
    println!("\n== summary");
    for r in results {
        let dev = r["device"].as_str().unwrap_or("");
        let line = match r["bench"].as_str().unwrap_or("") {
            "pytorch" => format!(
                "{dev:>4} {:<12} ours {:.3} vs PyTorch {:.3} {} ({}): ratio {:.3}",
                r["net"].as_str().unwrap_or(""),
                r["ours"].as_f64().unwrap_or(f64::NAN),
                r["pytorch"].as_f64().unwrap_or(f64::NAN),
                r["unit"].as_str().unwrap_or(""),
                r["what"].as_str().unwrap_or(""),
                r["ratio"].as_f64().unwrap_or(f64::NAN)
            ),
            "synthesize" => format!(
                "{dev:>4} synthesize {:<10} {:.2} slices/s",
                r["net"].as_str().unwrap_or(""),
                r["slices_per_s"].as_f64().unwrap_or(f64::NAN)
            ),
            "gradcam" => format!(
                "{dev:>4} Grad-CAM {:<12} {:.2} s per slice (warm)",
                r["net"].as_str().unwrap_or(""),
                r["warm_s"].as_f64().unwrap_or(f64::NAN)
            ),
            "register" => format!(
                "{dev:>4} register {:<12} {:.2} s, TRE {:.3} mm",
                r["tool"].as_str().unwrap_or(""),
                r["seconds"].as_f64().unwrap_or(f64::NAN),
                r["tre_mm"].as_f64().unwrap_or(f64::NAN)
            ),
            "frame_time" => format!(
                "{dev:>4} frame time {:<26} p50 {:.1} ms, p95 {:.1} ms, max {:.1} ms (load {:.1})",
                r["phase"].as_str().unwrap_or(""),
                r["p50_ms"].as_f64().unwrap_or(f64::NAN),
                r["p95_ms"].as_f64().unwrap_or(f64::NAN),
                r["max_ms"].as_f64().unwrap_or(f64::NAN),
                r["load_avg"].as_f64().unwrap_or(f64::NAN)
            ),
            _ if r.get("error").is_some() => format!(
                "{dev:>4} {} FAILED: {}",
                r["bench"].as_str().unwrap_or(""),
                r["error"].as_str().unwrap_or("")
            ),
            _ => continue,
        };
        println!("{line}");
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn autoscroll_lines_parse() {
        let r = super::parse_phase(
            "autoscroll: scrolling:                     120 frames, mean    5.10, p50    4.90, p95    7.20 (204.1 fps at p50)",
        )
        .unwrap();
        assert_eq!(r["phase"], "scrolling");
        assert_eq!(r["frames"], 120.0);
        assert_eq!(r["p95_ms"], 7.2);
        assert!(r.get("max_ms").is_none());
        let r = super::parse_phase(
            "autoscroll: scrolling while training:     100 frames, mean   54.27, p50   50.57, p95   81.88, max  140.20, over 250 ms 0, ui p50   3.10, ui p95   6.40, load 2.54 (19.8 fps at p50)",
        )
        .unwrap();
        assert_eq!(r["p95_ms"], 81.88);
        assert_eq!(r["max_ms"], 140.2);
        assert_eq!(r["over_250ms"], 0.0);
        assert_eq!(r["ui_p95_ms"], 6.4);
        assert_eq!(r["load_avg"], 2.54);
        assert!(
            super::parse_phase("autoscroll: window 1440x720 points; frame times in ms").is_none()
        );
    }
}
