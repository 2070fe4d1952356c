//! QR payloads (DESIGN §3, spec/formats.md §1). Offline profile: `LV1:` + Base45 (RFC 9285) of the
//! zlib-compressed COSE_Sign1 bytes, which fits QR alphanumeric mode; `LV2:`, the same with the
//! zlib stream compressed against a preset dictionary (RFC 1950 FDICT) of the words licences are
//! made of, so that a 营业执照 with a long 经营范围 fits a smaller QR. Pure; bounded on input.

use std::cell::RefCell;

use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};

use crate::cbor::MAX_INPUT;

/// Plain zlib (DESIGN §3).
pub const PREFIX: &str = "LV1:";
/// zlib with [`DICTIONARY`] (spec/formats.md §1): what the vault makes unless told otherwise.
pub const PREFIX_DICT: &str = "LV2:";

/// The preset dictionary of `LV2:` payloads: the catalogue's licence types, face field names and
/// departments, the standard phrases of 经营范围 (the 经营范围规范表述 that registration uses), and
/// the document's keys. Its bytes are fixed forever: every `LV2:` code names it by its Adler-32.
/// zlib has no dictionary of its own for Chinese text, and a crate would not know these words;
/// the file is the whole of it.
pub static DICTIONARY: &[u8] = include_bytes!("../spec/qr-dictionary-1.txt");
/// Adler-32 of [`DICTIONARY`], the DICTID in every `LV2:` zlib header.
pub const DICTIONARY_ID: u32 = 0x76d5_c43d;
/// SHA-256 of [`DICTIONARY`] (hex): what a scanner that fetches it checks (Adler-32 is no
/// digest).
pub const DICTIONARY_SHA256: &str = "dc17136be577bd4adbdd0aba4fc6004f294f75dbb2d63fa4eb531788cc3c3355";

