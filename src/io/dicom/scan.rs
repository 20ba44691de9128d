//! Scanning: read each file's header (up to the pixel data), group files into series, sort each
//! series along its slice normal, and derive its geometry. For uncompressed little-endian
//! single-frame greyscale files the scan also records where the pixel bytes lie
//! ([`NativePixels`]), so decoding converts them without parsing the file again.

use super::attributes::{
    first_float, floats, has_dicm_magic, in_group, int, items, required_int, text,
};
use crate::io::{LoadError, Progress};
use crate::volume::{Geometry, Modality, Vec3, VolumeMeta};
use dicom::core::VR;
use dicom::dictionary_std::{tags, uids};
use dicom::object::file::ReadPreamble;
use dicom::object::{FileMetaTable, InMemDicomObject, OpenFileOptions};
use dicom::parser::dataset::DataToken;
use dicom::parser::dataset::read::{DataSetReader, DataSetReaderOptions, ValueReadStrategy};
use dicom::transfer_syntax::{TransferSyntaxIndex, TransferSyntaxRegistry};
use rayon::prelude::*;
use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

/// The most frames one file may declare (enhanced multi-frame series hold thousands).
const MAX_FRAMES: i64 = 1 << 20;

/// Bytes read from the start of each file in one call: the header of a CT or MR slice (a few
/// KB, tens with private tags) fits, so its pixel data is found without a second read.
const HEAD_BYTES: u64 = 64 * 1024;

/// Where an uncompressed little-endian single-frame greyscale file keeps its samples, found by
/// [`scan`]: what the fast path of [`decode_series`](super::decode_series) needs to convert them
/// straight into the volume. Files without one take the general decoder.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NativePixels {
    /// Byte offset of the Pixel Data (7FE0,0010) value in the file.
    pub offset: u64,
    /// Length of that value as its element header declares it.
    pub length: u64,
    /// BitsAllocated (0028,0100): 8 or 16.
    pub bits_allocated: u16,
    /// Low bits of each sample that hold its value, as the general decoder reads them:
    /// BitsStored (0028,0101) for 16-bit samples, 8 for 8-bit ones.
    pub bits_stored: u16,
    /// PixelRepresentation (0028,0103) = 1: two's complement in `bits_stored` bits.
    pub signed: bool,
}

/// One frame of one file, placed in space.
#[derive(Clone, Debug)]
pub struct SliceRef {
    /// File holding the frame.
    pub path: PathBuf,
    /// Frame number within the file (0 for single-frame files).
    pub frame: u32,
    /// ImagePositionPatient of the frame (LPS mm), when present.
    pub position: Option<Vec3>,
    /// InstanceNumber, the fallback sort key when positions are missing.
    pub instance: i64,
    /// Rescale of this frame.
    pub rescale: (f64, f64),
    /// The SOP instance (and frame) it is, for series derived from this one.
    pub sop: crate::volume::SourceInstance,
    /// Where the file's samples lie, for the fast path (None: the general decoder).
    pub pixels: Option<NativePixels>,
}

/// A series found by [`scan`]: its header facts and its slices, not yet decoded.
#[derive(Clone, Debug)]
pub struct SeriesScan {
    /// Descriptive data shared by all slices.
    pub meta: VolumeMeta,
    /// Rows (y) and columns (x) of each frame.
    pub rows: usize,
    /// Columns of each frame.
    pub cols: usize,
    /// ImageOrientationPatient (row direction, column direction).
    pub iop: Option<[f64; 6]>,
    /// PixelSpacing (row spacing, column spacing) in mm.
    pub pixel_spacing: Option<[f64; 2]>,
    /// SpacingBetweenSlices or SliceThickness, used for single-slice series only.
    pub nominal_slice_spacing: Option<f64>,
    /// Transfer syntax UID of the first file.
    pub transfer_syntax: String,
    /// Slices, sorted along the slice normal by [`scan`].
    pub slices: Vec<SliceRef>,
}

