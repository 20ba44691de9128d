//! The docked workspace: the views in the centre, the panels as tabs in a side dock (egui_tiles)
//! that can be resized, collapsed, rearranged (drag a tab onto another tab bar or the edge of a
//! tile to split the dock) and torn off into a floating window. The arrangement and the view
//! layout are saved with the app's settings and restored at start; View > Reset layout puts
//! back the first-start arrangement.
//!
//! A panel is open while its `show` flag is set (the flags the menus and the tests set): each
//! frame [`Workspace::sync`] docks a panel whose flag was just set (as the active tab) and takes
//! out one whose flag was cleared; closing its tab or window clears the flag.

use super::SynthScopeApp;
use super::viewer::layout::{Layout, PaneKind};
use egui_tiles::{
    Behavior, Container, SimplificationOptions, Tile, TileId, Tiles, Tree, UiResponse,
};
use std::collections::HashSet;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// A panel that lives in the dock.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum Panel {
    /// The loaded series and their roles.
    Browser,
    /// Registration of the MR to the CT.
    Registration,
    /// Synthesis with a checkpoint.
    Synthesis,
    /// Training runs.
    Training,
    /// Run folders and their curves.
    Runs,
    /// Grad-CAM of the synthesis network or the classifier.
    Gradcam,
    /// Feature maps of a layer.
    Features,
    /// Reader-study setup.
    StudySetup,
    /// Reader-study results.
    StudyResults,
    /// Adapter, self-test and frame times.
    Diagnostics,
    /// Experiments: a grid of runs, its tables, tests and report.
    Experiments,
    /// Ultrasound -> MR: a run's ultrasound, synthetic and real MR, and the attention heatmap.
    UsMr,
}

impl Panel {
    /// Every panel, in menu order.
    pub const ALL: [Panel; 12] = [
        Panel::Browser,
        Panel::Registration,
        Panel::Synthesis,
        Panel::Training,
        Panel::Runs,
        Panel::Gradcam,
        Panel::Features,
        Panel::StudySetup,
        Panel::StudyResults,
        Panel::Experiments,
        Panel::UsMr,
        Panel::Diagnostics,
    ];

    /// Its tab title.
    pub fn title(self) -> &'static str {
        match self {
            Panel::Browser => "Series browser",
            Panel::Registration => "Registration",
            Panel::Synthesis => "Synthesis",
            Panel::Training => "Training",
            Panel::Runs => "Runs",
            Panel::Gradcam => "Grad-CAM",
            Panel::Features => "Feature maps",
            Panel::StudySetup => "Study setup",
            Panel::StudyResults => "Study results",
            Panel::Diagnostics => "Diagnostics",
            Panel::Experiments => "Experiments",
            Panel::UsMr => "US -> MR",
        }
    }
}

/// The dock's default width (points).
const DOCK_WIDTH: f32 = 440.0;

/// What is saved with the settings.
#[derive(serde::Serialize, serde::Deserialize)]
struct Saved {
    /// The dock's tiles.
    tree: Tree<Panel>,
    /// Torn-off panels.
    floating: Vec<Panel>,
    collapsed: bool,
    width: f32,
    layout: Layout,
    focus: PaneKind,
}

/// The dock and its settings.
pub struct Workspace {
    /// The dock's tiles (panels only; the views are outside, in the centre).
    pub tree: Tree<Panel>,
    /// Panels torn off into floating windows.
    pub floating: Vec<Panel>,
    /// The dock is folded to a narrow strip.
    pub collapsed: bool,
    /// The dock's width (points).
    pub width: f32,
    /// The width to give the dock panel next frame (after a restore or a reset).
    set_width: Option<f32>,
    /// Panels open last frame.
    shown: HashSet<Panel>,
    /// Panels whose tab or window was closed this frame.
    closed: Vec<Panel>,
    /// Where the settings live (None: nothing is saved, e.g. in tests).
    settings: Option<PathBuf>,
    /// What was last written (or read) there.
    saved_json: String,
    last_check: Option<Instant>,
    /// Where the dock was drawn last frame (points), if shown.
    pub dock_rect: Option<egui::Rect>,
}

fn new_tree() -> Tree<Panel> {
    Tree::empty(egui::Id::unique("dock"))
}

impl Default for Workspace {
    fn default() -> Self {
        Self {
            tree: new_tree(),
            floating: Vec::new(),
            collapsed: false,
            width: DOCK_WIDTH,
            set_width: None,
            shown: HashSet::new(),
            closed: Vec::new(),
            settings: None,
            saved_json: String::new(),
            last_check: None,
            dock_rect: None,
        }
    }
}