/// Which payload the vault makes (`--qr-format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Format {
    /// `LV1:`, plain zlib: for scanners that know only DESIGN §3's first profile.
    Lv1,
    /// `LV2:`, zlib with the preset dictionary.
    #[default]
    Lv2,
}
/// Longest payload text accepted: a version-40 QR holds 4,296 alphanumeric characters.
pub const MAX_PAYLOAD: usize = 4296;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QrError {
    #[error("QR payload does not start with {PREFIX} or {PREFIX_DICT}")]
    Prefix,
    #[error("QR payload of {0} characters is over the {MAX_PAYLOAD}-character limit")]
    TooLong(usize),
    #[error("QR payload is not valid Base45 (RFC 9285)")]
    Base45,
    #[error("QR payload is not valid zlib data, or inflates past {MAX_INPUT} bytes")]
    Zlib,
    #[error("an {PREFIX_DICT} payload must be compressed with the preset dictionary {DICTIONARY_ID:#010x}, an {PREFIX} payload with none")]
    Dictionary,
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

/// The `LV2:` payload of `document` (see [`encode_as`]).
pub fn encode(document: &[u8]) -> String {
    encode_as(document, Format::Lv2)
}

pub fn encode_as(document: &[u8], format: Format) -> String {
    let compressed = DEFLATE.with(|z| {
        let mut z = z.borrow_mut();
        z.reset();
        if format == Format::Lv2 {
            // A fresh stream's dictionary cannot be refused.
            let id = z.set_dictionary(DICTIONARY).expect("dictionary before any input");
            debug_assert_eq!(id, DICTIONARY_ID);
        }
        // zlib never grows input by more than 5 bytes per 16 KiB block plus its 6-byte frame
        // (10 with a dictionary id).
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
    let prefix = match format {
        Format::Lv1 => PREFIX,
        Format::Lv2 => PREFIX_DICT,
    };
    format!("{prefix}{}", base45::encode(&compressed))
}

/// The document in an `LV1:` or `LV2:` payload. Each has one form: an `LV1:` stream that names a
/// dictionary, or an `LV2:` one that names none or another, is refused.
pub fn decode(payload: &str) -> Result<Vec<u8>, QrError> {
    let payload = payload.trim();
    if payload.len() > MAX_PAYLOAD + PREFIX.len() {
        return Err(QrError::TooLong(payload.len()));
    }
    let (body, dictionary) = match (payload.strip_prefix(PREFIX), payload.strip_prefix(PREFIX_DICT)) {
        (Some(body), _) => (body, false),
        (_, Some(body)) => (body, true),
        _ => return Err(QrError::Prefix),
    };
    let compressed = base45_decode(body.as_bytes()).ok_or(QrError::Base45)?;
    INFLATE.with(|z| {
        let mut z = z.borrow_mut();
        z.reset(true);
        // Room for one byte more than the limit: filling it means a bomb.
        let mut out = Vec::with_capacity(MAX_INPUT + 1);
        let mut status = z.decompress_vec(&compressed, &mut out, FlushDecompress::Finish);
        if let Err(e) = &status {
            // The header named a dictionary: zlib stopped after it, asking for that one.
            match e.needs_dictionary() {
                Some(DICTIONARY_ID) if dictionary => {
                    z.set_dictionary(DICTIONARY).map_err(|_| QrError::Zlib)?;
                    let rest = &compressed[z.total_in() as usize..];
                    status = z.decompress_vec(rest, &mut out, FlushDecompress::Finish);
                }
                Some(_) => return Err(QrError::Dictionary),
                None => return Err(QrError::Zlib),
            }
        } else if dictionary {
            return Err(QrError::Dictionary);
        }
        let status = status.map_err(|_| QrError::Zlib)?;
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
            proptest::prop_assert_eq!(decode(&encode(&doc)).unwrap(), doc.clone());
            proptest::prop_assert_eq!(decode(&encode_as(&doc, Format::Lv1)).unwrap(), doc);
        }
    }

    /// The dictionary is the one every `LV2:` code names: its bytes may never change.
    #[test]
    fn the_dictionary_is_fixed() {
        let mut z = Compress::new(Compression::best(), true);
        assert_eq!(z.set_dictionary(DICTIONARY).unwrap(), DICTIONARY_ID);
        assert_eq!(DICTIONARY.len(), 11_484);
        assert_eq!(hex::encode(crate::crypto::sha256(DICTIONARY)), DICTIONARY_SHA256);
        let doc = "营业执照 经营范围：软件开发；信息技术咨询服务".as_bytes();
        let raw = base45_decode(&encode(doc).as_bytes()[PREFIX_DICT.len()..]).unwrap();
        // RFC 1950: FDICT set, then DICTID, big-endian.
        assert_eq!(raw[1] & 0x20, 0x20);
        assert_eq!(raw[2..6], DICTIONARY_ID.to_be_bytes());
    }

    /// Each prefix has one form: a stream with the wrong dictionary, or none, is refused.
    #[test]
    fn each_prefix_has_one_form() {
        let doc = b"\xd2\x84 some document";
        let lv1 = encode_as(doc, Format::Lv1);
        let lv2 = encode(doc);
        assert!(lv1.starts_with("LV1:") && lv2.starts_with("LV2:"));
        assert_eq!(decode(&format!("LV2:{}", &lv1[4..])), Err(QrError::Dictionary));
        assert_eq!(decode(&format!("LV1:{}", &lv2[4..])), Err(QrError::Dictionary));
        let mut other = Compress::new(Compression::best(), true);
        other.set_dictionary(b"another dictionary").unwrap();
        let mut out = Vec::with_capacity(256);
        other.compress_vec(doc, &mut out, FlushCompress::Finish).unwrap();
        assert_eq!(decode(&format!("LV2:{}", base45::encode(&out))), Err(QrError::Dictionary));
        // The reused state decodes a good payload after each refusal.
        assert_eq!(decode(&lv2).unwrap(), doc);
    }

    /// What the dictionary buys on the document `LV2:` was made for.
    #[test]
    fn the_dictionary_shrinks_a_business_licence() {
        let scope = "一般项目：软件开发；信息技术咨询服务；数据处理和存储支持服务；集成电路设计；五金产品零售。\
                     （除依法须经批准的项目外，凭营业执照依法自主开展经营活动）";
        let text = format!(
            "统一社会信用代码 名称 示例科技有限公司 类型 有限责任公司 登记机关 示例市市场监督管理局 经营范围 {scope}"
        );
        let (plain, dict) = (encode_as(text.as_bytes(), Format::Lv1), encode(text.as_bytes()));
        assert!(dict.len() * 2 < plain.len(), "{} against {}", dict.len(), plain.len());
    }

    #[test]
    fn round_trip_and_garbage() {
        let doc = vec![0xd2, 0x84, 1, 2, 3, 4, 5];
        assert_eq!(decode(&encode(&doc)).unwrap(), doc);
        assert_eq!(decode("LV3:BB8"), Err(QrError::Prefix));
        assert_eq!(decode("LV1:GGW"), Err(QrError::Base45));
        assert_eq!(decode("LV1:BB8"), Err(QrError::Zlib));
        // A zlib bomb: 1 MiB of zeros compresses to ~1 KiB and must not inflate past the limit.
        let bomb = encode(&vec![0u8; 1 << 20]);
        assert_eq!(decode(&bomb), Err(QrError::Zlib));
        // Truncated and trailing-garbage streams are refused; the reused state recovers.
        for (format, prefix) in [(Format::Lv1, PREFIX), (Format::Lv2, PREFIX_DICT)] {
            let good = encode_as(&doc, format);
            let raw = base45_decode(&good.as_bytes()[prefix.len()..]).unwrap();
            let truncated = format!("{prefix}{}", base45::encode(&raw[..raw.len() - 3]));
            assert_eq!(decode(&truncated), Err(QrError::Zlib));
            let mut trailing = raw.clone();
            trailing.push(0);
            assert_eq!(decode(&format!("{prefix}{}", base45::encode(&trailing))), Err(QrError::Zlib));
            assert_eq!(decode(&good).unwrap(), doc);
        }
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
            let _ = decode(&format!("{PREFIX_DICT}{junk}"));
        }
    }
}
