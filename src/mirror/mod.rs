//! Mirrors (issue 10, scope 2; spec/formats.md §15): this node follows other platforms' logs
//! through their signed checkpoints and entry bundles (c2sp.org/tlog-tiles), verifies every leaf
//! (decoding, index, hash chain, per-licence back-pointer) and that the leaves are the signed
//! tree (a consistency proof to the signed checkpoint for a part, the root itself at the end),
//! and keeps the leaves, the tree's right edge and each licence's state (`LicenceState`) in a store of
//! its own, one per source, which only its follower writes. `POST /v1/verify` answers another
//! platform's document from there, with the head it holds as of.
//!
//! A source whose new checkpoint is not consistent with what the mirror verified (a rewritten
//! history, or entries that are not the signed tree) is never followed again: the mirror keeps
//! what it verified, serves it with its as-of head, records both checkpoints as the evidence
//! (kept across restarts), and says so in `/readyz`, `/metrics`, `GET /v1/mirrors` and the log.
//! A source that does not answer is tried again; the lag grows meanwhile.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::log::leaf::{ChainCheck, Leaf};
use crate::log::merkle::{leaf_hash, verify_consistency, CompactRange, Hash};
use crate::log::note::{Checkpoint, NoteSigner, Verifier};
use crate::log::replay::LicenceState;
use crate::log::tile::{bundle_entries, Tile, TILE_WIDTH};
use crate::store::{Batch, Cf, Store};

pub mod pg;

/// Leaves verified and committed together: a consistency proof to the signed checkpoint covers
/// each part, so a long catch-up never holds more than this in memory.
const PART: u64 = 16 * TILE_WIDTH;

/// Largest checkpoint or proof answer read from a source.
const MAX_NOTE: usize = 64 * 1024;
/// Largest entry bundle: 256 leaves behind their uint16 lengths.
const MAX_BUNDLE: usize = 256 * (2 + u16::MAX as usize);
/// Largest part held in memory.
const MAX_PART_BYTES: usize = 64 << 20;

/// Rounds in step whose start is kept (`Mirror::in_step`): an hour of rounds at the default
/// `poll_ms`; a replica further behind than the oldest kept answers as stale.
const IN_STEP_KEPT: usize = 4096;

const META_SIZE: &[u8] = b"size";
const META_CHECKPOINT: &[u8] = b"checkpoint";
const META_FORK: &[u8] = b"fork";
/// The tree's right edge: its peaks, largest first, 32 bytes each.
const META_PEAKS: &[u8] = b"peaks";
const META_LAYOUT: &[u8] = b"layout";
/// The last leaf's hash, which the last entry bundle must end with.
const META_PREV: &[u8] = b"prev";
/// Leaves kept as entry bundles (`e/` ‖ tile index), the tree as its peaks, licence states at
/// `l/` ‖ id.
const LAYOUT: &[u8] = b"bundles-1";

/// The row of entry bundle `t` in a mirror's RocksDB store.
fn bundle_key(t: u64) -> [u8; 10] {
    let mut k = [0u8; 10];
    k[..2].copy_from_slice(b"e/");
    k[2..].copy_from_slice(&t.to_be_bytes());
    k
}

/// The row of a licence's state in a mirror's RocksDB store: `l/` ‖ its id. A department's ids
/// grow with their serial, so a part's rows, written in key order, mostly extend the memtable's
/// skip list at its end.
fn licence_key(id: &str) -> Vec<u8> {
    [b"l/".as_slice(), id.as_bytes()].concat()
}

/// Appends `leaf` to an entry bundle behind its big-endian uint16 length.
fn push_entry(bundle: &mut Vec<u8>, leaf: &[u8]) -> Result<(), String> {
    let len = u16::try_from(leaf.len())
        .map_err(|_| format!("a leaf of {} bytes does not fit an entry bundle", leaf.len()))?;
    bundle.extend_from_slice(&len.to_be_bytes());
    bundle.extend_from_slice(leaf);
    Ok(())
}

/// How old (at `now`, unix ms) an answer that holds as of `as_of` leaves is, from `in_step`
/// ((size, unix ms): a round that started then ended in step with the source at that size,
/// oldest first): the source was at most that size when the latest such round at or below
/// `as_of` started. `None`: no kept round is at or below it.
fn behind_ms(in_step: &std::collections::VecDeque<(u64, u64)>, as_of: u64, now: u64) -> Option<u64> {
    in_step.iter().rev().find(|(s, _)| *s <= as_of).map(|(_, at)| now.saturating_sub(*at))
}

/// The end of the part that starts at `from`, in a log of `size` leaves.
fn end_of_part(from: u64, size: u64) -> u64 {
    (from / PART + 1).saturating_mul(PART).min(size)
}

/// `--mirrors FILE` (JSON).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MirrorConfig {
    /// Where the mirrored logs are kept: one RocksDB store per source, in `DATA/NAME`.
    #[serde(default)]
    pub data: Option<PathBuf>,
    /// Or a PostgreSQL database (a libpq connection string; several hosts with
    /// `target_session_attrs=read-write` follow a failover): every source's leaves, state and
    /// licences, the licences partitioned by province (spec/formats.md §15).
    #[serde(default)]
    pub postgres: Option<String>,
    /// With `postgres`: where verdicts read instead (a libpq connection string, usually a
    /// streaming replica). The follower keeps reading and writing on the primary; a verdict
    /// read on a replica that is behind the mirror by more than `max_lag_seconds` is stale.
    #[serde(default)]
    pub postgres_read: Option<String>,
    /// A directory `licvault witness init` wrote: the mirror cosigns each checkpoint it
    /// verified with this key (`GET /v1/mirrors/{name}/checkpoint`).
    #[serde(default)]
    pub witness: Option<PathBuf>,
    /// How often each source's checkpoint is fetched, in milliseconds.
    #[serde(default = "default_poll_ms")]
    pub poll_ms: u64,
    /// A mirror that has not been in step with its source for longer than this (or since the
    /// node started, or that forked) answers as of its size, never `valid`.
    #[serde(default = "default_max_lag")]
    pub max_lag_seconds: u64,
    pub sources: Vec<SourceConfig>,
}

fn default_poll_ms() -> u64 {
    1000
}

fn default_max_lag() -> u64 {
    60
}

/// One platform this node mirrors.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceConfig {
    /// 1–32 of `a-z`, `0-9`, `-`: the metrics label and the URL segment.
    pub name: String,
    /// The source's base URL: `https://`, or `http://` only to this machine (loopback).
    pub url: String,
    /// The source platform's root certificate (PEM): only documents whose seal this root
    /// certified are answered from this mirror.
    pub root: PathBuf,
    /// The source log's C2SP verifier key, as its `licvault serve` prints it: pinned here, never
    /// learnt from the source.
    pub log_key: String,
    /// A file holding a bearer token of an `auditor` client of the source (entry bundles are
    /// the auditors').
    pub token_file: PathBuf,
}

impl MirrorConfig {
    pub fn load(path: &Path) -> Result<Self, String> {
        let text = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let cfg: Self = serde_json::from_slice(&text).map_err(|e| format!("{}: {e}", path.display()))?;
        if cfg.data.is_some() == cfg.postgres.is_some() {
            return Err(format!("{}: give either data (RocksDB) or postgres, not both or neither", path.display()));
        }
        if cfg.postgres_read.is_some() && cfg.postgres.is_none() {
            return Err(format!("{}: postgres_read goes with postgres", path.display()));
        }
        if cfg.poll_ms == 0 {
            return Err(format!("{}: poll_ms must be at least 1", path.display()));
        }
        for (i, s) in cfg.sources.iter().enumerate() {
            check_source(&s.name, &s.url, cfg.sources[..i].iter().map(|o| o.name.as_str()))
                .map_err(|e| format!("{}: {e}", path.display()))?;
        }
        Ok(cfg)
    }
}

