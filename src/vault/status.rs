//! Status changes (suspend, reinstate, withdraw, annul, revoke, cancel) and a licence's history, read back from
//! the log by following each leaf's pointer to the previous leaf about the same licence.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::issue::{check_reason, json, record_in};
use super::records::IdempotentAnswer;
use super::{Client, LicenceRecord, Vault, VaultError};
use crate::domain::status::Action;
use crate::domain::{Licence, LicenceId};
use crate::log::leaf::Event;
use crate::log::sequencer::Head;
use crate::store::Cf;

/// One event in a licence's history.
#[derive(Debug, Clone, Serialize)]
pub struct HistoryEntry {
    pub log_index: u64,
    /// RFC 3339, UTC.
    pub time: String,
    pub event: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub actor: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub related: Option<String>,
    /// A status change's action (`suspend`, `withdraw`, `annul`, `revoke`…).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub action: Option<String>,
    /// A new version's kind (`renewal`, `change`, `replacement`, `exchange`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// A suspension's last day, `YYYY-MM-DD`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub until: Option<String>,
}

/// The body of a status change.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChangeRequest {
    pub reason: String,
    /// A suspension's last day: `YYYY-MM-DD`, today or later.
    #[serde(default)]
    pub until: Option<String>,
}

/// A committed status change (or the one an Idempotency-Key names).
#[derive(Debug, Clone)]
pub struct StatusChanged {
    /// The licence (its signed document's validity period) and its record now.
    pub licence: Licence,
    pub record: LicenceRecord,
    pub head: Arc<Head>,
    /// The change's leaf.
    pub index: u64,
    pub replayed: bool,
}

/// The log index an Idempotency-Key row records for a status change; a different request under
/// the key is refused, and so is a key used for an issuance.
fn idempotent_index(row: Option<Vec<u8>>, sha: &str) -> Result<Option<u64>, VaultError> {
    super::records::idempotent_answer(row, sha)?.map(|a| a.log_index.ok_or(VaultError::IdempotencyMismatch)).transpose()
}

impl HistoryEntry {
    /// What leaf `index` says about its licence.
    pub fn from_leaf(index: u64, leaf: &crate::log::leaf::Leaf) -> Self {
        let ev = &leaf.event;
        let t = |k: &str| ev.get_text(k).map(str::to_string);
        HistoryEntry {
            log_index: index,
            time: rfc3339_ms(leaf.time_ms),
            event: ev.kind.clone(),
            from: t("from"),
            to: t("to").or_else(|| (ev.kind == "licence.issued").then(|| "valid".to_string())),
            reason: t("reason"),
            actor: t("actor"),
            related: t("successor").or_else(|| t("predecessor")),
            action: t("action"),
            kind: t("kind"),
            until: ev.suspended_until().map(|u| crate::domain::cst_date(u - 1).to_string()),
        }
    }
}

