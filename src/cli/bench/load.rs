//! `bench load`: DICOM series load time against a raw read of the same bytes and, with
//! `--against pydicom`, against pydicom loading the same files in the same run.

use super::super::data::load;
use crate::io::dicom::{decode_series, scan};
use crate::io::{Progress, dicom::write};
use crate::volume::{Geometry, Modality, Volume, VolumeMeta};
use anyhow::{Context, bail};
use rayon::prelude::*;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// What `bench load` was asked for.
pub(super) struct LoadArgs {
    /// Folder or files; None: the generated series.
    pub path: Option<PathBuf>,
    /// Timed repetitions of each load (the median is reported).
    pub repeat: usize,
    /// Also run the pydicom reference.
    pub against_pydicom: bool,
    /// Python with pydicom.
    pub python: Option<PathBuf>,
    /// Slices of the generated series.
    pub slices: usize,
    /// Rows and columns of the generated series.
    pub size: usize,
}

/// `bench load`: the rows described in [`measure`], on PATH or on the generated series.
pub(super) fn bench_load(a: &LoadArgs) -> anyhow::Result<()> {
    let path = match &a.path {
        Some(p) => p.clone(),
        None => generated_series(a.slices, a.size)?,
    };
    measure(&path, a)
}

/// `bench load PATH --child`: one load in this fresh process, printed as one JSON line (time
/// of the load alone, resident memory before it and at its peak).
pub(super) fn child_load(path: &Path) -> anyhow::Result<()> {
    let before = status_mib("VmRSS");
    let reset = reset_peak_rss();
    let t = Instant::now();
    let vols = load_once(path)?;
    let seconds = t.elapsed().as_secs_f64();
    let peak = status_mib("VmHWM").filter(|_| reset);
    let voxels: usize = vols.iter().map(|v| v.data.len()).sum();
    println!(
        "{}",
        serde_json::json!({"seconds": seconds, "rss_before_mib": before, "peak_rss_mib": peak, "voxels": voxels})
    );
    Ok(())
}

/// What one fresh-process load reported.
struct ChildRun {
    seconds: f64,
    rss_before: Option<f64>,
    peak_rss: Option<f64>,
}

/// One load of `path` in a fresh process of this program.
fn fresh_process_load(path: &Path) -> anyhow::Result<ChildRun> {
    let exe = std::env::current_exe().context("cannot find this program")?;
    let out = std::process::Command::new(exe)
        .args(["bench", "load"])
        .arg(path)
        .arg("--child")
        .output()
        .context("cannot run the measuring process")?;
    if !out.status.success() {
        bail!(
            "the measuring process failed: {}",
            String::from_utf8_lossy(&out.stderr)
                .lines()
                .last()
                .unwrap_or("")
        );
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let v: serde_json::Value = text
        .lines()
        .rev()
        .find_map(|l| serde_json::from_str(l).ok())
        .context("the measuring process printed no JSON")?;
    Ok(ChildRun {
        seconds: v["seconds"].as_f64().unwrap_or(f64::NAN),
        rss_before: v["rss_before_mib"].as_f64(),
        peak_rss: v["peak_rss_mib"].as_f64(),
    })
}
/// Median of `v` (NaN when empty).
fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    match s.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => s[n / 2],
        n => (s[n / 2 - 1] + s[n / 2]) / 2.0,
    }
}

/// Files under `path` (recursively), sorted.
fn files_under(path: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    if path.is_dir() {
        let mut stack = vec![path.to_path_buf()];
        while let Some(d) = stack.pop() {
            for e in
                std::fs::read_dir(&d).with_context(|| format!("cannot list {}", d.display()))?
            {
                let p = e?.path();
                if p.is_dir() {
                    stack.push(p)
                } else {
                    files.push(p)
                }
            }
        }
    } else {
        files.push(path.to_path_buf());
    }
    files.sort();
    Ok(files)
}

/// A memory field of /proc/self/status (VmRSS, VmHWM) in MiB; None where there is none.
fn status_mib(field: &str) -> Option<f64> {
    let text = std::fs::read_to_string("/proc/self/status").ok()?;
    text.lines()
        .find(|l| l.strip_prefix(field).is_some_and(|r| r.starts_with(':')))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse::<f64>().ok())
        .map(|kb| kb / 1024.0)
}

