//! The platform's status lists (spec/formats.md §9): each licence gets a random index in a list
//! of 2^17 entries at issuance (herd privacy: a list's reader cannot tell which licence it is
//! looking at), its status is kept in `Cf::Status` in the same batch as every change, and
//! `GET /v1/status-lists/{n}` serves the list signed by the platform key.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use super::{unix_now, Vault, VaultError};
use crate::domain::Status;
use crate::status_list::{self, Statuses};
use crate::store::{Cf, Store, StoreError};

/// Entries in every list.
pub const LIST_SIZE: u32 = 1 << 17;
/// Entries a list gets before the next one opens: a free index is then found in at most eight
/// draws on average, and the list's last entries still hide among 16,384 unused ones.
pub const LIST_FILL: u32 = LIST_SIZE / 8 * 7;
/// Seconds a reader may keep a list (the token's `ttl`).
pub const TTL: u64 = 300;
/// A list token expires (`exp`) a day after it was made: a scanner refuses it then.
pub const VALIDITY: i64 = 86_400;
/// A list served is remade when the log has grown since, or when it is older than this.
const REMAKE_AFTER: i64 = 60;

/// The list entry of a status: valid, invalid (withdrawn, annulled, revoked or cancelled),
/// suspended, superseded. Expired and not yet valid come from the document's dates, not from
/// the list.
pub fn code(s: Status) -> u8 {
    match s {
        Status::Valid | Status::Expired | Status::NotYetValid => status_list::VALID,
        Status::Withdrawn | Status::Annulled | Status::Revoked | Status::Cancelled => status_list::INVALID,
        Status::Suspended => status_list::SUSPENDED,
        Status::Superseded => status_list::SUPERSEDED,
    }
}

/// The `status` row of a licence: its entry's code, and for a suspension with an end, the end
/// (unix seconds, i64 BE), after which a list made says valid.
pub fn row(rec: &super::LicenceRecord) -> Vec<u8> {
    let mut row = vec![code(rec.status)];
    if let (Status::Suspended, Some(until)) = (rec.status, rec.suspended_until) {
        row.extend_from_slice(&until.to_be_bytes());
    }
    row
}

/// The entry a `status` row gives at `now`; `None` for a row that is not one.
fn entry(row: &[u8], now: i64) -> Option<u8> {
    match row {
        [s] if *s <= status_list::SUPERSEDED => Some(*s),
        [s, until @ ..] if *s == status_list::SUSPENDED && until.len() == 8 => {
            let until = i64::from_be_bytes(until.try_into().ok()?);
            Some(if now >= until { status_list::VALID } else { status_list::SUSPENDED })
        }
        _ => None,
    }
}

/// `status` key: list (u32 BE) ‖ index (u32 BE).
pub fn key(list: u32, index: u32) -> Vec<u8> {
    [list.to_be_bytes(), index.to_be_bytes()].concat()
}

/// Hands out random free indexes of the open list. Indexes are taken in memory before the
/// document is signed (outside the sequencer); the batch that commits the licence writes its
/// row, so after a restart the open list's used indexes are read back from the rows. An index
/// whose licence never committed is free again then: nothing was ever given out with it.
pub struct Allocator {
    list: u32,
    used: Vec<u64>,
    count: u32,
}

impl Allocator {
    /// The open list (the highest with any row) and its used indexes.
    pub fn load(store: &dyn Store) -> Result<Self, StoreError> {
        let mut list = 0u32;
        while !store.scan_prefix(Cf::Status, &(list + 1).to_be_bytes(), 1)?.is_empty() {
            list += 1;
        }
        let mut a = Self { list, used: vec![0; LIST_SIZE as usize / 64], count: 0 };
        let prefix = list.to_be_bytes();
        let mut start = prefix.to_vec();
        loop {
            let rows = store.scan_prefix_from(Cf::Status, &prefix, &start, 16_384)?;
            let Some((last, _)) = rows.last() else { break };
            start = [last.as_slice(), &[0]].concat();
            for (k, _) in &rows {
                if let Some(i) = k.get(4..8).and_then(|b| b.try_into().ok()).map(u32::from_be_bytes) {
                    a.mark(i);
                }
            }
        }
        if a.count >= LIST_FILL {
            a.open_next();
        }
        Ok(a)
    }

