//! Deterministic CBOR (RFC 8949 §4.2.1) on top of ciborium: shortest-form integers and lengths
//! (ciborium's encoder already does both), definite lengths only, and map keys sorted by the
//! bytewise order of their encodings. Decoding of untrusted bytes is bounded in size.

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

/// Decodes untrusted bytes; trailing bytes are an error.
pub fn decode(bytes: &[u8]) -> Result<Value, CborError> {
    if bytes.len() > MAX_INPUT {
        return Err(CborError::TooLarge(bytes.len()));
    }
    let mut reader = bytes;
    let v: Value = ciborium::from_reader(&mut reader).map_err(|e| CborError::Malformed(e.to_string()))?;
    if !reader.is_empty() {
        return Err(CborError::Malformed(format!("{} trailing bytes", reader.len())));
    }
    Ok(v)
}

/// Decodes and insists the bytes were deterministically encoded. ciborium keeps map entries in
/// the order read and always writes shortest forms and definite lengths, so re-encoding the
/// decoded value reproduces the input exactly when lengths and integers were shortest-form;
/// map order is then checked separately, without building a sorted copy.
pub fn decode_deterministic(bytes: &[u8]) -> Result<Value, CborError> {
    let v = decode(bytes)?;
    if !keys_in_order(&v) || encode_raw(&v) != bytes {
        return Err(CborError::NotDeterministic);
    }
    Ok(v)
}

/// Every map's keys strictly increase in the bytewise order of their encodings. Two buffers per
/// map hold the previous and the current key's encoding (no allocation per key).
fn keys_in_order(v: &Value) -> bool {
    match v {
        Value::Map(entries) => {
            let (mut prev, mut cur) = (Vec::with_capacity(32), Vec::with_capacity(32));
            for (i, (k, val)) in entries.iter().enumerate() {
                cur.clear();
                if ciborium::into_writer(k, &mut cur).is_err() || (i > 0 && prev >= cur) || !keys_in_order(val) {
                    return false;
                }
                std::mem::swap(&mut prev, &mut cur);
            }
            true
        }
        Value::Array(items) => items.iter().all(keys_in_order),
        Value::Tag(_, inner) => keys_in_order(inner),
        _ => true,
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
mod tests {
    use super::*;

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
        assert!(matches!(decode(&[0x01, 0x02]), Err(CborError::Malformed(_))));
        assert!(matches!(decode(&[0xff]), Err(CborError::Malformed(_))));
    }
}