/// What [`scan`] found: series and the files it could not read.
#[derive(Debug, Default)]
pub struct ScanResult {
    /// Series with at least one image.
    pub series: Vec<SeriesScan>,
    /// Files that looked like DICOM but could not be read, or were given explicitly and are not images.
    pub errors: Vec<LoadError>,
}

/// Read one file's header (up to the pixel data) and return its slices and series facts.
fn scan_file(path: &Path) -> Result<(SeriesScan, String), LoadError> {
    let unreadable = |e: &dyn std::fmt::Display| {
        LoadError::file(path, format!("not a readable DICOM file: {e}"))
    };
    // One read of the file's start holds the header of a usual slice; the parser continues
    // from the file where a header is longer.
    let mut file = std::fs::File::open(path).map_err(|e| unreadable(&e))?;
    let mut head = Vec::new();
    (&mut file)
        .take(HEAD_BYTES)
        .read_to_end(&mut head)
        .map_err(|e| unreadable(&e))?;
    // The 128-byte preamble, skipped as dicom-rs's open_file does: unless "DICM" starts the
    // file and does not also follow a preamble.
    let skip = if head.len() >= 4 && &head[..4] == b"DICM" && head.get(128..132) != Some(b"DICM") {
        0
    } else {
        128.min(head.len())
    };
    let after_preamble = &head[skip..];
    let ceiling = super::bounds::check_file(path, super::bounds::Extent::UntilPixelData)?;
    let obj = crate::io::alloc_guard::with_ceiling(ceiling, || {
        OpenFileOptions::new()
            .read_until(tags::PIXEL_DATA)
            .read_preamble(ReadPreamble::Never)
            .from_reader(after_preamble.chain(&mut file))
    })
    .map_err(|e| unreadable(&e))?;
    let sop_class = obj
        .meta()
        .media_storage_sop_class_uid()
        .trim_end_matches('\0')
        .to_string();
    if sop_class == uids::MEDIA_STORAGE_DIRECTORY_STORAGE {
        return Err(LoadError::file(path, "a DICOMDIR index, not an image"));
    }
    let ts = obj
        .meta()
        .transfer_syntax()
        .trim_end_matches('\0')
        .to_string();
    let rows = required_int(&obj, path, tags::ROWS, "Rows", "not an image")?;
    let cols = required_int(&obj, path, tags::COLUMNS, "Columns", "not an image")?;
    if rows <= 0 || cols <= 0 {
        return Err(LoadError::file(
            path,
            format!("invalid image size {cols}x{rows}"),
        ));
    }
    let frames = int(&obj, tags::NUMBER_OF_FRAMES).unwrap_or(1).max(1);
    crate::io::check_voxels(
        path,
        rows as u128 * cols as u128 * frames as u128,
        &format!("Rows x Columns x NumberOfFrames (0028,0010/0011/0008) = {cols}x{rows}x{frames}"),
    )?;
    // Each frame costs a slice record (~100 bytes) whatever its size: a 1x1 image may still
    // not declare half a billion frames.
    if frames > MAX_FRAMES {
        return Err(LoadError::file(
            path,
            format!(
                "NumberOfFrames (0028,0008) = {frames}, more than the {MAX_FRAMES} frames one file may hold"
            ),
        ));
    }
    let frames = u32::try_from(frames).map_err(|_| {
        LoadError::file(
            path,
            format!("NumberOfFrames (0028,0008) = {frames} is not a frame count"),
        )
    })?;
    if let Some(bits) = int(&obj, tags::BITS_ALLOCATED)
        && ![1, 8, 16, 32].contains(&bits)
    {
        return Err(LoadError::file(
            path,
            format!(
                "BitsAllocated (0028,0100) = {bits}: only 1, 8, 16 and 32-bit samples are read"
            ),
        ));
    }
    let shared = items(&obj, tags::SHARED_FUNCTIONAL_GROUPS_SEQUENCE).and_then(|i| i.first());
    let per_frame = items(&obj, tags::PER_FRAME_FUNCTIONAL_GROUPS_SEQUENCE);

    let (iop, pixel_spacing, nominal) = plane_geometry(&obj, shared, per_frame);
    let mut slices = frame_slices(&obj, path, frames, shared, per_frame, iop, nominal);
    super::attributes::set_source_instances(&obj, &mut slices, frames > 1);
    if frames == 1
        && let Some(pixels) = native_pixels(&obj, &ts, after_preamble)
        && let Some(first) = slices.first_mut()
    {
        first.pixels = Some(NativePixels {
            offset: pixels.offset + skip as u64,
            ..pixels
        });
    }
    let meta = series_meta(&obj, path);
    let scan = SeriesScan {
        meta,
        rows: rows as usize,
        cols: cols as usize,
        iop,
        pixel_spacing,
        nominal_slice_spacing: nominal,
        transfer_syntax: ts,
        slices,
    };
    // Group key: series plus everything that must agree within one volume.
    let key = format!(
        "{}|{}x{}|{}",
        scan.meta.series_uid,
        cols,
        rows,
        iop.map(|o| o
            .iter()
            .map(|v| format!("{:.3}", v))
            .collect::<Vec<_>>()
            .join(","))
            .unwrap_or_default()
    );
    Ok((scan, key))
}

