//! Deterministic CBOR (RFC 8949 §4.2.1) on top of ciborium: shortest-form integers and lengths
//! (ciborium's encoder already does both), definite lengths only, and map keys sorted by the
//! bytewise order of their encodings. Decoding of untrusted bytes is bounded in size; input in
//! deterministic encoding is decoded in one pass here ([`build`]), anything else by ciborium.

use ciborium::Value;

/// Largest CBOR item we ever decode from outside: a licence is a few KiB.
pub const MAX_INPUT: usize = 64 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum CborError {
    #[error("CBOR input of {0} bytes is over the {MAX_INPUT}-byte limit")]
    TooLarge(usize),
    #[error("malformed CBOR: {0}")]
    Malformed(String),
    #[error("CBOR is well formed but not in deterministic encoding (RFC 8949 §4.2.1)")]
    NotDeterministic,
    #[error("unexpected CBOR structure: {0}")]
    Shape(String),
}

/// Sorts every map (recursively) into the RFC 8949 §4.2.1 order.
pub fn canonicalise(v: Value) -> Value {
    match v {
        Value::Map(entries) => {
            let mut keyed: Vec<(Vec<u8>, Value, Value)> = entries
                .into_iter()
                .map(|(k, v)| {
                    let k = canonicalise(k);
                    (encode_raw(&k), k, canonicalise(v))
                })
                .collect();
            keyed.sort_by(|a, b| a.0.cmp(&b.0));
            Value::Map(keyed.into_iter().map(|(_, k, v)| (k, v)).collect())
        }
        Value::Array(items) => Value::Array(items.into_iter().map(canonicalise).collect()),
        Value::Tag(t, inner) => Value::Tag(t, Box::new(canonicalise(*inner))),
        other => other,
    }
}

fn encode_raw(v: &Value) -> Vec<u8> {
    let mut out = Vec::with_capacity(64);
    // Writing into a Vec cannot fail, and every Value we build is encodable.
    ciborium::into_writer(v, &mut out).expect("CBOR encoding into a Vec does not fail");
    out
}

/// Encodes `v` deterministically.
pub fn encode(v: Value) -> Vec<u8> {
    encode_raw(&canonicalise(v))
}

/// Decodes untrusted bytes; trailing bytes are an error. Deterministic input (what we write)
/// takes [`build`]'s one pass; anything else, ciborium's decoder.
pub fn decode(bytes: &[u8]) -> Result<Value, CborError> {
    if bytes.len() > MAX_INPUT {
        return Err(CborError::TooLarge(bytes.len()));
    }
    if let Some(v) = build_whole(bytes) {
        return Ok(v);
    }
    decode_with_ciborium(bytes)
}

fn decode_with_ciborium(bytes: &[u8]) -> Result<Value, CborError> {
    let mut reader = bytes;
    let v: Value = ciborium::from_reader(&mut reader).map_err(|e| CborError::Malformed(e.to_string()))?;
    if !reader.is_empty() {
        return Err(CborError::Malformed(format!("{} trailing bytes", reader.len())));
    }
    Ok(v)
}

/// Decodes and insists the bytes were deterministically encoded (RFC 8949 §4.2.1), in one pass
/// that builds the value as it checks each head ([`build`]). Input it refuses is decoded again
/// by ciborium and then checked ([`check_deterministic`]), so that the error says what it is:
/// `Malformed` for what is not CBOR, `NotDeterministic` for CBOR in another encoding.
pub fn decode_deterministic(bytes: &[u8]) -> Result<Value, CborError> {
    if bytes.len() > MAX_INPUT {
        return Err(CborError::TooLarge(bytes.len()));
    }
    if let Some(v) = build_whole(bytes) {
        return Ok(v);
    }
    let v = decode_with_ciborium(bytes)?;
    check_deterministic(bytes)?;
    Ok(v)
}

/// Room reserved ahead for an array or map of `len` items: what our formats' maps hold, no
/// more. A length is the sender's word, and nested ones would each reserve against the same
/// input (256 arrays announcing 65,535 items each in 768 bytes would reserve half a GiB before
/// the first item failed); past this, the `Vec` grows as items actually arrive.
fn reserve(len: u64) -> usize {
    usize::try_from(len).unwrap_or(usize::MAX).min(32)
}

/// [`build`] of all of `bytes`.
fn build_whole(bytes: &[u8]) -> Option<Value> {
    match build(bytes, 0, 0) {
        Some((v, end)) if end == bytes.len() => Some(v),
        _ => None,
    }
}

