//! The networks on the compute device: parameter counts equal the layout formulas that
//! `model summary` prints, forward passes keep the documented shapes, DRUNet-101's encoder
//! has the paper's shapes, and the folded inference form gives the evaluation-mode output.

use burn::module::Module;
use burn::tensor::{Distribution, Tensor};
use synthscope::model::{ClassifierConfig, DrunetConfig, UnetConfig};

fn device() -> burn::tensor::Device {
    synthscope::gpu::compute_device().expect("compute device")
}

#[test]
fn parameter_counts_match_the_layout_formulas() {
    let d = device();
    let u = UnetConfig::new().with_base_width(4).with_levels(2);
    assert_eq!(u.init(&d).num_params(), u.param_count());
    for depth in [18, 50] {
        let c = DrunetConfig::new().with_depth(depth).with_base_width(8);
        assert_eq!(
            c.init(&d).unwrap().num_params(),
            c.param_count().unwrap(),
            "DRUNet-{depth}"
        );
    }
    let k = ClassifierConfig::new().with_base_width(8);
    assert_eq!(k.init(&d).num_params(), k.param_count());
    assert!(DrunetConfig::new().with_depth(42).init(&d).is_err());
}

#[test]
fn drunet_101_encoder_has_the_paper_shapes() {
    let c = DrunetConfig::new().with_depth(101).with_input_size(448);
    assert_eq!(
        c.encoder_shapes().unwrap(),
        vec![(64, 224), (256, 112), (512, 56), (1024, 28), (2048, 14)]
    );
}

#[test]
fn forward_passes_keep_shapes() {
    let d = device();
    let u = UnetConfig::new().with_base_width(4).with_levels(2).init(&d);
    let x = Tensor::<4>::random([1, 1, 32, 32], Distribution::Normal(0.0, 1.0), &d);
    assert_eq!(u.forward(x).dims(), [1, 1, 32, 32]);
    let cfg = DrunetConfig::new()
        .with_depth(50)
        .with_base_width(8)
        .with_input_size(64);
    let net = cfg.init(&d).unwrap();
    let x = Tensor::<4>::random([1, 3, 64, 64], Distribution::Normal(0.0, 1.0), &d);
    let f = net.forward_features(x);
    let got: Vec<(usize, usize)> = f
        .encoder
        .iter()
        .map(|t| (t.dims()[1], t.dims()[2]))
        .collect();
    assert_eq!(got, cfg.encoder_shapes().unwrap());
    assert_eq!(f.output.dims(), [1, 1, 64, 64]);
    let k = ClassifierConfig::new().with_base_width(8).init(&d);
    let x = Tensor::<4>::random([2, 1, 32, 32], Distribution::Normal(0.0, 1.0), &d);
    assert_eq!(k.forward(x).dims(), [2, 2]);
}

#[test]
fn checkpoints_rebuild_the_exact_model_from_the_file_pair() {
    use synthscope::model::checkpoint::{AnyModel, ModelSpec, load, save};
    let d = device();
    let spec = ModelSpec::Unet(
        UnetConfig::new()
            .with_base_width(4)
            .with_levels(2)
            .with_input_size(32),
    );
    let model = spec.init(&d).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("unet_epoch1");
    save(&model, &spec, serde_json::json!({"epoch": 1}), &path).unwrap();
    assert!(path.with_extension("bpk").exists() && path.with_extension("json").exists());
    let (loaded, meta) = load(&path.with_extension("json"), &d).unwrap();
    assert_eq!(meta.notes["epoch"], 1);
    let x = Tensor::<4>::random([1, 1, 32, 32], Distribution::Normal(0.0, 1.0), &d);
    let (AnyModel::Unet(a), AnyModel::Unet(b)) = (&model, &loaded) else {
        panic!("kind changed")
    };
    let (ya, yb) = (a.forward(x.clone()).into_data(), b.forward(x).into_data());
    assert_eq!(
        ya.as_slice::<f32>().unwrap(),
        yb.as_slice::<f32>().unwrap(),
        "same weights, same output"
    );
    // A config that does not fit the weights is refused with a message, not a panic.
    let text = std::fs::read_to_string(path.with_extension("json"))
        .unwrap()
        .replace("\"base_width\": 4", "\"base_width\": 8");
    std::fs::write(path.with_extension("json"), text).unwrap();
    let err = std::panic::catch_unwind(|| load(&path, &d).map(|_| ()))
        .expect("no panic")
        .unwrap_err()
        .to_string();
    assert!(err.contains("unet_epoch1.bpk"), "{err}");
    std::fs::write(path.with_extension("json"), "{").unwrap();
    assert!(
        load(&path, &d)
            .unwrap_err()
            .to_string()
            .contains("not a SynthScope checkpoint")
    );
}

