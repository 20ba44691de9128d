//! Bytes in, a loader's answer out: one entry point per file format that SynthScope reads, for
//! the cargo-fuzz targets in `fuzz/` and for the tests that replay their corpora and every crash
//! they found (`tests/fuzz_corpora.rs`) on stable Rust.
//!
//! Each entry point writes the bytes where the real loader expects a file (a scratch folder on
//! tmpfs when there is one) and calls the same function the app and the command line call, so
//! what is fuzzed is the path a user's file takes, file reading included. A loader may refuse
//! the input (that is the point); it must not panic, abort or allocate without bound.

use std::path::{Path, PathBuf};

/// The formats with an entry point, by the name of their fuzz target.
pub const TARGETS: &[&str] = &[
    "dicom_file",
    "dicom_folder",
    "nifti",
    "study",
    "reader_log",
    "run_config",
    "tfm",
    "checkpoint",
];

/// Between the files of one input for the targets that take several (a DICOM folder, a
/// checkpoint's config and weights, a run folder's files).
pub const SEPARATOR: &[u8] = b"\n--synthscope-next-file--\n";

/// Run the entry point of `target` on `data`: Ok with the loader's answer in words (its error is
/// an answer too), Err for a target that does not exist.
pub fn run(target: &str, data: &[u8]) -> Result<String, String> {
    let answer = match target {
        "dicom_file" => dicom_file(data),
        "dicom_folder" => dicom_folder(data),
        "nifti" => nifti(data),
        "study" => study(data),
        "reader_log" => reader_log(data),
        "run_config" => run_config(data),
        "tfm" => tfm(data),
        "checkpoint" => checkpoint(data),
        other => return Err(format!("no fuzz target {other:?} (known: {TARGETS:?})")),
    };
    Ok(answer)
}

/// A fresh, empty scratch folder for one input, on tmpfs when the machine has /dev/shm.
fn scratch(name: &str) -> PathBuf {
    let base = if Path::new("/dev/shm").is_dir() {
        PathBuf::from("/dev/shm")
    } else {
        std::env::temp_dir()
    };
    let thread: String = format!("{:?}", std::thread::current().id())
        .chars()
        .filter(char::is_ascii_digit)
        .collect();
    let dir = base
        .join(format!("synthscope-fuzz-{}-{thread}", std::process::id()))
        .join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch folder for a fuzz input");
    dir
}

fn put(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).expect("scratch file for a fuzz input");
    p
}

/// Split `data` at [`SEPARATOR`].
pub fn split(data: &[u8]) -> Vec<&[u8]> {
    let mut parts = Vec::new();
    let mut rest = data;
    while let Some(i) = rest.windows(SEPARATOR.len()).position(|w| w == SEPARATOR) {
        parts.push(&rest[..i]);
        rest = &rest[i + SEPARATOR.len()..];
    }
    parts.push(rest);
    parts
}

/// Join files into one input for the targets that take several.
pub fn join(parts: &[&[u8]]) -> Vec<u8> {
    parts.join(SEPARATOR)
}

fn words<T, E: std::fmt::Display>(r: Result<T, E>, ok: impl FnOnce(T) -> String) -> String {
    match r {
        Ok(v) => ok(v),
        Err(e) => format!("refused: {e}"),
    }
}

fn load(paths: &[PathBuf]) -> String {
    let progress = crate::io::Progress::default();
    match crate::io::load_paths(paths, &progress) {
        Ok(o) if o.volumes.is_empty() => {
            let why: Vec<String> = o.errors.iter().map(|e| e.to_string()).collect();
            format!("refused: {}", why.join("; "))
        }
        Ok(o) => format!(
            "loaded {} volumes ({} refused)",
            o.volumes.len(),
            o.errors.len()
        ),
        Err(e) => format!("refused: {e}"),
    }
}

/// One DICOM file, as `synthscope info FILE` opens it.
pub fn dicom_file(data: &[u8]) -> String {
    let dir = scratch("dicom_file");
    load(&[put(&dir, "image.dcm", data)])
}

