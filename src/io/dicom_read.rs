//! DICOM series: scan files, group by series, sort slices along the slice normal, decode.

use super::{LoadError, Progress};
use crate::volume::{Geometry, Vec3, Volume, VolumeMeta};
use dicom::core::Tag;
use dicom::dictionary_std::{tags, uids};
use dicom::object::{InMemDicomObject, OpenFileOptions};
use dicom::pixeldata::{ConvertOptions, ModalityLutOption, PixelDecoder, Rescale};
use dicom::transfer_syntax::{TransferSyntaxIndex, TransferSyntaxRegistry};
use rayon::prelude::*;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

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

/// Bytes of an element whose VR is UN (written by a tool that did not know the attribute).
fn unknown_bytes(obj: &InMemDicomObject, tag: Tag) -> Option<Vec<u8>> {
    let e = obj.get(tag)?;
    if e.vr() == dicom::core::VR::UN {
        e.value().to_bytes().ok().map(|b| b.into_owned())
    } else {
        None
    }
}

fn text(obj: &InMemDicomObject, tag: Tag) -> Option<String> {
    let raw = match unknown_bytes(obj, tag) {
        Some(b) => String::from_utf8_lossy(&b).into_owned(),
        None => obj.get(tag).and_then(|e| e.to_str().ok())?.into_owned(),
    };
    Some(raw.trim_end_matches(['\0', ' ']).trim().to_string())
}

