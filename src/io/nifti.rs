//! NIfTI-1 (through the `nifti` crate) and NIfTI-2 (parsed here; the crate reads only NIfTI-1)
//! into volumes, and NIfTI-1 writing. NIfTI is RAS; we convert to LPS here and nowhere else.

use super::LoadError;
use crate::volume::{Geometry, Modality, Volume, VolumeMeta};
use nifti::{NiftiObject, ReaderOptions};
use std::io::{Read, Write};
use std::path::Path;

/// The header fields we use, common to NIfTI-1 and NIfTI-2.
#[derive(Clone, Debug, Default)]
struct Header {
    datatype: i16,
    dim: [i64; 8],
    pixdim: [f64; 8],
    vox_offset: f64,
    scl_slope: f64,
    scl_inter: f64,
    qform_code: i32,
    sform_code: i32,
    quatern: [f64; 3],
    qoffset: [f64; 3],
    srow: [[f64; 4]; 3],
    little_endian: bool,
    descrip: String,
}

fn read_all(path: &Path) -> Result<Vec<u8>, LoadError> {
    let raw =
        std::fs::read(path).map_err(|e| LoadError::file(path, format!("cannot read: {e}")))?;
    if raw.len() >= 2 && raw[0] == 0x1f && raw[1] == 0x8b {
        // A gzip bomb stops at the largest image a volume may be (8 bytes a voxel) plus headers.
        let limit = crate::io::max_voxels()
            .saturating_mul(8)
            .saturating_add(1 << 20);
        let mut out = Vec::new();
        flate2::read::MultiGzDecoder::new(&raw[..])
            .take(limit + 1)
            .read_to_end(&mut out)
            .map_err(|e| {
                LoadError::file(path, format!("gzip stream is corrupt or truncated: {e}"))
            })?;
        if out.len() as u64 > limit {
            return Err(LoadError::file(
                path,
                format!(
                    "gzip stream decompresses to more than {limit} bytes: not one image volume"
                ),
            ));
        }
        Ok(out)
    } else {
        Ok(raw)
    }
}

/// Which NIfTI version a file is, from sizeof_hdr in either byte order.
fn version(bytes: &[u8]) -> Option<(u8, bool)> {
    let b: [u8; 4] = bytes.get(0..4)?.try_into().ok()?;
    match (i32::from_le_bytes(b), i32::from_be_bytes(b)) {
        (348, _) => Some((1, true)),
        (_, 348) => Some((1, false)),
        (540, _) => Some((2, true)),
        (_, 540) => Some((2, false)),
        _ => None,
    }
}

/// Header fields read at byte offsets in the file's byte order (zero past the end).
struct Fields<'a> {
    bytes: &'a [u8],
    le: bool,
}

macro_rules! field {
    ($name:ident, $t:ty, $n:expr) => {
        fn $name(&self, o: usize) -> $t {
            let b: [u8; $n] = self
                .bytes
                .get(o..o + $n)
                .and_then(|s| s.try_into().ok())
                .unwrap_or_default();
            if self.le {
                <$t>::from_le_bytes(b)
            } else {
                <$t>::from_be_bytes(b)
            }
        }
    };
}

impl Fields<'_> {
    field!(i16, i16, 2);
    field!(i32, i32, 4);
    field!(i64, i64, 8);
    field!(f32, f32, 4);
    field!(f64, f64, 8);
}

/// NIfTI-1: the sizes the header declares (dim, datatype, vox_offset), checked against the
/// voxel limit and the bytes present before the nifti crate allocates the image.
fn check_v1_sizes(path: &Path, bytes: &[u8], le: bool) -> Result<(), LoadError> {
    if bytes.len() < 348 {
        return Err(LoadError::file(
            path,
            format!("{} bytes: shorter than a NIfTI-1 header (348)", bytes.len()),
        ));
    }
    let h = Fields { bytes, le };
    let i16_at = |o| h.i16(o);
    let vox_offset = h.f32(108);
    let ndim = i16_at(40).clamp(0, 7) as usize;
    let dims: Vec<i64> = (1..=ndim)
        .map(|k| i64::from(i16_at(40 + 2 * k)).max(1))
        .collect();
    let spatial: u128 = dims.iter().take(3).map(|d| *d as u128).product();
    let shown: Vec<String> = dims.iter().take(3).map(|d| d.to_string()).collect();
    crate::io::check_voxels(path, spatial, &format!("dim[1..3] = {}", shown.join("x")))?;
    let Some(bpv) = bytes_per_voxel(i16_at(70)) else {
        return Ok(()); // refused with its name after the header is read
    };
    let need = dims.iter().map(|d| *d as u128).product::<u128>() * bpv as u128;
    let start = if vox_offset.is_finite() && vox_offset >= 348.0 {
        vox_offset as u128
    } else {
        352
    };
    let have = (bytes.len() as u128).saturating_sub(start);
    if path.extension().is_some_and(|e| e != "hdr") && have < need {
        return Err(LoadError::file(
            path,
            format!(
                "image data holds {have} bytes but dim {:?} of {bpv} bytes need {need}: file truncated or dimensions wrong",
                dims
            ),
        ));
    }
    Ok(())
}