/// Reset the peak resident size (VmHWM) to the current one; false where the kernel cannot.
fn reset_peak_rss() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

/// One load of `path` through the loader the app uses (every series under it).
fn load_once(path: &Path) -> anyhow::Result<Vec<Volume>> {
    Ok(load(&[path.to_path_buf()])?.volumes)
}

/// One load with the general decoder only (the fast path for uncompressed slices turned off):
/// the decoder every other transfer syntax takes, timed on the same files.
fn load_general(files: &[PathBuf]) -> anyhow::Result<Vec<Volume>> {
    let p = Progress::default();
    let listed: Vec<(PathBuf, bool)> = files.iter().map(|f| (f.clone(), false)).collect();
    let mut found = scan(&listed, &p)?;
    let mut out = Vec::new();
    for s in &mut found.series {
        for sl in &mut s.slices {
            sl.pixels = None;
        }
        out.push(decode_series(s, &p)?);
    }
    Ok(out)
}

/// "peak RSS P MiB (+D MiB over the B MiB before)".
fn memory(before: Option<f64>, peak: Option<f64>) -> String {
    match (before, peak) {
        (Some(b), Some(p)) => format!(
            "peak RSS {p:.0} MiB (+{:.0} MiB over the {b:.0} MiB before)",
            p - b
        ),
        _ => "peak RSS not available".to_string(),
    }
}