/// The deterministically encoded item at `at` as the [`Value`] ciborium decodes it to, and
/// where it ends: [`item`]'s checks, building as it goes. Hand-written because ciborium builds a
/// `Value` through serde's visitors (an allocation and a dispatch per item, most of the time of
/// parsing a presented licence), and a second pass then checked the encoding.
fn build(bytes: &[u8], at: usize, depth: u32) -> Option<(Value, usize)> {
    let (major, arg, mut at) = head(bytes, at)?;
    if (4..=6).contains(&major) && depth >= MAX_DEPTH {
        return None;
    }
    let string_end = |at: usize| at.checked_add(usize::try_from(arg).ok()?).filter(|e| *e <= bytes.len());
    Some(match major {
        0 => (Value::Integer(arg.into()), at),
        1 => (Value::Integer(ciborium::value::Integer::try_from(-1 - i128::from(arg)).ok()?), at),
        2 => {
            let end = string_end(at)?;
            (Value::Bytes(bytes[at..end].to_vec()), end)
        }
        3 => {
            let end = string_end(at)?;
            (Value::Text(std::str::from_utf8(&bytes[at..end]).ok()?.to_owned()), end)
        }
        4 => {
            let mut items = Vec::with_capacity(reserve(arg));
            for _ in 0..arg {
                let (v, end) = build(bytes, at, depth + 1)?;
                items.push(v);
                at = end;
            }
            (Value::Array(items), at)
        }
        5 => {
            let mut entries = Vec::with_capacity(reserve(arg));
            let mut prev: &[u8] = &[];
            for i in 0..arg {
                let (k, end) = build(bytes, at, depth + 1)?;
                let key = &bytes[at..end];
                if i > 0 && key <= prev {
                    return None;
                }
                prev = key;
                let (v, next) = build(bytes, end, depth + 1)?;
                entries.push((k, v));
                at = next;
            }
            (Value::Map(entries), at)
        }
        6 if arg != 2 && arg != 3 => {
            let (v, end) = build(bytes, at, depth + 1)?;
            (Value::Tag(arg, Box::new(v)), end)
        }
        7 => match arg {
            20 => (Value::Bool(false), at),
            21 => (Value::Bool(true), at),
            22 => (Value::Null, at),
            _ => return None,
        },
        _ => return None,
    })
}

/// Most maps, arrays and tags nested in one another (ciborium's decoder allows as many).
const MAX_DEPTH: u32 = 256;

/// Checks, in one pass and without allocating, that `bytes` is exactly one data item in
/// deterministic encoding: every head (integer, length, tag number) in its shortest form,
/// definite lengths only, every map's keys strictly increasing in the bytewise order of their
/// encodings (so no duplicates), and nothing after the item. No format of ours carries a float,
/// a bignum or a simple value other than false, true and null, so those are refused too: the
/// check never accepts what ciborium would re-encode differently. Hand-written because neither
/// ciborium nor the other maintained CBOR crates check deterministic encoding when decoding; the
/// previous way (re-encode the decoded value and compare, and encode every map key again) took
/// three passes and most of the time of decoding a log leaf.
pub fn check_deterministic(bytes: &[u8]) -> Result<(), CborError> {
    match item(bytes, 0, 0) {
        Some(end) if end == bytes.len() => Ok(()),
        _ => Err(CborError::NotDeterministic),
    }
}

/// The head at `at`: (major type, argument, where the content starts); `None` unless the
/// argument is in its shortest form and definite.
fn head(bytes: &[u8], at: usize) -> Option<(u8, u64, usize)> {
    let first = *bytes.get(at)?;
    let (major, info) = (first >> 5, first & 0x1f);
    let n = match info {
        0..=23 => return Some((major, u64::from(info), at + 1)),
        24 => 1,
        25 => 2,
        26 => 4,
        27 => 8,
        _ => return None,
    };
    let raw = bytes.get(at + 1..at + 1 + n)?;
    let arg = raw.iter().fold(0u64, |a, b| (a << 8) | u64::from(*b));
    let least = match n {
        1 => 24,
        2 => 0x100,
        4 => 0x1_0000,
        _ => 0x1_0000_0000,
    };
    (arg >= least).then_some((major, arg, at + 1 + n))
}

