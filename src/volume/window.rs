//! Window/level and colormaps (as data: control points expanded to 256-entry tables).

use serde::Serialize;

/// A display window: values in `[center - width/2, center + width/2]` span the colormap.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, serde::Deserialize)]
pub struct WindowLevel {
    /// Window width (same unit as the image).
    pub width: f32,
    /// Window centre (level).
    pub center: f32,
}

impl WindowLevel {
    /// A window spanning `[lo, hi]`.
    pub fn from_range(lo: f32, hi: f32) -> Self {
        let width = (hi - lo).max(1e-6);
        Self {
            width,
            center: lo + width / 2.0,
        }
    }

    /// Lowest value shown (maps to the colormap's first entry).
    pub fn low(&self) -> f32 {
        self.center - self.width / 2.0
    }

    /// Highest value shown.
    pub fn high(&self) -> f32 {
        self.center + self.width / 2.0
    }

    /// Position of `v` in the window, clamped to 0..=1.
    pub fn normalise(&self, v: f32) -> f32 {
        ((v - self.low()) / self.width.max(1e-6)).clamp(0.0, 1.0)
    }
}

/// A named CT window preset.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct WindowPreset {
    /// Name shown in the UI.
    pub name: &'static str,
    /// Its window.
    pub window: WindowLevel,
}

/// CT presets (HU): brain 40/80, subdural 75/215, bone 600/2800, soft tissue 50/350 (level/width).
pub const CT_PRESETS: [WindowPreset; 4] = [
    WindowPreset {
        name: "Brain",
        window: WindowLevel {
            center: 40.0,
            width: 80.0,
        },
    },
    WindowPreset {
        name: "Subdural",
        window: WindowLevel {
            center: 75.0,
            width: 215.0,
        },
    },
    WindowPreset {
        name: "Bone",
        window: WindowLevel {
            center: 600.0,
            width: 2800.0,
        },
    },
    WindowPreset {
        name: "Soft tissue",
        window: WindowLevel {
            center: 50.0,
            width: 350.0,
        },
    },
];

/// A colormap, defined by control points and expanded to 256 RGBA entries.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
pub enum Colormap {
    /// Linear grey.
    Grey,
    /// MATLAB-style jet (blue, cyan, yellow, red).
    Jet,
    /// Perceptually uniform inferno (black, purple, orange, yellow).
    Inferno,
    /// Diverging blue-white-red, centred on the middle: for signed differences.
    Diverging,
}

impl Colormap {
    /// All colormaps, in the order of their rows in the GPU table.
    pub const ALL: [Colormap; 4] = [
        Colormap::Grey,
        Colormap::Jet,
        Colormap::Inferno,
        Colormap::Diverging,
    ];

    /// Row of this colormap in the GPU table.
    pub fn row(self) -> u32 {
        Self::ALL.iter().position(|c| *c == self).unwrap_or(0) as u32
    }

    /// Display name.
    pub fn name(self) -> &'static str {
        match self {
            Colormap::Grey => "Grey",
            Colormap::Jet => "Jet",
            Colormap::Inferno => "Inferno",
            Colormap::Diverging => "Diverging",
        }
    }

    /// Control points: (position 0..1, r, g, b) with channels 0..255.
    fn control_points(self) -> &'static [(f32, u8, u8, u8)] {
        match self {
            Colormap::Grey => &[(0.0, 0, 0, 0), (1.0, 255, 255, 255)],
            Colormap::Jet => &[
                (0.0, 0, 0, 131),
                (0.125, 0, 0, 255),
                (0.375, 0, 255, 255),
                (0.625, 255, 255, 0),
                (0.875, 255, 0, 0),
                (1.0, 128, 0, 0),
            ],
            Colormap::Inferno => &[
                (0.0, 0, 0, 4),
                (0.14, 31, 12, 72),
                (0.29, 85, 15, 109),
                (0.43, 136, 34, 106),
                (0.57, 186, 54, 85),
                (0.71, 227, 89, 51),
                (0.86, 249, 140, 10),
                (1.0, 252, 255, 164),
            ],
            Colormap::Diverging => &[
                (0.0, 5, 48, 97),
                (0.25, 67, 147, 195),
                (0.5, 247, 247, 247),
                (0.75, 214, 96, 77),
                (1.0, 103, 0, 31),
            ],
        }
    }

    /// The 256-entry RGBA table (piecewise-linear between control points).
    pub fn table(self) -> [[u8; 4]; 256] {
        let pts = self.control_points();
        let mut out = [[0u8; 4]; 256];
        for (i, entry) in out.iter_mut().enumerate() {
            let t = i as f32 / 255.0;
            let k = pts
                .iter()
                .rposition(|p| p.0 <= t)
                .unwrap_or(0)
                .min(pts.len() - 2);
            let (a, b) = (pts[k], pts[k + 1]);
            let f = ((t - a.0) / (b.0 - a.0)).clamp(0.0, 1.0);
            let lerp = |x: u8, y: u8| (x as f32 + (y as f32 - x as f32) * f).round() as u8;
            *entry = [lerp(a.1, b.1), lerp(a.2, b.2), lerp(a.3, b.3), 255];
        }
        out
    }

    /// Colour of normalised value `t` in 0..=1.
    pub fn color(self, t: f32) -> [u8; 4] {
        self.table()[(t.clamp(0.0, 1.0) * 255.0).round() as usize]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_hit_their_end_points() {
        for c in Colormap::ALL {
            let t = c.table();
            let p = c.control_points();
            assert_eq!(&t[0][..3], &[p[0].1, p[0].2, p[0].3]);
            let l = p[p.len() - 1];
            assert_eq!(&t[255][..3], &[l.1, l.2, l.3]);
        }
        // Diverging is white at the centre.
        let mid = Colormap::Diverging.table()[128];
        assert!(mid[0] > 240 && mid[1] > 240 && mid[2] > 240);
    }

    #[test]
    fn window_normalise() {
        let w = WindowLevel {
            center: 40.0,
            width: 80.0,
        };
        assert_eq!(w.normalise(0.0), 0.0);
        assert_eq!(w.normalise(80.0), 1.0);
        assert!((w.normalise(40.0) - 0.5).abs() < 1e-6);
    }
}
