//! VIF (pixel domain) against sewar's `vifp`: stored values always, and a fresh comparison on
//! random images where the torch venv (or `SYNTHSCOPE_TORCH_PYTHON`) has sewar installed.

use std::path::PathBuf;
use std::process::Command;
use synthscope::analysis::{vif, vif_scaled};

/// The pair scripts in this test and in the stored values share: a smooth pattern with a
/// checkerboard, and a contrast-reduced, offset, noisy copy (an LCG, so Python makes the same).
fn pair(nx: usize, ny: usize) -> (Vec<f32>, Vec<f32>) {
    let (mut r, mut p) = (vec![0f32; nx * ny], vec![0f32; nx * ny]);
    let mut s: u64 = 12345;
    for y in 0..ny {
        for x in 0..nx {
            s = (s * 1103515245 + 12345) % (1 << 31);
            let noise = s as f64 / (1u64 << 31) as f64 - 0.5;
            let v = 128.0
                + 60.0 * (x as f64 / 5.0).sin() * (y as f64 / 7.0).cos()
                + 20.0 * (((x / 8 + y / 8) % 2) as f64);
            r[x + nx * y] = v as f32;
            p[x + nx * y] = (0.8 * v + 10.0 + 25.0 * noise) as f32;
        }
    }
    (r, p)
}

#[test]
fn vif_matches_stored_sewar_values() {
    // sewar 0.4.10 `vifp(ref, pred)` on float32 arrays [ny, nx] of `pair` (scripts: see the
    // sewar test below, which recomputes them).
    for (nx, ny, want) in [
        (64, 48, 0.42890172395637516),
        (41, 41, 0.4145165043428332),
        (96, 80, 0.44730204972323384),
    ] {
        let (r, p) = pair(nx, ny);
        let got = vif(&p, &r, nx, ny, 2.0);
        assert!(
            (got - want).abs() < 1e-6,
            "{nx}x{ny}: {got} vs sewar {want}"
        );
        let same = vif(&r, &r, nx, ny, 2.0);
        assert!((same - 1.0).abs() < 1e-6, "identical images: {same}");
    }
    // Too small for four scales.
    assert!(vif(&[0.0; 40 * 40], &[0.0; 40 * 40], 40, 40, 2.0).is_nan());
    // The 0..1 form maps to 0..255 first: the same number as the 8-bit scale.
    let (r, p) = pair(64, 48);
    let r01: Vec<f32> = r.iter().map(|v| v / 255.0).collect();
    let p01: Vec<f32> = p.iter().map(|v| v / 255.0).collect();
    let scaled = vif_scaled(&p01, &r01, 64, 48, (0.0, 1.0));
    assert!((scaled - 0.42890172395637516).abs() < 1e-4, "{scaled}");
}

fn sewar_python() -> Option<PathBuf> {
    let py = std::env::var_os("SYNTHSCOPE_TORCH_PYTHON")
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME")
                .map(|h| PathBuf::from(h).join(".cache/synthscope/torch-venv/bin/python"))
        })?;
    let ok = Command::new(&py)
        .args(["-c", "import sewar, numpy"])
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    ok.then_some(py)
}

#[test]
fn vif_matches_sewar_on_random_images() {
    let Some(py) = sewar_python() else {
        eprintln!(
            "SKIPPED: no Python with sewar (pip install sewar into \
             ~/.cache/synthscope/torch-venv or set SYNTHSCOPE_TORCH_PYTHON); the stored-value \
             test still ran"
        );
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (nx, ny) = (70usize, 57usize);
    let mut s: u64 = 99;
    let mut next = || {
        s = s
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (s >> 40) as f32 / (1u64 << 24) as f32
    };
    let r: Vec<f32> = (0..nx * ny)
        .map(|i| 100.0 * ((i % nx) as f32 / 9.0).sin() + 50.0 * next())
        .collect();
    let cases: Vec<(&str, Vec<f32>)> = vec![
        ("noisy", r.iter().map(|v| v + 30.0 * next()).collect()),
        ("scaled", r.iter().map(|v| 1.3 * v - 5.0).collect()),
        (
            "blurred",
            (0..nx * ny)
                .map(|i| (r[i] + r[(i + 1) % (nx * ny)]) * 0.5)
                .collect(),
        ),
    ];
    let write = |name: &str, v: &[f32]| {
        let p = dir.path().join(name);
        std::fs::write(
            &p,
            v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>(),
        )
        .unwrap();
        p
    };
    let rp = write("ref.f32", &r);
    for (name, pred) in &cases {
        let pp = write(&format!("{name}.f32"), pred);
        let script = format!(
            "import numpy as np; from sewar.full_ref import vifp; \
             r=np.fromfile({:?}, '<f4').reshape({ny},{nx}); p=np.fromfile({:?}, '<f4').reshape({ny},{nx}); \
             print(repr(float(vifp(r, p))))",
            rp.to_str().unwrap(),
            pp.to_str().unwrap()
        );
        let out = Command::new(&py).args(["-c", &script]).output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let want: f64 = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap();
        let got = vif(pred, &r, nx, ny, 2.0);
        eprintln!("{name}: ours {got}, sewar {want}");
        assert!(
            (got - want).abs() < 1e-4,
            "{name}: ours {got}, sewar {want}"
        );
    }
}