fn floats(obj: &InMemDicomObject, tag: Tag) -> Option<Vec<f64>> {
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

fn int(obj: &InMemDicomObject, tag: Tag) -> Option<i64> {
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

fn items(obj: &InMemDicomObject, tag: Tag) -> Option<&[InMemDicomObject]> {
    obj.get(tag).and_then(|e| e.items())
}

/// Look a tag up inside a functional-group item: `group[0].seq[0].tag`.
fn in_group(group: Option<&InMemDicomObject>, seq: Tag, tag: Tag) -> Option<Vec<f64>> {
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

fn has_dicm_magic(path: &Path) -> bool {
    use std::io::Read;
    let mut buf = [0u8; 132];
    std::fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut buf))
        .map(|_| &buf[128..132] == b"DICM")
        .unwrap_or(false)
}

/// Read one file's header (up to the pixel data) and return its slices and series facts.
fn scan_file(path: &Path) -> Result<(SeriesScan, String), LoadError> {
    let obj = OpenFileOptions::new()
        .read_until(tags::PIXEL_DATA)
        .open_file(path)
        .map_err(|e| LoadError::file(path, format!("not a readable DICOM file: {e}")))?;
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
    let rows = int(&obj, tags::ROWS)
        .ok_or_else(|| LoadError::file(path, "no Rows (0028,0010): not an image"))?;
    let cols = int(&obj, tags::COLUMNS)
        .ok_or_else(|| LoadError::file(path, "no Columns (0028,0011): not an image"))?;
    if rows <= 0 || cols <= 0 {
        return Err(LoadError::file(
            path,
            format!("invalid image size {cols}x{rows}"),
        ));
    }
    let frames = int(&obj, tags::NUMBER_OF_FRAMES).unwrap_or(1).max(1) as u32;
    let shared = items(&obj, tags::SHARED_FUNCTIONAL_GROUPS_SEQUENCE).and_then(|i| i.first());
    let per_frame = items(&obj, tags::PER_FRAME_FUNCTIONAL_GROUPS_SEQUENCE);

    let iop = floats(&obj, tags::IMAGE_ORIENTATION_PATIENT)
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
    let pixel_spacing = floats(&obj, tags::PIXEL_SPACING)
        .or_else(|| in_group(shared, tags::PIXEL_MEASURES_SEQUENCE, tags::PIXEL_SPACING))
        .or_else(|| {
            in_group(
                per_frame.and_then(|p| p.first()),
                tags::PIXEL_MEASURES_SEQUENCE,
                tags::PIXEL_SPACING,
            )
        })
        .or_else(|| floats(&obj, tags::IMAGER_PIXEL_SPACING))
        .filter(|v| v.len() == 2 && v[0] > 0.0 && v[1] > 0.0)
        .map(|v| [v[0], v[1]]);
    let nominal = floats(&obj, tags::SPACING_BETWEEN_SLICES)
        .or_else(|| {
            in_group(
                shared,
                tags::PIXEL_MEASURES_SEQUENCE,
                tags::SPACING_BETWEEN_SLICES,
            )
        })
        .or_else(|| floats(&obj, tags::SLICE_THICKNESS))
        .or_else(|| in_group(shared, tags::PIXEL_MEASURES_SEQUENCE, tags::SLICE_THICKNESS))
        .and_then(|v| v.first().copied())
        .filter(|v| *v > 0.0);
    let top_rescale = (
        floats(&obj, tags::RESCALE_SLOPE)
            .and_then(|v| v.first().copied())
            .unwrap_or(1.0),
        floats(&obj, tags::RESCALE_INTERCEPT)
            .and_then(|v| v.first().copied())
            .unwrap_or(0.0),
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
    let instance = int(&obj, tags::INSTANCE_NUMBER).unwrap_or(0);
    let top_pos = floats(&obj, tags::IMAGE_POSITION_PATIENT)
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
            floats(&obj, tags::GRID_FRAME_OFFSET_VECTOR).filter(|v| v.len() == frames as usize);
        for s in &mut slices {
            let k = offsets
                .as_ref()
                .map(|o| o[s.frame as usize])
                .unwrap_or(s.frame as f64 * dz);
            s.position = Some([p0[0] + n[0] * k, p0[1] + n[1] * k, p0[2] + n[2] * k]);
        }
    }
    let photometric = text(&obj, tags::PHOTOMETRIC_INTERPRETATION).unwrap_or_default();
    let series_uid = text(&obj, tags::SERIES_INSTANCE_UID)
        .unwrap_or_else(|| format!("(no SeriesInstanceUID) {}", path.display()));
    let meta = VolumeMeta {
        modality: text(&obj, tags::MODALITY).unwrap_or_default(),
        series_uid,
        description: text(&obj, tags::SERIES_DESCRIPTION).unwrap_or_default(),
        patient_name: text(&obj, tags::PATIENT_NAME).unwrap_or_default(),
        patient_id: text(&obj, tags::PATIENT_ID).unwrap_or_default(),
        study_uid: text(&obj, tags::STUDY_INSTANCE_UID).unwrap_or_default(),
        study_description: text(&obj, tags::STUDY_DESCRIPTION).unwrap_or_default(),
        frame_of_reference_uid: text(&obj, tags::FRAME_OF_REFERENCE_UID).unwrap_or_default(),
        source: path.display().to_string(),
        monochrome1: photometric == "MONOCHROME1",
        warnings: Vec::new(),
    };
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

/// Decode the pixels of one file's frames (values after rescale), one Vec per requested frame.
fn decode_file(
    path: &Path,
    frames: &[(u32, (f64, f64))],
    rows: usize,
    cols: usize,
) -> Result<Vec<Vec<f32>>, LoadError> {
    let obj = dicom::object::open_file(path)
        .map_err(|e| LoadError::file(path, format!("cannot read the data set (file truncated or corrupt: the data ends before an element's declared length): {e}")))?;
    let ts = obj.meta().transfer_syntax().to_string();
    if obj.get(tags::PIXEL_DATA).is_none() {
        return Err(LoadError::file(path, "no Pixel Data (7FE0,0010)"));
    }
    let spp = int(&obj, tags::SAMPLES_PER_PIXEL).unwrap_or(1);
    if spp != 1 {
        return Err(LoadError::file(
            path,
            format!(
                "{spp} samples per pixel (colour image): only greyscale CT/MR images form volumes"
            ),
        ));
    }
    let registry_ts = TransferSyntaxRegistry.get(ts.trim_end_matches('\0'));
    match registry_ts {
        None => {
            return Err(LoadError::file(
                path,
                format!("cannot decode {}", transfer_syntax_name(&ts)),
            ));
        }
        Some(t)
            if !t.can_decode_all() && t.is_encapsulated_pixel_data() && !t.can_decode_dataset() =>
        {
            return Err(LoadError::file(
                path,
                format!(
                    "cannot decode pixel data in {}: no decoder built in",
                    transfer_syntax_name(&ts)
                ),
            ));
        }
        _ => {}
    }
    // Native pixel data: check the byte count before decoding, so a truncated file gets a clear message.
    if let Some(t) = registry_ts
        && !t.is_encapsulated_pixel_data()
    {
        let bits = int(&obj, tags::BITS_ALLOCATED).unwrap_or(16) as usize;
        let nframes = int(&obj, tags::NUMBER_OF_FRAMES).unwrap_or(1).max(1) as usize;
        let need = rows * cols * nframes * bits / 8;
        let have = obj
            .get(tags::PIXEL_DATA)
            .and_then(|e| e.value().to_bytes().ok())
            .map(|b| b.len())
            .unwrap_or(0);
        if have < need {
            return Err(LoadError::file(
                path,
                format!(
                    "pixel data holds {have} bytes but {cols}x{rows}x{nframes} frames at {bits} bits need {need}: file truncated or dimensions wrong"
                ),
            ));
        }
    }
    // RLE with 32-bit samples (dose grids): dicom-rs's RLE decoder stops at 16 bits; ours covers it.
    let bits_allocated = int(&obj, tags::BITS_ALLOCATED).unwrap_or(16);
    if ts.trim_end_matches('\0') == uids::RLE_LOSSLESS && bits_allocated == 32 {
        let signed = int(&obj, tags::PIXEL_REPRESENTATION).unwrap_or(0) == 1;
        let fragments = obj
            .get(tags::PIXEL_DATA)
            .and_then(|e| e.value().fragments())
            .ok_or_else(|| LoadError::file(path, "RLE pixel data is not encapsulated"))?;
        let mut out = Vec::with_capacity(frames.len());
        for &(frame, (slope, intercept)) in frames {
            let frag = fragments.get(frame as usize).ok_or_else(|| {
                LoadError::file(path, format!("no RLE fragment for frame {frame}"))
            })?;
            let raw = rle_decode_frame(frag, rows * cols, 4)
                .map_err(|m| LoadError::file(path, format!("RLE frame {frame}: {m}")))?;
            out.push(
                raw.into_iter()
                    .map(|r| {
                        ((if signed { r as i32 as f64 } else { r as f64 }) * slope + intercept)
                            as f32
                    })
                    .collect(),
            );
        }
        return Ok(out);
    }
    let decoded =
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| obj.decode_pixel_data()))
            .map_err(|_| {
                LoadError::file(
                    path,
                    format!(
                        "the decoder for {} failed on this file",
                        transfer_syntax_name(&ts)
                    ),
                )
            })?
            .map_err(|e| {
                LoadError::file(
                    path,
                    format!(
                        "cannot decode pixel data ({}): {e}",
                        transfer_syntax_name(&ts)
                    ),
                )
            })?;
    if decoded.rows() as usize != rows || decoded.columns() as usize != cols {
        return Err(LoadError::file(
            path,
            "decoded size differs from Rows/Columns",
        ));
    }
    let mut out = Vec::with_capacity(frames.len());
    let bits = decoded.bits_allocated();
    let signed = decoded.pixel_representation() == dicom::pixeldata::PixelRepresentation::Signed;
    let plane = rows * cols;
    let big_endian = ts.trim_end_matches('\0') == "1.2.840.10008.1.2.2";
    for &(frame, (slope, intercept)) in frames {
        // 1-bit (segmentations) and 32-bit (dose grids) samples: converted here, as
        // dicom-pixeldata's conversion covers 8 and 16 bits.
        if bits == 1 {
            let data = decoded.data();
            let start = frame as usize * plane;
            let frames_total = decoded.number_of_frames() as usize;
            if data.len() >= frames_total * plane {
                // Already unpacked by the decoder: one byte per pixel.
                out.push(
                    data[start..start + plane]
                        .iter()
                        .map(|v| ((*v != 0) as u8 as f64 * slope + intercept) as f32)
                        .collect(),
                );
                continue;
            }
            if data.len() * 8 < start + plane {
                return Err(LoadError::file(
                    path,
                    format!("1-bit pixel data too short for frame {frame}"),
                ));
            }
            out.push(
                (start..start + plane)
                    .map(|b| (((data[b / 8] >> (b % 8)) & 1) as f64 * slope + intercept) as f32)
                    .collect(),
            );
            continue;
        }
        if bits == 32 && big_endian {
            // Big-endian native data: rebuild 32-bit samples from the parsed element value,
            // whose words the parser already put in machine order.
            use dicom::core::PrimitiveValue as P;
            let value = obj.get(tags::PIXEL_DATA).map(|e| e.value());
            let start = frame as usize * plane;
            let samples: Option<Vec<u32>> = match value.and_then(|v| v.primitive()) {
                Some(P::U32(w)) => w.get(start..start + plane).map(|w| w.to_vec()),
                Some(P::U16(w)) => w.get(2 * start..2 * (start + plane)).map(|w| {
                    w.chunks_exact(2)
                        .map(|p| ((p[0] as u32) << 16) | p[1] as u32)
                        .collect()
                }),
                Some(P::U8(b)) => b.get(4 * start..4 * (start + plane)).map(|b| {
                    b.chunks_exact(4)
                        .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]))
                        .collect()
                }),
                _ => None,
            };
            let samples = samples.ok_or_else(|| {
                LoadError::file(
                    path,
                    format!("32-bit big-endian pixel data too short for frame {frame}"),
                )
            })?;
            out.push(
                samples
                    .into_iter()
                    .map(|raw| {
                        ((if signed {
                            raw as i32 as f64
                        } else {
                            raw as f64
                        }) * slope
                            + intercept) as f32
                    })
                    .collect(),
            );
            continue;
        }
        if bits == 32 {
            let data = decoded
                .frame_data(frame)
                .map_err(|e| LoadError::file(path, format!("cannot read frame {frame}: {e}")))?;
            if data.len() < plane * 4 {
                return Err(LoadError::file(
                    path,
                    format!(
                        "frame {frame} holds {} bytes, {} needed",
                        data.len(),
                        plane * 4
                    ),
                ));
            }
            out.push(
                data.chunks_exact(4)
                    .take(plane)
                    .map(|c| {
                        let b = [c[0], c[1], c[2], c[3]];
                        let raw = if big_endian {
                            u32::from_be_bytes(b)
                        } else {
                            u32::from_le_bytes(b)
                        };
                        let v = if signed {
                            raw as i32 as f64
                        } else {
                            raw as f64
                        };
                        (v * slope + intercept) as f32
                    })
                    .collect(),
            );
            continue;
        }
        let opts = ConvertOptions::new()
            .with_modality_lut(ModalityLutOption::Override(Rescale::new(slope, intercept)));
        let v: Vec<f32> = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            decoded.to_vec_frame_with_options::<f32>(frame, &opts)
        }))
        .map_err(|_| LoadError::file(path, format!("pixel conversion failed on frame {frame}")))?
        .map_err(|e| LoadError::file(path, format!("cannot convert frame {frame}: {e}")))?;
        if v.len() != rows * cols {
            return Err(LoadError::file(
                path,
                format!(
                    "frame {frame} has {} values, expected {}",
                    v.len(),
                    rows * cols
                ),
            ));
        }
        out.push(v);
    }
    Ok(out)
}

