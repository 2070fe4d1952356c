//! Listing and reconciliation for issuing departments (issue 9, scope 5): a department's licences
//! in issue order (by type, by the number printed on them, by status and issue date), and a
//! changes feed of every leaf that changed one of its licences. Both read index rows (`listing`,
//! spec/formats.md §4) written in the same batch as the leaf they follow from. A listing row
//! carries the licence's summary (number, dates, status), rewritten in the batch of every status
//! change, so a listing page is a range scan and no point read: its cost does not grow with
//! the store. A department that received licences by transfer merges, in issue order, one scan
//! more per transfer (the rows of the department they came from, of the transfer's type, below
//! the transfer's leaf; a single licence is one point read). Filters that no index row orders (status, issue dates) are applied while scanning,
//! at most [`MAX_SCAN`] rows a page: a page can then come back short, with a cursor to go on from.

use super::{Client, LicenceRecord, Role, Vault, VaultError};
use crate::domain::{LicenceId, Status};
use crate::log::sequencer::Tx;
use crate::store::{keys, Cf};

/// Rows a page scans at most, whatever its filters.
pub const MAX_SCAN: usize = 5_000;
/// The largest page.
pub const MAX_PAGE: usize = 1_000;

/// `meta` flag: the listing rows of every licence are in the current form ([`Listed`]), written
/// at start-up for licences issued before (the first form, `listing-v1`, had no summary).
const BUILT: &[u8] = b"listing-v2";
/// `meta` flag of the first form's rows.
const FIRST_FORM: &[u8] = b"listing-v1";

/// The statuses a record holds, in the order of their code in a listing row.
const RECORDED: [Status; 7] = [
    Status::Valid,
    Status::Suspended,
    Status::Withdrawn,
    Status::Annulled,
    Status::Revoked,
    Status::Cancelled,
    Status::Superseded,
];

/// The first byte of a listing row in the current form.
const FORM: u8 = 2;

/// A licence as its listing rows summarise it: what a department needs to reconcile, without
/// reading the record or the document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    pub id: String,
    /// The number printed on it.
    pub number: String,
    /// The issue date (a migrated licence's own, else the signing time), unix seconds.
    pub issued: i64,
    pub valid_from: i64,
    pub valid_until: Option<i64>,
    /// The recorded status; [`Listed::effective`] adds the dates.
    pub status: Status,
    pub suspended_until: Option<i64>,
    /// The issuance leaf.
    pub log_index: u64,
}

impl Listed {
    /// The row's value: form (1) ‖ issued, valid_from, valid_until (i64::MAX: long-term) (8 each)
    /// ‖ status code (1) ‖ suspended_until (i64::MIN: none) (8) ‖ id length (1) ‖ id ‖ number.
    fn encode(&self) -> Vec<u8> {
        // A record holds only these statuses, and an identifier (GB/T 36904) is under 100 bytes.
        debug_assert!(RECORDED.contains(&self.status) && self.id.len() <= usize::from(u8::MAX));
        let code = RECORDED.iter().position(|s| *s == self.status).unwrap_or(0) as u8;
        let mut v = Vec::with_capacity(36 + self.id.len() + self.number.len());
        v.push(FORM);
        v.extend_from_slice(&self.issued.to_be_bytes());
        v.extend_from_slice(&self.valid_from.to_be_bytes());
        v.extend_from_slice(&self.valid_until.unwrap_or(i64::MAX).to_be_bytes());
        v.push(code);
        v.extend_from_slice(&self.suspended_until.unwrap_or(i64::MIN).to_be_bytes());
        v.push(self.id.len() as u8);
        v.extend_from_slice(self.id.as_bytes());
        v.extend_from_slice(self.number.as_bytes());
        v
    }

