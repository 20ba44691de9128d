//! The fast DICOM path (uncompressed little-endian single-frame slices converted straight into
//! the volume) against the general decoder and against known answers: bit-identical values
//! and the same geometry on generated series (signed and unsigned, 8 and 16 bits, BitsStored
//! 12 with other bits set, slope and intercept, implicit and explicit VR, a nested icon image),
//! the general decoder still taken where the fast path does not apply, and a truncated pixel
//! element refused with a one-line error naming the file.

use dicom::core::{DataElement, Length, PrimitiveValue, VR};
use dicom::dictionary_std::{tags, uids};
use dicom::object::{FileMetaTableBuilder, InMemDicomObject};
use std::path::{Path, PathBuf};
use synthscope::io::dicom::{decode_series, scan};
use synthscope::io::{Progress, load_paths};
use synthscope::volume::Volume;

/// How one generated series is stored.
#[derive(Clone, Copy, Debug)]
struct Layout {
    ts: &'static str,
    bits_allocated: u16,
    bits_stored: u16,
    signed: bool,
    slope: f64,
    intercept: f64,
    /// A sequence of undefined length holding an icon image (its own Pixel Data) before the
    /// image's Pixel Data.
    icon: bool,
}

const COLS: usize = 7;
const ROWS: usize = 5;
const SLICES: usize = 4;

/// Stored sample `i` of slice `z`: every bit pattern the width allows, high bits beyond
/// BitsStored included (readers must ignore them).
fn raw_sample(l: &Layout, z: usize, i: usize) -> u16 {
    let h = (z as u32 * 7919 + i as u32 * 104_729).wrapping_mul(2_654_435_761) >> 8;
    if l.bits_allocated == 8 {
        (h & 0xff) as u16
    } else {
        (h & 0xffff) as u16
    }
}

/// The value a reader must produce for a stored sample: its low bits (all 8 for 8-bit samples,
/// as the general decoder reads them), two's complement when signed, then the rescale in f64.
fn expected(l: &Layout, raw: u16) -> f32 {
    let bits = if l.bits_allocated == 8 {
        8
    } else {
        l.bits_stored
    } as u32;
    let v = raw as u32 & ((1u32 << bits) - 1);
    let x = if l.signed && v >= 1 << (bits - 1) {
        v as f64 - (1u64 << bits) as f64
    } else {
        v as f64
    };
    (l.slope * x + l.intercept) as f32
}

fn put_str(o: &mut InMemDicomObject, tag: dicom::core::Tag, vr: VR, v: &str) {
    o.put(DataElement::new(tag, vr, PrimitiveValue::from(v)));
}

fn put_us(o: &mut InMemDicomObject, tag: dicom::core::Tag, v: u16) {
    o.put(DataElement::new(tag, VR::US, PrimitiveValue::from(v)));
}