/// Decode one RLE Lossless frame (PS3.5 Annex G) of single-sample pixels with `bytes` bytes each:
/// one PackBits segment per byte plane, most significant first.
fn rle_decode_frame(frag: &[u8], pixels: usize, bytes: usize) -> Result<Vec<u32>, String> {
    if frag.len() < 64 {
        return Err("header shorter than 64 bytes".into());
    }
    let word = |i: usize| {
        u32::from_le_bytes([
            frag[4 * i],
            frag[4 * i + 1],
            frag[4 * i + 2],
            frag[4 * i + 3],
        ]) as usize
    };
    let nseg = word(0);
    if nseg != bytes {
        return Err(format!("{nseg} segments, expected {bytes}"));
    }
    let mut out = vec![0u32; pixels];
    for s in 0..nseg {
        let start = word(1 + s);
        let end = if s + 1 < nseg {
            word(2 + s)
        } else {
            frag.len()
        };
        if start > end || end > frag.len() {
            return Err(format!("segment {s} offsets out of range"));
        }
        let seg = &frag[start..end];
        let mut plane = Vec::with_capacity(pixels);
        let mut i = 0;
        while i < seg.len() && plane.len() < pixels {
            let n = seg[i] as i8;
            i += 1;
            if n >= 0 {
                let len = n as usize + 1;
                let chunk = seg
                    .get(i..i + len)
                    .ok_or("literal run past the segment end")?;
                plane.extend_from_slice(chunk);
                i += len;
            } else if n != -128 {
                let b = *seg.get(i).ok_or("repeat run past the segment end")?;
                plane.extend(std::iter::repeat_n(b, (-(n as i32)) as usize + 1));
                i += 1;
            }
        }
        if plane.len() < pixels {
            return Err(format!(
                "segment {s} decodes to {} bytes, {pixels} needed",
                plane.len()
            ));
        }
        let shift = 8 * (bytes - 1 - s);
        for (o, b) in out.iter_mut().zip(plane) {
            *o |= (b as u32) << shift;
        }
    }
    Ok(out)
}