/// Where the deterministically encoded item at `at` ends.
/// `depth`: the maps, arrays and tags it is inside.
fn item(bytes: &[u8], at: usize, depth: u32) -> Option<usize> {
    let (major, arg, mut at) = head(bytes, at)?;
    if (4..=6).contains(&major) && depth >= MAX_DEPTH {
        return None;
    }
    match major {
        0 | 1 => Some(at),
        2 | 3 => {
            let end = at.checked_add(usize::try_from(arg).ok()?).filter(|e| *e <= bytes.len())?;
            (major == 2 || std::str::from_utf8(&bytes[at..end]).is_ok()).then_some(end)
        }
        4 => {
            for _ in 0..arg {
                at = item(bytes, at, depth + 1)?;
            }
            Some(at)
        }
        5 => {
            let mut prev: &[u8] = &[];
            for i in 0..arg {
                let end = item(bytes, at, depth + 1)?;
                let key = &bytes[at..end];
                if i > 0 && key <= prev {
                    return None;
                }
                prev = key;
                at = item(bytes, end, depth + 1)?;
            }
            Some(at)
        }
        6 if arg != 2 && arg != 3 => item(bytes, at, depth + 1),
        // false, true, null.
        7 if (20..=22).contains(&arg) => Some(at),
        _ => None,
    }
}

/// Reads deterministically encoded CBOR item by item, borrowing from the input: for the hot
/// formats (log leaves) that would otherwise build a whole [`Value`] tree to read a few fields.
/// Every head it reads must be in its shortest form; what it skips must be deterministic too
/// ([`Reader::skip`]); map key order is the caller's to check, with [`Reader::key`].
pub struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    pub fn new(bytes: &'a [u8]) -> Result<Self, CborError> {
        if bytes.len() > MAX_INPUT {
            return Err(CborError::TooLarge(bytes.len()));
        }
        Ok(Self { bytes, at: 0 })
    }

    /// Where the next item begins, from the start of the input.
    pub fn position(&self) -> usize {
        self.at
    }

    /// The major type of the next item.
    pub fn major(&self) -> Option<u8> {
        self.bytes.get(self.at).map(|b| b >> 5)
    }

    fn head(&mut self, major: u8, what: &str) -> Result<u64, CborError> {
        match head(self.bytes, self.at) {
            Some((m, arg, next)) if m == major => {
                self.at = next;
                Ok(arg)
            }
            Some(_) => Err(CborError::Shape(format!("{what} has the wrong type"))),
            None if self.at >= self.bytes.len() => Err(CborError::Malformed(format!("input ends before {what}"))),
            None => Err(CborError::NotDeterministic),
        }
    }

    pub fn uint(&mut self, what: &str) -> Result<u64, CborError> {
        self.head(0, what)
    }

    pub fn map(&mut self, what: &str) -> Result<u64, CborError> {
        self.head(5, what)
    }

    fn string(&mut self, major: u8, what: &str) -> Result<&'a [u8], CborError> {
        let len = self.head(major, what)?;
        let end = usize::try_from(len).ok().and_then(|l| self.at.checked_add(l)).filter(|e| *e <= self.bytes.len());
        let end = end.ok_or_else(|| CborError::Malformed(format!("input ends inside {what}")))?;
        let out = &self.bytes[self.at..end];
        self.at = end;
        Ok(out)
    }

    pub fn bytes(&mut self, what: &str) -> Result<&'a [u8], CborError> {
        self.string(2, what)
    }

    pub fn text(&mut self, what: &str) -> Result<&'a str, CborError> {
        let b = self.string(3, what)?;
        std::str::from_utf8(b).map_err(|_| CborError::Malformed(format!("{what} is not UTF-8")))
    }

    /// The encoding of the next item, a map key, which must follow `prev` (the map's key
    /// before it, updated) in the bytewise order of encodings.
    pub fn key(&mut self, prev: &mut Option<&'a [u8]>) -> Result<&'a [u8], CborError> {
        let start = self.at;
        self.skip()?;
        let key = &self.bytes[start..self.at];
        if prev.is_some_and(|p| key <= p) {
            return Err(CborError::NotDeterministic);
        }
        *prev = Some(key);
        Ok(key)
    }

    /// Skips the next item, which must be deterministic ([`check_deterministic`]); it is inside
    /// the top-level map (the depth limit counts that map).
    pub fn skip(&mut self) -> Result<(), CborError> {
        if self.at >= self.bytes.len() {
            return Err(CborError::Malformed("input ends before an item".into()));
        }
        self.at = item(self.bytes, self.at, 1).ok_or(CborError::NotDeterministic)?;
        Ok(())
    }

    /// Nothing may follow the item read.
    pub fn finish(self) -> Result<(), CborError> {
        match self.bytes.len() - self.at {
            0 => Ok(()),
            n => Err(CborError::Malformed(format!("{n} trailing bytes"))),
        }
    }
}

