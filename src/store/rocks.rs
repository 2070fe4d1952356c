//! The embedded RocksDB store: one column family per [`Cf`], every batch written with
//! `WriteOptions::set_sync(true)` so that a write returns only once it is durable. The only file
//! that imports `rocksdb`.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use rocksdb::{ColumnFamilyDescriptor, Direction, IteratorMode, Options, ReadOptions, WriteBatch, WriteOptions, DB};

use super::{Batch, Cf, FreeSpace, KeyValue, Store, StoreError};

pub struct RocksStore {
    db: DB,
    /// Opened by `open_read_only`: a column family the store does not have yet (made by an
    /// older version) reads as empty instead of failing.
    read_only: bool,
    /// Free bytes on the filesystem below which [`Store::write`] refuses (`set_reserve`).
    reserve: AtomicU64,
    /// Holders' index rows, remembered whole (see [`HolderRows`]).
    holder_rows: HolderRows,
}

/// Most rows of one holder's index that [`HolderRows`] remembers: a holder with more is read
/// from RocksDB every time.
const REMEMBERED_ROWS: usize = 32;

/// Bytes of holder index rows remembered, all holders together.
const HOLDER_ROWS_BYTES: u64 = 16 << 20;

/// One holder's rows of `holders` (the holder index), remembered whole, by their 32-byte prefix.
///
/// A scan of one holder's rows is the first read of every one-number lookup, one-window check and
/// wallet read, and RocksDB's cost for it is mostly making the iterator (a merge of the memtables
/// and of every level-0 file), not reading the rows: under wrk on lookups, 7.7 % of the server's
/// CPU. The rows only change through [`Store::write`] of this store, so the cache is kept exact
/// there: a write that adds rows to a holder's index forgets that holder, after RocksDB has made
/// the write visible and before the write returns. A scan that read the rows before such a write
/// could still remember what it read after the write forgot it; `epoch` prevents that: a scan
/// remembers its rows only if no write forgot anything since the scan began, checked under
/// `gate` (held for reading by scans that remember, for writing by writes that forget), so no
/// write's forgetting falls between that check and the remembering.
struct HolderRows {
    rows: quick_cache::sync::Cache<[u8; HOLDER_PREFIX], Arc<[KeyValue]>, RowsWeight>,
    epoch: AtomicU64,
    gate: RwLock<()>,
}

#[derive(Clone)]
struct RowsWeight;

impl quick_cache::Weighter<[u8; HOLDER_PREFIX], Arc<[KeyValue]>> for RowsWeight {
    fn weight(&self, _: &[u8; HOLDER_PREFIX], rows: &Arc<[KeyValue]>) -> u64 {
        // What the allocations take: the rows' bytes, a vector entry and allocator slack a row,
        // and for the entry itself (the key, the `Arc`, the cache's slot) about 128 bytes, also
        // for a holder with no rows (a lookup of a number that holds nothing is remembered too).
        rows.iter().map(|(k, v)| (k.len() + v.len() + 64) as u64).sum::<u64>() + 128
    }
}

impl HolderRows {
    fn new() -> Self {
        let estimated = (HOLDER_ROWS_BYTES / 256) as usize;
        Self {
            rows: quick_cache::sync::Cache::with_weighter(estimated, HOLDER_ROWS_BYTES, RowsWeight),
            epoch: AtomicU64::new(0),
            gate: RwLock::new(()),
        }
    }

    /// Forgets `holders`, whose index rows a write changed. Called once the write is visible.
    fn forget(&self, holders: &[[u8; HOLDER_PREFIX]]) {
        if holders.is_empty() {
            return;
        }
        let _w = self.gate.write().unwrap_or_else(|p| p.into_inner());
        self.epoch.fetch_add(1, Ordering::SeqCst);
        for h in holders {
            self.rows.remove(h);
        }
    }

