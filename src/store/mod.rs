//! Storage behind a trait: [`RocksStore`] (embedded default, the only file importing rocksdb) and
//! [`MemoryStore`] (tests, with fault injection). A store offers point reads, prefix scans and one
//! atomic, durable batch write; it knows nothing of licences or logs.

pub mod memory;
pub mod rocks;

pub use memory::MemoryStore;
pub use rocks::RocksStore;

/// Column families. Keys and values are opaque bytes; `spec/formats.md` §4 lists their layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Cf {
    /// leaf index (u64 BE) → leaf CBOR
    Leaves,
    /// level (u8) ‖ index (u64 BE) → SHA-256 of that perfect subtree
    Tree,
    /// licence id → licence record (JSON)
    Licences,
    /// `d/` licence id → COSE_Sign1 bytes; `s/` licence id → its salted disclosures;
    /// `c/` annotated-copy SHA-256 → its usage leaf index
    Docs,
    /// holder commitment (32) ‖ licence id → empty
    Holders,
    /// client id ‖ 0x00 ‖ Idempotency-Key → stored answer (JSON)
    Idempotency,
    /// SHA-256 of a bearer token → client record (JSON)
    Clients,
    /// holder commitment (32) ‖ ¬leaf index (u64 BE) → empty: the holder's usage records,
    /// newest first
    Usage,
    /// status-list entry: list (u32 BE) ‖ index (u32 BE) → the licence's status code (1 byte)
    Status,
    /// listings and the changes feed (spec/formats.md §4): `i/` issuer ‖ index, `t/` issuer ‖
    /// type ‖ index, `a/` index, `n/` type ‖ 0 ‖ number ‖ 0 ‖ index → the licence's summary
    /// (`vault::listing::Listed`); `c/` issuer ‖ index → licence id
    Listing,
    /// named values: `checkpoint`, `size`, `serial`, `catalogue`, `trust`, `keys-leaf`,
    /// `ready-probe`, `pilot/…`, `cat/…` (catalogue-change pointers), `annotation-keys/…`
    Meta,
}

impl Cf {
    pub const ALL: [Cf; 11] = [
        Cf::Leaves,
        Cf::Tree,
        Cf::Licences,
        Cf::Docs,
        Cf::Holders,
        Cf::Idempotency,
        Cf::Clients,
        Cf::Usage,
        Cf::Status,
        Cf::Listing,
        Cf::Meta,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Cf::Leaves => "leaves",
            Cf::Tree => "tree",
            Cf::Licences => "licences",
            Cf::Docs => "docs",
            Cf::Holders => "holders",
            Cf::Idempotency => "idempotency",
            Cf::Clients => "clients",
            Cf::Usage => "usage",
            Cf::Status => "status",
            Cf::Listing => "listing",
            Cf::Meta => "meta",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("storage: {0}")]
    Backend(String),
    #[error("storage write failed (injected fault)")]
    Injected,
    /// The filesystem has less free space than the store keeps in reserve (or none at all): the
    /// write was refused before anything of it was written.
    #[error("storage full: {0}")]
    Full(String),
}

/// Puts applied together, atomically and durably, by [`Store::write`].
#[derive(Debug, Default, Clone)]
pub struct Batch {
    pub puts: Vec<(Cf, Vec<u8>, Vec<u8>)>,
}

impl Batch {
    pub fn put(&mut self, cf: Cf, key: impl Into<Vec<u8>>, value: impl Into<Vec<u8>>) {
        self.puts.push((cf, key.into(), value.into()));
    }

    pub fn len(&self) -> usize {
        self.puts.len()
    }

    pub fn is_empty(&self) -> bool {
        self.puts.is_empty()
    }
}

/// Keys of the index rows derived from leaves (spec/formats.md §4), built here once for the
/// writers in `vault` and for `licvault check` (`log::replay`), which re-derives them.
pub mod keys {
    /// `holders`: holder commitment ‖ licence id.
    pub fn holder(commitment: &[u8], licence: &str) -> Vec<u8> {
        [commitment, licence.as_bytes()].concat()
    }

