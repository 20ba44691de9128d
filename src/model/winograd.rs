//! 3x3 "same", stride 1 convolution by Winograd's minimal filtering F(2x2, 3x3) (Lavin & Gray,
//! "Fast Algorithms for Convolutional Neural Networks", 2016), for the CPU compute device.
//!
//! Each 2x2 block of output pixels is computed from a 4x4 block of input as
//! `Y = A^T [ (G g G^T) * (B^T d B) ] A`: the products of the 16 transformed positions are, over
//! all tiles, 16 matrix products (output channels x input channels) x (input channels x tiles),
//! 16 multiplications per 2x2 block instead of 36, so 2.25x fewer flops than the im2col form of
//! [`super::cpu_conv`] where the channel counts make the matrix products dominate the
//! transforms (see [`worthwhile`]). The transforms of F(2x2, 3x3) hold only 0, +-1 and 1/2:
//! the result matches the direct sum to float rounding (tested to 1e-5 relative).
//!
//! Work is split into chunks of tile rows of one image, sized so a chunk's transformed input
//! and products stay within a core's L2, in parallel.

use rayon::prelude::*;

/// True when F(2x2, 3x3) beats the im2col kernel here: both channel counts at least 32 (below
/// that the transforms, memory passes, cost more than the multiplications saved) and planes of
/// at least 8 x 8.
pub fn worthwhile(ci: usize, co: usize, h: usize, w: usize) -> bool {
    ci >= 32 && co >= 32 && h >= 8 && w >= 8
}

/// x [b, ci, h, w], wt [co, ci, 3, 3], bias [co] -> [b, co, h, w], padding 1.
pub fn conv3x3(
    x: &[f32],
    wt: &[f32],
    bias: Option<&[f32]>,
    [b, ci, co, h, w]: [usize; 5],
) -> Vec<f32> {
    assert_eq!(x.len(), b * ci * h * w, "winograd: input size");
    assert_eq!(wt.len(), co * ci * 9, "winograd: weight size");
    let u = filter_transform(wt, co, ci);
    let (th, tw) = (h.div_ceil(2), w.div_ceil(2));
    let (total, rows, chunks) = chunking(ci, b, th, tw);
    let hw = h * w;
    let mut out = vec![0f32; b * co * hw];
    let out_ptr = super::cpu_conv::OutPtr::new(out.as_mut_ptr());
    (0..chunks).into_par_iter().for_each(|chunk| {
        let (n, segments) = segments(chunk, rows, total, th, tw);
        let mut v = vec![0f32; 16 * ci * n];
        for &(bi, tr0, tr1, t_off) in &segments {
            let image = &x[bi * ci * hw..(bi + 1) * ci * hw];
            input_transform(image, [ci, h, w], [tr0, tr1, tw], &mut v, n, t_off);
        }
        let mut m = vec![0f32; 16 * co * n];
        // M_k (co x n) = U_k (co x ci) @ V_k (ci x n).
        products(&mut m, &u, &v, [co, n, ci], false);
        for &(bi, tr0, tr1, t_off) in &segments {
            // Output rows 2*tr0 .. 2*tr1 (cut at h) of image bi, channel o: this chunk's alone.
            let (y0, y1) = (2 * tr0, (2 * tr1).min(h));
            // SAFETY: the rows lie inside channel o of image bi; chunks have disjoint tile
            // rows, so no two tasks make slices that overlap, and each slice is made once.
            let dst = |o: usize| unsafe {
                std::slice::from_raw_parts_mut(
                    out_ptr.at(bi * co * hw + o * hw + y0 * w),
                    (y1 - y0) * w,
                )
            };
            output_transform(&m, [co, n, t_off], [tr0, tr1, tw], [h, w], bias, dst);
        }
    });
    out
}