fn header_v1(path: &Path) -> Result<(Header, Vec<u8>), LoadError> {
    let obj = ReaderOptions::new()
        .read_file(path)
        .map_err(|e| LoadError::file(path, format!("not a readable NIfTI-1 file: {e}")))?;
    let h = obj.header();
    let hdr = Header {
        datatype: h.datatype,
        dim: h.dim.map(|d| d as i64),
        pixdim: h.pixdim.map(|p| p as f64),
        vox_offset: h.vox_offset as f64,
        scl_slope: h.scl_slope as f64,
        scl_inter: h.scl_inter as f64,
        qform_code: h.qform_code as i32,
        sform_code: h.sform_code as i32,
        quatern: [h.quatern_b as f64, h.quatern_c as f64, h.quatern_d as f64],
        qoffset: [h.quatern_x as f64, h.quatern_y as f64, h.quatern_z as f64],
        srow: [
            h.srow_x.map(|v| v as f64),
            h.srow_y.map(|v| v as f64),
            h.srow_z.map(|v| v as f64),
        ],
        little_endian: matches!(h.endianness, nifti::Endianness::Little),
        descrip: String::from_utf8_lossy(&h.descrip)
            .trim_end_matches('\0')
            .trim()
            .to_string(),
    };
    let data = obj.into_volume().into_raw_data();
    Ok((hdr, data))
}

fn header_v2(path: &Path, bytes: &[u8], le: bool) -> Result<(Header, Vec<u8>), LoadError> {
    if bytes.len() < 540 {
        return Err(LoadError::file(
            path,
            "NIfTI-2 header truncated (fewer than 540 bytes)",
        ));
    }
    let f = Fields { bytes, le };
    let (i16_at, i32_at) = (|o| f.i16(o), |o| f.i32(o));
    let (i64_at, f64_at) = (|o| f.i64(o), |o| f.f64(o));
    let mut h = Header {
        datatype: i16_at(12),
        little_endian: le,
        ..Default::default()
    };
    for k in 0..8 {
        h.dim[k] = i64_at(16 + 8 * k);
        h.pixdim[k] = f64_at(104 + 8 * k);
    }
    h.vox_offset = i64_at(168) as f64;
    h.scl_slope = f64_at(176);
    h.scl_inter = f64_at(184);
    h.descrip = String::from_utf8_lossy(&bytes[240..320])
        .trim_end_matches('\0')
        .trim()
        .to_string();
    h.qform_code = i32_at(344);
    h.sform_code = i32_at(348);
    h.quatern = [f64_at(352), f64_at(360), f64_at(368)];
    h.qoffset = [f64_at(376), f64_at(384), f64_at(392)];
    for r in 0..3 {
        for c in 0..4 {
            h.srow[r][c] = f64_at(400 + 32 * r + 8 * c);
        }
    }
    let off = h.vox_offset.max(540.0) as usize;
    let data = bytes.get(off..).unwrap_or(&[]).to_vec();
    Ok((h, data))
}

/// `world_from_voxel` in RAS from the header: sform when set, else qform, else pixdim scaling.
fn ras_affine(h: &Header) -> [[f64; 4]; 3] {
    if h.sform_code > 0 {
        return h.srow;
    }
    let dx = h.pixdim[1];
    let dy = h.pixdim[2];
    let qfac = if h.pixdim[0] < 0.0 { -1.0 } else { 1.0 };
    let dz = h.pixdim[3] * qfac;
    if h.qform_code > 0 {
        let [b, c, d] = h.quatern;
        let a = (1.0 - (b * b + c * c + d * d)).max(0.0).sqrt();
        let r = [
            [
                a * a + b * b - c * c - d * d,
                2.0 * (b * c - a * d),
                2.0 * (b * d + a * c),
            ],
            [
                2.0 * (b * c + a * d),
                a * a + c * c - b * b - d * d,
                2.0 * (c * d - a * b),
            ],
            [
                2.0 * (b * d - a * c),
                2.0 * (c * d + a * b),
                a * a + d * d - c * c - b * b,
            ],
        ];
        let mut m = [[0.0; 4]; 3];
        for i in 0..3 {
            m[i] = [r[i][0] * dx, r[i][1] * dy, r[i][2] * dz, h.qoffset[i]];
        }
        return m;
    }
    let s = |v: f64| if v > 0.0 { v } else { 1.0 };
    [
        [s(dx), 0.0, 0.0, 0.0],
        [0.0, s(dy), 0.0, 0.0],
        [0.0, 0.0, s(h.pixdim[3]), 0.0],
    ]
}