    fn decode(key: &[u8], v: &[u8]) -> Option<Self> {
        let i64_at = |at: usize| v.get(at..at + 8).and_then(|b| b.try_into().ok()).map(i64::from_be_bytes);
        if v.first() != Some(&FORM) {
            return None;
        }
        let id_len = *v.get(34)? as usize;
        let text = |r: std::ops::Range<usize>| v.get(r).and_then(|b| std::str::from_utf8(b).ok()).map(str::to_string);
        Some(Self {
            issued: i64_at(1)?,
            valid_from: i64_at(9)?,
            valid_until: Some(i64_at(17)?).filter(|t| *t != i64::MAX),
            status: *RECORDED.get(*v.get(25)? as usize)?,
            suspended_until: Some(i64_at(26)?).filter(|t| *t != i64::MIN),
            id: text(35..35 + id_len)?,
            number: text(35 + id_len..v.len())?,
            log_index: key.get(key.len().checked_sub(8)?..).and_then(|b| b.try_into().ok()).map(u64::from_be_bytes)?,
        })
    }

    /// The status now, with the dates.
    pub fn effective(&self, now: i64) -> Status {
        self.status.effective(now, self.valid_from, self.valid_until, self.suspended_until)
    }
}

/// Writes the listing rows of a licence issued at leaf `index` (in its issuance batch).
pub(super) fn put_listing(tx: &mut Tx<'_>, l: &crate::domain::Licence, index: u64) {
    let (issuer, type_code) = (l.issuer().to_string(), l.id.type_code().to_string());
    for (key, value) in listing_rows(&issuer, &type_code, &summary(l, index, Status::Valid, None)) {
        tx.put(Cf::Listing, key, value);
    }
}

/// Rewrites the listing rows of a licence whose record changed (a status change, superseded),
/// in the batch that changes it. A licence with no rows (left out of the start-up build because
/// it disagreed with its log) stays without.
pub(super) fn relist(tx: &mut Tx<'_>, rec: &LicenceRecord) -> Result<(), VaultError> {
    let key = keys::listed(&rec.issuer, rec.issued_index);
    // No rows, or rows of another form: the licence was left out of the listing (it disagreed
    // with its log at the start-up build) and stays out.
    let Some(mut listed) = tx.get(Cf::Listing, &key)?.and_then(|row| Listed::decode(&key, &row)) else {
        return Ok(());
    };
    listed.status = rec.status;
    listed.suspended_until = rec.suspended_until;
    for (key, value) in listing_rows(&rec.issuer, &rec.type_code, &listed) {
        tx.put(Cf::Listing, key, value);
    }
    Ok(())
}

/// The four listing rows a licence with record `rec` must have (`licvault check`).
pub(super) fn expected_rows(l: &crate::domain::Licence, rec: &LicenceRecord) -> Vec<(Vec<u8>, Vec<u8>)> {
    listing_rows(&rec.issuer, &rec.type_code, &summary(l, rec.issued_index, rec.status, rec.suspended_until))
}

/// Whether the store's listing rows are in the current form (written at start-up once).
pub(super) fn built(store: &dyn crate::store::Store) -> Result<bool, crate::store::StoreError> {
    Ok(store.get(Cf::Meta, BUILT)?.is_some())
}

fn summary(l: &crate::domain::Licence, index: u64, status: Status, suspended_until: Option<i64>) -> Listed {
    Listed {
        id: l.id.to_string(),
        number: l.number.clone(),
        // The issue date: a migrated licence's own, else the signing time.
        issued: l.issue_date.map_or(l.issued_at, crate::domain::start_of_day_cst),
        valid_from: l.valid_from,
        valid_until: l.valid_until,
        status,
        suspended_until,
        log_index: index,
    }
}

fn listing_rows(issuer: &str, type_code: &str, l: &Listed) -> Vec<(Vec<u8>, Vec<u8>)> {
    let value = l.encode();
    let index = l.log_index;
    vec![
        (keys::listed(issuer, index), value.clone()),
        (keys::listed_type(issuer, type_code, index), value.clone()),
        (keys::listed_all(index), value.clone()),
        (keys::listed_number(type_code, &l.number, index), value),
    ]
}