    fn mark(&mut self, i: u32) {
        let (w, b) = ((i / 64) as usize, i % 64);
        if self.used[w] & (1 << b) == 0 {
            self.used[w] |= 1 << b;
            self.count += 1;
        }
    }

    fn open_next(&mut self) {
        self.list += 1;
        self.used.iter_mut().for_each(|w| *w = 0);
        self.count = 0;
    }

    /// A uniformly random free index of the open list: (list, index).
    pub fn allocate(&mut self) -> Result<(u32, u32), VaultError> {
        if self.count >= LIST_FILL {
            self.open_next();
        }
        loop {
            let mut r = [0u8; 4];
            getrandom::fill(&mut r)
                .map_err(|e| VaultError::Internal(format!("no randomness for a status index: {e}")))?;
            let i = u32::from_le_bytes(r) % LIST_SIZE;
            if self.used[(i / 64) as usize] & (1 << (i % 64)) == 0 {
                self.mark(i);
                return Ok((self.list, i));
            }
        }
    }

    /// Gives back an index whose licence was never written (its batch was refused before any
    /// write), so that refused requests do not use up the list. An index of a list no longer
    /// open stays taken: harmless, and free again after a restart.
    pub fn release(&mut self, list: u32, i: u32) {
        let (w, b) = ((i / 64) as usize, i % 64);
        if list == self.list && self.used.get(w).is_some_and(|u| u & (1 << b) != 0) {
            self.used[w] &= !(1 << b);
            self.count -= 1;
        }
    }

    /// The number of the open list (lists 0..=open exist).
    pub fn open_list(&self) -> u32 {
        self.list
    }
}

/// A signed list and when it was made.
struct Made {
    /// The count of status changes it reflects.
    changes: u64,
    at: i64,
    token: Arc<Vec<u8>>,
}

/// The lists served lately, by number, and a count of the status changes committed since start
/// (a new licence's entry is 0, as an entry never written reads: only changes call for a new
/// list). The mutex is held while a list is made: concurrent readers wait for it rather than
/// each make it again.
#[derive(Default)]
pub struct ListCache {
    made: Mutex<HashMap<u32, Made>>,
    changes: std::sync::atomic::AtomicU64,
}

impl ListCache {
    /// Called after a batch that changed a licence's status has committed.
    pub fn changed(&self) {
        self.changes.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }
}

impl Vault {
    /// The status-list URI of list `n`: `https://<host of the log origin>/v1/status-lists/<n>`
    /// (the origin is the deployment's stable name; the URI is signed into every document).
    pub fn status_list_uri(&self, n: u32) -> String {
        format!("{}{n}", self.status_list_prefix())
    }

    pub fn status_list_prefix(&self) -> String {
        let host = self.origin.split('/').next().unwrap_or(&self.origin);
        format!("https://{host}/v1/status-lists/")
    }

    /// A random free entry for a new licence: (list, index), and the `status_ref` naming it.
    pub(super) fn allocate_status(&self) -> Result<((u32, u32), crate::domain::StatusRef), VaultError> {
        let (list, index) = self.status_alloc.lock().unwrap_or_else(|p| p.into_inner()).allocate()?;
        Ok(((list, index), crate::domain::StatusRef { uri: self.status_list_uri(list), index }))
    }

    /// See [`Allocator::release`].
    pub(super) fn release_status(&self, (list, index): (u32, u32)) {
        self.status_alloc.lock().unwrap_or_else(|p| p.into_inner()).release(list, index);
    }

    /// Lists that exist: 0 up to the open one.
    pub fn status_list_count(&self) -> u32 {
        self.status_alloc.lock().unwrap_or_else(|p| p.into_inner()).open_list() + 1
    }