/// Max |a - b| of two tensors' values.
fn max_abs_diff(a: Tensor<4>, b: Tensor<4>) -> f32 {
    let (a, b) = (a.into_data(), b.into_data());
    let (a, b) = (a.as_slice::<f32>().unwrap(), b.as_slice::<f32>().unwrap());
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

#[test]
fn folded_batch_norm_gives_the_evaluation_output() {
    use synthscope::model::checkpoint::{AnyModel, ModelSpec};
    let d = device();
    let ad = d.clone().autodiff();
    // 128^2: the U-Net's full-resolution layers take the CPU device's own 3x3 kernel
    // (model::cpu_conv) when folded.
    for (spec, side) in [
        (
            ModelSpec::Unet(UnetConfig::new().with_base_width(8).with_levels(3)),
            128,
        ),
        (
            ModelSpec::Drunet(DrunetConfig::new().with_depth(18).with_base_width(8)),
            32,
        ),
    ] {
        // A few training-mode passes move the running statistics away from (0, 1), and the
        // input's offset and scale keep them there: the fold has something to fold.
        let trained = spec.init(&ad).unwrap();
        let (cin, _) = trained.input_layout();
        for _ in 0..3 {
            let x = Tensor::<4>::random([2, cin, side, side], Distribution::Normal(0.5, 2.0), &ad);
            let _ = match &trained {
                AnyModel::Unet(m) => m.forward(x),
                AnyModel::Drunet(m) => m.forward(x),
                AnyModel::ResnetGenerator(m) => m.forward(x),
                AnyModel::Classifier(_) => unreachable!(),
            }
            .into_data();
        }
        let eval = trained.valid();
        let folded = eval.folded();
        let x = Tensor::<4>::random([2, cin, side, side], Distribution::Normal(0.5, 2.0), &d);
        let (a, b) = match (&eval, &folded) {
            (AnyModel::Unet(e), AnyModel::Unet(f)) => (e.forward(x.clone()), f.forward(x)),
            (AnyModel::Drunet(e), AnyModel::Drunet(f)) => (e.forward(x.clone()), f.forward(x)),
            _ => panic!("fold changed the kind"),
        };
        let diff = max_abs_diff(a, b);
        assert!(
            diff < 1e-4,
            "{spec:?}: folded vs unfolded max |diff| {diff}"
        );
    }
    // The trained demo model (real batch-norm statistics).
    let (demo, _, _) = synthscope::model::demo::load_demo_model(&d).unwrap();
    let folded = demo.folded();
    let x = Tensor::<4>::random([2, 1, 176, 176], Distribution::Normal(0.0, 1.0), &d);
    let (AnyModel::Unet(a), AnyModel::Unet(b)) = (&demo, &folded) else {
        panic!("the demo model is a U-Net")
    };
    let diff = max_abs_diff(a.forward(x.clone()), b.forward(x));
    assert!(
        diff < 1e-4,
        "demo model: folded vs unfolded max |diff| {diff}"
    );
}

/// f16 inference (model::half) on the shared wgpu adapter against f32 on the same adapter: the
/// PSNR of the f16 output above 60 dB, the peak being the networks' 0..1 output range
/// (model::normalise: 1 = 3000 HU), on a 0..1 input. Skipped, with the reason printed, where
/// there is no wgpu adapter or it lacks SHADER_F16.
#[test]
fn f16_inference_is_within_60_db_of_f32() {
    use synthscope::model::half;
    let gpu = match synthscope::gpu::shared() {
        Ok(g) => g,
        Err(e) => {
            println!("f16 test skipped: no wgpu device ({e})");
            return;
        }
    };
    let features = gpu.setup.device.features();
    if !half::supports_f16(features) {
        println!(
            "f16 test skipped: the adapter {} does not report SHADER_F16",
            gpu.report.summary()
        );
        return;
    }
    let d = &gpu.device;
    // The trained demo U-Net (an untrained one's output spans ~0.03, so its PSNR against
    // peak 1 swung 53-94 dB with the random initialisation).
    let net = match synthscope::model::demo::load_demo_model(d) {
        Ok((synthscope::model::checkpoint::AnyModel::Unet(net), ..)) => net.fold(),
        Ok(_) => panic!("the demo model is not a U-Net"),
        Err(e) => panic!("demo model: {e}"),
    };
    let x = Tensor::<4>::random([2, 1, 64, 64], Distribution::Uniform(0.0, 1.0), d);
    let want = net.forward(x.clone());
    let net16 = half::to_f16(net);
    let got = half::forward_f16(x, |x| net16.forward(x));
    let (w, g) = (want.into_data(), got.into_data());
    let (w, g) = (w.as_slice::<f32>().unwrap(), g.as_slice::<f32>().unwrap());
    let (lo, hi) = w
        .iter()
        .fold((f32::INFINITY, f32::NEG_INFINITY), |(a, b), &v| {
            (a.min(v), b.max(v))
        });
    let mse = w
        .iter()
        .zip(g)
        .map(|(a, b)| ((a - b) as f64).powi(2))
        .sum::<f64>()
        / w.len() as f64;
    let psnr = 10.0 * (1.0 / mse.max(1e-30)).log10();
    // The untrained network's output spans far less than 0..1; against that span alone:
    let psnr_span = 10.0 * (((hi - lo) as f64).powi(2) / mse.max(1e-30)).log10();
    println!(
        "f16 vs f32 on {}: PSNR {psnr:.1} dB (peak 1), {psnr_span:.1} dB against the output's span {lo:.3}..{hi:.3}",
        gpu.report.summary()
    );
    assert!(psnr > 60.0, "f16 output PSNR {psnr:.1} dB, want > 60");
}