/// Write a series of SLICES files in `layout` to `dir` (slices written in reverse position
/// order, so sorting is exercised too).
fn write_series(dir: &Path, l: &Layout) -> Vec<PathBuf> {
    std::fs::create_dir_all(dir).unwrap();
    let series = format!(
        "2.25.{}",
        1000 + l.bits_stored as u32 * 10 + l.signed as u32
    );
    (0..SLICES)
        .map(|z| {
            let mut o = InMemDicomObject::new_empty();
            let sop = format!("{series}.{z}");
            put_str(&mut o, tags::SOP_CLASS_UID, VR::UI, uids::CT_IMAGE_STORAGE);
            put_str(&mut o, tags::SOP_INSTANCE_UID, VR::UI, &sop);
            put_str(&mut o, tags::MODALITY, VR::CS, "CT");
            put_str(&mut o, tags::SERIES_INSTANCE_UID, VR::UI, &series);
            put_str(
                &mut o,
                tags::INSTANCE_NUMBER,
                VR::IS,
                &(SLICES - z).to_string(),
            );
            let pos = format!("-10.5\\20.25\\{}", 2.5 * z as f64 - 3.0);
            put_str(&mut o, tags::IMAGE_POSITION_PATIENT, VR::DS, &pos);
            put_str(
                &mut o,
                tags::IMAGE_ORIENTATION_PATIENT,
                VR::DS,
                "1\\0\\0\\0\\1\\0",
            );
            put_str(&mut o, tags::PIXEL_SPACING, VR::DS, "0.5\\0.75");
            put_str(&mut o, tags::SLICE_THICKNESS, VR::DS, "2.5");
            put_us(&mut o, tags::SAMPLES_PER_PIXEL, 1);
            put_str(
                &mut o,
                tags::PHOTOMETRIC_INTERPRETATION,
                VR::CS,
                "MONOCHROME2",
            );
            put_us(&mut o, tags::ROWS, ROWS as u16);
            put_us(&mut o, tags::COLUMNS, COLS as u16);
            put_us(&mut o, tags::BITS_ALLOCATED, l.bits_allocated);
            put_us(&mut o, tags::BITS_STORED, l.bits_stored);
            put_us(&mut o, tags::HIGH_BIT, l.bits_stored - 1);
            put_us(&mut o, tags::PIXEL_REPRESENTATION, l.signed as u16);
            put_str(&mut o, tags::RESCALE_SLOPE, VR::DS, &l.slope.to_string());
            put_str(
                &mut o,
                tags::RESCALE_INTERCEPT,
                VR::DS,
                &l.intercept.to_string(),
            );
            if l.icon {
                let mut icon = InMemDicomObject::new_empty();
                put_us(&mut icon, tags::ROWS, 2);
                put_us(&mut icon, tags::COLUMNS, 2);
                put_us(&mut icon, tags::BITS_ALLOCATED, 8);
                icon.put(DataElement::new(
                    tags::PIXEL_DATA,
                    VR::OB,
                    PrimitiveValue::from(vec![9u8, 9, 9, 9]),
                ));
                o.put(DataElement::new(
                    tags::ICON_IMAGE_SEQUENCE,
                    VR::SQ,
                    dicom::core::value::DataSetSequence::new(vec![icon], Length::UNDEFINED),
                ));
            }
            let raw: Vec<u16> = (0..ROWS * COLS).map(|i| raw_sample(l, z, i)).collect();
            let pixels = if l.bits_allocated == 8 {
                let mut b: Vec<u8> = raw.iter().map(|v| *v as u8).collect();
                if b.len() % 2 == 1 {
                    b.push(0);
                }
                DataElement::new(tags::PIXEL_DATA, VR::OB, PrimitiveValue::from(b))
            } else {
                DataElement::new(tags::PIXEL_DATA, VR::OW, PrimitiveValue::U16(raw.into()))
            };
            o.put(pixels);
            let file = o
                .with_meta(FileMetaTableBuilder::new().transfer_syntax(l.ts))
                .unwrap();
            let path = dir.join(format!("s{z}.dcm"));
            file.write_to_file(&path).unwrap();
            path
        })
        .collect()
}

/// The series under `dir` through the fast path where it applies, and through the general
/// decoder only; and whether every slice was on the fast path.
fn both_paths(dir: &Path) -> (Volume, Volume, bool) {
    let files: Vec<(PathBuf, bool)> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| (e.unwrap().path(), false))
        .collect();
    let p = Progress::default();
    let mut found = scan(&files, &p).unwrap();
    assert!(found.errors.is_empty(), "{:?}", found.errors);
    assert_eq!(found.series.len(), 1);
    let s = &mut found.series[0];
    let all_fast = s.slices.iter().all(|x| x.pixels.is_some());
    let fast = decode_series(s, &p).unwrap();
    for sl in &mut s.slices {
        sl.pixels = None;
    }
    let general = decode_series(s, &p).unwrap();
    (fast, general, all_fast)
}

fn assert_same(a: &Volume, b: &Volume, what: &str) {
    assert_eq!(a.geometry, b.geometry, "{what}: geometry");
    assert_eq!(a.meta.warnings, b.meta.warnings, "{what}: warnings");
    assert_eq!(a.data.len(), b.data.len(), "{what}: voxels");
    for (i, (x, y)) in a.data.iter().zip(&b.data).enumerate() {
        assert_eq!(x.to_bits(), y.to_bits(), "{what}: voxel {i}: {x} vs {y}");
    }
}

/// The known answer: slice k of the volume is the file with the k-th lowest z position.
fn assert_known_answer(v: &Volume, l: &Layout, what: &str) {
    assert_eq!(v.geometry.dims, [COLS, ROWS, SLICES], "{what}");
    assert_eq!(v.geometry.spacing, [0.75, 0.5, 2.5], "{what}");
    assert_eq!(v.geometry.origin, [-10.5, 20.25, -3.0], "{what}");
    for k in 0..SLICES {
        for i in 0..ROWS * COLS {
            let want = expected(l, raw_sample(l, k, i));
            let got = v.data[k * ROWS * COLS + i];
            assert_eq!(
                got.to_bits(),
                want.to_bits(),
                "{what}: slice {k} voxel {i}: {got} vs {want}"
            );
        }
    }
}

