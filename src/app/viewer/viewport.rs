//! The slice viewport widget: paints one view through the GPU callback and turns mouse input
//! into view changes (Slicer/ITK-SNAP habits).

use super::render::{Combine, LayerDraw, SliceCallback};
use super::view::{Orientation, ViewState};
use crate::volume::{Colormap, Volume, WindowLevel};
use eframe::egui_wgpu;
use egui::{Color32, PointerButton, Pos2, Rect, Sense, Stroke, Ui, Vec2};
use std::sync::Arc;

/// One layer as the app describes it to a pane.
#[derive(Clone)]
pub struct PaneLayer {
    /// The volume.
    pub volume: Arc<Volume>,
    /// Its window.
    pub window: WindowLevel,
    /// Its colormap.
    pub colormap: Colormap,
    /// Its 16-bit packing, if prepared off the UI thread.
    pub packed: Option<Arc<super::render::Quantized>>,
    /// Registration: maps view (CT) points into this volume's space.
    pub transform: Option<crate::volume::Affine>,
}

/// What happened in a pane this frame, for the app to apply.
#[derive(Default, Debug)]
pub struct PaneEvents {
    /// Pointer position in LPS when hovering.
    pub hover_world: Option<[f64; 3]>,
    /// Window/level drag: (width change, centre change) in image units.
    pub window_drag: Option<(f32, f32)>,
    /// Slices to scroll.
    pub scroll: i32,
}

/// Labels at the left, right, top and bottom edges for an orientation.
fn edge_labels(o: Orientation) -> [&'static str; 4] {
    match o {
        Orientation::Axial => ["R", "L", "A", "P"],
        Orientation::Coronal => ["R", "L", "S", "I"],
        Orientation::Sagittal => ["A", "P", "S", "I"],
    }
}

/// Draw a pane and handle its input. `wl_mode` makes a plain left-drag change window/level;
/// `inset` (a magnification) adds a zoomed view of the region around the crosshair in the
/// pane's lower right corner, with that region outlined, as in the DRUNet paper's figures;
/// `show_crosshair` draws the crosshair lines (the reading view of a study hides them).
#[allow(clippy::too_many_arguments)]
pub fn pane_ui(
    ui: &mut Ui,
    view_id: u64,
    title: &str,
    view: &mut ViewState,
    layers: [Option<PaneLayer>; 2],
    combine: Combine,
    wl_mode: bool,
    has_gpu: bool,
    inset: Option<f32>,
    show_crosshair: bool,
) -> PaneEvents {
    let mut ev = PaneEvents::default();
    let (rect, response) = ui.allocate_exact_size(ui.available_size(), Sense::click_and_drag());
    let size = [rect.width(), rect.height()];
    let painter = ui.painter_at(rect);
    let reference = layers[0]
        .as_ref()
        .or(layers[1].as_ref())
        .map(|l| l.volume.clone());

    // The slice shader writes every pixel of its rect (opaque black outside the volumes), so
    // the black background is painted only where no slice is drawn: under a software
    // rasteriser every pixel shaded twice costs frame time.
    let painted = has_gpu
        && size[0] > 1.0
        && size[1] > 1.0
        && paint_layers(&painter, rect, view_id, view, &layers, combine);
    if !painted {
        painter.rect_filled(rect, 0.0, Color32::BLACK);
    }
    if !has_gpu {
        painter.text(
            rect.center(),
            egui::Align2::CENTER_CENTER,
            "no GPU renderer",
            egui::FontId::proportional(14.0),
            Color32::LIGHT_RED,
        );
    }

    // Input.
    let mods = ui.input(|i| i.modifiers);
    let to_local = |p: Pos2| [p.x - rect.min.x, p.y - rect.min.y];
    if let Some(p) = response.hover_pos() {
        let w = view.world_at(to_local(p), size);
        ev.hover_world = Some(w);
        if mods.shift {
            view.crosshair = w;
        }
        // One slice per wheel notch; ctrl+wheel (egui's zoom gesture) zooms instead.
        let (notches, zoom) = ui.input(|i| {
            let n: i32 = i
                .raw
                .events
                .iter()
                .map(|e| match e {
                    egui::Event::MouseWheel {
                        delta, modifiers, ..
                    } if !modifiers.ctrl && !modifiers.command && delta.y != 0.0 => {
                        if delta.y > 0.0 { 1 } else { -1 }
                    }
                    _ => 0,
                })
                .sum();
            (n, i.zoom_delta())
        });
        if zoom != 1.0 {
            view.zoom = (view.zoom * zoom as f64).clamp(0.1, 40.0);
        } else {
            ev.scroll = notches;
        }
    }
    let delta = response.drag_delta();
    if response.dragged_by(PointerButton::Secondary) {
        view.zoom = (view.zoom * (-(delta.y as f64) * 0.01).exp()).clamp(0.1, 40.0);
    } else if response.dragged_by(PointerButton::Middle) {
        let mmpp = view.mm_per_point(size);
        view.pan[0] -= delta.x as f64 * mmpp;
        view.pan[1] -= delta.y as f64 * mmpp;
    } else if response.dragged_by(PointerButton::Primary) && (wl_mode || mods.ctrl || mods.command)
    {
        ev.window_drag = Some((delta.x, -delta.y));
    } else if (response.dragged_by(PointerButton::Primary) || response.clicked())
        && !mods.shift
        && let Some(p) = response.interact_pointer_pos()
    {
        view.crosshair = view.world_at(to_local(p), size);
    }

    // Overlays: crosshair, labels, slice index, window.
    let c = view.screen_of(view.crosshair, size);
    let cp = Pos2::new(rect.min.x + c[0], rect.min.y + c[1]);
    if show_crosshair {
        let stroke = Stroke::new(1.0, Color32::from_rgba_unmultiplied(255, 220, 0, 150));
        painter.line_segment(
            [Pos2::new(rect.min.x, cp.y), Pos2::new(rect.max.x, cp.y)],
            stroke,
        );
        painter.line_segment(
            [Pos2::new(cp.x, rect.min.y), Pos2::new(cp.x, rect.max.y)],
            stroke,
        );
    }
    let font = egui::FontId::proportional(13.0);
    let label_color = Color32::from_rgb(255, 200, 80);
    let [l, r, t, b] = edge_labels(view.orientation);
    painter.text(
        Pos2::new(rect.min.x + 4.0, rect.center().y),
        egui::Align2::LEFT_CENTER,
        l,
        font.clone(),
        label_color,
    );
    painter.text(
        Pos2::new(rect.max.x - 4.0, rect.center().y),
        egui::Align2::RIGHT_CENTER,
        r,
        font.clone(),
        label_color,
    );
    painter.text(
        Pos2::new(rect.center().x, rect.min.y + 4.0),
        egui::Align2::CENTER_TOP,
        t,
        font.clone(),
        label_color,
    );
    painter.text(
        Pos2::new(rect.center().x, rect.max.y - 4.0),
        egui::Align2::CENTER_BOTTOM,
        b,
        font.clone(),
        label_color,
    );
    painter.text(
        rect.min + Vec2::new(6.0, 4.0),
        egui::Align2::LEFT_TOP,
        title,
        font.clone(),
        Color32::WHITE,
    );
    if let Some(v) = &reference {
        let (idx, n) = view.slice_index(&v.geometry);
        let wl = layers[0].as_ref().map(|l| l.window).unwrap_or(WindowLevel {
            width: 1.0,
            center: 0.0,
        });
        let info = format!(
            "{} {}/{}\nW {:.0} L {:.0}",
            view.orientation.name(),
            idx + 1,
            n,
            wl.width,
            wl.center
        );
        painter.text(
            Pos2::new(rect.min.x + 6.0, rect.max.y - 6.0),
            egui::Align2::LEFT_BOTTOM,
            info,
            font,
            Color32::WHITE,
        );
    } else {
        painter.text(
            rect.center(),
            egui::Align2::CENTER_CENTER,
            "no series assigned",
            egui::FontId::proportional(14.0),
            Color32::GRAY,
        );
    }
    if let Some(mag) = inset
        && has_gpu
        && reference.is_some()
    {
        zoom_inset(&painter, rect, view_id, view, &layers, combine, mag);
    }
    colour_bar(&painter, rect, combine);
    ev
}

