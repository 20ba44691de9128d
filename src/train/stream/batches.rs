//! Batches of patches read from an index's slice files on worker threads, a bounded number
//! ahead of the consumer.

use super::index::{PatientEntry, StreamIndex};
use crate::train::TrainError;
use crate::train::config::Augment;
use crate::train::data::{Rng, crop, origin};
use crossbeam_channel::{Receiver, bounded};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;

/// How batches are cut and how far ahead they are read.
#[derive(Clone, Debug)]
pub struct StreamSettings {
    /// Patches per batch.
    pub batch: usize,
    /// Patch side.
    pub patch: usize,
    /// Rotations and flips.
    pub augment: Augment,
    /// Seed of the crops and augmentations (batch k draws from its own stream, so the batches
    /// are the same whatever the number of workers).
    pub seed: u64,
    /// Reader threads.
    pub workers: usize,
    /// Batches read ahead of the consumer, at most (plus one per worker being filled).
    pub prefetch: usize,
}

impl Default for StreamSettings {
    fn default() -> Self {
        Self {
            batch: 4,
            patch: 64,
            augment: Augment {
                rot90: true,
                flip: true,
            },
            seed: 1,
            workers: 2,
            prefetch: 4,
        }
    }
}

/// One batch: `inputs` and `targets` are [batch, 1, patch, patch], row-major.
#[derive(Clone, Debug, PartialEq)]
pub struct Batch {
    /// Position in the stream.
    pub index: usize,
    /// Input patches, normalised to 0..1.
    pub inputs: Vec<f32>,
    /// Target patches, normalised to 0..1.
    pub targets: Vec<f32>,
}

/// One slice: (input, target, mask), row-major nx x ny.
pub type SlicePlanes = (Vec<f32>, Vec<f32>, Vec<bool>);

/// (input, target, mask) of slice `z` of `p`, normalised: read from its slice file.
pub fn read_slice(dir: &Path, p: &PatientEntry, z: usize) -> Result<SlicePlanes, TrainError> {
    let path = dir.join(&p.file);
    let n = p.nx * p.ny;
    let mut raw = vec![0u8; p.record_bytes()];
    let mut read = || -> std::io::Result<()> {
        let f = std::fs::File::open(&path)?;
        let at = (z * p.record_bytes()) as u64;
        #[cfg(unix)]
        {
            use std::os::unix::fs::FileExt;
            f.read_exact_at(&mut raw, at)
        }
        #[cfg(not(unix))]
        {
            use std::io::{Read, Seek, SeekFrom};
            let mut f = f;
            f.seek(SeekFrom::Start(at))?;
            f.read_exact(&mut raw)
        }
    };
    if z >= p.nz {
        return Err(TrainError::file(
            &path,
            format!("no slice {z} (of {})", p.nz),
        ));
    }
    read().map_err(|e| {
        TrainError::file(
            &path,
            format!("cannot read slice {z}: {e} (rebuild the index: delete its folder)"),
        )
    })?;
    let (ni, nt) = (p.input_norm(), p.target_norm());
    let f32_at = |b: &[u8]| f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
    let input = raw[..4 * n]
        .chunks_exact(4)
        .map(|b| ni.forward(f32_at(b)))
        .collect();
    let target = raw[4 * n..8 * n]
        .chunks_exact(4)
        .map(|b| nt.forward(f32_at(b)))
        .collect();
    let mask = raw[8 * n..].iter().map(|&m| m != 0).collect();
    Ok((input, target, mask))
}

/// Batch `k` of `order` (as the training loop cuts it: patches `k * batch ..`, wrapping).
fn make_batch(
    index: &StreamIndex,
    order: &[(usize, usize)],
    k: usize,
    s: &StreamSettings,
) -> Result<Batch, TrainError> {
    let p = s.patch;
    let mut rng = Rng::new(s.seed ^ (k as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15));
    let mut inputs = Vec::with_capacity(s.batch * p * p);
    let mut targets = Vec::with_capacity(s.batch * p * p);
    for i in 0..s.batch {
        let (case, z) = order[(k * s.batch + i) % order.len()];
        let pe = &index.patients[case];
        let (input, target, _) = read_slice(&index.dir, pe, z)?;
        let o = (origin(pe.nx, p, &mut rng), origin(pe.ny, p, &mut rng));
        let rot = if s.augment.rot90 { rng.below(4) } else { 0 };
        let flip = s.augment.flip && rng.below(2) == 1;
        inputs.extend(crop(&input, (pe.nx, pe.ny), o, p, rot, flip));
        targets.extend(crop(&target, (pe.nx, pe.ny), o, p, rot, flip));
    }
    Ok(Batch {
        index: k,
        inputs,
        targets,
    })
}

/// `steps` batches of `order`, read by `workers` threads: worker w reads batches w, w + W, ...
/// into its own channel of `prefetch / W` (at least 1), and the consumer takes them in order,
/// so memory holds at most prefetch + W batches whatever the dataset's size.
pub struct BatchStream {
    channels: Vec<Receiver<Result<Batch, TrainError>>>,
    next: usize,
    steps: usize,
    stop: Arc<AtomicBool>,
    workers: Vec<JoinHandle<()>>,
}

impl BatchStream {
    /// Start reading.
    pub fn start(
        index: Arc<StreamIndex>,
        order: Arc<Vec<(usize, usize)>>,
        steps: usize,
        s: StreamSettings,
    ) -> Result<Self, TrainError> {
        if order.is_empty() {
            return Err(TrainError::Config(
                "the index has no training slices".into(),
            ));
        }
        let w = s.workers.max(1);
        let per = (s.prefetch / w).max(1);
        let stop = Arc::new(AtomicBool::new(false));
        let mut channels = Vec::with_capacity(w);
        let mut workers = Vec::with_capacity(w);
        for id in 0..w {
            let (tx, rx) = bounded(per);
            channels.push(rx);
            let (index, order, s, stop) = (index.clone(), order.clone(), s.clone(), stop.clone());
            let handle = std::thread::Builder::new()
                .name(format!("stream-reader-{id}"))
                .spawn(move || {
                    let mut k = id;
                    while k < steps && !stop.load(Ordering::Relaxed) {
                        let b = make_batch(&index, &order, k, &s);
                        let failed = b.is_err();
                        // A closed channel: the consumer is gone.
                        if tx.send(b).is_err() || failed {
                            break;
                        }
                        k += w;
                    }
                })
                .map_err(|e| TrainError::Config(format!("cannot start a reader thread: {e}")))?;
            workers.push(handle);
        }
        Ok(Self {
            channels,
            next: 0,
            steps,
            stop,
            workers,
        })
    }
}

impl Iterator for BatchStream {
    type Item = Result<Batch, TrainError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.next >= self.steps {
            return None;
        }
        let w = self.channels.len();
        let got = self.channels[self.next % w].recv().unwrap_or_else(|_| {
            Err(TrainError::Config(format!(
                "a reader thread stopped before batch {}",
                self.next
            )))
        });
        self.next += 1;
        Some(got)
    }
}

impl Drop for BatchStream {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        // Dropping the receivers fails the workers' pending sends.
        self.channels.clear();
        for h in self.workers.drain(..) {
            let _ = h.join();
        }
    }
}
