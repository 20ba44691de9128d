//! One wgpu device per process, shared by burn and egui: created once, computes correctly,
//! and the lock file holds exactly one wgpu. The compute device (burn-flex on a software
//! adapter) computes correctly too, and checkpoints move between the two.

use synthscope::gpu;

#[test]
fn burn_computes_on_the_shared_device() {
    let g = gpu::shared().expect("a wgpu adapter (lavapipe without a GPU)");
    let t = gpu::self_test(&g.device, 48).unwrap();
    eprintln!("adapter {}: self-test {:?}", g.report.summary(), t);
    assert!(t.passed(), "{t:?}");
    // Created once: a second call returns the same device.
    let again = gpu::shared().unwrap();
    assert!(std::ptr::eq(g, again));
    assert_eq!(g.setup.device, again.setup.device);
}

#[test]
fn egui_gets_the_very_device_burn_registered() {
    let g = gpu::shared().unwrap();
    match g.egui_setup() {
        eframe::egui_wgpu::WgpuSetup::Existing(e) => {
            assert_eq!(e.device, g.setup.device);
            assert_eq!(e.queue, g.setup.queue);
            assert_eq!(e.adapter.get_info(), g.setup.adapter.get_info());
        }
        _ => panic!("egui must reuse the existing device"),
    }
}

#[test]
fn cargo_lock_holds_exactly_one_wgpu() {
    let lock = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.lock")).unwrap();
    let versions: Vec<&str> = lock
        .split("[[package]]")
        .filter(|p| p.lines().any(|l| l.trim() == "name = \"wgpu\""))
        .filter_map(|p| p.lines().find(|l| l.starts_with("version")))
        .collect();
    assert_eq!(versions.len(), 1, "{versions:?}");
}

#[test]
fn the_compute_device_is_chosen_and_says_why() {
    let c = gpu::compute().expect("a compute device");
    eprintln!("compute device: {} ({:?})", c.describe(), c.probe);
    assert!(!c.reason.is_empty());
    let t = gpu::self_test(&c.device, 48).unwrap();
    assert!(t.passed(), "{t:?}");
    let g = gpu::shared().unwrap();
    if g.report.software && c.asked == gpu::DeviceChoice::Auto {
        assert_eq!(
            c.kind,
            gpu::ComputeKind::Cpu,
            "on a software adapter burn-flex measures faster: {}",
            c.describe()
        );
    }
    assert!(std::ptr::eq(c, gpu::compute().unwrap()), "chosen once");
}

#[test]
fn checkpoints_saved_on_one_device_load_on_the_other() {
    use burn::tensor::{Device, Distribution, Tensor};
    use synthscope::model::UnetConfig;
    use synthscope::model::checkpoint::{AnyModel, ModelSpec, load, save};
    let (flex, wgpu) = (Device::flex(), gpu::shared().unwrap().device.clone());
    let spec = ModelSpec::Unet(UnetConfig::new().with_base_width(4).with_levels(2));
    let dir = tempfile::tempdir().unwrap();
    for (from, to) in [(&flex, &wgpu), (&wgpu, &flex)] {
        let model = spec.init(from).unwrap();
        let path = dir.path().join("moved");
        save(&model, &spec, serde_json::Value::Null, &path).unwrap();
        let (loaded, _) = load(&path, to).unwrap();
        let (AnyModel::Unet(a), AnyModel::Unet(b)) = (&model, &loaded) else {
            panic!("kind changed")
        };
        let x = Tensor::<4>::random([1, 1, 32, 32], Distribution::Normal(0.0, 1.0), from);
        let ya = a.forward(x.clone()).into_data();
        let yb = b.forward(x.to_device(to)).into_data();
        let (ya, yb) = (ya.as_slice::<f32>().unwrap(), yb.as_slice::<f32>().unwrap());
        let diff = ya
            .iter()
            .zip(yb)
            .map(|(p, q)| (p - q).abs())
            .fold(0f32, f32::max);
        assert!(diff < 1e-4, "{from:?} -> {to:?}: max |diff| {diff}");
    }
}