/// A source's (or a peer's) name and URL: the name 1–32 of `a-z`, `0-9`, `-` and not among
/// `taken`; the URL `https://`, or `http://` only to this machine (a token goes with every
/// request).
pub fn check_source<'a>(name: &str, url: &str, mut taken: impl Iterator<Item = &'a str>) -> Result<(), String> {
    let ok = (1..=32).contains(&name.len())
        && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if !ok {
        return Err(format!("name {name:?} is not 1–32 of a-z, 0-9, -"));
    }
    let parsed = reqwest::Url::parse(url).map_err(|e| format!("{name}: {url}: {e}"))?;
    let loopback = matches!(parsed.host_str(), Some("127.0.0.1" | "localhost" | "[::1]"));
    let clear = parsed.scheme() == "http" && loopback;
    if !(parsed.scheme() == "https" || clear) || !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(format!(
            "{name}: {url} is neither https:// nor http:// to this machine (the token would go in clear)"
        ));
    }
    if taken.any(|o| o == name) {
        return Err(format!("{name} is named twice"));
    }
    Ok(())
}

/// Why a mirror stopped following its source: the checkpoint it had verified, and the one that
/// is not consistent with it (when the disagreement is between two signed checkpoints, the pair
/// is the proof).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Fork {
    /// Unix seconds.
    pub detected_at: i64,
    pub why: String,
    /// The newest checkpoint the mirror verified (signed note).
    pub verified: Option<String>,
    /// The source's checkpoint that does not agree with it (signed note).
    pub conflicting: String,
}

/// The mirror's position in the source log.
struct Tail {
    tree: CompactRange,
    /// Leaf hash of the last mirrored leaf.
    prev: Hash,
    /// The newest source checkpoint verified to hold the mirrored leaves as a prefix.
    checkpoint: Option<String>,
}

/// What the follower last saw.
#[derive(Debug, Clone, Default)]
struct Seen {
    /// Why the last poll failed, if it did (the source unreachable, a bad answer).
    error: Option<String>,
    /// The source's checkpoint size in the last poll.
    source_size: Option<u64>,
}

/// How a mirror stands, for `GET /v1/mirrors`, `/readyz` and `/metrics`.
#[derive(Debug, Clone)]
pub struct MirrorState {
    pub name: String,
    pub url: String,
    pub origin: String,
    pub log_key: String,
    /// Leaves mirrored and verified.
    pub size: u64,
    pub checkpoint: Option<String>,
    pub source_size: Option<u64>,
    /// Seconds since the mirror was last in step with its source (since start if never).
    pub lag_seconds: f64,
    pub error: Option<String>,
    pub fork: Option<Fork>,
    pub leaves_total: u64,
}

/// A licence as a mirrored log leaves it, with the head it holds as of.
#[derive(Debug, Clone)]
pub struct Mirrored {
    pub source: String,
    pub origin: String,
    pub state: LicenceState,
    /// Leaves of the source log mirrored when it was read: the state holds as of this size.
    pub as_of_size: u64,
    /// Why the state may be out of date (the mirror forked, or has not been in step with its
    /// source since the node started or for longer than `max_lag_seconds`): the status is then
    /// the one as of `as_of_size`, and not taken as valid.
    pub stale: Option<String>,
}

pub struct Mirror {
    pub name: String,
    url: String,
    verifier: Verifier,
    vkey: String,
    token: String,
    /// The source platform's root key.
    root: [u8; 32],
    max_lag_ms: u64,
    backend: Backend,
    /// A fork seen once, from data the source did not sign: recorded only when the next round
    /// sees it again.
    suspect: Mutex<Option<String>>,
    /// The newest verified checkpoint with the mirror's cosignature, made when it was verified.
    cosigned: Mutex<Option<String>>,
    tail: Arc<Mutex<Tail>>,
    /// Held by a RocksDB write from its start until the tail has moved to it: a reader that
    /// meets a row newer than the tail waits on it.
    writing: Arc<Mutex<()>>,
    fork: Mutex<Option<Fork>>,
    seen: Mutex<Seen>,
    started_ms: u64,
    leaves_total: AtomicU64,
    /// Rounds that ended in step with the source: (size, the round's start in unix ms), oldest
    /// first, at most `IN_STEP_KEPT`. How old a replica's answer is.
    in_step: Mutex<std::collections::VecDeque<(u64, u64)>>,
    witness: Option<Arc<dyn NoteSigner + Send + Sync>>,
    http: reqwest::Client,
}

fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// A poll's failure: the source is not answering as it should (tried again), or it forked:
/// why, the conflicting checkpoint, and whether two signed checkpoints prove it (else it is
/// recorded only when the next round finds it again).
enum Failure {
    Retry(String),
    Fork(String, String, bool),
}

impl Failure {
    /// A fork seen in data the source did not sign (leaves, proofs): checked again next round.
    fn suspected(why: String) -> Self {
        Failure::Fork(why, String::new(), false)
    }
}

impl Mirror {
    /// Opens the mirror of `source` on `backend` and checks what it holds: the stored
    /// checkpoint verifies under the pinned key and covers the mirrored leaves (the tree over
    /// them is its tree when the sizes are equal).
    pub async fn open(
        source: &SourceConfig,
        backend: Backend,
        witness: Option<Arc<dyn NoteSigner + Send + Sync>>,
        max_lag_seconds: u64,
    ) -> Result<Self, String> {
        let root = crate::crypto::trust::certificate_key(&source.root)
            .map_err(|e| format!("source {}: root: {e}", source.name))?
            .to_bytes();
        let verifier = Verifier::parse(&source.log_key).map_err(|e| format!("source {}: log key: {e}", source.name))?;
        let token = crate::fetch::read_token(&source.token_file).map_err(|e| format!("source {}: {e}", source.name))?;
        let loaded = backend.load(&source.name).await.map_err(|e| format!("mirror of {}: {e}", source.name))?;
        check_loaded(&loaded, &verifier).map_err(|e| format!("mirror of {}: {e}", source.name))?;
        let http = crate::fetch::client().map_err(|e| format!("mirror of {}: {e}", source.name))?;
        Ok(Self {
            name: source.name.clone(),
            url: source.url.trim_end_matches('/').to_string(),
            verifier,
            vkey: source.log_key.clone(),
            token,
            root,
            max_lag_ms: max_lag_seconds.saturating_mul(1000),
            backend,
            suspect: Mutex::new(None),
            cosigned: Mutex::new(None),
            tail: Arc::new(Mutex::new(Tail { tree: loaded.tree, prev: loaded.prev, checkpoint: loaded.checkpoint })),
            writing: Arc::new(Mutex::new(())),
            fork: Mutex::new(loaded.fork),
            seen: Mutex::new(Seen::default()),
            started_ms: now_ms(),
            leaves_total: AtomicU64::new(0),
            in_step: Mutex::new(std::collections::VecDeque::new()),
            witness,
            http,
        })
    }

