//! Decoding: the pixels of a scanned series into a volume (values after rescale), every native
//! and encapsulated transfer syntax dicom-pixeldata decodes, plus 1-bit, 32-bit and 32-bit RLE
//! samples that it does not.
//!
//! The fast path: uncompressed little-endian single-frame slices whose pixel bytes the scan
//! located ([`NativePixels`]) are memory-mapped and converted in one pass from the stored
//! samples to rescaled f32 in the volume's own plane, in parallel across slices, with the
//! general decoder's arithmetic (bit-identical values). Everything else takes the general
//! decoder.

use super::attributes::{int, transfer_syntax_name};
use super::scan::{NativePixels, SeriesScan, series_geometry};
use crate::io::{LoadError, Progress};
use crate::volume::Volume;
use dicom::dictionary_std::{tags, uids};
use dicom::pixeldata::{ConvertOptions, ModalityLutOption, PixelDecoder, Rescale};
use dicom::transfer_syntax::{TransferSyntaxIndex, TransferSyntaxRegistry};
use rayon::prelude::*;
use std::collections::BTreeMap;
use std::mem::MaybeUninit;
use std::path::Path;

/// Decode the pixels of one file's frames (values after rescale), one Vec per requested frame.
fn decode_file(
    path: &Path,
    frames: &[(u32, (f64, f64))],
    rows: usize,
    cols: usize,
) -> Result<Vec<Vec<f32>>, LoadError> {
    let ceiling = super::bounds::check_file(path, super::bounds::Extent::Whole)?;
    let obj = crate::io::alloc_guard::with_ceiling(ceiling, || dicom::object::open_file(path))
        .map_err(|e| LoadError::file(path, format!("cannot read the data set (file truncated or corrupt: the data ends before an element's declared length): {e}")))?;
    let ts = obj.meta().transfer_syntax().to_string();
    check_decodable(&obj, path, &ts, rows, cols)?;
    // Compressed frames must agree with Rows/Columns before a decoder sizes its work by them.
    if let Some(codec) = super::codestream::codec(&ts)
        && let Some(fragments) = obj
            .get(tags::PIXEL_DATA)
            .and_then(|e| e.value().fragments())
    {
        super::codestream::check_fragments(
            codec,
            fragments.iter().map(|f| f.as_slice()),
            rows,
            cols,
        )
        .map_err(|e| LoadError::file(path, e))?;
    }
    // RLE Lossless is decoded by ours at every depth: dicom-rs's decoder stops at 16 bits and
    // indexes past a segment that decodes short (a panic on a damaged file).
    if ts.trim_end_matches('\0') == uids::RLE_LOSSLESS {
        return decode_rle(&obj, path, frames, rows * cols);
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
    let frame_of = Frames {
        obj: &obj,
        decoded: &decoded,
        path,
        plane: rows * cols,
        big_endian: ts.trim_end_matches('\0') == "1.2.840.10008.1.2.2",
        signed: decoded.pixel_representation() == dicom::pixeldata::PixelRepresentation::Signed,
    };
    frames
        .iter()
        .map(|&(frame, rescale)| frame_of.values(frame, rescale))
        .collect()
}

/// Refuse, with a message naming the file, what cannot be decoded: no pixel data, colour
/// images, unknown transfer syntaxes or ones without a decoder, native pixel data shorter than
/// its declared size.
fn check_decodable(
    obj: &dicom::object::DefaultDicomObject,
    path: &Path,
    ts: &str,
    rows: usize,
    cols: usize,
) -> Result<(), LoadError> {
    if obj.get(tags::PIXEL_DATA).is_none() {
        return Err(LoadError::file(path, "no Pixel Data (7FE0,0010)"));
    }
    let spp = int(obj, tags::SAMPLES_PER_PIXEL).unwrap_or(1);
    if spp != 1 {
        return Err(LoadError::file(
            path,
            format!(
                "{spp} samples per pixel (colour image): only greyscale CT/MR images form volumes"
            ),
        ));
    }
    // dicom-pixeldata builds a 2^BitsStored-entry lookup table and asserts 1..=32 bits.
    let allocated = int(obj, tags::BITS_ALLOCATED).unwrap_or(16);
    if let Some(stored) = int(obj, tags::BITS_STORED)
        && (stored < 1 || stored > allocated.min(32))
    {
        return Err(LoadError::file(
            path,
            format!(
                "BitsStored (0028,0101) = {stored} with BitsAllocated (0028,0100) = {allocated}: it must be 1 to BitsAllocated"
            ),
        ));
    }
    let registry_ts = TransferSyntaxRegistry.get(ts.trim_end_matches('\0'));
    match registry_ts {
        None => {
            return Err(LoadError::file(
                path,
                format!("cannot decode {}", transfer_syntax_name(ts)),
            ));
        }
        Some(t)
            if !t.can_decode_all() && t.is_encapsulated_pixel_data() && !t.can_decode_dataset() =>
        {
            return Err(LoadError::file(
                path,
                format!(
                    "cannot decode pixel data in {}: no decoder built in",
                    transfer_syntax_name(ts)
                ),
            ));
        }
        _ => {}
    }
    // Native pixel data: check the byte count before decoding, so a truncated file gets a clear message.
    if let Some(t) = registry_ts
        && !t.is_encapsulated_pixel_data()
    {
        // u128: lying headers must not wrap the product round to a small number.
        let bits = int(obj, tags::BITS_ALLOCATED).unwrap_or(16).max(0) as u128;
        let nframes = int(obj, tags::NUMBER_OF_FRAMES).unwrap_or(1).max(1) as u128;
        let need = (rows as u128 * cols as u128 * nframes * bits).div_ceil(8);
        let have = obj
            .get(tags::PIXEL_DATA)
            .and_then(|e| e.value().to_bytes().ok())
            .map(|b| b.len() as u128)
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
    Ok(())
}

/// RLE Lossless frames (single-sample pixels of 8, 16 or 32 bits), decoded by
/// [`rle_decode_frame`]; values as the general decoder gives them: the low BitsStored bits of
/// 16-bit samples (all 8 or 32 otherwise), two's complement when PixelRepresentation is 1, then
/// the rescale, computed as [`convert_plane`] computes it.
fn decode_rle(
    obj: &dicom::object::DefaultDicomObject,
    path: &Path,
    frames: &[(u32, (f64, f64))],
    plane: usize,
) -> Result<Vec<Vec<f32>>, LoadError> {
    let signed = int(obj, tags::PIXEL_REPRESENTATION).unwrap_or(0) == 1;
    let allocated = int(obj, tags::BITS_ALLOCATED).unwrap_or(16);
    let bytes = match allocated {
        8 | 16 | 32 => (allocated / 8) as usize,
        other => {
            return Err(LoadError::file(
                path,
                format!(
                    "RLE Lossless with BitsAllocated (0028,0100) = {other}: 8, 16 or 32 are read"
                ),
            ));
        }
    };
    let bits = match allocated {
        16 => int(obj, tags::BITS_STORED).unwrap_or(16).clamp(1, 16) as u32,
        other => other as u32,
    };
    let shift = 32 - bits;
    let fragments = obj
        .get(tags::PIXEL_DATA)
        .and_then(|e| e.value().fragments())
        .ok_or_else(|| LoadError::file(path, "RLE pixel data is not encapsulated"))?;
    let mut out = Vec::with_capacity(frames.len());
    for &(frame, (slope, intercept)) in frames {
        let frag = fragments
            .get(frame as usize)
            .ok_or_else(|| LoadError::file(path, format!("no RLE fragment for frame {frame}")))?;
        let raw = rle_decode_frame(frag, plane, bytes)
            .map_err(|m| LoadError::file(path, format!("RLE frame {frame}: {m}")))?;
        let value = |r: u32| -> i64 {
            if bytes == 4 {
                if signed { r as i32 as i64 } else { r as i64 }
            } else if signed {
                (((r << shift) as i32) >> shift) as i64
            } else {
                ((r << shift) >> shift) as i64
            }
        };
        let integer =
            bytes < 4 && slope == 1.0 && intercept.fract() == 0.0 && intercept.abs() <= 8_388_608.0;
        out.push(if integer {
            let b = intercept as i64;
            raw.into_iter().map(|r| (value(r) + b) as f32).collect()
        } else {
            raw.into_iter()
                .map(|r| (slope * value(r) as f64 + intercept) as f32)
                .collect()
        });
    }
    Ok(out)
}

/// What converting one frame of a decoded file needs.
struct Frames<'a> {
    obj: &'a dicom::object::DefaultDicomObject,
    decoded: &'a dicom::pixeldata::DecodedPixelData<'a>,
    path: &'a Path,
    plane: usize,
    big_endian: bool,
    signed: bool,
}

impl Frames<'_> {
    /// Frame `frame`'s values after `(slope, intercept)`. 1-bit (segmentations) and 32-bit
    /// (dose grids) samples are converted here, as dicom-pixeldata's conversion covers 8 and 16.
    fn values(&self, frame: u32, (slope, intercept): (f64, f64)) -> Result<Vec<f32>, LoadError> {
        match self.decoded.bits_allocated() {
            1 => self.one_bit(frame, slope, intercept),
            32 if self.big_endian => self.big_endian_32(frame, slope, intercept),
            32 => self.native_32(frame, slope, intercept),
            _ => self.converted(frame, slope, intercept),
        }
    }

    fn one_bit(&self, frame: u32, slope: f64, intercept: f64) -> Result<Vec<f32>, LoadError> {
        let (decoded, path, plane) = (self.decoded, self.path, self.plane);
        let data = decoded.data();
        let start = frame as usize * plane;
        let frames_total = decoded.number_of_frames() as usize;
        if data.len() >= frames_total * plane {
            // Already unpacked by the decoder: one byte per pixel.
            return Ok(data[start..start + plane]
                .iter()
                .map(|v| ((*v != 0) as u8 as f64 * slope + intercept) as f32)
                .collect());
        }
        if data.len() * 8 < start + plane {
            return Err(LoadError::file(
                path,
                format!("1-bit pixel data too short for frame {frame}"),
            ));
        }
        Ok((start..start + plane)
            .map(|b| (((data[b / 8] >> (b % 8)) & 1) as f64 * slope + intercept) as f32)
            .collect())
    }

    /// Big-endian native data: 32-bit samples rebuilt from the parsed element value, whose words
    /// the parser already put in machine order.
    fn big_endian_32(&self, frame: u32, slope: f64, intercept: f64) -> Result<Vec<f32>, LoadError> {
        let (obj, path, plane, signed) = (self.obj, self.path, self.plane, self.signed);
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
        Ok(samples
            .into_iter()
            .map(|raw| {
                ((if signed {
                    raw as i32 as f64
                } else {
                    raw as f64
                }) * slope
                    + intercept) as f32
            })
            .collect())
    }

    fn native_32(&self, frame: u32, slope: f64, intercept: f64) -> Result<Vec<f32>, LoadError> {
        let (decoded, path, plane) = (self.decoded, self.path, self.plane);
        let (big_endian, signed) = (self.big_endian, self.signed);
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
        Ok(data
            .chunks_exact(4)
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
            .collect())
    }

    fn converted(&self, frame: u32, slope: f64, intercept: f64) -> Result<Vec<f32>, LoadError> {
        let (decoded, path, plane) = (self.decoded, self.path, self.plane);
        let opts = ConvertOptions::new()
            .with_modality_lut(ModalityLutOption::Override(Rescale::new(slope, intercept)));
        let v: Vec<f32> = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            decoded.to_vec_frame_with_options::<f32>(frame, &opts)
        }))
        .map_err(|_| LoadError::file(path, format!("pixel conversion failed on frame {frame}")))?
        .map_err(|e| LoadError::file(path, format!("cannot convert frame {frame}: {e}")))?;
        if v.len() != plane {
            return Err(LoadError::file(
                path,
                format!("frame {frame} has {} values, expected {}", v.len(), plane),
            ));
        }
        Ok(v)
    }
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