/// What a listing asks for (`GET /v1/licences`).
#[derive(Debug, Clone, Default)]
pub struct ListQuery {
    /// An administrator's choice of department; an issuer lists its own.
    pub issuer: Option<String>,
    pub type_code: Option<String>,
    /// The number printed on the licence (needs `type_code`).
    pub number: Option<String>,
    pub status: Option<Status>,
    /// Issue dates (`iat`), unix seconds, `from` inclusive, `to` exclusive.
    pub issued_from: Option<i64>,
    pub issued_to: Option<i64>,
    /// The issuance leaf index the previous page ended at.
    pub cursor: Option<u64>,
    pub limit: usize,
}

/// A run of listing rows a page reads: the rows under `prefix` (exactly one row when `one`),
/// in issue order, with an index below `below`.
struct Source {
    prefix: Vec<u8>,
    below: u64,
    /// `prefix` is a whole key, at this index.
    one: Option<u64>,
}

/// A listing row as read: its index, key and value.
type Row = (u64, Vec<u8>, Vec<u8>);

impl Source {
    fn run(prefix: Vec<u8>, below: u64) -> Self {
        Self { prefix, below, one: None }
    }

    fn one(key: Vec<u8>, index: u64) -> Self {
        Self { prefix: key, below: u64::MAX, one: Some(index) }
    }

    /// Up to `want` rows from index `from` on, and whether there may be more after them. A key
    /// that is not the prefix and an 8-byte index is skipped (and logged).
    fn read(&self, store: &dyn crate::store::Store, from: u64, want: usize) -> Result<(Vec<Row>, bool), VaultError> {
        if let Some(index) = self.one {
            if index < from {
                return Ok((Vec::new(), false));
            }
            let row = store.get(Cf::Listing, &self.prefix)?;
            return Ok((row.map(|v| (index, self.prefix.clone(), v)).into_iter().collect(), false));
        }
        let start = [self.prefix.as_slice(), &from.to_be_bytes()].concat();
        let got = store.scan_prefix_from(Cf::Listing, &self.prefix, &start, want)?;
        let full = got.len() == want;
        let mut rows = Vec::with_capacity(got.len());
        for (key, value) in got {
            let index = key
                .strip_prefix(self.prefix.as_slice())
                .and_then(|b| <[u8; 8]>::try_from(b).ok())
                .map(u64::from_be_bytes);
            match index {
                Some(i) if i >= self.below => return Ok((rows, false)),
                Some(i) => rows.push((i, key, value)),
                None => tracing::warn!(row = %hex::encode(&key), "listing key without an index: not listed"),
            }
        }
        if full && rows.is_empty() {
            return Err(super::issue::inconsistent(format!("{want} listing rows without an index under one prefix")));
        }
        Ok((rows, full))
    }
}

/// A page of a listing: the licences, and where the next page starts (`None`: the end).
pub struct ListPage {
    pub licences: Vec<Listed>,
    /// The time the status filter judged by (the page shows the statuses as of then).
    pub now: i64,
    pub next: Option<u64>,
}

/// A page of the changes feed.
pub struct ChangesPage {
    pub changes: Vec<(u64, crate::log::leaf::Leaf)>,
    /// The index to ask `after` next time: the end of this page, or `after` when it is empty
    /// (`None`: nothing yet, ask without `after` again).
    pub last: Option<u64>,
    pub more: bool,
}

impl Vault {
    /// The department a listing or feed is about: an issuer's own; an administrator's choice.
    fn department_of(&self, client: &Client, asked: Option<&str>) -> Result<Option<String>, VaultError> {
        match (client.role, asked) {
            (Role::Issuer, None) => Ok(client.uscc.clone()),
            (Role::Issuer, Some(u)) if client.uscc.as_deref() == Some(u) => Ok(Some(u.to_string())),
            (Role::Issuer, Some(_)) => {
                Err(VaultError::Forbidden("an issuer lists its own department's licences".into()))
            }
            (Role::Admin, u) => Ok(u.map(|u| u.to_string())),
            (r, _) => Err(VaultError::Forbidden(format!("role {} may not list licences", r.as_str()))),
        }
    }

