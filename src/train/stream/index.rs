//! The index of a patient folder: built once (one patient in memory at a time), kept beside the
//! data, reused while the folder is unchanged.

use super::super::TrainError;
use super::super::data::patient_dirs;
use crate::io::{Progress, load_paths};
use crate::model::Direction;
use crate::model::normalise::Normalisation;
use crate::volume::resample::resample;
use crate::volume::{Affine, Volume};
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::{Path, PathBuf};

/// Version of the index and slice-file layout.
pub const INDEX_FORMAT: u32 = 1;

/// One patient of the index.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct PatientEntry {
    /// Folder name.
    pub name: String,
    /// Slice size.
    pub nx: usize,
    /// Slice size.
    pub ny: usize,
    /// Slices.
    pub nz: usize,
    /// Input modality's raw-to-0..1 map, applied when a slice is read.
    pub input_low: f32,
    /// See `input_low`.
    pub input_high: f32,
    /// Target modality's map.
    pub target_low: f32,
    /// See `target_low`.
    pub target_high: f32,
    /// Slices with at least 10% head.
    pub slices: Vec<usize>,
    /// The slice file (relative to the index folder): per slice, the input plane (f32 LE, raw
    /// units on the input's grid), the target plane (f32 LE), the mask plane (u8).
    pub file: String,
    /// What the slice file was made from: source paths with their sizes and modification times.
    pub source: Vec<(String, u64, u64)>,
}

impl PatientEntry {
    /// Bytes of one slice's record in the slice file.
    pub fn record_bytes(&self) -> usize {
        self.nx * self.ny * 9
    }

    /// The input normalisation.
    pub fn input_norm(&self) -> Normalisation {
        Normalisation {
            low: self.input_low,
            high: self.input_high,
        }
    }

    /// The target normalisation.
    pub fn target_norm(&self) -> Normalisation {
        Normalisation {
            low: self.target_low,
            high: self.target_high,
        }
    }
}

/// A folder of patients, indexed for streaming.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct StreamIndex {
    /// Layout version.
    pub format: u32,
    /// The patient folder.
    pub root: PathBuf,
    /// Where `index.json` and the slice files are.
    pub dir: PathBuf,
    /// Which way the network translates (fixes input and target).
    pub direction: Direction,
    /// Patients, in folder-name order.
    pub patients: Vec<PatientEntry>,
}

/// (path, size, mtime seconds) of a file, or of every file directly in a folder.
fn fingerprint(p: &Path) -> Vec<(String, u64, u64)> {
    let one = |p: &Path| {
        let m = std::fs::metadata(p).ok();
        (
            p.display().to_string(),
            m.as_ref().map_or(0, |m| m.len()),
            m.and_then(|m| m.modified().ok())
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map_or(0, |d| d.as_secs()),
        )
    };
    if p.is_dir() {
        let mut files: Vec<PathBuf> = std::fs::read_dir(p)
            .map(|r| r.filter_map(|e| e.ok().map(|e| e.path())).collect())
            .unwrap_or_default();
        files.sort();
        files.iter().map(|f| one(f)).collect()
    } else {
        vec![one(p)]
    }
}

fn load_one(path: &Path) -> Result<Volume, TrainError> {
    let out = load_paths(&[path.to_path_buf()], &Progress::default())?;
    out.volumes.into_iter().next().ok_or_else(|| {
        let why = out
            .errors
            .first()
            .map(|e| e.to_string())
            .unwrap_or_else(|| "no image found".into());
        TrainError::file(path, why)
    })
}

