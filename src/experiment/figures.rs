//! The report's figures, drawn here: line plots, grey-scale and diverging slice images, colour
//! bars, zoomed insets and filter grids, encoded as PNG.

use image::{Rgb, RgbImage};

/// A 3 x 5 pixel font for tick labels: digits, '.', '-', 'e', '+'.
fn glyph(c: char) -> [u8; 5] {
    match c {
        '0' => [7, 5, 5, 5, 7],
        '1' => [2, 6, 2, 2, 7],
        '2' => [7, 1, 7, 4, 7],
        '3' => [7, 1, 7, 1, 7],
        '4' => [5, 5, 7, 1, 1],
        '5' => [7, 4, 7, 1, 7],
        '6' => [7, 4, 7, 5, 7],
        '7' => [7, 1, 1, 1, 1],
        '8' => [7, 5, 7, 5, 7],
        '9' => [7, 5, 7, 1, 7],
        '.' => [0, 0, 0, 0, 2],
        '-' => [0, 0, 7, 0, 0],
        '+' => [0, 2, 7, 2, 0],
        'e' => [0, 7, 7, 4, 7],
        _ => [0; 5],
    }
}

/// Draw `text` at (x, y) with pixel size `s`.
pub fn text(img: &mut RgbImage, x: i64, y: i64, s: i64, t: &str, colour: [u8; 3]) {
    for (i, c) in t.chars().enumerate() {
        let g = glyph(c);
        for (row, bits) in g.iter().enumerate() {
            for col in 0..3 {
                if bits >> (2 - col) & 1 == 1 {
                    for dy in 0..s {
                        for dx in 0..s {
                            put(
                                img,
                                x + (i as i64 * 4 + col) * s + dx,
                                y + row as i64 * s + dy,
                                colour,
                            );
                        }
                    }
                }
            }
        }
    }
}

fn put(img: &mut RgbImage, x: i64, y: i64, c: [u8; 3]) {
    if x >= 0 && y >= 0 && (x as u32) < img.width() && (y as u32) < img.height() {
        img.put_pixel(x as u32, y as u32, Rgb(c));
    }
}

fn line(img: &mut RgbImage, (x0, y0): (f64, f64), (x1, y1): (f64, f64), c: [u8; 3], width: i64) {
    let n = ((x1 - x0).abs().max((y1 - y0).abs()).ceil() as usize).max(1);
    for i in 0..=n {
        let t = i as f64 / n as f64;
        let (x, y) = (x0 + (x1 - x0) * t, y0 + (y1 - y0) * t);
        for d in 0..width {
            put(img, x.round() as i64, y.round() as i64 + d - width / 2, c);
        }
    }
}

/// A short number for a tick label.
pub fn fmt_tick(v: f64) -> String {
    if v == 0.0 {
        "0".into()
    } else if v.fract() == 0.0 && v.abs() < 1000.0 {
        format!("{v:.0}")
    } else if v.abs() >= 1000.0 || v.abs() < 0.01 {
        format!("{v:.1e}")
    } else if v.abs() >= 10.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.3}")
    }
}

/// A plotted series: (points, colour, dashed).
pub type Series = (Vec<(f64, f64)>, [u8; 3], bool);

