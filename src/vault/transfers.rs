//! Transfers of management (机构改革, a change of jurisdiction): an administrator moves the
//! management of a set of licences — all of a department's, those of one type, or one licence —
//! to another department, with a reason. Each transfer is a `licence.transferred` leaf (naming the
//! licence in its body when it moves one; it is not about the licence, whose record and status
//! leaves it leaves alone); a `meta` pointer to the leaf lets start-up rebuild the transfers,
//! each read from its leaf through an inclusion proof (as catalogue changes are). A transfer
//! covers the licences issued before it that the `from` department manages then; the manager of a
//! licence is its issuer with every transfer applied in log order, so transfers chain (A → B, then
//! B → C). Documents keep their issuer's signature and keep verifying; the manager changes their
//! status from then on.

use serde::{Deserialize, Serialize};

use super::issue::check_reason;
use super::{Client, LicenceRecord, Vault, VaultError};
use crate::domain::{LicenceId, TypeCode, Uscc};
use crate::log::leaf::Event;
use crate::log::sequencer::Head;
use crate::store::{Cf, Store};

/// `meta` key prefix of the pointers to `licence.transferred` leaves (‖ leaf index, u64 BE).
const POINTER: &[u8] = b"xfer/";

/// A transfer as logged.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Transfer {
    /// The leaf that logged it.
    pub log_index: u64,
    pub from: String,
    pub to: String,
    /// Only licences of this type; `None`: every type.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub type_code: Option<String>,
    /// Only this licence version; `None`: every licence of `from` (of `type_code`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub licence: Option<String>,
    pub reason: String,
    /// The administrator client that made it.
    pub actor: String,
}

impl Transfer {
    /// Whether this transfer moved the licence `id` (of `type_code`, issued at leaf `issued`)
    /// away from `manager`.
    fn covers(&self, type_code: &str, id: &str, issued: u64, manager: &str) -> bool {
        issued < self.log_index
            && manager == self.from
            && self.type_code.as_deref().is_none_or(|t| t == type_code)
            && self.licence.as_deref().is_none_or(|l| l == id)
    }

    fn from_leaf(index: u64, ev: &Event) -> Result<Self, String> {
        let text = |k: &str| ev.get_text(k).map(str::to_string);
        if ev.kind != "licence.transferred" {
            return Err(format!("leaf {index} is a {}, not a transfer", ev.kind));
        }
        let need = |k: &str| text(k).ok_or_else(|| format!("leaf {index} has no {k}"));
        Ok(Self {
            log_index: index,
            from: need("from")?,
            to: need("to")?,
            type_code: text("type"),
            licence: text("licence"),
            reason: need("reason")?,
            actor: need("actor")?,
        })
    }
}

/// `POST /v1/admin/transfers` body.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TransferRequest {
    /// The department that manages the licences now (USCC).
    pub from: String,
    /// The department that takes them over (USCC); it must be a department of the platform.
    pub to: String,
    #[serde(default)]
    pub type_code: Option<String>,
    #[serde(default)]
    pub licence: Option<String>,
    pub reason: String,
}

/// Every transfer the log records, in log order, each read from its leaf through an inclusion
/// proof against `head` (a stored pointer cannot bring in a transfer the log does not have).
pub fn logged_transfers(store: &dyn Store, head: &Head) -> Result<Vec<Transfer>, VaultError> {
    let mut out = Vec::new();
    for (key, _) in store.scan_prefix(Cf::Meta, POINTER, usize::MAX)? {
        let refuse =
            |why: String| VaultError::KeysChanged(format!("transfer {}: {why}; refusing to start", hex::encode(&key)));
        let index = key
            .get(POINTER.len()..)
            .and_then(|b| b.try_into().ok())
            .map(u64::from_be_bytes)
            .ok_or_else(|| refuse("malformed pointer".into()))?;
        let leaf = super::prove_leaf(store, head, index).map_err(refuse)?;
        out.push(Transfer::from_leaf(index, &leaf.event).map_err(refuse)?);
    }
    Ok(out)
}

/// The department that managed the licence `id` (of `type_code`, issued by `issuer` at leaf
/// `issued`) when leaf `at` was written, by `transfers` (oldest first).
pub fn manager_with(transfers: &[Transfer], issuer: &str, type_code: &str, id: &str, issued: u64, at: u64) -> String {
    let mut manager = issuer.to_string();
    for t in transfers.iter().filter(|t| t.log_index < at) {
        if t.covers(type_code, id, issued, &manager) {
            manager.clone_from(&t.to);
        }
    }
    manager
}

