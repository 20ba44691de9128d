//! What the database keeps of one file: its header, read up to the pixel data.

use super::{CancelFn, ProgressFn};
use dicom::core::Tag;
use dicom::dictionary_std::{tags, uids};
use dicom::object::{DefaultDicomObject, OpenFileOptions};
use rayon::prelude::*;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

/// The indexed attributes of one instance.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct InstanceHeader {
    /// The file.
    pub path: PathBuf,
    /// Its size in bytes.
    pub bytes: u64,
    /// Transfer syntax UID (file meta).
    pub transfer_syntax: String,
    /// SOPClassUID.
    pub sop_class_uid: String,
    /// SOPInstanceUID.
    pub sop_instance_uid: String,
    /// InstanceNumber.
    pub instance_number: Option<i64>,
    /// NumberOfFrames (1 when absent).
    pub frames: i64,
    /// PatientID.
    pub patient_id: String,
    /// PatientName.
    pub patient_name: String,
    /// PatientBirthDate.
    pub patient_birth_date: String,
    /// PatientSex.
    pub patient_sex: String,
    /// StudyInstanceUID.
    pub study_uid: String,
    /// StudyDate.
    pub study_date: String,
    /// StudyTime.
    pub study_time: String,
    /// StudyDescription.
    pub study_description: String,
    /// AccessionNumber.
    pub accession_number: String,
    /// StudyID.
    pub study_id: String,
    /// SeriesInstanceUID.
    pub series_uid: String,
    /// Modality.
    pub modality: String,
    /// SeriesDescription.
    pub series_description: String,
    /// SeriesNumber.
    pub series_number: Option<i64>,
    /// SeriesDate.
    pub series_date: String,
    /// Rows (None for non-image instances).
    pub rows: Option<i64>,
    /// Columns.
    pub cols: Option<i64>,
}

/// What reading one file gave.
pub(super) enum Read {
    /// A DICOM instance.
    Instance(Box<InstanceHeader>),
    /// Not a DICOM file (no "DICM" preamble), or a DICOMDIR index.
    NotDicom,
    /// A DICOM file that cannot be read or indexed, and why.
    Unreadable(String),
}

fn text(obj: &DefaultDicomObject, tag: Tag) -> String {
    obj.get(tag)
        .and_then(|e| e.to_str().ok())
        .map(|s| s.trim_end_matches(['\0', ' ']).trim().to_string())
        .unwrap_or_default()
}

fn int(obj: &DefaultDicomObject, tag: Tag) -> Option<i64> {
    obj.get(tag).and_then(|e| e.to_int::<i64>().ok())
}

fn has_dicm_magic(path: &Path) -> bool {
    use std::io::Read;
    let mut buf = [0u8; 132];
    std::fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut buf))
        .map(|_| &buf[128..132] == b"DICM")
        .unwrap_or(false)
}

/// Read one file's header.
pub(super) fn read_header(path: &Path) -> Read {
    if !has_dicm_magic(path) {
        return Read::NotDicom;
    }
    use crate::io::dicom::bounds;
    let ceiling = match bounds::check_file(path, bounds::Extent::UntilPixelData) {
        Ok(c) => c,
        Err(crate::io::LoadError::File { problem, .. }) => return Read::Unreadable(problem),
        Err(e) => return Read::Unreadable(e.to_string()),
    };
    let opened = std::panic::catch_unwind(|| {
        crate::io::alloc_guard::with_ceiling(ceiling, || {
            OpenFileOptions::new()
                .read_until(tags::PIXEL_DATA)
                .open_file(path)
        })
    });
    let obj = match opened {
        Ok(Ok(o)) => o,
        Ok(Err(e)) => return Read::Unreadable(format!("not a readable DICOM file: {e}")),
        Err(_) => return Read::Unreadable("the DICOM parser failed on this file".into()),
    };
    let meta_class = obj
        .meta()
        .media_storage_sop_class_uid()
        .trim_end_matches('\0');
    if meta_class == uids::MEDIA_STORAGE_DIRECTORY_STORAGE {
        return Read::NotDicom;
    }
    let mut h = InstanceHeader {
        path: path.to_path_buf(),
        bytes: std::fs::metadata(path).map(|m| m.len()).unwrap_or(0),
        transfer_syntax: obj
            .meta()
            .transfer_syntax()
            .trim_end_matches('\0')
            .to_string(),
        sop_class_uid: text(&obj, tags::SOP_CLASS_UID),
        sop_instance_uid: text(&obj, tags::SOP_INSTANCE_UID),
        instance_number: int(&obj, tags::INSTANCE_NUMBER),
        frames: int(&obj, tags::NUMBER_OF_FRAMES).unwrap_or(1).max(1),
        patient_id: text(&obj, tags::PATIENT_ID),
        patient_name: text(&obj, tags::PATIENT_NAME),
        patient_birth_date: text(&obj, tags::PATIENT_BIRTH_DATE),
        patient_sex: text(&obj, tags::PATIENT_SEX),
        study_uid: text(&obj, tags::STUDY_INSTANCE_UID),
        study_date: text(&obj, tags::STUDY_DATE),
        study_time: text(&obj, tags::STUDY_TIME),
        study_description: text(&obj, tags::STUDY_DESCRIPTION),
        accession_number: text(&obj, tags::ACCESSION_NUMBER),
        study_id: text(&obj, tags::STUDY_ID),
        series_uid: text(&obj, tags::SERIES_INSTANCE_UID),
        modality: text(&obj, tags::MODALITY),
        series_description: text(&obj, tags::SERIES_DESCRIPTION),
        series_number: int(&obj, tags::SERIES_NUMBER),
        series_date: text(&obj, tags::SERIES_DATE),
        rows: int(&obj, tags::ROWS),
        cols: int(&obj, tags::COLUMNS),
    };
    if h.sop_class_uid.is_empty() {
        h.sop_class_uid = meta_class.to_string();
    }
    if h.sop_instance_uid.is_empty() {
        h.sop_instance_uid = obj
            .meta()
            .media_storage_sop_instance_uid()
            .trim_end_matches('\0')
            .to_string();
    }
    for (v, what) in [
        (&h.sop_instance_uid, "SOPInstanceUID (0008,0018)"),
        (&h.series_uid, "SeriesInstanceUID (0020,000E)"),
        (&h.study_uid, "StudyInstanceUID (0020,000D)"),
    ] {
        if v.is_empty() {
            return Read::Unreadable(format!("no {what}: cannot be indexed"));
        }
    }
    Read::Instance(Box::new(h))
}

/// Read the headers of `files` in parallel (one progress step each); files left unread once
/// `cancel` says so come back as `Unreadable("cancelled")`.
pub(super) fn read_headers(files: &[PathBuf], progress: ProgressFn, cancel: CancelFn) -> Vec<Read> {
    let done = AtomicUsize::new(0);
    progress("Reading DICOM headers", 0, files.len());
    files
        .par_iter()
        .map(|p| {
            if cancel() {
                return Read::Unreadable("cancelled".into());
            }
            let r = read_header(p);
            let n = done.fetch_add(1, Ordering::Relaxed) + 1;
            progress("Reading DICOM headers", n, files.len());
            r
        })
        .collect()
}
