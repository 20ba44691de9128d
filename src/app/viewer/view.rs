//! Linked slice views: one crosshair in patient coordinates, shared zoom and pan, three
//! orientations. Pure geometry here; drawing lives in `viewport`.

use crate::volume::Affine;
use crate::volume::{Geometry, Vec3, Volume};

/// Plane orientation of a view.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Orientation {
    /// Transverse plane, seen from the feet (radiological: patient left on screen right).
    Axial,
    /// Frontal plane, seen from the front.
    Coronal,
    /// Side plane, seen from the patient's left (anterior on screen left).
    Sagittal,
}

impl Orientation {
    /// All three, in display order.
    pub const ALL: [Orientation; 3] = [
        Orientation::Axial,
        Orientation::Coronal,
        Orientation::Sagittal,
    ];

    /// Screen-right, screen-down and plane-normal unit vectors in LPS.
    pub fn axes(self) -> (Vec3, Vec3, Vec3) {
        match self {
            Orientation::Axial => ([1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]),
            Orientation::Coronal => ([1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]),
            Orientation::Sagittal => ([0.0, 1.0, 0.0], [0.0, 0.0, -1.0], [1.0, 0.0, 0.0]),
        }
    }

    /// Display name.
    pub fn name(self) -> &'static str {
        match self {
            Orientation::Axial => "Axial",
            Orientation::Coronal => "Coronal",
            Orientation::Sagittal => "Sagittal",
        }
    }
}

pub(super) fn dot(a: Vec3, b: Vec3) -> f64 {
    a[0] * b[0] + a[1] * b[1] + a[2] * b[2]
}

/// Shared state of the linked views.
#[derive(Clone, Debug, PartialEq)]
pub struct ViewState {
    /// Orientation of the views.
    pub orientation: Orientation,
    /// The crosshair (LPS mm): every view's plane passes through it.
    pub crosshair: Vec3,
    /// Centre of the field of view (LPS mm), the point at the middle of each view before panning.
    pub fov_center: Vec3,
    /// Field-of-view edge (mm) that fits the reference volume.
    pub fov_mm: f64,
    /// Zoom factor (1 = reference volume fits the view).
    pub zoom: f64,
    /// Pan in mm along screen right and screen down.
    pub pan: [f64; 2],
}

impl Default for ViewState {
    fn default() -> Self {
        Self {
            orientation: Orientation::Axial,
            crosshair: [0.0; 3],
            fov_center: [0.0; 3],
            fov_mm: 256.0,
            zoom: 1.0,
            pan: [0.0; 2],
        }
    }
}

impl ViewState {
    /// Views fitted to `g`, crosshair at its centre.
    pub fn fit(g: &Geometry, orientation: Orientation) -> Self {
        let (lo, hi) = g.world_bounds();
        let c = g.center();
        let ext = (0..3).map(|a| hi[a] - lo[a]).fold(0.0, f64::max);
        Self {
            orientation,
            crosshair: c,
            fov_center: c,
            fov_mm: ext.max(1.0) * 1.05,
            zoom: 1.0,
            pan: [0.0; 2],
        }
    }

    /// Millimetres per screen point for a view of `size` points.
    pub fn mm_per_point(&self, size: [f32; 2]) -> f64 {
        let short = size[0].min(size[1]).max(1.0) as f64;
        self.fov_mm / self.zoom / short
    }

    /// The LPS point under screen position `p` (points, relative to the view's top-left)
    /// in a view of `size` points.
    pub fn world_at(&self, p: [f32; 2], size: [f32; 2]) -> Vec3 {
        let (u, v, n) = self.orientation.axes();
        let mmpp = self.mm_per_point(size);
        let cu =
            dot(self.fov_center, u) + self.pan[0] + (p[0] as f64 - size[0] as f64 / 2.0) * mmpp;
        let cv =
            dot(self.fov_center, v) + self.pan[1] + (p[1] as f64 - size[1] as f64 / 2.0) * mmpp;
        let cn = dot(self.crosshair, n);
        [
            u[0] * cu + v[0] * cv + n[0] * cn,
            u[1] * cu + v[1] * cv + n[1] * cn,
            u[2] * cu + v[2] * cv + n[2] * cn,
        ]
    }

