//! Writing a volume as a DICOM series (one file per slice, explicit VR little endian).

use crate::io::LoadError;
use crate::volume::{Modality, Volume};
use dicom::core::{DataElement, PrimitiveValue, Tag, VR};
use dicom::dictionary_std::{tags, uids};
use dicom::object::{FileMetaTableBuilder, InMemDicomObject};
use rayon::prelude::*;
use std::path::{Path, PathBuf};

/// How to write a series.
#[derive(Clone, Debug)]
pub struct DicomWriteOptions {
    /// SeriesNumber (0020,0011).
    pub series_number: i32,
    /// ImageType (0008,0008), e.g. `ORIGINAL\PRIMARY\AXIAL` or `DERIVED\SECONDARY`.
    pub image_type: String,
    /// File name prefix; files are `{prefix}{index:04}.dcm`.
    pub prefix: String,
}

impl Default for DicomWriteOptions {
    fn default() -> Self {
        Self {
            series_number: 1,
            image_type: "ORIGINAL\\PRIMARY\\AXIAL".into(),
            prefix: "IM".into(),
        }
    }
}

/// A DICOM UID under the 2.25 root derived from a 128-bit hash of `text`.
pub fn uid_from(text: &str) -> String {
    let mut a: u64 = 0xcbf2_9ce4_8422_2325;
    let mut b: u64 = 0x6c62_272e_07bb_0142;
    for byte in text.bytes() {
        a = (a ^ byte as u64).wrapping_mul(0x100_0000_01b3);
        b = (b ^ byte as u64)
            .wrapping_mul(0x100_0000_01b3)
            .rotate_left(5);
    }
    let v = ((a as u128) << 64 | b as u128) >> 1;
    format!("2.25.{v}")
}

/// Format a decimal string (DS) in at most 16 characters.
fn ds(v: f64) -> String {
    for prec in (0..=8).rev() {
        let s = format!("{v:.prec$}");
        let s = if s.contains('.') {
            s.trim_end_matches('0').trim_end_matches('.').to_string()
        } else {
            s
        };
        if s.len() <= 16 {
            return if s == "-0" { "0".into() } else { s };
        }
    }
    format!("{v:.6e}")
}

fn ds_multi(v: &[f64]) -> String {
    v.iter().map(|x| ds(*x)).collect::<Vec<_>>().join("\\")
}

fn put_str(obj: &mut InMemDicomObject, tag: Tag, vr: VR, value: impl Into<String>) {
    obj.put(DataElement::new(
        tag,
        vr,
        PrimitiveValue::from(value.into()),
    ));
}