    /// `usage`: holder commitment ‖ ¬leaf index (u64 BE): a holder's uses, newest first.
    pub fn usage(commitment: &[u8], index: u64) -> Vec<u8> {
        [commitment, &(!index).to_be_bytes()].concat()
    }

    /// `docs`: `s/` ‖ licence id: the salted disclosures of its document (CBOR array of byte
    /// strings; empty for a document in the first format, which has none).
    pub fn disclosures(licence: &str) -> Vec<u8> {
        [b"s/".as_slice(), licence.as_bytes()].concat()
    }

    /// `docs`: `k/` ‖ licence id: its compact document (COSE_Sign1, spec/formats.md §1.3).
    pub fn compact(licence: &str) -> Vec<u8> {
        [b"k/".as_slice(), licence.as_bytes()].concat()
    }

    /// `docs`: `c/` ‖ an annotated copy's SHA-256 (the value is its usage leaf's index).
    pub fn copy(sha256: &[u8]) -> Vec<u8> {
        [b"c/".as_slice(), sha256].concat()
    }

    /// The four kinds of `listing` row that summarise a licence (the prefix of each kind).
    pub const LISTED: [&[u8]; 4] = [b"i/", b"t/", b"a/", b"n/"];

    /// `listing`: `i/` ‖ issuer USCC: a department's licences, then ‖ issuance leaf index.
    pub fn listed_prefix(issuer: &str) -> Vec<u8> {
        [b"i/", issuer.as_bytes()].concat()
    }

    pub fn listed(issuer: &str, index: u64) -> Vec<u8> {
        [listed_prefix(issuer).as_slice(), &index.to_be_bytes()].concat()
    }

    /// `listing`: `t/` ‖ issuer ‖ type code: a department's licences of one type, then ‖ index.
    pub fn listed_type_prefix(issuer: &str, type_code: &str) -> Vec<u8> {
        [b"t/", issuer.as_bytes(), type_code.as_bytes()].concat()
    }

    pub fn listed_type(issuer: &str, type_code: &str, index: u64) -> Vec<u8> {
        [listed_type_prefix(issuer, type_code).as_slice(), &index.to_be_bytes()].concat()
    }

    /// `listing`: `a/` ‖ index: every licence in issue order.
    pub const LISTED_ALL: &[u8] = b"a/";

    pub fn listed_all(index: u64) -> Vec<u8> {
        [LISTED_ALL, &index.to_be_bytes()].concat()
    }

    /// `listing`: `n/` ‖ type code ‖ 0 ‖ the number printed on it ‖ 0, then ‖ index.
    pub fn listed_number_prefix(type_code: &str, number: &str) -> Vec<u8> {
        [b"n/", type_code.as_bytes(), &[0], number.as_bytes(), &[0]].concat()
    }

    pub fn listed_number(type_code: &str, number: &str, index: u64) -> Vec<u8> {
        [listed_number_prefix(type_code, number).as_slice(), &index.to_be_bytes()].concat()
    }

    /// `listing`: `c/` ‖ issuer ‖ leaf index: every leaf that changes a department's licence
    /// (issued, status, superseded), for its changes feed.
    pub fn change(issuer: &str, index: u64) -> Vec<u8> {
        [b"c/", issuer.as_bytes(), &index.to_be_bytes()].concat()
    }

    /// `meta` prefix of the checkpoints kept by size.
    pub const CHECKPOINT: &[u8] = b"cp/";

    /// `meta`: `cp/` ‖ tree size (u64 BE): the checkpoint signed at that size (spec/formats.md
    /// §12).
    pub fn checkpoint(size: u64) -> Vec<u8> {
        [CHECKPOINT, &size.to_be_bytes()].concat()
    }

