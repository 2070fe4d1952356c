//! The sequencer: the one writer. It owns the log's tail (tree edge, hash-chain head) and turns a
//! stream of jobs into group commits.
//!
//! The order of work for every batch, and why (cf. FiloSottile/sunlight's sequencer):
//!
//! 1. Take every job waiting on the channel (up to [`MAX_BATCH`]). Each job runs against a
//!    [`Tx`]: it reads through the batch's own pending writes, appends leaves and puts index
//!    rows. A job that returns an error is rolled back to its savepoint and changes nothing.
//! 2. Hash the new leaves into the tree, keep every completed perfect subtree, compute the new
//!    root and sign the checkpoint for it.
//! 3. Write leaves, tree nodes, index rows and the signed checkpoint in ONE RocksDB `WriteBatch`
//!    with sync. Durability and the signed head land together or not at all, so the store never
//!    holds leaves that no checkpoint covers, nor a checkpoint over leaves it does not hold.
//! 4. Only then publish the new head for readers and answer every caller of the batch. A caller
//!    never hears "done" for a write that a crash could take back.
//!
//! If the write fails, nobody in the batch is told "done" and the tail is reloaded from the store
//! (the failure may have been after the data reached disk), so the next checkpoint always extends
//! what is really stored and the log never signs two heads that are not consistent.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use tokio::sync::{mpsc, oneshot};

use super::cache::{CachedNodes, NodeCache};
use super::leaf::{Event, Leaf};
use super::merkle::Nodes;
use super::merkle::{leaf_hash, CompactRange, Hash, MerkleError};
use super::note::{sign_note, Checkpoint, NoteSigner, Verifier};
use crate::store::{tree_key, Batch, Cf, Store, StoreError, StoredNodes};

/// Newest leaves whose chain `Sequencer::start` re-checks by default.
pub const DEFAULT_TAIL_CHECK: u64 = 10_000;

/// Most jobs folded into one commit.
pub const MAX_BATCH: usize = 1024;
const QUEUE: usize = 4096;

const META_SIZE: &[u8] = b"size";
const META_CHECKPOINT: &[u8] = b"checkpoint";

#[derive(Debug, Clone, thiserror::Error)]
pub enum SequencerError {
    #[error("storage write failed; nothing in this batch was committed: {0}")]
    Write(String),
    /// The store refused the batch for want of space; nothing of it was written.
    #[error("{0}; nothing in this batch was committed")]
    Full(String),
    #[error("the sequencer has stopped")]
    Stopped,
    #[error("log state in storage is inconsistent: {0}")]
    Corrupt(String),
}

impl From<StoreError> for SequencerError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Full(_) => Self::Full(e.to_string()),
            e => Self::Write(e.to_string()),
        }
    }
}

impl From<MerkleError> for SequencerError {
    fn from(e: MerkleError) -> Self {
        Self::Corrupt(e.to_string())
    }
}

/// Counters for /metrics: how well group commit is batching, and whether the writer is healthy.
#[derive(Debug, Default)]
pub struct Stats {
    pub batches: AtomicU64,
    pub jobs: AtomicU64,
    pub leaves: AtomicU64,
    pub failed_writes: AtomicU64,
    pub largest_batch: AtomicU64,
    /// Set when a failed write could not be followed by a reload of the tail: nothing more is
    /// written until restart.
    pub halted: AtomicBool,
    /// The error of the last write, while no write has succeeded since: the store may be
    /// read-only or full. Cleared by the next successful write (`/readyz` makes one to find out).
    pub last_write_error: Mutex<Option<SequencerError>>,
}

impl Stats {
    fn set_write_error(&self, e: Option<SequencerError>) {
        match self.last_write_error.lock() {
            Ok(mut g) => *g = e,
            Err(p) => *p.into_inner() = e,
        }
    }

    pub fn write_error(&self) -> Option<SequencerError> {
        self.last_write_error.lock().map(|g| g.clone()).unwrap_or_else(|p| p.into_inner().clone())
    }
}

/// Why the sequencer cannot commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unable {
    /// Its thread has ended.
    Stopped,
    /// A write failed and the tail could not be reloaded: nothing more is written until restart.
    Halted,
    /// The last write failed (this error) and none has succeeded since; the next may.
    WriteFailing(String),
    /// The last write was refused for want of space and none has succeeded since; writes resume
    /// once space is freed.
    Full(String),
}

