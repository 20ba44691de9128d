//! Datasets larger than memory: a folder of many patients is indexed once (each patient loaded,
//! put on one grid and written as a file of fixed-size slice records, one patient in memory at
//! a time) and then streamed: worker threads read slices, normalise them and cut the batches a
//! bounded number ahead of the device, so memory stays flat however many patients there are
//! (`synthscope bench stream` measures the peak resident set for 10 and 100 patients).
//!
//! The index (`index.json` and `NNNNN.slices`, in `ROOT/.synthscope-index` by default) is
//! reused while every patient's source files keep their size and modification time.

//!
//! A run streams (`stream = true`, or automatically for a folder of more than
//! [`crate::train::STREAM_AUTO_PATIENTS`] patients) through [`streamed_dataset`]: the training
//! loop then takes its batches from a [`BatchStream`] per epoch, and validation uses the few
//! validation slices held in memory. What resumes is the same as in memory: weights, optimiser,
//! epoch, step and the shuffling stream; each epoch's crops come from (seed, epoch), so a
//! resumed epoch reads the very batches it would have read.

pub mod batches;
pub mod index;
pub mod plan;

pub use batches::{Batch, BatchStream, StreamSettings, read_slice};
pub use index::{PatientEntry, StreamIndex};
pub use plan::{StreamPlan, streamed_dataset};

/// Peak resident set of this process in KiB (`VmHWM`), where the system reports it.
pub fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// Reset the peak resident set to the current one (Linux: `/proc/self/clear_refs`); false where
/// that is not possible.
pub fn reset_peak_rss() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}