    /// Remembers `rows`, read whole for `holder` by a scan that began at `epoch`, unless a write
    /// forgot holders since.
    fn remember(&self, holder: [u8; HOLDER_PREFIX], rows: Arc<[KeyValue]>, epoch: u64) {
        let _r = self.gate.read().unwrap_or_else(|p| p.into_inner());
        if self.epoch.load(Ordering::SeqCst) == epoch {
            self.rows.insert(holder, rows);
        }
    }
}

/// The rows of `rows` (one holder's, in key order) from `start`, at most `limit`.
fn rows_from(rows: &[KeyValue], start: &[u8], limit: usize) -> Vec<KeyValue> {
    let first = rows.partition_point(|(k, _)| k.as_slice() < start);
    rows[first..].iter().take(limit).cloned().collect()
}

/// Every RocksDB error, "No space left on device" included, is a backend error: a write that
/// RocksDB itself failed may have landed in part of its files, so only the refusal made before
/// writing ([`Store::write`]'s reserve check) is [`StoreError::Full`], which promises that
/// nothing was written.
fn backend(e: rocksdb::Error) -> StoreError {
    StoreError::Backend(e.into_string())
}

/// Bytes of data blocks kept in memory, for all column families together: the upper tree nodes,
/// recent leaves and records of a city's log stay in it (`make bench-audit` reads a million-leaf
/// tree at random through it).
const BLOCK_CACHE: usize = 256 << 20;

/// The write-ahead logs kept at most: past this, RocksDB flushes the column families whose
/// memtables hold the oldest log, so that a restart after a crash replays at most this much
/// (a clean stop flushes everything: [`Store::flush`]).
const MAX_WAL: u64 = 64 << 20;

/// A clean stop compacts a store whose tables are smaller than this (a few seconds at most).
const COMPACT_AT_CLOSE: u64 = 256 << 20;

/// A scan of more rows than this is a bulk read (an export, `licvault check`, a status list):
/// it reads through without filling the block cache, so that it does not evict the blocks
/// that point reads and page reads keep hot.
const BULK_SCAN: usize = 1024;

/// Rows of `holders` and `usage` begin with a holder's 32-byte commitment, and every read of them
/// but a bulk one is a scan of one holder's rows. Their tables keep a bloom filter of these
/// prefixes, so a seek looks only in the files that hold the holder (at 10 M licences a seek
/// otherwise reads a block in every level).
const HOLDER_PREFIX: usize = 32;

fn holder_keyed(cf: Cf) -> bool {
    matches!(cf, Cf::Holders | Cf::Usage)
}

/// The least key greater than every key that starts with `prefix` (`None`: there is none).
fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < u8::MAX {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}