impl Vault {
    /// The department that manages `rec` now: its issuer, with every transfer applied in log
    /// order.
    pub fn manager_of(&self, rec: &LicenceRecord) -> String {
        self.manager_by(&rec.issuer, &rec.type_code, &rec.id, rec.issued_index)
    }

    /// The department that manages the licence `id` (of `type_code`, issued by `issuer` at leaf
    /// `issued`) now.
    pub fn manager_by(&self, issuer: &str, type_code: &str, id: &str, issued: u64) -> String {
        self.manager_at(issuer, type_code, id, issued, u64::MAX)
    }

    /// The department that managed the licence when leaf `at` was written: the transfers logged
    /// before it applied.
    pub fn manager_at(&self, issuer: &str, type_code: &str, id: &str, issued: u64, at: u64) -> String {
        let transfers = self.transfers.read().unwrap_or_else(|p| p.into_inner());
        manager_with(&transfers, issuer, type_code, id, issued, at)
    }

    /// Every transfer, oldest first (`GET /v1/admin/transfers`).
    pub fn transfers(&self) -> Vec<Transfer> {
        self.transfers.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// `POST /v1/admin/transfers`: logs a transfer and applies it at once. One licence: it must
    /// exist and be managed by `from`. A department's (or a type's): `from` must be a department
    /// that issues or manages licences, and `to` another department of the platform.
    pub async fn transfer(
        self: &std::sync::Arc<Self>,
        admin: &Client,
        req: TransferRequest,
    ) -> Result<Transfer, VaultError> {
        // In a task of its own: a caller that goes away cannot leave a logged transfer out of the
        // list in force.
        let (vault, admin) = (self.clone(), admin.clone());
        tokio::spawn(async move { vault.transfer_now(&admin, req).await })
            .await
            .map_err(|e| VaultError::Internal(format!("the transfer task failed: {e}")))?
    }

    async fn transfer_now(&self, admin: &Client, req: TransferRequest) -> Result<Transfer, VaultError> {
        // One at a time and none while a licence changes: checked, logged and listed together.
        let _gate = self.transfer_gate.write().await;
        let reason = check_reason(&req.reason)?;
        let from = Uscc::parse(&req.from)?.to_string();
        let to = Uscc::parse(&req.to)?.to_string();
        if from == to {
            return Err(VaultError::Invalid("a transfer goes to another department".into()));
        }
        if !self.departments.contains_key(&to) {
            return Err(VaultError::Invalid(format!(
                "{to} is not a department of this platform (fixtures/departments.json)"
            )));
        }
        let type_code = match &req.type_code {
            Some(t) => {
                let code = TypeCode::parse(t).map_err(VaultError::TypeCode)?.to_string();
                if self.catalogue().licence_type(&code).is_none() {
                    return Err(VaultError::UnknownType(code));
                }
                Some(code)
            }
            None => None,
        };
        let licence = match &req.licence {
            Some(l) => {
                let id = LicenceId::parse(l)?;
                let rec = self.record(&id)?.ok_or_else(|| VaultError::NotFound(id.to_string()))?;
                if self.manager_of(&rec) != from {
                    return Err(VaultError::Conflict(format!("{id} is not managed by {from}")));
                }
                if type_code.as_deref().is_some_and(|t| t != rec.type_code) {
                    return Err(VaultError::Invalid(format!("{id} is not of type {}", type_code.unwrap_or_default())));
                }
                Some(id.to_string())
            }
            None => None,
        };
        let actor = admin.id.clone();
        let mut ev = Event::new("licence.transferred").text("from", from.as_str()).text("to", to.as_str());
        if let Some(t) = &type_code {
            ev = ev.text("type", t.as_str());
        }
        if let Some(l) = &licence {
            ev = ev.text("licence", l.as_str());
        }
        let ev = ev.text("reason", reason.as_str()).text("actor", actor.as_str());
        let (index, _head) = self
            .seq
            .submit(move |tx| {
                let index = tx.append(ev);
                tx.put(Cf::Meta, [POINTER, &index.to_be_bytes()].concat(), Vec::new());
                Ok::<_, VaultError>(index)
            })
            .await?;
        let index = index?;
        let leaf = self.leaf(index)?.ok_or_else(|| VaultError::Internal(format!("leaf {index} is missing")))?;
        let transfer = Transfer::from_leaf(index, &leaf.event).map_err(VaultError::Internal)?;
        self.transfers.write().unwrap_or_else(|p| p.into_inner()).push(transfer.clone());
        Ok(transfer)
    }
}
