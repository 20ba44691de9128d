//! PyTorch weights in: a state dict in PyTorch naming (batch norm `weight`/`bias`, linear
//! weights transposed) made in the test, changed on the Python side, imported into a fresh model.

mod common;

use burn::module::Module;
use burn::store::{BurnToPyTorchAdapter, ModuleSnapshot, SafetensorsStore};
use burn::tensor::{Distribution, Tensor};
use synthscope::model::checkpoint::{AnyModel, ModelSpec};
use synthscope::model::import::import_pytorch;
use synthscope::model::{ClassifierConfig, UnetConfig};

#[test]
fn safetensors_in_pytorch_naming_import_into_a_fresh_model() {
    let py = common::sitk_python();
    let d = synthscope::gpu::compute_device().unwrap();
    let dir = tempfile::tempdir().unwrap();
    // The U-Net's weights come back doubled; the classifier's unchanged, so its logits must match
    // exactly (its linear layer goes through PyTorch's [out, in] layout and back).
    for (name, spec, factor) in [
        (
            "unet",
            ModelSpec::Unet(UnetConfig::new().with_base_width(4).with_levels(2)),
            2.0f32,
        ),
        (
            "classifier",
            ModelSpec::Classifier(ClassifierConfig::new().with_base_width(4)),
            1.0,
        ),
    ] {
        let original = spec.init(&d).unwrap();
        let exported = dir.path().join(format!("{name}_torch.safetensors"));
        let mut store =
            SafetensorsStore::from_file(&exported).with_to_adapter(BurnToPyTorchAdapter);
        match &original {
            AnyModel::Unet(m) => m.save_into(&mut store).unwrap(),
            AnyModel::Classifier(m) => m.save_into(&mut store).unwrap(),
            AnyModel::Drunet(m) => m.save_into(&mut store).unwrap(),
            AnyModel::ResnetGenerator(m) => m.save_into(&mut store).unwrap(),
        }
        // "PyTorch" side: check the naming, scale every tensor, write a new state dict.
        let doubled = dir.path().join(format!("{name}_scaled.safetensors"));
        let script = format!(
            r#"
from safetensors.numpy import load_file, save_file
sd = load_file("{src}")
assert not any(k.endswith("gamma") or k.endswith("beta") for k in sd), "burn names leaked"
assert any(k.endswith("bn.weight") for k in sd) and any(k.endswith("bn.running_var") for k in sd)
save_file({{k: (v * {factor}).astype(v.dtype) for k, v in sd.items()}}, "{dst}")
print(len(sd))
"#,
            src = exported.display(),
            dst = doubled.display(),
            factor = factor
        );
        let out = common::run_ok(std::process::Command::new(py).args(["-c", &script]));
        let count: usize = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap();
        let mut fresh = spec.init(&d).unwrap();
        let report = import_pytorch(&mut fresh, &doubled).unwrap();
        assert_eq!(report.applied, count, "{name}: every tensor applied");
        assert!(report.unused.is_empty(), "{name}: {:?}", report.unused);
        // Same architecture, scaled weights: first-layer filters are exactly `factor` times the original's.
        let a = original.first_filters().into_data();
        let b = fresh.first_filters().into_data();
        let (a, b) = (a.as_slice::<f32>().unwrap(), b.as_slice::<f32>().unwrap());
        assert!(
            a.iter().zip(b).all(|(x, y)| (factor * x - y).abs() < 1e-6),
            "{name}: weights not imported"
        );
        if let (AnyModel::Classifier(m0), AnyModel::Classifier(m1)) = (&original, &fresh) {
            let x = Tensor::<4>::random([2, 1, 32, 32], Distribution::Normal(0.0, 1.0), &d);
            let (l0, l1) = (
                m0.clone().valid().forward(x.clone()).into_data(),
                m1.clone().valid().forward(x).into_data(),
            );
            let (l0, l1) = (l0.as_slice::<f32>().unwrap(), l1.as_slice::<f32>().unwrap());
            assert!(
                l0.iter().zip(l1).all(|(p, q)| (p - q).abs() < 1e-5),
                "logits differ: {l0:?} vs {l1:?}"
            );
        }
    }
    // A file of another architecture is refused with a message naming it.
    let mut u = ModelSpec::Unet(UnetConfig::new().with_base_width(8).with_levels(2))
        .init(&d)
        .unwrap();
    let err = import_pytorch(&mut u, &dir.path().join("classifier_scaled.safetensors"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("classifier_scaled.safetensors"), "{err}");
}
