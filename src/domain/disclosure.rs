//! Salted disclosures (spec/formats.md §1.2): how a format-2 licence carries personal data.
//!
//! The signed payload holds only SHA-256 digests of personal values; each value travels in a
//! disclosure, `[salt, value, key]` as deterministic CBOR: the shape of SD-CWT
//! (draft-ietf-spice-sd-cwt-06 §7: a 16-byte random salt, the value, then the claim key), and the
//! pattern of ISO mdoc's signed digests. The digest is SHA-256 over the disclosure's bytes as they
//! travel, so a verifier checks a disclosure without re-encoding anything, and the salt keeps a
//! digest of a low-entropy value (a citizen ID number, a birth date) from being guessed.

use ciborium::Value;

use super::holder::HolderId;
use crate::cbor::{self, CborError};

/// Bytes of random salt in every disclosure (SD-CWT: at least 128 bits).
pub const SALT_LEN: usize = 16;

/// What a disclosure discloses: a holder's number or a face field.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum DisclosureKey {
    /// The number of a holder: 0 the holder, `n` the co-holder at `co_holders[n - 1]`.
    Holder(usize),
    /// A face field, by name.
    Field(String),
}

impl DisclosureKey {
    /// How the API and the CLI name it: `holder.id`, `co_holders[0].id`, or the field's name.
    pub fn label(&self) -> String {
        match self {
            Self::Holder(0) => "holder.id".to_string(),
            Self::Holder(n) => format!("co_holders[{}].id", n - 1),
            Self::Field(name) => name.clone(),
        }
    }

    /// The inverse of [`DisclosureKey::label`].
    pub fn from_label(label: &str) -> Self {
        if label == "holder.id" {
            return Self::Holder(0);
        }
        let co = label.strip_prefix("co_holders[").and_then(|r| r.strip_suffix("].id"));
        match co.and_then(|n| n.parse::<usize>().ok()).filter(|n| *n < 64) {
            Some(n) if co.is_some_and(|d| d == n.to_string()) => Self::Holder(n + 1),
            _ => Self::Field(label.to_string()),
        }
    }
}

/// One salted disclosure, with the bytes it was read from or written as. Its `Debug` names the
/// key only: the value is personal data.
#[derive(Clone, PartialEq, Eq)]
pub struct Disclosure {
    pub key: DisclosureKey,
    pub value: String,
    bytes: Vec<u8>,
}

impl std::fmt::Debug for Disclosure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Disclosure({})", self.key.label())
    }
}

/// Whether a face field's name could be read as a holder-number key (`holder.id`,
/// `co_holders[N].id`): the catalogue refuses such names.
pub fn reserved_field_name(name: &str) -> bool {
    name.starts_with("holder.") || name.starts_with("co_holders[")
}

impl Disclosure {
    /// A new disclosure of `value` under `key` with `salt` (random: the caller's to draw).
    pub fn new(salt: [u8; SALT_LEN], key: DisclosureKey, value: String) -> Self {
        let key_value = match &key {
            DisclosureKey::Holder(n) => Value::Integer((*n as u64).into()),
            DisclosureKey::Field(name) => Value::Text(name.clone()),
        };
        let bytes =
            cbor::encode(Value::Array(vec![Value::Bytes(salt.to_vec()), Value::Text(value.clone()), key_value]));
        Self { key, value, bytes }
    }

    /// Reads a disclosure: deterministic CBOR `[bstr .size 16, tstr, uint / tstr]`.
    pub fn parse(bytes: &[u8]) -> Result<Self, CborError> {
        let bad = |why: &str| CborError::Shape(format!("disclosure: {why}"));
        let Value::Array(items) = cbor::decode_deterministic(bytes)? else {
            return Err(bad("must be an array [salt, value, key]"));
        };
        let [Value::Bytes(salt), Value::Text(value), key] = items.as_slice() else {
            return Err(bad("must be [salt (bytes), value (text), key]"));
        };
        if salt.len() != SALT_LEN {
            return Err(bad("the salt must be 16 bytes"));
        }
        let key = match key {
            Value::Integer(i) => match u8::try_from(*i) {
                Ok(n) if n <= 64 => DisclosureKey::Holder(n as usize),
                _ => return Err(bad("a holder key is 0–64")),
            },
            Value::Text(name) => DisclosureKey::Field(name.clone()),
            _ => return Err(bad("the key must be a holder position or a field name")),
        };
        Ok(Self { key, value: value.clone(), bytes: bytes.to_vec() })
    }

    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// SHA-256 of the disclosure's bytes: what the signed payload lists.
    pub fn digest(&self) -> [u8; 32] {
        crate::crypto::sha256(&self.bytes)
    }

    /// The holder number a `Holder` disclosure carries, of the type its holder entry names.
    pub fn holder_id(&self, type_code: &str) -> Result<HolderId, super::HolderError> {
        // Inside a document whose signature verified: the issuer checked the number (or an
        // administrator's pilot override) when it signed, so only the shape is checked here.
        HolderId::parse_pilot(type_code, &self.value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_shape() {
        let d = Disclosure::new([7; 16], DisclosureKey::Field("出生日期".into()), "1990-01-01".into());
        let back = Disclosure::parse(d.bytes()).unwrap();
        assert_eq!(back, d);
        assert_eq!(back.digest(), crate::crypto::sha256(d.bytes()));
        // [h'07…', "1990-01-01", "出生日期"]: salt, value, key in that order.
        assert_eq!(d.bytes()[0], 0x83);
        assert_eq!(&d.bytes()[1..3], &[0x50, 7]);
        let h = Disclosure::new([1; 16], DisclosureKey::Holder(0), "11010519491231002X".into());
        assert_eq!(Disclosure::parse(h.bytes()).unwrap().key, DisclosureKey::Holder(0));
        for bad in [&[0x80][..], &[0x83, 0x41, 0, 0x60, 0x00], &[0xa0], &[0x83, 0x50]] {
            assert!(Disclosure::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn labels() {
        for key in [DisclosureKey::Holder(0), DisclosureKey::Holder(3), DisclosureKey::Field("坐落".into())] {
            assert_eq!(DisclosureKey::from_label(&key.label()), key);
        }
        assert_eq!(DisclosureKey::from_label("co_holders[01].id"), DisclosureKey::Field("co_holders[01].id".into()));
    }

    proptest::proptest! {
        #[test]
        fn parsing_never_panics(junk: Vec<u8>) {
            let _ = Disclosure::parse(&junk);
        }
    }
}