    /// Reads the tail again from the backend (after a failed round: a database that failed
    /// over may have lost the last part, which is then fetched again).
    async fn reload(&self) -> Result<(), String> {
        let loaded = self.backend.load(&self.name).await?;
        check_loaded(&loaded, &self.verifier)?;
        *lock(&self.tail) = Tail { tree: loaded.tree, prev: loaded.prev, checkpoint: loaded.checkpoint };
        if loaded.fork.is_some() {
            *lock(&self.fork) = loaded.fork;
        }
        Ok(())
    }

    pub fn origin(&self) -> &str {
        self.verifier.name()
    }

    pub fn state(&self) -> MirrorState {
        let tail = lock(&self.tail);
        let seen = lock(&self.seen).clone();
        let since = self.in_step_at().unwrap_or(self.started_ms);
        MirrorState {
            name: self.name.clone(),
            url: self.url.clone(),
            origin: self.origin().to_string(),
            log_key: self.vkey.clone(),
            size: tail.tree.size(),
            checkpoint: tail.checkpoint.clone(),
            source_size: seen.source_size,
            lag_seconds: now_ms().saturating_sub(since) as f64 / 1000.0,
            error: seen.error,
            fork: lock(&self.fork).clone(),
            leaves_total: self.leaves_total.load(Ordering::Relaxed),
        }
    }

    /// The newest checkpoint verified in step with the source, with this mirror's cosignature
    /// (C2SP tlog-cosignature) made when it was verified, when it has a witness key; before the
    /// first round in step since start, the stored checkpoint as the source signed it.
    pub fn cosigned(&self) -> Option<String> {
        lock(&self.cosigned).clone().or_else(|| lock(&self.tail).checkpoint.clone())
    }

    /// Cosigns `note`, verified now: the text the log signed (as `open_note` reads it).
    fn cosign(&self, note: &str) {
        let line = match (&self.witness, crate::log::note::open_note(note, &self.verifier)) {
            (Some(w), Ok(text)) => crate::log::cosign::cosign(text, now_ms() / 1000, w.as_ref()),
            _ => String::new(),
        };
        *lock(&self.cosigned) = Some(format!("{note}{line}"));
    }

    /// The licence `id` as the mirrored leaves leave it, with the size it holds as of.
    pub fn licence(&self, id: &str) -> Result<Option<Mirrored>, String> {
        let found = match &self.backend {
            // The size, then the row: the row is at least as new as the size. A row newer than
            // it (its last leaf at or past the size) is from a part being written: read again
            // once that write is done and its size is the tail's.
            Backend::Rocks(store) => {
                let read = || -> Result<(Option<LicenceState>, u64), String> {
                    let size = lock(&self.tail).tree.size();
                    let row = store.get(Cf::Licences, &licence_key(id)).map_err(|e| e.to_string())?;
                    let state = row
                        .map(|r| serde_json::from_slice::<LicenceState>(&r))
                        .transpose()
                        .map_err(|e| format!("mirrored licence {id}: {e}"))?;
                    Ok((state, size))
                };
                let (state, size) = match read()? {
                    (Some(st), size) if st.last_index >= size => {
                        let _written = lock(&self.writing);
                        read()?
                    }
                    read => read,
                };
                state.map(|st| (st, size))
            }
            // One statement reads the state and the size: one snapshot.
            Backend::Postgres(pg) => pg.licence_blocking(&self.name, id)?,
        };
        let replica = matches!(&self.backend, Backend::Postgres(pg) if pg.reads_replica());
        let stale = self.staleness().or_else(|| match (&found, replica) {
            (Some((_, as_of)), true) => self.replica_behind(*as_of),
            _ => None,
        });
        Ok(found.map(|(state, as_of_size)| Mirrored {
            source: self.name.clone(),
            origin: self.origin().to_string(),
            state,
            as_of_size,
            stale,
        }))
    }

    /// Unix milliseconds of the start of the last round that ended in step with the source.
    fn in_step_at(&self) -> Option<u64> {
        lock(&self.in_step).back().map(|&(_, at)| at)
    }

    /// Notes that a round started at `started` (unix ms) ended in step at `size` leaves.
    fn was_in_step(&self, size: u64, started: u64) {
        let mut r = lock(&self.in_step);
        match r.back_mut() {
            Some(last) if last.0 == size => last.1 = started,
            _ => {
                if r.len() == IN_STEP_KEPT {
                    r.pop_front();
                }
                r.push_back((size, started));
            }
        }
    }

    /// Why an answer read as of `as_of` leaves (on a replica) is out of date, if it is: the
    /// latest round in step at or below that size started more than `max_lag_seconds` ago, or
    /// no kept round is at or below it.
    fn replica_behind(&self, as_of: u64) -> Option<String> {
        let behind = behind_ms(&lock(&self.in_step), as_of, now_ms());
        let size = lock(&self.tail).tree.size();
        match behind {
            Some(ms) if ms <= self.max_lag_ms => None,
            Some(ms) => Some(format!(
                "the database answering for the mirror of {} holds {as_of} of {size} leaves: the source's state \
                 of {:.0} s ago (more than {} s)",
                self.name,
                ms as f64 / 1000.0,
                self.max_lag_ms / 1000
            )),
            None => Some(format!(
                "the database answering for the mirror of {} holds {as_of} of {size} leaves, older than any \
                 round in step since this node started",
                self.name
            )),
        }
    }

    /// Why this mirror's state may be out of date, if it may.
    fn staleness(&self) -> Option<String> {
        if let Some(f) = lock(&self.fork).as_ref() {
            return Some(format!("the mirror of {} stopped following it: {}", self.name, f.why));
        }
        // Not in step since this process started: nothing says how old the stored state is.
        let Some(since) = self.in_step_at() else {
            return Some(format!("the mirror of {} has not been in step with it since this node started", self.name));
        };
        let lag = now_ms().saturating_sub(since);
        (lag > self.max_lag_ms).then(|| {
            format!(
                "the mirror of {} has not been in step with it for {:.0} s (more than {} s)",
                self.name,
                lag as f64 / 1000.0,
                self.max_lag_ms / 1000
            )
        })
    }

    /// The body of `GET path`, refused past `max` bytes.
    async fn get_bytes(&self, path: &str, max: usize) -> Result<Vec<u8>, String> {
        crate::fetch::read_limited(self.get(path).await?, max).await.map_err(|e| format!("GET {path}: {e}"))
    }

    async fn get(&self, path: &str) -> Result<reqwest::Response, String> {
        let res = self.http.get(format!("{}{path}", self.url)).bearer_auth(&self.token).send().await.map_err(|e| {
            // The detail (addresses, errors) is for the log; `GET /v1/mirrors` is public.
            tracing::warn!(source = %self.name, path, error = %e, "mirror: the source did not answer");
            format!("GET {path}: the source did not answer")
        })?;
        if !res.status().is_success() {
            return Err(format!("GET {path}: {}", res.status()));
        }
        Ok(res)
    }