    /// `meta` prefix of the catalogue-change pointers.
    pub const CATALOGUE_CHANGE: &[u8] = b"cat/";

    /// `meta`: `cat/` ‖ leaf index (u64 BE): a pointer to a catalogue-change leaf.
    pub fn catalogue_change(index: u64) -> Vec<u8> {
        [CATALOGUE_CHANGE, &index.to_be_bytes()].concat()
    }
}

/// A key and its value.
pub type KeyValue = (Vec<u8>, Vec<u8>);

pub trait Store: Send + Sync + 'static {
    fn get(&self, cf: Cf, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError>;
    /// Entries whose key starts with `prefix` and is at least `start`, in key order, at most
    /// `limit` (a page of one holder's rows after a cursor).
    fn scan_prefix_from(&self, cf: Cf, prefix: &[u8], start: &[u8], limit: usize) -> Result<Vec<KeyValue>, StoreError>;
    /// Entries whose key starts with `prefix`, in key order, at most `limit`.
    fn scan_prefix(&self, cf: Cf, prefix: &[u8], limit: usize) -> Result<Vec<KeyValue>, StoreError> {
        self.scan_prefix_from(cf, prefix, prefix, limit)
    }
    /// Entries whose key is at least `start`, in key order, at most `limit`.
    fn scan_from(&self, cf: Cf, start: &[u8], limit: usize) -> Result<Vec<KeyValue>, StoreError> {
        self.scan_prefix_from(cf, b"", start, limit)
    }
    /// Applies every put or none, and returns only once they are on stable storage.
    fn write(&self, batch: Batch) -> Result<(), StoreError>;
    /// Moves what is only in the write-ahead log into the store's files, so that the next open
    /// has nothing to replay (a clean stop).
    fn flush(&self) -> Result<(), StoreError> {
        Ok(())
    }
    /// Bytes held per column family (files and memory), and by the write-ahead log: where a
    /// store's bytes go. Empty for a store that cannot tell.
    fn sizes(&self) -> Vec<(&'static str, u64)> {
        Vec::new()
    }
    /// Bytes the store still means to compact (more than 0 while a compaction runs); `None` for a
    /// store that does not compact.
    fn compacting(&self) -> Option<u64> {
        None
    }
    /// Free bytes on the store's filesystem and the reserve below which writes are refused;
    /// `None` for a store that is not on a filesystem.
    fn free_space(&self) -> Option<FreeSpace> {
        None
    }
}

/// What [`Store::free_space`] reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FreeSpace {
    /// Bytes an unprivileged process may still write on the filesystem.
    pub free: u64,
    /// Writes are refused while `free` is below this.
    pub reserve: u64,
}

pub fn tree_key(level: u32, index: u64) -> [u8; 9] {
    let mut k = [0u8; 9];
    k[0] = level as u8;
    k[1..].copy_from_slice(&index.to_be_bytes());
    k
}

/// The stored leaves with indices in `from..to`, in index order, as `(index, bytes)`, read
/// [`LEAF_PAGE`] at a time, or fewer when fewer are wanted (one scan per page, not one read per
/// leaf). A missing leaf is simply
/// not yielded: callers that need every index check the sequence.
pub fn stored_leaves(store: &dyn Store, from: u64, to: u64) -> StoredLeaves<'_> {
    StoredLeaves { store, next: from, to, page: Vec::new().into_iter(), done: from >= to }
}

/// Leaves read per scan by [`stored_leaves`].
pub const LEAF_PAGE: usize = 10_000;

pub struct StoredLeaves<'a> {
    store: &'a dyn Store,
    next: u64,
    to: u64,
    page: std::vec::IntoIter<KeyValue>,
    done: bool,
}

