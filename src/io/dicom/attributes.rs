//! Attribute accessors: one small function per kind of value, each tolerant of attributes that
//! a writer stored as UN (unknown VR), and required attributes that name themselves when missing.

use crate::io::LoadError;
use dicom::core::Tag;
use dicom::object::InMemDicomObject;
use dicom::transfer_syntax::{TransferSyntaxIndex, TransferSyntaxRegistry};
use std::path::Path;

/// Bytes of an element whose VR is UN (written by a tool that did not know the attribute).
pub(super) fn unknown_bytes(obj: &InMemDicomObject, tag: Tag) -> Option<Vec<u8>> {
    let e = obj.get(tag)?;
    if e.vr() == dicom::core::VR::UN {
        e.value().to_bytes().ok().map(|b| b.into_owned())
    } else {
        None
    }
}

/// A text attribute, trimmed of padding.
pub(super) fn text(obj: &InMemDicomObject, tag: Tag) -> Option<String> {
    let raw = match unknown_bytes(obj, tag) {
        Some(b) => String::from_utf8_lossy(&b).into_owned(),
        None => obj.get(tag).and_then(|e| e.to_str().ok())?.into_owned(),
    };
    Some(raw.trim_end_matches(['\0', ' ']).trim().to_string())
}

/// A numeric attribute (DS, FD, ... or their UN text) as floats; None when absent or empty.
pub(super) fn floats(obj: &InMemDicomObject, tag: Tag) -> Option<Vec<f64>> {
    if unknown_bytes(obj, tag).is_some() {
        // Decimal/integer strings stored as UN: parse the text.
        let t = text(obj, tag)?;
        let v: Option<Vec<f64>> = t
            .split('\\')
            .map(|x| x.trim().parse::<f64>().ok())
            .collect();
        return v.filter(|v| !v.is_empty());
    }
    obj.get(tag)
        .and_then(|e| e.to_multi_float64().ok())
        .filter(|v| !v.is_empty())
}

/// An integer attribute (IS, US, UL, ... or their UN bytes).
pub(super) fn int(obj: &InMemDicomObject, tag: Tag) -> Option<i64> {
    if let Some(b) = unknown_bytes(obj, tag) {
        // US/UL as UN are binary little endian; IS as UN is text.
        return match b.len() {
            2 if tag.group() == 0x0028 => Some(u16::from_le_bytes([b[0], b[1]]) as i64),
            4 if tag.group() == 0x0028 && !b.iter().all(|c| c.is_ascii_digit() || *c == b' ') => {
                Some(u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as i64)
            }
            _ => text(obj, tag).and_then(|t| t.parse::<i64>().ok()),
        };
    }
    obj.get(tag).and_then(|e| e.to_int::<i64>().ok())
}

/// The items of a sequence attribute.
pub(super) fn items(obj: &InMemDicomObject, tag: Tag) -> Option<&[InMemDicomObject]> {
    obj.get(tag).and_then(|e| e.items())
}

/// Look a tag up inside a functional-group item: `group[0].seq[0].tag`.
pub(super) fn in_group(group: Option<&InMemDicomObject>, seq: Tag, tag: Tag) -> Option<Vec<f64>> {
    group
        .and_then(|g| items(g, seq))
        .and_then(|it| it.first())
        .and_then(|o| floats(o, tag))
}

/// Human name of a transfer syntax UID.
pub fn transfer_syntax_name(uid: &str) -> String {
    let uid = uid.trim_end_matches('\0').trim();
    match TransferSyntaxRegistry.get(uid) {
        Some(ts) => format!("{} ({uid})", ts.name()),
        None => format!("unknown transfer syntax {uid}"),
    }
}

/// True when the file carries the DICOM preamble's "DICM" magic.
pub(super) fn has_dicm_magic(path: &Path) -> bool {
    use std::io::Read;
    let mut buf = [0u8; 132];
    std::fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut buf))
        .map(|_| &buf[128..132] == b"DICM")
        .unwrap_or(false)
}

/// A required integer attribute: its value, or an error naming the file and the attribute.
pub(super) fn required_int(
    obj: &InMemDicomObject,
    path: &Path,
    tag: Tag,
    name: &str,
    why: &str,
) -> Result<i64, LoadError> {
    int(obj, tag).ok_or_else(|| {
        LoadError::file(
            path,
            format!(
                "no {name} ({:04X},{:04X}): {why}",
                tag.group(),
                tag.element()
            ),
        )
    })
}

/// The first value of a numeric attribute.
pub(super) fn first_float(obj: &InMemDicomObject, tag: Tag) -> Option<f64> {
    floats(obj, tag).and_then(|v| v.first().copied())
}

/// Patient, General Study and Patient Study attributes (and the series' PatientPosition) that
/// a series derived from this one copies: (tag, VR code).
const COPIED_TO_DERIVED: &[(Tag, &str)] = {
    use dicom::dictionary_std::tags as t;
    &[
        (t::PATIENT_NAME, "PN"),
        (t::PATIENT_ID, "LO"),
        (t::ISSUER_OF_PATIENT_ID, "LO"),
        (t::PATIENT_BIRTH_DATE, "DA"),
        (t::PATIENT_BIRTH_TIME, "TM"),
        (t::PATIENT_SEX, "CS"),
        (t::PATIENT_COMMENTS, "LT"),
        (t::PATIENT_AGE, "AS"),
        (t::PATIENT_SIZE, "DS"),
        (t::PATIENT_WEIGHT, "DS"),
        (t::STUDY_INSTANCE_UID, "UI"),
        (t::STUDY_DATE, "DA"),
        (t::STUDY_TIME, "TM"),
        (t::REFERRING_PHYSICIAN_NAME, "PN"),
        (t::STUDY_ID, "SH"),
        (t::ACCESSION_NUMBER, "SH"),
        (t::STUDY_DESCRIPTION, "LO"),
        (t::PATIENT_POSITION, "CS"),
    ]
};

/// What a derived series needs of this file: the attributes it copies (see
/// [`COPIED_TO_DERIVED`]); the instances are filled per slice by the scan.
pub(super) fn dicom_origin(obj: &InMemDicomObject) -> crate::volume::DicomOrigin {
    let header = COPIED_TO_DERIVED
        .iter()
        .filter_map(|(tag, vr)| {
            obj.get(*tag)?;
            let v = text(obj, *tag)?;
            Some((
                (u32::from(tag.group()) << 16) | u32::from(tag.element()),
                vr.to_string(),
                v,
            ))
        })
        .collect();
    crate::volume::DicomOrigin {
        instances: Vec::new(),
        header,
    }
}

/// Give each slice of this file its SOP Class and Instance UID (one shared allocation for all
/// the frames of a multi-frame file) and its frame number (1-based when `multi_frame`).
pub(super) fn set_source_instances(
    obj: &InMemDicomObject,
    slices: &mut [super::scan::SliceRef],
    multi_frame: bool,
) {
    use dicom::dictionary_std::tags as t;
    let class: std::sync::Arc<str> = text(obj, t::SOP_CLASS_UID).unwrap_or_default().into();
    let instance: std::sync::Arc<str> = text(obj, t::SOP_INSTANCE_UID).unwrap_or_default().into();
    for s in slices {
        s.sop = crate::volume::SourceInstance {
            sop_class_uid: class.clone(),
            sop_instance_uid: instance.clone(),
            frame: if multi_frame { s.frame + 1 } else { 0 },
        };
    }
}
