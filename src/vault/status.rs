//! Status changes (suspend, reinstate, revoke, cancel) and a licence's history, read back from
//! the log by following each leaf's pointer to the previous leaf about the same licence.

use std::sync::Arc;

use serde::Serialize;

use super::issue::{check_reason, json, record_in};
use super::{Client, LicenceRecord, Vault, VaultError};
use crate::domain::status::Action;
use crate::domain::LicenceId;
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
}

impl Vault {
    /// `POST /v1/licences/{id}/{suspend|reinstate|revoke|cancel}`.
    pub async fn change_status(
        &self,
        client: &Client,
        id: &LicenceId,
        action: Action,
        reason: &str,
    ) -> Result<(LicenceRecord, Arc<Head>, u64), VaultError> {
        self.check_manager(client, id)?;
        let reason = check_reason(reason)?;
        let key = id.to_string();
        let actor = client.id.clone();
        let (out, head) = self
            .seq
            .submit(move |tx| {
                let mut rec = record_in(tx, &key)?;
                let to = action.apply(rec.status).ok_or_else(|| {
                    VaultError::Conflict(format!(
                        "cannot {} a licence that is {}",
                        action.as_str(),
                        rec.status.as_str()
                    ))
                })?;
                let ev = Event::new("licence.status")
                    .bytes("doc_sha256", &hex::decode(&rec.doc_sha256).unwrap_or_default())
                    .text("action", action.as_str())
                    .text("from", rec.status.as_str())
                    .text("to", to.as_str())
                    .text("reason", reason.as_str())
                    .text("actor", actor.as_str());
                let index = tx.append_about(ev, &key, Some(rec.last_index));
                rec.status = to;
                rec.last_index = index;
                tx.put(Cf::Licences, key.into_bytes(), json(&rec)?);
                // The licence's status-list entry changes in the same batch (a document in the
                // first format has none).
                if let Some((list, i)) = rec.status_entry {
                    tx.put(Cf::Status, super::status_lists::key(list, i), vec![super::status_lists::code(to)]);
                }
                Ok::<_, VaultError>((rec, index))
            })
            .await?;
        let (rec, index) = out?;
        self.status_cache.changed();
        Ok((rec, head, index))
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
            let ev = &leaf.event;
            let t = |k: &str| ev.get_text(k).map(str::to_string);
            out.push(HistoryEntry {
                log_index: i,
                time: rfc3339_ms(leaf.time_ms),
                event: ev.kind.clone(),
                from: t("from"),
                to: t("to").or_else(|| (ev.kind == "licence.issued").then(|| "valid".to_string())),
                reason: t("reason"),
                actor: t("actor"),
                related: t("successor").or_else(|| t("predecessor")),
            });
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
