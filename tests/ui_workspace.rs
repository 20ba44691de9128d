//! UI tests of the docked workspace (egui_kittest on the shared wgpu device): every panel opens
//! as a tab of the dock beside the views and covers no pane; the layouts tile the centre with
//! a linked crosshair (one snapshot each); the arrangement is saved and restored, and Reset
//! layout puts back the first-start one; the toolbar fits at 1280 points.

#[path = "common/app_harness.rs"]
mod app_harness;
use app_harness::harness_sized;

use egui_kittest::Harness;
use egui_kittest::kittest::Queryable;
use synthscope::app::SynthScopeApp;
use synthscope::app::viewer::layout::Layout;
use synthscope::app::workspace::Panel;

/// A left click at `pos`.
fn click_at(h: &mut Harness<'static, SynthScopeApp>, pos: egui::Pos2) {
    h.hover_at(pos);
    h.run();
    for pressed in [true, false] {
        h.event(egui::Event::PointerButton {
            pos,
            button: egui::PointerButton::Primary,
            pressed,
            modifiers: Default::default(),
        });
        h.run();
    }
}

/// The panes are on the background layer everywhere: no window, dock or menu lies over them,
/// and none lies under the dock.
fn assert_panes_uncovered(h: &Harness<'static, SynthScopeApp>, what: &str) {
    let app = h.state();
    let panes = &app.viewer.pane_rects;
    assert!(!panes.is_empty(), "{what}: no panes drawn");
    let dock = app.workspace.dock_rect;
    for r in panes {
        assert!(
            r.width() > 100.0 && r.height() > 100.0,
            "{what}: pane {r:?}"
        );
        if let Some(d) = dock {
            assert!(
                !d.shrink(1.0).intersects(r.shrink(1.0)),
                "{what}: the dock {d:?} overlaps pane {r:?}"
            );
        }
        for p in [
            r.center(),
            r.left_top() + egui::vec2(8.0, 8.0),
            r.right_top() + egui::vec2(-8.0, 8.0),
            r.left_bottom() + egui::vec2(8.0, -8.0),
            r.right_bottom() + egui::vec2(-8.0, -8.0),
        ] {
            let layer = h.ctx.layer_id_at(p).map(|l| l.order);
            assert_eq!(
                layer,
                Some(egui::Order::Background),
                "{what}: something covers the pane at {p:?}"
            );
        }
    }
}

#[test]
fn each_panel_opens_as_a_tab_and_covers_no_pane() {
    let mut h = harness_sized(1440.0, 720.0);
    // Nothing open: no dock, the views take the whole width.
    assert!(h.state().workspace.dock_rect.is_none());
    assert_panes_uncovered(&h, "no panel");
    let full = h.state().viewer.panes_rect;
    for p in Panel::ALL {
        *h.state_mut().panel_flag_mut(p) = true;
        // Some panels start a worker (the series browser lists the study database), whose
        // wake-up may land while the frames settle: draw until settled or the step budget.
        let _ = h.run_ok();
        let app = h.state();
        assert!(app.workspace.is_visible(p), "{p:?} is the active tab");
        // Its tab is there by name.
        let _ = h.get_by_label(p.title());
        assert_panes_uncovered(&h, p.title());
        let panes = h.state().viewer.panes_rect;
        assert!(
            panes.width() < full.width() && panes.width() > 0.5 * full.width(),
            "{p:?}: the views make room for the dock: {panes:?} of {full:?}"
        );
    }
    // All ten are tabs of one group; the last opened is the one shown.
    let app = h.state();
    assert!(app.workspace.is_visible(Panel::Diagnostics));
    assert!(!app.workspace.is_visible(Panel::Browser));
    // Showing one again brings its tab to the front.
    *h.state_mut().panel_flag_mut(Panel::Browser) = false;
    h.run();
    *h.state_mut().panel_flag_mut(Panel::Browser) = true;
    h.run();
    assert!(h.state().workspace.is_visible(Panel::Browser));
    // Closing a flag takes its tab out; with none left the dock goes.
    for p in Panel::ALL {
        *h.state_mut().panel_flag_mut(p) = false;
    }
    h.run();
    assert!(!h.state().workspace.has_panels());
    h.run();
    assert!(h.state().workspace.dock_rect.is_none());
    assert_eq!(h.state().viewer.panes_rect, full);
}

#[test]
fn closing_a_tab_clears_its_panel_and_folding_frees_the_views() {
    let mut h = harness_sized(1440.0, 720.0);
    h.state_mut().registration.show = true;
    h.run();
    let docked = h.state().viewer.panes_rect;
    // Fold the dock with its key: a narrow strip, the views widen, the panel stays open.
    h.key_press(egui::Key::D);
    h.run();
    h.run();
    assert!(h.state().workspace.collapsed);
    assert!(h.state().viewer.panes_rect.width() > docked.width() + 200.0);
    assert!(h.state().registration.show);
    assert_panes_uncovered(&h, "folded");
    h.key_press(egui::Key::D);
    h.run();
    h.run();
    assert!(!h.state().workspace.collapsed);
    // The tab's close button.
    h.get_by_label("Close").click();
    h.run();
    h.run();
    assert!(
        !h.state().registration.show,
        "closing the tab closes the panel"
    );
    assert!(!h.state().workspace.has_panels());
}

