//! Decoding files into volumes (DICOM series, NIfTI) and writing them back, plus the demo phantom.

pub use crate::atomic;
pub mod alloc_guard;
pub mod dicom;
pub mod nifti;
pub mod phantom;
pub mod ultrasound;

use crate::volume::Volume;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

/// A problem with one file or series, named so a user can act on it.
#[derive(Debug, Clone, thiserror::Error, PartialEq)]
pub enum LoadError {
    /// The file (or folder) could not be read or decoded.
    #[error("{}: {problem}", path.display())]
    File {
        /// The offending file.
        path: PathBuf,
        /// What is wrong with it.
        problem: String,
    },
    /// The user cancelled the load.
    #[error("loading cancelled")]
    Cancelled,
}

impl LoadError {
    /// A file error.
    pub fn file(path: impl AsRef<Path>, problem: impl Into<String>) -> Self {
        LoadError::File {
            path: path.as_ref().to_path_buf(),
            problem: problem.into(),
        }
    }
}

/// The largest text file (study, run config, reader log, transform, checkpoint config, settings)
/// that is read whole: 256 MiB. Anything bigger is not one of ours.
pub const MAX_TEXT_BYTES: u64 = 256 << 20;

/// Read a text file of at most `limit` bytes, its size checked before reading (a drop-in for
/// `std::fs::read_to_string`; the error says what is wrong, the caller names the file).
pub fn read_text(path: &Path, limit: u64) -> std::io::Result<String> {
    let len = std::fs::metadata(path)?.len();
    if len > limit {
        return Err(std::io::Error::other(format!(
            "{len} bytes, more than the {limit} a text file of ours may have"
        )));
    }
    let bytes = std::fs::read(path)?;
    String::from_utf8(bytes).map_err(|e| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("not UTF-8 text (byte {})", e.utf8_error().valid_up_to()),
        )
    })
}

/// The most voxels one loaded volume may have: 2^29 (2 GiB as f32), or `SYNTHSCOPE_MAX_VOXELS`.
/// Sizes that headers declare are checked against it (and against the bytes present) before
/// anything is allocated, so a lying header is refused instead of asking the OS for many GB.
pub fn max_voxels() -> u64 {
    static MAX: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *MAX.get_or_init(|| {
        std::env::var("SYNTHSCOPE_MAX_VOXELS")
            .ok()
            .and_then(|v| v.trim().replace('_', "").parse::<u64>().ok())
            .filter(|v| *v > 0)
            .unwrap_or(1 << 29)
    })
}

/// Refuse a declared size of `voxels` over [`max_voxels`]; the error names the file, what
/// declared the size (`what`), and both numbers.
pub fn check_voxels(path: &Path, voxels: u128, what: &str) -> Result<(), LoadError> {
    let max = max_voxels();
    if voxels > max as u128 {
        return Err(LoadError::file(
            path,
            format!(
                "{what} declare {voxels} voxels, more than the {max} a volume may have \
                 (header wrong, or set SYNTHSCOPE_MAX_VOXELS)"
            ),
        ));
    }
    Ok(())
}

/// Shared progress and cancellation of a long load, polled by the UI.
#[derive(Debug, Default)]
pub struct Progress {
    done: AtomicUsize,
    total: AtomicUsize,
    cancel: AtomicBool,
    stage: Mutex<String>,
}

impl Progress {
    /// Begin a stage of `total` steps.
    pub fn start(&self, stage: &str, total: usize) {
        if let Ok(mut s) = self.stage.lock() {
            *s = stage.to_string();
        }
        self.total.store(total, Ordering::Relaxed);
        self.done.store(0, Ordering::Relaxed);
    }

    /// One more step done.
    pub fn step(&self) {
        self.done.fetch_add(1, Ordering::Relaxed);
    }

    /// Fraction done in the current stage (0..=1).
    pub fn fraction(&self) -> f32 {
        let t = self.total.load(Ordering::Relaxed);
        if t == 0 {
            0.0
        } else {
            self.done.load(Ordering::Relaxed) as f32 / t as f32
        }
    }