#[test]
fn fast_path_matches_the_general_decoder_and_the_known_answer() {
    let base = Layout {
        ts: uids::EXPLICIT_VR_LITTLE_ENDIAN,
        bits_allocated: 16,
        bits_stored: 16,
        signed: true,
        slope: 1.0,
        intercept: 0.0,
        icon: false,
    };
    let layouts = [
        base,
        Layout {
            signed: false,
            intercept: -1024.0,
            ..base
        },
        Layout {
            bits_stored: 12,
            signed: false,
            slope: 1.0,
            intercept: -1024.0,
            ..base
        },
        Layout {
            bits_stored: 12,
            signed: true,
            slope: 0.5,
            intercept: 3.25,
            ..base
        },
        Layout {
            ts: uids::IMPLICIT_VR_LITTLE_ENDIAN,
            slope: 2.5e-3,
            intercept: -7.125,
            ..base
        },
        Layout {
            ts: uids::IMPLICIT_VR_LITTLE_ENDIAN,
            bits_stored: 12,
            signed: true,
            icon: true,
            ..base
        },
        Layout {
            bits_stored: 16,
            signed: false,
            slope: 1.0,
            intercept: 0.5,
            icon: true,
            ..base
        },
        Layout {
            bits_allocated: 8,
            bits_stored: 8,
            signed: false,
            slope: 3.0,
            intercept: -2.0,
            ..base
        },
        Layout {
            bits_allocated: 8,
            bits_stored: 8,
            signed: true,
            ..base
        },
    ];
    for (k, l) in layouts.iter().enumerate() {
        let dir = tempfile::tempdir().unwrap();
        write_series(dir.path(), l);
        let (fast, general, all_fast) = both_paths(dir.path());
        let what = format!("layout {k} {l:?}");
        assert!(all_fast, "{what}: not on the fast path");
        assert_same(&fast, &general, &what);
        assert_known_answer(&fast, l, &what);
    }
}

#[test]
fn big_endian_stays_on_the_general_decoder() {
    // Retired from the standard, still found in archives: it must keep decoding.
    #[allow(deprecated)]
    let ts = uids::EXPLICIT_VR_BIG_ENDIAN;
    let l = Layout {
        ts,
        bits_allocated: 16,
        bits_stored: 12,
        signed: true,
        slope: 1.0,
        intercept: -1024.0,
        icon: false,
    };
    let dir = tempfile::tempdir().unwrap();
    write_series(dir.path(), &l);
    let (fast, general, all_fast) = both_paths(dir.path());
    assert!(!all_fast, "big endian must not take the fast path");
    assert_same(&fast, &general, "big endian");
    assert_known_answer(&fast, &l, "big endian");
}

#[test]
fn truncated_pixel_data_is_refused_naming_the_file() {
    let l = Layout {
        ts: uids::EXPLICIT_VR_LITTLE_ENDIAN,
        bits_allocated: 16,
        bits_stored: 16,
        signed: true,
        slope: 1.0,
        intercept: 0.0,
        icon: false,
    };
    let dir = tempfile::tempdir().unwrap();
    let files = write_series(dir.path(), &l);
    let cut = &files[1];
    let len = std::fs::metadata(cut).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(cut)
        .unwrap()
        .set_len(len - 10)
        .unwrap();
    // The scan still reads the header (and takes the fast path); the decode refuses the slice.
    let files: Vec<(PathBuf, bool)> = files.iter().map(|f| (f.clone(), false)).collect();
    let found = scan(&files, &Progress::default()).unwrap();
    assert!(found.series[0].slices.iter().all(|x| x.pixels.is_some()));
    let out = load_paths(&[dir.path().to_path_buf()], &Progress::default()).unwrap();
    assert!(
        out.volumes.is_empty(),
        "a truncated slice must not give a volume"
    );
    assert_eq!(out.errors.len(), 1, "{:?}", out.errors);
    let msg = out.errors[0].to_string();
    let name = cut.file_name().unwrap().to_string_lossy();
    assert!(msg.contains(&*name) && msg.contains("truncated"), "{msg}");
    assert!(!msg.contains('\n'), "one line: {msg}");
}