/// Index one patient: load it, put both modalities on the input's grid, and write its slice
/// file. Only this patient is in memory.
fn index_patient(
    name: &str,
    (ct, mr, mask): (&Path, &Path, Option<&Path>),
    direction: Direction,
    dir: &Path,
    file: &str,
) -> Result<PatientEntry, TrainError> {
    let mut source = fingerprint(ct);
    source.extend(fingerprint(mr));
    if let Some(m) = mask {
        source.extend(fingerprint(m));
    }
    if direction == Direction::CtDenoise {
        return Err(TrainError::Config(
            "CT denoise trains on simulated (low-dose, normal-dose) pairs (data kind low_dose), not on a streamed CT/MR folder".into(),
        ));
    }
    let (ct_v, mr_v) = (load_one(ct)?, load_one(mr)?);
    let id = Affine::identity([0.0; 3]);
    let (input, target, in_norm, target_norm) = match direction {
        Direction::MrToCt => {
            let ct_on = resample(&ct_v, &mr_v.geometry, &id, -1000.0);
            let n = Normalisation::mr(&mr_v);
            (mr_v, ct_on, n, Normalisation::ct())
        }
        Direction::CtToMr | Direction::CtDenoise => {
            let mr_on = resample(&mr_v, &ct_v.geometry, &id, 0.0);
            let n = Normalisation::mr(&mr_on);
            (ct_v, mr_on, Normalisation::ct(), n)
        }
    };
    let ct_grid = match direction {
        Direction::MrToCt => &target,
        Direction::CtToMr | Direction::CtDenoise => &input,
    };
    let mask: Vec<bool> = match mask {
        Some(p) => {
            let m = resample(&load_one(p)?, &input.geometry, &id, 0.0);
            m.data.iter().map(|v| *v > 0.0).collect()
        }
        None => ct_grid.data.iter().map(|v| *v > -500.0).collect(),
    };
    let [nx, ny, nz] = input.geometry.dims;
    let plane = nx * ny;
    let slices: Vec<usize> = (0..nz)
        .filter(|z| {
            mask[z * plane..(z + 1) * plane]
                .iter()
                .filter(|m| **m)
                .count()
                * 10
                >= plane
        })
        .collect();
    if slices.is_empty() {
        return Err(TrainError::file(
            ct,
            "no slice has at least 10% head (CT above -500 HU or the mask)",
        ));
    }
    let path = dir.join(file);
    let partial = dir.join(format!("{file}.partial"));
    let write = || -> std::io::Result<()> {
        let mut w = std::io::BufWriter::new(std::fs::File::create(&partial)?);
        for z in 0..nz {
            let r = z * plane..(z + 1) * plane;
            for v in &input.data[r.clone()] {
                w.write_all(&v.to_le_bytes())?;
            }
            for v in &target.data[r.clone()] {
                w.write_all(&v.to_le_bytes())?;
            }
            let m: Vec<u8> = mask[r].iter().map(|&b| b as u8).collect();
            w.write_all(&m)?;
        }
        w.into_inner().map_err(|e| e.into_error())?.sync_all()?;
        std::fs::rename(&partial, &path)
    };
    write().map_err(|e| TrainError::file(&path, format!("cannot write the slice file: {e}")))?;
    Ok(PatientEntry {
        name: name.to_string(),
        nx,
        ny,
        nz,
        input_low: in_norm.low,
        input_high: in_norm.high,
        target_low: target_norm.low,
        target_high: target_norm.high,
        slices,
        file: file.to_string(),
        source,
    })
}

impl StreamIndex {
    /// Where the index of `root` lives unless told otherwise: `root/.synthscope-index`.
    pub fn default_dir(root: &Path) -> PathBuf {
        root.join(".synthscope-index")
    }

    /// The index of `root` in `dir`: read when it exists and every patient's sources are
    /// unchanged, else (re)built for the patients that changed, one patient in memory at a time.
    pub fn open_or_build(
        root: &Path,
        dir: &Path,
        direction: Direction,
        progress: &Progress,
    ) -> Result<Self, TrainError> {
        let patients = patient_dirs(root)?;
        std::fs::create_dir_all(dir)
            .map_err(|e| TrainError::file(dir, format!("cannot create the index folder: {e}")))?;
        let index_path = dir.join("index.json");
        let old: Option<StreamIndex> = std::fs::read_to_string(&index_path)
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok())
            .filter(|i: &StreamIndex| i.format == INDEX_FORMAT && i.direction == direction);
        progress.start("Indexing patients", patients.len());
        let mut entries = Vec::with_capacity(patients.len());
        for (k, (d, ct, mr, mask)) in patients.iter().enumerate() {
            progress.check()?;
            let name = d
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let mut source = fingerprint(ct);
            source.extend(fingerprint(mr));
            if let Some(m) = mask {
                source.extend(fingerprint(m));
            }
            let file = format!("{k:05}.slices");
            let reuse = old.as_ref().and_then(|o| {
                o.patients
                    .iter()
                    .find(|p| p.name == name && p.source == source && p.file == file)
                    .filter(|p| {
                        std::fs::metadata(dir.join(&p.file))
                            .is_ok_and(|m| m.len() == (p.record_bytes() * p.nz) as u64)
                    })
                    .cloned()
            });
            entries.push(match reuse {
                Some(e) => e,
                None => index_patient(
                    &name,
                    (ct.as_path(), mr.as_path(), mask.as_deref()),
                    direction,
                    dir,
                    &file,
                )?,
            });
            progress.step();
        }
        let index = StreamIndex {
            format: INDEX_FORMAT,
            root: root.to_path_buf(),
            dir: dir.to_path_buf(),
            direction,
            patients: entries,
        };
        let text =
            serde_json::to_string_pretty(&index).map_err(|e| TrainError::Config(e.to_string()))?;
        crate::train::write_atomic(&index_path, &text)?;
        Ok(index)
    }

    /// Training slices: every head slice of every patient, as (patient, z).
    pub fn slice_refs(&self) -> Vec<(usize, usize)> {
        self.patients
            .iter()
            .enumerate()
            .flat_map(|(i, p)| p.slices.iter().map(move |&z| (i, z)))
            .collect()
    }
}
