//! The views as PNG: File > Save views / window as PNG, and `--screenshot` at start-up. Both
//! read egui's real framebuffer and crop it to the panes.

use crate::app::SynthScopeApp;
use std::path::{Path, PathBuf};

/// Crop `image` to `rect` (physical pixels, clamped to the image) and write it as PNG.
pub fn save_png_crop(
    image: &egui::ColorImage,
    rect: [usize; 4],
    path: &Path,
) -> Result<(usize, usize), String> {
    let [w, h] = image.size;
    let (x0, y0) = (rect[0].min(w), rect[1].min(h));
    let (x1, y1) = ((rect[0] + rect[2]).min(w), (rect[1] + rect[3]).min(h));
    if x1 <= x0 || y1 <= y0 {
        return Err(format!(
            "{}: nothing to save (empty region)",
            path.display()
        ));
    }
    let mut buf = image::RgbaImage::new((x1 - x0) as u32, (y1 - y0) as u32);
    for y in y0..y1 {
        for x in x0..x1 {
            let c = image.pixels[y * w + x];
            buf.put_pixel(
                (x - x0) as u32,
                (y - y0) as u32,
                image::Rgba([c.r(), c.g(), c.b(), 255]),
            );
        }
    }
    crate::atomic::write_with(path, |w| {
        let mut png = Vec::new();
        buf.write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
            .map_err(std::io::Error::other)?;
        w.write_all(&png)
    })
    .map_err(|e| format!("{}: cannot write PNG: {}", path.display(), e.problem))?;
    Ok((x1 - x0, y1 - y0))
}

impl SynthScopeApp {
    /// Where the panes were drawn last frame, in physical pixels: [x, y, width, height].
    fn panes_px(&self, ctx: &egui::Context) -> [usize; 4] {
        let ppp = ctx.pixels_per_point();
        let r = self.viewer.panes_rect;
        [
            (r.min.x * ppp).round() as usize,
            (r.min.y * ppp).round() as usize,
            (r.width() * ppp).round() as usize,
            (r.height() * ppp).round() as usize,
        ]
    }

    /// Save the next frame as PNG: the three panes (`views`) or the whole window.
    pub fn save_screenshot(&mut self, path: &Path, views: bool) {
        let Some(ctx) = self.ctx.clone() else {
            return;
        };
        let rect = if views && self.viewer.panes_rect.is_positive() {
            self.panes_px(&ctx)
        } else {
            [0, 0, usize::MAX / 4, usize::MAX / 4]
        };
        let (msgs, path, c) = (self.async_messages.clone(), path.to_path_buf(), ctx.clone());
        ctx.request_screenshot(move |img| {
            let m = match save_png_crop(&img, rect, &path) {
                Ok((w, h)) => format!("Saved {} ({w} x {h} pixels)", path.display()),
                Err(e) => e,
            };
            if let Ok(mut v) = msgs.lock() {
                v.push(m);
            }
            c.request_repaint();
        });
        ctx.request_repaint();
    }

    /// `--screenshot`: once the data is shown (a few frames after loading), save the panes as
    /// PNG through the real framebuffer, print where, and quit (exit status 1 on failure).
    pub(in crate::app) fn screenshot_step(&mut self, ctx: &egui::Context) {
        let Some((path, frames)) = &mut self.screenshot_at_start else {
            return;
        };
        ctx.request_repaint();
        if self.load_job.is_some() || self.volumes.is_empty() {
            return;
        }
        *frames += 1;
        if *frames < 5 {
            return;
        }
        let path: PathBuf = path.clone();
        self.screenshot_at_start = None;
        // SYNTHSCOPE_SCREENSHOT_WINDOW=1: the whole window (menus, toolbar, dock), not the panes.
        let window = std::env::var_os("SYNTHSCOPE_SCREENSHOT_WINDOW").is_some();
        let rect = if window {
            [0, 0, usize::MAX / 4, usize::MAX / 4]
        } else {
            self.panes_px(ctx)
        };
        let c = ctx.clone();
        ctx.request_screenshot(move |img| match save_png_crop(&img, rect, &path) {
            Ok((w, h)) => {
                println!(
                    "screenshot: {} ({w} x {h} pixels, {})",
                    path.display(),
                    if window { "the window" } else { "the panes" }
                );
                c.send_viewport_cmd(egui::ViewportCommand::Close);
                c.request_repaint();
            }
            Err(e) => {
                eprintln!("error: {e}");
                std::process::exit(1);
            }
        });
    }
}
