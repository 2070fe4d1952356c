//! `licvault check`: replays the whole stored log offline and re-derives what start-up only
//! samples. Every leaf decodes, carries its own index, links to the one before it (hash chain) and
//! to the previous leaf about the same licence; the leaves hash to the stored tree's leaf nodes;
//! the tree over them has the root of the stored checkpoint; the checkpoint verifies under the log
//! key. The first failure stops the replay and names the leaf.

use std::collections::BTreeMap;

use super::leaf::ChainCheck;
use super::merkle::{leaf_hash, Nodes};
use super::note::{Checkpoint, Verifier};
use crate::store::{keys, Cf, Store, StoredNodes};

/// The state of one licence as its leaves leave it (`licvault check`'s replay, and a mirror's
/// view of a source log: `mirror::Mirror`).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LicenceState {
    /// Index of the newest leaf about it.
    pub last_index: u64,
    /// The status its newest leaf leaves it in (`licence.issued` → valid; others: their `to`).
    pub status: Option<String>,
    /// The document hash of its issuance leaf.
    pub doc_sha256: Option<Vec<u8>>,
    /// Index of its issuance leaf.
    pub issued_index: u64,
    /// The successor its newest leaf names (a `licence.superseded` leaf).
    pub successor: Option<String>,
    /// The kind of that successor, as the leaf says.
    pub successor_kind: Option<String>,
    /// The end of the suspension its newest leaf records.
    pub suspended_until: Option<i64>,
}

impl LicenceState {
    /// Folds in leaf `index`, which is about this licence.
    pub fn apply(&mut self, index: u64, leaf: &super::leaf::Leaf) {
        let ev = &leaf.event;
        self.last_index = index;
        self.successor = None;
        if ev.kind == "licence.issued" {
            self.status = Some("valid".into());
            self.doc_sha256 = ev.get_bytes("doc_sha256").map(<[u8]>::to_vec);
            self.issued_index = index;
        } else if let Some(to) = ev.get_text("to") {
            self.status = Some(to.to_string());
        }
        self.suspended_until = ev.suspended_until();
        self.successor_kind = None;
        if ev.kind == "licence.superseded" {
            self.successor = ev.get_text("successor").map(str::to_string);
            self.successor_kind = ev.get_text("kind").map(str::to_string);
        }
    }
}

/// An order-independent digest of a set of rows: their count and the lane-wise wrapping sum of
/// their SHA-256 (a multiset hash). The rows a log implies and the rows a column family holds can
/// then be compared in constant memory, each in its own order.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RowDigest {
    pub rows: u64,
    sum: [u64; 4],
}

impl RowDigest {
    pub fn add(&mut self, key: &[u8], value: &[u8]) {
        use sha2::Digest;
        let mut h = sha2::Sha256::new();
        h.update((key.len() as u64).to_be_bytes());
        h.update(key);
        h.update(value);
        let d = h.finalize();
        for (lane, chunk) in self.sum.iter_mut().zip(d.chunks(8)) {
            *lane = lane.wrapping_add(u64::from_be_bytes(chunk.try_into().unwrap_or_default()));
        }
        self.rows += 1;
    }
}

/// The index rows the log implies: what `Cf::Holders`, `Cf::Usage`, the `docs` `c/` rows and
/// the `meta` `cat/` pointers must hold, row for row.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IndexDigests {
    pub holders: RowDigest,
    pub usage: RowDigest,
    pub copies: RowDigest,
    pub catalogue: RowDigest,
}

impl IndexDigests {
    fn add_leaf(&mut self, index: u64, leaf: &super::leaf::Leaf) {
        let ev = &leaf.event;
        match ev.kind.as_str() {
            "licence.issued" => {
                let id = leaf.licence.as_deref().unwrap_or_default();
                let holders = ev.get_bytes("holder").into_iter().chain(ev.get_bytes("co_holders"));
                for h in holders.flat_map(|b| b.chunks(32)) {
                    self.holders.add(&keys::holder(h, id), b"");
                }
            }
            "licence.used" | "holder.queried" | "presentation.created" => {
                for h in ev.get_bytes("holders").unwrap_or_default().chunks(32) {
                    self.usage.add(&keys::usage(h, index), b"");
                }
                if let Some(sha) = ev.get_bytes("copy_sha256") {
                    self.copies.add(&keys::copy(sha), &index.to_be_bytes());
                }
            }
            "catalogue.type" | "catalogue.item" => self.catalogue.add(&keys::catalogue_change(index), b""),
            _ => {}
        }
    }
}

