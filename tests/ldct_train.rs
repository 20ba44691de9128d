//! CT denoising (method 4) end to end on tiny phantoms: the two-step pipeline writes its run
//! folders and report, the denoisers load as `ct_denoise` checkpoints, the low dose is noisier
//! than the normal dose by about the square root of the dose ratio, and a `ct_denoise` config
//! refuses the activation-weighted loss without a lesion classifier.

use synthscope::ldct::run_two_step;
use synthscope::model::Direction;
use synthscope::model::checkpoint;
use synthscope::train::{Control, Dataset, TrainConfig, data};

fn device() -> burn::tensor::Device {
    synthscope::gpu::compute_device().expect("compute device")
}

#[test]
fn two_step_pipeline_runs_and_reports_every_arm() {
    let dir = tempfile::tempdir().unwrap();
    let opts = synthscope::cli::ldct::quick_options();
    let d = device();
    let report = run_two_step(&opts, dir.path(), &d, &Control::default(), &mut |_| {}).unwrap();
    let names: Vec<&str> = report.arms.iter().map(|a| a.arm.as_str()).collect();
    assert_eq!(names.len(), 5, "{names:?}");
    assert_eq!(names[1], "low dose");
    for f in [
        "report.json",
        "report.md",
        "classifier.json",
        "step2_activation/checkpoints/last.json",
    ] {
        assert!(dir.path().join(f).exists(), "{f} missing");
    }
    let (_, meta) = checkpoint::load(
        &dir.path().join("step2_activation/checkpoints/last.json"),
        &d,
    )
    .unwrap();
    let text = serde_json::to_string(&meta.model).unwrap();
    assert!(text.contains("CtDenoise"), "{text}");
    // Quarter dose: noise about twice the normal dose's (variance 4x, some of it anatomy).
    let (nd, ld) = (&report.arms[0], &report.arms[1]);
    let ratio = ld.ring_sd_hu / nd.ring_sd_hu;
    assert!((1.5..2.6).contains(&ratio), "low/normal ring SD {ratio}");
    assert!(ld.psnr_vs_truth < nd.psnr_vs_truth);
    // Every lesion of the held-out patient is measured in every arm.
    let n: usize = report.arms[2].by_class.iter().map(|c| c.lesions).sum();
    assert!(n >= 4, "{n} lesions measured");
}

#[test]
fn ct_denoise_configs_parse_and_need_the_lesion_classifier() {
    let text = r#"
        name = "ldct"
        direction = "ct_denoise"
        epochs = 1
        patch = 32
        steps_per_epoch = 1
        batch_size = 2
        data = { kind = "low_dose", patients = 2, phantom = { size = 64, slices = 3, pixel_mm = 4.0 }, dose = { dose_fraction = 0.1 } }
        model = { kind = "unet", base_width = 4, levels = 2 }
        losses = [{ kind = "activation_weighted" }]
    "#;
    let cfg: TrainConfig = toml::from_str(text).unwrap();
    assert_eq!(cfg.direction, Direction::CtDenoise);
    let back: TrainConfig = toml::from_str(&cfg.to_toml()).unwrap();
    assert_eq!(back, cfg);
    let cases = data::load_cases(&cfg, &Default::default()).unwrap();
    assert_eq!(cases.len(), 2);
    assert_eq!(cases[0].nx, 64);
    // Input (low dose) and target (normal dose) differ by noise only.
    let c = &cases[0];
    let diff: f64 = c
        .input
        .iter()
        .zip(&c.target)
        .map(|(a, b)| (*a - *b).abs() as f64)
        .sum::<f64>()
        / c.input.len() as f64;
    assert!(diff > 1e-4 && diff < 0.05, "mean |low - normal| {diff}");
    let dataset = Dataset::split(cases, 0.5);
    let dir = tempfile::tempdir().unwrap();
    let e = synthscope::train::train(
        &cfg,
        &dataset,
        dir.path(),
        &device(),
        &Control::default(),
        &mut |_| {},
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("lesion classifier"), "{e}");
}