/// `bench load PATH`, all in one run on a warm page cache, `repeat` times each (medians, the
/// first run beside them): a raw read of the files' bytes; our load in fresh processes (the
/// heap starts empty, as for an app's first load) and repeated in this one (later loads reuse
/// the heap the first one grew); the general decoder alone; and pydicom.
fn measure(path: &Path, a: &LoadArgs) -> anyhow::Result<()> {
    let files = files_under(path)?;
    let bytes: u64 = files
        .iter()
        .filter_map(|f| std::fs::metadata(f).ok())
        .map(|m| m.len())
        .sum();
    let gb = bytes as f64 / 1e9;
    let repeat = a.repeat.max(1);
    // Warm the page cache: every timed read below finds the files in memory.
    for f in &files {
        std::hint::black_box(std::fs::read(f)?);
    }
    let mut read_s = Vec::new();
    for _ in 0..repeat {
        let t = Instant::now();
        let mut n = 0usize;
        for f in &files {
            n += std::fs::read(f)?.len();
        }
        std::hint::black_box(n);
        read_s.push(t.elapsed().as_secs_f64());
    }
    // The floor under a load into fresh memory: the page faults of writing the volume's f32
    // bytes into a fresh anonymous map (in parallel, plane by plane, as the decoder writes).
    let mut touch_s = Vec::new();
    if let Some(first) = files.first() {
        let plane_bytes = std::fs::metadata(first)
            .map(|m| m.len() as usize)
            .unwrap_or(1 << 20);
        let total: usize = 2 * bytes as usize;
        for _ in 0..repeat {
            let t = Instant::now();
            let mut map = memmap2::MmapMut::map_anon(total.max(1))?;
            map.par_chunks_mut(plane_bytes.max(4096))
                .for_each(|c| c.fill(1));
            std::hint::black_box(&map);
            touch_s.push(t.elapsed().as_secs_f64());
        }
    }
    let mut fresh = Vec::new();
    for _ in 0..repeat {
        fresh.push(fresh_process_load(path)?);
    }
    let fresh_s: Vec<f64> = fresh.iter().map(|r| r.seconds).collect();
    let mut ours_s = Vec::new();
    let mut shape = Vec::new();
    let mut sum = 0.0f64;
    let mut voxels = 0usize;
    for i in 0..repeat {
        let t = Instant::now();
        let vols = load_once(path)?;
        ours_s.push(t.elapsed().as_secs_f64());
        if i == 0 {
            shape = vols.iter().map(|v| v.geometry.dims).collect();
            voxels = vols.iter().map(|v| v.data.len()).sum();
            sum = vols
                .iter()
                .map(|v| v.data.par_iter().map(|x| *x as f64).sum::<f64>())
                .sum();
        }
    }
    let mut general_s = Vec::new();
    for _ in 0..repeat {
        let t = Instant::now();
        std::hint::black_box(load_general(&files)?);
        general_s.push(t.elapsed().as_secs_f64());
    }
    let reference = if a.against_pydicom {
        Some(run_pydicom(path, repeat, a.python.as_deref())?)
    } else {
        None
    };

    let slices: usize = shape.iter().map(|d| d[2]).sum();
    let f32_mib = voxels as f64 * 4.0 / (1024.0 * 1024.0);
    println!(
        "series: {}: {} files, {:.1} MB stored; {} volume(s) {:?}, {slices} slices, {voxels} voxels ({f32_mib:.0} MiB as f32)",
        path.display(),
        files.len(),
        bytes as f64 / 1e6,
        shape.len(),
        shape
    );
    println!(
        "warm page cache, {repeat} runs each: median time (first run), GB/s of the stored bytes at the median"
    );
    let row = |name: &str, s: &[f64]| {
        let m = median(s);
        println!("  {name:<58} {m:7.3} s ({:.3} s) {:6.2} GB/s", s[0], gb / m);
    };
    row("raw read (std::fs::read of each file, one thread)", &read_s);
    if !touch_s.is_empty() {
        row(
            "fresh memory: write 2x the stored bytes (page faults only)",
            &touch_s,
        );
    }
    row("ours, a fresh process per load (empty heap)", &fresh_s);
    row("ours, repeated in one process (heap reused)", &ours_s);
    row(
        "ours, general decoder only (fast path off), one process",
        &general_s,
    );
    if let Some(r) = &reference {
        row(
            &format!(
                "pydicom {} (read, sort, stack, rescale), one process",
                r.version
            ),
            &r.seconds,
        );
    }
    let (fresh_m, ours_m) = (median(&fresh_s), median(&ours_s));
    println!(
        "ours: {:.2}x the raw read's time (fresh process; {:.2}x repeated); the general decoder takes {:.2}x ours (repeated)",
        fresh_m / median(&read_s),
        ours_m / median(&read_s),
        median(&general_s) / ours_m
    );
    let (before, peak) = (fresh[0].rss_before, fresh[0].peak_rss);
    println!(
        "memory of one load: ours {} (a fresh process); the voxels as f32 take {f32_mib:.0} MiB, the stored files {:.0} MiB",
        memory(before, peak),
        bytes as f64 / (1024.0 * 1024.0)
    );
    let mut rec = serde_json::json!({
        "path": path.display().to_string(),
        "files": files.len(),
        "stored_bytes": bytes,
        "voxels": voxels,
        "raw_read_s": read_s,
        "fresh_memory_write_s": touch_s,
        "ours_fresh_process_s": fresh_s,
        "ours_repeated_s": ours_s,
        "general_decoder_s": general_s,
        "ours_gb_per_s": gb / fresh_m,
        "ours_peak_rss_mib": peak,
        "ours_rss_before_mib": before,
    });
    if let Some(r) = &reference {
        let p = median(&r.seconds);
        println!(
            "ours vs pydicom: {:.2}x faster (fresh process per load; {:.2}x repeated in one process)",
            p / fresh_m,
            p / ours_m
        );
        println!(
            "memory of one load: pydicom {}",
            memory(Some(r.rss_before), Some(r.peak_rss))
        );
        let same_shape = shape.len() == 1 && r.shape == [shape[0][2], shape[0][1], shape[0][0]];
        let rel = (sum - r.sum).abs() / r.sum.abs().max(1.0);
        println!(
            "same volume: shape {}, sum of values ours {sum:.6e}, pydicom {:.6e} (relative difference {rel:.1e})",
            if same_shape { "matches" } else { "DIFFERS" },
            r.sum
        );
        if let Some(o) = rec.as_object_mut() {
            o.insert("pydicom_version".into(), r.version.clone().into());
            o.insert("pydicom_s".into(), r.seconds.clone().into());
            o.insert("pydicom_peak_rss_mib".into(), r.peak_rss.into());
            o.insert("speedup_vs_pydicom".into(), (p / fresh_m).into());
            o.insert("same_values".into(), (same_shape && rel < 1e-6).into());
        }
    }
    super::record("load", rec);
    Ok(())
}

/// What the pydicom reference reported.
struct PydicomRun {
    version: String,
    seconds: Vec<f64>,
    shape: Vec<usize>,
    sum: f64,
    rss_before: f64,
    peak_rss: f64,
}

