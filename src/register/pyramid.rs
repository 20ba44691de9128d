//! The image pyramid and the start: which shrink factors a registration runs at, the radius that
//! scales rotations against translations, and the initial translation.

use super::{MattesMi, RegistrationConfig, Stage, shrink};
use crate::volume::transform::Affine;
use crate::volume::{Vec3, Volume};

/// Millimetres of displacement per radian of rotation: 60% of the fixed image's half-extent,
/// clamped to 20..150 mm before scaling.
pub(super) fn rotation_radius(fixed: &Volume) -> f64 {
    let (lo, hi) = fixed.geometry.world_bounds();
    (0..3)
        .map(|a| (hi[a] - lo[a]) / 2.0)
        .fold(0.0, f64::max)
        .clamp(20.0, 150.0)
        * 0.6
}

/// Pyramid levels of `requested` that keep at least 24 voxels along every axis of the fixed
/// image (at least shrink 1).
pub(super) fn levels(requested: &[usize], fixed: &Volume) -> Vec<usize> {
    let min_dim = *fixed.geometry.dims.iter().min().unwrap_or(&1);
    let mut shrinks: Vec<usize> = requested
        .iter()
        .copied()
        .filter(|&f| f == 1 || min_dim / f >= 24)
        .collect();
    if shrinks.is_empty() {
        shrinks.push(1);
    }
    shrinks
}

/// The levels a stage runs at: the affine stage refines at the finer levels only (at shrink 4
/// its extra freedom fits noise).
pub(super) fn stage_levels(stage: Stage, shrinks: &[usize]) -> Vec<usize> {
    if stage == Stage::Affine && shrinks.len() > 1 {
        shrinks.iter().copied().filter(|f| *f <= 2).collect()
    } else {
        shrinks.to_vec()
    }
}

/// The rigid stage's initial translation: whichever of none (same frame of reference), centres
/// of mass `cf`/`cm` (large offsets) or geometric centres (partial coverage skews the centre of
/// mass) gives the best metric at the coarsest level `coarse`.
pub(super) fn initial_translation(
    fixed: &Volume,
    moving: &Volume,
    mask: Option<&Volume>,
    cfg: &RegistrationConfig,
    coarse: usize,
    cf: Vec3,
    cm: Vec3,
) -> Vec3 {
    let gf = fixed.geometry.center();
    let gm = moving.geometry.center();
    let candidates = [
        [0.0; 3],
        [cm[0] - cf[0], cm[1] - cf[1], cm[2] - cf[2]],
        [gm[0] - gf[0], gm[1] - gf[1], gm[2] - gf[2]],
    ];
    let (fx0, mv0) = (shrink(fixed, coarse), shrink(moving, coarse));
    let mk0 = mask.map(|m| shrink(m, coarse));
    let probe = MattesMi::new(
        &fx0,
        &mv0,
        mk0.as_ref(),
        cfg.bins,
        cfg.samples / 2,
        cfg.seed,
    );
    let mut best = (f64::NEG_INFINITY, candidates[0]);
    for t in candidates {
        let a = Affine::rigid([0.0; 3], t, cf);
        let v = probe.evaluate(&a, |_, _| {}, 0);
        // MI over the samples that land inside the moving image, if enough of them do
        // (an MR covering part of the CT leaves the rest outside).
        let score = if v.valid * 4 >= probe.sample_count() {
            v.mi
        } else {
            f64::NEG_INFINITY
        };
        if score > best.0 {
            best = (score, t);
        }
    }
    best.1
}
