//! `--autoscroll N`: the frame-time benchmark. Half the frames repaint without moving (the
//! reference), half scroll one slice per frame; it prints both and the upload count, then quits.

use super::SynthScopeApp;
use std::time::Instant;

/// Frame-time statistics (ms) of the autoscroll benchmark.
#[derive(Clone, Debug, Default)]
pub struct FrameStats {
    /// Milliseconds between consecutive frames.
    pub frame_ms: Vec<f64>,
}

/// Mean, median and 95th percentile of `v`.
fn summary(v: &[f64]) -> (f64, f64, f64) {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    let mean = v.iter().sum::<f64>() / v.len().max(1) as f64;
    (
        mean,
        v.get(v.len() / 2).copied().unwrap_or(0.0),
        v.get((v.len() * 95 / 100).min(v.len().saturating_sub(1)))
            .copied()
            .unwrap_or(0.0),
    )
}

impl SynthScopeApp {
    /// One frame of the benchmark (called at the end of every frame).
    pub(super) fn autoscroll_step(&mut self, ctx: &egui::Context, now: Instant) {
        let Some((left, last, stats)) = &mut self.autoscroll else {
            return;
        };
        if self.load_job.is_some() || self.volumes.is_empty() {
            *last = now;
            ctx.request_repaint();
            return;
        }
        stats
            .frame_ms
            .push(now.duration_since(*last).as_secs_f64() * 1e3);
        *last = now;
        if *left == 0 {
            // First half: repaint without moving (reference); second half: one slice per frame.
            let all = &stats.frame_ms[1..];
            let half = all.len() / 2;
            let (sm, smed, sp95) = summary(&all[..half]);
            let (m, med, p95) = summary(&all[half..]);
            println!(
                "autoscroll: static repaint (reference): {half} frames, mean {sm:.2} ms, median {smed:.2} ms, p95 {sp95:.2} ms"
            );
            println!(
                "autoscroll: scrolling one slice/frame:  {} frames, mean {m:.2} ms, median {med:.2} ms, p95 {p95:.2} ms",
                all.len() - half
            );
            println!(
                "autoscroll: scrolling/static mean frame time ratio {:.2}; volume uploads {}",
                m / sm.max(1e-9),
                self.gpu_uploads()
            );
            self.autoscroll = None;
            ctx.send_viewport_cmd(egui::ViewportCommand::Close);
            return;
        }
        *left -= 1;
        let total = stats.frame_ms.len() + *left;
        if *left > total / 2 {
            ctx.request_repaint();
            return;
        }
        // Bounce through the volume so every frame shows a new slice.
        let left = *left;
        let (i, n) = self.slice_index().unwrap_or((0, 1));
        let dir = if (left / n.max(1)) % 2 == 0 { 1 } else { -1 };
        let dir = if i + 1 >= n {
            -1
        } else if i == 0 {
            1
        } else {
            dir
        };
        self.scroll(dir);
        ctx.request_repaint();
    }
}
