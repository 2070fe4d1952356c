//! An in-memory cache of tree nodes in front of the store, for inclusion proofs.

use std::collections::HashMap;
use std::sync::RwLock;

use super::merkle::{Hash, Nodes};
use crate::store::{Store, StoredNodes};

/// Tree nodes the sequencer wrote recently, kept in memory so that receipts (inclusion proofs
/// against the newest head, which mostly need the newest nodes) rarely go to storage. Nodes never
/// change once written, so a cached node is always right; the cache is filled only after a
/// successful write and emptied when it grows past [`NodeCache::MAX`].
#[derive(Default)]
pub struct NodeCache {
    map: RwLock<HashMap<(u32, u64), Hash>>,
}

impl NodeCache {
    /// About 20 MiB.
    pub const MAX: usize = 1 << 18;

    pub(super) fn insert_all(&self, nodes: Vec<(u32, u64, Hash)>) {
        if let Ok(mut m) = self.map.write() {
            if m.len() + nodes.len() > Self::MAX {
                m.clear();
            }
            m.extend(nodes.into_iter().map(|(l, i, h)| ((l, i), h)));
        }
    }

    #[cfg(test)]
    pub(super) fn snapshot(&self) -> Vec<((u32, u64), Hash)> {
        self.map.read().map(|m| m.iter().map(|(k, v)| (*k, *v)).collect()).unwrap_or_default()
    }
}

/// Perfect-subtree hashes from the cache, else from the store.
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
        if let Some(h) = self.cache.map.read().ok().and_then(|m| m.get(&(level, index)).copied()) {
            return Some(h);
        }
        StoredNodes(self.store).node(level, index)
    }
}