impl RocksStore {
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let mut opts = Options::default();
        opts.create_if_missing(true);
        opts.create_missing_column_families(true);
        // The log is append-only and read by point lookups: keep blocks cached (one cache for
        // every column family, instead of RocksDB's default of 8 MiB each) and let RocksDB use
        // both cores for flushes and compactions.
        opts.increase_parallelism(2);
        opts.set_max_total_wal_size(MAX_WAL);
        // RocksDB's own diagnostic log (LOG, LOG.old.*) lives in the data directory: a few
        // files of at most 16 MiB, not one per start for ever.
        opts.set_keep_log_file_num(3);
        opts.set_max_log_file_size(16 << 20);
        let cache = rocksdb::Cache::new_lru_cache(BLOCK_CACHE);
        let mut table = rocksdb::BlockBasedOptions::default();
        table.set_block_cache(&cache);
        // Point reads (records, documents, tree nodes) skip every file whose filter says the key
        // is not there: freshly flushed files overlap, and a read would otherwise look in each.
        table.set_bloom_filter(10.0, false);
        let mut cf_opts = Options::default();
        cf_opts.set_block_based_table_factory(&table);
        // LZ4 where data is still being compacted (cheap to write and read), ZSTD for the
        // bottom level, where most of the bytes end up and stay (Debian's RocksDB has both).
        // Tree nodes are SHA-256 hashes, which no compressor shrinks: they are stored as they
        // are, and a proof's reads decompress nothing.
        cf_opts.set_compression_type(rocksdb::DBCompressionType::Lz4);
        cf_opts.set_bottommost_compression_type(rocksdb::DBCompressionType::Zstd);
        let mut tree_opts = cf_opts.clone();
        tree_opts.set_compression_type(rocksdb::DBCompressionType::None);
        tree_opts.set_bottommost_compression_type(rocksdb::DBCompressionType::None);
        let mut holder_opts = cf_opts.clone();
        holder_opts.set_prefix_extractor(rocksdb::SliceTransform::create_fixed_prefix(HOLDER_PREFIX));
        holder_opts.set_memtable_prefix_bloom_ratio(0.1);
        // Licence rows are looked up by whole key, most often for ids that are not there yet (a
        // new licence, a mirror's first leaf about one): a bloom filter over the memtable's keys
        // answers those without a walk through its skip list.
        let mut licence_opts = cf_opts.clone();
        licence_opts.set_memtable_whole_key_filtering(true);
        licence_opts.set_memtable_prefix_bloom_ratio(0.1);
        let cfs = Cf::ALL.iter().map(|cf| {
            let opts = match cf {
                Cf::Tree => tree_opts.clone(),
                Cf::Licences => licence_opts.clone(),
                cf if holder_keyed(*cf) => holder_opts.clone(),
                _ => cf_opts.clone(),
            };
            ColumnFamilyDescriptor::new(cf.name(), opts)
        });
        let db = DB::open_cf_descriptors(&opts, path, cfs).map_err(backend)?;
        Ok(Self { db, read_only: false, reserve: AtomicU64::new(0), holder_rows: HolderRows::new() })
    }

    /// Refuse every write, before any of it is written, while the filesystem holding the store
    /// has fewer than `bytes` free (`serve --min-free-space`; 0, the default of `open`, checks
    /// nothing). RocksDB must never meet a full disk itself: Debian's build stops the process
    /// with a failed assertion when a write-ahead log write runs out of space (seen on 7.8.3),
    /// and flushes and compactions need room to finish what was acknowledged. The reserve keeps
    /// that room; writes resume by themselves once space is freed.
    pub fn set_reserve(&self, bytes: u64) {
        self.reserve.store(bytes, Ordering::Relaxed);
    }

    fn free_bytes(&self) -> Result<u64, StoreError> {
        let st = rustix::fs::statvfs(self.db.path())
            .map_err(|e| StoreError::Backend(format!("statvfs {}: {e}", self.db.path().display())))?;
        Ok(st.f_bavail.saturating_mul(st.f_frsize))
    }

    /// Creates a store at `path`, which must not hold one yet.
    fn open_new(path: &Path) -> Result<Self, StoreError> {
        if path.join("CURRENT").exists() {
            return Err(StoreError::Backend(format!("{} holds a store already", path.display())));
        }
        Self::open(path)
    }

    /// Opens an existing store for reading only (`licvault check`): nothing is written, not even
    /// a replay of the write-ahead log into new files.
    pub fn open_read_only(path: &Path) -> Result<Self, StoreError> {
        let opts = Options::default();
        let existing = DB::list_cf(&opts, path).map_err(backend)?;
        let cfs = Cf::ALL
            .iter()
            .filter(|cf| existing.iter().any(|e| e == cf.name()))
            .map(|cf| ColumnFamilyDescriptor::new(cf.name(), Options::default()));
        let db = DB::open_cf_descriptors_read_only(&opts, path, cfs, false).map_err(backend)?;
        Ok(Self { db, read_only: true, reserve: AtomicU64::new(0), holder_rows: HolderRows::new() })
    }

    fn cf(&self, cf: Cf) -> Result<&rocksdb::ColumnFamily, StoreError> {
        self.db.cf_handle(cf.name()).ok_or_else(|| StoreError::Backend(format!("column family {} missing", cf.name())))
    }

    /// Rows of `cf` that start with `prefix`, from `start`, at most `limit`, read from RocksDB.
    fn scan(&self, cf: Cf, prefix: &[u8], start: &[u8], limit: usize) -> Result<Vec<KeyValue>, StoreError> {
        let mut out = Vec::new();
        let Some(h) = self.cf_to_read(cf)? else { return Ok(out) };
        let start = if start < prefix { prefix } else { start };
        let mut ro = ReadOptions::default();
        ro.fill_cache(limit <= BULK_SCAN);
        // The scan ends where the prefix does: RocksDB stops there instead of reading on into the
        // next block, and skips files that begin after it.
        if let Some(end) = prefix_end(prefix) {
            ro.set_iterate_upper_bound(end);
        }
        if holder_keyed(cf) {
            if prefix.len() >= HOLDER_PREFIX {
                ro.set_prefix_same_as_start(true);
            } else {
                // A scan across holders (`licvault check`) must not use the prefix filter.
                ro.set_total_order_seek(true);
            }
        }
        for item in self.db.iterator_cf_opt(h, ro, IteratorMode::From(start, Direction::Forward)) {
            if out.len() >= limit {
                break;
            }
            let (k, v) = item.map_err(backend)?;
            if !k.starts_with(prefix) {
                break;
            }
            out.push((k.to_vec(), v.to_vec()));
        }
        Ok(out)
    }

    /// One holder's index rows from `start`, at most `limit`: from [`HolderRows`], else read
    /// (and remembered when there are at most [`REMEMBERED_ROWS`]).
    fn scan_holder(
        &self,
        holder: [u8; HOLDER_PREFIX],
        start: &[u8],
        limit: usize,
    ) -> Result<Vec<KeyValue>, StoreError> {
        if let Some(rows) = self.holder_rows.rows.get(&holder) {
            return Ok(rows_from(&rows, start, limit));
        }
        let epoch = self.holder_rows.epoch.load(Ordering::SeqCst);
        let rows = self.scan(Cf::Holders, &holder, &holder, REMEMBERED_ROWS + 1)?;
        if rows.len() > REMEMBERED_ROWS {
            // Too many to remember: the rows read answer a page within them (the first page of
            // a holder with many licences costs one iterator, as before); a later page is read.
            let page = rows_from(&rows, start, limit);
            if page.len() == limit {
                return Ok(page);
            }
            return self.scan(Cf::Holders, &holder, start, limit);
        }
        let rows: Arc<[KeyValue]> = rows.into();
        let out = rows_from(&rows, start, limit);
        self.holder_rows.remember(holder, rows, epoch);
        Ok(out)
    }

    /// The column family, or `None` for one a read-only store does not have yet.
    fn cf_to_read(&self, cf: Cf) -> Result<Option<&rocksdb::ColumnFamily>, StoreError> {
        match self.db.cf_handle(cf.name()) {
            Some(h) => Ok(Some(h)),
            None if self.read_only => Ok(None),
            None => self.cf(cf).map(Some),
        }
    }
}