    /// Leaves `from..to` of a log whose signed size is `size`, from its entry bundles, up to 4
    /// fetched at once, at most `MAX_PART_BYTES` in all.
    async fn fetch(&self, from: u64, to: u64, size: u64) -> Result<Vec<Vec<u8>>, String> {
        use futures_util::{StreamExt, TryStreamExt};
        let tiles = (from / TILE_WIDTH..to.div_ceil(TILE_WIDTH)).map(|n| Tile {
            level: None,
            index: n,
            width: TILE_WIDTH.min(size - n * TILE_WIDTH),
        });
        let bundles: Vec<(Tile, Vec<u8>)> = futures_util::stream::iter(tiles)
            .map(|tile| async move {
                let bytes = self.get_bytes(&format!("/v1/log/tile/{}", tile.path()), MAX_BUNDLE).await?;
                Ok::<_, String>((tile, bytes))
            })
            .buffered(4)
            .try_collect()
            .await?;
        if bundles.iter().map(|(_, b)| b.len()).sum::<usize>() > MAX_PART_BYTES {
            return Err(format!("leaves {from}..{to} are over {MAX_PART_BYTES} bytes"));
        }
        let mut out = Vec::with_capacity((to - from) as usize);
        for (tile, bytes) in bundles {
            let entries = bundle_entries(&bytes)?;
            if entries.len() as u64 != tile.width {
                return Err(format!("entry bundle {} holds {} leaves, not {}", tile.path(), entries.len(), tile.width));
            }
            for (i, e) in entries.into_iter().enumerate() {
                if (from..to).contains(&(tile.index * TILE_WIDTH + i as u64)) {
                    out.push(e.to_vec());
                }
            }
        }
        Ok(out)
    }

    /// One round: fetch the source's checkpoint and mirror up to it. `Ok(true)` when in step.
    pub async fn poll(self: &Arc<Self>) -> bool {
        if lock(&self.fork).is_some() {
            return false;
        }
        let started = now_ms();
        if lock(&self.seen).error.is_some() {
            if let Err(e) = self.reload().await {
                tracing::warn!(source = %self.name, error = %e, "mirror: the mirrored state could not be read");
                lock(&self.seen).error = Some(e);
                return false;
            }
        }
        match self.follow().await {
            Ok(note) => {
                *lock(&self.suspect) = None;
                self.cosign(&note);
                self.was_in_step(lock(&self.tail).tree.size(), started);
                lock(&self.seen).error = None;
                true
            }
            Err(Failure::Fork(why, _, false)) if lock(&self.suspect).is_none() => {
                // Tiles and proofs are not signed: a corrupted answer is told apart from a
                // rewritten history by asking again.
                tracing::warn!(source = %self.name, why = %why, "mirror: a suspected fork; checked again next round");
                *lock(&self.suspect) = Some(why.clone());
                lock(&self.seen).error = Some(format!("suspected fork, checked again next round: {why}"));
                false
            }
            Err(Failure::Retry(why)) => {
                tracing::warn!(source = %self.name, error = %why, "mirror: source not followed this round");
                lock(&self.seen).error = Some(why);
                false
            }
            Err(Failure::Fork(why, conflicting, _)) => {
                let fork = Fork {
                    detected_at: (now_ms() / 1000) as i64,
                    why,
                    verified: lock(&self.tail).checkpoint.clone(),
                    conflicting,
                };
                tracing::error!(
                    source = %self.name, why = %fork.why,
                    "MIRROR FORK: the source's log is not consistent with what this mirror verified; it is no longer \
                     followed, and the verified state stays served"
                );
                if let Err(e) = self.backend.record_fork(&self.name, &fork).await {
                    tracing::error!(source = %self.name, error = %e, "mirror: the fork record was not written");
                }
                *lock(&self.fork) = Some(fork);
                false
            }
        }
    }

    async fn follow(self: &Arc<Self>) -> Result<String, Failure> {
        let note = self.get_bytes("/v1/log/checkpoint", MAX_NOTE).await.map_err(Failure::Retry)?;
        let note = String::from_utf8(note).map_err(|_| Failure::Retry("the checkpoint is not UTF-8".into()))?;
        // A checkpoint not signed by the pinned key proves nothing: not a fork, a bad answer.
        let cp = Checkpoint::open(&note, &self.verifier)
            .map_err(|e| Failure::Retry(format!("the checkpoint does not verify under the pinned key: {e}")))?;
        lock(&self.seen).source_size = Some(cp.size);
        let fork = |why: String| Failure::Fork(why, note.clone(), false);
        let proven = |why: String| Failure::Fork(why, note.clone(), true);
        let (mine, stored) = {
            let t = lock(&self.tail);
            (t.tree.size(), t.checkpoint.clone())
        };
        // The checkpoint verified last may be ahead of the leaves (a catch-up cut short): the new
        // one must be consistent with it, not only with the leaves.
        if let Some(old) = stored.as_deref().map(|n| Checkpoint::open(n, &self.verifier)) {
            let old = old.map_err(|e| Failure::Retry(format!("the stored checkpoint: {e}")))?;
            if old.size == cp.size && old.root != cp.root {
                return Err(proven(format!("the source signed two different trees of {} leaves", cp.size)));
            }
            if old.size > mine && old.size != cp.size {
                let (a, b) = if old.size < cp.size { (&old, &cp) } else { (&cp, &old) };
                let proof = self.consistency(a.size, b.size).await.map_err(Failure::Retry)?;
                if verify_consistency(a.size, b.size, &proof, &a.root, &b.root).is_err() {
                    return Err(fork(format!(
                        "the source's checkpoints of {} and {} leaves are not consistent",
                        a.size, b.size
                    )));
                }
            }
        }
        if cp.size < mine {
            // An older checkpoint (a cache, a proxy): fine if it is a prefix of the tree
            // mirrored, which the source proves from its own nodes.
            let root = lock(&self.tail).tree.root();
            let proof = if cp.size == 0 {
                Vec::new()
            } else {
                self.consistency(cp.size, mine).await.map_err(Failure::Retry)?
            };
            let prefix = if cp.size == 0 {
                cp.root == crate::log::merkle::empty_root()
            } else {
                verify_consistency(cp.size, mine, &proof, &cp.root, &root).is_ok()
            };
            if !prefix {
                return Err(fork(format!(
                    "the source signed size {} with a root that is not the root of the first {} leaves mirrored",
                    cp.size, cp.size
                )));
            }
            return Err(Failure::Retry(format!("the source answered an older checkpoint ({} < {mine})", cp.size)));
        }
        // Each part is fetched (in a task of its own) while the one before it is verified and
        // written.
        let end_of = |from: u64| end_of_part(from, cp.size);
        let fetch = |from: u64| {
            let (me, size) = (self.clone(), cp.size);
            tokio::spawn(async move { me.fetch_part(from, end_of_part(from, size), size).await })
        };
        // A verified part is written (in a task of its own) while the next one is verified: the
        // next one's licences are read from the part being written (`newer`) before the store.
        let (mut tree, mut prev) = {
            let t = lock(&self.tail);
            (t.tree.clone(), t.prev)
        };
        let mut from = mine;
        let mut next = (from < cp.size).then(|| fetch(from));
        let mut writing: Option<tokio::task::JoinHandle<Result<(), String>>> = None;
        let mut newer = Arc::new(HashMap::new());
        let written = |w: Option<tokio::task::JoinHandle<Result<(), String>>>| async move {
            match w {
                Some(w) => w.await.map_err(|e| Failure::Retry(e.to_string()))?.map_err(Failure::Retry),
                None => Ok(()),
            }
        };
        while let Some(fetching) = next.take() {
            let to = end_of(from);
            let fetched = fetching.await.map_err(|e| Failure::Retry(e.to_string())).and_then(|r| r);
            let verified = match fetched {
                Ok(part) => {
                    next = (to < cp.size).then(|| fetch(to));
                    // The fetch task just spawned waits in this worker's LIFO slot, which no other
                    // worker takes from, until this task yields, and `verify_part` computes for
                    // milliseconds without yielding: yield once, so that the fetch runs here and
                    // the other worker can take this task (fetch and check then overlap; they ran
                    // one after the other).
                    tokio::task::yield_now().await;
                    self.verify_part(from, part, (&tree, prev), &newer, &cp, &note).await
                }
                Err(e) => Err(e),
            };
            // What was verified before is written whatever this part turned out to be.
            written(writing.take()).await?;
            let part = verified.map_err(|e| match e {
                Failure::Fork(why, _, _) => fork(why),
                other => other,
            })?;
            (tree, prev, newer) = (part.tree.clone(), part.prev, part.states.clone());
            let me = self.clone();
            writing = Some(tokio::spawn(async move {
                let count = part.leaves.len() as u64;
                me.backend.commit(&me.name, part, &me.tail, &me.writing).await?;
                me.leaves_total.fetch_add(count, Ordering::Relaxed);
                Ok(())
            }));
            from = to;
        }
        written(writing.take()).await?;
        let tail = lock(&self.tail);
        if tail.tree.root() != cp.root {
            return Err(fork(format!(
                "the source signed size {} with a root that is not the root of the leaves mirrored",
                cp.size
            )));
        }
        Ok(note)
    }

