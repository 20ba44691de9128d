//! Declared lengths checked against the bytes present, before dicom-rs reads a file.
//!
//! dicom-rs sizes each element's value buffer by the length in its header (reserving and
//! zero-filling it) and only then reads the bytes, so a 21-byte header that declares a 2 GB
//! value makes it commit 2 GB of memory before it finds that the file ends. This module walks
//! the element headers the way dicom-rs's data set reader does (linearly: sequences and items
//! are tokens, values are skipped) and refuses the first value whose declared length runs past
//! the end of the data, naming the element, its length and the bytes left. It reads nothing but
//! headers, so it costs microseconds per file.
//!
//! The rules follow dicom-encoding 0.10: in explicit VR an unknown VR is read as UN (reserved
//! bytes, 32-bit length); in implicit VR the dictionary gives the VR; Pixel Data with an
//! undefined length is a fragment sequence whose item values are allocated; other undefined
//! lengths open a sequence. A deflated data set is inflated (up to a bound) and walked.

use dicom::core::dictionary::{DataDictionary, DataDictionaryEntry};
use dicom::core::{Tag, VR};
use dicom::dictionary_std::StandardDataDictionary;
use std::io::Read;
use std::path::Path;

/// How far to walk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Extent {
    /// The file meta group only (what `FileMetaTable::from_reader` reads).
    Meta,
    /// Up to the top-level Pixel Data element (what a header scan reads).
    UntilPixelData,
    /// The whole data set.
    Whole,
}

/// The largest inflated data set of a Deflated Explicit VR Little Endian file that is walked.
pub const MAX_INFLATED: u64 = 1 << 30;

/// Check a file's declared lengths (see the module documentation). Files too short to be DICOM
/// pass: the parser refuses them with its own message. Ok holds the allocation ceiling to parse
/// the file under ([`crate::io::alloc_guard::with_ceiling`]): no value can be longer than the
/// file, or than the inflated data set of a deflated one.
pub fn check_file(path: &Path, extent: Extent) -> Result<usize, crate::io::LoadError> {
    let file = std::fs::File::open(path)
        .map_err(|e| crate::io::LoadError::file(path, format!("cannot open: {e}")))?;
    let len = file
        .metadata()
        .map_err(|e| crate::io::LoadError::file(path, format!("cannot read its size: {e}")))?
        .len();
    if len < 132 {
        return Ok(crate::io::alloc_guard::ceiling_for_file(len, false));
    }
    // SAFETY: the map is read-only and dropped before returning; a file truncated while it is
    // mapped would raise SIGBUS, as for every memory-mapped reader (the fast path maps too).
    let map = unsafe { memmap2::Mmap::map(&file) }
        .map_err(|e| crate::io::LoadError::file(path, format!("cannot map: {e}")))?;
    check_bytes(&map, extent).map_err(|problem| crate::io::LoadError::file(path, problem))?;
    Ok(crate::io::alloc_guard::ceiling_for_file(
        len,
        deflated(&map),
    ))
}

/// Whether a Part-10 file's meta names a deflated transfer syntax.
fn deflated(data: &[u8]) -> bool {
    let skip = if data.len() >= 4 && &data[..4] == b"DICM" && data.get(128..132) != Some(b"DICM") {
        0
    } else {
        128.min(data.len())
    };
    let rest = &data[skip..];
    if rest.len() < 4 || &rest[..4] != b"DICM" {
        return false;
    }
    matches!(
        walk_meta(rest)
            .map(|(ts, _)| ts.trim_end_matches(['\0', ' ']).to_string())
            .as_deref(),
        Ok("1.2.840.10008.1.2.1.99" | "1.2.840.10008.1.2.4.95")
    )
}

