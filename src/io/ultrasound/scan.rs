//! Probe geometry (where each beam-space sample lies in the slice plane) and scan conversion
//! (beam space back onto the slice's pixel grid).

use super::{BeamFrame, Medium, Probe};
use serde::Serialize;

/// How the scan lines are laid out.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum ProbeKind {
    /// Phased array: lines fan out from an apex over an opening angle.
    Sector,
    /// Linear array: parallel lines over an aperture.
    Linear,
}

impl Probe {
    fn axis(&self) -> [f64; 2] {
        let a = self.direction_deg.to_radians();
        [a.cos(), a.sin()]
    }

    /// Sector: the angle of line `l` (radians). Linear: its lateral offset (mm).
    fn line_param(&self, l: f64) -> f64 {
        let n = (self.lines.max(2) - 1) as f64;
        let u = l / n - 0.5;
        match self.kind {
            ProbeKind::Sector => self.direction_deg.to_radians() + (self.width * u).to_radians(),
            ProbeKind::Linear => self.width * u,
        }
    }

    /// The point (mm) of line `l` at depth `depth` (mm).
    pub fn point(&self, l: usize, depth: f64) -> [f64; 2] {
        let t = self.line_param(l as f64);
        match self.kind {
            ProbeKind::Sector => [
                self.origin[0] + depth * t.cos(),
                self.origin[1] + depth * t.sin(),
            ],
            ProbeKind::Linear => {
                let [ax, ay] = self.axis();
                // The lateral axis is the beam axis turned by +90 degrees.
                [
                    self.origin[0] + depth * ax - t * ay,
                    self.origin[1] + depth * ay + t * ax,
                ]
            }
        }
    }

    /// The distance (mm) between neighbouring lines at `depth`.
    pub fn line_spacing_mm(&self, depth: f64) -> f64 {
        let n = (self.lines.max(2) - 1) as f64;
        match self.kind {
            ProbeKind::Sector => depth * (self.width / n).to_radians(),
            ProbeKind::Linear => self.width / n,
        }
    }

    /// (continuous line index, depth in mm) of point `p`, or None outside the field of view.
    pub fn beam_coords(&self, p: [f64; 2]) -> Option<(f64, f64)> {
        let n = (self.lines.max(2) - 1) as f64;
        let v = [p[0] - self.origin[0], p[1] - self.origin[1]];
        let (l, depth) = match self.kind {
            ProbeKind::Sector => {
                let depth = (v[0] * v[0] + v[1] * v[1]).sqrt();
                let mut da = v[1].atan2(v[0]) - self.direction_deg.to_radians();
                // Wrap into -pi..pi.
                da = (da + std::f64::consts::PI).rem_euclid(std::f64::consts::TAU)
                    - std::f64::consts::PI;
                ((da.to_degrees() / self.width + 0.5) * n, depth)
            }
            ProbeKind::Linear => {
                let [ax, ay] = self.axis();
                let depth = v[0] * ax + v[1] * ay;
                let lateral = -v[0] * ay + v[1] * ax;
                ((lateral / self.width + 0.5) * n, depth)
            }
        };
        // Points on the outer lines come back a rounding error outside: keep them.
        let eps = 1e-9 * n.max(1.0);
        (l >= -eps && l <= n + eps && depth >= 0.0 && depth <= self.depth_mm)
            .then_some((l.clamp(0.0, n), depth))
    }
}

/// Beam-space values `shown` (laid out like `frame`) on the pixel grid of `medium`: bilinear
/// between lines and samples, 0 outside the field of view.
pub fn scan_convert(frame: &BeamFrame, shown: &[f32], probe: &Probe, medium: &Medium) -> Vec<f32> {
    let (nl, ns) = (frame.lines, frame.samples);
    let mut out = vec![0f32; medium.nx * medium.ny];
    for y in 0..medium.ny {
        for x in 0..medium.nx {
            let p = [
                medium.origin[0] + x as f64 * medium.spacing[0],
                medium.origin[1] + y as f64 * medium.spacing[1],
            ];
            let Some((l, depth)) = probe.beam_coords(p) else {
                continue;
            };
            let s = depth / frame.sample_mm;
            let (l0, s0) = (l.floor() as usize, s.floor() as usize);
            if l0 >= nl || s0 >= ns {
                continue;
            }
            let (l1, s1) = ((l0 + 1).min(nl - 1), (s0 + 1).min(ns - 1));
            let (a, b) = ((l - l0 as f64) as f32, (s - s0 as f64) as f32);
            let v = |l: usize, s: usize| shown[l * ns + s];
            out[x + medium.nx * y] = (v(l0, s0) * (1.0 - b) + v(l0, s1) * b) * (1.0 - a)
                + (v(l1, s0) * (1.0 - b) + v(l1, s1) * b) * a;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn probe(kind: ProbeKind) -> Probe {
        Probe {
            kind,
            origin: [-10.0, 5.0],
            direction_deg: 30.0,
            width: match kind {
                ProbeKind::Sector => 70.0,
                ProbeKind::Linear => 40.0,
            },
            depth_mm: 80.0,
            lines: 65,
            sample_mm: 0.25,
        }
    }

    #[test]
    fn beam_coords_invert_point() {
        for kind in [ProbeKind::Sector, ProbeKind::Linear] {
            let p = probe(kind);
            for (l, d) in [(0usize, 10.0), (32, 40.0), (64, 79.0), (17, 3.0)] {
                let (l2, d2) = p.beam_coords(p.point(l, d)).expect("inside");
                assert!((l2 - l as f64).abs() < 1e-6, "{kind:?}: line {l} -> {l2}");
                assert!((d2 - d).abs() < 1e-6, "{kind:?}: depth {d} -> {d2}");
            }
            // Behind the probe: outside.
            let [x, y] = p.point(32, 10.0);
            let behind = [2.0 * p.origin[0] - x, 2.0 * p.origin[1] - y];
            assert!(p.beam_coords(behind).is_none());
        }
    }
}