    /// `GET /v1/status-lists/{n}`: the list token, signed by the platform key; remade after a
    /// status change has committed or when it is a minute old, so a change shows in the next list
    /// fetched. Blocks while a list is made (~70 ms): call it off the async workers.
    pub fn status_list(&self, n: u32) -> Result<Arc<Vec<u8>>, VaultError> {
        if n >= self.status_list_count() {
            return Err(VaultError::NotFound(format!("status list {n}")));
        }
        // Read before the rows: a change committed after this is in the next list.
        let changes = self.status_cache.changes.load(std::sync::atomic::Ordering::SeqCst);
        let now = unix_now();
        let mut made = self.status_cache.made.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(m) = made.get(&n).filter(|m| m.changes == changes && now - m.at < REMAKE_AFTER) {
            return Ok(m.token.clone());
        }
        let signer = self.annotation.as_ref().ok_or_else(|| {
            VaultError::NoAnnotationKey("status lists are signed by the platform key (annotation.key.pem)".into())
        })?;
        let token = Arc::new(make_list(self.store.as_ref(), n, &self.status_list_uri(n), signer, now)?);
        made.insert(n, Made { changes, at: now, token: token.clone() });
        Ok(token)
    }
}

/// Reads list `n`'s rows from `store` and signs the list token with `signer` (the platform key)
/// as of `now`. Public for the benchmark, which times it over a million licences.
pub fn make_list(
    store: &dyn Store,
    n: u32,
    uri: &str,
    signer: &crate::crypto::signer::Ed25519Signer,
    now: i64,
) -> Result<Vec<u8>, VaultError> {
    let mut statuses = Statuses::new(LIST_SIZE as usize);
    let prefix = n.to_be_bytes();
    let mut start = prefix.to_vec();
    loop {
        let rows = store.scan_prefix_from(Cf::Status, &prefix, &start, 16_384)?;
        let Some((last, _)) = rows.last() else { break };
        start = [last.as_slice(), &[0]].concat();
        for (k, v) in &rows {
            let index = k.get(4..8).and_then(|b| b.try_into().ok()).map(u32::from_be_bytes);
            match (index, entry(v, now)) {
                (Some(i), Some(s)) if i < LIST_SIZE => statuses.set(i as usize, s),
                _ => {
                    return Err(super::issue::inconsistent(format!(
                        "status row {} of list {n} is not an index and a status",
                        hex::encode(k)
                    )))
                }
            }
        }
    }
    let payload = status_list::payload(uri, now, now + VALIDITY, TTL, &statuses);
    Ok(crate::crypto::cose::sign_typed(signer, status_list::TYP, payload))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An entry given back is free again (and counted so); one of a list no longer open, or
    /// not taken, changes nothing.
    #[test]
    fn a_released_entry_is_free_again() {
        let store = crate::store::MemoryStore::new();
        let mut a = Allocator::load(&store).unwrap();
        let (list, i) = a.allocate().unwrap();
        assert_eq!((a.count, a.used[(i / 64) as usize] & (1 << (i % 64)) != 0), (1, true));
        a.release(list + 1, i);
        assert_eq!(a.count, 1);
        a.release(list, i);
        assert_eq!((a.count, a.used[(i / 64) as usize] & (1 << (i % 64)) != 0), (0, false));
        a.release(list, i);
        assert_eq!(a.count, 0, "released twice");
    }

    #[test]
    fn a_suspension_with_an_end_is_listed_valid_from_its_end() {
        let row = |status, until| {
            let rec = crate::vault::LicenceRecord {
                id: "x".into(),
                type_code: String::new(),
                issuer: String::new(),
                status,
                doc_sha256: String::new(),
                valid_from: 0,
                valid_until: None,
                issued_index: 0,
                last_index: 0,
                predecessor: None,
                successor: None,
                successor_kind: None,
                status_entry: Some((0, 0)),
                suspended_until: until,
            };
            super::row(&rec)
        };
        assert_eq!(entry(&row(Status::Suspended, Some(100)), 99), Some(status_list::SUSPENDED));
        assert_eq!(entry(&row(Status::Suspended, Some(100)), 100), Some(status_list::VALID));
        assert_eq!(entry(&row(Status::Suspended, None), 1_000), Some(status_list::SUSPENDED));
        // An end is kept only for a suspension; every ending is invalid.
        assert_eq!(row(Status::Revoked, Some(100)), vec![status_list::INVALID]);
        for s in [Status::Withdrawn, Status::Annulled, Status::Cancelled] {
            assert_eq!(entry(&row(s, None), 0), Some(status_list::INVALID));
        }
        // Anything else is not a row.
        assert_eq!(entry(&[status_list::INVALID, 0, 0, 0, 0, 0, 0, 0, 1], 0), None);
        assert_eq!(entry(&[4], 0), None);
        assert_eq!(entry(&[], 0), None);
    }
}
