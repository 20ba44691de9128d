//! `bench stream`: peak memory of training data for 10 and 100 phantom patients, streamed from
//! an index against loaded whole (the in-memory `Dataset`), each in a fresh child process.

use crate::io::Progress;
use crate::io::nifti::write_nifti;
use crate::io::phantom::{PhantomConfig, phantom_patient_varied};
use crate::model::Direction;
use crate::train::stream::{BatchStream, StreamIndex, StreamSettings, peak_rss_kib};
use anyhow::{Context, anyhow, bail};
use clap::Args;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

/// `bench stream` arguments.
#[derive(Args, Debug)]
pub struct StreamBenchArgs {
    /// Patient counts to measure.
    #[arg(long, value_delimiter = ',', default_value = "10,100")]
    pub patients: Vec<usize>,
    /// Batches to read in each measurement.
    #[arg(long, default_value_t = 200)]
    pub steps: usize,
    /// Patch side.
    #[arg(long, default_value_t = 64)]
    pub patch: usize,
    /// Patient grids: small (96 x 96 x 48, the tests') or full (the demo's 176 x 176 x 128 MR).
    #[arg(long, default_value = "small", value_parser = ["small", "full"])]
    pub grid: String,
    /// Folder for the generated patients (default: under the temp folder; reused).
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Internal: measure one mode (`streamed` or `memory`) on FOLDER in this process.
    #[arg(long, hide = true, num_args = 2, value_names = ["MODE", "FOLDER"])]
    pub child: Vec<String>,
}

/// Write `n` varied phantom patients (ct.nii, mr.nii) under `dir/patient_NNN`, keeping those
/// already there.
fn ensure_patients(dir: &Path, n: usize, small: bool) -> anyhow::Result<()> {
    let base = if small {
        PhantomConfig::small()
    } else {
        PhantomConfig::default()
    };
    for k in 0..n {
        let d = dir.join(format!("patient_{k:03}"));
        if d.join("ct.nii").exists() && d.join("mr.nii").exists() {
            continue;
        }
        std::fs::create_dir_all(&d).with_context(|| d.display().to_string())?;
        let (ct, mr) = phantom_patient_varied(&base, k);
        write_nifti(&ct, &d.join("ct.nii"))?;
        write_nifti(&mr, &d.join("mr.nii"))?;
    }
    Ok(())
}

/// A folder whose patients are the first `n` of `all` (symbolic links on unix, copies elsewhere
/// are not needed: the bench runs where /proc reports memory).
fn subset(all: &Path, n: usize, out: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(out)?;
    for k in 0..n {
        let name = format!("patient_{k:03}");
        let link = out.join(&name);
        if link.exists() {
            continue;
        }
        #[cfg(unix)]
        std::os::unix::fs::symlink(all.join(&name), &link)?;
        #[cfg(not(unix))]
        bail!("bench stream needs symbolic links (unix)");
    }
    Ok(())
}