    /// Leaves `from..to` of the log of signed size `size`, each decoded and hashed, and when
    /// `to` is below `size` the consistency proof from `to` to it. A leaf that does not decode
    /// is a suspected fork, as in [`Mirror::verify_part`].
    async fn fetch_part(&self, from: u64, to: u64, size: u64) -> Result<Fetched, Failure> {
        let proof = async {
            if to < size {
                self.consistency(to, size).await.map(Some)
            } else {
                Ok(None)
            }
        };
        let (leaves, proof) = tokio::join!(self.fetch(from, to, size), proof);
        let (leaves, proof) = (leaves.map_err(Failure::Retry)?, proof.map_err(Failure::Retry)?);
        let decoded = leaves
            .iter()
            .enumerate()
            .map(|(i, b)| match Leaf::decode(b) {
                Ok(leaf) => Ok((leaf, leaf_hash(b))),
                Err(e) => {
                    Err(Failure::suspected(format!("the source's leaf {} does not decode: {e}", from + i as u64)))
                }
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Fetched { leaves, decoded, proof })
    }

    /// The source's consistency proof from `from` to `to` leaves.
    async fn consistency(&self, from: u64, to: u64) -> Result<Vec<Hash>, String> {
        let url = format!("/v1/log/proofs/consistency?from={from}&to={to}");
        let body = self.get_bytes(&url, MAX_NOTE).await?;
        let body: ProofAnswer = serde_json::from_slice(&body).map_err(|e| format!("consistency proof: {e}"))?;
        body.hashes()
    }

    /// Verifies leaves `from..` after the tree `tree` whose last leaf hashes to `prev`: the part
    /// to commit when they are the signed tree's (the root at `cp`, or the fetched proof from
    /// their end to it). `newer` holds the states of the part before, which may not be written
    /// yet.
    async fn verify_part(
        &self,
        from: u64,
        fetched: Fetched,
        (tree, prev): (&CompactRange, Hash),
        newer: &HashMap<String, LicenceState>,
        cp: &Checkpoint,
        note: &str,
    ) -> Result<Part, Failure> {
        let fork = Failure::suspected;
        if tree.size() != from {
            return Err(Failure::Retry("the mirror moved under the follower".into()));
        }
        let Fetched { leaves, decoded, proof } = fetched;
        // The states before this part of every licence it is about, in one read: each one's last
        // leaf is the back-pointer the first leaf about it must carry.
        let mut ids: Vec<&str> =
            decoded.iter().filter_map(|(l, _)| l.licence.as_deref()).filter(|id| !newer.contains_key(*id)).collect();
        ids.sort_unstable();
        ids.dedup();
        let mut known = self.backend.licence_states(&self.name, &ids).await.map_err(Failure::Retry)?;
        let mut check = ChainCheck::resume(tree.clone(), prev);
        let mut states: HashMap<String, LicenceState> = HashMap::with_capacity(leaves.len());
        // Each licence's newest leaf is its state's: this part's, else the stored one, else the
        // one of the part being written.
        for (i, (leaf, hash)) in decoded.iter().enumerate() {
            let index = from + i as u64;
            let id = leaf.licence.as_deref();
            let before = id.and_then(|id| states.get(id).or_else(|| known.get(id)).or_else(|| newer.get(id)));
            check
                .push_known(*hash, leaf, before.map(|s| s.last_index))
                .map_err(|e| fork(format!("the source's leaves do not follow the ones mirrored: {e}")))?;
            if let Some(id) = id {
                match states.get_mut(id) {
                    Some(st) => st.apply(index, leaf),
                    None => {
                        let mut st = known.remove(id).or_else(|| newer.get(id).cloned()).unwrap_or_default();
                        st.apply(index, leaf);
                        states.insert(id.to_string(), st);
                    }
                }
            }
        }
        let rebuilt = check.tree();
        let end = rebuilt.size();
        match proof.as_deref() {
            Some(p) => verify_consistency(end, cp.size, p, &rebuilt.root(), &cp.root).map_err(|e| {
                fork(format!("leaves {from}..{end} are not in the source's signed tree of {}: {e}", cp.size))
            })?,
            None if rebuilt.root() != cp.root => {
                return Err(fork(format!(
                    "the source's leaves {from}..{end} do not hash to the root it signed at size {}",
                    cp.size
                )));
            }
            None => {}
        }
        Ok(Part {
            from,
            tree: check.tree().clone(),
            prev: check.prev(),
            leaves,
            states: Arc::new(states),
            checkpoint: note.to_string(),
        })
    }
}

/// What [`Backend::load`] reads back.
pub struct Loaded {
    tree: CompactRange,
    prev: Hash,
    checkpoint: Option<String>,
    fork: Option<Fork>,
}

/// The stored checkpoint verifies under the pinned key and covers the stored leaves.
fn check_loaded(loaded: &Loaded, verifier: &Verifier) -> Result<(), String> {
    let size = loaded.tree.size();
    match &loaded.checkpoint {
        Some(note) => {
            let cp = Checkpoint::open(note, verifier).map_err(|e| format!("stored checkpoint: {e}"))?;
            if cp.size < size || (cp.size == size && cp.root != loaded.tree.root()) {
                return Err(format!("the stored checkpoint (size {}) does not cover the {size} leaves", cp.size));
            }
            Ok(())
        }
        None if size > 0 => Err("leaves without a checkpoint".into()),
        None => Ok(()),
    }
}

/// A part's leaves as fetched, each decoded and with its leaf hash, and the consistency proof
/// from their end to the signed size (none for the last part).
struct Fetched {
    leaves: Vec<Vec<u8>>,
    decoded: Vec<(Leaf, Hash)>,
    proof: Option<Vec<Hash>>,
}

/// Verified leaves `from..` and all that follows from them, written at once.
pub struct Part {
    from: u64,
    leaves: Vec<Vec<u8>>,
    states: Arc<HashMap<String, LicenceState>>,
    /// The tree over every leaf mirrored with these.
    tree: CompactRange,
    prev: Hash,
    checkpoint: String,
}

/// Where a mirror keeps what it verified: a RocksDB store per source (entry bundles, the tree's
/// peaks, licence states; spec/formats.md §15), or PostgreSQL tables shared by every source (`pg`).
pub enum Backend {
    Rocks(Arc<dyn Store>),
    Postgres(Arc<pg::PgBackend>),
}

impl Backend {
    async fn load(&self, source: &str) -> Result<Loaded, String> {
        let store = match self {
            Backend::Rocks(store) => store,
            Backend::Postgres(pg) => return pg.load(source).await,
        };
        let get = |k: &[u8]| store.get(Cf::Meta, k).map_err(|e| e.to_string());
        let size = match get(META_SIZE)? {
            Some(b) => u64::from_be_bytes(b.as_slice().try_into().map_err(|_| "bad size row".to_string())?),
            None => 0,
        };
        if size > 0 && get(META_LAYOUT)?.as_deref() != Some(LAYOUT) {
            return Err("this mirror store has an earlier layout (a row a leaf); move it away and the source is \
                        mirrored again"
                .into());
        }
        let peaks = get(META_PEAKS)?.unwrap_or_default();
        if peaks.len() % 32 != 0 {
            return Err("bad peaks row".into());
        }
        let peaks = peaks.chunks(32).map(|c| c.try_into().unwrap_or_default()).collect();
        let tree = CompactRange::from_peaks(size, peaks).map_err(|e| format!("the stored tree: {e}"))?;
        // The last entry bundle against the tree's right edge: the leaves after the last multiple
        // of 256 are the tree's smallest peaks (and a last full bundle its last one, if alone).
        let prev = match size {
            0 => [0; 32],
            n => {
                let t = (n - 1) / TILE_WIDTH;
                let row = store.get(Cf::Leaves, &bundle_key(t)).map_err(|e| e.to_string())?;
                let row = row.ok_or_else(|| format!("the entry bundle of leaf {} is missing", n - 1))?;
                let entries = bundle_entries(&row)?;
                let count = n - t * TILE_WIDTH;
                let mut last = CompactRange::new();
                for e in &entries {
                    last.append(leaf_hash(e));
                }
                let edge = &tree.peaks()[tree.peaks().len().saturating_sub(last.peaks().len())..];
                let alone = count < TILE_WIDTH || (n / TILE_WIDTH) % 2 == 1;
                if entries.len() as u64 != count || (alone && last.peaks() != edge) {
                    return Err(format!(
                        "the entry bundle of leaf {} is not the stored tree's: the store was altered",
                        n - 1
                    ));
                }
                let last = leaf_hash(entries[entries.len() - 1]);
                // A full last bundle inside a larger peak is not checked by the peaks: its last
                // leaf is, against the hash written with it.
                if get(META_PREV)?.as_deref() != Some(last.as_slice()) {
                    return Err(format!("leaf {} is not the one written last: the store was altered", n - 1));
                }
                last
            }
        };
        let checkpoint = get(META_CHECKPOINT)?
            .map(|b| String::from_utf8(b).map_err(|_| "the stored checkpoint is not text".to_string()))
            .transpose()?;
        let fork = get(META_FORK)?
            .map(|b| serde_json::from_slice::<Fork>(&b).map_err(|e| format!("fork record: {e}")))
            .transpose()?;
        Ok(Loaded { tree, prev, checkpoint, fork })
    }

