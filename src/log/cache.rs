//! An in-memory cache of tree nodes in front of the store, for proofs.

use std::sync::RwLock;

use super::merkle::{Hash, Nodes};
use crate::store::{tree_key, Cf, Store, StoreError, StoredNodes};

/// Tree nodes kept in memory for inclusion and consistency proofs: the ones the sequencer just
/// wrote (receipts against the newest head mostly need those) and the ones proofs read from the
/// store (the upper levels, which every proof needs, stay). Nodes never change once written, so
/// a cached node is always right; the cache is filled only after a successful write or from
/// the store, and bounded (S3-FIFO eviction, `quick_cache`).
///
/// Below it, whole levels of the tree are resident ([`NodeCache::extend_resident`]): from the top
/// down, as many levels as fit in the memory given (`serve --tree-memory`, 1 GiB by default:
/// every level up to about 16 million leaves, 64 bytes a leaf), each a plain array of the
/// hashes in index order. A proof of a random leaf then reads from the store only the levels
/// that did not fit (none up to that size) instead of one node per level: at 3,000,000 leaves
/// proofs ran at 0.28 of their rate at 10,000, most of the difference being tree nodes read
/// from RocksDB, and with every level but the leaves' resident, at 0.52 at 1,000,000 for the one
/// node still read.
pub struct NodeCache {
    map: quick_cache::sync::Cache<(u32, u64), Hash>,
    resident: RwLock<Resident>,
    budget: std::sync::atomic::AtomicU64,
}

/// Whole levels `from..` of the tree, as far as the store held them when last extended.
#[derive(Default)]
struct Resident {
    from: u32,
    levels: Vec<Level>,
}

/// One level's hashes in index order, in chunks of [`CHUNK`] allocated whole: the level grows
/// without ever copying what it holds (a growing `Vec` would double its memory while it moves,
/// under the lock proofs wait on).
#[derive(Default)]
struct Level {
    /// Each made with room for exactly `CHUNK` (pages the system maps only once written).
    chunks: Vec<Vec<Hash>>,
    len: u64,
}

const CHUNK: usize = 1 << 16;

impl Level {
    fn get(&self, index: u64) -> Option<Hash> {
        if index >= self.len {
            return None;
        }
        let index = usize::try_from(index).ok()?;
        self.chunks.get(index / CHUNK)?.get(index % CHUNK).copied()
    }

    fn push(&mut self, h: Hash) {
        match self.chunks.last_mut() {
            Some(c) if c.len() < CHUNK => c.push(h),
            _ => {
                let mut c = Vec::with_capacity(CHUNK);
                c.push(h);
                self.chunks.push(c);
            }
        }
        self.len += 1;
    }
}

impl Default for NodeCache {
    fn default() -> Self {
        Self {
            map: quick_cache::sync::Cache::new(Self::MAX),
            resident: RwLock::default(),
            budget: Self::RESIDENT_BYTES.into(),
        }
    }
}

/// Rows read from the store per scan while extending the resident levels.
const RESIDENT_SCAN: usize = 1 << 16;

impl NodeCache {
    /// About 40 MiB.
    pub const MAX: usize = 1 << 19;

    /// Memory for the resident levels by default: 1 GiB, every level of a tree of 16 million
    /// leaves.
    pub const RESIDENT_BYTES: u64 = 1 << 30;

    /// The memory the resident levels may take (from the next extension on; 0: none).
    pub fn set_budget(&self, bytes: u64) {
        self.budget.store(bytes, std::sync::atomic::Ordering::Relaxed);
    }

    /// The lowest level kept resident in a tree of `size` leaves: the lowest whose levels up to
    /// the top fit in `budget` bytes (64: none).
    fn resident_from(size: u64, budget: u64) -> u32 {
        let bytes_from = |from: u32| (from..64).fold(0u64, |b, l| b.saturating_add((size >> l).saturating_mul(32)));
        (0..64).find(|&l| bytes_from(l) <= budget && size >> l > 0).unwrap_or(64)
    }

    /// Nodes held in the resident levels.
    pub fn resident_nodes(&self) -> u64 {
        let r = self.resident.read().unwrap_or_else(|p| p.into_inner());
        r.levels.iter().map(|v| v.len).sum()
    }

    fn resident(&self, level: u32, index: u64) -> Option<Hash> {
        let r = self.resident.read().unwrap_or_else(|p| p.into_inner());
        let at = level.checked_sub(r.from)?;
        r.levels.get(at as usize)?.get(index)
    }