/// What a successful replay saw.
#[derive(Debug, Clone, Default)]
pub struct Report {
    pub size: u64,
    /// The root hash of the signed checkpoint the log was replayed against.
    pub root: crate::log::merkle::Hash,
    pub kinds: BTreeMap<String, u64>,
    /// Every licence the log is about, by identifier: the derived views must agree with these.
    pub licences: std::collections::HashMap<String, LicenceState>,
    /// The distinct (log key, commitment key fingerprint) pairs of `log.keys` leaves.
    pub key_records: Vec<(String, Vec<u8>)>,
    /// The index rows the leaves imply.
    pub indexes: IndexDigests,
    /// Unix milliseconds of the first and last leaf.
    pub first_ms: Option<u64>,
    pub last_ms: Option<u64>,
}

/// Replays the log in `store` against `verifier`; `progress(done, total)` is called after every
/// page.
pub fn replay(store: &dyn Store, verifier: &Verifier, mut progress: impl FnMut(u64, u64)) -> Result<Report, String> {
    let note = store
        .get(Cf::Meta, b"checkpoint")
        .map_err(|e| e.to_string())?
        .ok_or("the store holds no checkpoint: it is not a licvault log")?;
    let note = String::from_utf8(note).map_err(|_| "the stored checkpoint is not UTF-8".to_string())?;
    let cp = Checkpoint::open(&note, verifier)
        .map_err(|e| format!("the stored checkpoint does not verify under {}: {e}", verifier.name()))?;
    let mut report = Report { size: cp.size, root: cp.root, ..Report::default() };
    let mut check = ChainCheck::new();
    let nodes = StoredNodes(store);
    let mut next = 0u64;
    progress(0, cp.size);
    for item in crate::store::stored_leaves(store, 0, cp.size) {
        let (index, bytes) = item.map_err(|e| e.to_string())?;
        if index != next {
            return Err(format!("leaf {next} is missing"));
        }
        let leaf = check.push(&bytes).map_err(|e| e.to_string())?;
        if nodes.node(0, next) != Some(leaf_hash(&bytes)) {
            return Err(format!("leaf {next}: does not hash to the stored tree's leaf node"));
        }
        *report.kinds.entry(leaf.event.kind.clone()).or_default() += 1;
        report.indexes.add_leaf(next, &leaf);
        if let Some(id) = &leaf.licence {
            report.licences.entry(id.clone()).or_default().apply(next, &leaf);
        }
        if leaf.event.kind == "log.keys" {
            let k = (
                leaf.event.get_text("log_key").unwrap_or_default().to_string(),
                leaf.event.get_bytes("commitment_key").unwrap_or_default().to_vec(),
            );
            if !report.key_records.contains(&k) {
                report.key_records.push(k);
            }
        }
        report.first_ms.get_or_insert(leaf.time_ms);
        report.last_ms = Some(leaf.time_ms);
        next += 1;
        if next % crate::store::LEAF_PAGE as u64 == 0 {
            progress(next, cp.size);
        }
    }
    if next != cp.size {
        return Err(format!("leaf {next} is missing"));
    }
    progress(next, cp.size);
    let tree = check.tree();
    if tree.size() != cp.size || tree.root() != cp.root {
        return Err(format!("the leaves' tree (size {}) does not have the signed checkpoint's root", tree.size()));
    }
    if report.key_records.len() > 1 {
        return Err(format!("the log records {} different key sets in log.keys leaves", report.key_records.len()));
    }
    if let Some((vkey, _)) = report.key_records.first() {
        if !vkey.starts_with(&format!("{}+", verifier.name())) {
            return Err(format!("the log.keys leaf names the log key {vkey}, not the one given"));
        }
    }
    Ok(report)
}

