//! PSNR and SSIM against scikit-image 0.26 on the same arrays (2D slice and 3D block), to 1e-4;
//! the other metrics on known answers; `synthscope evaluate` end to end.

mod common;

use synthscope::analysis::{evaluate_volumes, psnr, ssim, tenengrad, uqi};
use synthscope::io::phantom::{PhantomConfig, phantom_ct};

fn write_f32(path: &std::path::Path, v: &[f32]) {
    let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
    std::fs::write(path, bytes).unwrap();
}

/// A degraded copy: contrast change, offset, a deterministic texture.
fn degrade(v: &[f32]) -> Vec<f32> {
    v.iter()
        .enumerate()
        .map(|(i, x)| 0.93 * x + 12.0 + 25.0 * (((i * 7919) % 997) as f32 / 997.0 - 0.5))
        .collect()
}

#[test]
fn psnr_and_ssim_match_scikit_image() {
    let py = common::sitk_python();
    let ct = phantom_ct(&PhantomConfig::small());
    let [nx, ny, nz] = ct.geometry.dims;
    let z = nz / 2;
    let slice_ref: Vec<f32> = ct.data[z * nx * ny..(z + 1) * nx * ny].to_vec();
    let slice_pred = degrade(&slice_ref);
    // A 3D block (x 20..60, y 20..60, z 10..30).
    let (bx, by, bz) = (40usize, 40usize, 20usize);
    let mut block_ref = Vec::with_capacity(bx * by * bz);
    for zz in 10..10 + bz {
        for yy in 20..20 + by {
            for xx in 20..20 + bx {
                block_ref.push(ct.get(xx, yy, zz));
            }
        }
    }
    let block_pred = degrade(&block_ref);
    let range = 2000.0;
    let dir = tempfile::tempdir().unwrap();
    for (name, v) in [
        ("s_ref", &slice_ref),
        ("s_pred", &slice_pred),
        ("b_ref", &block_ref),
        ("b_pred", &block_pred),
    ] {
        write_f32(&dir.path().join(name), v);
    }
    let script = format!(
        r#"
import json, numpy as np
from skimage.metrics import peak_signal_noise_ratio as p, structural_similarity as s
d = "{dir}"
def load(n, shape): return np.fromfile(d + "/" + n, dtype="<f4").astype(np.float64).reshape(shape)
sr, sp = load("s_ref", ({ny}, {nx})), load("s_pred", ({ny}, {nx}))
br, bp = load("b_ref", ({bz}, {by}, {bx})), load("b_pred", ({bz}, {by}, {bx}))
kw = dict(data_range={range}, gaussian_weights=True, sigma=1.5, use_sample_covariance=False)
print(json.dumps(dict(psnr2=p(sr, sp, data_range={range}), ssim2=s(sr, sp, **kw), psnr3=p(br, bp, data_range={range}), ssim3=s(br, bp, **kw))))
"#,
        dir = dir.path().display()
    );
    let out = common::run_ok(std::process::Command::new(py).args(["-c", &script]));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let ours = [
        ("psnr2", psnr(&slice_pred, &slice_ref, range)),
        (
            "ssim2",
            ssim(&slice_pred, &slice_ref, [nx, ny, 1], range, None),
        ),
        ("psnr3", psnr(&block_pred, &block_ref, range)),
        (
            "ssim3",
            ssim(&block_pred, &block_ref, [bx, by, bz], range, None),
        ),
    ];
    for (k, o) in ours {
        let s = v[k].as_f64().unwrap();
        eprintln!("{k}: ours {o:.6}, scikit-image {s:.6}");
        assert!((o - s).abs() < 1e-4, "{k}: ours {o} vs scikit-image {s}");
    }
}

#[test]
fn tenengrad_and_uqi_known_answers() {
    // A vertical step edge of height 1: Sobel |gx| = 4 on the two columns next to the edge.
    let (nx, ny) = (16usize, 16usize);
    let step: Vec<f32> = (0..nx * ny)
        .map(|i| if i % nx >= 8 { 1.0 } else { 0.0 })
        .collect();
    assert!((tenengrad(&step, nx, ny, 0.5) - 16.0).abs() < 1e-9);
    let flat = vec![0.5f32; nx * ny];
    assert_eq!(tenengrad(&flat, nx, ny, 0.0), 0.0);
    // UQI: 1 for identical images; 0 correlation gives ~0; a contrast change lowers it.
    let tex: Vec<f32> = (0..nx * ny).map(|i| ((i * 37) % 11) as f32).collect();
    assert!((uqi(&tex, &tex, nx, ny) - 1.0).abs() < 1e-9);
    let scaled: Vec<f32> = tex.iter().map(|v| v * 0.5).collect();
    assert!(uqi(&scaled, &tex, nx, ny) < 0.95);
}

#[test]
fn evaluate_cli_reports_regions_as_json_and_csv() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = PhantomConfig::small();
    let ct = phantom_ct(&cfg);
    let mut pred = ct.clone();
    pred.data = degrade(&ct.data);
    let mut mask = ct.clone();
    mask.data = ct
        .data
        .iter()
        .map(|v| if *v > -500.0 { 1.0 } else { 0.0 })
        .collect();
    let (rp, pp, mp, csv) = (
        dir.path().join("ref.nii.gz"),
        dir.path().join("pred.nii.gz"),
        dir.path().join("mask.nii.gz"),
        dir.path().join("m.csv"),
    );
    synthscope::io::nifti::write_nifti(&ct, &rp).unwrap();
    synthscope::io::nifti::write_nifti(&pred, &pp).unwrap();
    synthscope::io::nifti::write_nifti(&mask, &mp).unwrap();
    let out = common::run_ok(
        common::synthscope()
            .args(["evaluate", "--json", "--pred"])
            .arg(&pp)
            .arg("--ref")
            .arg(&rp)
            .arg("--mask")
            .arg(&mp)
            .arg("--csv")
            .arg(&csv),
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let regions: Vec<&str> = v["metrics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["region"].as_str().unwrap())
        .collect();
    assert_eq!(
        regions,
        vec!["All", "Head", "Bone"],
        "CT reference: bone region reported"
    );
    // The library gives the same numbers (NIfTI stores float32 for the degraded copy).
    let reports = evaluate_volumes(&pred, &ct, Some(&mask), None).unwrap();
    let mae = v["metrics"][0]["mae"].as_f64().unwrap();
    assert!(
        (mae - reports[0].mae).abs() < 1e-3,
        "{mae} vs {}",
        reports[0].mae
    );
    // VIF beside the others: below 1 for the degraded copy, 1 for the reference itself.
    let vif = v["metrics"][0]["vif"].as_f64().unwrap();
    assert!(vif > 0.0 && vif < 0.99, "VIF of the degraded copy {vif}");
    let same = evaluate_volumes(&ct, &ct, None, None).unwrap();
    assert!(
        (same[0].vif - 1.0).abs() < 1e-6,
        "VIF of the CT itself {}",
        same[0].vif
    );
    let text = std::fs::read_to_string(&csv).unwrap();
    assert_eq!(text.lines().count(), 4);
    assert!(text.starts_with("region,voxels,mae,rmse,psnr_db"));
}