impl std::fmt::Display for Unable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Stopped => write!(f, "the sequencer thread has stopped"),
            Self::Halted => write!(f, "a write failed and the log tail could not be reloaded; restart the server"),
            Self::WriteFailing(e) => write!(f, "the last write failed: {e}"),
            Self::Full(e) => write!(f, "the last write was refused: {e}"),
        }
    }
}

/// The thread that keeps the cache's resident levels up with the store. Stopped and joined by
/// `Sequencer::close`, or when the last handle to the sequencer is dropped (a start that failed
/// halfway): it never keeps the store open behind its owner's back.
struct Loader {
    stop: Arc<AtomicBool>,
    handle: Mutex<Option<std::thread::JoinHandle<()>>>,
}

impl Loader {
    fn stop(&self) {
        self.stop.store(true, Ordering::SeqCst);
        let handle = self.handle.lock().ok().and_then(|mut h| h.take());
        if let Some(h) = handle {
            h.thread().unpark();
            let _ = h.join();
        }
    }
}

impl Drop for Loader {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The latest committed, signed head.
#[derive(Debug, Clone)]
pub struct Head {
    pub size: u64,
    pub root: Hash,
    /// The signed checkpoint note.
    pub checkpoint: String,
}

type Reply = Box<dyn FnOnce(Result<&Arc<Head>, &SequencerError>) + Send>;
type Job = Box<dyn FnOnce(&mut Tx<'_>) -> Reply + Send>;

/// A batch in the making, as one job sees it.
pub struct Tx<'a> {
    store: &'a dyn Store,
    puts: Vec<(Cf, Vec<u8>, Vec<u8>)>,
    overlay: HashMap<(Cf, Vec<u8>), usize>,
    leaves: Vec<Vec<u8>>,
    /// Index of `leaves[0]`: the log's size when the batch began.
    first_index: u64,
    next_index: u64,
    prev_hash: Hash,
    time_ms: u64,
}

struct Savepoint {
    puts: usize,
    leaves: usize,
    prev_hash: Hash,
}

impl<'a> Tx<'a> {
    /// A batch on a log of `size` leaves whose newest leaf has hash `prev_hash` and time
    /// `last_ms`: leaf times never go back, even when the clock does (an audit checks they are in
    /// order, so a back-dated leaf shows).
    fn new(store: &'a dyn Store, size: u64, prev_hash: Hash, last_ms: u64) -> Self {
        let time_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0)
            .max(last_ms);
        Self {
            store,
            puts: Vec::new(),
            overlay: HashMap::new(),
            leaves: Vec::new(),
            first_index: size,
            next_index: size,
            prev_hash,
            time_ms,
        }
    }

    /// Reads through this batch's pending puts, then the store.
    pub fn get(&self, cf: Cf, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        if let Some(&i) = self.overlay.get(&(cf, key.to_vec())) {
            return Ok(Some(self.puts[i].2.clone()));
        }
        self.store.get(cf, key)
    }

    /// The leaf at `index`: one appended earlier in this batch, or a stored one.
    pub fn leaf(&self, index: u64) -> Result<Option<Vec<u8>>, StoreError> {
        if index >= self.first_index {
            return Ok(self.leaves.get((index - self.first_index) as usize).cloned());
        }
        self.store.get(Cf::Leaves, &index.to_be_bytes())
    }

    pub fn put(&mut self, cf: Cf, key: impl Into<Vec<u8>>, value: impl Into<Vec<u8>>) {
        let key = key.into();
        self.overlay.insert((cf, key.clone()), self.puts.len());
        self.puts.push((cf, key, value.into()));
    }

    /// The index the next leaf appended to this batch gets.
    pub fn next_index(&self) -> u64 {
        self.next_index
    }

    /// Unix milliseconds stamped on every leaf of this batch.
    pub fn time_ms(&self) -> u64 {
        self.time_ms
    }

    /// Appends a leaf about no licence; returns its index.
    pub fn append(&mut self, event: Event) -> u64 {
        self.push_leaf(event, None, None)
    }

    /// Appends a leaf about `licence`; `prev` is the index of the previous leaf about it (the
    /// caller's record of the licence knows it), `None` for its first.
    pub fn append_about(&mut self, event: Event, licence: &str, prev: Option<u64>) -> u64 {
        self.push_leaf(event, Some(licence), prev)
    }

    fn push_leaf(&mut self, event: Event, licence: Option<&str>, licence_prev: Option<u64>) -> u64 {
        let index = self.next_index;
        let leaf = Leaf {
            index,
            prev_hash: self.prev_hash,
            time_ms: self.time_ms,
            licence: licence.map(str::to_string),
            licence_prev,
            event,
        };
        let bytes = leaf.encode();
        self.prev_hash = leaf_hash(&bytes);
        self.leaves.push(bytes);
        self.next_index += 1;
        index
    }

