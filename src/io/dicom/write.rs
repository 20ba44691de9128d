//! Writing a volume as a DICOM series: one CT Image or MR Image instance per slice (Secondary
//! Capture for other modalities), explicit VR little endian, each file written atomically.
//!
//! [`write_series`] writes an original series (the demo phantom, a converted NIfTI);
//! [`write_derived_series`] writes a synthetic one into its source's study: new Series and SOP
//! Instance UIDs, the source's Frame of Reference, patient and study attributes, ImageType
//! `DERIVED\SECONDARY`, a DerivationDescription naming the model and SynthScope's version, and a
//! SourceImageSequence referencing the instance each slice was computed from.
//!
//! Every UID written is valid by PS3.5 9.1 ([`validate_uid`]): new ones are `2.25.` and a UUID
//! as one decimal integer (random for new series, name-based for their instances); a UID read
//! from elsewhere that is not valid is replaced by a name-based one derived from it.

use crate::io::{LoadError, Progress};
use crate::volume::{Modality, SourceInstance, Volume, VolumeMeta};
use dicom::core::value::DataSetSequence;
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

/// Why `uid` is not a valid DICOM UID (PS3.5 9.1), or Ok: 1 to 64 characters, digits and dots
/// only, components not empty and without leading zeros; under the 2.25 root exactly
/// `2.25.<integer below 2^128>` (a UUID as one decimal integer, ISO/IEC 9834-8).
pub fn validate_uid(uid: &str) -> Result<(), String> {
    if uid.is_empty() {
        return Err("empty UID".into());
    }
    if uid.len() > 64 {
        return Err(format!("{uid}: {} characters, more than 64", uid.len()));
    }
    if let Some(c) = uid.chars().find(|c| !c.is_ascii_digit() && *c != '.') {
        return Err(format!("{uid}: {c:?} is not a digit or a dot"));
    }
    let parts: Vec<&str> = uid.split('.').collect();
    for (i, p) in parts.iter().enumerate() {
        if p.is_empty() {
            return Err(format!("{uid}: component {} is empty", i + 1));
        }
        if p.len() > 1 && p.starts_with('0') {
            return Err(format!(
                "{uid}: component {} ({p}) has a leading zero",
                i + 1
            ));
        }
    }
    if parts.len() >= 2 && parts[0] == "2" && parts[1] == "25" {
        if parts.len() != 3 {
            return Err(format!(
                "{uid}: under the 2.25 root only 2.25.<UUID as one integer> is allowed"
            ));
        }
        if parts[2].parse::<u128>().is_err() {
            return Err(format!("{uid}: {} is larger than a UUID (2^128)", parts[2]));
        }
    }
    Ok(())
}

/// SynthScope's UUID namespace for name-based UIDs.
fn namespace() -> uuid::Uuid {
    uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_OID, b"SynthScope DICOM UIDs")
}

/// A DICOM UID `2.25.<UUID>` with the name-based (version 5) UUID of `text`: the same text
/// always gives the same UID, different texts different ones.
pub fn uid_from(text: &str) -> String {
    format!(
        "2.25.{}",
        uuid::Uuid::new_v5(&namespace(), text.as_bytes()).as_u128()
    )
}

/// A fresh DICOM UID `2.25.<UUID>` with a random (version 4) UUID.
pub fn new_uid() -> String {
    format!("2.25.{}", uuid::Uuid::new_v4().as_u128())
}