/// The settings file: `$SYNTHSCOPE_SETTINGS`, else `$XDG_CONFIG_HOME/synthscope/workspace.json`,
/// else `~/.config/synthscope/workspace.json`.
pub fn settings_path() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("SYNTHSCOPE_SETTINGS") {
        return Some(PathBuf::from(p));
    }
    let base = std::env::var_os("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))?;
    Some(base.join("synthscope").join("workspace.json"))
}

impl Workspace {
    /// The tile holding `panel`, if docked.
    pub fn tile_of(&self, panel: Panel) -> Option<TileId> {
        self.tree.tiles.find_pane(&panel)
    }

    /// Whether `panel` is docked and its tab the active one (so its contents are drawn).
    pub fn is_visible(&self, panel: Panel) -> bool {
        self.tile_of(panel)
            .is_some_and(|t| self.tree.active_tiles().contains(&t))
            && !self.collapsed
    }

    /// Put `panel` in the dock as the active tab of its first tab group; a companion view
    /// (Runs beside Training, Study results beside Study setup) goes in a group of its own
    /// under its companion's, so both show at once.
    fn dock(&mut self, panel: Panel) {
        let companion = match panel {
            Panel::Runs => Some(Panel::Training),
            Panel::StudyResults => Some(Panel::StudySetup),
            _ => None,
        };
        if let Some(group) = companion
            .and_then(|c| self.tile_of(c))
            .and_then(|t| self.tree.tiles.parent_of(t))
        {
            self.dock_below(group, panel);
            return;
        }
        let tiles = &mut self.tree.tiles;
        let pane = tiles.insert_pane(panel);
        let Some(root) = self.tree.root else {
            self.tree.root = Some(tiles.insert_tab_tile(vec![pane]));
            return;
        };
        // The tab group with the smallest id: the first the dock had, as long as it lives.
        let mut groups: Vec<TileId> = tiles
            .iter()
            .filter(|(_, t)| matches!(t, Tile::Container(Container::Tabs(_))))
            .map(|(id, _)| *id)
            .collect();
        groups.sort_by_key(|id| id.0);
        match groups.first() {
            Some(g) => {
                if let Some(Tile::Container(Container::Tabs(tabs))) = tiles.get_mut(*g) {
                    tabs.add_child(pane);
                    tabs.set_active(pane);
                }
            }
            None => {
                let g = tiles.insert_tab_tile(vec![root, pane]);
                if let Some(Tile::Container(Container::Tabs(tabs))) = tiles.get_mut(g) {
                    tabs.set_active(pane);
                }
                self.tree.root = Some(g);
            }
        }
    }

    /// Put `panel` in a new tab group under the tile `group`.
    fn dock_below(&mut self, group: TileId, panel: Panel) {
        let tiles = &mut self.tree.tiles;
        let pane = tiles.insert_pane(panel);
        let tabs = tiles.insert_tab_tile(vec![pane]);
        match tiles.parent_of(group) {
            Some(parent) => {
                let vertical = matches!(
                    tiles.get(parent),
                    Some(Tile::Container(Container::Linear(l))) if l.dir == egui_tiles::LinearDir::Vertical
                );
                if vertical {
                    if let Some(Tile::Container(Container::Linear(l))) = tiles.get_mut(parent) {
                        let at = l
                            .children
                            .iter()
                            .position(|c| *c == group)
                            .map_or(0, |i| i + 1);
                        l.children.insert(at, tabs);
                    }
                } else {
                    let split = tiles.insert_vertical_tile(vec![group, tabs]);
                    if let Some(Tile::Container(c)) = tiles.get_mut(parent) {
                        let _ = c.replace_child(group, split);
                    }
                }
            }
            None => {
                self.tree.root = Some(tiles.insert_vertical_tile(vec![group, tabs]));
            }
        }
    }

    /// Make `panel`'s tab the active one of its group.
    fn activate(&mut self, panel: Panel) {
        self.tree
            .make_active(|_, t| matches!(t, Tile::Pane(p) if *p == panel));
    }

    /// Take `panel` out of the dock.
    fn undock(&mut self, panel: Panel) {
        if let Some(t) = self.tile_of(panel) {
            let _ = self.tree.remove_recursively(t);
        }
    }