/// The fast path's facts for a file whose samples the general decoder would read as plain
/// little-endian integers: implicit or explicit VR little endian, one greyscale sample of 8 or
/// 16 bits (BitsStored within them), MONOCHROME1/2, and a top-level Pixel Data element of
/// defined length in the header bytes `after_preamble` (from "DICM" on). None for anything
/// else, which the general decoder then handles (and refuses where it must).
fn native_pixels(obj: &InMemDicomObject, ts: &str, after_preamble: &[u8]) -> Option<NativePixels> {
    if ts != uids::EXPLICIT_VR_LITTLE_ENDIAN && ts != uids::IMPLICIT_VR_LITTLE_ENDIAN {
        return None;
    }
    if int(obj, tags::SAMPLES_PER_PIXEL).unwrap_or(1) != 1 {
        return None;
    }
    let photometric = text(obj, tags::PHOTOMETRIC_INTERPRETATION)?;
    if photometric != "MONOCHROME1" && photometric != "MONOCHROME2" {
        return None;
    }
    let bits_allocated = int(obj, tags::BITS_ALLOCATED)?;
    let bits_stored = int(obj, tags::BITS_STORED)?;
    let signed = match int(obj, tags::PIXEL_REPRESENTATION)? {
        0 => false,
        1 => true,
        _ => return None,
    };
    let bits_stored = match bits_allocated {
        // dicom-pixeldata reads 8-bit samples whole, whatever BitsStored says.
        8 if (1..=8).contains(&bits_stored) => 8,
        16 if (1..=16).contains(&bits_stored) => bits_stored as u16,
        _ => return None,
    };
    let (offset, length) = pixel_data_value(after_preamble, ts)?;
    Some(NativePixels {
        offset,
        length,
        bits_allocated: bits_allocated as u16,
        bits_stored,
        signed,
    })
}

/// Offset (in `after_preamble`) and declared length of the value of the top-level Pixel Data
/// element, found by dicom-rs's parser walking the data set up to it; None when the header does
/// not end in `after_preamble`, the element is encapsulated or of undefined length, or the data
/// set has no Pixel Data.
fn pixel_data_value(after_preamble: &[u8], ts: &str) -> Option<(u64, u64)> {
    let syntax = TransferSyntaxRegistry.get(ts)?;
    let mut rest = after_preamble;
    FileMetaTable::from_reader(&mut rest).ok()?;
    let header = {
        let options = DataSetReaderOptions::default().value_read(ValueReadStrategy::Raw);
        let mut reader = DataSetReader::new_with_ts_options(&mut rest, syntax, options).ok()?;
        // Sequences (and pixel sequences inside them, as in icon images) open a level; only a
        // Pixel Data element at the top level holds the image.
        let mut depth = 0usize;
        loop {
            match reader.next()?.ok()? {
                DataToken::SequenceStart { .. } => depth += 1,
                DataToken::PixelSequenceStart if depth > 0 => depth += 1,
                DataToken::PixelSequenceStart => return None,
                DataToken::SequenceEnd => depth = depth.checked_sub(1)?,
                DataToken::ElementHeader(h) if depth == 0 && h.tag >= tags::PIXEL_DATA => break h,
                _ => {}
            }
        }
    };
    if header.tag != tags::PIXEL_DATA || !matches!(header.vr, VR::OB | VR::OW | VR::UN) {
        return None;
    }
    let length = header.len.get()?;
    Some(((after_preamble.len() - rest.len()) as u64, length as u64))
}

