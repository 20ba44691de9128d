//! Resampling: a volume onto another grid through a transform (trilinear), and block-averaged
//! shrinking for image pyramids.

use super::transform::Affine;
use super::{Geometry, Volume, VolumeMeta};
use rayon::prelude::*;

/// Shrink a volume by block-averaging `f`-cubed blocks (a box pre-filter), keeping its place in space.
pub fn shrink(v: &Volume, f: usize) -> Volume {
    if f <= 1 {
        return v.clone();
    }
    let g = &v.geometry;
    let d = [
        g.dims[0].div_ceil(f),
        g.dims[1].div_ceil(f),
        g.dims[2].div_ceil(f),
    ];
    let mut data = vec![0f32; d[0] * d[1] * d[2]];
    data.par_chunks_mut(d[0] * d[1])
        .enumerate()
        .for_each(|(z, slice)| {
            for y in 0..d[1] {
                for x in 0..d[0] {
                    let mut acc = 0f64;
                    let mut n = 0u32;
                    for zz in z * f..((z + 1) * f).min(g.dims[2]) {
                        for yy in y * f..((y + 1) * f).min(g.dims[1]) {
                            for xx in x * f..((x + 1) * f).min(g.dims[0]) {
                                acc += v.get(xx, yy, zz) as f64;
                                n += 1;
                            }
                        }
                    }
                    slice[x + d[0] * y] = (acc / n.max(1) as f64) as f32;
                }
            }
        });
    let half = (f as f64 - 1.0) / 2.0;
    let origin = g.world_from_voxel([half, half, half]);
    let geometry = Geometry {
        dims: d,
        spacing: [
            g.spacing[0] * f as f64,
            g.spacing[1] * f as f64,
            g.spacing[2] * f as f64,
        ],
        origin,
        direction: g.direction,
    };
    Volume::new(geometry, data, v.meta.clone())
}

/// Resample `moving` onto `grid` through `fixed_to_moving` (trilinear; `background` outside).
pub fn resample(
    moving: &Volume,
    grid: &Geometry,
    fixed_to_moving: &Affine,
    background: f32,
) -> Volume {
    let data = super::fill_grid(grid, |w| {
        let p = moving.geometry.voxel_from_world(fixed_to_moving.apply(w));
        moving.sample_linear(p).unwrap_or(background)
    });
    let meta = VolumeMeta {
        description: format!("{} (resampled)", moving.meta.description),
        ..moving.meta.clone()
    };
    Volume::new(grid.clone(), data, meta)
}