    /// Dock or take out panels as their `open` flags say (see the module notes).
    pub fn sync(&mut self, open: &[(Panel, bool)]) {
        for &(p, want) in open {
            let docked = self.tile_of(p).is_some();
            let floating = self.floating.contains(&p);
            let was = self.shown.contains(&p);
            if want {
                if !docked && !floating {
                    self.dock(p);
                    self.collapsed = false;
                } else if !was && docked {
                    self.activate(p);
                    self.collapsed = false;
                }
                self.shown.insert(p);
            } else {
                if docked {
                    self.undock(p);
                }
                self.floating.retain(|f| *f != p);
                self.shown.remove(&p);
            }
        }
    }

    /// Panels closed (tab or window) this frame, whose flags the app clears.
    pub fn take_closed(&mut self) -> Vec<Panel> {
        std::mem::take(&mut self.closed)
    }

    /// Whether the dock has any panel.
    pub fn has_panels(&self) -> bool {
        self.tree.tiles.tiles().any(|t| matches!(t, Tile::Pane(_)))
    }

    /// Back to the first-start arrangement: open panels in one tab group, the dock expanded at
    /// its default width, the three-volume layout.
    pub fn reset(&mut self, open: &[(Panel, bool)]) {
        self.tree = new_tree();
        self.floating.clear();
        self.collapsed = false;
        self.width = DOCK_WIDTH;
        self.set_width = Some(DOCK_WIDTH);
        self.shown.clear();
        self.sync(open);
    }

    /// Tear `panel` off into a floating window.
    fn float(&mut self, panel: Panel) {
        self.undock(panel);
        if !self.floating.contains(&panel) {
            self.floating.push(panel);
        }
    }

    /// Put a floating `panel` back in the dock.
    fn redock(&mut self, panel: Panel) {
        self.floating.retain(|f| *f != panel);
        self.dock(panel);
        self.collapsed = false;
    }
}

/// The dock's egui_tiles behaviour: panels drawn by the app, closable tabs, and a tear-off and a
/// collapse button on each tab bar.
struct DockBehavior<'a> {
    app: &'a mut SynthScopeApp,
    closed: Vec<Panel>,
    float: Option<Panel>,
    collapse: bool,
}

impl Behavior<Panel> for DockBehavior<'_> {
    fn pane_ui(&mut self, ui: &mut egui::Ui, _tile: TileId, panel: &mut Panel) -> UiResponse {
        let p = *panel;
        egui::Frame::new()
            .inner_margin(egui::Margin::same(6))
            .show(ui, |ui| {
                egui::ScrollArea::both()
                    .id_salt(("dock-panel", p))
                    .auto_shrink([false, false])
                    .show(ui, |ui| self.app.panel_ui(ui, p));
            });
        UiResponse::None
    }

    fn tab_title_for_pane(&mut self, panel: &Panel) -> egui::WidgetText {
        panel.title().into()
    }

    fn is_tab_closable(&self, _tiles: &Tiles<Panel>, _tile: TileId) -> bool {
        true
    }

    fn on_tab_close(&mut self, tiles: &mut Tiles<Panel>, tile: TileId) -> bool {
        if let Some(Tile::Pane(p)) = tiles.get(tile) {
            self.closed.push(*p);
        }
        true
    }

    fn top_bar_right_ui(
        &mut self,
        tiles: &Tiles<Panel>,
        ui: &mut egui::Ui,
        _tile: TileId,
        tabs: &egui_tiles::Tabs,
        _scroll: &mut f32,
    ) {
        if ui
            .small_button("«")
            .on_hover_text("Fold the dock (d)")
            .clicked()
        {
            self.collapse = true;
        }
        if let Some(Tile::Pane(p)) = tabs.active.and_then(|a| tiles.get(a))
            && ui
                .small_button("Float")
                .on_hover_text(format!("Tear {} off into its own window", p.title()))
                .clicked()
        {
            self.float = Some(*p);
        }
    }

    fn simplification_options(&self) -> SimplificationOptions {
        SimplificationOptions {
            all_panes_must_have_tabs: true,
            ..SimplificationOptions::default()
        }
    }

    fn min_size(&self) -> f32 {
        80.0
    }
}

impl SynthScopeApp {
    /// The open flag of each panel.
    pub(crate) fn panel_flags(&self) -> Vec<(Panel, bool)> {
        Panel::ALL
            .iter()
            .map(|&p| (p, *self.panel_flag(p)))
            .collect()
    }

