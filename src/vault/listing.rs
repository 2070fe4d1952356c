//! Listing and reconciliation for issuing departments (issue 9, scope 5): a department's licences
//! in issue order (by type, by the number printed on them, by status and issue date), and a
//! changes feed of every leaf that changed one of its licences. Both read index rows (`listing`,
//! spec/formats.md §4) written in the same batch as the leaf they follow from, so a page costs
//! its rows and one record (or leaf) read each, whatever the size of the store. Filters that no
//! index row orders (status, issue dates) are applied while scanning, at most [`MAX_SCAN`] rows a
//! page: a page can then come back short, with a cursor to go on from.

use super::{Client, Role, Vault, VaultError};
use crate::domain::{LicenceId, Status};
use crate::log::sequencer::Tx;
use crate::store::{keys, Cf};

/// Rows a page scans at most, whatever its filters.
pub const MAX_SCAN: usize = 5_000;
/// The largest page.
pub const MAX_PAGE: usize = 1_000;

/// `meta` flag: the listing rows of licences issued before listings existed were written.
const BUILT: &[u8] = b"listing-v1";

/// Writes the listing rows of a licence issued at leaf `index` (in its issuance batch).
pub(super) fn put_listing(tx: &mut Tx<'_>, l: &crate::domain::Licence, index: u64) {
    for (key, value) in listing_rows(l, index) {
        tx.put(Cf::Listing, key, value);
    }
}

fn listing_rows(l: &crate::domain::Licence, index: u64) -> Vec<(Vec<u8>, Vec<u8>)> {
    let (issuer, type_code) = (l.issuer().to_string(), l.id.type_code().to_string());
    let id = l.id.to_string();
    // The issue date: a migrated licence's own, else the signing time.
    let issued = l.issue_date.map_or(l.issued_at, crate::domain::start_of_day_cst);
    let value = [&issued.to_be_bytes()[..], id.as_bytes()].concat();
    vec![
        (keys::listed(&issuer, index), value.clone()),
        (keys::listed_type(&issuer, &type_code, index), value.clone()),
        (keys::listed_all(index), value.clone()),
        (keys::listed_number(&type_code, &l.number, index), value),
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

/// A page of a listing: the licences, and where the next page starts (`None`: the end).
pub struct ListPage {
    pub licences: Vec<super::Stored>,
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
        let prefix = match (&q.number, &q.type_code, &dept) {
            (Some(n), Some(t), _) => [b"n/", t.as_bytes(), &[0], n.as_bytes(), &[0]].concat(),
            (Some(_), None, _) => {
                return Err(VaultError::Invalid("a number is looked up with its type (`type`)".into()))
            }
            (None, Some(t), Some(d)) => [b"t/", d.as_bytes(), t.as_bytes()].concat(),
            (None, None, Some(d)) => [b"i/", d.as_bytes()].concat(),
            (None, _, None) => b"a/".to_vec(),
        };
        let limit = q.limit.clamp(1, MAX_PAGE);
        // The index of the last row scanned: the next scan starts after it.
        let mut last = q.cursor;
        let (mut licences, mut scanned) = (Vec::new(), 0usize);
        let now = super::unix_now();
        loop {
            let want = (limit - licences.len()).max(64).min(MAX_SCAN - scanned);
            let start = [prefix.as_slice(), &last.map_or(0, |c| c.saturating_add(1)).to_be_bytes()].concat();
            let rows = self.store.scan_prefix_from(Cf::Listing, &prefix, &start, want)?;
            let full = rows.len() == want;
            for (key, value) in rows {
                scanned += 1;
                let index =
                    key.get(key.len().saturating_sub(8)..).and_then(|b| b.try_into().ok()).map(u64::from_be_bytes);
                let (Some(index), Some(iat), Ok(id)) = (
                    index,
                    value.get(..8).and_then(|b| b.try_into().ok()).map(i64::from_be_bytes),
                    std::str::from_utf8(value.get(8..).unwrap_or_default()),
                ) else {
                    return Err(super::issue::inconsistent(format!("listing row {} is malformed", hex::encode(&key))));
                };
                last = Some(index);
                if q.issued_from.is_some_and(|f| iat < f) || q.issued_to.is_some_and(|t| iat >= t) {
                    continue;
                }
                let id = LicenceId::parse(id)?;
                // A number or the whole platform: keep the department's and the client's types.
                if dept.as_deref().is_some_and(|d| d != id.issuer().as_str())
                    || (q.type_code.as_deref().is_some_and(|t| t != id.type_code().as_str()))
                    || (client.role == Role::Issuer
                        && !client.types.is_empty()
                        && !client.types.iter().any(|t| t == id.type_code().as_str()))
                {
                    continue;
                }
                let stored = self.stored(&id)?;
                // A licence whose management was transferred leaves its issuer's list.
                if dept.as_deref().is_some_and(|d| self.manager_of(&stored.record) != d) {
                    continue;
                }
                if q.status.is_some_and(|s| {
                    s != stored.record.effective(now, stored.licence.valid_from, stored.licence.valid_until)
                }) {
                    continue;
                }
                licences.push(stored);
                if licences.len() == limit {
                    return Ok(ListPage { licences, next: Some(index) });
                }
            }
            if !full {
                return Ok(ListPage { licences, next: None });
            }
            if scanned >= MAX_SCAN {
                // A short page: the filters matched few of the rows scanned; go on from here.
                return Ok(ListPage { licences, next: last });
            }
        }
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

    /// Writes the listing and change rows of a store made before listings existed, once: from
    /// every leaf about a licence, and each issued licence's document (its number and date).
    pub(super) fn build_listing(&self) -> Result<(), VaultError> {
        if self.store.get(Cf::Meta, BUILT)?.is_some() {
            return Ok(());
        }
        let size = self.head().size;
        let mut batch = crate::store::Batch::default();
        for item in crate::store::stored_leaves(self.store.as_ref(), 0, size) {
            let (index, bytes) = item?;
            let leaf = crate::log::leaf::Leaf::decode(&bytes).map_err(|e| VaultError::Internal(e.to_string()))?;
            let Some(id) = leaf.licence.as_deref() else { continue };
            if !matches!(leaf.event.kind.as_str(), "licence.issued" | "licence.status" | "licence.superseded") {
                continue;
            }
            let lid = LicenceId::parse(id)?;
            batch.put(Cf::Listing, keys::change(lid.issuer().as_str(), index), id.as_bytes().to_vec());
            if leaf.event.kind == "licence.issued" {
                // A licence that cannot be read answers 503 on its own; it must not stop the vault.
                match self.stored(&lid) {
                    Ok(stored) => {
                        for (key, value) in listing_rows(&stored.licence, index) {
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
