//! IETF Token Status List (draft-ietf-oauth-status-list-18) in its CWT form: the platform
//! publishes every licence's status as 2 bits in a list, zlib-compressed and signed, so that a
//! scanner with no network learns revocations as of the list's time (spec/formats.md §9).
//!
//! Pure: encoding, decoding and checking a list token. The vault (`vault::status_lists`) fills
//! and signs the lists; `licvault verify` reads them offline.

use std::cell::RefCell;

use ciborium::Value;
use ed25519_dalek::VerifyingKey;
use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status as ZStatus};

use crate::cbor::{self, int, text, MapReader};
use crate::crypto::cose::{CoseError, Envelope, HEADER_TYP};

/// Bits per licence: valid, invalid, suspended, and one status of ours (superseded).
pub const BITS: u8 = 2;
/// The COSE `typ` header (label 16) of a status list token (§5.2).
pub const TYP: &str = "application/statuslist+cwt";
/// CWT claims of the token (§5.2, §14.3).
pub const CLAIM_SUB: i64 = 2;
pub const CLAIM_EXP: i64 = 4;
pub const CLAIM_IAT: i64 = 6;
pub const CLAIM_TTL: i64 = 65534;
pub const CLAIM_STATUS_LIST: i64 = 65533;
/// Most entries a list may have when read (a list of 2^20 licences is 256 KiB uncompressed).
pub const MAX_ENTRIES: usize = 1 << 20;

/// The status values (§7): 0 VALID, 1 INVALID, 2 SUSPENDED, 3 application-specific.
pub const VALID: u8 = 0;
/// Revoked (撤销/吊销) or cancelled (注销): the list does not tell them apart.
pub const INVALID: u8 = 1;
pub const SUSPENDED: u8 = 2;
/// licvault's application-specific status: a newer version exists.
pub const SUPERSEDED: u8 = 3;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StatusListError {
    #[error("not a status list token: {0}")]
    Malformed(String),
    #[error("the status list is signed by no platform key this verifier knows")]
    UnknownKey,
    #[error("the status list's signature does not verify")]
    Signature,
    #[error("the status list is about {found}, not {expected}")]
    WrongList { expected: String, found: String },
    #[error("index {0} is outside the status list")]
    OutOfRange(u32),
}

/// Statuses packed `BITS` to an entry, least significant bits first (§4.1: index `i` is in byte
/// `i * BITS / 8` at shift `(i % (8 / BITS)) * BITS`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Statuses {
    bytes: Vec<u8>,
}

const PER_BYTE: usize = 8 / BITS as usize;

impl Statuses {
    /// `entries` statuses, all VALID.
    pub fn new(entries: usize) -> Self {
        Self { bytes: vec![0; entries.div_ceil(PER_BYTE)] }
    }

    pub fn set(&mut self, index: usize, status: u8) {
        let shift = (index % PER_BYTE) * BITS as usize;
        let b = &mut self.bytes[index / PER_BYTE];
        *b = (*b & !(0b11 << shift)) | ((status & 0b11) << shift);
    }

    pub fn get(&self, index: usize) -> Option<u8> {
        let b = self.bytes.get(index / PER_BYTE)?;
        Some((b >> ((index % PER_BYTE) * BITS as usize)) & 0b11)
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }
}

/// A status list token, read and checked.
#[derive(Debug, Clone)]
pub struct ListToken {
    /// `sub`: the list's URI, which each licence's `status_list.uri` names.
    pub uri: String,
    /// Unix seconds the list was made: the statuses hold as of then.
    pub issued_at: i64,
    pub expires_at: Option<i64>,
    /// Seconds a reader may keep the list before fetching it again.
    pub ttl: Option<u64>,
    pub statuses: Statuses,
}

thread_local! {
    static DEFLATE: RefCell<Compress> = RefCell::new(Compress::new(Compression::best(), true));
}

/// The CWT claims of a list token as deterministic CBOR (the COSE payload).
pub fn payload(uri: &str, issued_at: i64, expires_at: i64, ttl: u64, statuses: &Statuses) -> Vec<u8> {
    let lst = DEFLATE.with(|z| {
        let mut z = z.borrow_mut();
        z.reset();
        let input = statuses.as_bytes();
        let mut out = Vec::with_capacity(input.len() / 4 + 64);
        loop {
            let before = z.total_in() as usize;
            // Compressing into a Vec with spare room cannot fail.
            let status =
                z.compress_vec(&input[before.min(input.len())..], &mut out, FlushCompress::Finish).expect("deflate");
            if status == ZStatus::StreamEnd {
                break out;
            }
            out.reserve(out.len().max(1024));
        }
    });
    let list = Value::Map(vec![(text("bits"), int(BITS as i64)), (text("lst"), Value::Bytes(lst))]);
    cbor::encode(Value::Map(vec![
        (int(CLAIM_SUB), text(uri)),
        (int(CLAIM_IAT), int(issued_at)),
        (int(CLAIM_EXP), int(expires_at)),
        (int(CLAIM_TTL), Value::Integer(ttl.into())),
        (int(CLAIM_STATUS_LIST), list),
    ]))
}