/// `uid` itself when it is valid, otherwise a name-based UID derived from it (and `kind`), so
/// what a file that broke the rules called one series is still one series here.
fn valid_or_derived(uid: &str, kind: &str) -> String {
    if validate_uid(uid).is_ok() {
        uid.to_string()
    } else {
        uid_from(&format!("{kind}:{uid}"))
    }
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

/// At most `n` characters of `s` (LO holds 64, SH 16).
fn clip(s: &str, n: usize) -> String {
    s.chars().take(n).collect()
}

fn put_str(obj: &mut InMemDicomObject, tag: Tag, vr: VR, value: impl Into<String>) {
    let value = value.into();
    let v = if value.is_empty() {
        PrimitiveValue::Empty
    } else {
        PrimitiveValue::from(value)
    };
    obj.put(DataElement::new(tag, vr, v));
}

fn put_u16(obj: &mut InMemDicomObject, tag: Tag, value: u16) {
    obj.put(DataElement::new(tag, VR::US, PrimitiveValue::from(value)));
}

/// UTC now as DICOM DA (YYYYMMDD) and TM (HHMMSS).
fn now_da_tm() -> (String, String) {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let (days, s) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil date from days since 1970-01-01 (proleptic Gregorian).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (
        format!("{y:04}{m:02}{d:02}"),
        format!("{:02}{:02}{:02}", s / 3600, s / 60 % 60, s % 60),
    )
}

/// Everything one series' files share.
struct Plan {
    sop_class: &'static str,
    modality: String,
    series_uid: String,
    study_uid: String,
    for_uid: String,
    image_type: String,
    series_number: i32,
    series_description: String,
    prefix: String,
    /// Patient and study module attributes (tag, VR, value), written as given.
    header: Vec<(Tag, VR, String)>,
    /// DerivationDescription, for derived series.
    derivation: Option<String>,
    /// The source instance of each slice (empty: no SourceImageSequence).
    sources: Vec<SourceInstance>,
}

impl Plan {
    /// The plan for `volume` as an original series: UIDs from its metadata where valid, the
    /// patient and study attributes its DICOM origin carried (empty where unknown).
    fn original(volume: &Volume, opts: &DicomWriteOptions) -> Plan {
        let meta = &volume.meta;
        let series_uid = if validate_uid(&meta.series_uid).is_ok() {
            meta.series_uid.clone()
        } else {
            uid_from(&format!("series:{}:{}", meta.series_uid, volume.id))
        };
        let study_uid = if meta.study_uid.is_empty() {
            uid_from(&format!("study:{series_uid}"))
        } else {
            valid_or_derived(&meta.study_uid, "study")
        };
        let for_uid = if meta.frame_of_reference_uid.is_empty() {
            uid_from(&format!("for:{series_uid}"))
        } else {
            valid_or_derived(&meta.frame_of_reference_uid, "for")
        };
        let (sop_class, modality) = match &meta.modality {
            Modality::Ct => (uids::CT_IMAGE_STORAGE, "CT".to_string()),
            Modality::Mr => (uids::MR_IMAGE_STORAGE, "MR".to_string()),
            Modality::Other(c) if c.is_empty() => {
                (uids::SECONDARY_CAPTURE_IMAGE_STORAGE, "OT".to_string())
            }
            Modality::Other(c) => (uids::SECONDARY_CAPTURE_IMAGE_STORAGE, c.clone()),
        };
        Plan {
            sop_class,
            modality,
            series_uid,
            study_uid,
            for_uid,
            image_type: image_type_for(sop_class, &opts.image_type),
            series_number: opts.series_number,
            series_description: clip(&meta.description, 64),
            prefix: opts.prefix.clone(),
            header: patient_and_study(meta),
            derivation: None,
            sources: Vec::new(),
        }
    }
}

/// ImageType for the IOD: both require value 3; CT's is AXIAL (added when missing), MR has
/// no AXIAL among its terms, so OTHER there.
fn image_type_for(sop_class: &str, asked: &str) -> String {
    let mut v: Vec<&str> = asked.split('\\').collect();
    if sop_class == uids::CT_IMAGE_STORAGE && v.len() == 2 {
        v.push("AXIAL");
    } else if sop_class == uids::MR_IMAGE_STORAGE && v.len() == 2 {
        v.push("OTHER");
    } else if sop_class == uids::MR_IMAGE_STORAGE && v.len() == 3 && v[2] == "AXIAL" {
        v[2] = "OTHER";
    }
    v.join("\\")
}

/// The Patient and General Study attributes for a series of `meta`: the Type 2 ones empty,
/// then what its DICOM origin carried, then its own patient name and ID and study description.
fn patient_and_study(meta: &VolumeMeta) -> Vec<(Tag, VR, String)> {
    let mut h: Vec<(Tag, VR, String)> = [
        (tags::PATIENT_BIRTH_DATE, VR::DA),
        (tags::PATIENT_SEX, VR::CS),
        (tags::STUDY_DATE, VR::DA),
        (tags::STUDY_TIME, VR::TM),
        (tags::REFERRING_PHYSICIAN_NAME, VR::PN),
        (tags::STUDY_ID, VR::SH),
        (tags::ACCESSION_NUMBER, VR::SH),
        (tags::PATIENT_POSITION, VR::CS),
    ]
    .into_iter()
    .map(|(t, vr)| (t, vr, String::new()))
    .collect();
    let mut set = |tag: Tag, vr: VR, value: String| match h.iter_mut().find(|e| e.0 == tag) {
        Some(e) => *e = (tag, vr, value),
        None => h.push((tag, vr, value)),
    };
    if let Some(o) = &meta.dicom {
        for (t, vr, v) in &o.header {
            let tag = Tag((t >> 16) as u16, (t & 0xffff) as u16);
            if tag == tags::STUDY_INSTANCE_UID {
                continue;
            }
            if let Ok(vr) = vr.parse::<VR>() {
                set(tag, vr, v.clone());
            }
        }
    }
    set(tags::PATIENT_NAME, VR::PN, meta.patient_name.clone());
    set(tags::PATIENT_ID, VR::LO, clip(&meta.patient_id, 64));
    if !meta.study_description.is_empty() {
        set(
            tags::STUDY_DESCRIPTION,
            VR::LO,
            clip(&meta.study_description, 64),
        );
    }
    h
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
    write_series_with(volume, dir, opts, &Progress::default())
}

/// [`write_series`] with progress (one step per file) and cancellation; on cancel or error the
/// files this call created are removed again.
pub fn write_series_with(
    volume: &Volume,
    dir: &Path,
    opts: &DicomWriteOptions,
    progress: &Progress,
) -> Result<Vec<PathBuf>, LoadError> {
    write_plan(volume, dir, &Plan::original(volume, opts), progress)
}

/// Write a derived (synthetic) `volume` as a new series of its source's study.
///
/// `source` is the metadata of the image it was computed from (or of the derived volume, which
/// carries its input's); `model` names the network in DerivationDescription. New Series and
/// SOP Instance UIDs; Study, Frame of Reference, patient and study attributes from `source`;
/// ImageType `DERIVED\SECONDARY`; SourceImageSequence per slice when `source` was read from
/// DICOM on the same slices. Files are `SYNnnnn.dcm` (`SYN2_nnnn.dcm`... when those names are
/// taken: an earlier export in the same folder is never overwritten).
pub fn write_derived_series(
    volume: &Volume,
    source: &VolumeMeta,
    model: &str,
    dir: &Path,
) -> Result<Vec<PathBuf>, LoadError> {
    write_derived_series_with(volume, source, model, dir, &Progress::default())
}

/// [`write_derived_series`] with progress (one step per file) and cancellation.
pub fn write_derived_series_with(
    volume: &Volume,
    source: &VolumeMeta,
    model: &str,
    dir: &Path,
    progress: &Progress,
) -> Result<Vec<PathBuf>, LoadError> {
    let mut v = volume.clone();
    v.meta.patient_name = source.patient_name.clone();
    v.meta.patient_id = source.patient_id.clone();
    v.meta.study_description = source.study_description.clone();
    v.meta.dicom = source.dicom.clone();
    let nz = v.geometry.dims[2];
    let mut plan = Plan::original(
        &v,
        &DicomWriteOptions {
            series_number: 1001,
            image_type: "DERIVED\\SECONDARY".into(),
            prefix: free_prefix(dir, "SYN", nz),
        },
    );
    plan.series_uid = new_uid();
    plan.study_uid = if source.study_uid.is_empty() {
        new_uid()
    } else {
        valid_or_derived(&source.study_uid, "study")
    };
    plan.for_uid = if source.frame_of_reference_uid.is_empty() {
        new_uid()
    } else {
        valid_or_derived(&source.frame_of_reference_uid, "for")
    };
    let model = if model.trim().is_empty() {
        "an unnamed model"
    } else {
        model.trim()
    };
    plan.derivation = Some(clip(
        &format!(
            "{} by {model}; SynthScope {}",
            volume.meta.description,
            env!("CARGO_PKG_VERSION")
        ),
        1024,
    ));
    // A slice references its source instance only when the grids match slice for slice.
    if let Some(o) = &source.dicom
        && o.instances.len() == nz
        && o.instances.iter().all(|i| {
            validate_uid(&i.sop_class_uid).is_ok() && validate_uid(&i.sop_instance_uid).is_ok()
        })
    {
        plan.sources = o.instances.clone();
    }
    write_plan(&v, dir, &plan, progress)
}

/// `base` if no file `{base}{i:04}.dcm` (i in 1..=n) exists in `dir`, else the first free
/// `{base}{k}_`.
fn free_prefix(dir: &Path, base: &str, n: usize) -> String {
    let taken = |p: &str| (1..=n.max(1)).any(|i| dir.join(format!("{p}{i:04}.dcm")).exists());
    if !taken(base) {
        return base.to_string();
    }
    (2..)
        .map(|k| format!("{base}{k}_"))
        .find(|p| !taken(p))
        .unwrap_or_else(|| base.to_string())
}

/// Write the files of `plan`; on error or cancel remove those this call created.
fn write_plan(
    volume: &Volume,
    dir: &Path,
    plan: &Plan,
    progress: &Progress,
) -> Result<Vec<PathBuf>, LoadError> {
    std::fs::create_dir_all(dir)
        .map_err(|e| LoadError::file(dir, format!("cannot create folder: {e}")))?;
    for (uid, what) in [
        (&plan.series_uid, "SeriesInstanceUID"),
        (&plan.study_uid, "StudyInstanceUID"),
        (&plan.for_uid, "FrameOfReferenceUID"),
    ] {
        validate_uid(uid).map_err(|e| LoadError::file(dir, format!("{what}: {e}")))?;
    }
    let g = &volume.geometry;
    let [nx, ny, nz] = g.dims;
    if nx > 65535 || ny > 65535 {
        return Err(LoadError::file(
            dir,
            format!("{nx}x{ny} slices are larger than DICOM's 65535x65535"),
        ));
    }
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
    let is_ct = plan.sop_class == uids::CT_IMAGE_STORAGE;
    let is_mr = plan.sop_class == uids::MR_IMAGE_STORAGE;
    let d = &g.direction;
    let iop = [d[0][0], d[1][0], d[2][0], d[0][1], d[1][1], d[2][1]];
    let (wl, ww) = if is_ct {
        (40.0, 400.0)
    } else {
        let (lo, hi) = volume.robust_range(2.0, 98.0);
        (((lo + hi) / 2.0) as f64, (hi - lo).max(1.0) as f64)
    };
    let (date, time) = now_da_tm();
    let implementation_uid = uid_from("SynthScope implementation");
    let version_name = clip(&format!("SYNTHSCOPE_{}", env!("CARGO_PKG_VERSION")), 16);
    progress.start("Writing DICOM", nz);
    let created = std::sync::Mutex::new(Vec::<PathBuf>::new());
    let result: Result<Vec<PathBuf>, LoadError> = (0..nz)
        .into_par_iter()
        .map(|z| {
            progress.check()?;
            let mut o = InMemDicomObject::new_empty();
            let sop_uid = uid_from(&format!("{}/{z}", plan.series_uid));
            // SOP Common.
            put_str(&mut o, tags::SPECIFIC_CHARACTER_SET, VR::CS, "ISO_IR 192");
            put_str(&mut o, tags::SOP_CLASS_UID, VR::UI, plan.sop_class);
            put_str(&mut o, tags::SOP_INSTANCE_UID, VR::UI, sop_uid.clone());
            put_str(&mut o, tags::INSTANCE_CREATION_DATE, VR::DA, date.clone());
            put_str(&mut o, tags::INSTANCE_CREATION_TIME, VR::TM, time.clone());
            put_str(&mut o, tags::TIMEZONE_OFFSET_FROM_UTC, VR::SH, "+0000");
            // Patient, General Study.
            put_str(
                &mut o,
                tags::STUDY_INSTANCE_UID,
                VR::UI,
                plan.study_uid.clone(),
            );
            for (tag, vr, v) in &plan.header {
                put_str(&mut o, *tag, *vr, v.clone());
            }
            // General Series.
            put_str(&mut o, tags::MODALITY, VR::CS, plan.modality.clone());
            put_str(
                &mut o,
                tags::SERIES_INSTANCE_UID,
                VR::UI,
                plan.series_uid.clone(),
            );
            put_str(
                &mut o,
                tags::SERIES_NUMBER,
                VR::IS,
                plan.series_number.to_string(),
            );
            // Type 2C: empty (no paired body part is known), as dciodvfy asks.
            put_str(&mut o, tags::LATERALITY, VR::CS, "");
            put_str(&mut o, tags::SERIES_DATE, VR::DA, date.clone());
            put_str(&mut o, tags::SERIES_TIME, VR::TM, time.clone());
            put_str(
                &mut o,
                tags::SERIES_DESCRIPTION,
                VR::LO,
                plan.series_description.clone(),
            );
            // Frame of Reference.
            put_str(
                &mut o,
                tags::FRAME_OF_REFERENCE_UID,
                VR::UI,
                plan.for_uid.clone(),
            );
            put_str(&mut o, tags::POSITION_REFERENCE_INDICATOR, VR::LO, "");
            // General Equipment.
            put_str(&mut o, tags::MANUFACTURER, VR::LO, "SynthScope");
            put_str(&mut o, tags::MANUFACTURER_MODEL_NAME, VR::LO, "SynthScope");
            put_str(
                &mut o,
                tags::SOFTWARE_VERSIONS,
                VR::LO,
                env!("CARGO_PKG_VERSION"),
            );
            // General Image.
            put_str(&mut o, tags::IMAGE_TYPE, VR::CS, plan.image_type.clone());
            put_str(&mut o, tags::INSTANCE_NUMBER, VR::IS, (z + 1).to_string());
            put_str(&mut o, tags::CONTENT_DATE, VR::DA, date.clone());
            put_str(&mut o, tags::CONTENT_TIME, VR::TM, time.clone());
            put_str(&mut o, tags::BURNED_IN_ANNOTATION, VR::CS, "NO");
            put_str(&mut o, tags::LOSSY_IMAGE_COMPRESSION, VR::CS, "00");
            if let Some(desc) = &plan.derivation {
                put_str(&mut o, tags::DERIVATION_DESCRIPTION, VR::ST, desc.clone());
            }
            if let Some(src) = plan.sources.get(z) {
                o.put(DataElement::new(
                    tags::SOURCE_IMAGE_SEQUENCE,
                    VR::SQ,
                    DataSetSequence::from(vec![source_item(src)]),
                ));
            }
            // Image Plane.
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
            // Image Pixel.
            put_u16(&mut o, tags::SAMPLES_PER_PIXEL, 1);
            put_str(
                &mut o,
                tags::PHOTOMETRIC_INTERPRETATION,
                VR::CS,
                "MONOCHROME2",
            );
            put_u16(&mut o, tags::ROWS, ny as u16);
            put_u16(&mut o, tags::COLUMNS, nx as u16);
            put_u16(&mut o, tags::BITS_ALLOCATED, 16);
            put_u16(&mut o, tags::BITS_STORED, 16);
            put_u16(&mut o, tags::HIGH_BIT, 15);
            put_u16(&mut o, tags::PIXEL_REPRESENTATION, signed as u16);
            // CT Image / MR Image.
            if is_ct {
                put_str(&mut o, tags::KVP, VR::DS, "");
                put_str(&mut o, tags::ACQUISITION_NUMBER, VR::IS, "");
            }
            if is_mr {
                // Simulated or synthesised: research mode, no named sequence or timing.
                put_str(&mut o, tags::SCANNING_SEQUENCE, VR::CS, "RM");
                put_str(&mut o, tags::SEQUENCE_VARIANT, VR::CS, "NONE");
                put_str(&mut o, tags::SCAN_OPTIONS, VR::CS, "");
                put_str(&mut o, tags::MR_ACQUISITION_TYPE, VR::CS, "");
                put_str(&mut o, tags::REPETITION_TIME, VR::DS, "");
                put_str(&mut o, tags::ECHO_TIME, VR::DS, "");
                put_str(&mut o, tags::ECHO_TRAIN_LENGTH, VR::IS, "");
            }
            // Modality LUT (HU for CT), VOI LUT.
            // MR Image has no Modality LUT: the rescale only when the values need one.
            if !is_mr || slope != 1.0 || intercept != 0.0 {
                put_str(&mut o, tags::RESCALE_INTERCEPT, VR::DS, ds(intercept));
                put_str(&mut o, tags::RESCALE_SLOPE, VR::DS, ds(slope));
            }
            if is_ct {
                put_str(&mut o, tags::RESCALE_TYPE, VR::LO, "HU");
            }
            put_str(&mut o, tags::WINDOW_CENTER, VR::DS, ds(wl));
            put_str(&mut o, tags::WINDOW_WIDTH, VR::DS, ds(ww));
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
                    FileMetaTableBuilder::new()
                        .transfer_syntax(uids::EXPLICIT_VR_LITTLE_ENDIAN)
                        .implementation_class_uid(implementation_uid.clone())
                        .implementation_version_name(version_name.clone()),
                )
                .map_err(|e| LoadError::file(dir, format!("cannot build DICOM meta: {e}")))?;
            let path = dir.join(format!("{}{:04}.dcm", plan.prefix, z + 1));
            let existed = path.exists();
            crate::io::atomic::write_with(&path, |w| {
                file.write_all(w).map_err(std::io::Error::other)
            })
            .map_err(|e| LoadError::file(&path, e.problem))?;
            if !existed && let Ok(mut c) = created.lock() {
                c.push(path.clone());
            }
            progress.step();
            Ok(path)
        })
        .collect();
    if result.is_err() {
        for p in created.into_inner().unwrap_or_default() {
            let _ = std::fs::remove_file(p);
        }
    }
    result
}

