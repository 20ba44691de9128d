//! Compressed frames checked against the image they claim to belong to, before a decoder sees
//! them.
//!
//! The JPEG, JPEG-LS and JPEG 2000 decoders size their work by the codestream's own header (SOF
//! or SIZ), not by Rows and Columns, and dicom-rs's adapters then copy the decoded samples into
//! a frame buffer sized by Rows x Columns. A codestream that says 4000 x 4000 inside a 64 x 64
//! image makes the decoder allocate for 16 megapixels and the copy index past the frame (a
//! panic). Each frame's header is read here and must agree with the data set: width, height,
//! one component, at most 16 bits, and (JPEG 2000) a bounded number of tiles.

/// The most tiles a JPEG 2000 frame may declare (the decoder allocates per tile).
const MAX_TILES: u64 = 1 << 16;

/// The codec family of a transfer syntax whose frames are checked, if any.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Codec {
    /// JPEG (baseline, extended, lossless) and JPEG-LS: SOFn / SOF55 after SOI.
    Jpeg,
    /// JPEG 2000 and HTJ2K: SIZ after SOC.
    Jpeg2000,
}

/// The codec family of transfer syntax `ts`, or None when its frames are not codestreams we
/// check (native, RLE, deflate, video).
pub fn codec(ts: &str) -> Option<Codec> {
    match ts.trim_end_matches(['\0', ' ']) {
        "1.2.840.10008.1.2.4.50"
        | "1.2.840.10008.1.2.4.51"
        | "1.2.840.10008.1.2.4.57"
        | "1.2.840.10008.1.2.4.70"
        | "1.2.840.10008.1.2.4.80"
        | "1.2.840.10008.1.2.4.81" => Some(Codec::Jpeg),
        "1.2.840.10008.1.2.4.90"
        | "1.2.840.10008.1.2.4.91"
        | "1.2.840.10008.1.2.4.201"
        | "1.2.840.10008.1.2.4.202"
        | "1.2.840.10008.1.2.4.203" => Some(Codec::Jpeg2000),
        _ => None,
    }
}

/// Check every fragment that starts a codestream (a frame may continue over further fragments,
/// which start with no marker). Err names the fragment and what disagrees.
pub fn check_fragments<'a>(
    codec: Codec,
    fragments: impl IntoIterator<Item = &'a [u8]>,
    rows: usize,
    cols: usize,
) -> Result<(), String> {
    let mut frames = 0usize;
    for (i, f) in fragments.into_iter().enumerate() {
        let starts = match codec {
            Codec::Jpeg => f.starts_with(&[0xFF, 0xD8]),
            Codec::Jpeg2000 => f.starts_with(&[0xFF, 0x4F]),
        };
        if !starts {
            continue;
        }
        frames += 1;
        let (width, height, components, bits) = match codec {
            Codec::Jpeg => jpeg_frame(f),
            Codec::Jpeg2000 => j2k_frame(f),
        }
        .map_err(|e| format!("fragment {i}: {e}"))?;
        if (width, height) != (cols as u64, rows as u64) {
            return Err(format!(
                "fragment {i}: the codestream is {width}x{height} but Columns x Rows (0028,0011/0010) are {cols}x{rows}"
            ));
        }
        if components != 1 {
            return Err(format!(
                "fragment {i}: the codestream has {components} components; a greyscale image has 1"
            ));
        }
        if !(1..=16).contains(&bits) {
            return Err(format!(
                "fragment {i}: the codestream's samples have {bits} bits (1 to 16 are read)"
            ));
        }
    }
    if frames == 0 {
        return Err(match codec {
            Codec::Jpeg => "no fragment starts a JPEG codestream (SOI, FFD8)".into(),
            Codec::Jpeg2000 => "no fragment starts a JPEG 2000 codestream (SOC, FF4F)".into(),
        });
    }
    Ok(())
}

fn be16(b: &[u8], at: usize) -> Option<u64> {
    Some(u16::from_be_bytes([*b.get(at)?, *b.get(at + 1)?]) as u64)
}

