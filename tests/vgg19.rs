//! VGG-19 for the contextual loss: torchvision-named weights (written here with the
//! `safetensors` package, random values) load into our layers, and a run trains with it.

mod common;

use burn::tensor::{Tensor, TensorData};
use synthscope::model::vgg::Vgg19;

#[test]
fn torchvision_vgg19_weights_load_and_drive_the_contextual_loss() {
    let py = common::sitk_python();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("vgg19.safetensors");
    let script = format!(
        r#"
import numpy as np
from safetensors.numpy import save_file
rng = np.random.default_rng(5)
widths = [64, 64, 128, 128, 256, 256, 256, 256, 512, 512, 512, 512, 512, 512, 512, 512]
index = [0, 2, 5, 7, 10, 12, 14, 16, 19, 21, 23, 25, 28, 30, 32, 34]
t, cin = {{}}, 3
for w, i in zip(widths, index):
    t[f"features.{{i}}.weight"] = (rng.standard_normal((w, cin, 3, 3)) * np.sqrt(2 / (9 * cin))).astype(np.float32)
    t[f"features.{{i}}.bias"] = np.full(w, 0.01 * i, np.float32)
    cin = w
t["classifier.6.bias"] = np.zeros(1000, np.float32)
save_file(t, r"{}")
print(float(t["features.0.weight"][5, 1, 2, 0]), float(t["features.34.bias"][0]))
"#,
        path.display()
    );
    let out = common::run_ok(std::process::Command::new(py).args(["-c", &script]));
    let text = String::from_utf8_lossy(&out.stdout);
    let vals: Vec<f32> = text
        .split_whitespace()
        .map(|v| v.parse().unwrap())
        .collect();
    let d = synthscope::gpu::compute_device().unwrap();
    let vgg = Vgg19::load_torchvision(&path, &d).expect("torchvision keys map onto our layers");
    let w = vgg.conv_weight(0).into_data();
    let w = w.as_slice::<f32>().unwrap();
    // [out 5, in 1, row 2, col 0] in PyTorch's layout, which burn's Conv2d shares.
    assert!((w[((5 * 3 + 1) * 3 + 2) * 3] - vals[0]).abs() < 1e-6);
    // conv5_4 features of a 64x64 image: 512 channels at 4x4 (four pools).
    let x = Tensor::<4>::from_data(
        TensorData::new(
            (0..64 * 64).map(|i| (i % 64) as f32 / 64.0).collect(),
            [1, 1, 64, 64],
        ),
        &d,
    );
    let f = vgg.features(x.clone(), Vgg19::layer_index("conv5_4").unwrap());
    assert_eq!(f.dims(), [1, 512, 4, 4]);
    let same = synthscope::train::losses::contextual(f.clone(), f, 0.5).into_scalar::<f32>();
    assert!(
        same < 0.05,
        "contextual loss of VGG features with themselves: {same}"
    );
    // A file with other keys is refused, naming it.
    let bad = dir.path().join("other.safetensors");
    common::run_ok(std::process::Command::new(py).args([
        "-c",
        &format!(
            "import numpy as np\nfrom safetensors.numpy import save_file\nsave_file({{'w': np.zeros(3, np.float32)}}, r'{}')",
            bad.display()
        ),
    ]));
    let err = Vgg19::load_torchvision(&bad, &d).unwrap_err().to_string();
    assert!(
        err.contains("other.safetensors") && err.contains("missing"),
        "{err}"
    );
    // One short run with the contextual loss on VGG-19 features.
    use synthscope::train::{
        Control, DataSource, Dataset, LossKind, LossTerm, ModelChoice, TrainConfig,
    };
    let cfg = TrainConfig {
        data: DataSource::Demo {
            patients: 2,
            small: true,
        },
        model: ModelChoice::Unet {
            base_width: 4,
            levels: 2,
        },
        epochs: 1,
        batch_size: 2,
        patch: 32,
        steps_per_epoch: Some(2),
        validation_slices: 1,
        losses: vec![LossTerm {
            layer: Some(Vgg19::layer_index("conv3_4").unwrap()),
            ..LossTerm::new(LossKind::Contextual, 1.0)
        }],
        vgg19: Some(path.clone()),
        ..TrainConfig::default()
    };
    let cases = synthscope::train::data::phantom_cases(2, true, cfg.direction).unwrap();
    let data = Dataset::split(cases, cfg.validation_fraction);
    let run = dir.path().join("run");
    let s = synthscope::train::train(&cfg, &data, &run, &d, &Control::default(), &mut |_| {})
        .expect("trains with VGG-19 features");
    assert_eq!(s.steps, 2);
    assert!(s.last.unwrap().val_loss.is_finite());
    assert!(
        !run.join("classifier.bpk").exists(),
        "no classifier needed with VGG-19"
    );
}
