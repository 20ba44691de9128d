//! A study's cases: loading their volumes and choosing the slices readers see (fixed, or
//! sampled inside the head with the study's seed, so every reader sees the same slices).

use super::{Design, Study, StudyError, fnv};
use crate::io::Progress;
use crate::volume::Volume;
use std::path::Path;
use std::sync::Arc;

/// Load case `i` of `study` (read from `study_file`).
pub fn load_case(study: &Study, study_file: &Path, i: usize) -> Result<Arc<Volume>, StudyError> {
    let c = &study.cases[i];
    let path = study.case_path(study_file, c);
    let case_file = |problem| StudyError::CaseFile {
        id: c.id.clone(),
        path: path.clone(),
        problem,
    };
    if !path.exists() {
        return Err(case_file("no such file or folder"));
    }
    let out = crate::io::load_paths(std::slice::from_ref(&path), &Progress::default()).map_err(
        |cause| StudyError::CaseLoad {
            id: c.id.clone(),
            cause,
        },
    )?;
    if let Some(v) = out.volumes.into_iter().next() {
        return Ok(Arc::new(v));
    }
    Err(match out.errors.into_iter().next() {
        Some(cause) => StudyError::CaseLoad {
            id: c.id.clone(),
            cause,
        },
        None => case_file("no images found"),
    })
}

/// Case `i`'s slices: its fixed indices (checked against the volume), or `slices_per_case`
/// sampled inside the head with the study's seed (the same for every reader).
pub fn case_slices(study: &Study, i: usize, v: &Volume) -> Result<Vec<usize>, StudyError> {
    let c = &study.cases[i];
    let nz = v.geometry.dims[2];
    if !c.slices.is_empty() {
        if let Some(&z) = c.slices.iter().find(|z| **z >= nz) {
            return Err(StudyError::SliceOutOfRange {
                id: c.id.clone(),
                slice: z,
                count: nz,
            });
        }
        return Ok(c.slices.clone());
    }
    let threshold = if v.meta.modality == crate::volume::Modality::Ct {
        -500.0
    } else {
        0.1 * v.robust_range(1.0, 99.0).1
    };
    let head = head_slices(&v.data, v.geometry.dims, threshold);
    if head.is_empty() {
        return Err(StudyError::NoHead { id: c.id.clone() });
    }
    let seed = study.seed ^ fnv(c.id.as_bytes());
    Ok(sample_slices(&head, study.slices_per_case, seed))
}

/// Every case's slices (loading each case once, with progress and cancel), after checking
/// that each A/B pair shares a grid.
pub fn resolve_slices(
    study: &Study,
    study_file: &Path,
    progress: &Progress,
) -> Result<Vec<Vec<usize>>, StudyError> {
    progress.start("Checking the cases", study.cases.len());
    let mut out = Vec::new();
    let mut dims = Vec::new();
    for i in 0..study.cases.len() {
        progress.check()?;
        let v = load_case(study, study_file, i)?;
        dims.push(v.geometry.dims);
        out.push(case_slices(study, i, &v)?);
        progress.step();
    }
    if study.design == Design::TwoAfc {
        // 2AFC pairs any abnormal image with any normal one of its modality: one grid each.
        for (i, c) in study.cases.iter().enumerate() {
            if let Some(j) = (0..i).find(|j| study.cases[*j].modality == c.modality)
                && dims[i] != dims[j]
            {
                return Err(StudyError::PairGrid {
                    case: c.id.clone(),
                    partner: study.cases[j].id.clone(),
                    case_dims: dims[i],
                    partner_dims: dims[j],
                });
            }
        }
    }
    if study.design == Design::Pair {
        for (i, c) in study.cases.iter().enumerate() {
            if let Some(p) = study.partner(c)
                && dims[i] != dims[p]
            {
                return Err(StudyError::PairGrid {
                    case: c.id.clone(),
                    partner: study.cases[p].id.clone(),
                    case_dims: dims[i],
                    partner_dims: dims[p],
                });
            }
        }
    }
    Ok(out)
}

/// Slices of a volume inside the head: those where more than 5% of the voxels are above
/// `threshold`, in order.
pub fn head_slices(data: &[f32], dims: [usize; 3], threshold: f32) -> Vec<usize> {
    let [nx, ny, nz] = dims;
    let plane = nx * ny;
    (0..nz)
        .filter(|z| {
            let s = &data[z * plane..(z + 1) * plane];
            s.iter().filter(|v| **v > threshold).count() * 20 > plane
        })
        .collect()
}

/// `n` slices sampled from `candidates` with `seed`: spread over the middle 80% (the ends of
/// the head are mostly skull), sorted.
pub fn sample_slices(candidates: &[usize], n: usize, seed: u64) -> Vec<usize> {
    if candidates.is_empty() || n == 0 {
        return Vec::new();
    }
    let lo = candidates.len() / 10;
    let hi = (candidates.len() - candidates.len() / 10).max(lo + 1);
    let mut pool: Vec<usize> = candidates[lo..hi].to_vec();
    let mut rng = crate::train::data::Rng::new(seed);
    rng.shuffle(&mut pool);
    pool.truncate(n);
    pool.sort_unstable();
    pool
}