/// Paint the layers of a view into `rect` through the GPU callback (which covers the whole
/// rect); false when there is no layer to draw.
fn paint_layers(
    painter: &egui::Painter,
    rect: Rect,
    view_id: u64,
    view: &ViewState,
    layers: &[Option<PaneLayer>; 2],
    combine: Combine,
) -> bool {
    let size = [rect.width(), rect.height()];
    let mut draws: [Option<LayerDraw>; 2] = [None, None];
    for (i, l) in layers.iter().enumerate() {
        if let Some(l) = l {
            let (origin, du, dv) =
                view.voxel_mapping(&l.volume.geometry, size, l.transform.as_ref());
            draws[i] = Some(LayerDraw {
                volume: l.volume.clone(),
                packed: l.packed.clone(),
                origin,
                du,
                dv,
                window: l.window,
                colormap: l.colormap,
                invert: l.volume.meta.monochrome1,
            });
        }
    }
    if draws.iter().all(Option::is_none) {
        return false;
    }
    let combine = if draws[1].is_some() && draws[0].is_some() {
        combine
    } else {
        Combine::Single
    };
    if draws[0].is_none() {
        draws.swap(0, 1);
    }
    let cb = SliceCallback {
        view_id,
        frame: painter.ctx().cumulative_frame_nr(),
        ctx: painter.ctx().clone(),
        layers: draws,
        combine,
        plane: view.plane_mm(size),
        pixels: [
            rect.width() * painter.ctx().pixels_per_point(),
            rect.height() * painter.ctx().pixels_per_point(),
        ],
    };
    painter.add(egui_wgpu::Callback::new_paint_callback(rect, cb));
    true
}

