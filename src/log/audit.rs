//! Audit bundles (spec/formats.md §13): a range of the log with what links it to two signed
//! checkpoints, and the offline check that re-derives everything from it. Pure: the vault
//! writes bundles (`vault::audit`), `licvault audit verify` reads them.
//!
//! A bundle is a CBOR sequence (RFC 8742) of byte strings: the first holds the header (a CBOR
//! map), each next one a leaf, `to − from` of them, then the end of the file.

use std::collections::{BTreeMap, HashMap};
use std::io::Read;

use ciborium::Value;

use super::leaf::Leaf;
use super::merkle::{leaf_hash, verify_consistency, verify_inclusion, CompactRange, Hash};
use super::note::{Checkpoint, Verifier};
use crate::cbor::{self, text, MapReader};

pub const BUNDLE_VERSION: u64 = 1;
/// Longest header a reader accepts (it holds three notes and about 200 hashes at most).
const MAX_HEADER: u64 = 1 << 20;
/// Longest leaf (spec/formats.md §12: an entry bundle's length prefix is a uint16).
const MAX_LEAF: u64 = u16::MAX as u64;

/// What links the leaves `from..to` to the signed checkpoints at `from` and `to`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    pub origin: String,
    pub from: u64,
    pub to: u64,
    /// The note signed at `from`, when one was (always `None` for 0): it links the bundle to
    /// an auditor's earlier checkpoint. Without it the frontier is bound by the tree at `to`.
    pub checkpoint_from: Option<String>,
    /// The note signed at `to`, or at the newest size after it when none was signed at `to`.
    pub checkpoint_to: String,
    /// The tree of `from` leaves as its perfect subtrees' roots, largest (leftmost) first: the
    /// leaves that follow are appended to it.
    pub frontier: Vec<Hash>,
    /// Inclusion proof of leaf `from − 1` in the tree of `from` leaves: it proves the hash that
    /// the first leaf's hash chain names (empty when `from` is 0).
    pub prev_proof: Vec<Hash>,
    /// RFC 9162 consistency proof from `from` to the size of `checkpoint_to` (empty when `from`
    /// is 0 or that size).
    pub consistency: Vec<Hash>,
    /// RFC 9162 consistency proof from `to` to the size of `checkpoint_to` (empty when `to` is
    /// 0 or that size): it binds the tree the leaves make to the signed one.
    pub to_proof: Vec<Hash>,
}

fn hashes(list: &[Hash]) -> Value {
    Value::Array(list.iter().map(|h| Value::Bytes(h.to_vec())).collect())
}

impl Header {
    pub fn encode(&self) -> Vec<u8> {
        let m = vec![
            (text("v"), Value::Integer(BUNDLE_VERSION.into())),
            (text("origin"), text(self.origin.as_str())),
            (text("from"), Value::Integer(self.from.into())),
            (text("to"), Value::Integer(self.to.into())),
            (text("checkpoint_from"), self.checkpoint_from.as_ref().map_or(Value::Null, |c| text(c.as_str()))),
            (text("checkpoint_to"), text(self.checkpoint_to.as_str())),
            (text("frontier"), hashes(&self.frontier)),
            (text("prev_proof"), hashes(&self.prev_proof)),
            (text("consistency"), hashes(&self.consistency)),
            (text("to_proof"), hashes(&self.to_proof)),
        ];
        cbor::encode(Value::Map(m))
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, String> {
        let v = cbor::decode(bytes).map_err(|e| e.to_string())?;
        let m = MapReader::new(&v, "bundle header").map_err(|e| e.to_string())?;
        let uint = |k: &str| -> Result<u64, String> {
            m.text(k)
                .and_then(|v| v.as_integer())
                .and_then(|i| u64::try_from(i).ok())
                .ok_or_else(|| format!("header: {k:?} must be an unsigned integer"))
        };
        let list = |k: &str| -> Result<Vec<Hash>, String> {
            m.text(k)
                .and_then(|v| v.as_array())
                .ok_or_else(|| format!("header: {k:?} must be an array"))?
                .iter()
                .map(|h| {
                    h.as_bytes()
                        .and_then(|b| Hash::try_from(b.as_slice()).ok())
                        .ok_or_else(|| format!("header: {k:?} holds something other than 32-byte hashes"))
                })
                .collect()
        };
        if uint("v")? != BUNDLE_VERSION {
            return Err(format!("header: bundle version {} is not {BUNDLE_VERSION}", uint("v")?));
        }
        let checkpoint_from = match m.text("checkpoint_from") {
            Some(Value::Null) | None => None,
            Some(v) => Some(v.as_text().ok_or("header: \"checkpoint_from\" must be text or null")?.to_string()),
        };
        Ok(Self {
            origin: m.req_text("origin").map_err(|e| e.to_string())?.to_string(),
            from: uint("from")?,
            to: uint("to")?,
            checkpoint_from,
            checkpoint_to: m.req_text("checkpoint_to").map_err(|e| e.to_string())?.to_string(),
            frontier: list("frontier")?,
            prev_proof: list("prev_proof")?,
            consistency: list("consistency")?,
            to_proof: list("to_proof")?,
        })
    }
}

/// One item of the sequence: a CBOR byte string (major type 2, definite length).
pub fn item(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len() + 9);
    push_item(&mut out, bytes);
    out
}