/// The weight gradient of [`conv3x3`], dw [co, ci, 3, 3], from its input x [b, ci, h, w] and
/// output gradient dy [b, co, h, w], by the same tiling. With `V_t = B^T d_t B` the forward's
/// transformed input tile and `y_t = A^T [(G g G^T) * V_t] A`, the adjoint of each step gives
/// `dw = G^T [ sum over tiles of (A dy_t A^T) * V_t ] G`: 16 matrix products of
/// (output channels x tiles) by (tiles x input channels), summed per chunk, the partial sums
/// added in chunk order (the same bits every run), then one 4x4 -> 3x3 transform per pair.
pub fn weight_grad(x: &[f32], dy: &[f32], [b, ci, co, h, w]: [usize; 5]) -> Vec<f32> {
    assert_eq!(x.len(), b * ci * h * w, "winograd: input size");
    assert_eq!(dy.len(), b * co * h * w, "winograd: gradient size");
    let (th, tw) = (h.div_ceil(2), w.div_ceil(2));
    let (total, rows, chunks) = chunking(ci.max(co), b, th, tw);
    let hw = h * w;
    let partials: Vec<Vec<f32>> = (0..chunks)
        .into_par_iter()
        .map(|chunk| {
            let (n, segments) = segments(chunk, rows, total, th, tw);
            let mut v = vec![0f32; 16 * ci * n];
            let mut e = vec![0f32; 16 * co * n];
            for &(bi, tr0, tr1, t_off) in &segments {
                let image = &x[bi * ci * hw..(bi + 1) * ci * hw];
                input_transform(image, [ci, h, w], [tr0, tr1, tw], &mut v, n, t_off);
                let grad = &dy[bi * co * hw..(bi + 1) * co * hw];
                gradient_transform(grad, [co, h, w], [tr0, tr1, tw], &mut e, n, t_off);
            }
            let mut m = vec![0f32; 16 * co * ci];
            // M_k (co x ci) = E_k (co x n) @ V_k^T (n x ci).
            products(&mut m, &e, &v, [co, ci, n], true);
            m
        })
        .collect();
    let mut sum = vec![0f32; 16 * co * ci];
    for p in &partials {
        sum.iter_mut().zip(p).for_each(|(s, q)| *s += q);
    }
    // dw = G^T M G, rows of G^T: [1, .5, .5, 0], [0, .5, -.5, 0], [0, .5, .5, 1].
    let mut dw = vec![0f32; co * ci * 9];
    for o in 0..co {
        for i in 0..ci {
            let at = |p: usize, q: usize| sum[((p * 4 + q) * co + o) * ci + i];
            let mut t = [[0f32; 4]; 3];
            for q in 0..4 {
                let (a, b, c, d) = (at(0, q), at(1, q), at(2, q), at(3, q));
                t[0][q] = a + 0.5 * (b + c);
                t[1][q] = 0.5 * (b - c);
                t[2][q] = 0.5 * (b + c) + d;
            }
            let g = &mut dw[(o * ci + i) * 9..][..9];
            for (r, tr) in t.iter().enumerate() {
                g[r * 3] = tr[0] + 0.5 * (tr[1] + tr[2]);
                g[r * 3 + 1] = 0.5 * (tr[1] - tr[2]);
                g[r * 3 + 2] = 0.5 * (tr[1] + tr[2]) + tr[3];
            }
        }
    }
    dw
}

/// `A dy_t A^T` for the tiles of tile rows tr0..tr1 of every gradient channel, into `e`
/// ([16][co][n]) from tile `t_off` on; output pixels past the image's edge count as zero.
fn gradient_transform(
    grad: &[f32],
    [co, h, w]: [usize; 3],
    [tr0, tr1, tw]: [usize; 3],
    e: &mut [f32],
    n: usize,
    t_off: usize,
) {
    let pw = 2 * tw;
    let mut rows = vec![0f32; 2 * pw];
    let mut cols = vec![0f32; 4 * pw];
    for o in 0..co {
        let plane = &grad[o * h * w..(o + 1) * h * w];
        for ty in tr0..tr1 {
            for (j, row) in rows.chunks_mut(pw).enumerate() {
                let r = 2 * ty + j;
                row.fill(0.0);
                if r < h {
                    row[..w].copy_from_slice(&plane[r * w..(r + 1) * w]);
                }
            }
            // A on the left (rows of A: [1, 0], [1, 1], [1, -1], [0, -1]), all tiles at once.
            {
                let (e0, e1) = rows.split_at(pw);
                let (c0, rest) = cols.split_at_mut(pw);
                let (c1, rest) = rest.split_at_mut(pw);
                let (c2, c3) = rest.split_at_mut(pw);
                for x in 0..pw {
                    let (a, b) = (e0[x], e1[x]);
                    c0[x] = a;
                    c1[x] = a + b;
                    c2[x] = a - b;
                    c3[x] = -b;
                }
            }
            // Then A^T on the right, tile by tile, into the positions (p, 0..4).
            let base = t_off + (ty - tr0) * tw;
            for (p, a) in cols.chunks(pw).enumerate() {
                let dst = |q: usize| ((p * 4 + q) * co + o) * n + base;
                let (d0, d1, d2, d3) = (dst(0), dst(1), dst(2), dst(3));
                for tx in 0..tw {
                    let (l, r) = (a[2 * tx], a[2 * tx + 1]);
                    e[d0 + tx] = l;
                    e[d1 + tx] = l + r;
                    e[d2 + tx] = l - r;
                    e[d3 + tx] = -r;
                }
            }
        }
    }
}