/// One SourceImageSequence item: the instance (and frame) a slice was computed from.
fn source_item(src: &SourceInstance) -> InMemDicomObject {
    let mut item = InMemDicomObject::new_empty();
    put_str(
        &mut item,
        tags::REFERENCED_SOP_CLASS_UID,
        VR::UI,
        src.sop_class_uid.to_string(),
    );
    put_str(
        &mut item,
        tags::REFERENCED_SOP_INSTANCE_UID,
        VR::UI,
        src.sop_instance_uid.to_string(),
    );
    if src.frame > 0 {
        put_str(
            &mut item,
            tags::REFERENCED_FRAME_NUMBER,
            VR::IS,
            src.frame.to_string(),
        );
    }
    let mut code = InMemDicomObject::new_empty();
    put_str(&mut code, tags::CODE_VALUE, VR::SH, "121322");
    put_str(&mut code, tags::CODING_SCHEME_DESIGNATOR, VR::SH, "DCM");
    put_str(
        &mut code,
        tags::CODE_MEANING,
        VR::LO,
        "Source image for image processing operation",
    );
    item.put(DataElement::new(
        tags::PURPOSE_OF_REFERENCE_CODE_SEQUENCE,
        VR::SQ,
        DataSetSequence::from(vec![code]),
    ));
    item
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ds_fits_16_chars() {
        assert_eq!(ds(0.8), "0.8");
        assert_eq!(ds(-102.39999999999999), "-102.4");
        assert!(ds(123456.123456789).len() <= 16);
        let ct = uids::CT_IMAGE_STORAGE;
        assert_eq!(
            image_type_for(ct, "DERIVED\\SECONDARY"),
            "DERIVED\\SECONDARY\\AXIAL"
        );
        assert_eq!(
            image_type_for(ct, "ORIGINAL\\PRIMARY\\AXIAL"),
            "ORIGINAL\\PRIMARY\\AXIAL"
        );
        let mr = uids::MR_IMAGE_STORAGE;
        assert_eq!(
            image_type_for(mr, "ORIGINAL\\PRIMARY\\AXIAL"),
            "ORIGINAL\\PRIMARY\\OTHER"
        );
        assert_eq!(
            image_type_for(mr, "DERIVED\\SECONDARY"),
            "DERIVED\\SECONDARY\\OTHER"
        );
        assert_eq!(ds(-0.0), "0");
    }

    #[test]
    fn generated_uids_are_valid_and_distinct() {
        for u in [uid_from("x"), uid_from(""), new_uid(), new_uid()] {
            validate_uid(&u).unwrap();
        }
        assert_eq!(uid_from("x"), uid_from("x"));
        assert_ne!(uid_from("x"), uid_from("y"));
        assert_ne!(new_uid(), new_uid());
        assert_eq!(valid_or_derived("1.2.3", "s"), "1.2.3");
        validate_uid(&valid_or_derived("1.02.3", "s")).unwrap();
    }

    #[test]
    fn validator_accepts_good_and_names_bad_uids() {
        for good in [
            "1.2.840.10008.5.1.4.1.1.2",
            "0.1",
            "1.0.2",
            "2.25.0",
            "2.25.340282366920938463463374607431768211455",
            "1.2.826.0.1.3680043.2.1143.123456789012345678901234567890123",
        ] {
            assert!(
                validate_uid(good).is_ok(),
                "{good}: {:?}",
                validate_uid(good)
            );
        }
        for (bad, why) in [
            ("", "empty"),
            ("1.2.03", "leading zero"),
            ("1..2", "empty"),
            ("1.2.", "empty"),
            (".1.2", "empty"),
            ("1.2.a", "not a digit"),
            ("1.2 ", "not a digit"),
            ("1.2.3\0", "not a digit"),
            (&format!("1.{}", "2".repeat(63)), "more than 64"),
            ("2.25.31415926535897932384626433.1", "2.25 root"),
            (
                "2.25.340282366920938463463374607431768211456",
                "larger than a UUID",
            ),
            ("2.25.012", "leading zero"),
        ] {
            let e = validate_uid(bad).expect_err(bad);
            assert!(e.contains(why), "{bad}: {e}");
        }
    }

    #[test]
    fn utc_dates_are_civil() {
        let (d, t) = now_da_tm();
        assert_eq!(d.len(), 8);
        assert_eq!(t.len(), 6);
        let y: i32 = d[..4].parse().unwrap();
        assert!((2024..2200).contains(&y), "{d}");
    }
}
