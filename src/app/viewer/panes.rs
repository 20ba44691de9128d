//! The panes of the chosen layout: CT, MR, the pane that compares CT with MR (or the
//! synthetic volume with its reference), and their difference, in one or three orientations.

use super::layout::{self, PaneKind};
use super::render::Combine;
use super::view;
use super::viewport::{PaneLayer, pane_ui};
use crate::app::SynthScopeApp;
use crate::volume::Volume;
use std::sync::Arc;

impl SynthScopeApp {
    /// Draw the panes and apply what happened in them (hover, window drags, scrolling).
    pub(in crate::app) fn panes_ui(&mut self, ui: &mut egui::Ui) {
        let ct = self.ct_volume().cloned();
        let mr = self.mr_volume().cloned();
        let mr_from_ct = self.pair.mr_from_ct;
        let layer = |v: &Option<Arc<Volume>>, app: &Self| {
            v.as_ref().map(|v| {
                let d = app.viewer.display_of(v);
                PaneLayer {
                    volume: v.clone(),
                    window: d.window,
                    colormap: d.colormap,
                    packed: app.viewer.packed.get(&v.id).cloned(),
                    transform: None,
                }
            })
        };
        let ct_layer = layer(&ct, self);
        let mut mr_layer = layer(&mr, self);
        if let Some(l) = &mut mr_layer {
            l.transform = mr_from_ct;
        }
        // The third pane: CT against MR, or the synthetic volume against its reference.
        let synthetic = if self.synthesis.third_shows_synthetic {
            self.synthesis
                .synthetic
                .and_then(|i| self.volumes.get(i).cloned())
        } else {
            None
        };
        let (third_layers, names) = match (&synthetic, self.model.direction()) {
            (Some(sv), dir) => {
                let mut sl = layer(&Some(sv.clone()), self);
                let mr_to_ct = dir != Some(crate::model::Direction::CtToMr);
                // A denoised CT lives on the CT's own grid.
                let denoise = dir == Some(crate::model::Direction::CtDenoise);
                // Synthetic CT lives on the MR grid: drawn through the registration, windowed like the CT.
                if let Some(l) = &mut sl {
                    if mr_to_ct {
                        l.transform = if denoise { None } else { mr_from_ct };
                        if let Some(c) = &ct {
                            l.window = self.viewer.display_of(c).window;
                        }
                    } else if let Some(m) = &mr {
                        l.window = self.viewer.display_of(m).window;
                    }
                }
                let reference = if mr_to_ct {
                    ct_layer.clone()
                } else {
                    mr_layer.clone()
                };
                ([reference, sl], ("real", "synthetic"))
            }
            (None, _) => ([ct_layer.clone(), mr_layer.clone()], ("CT", "MR")),
        };
        let v = &mut self.viewer;
        let third = match v.compare {
            Combine::Blend(_) => format!("Fade {} → {}", names.0, names.1),
            Combine::Difference => format!("Difference {} − {} (windowed)", names.0, names.1),
            Combine::SignedError { .. } => format!("{} − {} (image units)", names.1, names.0),
            Combine::AbsError { .. } => format!("|{} − {}| (image units)", names.1, names.0),
            _ => format!("Checkerboard {} / {}", names.0, names.1),
        };
        let compare = match v.compare {
            Combine::Checker(_) => Combine::Checker(v.checker_mm),
            other => other,
        };
        let title = |role: &str, v: &Option<Arc<Volume>>| match v {
            Some(v) => format!("{role}: {}", v.meta.description),
            None => role.to_string(),
        };
        let registered = if mr_from_ct.is_some() {
            " (registered)"
        } else {
            ""
        };
        let describe = |kind: PaneKind| match kind {
            PaneKind::Ct => (
                title("CT", &ct),
                [ct_layer.clone(), None],
                Combine::Single,
                ct.clone(),
                "CT",
            ),
            PaneKind::Mr => (
                title("MR", &mr),
                [mr_layer.clone(), None],
                Combine::Single,
                mr.clone(),
                "MR",
            ),
            PaneKind::Compare => (
                format!("{third}{registered}"),
                third_layers.clone(),
                compare,
                ct.clone().or(mr.clone()),
                "CT",
            ),
            PaneKind::Difference => (
                format!(
                    "Difference {} − {} (windowed){registered}",
                    names.0, names.1
                ),
                third_layers.clone(),
                Combine::Difference,
                ct.clone().or(mr.clone()),
                "CT",
            ),
        };
        let gap = 4.0;
        let avail = ui.available_rect_before_wrap();
        v.panes_rect = avail;
        let mut scroll = Vec::new();
        let mut hover = None;
        let slots = layout::arrange(v.layout, v.focus, avail, gap);
        v.pane_rects = slots.iter().map(|s| s.rect).collect();
        for (k, slot) in slots.into_iter().enumerate() {
            let (title, layers, combine, probe_vol, name) = describe(slot.kind);
            let mut child = ui.new_child(
                egui::UiBuilder::new()
                    .max_rect(slot.rect)
                    .id_salt(("pane", k)),
            );
            // A pane of another orientation draws a copy of the views, its pan mapped in and
            // back out (one pan in patient space), its crosshair and zoom linked.
            let own = slot.orientation.filter(|o| *o != v.view.orientation);
            let mut other = own.map(|o| v.view.in_orientation(o));
            let before = other.clone();
            let pane_view = other.as_mut().unwrap_or(&mut v.view);
            let ev = pane_ui(
                &mut child,
                k as u64,
                &title,
                pane_view,
                layers,
                combine,
                v.wl_mode,
                v.has_gpu_renderer,
                v.show_inset.then_some(v.inset_mag),
                true,
            );
            if let (Some(after), Some(before)) = (&other, &before) {
                v.view.take_linked(before, after);
            }
            if ev.scroll != 0 {
                scroll.push((own, ev.scroll));
            }
            if let Some(wpt) = ev.hover_world {
                let t = if name == "MR" { mr_from_ct } else { None };
                let probe = probe_vol
                    .as_ref()
                    .and_then(|vol| view::probe(vol, wpt, t.as_ref()));
                hover = Some((name.to_string(), wpt, probe));
            }
            if let (Some((dw, dc)), Some(vol)) = (ev.window_drag, probe_vol.as_ref()) {
                let mut d = v.display_of(vol);
                let s = d.window.width.max(1.0) * 0.005;
                d.window.width = (d.window.width + dw * s).max(1.0);
                d.window.center += dc * s;
                v.display.insert(vol.id, d);
            }
        }
        ui.allocate_rect(avail, egui::Sense::hover());
        v.hover = hover;
        for (o, n) in scroll {
            match o {
                Some(o) => self.scroll_in(o, n),
                None => self.scroll(n),
            }
        }
    }
}