/// What [`copy_store`] copied.
#[derive(Debug, Default, Clone, Copy)]
pub struct CopyStats {
    pub rows: u64,
    pub bytes: u64,
}

/// Rows a copy writes at a time.
const COPY_BATCH_BYTES: usize = 4 << 20;

/// Copies every row of the store at `src` into a new store at `out` (which must not exist):
/// `licvault backup` while the server runs, and `licvault restore`.
///
/// `src` is opened read-only, which takes no lock, so the server keeps writing. The copy is of
/// one point in time: a read-only instance sees the table files the manifest names and replays
/// the write-ahead logs after them up to their last whole batch, and every licvault batch (leaves,
/// tree, checkpoint and derived rows together) is atomic in the log. Every table file is opened
/// at once (`max_open_files = -1`), so a compaction that deletes one meanwhile cannot take it
/// away; if a flush removes a log between reading the manifest and opening the log, the open
/// fails and is tried again. `out` is written without its own write-ahead log and flushed at the
/// end: it is whole only once this returns `Ok`.
pub fn copy_store(src: &Path, out: &Path, mut progress: impl FnMut(CopyStats)) -> Result<CopyStats, StoreError> {
    let mut opts = Options::default();
    opts.set_max_open_files(-1);
    let existing = DB::list_cf(&opts, src).map_err(backend)?;
    let names: Vec<&str> = Cf::ALL.iter().map(|c| c.name()).filter(|n| existing.iter().any(|e| e == n)).collect();
    let mut tries = 0;
    let from = loop {
        let cfs = names.iter().map(|n| ColumnFamilyDescriptor::new(*n, Options::default()));
        match DB::open_cf_descriptors_read_only(&opts, src, cfs, false) {
            Ok(db) => break db,
            Err(_) if tries < 5 => {
                tries += 1;
                std::thread::sleep(std::time::Duration::from_millis(50 << tries));
            }
            Err(e) => return Err(backend(e)),
        }
    };
    let to = RocksStore::open_new(out)?;
    let mut stats = CopyStats::default();
    let mut wo = WriteOptions::default();
    wo.disable_wal(true);
    for name in names {
        let (src_cf, out_cf) = (
            from.cf_handle(name).ok_or_else(|| StoreError::Backend(format!("column family {name} missing")))?,
            to.db.cf_handle(name).ok_or_else(|| StoreError::Backend(format!("column family {name} missing")))?,
        );
        let mut ro = ReadOptions::default();
        ro.fill_cache(false);
        let mut wb = WriteBatch::default();
        for item in from.iterator_cf_opt(src_cf, ro, IteratorMode::Start) {
            let (k, v) = item.map_err(backend)?;
            stats.rows += 1;
            stats.bytes += (k.len() + v.len()) as u64;
            wb.put_cf(out_cf, &k, &v);
            if wb.size_in_bytes() >= COPY_BATCH_BYTES {
                to.db.write_opt(std::mem::take(&mut wb), &wo).map_err(backend)?;
                progress(stats);
            }
        }
        to.db.write_opt(wb, &wo).map_err(backend)?;
        progress(stats);
        to.db.flush_cf(out_cf).map_err(backend)?;
    }
    Ok(stats)
}