    fn savepoint(&self) -> Savepoint {
        Savepoint { puts: self.puts.len(), leaves: self.leaves.len(), prev_hash: self.prev_hash }
    }

    fn rollback(&mut self, sp: Savepoint) {
        self.puts.truncate(sp.puts);
        self.next_index -= (self.leaves.len() - sp.leaves) as u64;
        self.leaves.truncate(sp.leaves);
        self.prev_hash = sp.prev_hash;
        self.overlay = self.puts.iter().enumerate().map(|(i, (cf, k, _))| ((*cf, k.clone()), i)).collect();
    }
}

/// The log's tail, owned by the sequencer thread.
pub struct Tail {
    tree: CompactRange,
    prev_hash: Hash,
    /// Time of the newest leaf (unix ms).
    time_ms: u64,
}

impl Tail {
    pub fn load(store: &dyn Store) -> Result<Self, SequencerError> {
        let size = match store.get(Cf::Meta, META_SIZE)? {
            None => 0,
            Some(v) => u64::from_be_bytes(v.try_into().map_err(|_| SequencerError::Corrupt("size".into()))?),
        };
        let tree = CompactRange::from_nodes(&StoredNodes(store), size)?;
        let (prev_hash, time_ms) = if size == 0 {
            ([0u8; 32], 0)
        } else {
            let last = store
                .get(Cf::Leaves, &(size - 1).to_be_bytes())?
                .ok_or_else(|| SequencerError::Corrupt(format!("leaf {} missing", size - 1)))?;
            let time = Leaf::decode(&last)
                .map_err(|e| SequencerError::Corrupt(format!("leaf {} does not decode: {e}", size - 1)))?
                .time_ms;
            (leaf_hash(&last), time)
        };
        Ok(Self { tree, prev_hash, time_ms })
    }
}

/// Handle for submitting jobs and reading the head.
#[derive(Clone)]
pub struct Sequencer {
    jobs: mpsc::Sender<Job>,
    head: Arc<RwLock<Arc<Head>>>,
    cache: Arc<NodeCache>,
    store: Arc<dyn Store>,
    stop: Arc<AtomicBool>,
    worker: Arc<Mutex<Option<std::thread::JoinHandle<()>>>>,
    /// Keeps the cache's resident tree levels up with the store (`NodeCache::extend_resident`).
    loader: Arc<Loader>,
    stats: Arc<Stats>,
    /// From start-up's tail check: the newest leaf about each licence in the checked tail.
    tail_licences: Arc<Mutex<HashMap<String, u64>>>,
}

