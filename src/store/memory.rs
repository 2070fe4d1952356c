//! In-memory store for tests, with fault injection: make the N-th write from now fail, atomically
//! (nothing of that batch is applied), as a full disk or an I/O error would.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::RwLock;

use super::{Batch, Cf, KeyValue, Store, StoreError};

type Rows = BTreeMap<(Cf, Vec<u8>), Vec<u8>>;

#[derive(Debug, Default)]
pub struct MemoryStore {
    data: RwLock<Rows>,
    /// Writes left before one fails; negative: never.
    fail_in: AtomicI64,
    /// Every write fails, as on a store that turned read-only after a background error.
    read_only: AtomicBool,
}

impl MemoryStore {
    pub fn new() -> Self {
        Self { data: RwLock::default(), fail_in: AtomicI64::new(-1), read_only: AtomicBool::new(false) }
    }

    /// While set, every write fails and applies nothing.
    pub fn set_read_only(&self, on: bool) {
        self.read_only.store(on, Ordering::SeqCst);
    }

    /// The `n`-th write from now (0 = the next one) fails and applies nothing.
    pub fn fail_write(&self, n: i64) {
        self.fail_in.store(n, Ordering::SeqCst);
    }
}

impl Store for MemoryStore {
    fn get(&self, cf: Cf, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        let data = self.data.read().map_err(|_| StoreError::Backend("lock poisoned".into()))?;
        Ok(data.get(&(cf, key.to_vec())).cloned())
    }

    fn scan_prefix_from(&self, cf: Cf, prefix: &[u8], start: &[u8], limit: usize) -> Result<Vec<KeyValue>, StoreError> {
        let data = self.data.read().map_err(|_| StoreError::Backend("lock poisoned".into()))?;
        let start = if start < prefix { prefix } else { start };
        Ok(data
            .range((cf, start.to_vec())..)
            .take_while(|((c, k), _)| *c == cf && k.starts_with(prefix))
            .take(limit)
            .map(|((_, k), v)| (k.clone(), v.clone()))
            .collect())
    }

    fn write(&self, batch: Batch) -> Result<(), StoreError> {
        if self.read_only.load(Ordering::SeqCst) {
            return Err(StoreError::Backend("the store is read-only (injected)".into()));
        }
        let left = self.fail_in.load(Ordering::SeqCst);
        if left >= 0 {
            self.fail_in.store(left - 1, Ordering::SeqCst);
            if left == 0 {
                return Err(StoreError::Injected);
            }
        }
        let mut data = self.data.write().map_err(|_| StoreError::Backend("lock poisoned".into()))?;
        for (cf, k, v) in batch.puts {
            data.insert((cf, k), v);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contract() {
        super::super::contract::run(&MemoryStore::new());
    }

    #[test]
    fn injected_fault_applies_nothing() {
        let s = MemoryStore::new();
        s.fail_write(1);
        let mut b = Batch::default();
        b.put(Cf::Meta, b"a".to_vec(), b"1".to_vec());
        s.write(b.clone()).unwrap();
        let mut b2 = Batch::default();
        b2.put(Cf::Meta, b"b".to_vec(), b"1".to_vec());
        assert!(s.write(b2.clone()).is_err());
        assert_eq!(s.get(Cf::Meta, b"b").unwrap(), None);
        s.write(b2).unwrap();
        assert!(s.get(Cf::Meta, b"b").unwrap().is_some());
    }
}