/// ImageOrientationPatient, PixelSpacing and the nominal slice spacing, from the top level or
/// the shared or first per-frame functional group (enhanced multi-frame files).
fn plane_geometry(
    obj: &InMemDicomObject,
    shared: Option<&InMemDicomObject>,
    per_frame: Option<&[InMemDicomObject]>,
) -> (Option<[f64; 6]>, Option<[f64; 2]>, Option<f64>) {
    let iop = floats(obj, tags::IMAGE_ORIENTATION_PATIENT)
        .or_else(|| {
            in_group(
                shared,
                tags::PLANE_ORIENTATION_SEQUENCE,
                tags::IMAGE_ORIENTATION_PATIENT,
            )
        })
        .or_else(|| {
            in_group(
                per_frame.and_then(|p| p.first()),
                tags::PLANE_ORIENTATION_SEQUENCE,
                tags::IMAGE_ORIENTATION_PATIENT,
            )
        })
        .filter(|v| v.len() == 6)
        .map(|v| [v[0], v[1], v[2], v[3], v[4], v[5]]);
    let pixel_spacing = floats(obj, tags::PIXEL_SPACING)
        .or_else(|| in_group(shared, tags::PIXEL_MEASURES_SEQUENCE, tags::PIXEL_SPACING))
        .or_else(|| {
            in_group(
                per_frame.and_then(|p| p.first()),
                tags::PIXEL_MEASURES_SEQUENCE,
                tags::PIXEL_SPACING,
            )
        })
        .or_else(|| floats(obj, tags::IMAGER_PIXEL_SPACING))
        .filter(|v| v.len() == 2 && v[0] > 0.0 && v[1] > 0.0)
        .map(|v| [v[0], v[1]]);
    let nominal = floats(obj, tags::SPACING_BETWEEN_SLICES)
        .or_else(|| {
            in_group(
                shared,
                tags::PIXEL_MEASURES_SEQUENCE,
                tags::SPACING_BETWEEN_SLICES,
            )
        })
        .or_else(|| floats(obj, tags::SLICE_THICKNESS))
        .or_else(|| in_group(shared, tags::PIXEL_MEASURES_SEQUENCE, tags::SLICE_THICKNESS))
        .and_then(|v| v.first().copied())
        .filter(|v| *v > 0.0);
    (iop, pixel_spacing, nominal)
}