    /// The mirrored states of the licences `ids` (those it knows).
    async fn licence_states(&self, source: &str, ids: &[&str]) -> Result<HashMap<String, LicenceState>, String> {
        match self {
            Backend::Rocks(store) => {
                let mut out = HashMap::new();
                for id in ids {
                    if let Some(row) = store.get(Cf::Licences, &licence_key(id)).map_err(|e| e.to_string())? {
                        let st = serde_json::from_slice(&row).map_err(|e| format!("mirrored licence {id}: {e}"))?;
                        out.insert(id.to_string(), st);
                    }
                }
                Ok(out)
            }
            Backend::Postgres(pg) => pg.licence_states(source, ids).await,
        }
    }

    /// Writes a part in one synced batch (one transaction), then moves `tail` to it. A RocksDB
    /// write holds `writing` until the tail has moved (see [`Mirror::licence`]); the tail lock
    /// itself is held only to move it, so that readers never wait for a write.
    async fn commit(
        &self,
        source: &str,
        part: Part,
        tail: &Arc<Mutex<Tail>>,
        writing: &Arc<Mutex<()>>,
    ) -> Result<(), String> {
        let store = match self {
            Backend::Rocks(store) => store,
            Backend::Postgres(pg) => {
                pg.commit(source, &part).await?;
                let mut t = lock(tail);
                *t = Tail { tree: part.tree.clone(), prev: part.prev, checkpoint: Some(part.checkpoint.to_string()) };
                return Ok(());
            }
        };
        // A synced write blocks: it runs on the runtime's blocking threads.
        let (store, tail, writing) = (store.clone(), tail.clone(), writing.clone());
        tokio::task::spawn_blocking(move || {
            let batch = Self::rocks_rows(store.as_ref(), &part)?;
            let _writing = lock(&writing);
            store.write(batch).map_err(|e| e.to_string())?;
            *lock(&tail) = Tail { tree: part.tree, prev: part.prev, checkpoint: Some(part.checkpoint) };
            Ok(())
        })
        .await
        .map_err(|e| e.to_string())?
    }

    /// A part's rows in a RocksDB store. The leaves as the source's entry bundles, a row a full
    /// or partial bundle: the first one, when the part starts inside it, after the leaves of it
    /// verified before, as stored.
    fn rocks_rows(store: &dyn Store, part: &Part) -> Result<Batch, String> {
        let mut batch = Batch::default();
        let mut index = part.from;
        let mut leaves = part.leaves.iter();
        while index < part.from + part.leaves.len() as u64 {
            let t = index / TILE_WIDTH;
            let mut row = match index % TILE_WIDTH {
                0 => Vec::with_capacity(part.leaves.first().map_or(0, |l| (l.len() + 2) * TILE_WIDTH as usize)),
                held => {
                    let row = store.get(Cf::Leaves, &bundle_key(t)).map_err(|e| e.to_string())?.unwrap_or_default();
                    if bundle_entries(&row)?.len() as u64 != held {
                        return Err(format!("the stored entry bundle {t} does not hold the {held} leaves mirrored"));
                    }
                    row
                }
            };
            let end = ((t + 1) * TILE_WIDTH).min(part.from + part.leaves.len() as u64);
            for leaf in leaves.by_ref().take((end - index) as usize) {
                push_entry(&mut row, leaf)?;
            }
            batch.put(Cf::Leaves, bundle_key(t).to_vec(), row);
            index = end;
        }
        // In key order: each insert into the memtable's skip list then starts where the one
        // before it ended.
        let mut states: Vec<_> = part.states.iter().map(|(id, st)| (licence_key(id), st)).collect();
        states.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        for (key, st) in states {
            batch.put(Cf::Licences, key, serde_json::to_vec(st).unwrap_or_default());
        }
        batch.put(Cf::Meta, META_PEAKS.to_vec(), part.tree.peaks().concat());
        batch.put(Cf::Meta, META_LAYOUT.to_vec(), LAYOUT.to_vec());
        batch.put(Cf::Meta, META_PREV.to_vec(), part.prev.to_vec());
        batch.put(Cf::Meta, META_SIZE.to_vec(), part.tree.size().to_be_bytes().to_vec());
        batch.put(Cf::Meta, META_CHECKPOINT.to_vec(), part.checkpoint.as_bytes().to_vec());
        Ok(batch)
    }

