//! QR payloads (DESIGN §3, spec/formats.md §1). Offline profile: `LV1:` + Base45 (RFC 9285) of the
//! zlib-compressed COSE_Sign1 bytes, which fits QR alphanumeric mode. Pure; bounded on input.

use std::io::{Read, Write};

use flate2::read::ZlibDecoder;
use flate2::write::ZlibEncoder;
use flate2::Compression;

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
}

pub fn encode(document: &[u8]) -> String {
    let mut z = ZlibEncoder::new(Vec::new(), Compression::best());
    // Writing to a Vec cannot fail.
    z.write_all(document).expect("zlib into a Vec");
    let compressed = z.finish().expect("zlib into a Vec");
    format!("{PREFIX}{}", base45::encode(&compressed))
}

pub fn decode(payload: &str) -> Result<Vec<u8>, QrError> {
    let payload = payload.trim();
    if payload.len() > MAX_PAYLOAD + PREFIX.len() {
        return Err(QrError::TooLong(payload.len()));
    }
    let body = payload.strip_prefix(PREFIX).ok_or(QrError::Prefix)?;
    let compressed = base45::decode(body).map_err(|_| QrError::Base45)?;
    let mut out = Vec::new();
    ZlibDecoder::new(compressed.as_slice())
        .take(MAX_INPUT as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|_| QrError::Zlib)?;
    if out.len() > MAX_INPUT {
        return Err(QrError::Zlib);
    }
    Ok(out)
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
    }
}