    /// Screen position (points) of LPS point `w` projected on the view, for a view of `size`.
    pub fn screen_of(&self, w: Vec3, size: [f32; 2]) -> [f32; 2] {
        let (u, v, _) = self.orientation.axes();
        let mmpp = self.mm_per_point(size);
        let x = (dot(w, u) - dot(self.fov_center, u) - self.pan[0]) / mmpp + size[0] as f64 / 2.0;
        let y = (dot(w, v) - dot(self.fov_center, v) - self.pan[1]) / mmpp + size[1] as f64 / 2.0;
        [x as f32, y as f32]
    }

    /// In-plane mm at the view's top-left, and the view's extent in mm (for world-fixed patterns).
    pub fn plane_mm(&self, size: [f32; 2]) -> [f32; 4] {
        let (u, v, _) = self.orientation.axes();
        let w0 = self.world_at([0.0, 0.0], size);
        let mmpp = self.mm_per_point(size);
        [
            dot(w0, u) as f32,
            dot(w0, v) as f32,
            (size[0] as f64 * mmpp) as f32,
            (size[1] as f64 * mmpp) as f32,
        ]
    }

    /// Voxel-space mapping of the view for volume `g`: voxel index at uv (0,0) and its change
    /// across the full width and height, as the shader takes it.
    /// `moving_from_view`, when set, maps the view's (fixed) world points into the volume's own
    /// patient space first: a registered MR is drawn through its transform, without resampling.
    pub fn voxel_mapping(
        &self,
        g: &Geometry,
        size: [f32; 2],
        moving_from_view: Option<&Affine>,
    ) -> ([f64; 3], [f64; 3], [f64; 3]) {
        let map = |w: Vec3| moving_from_view.map(|t| t.apply(w)).unwrap_or(w);
        let w00 = map(self.world_at([0.0, 0.0], size));
        let w10 = map(self.world_at([size[0], 0.0], size));
        let w01 = map(self.world_at([0.0, size[1]], size));
        let p00 = g.voxel_from_world(w00);
        let p10 = g.voxel_from_world(w10);
        let p01 = g.voxel_from_world(w01);
        (
            p00,
            [p10[0] - p00[0], p10[1] - p00[1], p10[2] - p00[2]],
            [p01[0] - p00[0], p01[1] - p00[1], p01[2] - p00[2]],
        )
    }

    /// The grid axis of `g` closest to the view normal, and the slice step (mm) along it.
    pub fn slice_axis(&self, g: &Geometry) -> (usize, f64) {
        let (_, _, n) = self.orientation.axes();
        let mut best = (0, 0.0);
        for a in 0..3 {
            let col = [g.direction[0][a], g.direction[1][a], g.direction[2][a]];
            let c = dot(col, n).abs();
            if c > best.1 {
                best = (a, c);
            }
        }
        (best.0, g.spacing[best.0])
    }

    /// Move the crosshair by `slices` slices of `g` along the view normal, staying inside its bounds.
    pub fn scroll(&mut self, g: &Geometry, slices: i32) {
        let (_, step) = self.slice_axis(g);
        let (_, _, n) = self.orientation.axes();
        let (lo, hi) = g.world_bounds();
        let lo_n = dot(lo, n).min(dot(hi, n));
        let hi_n = dot(lo, n).max(dot(hi, n));
        let cur = dot(self.crosshair, n);
        let target = (cur + slices as f64 * step).clamp(lo_n, hi_n);
        for r in 0..3 {
            self.crosshair[r] += n[r] * (target - cur);
        }
    }

    /// The same views seen in orientation `o`: the crosshair and zoom as they are, the pan
    /// carried over through patient space.
    pub fn in_orientation(&self, o: Orientation) -> ViewState {
        let (u, v, _) = self.orientation.axes();
        let w: Vec3 = std::array::from_fn(|r| u[r] * self.pan[0] + v[r] * self.pan[1]);
        let (uo, vo, _) = o.axes();
        ViewState {
            orientation: o,
            pan: [dot(w, uo), dot(w, vo)],
            ..self.clone()
        }
    }

    /// Take what a pane drawing [`Self::in_orientation`] changed, from `before` to `after`:
    /// the crosshair, the zoom, and the pan (its part along this orientation's normal moves
    /// the field of view's centre).
    pub fn take_linked(&mut self, before: &ViewState, after: &ViewState) {
        self.crosshair = after.crosshair;
        self.zoom = after.zoom;
        let (uo, vo, _) = after.orientation.axes();
        let d = [after.pan[0] - before.pan[0], after.pan[1] - before.pan[1]];
        let wd: Vec3 = std::array::from_fn(|r| uo[r] * d[0] + vo[r] * d[1]);
        let (u, v, n) = self.orientation.axes();
        self.pan[0] += dot(wd, u);
        self.pan[1] += dot(wd, v);
        let dn = dot(wd, n);
        for r in 0..3 {
            self.fov_center[r] += n[r] * dn;
        }
    }

