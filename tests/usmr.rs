//! US -> MR networks: the attention heatmap, the structure map, 3D neighbour stacks, and a
//! short unpaired training run written, reloaded and evaluated.

use burn::tensor::{Device, Tensor, TensorData};
use synthscope::model::usmr::UsMrConfig;
use synthscope::train::Control;
use synthscope::train::usmr::{self, UsMrEvent, UsMrTrainConfig};

#[test]
fn attention_heatmap_picks_the_query_row() {
    // A 2 x 2 latent (4 positions) of an 8 x 8 image: each latent cell covers 4 x 4 pixels.
    let mut att = vec![0f32; 16];
    // Position 3 (cell x 1, y 1) attends all to position 0 (cell 0, 0).
    att[3 * 4] = 1.0;
    for q in 0..3 {
        for k in 0..4 {
            att[q * 4 + k] = 0.25;
        }
    }
    let h = usmr::attention_heatmap(&att, 8, 6, 5).expect("valid");
    let total: f32 = h.iter().sum();
    assert!((total - 1.0).abs() < 1e-5);
    assert!((h[0] - 1.0 / 16.0).abs() < 1e-6, "top-left cell holds all");
    assert_eq!(h[7 + 8 * 7], 0.0);
    // Not a square attention matrix or a pixel outside: None.
    assert!(usmr::attention_heatmap(&att[..15], 8, 0, 0).is_none());
    assert!(usmr::attention_heatmap(&att, 8, 8, 0).is_none());
}

#[test]
fn structure_map_marks_edges_not_flat_regions() {
    let device = Device::flex();
    let n = 16;
    let img: Vec<f32> = (0..n * n)
        .map(|i| if i % n < 8 { 0.2 } else { 0.8 })
        .collect();
    let x = Tensor::<4>::from_data(TensorData::new(img, [1, 1, n, n]), &device);
    let s: Vec<f32> = usmr::structure(x).into_data().try_to_vec::<f32>().unwrap();
    let at = |x: usize, y: usize| s[x + n * y];
    assert!(
        at(7, 8) > 5.0 * at(2, 8).max(1e-3),
        "edge {} flat {}",
        at(7, 8),
        at(2, 8)
    );
    assert!(at(12, 3) < 0.1);
}

#[test]
fn neighbour_stack_orders_and_clamps() {
    let p = &usmr::patients(32, 3, &[0])[0];
    let len = 32 * 32;
    let stack = p.us_stack(0, 1);
    assert_eq!(stack.len(), 3 * len);
    // Centre, then z - 1 (clamped to 0), then z + 1.
    assert_eq!(&stack[..len], p.us_slice(0));
    assert_eq!(&stack[len..2 * len], p.us_slice(0));
    assert_eq!(&stack[2 * len..], p.us_slice(1));
    assert!(!p.slices.is_empty());
    assert!(p.fov.iter().filter(|f| **f).count() > len / 3);
}

#[test]
fn short_unpaired_run_trains_saves_and_reloads() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = UsMrTrainConfig {
        model: UsMrConfig::new().with_width(4).with_neighbours(1),
        grid: 32,
        steps: 12,
        batch: 2,
        learning_rate: 1e-3,
        us_patients: 1,
        mr_patients: 1,
        eval_every: 6,
        ..Default::default()
    };
    let device = Device::flex();
    let mut evals = Vec::new();
    let mut losses = Vec::new();
    let s = usmr::train_usmr(
        &cfg,
        dir.path(),
        &device,
        &Control::default(),
        &mut |e| match e {
            UsMrEvent::Eval(r) => evals.push(r),
            UsMrEvent::Step { loss, .. } => losses.push(loss),
        },
    )
    .unwrap();
    assert_eq!(s.steps, 12);
    assert_eq!(evals.len(), 2);
    assert!(losses.iter().all(|l| l.is_finite()));
    let last = s.last.expect("evaluated");
    assert!(last.psnr_fov.is_finite() && last.ssim_fov.is_finite());
    // The attention block is trained: its weight has left 0.
    assert!(last.attention_gamma.expect("has the block").abs() > 1e-6);
    for f in [
        "config.json",
        "metrics.jsonl",
        "summary.json",
        "usmr.bpk",
        "usmr.json",
        "us.nii.gz",
        "mr.nii.gz",
        "synthetic_mr.nii.gz",
    ] {
        assert!(dir.path().join(f).exists(), "{f} missing");
    }
    // Reloaded, the networks give the same evaluation.
    let (net, mcfg) = usmr::load(&dir.path().join("usmr"), &device).unwrap();
    assert_eq!(mcfg, cfg.model);
    let held = usmr::patients(32, cfg.seed, &[1000]);
    let again = usmr::evaluate(&net, &mcfg, &held, 12).unwrap();
    assert!(
        (again.psnr_fov - last.psnr_fov).abs() < 1e-3,
        "{again:?} vs {last:?}"
    );
    // A missing checkpoint is an error naming the file.
    let e = usmr::load(&dir.path().join("nothing"), &device).unwrap_err();
    assert!(e.to_string().contains("nothing.json"), "{e}");
}
