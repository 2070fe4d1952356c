//! Log leaves (DESIGN §4, spec/formats.md §2): deterministic CBOR, one per state change. Each
//! leaf carries the Merkle leaf hash of the leaf before it (the hash chain) and the index of the
//! previous leaf about the same licence. Citizen ID numbers never appear: holders are named by
//! their keyed commitment.

use std::collections::HashMap;

use ciborium::Value;

use super::merkle::{leaf_hash, CompactRange, Hash};
use crate::cbor::{self, int, text, CborError};

pub const LEAF_VERSION: u64 = 1;

/// What happened. The body is a flat map of text keys to text or unsigned values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// `licence.issued`, `licence.status`, `licence.superseded`, `licence.used`,
    /// `holder.queried`, `catalogue.loaded`, `catalogue.type`, `catalogue.item`, `client.added`,
    /// `client.disabled`, `client.rotated`, `trust.loaded`, `annotation.key`, `log.keys`,
    /// `holder.override`, `presentation.created`, `licence.link`, `audit.exported` (spec/formats.md
    /// §2).
    pub kind: String,
    pub body: Vec<(String, Field)>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Field {
    Text(String),
    Uint(u64),
    Bytes(Vec<u8>),
}

impl Event {
    pub fn new(kind: &str) -> Self {
        Self { kind: kind.to_string(), body: Vec::new() }
    }

    pub fn text(mut self, k: &str, v: impl Into<String>) -> Self {
        self.body.push((k.to_string(), Field::Text(v.into())));
        self
    }

    pub fn uint(mut self, k: &str, v: u64) -> Self {
        self.body.push((k.to_string(), Field::Uint(v)));
        self
    }

    pub fn bytes(mut self, k: &str, v: &[u8]) -> Self {
        self.body.push((k.to_string(), Field::Bytes(v.to_vec())));
        self
    }

    pub fn get_text(&self, k: &str) -> Option<&str> {
        self.body.iter().find_map(|(key, v)| match v {
            Field::Text(s) if key == k => Some(s.as_str()),
            _ => None,
        })
    }

    pub fn get_uint(&self, k: &str) -> Option<u64> {
        self.body.iter().find_map(|(key, v)| match v {
            Field::Uint(u) if key == k => Some(*u),
            _ => None,
        })
    }

    /// The end of the suspension a `licence.status` leaf records (unix seconds), if any.
    pub fn suspended_until(&self) -> Option<i64> {
        self.get_uint("until").and_then(|u| i64::try_from(u).ok())
    }