impl Vault {
    /// `POST /v1/licences/{id}/{suspend|reinstate|withdraw|annul|revoke|cancel}`: the action
    /// from the licence's effective status now, by [`crate::domain::status::TRANSITIONS`]. A
    /// suspension may have an end (`until`, its last day, today or later; it lifts when the next
    /// day starts, China Standard Time). With an `Idempotency-Key`, a retry of a change that committed
    /// answers with that change (its leaf) instead of a conflict.
    pub async fn change_status(
        &self,
        client: &Client,
        id: &LicenceId,
        action: Action,
        req: &ChangeRequest,
        idem_key: Option<&str>,
    ) -> Result<StatusChanged, VaultError> {
        let _gate = self.transfer_gate.read().await;
        self.check_manager(client, id)?;
        let reason = check_reason(&req.reason)?;
        // The validity period is the signed document's (a licence version's never changes).
        let (licence, _, _) = self.licence(id)?;
        let (nbf, exp) = (licence.valid_from, licence.valid_until);
        let idem = match idem_key {
            None => None,
            Some(k) => {
                let canonical = json(&(id.to_string(), action, &req.reason, &req.until))?;
                let (row, sha) = super::issue::idempotency_row(client, k, &canonical)?;
                if let Some(done) = self.status_replay(id, &licence, &row, &sha)? {
                    return Ok(done);
                }
                Some((row, sha))
            }
        };
        let now = super::unix_now();
        let until = match (&req.until, action) {
            (None, _) => None,
            (Some(d), Action::Suspend) => {
                // The last day of the suspension: it lifts when the next day starts.
                let day = crate::domain::parse_validity_date("until", d).map_err(VaultError::Date)?;
                if day < crate::domain::cst_date(now) {
                    return Err(VaultError::Dates(format!("a suspension ends today or later, not on {d}")));
                }
                Some(crate::domain::start_of_day_cst(day) + 86_400)
            }
            (Some(_), a) => {
                return Err(VaultError::Invalid(format!("only a suspension has an end (`until`), not {}", a.as_str())))
            }
        };
        let key = id.to_string();
        let actor = client.id.clone();
        // The changes feed of the department that manages it now (check_manager said it is the
        // client's).
        let manager = client.uscc.clone().unwrap_or_default();
        let (out, head) = self
            .seq
            .submit(move |tx| {
                if let Some((row, sha)) = &idem {
                    if let Some(index) = idempotent_index(tx.get(Cf::Idempotency, row)?, sha)? {
                        return Ok::<_, VaultError>((record_in(tx, &key)?, index, true));
                    }
                }
                let mut rec = record_in(tx, &key)?;
                let from = rec.effective(now, nbf, exp);
                let to = action.apply(from).ok_or_else(|| {
                    VaultError::Conflict(format!(
                        "cannot {} ({}) a licence that is {} ({})",
                        action.as_str(),
                        action.words_zh(),
                        from.as_str(),
                        from.words_zh()
                    ))
                })?;
                let mut ev = Event::new("licence.status")
                    .bytes("doc_sha256", &hex::decode(&rec.doc_sha256).unwrap_or_default())
                    .text("action", action.as_str())
                    .text("from", from.as_str())
                    .text("to", to.as_str())
                    .text("reason", reason.as_str())
                    .text("actor", actor.as_str());
                if let Some(u) = until {
                    ev = ev.uint("until", u as u64);
                }
                let index = tx.append_about(ev, &key, Some(rec.last_index));
                tx.put(Cf::Listing, crate::store::keys::change(&manager, index), key.clone().into_bytes());
                rec.status = to;
                rec.suspended_until = until;
                rec.last_index = index;
                tx.put(Cf::Licences, key.clone().into_bytes(), json(&rec)?);
                super::listing::relist(tx, &rec)?;
                // The licence's status-list entry changes in the same batch (a document in the
                // first format has none).
                if let Some((list, i)) = rec.status_entry {
                    tx.put(Cf::Status, super::status_lists::key(list, i), super::status_lists::row(&rec));
                }
                if let Some((row, sha)) = idem {
                    let answer = IdempotentAnswer { request_sha256: sha, licence_id: key, log_index: Some(index) };
                    tx.put(Cf::Idempotency, row, json(&answer)?);
                }
                Ok((rec, index, false))
            })
            .await?;
        let (record, index, replayed) = out?;
        self.status_cache.changed();
        Ok(StatusChanged { licence, record, head, index, replayed })
    }

    /// A committed change with this Idempotency-Key row: the licence now and the change's leaf.
    fn status_replay(
        &self,
        id: &LicenceId,
        licence: &Licence,
        row: &[u8],
        sha: &str,
    ) -> Result<Option<StatusChanged>, VaultError> {
        let Some(index) = idempotent_index(self.store.get(Cf::Idempotency, row)?, sha)? else { return Ok(None) };
        let record = self.record(id)?.ok_or_else(|| VaultError::NotFound(id.to_string()))?;
        Ok(Some(StatusChanged { licence: licence.clone(), record, head: self.head(), index, replayed: true }))
    }

    /// `GET /v1/licences/{id}/history`, oldest first: the record's last leaf, then each leaf's
    /// back-pointer to the previous leaf about the licence.
    pub fn history(&self, client: &Client, id: &LicenceId) -> Result<Vec<HistoryEntry>, VaultError> {
        self.check_owner(client, id)?;
        let rec = self.record(id)?.ok_or_else(|| VaultError::NotFound(id.to_string()))?;
        let mut out = Vec::new();
        let mut next = Some(rec.last_index);
        while let Some(i) = next {
            let leaf = self.leaf(i)?.ok_or_else(|| super::issue::inconsistent(format!("leaf {i} is missing")))?;
            if leaf.licence.as_deref() != Some(id.to_string().as_str()) {
                return Err(super::issue::inconsistent(format!("leaf {i} is not about {id}")));
            }
            out.push(HistoryEntry::from_leaf(i, &leaf));
            // Back-pointers go strictly back: a pointer to itself or forward (a tampered leaf)
            // would otherwise loop for ever.
            if leaf.licence_prev.is_some_and(|p| p >= i) {
                return Err(super::issue::inconsistent(format!(
                    "leaf {i} about {id} points forward to leaf {:?}",
                    leaf.licence_prev
                )));
            }
            next = leaf.licence_prev;
        }
        out.reverse();
        Ok(out)
    }
}

/// Unix seconds as RFC 3339 (UTC); times before 1970 read as 1970.
pub fn rfc3339_s(t: i64) -> String {
    rfc3339_ms((t.max(0) as u64).saturating_mul(1000))
}

pub fn rfc3339_ms(ms: u64) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(ms as i128 * 1_000_000)
        .ok()
        .and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok())
        .unwrap_or_default()
}
