//! QR payloads (DESIGN §3, spec/formats.md §1). Offline profile: `LV1:` + Base45 (RFC 9285) of the
//! zlib-compressed COSE_Sign1 bytes, which fits QR alphanumeric mode. Pure; bounded on input.

use std::cell::RefCell;

use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};

use crate::cbor::MAX_INPUT;

pub const PREFIX: &str = "LV1:";
/// Longest payload text accepted: a version-40 QR holds 4,296 alphanumeric characters.
pub const MAX_PAYLOAD: usize = 4296;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QrError {
    #[error("QR payload does not start with {PREFIX}")]
    Prefix,
    #[error("QR payload of {0} characters is over the {MAX_PAYLOAD}-character limit")]
    TooLong(usize),
    #[error("QR payload is not valid Base45 (RFC 9285)")]
    Base45,
    #[error("QR payload is not valid zlib data, or inflates past {MAX_INPUT} bytes")]
    Zlib,
    #[error("the payload of {0} characters does not fit a QR code at this error correction level")]
    TooBig(usize),
    #[error("not a PNG or JPEG image of at most {MAX_IMAGE_SIDE} pixels a side: {0}")]
    Image(String),
    #[error("no QR code found in the image")]
    NoCode,
}

/// Error correction of a QR image: M (15 % of codewords restorable) or Q (25 %).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ecc {
    M,
    Q,
}

/// Largest side of an image `read_image` decodes (a phone photo is about 4,000 pixels).
pub const MAX_IMAGE_SIDE: u32 = 8_000;
/// Most memory the decoder may take for one image.
pub const MAX_IMAGE_ALLOC: u64 = 128 * 1024 * 1024;

/// A rendered QR code: its version (1–40), for the caller to report.
fn code(payload: &str, ecc: Ecc) -> Result<(qrcode::QrCode, i16), QrError> {
    let level = match ecc {
        Ecc::M => qrcode::EcLevel::M,
        Ecc::Q => qrcode::EcLevel::Q,
    };
    // The encoder picks the smallest version and the densest mode per segment: an `LV1:` payload
    // is all in the alphanumeric set, so it is one alphanumeric segment.
    let code = qrcode::QrCode::with_error_correction_level(payload.as_bytes(), level)
        .map_err(|_| QrError::TooBig(payload.len()))?;
    let version = match code.version() {
        qrcode::Version::Normal(v) | qrcode::Version::Micro(v) => v,
    };
    Ok((code, version))
}

/// The payload as an SVG image (a quiet zone of 4 modules), and its QR version.
pub fn svg(payload: &str, ecc: Ecc) -> Result<(String, i16), QrError> {
    let (code, version) = code(payload, ecc)?;
    let svg = code.render::<qrcode::render::svg::Color<'_>>().min_dimensions(256, 256).quiet_zone(true).build();
    Ok((svg, version))
}

/// The payload as a PNG image (4 pixels a module, a quiet zone of 4 modules), and its QR
/// version.
pub fn png(payload: &str, ecc: Ecc) -> Result<(Vec<u8>, i16), QrError> {
    let (code, version) = code(payload, ecc)?;
    let img = code.render::<image::Luma<u8>>().module_dimensions(4, 4).quiet_zone(true).build();
    let mut out = Vec::with_capacity(16 * 1024);
    // Two grey levels in long runs: the fast deflate level and no row filter compress them as
    // well as the default settings do, several times faster.
    let encoder = image::codecs::png::PngEncoder::new_with_quality(
        &mut out,
        image::codecs::png::CompressionType::Fast,
        image::codecs::png::FilterType::NoFilter,
    );
    image::ImageEncoder::write_image(encoder, img.as_raw(), img.width(), img.height(), image::ExtendedColorType::L8)
        .map_err(|e| QrError::Image(e.to_string()))?;
    Ok((out, version))
}