fn be32(b: &[u8], at: usize) -> Option<u64> {
    Some(u32::from_be_bytes([
        *b.get(at)?,
        *b.get(at + 1)?,
        *b.get(at + 2)?,
        *b.get(at + 3)?,
    ]) as u64)
}

/// A JPEG or JPEG-LS frame header: (width, height, components, precision) from the first SOFn
/// (FFC0-FFCF but DHT, JPG, DAC) or SOF55 (FFF7) before the first scan.
fn jpeg_frame(f: &[u8]) -> Result<(u64, u64, u64, u64), String> {
    let mut p = 2usize;
    loop {
        // Markers may be padded with fill bytes (FF FF ...).
        while f.get(p) == Some(&0xFF) && f.get(p + 1) == Some(&0xFF) {
            p += 1;
        }
        let (Some(&0xFF), Some(&marker)) = (f.get(p), f.get(p + 1)) else {
            return Err("the JPEG header ends before a frame header (SOF)".into());
        };
        p += 2;
        match marker {
            // Standalone markers: no length.
            0x01 | 0xD0..=0xD7 => continue,
            0xDA => return Err("a JPEG scan (SOS) comes before any frame header (SOF)".into()),
            0xD9 => return Err("the JPEG codestream ends (EOI) before a frame header".into()),
            _ => {}
        }
        let len = be16(f, p).ok_or("a JPEG marker segment is cut short")? as usize;
        if len < 2 || p + len > f.len() {
            return Err(format!(
                "a JPEG marker segment (FF{marker:02X}) declares {len} bytes but {} remain",
                f.len().saturating_sub(p)
            ));
        }
        let sof = matches!(marker, 0xC0..=0xCF if !matches!(marker, 0xC4 | 0xC8 | 0xCC))
            || marker == 0xF7;
        if sof {
            let bits = *f.get(p + 2).ok_or("the JPEG frame header is cut short")? as u64;
            let height = be16(f, p + 3).ok_or("the JPEG frame header is cut short")?;
            let width = be16(f, p + 5).ok_or("the JPEG frame header is cut short")?;
            let components = *f.get(p + 7).ok_or("the JPEG frame header is cut short")? as u64;
            if height == 0 {
                return Err(
                    "the JPEG frame header defers its height (DNL), which is not read".into(),
                );
            }
            return Ok((width, height, components, bits));
        }
        p += len;
    }
}