/// [`item`] written at the end of `out` (no allocation of its own: the export's loop).
pub fn push_item(out: &mut Vec<u8>, bytes: &[u8]) {
    let n = bytes.len() as u64;
    match n {
        0..=23 => out.push(0x40 | n as u8),
        24..=0xff => out.extend_from_slice(&[0x58, n as u8]),
        0x100..=0xffff => {
            out.push(0x59);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        0x1_0000..=0xffff_ffff => {
            out.push(0x5a);
            out.extend_from_slice(&(n as u32).to_be_bytes());
        }
        _ => {
            out.push(0x5b);
            out.extend_from_slice(&n.to_be_bytes());
        }
    }
    out.extend_from_slice(bytes);
}

/// Reads the next item; `Ok(None)` at a clean end of input.
fn next_item(r: &mut impl Read, buf: &mut Vec<u8>, max: u64) -> Result<Option<()>, String> {
    let mut first = [0u8; 1];
    match r.read(&mut first) {
        Ok(0) => return Ok(None),
        Ok(_) => {}
        Err(e) => return Err(format!("reading: {e}")),
    }
    let short = |e: std::io::Error| format!("the file ends inside an item ({e})");
    let len = match first[0] {
        b @ 0x40..=0x57 => u64::from(b & 0x1f),
        0x58..=0x5b => {
            let n = 1usize << (first[0] - 0x58);
            let mut b = [0u8; 8];
            r.read_exact(&mut b[8 - n..]).map_err(short)?;
            let len = u64::from_be_bytes(b);
            // Deterministic CBOR: the shortest length form.
            let least = match n {
                1 => 24,
                2 => 0x100,
                4 => 0x1_0000,
                _ => 0x1_0000_0000,
            };
            if len < least {
                return Err("an item's length is not in its shortest form".into());
            }
            len
        }
        b => return Err(format!("an item starts with 0x{b:02x}, not a byte string")),
    };
    if len > max {
        return Err(format!("an item of {len} bytes is over the {max}-byte limit"));
    }
    buf.resize(len as usize, 0);
    r.read_exact(buf).map_err(short)?;
    Ok(Some(()))
}

/// Why a bundle fails: the first bad leaf, or the bundle as a whole.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuditError {
    #[error("leaf {index}: {why}")]
    Leaf { index: u64, why: String },
    #[error("bundle: {0}")]
    Bundle(String),
}

/// What a verified bundle holds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Summary {
    pub from: u64,
    pub to: u64,
    /// The size of the checkpoint that signs the tree (`to`, or a later size).
    pub signed: u64,
    /// The root of that checkpoint.
    pub root: Hash,
    /// Leaves by kind.
    pub kinds: BTreeMap<String, u64>,
    /// Unix ms of the first and the last leaf.
    pub first_ms: Option<u64>,
    pub last_ms: Option<u64>,
    /// Previous checkpoints (`--previous`) found on the way: each was the tree at its size.
    pub previous_linked: usize,
}

/// Leaves read, decoded and hashed at a time by [`verify_bundle`], and the most bytes of them.
const CHUNK: usize = 8192;
const CHUNK_BYTES: usize = 32 << 20;

