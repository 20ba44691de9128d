//! One wgpu device per process, shared by burn and egui: created once, computes correctly,
//! and the lock file holds exactly one wgpu.

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