/// The digests of the index rows `store` holds, to compare with [`Report::indexes`].
/// Adds every row of `cf` under `prefix` to `into`, a page at a time.
pub fn digest_rows(store: &dyn Store, cf: Cf, prefix: &[u8], into: &mut RowDigest) -> Result<(), String> {
    let mut start = prefix.to_vec();
    loop {
        let rows = store.scan_prefix_from(cf, prefix, &start, 4096).map_err(|e| e.to_string())?;
        let n = rows.len();
        for (k, v) in &rows {
            into.add(k, v);
        }
        match rows.last() {
            Some((k, _)) if n == 4096 => start = [k.as_slice(), &[0]].concat(),
            _ => return Ok(()),
        }
    }
}

pub fn stored_indexes(store: &dyn Store) -> Result<IndexDigests, String> {
    let mut d = IndexDigests::default();
    let digest = |cf: Cf, prefix: &[u8], into: &mut RowDigest| digest_rows(store, cf, prefix, into);
    digest(Cf::Holders, b"", &mut d.holders)?;
    digest(Cf::Usage, b"", &mut d.usage)?;
    digest(Cf::Docs, &keys::copy(b""), &mut d.copies)?;
    digest(Cf::Meta, keys::CATALOGUE_CHANGE, &mut d.catalogue)?;
    Ok(d)
}

/// Compares the index rows `store` holds with those the log implies; names the first index that
/// differs.
pub fn compare_indexes(store: &dyn Store, expected: &IndexDigests) -> Result<(), String> {
    let stored = stored_indexes(store)?;
    for (name, want, got) in [
        ("holder index (holders)", expected.holders, stored.holders),
        ("usage index (usage)", expected.usage, stored.usage),
        ("annotated-copy rows (docs c/)", expected.copies, stored.copies),
        ("catalogue-change pointers (meta cat/)", expected.catalogue, stored.catalogue),
    ] {
        if want != got {
            return Err(format!(
                "the {name} differs from what the log implies: {} rows expected, {} stored{}",
                want.rows,
                got.rows,
                if want.rows == got.rows { ", some of them different" } else { "" }
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::leaf::Event;
    use crate::log::note::NoteSigner;
    use crate::log::sequencer::{Sequencer, DEFAULT_TAIL_CHECK};
    use crate::log::test_key::K;
    use crate::store::{Batch, MemoryStore};
    use ed25519_dalek::SigningKey;
    use std::sync::Arc;

    #[tokio::test]
    async fn replay_finds_any_altered_leaf() {
        let store = Arc::new(MemoryStore::new());
        let key = Arc::new(K(SigningKey::from_bytes(&[5; 32])));
        let verifier = Verifier::from_key("test/log", &key.public_key()).unwrap();
        let seq = Sequencer::start(store.clone(), key, DEFAULT_TAIL_CHECK).unwrap();
        for i in 0..30u64 {
            seq.submit(move |tx| {
                tx.append(Event::new(if i % 3 == 0 { "a" } else { "b" }).uint("i", i));
                Ok::<_, String>(())
            })
            .await
            .unwrap()
            .0
            .unwrap();
        }
        seq.close();
        let mut calls = 0;
        let r = replay(store.as_ref(), &verifier, |_, _| calls += 1).unwrap();
        assert_eq!(r.size, 30);
        assert_eq!((r.kinds["a"], r.kinds["b"]), (10, 20));
        assert!(calls >= 2);

        // Leaf 3 of 30 — far outside any start-up tail check — altered.
        let mut b = Batch::default();
        let mut leaf = store.get(Cf::Leaves, &3u64.to_be_bytes()).unwrap().unwrap();
        *leaf.last_mut().unwrap() ^= 1;
        b.put(Cf::Leaves, 3u64.to_be_bytes(), leaf);
        store.write(b).unwrap();
        let e = replay(store.as_ref(), &verifier, |_, _| {}).unwrap_err();
        assert!(e.starts_with("leaf 3:") || e.starts_with("leaf 4:"), "{e}");
    }
}