#[test]
fn layouts_tile_the_centre_with_a_linked_crosshair() {
    let mut h = harness_sized(1200.0, 640.0);
    for (l, n, name) in [
        (Layout::ThreeVolumes, 3, "layout_three_volumes"),
        (Layout::ThreeOrientations, 4, "layout_three_orientations"),
        (Layout::Single, 1, "layout_single"),
        (Layout::Quad, 4, "layout_quad"),
    ] {
        h.state_mut().viewer.layout = l;
        h.run();
        assert_eq!(h.state().viewer.pane_rects.len(), n, "{l:?}");
        assert_panes_uncovered(&h, name);
        h.snapshot(name);
    }
    // Keys 1-4 choose them.
    h.key_press(egui::Key::Num2);
    h.run();
    assert_eq!(h.state().viewer.layout, Layout::ThreeOrientations);
    // A click in the coronal pane (top right) moves the crosshair up or down the head: the
    // axial pane's slice follows.
    let ct = h.state().ct_volume().unwrap().clone();
    let before = h.state().viewer.view.clone();
    let coronal = h.state().viewer.pane_rects[1];
    click_at(
        &mut h,
        coronal.center() + egui::vec2(0.0, -coronal.height() * 0.25),
    );
    let after = h.state().viewer.view.clone();
    assert_eq!(
        after.orientation, before.orientation,
        "the views stay axial"
    );
    assert!(
        after.slice_index(&ct.geometry).0 != before.slice_index(&ct.geometry).0,
        "the axial slice follows a click in the coronal pane"
    );
    // Zoom is linked: ctrl+wheel in the sagittal pane zooms every pane.
    let sagittal = h.state().viewer.pane_rects[2];
    h.hover_at(sagittal.center());
    h.event(egui::Event::Zoom(1.5));
    h.run();
    assert!(h.state().viewer.view.zoom > before.zoom * 1.2);
    h.key_press(egui::Key::Num1);
    h.run();
    assert_eq!(h.state().viewer.layout, Layout::ThreeVolumes);
}

#[test]
fn the_arrangement_is_saved_restored_and_reset() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("workspace.json");
    {
        let mut h = harness_sized(1440.0, 720.0);
        h.state_mut().use_settings(Some(path.clone()));
        h.state_mut().training.show = true;
        h.state_mut().registration.show = true;
        h.state_mut().viewer.layout = Layout::Quad;
        h.run();
        assert!(path.exists(), "saved as it changed");
        // The last opened is the active tab.
        assert!(h.state().workspace.is_visible(Panel::Training));
    }
    let mut h = harness_sized(1440.0, 720.0);
    h.state_mut().use_settings(Some(path.clone()));
    h.run();
    let app = h.state();
    assert_eq!(app.viewer.layout, Layout::Quad);
    assert!(app.training.show && app.registration.show);
    assert!(app.workspace.tile_of(Panel::Registration).is_some());
    assert!(
        app.workspace.is_visible(Panel::Training),
        "the active tab too"
    );
    assert_panes_uncovered(&h, "restored");
    h.state_mut().reset_layout();
    h.run();
    let app = h.state();
    assert_eq!(app.viewer.layout, Layout::ThreeVolumes);
    assert!(app.training.show, "reset keeps what is open");
    // A file that is not a layout is reported, and the default used.
    std::fs::write(&path, "not json").unwrap();
    let mut h = harness_sized(1440.0, 720.0);
    h.state_mut().use_settings(Some(path));
    h.run();
    assert!(h.state().errors.iter().any(|e| e.contains("saved layout")));
}

#[test]
fn the_toolbar_fits_at_1280_points() {
    let mut h = harness_sized(1280.0, 720.0);
    h.state_mut().viewer.show_inset = true;
    h.run();
    for label in [
        "3 vol",
        "2×2",
        "Ax",
        "Sag",
        "W/L drag",
        "Inset",
        "Bone",
        "MR auto",
        "Colours",
        "Register…",
        "Synthesise…",
        "Train…",
    ] {
        let r = h.get_by_label(label).rect();
        assert!(
            r.max.x <= 1280.0 && r.min.x >= 0.0,
            "{label} is cut off: {r:?}"
        );
    }
    // Narrower still, it wraps onto another row rather than running off the edge.
    let mut h = harness_sized(800.0, 720.0);
    h.run();
    let r = h.get_by_label("Train…").rect();
    assert!(r.max.x <= 800.0, "Train at {r:?}");
    h.snapshot("toolbar_800");
}