fn bytes_per_voxel(datatype: i16) -> Option<usize> {
    Some(match datatype {
        2 | 256 => 1,
        4 | 512 => 2,
        8 | 16 | 768 => 4,
        64 | 1024 | 1280 => 8,
        _ => return None,
    })
}

fn datatype_name(datatype: i16) -> String {
    match datatype {
        32 => "complex64".into(),
        128 => "RGB24".into(),
        1792 => "complex128".into(),
        2304 => "RGBA32".into(),
        other => format!("datatype code {other}"),
    }
}

/// Read a NIfTI-1 or NIfTI-2 file (.nii or .nii.gz); the first volume of 4D data.
pub fn read_nifti(path: &Path) -> Result<Volume, LoadError> {
    let bytes = read_all(path)?;
    let (ver, le) = version(&bytes).ok_or_else(|| {
        LoadError::file(path, "not a NIfTI file (sizeof_hdr is neither 348 nor 540)")
    })?;
    let (h, data) = if ver == 1 {
        check_v1_sizes(path, &bytes, le)?;
        header_v1(path)?
    } else {
        header_v2(path, &bytes, le)?
    };
    let mut warnings = Vec::new();
    let ndim = h.dim[0].clamp(0, 7) as usize;
    if ndim == 0 {
        return Err(LoadError::file(path, "dim[0] is 0: no image"));
    }
    let mut dims = [1usize; 3];
    for a in 0..3.min(ndim) {
        if h.dim[a + 1] <= 0 {
            return Err(LoadError::file(
                path,
                format!("dim[{}] = {} is not a size", a + 1, h.dim[a + 1]),
            ));
        }
        dims[a] = h.dim[a + 1] as usize;
    }
    let extra: i64 = (4..=ndim).map(|k| h.dim[k].max(1)).product();
    if extra > 1 {
        warnings.push(format!(
            "{extra} volumes in a {ndim}-D image: showing the first"
        ));
    }
    let bpv = bytes_per_voxel(h.datatype).ok_or_else(|| {
        LoadError::file(
            path,
            format!(
                "unsupported voxel type {}: only scalar images form volumes",
                datatype_name(h.datatype)
            ),
        )
    })?;
    crate::io::check_voxels(
        path,
        dims.iter().map(|d| *d as u128).product(),
        &format!("dim[1..3] = {}x{}x{}", dims[0], dims[1], dims[2]),
    )?;
    let n = dims[0] * dims[1] * dims[2];
    if data.len() < n * bpv {
        return Err(LoadError::file(
            path,
            format!(
                "image data holds {} bytes but {}x{}x{} voxels of {} bytes need {}: file truncated or dimensions wrong",
                data.len(),
                dims[0],
                dims[1],
                dims[2],
                bpv,
                n * bpv
            ),
        ));
    }
    let le = h.little_endian;
    let (slope, inter) = if h.scl_slope != 0.0 && h.scl_slope.is_finite() {
        (
            h.scl_slope,
            if h.scl_inter.is_finite() {
                h.scl_inter
            } else {
                0.0
            },
        )
    } else {
        (1.0, 0.0)
    };
    macro_rules! conv {
        ($t:ty, $n:expr) => {
            data[..n * $n]
                .chunks_exact($n)
                .map(|c| {
                    let b: [u8; $n] = c.try_into().unwrap_or([0; $n]);
                    let v = if le {
                        <$t>::from_le_bytes(b)
                    } else {
                        <$t>::from_be_bytes(b)
                    };
                    (v as f64 * slope + inter) as f32
                })
                .collect::<Vec<f32>>()
        };
    }
    let values = match h.datatype {
        2 => data[..n]
            .iter()
            .map(|v| (*v as f64 * slope + inter) as f32)
            .collect(),
        256 => data[..n]
            .iter()
            .map(|v| (*v as i8 as f64 * slope + inter) as f32)
            .collect(),
        4 => conv!(i16, 2),
        512 => conv!(u16, 2),
        8 => conv!(i32, 4),
        768 => conv!(u32, 4),
        16 => conv!(f32, 4),
        64 => conv!(f64, 8),
        1024 => conv!(i64, 8),
        1280 => conv!(u64, 8),
        _ => unreachable!("checked by bytes_per_voxel"),
    };
    if h.sform_code <= 0 && h.qform_code <= 0 {
        warnings.push("neither sform nor qform set: geometry from voxel sizes only".into());
    }
    let ras = ras_affine(&h);
    // LPS = diag(-1, -1, 1) * RAS.
    let mut lps = ras;
    for c in 0..4 {
        lps[0][c] = -ras[0][c];
        lps[1][c] = -ras[1][c];
    }
    let mut spacing = [0.0; 3];
    let mut direction = [[0.0; 3]; 3];
    for a in 0..3 {
        let col = [lps[0][a], lps[1][a], lps[2][a]];
        let norm = (col[0] * col[0] + col[1] * col[1] + col[2] * col[2]).sqrt();
        let norm = if norm > 0.0 { norm } else { 1.0 };
        spacing[a] = norm;
        for r in 0..3 {
            direction[r][a] = col[r] / norm;
        }
    }
    let geometry = Geometry {
        dims,
        spacing,
        origin: [lps[0][3], lps[1][3], lps[2][3]],
        direction,
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_default();
    let lower = name.to_ascii_lowercase();
    let modality = if lower.contains("ct") && !lower.contains("mr") {
        Modality::Ct
    } else if ["mr", "t1", "t2", "flair"]
        .iter()
        .any(|k| lower.contains(k))
    {
        Modality::Mr
    } else if values.iter().step_by(101).any(|v| *v <= -900.0) {
        // Air near -1000 means Hounsfield units.
        Modality::Ct
    } else {
        Modality::Mr
    };
    let meta = VolumeMeta {
        modality,
        series_uid: format!("nifti:{}", path.display()),
        description: if h.descrip.is_empty() {
            name.clone()
        } else {
            format!("{name} ({})", h.descrip)
        },
        source: path.display().to_string(),
        warnings,
        ..Default::default()
    };
    Ok(Volume::new(geometry, values, meta))
}

fn quaternion_from_rotation(r: &[[f64; 3]; 3]) -> [f64; 3] {
    // Standard conversion; NIfTI keeps a >= 0 and stores (b, c, d).
    let trace = r[0][0] + r[1][1] + r[2][2];
    let (a, b, c, d);
    if trace > 0.0 {
        let s = (trace + 1.0).sqrt() * 2.0;
        a = 0.25 * s;
        b = (r[2][1] - r[1][2]) / s;
        c = (r[0][2] - r[2][0]) / s;
        d = (r[1][0] - r[0][1]) / s;
    } else if r[0][0] > r[1][1] && r[0][0] > r[2][2] {
        let s = (1.0 + r[0][0] - r[1][1] - r[2][2]).sqrt() * 2.0;
        a = (r[2][1] - r[1][2]) / s;
        b = 0.25 * s;
        c = (r[0][1] + r[1][0]) / s;
        d = (r[0][2] + r[2][0]) / s;
    } else if r[1][1] > r[2][2] {
        let s = (1.0 + r[1][1] - r[0][0] - r[2][2]).sqrt() * 2.0;
        a = (r[0][2] - r[2][0]) / s;
        b = (r[0][1] + r[1][0]) / s;
        c = 0.25 * s;
        d = (r[1][2] + r[2][1]) / s;
    } else {
        let s = (1.0 + r[2][2] - r[0][0] - r[1][1]).sqrt() * 2.0;
        a = (r[1][0] - r[0][1]) / s;
        b = (r[0][2] + r[2][0]) / s;
        c = (r[1][2] + r[2][1]) / s;
        d = 0.25 * s;
    }
    if a < 0.0 { [-b, -c, -d] } else { [b, c, d] }
}

/// Write `volume` as NIfTI-1 (gzip-compressed when the name ends in `.gz`).
///
/// Integer data that fits int16 (e.g. HU) is stored as int16, anything else as float32.
/// sform and qform both carry the geometry (converted to RAS).
pub fn write_nifti(volume: &Volume, path: &Path) -> Result<(), LoadError> {
    let g = &volume.geometry;
    let (min, max) = volume.min_max();
    let as_i16 = volume.data.iter().all(|v| v.fract() == 0.0) && min >= -32768.0 && max <= 32767.0;
    let mut hdr = vec![0u8; 352];
    let put_i16 = |h: &mut Vec<u8>, o: usize, v: i16| h[o..o + 2].copy_from_slice(&v.to_le_bytes());
    let put_i32 = |h: &mut Vec<u8>, o: usize, v: i32| h[o..o + 4].copy_from_slice(&v.to_le_bytes());
    let put_f32 = |h: &mut Vec<u8>, o: usize, v: f32| h[o..o + 4].copy_from_slice(&v.to_le_bytes());
    put_i32(&mut hdr, 0, 348);
    let dims = [
        3i16,
        g.dims[0] as i16,
        g.dims[1] as i16,
        g.dims[2] as i16,
        1,
        1,
        1,
        1,
    ];
    if g.dims.iter().any(|d| *d > i16::MAX as usize) {
        return Err(LoadError::file(path, "dimension too large for NIfTI-1"));
    }
    for (k, d) in dims.iter().enumerate() {
        put_i16(&mut hdr, 40 + 2 * k, *d);
    }
    let (datatype, bitpix) = if as_i16 { (4i16, 16i16) } else { (16, 32) };
    put_i16(&mut hdr, 70, datatype);
    put_i16(&mut hdr, 72, bitpix);
    // Rotation part in RAS: flip rows 0 and 1 of the LPS direction.
    let mut rot = g.direction;
    for c in 0..3 {
        rot[0][c] = -rot[0][c];
        rot[1][c] = -rot[1][c];
    }
    let det = rot[0][0] * (rot[1][1] * rot[2][2] - rot[1][2] * rot[2][1])
        - rot[0][1] * (rot[1][0] * rot[2][2] - rot[1][2] * rot[2][0])
        + rot[0][2] * (rot[1][0] * rot[2][1] - rot[1][1] * rot[2][0]);
    let qfac: f32 = if det < 0.0 { -1.0 } else { 1.0 };
    let pixdim = [
        qfac,
        g.spacing[0] as f32,
        g.spacing[1] as f32,
        g.spacing[2] as f32,
        1.0,
        1.0,
        1.0,
        1.0,
    ];
    for (k, p) in pixdim.iter().enumerate() {
        put_f32(&mut hdr, 76 + 4 * k, *p);
    }
    put_f32(&mut hdr, 108, 352.0); // vox_offset
    put_f32(&mut hdr, 112, 1.0); // scl_slope
    put_f32(&mut hdr, 116, 0.0); // scl_inter
    hdr[123] = 10 | 8; // xyzt_units: mm, s
    let descrip = b"SynthScope";
    hdr[148..148 + descrip.len()].copy_from_slice(descrip);
    put_i16(&mut hdr, 252, 1); // qform_code: scanner
    put_i16(&mut hdr, 254, 1); // sform_code: scanner
    let mut qrot = rot;
    if det < 0.0 {
        for row in qrot.iter_mut() {
            row[2] = -row[2];
        }
    }
    let q = quaternion_from_rotation(&qrot);
    let origin_ras = [-g.origin[0], -g.origin[1], g.origin[2]];
    for (k, v) in q.iter().chain(origin_ras.iter()).enumerate() {
        put_f32(&mut hdr, 256 + 4 * k, *v as f32);
    }
    for r in 0..3 {
        for c in 0..3 {
            put_f32(
                &mut hdr,
                280 + 16 * r + 4 * c,
                (rot[r][c] * g.spacing[c]) as f32,
            );
        }
        put_f32(&mut hdr, 280 + 16 * r + 12, origin_ras[r] as f32);
    }
    hdr[344..348].copy_from_slice(b"n+1\0");
    let mut body = Vec::with_capacity(volume.data.len() * if as_i16 { 2 } else { 4 });
    if as_i16 {
        for v in &volume.data {
            body.extend_from_slice(&(*v as i16).to_le_bytes());
        }
    } else {
        for v in &volume.data {
            body.extend_from_slice(&v.to_le_bytes());
        }
    }
    // A temporary name, fsync, rename: a failed export never leaves a half file, and the
    // earlier file at `path` stays whole.
    let gz = path.to_string_lossy().to_ascii_lowercase().ends_with(".gz");
    crate::atomic::write_with(path, |file| {
        if gz {
            let mut w = flate2::write::GzEncoder::new(file, flate2::Compression::fast());
            w.write_all(&hdr)?;
            w.write_all(&body)?;
            w.finish()?;
        } else {
            file.write_all(&hdr)?;
            file.write_all(&body)?;
        }
        Ok(())
    })
    .map_err(|e| LoadError::file(path, format!("cannot write: {}", e.problem)))
}