/// Line plot of `series` (points, colour, dashed) in a w x h image with a frame, y ticks at the
/// bottom and top of the range, and x ticks at its ends.
pub fn line_plot(series: &[Series], w: u32, h: u32) -> RgbImage {
    let mut img = RgbImage::from_pixel(w, h, Rgb([255, 255, 255]));
    let pts = series
        .iter()
        .flat_map(|s| s.0.iter())
        .filter(|p| p.1.is_finite());
    let (mut x0, mut x1, mut y0, mut y1) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
    for &(x, y) in pts {
        x0 = x0.min(x);
        x1 = x1.max(x);
        y0 = y0.min(y);
        y1 = y1.max(y);
    }
    if x0 > x1 {
        return img;
    }
    if x1 - x0 < 1e-12 {
        x1 = x0 + 1.0;
    }
    let pad = ((y1 - y0) * 0.05).max(1e-9);
    // A range of non-negative values (losses) does not dip below zero.
    let (y0, y1) = (
        if y0 >= 0.0 {
            (y0 - pad).max(0.0)
        } else {
            y0 - pad
        },
        y1 + pad,
    );
    let (l, r, t, b) = (50.0, w as f64 - 10.0, 10.0, h as f64 - 22.0);
    let grey = [200, 200, 200];
    for i in 0..=4 {
        let y = t + (b - t) * i as f64 / 4.0;
        line(&mut img, (l, y), (r, y), grey, 1);
    }
    for (a, c) in [
        ((l, t), (l, b)),
        ((l, b), (r, b)),
        ((r, t), (r, b)),
        ((l, t), (r, t)),
    ] {
        line(&mut img, a, c, [0, 0, 0], 1);
    }
    let fx = |x: f64| l + (r - l) * (x - x0) / (x1 - x0);
    let fy = |y: f64| b - (b - t) * (y - y0) / (y1 - y0);
    text(&mut img, 2, t as i64, 2, &fmt_tick(y1), [0, 0, 0]);
    text(&mut img, 2, b as i64 - 10, 2, &fmt_tick(y0), [0, 0, 0]);
    text(
        &mut img,
        l as i64,
        b as i64 + 6,
        2,
        &fmt_tick(x0),
        [0, 0, 0],
    );
    text(
        &mut img,
        r as i64 - 20,
        b as i64 + 6,
        2,
        &fmt_tick(x1),
        [0, 0, 0],
    );
    for (p, c, dashed) in series {
        for (i, wnd) in p.windows(2).enumerate() {
            if *dashed && i % 2 == 1 && p.len() > 6 {
                continue;
            }
            let (a, bb) = (wnd[0], wnd[1]);
            if a.1.is_finite() && bb.1.is_finite() {
                let (ax, ay, bx, by) = (fx(a.0), fy(a.1), fx(bb.0), fy(bb.1));
                if *dashed {
                    // Dashes: every other tenth of the segment.
                    for k in (0..10).step_by(2) {
                        let (s, e) = (k as f64 / 10.0, (k + 1) as f64 / 10.0);
                        line(
                            &mut img,
                            (ax + (bx - ax) * s, ay + (by - ay) * s),
                            (ax + (bx - ax) * e, ay + (by - ay) * e),
                            *c,
                            2,
                        );
                    }
                } else {
                    line(&mut img, (ax, ay), (bx, by), *c, 2);
                }
            }
        }
        for &(x, y) in p {
            if y.is_finite() {
                for dy in -2..=2 {
                    for dx in -2..=2 {
                        put(
                            &mut img,
                            fx(x).round() as i64 + dx,
                            fy(y).round() as i64 + dy,
                            *c,
                        );
                    }
                }
            }
        }
    }
    img
}

/// A slice (row-major nx x ny) in grey, `lo` black to `hi` white.
pub fn grey(slice: &[f32], nx: usize, ny: usize, lo: f32, hi: f32) -> RgbImage {
    RgbImage::from_fn(nx as u32, ny as u32, |x, y| {
        let v = slice[x as usize + nx * y as usize];
        let g = (((v - lo) / (hi - lo)).clamp(0.0, 1.0) * 255.0).round() as u8;
        Rgb([g, g, g])
    })
}

/// Blue (negative) - white - red (positive) for t in -1..1.
pub fn diverging_colour(t: f32) -> [u8; 3] {
    let t = t.clamp(-1.0, 1.0);
    let f = |a: f32| (a * 255.0).round() as u8;
    if t >= 0.0 {
        [255, f(1.0 - t), f(1.0 - t)]
    } else {
        [f(1.0 + t), f(1.0 + t), 255]
    }
}

/// A signed slice coloured by [`diverging_colour`], +-`limit`.
pub fn diverging(slice: &[f32], nx: usize, ny: usize, limit: f32) -> RgbImage {
    RgbImage::from_fn(nx as u32, ny as u32, |x, y| {
        Rgb(diverging_colour(
            slice[x as usize + nx * y as usize] / limit,
        ))
    })
}

/// A vertical colour bar for [`diverging`] of height `h`, labelled +limit, 0, -limit.
pub fn colour_bar(limit: f32, h: u32) -> RgbImage {
    let w = 70;
    let mut img = RgbImage::from_pixel(w, h, Rgb([255, 255, 255]));
    for y in 0..h {
        let t = 1.0 - 2.0 * y as f32 / (h - 1).max(1) as f32;
        for x in 0..16 {
            img.put_pixel(x, y, Rgb(diverging_colour(t)));
        }
    }
    let lbl = |v: f32| format!("{v:+.0}");
    text(&mut img, 20, 0, 2, &lbl(limit), [0, 0, 0]);
    text(&mut img, 20, h as i64 / 2 - 5, 2, "0", [0, 0, 0]);
    text(&mut img, 20, h as i64 - 11, 2, &lbl(-limit), [0, 0, 0]);
    img
}

/// Scale an image by an integer factor (nearest neighbour).
pub fn scale(img: &RgbImage, f: u32) -> RgbImage {
    RgbImage::from_fn(img.width() * f, img.height() * f, |x, y| {
        *img.get_pixel(x / f, y / f)
    })
}

/// The region (x, y, w, h) of `img`, enlarged `f` times.
pub fn zoom(img: &RgbImage, (x0, y0, w, h): (u32, u32, u32, u32), f: u32) -> RgbImage {
    let crop = RgbImage::from_fn(w, h, |x, y| {
        let (sx, sy) = (
            (x0 + x).min(img.width() - 1),
            (y0 + y).min(img.height() - 1),
        );
        *img.get_pixel(sx, sy)
    });
    scale(&crop, f)
}