impl Store for RocksStore {
    fn get(&self, cf: Cf, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        let Some(h) = self.cf_to_read(cf)? else { return Ok(None) };
        self.db.get_cf(h, key).map_err(backend)
    }

    fn scan_prefix_from(&self, cf: Cf, prefix: &[u8], start: &[u8], limit: usize) -> Result<Vec<KeyValue>, StoreError> {
        match <[u8; HOLDER_PREFIX]>::try_from(prefix) {
            Ok(holder) if cf == Cf::Holders => self.scan_holder(holder, start, limit),
            _ => self.scan(cf, prefix, start, limit),
        }
    }

    fn flush(&self) -> Result<(), StoreError> {
        if self.read_only {
            return Ok(());
        }
        for cf in Cf::ALL {
            self.db.flush_cf(self.cf(cf)?).map_err(backend)?;
        }
        // A small store has its rows in the level-0 files flushes make (LZ4, one block per few
        // rows): compacting it to the bottom level (ZSTD) takes a moment and about a third off
        // its size on disk. A large one has most of its bytes there already.
        let tables: u64 = self.sizes().iter().filter(|(n, _)| *n != "write-ahead log").map(|(_, b)| b).sum();
        if tables < COMPACT_AT_CLOSE {
            let started = std::time::Instant::now();
            for cf in Cf::ALL {
                self.db.compact_range_cf(self.cf(cf)?, None::<&[u8]>, None::<&[u8]>);
            }
            tracing::info!(bytes = tables, seconds = started.elapsed().as_secs_f64(), "compacted the store at close");
        }
        Ok(())
    }