/// The text of the first QR code in a PNG or JPEG image (a screenshot, a photo), decoded with
/// `rqrr`, an implementation independent of the encoder above.
pub fn read_image(bytes: &[u8]) -> Result<String, QrError> {
    let mut reader = image::ImageReader::new(std::io::Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| QrError::Image(e.to_string()))?;
    match reader.format() {
        Some(image::ImageFormat::Png | image::ImageFormat::Jpeg) => {}
        _ => return Err(QrError::Image("the format is not PNG or JPEG".into())),
    }
    // Decoded within a budget: a small file can claim a huge image.
    let mut limits = image::Limits::default();
    limits.max_image_width = Some(MAX_IMAGE_SIDE);
    limits.max_image_height = Some(MAX_IMAGE_SIDE);
    limits.max_alloc = Some(MAX_IMAGE_ALLOC);
    reader.limits(limits);
    let img = reader.decode().map_err(|e| QrError::Image(e.to_string()))?.to_luma8();
    let mut prepared = rqrr::PreparedImage::prepare(img);
    prepared.detect_grids().into_iter().find_map(|g| g.decode().ok().map(|(_, text)| text)).ok_or(QrError::NoCode)
}

thread_local! {
    // Setting up a deflate or inflate state costs more than the work on a 1 KiB document;
    // every issuance encodes a payload and every verification decodes one, so each thread keeps
    // one of each and resets it.
    static DEFLATE: RefCell<Compress> = RefCell::new(Compress::new(Compression::best(), true));
    static INFLATE: RefCell<Decompress> = RefCell::new(Decompress::new(true));
}

pub fn encode(document: &[u8]) -> String {
    let compressed = DEFLATE.with(|z| {
        let mut z = z.borrow_mut();
        z.reset();
        // zlib never grows input by more than 5 bytes per 16 KiB block plus its 6-byte frame.
        let mut out = Vec::with_capacity(document.len() + document.len() / 1000 + 64);
        loop {
            let before = z.total_in() as usize;
            // Compressing into a Vec with spare room cannot fail.
            let status = z
                .compress_vec(&document[before.min(document.len())..], &mut out, FlushCompress::Finish)
                .expect("deflate into a Vec");
            if status == Status::StreamEnd {
                break out;
            }
            out.reserve(out.len().max(64));
        }
    });
    format!("{PREFIX}{}", base45::encode(&compressed))
}

pub fn decode(payload: &str) -> Result<Vec<u8>, QrError> {
    let payload = payload.trim();
    if payload.len() > MAX_PAYLOAD + PREFIX.len() {
        return Err(QrError::TooLong(payload.len()));
    }
    let body = payload.strip_prefix(PREFIX).ok_or(QrError::Prefix)?;
    let compressed = base45_decode(body.as_bytes()).ok_or(QrError::Base45)?;
    INFLATE.with(|z| {
        let mut z = z.borrow_mut();
        z.reset(true);
        // Room for one byte more than the limit: filling it means a bomb.
        let mut out = Vec::with_capacity(MAX_INPUT + 1);
        let status = z.decompress_vec(&compressed, &mut out, FlushDecompress::Finish).map_err(|_| QrError::Zlib)?;
        if status != Status::StreamEnd || out.len() > MAX_INPUT || z.total_in() as usize != compressed.len() {
            return Err(QrError::Zlib);
        }
        Ok(out)
    })
}

/// Value of each byte in the Base45 alphabet (RFC 9285 §4), 0xff for bytes outside it.
const BASE45_VALUES: [u8; 256] = {
    let alphabet = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:";
    let mut t = [0xffu8; 256];
    let mut i = 0;
    while i < alphabet.len() {
        t[alphabet[i] as usize] = i as u8;
        i += 1;
    }
    t
};

