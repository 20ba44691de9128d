//! The viewer: the linked panes of the chosen layout (CT, MR, the two compared, their difference), their display settings,
//! the GPU slice renderer behind them, and the PNG export of what they show.

pub mod export;
pub mod layout;
mod panes;
pub mod render;
pub mod render_cache;
pub mod view;
pub mod viewport;

use crate::volume::{CT_PRESETS, Colormap, Modality, Volume, WindowLevel};
use render::{Combine, Quantized};
use std::collections::HashMap;
use std::sync::Arc;
use view::ViewState;

/// Display settings of one volume.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Display {
    /// Window.
    pub window: WindowLevel,
    /// Colormap.
    pub colormap: Colormap,
}

/// What is under the mouse: pane name, LPS point, and the voxel index and value there.
pub(super) type Hover = (String, [f64; 3], Option<([usize; 3], f32)>);

/// The robust window of an image without absolute units (2-98% of its intensities).
pub fn auto_window(v: &Volume) -> WindowLevel {
    let (lo, hi) = v.robust_range(2.0, 98.0);
    WindowLevel::from_range(lo, hi)
}

/// How the window presents its frames: without waiting for vertical sync on a software
/// adapter (Mesa lavapipe under X waits for a simulated refresh on every frame: measured,
/// static repaint p50 360 -> 204 ms and 230 -> 125 ms on this 2-core machine under load),
/// with it on a GPU. `SYNTHSCOPE_VSYNC=on|off` overrides.
pub fn present_mode(software: bool) -> eframe::egui_wgpu::wgpu::PresentMode {
    use eframe::egui_wgpu::wgpu::PresentMode;
    let vsync = match std::env::var("SYNTHSCOPE_VSYNC").as_deref() {
        Ok("on") => true,
        Ok("off") => false,
        _ => !software,
    };
    if vsync {
        PresentMode::AutoVsync
    } else {
        PresentMode::AutoNoVsync
    }
}

/// The panes' settings and their GPU side.
pub struct Viewer {
    /// The linked views.
    pub view: ViewState,
    /// Per-volume display settings, by volume id.
    pub display: HashMap<u64, Display>,
    /// How the third pane compares its two layers.
    pub compare: Combine,
    /// Checkerboard square size (mm).
    pub checker_mm: f32,
    /// Left-drag changes window/level (otherwise it moves the crosshair).
    pub wl_mode: bool,
    /// Zoomed inset around the crosshair in every pane (key z).
    pub show_inset: bool,
    /// The inset's magnification.
    pub inset_mag: f32,
    /// The pane layout (keys 1-4).
    pub layout: layout::Layout,
    /// The volume of the single-volume layouts.
    pub focus: layout::PaneKind,
    /// Where the panes were drawn last frame (points).
    pub panes_rect: egui::Rect,
    /// Each pane of the layout, last frame (points).
    pub pane_rects: Vec<egui::Rect>,
    pub(super) hover: Option<Hover>,
    pub(super) has_gpu_renderer: bool,
    pub(super) render_state: Option<eframe::egui_wgpu::RenderState>,
    /// Volumes packed off the UI thread, until the renderer has their textures.
    pub(super) packed: HashMap<u64, Arc<Quantized>>,
}

impl Viewer {
    /// Settings for a new window; installs the slice renderer when eframe draws with wgpu.
    pub fn new(render_state: Option<eframe::egui_wgpu::RenderState>) -> Self {
        if let Some(rs) = &render_state {
            render::SliceRenderer::install(rs);
        }
        Self {
            view: ViewState::default(),
            display: HashMap::new(),
            compare: Combine::Checker(16.0),
            checker_mm: 16.0,
            wl_mode: false,
            show_inset: false,
            inset_mag: 3.0,
            layout: layout::Layout::default(),
            focus: layout::PaneKind::default(),
            panes_rect: egui::Rect::NOTHING,
            pane_rects: Vec::new(),
            hover: None,
            has_gpu_renderer: render_state.is_some(),
            render_state,
            packed: HashMap::new(),
        }
    }

    /// Display settings of volume `v` (defaults when not set yet: the first CT preset for a
    /// CT, the robust range otherwise; grey).
    pub fn display_of(&self, v: &Volume) -> Display {
        self.display.get(&v.id).copied().unwrap_or_else(|| Display {
            window: if v.meta.modality == Modality::Ct {
                CT_PRESETS[0].window
            } else {
                auto_window(v)
            },
            colormap: Colormap::Grey,
        })
    }

    /// Give every volume without display settings its defaults, once: the robust window of an
    /// MR scans the whole volume, too slow to compute again in every frame.
    pub fn settle_displays(&mut self, volumes: &[Arc<Volume>]) {
        for v in volumes {
            if !self.display.contains_key(&v.id) {
                let d = self.display_of(v);
                self.display.insert(v.id, d);
            }
        }
    }

    /// Set the window of volume `v`.
    pub fn set_window(&mut self, v: &Volume, window: WindowLevel) {
        let mut d = self.display_of(v);
        d.window = window;
        self.display.insert(v.id, d);
    }

    /// Volumes uploaded to the GPU so far (each volume once; scrolling never re-uploads).
    pub fn gpu_uploads(&self) -> u64 {
        self.render_state
            .as_ref()
            .map(render::upload_count)
            .unwrap_or(0)
    }

    /// Whether volume `id` is on the GPU, all of it (one larger than
    /// [`render::UPLOAD_BYTES_PER_FRAME`] goes up over a few frames).
    pub fn is_on_gpu(&self, id: u64) -> bool {
        self.render_state
            .as_ref()
            .is_some_and(|rs| render::is_uploaded(rs, id))
    }

    /// Drop packed copies the renderer no longer needs.
    pub(super) fn forget_uploaded(&mut self) {
        if let Some(rs) = &self.render_state {
            self.packed.retain(|id, _| !render::is_uploaded(rs, *id));
        }
    }
}
