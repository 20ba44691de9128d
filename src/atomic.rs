//! Writing a file so that a crash, a kill or a full disk never leaves a half-written file where a
//! good one was: the bytes go to a temporary name beside the target, are flushed and fsynced,
//! and only then renamed over it (and the folder is fsynced so the rename itself is durable).

use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// A file that could not be written; the earlier file at `path`, if any, is untouched.
#[derive(Debug, Clone, thiserror::Error, PartialEq)]
#[error("{}: could not write: {problem}", path.display())]
pub struct WriteError {
    /// The file that was being written.
    pub path: PathBuf,
    /// What went wrong, with the disk named when it is full.
    pub problem: String,
}

impl WriteError {
    fn new(path: &Path, e: &io::Error) -> Self {
        WriteError {
            path: path.to_path_buf(),
            problem: describe(path, e),
        }
    }
}

/// The problem alone, for callers whose own error names the file.
impl From<WriteError> for io::Error {
    fn from(e: WriteError) -> Self {
        io::Error::other(e.problem)
    }
}

/// The error in words; a full disk is named by the folder it holds and its free bytes.
fn describe(path: &Path, e: &io::Error) -> String {
    let dir = folder(path);
    if e.raw_os_error() == Some(28) || e.kind() == io::ErrorKind::StorageFull {
        match free_bytes(&dir) {
            Some(free) => format!(
                "the disk holding {} is full ({free} bytes free): {e}",
                dir.display()
            ),
            None => format!("the disk holding {} is full: {e}", dir.display()),
        }
    } else if e.raw_os_error() == Some(122) {
        format!("the disk quota for {} is exceeded: {e}", dir.display())
    } else {
        e.to_string()
    }
}

fn folder(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn free_bytes(dir: &Path) -> Option<u64> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(dir.as_os_str().as_bytes()).ok()?;
    // SAFETY: `c` is a valid NUL-terminated path and `st` a zeroed out-parameter of the right type.
    unsafe {
        let mut st: libc::statvfs = std::mem::zeroed();
        if libc::statvfs(c.as_ptr(), &mut st) == 0 {
            Some(st.f_bavail as u64 * st.f_frsize as u64)
        } else {
            None
        }
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn free_bytes(_dir: &Path) -> Option<u64> {
    None
}

/// The temporary name used while `path` is written: hidden, beside it, unique to this process
/// and call, so two writers of the same file never share one.
fn temporary(path: &Path) -> PathBuf {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "file".into());
    folder(path).join(format!(".{name}.{}.{n}.partial", std::process::id()))
}

/// Write `path` through `write` atomically: all of it or, on any error, nothing (the earlier
/// file stays as it was and the temporary file is removed).
pub fn write_with(
    path: &Path,
    write: impl FnOnce(&mut dyn Write) -> io::Result<()>,
) -> Result<(), WriteError> {
    let tmp = temporary(path);
    let result = (|| -> io::Result<()> {
        let file = std::fs::File::create(&tmp)?;
        let mut out = io::BufWriter::with_capacity(1 << 20, file);
        write(&mut out)?;
        let file = out.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()?;
        drop(file);
        std::fs::rename(&tmp, path)?;
        // The rename is durable once the folder's entry is on disk.
        if let Ok(d) = std::fs::File::open(folder(path)) {
            let _ = d.sync_all();
        }
        Ok(())
    })();
    result.map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        WriteError::new(path, &e)
    })
}

/// Finish a file that another writer (a library that only writes to a path) wrote at `tmp`:
/// fsync it, rename it over `path`, fsync the folder. On error `tmp` is removed and `path` keeps
/// its earlier content.
pub fn sync_and_rename(tmp: &Path, path: &Path) -> Result<(), WriteError> {
    let result = (|| -> io::Result<()> {
        std::fs::OpenOptions::new()
            .write(true)
            .open(tmp)?
            .sync_all()?;
        std::fs::rename(tmp, path)?;
        if let Ok(d) = std::fs::File::open(folder(path)) {
            let _ = d.sync_all();
        }
        Ok(())
    })();
    result.map_err(|e| {
        let _ = std::fs::remove_file(tmp);
        WriteError::new(path, &e)
    })
}

/// Write `bytes` to `path` atomically.
pub fn write(path: &Path, bytes: impl AsRef<[u8]>) -> Result<(), WriteError> {
    write_with(path, |w| w.write_all(bytes.as_ref()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_whole_or_not_at_all() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.txt");
        write(&p, "first").unwrap();
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "first");
        let e = write_with(&p, |w| {
            w.write_all(b"half")?;
            Err(io::Error::other("interrupted"))
        })
        .unwrap_err();
        assert!(e.to_string().contains("a.txt") && e.to_string().contains("interrupted"));
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "first");
        let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(left.len(), 1, "the temporary file is removed");
        write(&p, "second").unwrap();
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "second");
    }

    #[test]
    fn a_missing_folder_is_named() {
        let e = write(Path::new("/nonexistent-synthscope-dir/x.bin"), b"1").unwrap_err();
        assert!(
            e.to_string()
                .starts_with("/nonexistent-synthscope-dir/x.bin: could not write")
        );
    }
}