/// Write `volume` as a series of single-frame files in `dir` (created if missing).
///
/// Values are stored as 16-bit integers with a rescale chosen so integer data (HU) round-trips
/// exactly; positions and orientation come from the volume geometry (LPS).
pub fn write_series(
    volume: &Volume,
    dir: &Path,
    opts: &DicomWriteOptions,
) -> Result<Vec<PathBuf>, LoadError> {
    std::fs::create_dir_all(dir)
        .map_err(|e| LoadError::file(dir, format!("cannot create folder: {e}")))?;
    let g = &volume.geometry;
    let [nx, ny, nz] = g.dims;
    let (min, max) = volume.min_max();
    let integral = volume.data.iter().all(|v| v.fract() == 0.0);
    let (signed, slope, intercept) = if integral && min >= -32768.0 && max <= 32767.0 {
        (true, 1.0f64, 0.0f64)
    } else if integral && min >= 0.0 && max <= 65535.0 {
        (false, 1.0, 0.0)
    } else {
        let slope = ((max - min) as f64 / 65000.0).max(1e-9);
        (true, slope, (max as f64 + min as f64) / 2.0)
    };
    let meta = &volume.meta;
    let modality = match meta.modality.code() {
        "" => "OT".to_string(),
        code => code.to_string(),
    };
    let is_ct = meta.modality == Modality::Ct;
    let sop_class = match meta.modality {
        Modality::Ct => uids::CT_IMAGE_STORAGE,
        Modality::Mr => uids::MR_IMAGE_STORAGE,
        Modality::Other(_) => uids::SECONDARY_CAPTURE_IMAGE_STORAGE,
    };
    let series_uid = if meta.series_uid.starts_with("2.25.")
        || meta
            .series_uid
            .chars()
            .all(|c| c.is_ascii_digit() || c == '.')
            && !meta.series_uid.is_empty()
    {
        meta.series_uid.clone()
    } else {
        uid_from(&format!("series:{}:{}", meta.series_uid, volume.id))
    };
    let study_uid = if meta.study_uid.is_empty() {
        uid_from(&format!("study:{series_uid}"))
    } else {
        meta.study_uid.clone()
    };
    let for_uid = if meta.frame_of_reference_uid.is_empty() {
        uid_from(&format!("for:{series_uid}"))
    } else {
        meta.frame_of_reference_uid.clone()
    };
    let d = &g.direction;
    let iop = [d[0][0], d[1][0], d[2][0], d[0][1], d[1][1], d[2][1]];
    let (wl, ww) = if is_ct {
        (40.0, 400.0)
    } else {
        let (lo, hi) = volume.robust_range(2.0, 98.0);
        (((lo + hi) / 2.0) as f64, (hi - lo).max(1.0) as f64)
    };
    (0..nz)
        .into_par_iter()
        .map(|z| {
            let mut o = InMemDicomObject::new_empty();
            let sop_uid = uid_from(&format!("{series_uid}/{z}"));
            put_str(&mut o, tags::SPECIFIC_CHARACTER_SET, VR::CS, "ISO_IR 100");
            put_str(&mut o, tags::IMAGE_TYPE, VR::CS, opts.image_type.clone());
            put_str(&mut o, tags::SOP_CLASS_UID, VR::UI, sop_class);
            put_str(&mut o, tags::SOP_INSTANCE_UID, VR::UI, sop_uid.clone());
            put_str(&mut o, tags::MODALITY, VR::CS, modality.clone());
            put_str(
                &mut o,
                tags::PATIENT_NAME,
                VR::PN,
                meta.patient_name.clone(),
            );
            put_str(&mut o, tags::PATIENT_ID, VR::LO, meta.patient_id.clone());
            put_str(&mut o, tags::STUDY_INSTANCE_UID, VR::UI, study_uid.clone());
            put_str(
                &mut o,
                tags::STUDY_DESCRIPTION,
                VR::LO,
                meta.study_description.clone(),
            );
            put_str(
                &mut o,
                tags::SERIES_INSTANCE_UID,
                VR::UI,
                series_uid.clone(),
            );
            put_str(
                &mut o,
                tags::SERIES_DESCRIPTION,
                VR::LO,
                meta.description.clone(),
            );
            put_str(
                &mut o,
                tags::SERIES_NUMBER,
                VR::IS,
                opts.series_number.to_string(),
            );
            put_str(&mut o, tags::INSTANCE_NUMBER, VR::IS, (z + 1).to_string());
            put_str(
                &mut o,
                tags::FRAME_OF_REFERENCE_UID,
                VR::UI,
                for_uid.clone(),
            );
            put_str(
                &mut o,
                tags::IMAGE_POSITION_PATIENT,
                VR::DS,
                ds_multi(&g.world_from_voxel([0.0, 0.0, z as f64])),
            );
            put_str(
                &mut o,
                tags::IMAGE_ORIENTATION_PATIENT,
                VR::DS,
                ds_multi(&iop),
            );
            put_str(
                &mut o,
                tags::PIXEL_SPACING,
                VR::DS,
                ds_multi(&[g.spacing[1], g.spacing[0]]),
            );
            put_str(&mut o, tags::SLICE_THICKNESS, VR::DS, ds(g.spacing[2]));
            put_str(
                &mut o,
                tags::SPACING_BETWEEN_SLICES,
                VR::DS,
                ds(g.spacing[2]),
            );
            o.put(DataElement::new(
                tags::SAMPLES_PER_PIXEL,
                VR::US,
                PrimitiveValue::from(1u16),
            ));
            put_str(
                &mut o,
                tags::PHOTOMETRIC_INTERPRETATION,
                VR::CS,
                "MONOCHROME2",
            );
            o.put(DataElement::new(
                tags::ROWS,
                VR::US,
                PrimitiveValue::from(ny as u16),
            ));
            o.put(DataElement::new(
                tags::COLUMNS,
                VR::US,
                PrimitiveValue::from(nx as u16),
            ));
            o.put(DataElement::new(
                tags::BITS_ALLOCATED,
                VR::US,
                PrimitiveValue::from(16u16),
            ));
            o.put(DataElement::new(
                tags::BITS_STORED,
                VR::US,
                PrimitiveValue::from(16u16),
            ));
            o.put(DataElement::new(
                tags::HIGH_BIT,
                VR::US,
                PrimitiveValue::from(15u16),
            ));
            o.put(DataElement::new(
                tags::PIXEL_REPRESENTATION,
                VR::US,
                PrimitiveValue::from(signed as u16),
            ));
            put_str(&mut o, tags::WINDOW_CENTER, VR::DS, ds(wl));
            put_str(&mut o, tags::WINDOW_WIDTH, VR::DS, ds(ww));
            put_str(&mut o, tags::RESCALE_INTERCEPT, VR::DS, ds(intercept));
            put_str(&mut o, tags::RESCALE_SLOPE, VR::DS, ds(slope));
            if is_ct {
                put_str(&mut o, tags::RESCALE_TYPE, VR::LO, "HU");
            }
            let plane = &volume.data[z * nx * ny..(z + 1) * nx * ny];
            let mut bytes = Vec::with_capacity(plane.len() * 2);
            for &v in plane {
                let q = ((v as f64 - intercept) / slope).round();
                if signed {
                    bytes.extend_from_slice(&(q.clamp(-32768.0, 32767.0) as i16).to_le_bytes());
                } else {
                    bytes.extend_from_slice(&(q.clamp(0.0, 65535.0) as u16).to_le_bytes());
                }
            }
            o.put(DataElement::new(
                tags::PIXEL_DATA,
                VR::OW,
                PrimitiveValue::from(bytes),
            ));
            let file = o
                .with_meta(
                    FileMetaTableBuilder::new().transfer_syntax(uids::EXPLICIT_VR_LITTLE_ENDIAN),
                )
                .map_err(|e| LoadError::file(dir, format!("cannot build DICOM meta: {e}")))?;
            let path = dir.join(format!("{}{:04}.dcm", opts.prefix, z + 1));
            file.write_to_file(&path)
                .map_err(|e| LoadError::file(&path, format!("cannot write: {e}")))?;
            Ok(path)
        })
        .collect()
}