/// RFC 9285 §4.2 decoding. The `base45` crate is correct but spends ~11 µs on a 1,000-character
/// payload (a linear alphabet search per character); this table lookup takes ~1 µs, and
/// public verification decodes one per request. Tested against the crate and the RFC vectors.
pub fn base45_decode(input: &[u8]) -> Option<Vec<u8>> {
    if input.len() % 3 == 1 {
        return None;
    }
    let mut out = Vec::with_capacity(input.len() / 3 * 2 + 1);
    for chunk in input.chunks(3) {
        let mut n: u32 = 0;
        for (i, &c) in chunk.iter().enumerate() {
            let v = BASE45_VALUES[c as usize];
            if v == 0xff {
                return None;
            }
            n += v as u32 * [1, 45, 2025][i];
        }
        if chunk.len() == 3 {
            if n > 0xffff {
                return None;
            }
            out.extend_from_slice(&[(n >> 8) as u8, n as u8]);
        } else {
            if n > 0xff {
                return None;
            }
            out.push(n as u8);
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc9285_vectors() {
        assert_eq!(base45::encode(b"AB"), "BB8");
        assert_eq!(base45::encode(b"Hello!!"), "%69 VD92EX0");
        assert_eq!(base45::encode(b"ietf!"), "QED8WEX0");
        assert_eq!(base45::decode("QED8WEX0").unwrap(), b"ietf!");
        assert!(base45::decode("GGW").is_err());
        for (text, bytes) in [("BB8", &b"AB"[..]), ("%69 VD92EX0", b"Hello!!"), ("QED8WEX0", b"ietf!"), ("", b"")] {
            assert_eq!(base45_decode(text.as_bytes()).as_deref(), Some(bytes), "{text}");
        }
        for bad in ["GGW", "A", "ABCD", "ab", "::::", "*A"] {
            assert_eq!(base45_decode(bad.as_bytes()), None, "{bad}");
        }
    }

    proptest::proptest! {
        #[test]
        fn base45_decoder_agrees_with_the_crate(bytes: Vec<u8>, junk: String) {
            let text = base45::encode(&bytes);
            proptest::prop_assert_eq!(base45_decode(text.as_bytes()), Some(bytes));
            // Ours is stricter: a trailing pair above 255 ("*A") is refused, as RFC 9285 §4.2 says;
            // whatever ours accepts, the crate decodes the same way.
            match base45_decode(junk.as_bytes()) {
                Some(ours) => proptest::prop_assert_eq!(Some(ours), base45::decode(&junk).ok()),
                None => proptest::prop_assert!(base45::decode(&junk).is_err() || junk.len() % 3 == 2),
            }
        }
    }

    proptest::proptest! {
        #[test]
        fn payloads_round_trip(doc: Vec<u8>) {
            proptest::prop_assert_eq!(decode(&encode(&doc)).unwrap(), doc);
        }
    }

    #[test]
    fn round_trip_and_garbage() {
        let doc = vec![0xd2, 0x84, 1, 2, 3, 4, 5];
        assert_eq!(decode(&encode(&doc)).unwrap(), doc);
        assert_eq!(decode("LV2:BB8"), Err(QrError::Prefix));
        assert_eq!(decode("LV1:GGW"), Err(QrError::Base45));
        assert_eq!(decode("LV1:BB8"), Err(QrError::Zlib));
        // A zlib bomb: 1 MiB of zeros compresses to ~1 KiB and must not inflate past the limit.
        let bomb = encode(&vec![0u8; 1 << 20]);
        assert_eq!(decode(&bomb), Err(QrError::Zlib));
        // Truncated and trailing-garbage streams are refused; the reused state recovers.
        let good = encode(&doc);
        let raw = base45_decode(&good.as_bytes()[PREFIX.len()..]).unwrap();
        let truncated = format!("{PREFIX}{}", base45::encode(&raw[..raw.len() - 3]));
        assert_eq!(decode(&truncated), Err(QrError::Zlib));
        let mut trailing = raw.clone();
        trailing.push(0);
        assert_eq!(decode(&format!("{PREFIX}{}", base45::encode(&trailing))), Err(QrError::Zlib));
        assert_eq!(decode(&good).unwrap(), doc);
    }

    /// Every image this module renders decodes, with rqrr, back to exactly the payload.
    #[test]
    fn images_decode_back_to_the_payload() {
        let payload = encode(&[0xd2; 300]);
        for ecc in [Ecc::M, Ecc::Q] {
            let (png_bytes, v) = png(&payload, ecc).unwrap();
            assert_eq!(read_image(&png_bytes).unwrap(), payload);
            let (svg_text, v2) = svg(&payload, ecc).unwrap();
            assert_eq!(v, v2);
            assert!(svg_text.starts_with("<?xml") && svg_text.contains("<svg"), "{}", &svg_text[..60]);
        }
        assert!(matches!(png(&"A".repeat(5000), Ecc::M), Err(QrError::TooBig(5000))));
        assert!(matches!(read_image(b"garbage"), Err(QrError::Image(_))));
        let blank = image::DynamicImage::new_luma8(50, 50);
        let mut out = std::io::Cursor::new(Vec::new());
        blank.write_to(&mut out, image::ImageFormat::Png).unwrap();
        assert_eq!(read_image(&out.into_inner()), Err(QrError::NoCode));
    }

    proptest::proptest! {
        #[test]
        fn decoding_never_panics(junk: String) {
            let _ = decode(&junk);
            let _ = decode(&format!("{PREFIX}{junk}"));
        }
    }
}