/// Convert one plane of stored samples (`N` bytes each, little endian) into `out`: the low
/// `bits` bits of each sample, two's complement when `signed`, then `slope * x + intercept`
/// in f64 rounded once to f32, as dicom-pixeldata's rescale table computes it. With slope 1 and
/// an integer intercept the sum is an integer below 2^24, exact in f32 and computed there.
/// Returns how many values it wrote (the smaller of the two lengths).
fn convert_plane<const N: usize>(
    src: &[u8],
    out: &mut [MaybeUninit<f32>],
    bits: u16,
    signed: bool,
    (slope, intercept): (f64, f64),
) -> usize {
    let (samples, _) = src.as_chunks::<N>();
    let shift = 32 - bits as u32;
    let value = |c: &[u8; N]| -> i32 {
        let raw = if N == 1 {
            c[0] as u32
        } else {
            u16::from_le_bytes([c[0], c[N - 1]]) as u32
        };
        if signed {
            ((raw << shift) as i32) >> shift
        } else {
            ((raw << shift) >> shift) as i32
        }
    };
    if slope == 1.0 && intercept.fract() == 0.0 && intercept.abs() <= 8_388_608.0 {
        let b = intercept as i32;
        for (o, c) in out.iter_mut().zip(samples) {
            o.write((value(c) + b) as f32);
        }
    } else {
        for (o, c) in out.iter_mut().zip(samples) {
            o.write((slope * value(c) as f64 + intercept) as f32);
        }
    }
    samples.len().min(out.len())
}