    /// Name of the current stage.
    pub fn stage(&self) -> String {
        self.stage.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// Ask the worker to stop.
    pub fn cancel(&self) {
        self.cancel.store(true, Ordering::Relaxed);
    }

    /// True once cancellation was requested.
    pub fn is_cancelled(&self) -> bool {
        self.cancel.load(Ordering::Relaxed)
    }

    /// Err(Cancelled) once cancellation was requested.
    pub fn check(&self) -> Result<(), LoadError> {
        if self.is_cancelled() {
            Err(LoadError::Cancelled)
        } else {
            Ok(())
        }
    }
}

/// What a load produced: the volumes that decoded, and the problems with the rest.
#[derive(Debug, Default)]
pub struct LoadOutcome {
    /// Decoded volumes, one per series or NIfTI file.
    pub volumes: Vec<Volume>,
    /// Files or series that could not be loaded (the others still were).
    pub errors: Vec<LoadError>,
}

/// True for `.nii` and `.nii.gz` names.
pub fn is_nifti_path(p: &Path) -> bool {
    let n = p
        .file_name()
        .map(|n| n.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default();
    n.ends_with(".nii") || n.ends_with(".nii.gz")
}

/// True for `.json` names (settings files are JSON by this, TOML otherwise).
pub fn is_json_path(p: &Path) -> bool {
    p.extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("json"))
}

/// A settings file's `text` (read from `path`) as `T`: JSON for `.json`, else TOML. Errors
/// name the file.
pub fn parse_settings<T: serde::de::DeserializeOwned>(
    path: &Path,
    text: &str,
) -> Result<T, LoadError> {
    if is_json_path(path) {
        serde_json::from_str(text).map_err(|e| LoadError::file(path, e.to_string()))
    } else {
        toml::from_str(text).map_err(|e| LoadError::file(path, e.to_string()))
    }
}

/// Load everything found under `paths` (folders are scanned recursively).
///
/// Each NIfTI file gives one volume; DICOM files are grouped into series. A file or series that
/// fails is reported in `errors` and does not stop the others; only a path that does not exist,
/// or a load that finds no image at all, is an `Err`.
pub fn load_paths(paths: &[PathBuf], progress: &Progress) -> Result<LoadOutcome, LoadError> {
    let mut nifti = Vec::new();
    let mut dicom = Vec::new();
    for p in paths {
        if !p.exists() {
            return Err(LoadError::file(p, "no such file or folder"));
        }
        if p.is_dir() {
            let mut files = Vec::new();
            walk(p, &mut files)
                .map_err(|e| LoadError::file(p, format!("cannot list folder: {e}")))?;
            files.sort();
            for f in files {
                if is_nifti_path(&f) {
                    nifti.push(f);
                } else {
                    dicom.push((f, false));
                }
            }
        } else if is_nifti_path(p) {
            nifti.push(p.clone());
        } else {
            dicom.push((p.clone(), true));
        }
    }
    let mut out = LoadOutcome::default();
    for f in &nifti {
        progress.check()?;
        match nifti::read_nifti(f) {
            Ok(v) => out.volumes.push(v),
            Err(e) => out.errors.push(e),
        }
    }
    if !dicom.is_empty() {
        let scan = dicom::scan(&dicom, progress)?;
        out.errors.extend(scan.errors);
        let series = scan.series;
        let total: usize = series.iter().map(|s| s.slices.len()).sum();
        progress.start("Decoding DICOM", total);
        for s in &series {
            progress.check()?;
            match dicom::decode_series(s, progress) {
                Ok(v) => out.volumes.push(v),
                Err(LoadError::Cancelled) => return Err(LoadError::Cancelled),
                Err(e) => out.errors.push(e),
            }
        }
    }
    if out.volumes.is_empty() && out.errors.is_empty() {
        let shown = paths.first().cloned().unwrap_or_default();
        return Err(LoadError::file(shown, "no DICOM or NIfTI images found"));
    }
    Ok(out)
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let p = entry.path();
        let ft = entry.file_type()?;
        if ft.is_dir() {
            walk(&p, out)?;
        } else if ft.is_file() {
            out.push(p);
        }
    }
    Ok(())
}