impl Sequencer {
    /// Recovers the tail from `store`, checks what it is about to sign on (see [`check_stored`]),
    /// signs a first checkpoint for an empty log, and starts the sequencer thread.
    /// `tail_leaves` is how many of the newest leaves have their hash chain re-checked.
    pub fn start(
        store: Arc<dyn Store>,
        signer: Arc<dyn NoteSigner + Send + Sync>,
        tail_leaves: u64,
    ) -> Result<Self, SequencerError> {
        let tail = Tail::load(store.as_ref())?;
        let origin = signer.name().to_string();
        let mut tail_licences = HashMap::new();
        let head = match store.get(Cf::Meta, META_CHECKPOINT)? {
            Some(note) => {
                let note = String::from_utf8(note).map_err(|_| SequencerError::Corrupt("checkpoint".into()))?;
                tail_licences = check_stored(store.as_ref(), &note, &origin, &signer.public_key(), &tail, tail_leaves)?;
                // Logs made before checkpoints were kept by size keep their newest from now on.
                let kept = crate::store::keys::checkpoint(tail.tree.size());
                if store.get(Cf::Meta, &kept)?.is_none() {
                    let mut b = Batch::default();
                    b.put(Cf::Meta, kept, note.clone().into_bytes());
                    store.write(b)?;
                }
                Head { size: tail.tree.size(), root: tail.tree.root(), checkpoint: note }
            }
            None => {
                if tail.tree.size() != 0 {
                    return Err(SequencerError::Corrupt("leaves without a checkpoint".into()));
                }
                let head = sign_head(signer.as_ref(), &origin, 0, tail.tree.root());
                let mut b = Batch::default();
                b.put(Cf::Meta, META_CHECKPOINT.to_vec(), head.checkpoint.clone().into_bytes());
                b.put(Cf::Meta, crate::store::keys::checkpoint(0), head.checkpoint.clone().into_bytes());
                b.put(Cf::Meta, META_SIZE.to_vec(), 0u64.to_be_bytes().to_vec());
                store.write(b)?;
                head
            }
        };
        let head = Arc::new(RwLock::new(Arc::new(head)));
        let cache = Arc::new(NodeCache::default());
        let (tx, rx) = mpsc::channel(QUEUE);
        let stop = Arc::new(AtomicBool::new(false));
        let worker = Worker {
            store: store.clone(),
            signer,
            origin,
            tail: Some(tail),
            head: head.clone(),
            cache: cache.clone(),
            stop: stop.clone(),
            stats: Arc::default(),
        };
        let stats = worker.stats.clone();
        let handle = std::thread::Builder::new()
            .name("sequencer".into())
            .spawn(move || worker.run(rx))
            .map_err(|e| SequencerError::Write(e.to_string()))?;
        let loader_stop = Arc::new(AtomicBool::new(false));
        let loader = {
            let (cache, store, head, stop) = (cache.clone(), Arc::downgrade(&store), head.clone(), loader_stop.clone());
            std::thread::Builder::new()
                .name("tree-resident".into())
                .spawn(move || {
                    while !stop.load(Ordering::SeqCst) {
                        // A weak handle: a store dropped without `close` is not kept open.
                        let Some(store) = store.upgrade() else { break };
                        let size = head.read().map(|h| h.size).unwrap_or_else(|p| p.into_inner().size);
                        if let Err(e) = cache.extend_resident(store.as_ref(), size, || stop.load(Ordering::SeqCst)) {
                            tracing::warn!(error = %e, "reading tree levels into memory failed; proofs read them from the store");
                        }
                        drop(store);
                        std::thread::park_timeout(std::time::Duration::from_millis(250));
                    }
                })
                .map_err(|e| SequencerError::Write(e.to_string()))?
        };
        Ok(Self {
            jobs: tx,
            head,
            cache,
            store,
            stop,
            worker: Arc::new(Mutex::new(Some(handle))),
            loader: Arc::new(Loader { stop: loader_stop, handle: Mutex::new(Some(loader)) }),
            stats,
            tail_licences: Arc::new(Mutex::new(tail_licences)),
        })
    }