/// The fast path for one slice: check the located Pixel Data against the plane's size and the
/// file's length, map its bytes and convert them into `out` (one plane).
fn native_plane(
    path: &Path,
    px: NativePixels,
    rescale: (f64, f64),
    (cols, rows): (usize, usize),
    out: &mut [MaybeUninit<f32>],
) -> Result<(), LoadError> {
    let bytes = (px.bits_allocated / 8) as u64;
    let need = out.len() as u64 * bytes;
    if px.length < need {
        return Err(LoadError::file(
            path,
            format!(
                "pixel data holds {} bytes but {cols}x{rows}x1 frames at {} bits need {need}: file truncated or dimensions wrong",
                px.length, px.bits_allocated
            ),
        ));
    }
    let file = std::fs::File::open(path)
        .map_err(|e| LoadError::file(path, format!("cannot open: {e}")))?;
    let file_len = file
        .metadata()
        .map_err(|e| LoadError::file(path, format!("cannot read: {e}")))?
        .len();
    if px.offset.saturating_add(px.length) > file_len {
        return Err(LoadError::file(
            path,
            format!(
                "Pixel Data (7FE0,0010) declares {} bytes at offset {} but the file ends {} bytes after it: file truncated",
                px.length,
                px.offset,
                file_len.saturating_sub(px.offset)
            ),
        ));
    }
    if need == 0 {
        return Ok(());
    }
    // SAFETY: the map is read-only and private to this call, and covers bytes that the file
    // holds (checked just above against its length). The one hazard of a file map, another
    // process truncating the file while this slice is converted, would fault the reading
    // thread; a series being loaded is not expected to be rewritten in that window.
    let map = unsafe {
        memmap2::MmapOptions::new()
            .offset(px.offset)
            .len(need as usize)
            .map(&file)
    }
    .map_err(|e| LoadError::file(path, format!("cannot map the pixel data: {e}")))?;
    let written = match px.bits_allocated {
        8 => convert_plane::<1>(&map, out, px.bits_stored, px.signed, rescale),
        _ => convert_plane::<2>(&map, out, px.bits_stored, px.signed, rescale),
    };
    if written != out.len() {
        return Err(LoadError::file(
            path,
            format!("mapped {written} of {} samples", out.len()),
        ));
    }
    Ok(())
}

