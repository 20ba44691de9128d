//! `bench load`: series load throughput against plain file reading.

use super::super::data::load;
use std::path::Path;
use std::time::Instant;

/// `bench load`: load throughput of PATH against plain reading of the same bytes.
pub(super) fn bench_load(path: &Path, repeat: usize) -> anyhow::Result<()> {
    let mut files = Vec::new();
    if path.is_dir() {
        let mut stack = vec![path.to_path_buf()];
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(&d)? {
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
    let bytes: u64 = files
        .iter()
        .filter_map(|f| std::fs::metadata(f).ok())
        .map(|m| m.len())
        .sum();
    let mut best_read = f64::INFINITY;
    let mut best_load = f64::INFINITY;
    let mut slices = 0usize;
    let mut voxels = 0usize;
    for _ in 0..repeat.max(1) {
        let t = Instant::now();
        let mut n = 0usize;
        for f in &files {
            n += std::fs::read(f)?.len();
        }
        std::hint::black_box(n);
        best_read = best_read.min(t.elapsed().as_secs_f64());
        let t = Instant::now();
        let out = load(&[path.to_path_buf()])?;
        best_load = best_load.min(t.elapsed().as_secs_f64());
        slices = out.volumes.iter().map(|v| v.geometry.dims[2]).sum();
        voxels = out.volumes.iter().map(|v| v.data.len()).sum();
    }
    let mb = bytes as f64 / 1e6;
    println!(
        "files: {} ({:.1} MB), slices: {slices}, voxels: {voxels}",
        files.len(),
        mb
    );
    println!(
        "reference (plain read of the same files): {:.1} MB/s, {:.3} s",
        mb / best_read,
        best_read
    );
    println!(
        "load (scan + sort + decode + rescale):     {:.1} MB/s, {:.0} slices/s, {:.3} s",
        mb / best_load,
        slices as f64 / best_load,
        best_load
    );
    println!("ratio load/read time: {:.2}x", best_load / best_read);
    Ok(())
}