/// One [`SliceRef`] per frame: its position and rescale from the per-frame group, the shared
/// group or the top level; a legacy multi-frame file without per-frame positions is stacked
/// along the normal from the top-level position.
fn frame_slices(
    obj: &InMemDicomObject,
    path: &Path,
    frames: u32,
    shared: Option<&InMemDicomObject>,
    per_frame: Option<&[InMemDicomObject]>,
    iop: Option<[f64; 6]>,
    nominal: Option<f64>,
) -> Vec<SliceRef> {
    let top_rescale = (
        first_float(obj, tags::RESCALE_SLOPE).unwrap_or(1.0),
        first_float(obj, tags::RESCALE_INTERCEPT).unwrap_or(0.0),
    );
    let shared_rescale = in_group(
        shared,
        tags::PIXEL_VALUE_TRANSFORMATION_SEQUENCE,
        tags::RESCALE_SLOPE,
    )
    .zip(in_group(
        shared,
        tags::PIXEL_VALUE_TRANSFORMATION_SEQUENCE,
        tags::RESCALE_INTERCEPT,
    ))
    .map(|(s, i)| (s[0], i[0]));
    let instance = int(obj, tags::INSTANCE_NUMBER).unwrap_or(0);
    let top_pos = floats(obj, tags::IMAGE_POSITION_PATIENT)
        .filter(|v| v.len() == 3)
        .map(|v| [v[0], v[1], v[2]]);

    let mut slices = Vec::with_capacity(frames as usize);
    for f in 0..frames {
        let group = per_frame.and_then(|p| p.get(f as usize));
        let position = in_group(
            group,
            tags::PLANE_POSITION_SEQUENCE,
            tags::IMAGE_POSITION_PATIENT,
        )
        .filter(|v| v.len() == 3)
        .map(|v| [v[0], v[1], v[2]])
        .or(if frames == 1 { top_pos } else { None });
        let rescale = in_group(
            group,
            tags::PIXEL_VALUE_TRANSFORMATION_SEQUENCE,
            tags::RESCALE_SLOPE,
        )
        .zip(in_group(
            group,
            tags::PIXEL_VALUE_TRANSFORMATION_SEQUENCE,
            tags::RESCALE_INTERCEPT,
        ))
        .map(|(s, i)| (s[0], i[0]))
        .or(shared_rescale)
        .unwrap_or(top_rescale);
        slices.push(SliceRef {
            path: path.to_path_buf(),
            frame: f,
            position,
            instance: instance * 100_000 + f as i64,
            rescale,
            sop: Default::default(),
            pixels: None,
        });
    }
    // A legacy multi-frame file without per-frame positions: stack frames from the top-level
    // position along the normal at the nominal spacing.
    if frames > 1
        && slices.iter().all(|s| s.position.is_none())
        && let (Some(p0), Some(o)) = (top_pos, iop)
    {
        let n = cross([o[0], o[1], o[2]], [o[3], o[4], o[5]]);
        let dz = nominal.unwrap_or(1.0);
        // RT dose grids give each frame's offset along the normal explicitly.
        let offsets =
            floats(obj, tags::GRID_FRAME_OFFSET_VECTOR).filter(|v| v.len() == frames as usize);
        for s in &mut slices {
            let k = offsets
                .as_ref()
                .map(|o| o[s.frame as usize])
                .unwrap_or(s.frame as f64 * dz);
            s.position = Some([p0[0] + n[0] * k, p0[1] + n[1] * k, p0[2] + n[2] * k]);
        }
    }
    slices
}

/// The series' descriptive data (never used for geometry).
fn series_meta(obj: &InMemDicomObject, path: &Path) -> VolumeMeta {
    let photometric = text(obj, tags::PHOTOMETRIC_INTERPRETATION).unwrap_or_default();
    let series_uid = text(obj, tags::SERIES_INSTANCE_UID)
        .unwrap_or_else(|| format!("(no SeriesInstanceUID) {}", path.display()));
    VolumeMeta {
        modality: Modality::from_code(&text(obj, tags::MODALITY).unwrap_or_default()),
        series_uid,
        description: text(obj, tags::SERIES_DESCRIPTION).unwrap_or_default(),
        patient_name: text(obj, tags::PATIENT_NAME).unwrap_or_default(),
        patient_id: text(obj, tags::PATIENT_ID).unwrap_or_default(),
        study_uid: text(obj, tags::STUDY_INSTANCE_UID).unwrap_or_default(),
        study_description: text(obj, tags::STUDY_DESCRIPTION).unwrap_or_default(),
        frame_of_reference_uid: text(obj, tags::FRAME_OF_REFERENCE_UID).unwrap_or_default(),
        source: path.display().to_string(),
        monochrome1: photometric == "MONOCHROME1",
        warnings: Vec::new(),
        dicom: Some(std::sync::Arc::new(super::attributes::dicom_origin(obj))),
    }
}

