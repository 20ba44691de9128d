//! Training from the streamed index: which slices train (read by [`super::BatchStream`] a
//! bounded number ahead of the device) and the few validation slices kept in memory.

use super::batches::read_slice;
use super::index::StreamIndex;
use crate::io::Progress;
use crate::train::data::{Case, Dataset, SliceRef, split_refs};
use crate::train::{TrainConfig, TrainError};
use std::path::Path;
use std::sync::Arc;

/// What a streamed run reads its training batches from.
#[derive(Clone, Debug)]
pub struct StreamPlan {
    /// The folder's index.
    pub index: Arc<StreamIndex>,
    /// Training slices as (patient, z), in the order [`Dataset::split`] would list them, so a
    /// streamed run shuffles the same order as an in-memory run of the same folder.
    pub train: Vec<(usize, usize)>,
    /// Reader threads.
    pub workers: usize,
    /// Batches read ahead of the device, at most.
    pub prefetch: usize,
}

/// The dataset of the patient folder `root` for a streamed run of `cfg`: its index (built or
/// reused, one patient in memory at a time), split by patient as [`Dataset::split`] splits, the
/// training slices left on disk and only the `validation_slices` validation slices (the ones
/// validation picks, evenly spaced) read into memory, each as a one-slice case.
pub fn streamed_dataset(
    cfg: &TrainConfig,
    root: &Path,
    progress: &Progress,
) -> Result<Dataset, TrainError> {
    let index = StreamIndex::open_or_build(
        root,
        &StreamIndex::default_dir(root),
        cfg.direction,
        progress,
    )?;
    let slices: Vec<&[usize]> = index.patients.iter().map(|p| p.slices.as_slice()).collect();
    let names: Vec<&str> = index.patients.iter().map(|p| p.name.as_str()).collect();
    let (train, val, note) = split_refs(&slices, &names, cfg.validation_fraction);
    if train.is_empty() || val.is_empty() {
        return Err(TrainError::file(
            root,
            "the folder gave no training or no validation slices",
        ));
    }
    let n = cfg.validation_slices.clamp(1, val.len());
    let mut cases = Vec::with_capacity(n);
    for i in 0..n {
        let r = val[(2 * i + 1) * val.len() / (2 * n)];
        let pe = &index.patients[r.case];
        let (input, target, mask) = read_slice(&index.dir, pe, r.z)?;
        cases.push(Case {
            name: format!("{} slice {}", pe.name, r.z),
            nx: pe.nx,
            ny: pe.ny,
            nz: 1,
            input,
            target,
            mask,
            target_norm: pe.target_norm(),
            slices: vec![0],
        });
    }
    let split_note = format!(
        "{note}; streamed from {} ({} training slices on disk, {} validation slices in memory)",
        index.dir.display(),
        train.len(),
        cases.len()
    );
    let train = train.iter().map(|r| (r.case, r.z)).collect();
    Ok(Dataset {
        val: (0..cases.len())
            .map(|case| SliceRef { case, z: 0 })
            .collect(),
        cases,
        train: Vec::new(),
        split_note,
        stream: Some(Arc::new(StreamPlan {
            index: Arc::new(index),
            train,
            workers: 2,
            prefetch: 4,
        })),
    })
}