    /// `GET /v1/licences`: a page of licences in issue order, newest last.
    pub fn list(&self, client: &Client, q: &ListQuery) -> Result<ListPage, VaultError> {
        let dept = self.department_of(client, q.issuer.as_deref())?;
        if client.role == Role::Issuer && !client.types.is_empty() {
            if let Some(t) = &q.type_code {
                if !client.types.contains(t) {
                    return Err(VaultError::Forbidden(format!(
                        "client {} may not read licences of type {t}",
                        client.id
                    )));
                }
            }
        }
        if q.number.is_some() && q.type_code.is_none() {
            return Err(VaultError::Invalid("a number is looked up with its type (`type`)".into()));
        }
        // One copy of the transfers for the whole page: the sources and the manager check agree.
        let transfers = self.transfers();
        let sources = self.sources(q, dept.as_deref(), &transfers)?;
        let limit = q.limit.clamp(1, MAX_PAGE);
        // The index of the last row taken: the next round starts after it.
        let mut last = q.cursor;
        let (mut licences, mut scanned) = (Vec::new(), 0usize);
        let now = super::unix_now();
        loop {
            let want = ((limit - licences.len()).max(64).min(MAX_SCAN.saturating_sub(scanned) / sources.len())).max(1);
            let from = last.map_or(0, |c| c.saturating_add(1));
            // Merged in issue order. A source that filled its scan may hold rows past its last
            // one: nothing after the lowest such row (the horizon) is taken this round.
            let (mut rows, mut horizon) = (Vec::new(), u64::MAX);
            for source in &sources {
                let (got, full) = source.read(self.store.as_ref(), from, want)?;
                scanned += got.len();
                if let (true, Some((i, _, _))) = (full, got.last()) {
                    horizon = horizon.min(*i);
                }
                rows.extend(got);
            }
            let full = horizon != u64::MAX;
            rows.retain(|(i, _, _)| *i <= horizon);
            rows.sort_by_key(|(i, _, _)| *i);
            rows.dedup_by_key(|(i, _, _)| *i);
            if full {
                last = Some(horizon);
            }
            for (index, key, value) in rows {
                // A row of another form (a licence left out of the start-up build because it
                // disagreed with its log keeps its first-form rows) is not listed; it answers
                // 503 when read by its id.
                let Some(listed) = Listed::decode(&key, &value) else {
                    tracing::warn!(row = %hex::encode(&key), "listing row not in the current form: not listed");
                    continue;
                };
                if q.issued_from.is_some_and(|f| listed.issued < f) || q.issued_to.is_some_and(|t| listed.issued >= t) {
                    continue;
                }
                let id = LicenceId::parse(&listed.id)?;
                let (issuer, type_code) = (id.issuer().as_str(), id.type_code().as_str());
                // Keep the asked type and the client's types.
                if (q.type_code.as_deref().is_some_and(|t| t != type_code))
                    || (client.role == Role::Issuer
                        && !client.types.is_empty()
                        && !client.types.iter().any(|t| t == type_code))
                {
                    continue;
                }
                // A department lists what it manages now: a licence transferred away leaves its
                // issuer's list and joins its new department's.
                if dept.as_deref().is_some_and(|d| {
                    super::transfers::manager_with(&transfers, issuer, type_code, &listed.id, index, u64::MAX) != d
                }) {
                    continue;
                }
                if q.status.is_some_and(|s| s != listed.effective(now)) {
                    continue;
                }
                licences.push(listed);
                if licences.len() == limit {
                    return Ok(ListPage { licences, next: Some(index), now });
                }
            }
            if !full {
                return Ok(ListPage { licences, next: None, now });
            }
            if scanned >= MAX_SCAN {
                // A short page: the filters matched few of the rows scanned; go on from here.
                return Ok(ListPage { licences, next: last, now });
            }
        }
    }