/// Scan DICOM files (`(path, given_explicitly)`), group them into series and sort each series.
///
/// Files inside scanned folders that are not DICOM at all are skipped silently; files that
/// carry the DICOM magic but cannot be read, or files the user named, are reported.
pub fn scan(files: &[(PathBuf, bool)], progress: &Progress) -> Result<ScanResult, LoadError> {
    progress.start("Scanning DICOM headers", files.len());
    let results: Vec<_> = files
        .par_iter()
        .map(|(path, explicit)| {
            if progress.is_cancelled() {
                return None;
            }
            let r = std::panic::catch_unwind(|| scan_file(path)).unwrap_or_else(|_| {
                Err(LoadError::file(
                    path,
                    "the DICOM parser failed on this file",
                ))
            });
            progress.step();
            match r {
                Ok(v) => Some(Ok(v)),
                Err(e) => {
                    let name = path
                        .file_name()
                        .map(|n| n.to_string_lossy().to_string())
                        .unwrap_or_default();
                    if *explicit || (has_dicm_magic(path) && name != "DICOMDIR") {
                        Some(Err(e))
                    } else {
                        None
                    }
                }
            }
        })
        .collect();
    progress.check()?;
    let mut groups: BTreeMap<String, SeriesScan> = BTreeMap::new();
    let mut out = ScanResult::default();
    for r in results.into_iter().flatten() {
        match r {
            Ok((scan, key)) => match groups.get_mut(&key) {
                Some(g) => g.slices.extend(scan.slices),
                None => {
                    groups.insert(key, scan);
                }
            },
            Err(e) => out.errors.push(e),
        }
    }
    for (_, mut s) in groups {
        sort_slices(&mut s);
        if let Some(o) = &mut s.meta.dicom {
            std::sync::Arc::make_mut(o).instances =
                s.slices.iter().map(|x| x.sop.clone()).collect();
        }
        out.series.push(s);
    }
    Ok(out)
}

fn cross(a: Vec3, b: Vec3) -> Vec3 {
    [
        a[1] * b[2] - a[2] * b[1],
        a[2] * b[0] - a[0] * b[2],
        a[0] * b[1] - a[1] * b[0],
    ]
}

fn dot(a: Vec3, b: Vec3) -> f64 {
    a[0] * b[0] + a[1] * b[1] + a[2] * b[2]
}

fn normalise(a: Vec3) -> Vec3 {
    let n = dot(a, a).sqrt();
    if n > 0.0 {
        [a[0] / n, a[1] / n, a[2] / n]
    } else {
        a
    }
}

/// Sort slices by position projected on the slice normal (InstanceNumber when positions are missing).
fn sort_slices(s: &mut SeriesScan) {
    let with_pos = s.slices.iter().all(|x| x.position.is_some());
    match (s.iop, with_pos) {
        (Some(o), true) => {
            let n = cross([o[0], o[1], o[2]], [o[3], o[4], o[5]]);
            s.slices.sort_by(|a, b| {
                let da = dot(a.position.unwrap_or_default(), n);
                let db = dot(b.position.unwrap_or_default(), n);
                da.total_cmp(&db).then(a.instance.cmp(&b.instance))
            });
        }
        _ => s.slices.sort_by_key(|x| x.instance),
    }
}