/// Small helpers for reading a decoded map.
pub struct MapReader<'a> {
    entries: &'a [(Value, Value)],
    what: &'static str,
}

impl<'a> MapReader<'a> {
    pub fn new(v: &'a Value, what: &'static str) -> Result<Self, CborError> {
        match v {
            Value::Map(entries) => Ok(Self { entries, what }),
            _ => Err(CborError::Shape(format!("{what} must be a map"))),
        }
    }

    pub fn get(&self, key: &Value) -> Option<&'a Value> {
        self.entries.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    pub fn int(&self, key: i64) -> Option<&'a Value> {
        self.get(&Value::Integer(key.into()))
    }

    pub fn text(&self, key: &str) -> Option<&'a Value> {
        self.entries.iter().find(|(k, _)| k.as_text() == Some(key)).map(|(_, v)| v)
    }

    pub fn req_text(&self, key: &str) -> Result<&'a str, CborError> {
        self.text(key)
            .and_then(|v| v.as_text())
            .ok_or_else(|| CborError::Shape(format!("{}: {key:?} must be text", self.what)))
    }

    pub fn opt_text(&self, key: &str) -> Result<Option<&'a str>, CborError> {
        match self.text(key) {
            None => Ok(None),
            Some(v) => {
                v.as_text().map(Some).ok_or_else(|| CborError::Shape(format!("{}: {key:?} must be text", self.what)))
            }
        }
    }

    pub fn uint_at(&self, key: i64) -> Result<Option<u64>, CborError> {
        match self.int(key) {
            None => Ok(None),
            Some(Value::Integer(i)) => u64::try_from(*i)
                .map(Some)
                .map_err(|_| CborError::Shape(format!("{}: key {key} must be an unsigned integer", self.what))),
            Some(_) => Err(CborError::Shape(format!("{}: key {key} must be an unsigned integer", self.what))),
        }
    }
}

pub fn text(s: impl Into<String>) -> Value {
    Value::Text(s.into())
}