/// Reads a status list token: a COSE_Sign1 with `typ` [`TYP`], signed by a key `key_for` knows
/// by kid, whose `sub` is `expected_uri` (§8.3: the relying party compares them).
pub fn read(
    document: &[u8],
    key_for: impl Fn(&[u8; 8]) -> Option<VerifyingKey>,
    expected_uri: &str,
) -> Result<ListToken, StatusListError> {
    let bad = |why: String| StatusListError::Malformed(why);
    let env = Envelope::parse(document).map_err(|e| bad(e.to_string()))?;
    if env.protected_text(HEADER_TYP) != Some(TYP) {
        return Err(bad(format!("the protected header's typ is not {TYP}")));
    }
    let key = key_for(&env.kid()).ok_or(StatusListError::UnknownKey)?;
    env.verify(&key).map_err(|e| match e {
        CoseError::Signature => StatusListError::Signature,
        e => bad(e.to_string()),
    })?;
    let claims = cbor::decode_deterministic(env.payload()).map_err(|e| bad(e.to_string()))?;
    let claims = MapReader::new(&claims, "status list claims").map_err(|e| bad(e.to_string()))?;
    let uri = claims.int(CLAIM_SUB).and_then(Value::as_text).ok_or_else(|| bad("sub (2) must be text".into()))?;
    if uri != expected_uri {
        return Err(StatusListError::WrongList { expected: expected_uri.into(), found: uri.into() });
    }
    let time = |k: i64| claims.uint_at(k).map_err(|e| bad(e.to_string()));
    let issued_at = time(CLAIM_IAT)?.ok_or_else(|| bad("iat (6) is required".into()))?;
    let expires_at = time(CLAIM_EXP)?;
    let ttl = time(CLAIM_TTL)?;
    let list = claims.int(CLAIM_STATUS_LIST).ok_or_else(|| bad("status_list (65533) is required".into()))?;
    let list = MapReader::new(list, "status_list").map_err(|e| bad(e.to_string()))?;
    if !matches!(list.text("bits"), Some(Value::Integer(b)) if i128::from(*b) == BITS as i128) {
        return Err(bad(format!("only lists of {BITS} bits per entry are read")));
    }
    let Some(Value::Bytes(lst)) = list.text("lst") else { return Err(bad("lst must be a byte string".into())) };
    let bytes = inflate(lst).ok_or_else(|| bad("lst is not zlib data, or inflates past the limit".into()))?;
    let time_i64 = |t: u64| i64::try_from(t).map_err(|_| bad("a time is out of range".into()));
    Ok(ListToken {
        uri: uri.to_string(),
        issued_at: time_i64(issued_at)?,
        expires_at: expires_at.map(time_i64).transpose()?,
        ttl,
        statuses: Statuses { bytes },
    })
}

/// zlib (RFC 1950) inflation, refusing more than [`MAX_ENTRIES`] entries' worth (a zlib bomb).
fn inflate(input: &[u8]) -> Option<Vec<u8>> {
    let limit = MAX_ENTRIES / PER_BYTE;
    let mut z = Decompress::new(true);
    let mut out = Vec::with_capacity(limit + 1);
    let status = z.decompress_vec(input, &mut out, FlushDecompress::Finish).ok()?;
    (status == ZStatus::StreamEnd && out.len() <= limit && z.total_in() as usize == input.len()).then_some(out)
}

impl ListToken {
    pub fn status(&self, index: u32) -> Result<u8, StatusListError> {
        self.statuses.get(index as usize).ok_or(StatusListError::OutOfRange(index))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The draft's 2-bit example (§4.1): statuses 1,2,0,3,0,1,0,1,1,2,3,3 pack to c9 44 f9, and
    /// zlib at the best level gives 78da3be9f2130003df0207.
    #[test]
    fn draft_example_packs_and_compresses_alike() {
        let mut s = Statuses::new(12);
        for (i, v) in [1, 2, 0, 3, 0, 1, 0, 1, 1, 2, 3, 3].into_iter().enumerate() {
            s.set(i, v);
        }
        assert_eq!(s.as_bytes(), [0xc9, 0x44, 0xf9]);
        let p = payload("https://example.com/statuslists/1", 1, 2, 3, &s);
        let v = cbor::decode(&p).unwrap();
        let claims = MapReader::new(&v, "t").unwrap();
        let list = MapReader::new(claims.int(CLAIM_STATUS_LIST).unwrap(), "l").unwrap();
        assert_eq!(list.text("lst"), Some(&Value::Bytes(hex::decode("78da3be9f2130003df0207").unwrap())));
        assert_eq!(inflate(&hex::decode("78da3be9f2130003df0207").unwrap()).unwrap(), [0xc9, 0x44, 0xf9]);
        assert_eq!(s.get(3), Some(3));
        assert_eq!(s.get(12), None);
    }

    #[test]
    fn bombs_and_garbage_are_refused() {
        let mut z = flate2::write::ZlibEncoder::new(Vec::new(), Compression::best());
        std::io::Write::write_all(&mut z, &vec![0u8; MAX_ENTRIES]).unwrap();
        assert!(inflate(&z.finish().unwrap()).is_none(), "more than the limit");
        assert!(inflate(b"not zlib").is_none());
        assert!(read(b"junk", |_| None, "x").is_err());
    }

    proptest::proptest! {
        #[test]
        fn set_then_get(entries in proptest::collection::vec(0u8..4, 1..200)) {
            let mut s = Statuses::new(entries.len());
            for (i, v) in entries.iter().enumerate() {
                s.set(i, *v);
            }
            for (i, v) in entries.iter().enumerate() {
                proptest::prop_assert_eq!(s.get(i), Some(*v));
            }
        }

        #[test]
        fn reading_never_panics(junk: Vec<u8>) {
            let _ = read(&junk, |_| None, "x");
            let _ = inflate(&junk);
        }
    }
}