/// A frame to decode: (slice index in the volume, frame number in its file, rescale).
type FrameJob = (usize, u32, (f64, f64));
/// A decoded frame: (slice index in the volume, values).
type DecodedPlane = (usize, Vec<f32>);

/// Decode a scanned series into a volume (values after rescale, HU for CT).
pub fn decode_series(s: &SeriesScan, progress: &Progress) -> Result<Volume, LoadError> {
    let (geometry, warnings) = series_geometry(s);
    let plane = s.rows * s.cols;
    // Group frames by file so each file is opened and decoded once.
    let mut by_file: BTreeMap<&Path, Vec<FrameJob>> = BTreeMap::new();
    for (z, sl) in s.slices.iter().enumerate() {
        by_file
            .entry(sl.path.as_path())
            .or_default()
            .push((z, sl.frame, sl.rescale));
    }
    let jobs: Vec<_> = by_file.into_iter().collect();
    let decoded: Vec<Result<Vec<DecodedPlane>, LoadError>> = jobs
        .par_iter()
        .map(|(path, frames)| {
            progress.check()?;
            let req: Vec<(u32, (f64, f64))> = frames.iter().map(|f| (f.1, f.2)).collect();
            let planes = decode_file(path, &req, s.rows, s.cols)?;
            for _ in 0..frames.len() {
                progress.step();
            }
            Ok(frames.iter().map(|f| f.0).zip(planes).collect())
        })
        .collect();
    let mut data = vec![0f32; plane * s.slices.len()];
    for r in decoded {
        for (z, p) in r? {
            data[z * plane..(z + 1) * plane].copy_from_slice(&p);
        }
    }
    let mut meta = s.meta.clone();
    meta.warnings = warnings;
    Ok(Volume::new(geometry, data, meta))
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
