//! View layouts, as in Slicer's layout menu: which panes the centre shows and where. Every
//! pane of every layout shares the crosshair and the zoom; panes of another orientation than
//! the views' own follow its pan too (see `panes`).

use super::view::Orientation;
use egui::{Rect, pos2, vec2};

/// What one pane shows.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize,
)]
pub enum PaneKind {
    /// The CT.
    #[default]
    Ct,
    /// The MR (through the registration, if any).
    Mr,
    /// CT against MR (or synthetic against real) as the compare mode says.
    Compare,
    /// The windowed difference of the two compared.
    Difference,
}

impl PaneKind {
    /// The panes a single-volume layout can show.
    pub const FOCUS: [PaneKind; 3] = [PaneKind::Ct, PaneKind::Mr, PaneKind::Compare];

    /// Menu name.
    pub fn name(self) -> &'static str {
        match self {
            PaneKind::Ct => "CT",
            PaneKind::Mr => "MR",
            PaneKind::Compare => "Compare",
            PaneKind::Difference => "Difference",
        }
    }
}

/// The arrangement of the panes.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize,
)]
pub enum Layout {
    /// CT, MR and the compared pair side by side, one orientation (key 1).
    #[default]
    ThreeVolumes,
    /// One volume in axial, coronal and sagittal, with the compared pair as a fourth pane
    /// (key 2).
    ThreeOrientations,
    /// One large pane (key 3).
    Single,
    /// CT, MR, the compared pair and their difference, two by two (key 4).
    Quad,
}

impl Layout {
    /// All layouts, in toolbar order.
    pub const ALL: [Layout; 4] = [
        Layout::ThreeVolumes,
        Layout::ThreeOrientations,
        Layout::Single,
        Layout::Quad,
    ];

    /// Short toolbar label.
    pub fn short(self) -> &'static str {
        match self {
            Layout::ThreeVolumes => "3 vol",
            Layout::ThreeOrientations => "3 planes",
            Layout::Single => "1 pane",
            Layout::Quad => "2×2",
        }
    }

    /// What it shows, for the tooltip and the menu.
    pub fn describe(self) -> &'static str {
        match self {
            Layout::ThreeVolumes => "CT, MR and the comparison side by side (1)",
            Layout::ThreeOrientations => {
                "One volume in axial, coronal and sagittal, and the comparison (2)"
            }
            Layout::Single => "One large pane (3)",
            Layout::Quad => "CT, MR, comparison and difference map, 2 × 2 (4)",
        }
    }

    /// Whether it shows one chosen volume (the focus).
    pub fn uses_focus(self) -> bool {
        matches!(self, Layout::ThreeOrientations | Layout::Single)
    }
}

/// One pane of a layout: what it shows, its orientation (None: the views' own) and where.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PaneSlot {
    /// What it shows.
    pub kind: PaneKind,
    /// Its orientation, when fixed by the layout.
    pub orientation: Option<Orientation>,
    /// Where (points).
    pub rect: Rect,
}

/// The panes of `layout` in `area`, `gap` points apart; `focus` is the volume of the
/// single-volume layouts.
pub fn arrange(layout: Layout, focus: PaneKind, area: Rect, gap: f32) -> Vec<PaneSlot> {
    let slot = |kind, orientation, rect| PaneSlot {
        kind,
        orientation,
        rect,
    };
    match layout {
        Layout::ThreeVolumes => {
            let w = ((area.width() - 2.0 * gap) / 3.0).max(10.0);
            [PaneKind::Ct, PaneKind::Mr, PaneKind::Compare]
                .into_iter()
                .enumerate()
                .map(|(k, kind)| {
                    let r = Rect::from_min_size(
                        pos2(area.min.x + k as f32 * (w + gap), area.min.y),
                        vec2(w, area.height()),
                    );
                    slot(kind, None, r)
                })
                .collect()
        }
        Layout::Single => vec![slot(focus, None, area)],
        Layout::ThreeOrientations | Layout::Quad => {
            let cells = grid2x2(area, gap);
            if layout == Layout::Quad {
                [
                    PaneKind::Ct,
                    PaneKind::Mr,
                    PaneKind::Compare,
                    PaneKind::Difference,
                ]
                .into_iter()
                .zip(cells)
                .map(|(k, r)| slot(k, None, r))
                .collect()
            } else {
                let mut v: Vec<PaneSlot> = Orientation::ALL
                    .into_iter()
                    .zip(cells)
                    .map(|(o, r)| slot(focus, Some(o), r))
                    .collect();
                let fourth = if focus == PaneKind::Compare {
                    PaneKind::Difference
                } else {
                    PaneKind::Compare
                };
                v.push(slot(fourth, None, cells[3]));
                v
            }
        }
    }
}

/// Four cells, two by two, in reading order.
fn grid2x2(area: Rect, gap: f32) -> [Rect; 4] {
    let w = ((area.width() - gap) / 2.0).max(10.0);
    let h = ((area.height() - gap) / 2.0).max(10.0);
    let cell = |i: usize, j: usize| {
        Rect::from_min_size(
            pos2(
                area.min.x + j as f32 * (w + gap),
                area.min.y + i as f32 * (h + gap),
            ),
            vec2(w, h),
        )
    };
    [cell(0, 0), cell(0, 1), cell(1, 0), cell(1, 1)]
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every layout's panes lie inside the area and none overlaps another.
    #[test]
    fn panes_tile_the_area_without_overlap() {
        let area = Rect::from_min_size(pos2(10.0, 20.0), vec2(1200.0, 600.0));
        for l in Layout::ALL {
            let panes = arrange(l, PaneKind::Mr, area, 4.0);
            let n = match l {
                Layout::ThreeVolumes => 3,
                Layout::Single => 1,
                _ => 4,
            };
            assert_eq!(panes.len(), n, "{l:?}");
            for (i, a) in panes.iter().enumerate() {
                assert!(area.expand(0.01).contains_rect(a.rect), "{l:?}");
                for b in &panes[i + 1..] {
                    assert!(
                        !a.rect.shrink(0.01).intersects(b.rect.shrink(0.01)),
                        "{l:?}"
                    );
                }
            }
        }
        let o = arrange(Layout::ThreeOrientations, PaneKind::Mr, area, 4.0);
        assert_eq!(
            o.iter().map(|p| p.orientation).collect::<Vec<_>>(),
            vec![
                Some(Orientation::Axial),
                Some(Orientation::Coronal),
                Some(Orientation::Sagittal),
                None
            ]
        );
        assert!(o[..3].iter().all(|p| p.kind == PaneKind::Mr));
    }
}