    pub fn get_bytes(&self, k: &str) -> Option<&[u8]> {
        self.body.iter().find_map(|(key, v)| match v {
            Field::Bytes(b) if key == k => Some(b.as_slice()),
            _ => None,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Leaf {
    pub index: u64,
    /// Merkle leaf hash of leaf `index − 1`; 32 zero bytes for leaf 0.
    pub prev_hash: Hash,
    /// Unix milliseconds at sequencing.
    pub time_ms: u64,
    pub licence: Option<String>,
    /// Index of the previous leaf about the same licence.
    pub licence_prev: Option<u64>,
    pub event: Event,
}

// Leaf map keys (spec/formats.md §2).
const K_VERSION: i64 = 0;
const K_INDEX: i64 = 1;
const K_PREV: i64 = 2;
const K_TIME: i64 = 3;
const K_KIND: i64 = 4;
const K_LICENCE: i64 = 5;
const K_LICENCE_PREV: i64 = 6;
const K_BODY: i64 = 7;

impl Leaf {
    pub fn encode(&self) -> Vec<u8> {
        let body = self
            .event
            .body
            .iter()
            .map(|(k, v)| {
                let v = match v {
                    Field::Text(s) => text(s.as_str()),
                    Field::Uint(u) => Value::Integer((*u).into()),
                    Field::Bytes(b) => Value::Bytes(b.clone()),
                };
                (text(k.as_str()), v)
            })
            .collect();
        let mut m = vec![
            (int(K_VERSION), Value::Integer(LEAF_VERSION.into())),
            (int(K_INDEX), Value::Integer(self.index.into())),
            (int(K_PREV), Value::Bytes(self.prev_hash.to_vec())),
            (int(K_TIME), Value::Integer(self.time_ms.into())),
            (int(K_KIND), text(self.event.kind.as_str())),
            (int(K_BODY), Value::Map(body)),
        ];
        if let Some(l) = &self.licence {
            m.push((int(K_LICENCE), text(l.as_str())));
        }
        if let Some(p) = self.licence_prev {
            m.push((int(K_LICENCE_PREV), Value::Integer(p.into())));
        }
        cbor::encode(Value::Map(m))
    }

    /// Decodes a leaf in one pass over its bytes ([`cbor::Reader`]): a deterministic map with
    /// the keys of spec/formats.md §2; keys it does not know are skipped (they must still be
    /// deterministic CBOR), and nothing may follow the map.
    pub fn decode(bytes: &[u8]) -> Result<Self, CborError> {
        let shape = |what: &str| CborError::Shape(what.to_string());
        let mut r = cbor::Reader::new(bytes)?;
        if r.major() != Some(5) {
            return Err(shape("leaf must be a map"));
        }
        let n = r.map("leaf")?;
        let (mut version, mut index, mut prev_hash, mut time_ms) = (None, None, None, None);
        let (mut kind, mut licence, mut licence_prev, mut body) = (None, None, None, None);
        let mut last_key = None;
        for _ in 0..n {
            // Keys 0–23 are one byte, their own value; any other key is skipped with its value.
            let key = match r.key(&mut last_key)? {
                [k] => i64::from(*k),
                _ => -1,
            };
            match key {
                K_VERSION => version = Some(r.uint("leaf version")?),
                K_INDEX => index = Some(r.uint("leaf index")?),
                K_PREV => {
                    let b = r.bytes("leaf prev")?;
                    prev_hash = Some(<Hash>::try_from(b).map_err(|_| shape("leaf prev must be 32 bytes"))?);
                }
                K_TIME => time_ms = Some(r.uint("leaf time")?),
                K_KIND => kind = Some(r.text("leaf kind")?),
                K_LICENCE => licence = Some(r.text("leaf licence")?.to_string()),
                K_LICENCE_PREV => licence_prev = Some(r.uint("leaf licence_prev")?),
                K_BODY => body = Some(Self::decode_body(&mut r)?),
                _ => r.skip()?,
            }
        }
        r.finish()?;
        let need = |v: Option<u64>, k: i64| v.ok_or_else(|| CborError::Shape(format!("leaf key {k} is required")));
        if need(version, K_VERSION)? != LEAF_VERSION {
            return Err(shape("unknown leaf version"));
        }
        Ok(Self {
            index: need(index, K_INDEX)?,
            prev_hash: prev_hash.ok_or_else(|| shape("leaf prev must be 32 bytes"))?,
            time_ms: need(time_ms, K_TIME)?,
            licence,
            licence_prev,
            event: Event {
                kind: kind.ok_or_else(|| shape("leaf kind must be text"))?.to_string(),
                body: body.ok_or_else(|| shape("leaf body is required"))?,
            },
        })
    }

    /// The body: a map of text keys, in deterministic order, to text, bytes or unsigned values.
    fn decode_body(r: &mut cbor::Reader<'_>) -> Result<Vec<(String, Field)>, CborError> {
        if r.major() != Some(5) {
            return Err(CborError::Shape("leaf body must be a map".into()));
        }
        let n = r.map("leaf body")?;
        let mut body = Vec::with_capacity(n.min(64) as usize);
        let mut last_key = None;
        for _ in 0..n {
            let key = r.key(&mut last_key)?;
            if key.first().map(|b| b >> 5) != Some(3) {
                return Err(CborError::Shape("body keys are text".into()));
            }
            let k = cbor::Reader::new(key)?.text("a body key")?;
            let f = match r.major() {
                Some(3) => Field::Text(r.text("a body value")?.to_string()),
                Some(2) => Field::Bytes(r.bytes("a body value")?.to_vec()),
                Some(0) => Field::Uint(r.uint("a body value")?),
                Some(1) => return Err(CborError::Shape("body integers are unsigned".into())),
                _ => return Err(CborError::Shape("body values are text, bytes or unsigned".into())),
            };
            body.push((k.to_string(), f));
        }
        Ok(body)
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ChainError {
    #[error("leaf {index}: {why}")]
    Leaf { index: u64, why: String },
}

/// Checks leaves one at a time, in order from leaf 0: index, hash chain, per-licence back
/// pointer; builds the tree over them. [`verify_chain`] runs it over a whole sequence; `licvault
/// check` feeds it page by page from the store.
#[derive(Default)]
pub struct ChainCheck {
    tree: CompactRange,
    prev: Hash,
    last_about: HashMap<String, u64>,
}

impl ChainCheck {
    pub fn new() -> Self {
        Self::default()
    }

    /// Goes on after leaves `0..tree.size()`, the last of which has the leaf hash `prev` (a
    /// mirror, which keeps the tree's right edge and not every leaf in memory).
    pub fn resume(tree: CompactRange, prev: Hash) -> Self {
        Self { tree, prev, last_about: HashMap::new() }
    }

    /// Checks the next leaf and returns it decoded.
    pub fn push(&mut self, bytes: &[u8]) -> Result<Leaf, ChainError> {
        let index = self.tree.size();
        let leaf = Leaf::decode(bytes).map_err(|e| ChainError::Leaf { index, why: e.to_string() })?;
        let last = leaf.licence.as_deref().and_then(|l| self.last_about.get(l).copied());
        self.push_known(leaf_hash(bytes), &leaf, last)?;
        if let Some(l) = &leaf.licence {
            self.last_about.insert(l.clone(), index);
        }
        Ok(leaf)
    }

    /// [`ChainCheck::push`] of a leaf already decoded, whose leaf hash is `hash`, for a caller that
    /// keeps each licence's newest leaf itself (a mirror, in the licence states it folds after
    /// [`ChainCheck::resume`]): `last` is the newest leaf about the leaf's licence before it.
    /// Nothing about licences is remembered here.
    pub fn push_known(&mut self, hash: Hash, leaf: &Leaf, last: Option<u64>) -> Result<(), ChainError> {
        let index = self.tree.size();
        let err = |why: String| ChainError::Leaf { index, why };
        if leaf.index != index {
            return Err(err(format!("says it is leaf {}", leaf.index)));
        }
        if leaf.prev_hash != self.prev {
            return Err(err("hash chain broken: prev does not match the previous leaf".into()));
        }
        if leaf.licence.is_some() {
            if leaf.licence_prev != last {
                return Err(err(format!("licence back-pointer {:?} should be {last:?}", leaf.licence_prev)));
            }
        } else if leaf.licence_prev.is_some() {
            return Err(err("back-pointer without a licence".into()));
        }
        self.prev = hash;
        self.tree.push(hash);
        Ok(())
    }

    /// The leaf hash of the last leaf pushed.
    pub fn prev(&self) -> Hash {
        self.prev
    }

    /// The tree over every leaf pushed so far.
    pub fn tree(&self) -> &CompactRange {
        &self.tree
    }
}

/// Replays leaves `0..n` in order and checks every link: index, hash chain, per-licence back
/// pointer. Returns the tree over them, whose root must match the signed checkpoint.
pub fn verify_chain<I>(leaves: I) -> Result<CompactRange, ChainError>
where
    I: IntoIterator<Item = Vec<u8>>,
{
    let mut check = ChainCheck::new();
    for bytes in leaves {
        check.push(&bytes)?;
    }
    Ok(check.tree)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cbor::MapReader;
    use proptest::prelude::*;

    /// The decoder before `cbor::Reader` (a whole `Value` tree), kept as the reference.
    fn decode_reference(bytes: &[u8]) -> Result<Leaf, CborError> {
        let v = cbor::decode_deterministic(bytes)?;
        let m = MapReader::new(&v, "leaf")?;
        let need = |k: i64| m.uint_at(k)?.ok_or_else(|| CborError::Shape(format!("leaf key {k} is required")));
        if need(K_VERSION)? != LEAF_VERSION {
            return Err(CborError::Shape("unknown leaf version".into()));
        }
        let prev_hash: Hash = m
            .int(K_PREV)
            .and_then(|v| v.as_bytes())
            .and_then(|b| b.as_slice().try_into().ok())
            .ok_or_else(|| CborError::Shape("leaf prev must be 32 bytes".into()))?;
        let kind = m.int(K_KIND).and_then(|v| v.as_text()).ok_or_else(|| CborError::Shape("kind".into()))?;
        let licence = match m.int(K_LICENCE) {
            None => None,
            Some(v) => Some(v.as_text().ok_or_else(|| CborError::Shape("licence".into()))?.to_string()),
        };
        let Some(Value::Map(entries)) = m.int(K_BODY) else {
            return Err(CborError::Shape("body".into()));
        };
        let mut body = Vec::new();
        for (k, v) in entries {
            let k = k.as_text().ok_or_else(|| CborError::Shape("body keys".into()))?;
            let f = match v {
                Value::Text(s) => Field::Text(s.clone()),
                Value::Bytes(b) => Field::Bytes(b.clone()),
                Value::Integer(i) => Field::Uint(u64::try_from(*i).map_err(|_| CborError::Shape("uint".into()))?),
                _ => return Err(CborError::Shape("body values".into())),
            };
            body.push((k.to_string(), f));
        }
        Ok(Leaf {
            index: need(K_INDEX)?,
            prev_hash,
            time_ms: need(K_TIME)?,
            licence,
            licence_prev: m.uint_at(K_LICENCE_PREV)?,
            event: Event { kind: kind.to_string(), body },
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 3000, rng_algorithm: prop::test_runner::RngAlgorithm::ChaCha, ..ProptestConfig::default() })]

        /// The one-pass decoder and the `Value` one agree on real leaves with one byte changed,
        /// dropped or added (a changed byte can make a float, which only the one-pass refuses).
        #[test]
        fn the_one_pass_decoder_agrees_with_the_value_decoder(which in 0usize..6, at in any::<prop::sample::Index>(), byte in any::<u8>(), how in 0u8..4) {
            let mut bytes = chain(6).swap_remove(which);
            cbor::tests::mutate(&mut bytes, at, byte, how);
            let ours = Leaf::decode(&bytes).ok();
            match decode_reference(&bytes).ok() {
                None => prop_assert!(ours.is_none(), "accepted {bytes:02x?}"),
                Some(r) if cbor::decode(&bytes).map(|v| cbor::tests::exotic(&v)).unwrap_or(false) => prop_assert!(ours.is_none() || ours == Some(r)),
                Some(r) => prop_assert_eq!(ours, Some(r), "refused {:02x?}", bytes),
            }
        }
    }

    fn chain(n: u64) -> Vec<Vec<u8>> {
        let mut prev = [0u8; 32];
        let mut out = Vec::new();
        for i in 0..n {
            let leaf = Leaf {
                index: i,
                prev_hash: prev,
                time_ms: 1000 + i,
                licence: Some("L".into()),
                licence_prev: i.checked_sub(1),
                event: Event::new("licence.status").text("to", "valid").uint("n", i).bytes("h", &[1, 2]),
            };
            let bytes = leaf.encode();
            assert_eq!(Leaf::decode(&bytes).unwrap().encode(), bytes);
            prev = leaf_hash(&bytes);
            out.push(bytes);
        }
        out
    }

    #[test]
    fn chain_verifies_and_breaks() {
        let leaves = chain(5);
        assert_eq!(verify_chain(leaves.clone()).unwrap().size(), 5);
        let mut swapped = leaves.clone();
        swapped.swap(1, 2);
        assert!(verify_chain(swapped).is_err());
        let mut dropped = leaves.clone();
        dropped.remove(3);
        assert!(verify_chain(dropped).is_err());
        // An edited leaf breaks the chain at the next leaf...
        let mut edited = leaves.clone();
        let n = edited[2].len();
        edited[2][n - 1] ^= 1;
        assert!(verify_chain(edited).is_err());
        // ...and an edited last leaf changes the root that the signed checkpoint pins.
        let mut edited = leaves.clone();
        let n = edited[4].len();
        edited[4][n - 1] ^= 1;
        let root = verify_chain(leaves).unwrap().root();
        assert_ne!(verify_chain(edited).unwrap().root(), root);
    }

    proptest::proptest! {
        #[test]
        fn leaf_decoding_never_panics(junk: Vec<u8>, at: usize, byte: u8) {
            let _ = Leaf::decode(&junk);
            let mut leaves = chain(2);
            let i = at % leaves[1].len();
            leaves[1][i] = byte;
            let _ = verify_chain(leaves);
        }
    }
}