/// A JPEG 2000 codestream's SIZ: (width, height, components, precision of the first
/// component), with its tile grid and subsampling checked.
fn j2k_frame(f: &[u8]) -> Result<(u64, u64, u64, u64), String> {
    let short = || "the JPEG 2000 image header (SIZ) is cut short".to_string();
    if be16(f, 2) != Some(0xFF51) {
        return Err("the JPEG 2000 codestream does not start with its image header (SIZ)".into());
    }
    let x = be32(f, 8).ok_or_else(short)?;
    let y = be32(f, 12).ok_or_else(short)?;
    let x0 = be32(f, 16).ok_or_else(short)?;
    let y0 = be32(f, 20).ok_or_else(short)?;
    let tw = be32(f, 24).ok_or_else(short)?;
    let th = be32(f, 28).ok_or_else(short)?;
    let tx0 = be32(f, 32).ok_or_else(short)?;
    let ty0 = be32(f, 36).ok_or_else(short)?;
    let components = be16(f, 40).ok_or_else(short)?;
    if x <= x0 || y <= y0 {
        return Err(format!(
            "the JPEG 2000 image area is empty (Xsiz {x}, XOsiz {x0}, Ysiz {y}, YOsiz {y0})"
        ));
    }
    if tw == 0 || th == 0 || tx0 > x0 || ty0 > y0 {
        return Err(format!(
            "the JPEG 2000 tile grid is invalid ({tw}x{th} from {tx0},{ty0})"
        ));
    }
    let tiles = (x - tx0).div_ceil(tw) * (y - ty0).div_ceil(th);
    if tiles > MAX_TILES {
        return Err(format!(
            "the JPEG 2000 codestream declares {tiles} tiles (at most {MAX_TILES} are read)"
        ));
    }
    let ssiz = *f.get(42).ok_or_else(short)? as u64;
    let (xr, yr) = (*f.get(43).ok_or_else(short)?, *f.get(44).ok_or_else(short)?);
    if xr != 1 || yr != 1 {
        return Err(format!(
            "the JPEG 2000 component is subsampled ({xr}x{yr}), which a greyscale frame is not"
        ));
    }
    Ok((x - x0, y - y0, components, (ssiz & 0x7F) + 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jpeg(width: u16, height: u16, components: u8, bits: u8) -> Vec<u8> {
        let mut f = vec![0xFF, 0xD8];
        // An APP0 segment before the frame header, as JFIF writes.
        f.extend_from_slice(&[0xFF, 0xE0, 0x00, 0x04, 0x00, 0x00]);
        f.extend_from_slice(&[0xFF, 0xC1, 0x00, 0x0B, bits]);
        f.extend_from_slice(&height.to_be_bytes());
        f.extend_from_slice(&width.to_be_bytes());
        f.extend_from_slice(&[components, 1, 0x11, 0]);
        f.extend_from_slice(&[0xFF, 0xDA, 0x00, 0x02, 0xFF, 0xD9]);
        f
    }

    fn j2k(width: u32, height: u32, tile: u32, components: u16) -> Vec<u8> {
        let mut f = vec![0xFF, 0x4F, 0xFF, 0x51, 0x00, 0x29, 0x00, 0x00];
        for v in [width, height, 0, 0, tile, tile, 0, 0] {
            f.extend_from_slice(&v.to_be_bytes());
        }
        f.extend_from_slice(&components.to_be_bytes());
        f.extend_from_slice(&[15, 1, 1]);
        f
    }

    #[test]
    fn matching_codestreams_pass() {
        assert_eq!(
            check_fragments(Codec::Jpeg, [jpeg(64, 32, 1, 12).as_slice()], 32, 64),
            Ok(())
        );
        assert_eq!(
            check_fragments(Codec::Jpeg2000, [j2k(64, 32, 64, 1).as_slice()], 32, 64),
            Ok(())
        );
    }

    #[test]
    fn a_codestream_larger_than_the_image_is_refused() {
        let e = check_fragments(
            Codec::Jpeg2000,
            [j2k(4000, 4000, 4000, 1).as_slice()],
            64,
            64,
        )
        .unwrap_err();
        assert!(e.contains("4000x4000") && e.contains("64x64"), "{e}");
        let e = check_fragments(Codec::Jpeg, [jpeg(64, 65, 1, 8).as_slice()], 64, 64).unwrap_err();
        assert!(e.contains("64x65"), "{e}");
    }

    #[test]
    fn extra_components_tiny_tiles_and_bad_precision_are_refused() {
        let e =
            check_fragments(Codec::Jpeg2000, [j2k(64, 64, 64, 2).as_slice()], 64, 64).unwrap_err();
        assert!(e.contains("2 components"), "{e}");
        let e = check_fragments(
            Codec::Jpeg2000,
            [j2k(4096, 4096, 1, 1).as_slice()],
            4096,
            4096,
        )
        .unwrap_err();
        assert!(e.contains("16777216 tiles"), "{e}");
        let e = check_fragments(Codec::Jpeg, [jpeg(8, 8, 1, 0).as_slice()], 8, 8).unwrap_err();
        assert!(e.contains("0 bits"), "{e}");
    }

    #[test]
    fn continuation_fragments_are_skipped_and_a_missing_start_refused() {
        let first = j2k(8, 8, 8, 1);
        let rest = [0x12u8, 0x34, 0x56];
        assert_eq!(
            check_fragments(Codec::Jpeg2000, [first.as_slice(), &rest], 8, 8),
            Ok(())
        );
        assert!(check_fragments(Codec::Jpeg2000, [&rest[..]], 8, 8).is_err());
        let truncated = &jpeg(8, 8, 1, 8)[..9];
        assert!(check_fragments(Codec::Jpeg, [truncated], 8, 8).is_err());
    }
}