impl Iterator for StoredLeaves<'_> {
    type Item = Result<(u64, Vec<u8>), StoreError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some((key, bytes)) = self.page.next() {
                let index = u64::from_be_bytes(key.as_slice().try_into().ok()?);
                if index >= self.to {
                    self.done = true;
                    return None;
                }
                self.next = index + 1;
                return Some(Ok((index, bytes)));
            }
            if self.done {
                return None;
            }
            let want = usize::try_from(self.to - self.next).map_or(LEAF_PAGE, |n| n.min(LEAF_PAGE));
            match self.store.scan_from(Cf::Leaves, &self.next.to_be_bytes(), want) {
                Err(e) => {
                    self.done = true;
                    return Some(Err(e));
                }
                Ok(page) => {
                    self.done = page.len() < want;
                    if page.is_empty() {
                        return None;
                    }
                    self.page = page.into_iter();
                }
            }
        }
    }
}

/// Reads perfect-subtree hashes of the stored tree for `log::merkle`.
pub struct StoredNodes<'a>(pub &'a dyn Store);

impl crate::log::merkle::Nodes for StoredNodes<'_> {
    fn node(&self, level: u32, index: u64) -> Option<crate::log::merkle::Hash> {
        self.0.get(Cf::Tree, &tree_key(level, index)).ok().flatten().and_then(|v| v.try_into().ok())
    }
}

#[cfg(test)]
pub(crate) mod contract {
    //! One contract suite, run against every store.
    use super::*;

    pub fn run(store: &dyn Store) {
        assert_eq!(store.get(Cf::Meta, b"missing").unwrap(), None);
        let mut b = Batch::default();
        b.put(Cf::Meta, b"a".to_vec(), b"1".to_vec());
        b.put(Cf::Licences, b"p/1".to_vec(), b"x".to_vec());
        b.put(Cf::Licences, b"p/2".to_vec(), b"y".to_vec());
        b.put(Cf::Licences, b"q/1".to_vec(), b"z".to_vec());
        store.write(b).unwrap();
        assert_eq!(store.get(Cf::Meta, b"a").unwrap().as_deref(), Some(&b"1"[..]));
        assert_eq!(store.get(Cf::Licences, b"a").unwrap(), None, "column families are separate");
        let scan = store.scan_prefix(Cf::Licences, b"p/", 10).unwrap();
        assert_eq!(scan, vec![(b"p/1".to_vec(), b"x".to_vec()), (b"p/2".to_vec(), b"y".to_vec())]);
        assert_eq!(store.scan_prefix(Cf::Licences, b"p/", 1).unwrap().len(), 1);
        let within: Vec<_> =
            store.scan_prefix_from(Cf::Licences, b"p/", b"p/2", 10).unwrap().into_iter().map(|(k, _)| k).collect();
        assert_eq!(within, vec![b"p/2".to_vec()]);
        assert!(store.scan_prefix_from(Cf::Licences, b"p/", b"p/3", 10).unwrap().is_empty());
        let from: Vec<_> = store.scan_from(Cf::Licences, b"p/2", 10).unwrap().into_iter().map(|(k, _)| k).collect();
        assert_eq!(from, vec![b"p/2".to_vec(), b"q/1".to_vec()]);
        assert_eq!(store.scan_from(Cf::Licences, b"p/", 1).unwrap().len(), 1);
        let mut b = Batch::default();
        for i in [0u64, 1, 2, 4] {
            b.put(Cf::Leaves, i.to_be_bytes(), vec![i as u8]);
        }
        store.write(b).unwrap();
        let leaves: Vec<_> = stored_leaves(store, 1, 4).map(Result::unwrap).collect();
        assert_eq!(leaves, vec![(1, vec![1]), (2, vec![2])]);
        let mut b = Batch::default();
        b.put(Cf::Meta, b"a".to_vec(), b"2".to_vec());
        store.write(b).unwrap();
        assert_eq!(store.get(Cf::Meta, b"a").unwrap().as_deref(), Some(&b"2"[..]));
        store.write(Batch::default()).unwrap();
    }
}