    fn panel_flag(&self, p: Panel) -> &bool {
        match p {
            Panel::Browser => &self.show_browser,
            Panel::Registration => &self.registration.show,
            Panel::Synthesis => &self.synthesis.show,
            Panel::Training => &self.training.show,
            Panel::Runs => &self.training.show_runs,
            Panel::Gradcam => &self.gradcam.show,
            Panel::Features => &self.features.show,
            Panel::StudySetup => &self.study.show_setup,
            Panel::StudyResults => &self.study.show_results,
            Panel::Diagnostics => &self.diagnostics.show,
            Panel::Experiments => &self.experiments.show,
            Panel::UsMr => &self.usmr.show,
        }
    }

    /// The open flag of panel `p`, to change.
    pub fn panel_flag_mut(&mut self, p: Panel) -> &mut bool {
        match p {
            Panel::Browser => &mut self.show_browser,
            Panel::Registration => &mut self.registration.show,
            Panel::Synthesis => &mut self.synthesis.show,
            Panel::Training => &mut self.training.show,
            Panel::Runs => &mut self.training.show_runs,
            Panel::Gradcam => &mut self.gradcam.show,
            Panel::Features => &mut self.features.show,
            Panel::StudySetup => &mut self.study.show_setup,
            Panel::StudyResults => &mut self.study.show_results,
            Panel::Diagnostics => &mut self.diagnostics.show,
            Panel::Experiments => &mut self.experiments.show,
            Panel::UsMr => &mut self.usmr.show,
        }
    }

    /// The contents of panel `p`.
    pub(crate) fn panel_ui(&mut self, ui: &mut egui::Ui, p: Panel) {
        use super::panels::Cx;
        let mut cx = Cx {
            volumes: &self.volumes,
            pair: &self.pair,
            model: &self.model,
            commands: &mut self.commands,
        };
        match p {
            Panel::Browser => super::panels::browser::browser_ui(ui, &mut cx, &mut self.pacs.local),
            Panel::Registration => self.registration.ui(ui, &mut cx, &mut self.viewer),
            Panel::Synthesis => self.synthesis.ui(ui, &mut cx, &mut self.viewer),
            Panel::Training => self.training.ui(ui, cx.commands),
            Panel::Runs => self.training.runs_ui(ui, cx.commands),
            Panel::Gradcam => self.gradcam.ui(ui, &mut cx),
            Panel::Features => self.features.ui(ui, &mut cx),
            Panel::StudySetup => self.study.setup_ui(ui, cx.commands),
            Panel::StudyResults => self.study.results_ui(ui, cx.commands),
            Panel::Diagnostics => self.diagnostics.ui(ui),
            Panel::Experiments => self.experiments.ui(ui),
            Panel::UsMr => self.usmr.ui(ui),
        }
    }

    /// The dock (left of the views) and the torn-off panels' windows. Call before the central
    /// panel.
    pub(crate) fn dock_ui(&mut self, ui: &mut egui::Ui) {
        let flags = self.panel_flags();
        self.workspace.sync(&flags);
        self.workspace.dock_rect = None;
        if self.workspace.has_panels() {
            if self.workspace.collapsed {
                let r = egui::Panel::left("dock-folded")
                    .resizable(false)
                    .exact_size(26.0)
                    .show(ui, |ui| {
                        if ui
                            .small_button("»")
                            .on_hover_text("Unfold the dock (d)")
                            .clicked()
                        {
                            self.workspace.collapsed = false;
                        }
                        for p in Panel::ALL {
                            if self.workspace.tile_of(p).is_some() {
                                let initial: String = p.title().chars().take(2).collect();
                                if ui.small_button(initial).on_hover_text(p.title()).clicked() {
                                    self.workspace.collapsed = false;
                                    self.workspace.activate(p);
                                }
                            }
                        }
                    });
                self.workspace.dock_rect = Some(r.response.rect);
            } else {
                let mut panel = egui::Panel::left("dock")
                    .resizable(true)
                    .size_range(240.0..=1000.0)
                    .default_size(self.workspace.width)
                    .frame(egui::Frame::side_top_panel(ui.style()).inner_margin(0));
                if let Some(w) = self.workspace.set_width.take() {
                    panel = panel.exact_size(w);
                }
                let mut tree = std::mem::replace(&mut self.workspace.tree, new_tree());
                let mut b = DockBehavior {
                    app: self,
                    closed: Vec::new(),
                    float: None,
                    collapse: false,
                };
                let r = panel.show(ui, |ui| tree.ui(&mut b, ui));
                let (closed, float, collapse) = (b.closed, b.float, b.collapse);
                self.workspace.tree = tree;
                self.workspace.dock_rect = Some(r.response.rect);
                self.workspace.width = r.response.rect.width();
                self.workspace.closed.extend(closed);
                if let Some(p) = float {
                    self.workspace.float(p);
                }
                if collapse {
                    self.workspace.collapsed = true;
                }
            }
        }
        // Torn-off panels.
        let ctx = ui.ctx().clone();
        for p in self.workspace.floating.clone() {
            let mut open = true;
            let mut redock = false;
            egui::Window::new(p.title())
                .id(egui::Id::unique(("floating-panel", p)))
                .open(&mut open)
                .default_width(420.0)
                .vscroll(true)
                .show(&ctx, |ui| {
                    if ui
                        .small_button("Dock")
                        .on_hover_text("Put it back in the dock")
                        .clicked()
                    {
                        redock = true;
                    }
                    self.panel_ui(ui, p);
                });
            if !open {
                self.workspace.closed.push(p);
            } else if redock {
                self.workspace.redock(p);
            }
        }
        for p in self.workspace.take_closed() {
            *self.panel_flag_mut(p) = false;
            self.workspace.floating.retain(|f| *f != p);
        }
    }