/// The 16 products of the transformed positions: `dst_k (rows x cols) = lhs_k (rows x depth)
/// @ rhs_k`, with rhs_k stored depth x cols, or cols x depth when `rhs_transposed`; each
/// operand holds its 16 matrices one after the other, row-major.
fn products(
    dst: &mut [f32],
    lhs: &[f32],
    rhs: &[f32],
    [rows, cols, depth]: [usize; 3],
    rhs_transposed: bool,
) {
    assert!(dst.len() >= 16 * rows * cols, "winograd: products' output");
    assert!(lhs.len() >= 16 * rows * depth && rhs.len() >= 16 * depth * cols);
    // (column stride, row stride) of rhs_k as a depth x cols matrix.
    let (rcs, rrs) = if rhs_transposed {
        (depth as isize, 1)
    } else {
        (1, cols as isize)
    };
    for k in 0..16 {
        // SAFETY: the asserts above: matrix k of each operand lies inside its slice, and the
        // strides address exactly it.
        unsafe {
            gemm::gemm(
                rows,
                cols,
                depth,
                dst[k * rows * cols..].as_mut_ptr(),
                1,
                cols as isize,
                false,
                lhs[k * rows * depth..].as_ptr(),
                1,
                depth as isize,
                rhs[k * depth * cols..].as_ptr(),
                rcs,
                rrs,
                0.0,
                1.0,
                false,
                false,
                false,
                gemm::Parallelism::None,
            );
        }
    }
}

/// (tile rows over the batch, tile rows per chunk, chunks) for `channels` channels: a chunk's
/// transformed input (16 x channels x tiles floats) about 1 MiB, a core's L2 here (16,384 /
/// channels tiles; 4,096 measured the same or up to 1.3x slower), and at least one chunk per
/// thread. Chunks count tile rows over the whole batch, so the small planes of deep layers
/// (8 x 8: 4 tile rows) share one product per chunk across images.
fn chunking(channels: usize, b: usize, th: usize, tw: usize) -> (usize, usize, usize) {
    let target = (16384 / channels.max(1)).clamp(16, 2048);
    let total = b * th;
    let rows = (target / tw.max(1))
        .min(total.div_ceil(rayon::current_num_threads()))
        .clamp(1, total.max(1));
    (total, rows, total.div_ceil(rows))
}

/// The tiles of chunk `chunk` (see [`chunking`]) and its pieces, one per image it touches:
/// (image, its tile rows tr0..tr1, the first tile's index in the chunk).
fn segments(
    chunk: usize,
    rows: usize,
    total: usize,
    th: usize,
    tw: usize,
) -> (usize, Vec<(usize, usize, usize, usize)>) {
    let (g0, g1) = (chunk * rows, (chunk * rows + rows).min(total));
    let pieces = (g0 / th..=(g1 - 1) / th)
        .map(|bi| {
            let (tr0, tr1) = (g0.max(bi * th) - bi * th, g1.min((bi + 1) * th) - bi * th);
            (bi, tr0, tr1, (bi * th + tr0 - g0) * tw)
        })
        .collect();
    ((g1 - g0) * tw, pieces)
}