    /// Brings the resident levels up to what the store holds for a tree of `size` leaves, reading
    /// only the nodes they do not have yet (in level order, a scan of up to 65,536 rows at a
    /// time; none once caught up). One caller at a time (the sequencer's loader thread); proofs
    /// read meanwhile. When the tree outgrows the memory, the lowest level is dropped. `stop`
    /// is asked between scans. The number of nodes added.
    pub fn extend_resident(&self, store: &dyn Store, size: u64, stop: impl Fn() -> bool) -> Result<u64, StoreError> {
        let from = Self::resident_from(size, self.budget.load(std::sync::atomic::Ordering::Relaxed));
        {
            let mut r = self.resident.write().unwrap_or_else(|p| p.into_inner());
            if r.from != from {
                let drop = (from.saturating_sub(r.from) as usize).min(r.levels.len());
                if from < r.from {
                    r.levels.clear();
                } else {
                    r.levels.drain(..drop);
                }
                r.from = from;
            }
        }
        let mut added = 0;
        let top = 63 - size.max(1).leading_zeros();
        for level in from..=top {
            let slot = (level - from) as usize;
            loop {
                if stop() {
                    return Ok(added);
                }
                let have = {
                    let r = self.resident.read().unwrap_or_else(|p| p.into_inner());
                    r.levels.get(slot).map_or(0, |v| v.len)
                };
                let want = size >> level;
                if have >= want {
                    break;
                }
                let rows =
                    store.scan_from(Cf::Tree, &tree_key(level, have), RESIDENT_SCAN.min((want - have) as usize))?;
                let mut fresh = Vec::with_capacity(rows.len());
                for (key, value) in &rows {
                    let expected = tree_key(level, have + fresh.len() as u64);
                    if key.as_slice() != expected {
                        break; // the next level's first node (or a gap, which a later pass retries)
                    }
                    let Ok(hash) = <Hash>::try_from(value.as_slice()) else {
                        tracing::warn!(level, index = have + fresh.len() as u64, "a stored tree node is not 32 bytes");
                        break;
                    };
                    fresh.push(hash);
                }
                if fresh.is_empty() {
                    break; // not stored yet (the checkpoint is ahead of nothing): next time
                }
                let n = fresh.len();
                let mut r = self.resident.write().unwrap_or_else(|p| p.into_inner());
                while r.levels.len() <= slot {
                    r.levels.push(Level::default());
                }
                let v = &mut r.levels[slot];
                fresh.into_iter().for_each(|h| v.push(h));
                added += n as u64;
                if n < RESIDENT_SCAN {
                    break;
                }
            }
        }
        Ok(added)
    }

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
        if let Some(h) = self.cache.resident(level, index) {
            return Some(h);
        }
        if let Some(h) = self.cache.map.get(&(level, index)) {
            return Some(h);
        }
        let h = StoredNodes(self.store).node(level, index)?;
        self.cache.map.insert((level, index), h);
        Some(h)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::merkle::{inclusion_proof, leaf_hash, CompactRange};
    use crate::store::{Batch, MemoryStore};

    fn grow(store: &MemoryStore, tree: &mut CompactRange, to: u64) {
        let mut b = Batch::default();
        while tree.size() < to {
            for (level, index, h) in tree.append(leaf_hash(&tree.size().to_be_bytes())) {
                b.put(Cf::Tree, tree_key(level, index).to_vec(), h.to_vec());
            }
        }
        store.write(b).unwrap();
    }

    /// The resident levels hold exactly the stored nodes of levels 1 and up as the tree grows
    /// (extended in uneven steps, scans longer than one), and proofs through them are the
    /// store's.
    #[test]
    fn resident_levels_follow_the_store() {
        let store = MemoryStore::new();
        let cache = NodeCache::default();
        let mut tree = CompactRange::new();
        for size in [1u64, 2, 3, 7, 64, 65, 1000, 70_000, 140_001] {
            grow(&store, &mut tree, size);
            cache.extend_resident(&store, size, || false).unwrap();
            assert_eq!(cache.extend_resident(&store, size, || false).unwrap(), 0, "caught up at {size}");
            for level in 0..20u32 {
                for index in [0, 1, (size >> level) / 2, (size >> level).saturating_sub(1), size >> level] {
                    let stored = StoredNodes(&store).node(level, index);
                    let resident = cache.resident(level, index);
                    assert_eq!(resident, stored, "level {level} index {index} at size {size}");
                }
            }
            let nodes = CachedNodes::new(&cache, &store);
            for index in [0, size / 3, size - 1] {
                assert_eq!(
                    inclusion_proof(&nodes, index, size).unwrap(),
                    inclusion_proof(&StoredNodes(&store), index, size).unwrap()
                );
            }
        }
        // Less memory: the lowest levels go, and proofs read them from the store again.
        let size = tree.size();
        cache.set_budget(size / 4 * 32 * 2);
        cache.extend_resident(&store, size, || false).unwrap();
        assert_eq!((cache.resident(0, 5), cache.resident(1, 5)), (None, None));
        assert_eq!(cache.resident(2, 5), StoredNodes(&store).node(2, 5));
        let nodes = CachedNodes::new(&cache, &store);
        assert_eq!(
            inclusion_proof(&nodes, 77, size).unwrap(),
            inclusion_proof(&StoredNodes(&store), 77, size).unwrap()
        );
        // Stopped at once: nothing read.
        let fresh = NodeCache::default();
        assert_eq!(fresh.extend_resident(&store, size, || true).unwrap(), 0);
    }

    #[test]
    fn resident_levels_fit_the_memory() {
        let budget = NodeCache::RESIDENT_BYTES;
        assert_eq!(NodeCache::resident_from(1, budget), 0);
        assert_eq!(NodeCache::resident_from(10_000_000, budget), 0);
        // 40 M leaves: every level would take 2.56 GB, levels 1 and up 1.28 GB, 2 and up 640 MB.
        // (Memory is in whole chunks of 65,536 hashes, 2 MiB, per level: at most 2 MiB over.)
        assert_eq!(NodeCache::resident_from(40_000_000, budget), 2);
        assert_eq!(NodeCache::resident_from(40_000_000, 0), 64);
        for size in [1u64 << 20, 1 << 30, u64::MAX >> 1] {
            let from = NodeCache::resident_from(size, budget);
            let bytes = (from..64).fold(0u64, |b, l| b.saturating_add((size >> l).saturating_mul(32)));
            assert!(bytes <= NodeCache::RESIDENT_BYTES, "{size}: from {from}");
        }
    }
}