    /// Index of the slice of `g` the crosshair lies in (along the axis closest to the normal).
    pub fn slice_index(&self, g: &Geometry) -> (usize, usize) {
        let (a, _) = self.slice_axis(g);
        let p = g.voxel_from_world(self.crosshair);
        let n = g.dims[a];
        ((p[a].round().max(0.0) as usize).min(n.saturating_sub(1)), n)
    }
}

/// Value and voxel index of `volume` at LPS point `w` (nearest voxel), if inside.
pub fn probe(
    volume: &Volume,
    w: Vec3,
    moving_from_view: Option<&Affine>,
) -> Option<([usize; 3], f32)> {
    let w = moving_from_view.map(|t| t.apply(w)).unwrap_or(w);
    let p = volume.geometry.voxel_from_world(w);
    let v = volume.sample_nearest(p)?;
    Some((
        [
            p[0].round() as usize,
            p[1].round() as usize,
            p[2].round() as usize,
        ],
        v,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn screen_world_round_trip_and_scroll() {
        let g = Geometry::axis_aligned([100, 120, 40], [1.0, 1.0, 2.5], [-50.0, -60.0, -50.0]);
        for o in Orientation::ALL {
            let mut s = ViewState::fit(&g, o);
            s.zoom = 1.7;
            s.pan = [3.0, -4.0];
            let size = [400.0, 300.0];
            let w = s.world_at([123.0, 77.0], size);
            let p = s.screen_of(w, size);
            assert!((p[0] - 123.0).abs() < 1e-3 && (p[1] - 77.0).abs() < 1e-3);
            let (i0, _) = s.slice_index(&g);
            s.scroll(&g, 1);
            let (i1, _) = s.slice_index(&g);
            assert_eq!(i1, i0 + 1, "{o:?}");
        }
    }

    /// A pane of another orientation shows the same point at the same place after a pan, and
    /// its pan, crosshair and zoom come back into the linked views.
    #[test]
    fn panes_of_other_orientations_share_pan_zoom_and_crosshair() {
        let g = Geometry::axis_aligned([100, 120, 40], [1.0, 1.0, 2.5], [-50.0, -60.0, -50.0]);
        let mut s = ViewState::fit(&g, Orientation::Axial);
        s.pan = [5.0, -7.0];
        let size = [300.0, 300.0];
        for o in [Orientation::Coronal, Orientation::Sagittal] {
            let before = s.in_orientation(o);
            let mut after = before.clone();
            after.pan = [before.pan[0] + 3.0, before.pan[1] - 2.0];
            after.zoom = 2.0;
            after.crosshair = [1.0, 2.0, 3.0];
            let mut linked = s.clone();
            linked.take_linked(&before, &after);
            assert_eq!(linked.zoom, 2.0);
            assert_eq!(linked.crosshair, [1.0, 2.0, 3.0]);
            // Seen again in `o`, the pane is where the user left it.
            let again = linked.in_orientation(o);
            let p = [40.0, 200.0];
            let (w0, w1) = (after.world_at(p, size), again.world_at(p, size));
            let (uo, vo, _) = o.axes();
            assert!((dot(w0, uo) - dot(w1, uo)).abs() < 1e-9, "{o:?}");
            assert!((dot(w0, vo) - dot(w1, vo)).abs() < 1e-9, "{o:?}");
        }
    }

    #[test]
    fn axial_is_radiological() {
        let g = Geometry::axis_aligned([10, 10, 10], [1.0; 3], [0.0; 3]);
        let s = ViewState::fit(&g, Orientation::Axial);
        let size = [100.0, 100.0];
        // Screen right is patient left (+x in LPS); screen down is posterior (+y).
        let l = s.world_at([90.0, 50.0], size);
        let r = s.world_at([10.0, 50.0], size);
        assert!(l[0] > r[0]);
        let p = s.world_at([50.0, 90.0], size);
        let a = s.world_at([50.0, 10.0], size);
        assert!(p[1] > a[1]);
    }
}