    async fn record_fork(&self, source: &str, fork: &Fork) -> Result<(), String> {
        match self {
            Backend::Rocks(store) => {
                let mut b = Batch::default();
                b.put(Cf::Meta, META_FORK.to_vec(), serde_json::to_vec(fork).unwrap_or_default());
                store.write(b).map_err(|e| e.to_string())
            }
            Backend::Postgres(pg) => pg.record_fork(source, fork).await,
        }
    }
}

/// The part of `GET /v1/log/proofs/consistency`'s answer a mirror reads.
#[derive(Deserialize)]
struct ProofAnswer {
    hashes: Vec<String>,
}

impl ProofAnswer {
    fn hashes(&self) -> Result<Vec<Hash>, String> {
        use base64::Engine;
        self.hashes
            .iter()
            .map(|h| {
                base64::engine::general_purpose::STANDARD
                    .decode(h)
                    .ok()
                    .and_then(|b| b.try_into().ok())
                    .ok_or_else(|| "a consistency proof hash is not 32 bytes of base64".to_string())
            })
            .collect()
    }
}

/// Every mirror of this node.
pub struct Mirrors {
    pub list: Vec<Arc<Mirror>>,
    pub poll: Duration,
}

impl Mirrors {
    /// Opens each source's store under `cfg.data` (made 0700 when missing), or the PostgreSQL
    /// database.
    pub async fn open(
        cfg: &MirrorConfig,
        open_store: impl Fn(&Path) -> Result<Arc<dyn Store>, String>,
    ) -> Result<Self, String> {
        let witness = match &cfg.witness {
            Some(dir) => Some(Arc::new(crate::witness::load_signer(dir)?) as Arc<dyn NoteSigner + Send + Sync>),
            None => None,
        };
        let pg = match &cfg.postgres {
            Some(conn) => Some(Arc::new(pg::PgBackend::connect(conn, cfg.postgres_read.as_deref()).await?)),
            None => None,
        };
        let mut list = Vec::new();
        for s in &cfg.sources {
            let backend = match (&pg, &cfg.data) {
                (Some(pg), _) => Backend::Postgres(pg.clone()),
                (None, Some(data)) => Backend::Rocks(open_store(&data.join(&s.name))?),
                (None, None) => return Err("a mirror needs data or postgres".into()),
            };
            list.push(Arc::new(Mirror::open(s, backend, witness.clone(), cfg.max_lag_seconds).await?));
        }
        Ok(Self { list, poll: Duration::from_millis(cfg.poll_ms) })
    }

    pub fn get(&self, name: &str) -> Option<&Arc<Mirror>> {
        self.list.iter().find(|m| m.name == name)
    }

    /// The licence `id` with the document hash `doc_sha256` in a mirror of the platform whose
    /// root key is `root` (every such mirror is asked; the first that holds that very document
    /// answers). A mirror of another platform is never asked: its log says nothing of this
    /// platform's documents.
    pub fn licence(&self, root: &[u8; 32], id: &str, doc_sha256: &[u8; 32]) -> Result<Option<Mirrored>, String> {
        if doc_sha256 == &[0; 32] {
            return Ok(None);
        }
        // One mirror that cannot be read does not hide another that holds the document.
        let mut failed = None;
        for m in self.list.iter().filter(|m| &m.root == root) {
            match m.licence(id) {
                Ok(Some(found)) if found.state.doc_sha256.as_deref() == Some(&doc_sha256[..]) => {
                    return Ok(Some(found))
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::error!(source = %m.name, error = %e, "mirror: a mirrored licence could not be read");
                    failed = Some(format!("the mirror of {} could not be read", m.name));
                }
            }
        }
        failed.map_or(Ok(None), Err)
    }

    /// Follows every source, each in a task of its own, until the process ends.
    pub fn spawn(self: &Arc<Self>) {
        for m in &self.list {
            let (m, poll) = (m.clone(), self.poll);
            tokio::spawn(async move {
                loop {
                    m.poll().await;
                    tokio::time::sleep(poll).await;
                }
            });
        }
    }

    /// Prometheus lines: per source, leaves mirrored, the source's size, the lag and whether it
    /// forked.
    pub fn metrics(&self) -> String {
        let mut out = String::from(
            "# HELP licvault_mirror_size Leaves of the source log mirrored and verified.\n\
             # TYPE licvault_mirror_size gauge\n",
        );
        let states: Vec<MirrorState> = self.list.iter().map(|m| m.state()).collect();
        for s in &states {
            out += &format!("licvault_mirror_size{{source=\"{}\"}} {}\n", s.name, s.size);
        }
        out += "# HELP licvault_mirror_lag_seconds Seconds since the mirror was last in step with its source.\n\
                # TYPE licvault_mirror_lag_seconds gauge\n";
        for s in &states {
            out += &format!("licvault_mirror_lag_seconds{{source=\"{}\"}} {:.3}\n", s.name, s.lag_seconds);
        }
        out += "# HELP licvault_mirror_forked 1 when the source's log was found inconsistent with what was mirrored.\n\
                # TYPE licvault_mirror_forked gauge\n";
        for s in &states {
            out += &format!("licvault_mirror_forked{{source=\"{}\"}} {}\n", s.name, u8::from(s.fork.is_some()));
        }
        out += "# HELP licvault_mirror_leaves_total Leaves mirrored since start.\n\
                # TYPE licvault_mirror_leaves_total counter\n";
        for s in &states {
            out += &format!("licvault_mirror_leaves_total{{source=\"{}\"}} {}\n", s.name, s.leaves_total);
        }
        out
    }

    /// `/readyz` lines: one per source.
    pub fn readiness(&self) -> String {
        let mut out = String::new();
        for s in self.list.iter().map(|m| m.state()) {
            out += &match (&s.fork, &s.error) {
                (Some(f), _) => format!(
                    "mirror {}: FORKED, not followed since {}: {}; serving {} leaves as verified\n",
                    s.name,
                    time::OffsetDateTime::from_unix_timestamp(f.detected_at)
                        .ok()
                        .and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok())
                        .unwrap_or_default(),
                    f.why,
                    s.size
                ),
                (None, Some(e)) => {
                    format!(
                        "mirror {}: {} leaves, lag {:.1} s, source not answering: {e}\n",
                        s.name, s.size, s.lag_seconds
                    )
                }
                (None, None) => format!("mirror {}: {} leaves, lag {:.1} s\n", s.name, s.size, s.lag_seconds),
            };
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(json: serde_json::Value) -> Result<MirrorConfig, String> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("mirrors.json");
        std::fs::write(&path, json.to_string()).unwrap();
        MirrorConfig::load(&path)
    }

    fn source(name: &str, url: &str) -> serde_json::Value {
        serde_json::json!({"name": name, "url": url, "log_key": "k", "token_file": "t", "root": "r"})
    }

    #[test]
    fn the_configuration_is_refused_unless_it_is_whole_and_safe() {
        let ok = |sources: Vec<serde_json::Value>| serde_json::json!({"data": "d", "sources": sources});
        assert!(load(ok(vec![source("a", "https://a.example"), source("b-2", "http://127.0.0.1:8080")])).is_ok());
        let refused = [
            (ok(vec![source("a", "http://a.example")]), "neither https://"),
            (ok(vec![source("a", "https://a"), source("a", "https://b")]), "named twice"),
            (ok(vec![source("A", "https://a")]), "is not 1–32"),
            (serde_json::json!({"sources": []}), "either data"),
            (serde_json::json!({"data": "d", "postgres": "host=x", "sources": []}), "either data"),
            (serde_json::json!({"data": "d", "poll_ms": 0, "sources": []}), "poll_ms"),
            (serde_json::json!({"data": "d", "sources": [], "extra": 1}), "unknown field"),
            (serde_json::json!({"data": "d", "postgres_read": "host=r", "sources": []}), "goes with postgres"),
        ];
        for (json, why) in refused {
            let e = load(json.clone()).unwrap_err();
            assert!(e.contains(why), "{json}: {e}");
        }
    }