/// Run scripts/pydicom_reference.py on `path`.
fn run_pydicom(path: &Path, repeat: usize, python: Option<&Path>) -> anyhow::Result<PydicomRun> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let python = python.map(Path::to_path_buf).unwrap_or_else(|| {
        let venv = root.join("target/py-sitk/bin/python");
        if venv.exists() {
            venv
        } else {
            PathBuf::from("python3")
        }
    });
    let out = std::process::Command::new(&python)
        .arg(root.join("scripts/pydicom_reference.py"))
        .arg(path)
        .arg("--repeat")
        .arg(repeat.to_string())
        .output()
        .with_context(|| format!("cannot run {}", python.display()))?;
    if !out.status.success() {
        bail!(
            "the pydicom reference failed with {}: {} (create the venv with `python3 -m venv target/py-sitk && target/py-sitk/bin/pip install pydicom==3.0.2 numpy`, or pass --python)",
            python.display(),
            String::from_utf8_lossy(&out.stderr)
                .lines()
                .last()
                .unwrap_or("")
        );
    }
    let v: serde_json::Value =
        serde_json::from_slice(&out.stdout).context("the pydicom reference printed no JSON")?;
    let seconds: Vec<f64> = v["seconds"]
        .as_array()
        .map(|a| a.iter().filter_map(|x| x.as_f64()).collect())
        .unwrap_or_default();
    if seconds.is_empty() {
        bail!("the pydicom reference reported no times");
    }
    Ok(PydicomRun {
        version: v["pydicom"].as_str().unwrap_or("?").to_string(),
        seconds,
        shape: v["shape"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|x| x.as_u64().map(|n| n as usize))
                    .collect()
            })
            .unwrap_or_default(),
        sum: v["sum"].as_f64().unwrap_or(f64::NAN),
        rss_before: v["rss_before_mib"].as_f64().unwrap_or(f64::NAN),
        peak_rss: v["peak_rss_mib"].as_f64().unwrap_or(f64::NAN),
    })
}

/// The generated CT series (`slices` int16 slices of `size`^2, explicit VR little endian, as
/// our exporter writes them), written once under the temp folder and reused.
fn generated_series(slices: usize, size: usize) -> anyhow::Result<PathBuf> {
    if slices == 0 || size == 0 || size > 4096 || slices > 4096 {
        bail!("--slices and --size must be 1 to 4096");
    }
    let dir = std::env::temp_dir().join(format!("synthscope-bench-load-ct-{slices}x{size}x{size}"));
    let done = dir.with_extension("complete");
    if done.exists() && files_under(&dir).map(|f| f.len()).unwrap_or(0) == slices {
        return Ok(dir);
    }
    let _ = std::fs::remove_dir_all(&dir);
    let t = Instant::now();
    let plane = size * size;
    let mut data = vec![0f32; plane * slices];
    // A head-like ellipse of soft tissue in a skull, in air, with integer noise (HU).
    data.par_chunks_mut(plane).enumerate().for_each(|(z, p)| {
        let c = size as f64 / 2.0;
        let mut h: u64 = 0x9e37_79b9_7f4a_7c15 ^ z as u64;
        for (i, v) in p.iter_mut().enumerate() {
            let (x, y) = ((i % size) as f64 - c, (i / size) as f64 - c);
            let r = ((x / 0.8).powi(2) + y.powi(2)).sqrt() / c;
            h ^= h << 13;
            h ^= h >> 7;
            h ^= h << 17;
            let noise = (h % 41) as f32 - 20.0;
            *v = if r < 0.75 {
                40.0 + noise
            } else if r < 0.82 {
                1200.0 + 10.0 * noise
            } else {
                -1000.0 + noise
            };
        }
    });
    let meta = VolumeMeta {
        modality: Modality::Ct,
        series_uid: write::uid_from(&format!("bench-load {slices}x{size}")),
        description: "synthscope bench load".into(),
        patient_name: "Bench^Load".into(),
        patient_id: "BENCH".into(),
        ..VolumeMeta::default()
    };
    let vol = Volume::new(
        Geometry::axis_aligned([size, size, slices], [0.7, 0.7, 1.0], [0.0; 3]),
        data,
        meta,
    );
    write::write_series(&vol, &dir, &write::DicomWriteOptions::default())?;
    std::fs::write(&done, b"")?;
    println!(
        "wrote the bench series ({slices} slices of {size}x{size}) to {} in {:.1} s",
        dir.display(),
        t.elapsed().as_secs_f64()
    );
    Ok(dir)
}