/// Geometry of a sorted series, and the warnings its slice positions raise.
pub fn series_geometry(s: &SeriesScan) -> (Geometry, Vec<String>) {
    let mut warnings = Vec::new();
    let n = s.slices.len();
    let ps = s.pixel_spacing.unwrap_or_else(|| {
        warnings.push("no PixelSpacing: assuming 1 mm pixels".into());
        [1.0, 1.0]
    });
    let positions: Option<Vec<Vec3>> = s.slices.iter().map(|x| x.position).collect();
    let (Some(o), Some(pos)) = (s.iop, positions) else {
        warnings.push(
            "no ImagePositionPatient/ImageOrientationPatient: geometry unknown, identity used"
                .into(),
        );
        let dz = s.nominal_slice_spacing.unwrap_or(1.0);
        return (
            Geometry::axis_aligned([s.cols, s.rows, n], [ps[1], ps[0], dz], [0.0; 3]),
            warnings,
        );
    };
    let r = normalise([o[0], o[1], o[2]]);
    let c = normalise([o[3], o[4], o[5]]);
    let normal = normalise(cross(r, c));
    let proj: Vec<f64> = pos.iter().map(|p| dot(*p, normal)).collect();
    let mut axis = normal;
    let mut dz = s.nominal_slice_spacing.unwrap_or(1.0);
    if n > 1 {
        let mut diffs: Vec<f64> = proj.windows(2).map(|w| w[1] - w[0]).collect();
        let dups = diffs.iter().filter(|d| d.abs() < 1e-3).count();
        if dups > 0 {
            warnings.push(format!("{dups} slices share a position with another slice"));
        }
        diffs.retain(|d| d.abs() >= 1e-3);
        if !diffs.is_empty() {
            let mut sorted = diffs.clone();
            sorted.sort_by(f64::total_cmp);
            let median = sorted[sorted.len() / 2];
            let (lo, hi) = (sorted[0], sorted[sorted.len() - 1]);
            let missing: usize = diffs
                .iter()
                .filter(|d| **d > 1.5 * median)
                .map(|d| (d / median).round() as usize - 1)
                .sum();
            if missing > 0 {
                warnings.push(format!(
                    "about {missing} missing slices (gaps up to {hi:.2} mm, spacing {median:.2} mm)"
                ));
            } else if hi - lo > 0.01 * median + 1e-3 {
                warnings.push(format!("non-uniform slice spacing: {lo:.3} to {hi:.3} mm"));
            }
            // The step between first and last slice, which also captures gantry tilt (shear).
            let first = pos[0];
            let last = pos[n - 1];
            let span = [last[0] - first[0], last[1] - first[1], last[2] - first[2]];
            let steps = (proj[n - 1] - proj[0]) / median;
            let step = [span[0] / steps, span[1] / steps, span[2] / steps];
            dz = dot(step, step).sqrt();
            axis = normalise(step);
            if dot(axis, normal) < 0.9999 {
                warnings.push(format!(
                    "slices are sheared (gantry tilt {:.1} deg); geometry keeps the shear",
                    dot(axis, normal).clamp(-1.0, 1.0).acos().to_degrees()
                ));
            }
        }
    }
    let g = Geometry {
        dims: [s.cols, s.rows, n],
        spacing: [ps[1], ps[0], dz],
        origin: pos[0],
        direction: [
            [r[0], c[0], axis[0]],
            [r[1], c[1], axis[1]],
            [r[2], c[2], axis[2]],
        ],
    };
    (g, warnings)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn series(positions: &[f64]) -> SeriesScan {
        SeriesScan {
            meta: VolumeMeta::default(),
            rows: 2,
            cols: 2,
            iop: Some([1.0, 0.0, 0.0, 0.0, 1.0, 0.0]),
            pixel_spacing: Some([0.5, 0.5]),
            nominal_slice_spacing: Some(5.0),
            transfer_syntax: String::new(),
            slices: positions
                .iter()
                .enumerate()
                .map(|(i, z)| SliceRef {
                    path: PathBuf::from(format!("f{i}")),
                    frame: 0,
                    position: Some([0.0, 0.0, *z]),
                    instance: (positions.len() - i) as i64,
                    rescale: (1.0, 0.0),
                    sop: Default::default(),
                    pixels: None,
                })
                .collect(),
        }
    }

    #[test]
    fn sorts_by_position_not_instance_and_uses_position_spacing() {
        let mut s = series(&[4.0, 0.0, 2.0, 6.0]);
        sort_slices(&mut s);
        let z: Vec<f64> = s.slices.iter().map(|x| x.position.unwrap()[2]).collect();
        assert_eq!(z, vec![0.0, 2.0, 4.0, 6.0]);
        let (g, w) = series_geometry(&s);
        assert!(
            (g.spacing[2] - 2.0).abs() < 1e-9,
            "spacing from positions, not SliceThickness"
        );
        assert!(w.is_empty(), "{w:?}");
    }

    #[test]
    fn reports_missing_slices() {
        let mut s = series(&[0.0, 2.0, 4.0, 10.0, 12.0]);
        sort_slices(&mut s);
        let (_, w) = series_geometry(&s);
        assert!(w.iter().any(|m| m.contains("missing")), "{w:?}");
    }
}