    /// The runs of listing rows a page merges, each in issue order: the number's, the whole
    /// platform's, or a department's own and, for each transfer that brought it licences
    /// (directly or along a chain), the rows of the department they came from, of the
    /// transfer's type, issued before it (a single licence: its one row).
    fn sources(
        &self,
        q: &ListQuery,
        dept: Option<&str>,
        transfers: &[super::transfers::Transfer],
    ) -> Result<Vec<Source>, VaultError> {
        let asked = q.type_code.as_deref();
        if let (Some(n), Some(t)) = (&q.number, asked) {
            return Ok(vec![Source::run(keys::listed_number_prefix(t, n), u64::MAX)]);
        }
        let Some(d) = dept else { return Ok(vec![Source::run(keys::LISTED_ALL.to_vec(), u64::MAX)]) };
        let of = |dept: &str, ty: Option<&str>| match ty {
            Some(t) => keys::listed_type_prefix(dept, t),
            None => keys::listed_prefix(dept),
        };
        let mut sources = vec![Source::run(of(d, asked), u64::MAX)];
        let mut into = vec![d.to_string()];
        // Transfers into the departments found so far, until no new one appears.
        let mut taken = vec![false; transfers.len()];
        loop {
            let mut grew = false;
            for (k, t) in transfers.iter().enumerate() {
                if taken[k] || !into.contains(&t.to) {
                    continue;
                }
                (taken[k], grew) = (true, true);
                if !into.contains(&t.from) {
                    into.push(t.from.clone());
                }
                if asked.is_some() && t.type_code.is_some() && t.type_code.as_deref() != asked {
                    continue;
                }
                match &t.licence {
                    Some(l) => {
                        let row = self
                            .store
                            .get(Cf::Licences, l.as_bytes())?
                            .and_then(|r| serde_json::from_slice::<LicenceRecord>(&r).ok());
                        if let Some(r) = row {
                            // Its rows are its issuer's, wherever it was moved from.
                            sources.push(Source::one(keys::listed(&r.issuer, r.issued_index), r.issued_index));
                        }
                    }
                    None => sources.push(Source::run(of(&t.from, asked.or(t.type_code.as_deref())), t.log_index)),
                }
            }
            if !grew {
                break;
            }
        }
        // The same run twice (two transfers from one department): read once, to the later bound.
        sources.sort_by(|a, b| a.prefix.cmp(&b.prefix).then(b.below.cmp(&a.below)));
        sources.dedup_by(|a, b| a.prefix == b.prefix && a.one == b.one);
        Ok(sources)
    }

    /// `GET /v1/changes?after=`: the leaves after `after` (from the first, without it) that
    /// changed the licences the department managed when they were written (issued, status,
    /// superseded), oldest first: after a transfer, the new department's changes are in its feed.
    pub fn changes(
        &self,
        client: &Client,
        issuer: Option<&str>,
        after: Option<u64>,
        limit: usize,
    ) -> Result<ChangesPage, VaultError> {
        let dept = self
            .department_of(client, issuer)?
            .ok_or_else(|| VaultError::Invalid("an administrator names the department (`issuer`)".into()))?;
        let limit = limit.clamp(1, MAX_PAGE);
        let prefix = [b"c/", dept.as_bytes()].concat();
        let first = after.map_or(0, |a| a.saturating_add(1));
        let start = [prefix.as_slice(), &first.to_be_bytes()].concat();
        let rows = self.store.scan_prefix_from(Cf::Listing, &prefix, &start, limit + 1)?;
        let more = rows.len() > limit;
        let mut changes = Vec::with_capacity(limit);
        let mut last = after;
        for (key, _) in rows.into_iter().take(limit) {
            let index =
                key.get(prefix.len()..).and_then(|b| b.try_into().ok()).map(u64::from_be_bytes).ok_or_else(|| {
                    super::issue::inconsistent(format!("change row {} is malformed", hex::encode(&key)))
                })?;
            last = Some(index);
            let leaf =
                self.leaf(index)?.ok_or_else(|| super::issue::inconsistent(format!("leaf {index} is missing")))?;
            let id = leaf
                .licence
                .as_deref()
                .and_then(|l| LicenceId::parse(l).ok())
                .ok_or_else(|| super::issue::inconsistent(format!("leaf {index} is not about a licence")))?;
            // A client limited to some types follows only their changes.
            let in_scope = client.role != Role::Issuer
                || client.types.is_empty()
                || client.types.iter().any(|t| t == id.type_code().as_str());
            if in_scope {
                changes.push((index, leaf));
            }
        }
        Ok(ChangesPage { changes, last, more })
    }