/// U = G g G^T for every (output, input) channel pair: [16][co][ci].
fn filter_transform(wt: &[f32], co: usize, ci: usize) -> Vec<f32> {
    let mut u = vec![0f32; 16 * co * ci];
    for o in 0..co {
        for i in 0..ci {
            let g = &wt[(o * ci + i) * 9..][..9];
            // t = G g (4 x 3), rows of G: [1,0,0], [.5,.5,.5], [.5,-.5,.5], [0,0,1].
            let mut t = [[0f32; 3]; 4];
            for c in 0..3 {
                let (g0, g1, g2) = (g[c], g[3 + c], g[6 + c]);
                t[0][c] = g0;
                t[1][c] = 0.5 * (g0 + g1 + g2);
                t[2][c] = 0.5 * (g0 - g1 + g2);
                t[3][c] = g2;
            }
            for (r, tr) in t.iter().enumerate() {
                let (a, b, c) = (tr[0], tr[1], tr[2]);
                let row = [a, 0.5 * (a + b + c), 0.5 * (a - b + c), c];
                for (col, &val) in row.iter().enumerate() {
                    u[((r * 4 + col) * co + o) * ci + i] = val;
                }
            }
        }
    }
    u
}

/// V = B^T d B for the tiles of tile rows tr0..tr1 of every input channel, into `v`
/// ([16][ci][n]) from tile `t_off` on, tiles in row-major order. Tile (ty, tx) covers input rows 2ty-1 .. 2ty+2 and columns 2tx-1 ..
/// 2tx+2 (zero outside the image).
fn input_transform(
    image: &[f32],
    [ci, h, w]: [usize; 3],
    [tr0, tr1, tw]: [usize; 3],
    v: &mut [f32],
    n: usize,
    t_off: usize,
) {
    // One padded row: columns -1 .. 2tw+1 (2tw + 2 values).
    let pw = 2 * tw + 2;
    let mut rows = vec![0f32; 4 * pw];
    let mut cols = vec![0f32; 4 * pw];
    for c in 0..ci {
        let plane = &image[c * h * w..(c + 1) * h * w];
        for ty in tr0..tr1 {
            for (j, row) in rows.chunks_mut(pw).enumerate() {
                let r = (2 * ty + j) as isize - 1;
                row.fill(0.0);
                if r >= 0 && (r as usize) < h {
                    let r = r as usize;
                    row[1..=w].copy_from_slice(&plane[r * w..(r + 1) * w]);
                }
            }
            // B^T down the columns of every tile at once: four rows of the padded width.
            {
                let (r0, rest) = rows.split_at(pw);
                let (r1, rest) = rest.split_at(pw);
                let (r2, r3) = rest.split_at(pw);
                let (c0, rest) = cols.split_at_mut(pw);
                let (c1, rest) = rest.split_at_mut(pw);
                let (c2, c3) = rest.split_at_mut(pw);
                for x in 0..pw {
                    let (a, b, cc, e) = (r0[x], r1[x], r2[x], r3[x]);
                    c0[x] = a - cc;
                    c1[x] = b + cc;
                    c2[x] = cc - b;
                    c3[x] = b - e;
                }
            }
            // Then B^T along each row, tile by tile, into the four positions (p, 0..4).
            let base = t_off + (ty - tr0) * tw;
            for (p, a) in cols.chunks(pw).enumerate() {
                let dst = |q: usize| ((p * 4 + q) * ci + c) * n + base;
                let (d0, d1, d2, d3) = (dst(0), dst(1), dst(2), dst(3));
                for tx in 0..tw {
                    let x = &a[2 * tx..2 * tx + 4];
                    v[d0 + tx] = x[0] - x[2];
                    v[d1 + tx] = x[1] + x[2];
                    v[d2 + tx] = x[2] - x[1];
                    v[d3 + tx] = x[1] - x[3];
                }
            }
        }
    }
}