/// Each item decoded as a leaf, with its leaf hash: on two threads when there are many.
fn decode_all(items: &[Vec<u8>]) -> Vec<(Result<Leaf, String>, Hash)> {
    let one = |b: &Vec<u8>| (Leaf::decode(b).map_err(|e| e.to_string()), leaf_hash(b));
    if items.len() < 256 {
        return items.iter().map(one).collect();
    }
    let (a, b) = items.split_at(items.len() / 2);
    std::thread::scope(|s| {
        let second = s.spawn(|| b.iter().map(one).collect::<Vec<_>>());
        let mut out: Vec<_> = a.iter().map(one).collect();
        // A panic on the other thread is this one's: never a chunk checked with a half missing.
        out.extend(second.join().unwrap_or_else(|p| std::panic::resume_unwind(p)));
        out
    })
}

/// The checks of one decoded leaf at `index` against what came before it (spec/formats.md
/// §13, step 4); the reason when one fails.
fn check_leaf(
    leaf: &Leaf,
    index: u64,
    h: &Header,
    from_root: &Hash,
    prev_hash: Option<Hash>,
    last_ms: u64,
    last_about: &mut HashMap<String, u64>,
) -> Result<(), String> {
    if leaf.index != index {
        return Err(format!("says it is leaf {} (a leaf dropped, duplicated or moved)", leaf.index));
    }
    match prev_hash {
        Some(p) if leaf.prev_hash != p => return Err("hash chain broken: prev is not the previous leaf's hash".into()),
        Some(_) => {}
        None if index == 0 => {
            if leaf.prev_hash != [0; 32] {
                return Err("the first leaf's prev is not zero".into());
            }
        }
        None => verify_inclusion(&leaf.prev_hash, index - 1, h.from, &h.prev_proof, from_root)
            .map_err(|e| format!("its prev is not leaf {} of the checkpoint at {}: {e}", index - 1, h.from))?,
    }
    if leaf.time_ms < last_ms {
        return Err(format!("dated {} ms before the leaf before it (back-dated)", last_ms - leaf.time_ms));
    }
    match (&leaf.licence, leaf.licence_prev) {
        (Some(l), back) => {
            let expected = last_about.get(l).copied();
            let fits = match (expected, back) {
                (Some(e), Some(b)) => e == b,
                // Its licence's earlier leaves are all before this bundle.
                (None, Some(b)) => b < h.from,
                (None, None) => true,
                (Some(_), None) => false,
            };
            if !fits {
                return Err(format!(
                    "back-pointer {back:?} of {l} should be {}",
                    expected.map_or(format!("before {}", h.from), |e| e.to_string())
                ));
            }
            last_about.insert(l.clone(), index);
        }
        (None, Some(_)) => return Err("back-pointer without a licence".into()),
        (None, None) => {}
    }
    Ok(())
}

/// Checks the previous checkpoints at `size` against the tree's root there, and forgets them;
/// how many there were. The root is folded only when one is at this size.
fn link(size: u64, tree: &CompactRange, previous: &mut Vec<Checkpoint>) -> Result<usize, AuditError> {
    if !previous.iter().any(|p| p.size == size) {
        return Ok(0);
    }
    let root = tree.root();
    if previous.iter().any(|p| p.size == size && p.root != root) {
        return Err(AuditError::Bundle(format!(
            "the previous checkpoint at size {size} is not this log's tree there (a split view)"
        )));
    }
    let before = previous.len();
    previous.retain(|p| p.size != size);
    Ok(before - previous.len())
}