/// Decode a scanned series into a volume (values after rescale, HU for CT).
pub fn decode_series(s: &SeriesScan, progress: &Progress) -> Result<Volume, LoadError> {
    if let Some(first) = s.slices.first() {
        crate::io::check_voxels(
            &first.path,
            s.rows as u128 * s.cols as u128 * s.slices.len() as u128,
            &format!(
                "{} slices of Rows x Columns {}x{} in series {}",
                s.slices.len(),
                s.cols,
                s.rows,
                s.meta.series_uid
            ),
        )?;
    }
    let (geometry, warnings) = series_geometry(s);
    let plane = s.rows * s.cols;
    let n = s.slices.len();
    // The general decoder, for the slices off the fast path: frames grouped by file so each
    // file is opened and decoded once.
    let mut by_file: BTreeMap<&Path, Vec<FrameJob>> = BTreeMap::new();
    for (z, sl) in s.slices.iter().enumerate() {
        if sl.pixels.is_none() {
            by_file
                .entry(sl.path.as_path())
                .or_default()
                .push((z, sl.frame, sl.rescale));
        }
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
    let mut general: Vec<Option<Vec<f32>>> = vec![None; n];
    for r in decoded {
        for (z, p) in r? {
            general[z] = Some(p);
        }
    }
    // Every plane of the volume written once, straight from its source: the fast path converts
    // into it, the general decoder's planes are copied; nothing is zero-filled first.
    let mut data: Vec<f32> = Vec::new();
    data.try_reserve_exact(plane * n).map_err(|_| {
        LoadError::file(
            &s.meta.source,
            format!(
                "cannot allocate {} MB for the volume",
                plane * n * 4 / 1_000_000
            ),
        )
    })?;
    crate::io::alloc_guard::advise_huge_pages(&mut data.spare_capacity_mut()[..plane * n]);
    if plane > 0 {
        data.spare_capacity_mut()[..plane * n]
            .par_chunks_mut(plane)
            .zip(s.slices.par_iter())
            .zip(general.par_iter_mut())
            .try_for_each(|((out, sl), done)| {
                progress.check()?;
                match (done.take(), sl.pixels) {
                    (Some(values), _) => {
                        if values.len() != out.len() {
                            return Err(LoadError::file(
                                &sl.path,
                                format!("{} values decoded, {} expected", values.len(), out.len()),
                            ));
                        }
                        for (o, v) in out.iter_mut().zip(values) {
                            o.write(v);
                        }
                    }
                    (None, Some(px)) => {
                        native_plane(&sl.path, px, sl.rescale, (s.cols, s.rows), out)?;
                        progress.step();
                    }
                    (None, None) => {
                        return Err(LoadError::file(&sl.path, "frame not decoded"));
                    }
                }
                Ok(())
            })?;
    }
    // SAFETY: the capacity is plane * n, and every one of those elements was written above:
    // each of the n chunks of `plane` elements by its one task, which checks that it wrote its
    // whole chunk (a general decoder's plane of exactly `plane` values copied, or the fast
    // path's count of converted samples) and otherwise returns an error, so this point is not
    // reached.
    unsafe { data.set_len(plane * n) };
    let mut meta = s.meta.clone();
    meta.warnings = warnings;
    Ok(Volume::new(geometry, data, meta))
}