    fn sizes(&self) -> Vec<(&'static str, u64)> {
        let mut out: Vec<(&'static str, u64)> = Cf::ALL
            .iter()
            .filter_map(|cf| {
                let h = self.db.cf_handle(cf.name())?;
                let sst = self.db.property_int_value_cf(h, "rocksdb.total-sst-files-size").ok().flatten()?;
                let mem = self.db.property_int_value_cf(h, "rocksdb.size-all-mem-tables").ok().flatten().unwrap_or(0);
                Some((cf.name(), sst + mem))
            })
            .collect();
        let wal = std::fs::read_dir(self.db.path())
            .into_iter()
            .flatten()
            .flatten()
            .filter(|e| e.path().extension().is_some_and(|x| x == "log"))
            .filter_map(|e| e.metadata().ok())
            .map(|m| m.len())
            .sum();
        out.push(("write-ahead log", wal));
        out
    }

    fn compacting(&self) -> Option<u64> {
        let running = self.db.property_int_value("rocksdb.num-running-compactions").ok().flatten()?;
        // Pending bytes are per column family.
        let pending: u64 = Cf::ALL
            .iter()
            .filter_map(|cf| self.db.cf_handle(cf.name()))
            .filter_map(|h| {
                self.db.property_int_value_cf(h, "rocksdb.estimate-pending-compaction-bytes").ok().flatten()
            })
            .sum();
        Some(if running > 0 { pending.max(1) } else { pending })
    }

    fn free_space(&self) -> Option<FreeSpace> {
        Some(FreeSpace { free: self.free_bytes().ok()?, reserve: self.reserve.load(Ordering::Relaxed) })
    }

    fn write(&self, batch: Batch) -> Result<(), StoreError> {
        let reserve = self.reserve.load(Ordering::Relaxed);
        if reserve > 0 {
            let free = self.free_bytes()?;
            // Near the edge, the output of the compactions RocksDB still has to run needs room
            // as well (read only then: it asks every column family).
            let pending = if free < reserve.saturating_mul(4) { self.compacting().unwrap_or(0) } else { 0 };
            if free < reserve.saturating_add(pending) {
                return Err(StoreError::Full(format!(
                    "{free} bytes free on the data directory's filesystem, below the reserve of {reserve} \
                     and {pending} bytes of compaction still to run"
                )));
            }
        }
        // In column family and key order: each insert into a memtable's skip list then starts
        // from where the one before it ended (RocksDB keeps that splice for sequential inserts)
        // instead of searching from the top. A stable sort: of two puts of one key, the later
        // still wins.
        let mut puts = batch.puts;
        puts.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
        let mut wb = WriteBatch::default();
        let mut holders: Vec<[u8; HOLDER_PREFIX]> = Vec::new();
        for (cf, k, v) in &puts {
            wb.put_cf(self.cf(*cf)?, k, v);
            if *cf == Cf::Holders {
                if let Some(h) = k.first_chunk::<HOLDER_PREFIX>() {
                    if holders.last() != Some(h) {
                        holders.push(*h);
                    }
                }
            }
        }
        let mut wo = WriteOptions::default();
        wo.set_sync(true);
        let written = self.db.write_opt(wb, &wo).map_err(backend);
        // Even a failed write may have landed in part: the holders it touched are read afresh.
        self.holder_rows.forget(&holders);
        written
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contract() {
        let dir = tempfile::tempdir().unwrap();
        super::super::contract::run(&RocksStore::open(dir.path()).unwrap());
    }

    #[test]
    fn read_only_reads_a_missing_family_as_empty() {
        let dir = tempfile::tempdir().unwrap();
        {
            // A store made before the `usage` family existed.
            let mut opts = Options::default();
            opts.create_if_missing(true);
            opts.create_missing_column_families(true);
            let cfs = Cf::ALL
                .iter()
                .filter(|c| **c != Cf::Usage)
                .map(|c| ColumnFamilyDescriptor::new(c.name(), Options::default()));
            DB::open_cf_descriptors(&opts, dir.path(), cfs).unwrap();
        }
        let s = RocksStore::open_read_only(dir.path()).unwrap();
        assert_eq!(s.get(Cf::Usage, b"k").unwrap(), None);
        assert!(s.scan_prefix(Cf::Usage, b"", 10).unwrap().is_empty());
    }

    /// A clean stop leaves nothing to replay: after `flush` the write-ahead log is empty and
    /// every row is in the store's files.
    #[test]
    fn flush_empties_the_write_ahead_log() {
        let dir = tempfile::tempdir().unwrap();
        let s = RocksStore::open(dir.path()).unwrap();
        let mut b = Batch::default();
        for i in 0u64..1000 {
            b.put(Cf::Docs, i.to_be_bytes(), vec![7u8; 500]);
        }
        s.write(b).unwrap();
        let wal = |s: &RocksStore| s.sizes().iter().find(|(n, _)| *n == "write-ahead log").map(|(_, b)| *b).unwrap();
        assert!(wal(&s) > 500_000, "{:?}", s.sizes());
        s.flush().unwrap();
        assert_eq!(wal(&s), 0, "{:?}", s.sizes());
        let docs = s.sizes().iter().find(|(n, _)| *n == "docs").map(|(_, b)| *b).unwrap();
        // Compressed: 1000 rows of 500 equal bytes take far less than 500 kB in files.
        assert!(docs > 0 && docs < 100_000, "{docs}");
    }

    #[test]
    fn survives_reopen() {
        let dir = tempfile::tempdir().unwrap();
        {
            let s = RocksStore::open(dir.path()).unwrap();
            let mut b = Batch::default();
            b.put(Cf::Leaves, 7u64.to_be_bytes(), b"leaf".to_vec());
            s.write(b).unwrap();
        }
        let s = RocksStore::open(dir.path()).unwrap();
        assert_eq!(s.get(Cf::Leaves, &7u64.to_be_bytes()).unwrap().as_deref(), Some(&b"leaf"[..]));
    }

    #[test]
    fn prefix_end_is_the_least_key_after_the_prefix() {
        assert_eq!(prefix_end(b"ab"), Some(b"ac".to_vec()));
        assert_eq!(prefix_end(&[1, 0xff, 0xff]), Some(vec![2]));
        assert_eq!(prefix_end(&[0xff, 0xff]), None);
        assert_eq!(prefix_end(b""), None);
    }

    /// A holder's rows are remembered, and a write that adds one is seen by every scan after it
    /// returns, also while other threads keep scanning the same holder (and so keep trying to
    /// remember what they read just before the write).
    #[test]
    fn remembered_holder_rows_never_hide_a_write() {
        let dir = tempfile::tempdir().unwrap();
        let s = Arc::new(RocksStore::open(dir.path()).unwrap());
        let holder = [7u8; 32];
        let key = |n: u32| [&holder[..], format!("id-{n:04}").as_bytes()].concat();
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let scanners: Vec<_> = (0..2)
            .map(|_| {
                let (s, stop) = (s.clone(), stop.clone());
                std::thread::spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        s.scan_prefix(Cf::Holders, &holder, 64).unwrap();
                    }
                })
            })
            .collect();
        for n in 0..REMEMBERED_ROWS as u32 {
            let mut b = Batch::default();
            b.put(Cf::Holders, key(n), Vec::new());
            // Another holder's row in the same batch changes nothing for this one.
            b.put(Cf::Holders, [&[8u8; 32][..], b"x"].concat(), Vec::new());
            s.write(b).unwrap();
            let rows = s.scan_prefix(Cf::Holders, &holder, 64).unwrap();
            assert_eq!(rows.len(), n as usize + 1, "after writing row {n}");
            assert_eq!(rows.last().unwrap().0, key(n));
            // A page after a cursor, from what is remembered.
            let after = s.scan_prefix_from(Cf::Holders, &holder, &key(n), 2).unwrap();
            assert_eq!(after.iter().map(|r| r.0.clone()).collect::<Vec<_>>(), vec![key(n)]);
        }
        stop.store(true, Ordering::Relaxed);
        scanners.into_iter().for_each(|t| t.join().unwrap());
        assert!(s.holder_rows.rows.get(&holder).is_some(), "a holder with few rows is remembered");
        // Past REMEMBERED_ROWS a holder is read from RocksDB each time, and pages still follow.
        let mut b = Batch::default();
        for n in REMEMBERED_ROWS as u32..100 {
            b.put(Cf::Holders, key(n), Vec::new());
        }
        s.write(b).unwrap();
        assert_eq!(s.scan_prefix(Cf::Holders, &holder, 1000).unwrap().len(), 100);
        assert!(s.holder_rows.rows.get(&holder).is_none());
        let page = s.scan_prefix_from(Cf::Holders, &holder, &key(50), 3).unwrap();
        assert_eq!(page.iter().map(|r| r.0.clone()).collect::<Vec<_>>(), vec![key(50), key(51), key(52)]);
        // Pages within the first rows read (answered from them) and past them (read again).
        let keys = |from: u32, n: usize| (from..).take(n).map(key).collect::<Vec<_>>();
        for (from, limit) in [(0, 32), (0, 33), (5, 28), (5, 29), (0, 40), (30, 10), (98, 5)] {
            let page = s.scan_prefix_from(Cf::Holders, &holder, &key(from), limit).unwrap();
            let want = keys(from, limit.min(100 - from as usize));
            assert_eq!(page.iter().map(|r| r.0.clone()).collect::<Vec<_>>(), want, "from {from}, limit {limit}");
        }
    }

    /// Holder-keyed families keep a filter of 32-byte prefixes: one holder's scans use it, and
    /// scans across holders (shorter prefixes, none, or from a start key) still see every row,
    /// in memtables and in flushed files alike.
    #[test]
    fn holder_scans_with_and_without_the_prefix_filter() {
        let dir = tempfile::tempdir().unwrap();
        let s = RocksStore::open(dir.path()).unwrap();
        let holder = |h: u8| [h; 32];
        let key = |h: u8, n: u8| [&holder(h)[..], b"id-", &[n]].concat();
        for round in 0..2u8 {
            let mut b = Batch::default();
            for h in [1u8, 2, 0xff] {
                for n in 0..3 {
                    b.put(Cf::Holders, key(h, n + 3 * round), Vec::new());
                }
            }
            s.write(b).unwrap();
            // The first round's rows go into a file, the second's stay in the memtable.
            if round == 0 {
                s.flush().unwrap();
            }
        }
        for h in [1u8, 2, 0xff] {
            let rows = s.scan_prefix(Cf::Holders, &holder(h), 100).unwrap();
            let want: Vec<Vec<u8>> = (0..6).map(|n| key(h, n)).collect();
            assert_eq!(rows.iter().map(|(k, _)| k.clone()).collect::<Vec<_>>(), want);
            let after = s.scan_prefix_from(Cf::Holders, &holder(h), &[&key(h, 2)[..], &[0]].concat(), 100).unwrap();
            assert_eq!(after.len(), 3);
        }
        assert!(s.scan_prefix(Cf::Holders, &holder(3), 100).unwrap().is_empty());
        assert_eq!(s.scan_prefix(Cf::Holders, b"", 100).unwrap().len(), 18);
        assert_eq!(s.scan_prefix(Cf::Holders, &[2], 100).unwrap().len(), 6);
        assert_eq!(s.scan_from(Cf::Holders, &key(2, 4), 100).unwrap().len(), 2 + 6);
    }
}