pub fn int(i: i64) -> Value {
    Value::Integer(i.into())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use proptest::prelude::*;

    /// `bytes` with the byte at `at` kept (`how` 0), changed to `byte` (1), dropped (2) or with
    /// `byte` added before it (3).
    pub(crate) fn mutate(bytes: &mut Vec<u8>, at: prop::sample::Index, byte: u8, how: u8) {
        if bytes.is_empty() {
            return;
        }
        let i = at.index(bytes.len());
        match how {
            0 => {}
            1 => bytes[i] = byte,
            2 => {
                bytes.remove(i);
            }
            _ => bytes.insert(i, byte),
        }
    }

    /// The previous check, kept as the reference: re-encode and compare, keys in order.
    fn reference(bytes: &[u8]) -> Option<Value> {
        fn keys_in_order(v: &Value) -> bool {
            match v {
                Value::Map(entries) => {
                    entries.windows(2).all(|w| encode_raw(&w[0].0) < encode_raw(&w[1].0))
                        && entries.iter().all(|(k, v)| keys_in_order(k) && keys_in_order(v))
                }
                Value::Array(items) => items.iter().all(keys_in_order),
                Value::Tag(_, inner) => keys_in_order(inner),
                _ => true,
            }
        }
        let v = decode(bytes).ok()?;
        (keys_in_order(&v) && encode_raw(&v) == bytes).then_some(v)
    }

    /// What the one-pass check refuses on purpose though re-encoding would reproduce it.
    pub(crate) fn exotic(v: &Value) -> bool {
        match v {
            Value::Float(_) | Value::Tag(2 | 3, _) => true,
            Value::Map(m) => m.iter().any(|(k, v)| exotic(k) || exotic(v)),
            Value::Array(a) => a.iter().any(exotic),
            Value::Tag(_, inner) => exotic(inner),
            _ => false,
        }
    }

    /// As deep as ciborium goes, and no deeper: 256 arrays in one another, not 257.
    #[test]
    fn nesting_stops_where_ciborium_stops() {
        let nested = |n: usize| [vec![0x81u8; n - 1], vec![0x80]].concat();
        assert!(reference(&nested(256)).is_some() && decode_deterministic(&nested(256)).is_ok());
        assert!(reference(&nested(257)).is_none() && decode_deterministic(&nested(257)).is_err());
        // Inside a map, as `Reader::skip` meets it: the map counts.
        let in_map = |n: usize| [vec![0xa1, 0x00], nested(n)].concat();
        for n in [255, 256] {
            let bytes = in_map(n);
            let mut r = Reader { bytes: &bytes, at: 2 };
            assert_eq!(r.skip().is_ok(), reference(&bytes).is_some(), "{n} arrays in a map");
        }
    }

    fn value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            any::<i64>().prop_map(int),
            any::<u64>().prop_map(|u| Value::Integer(u.into())),
            prop::collection::vec(any::<u8>(), 0..40).prop_map(Value::Bytes),
            ".{0,30}".prop_map(Value::Text),
            any::<bool>().prop_map(Value::Bool),
            Just(Value::Null),
        ];
        leaf.prop_recursive(4, 64, 8, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
                prop::collection::vec((inner.clone(), inner.clone()), 0..8).prop_map(Value::Map),
                (0u64..100_000, inner)
                    .prop_map(|(t, v)| Value::Tag(if t == 2 || t == 3 { 18 } else { t }, Box::new(v))),
            ]
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 2000, rng_algorithm: prop::test_runner::RngAlgorithm::ChaCha, ..ProptestConfig::default() })]

        /// The one-pass check agrees with re-encoding on canonical and on unsorted encodings,
        /// and on both with a byte changed, dropped or added: it never accepts what the
        /// reference refuses, and refuses what the reference accepts only for floats and
        /// bignums.
        #[test]
        fn the_one_pass_check_agrees_with_re_encoding(v in value(), at in any::<prop::sample::Index>(), byte in any::<u8>(), how in 0u8..4) {
            for mut bytes in [encode(v.clone()), encode_raw(&v)] {
                mutate(&mut bytes, at, byte, how);
                let ours = decode_deterministic(&bytes).ok();
                match reference(&bytes) {
                    None => prop_assert!(ours.is_none(), "accepted {bytes:02x?}"),
                    Some(r) if exotic(&r) => prop_assert!(ours.is_none() || ours == Some(r)),
                    Some(r) => prop_assert_eq!(ours, Some(r), "refused {:02x?}", bytes),
                }
            }
        }
    }

    /// What decoding gave before the one-pass builder: ciborium, then the check.
    fn two_passes(bytes: &[u8]) -> Result<Value, CborError> {
        let v = decode_with_ciborium(bytes)?;
        check_deterministic(bytes)?;
        Ok(v)
    }

    fn same(a: &Result<Value, CborError>, b: &Result<Value, CborError>) -> bool {
        match (a, b) {
            (Ok(x), Ok(y)) => x == y,
            (Err(x), Err(y)) => std::mem::discriminant(x) == std::mem::discriminant(y),
            _ => false,
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 4000, rng_algorithm: prop::test_runner::RngAlgorithm::ChaCha, ..ProptestConfig::default() })]

        /// The one-pass builder gives what ciborium gave, value for value and error for error,
        /// on canonical and unsorted encodings with a byte changed, dropped or added, and on
        /// any bytes at all.
        #[test]
        fn the_builder_decodes_as_ciborium_did(v in value(), at in any::<prop::sample::Index>(), byte in any::<u8>(), how in 0u8..4, noise in prop::collection::vec(any::<u8>(), 0..64)) {
            for mut bytes in [encode(v.clone()), encode_raw(&v), noise.clone()] {
                mutate(&mut bytes, at, byte, how);
                let (ours, theirs) = (decode_deterministic(&bytes), two_passes(&bytes));
                prop_assert!(same(&ours, &theirs), "{bytes:02x?}: {ours:?} against {theirs:?}");
                let (ours, theirs) = (decode(&bytes), decode_with_ciborium(&bytes));
                prop_assert!(same(&ours, &theirs), "{bytes:02x?}: {ours:?} against {theirs:?}");
            }
        }
    }

    #[test]
    fn the_builder_agrees_at_the_edges() {
        // Integers at the edges of their heads, and the least and greatest of CBOR.
        for bytes in [
            &[0x17][..],
            &[0x18, 0x18],
            &[0x19, 0x01, 0x00],
            &[0x1b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff],
            &[0x3b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff],
        ] {
            assert!(same(&decode_deterministic(bytes), &two_passes(bytes)), "{bytes:02x?}");
            assert!(build_whole(bytes).is_some(), "{bytes:02x?}");
        }
        // Huge announced arrays and maps, alone and nested 256 deep (each reserves a little,
        // `reserve`), fail where their items run out.
        let nested = |head: [u8; 3]| [head.repeat(256), vec![0xff; 1024]].concat();
        for bytes in [
            vec![0x9b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff],
            vec![0xbb, 0, 0, 0, 1, 0, 0, 0, 0, 0x01],
            nested([0x99, 0xff, 0xff]),
            nested([0xb9, 0xff, 0xff]),
        ] {
            assert!(build_whole(&bytes).is_none());
            assert!(same(&decode_deterministic(&bytes), &two_passes(&bytes)), "{:02x?}", &bytes[..9]);
        }
        // Long strings (ciborium reads past 4 KiB in chunks, a UTF-8 character across a chunk
        // boundary), tags with 8-byte heads, negatives past i64, maps and tags 256 deep, 257.
        let long_text = [vec![0x79, 0x10, 0x01, b'a'], "é".repeat(2048).into_bytes()].concat();
        let long_bytes = [vec![0x59, 0x20, 0x00], vec![7; 0x2000]].concat();
        let big_tag = [vec![0xdb, 0, 0, 0, 1, 0, 0, 0, 0], vec![0x01]].concat();
        let past_i64 = vec![0x3b, 0x80, 0, 0, 0, 0, 0, 0, 0];
        let maps = [[0xa1u8, 0x00].repeat(256), vec![0x00]].concat();
        let tags = [[0xd8u8, 0x20].repeat(256), vec![0x00]].concat();
        let too_deep = [[0xd8u8, 0x20].repeat(257), vec![0x00]].concat();
        for (bytes, built) in [
            (long_text, true),
            (long_bytes, true),
            (big_tag, true),
            (past_i64, true),
            (maps, true),
            (tags, true),
            (too_deep, false),
        ] {
            assert_eq!(build_whole(&bytes).is_some(), built, "{:02x?}", &bytes[..9]);
            assert!(same(&decode_deterministic(&bytes), &two_passes(&bytes)), "{:02x?}", &bytes[..9]);
            assert!(same(&decode(&bytes), &decode_with_ciborium(&bytes)), "{:02x?}", &bytes[..9]);
        }
        // Invalid UTF-8 in a text string, and a bignum tag.
        assert!(matches!(decode_deterministic(&[0x61, 0xff]), Err(CborError::Malformed(_))));
        assert!(build_whole(&[0xc2, 0x41, 0x01]).is_none());
    }

    #[test]
    fn maps_sort_by_encoded_key() {
        // RFC 8949 §4.2.1: 10, 100, -1, "z", "aa" is the order of encoded bytes.
        let v = Value::Map(vec![
            (text("aa"), int(0)),
            (int(-1), int(0)),
            (text("z"), int(0)),
            (int(100), int(0)),
            (int(10), int(0)),
        ]);
        let keys: Vec<Value> = match canonicalise(v) {
            Value::Map(m) => m.into_iter().map(|(k, _)| k).collect(),
            _ => unreachable!(),
        };
        assert_eq!(keys, vec![int(10), int(100), int(-1), text("z"), text("aa")]);
    }

    #[test]
    fn non_deterministic_input_is_refused() {
        // {"b": 1, "a": 2} in the wrong order.
        let bytes = [0xa2, 0x61, b'b', 0x01, 0x61, b'a', 0x02];
        assert!(matches!(decode_deterministic(&bytes), Err(CborError::NotDeterministic)));
        // A duplicate key is not deterministic either.
        let dup = [0xa2, 0x61, b'a', 0x01, 0x61, b'a', 0x02];
        assert!(matches!(decode_deterministic(&dup), Err(CborError::NotDeterministic)));
        // 24 encoded in two bytes where one would do.
        assert!(matches!(decode_deterministic(&[0x18, 0x01]), Err(CborError::NotDeterministic)));
        // An indefinite-length array, and a float (no format of ours has one).
        assert!(matches!(decode_deterministic(&[0x9f, 0x01, 0xff]), Err(CborError::NotDeterministic)));
        assert!(matches!(decode_deterministic(&[0xf9, 0x3c, 0x00]), Err(CborError::NotDeterministic)));
        assert!(matches!(decode(&[0x01, 0x02]), Err(CborError::Malformed(_))));
        assert!(matches!(decode(&[0xff]), Err(CborError::Malformed(_))));
    }
}