/// Draw the outline of a rectangle.
pub fn outline(img: &mut RgbImage, (x0, y0, w, h): (u32, u32, u32, u32), c: [u8; 3]) {
    let (x0, y0, x1, y1) = (x0 as f64, y0 as f64, (x0 + w) as f64, (y0 + h) as f64);
    for (a, b) in [
        ((x0, y0), (x1, y0)),
        ((x1, y0), (x1, y1)),
        ((x1, y1), (x0, y1)),
        ((x0, y1), (x0, y0)),
    ] {
        line(img, a, b, c, 1);
    }
}

/// Images side by side, top-aligned, `gap` white pixels apart.
pub fn hstack(images: &[RgbImage], gap: u32) -> RgbImage {
    let w =
        images.iter().map(|i| i.width()).sum::<u32>() + gap * images.len().saturating_sub(1) as u32;
    let h = images.iter().map(|i| i.height()).max().unwrap_or(1);
    let mut out = RgbImage::from_pixel(w.max(1), h, Rgb([255, 255, 255]));
    let mut x0 = 0;
    for im in images {
        image::imageops::replace(&mut out, im, x0 as i64, 0);
        x0 += im.width() + gap;
    }
    out
}

/// First-layer filters (k x k each) in a grid, each scaled to its own +-max, `s` pixels a tap.
pub fn filter_grid(filters: &[Vec<f32>], k: usize, s: u32) -> RgbImage {
    let cols = (filters.len() as f64).sqrt().ceil().max(1.0) as usize;
    let rows = filters.len().div_ceil(cols).max(1);
    let cell = k as u32 * s + 4;
    let mut out =
        RgbImage::from_pixel(cols as u32 * cell, rows as u32 * cell, Rgb([255, 255, 255]));
    for (i, f) in filters.iter().enumerate() {
        let m = f.iter().fold(1e-12f32, |a, v| a.max(v.abs()));
        let img = scale(&diverging(f, k, k, m), s);
        image::imageops::replace(
            &mut out,
            &img,
            ((i % cols) as u32 * cell + 2) as i64,
            ((i / cols) as u32 * cell + 2) as i64,
        );
    }
    out
}

/// Feature maps (`w` x `h` each) in rows of `cols`, each grey from its own minimum to its
/// maximum, `s` pixels a value.
pub fn feature_grid(maps: &[Vec<f32>], w: usize, h: usize, cols: usize, s: u32) -> RgbImage {
    let cols = cols.max(1);
    let rows: Vec<RgbImage> = maps
        .chunks(cols)
        .map(|row| {
            let imgs: Vec<RgbImage> = row
                .iter()
                .map(|m| {
                    let lo = m.iter().cloned().fold(f32::INFINITY, f32::min);
                    let hi = m.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
                    let hi = if hi > lo { hi } else { lo + 1.0 };
                    scale(&grey(m, w, h, lo, hi), s)
                })
                .collect();
            hstack(&imgs, 4)
        })
        .collect();
    vstack(&rows, 4)
}

/// Images one under another, left-aligned, `gap` white pixels apart.
pub fn vstack(images: &[RgbImage], gap: u32) -> RgbImage {
    let h = images.iter().map(|i| i.height()).sum::<u32>()
        + gap * images.len().saturating_sub(1) as u32;
    let w = images.iter().map(|i| i.width()).max().unwrap_or(1);
    let mut out = RgbImage::from_pixel(w, h.max(1), Rgb([255, 255, 255]));
    let mut y0 = 0;
    for im in images {
        image::imageops::replace(&mut out, im, 0, y0 as i64);
        y0 += im.height() + gap;
    }
    out
}

/// PNG bytes of an image.
pub fn png(img: &RgbImage) -> Vec<u8> {
    let mut bytes = Vec::new();
    let _ = img.write_to(
        &mut std::io::Cursor::new(&mut bytes),
        image::ImageFormat::Png,
    );
    bytes
}

/// Base64 (standard alphabet, padded), for data: URLs.
pub fn base64(bytes: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut s = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for c in bytes.chunks(3) {
        let n = (c[0] as u32) << 16
            | (*c.get(1).unwrap_or(&0) as u32) << 8
            | *c.get(2).unwrap_or(&0) as u32;
        s.push(A[(n >> 18) as usize & 63] as char);
        s.push(A[(n >> 12) as usize & 63] as char);
        s.push(if c.len() > 1 {
            A[(n >> 6) as usize & 63] as char
        } else {
            '='
        });
        s.push(if c.len() > 2 {
            A[n as usize & 63] as char
        } else {
            '='
        });
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_known_answers() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foobar"), "Zm9vYmFy");
    }
}