    /// Read the arrangement from the settings file (`run` does, tests do not), and save it there
    /// whenever it changes.
    pub fn use_settings(&mut self, path: Option<PathBuf>) {
        self.workspace.settings = path.clone();
        let Some(path) = path else { return };
        let Ok(text) = std::fs::read_to_string(&path) else {
            return;
        };
        match serde_json::from_str::<Saved>(&text) {
            Ok(s) => {
                self.workspace.tree = s.tree;
                self.workspace.floating = s.floating;
                self.workspace.collapsed = s.collapsed;
                self.workspace.width = s.width.clamp(240.0, 1000.0);
                self.workspace.set_width = Some(self.workspace.width);
                self.viewer.layout = s.layout;
                self.viewer.focus = s.focus;
                // The panels it held are open again.
                for p in Panel::ALL {
                    let open =
                        self.workspace.tile_of(p).is_some() || self.workspace.floating.contains(&p);
                    *self.panel_flag_mut(p) = open;
                    if open {
                        self.workspace.shown.insert(p);
                    }
                }
                self.workspace.saved_json = text;
            }
            Err(e) => self.errors.push(format!(
                "{}: the saved layout could not be read ({e}); the default is used",
                path.display()
            )),
        }
    }

    fn settings_json(&self) -> Option<String> {
        let w = &self.workspace;
        let saved = SavedRef {
            tree: &w.tree,
            floating: &w.floating,
            collapsed: w.collapsed,
            width: w.width,
            layout: self.viewer.layout,
            focus: self.viewer.focus,
        };
        serde_json::to_string_pretty(&saved).ok()
    }

    /// Save the arrangement if it changed (looked at once a second, and at exit).
    pub(crate) fn save_settings(&mut self, now: Option<Instant>) {
        if self.workspace.settings.is_none() {
            return;
        }
        if let Some(now) = now {
            if self
                .workspace
                .last_check
                .is_some_and(|t| now.duration_since(t) < Duration::from_secs(1))
            {
                return;
            }
            self.workspace.last_check = Some(now);
        }
        let Some(json) = self.settings_json() else {
            return;
        };
        if json == self.workspace.saved_json {
            return;
        }
        let Some(path) = self.workspace.settings.clone() else {
            return;
        };
        if let Some(dir) = path.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        match crate::io::atomic::write(&path, json.as_bytes()) {
            Ok(()) => self.workspace.saved_json = json,
            Err(e) => {
                // Said once: the next try compares against what failed.
                self.workspace.saved_json = json;
                self.errors.push(format!("Saving the layout: {e}"));
            }
        }
    }

    /// View > Reset layout.
    pub fn reset_layout(&mut self) {
        let flags = self.panel_flags();
        self.workspace.reset(&flags);
        self.viewer.layout = Layout::default();
        self.viewer.focus = PaneKind::default();
    }
}

/// [`Saved`] borrowed, for writing.
#[derive(serde::Serialize)]
struct SavedRef<'a> {
    tree: &'a Tree<Panel>,
    floating: &'a [Panel],
    collapsed: bool,
    width: f32,
    layout: Layout,
    focus: PaneKind,
}
