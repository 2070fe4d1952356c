//! An in-memory cache of tree nodes in front of the store, for proofs.

use super::merkle::{Hash, Nodes};
use crate::store::{Store, StoredNodes};

/// Tree nodes kept in memory for inclusion and consistency proofs: the ones the sequencer just
/// wrote (receipts against the newest head mostly need those) and the ones proofs read from the
/// store (the upper levels, which every proof needs, stay). Nodes never change once written, so
/// a cached node is always right; the cache is filled only after a successful write or from
/// the store, and bounded (S3-FIFO eviction, `quick_cache`).
pub struct NodeCache {
    map: quick_cache::sync::Cache<(u32, u64), Hash>,
}

impl Default for NodeCache {
    fn default() -> Self {
        Self { map: quick_cache::sync::Cache::new(Self::MAX) }
    }
}

impl NodeCache {
    /// About 40 MiB.
    pub const MAX: usize = 1 << 19;

    pub(super) fn insert_all(&self, nodes: Vec<(u32, u64, Hash)>) {
        for (l, i, h) in nodes {
            self.map.insert((l, i), h);
        }
    }

    #[cfg(test)]
    pub(super) fn snapshot(&self) -> Vec<((u32, u64), Hash)> {
        self.map.iter().collect()
    }
}

/// Perfect-subtree hashes from the cache, else from the store (and then kept).
pub struct CachedNodes<'a> {
    cache: &'a NodeCache,
    store: &'a dyn Store,
}

impl<'a> CachedNodes<'a> {
    pub fn new(cache: &'a NodeCache, store: &'a dyn Store) -> Self {
        Self { cache, store }
    }
}

impl Nodes for CachedNodes<'_> {
    fn node(&self, level: u32, index: u64) -> Option<Hash> {
        if let Some(h) = self.cache.map.get(&(level, index)) {
            return Some(h);
        }
        let h = StoredNodes(self.store).node(level, index)?;
        self.cache.map.insert((level, index), h);
        Some(h)
    }
}