/// A DICOM folder: the input's parts (split at [`SEPARATOR`]) as files of one folder, scanned
/// and decoded as the series browser does.
pub fn dicom_folder(data: &[u8]) -> String {
    let dir = scratch("dicom_folder");
    for (i, part) in split(data).iter().enumerate().take(64) {
        put(&dir, &format!("IM{i:04}"), part);
    }
    load(&[dir])
}

/// A NIfTI-1 or -2 file; gzip-compressed when the input starts with gzip's magic number.
pub fn nifti(data: &[u8]) -> String {
    let dir = scratch("nifti");
    let name = if data.starts_with(&[0x1f, 0x8b]) {
        "image.nii.gz"
    } else {
        "image.nii"
    };
    load(&[put(&dir, name, data)])
}

/// A reader-study file: TOML, or JSON when the input starts with `{`.
pub fn study(data: &[u8]) -> String {
    let dir = scratch("study");
    let name = if data.trim_ascii_start().starts_with(b"{") {
        "study.json"
    } else {
        "study.toml"
    };
    let p = put(&dir, name, data);
    words(crate::study::Study::read(&p), |s| {
        format!("{} cases", s.cases.len())
    })
}

/// A reader log (one JSON line per answer).
pub fn reader_log(data: &[u8]) -> String {
    let dir = scratch("reader_log");
    let p = put(&dir, "reader.jsonl", data);
    words(crate::study::read_log(&p), |l| {
        format!("{} answers", l.answers.len())
    })
}

/// A run folder: config.toml, metrics.jsonl, summary.json and checkpoints/resume.json from the
/// input's parts, read as the Runs view and `train --resume` read them.
pub fn run_config(data: &[u8]) -> String {
    let dir = scratch("run_config");
    let parts = split(data);
    let names = [
        "config.toml",
        "metrics.jsonl",
        "summary.json",
        "checkpoints/resume.json",
    ];
    std::fs::create_dir_all(dir.join("checkpoints")).expect("scratch folder");
    for (name, part) in names.iter().zip(&parts) {
        put(&dir, name, part);
    }
    let config = words(
        crate::train::TrainConfig::read(&dir.join("config.toml")),
        |_| "config".into(),
    );
    let run = words(crate::train::runs::Run::read(&dir), |r| {
        format!("{} steps", r.steps.len())
    });
    let resume = words(crate::train::ResumeState::read(&dir), |_| {
        "resume state".into()
    });
    format!("{config}; {run}; {resume}")
}

/// An ITK transform file (`.tfm`).
pub fn tfm(data: &[u8]) -> String {
    let dir = scratch("tfm");
    let p = put(&dir, "transform.tfm", data);
    words(crate::volume::Affine::read_tfm(&p), |a| format!("{a:?}"))
}

/// A checkpoint: its config (`.json`, the first part) and weights (`.bpk`, the second), loaded on
/// the CPU device as the Synthesis panel loads them.
pub fn checkpoint(data: &[u8]) -> String {
    let dir = scratch("checkpoint");
    let parts = split(data);
    put(&dir, "model.json", parts[0]);
    if let Some(bpk) = parts.get(1) {
        put(&dir, "model.bpk", bpk);
    }
    let device = burn::tensor::Device::flex();
    words(
        crate::model::checkpoint::load(&dir.join("model.json"), &device),
        |(_, m)| format!("{:?}", m.model),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_undoes_join() {
        let parts: [&[u8]; 3] = [b"a", b"", b"ccc"];
        assert_eq!(split(&join(&parts)), parts.to_vec());
        assert_eq!(split(b"plain"), vec![&b"plain"[..]]);
    }

    #[test]
    fn every_target_refuses_garbage_in_words() {
        for t in TARGETS {
            let answer = run(t, b"\x00\x01garbage").unwrap();
            assert!(answer.contains("refused"), "{t}: {answer}");
        }
        assert!(run("nope", b"").is_err());
    }
}