/// The view state that shows the region around the crosshair magnified `mag` times in a
/// square of `side` points, for a pane of `size` points showing `view`.
pub fn inset_view(view: &ViewState, size: [f32; 2], side: f32, mag: f32) -> ViewState {
    use super::view::dot;
    let (u, v, _) = view.orientation.axes();
    let short = size[0].min(size[1]).max(1.0) as f64;
    let mut z = view.clone();
    // mm per point in the inset = the pane's / mag.
    z.zoom = view.zoom * mag as f64 * short / side.max(1.0) as f64;
    z.pan = [
        dot(view.crosshair, u) - dot(view.fov_center, u),
        dot(view.crosshair, v) - dot(view.fov_center, v),
    ];
    z
}

/// The zoomed inset: a magnified copy of the region around the crosshair in the lower right
/// corner (clear of the colour bar), the region outlined in the pane.
fn zoom_inset(
    painter: &egui::Painter,
    rect: Rect,
    view_id: u64,
    view: &ViewState,
    layers: &[Option<PaneLayer>; 2],
    combine: Combine,
    mag: f32,
) {
    let size = [rect.width(), rect.height()];
    let side = (0.38 * rect.width().min(rect.height())).floor();
    if side < 24.0 {
        return;
    }
    let margin = if matches!(combine, Combine::Single) {
        6.0
    } else {
        52.0
    };
    let inset = Rect::from_min_size(
        Pos2::new(rect.max.x - margin - side, rect.max.y - 24.0 - side),
        Vec2::splat(side),
    );
    let z = inset_view(view, size, side, mag);
    // A distinct id: the inset's view uniforms must not overwrite the pane's.
    let _ = paint_layers(painter, inset, view_id + 1_000, &z, layers, combine);
    let outline = Stroke::new(1.5, Color32::from_rgb(80, 220, 255));
    painter.rect_stroke(inset, 0.0, outline, egui::StrokeKind::Outside);
    let c = view.screen_of(view.crosshair, size);
    let half = side / mag / 2.0;
    let src = Rect::from_center_size(
        Pos2::new(rect.min.x + c[0], rect.min.y + c[1]),
        Vec2::splat(2.0 * half),
    );
    painter.rect_stroke(src, 0.0, outline, egui::StrokeKind::Outside);
    painter.text(
        inset.left_top() + Vec2::new(4.0, 2.0),
        egui::Align2::LEFT_TOP,
        format!("x{mag:.0}"),
        egui::FontId::proportional(12.0),
        Color32::from_rgb(80, 220, 255),
    );
}

/// A colour bar at the right edge for the error modes, labelled in image units.
fn colour_bar(painter: &egui::Painter, rect: Rect, combine: Combine) {
    let (cmap, lo, hi) = match combine {
        Combine::SignedError { range, .. } => (Colormap::Diverging, -range, range),
        Combine::AbsError { range, .. } => (Colormap::Inferno, 0.0, range),
        _ => return,
    };
    let table = cmap.table();
    let bar = Rect::from_min_max(
        Pos2::new(rect.max.x - 26.0, rect.min.y + 30.0),
        Pos2::new(rect.max.x - 14.0, rect.max.y - 30.0),
    );
    let n = 64;
    for i in 0..n {
        let t = 1.0 - (i as f32 + 0.5) / n as f32;
        let c = table[(t * 255.0).round() as usize];
        let y0 = bar.min.y + bar.height() * i as f32 / n as f32;
        let y1 = bar.min.y + bar.height() * (i + 1) as f32 / n as f32;
        painter.rect_filled(
            Rect::from_min_max(Pos2::new(bar.min.x, y0), Pos2::new(bar.max.x, y1 + 0.5)),
            0.0,
            Color32::from_rgb(c[0], c[1], c[2]),
        );
    }
    let font = egui::FontId::proportional(11.0);
    for (v, y) in [
        (hi, bar.min.y),
        ((lo + hi) / 2.0, bar.center().y),
        (lo, bar.max.y),
    ] {
        painter.text(
            Pos2::new(bar.min.x - 3.0, y),
            egui::Align2::RIGHT_CENTER,
            format!("{v:+.0}"),
            font.clone(),
            Color32::WHITE,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::volume::Geometry;

    /// The inset centres the crosshair and magnifies by exactly `mag`, in every orientation and
    /// whatever the pane's zoom and pan.
    #[test]
    fn inset_centres_the_crosshair_at_the_asked_magnification() {
        let g = Geometry::axis_aligned([100, 120, 40], [1.0, 1.0, 2.5], [-50.0, -60.0, -50.0]);
        for o in super::super::view::Orientation::ALL {
            let mut s = ViewState::fit(&g, o);
            s.zoom = 1.4;
            s.pan = [7.0, -3.0];
            s.crosshair = [12.0, -20.0, 5.0];
            let size = [420.0, 300.0];
            let side = 110.0;
            let z = inset_view(&s, size, side, 3.0);
            let c = z.screen_of(s.crosshair, [side, side]);
            assert!((c[0] - side / 2.0).abs() < 1e-3 && (c[1] - side / 2.0).abs() < 1e-3);
            let ratio = s.mm_per_point(size) / z.mm_per_point([side, side]);
            assert!((ratio - 3.0).abs() < 1e-9, "{o:?}: x{ratio}");
            // The pane itself is untouched.
            assert_eq!(s.zoom, 1.4);
        }
    }
}