/// Y = A^T m A for every tile and output channel, plus the bias, written into `plane(o)`:
/// output rows 2 tr0 .. 2 tr1 of channel o (cut at the image's edge).
fn output_transform<'a>(
    m: &[f32],
    [co, n, t_off]: [usize; 3],
    [tr0, tr1, tw]: [usize; 3],
    [h, w]: [usize; 2],
    bias: Option<&[f32]>,
    plane: impl Fn(usize) -> &'a mut [f32],
) {
    let mut s = vec![0f32; 8 * tw];
    for o in 0..co {
        let out = plane(o);
        let bv = bias.map_or(0.0, |b| b[o]);
        for ty in tr0..tr1 {
            let t0 = t_off + (ty - tr0) * tw;
            let mk = |k: usize| &m[(k * co + o) * n + t0..][..tw];
            // A^T down the columns: s[i][q] over the tiles of this row, i = 0, 1, q = 0..4.
            for q in 0..4 {
                let (a, b, c, d) = (mk(q), mk(4 + q), mk(8 + q), mk(12 + q));
                let (lo, hi) = s.split_at_mut(4 * tw);
                let (s0, s1) = (&mut lo[q * tw..][..tw], &mut hi[q * tw..][..tw]);
                for tx in 0..tw {
                    s0[tx] = a[tx] + b[tx] + c[tx];
                    s1[tx] = b[tx] - c[tx] - d[tx];
                }
            }
            // Then A^T along the rows: two output pixels per tile and row.
            for i in 0..2 {
                let y = 2 * ty + i;
                if y >= h {
                    continue;
                }
                let sr = &s[i * 4 * tw..][..4 * tw];
                let (q0, q1, q2, q3) = (
                    &sr[..tw],
                    &sr[tw..2 * tw],
                    &sr[2 * tw..3 * tw],
                    &sr[3 * tw..],
                );
                let row = &mut out[(y - 2 * tr0) * w..][..w];
                let (pairs, tail) = row.split_at_mut(2 * (w / 2));
                for (tx, px) in pairs.chunks_exact_mut(2).enumerate() {
                    px[0] = q0[tx] + q1[tx] + q2[tx] + bv;
                    px[1] = q1[tx] - q2[tx] - q3[tx] + bv;
                }
                if let Some(last) = tail.first_mut() {
                    let tx = w / 2;
                    *last = q0[tx] + q1[tx] + q2[tx] + bv;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `n` values in [-0.5, 0.5) from a linear congruential stream.
    fn noise(seed: u32, n: usize) -> Vec<f32> {
        let mut s = seed;
        (0..n)
            .map(|_| {
                s = s.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                (s >> 8) as f32 / (1u32 << 24) as f32 - 0.5
            })
            .collect()
    }

    /// max |want - got| over max(1, max |want|).
    fn relative_error(want: &[f32], got: &[f32]) -> f32 {
        assert_eq!(want.len(), got.len());
        let scale = want.iter().fold(0f32, |a, v| a.max(v.abs())).max(1.0);
        let e = want
            .iter()
            .zip(got)
            .map(|(a, g)| (a - g).abs())
            .fold(0f32, f32::max);
        e / scale
    }

    /// Against the im2col kernel (the direct sum) on odd and even sizes, with and without bias,
    /// chunks within one image and across images.
    #[test]
    fn matches_the_direct_convolution() {
        for (b, ci, co, h, w) in [
            (2, 3, 5, 7, 6),
            (1, 33, 40, 9, 13),
            (3, 8, 2, 1, 1),
            (2, 64, 32, 16, 16),
            (3, 40, 33, 8, 8),
            (3, 33, 32, 9, 9),
        ] {
            let x = noise(7, b * ci * h * w);
            let wt = noise(8, co * ci * 9);
            let bias = noise(9, co);
            for bias in [None, Some(&bias[..])] {
                let dims = [b, ci, co, h, w];
                let want = super::super::cpu_conv::conv3x3_nchw_direct(&x, &wt, bias, dims);
                let e = relative_error(&want, &conv3x3(&x, &wt, bias, dims));
                assert!(e < 1e-5, "{dims:?} bias {}: {e}", bias.is_some());
            }
        }
    }

    /// The weight gradient against the im2col one ([`super::super::cpu_conv_train`]) on odd
    /// and even sizes, chunks within and across images.
    #[test]
    fn weight_gradient_matches_the_direct_one() {
        for (b, ci, co, h, w) in [
            (2, 3, 5, 7, 6),
            (3, 40, 33, 8, 8),
            (1, 33, 32, 9, 13),
            (2, 8, 4, 64, 70),
        ] {
            let x = noise(11, b * ci * h * w);
            let dy = noise(12, b * co * h * w);
            let dims = [b, ci, co, h, w];
            let want = super::super::cpu_conv_train::weight_grad_direct(&x, &dy, dims, 3);
            let e = relative_error(&want, &weight_grad(&x, &dy, dims));
            assert!(e < 1e-5, "{dims:?}: {e}");
        }
    }
}