/// Check a Part-10 file held in memory (preamble included, or "DICM" at its start).
pub fn check_bytes(data: &[u8], extent: Extent) -> Result<(), String> {
    let skip = if data.len() >= 4 && &data[..4] == b"DICM" && data.get(128..132) != Some(b"DICM") {
        0
    } else {
        128.min(data.len())
    };
    let rest = &data[skip..];
    if rest.len() < 4 || &rest[..4] != b"DICM" {
        return Ok(()); // not Part 10: the parser says so
    }
    let (ts, data_start) = walk_meta(rest)?;
    if extent == Extent::Meta {
        return Ok(());
    }
    let body = &rest[data_start..];
    let ts = ts.trim_end_matches(['\0', ' ']);
    let syntax = match ts {
        "1.2.840.10008.1.2" => Syntax::ImplicitLe,
        "1.2.840.10008.1.2.2" => Syntax::ExplicitBe,
        _ => Syntax::ExplicitLe,
    };
    if ts == "1.2.840.10008.1.2.1.99" || ts == "1.2.840.10008.1.2.4.95" {
        let mut inflated = Vec::new();
        flate2::read::DeflateDecoder::new(body)
            .take(MAX_INFLATED + 1)
            .read_to_end(&mut inflated)
            .map_err(|e| format!("the deflated data set does not inflate: {e}"))?;
        if inflated.len() as u64 > MAX_INFLATED {
            return Err(format!(
                "the deflated data set inflates to more than {MAX_INFLATED} bytes"
            ));
        }
        return walk_data_set(&inflated, syntax, extent);
    }
    walk_data_set(body, syntax, extent)
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Syntax {
    ExplicitLe,
    ExplicitBe,
    ImplicitLe,
}

/// VRs whose length field is 16 bits in explicit VR (PS3.5 7.1.2, as dicom-encoding lists them).
fn short_length(vr: &[u8]) -> bool {
    matches!(
        vr,
        b"AE"
            | b"AS"
            | b"AT"
            | b"CS"
            | b"DA"
            | b"DS"
            | b"DT"
            | b"FL"
            | b"FD"
            | b"IS"
            | b"LO"
            | b"LT"
            | b"PN"
            | b"SH"
            | b"SL"
            | b"SS"
            | b"ST"
            | b"TM"
            | b"UI"
            | b"UL"
            | b"US"
    )
}

fn too_long(tag: (u16, u16), len: u64, left: usize, what: &str) -> String {
    format!(
        "{what} ({:04X},{:04X}) declares {len} bytes but only {left} remain in the file",
        tag.0, tag.1
    )
}

/// The file meta group (explicit VR little endian), read as dicom-rs's `FileMetaTable` reads
/// it: (0002,0000) first, then elements (of any group) until that many bytes are consumed. Its
/// transfer syntax and where the data set starts (offset in `rest`, which begins with "DICM");
/// Ok with no syntax where the parser will refuse the group itself.
fn walk_meta(rest: &[u8]) -> Result<(String, usize), String> {
    let le16 = |p: usize| u16::from_le_bytes([rest[p], rest[p + 1]]);
    let le32 = |p: usize| u32::from_le_bytes([rest[p], rest[p + 1], rest[p + 2], rest[p + 3]]);
    // (0002,0000) UL 4: anything else and dicom-rs stops with its own error.
    if rest.len() < 16 || (le16(4), le16(6)) != (0x0002, 0x0000) || le16(10) != 4 {
        return Ok((String::new(), rest.len()));
    }
    let group_length = le32(12) as u64;
    let mut p = 16usize;
    let mut consumed = 0u64;
    let mut ts = String::new();
    while consumed < group_length {
        if p + 8 > rest.len() {
            return Ok((ts, rest.len()));
        }
        let (group, element) = (le16(p), le16(p + 2));
        let vr = [rest[p + 4], rest[p + 5]];
        let (len, header) = if group == 0xFFFE {
            (le32(p + 4) as u64, 8)
        } else if short_length(&vr) {
            (le16(p + 6) as u64, 8)
        } else {
            if p + 12 > rest.len() {
                return Ok((ts, rest.len()));
            }
            (le32(p + 8) as u64, 12)
        };
        if len == u32::MAX as u64 {
            return Ok((ts, rest.len())); // refused by dicom-rs: undefined length
        }
        let left = rest.len() - p - header;
        if len > left as u64 {
            return Err(too_long((group, element), len, left, "file meta element"));
        }
        if (group, element) == (0x0002, 0x0010) {
            ts = String::from_utf8_lossy(&rest[p + header..p + header + len as usize]).into_owned();
        }
        p += header + len as usize;
        consumed += (header as u64) + len;
    }
    Ok((ts, p))
}

/// How many bytes dicom-rs's "preserved" value reader takes from the stream for a value of
/// `len` bytes: whole numbers of the VR's binary unit (so a UL of length 2 takes none), all of
/// it for text and bytes. Its own position advances by `len` regardless, which is what its
/// defined-length sequence and item ends are measured against.
fn consumed(vr: Option<VR>, len: u64) -> u64 {
    match vr {
        Some(VR::AT | VR::FL | VR::OF | VR::SL | VR::UL | VR::OL) => len & !3,
        Some(VR::SS | VR::US | VR::OW) => len & !1,
        Some(VR::FD | VR::OD | VR::SV | VR::UV | VR::OV) => len & !7,
        _ => len,
    }
}

/// An open sequence or item: where it ends in dicom-rs's position count (None: undefined
/// length, ended by a delimiter), and whether it is Pixel Data's fragment sequence.
struct Open {
    end: Option<u64>,
    fragments: bool,
}

/// The data set, walked as dicom-rs's `DataSetReader` tokenises it: `p` is where the next
/// header is read in the stream, `q` dicom-rs's own count of bytes read (they differ after a
/// binary value whose length is not a whole number of its unit).
fn walk_data_set(data: &[u8], syntax: Syntax, extent: Extent) -> Result<(), String> {
    let u16_at = |p: usize| match syntax {
        Syntax::ExplicitBe => u16::from_be_bytes([data[p], data[p + 1]]),
        _ => u16::from_le_bytes([data[p], data[p + 1]]),
    };
    let u32_at = |p: usize| match syntax {
        Syntax::ExplicitBe => u32::from_be_bytes([data[p], data[p + 1], data[p + 2], data[p + 3]]),
        _ => u32::from_le_bytes([data[p], data[p + 1], data[p + 2], data[p + 3]]),
    };
    let dictionary = StandardDataDictionary;
    let mut open: Vec<Open> = Vec::new();
    let (mut p, mut q) = (0usize, 0u64);
    loop {
        // Defined-length sequences and items end where dicom-rs's count reaches their end.
        while open
            .last()
            .is_some_and(|o| o.end.is_some_and(|end| q >= end))
        {
            open.pop();
        }
        if p + 8 > data.len() {
            return Ok(()); // the parser meets the end of the data
        }
        let group = u16_at(p);
        let element = u16_at(p + 2);
        if group == 0xFFFE {
            // Items and delimiters: tag and a 32-bit length, no VR.
            let len = u32_at(p + 4) as u64;
            p += 8;
            q += 8;
            let in_fragments = open.last().is_some_and(|o| o.fragments);
            match element {
                0xE000 if in_fragments => {
                    // A fragment (or the offset table): its value is allocated and read.
                    if len == u32::MAX as u64 {
                        return Err("a pixel data fragment has an undefined length".into());
                    }
                    let left = data.len() - p;
                    if len > left as u64 {
                        return Err(too_long((group, element), len, left, "pixel data fragment"));
                    }
                    p += len as usize;
                    q += len;
                }
                0xE000 => open.push(Open {
                    end: (len != u32::MAX as u64).then_some(q + len),
                    fragments: false,
                }),
                0xE00D | 0xE0DD => {
                    open.pop();
                }
                _ => {}
            }
            continue;
        }
        let tag = (group, element);
        let is_pixel_data = tag == (0x7FE0, 0x0010);
        // A header scan (`read_until(PixelData)`) stops at the first top-level tag at or past it.
        if extent == Extent::UntilPixelData && open.is_empty() && tag >= (0x7FE0, 0x0010) {
            return Ok(());
        }
        let (vr, len, header): (Option<VR>, u64, usize) = match syntax {
            Syntax::ImplicitLe => {
                let vr = if is_pixel_data || (group >> 8 == 0x60 && element == 0x3000) {
                    Some(VR::OW)
                } else {
                    dictionary
                        .by_tag(Tag(group, element))
                        .map(|entry| entry.vr().relaxed())
                        .or(Some(VR::UN))
                };
                (vr, u32_at(p + 4) as u64, 8)
            }
            _ => {
                let code = [data[p + 4], data[p + 5]];
                if short_length(&code) {
                    (VR::from_binary(code), u16_at(p + 6) as u64, 8)
                } else {
                    if p + 12 > data.len() {
                        return Ok(());
                    }
                    (
                        VR::from_binary(code).or(Some(VR::UN)),
                        u32_at(p + 8) as u64,
                        12,
                    )
                }
            }
        };
        p += header;
        q += header as u64;
        if len == u32::MAX as u64 {
            // Encapsulated pixel data, or any other undefined length: a sequence follows.
            open.push(Open {
                end: None,
                fragments: is_pixel_data,
            });
            continue;
        }
        if vr == Some(VR::SQ) {
            // A sequence of defined length: its items follow, walked in turn.
            open.push(Open {
                end: Some(q + len),
                fragments: false,
            });
            continue;
        }
        if len == 0 {
            continue;
        }
        // A value: dicom-rs reserves `len` bytes (odd lengths accepted) and reads them.
        let left = data.len() - p;
        if len > left as u64 {
            return Err(too_long(tag, len, left, "element"));
        }
        p += consumed(vr, len) as usize;
        q += len;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn element_le(group: u16, element: u16, vr: &[u8; 2], value: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(&group.to_le_bytes());
        out.extend_from_slice(&element.to_le_bytes());
        out.extend_from_slice(vr);
        if short_length(vr) {
            out.extend_from_slice(&(value.len() as u16).to_le_bytes());
        } else {
            out.extend_from_slice(&[0, 0]);
            out.extend_from_slice(&(value.len() as u32).to_le_bytes());
        }
        out.extend_from_slice(value);
        out
    }

    fn file(ts: &str, body: &[u8]) -> Vec<u8> {
        let mut out = vec![0u8; 128];
        out.extend_from_slice(b"DICM");
        let mut ts = ts.as_bytes().to_vec();
        if ts.len() % 2 == 1 {
            ts.push(0);
        }
        let ts = element_le(0x0002, 0x0010, b"UI", &ts);
        out.extend(element_le(
            0x0002,
            0x0000,
            b"UL",
            &(ts.len() as u32).to_le_bytes(),
        ));
        out.extend(ts);
        out.extend_from_slice(body);
        out
    }

    #[test]
    fn a_well_formed_data_set_passes() {
        let mut body = element_le(0x0010, 0x0010, b"PN", b"Doe^Jane");
        body.extend(element_le(0x0028, 0x0010, b"US", &2u16.to_le_bytes()));
        body.extend(element_le(0x7FE0, 0x0010, b"OW", &[0u8; 8]));
        let f = file("1.2.840.10008.1.2.1", &body);
        assert_eq!(check_bytes(&f, Extent::Whole), Ok(()));
    }

    #[test]
    fn an_unknown_vr_declaring_gigabytes_is_refused() {
        // The fuzzer's input: (FFFF,8080) with VR FF FF, read by dicom-rs as UN with a 32-bit
        // length of 2^31 or so, at the end of a small file.
        let mut body = element_le(0x0010, 0x0010, b"PN", b"Doe^Jane");
        body.extend_from_slice(&[0xFF, 0xFF, 0x80, 0x80, 0xFF, 0xFF, 0x00, 0x00]);
        body.extend_from_slice(&0x8080_80FFu32.to_le_bytes());
        body.extend_from_slice(&[0u8; 72]);
        let f = file("1.2.840.10008.1.2.1", &body);
        let e = check_bytes(&f, Extent::Whole).unwrap_err();
        assert!(e.contains("(FFFF,8080)") && e.contains("2155905279"), "{e}");
        assert!(e.contains("only 72 remain"), "{e}");
    }

    #[test]
    fn a_header_scan_stops_at_pixel_data() {
        let mut body = element_le(0x0028, 0x0010, b"US", &2u16.to_le_bytes());
        let mut pixel = element_le(0x7FE0, 0x0010, b"OW", &[]);
        // Pixel Data declaring far more than is there.
        pixel.truncate(pixel.len() - 4);
        pixel.extend_from_slice(&1_000_000u32.to_le_bytes());
        body.extend(pixel);
        let f = file("1.2.840.10008.1.2.1", &body);
        assert_eq!(check_bytes(&f, Extent::UntilPixelData), Ok(()));
        assert!(check_bytes(&f, Extent::Whole).is_err());
    }

    #[test]
    fn fragments_are_checked_and_sequences_walked_into() {
        // A defined-length sequence whose item holds an element lying about its length.
        let inner = element_le(0x0008, 0x0100, b"SH", b"CODE");
        let mut item = Vec::new();
        item.extend_from_slice(&0xFFFEu16.to_le_bytes());
        item.extend_from_slice(&0xE000u16.to_le_bytes());
        item.extend_from_slice(&(inner.len() as u32 + 12).to_le_bytes());
        item.extend(inner);
        item.extend(element_le(0x0008, 0x0104, b"LO", &[]));
        let n = item.len();
        item[n - 2..].copy_from_slice(&0xFFF0u16.to_le_bytes());
        let body = element_le(0x0008, 0x1140, b"SQ", &item);
        let f = file("1.2.840.10008.1.2.1", &body);
        let e = check_bytes(&f, Extent::Whole).unwrap_err();
        assert!(e.contains("(0008,0104)") && e.contains("65520"), "{e}");

        // Encapsulated pixel data: an empty offset table, then a fragment declaring 1 MB.
        let mut body = Vec::new();
        body.extend_from_slice(&0x7FE0u16.to_le_bytes());
        body.extend_from_slice(&0x0010u16.to_le_bytes());
        body.extend_from_slice(b"OB\0\0");
        body.extend_from_slice(&u32::MAX.to_le_bytes());
        for len in [0u32, 1 << 20] {
            body.extend_from_slice(&0xFFFEu16.to_le_bytes());
            body.extend_from_slice(&0xE000u16.to_le_bytes());
            body.extend_from_slice(&len.to_le_bytes());
        }
        body.extend_from_slice(&[0u8; 16]);
        let f = file("1.2.840.10008.1.2.4.50", &body);
        let e = check_bytes(&f, Extent::Whole).unwrap_err();
        assert!(
            e.contains("pixel data fragment") && e.contains("1048576"),
            "{e}"
        );
    }

    #[test]
    fn implicit_vr_uses_the_dictionary() {
        // (0008,1140) is SQ in the dictionary: its defined length is not a value to skip.
        let mut body = Vec::new();
        body.extend_from_slice(&0x0008u16.to_le_bytes());
        body.extend_from_slice(&0x1140u16.to_le_bytes());
        body.extend_from_slice(&8u32.to_le_bytes());
        body.extend_from_slice(&0xFFFEu16.to_le_bytes());
        body.extend_from_slice(&0xE000u16.to_le_bytes());
        body.extend_from_slice(&0u32.to_le_bytes());
        // (0010,0010) declaring 4 GB - 2.
        body.extend_from_slice(&0x0010u16.to_le_bytes());
        body.extend_from_slice(&0x0010u16.to_le_bytes());
        body.extend_from_slice(&0xFFFF_FFFEu32.to_le_bytes());
        let f = file("1.2.840.10008.1.2", &body);
        let e = check_bytes(&f, Extent::Whole).unwrap_err();
        assert!(e.contains("(0010,0010)"), "{e}");
    }

    #[test]
    fn binary_values_take_whole_units_as_dicom_rs_reads_them() {
        assert_eq!(consumed(Some(VR::UL), 2), 0);
        assert_eq!(consumed(Some(VR::UL), 7), 4);
        assert_eq!(consumed(Some(VR::US), 3), 2);
        assert_eq!(consumed(Some(VR::FD), 12), 8);
        assert_eq!(consumed(Some(VR::OB), 3), 3);
        assert_eq!(consumed(Some(VR::CS), 5), 5);
        assert_eq!(consumed(None, 5), 5);
    }
}