/// A fresh UID: process id, time and a counter through [`uid_from`].
pub fn new_uid(kind: &str) -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    uid_from(&format!(
        "{kind}:{}:{t}:{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ))
}

/// Write a derived (e.g. synthetic) volume as a new DICOM series of a new study: new Study,
/// Series and SOP Instance UIDs, ImageType `DERIVED\SECONDARY`, the patient and frame of
/// reference copied from `source` (the image it was derived from), positions from its geometry.
pub fn write_derived_series(
    volume: &Volume,
    source: &crate::volume::VolumeMeta,
    description: &str,
    dir: &Path,
) -> Result<Vec<PathBuf>, LoadError> {
    let mut v = volume.clone();
    v.meta.patient_name = source.patient_name.clone();
    v.meta.patient_id = source.patient_id.clone();
    v.meta.frame_of_reference_uid = source.frame_of_reference_uid.clone();
    v.meta.study_description = format!("{} (SynthScope)", source.study_description)
        .trim()
        .to_string();
    v.meta.study_uid = new_uid("study");
    v.meta.series_uid = new_uid("series");
    v.meta.description = description.to_string();
    let opts = DicomWriteOptions {
        series_number: 1001,
        image_type: "DERIVED\\SECONDARY".into(),
        prefix: "SYN".into(),
    };
    write_series(&v, dir, &opts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ds_fits_16_chars() {
        assert_eq!(ds(0.8), "0.8");
        assert_eq!(ds(-102.39999999999999), "-102.4");
        assert!(ds(123456.123456789).len() <= 16);
        assert_eq!(ds(-0.0), "0");
    }

    #[test]
    fn uids_are_valid() {
        let u = uid_from("x");
        assert!(
            u.len() <= 64
                && u.starts_with("2.25.")
                && u.chars().all(|c| c.is_ascii_digit() || c == '.')
        );
        assert_ne!(u, uid_from("y"));
    }
}