    /// A RocksDB mirror backend in a temporary directory.
    fn rocks() -> (tempfile::TempDir, Arc<dyn Store>, Backend) {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn Store> = Arc::new(crate::store::rocks::RocksStore::open(dir.path()).unwrap());
        (dir, store.clone(), Backend::Rocks(store))
    }

    /// The part of leaves `from..to`, `tree` (over the leaves before) taken to `to`.
    fn part(leaves: &[Vec<u8>], from: usize, to: usize, tree: &mut CompactRange) -> Part {
        for l in &leaves[from..to] {
            tree.append(leaf_hash(l));
        }
        Part {
            from: from as u64,
            leaves: leaves[from..to].to_vec(),
            states: Arc::new(HashMap::new()),
            tree: tree.clone(),
            prev: leaf_hash(&leaves[to - 1]),
            checkpoint: format!("size {to}"),
        }
    }

    /// Rewrites the stored entry bundle `t` as `leaves` with the one at `at` forged.
    fn forge(store: &dyn Store, t: u64, leaves: &[Vec<u8>], at: usize) {
        let mut row = Vec::new();
        for (i, l) in leaves.iter().enumerate() {
            push_entry(&mut row, if i == at { b"forged" } else { l }).unwrap();
        }
        let mut b = Batch::default();
        b.put(Cf::Leaves, bundle_key(t).to_vec(), row);
        store.write(b).unwrap();
    }

    /// The RocksDB layout: parts that start and end inside entry bundles are read back as the
    /// tree and last leaf they made, and an altered bundle is refused at load.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_rocksdb_layout_keeps_the_tree_across_parts_that_split_bundles() {
        let (_dir, store, backend) = rocks();
        let leaves: Vec<Vec<u8>> =
            (0..700u32).map(|i| format!("leaf {i}").repeat(1 + i as usize % 5).into_bytes()).collect();
        let tail = Arc::new(Mutex::new(Tail { tree: CompactRange::new(), prev: [0; 32], checkpoint: None }));
        let writing = Arc::new(Mutex::new(()));
        let mut tree = CompactRange::new();
        for (from, to) in [(0, 300), (300, 301), (301, 512), (512, 513), (513, 700)] {
            backend.commit("city", part(&leaves, from, to, &mut tree), &tail, &writing).await.unwrap();
            let loaded = backend.load("city").await.unwrap();
            assert_eq!((loaded.tree.size(), loaded.tree.root()), (to as u64, tree.root()));
            assert_eq!(loaded.prev, leaf_hash(&leaves[to - 1]));
        }
        let mut kept = Vec::new();
        for t in 0..3 {
            let row = store.get(Cf::Leaves, &bundle_key(t)).unwrap().unwrap();
            kept.extend(bundle_entries(&row).unwrap().into_iter().map(<[u8]>::to_vec));
        }
        assert_eq!(kept, leaves);

        // The last bundle altered: its leaves are no longer the tree's right edge.
        forge(store.as_ref(), 2, &leaves[512..700], 100);
        let e = backend.load("city").await.err().unwrap();
        assert!(e.contains("the store was altered"), "{e}");

        // At 512 leaves the last bundle is full and inside the one peak: its last leaf altered
        // is found all the same.
        let (_dir, store, backend) = rocks();
        backend.commit("city", part(&leaves, 0, 512, &mut CompactRange::new()), &tail, &writing).await.unwrap();
        assert!(backend.load("city").await.is_ok());
        forge(store.as_ref(), 1, &leaves[256..512], 255);
        let e = backend.load("city").await.err().unwrap();
        assert!(e.contains("the store was altered"), "{e}");
    }

    #[test]
    fn a_replica_answer_is_as_old_as_the_last_round_in_step_at_or_below_it() {
        use std::collections::VecDeque;
        // Rounds in step: at 100 leaves (started at t = 1,000 ms), at 200 (5,000), at 300 (9,000).
        let r = VecDeque::from([(100, 1_000), (200, 5_000), (300, 9_000)]);
        assert_eq!(behind_ms(&r, 300, 10_000), Some(1_000));
        assert_eq!(behind_ms(&r, 250, 10_000), Some(5_000), "the source was at 200 at most when 5,000 began");
        assert_eq!(behind_ms(&r, 199, 10_000), Some(9_000));
        // Below every round kept: not known (stale).
        assert_eq!(behind_ms(&r, 50, 10_000), None);
        // A catch-up after an outage ends in step only at its end: the parts it wrote on the way
        // say nothing of how current they were.
        let after_outage = VecDeque::from([(100, 1_000), (900, 600_000)]);
        assert_eq!(behind_ms(&after_outage, 500, 601_000), Some(600_000));
    }

    /// A verdict's state is never newer than the size it is given as of, and only a reader that
    /// meets a row of the part being written waits for that write.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_reader_waits_only_for_a_row_newer_than_the_tail() {
        use crate::log::note::NoteSigner as _;
        let (dir, store, backend) = rocks();
        let token = dir.path().join("token");
        std::fs::write(&token, "t").unwrap();
        let key = crate::log::test_key::K(ed25519_dalek::SigningKey::from_bytes(&[7; 32]));
        let source = SourceConfig {
            name: "city".into(),
            url: "http://127.0.0.1:9".into(),
            root: Path::new(env!("CARGO_MANIFEST_DIR")).join("keys/root.crt.pem"),
            log_key: crate::log::note::verifier_key(key.name(), &key.public_key()),
            token_file: token,
        };
        let mirror = Arc::new(Mirror::open(&source, backend, None, 60).await.unwrap());
        let state = |last_index: u64| LicenceState { last_index, status: Some("valid".into()), ..Default::default() };
        let leaves: Vec<Vec<u8>> = (0..13u32).map(|i| format!("leaf {i}").into_bytes()).collect();
        let mut tree = CompactRange::new();
        let mut first = part(&leaves, 0, 10, &mut tree);
        first.states = Arc::new(HashMap::from([("A".to_string(), state(3)), ("B".to_string(), state(4))]));
        mirror.backend.commit("city", first, &mirror.tail, &mirror.writing).await.unwrap();
        let read = |id: &str| mirror.licence(id).unwrap().map(|m| (m.state.last_index, m.as_of_size));
        assert_eq!(read("A"), Some((3, 10)));

        // A write of leaves 10..13 under way: A's row is already the new one, the tail not yet.
        let writing = lock(&mirror.writing);
        let mut newer = Batch::default();
        newer.put(Cf::Licences, licence_key("A"), serde_json::to_vec(&state(12)).unwrap());
        store.write(newer).unwrap();
        // B's row is not part of it: read at once, as of the tail.
        assert_eq!(read("B"), Some((4, 10)));
        let reader = {
            let mirror = mirror.clone();
            std::thread::spawn(move || mirror.licence("A").unwrap().map(|m| (m.state.last_index, m.as_of_size)))
        };
        std::thread::sleep(Duration::from_millis(100));
        assert!(!reader.is_finished(), "a row newer than the tail was answered as of the tail");
        lock(&mirror.tail).tree = {
            let mut t = tree.clone();
            leaves[10..13].iter().for_each(|l| t.push(leaf_hash(l)));
            t
        };
        drop(writing);
        assert_eq!(reader.join().unwrap(), Some((12, 13)));
    }
}