    /// The newest leaf about each licence among the leaves start-up checked (taken once).
    pub fn take_tail_licences(&self) -> HashMap<String, u64> {
        std::mem::take(&mut *self.tail_licences.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// Finishes the batch in progress, refuses what is still queued, and waits for the sequencer
    /// thread to end, so that storage can close cleanly (RocksDB must not outlive `main` with
    /// a thread still inside it). Idempotent.
    pub fn close(&self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the worker if it is waiting for work.
        let noop: Job = Box::new(|_: &mut Tx<'_>| -> Reply { Box::new(|_: Result<&Arc<Head>, &SequencerError>| {}) });
        let _ = self.jobs.try_send(noop);
        let handle = self.worker.lock().ok().and_then(|mut h| h.take());
        if let Some(h) = handle {
            let _ = h.join();
        }
        self.loader.stop();
    }

    /// The memory whole tree levels may take (`serve --tree-memory`; `NodeCache::set_budget`).
    pub fn set_tree_memory(&self, bytes: u64) {
        self.cache.set_budget(bytes);
    }

    /// Tree nodes held in memory as whole levels (`NodeCache::extend_resident`).
    pub fn resident_nodes(&self) -> u64 {
        self.cache.resident_nodes()
    }

    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// Whether the sequencer thread is alive.
    pub fn running(&self) -> bool {
        self.worker.lock().map(|h| h.as_ref().is_some_and(|h| !h.is_finished())).unwrap_or(false)
    }

    /// Why the sequencer cannot commit now, if it cannot.
    pub fn unable_to_commit(&self) -> Option<Unable> {
        if !self.running() {
            return Some(Unable::Stopped);
        }
        if self.stats.halted.load(Ordering::SeqCst) {
            return Some(Unable::Halted);
        }
        self.stats.write_error().map(|e| match e {
            SequencerError::Full(why) => Unable::Full(why),
            e => Unable::WriteFailing(e.to_string()),
        })
    }

    /// The tree's nodes, for proofs: recent ones from memory, the rest from the store.
    pub fn nodes(&self) -> CachedNodes<'_> {
        CachedNodes::new(&self.cache, self.store.as_ref())
    }

    pub fn head(&self) -> Arc<Head> {
        self.head.read().map(|h| h.clone()).unwrap_or_else(|p| p.into_inner().clone())
    }

    /// Runs `f` in the next batch. `Ok(Ok(t))` arrives only after the batch is durable and
    /// covered by a signed checkpoint; `Ok(Err(e))` means `f` refused and nothing of it was kept.
    pub async fn submit<T, E, F>(&self, f: F) -> Result<(Result<T, E>, Arc<Head>), SequencerError>
    where
        T: Send + 'static,
        E: Send + 'static,
        F: FnOnce(&mut Tx<'_>) -> Result<T, E> + Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        let job: Job = Box::new(move |t: &mut Tx<'_>| {
            let sp = t.savepoint();
            let out = f(t);
            if out.is_err() {
                t.rollback(sp);
            }
            Box::new(move |res: Result<&Arc<Head>, &SequencerError>| {
                let _ = tx.send(match res {
                    Ok(h) => Ok((out, h.clone())),
                    Err(e) => Err(e.clone()),
                });
            })
        });
        self.jobs.send(job).await.map_err(|_| SequencerError::Stopped)?;
        rx.await.map_err(|_| SequencerError::Stopped)?
    }
}

/// What the sequencer checks before it signs anything on top of a stored log:
/// - the stored checkpoint verifies under the configured log key and names its origin;
/// - its size and root are those of the stored tree;
/// - the newest `tail_leaves` leaves each hash to the tree's leaf node, carry their own index,
///   link to the leaf before them (the hash chain), and, hashed from their bytes and folded onto
///   the stored peaks of the prefix before them, give the signed root.
///
/// Older leaves are covered by `licvault check`, which replays the whole log.
pub fn check_stored(
    store: &dyn Store,
    note: &str,
    origin: &str,
    public_key: &[u8; 32],
    tail: &Tail,
    tail_leaves: u64,
) -> Result<HashMap<String, u64>, SequencerError> {
    let corrupt = |why: String| SequencerError::Corrupt(why);
    let verifier = Verifier::from_key(origin, public_key).map_err(|e| corrupt(e.to_string()))?;
    let cp = Checkpoint::open(note, &verifier).map_err(|e| {
        corrupt(format!(
            "the stored checkpoint does not verify under the configured log key {} ({e}): the log was \
             signed by another key, or the checkpoint was altered",
            super::note::verifier_key(origin, public_key)
        ))
    })?;
    if cp.size != tail.tree.size() || cp.root != tail.tree.root() {
        return Err(corrupt(format!(
            "the stored checkpoint (size {}) does not match the stored tree (size {})",
            cp.size,
            tail.tree.size()
        )));
    }
    let size = tail.tree.size();
    let first = size.saturating_sub(tail_leaves);
    // The tail's leaves are hashed from their bytes and folded onto the stored peaks of the
    // prefix before them: the root must be the signed one. Stored leaf nodes are not trusted
    // (they are as editable as the leaves).
    let nodes = StoredNodes(store);
    let mut tree = CompactRange::from_nodes(&nodes, first)?;
    let mut prev: Hash = if first == 0 {
        [0u8; 32]
    } else {
        leaf_hash(&store.get(Cf::Leaves, &(first - 1).to_be_bytes())?.unwrap_or_default())
    };
    // The newest leaf about each licence the tail touches: the vault checks those records.
    let mut newest = HashMap::new();
    let mut expected = first;
    for item in crate::store::stored_leaves(store, first, size) {
        let (index, bytes) = item?;
        if index != expected {
            return Err(corrupt(format!("leaf {expected} is missing")));
        }
        expected += 1;
        let hash = leaf_hash(&bytes);
        if nodes.node(0, index) != Some(hash) {
            return Err(corrupt(format!("leaf {index} does not hash to the signed tree: it was altered")));
        }
        let leaf = Leaf::decode(&bytes).map_err(|e| corrupt(format!("leaf {index} does not decode: {e}")))?;
        if leaf.index != index {
            return Err(corrupt(format!("leaf {index} says it is leaf {}", leaf.index)));
        }
        // (The link to the leaf before `first` is only as good as that leaf: the root check
        // below is what binds the tail.)
        if leaf.prev_hash != prev {
            return Err(corrupt(format!(
                "leaf {index} does not link to leaf {}: the hash chain is broken",
                index.wrapping_sub(1)
            )));
        }
        if let Some(l) = leaf.licence {
            newest.insert(l, index);
        }
        tree.append(hash);
        prev = hash;
    }
    if expected != size {
        return Err(corrupt(format!("leaf {expected} is missing")));
    }
    if tree.root() != cp.root {
        return Err(corrupt(format!(
            "the newest {} leaves do not hash to the signed root: the log was altered",
            size - first
        )));
    }
    Ok(newest)
}

fn sign_head(signer: &dyn NoteSigner, origin: &str, size: u64, root: Hash) -> Head {
    let cp = Checkpoint { origin: origin.to_string(), size, root };
    Head { size, root, checkpoint: sign_note(&cp.to_text(), signer) }
}

struct Worker {
    store: Arc<dyn Store>,
    signer: Arc<dyn NoteSigner + Send + Sync>,
    origin: String,
    /// `None` after a failed write whose reload also failed: every job is refused until restart.
    tail: Option<Tail>,
    head: Arc<RwLock<Arc<Head>>>,
    cache: Arc<NodeCache>,
    stop: Arc<AtomicBool>,
    stats: Arc<Stats>,
}

impl Worker {
    fn run(mut self, mut rx: mpsc::Receiver<Job>) {
        while let Some(first) = rx.blocking_recv() {
            if self.stop.load(Ordering::SeqCst) {
                break;
            }
            let mut jobs = vec![first];
            while jobs.len() < MAX_BATCH {
                match rx.try_recv() {
                    Ok(j) => jobs.push(j),
                    Err(_) => break,
                }
            }
            self.commit(jobs);
        }
        // Queued jobs are dropped with `rx`: their callers hear `Stopped`, nothing was written.
    }