    /// Writes the listing and change rows of a store made before listings (or before their
    /// current form) existed, once: from every leaf about a licence, and each issued licence's
    /// document (its number and dates) and record (its status).
    pub(super) fn build_listing(&self) -> Result<(), VaultError> {
        if self.store.get(Cf::Meta, BUILT)?.is_some() {
            return Ok(());
        }
        let size = self.head().size;
        // A store with rows of the first form has its change rows already, each filed under the
        // department that managed the licence then: only the listing rows are written again.
        let changes_written = self.store.get(Cf::Meta, FIRST_FORM)?.is_some();
        let mut batch = crate::store::Batch::default();
        for item in crate::store::stored_leaves(self.store.as_ref(), 0, size) {
            let (index, bytes) = item?;
            let leaf = crate::log::leaf::Leaf::decode(&bytes).map_err(|e| VaultError::Internal(e.to_string()))?;
            let Some(id) = leaf.licence.as_deref() else { continue };
            if !matches!(leaf.event.kind.as_str(), "licence.issued" | "licence.status" | "licence.superseded") {
                continue;
            }
            let lid = LicenceId::parse(id)?;
            if !changes_written {
                // Filed as the live code files it: under the department that managed the licence
                // when the leaf was written (its issuer, unless a transfer came before).
                let manager = match self.store.get(Cf::Licences, id.as_bytes())? {
                    Some(row) if leaf.event.kind != "licence.issued" => {
                        match serde_json::from_slice::<super::LicenceRecord>(&row) {
                            Ok(r) => self.manager_at(&r.issuer, &r.type_code, &r.id, r.issued_index, index),
                            Err(_) => lid.issuer().to_string(),
                        }
                    }
                    _ => lid.issuer().to_string(),
                };
                batch.put(Cf::Listing, keys::change(&manager, index), id.as_bytes().to_vec());
            }
            if leaf.event.kind == "licence.issued" {
                // A licence that cannot be read answers 503 on its own; it must not stop the vault.
                match self.stored(&lid) {
                    Ok(stored) => {
                        let r = &stored.record;
                        let listed = summary(&stored.licence, index, r.status, r.suspended_until);
                        for (key, value) in listing_rows(&r.issuer, &r.type_code, &listed) {
                            batch.put(Cf::Listing, key, value);
                        }
                    }
                    // One that disagrees with its log is left out (it answers 503 by itself); a store
                    // that does not answer stops start-up, so nothing is left out by chance.
                    Err(e @ VaultError::StoreInconsistent(_)) => {
                        tracing::error!(licence = %lid, error = %e, "not listed: its record or document disagrees with the log")
                    }
                    Err(e) => return Err(e),
                }
            }
            if batch.len() >= 10_000 {
                self.store.write(std::mem::take(&mut batch))?;
            }
        }
        batch.put(Cf::Meta, BUILT.to_vec(), size.to_be_bytes().to_vec());
        self.store.write(batch)?;
        Ok(())
    }
}
