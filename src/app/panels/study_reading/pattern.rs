//! The grey-scale test pattern shown before a session (after SMPTE RP 133): eleven steps from
//! black to white in 10% steps, 5%-on-0% and 95%-on-100% squares (the first to vanish on a
//! display that clips its ends), and one-pixel line gratings. The reader checks that every step
//! and both squares are visible before reading.

/// Draw the pattern; true when the reader confirms it (button, Enter or Space).
pub fn test_pattern_ui(ui: &mut egui::Ui, ctx: &egui::Context) -> bool {
    let mut go = ctx.input(|i| i.key_pressed(egui::Key::Enter) || i.key_pressed(egui::Key::Space));
    egui::Panel::bottom("study-pattern-ok").show(ui, |ui| {
        ui.add_space(6.0);
        ui.vertical_centered(|ui| {
            ui.label("Display check: all 11 grey steps must differ, the small squares in the black and the white patch must be visible, and the line gratings must not look grey. If not, adjust the display (brightness, contrast, lighting) before reading.");
            if ui.button("The pattern looks right: start reading  [Enter]").clicked() {
                go = true;
            }
        });
        ui.add_space(6.0);
    });
    egui::CentralPanel::default()
        .frame(egui::Frame::new().fill(egui::Color32::from_gray(128)))
        .show(ui, |ui| {
            let rect = ui.available_rect_before_wrap();
            let p = ui.painter();
            let grey = |f: f32| egui::Color32::from_gray((f * 255.0).round() as u8);
            // Steps across the middle band.
            let band = egui::Rect::from_min_max(
                egui::pos2(
                    rect.left() + 0.05 * rect.width(),
                    rect.top() + 0.30 * rect.height(),
                ),
                egui::pos2(
                    rect.right() - 0.05 * rect.width(),
                    rect.top() + 0.55 * rect.height(),
                ),
            );
            let w = band.width() / 11.0;
            for i in 0..11 {
                let r = egui::Rect::from_min_size(
                    egui::pos2(band.left() + i as f32 * w, band.top()),
                    egui::vec2(w, band.height()),
                );
                p.rect_filled(r, 0.0, grey(i as f32 / 10.0));
            }
            // 5% in 0% and 95% in 100%.
            let side = 0.18 * rect.height();
            for (x, outer, inner) in [(0.15, 0.0, 0.05), (0.85, 1.0, 0.95)] {
                let c = egui::pos2(
                    rect.left() + x * rect.width(),
                    rect.top() + 0.15 * rect.height(),
                );
                p.rect_filled(
                    egui::Rect::from_center_size(c, egui::vec2(side, side)),
                    0.0,
                    grey(outer),
                );
                p.rect_filled(
                    egui::Rect::from_center_size(c, egui::vec2(side * 0.4, side * 0.4)),
                    0.0,
                    grey(inner),
                );
            }
            // One-pixel gratings, horizontal and vertical lines.
            let px = 1.0 / ctx.pixels_per_point();
            let g = egui::Rect::from_center_size(
                egui::pos2(rect.center().x, rect.top() + 0.75 * rect.height()),
                egui::vec2(0.3 * rect.width(), 0.18 * rect.height()),
            );
            p.rect_filled(g, 0.0, egui::Color32::BLACK);
            let half = g.width() / 2.0;
            let mut y = g.top();
            while y < g.bottom() {
                p.rect_filled(
                    egui::Rect::from_min_size(egui::pos2(g.left(), y), egui::vec2(half, px)),
                    0.0,
                    egui::Color32::WHITE,
                );
                y += 2.0 * px;
            }
            let mut x = g.left() + half;
            while x < g.right() {
                p.rect_filled(
                    egui::Rect::from_min_size(egui::pos2(x, g.top()), egui::vec2(px, g.height())),
                    0.0,
                    egui::Color32::WHITE,
                );
                x += 2.0 * px;
            }
        });
    go
}