/// Checks a bundle read from `r` against the log's verifier key: the checkpoints' signatures,
/// the frontier against the checkpoint at `from`, the first leaf's hash chain through an
/// inclusion proof, every leaf (it decodes, says its index, links to the one before, is not
/// older than it, and points back to the last leaf about its licence in the bundle, or to one
/// before it), the tree they make against the checkpoint at `to`, the consistency proof, and
/// that nothing follows. Each `previous` checkpoint (signed by the same key) whose size is in
/// `from..=to` must be the tree at its size. `progress` is called with the leaves done so far and
/// how many there are.
pub fn verify_bundle(
    r: &mut impl Read,
    key: &Verifier,
    previous: &[String],
    mut progress: impl FnMut(u64, u64),
) -> Result<Summary, AuditError> {
    let bundle = |e: String| AuditError::Bundle(e);
    let mut buf = Vec::new();
    next_item(r, &mut buf, MAX_HEADER).map_err(bundle)?.ok_or_else(|| bundle("the file is empty".into()))?;
    let h = Header::decode(&buf).map_err(bundle)?;
    let to_cp = Checkpoint::open(&h.checkpoint_to, key)
        .map_err(|e| bundle(format!("the checkpoint at `to` does not verify under the log key: {e}")))?;
    if to_cp.size < h.to || h.from > h.to || h.origin != to_cp.origin {
        return Err(bundle(format!(
            "the header says leaves {}..{} of {}, its checkpoint is at size {} of {}",
            h.from, h.to, h.origin, to_cp.size, to_cp.origin
        )));
    }
    let signed = to_cp.size;
    let mut tree = CompactRange::from_peaks(h.from, h.frontier.clone())
        .map_err(|e| bundle(format!("the frontier is not a tree of {} leaves: {e}", h.from)))?;
    let from_root = tree.root();
    if let Some(note) = &h.checkpoint_from {
        let cp = Checkpoint::open(note, key)
            .map_err(|e| bundle(format!("the checkpoint at `from` does not verify under the log key: {e}")))?;
        if cp.size != h.from || cp.root != from_root {
            return Err(bundle(format!("the frontier is not the tree of the checkpoint at {}", h.from)));
        }
    }
    // Where no checkpoint was signed at `from`, the frontier is bound by the tree at `to` (every
    // leaf's hash is folded onto it), and that tree by `to_proof`.
    if h.from > 0 && h.from < signed {
        verify_consistency(h.from, signed, &h.consistency, &from_root, &to_cp.root)
            .map_err(|e| bundle(format!("the consistency proof from {} to {signed} fails: {e}", h.from)))?;
    } else if !h.consistency.is_empty() || (h.from == signed && from_root != to_cp.root) {
        return Err(bundle("the consistency proof does not fit the sizes".into()));
    }
    let mut previous: Vec<Checkpoint> = previous
        .iter()
        .map(|note| {
            Checkpoint::open(note, key).map_err(|e| bundle(format!("a previous checkpoint does not verify: {e}")))
        })
        .collect::<Result<_, _>>()?;
    if let Some(p) = previous.iter().find(|p| p.size < h.from || p.size > h.to) {
        // A previous checkpoint must be the tree at its size, which the bundle knows in from..=to.
        return Err(bundle(format!(
            "the previous checkpoint at size {} is outside this bundle ({}..{}): export from it",
            p.size, h.from, h.to
        )));
    }
    let mut summary = Summary { from: h.from, to: h.to, ..Summary::default() };
    summary.previous_linked += link(h.from, &tree, &mut previous)?;

    let mut prev_hash: Option<Hash> = None;
    let mut last_about: HashMap<String, u64> = HashMap::new();
    let mut last_ms = 0u64;
    let mut index = h.from;
    while index < h.to {
        // A chunk of items read in order, then decoded and hashed on every core, then checked
        // in order: decoding is most of the work, and each leaf decodes on its own.
        let mut items = Vec::with_capacity(CHUNK);
        let mut stopped = None;
        let mut bytes = 0usize;
        while items.len() < CHUNK && bytes < CHUNK_BYTES && index + (items.len() as u64) < h.to {
            let at = index + items.len() as u64;
            match next_item(r, &mut buf, MAX_LEAF) {
                Ok(Some(())) => {
                    bytes += buf.len();
                    items.push(std::mem::take(&mut buf));
                }
                Ok(None) => {
                    stopped = Some(AuditError::Leaf {
                        index: at,
                        why: format!("the bundle ends here; it should hold leaves up to {}", h.to - 1),
                    });
                    break;
                }
                Err(why) => {
                    stopped = Some(AuditError::Leaf { index: at, why });
                    break;
                }
            }
        }
        for (decoded, hash) in decode_all(&items) {
            let err = |why: String| AuditError::Leaf { index, why };
            let leaf = decoded.map_err(|e| err(format!("does not decode: {e}")))?;
            check_leaf(&leaf, index, &h, &from_root, prev_hash, last_ms, &mut last_about).map_err(err)?;
            last_ms = leaf.time_ms;
            summary.first_ms.get_or_insert(leaf.time_ms);
            *summary.kinds.entry(leaf.event.kind).or_default() += 1;
            prev_hash = Some(hash);
            tree.append(hash);
            summary.previous_linked += link(index + 1, &tree, &mut previous)?;
            index += 1;
        }
        if let Some(e) = stopped {
            return Err(e);
        }
        progress(index - h.from, h.to - h.from);
    }
    progress(h.to - h.from, h.to - h.from);
    if next_item(r, &mut buf, MAX_HEADER).map_err(bundle)?.is_some() {
        return Err(bundle(format!("something follows leaf {}", h.to.saturating_sub(1))));
    }
    let fits = match h.to {
        _ if h.to == signed => h.to_proof.is_empty() && tree.root() == to_cp.root,
        0 => h.to_proof.is_empty(),
        _ => verify_consistency(h.to, signed, &h.to_proof, &tree.root(), &to_cp.root).is_ok(),
    };
    if !fits {
        return Err(bundle(format!("the leaves do not make the tree of the checkpoint at {signed}")));
    }
    summary.root = to_cp.root;
    summary.signed = signed;
    summary.last_ms = (h.to > h.from).then_some(last_ms);
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::leaf::Event;
    use crate::log::merkle::{consistency_proof, inclusion_proof, Nodes};
    use crate::log::note::{sign_note, verifier_key, NoteSigner};
    use crate::log::test_key::K;

    /// A log made by hand: leaves, every node, and a signer for its checkpoints.
    struct Log {
        key: K,
        leaves: Vec<Vec<u8>>,
        nodes: HashMap<(u32, u64), Hash>,
        tree: CompactRange,
    }

    impl Nodes for Log {
        fn node(&self, level: u32, index: u64) -> Option<Hash> {
            self.nodes.get(&(level, index)).copied()
        }
    }

    impl Log {
        fn new() -> Self {
            let key = K(ed25519_dalek::SigningKey::from_bytes(&[9; 32]));
            Self { key, leaves: Vec::new(), nodes: HashMap::new(), tree: CompactRange::new() }
        }

        fn verifier(&self) -> Verifier {
            Verifier::parse(&verifier_key(self.key.name(), &self.key.public_key())).unwrap()
        }

        /// Appends a leaf about `licence` (back-pointer as given) at `time_ms`.
        fn push(&mut self, licence: Option<&str>, back: Option<u64>, time_ms: u64) {
            let index = self.leaves.len() as u64;
            let prev_hash = self.leaves.last().map_or([0; 32], |l| leaf_hash(l));
            let leaf = Leaf {
                index,
                prev_hash,
                time_ms,
                licence: licence.map(str::to_string),
                licence_prev: back,
                event: Event::new(if licence.is_some() { "licence.status" } else { "holder.queried" }).uint("i", index),
            };
            let bytes = leaf.encode();
            for (level, i, h) in self.tree.append(leaf_hash(&bytes)) {
                self.nodes.insert((level, i), h);
            }
            self.leaves.push(bytes);
        }

        fn checkpoint(&self, size: u64) -> String {
            let root = crate::log::merkle::root_of(
                &self.leaves[..size as usize].iter().map(|l| leaf_hash(l)).collect::<Vec<_>>(),
            );
            sign_note(&Checkpoint { origin: self.key.name().to_string(), size, root }.to_text(), &self.key)
        }

        fn bundle(&self, from: u64, to: u64) -> Vec<u8> {
            self.bundle_with(from, to, to, true)
        }

        /// Leaves `from..to` under the checkpoint at `signed` (≥ `to`), with or without the
        /// checkpoint at `from`.
        fn bundle_with(&self, from: u64, to: u64, signed: u64, with_from: bool) -> Vec<u8> {
            let proof =
                |a: u64, b: u64| if a > 0 && a < b { consistency_proof(self, a, b).unwrap() } else { Vec::new() };
            let header = Header {
                origin: self.key.name().to_string(),
                from,
                to,
                checkpoint_from: (from > 0 && with_from).then(|| self.checkpoint(from)),
                checkpoint_to: self.checkpoint(signed),
                frontier: CompactRange::from_nodes(self, from).unwrap().peaks().to_vec(),
                prev_proof: if from > 0 { inclusion_proof(self, from - 1, from).unwrap() } else { Vec::new() },
                consistency: proof(from, signed),
                to_proof: proof(to, signed),
            };
            let mut out = item(&header.encode());
            for l in &self.leaves[from as usize..to as usize] {
                out.extend_from_slice(&item(l));
            }
            out
        }

        fn verify(&self, bundle: &[u8], previous: &[String]) -> Result<Summary, AuditError> {
            verify_bundle(&mut &bundle[..], &self.verifier(), previous, |_, _| {})
        }
    }

    /// 40 leaves: every third about one of two licences, with their back-pointers.
    fn sample() -> Log {
        let mut log = Log::new();
        let mut last: HashMap<&str, u64> = HashMap::new();
        for i in 0..40u64 {
            let licence = match i % 3 {
                0 => Some("A"),
                1 => Some("B"),
                _ => None,
            };
            let back = licence.and_then(|l| last.get(l).copied());
            if let Some(l) = licence {
                last.insert(l, i);
            }
            log.push(licence, back, 1_000 + i);
        }
        log
    }

    #[test]
    fn whole_and_partial_bundles_verify() {
        let log = sample();
        for (from, to) in [(0, 40), (0, 0), (13, 40), (16, 16), (1, 2), (39, 40)] {
            let s = log.verify(&log.bundle(from, to), &[]).unwrap_or_else(|e| panic!("{from}..{to}: {e}"));
            assert_eq!((s.from, s.to), (from, to));
            assert_eq!(s.kinds.values().sum::<u64>(), to - from);
        }
        // Any range: ends where no checkpoint was signed, bound by a later one.
        for (from, to, signed, with_from) in
            [(5, 17, 40, false), (0, 9, 33, true), (7, 7, 30, false), (3, 40, 40, false)]
        {
            let s = log
                .verify(&log.bundle_with(from, to, signed, with_from), &[])
                .unwrap_or_else(|e| panic!("{from}..{to}: {e}"));
            assert_eq!((s.from, s.to), (from, to));
        }
        // A leaf changed in such a bundle is caught by the proof to the signed tree.
        let mut b = log.bundle_with(5, 17, 40, false);
        let n = b.len();
        b[n - 1] ^= 1;
        fails(&log, &b, &[], "the leaves do not make the tree of the checkpoint at 40");
        // So is a frontier of another tree.
        let mut h = header_of(&log.bundle_with(5, 17, 40, false));
        h.frontier[0][0] ^= 1;
        let rest =
            &log.bundle_with(5, 17, 40, false)[item(&header_of(&log.bundle_with(5, 17, 40, false)).encode()).len()..];
        let b = [item(&h.encode()), rest.to_vec()].concat();
        assert!(log.verify(&b, &[]).is_err());
        let s = log.verify(&log.bundle(13, 40), &[log.checkpoint(13), log.checkpoint(20), log.checkpoint(40)]).unwrap();
        assert_eq!(s.previous_linked, 3);
        assert_eq!((s.first_ms, s.last_ms), (Some(1_013), Some(1_039)));
    }

    /// A bundle's header.
    fn header_of(bundle: &[u8]) -> Header {
        let mut b = Vec::new();
        next_item(&mut &bundle[..], &mut b, MAX_HEADER).unwrap();
        Header::decode(&b).unwrap()
    }

    fn fails(log: &Log, bundle: &[u8], previous: &[String], expect: &str) {
        match log.verify(bundle, previous) {
            Ok(_) => panic!("accepted; expected {expect}"),
            Err(e) => assert!(e.to_string().contains(expect), "{e}\nexpected: {expect}"),
        }
    }

    /// One case for each way a bundle can be tampered with.
    #[test]
    fn every_tampering_is_caught_at_the_first_bad_leaf() {
        let log = sample();
        let good = log.bundle(10, 40);
        let header_len = item(&header_of(&good).encode()).len();
        // Byte offsets of each leaf's item in the bundle.
        let mut starts = vec![header_len];
        for l in &log.leaves[10..40] {
            starts.push(starts.last().unwrap() + item(l).len());
        }
        let leaf_item = |i: u64| starts[(i - 10) as usize]..starts[(i - 10 + 1) as usize];

        // A flipped byte in leaf 20's body: it still decodes, and leaf 21 no longer chains to it.
        let mut b = good.clone();
        let r = leaf_item(20);
        b[r.end - 1] ^= 1;
        fails(&log, &b, &[], "leaf 21: hash chain broken");
        // A flipped byte in the last leaf: the tree no longer matches the checkpoint.
        let mut b = good.clone();
        b[good.len() - 1] ^= 1;
        fails(&log, &b, &[], "the leaves do not make the tree");
        // A flipped byte in a leaf's structure: it does not decode.
        let mut b = good.clone();
        b[leaf_item(25).start + 2] = 0xff;
        fails(&log, &b, &[], "leaf 25: does not decode");
        // A dropped leaf.
        let b = [&good[..leaf_item(30).start], &good[leaf_item(30).end..]].concat();
        fails(&log, &b, &[], "leaf 30: says it is leaf 31");
        // A duplicated leaf.
        let b = [&good[..leaf_item(30).end], &good[leaf_item(30)], &good[leaf_item(30).end..]].concat();
        fails(&log, &b, &[], "leaf 31: says it is leaf 30");
        // Two leaves swapped.
        let b =
            [&good[..leaf_item(30).start], &good[leaf_item(31)], &good[leaf_item(30)], &good[leaf_item(32).start..]]
                .concat();
        fails(&log, &b, &[], "leaf 30: says it is leaf 31");
        // Truncated inside an item, and at an item's end.
        fails(&log, &good[..leaf_item(35).start + 5], &[], "leaf 35: the file ends inside an item");
        fails(&log, &good[..leaf_item(35).start], &[], "leaf 35: the bundle ends here");
        // Something after the last leaf.
        fails(&log, &[&good[..], &item(b"more")].concat(), &[], "something follows leaf 39");
        // The head forged: signed by another key, or naming another size.
        let other = K(ed25519_dalek::SigningKey::from_bytes(&[8; 32]));
        let mut h = header_of(&good);
        let forged_root = [7u8; 32];
        h.checkpoint_to =
            sign_note(&Checkpoint { origin: "test/log".into(), size: 40, root: forged_root }.to_text(), &other);
        let b = [item(&h.encode()), good[header_len..].to_vec()].concat();
        fails(&log, &b, &[], "the checkpoint at `to` does not verify under the log key");
        let mut h2 = header_of(&good);
        h2.to = 39;
        let b = [item(&h2.encode()), good[header_len..].to_vec()].concat();
        fails(&log, &b, &[], "something follows leaf 38");
        // The right bundle under the wrong key.
        let wrong = Verifier::parse(&verifier_key("test/log", &other.public_key())).unwrap();
        let e = verify_bundle(&mut &good[..], &wrong, &[], |_, _| {}).unwrap_err();
        assert!(e.to_string().contains("does not verify under the log key"), "{e}");
        // A previous checkpoint, signed by the log key, of another tree at size 20: a split view.
        let split =
            sign_note(&Checkpoint { origin: "test/log".into(), size: 20, root: forged_root }.to_text(), &log.key);
        fails(&log, &good, &[split], "previous checkpoint at size 20 is not this log's tree");
        fails(&log, &good, &[log.checkpoint(5)], "outside this bundle");
    }

    /// What only an operator holding the log key could write: the chain and tree agree, the
    /// checkpoint is signed, yet a leaf is back-dated or a back-pointer skips a leaf.
    #[test]
    fn back_dating_and_broken_back_pointers_are_caught() {
        let mut log = sample();
        log.push(None, None, 1_020);
        fails(&log, &log.bundle(0, 41), &[], "leaf 40: dated 19 ms before the leaf before it");
        let mut log = sample();
        log.push(Some("A"), Some(3), 2_000);
        fails(&log, &log.bundle(0, 41), &[], "leaf 40: back-pointer Some(3) of A should be 39");
        // Leaf 39 is about A: a bundle from 40 on cannot tell, but a back-pointer into it must
        // point before the bundle.
        let mut log = sample();
        log.push(Some("C"), Some(40), 2_000);
        fails(&log, &log.bundle(40, 41), &[], "leaf 40: back-pointer Some(40) of C should be before 40");
        let mut log = sample();
        log.push(None, Some(3), 2_000);
        fails(&log, &log.bundle(0, 41), &[], "leaf 40: back-pointer without a licence");
    }
}