    fn commit(&mut self, jobs: Vec<Job>) {
        let Some(tail) = self.tail.as_ref() else {
            let err = SequencerError::Corrupt("log tail unknown after a failed write; restart the server".into());
            for job in jobs {
                let mut tx = Tx::new(self.store.as_ref(), 0, [0; 32], 0);
                job(&mut tx)(Err(&err));
            }
            return;
        };
        let mut tx = Tx::new(self.store.as_ref(), tail.tree.size(), tail.prev_hash, tail.time_ms);
        self.stats.batches.fetch_add(1, Ordering::Relaxed);
        self.stats.jobs.fetch_add(jobs.len() as u64, Ordering::Relaxed);
        self.stats.largest_batch.fetch_max(jobs.len() as u64, Ordering::Relaxed);
        let replies: Vec<Reply> = jobs.into_iter().map(|job| job(&mut tx)).collect();
        let Tx { puts, leaves, prev_hash, time_ms, .. } = tx;
        let time_ms = if leaves.is_empty() { tail.time_ms } else { time_ms };

        if leaves.is_empty() && puts.is_empty() {
            let head = self.head.read().map(|h| h.clone()).unwrap_or_else(|p| p.into_inner().clone());
            replies.into_iter().for_each(|r| r(Ok(&head)));
            return;
        }
        let mut tree = tail.tree.clone();
        let mut batch = Batch { puts };
        let mut nodes = Vec::with_capacity(leaves.len() * 2);
        for leaf in leaves {
            let index = tree.size();
            for (level, idx, h) in tree.append(leaf_hash(&leaf)) {
                batch.put(Cf::Tree, tree_key(level, idx).to_vec(), h.to_vec());
                nodes.push((level, idx, h));
            }
            batch.put(Cf::Leaves, index.to_be_bytes().to_vec(), leaf);
        }
        let head = sign_head(self.signer.as_ref(), &self.origin, tree.size(), tree.root());
        batch.put(Cf::Meta, META_CHECKPOINT.to_vec(), head.checkpoint.clone().into_bytes());
        // Every checkpoint stays retrievable by size (GET /v1/log/checkpoints/{size}).
        batch.put(Cf::Meta, crate::store::keys::checkpoint(tree.size()), head.checkpoint.clone().into_bytes());
        batch.put(Cf::Meta, META_SIZE.to_vec(), tree.size().to_be_bytes().to_vec());

        match self.store.write(batch) {
            Ok(()) => {
                self.stats.set_write_error(None);
                self.stats.leaves.fetch_add(nodes.iter().filter(|n| n.0 == 0).count() as u64, Ordering::Relaxed);
                self.cache.insert_all(nodes);
                self.tail = Some(Tail { tree, prev_hash, time_ms });
                let shared = Arc::new(head);
                match self.head.write() {
                    Ok(mut h) => *h = shared.clone(),
                    Err(p) => *p.into_inner() = shared.clone(),
                }
                replies.into_iter().for_each(|r| r(Ok(&shared)));
            }
            Err(e) => {
                let err = SequencerError::from(e);
                self.stats.failed_writes.fetch_add(1, Ordering::Relaxed);
                self.stats.set_write_error(Some(err.clone()));
                if matches!(err, SequencerError::Full(_)) {
                    // Refused before anything was written: the tail and head stand as they are
                    // (no store read per refused batch while the disk stays full).
                    tracing::warn!(error = %err, "batch refused");
                    replies.into_iter().for_each(|r| r(Err(&err)));
                    return;
                }
                tracing::error!(error = %err, "batch write failed; reloading the log tail");
                self.tail = Tail::load(self.store.as_ref()).ok();
                self.stats.halted.store(self.tail.is_none(), Ordering::SeqCst);
                if let Some(t) = &self.tail {
                    // The write may have landed before failing: publish whatever the store holds.
                    if let Ok(Some(note)) = self.store.get(Cf::Meta, META_CHECKPOINT) {
                        if let Ok(note) = String::from_utf8(note) {
                            let h = Arc::new(Head { size: t.tree.size(), root: t.tree.root(), checkpoint: note });
                            if let Ok(mut w) = self.head.write() {
                                *w = h;
                            }
                        }
                    }
                }
                replies.into_iter().for_each(|r| r(Err(&err)));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::leaf::verify_chain;
    use crate::log::merkle::Nodes;
    use crate::log::note::Verifier;
    use crate::log::test_key::K;
    use crate::store::MemoryStore;
    use ed25519_dalek::SigningKey;

    fn all_leaves(store: &dyn Store, size: u64) -> Vec<Vec<u8>> {
        (0..size).map(|i| store.get(Cf::Leaves, &i.to_be_bytes()).unwrap().unwrap()).collect()
    }

    /// Appends a leaf about `licence`, keeping the test's own "record" of its last leaf in the
    /// batch, as the vault does with its licence records.
    async fn append(seq: &Sequencer, licence: &'static str) -> Result<u64, SequencerError> {
        let (r, _) = seq
            .submit(move |tx| {
                let key = format!("test-last/{licence}").into_bytes();
                let prev = tx
                    .get(Cf::Meta, &key)
                    .map_err(|e| e.to_string())?
                    .map(|v| u64::from_be_bytes(v.try_into().expect("8 bytes")));
                let index = tx.append_about(Event::new("test").text("x", "y"), licence, prev);
                tx.put(Cf::Meta, key, index.to_be_bytes());
                Ok::<_, String>(index)
            })
            .await?;
        Ok(r.expect("append"))
    }

    #[tokio::test]
    async fn group_commit_and_fault_at_every_step() {
        let store = Arc::new(MemoryStore::new());
        let key = Arc::new(K(SigningKey::from_bytes(&[5; 32])));
        let verifier = Verifier::from_key("test/log", &key.public_key()).unwrap();
        let seq = Sequencer::start(store.clone(), key.clone(), DEFAULT_TAIL_CHECK).unwrap();
        assert_eq!(seq.head().size, 0);

        // Concurrent submissions are all committed, each exactly once.
        let mut handles = Vec::new();
        for i in 0..50 {
            let seq = seq.clone();
            handles.push(tokio::spawn(async move { append(&seq, if i % 2 == 0 { "A" } else { "B" }).await }));
        }
        let mut indexes: Vec<u64> = Vec::new();
        for h in handles {
            indexes.push(h.await.unwrap().unwrap());
        }
        indexes.sort();
        assert_eq!(indexes, (0..50).collect::<Vec<_>>());

        // Fail each of the next writes in turn: the failed one answers an error, changes nothing,
        // and the log keeps verifying against its signed checkpoint.
        for step in 0..5 {
            let before = seq.head();
            store.fail_write(0);
            assert!(append(&seq, "A").await.is_err(), "step {step}");
            assert_eq!(seq.head().size, before.size);
            let i = append(&seq, "B").await.unwrap();
            assert_eq!(i, before.size);
            let head = seq.head();
            let cp = Checkpoint::open(&head.checkpoint, &verifier).unwrap();
            let tree = verify_chain(all_leaves(store.as_ref(), head.size)).unwrap();
            assert_eq!((cp.size, cp.root), (tree.size(), tree.root()));
        }

        // A job that refuses is rolled back, and its neighbours still commit.
        let (r, head) = seq
            .submit(|tx| {
                tx.append_about(Event::new("doomed"), "A", None);
                tx.put(Cf::Meta, b"doomed".to_vec(), b"1".to_vec());
                Err::<(), _>("no")
            })
            .await
            .unwrap();
        assert!(r.is_err());
        assert_eq!(store.get(Cf::Meta, b"doomed").unwrap(), None);
        assert_eq!(append(&seq, "A").await.unwrap(), head.size);

        // Every node the cache holds is the stored one, and proofs read through it agree.
        let cached = seq.cache.snapshot();
        assert!(!cached.is_empty());
        for ((level, index), h) in cached {
            assert_eq!(StoredNodes(store.as_ref()).node(level, index), Some(h));
        }
        let size = seq.head().size;
        assert_eq!(
            crate::log::merkle::inclusion_proof(&seq.nodes(), 3, size).unwrap(),
            crate::log::merkle::inclusion_proof(&StoredNodes(store.as_ref()), 3, size).unwrap()
        );

        // A restart recovers the same tail.
        drop(seq);
        let seq = Sequencer::start(store.clone(), key.clone(), DEFAULT_TAIL_CHECK).unwrap();
        let size = seq.head().size;
        assert_eq!(append(&seq, "A").await.unwrap(), size);
        verify_chain(all_leaves(store.as_ref(), size + 1)).unwrap();
    }

    /// `Sequencer::start` refuses a store whose checkpoint another key signed, whose newest leaf
    /// was altered, or whose hash chain is broken in the checked tail; each with one line naming
    /// what differs.
    #[tokio::test]
    async fn start_checks_what_it_signs_on() {
        let store = Arc::new(MemoryStore::new());
        let key = Arc::new(K(SigningKey::from_bytes(&[5; 32])));
        let seq = Sequencer::start(store.clone(), key.clone(), DEFAULT_TAIL_CHECK).unwrap();
        for _ in 0..20 {
            append(&seq, "A").await.unwrap();
        }
        seq.close();
        let refused = |store: Arc<MemoryStore>, key: Arc<K>, tail: u64| match Sequencer::start(store, key, tail) {
            Ok(s) => {
                s.close();
                panic!("started")
            }
            Err(e) => e.to_string(),
        };
        let copy = || {
            let c = Arc::new(MemoryStore::new());
            for cf in Cf::ALL {
                let mut b = Batch::default();
                for (k, v) in store.scan_prefix(cf, b"", usize::MAX).unwrap() {
                    b.put(cf, k, v);
                }
                c.write(b).unwrap();
            }
            c
        };

        // Another log key.
        let other = Arc::new(K(SigningKey::from_bytes(&[6; 32])));
        let e = refused(copy(), other, DEFAULT_TAIL_CHECK);
        assert!(e.contains("does not verify under the configured log key"), "{e}");

        // The newest leaf altered (one byte of its event).
        let c = copy();
        let mut last = c.get(Cf::Leaves, &19u64.to_be_bytes()).unwrap().unwrap();
        *last.last_mut().unwrap() ^= 1;
        let mut b = Batch::default();
        b.put(Cf::Leaves, 19u64.to_be_bytes(), last);
        c.write(b).unwrap();
        let e = refused(c, key.clone(), DEFAULT_TAIL_CHECK);
        assert!(e.contains("leaf 19 does not hash to the signed tree"), "{e}");

        // A leaf inside the checked tail altered; outside it, start-up does not look.
        let c = copy();
        let mut leaf = Leaf::decode(&c.get(Cf::Leaves, &12u64.to_be_bytes()).unwrap().unwrap()).unwrap();
        leaf.event = Event::new("forged");
        let mut b = Batch::default();
        b.put(Cf::Leaves, 12u64.to_be_bytes(), leaf.encode());
        c.write(b).unwrap();
        let e = refused(c.clone(), key.clone(), 10);
        assert!(e.contains("leaf 12 does not hash"), "{e}");
        Sequencer::start(c, key.clone(), 5).unwrap().close();

        // The newest leaf and its stored leaf node both rewritten: the root gives it away.
        let c = copy();
        let mut leaf = Leaf::decode(&c.get(Cf::Leaves, &19u64.to_be_bytes()).unwrap().unwrap()).unwrap();
        leaf.event = Event::new("forged");
        let bytes = leaf.encode();
        let mut b = Batch::default();
        b.put(Cf::Tree, tree_key(0, 19).to_vec(), leaf_hash(&bytes).to_vec());
        b.put(Cf::Leaves, 19u64.to_be_bytes(), bytes);
        c.write(b).unwrap();
        let e = refused(c, key.clone(), DEFAULT_TAIL_CHECK);
        assert!(e.contains("do not hash to the signed root"), "{e}");

        // The untouched store starts.
        Sequencer::start(copy(), key, DEFAULT_TAIL_CHECK).unwrap().close();
    }
}