/// The child: one measurement, printed as one JSON line.
pub(super) fn child(mode: &str, folder: &Path, steps: usize, patch: usize) -> anyhow::Result<()> {
    let direction = Direction::MrToCt;
    let base_kib = peak_rss_kib().unwrap_or(0);
    let t = Instant::now();
    let (load_s, batches_per_s, patients, slices) = match mode {
        "streamed" => {
            let index = StreamIndex::open_or_build(
                folder,
                &StreamIndex::default_dir(folder),
                direction,
                &Progress::default(),
            )?;
            let load_s = t.elapsed().as_secs_f64();
            let order = index.slice_refs();
            let (np, ns) = (index.patients.len(), order.len());
            let t = Instant::now();
            let s = StreamSettings {
                patch,
                ..StreamSettings::default()
            };
            let mut sum = 0.0f64;
            for b in BatchStream::start(Arc::new(index), Arc::new(order), steps, s)? {
                sum += b?.inputs.iter().map(|v| *v as f64).sum::<f64>();
            }
            std::hint::black_box(sum);
            (load_s, steps as f64 / t.elapsed().as_secs_f64(), np, ns)
        }
        "memory" => {
            let cases =
                crate::train::data::cases_from_folder(folder, direction, &Progress::default())?;
            let load_s = t.elapsed().as_secs_f64();
            let ds = crate::train::Dataset::split(cases, 0.0);
            let (np, ns) = (ds.cases.len(), ds.train.len() + ds.val.len());
            let t = Instant::now();
            let mut rng = crate::train::data::Rng::new(1);
            let refs: Vec<_> = ds.train.iter().chain(&ds.val).copied().collect();
            let mut sum = 0.0f64;
            for k in 0..steps * 4 {
                let r = refs[k % refs.len()];
                let c = &ds.cases[r.case];
                let (input, _, _) = c.slice(r.z);
                let o = (
                    crate::train::data::origin(c.nx, patch, &mut rng),
                    crate::train::data::origin(c.ny, patch, &mut rng),
                );
                sum += crate::train::data::crop(&input, (c.nx, c.ny), o, patch, 0, false)
                    .iter()
                    .map(|v| *v as f64)
                    .sum::<f64>();
            }
            std::hint::black_box(sum);
            (load_s, steps as f64 / t.elapsed().as_secs_f64(), np, ns)
        }
        other => bail!("unknown mode {other:?}"),
    };
    let peak = peak_rss_kib().ok_or_else(|| anyhow!("this system reports no peak memory"))?;
    println!(
        "{}",
        serde_json::json!({
            "mode": mode, "patients": patients, "slices": slices, "peak_rss_kib": peak,
            "start_rss_kib": base_kib, "load_s": load_s, "batches_per_s": batches_per_s,
        })
    );
    Ok(())
}

/// The parent: generate, then one child per (count, mode).
pub(super) fn run(a: &StreamBenchArgs) -> anyhow::Result<()> {
    if let [mode, folder] = a.child.as_slice() {
        return child(mode, Path::new(folder), a.steps, a.patch);
    }
    let small = a.grid == "small";
    let root = a.dir.clone().unwrap_or_else(|| {
        std::env::temp_dir().join(format!("synthscope-bench-stream-{}", a.grid))
    });
    let max = a.patients.iter().copied().max().unwrap_or(0);
    if max == 0 {
        bail!("--patients names no count");
    }
    let t = Instant::now();
    let all = root.join("all");
    ensure_patients(&all, max, small)?;
    println!(
        "{max} varied phantom patients ({} grid) in {} ({:.1} s)",
        a.grid,
        all.display(),
        t.elapsed().as_secs_f64()
    );
    let exe = std::env::current_exe()?;
    println!(
        "{:>8}  {:>9}  {:>7}  {:>13}  {:>8}  {:>10}",
        "patients", "mode", "slices", "peak RSS MiB", "load s", "batches/s"
    );
    for &n in &a.patients {
        let folder = root.join(format!("first_{n}"));
        subset(&all, n, &folder)?;
        for mode in ["streamed", "memory"] {
            let out = std::process::Command::new(&exe)
                .args(["bench", "stream", "--steps", &a.steps.to_string()])
                .args(["--patch", &a.patch.to_string(), "--child", mode])
                .arg(&folder)
                .env("RAYON_NUM_THREADS", "1")
                .output()?;
            if !out.status.success() {
                bail!(
                    "bench stream child ({mode}, {n} patients) failed: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
            }
            let text = String::from_utf8_lossy(&out.stdout);
            let line = text
                .lines()
                .rev()
                .find(|l| l.starts_with('{'))
                .ok_or_else(|| anyhow!("bench stream child printed no result: {text}"))?;
            let v: serde_json::Value = serde_json::from_str(line)?;
            println!(
                "{:>8}  {:>9}  {:>7}  {:>13.1}  {:>8.2}  {:>10.1}",
                n,
                mode,
                v["slices"],
                v["peak_rss_kib"].as_f64().unwrap_or(0.0) / 1024.0,
                v["load_s"].as_f64().unwrap_or(0.0),
                v["batches_per_s"].as_f64().unwrap_or(0.0)
            );
        }
    }
    println!(
        "streamed: the index is built on the first run of each folder (load s) and reused after; \
         memory: every patient loaded into the in-memory Dataset, as `train` does today"
    );
    Ok(())
}
