//! A one-time presentation (用证码, spec/formats.md §10): the platform signs, for a few minutes,
//! a licence's document with the disclosures the holder chose and a statement of its status as
//! of now (like OCSP stapling), under a nonce a verifier redeems once.

use ciborium::Value;

use super::Status;
use crate::cbor::{self, int, text, CborError, MapReader};

/// The private claim of a presentation, next to the licence's -65537 and the copy's -65538.
pub const CLAIM_PRESENTATION: i64 = -65540;
/// CWT `cti` (RFC 8392): the presentation's nonce.
pub const CLAIM_CTI: i64 = 7;
/// The COSE `typ` of a presentation.
pub const TYP: &str = "application/vnd.licvault.presentation+cwt";
/// Longest life of a presentation, in seconds.
pub const MAX_TTL: u64 = 300;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Presentation {
    /// `iss`: the platform (its log origin).
    pub platform: String,
    pub issued_at: i64,
    pub expires_at: i64,
    pub nonce: [u8; 16],
    /// The licence's signed document, as issued.
    pub document: Vec<u8>,
    /// The disclosures the holder chose, each as signed.
    pub disclosures: Vec<Vec<u8>>,
    /// The licence's status when the presentation was made.
    pub status: Status,
    /// The log size that status held as of.
    pub log_size: u64,
}

impl Presentation {
    pub fn to_payload(&self) -> Vec<u8> {
        let body = Value::Map(vec![
            (int(1), Value::Bytes(self.document.clone())),
            (int(2), Value::Array(self.disclosures.iter().map(|d| Value::Bytes(d.clone())).collect())),
            (int(3), text(self.status.as_str())),
            (int(4), Value::Integer(self.log_size.into())),
        ]);
        cbor::encode(Value::Map(vec![
            (int(1), text(&self.platform)),
            (int(4), int(self.expires_at)),
            (int(6), int(self.issued_at)),
            (int(CLAIM_CTI), Value::Bytes(self.nonce.to_vec())),
            (int(CLAIM_PRESENTATION), body),
        ]))
    }

    pub fn from_payload(bytes: &[u8]) -> Result<Self, CborError> {
        let bad = |why: &str| CborError::Shape(format!("presentation: {why}"));
        let v = cbor::decode_deterministic(bytes)?;
        let claims = MapReader::new(&v, "presentation claims")?;
        let time = |k: i64| -> Result<i64, CborError> {
            claims.uint_at(k)?.and_then(|t| i64::try_from(t).ok()).ok_or_else(|| bad("iat and exp are required"))
        };
        let nonce = match claims.int(CLAIM_CTI) {
            Some(Value::Bytes(b)) => <[u8; 16]>::try_from(b.as_slice()).ok(),
            _ => None,
        }
        .ok_or_else(|| bad("cti must be 16 bytes"))?;
        let body = MapReader::new(
            claims.int(CLAIM_PRESENTATION).ok_or_else(|| bad("claim -65540 is required"))?,
            "presentation",
        )?;
        let document = match body.int(1) {
            Some(Value::Bytes(b)) => b.clone(),
            _ => return Err(bad("1 (the document) must be bytes")),
        };
        let disclosures = match body.int(2) {
            Some(Value::Array(items)) if items.len() <= crate::crypto::cose::MAX_DISCLOSURES => items
                .iter()
                .map(|i| match i {
                    Value::Bytes(b) => Ok(b.clone()),
                    _ => Err(bad("a disclosure must be bytes")),
                })
                .collect::<Result<_, _>>()?,
            _ => return Err(bad("2 (the disclosures) must be an array of at most 64")),
        };
        let status = body
            .int(3)
            .and_then(Value::as_text)
            .and_then(Status::parse)
            .ok_or_else(|| bad("3 (the status) must be a status word"))?;
        let log_size = body.uint_at(4)?.ok_or_else(|| bad("4 (the log size) is required"))?;
        let (issued_at, expires_at) = (time(6)?, time(4)?);
        if expires_at <= issued_at || (expires_at - issued_at) as u64 > MAX_TTL {
            return Err(bad("exp must be 1–300 seconds after iat"));
        }
        Ok(Self {
            platform: claims.int(1).and_then(Value::as_text).ok_or_else(|| bad("iss must be text"))?.to_string(),
            issued_at,
            expires_at,
            nonce,
            document,
            disclosures,
            status,
            log_size,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let p = Presentation {
            platform: "licvault.example.gov.cn/log".into(),
            issued_at: 1_800_000_000,
            expires_at: 1_800_000_120,
            nonce: [9; 16],
            document: vec![0xd2, 0x84],
            disclosures: vec![vec![1, 2, 3]],
            status: Status::Valid,
            log_size: 42,
        };
        assert_eq!(Presentation::from_payload(&p.to_payload()).unwrap(), p);
        let long = Presentation { expires_at: p.issued_at + 301, ..p.clone() };
        assert!(Presentation::from_payload(&long.to_payload()).is_err());
    }

    proptest::proptest! {
        #[test]
        fn parsing_never_panics(junk: Vec<u8>) {
            let _ = Presentation::from_payload(&junk);
        }
    }
}
