//! Usage records (用证记录): every read of licence data by a verifying department states its
//! matter (用证事由) and is recorded before any data leaves. One `licence.used` leaf per licence
//! disclosed goes through the same group commit as issuance; in the same batch, one index row per
//! holder of the licence (`Cf::Usage`, newest first) lets the holder read their usage a page at
//! a time, whatever the size of the log.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::{Client, Vault, VaultError};
use crate::domain::{text, HolderId, Licence};
use crate::log::leaf::{Event, Leaf};
use crate::log::merkle::Hash;
use crate::log::sequencer::Head;
use crate::store::keys::usage as usage_key;
use crate::store::Cf;

/// Longest use reason, in characters (DESIGN §5).
pub const MAX_USE_REASON: usize = 200;

/// The clerk at the counter (经办人): name and staff number.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Officer {
    pub name: String,
    pub staff_no: String,
}

/// The most characters of `on_behalf_of.platform`: a node that sends its log origin there
/// refuses at start an origin its peers would refuse (`--peers`).
pub const PLATFORM_MAX_CHARS: usize = 64;

/// Whom a node acts for when it sends a verifier's read on to another node (`--peers`,
/// spec/formats.md §16): its own log's origin and the client there that asked. Like `officer`,
/// a statement of the calling client, recorded beside that client's own id.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct OnBehalfOf {
    pub platform: String,
    pub client_id: String,
    pub client_name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub department: Option<String>,
}

/// What a verifier states with a read, as received (and as sent on to other nodes, in the
/// fields of a verifier's request).
#[derive(Debug, Clone, Default, Serialize)]
pub struct UseInput<'a> {
    pub use_reason: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service_item_code: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub biz_num: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub officer: Option<&'a Officer>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub on_behalf_of: Option<&'a OnBehalfOf>,
}

/// A checked statement of use: who reads, for what matter.
#[derive(Debug, Clone)]
pub struct UseContext {
    pub client_id: String,
    pub client_name: String,
    pub department: String,
    pub reason: String,
    pub service_item: Option<String>,
    pub biz_num: Option<String>,
    pub officer: Option<Officer>,
    pub on_behalf_of: Option<OnBehalfOf>,
}

impl UseContext {
    /// `client`'s use for `reason`, with no service item, case number or officer.
    pub fn of(client: &Client, reason: String) -> Self {
        Self {
            client_id: client.id.clone(),
            client_name: client.name.clone(),
            department: client.uscc.clone().unwrap_or_default(),
            reason,
            service_item: None,
            biz_num: None,
            officer: None,
            on_behalf_of: None,
        }
    }

    /// `ev` with who used it, how and why.
    pub(super) fn describe(&self, ev: Event, action: UseAction) -> Event {
        let mut ev = ev
            .text("action", action.as_str())
            .text("client", self.client_id.as_str())
            .text("client_name", self.client_name.as_str())
            .text("dept", self.department.as_str())
            .text("use_reason", self.reason.as_str());
        if let Some(s) = &self.service_item {
            ev = ev.text("service_item", s.as_str());
        }
        if let Some(b) = &self.biz_num {
            ev = ev.text("biz_num", b.as_str());
        }
        if let Some(o) = &self.officer {
            ev = ev.text("officer_name", o.name.as_str()).text("officer_no", o.staff_no.as_str());
        }
        if let Some(f) = &self.on_behalf_of {
            ev = ev
                .text("for_platform", f.platform.as_str())
                .text("for_client", f.client_id.as_str())
                .text("for_client_name", f.client_name.as_str());
            if let Some(d) = &f.department {
                ev = ev.text("for_dept", d.as_str());
            }
        }
        ev
    }
}

/// What was done with a disclosed licence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UseAction {
    /// One-number lookup (`POST /v1/holders/licences`).
    Lookup,
    /// One-window check (`POST /v1/service-items/{code}/check`).
    Check,
    /// An annotated copy was made (`POST /v1/licences/{id}/annotated-copies`).
    AnnotatedCopy,
    /// An annotated copy was refused because the licence is not valid: the refusal told the
    /// verifier its status.
    AnnotatedCopyRefused,
    /// The holder made a one-time presentation (用证码) through the holder channel
    /// (`presentation.created`).
    PresentationCreated,
    /// A verifier redeemed a presentation (`POST /v1/presentations/redeem`).
    PresentationRedeemed,
}

impl UseAction {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Lookup => "lookup",
            Self::Check => "check",
            Self::AnnotatedCopy => "annotated_copy",
            Self::AnnotatedCopyRefused => "annotated_copy_refused",
            Self::PresentationCreated => "presentation_created",
            Self::PresentationRedeemed => "presentation_redeemed",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        match s {
            "lookup" => Some(Self::Lookup),
            "check" => Some(Self::Check),
            "annotated_copy" => Some(Self::AnnotatedCopy),
            "annotated_copy_refused" => Some(Self::AnnotatedCopyRefused),
            "presentation_created" => Some(Self::PresentationCreated),
            "presentation_redeemed" => Some(Self::PresentationRedeemed),
            _ => None,
        }
    }
}

/// One licence about to be disclosed.
pub struct Disclosed {
    pub licence_id: String,
    pub type_code: String,
    pub doc_sha256: Hash,
    /// Commitments of every holder of the licence (the holder, then co-holders).
    pub holders: Vec<Hash>,
    /// For an annotated copy: its SHA-256 and the end of its validity (unix seconds).
    pub copy: Option<(Hash, u64)>,
    /// For a redeemed presentation: its nonce, marked redeemed in the same batch (and refused if
    /// it was already: then nothing is recorded).
    pub redeems: Option<[u8; 16]>,
}

impl Disclosed {
    pub fn new(vault: &Vault, licence: &Licence, doc_sha256: Hash) -> Self {
        Self {
            licence_id: licence.id.to_string(),
            type_code: licence.id.type_code().to_string(),
            doc_sha256,
            holders: licence.holders().map(|h| vault.committer.commit(h)).collect(),
            copy: None,
            redeems: None,
        }
    }
}

/// Refuses free text bound for the log that carries a citizen ID number in clear.
pub fn no_citizen_number(field: &str, value: &str) -> Result<(), VaultError> {
    if crate::domain::holder::contains_person_number(value) {
        return Err(VaultError::PersonalNumber(field.to_string()));
    }
    Ok(())
}

impl Vault {
    /// Checks what a verifier states with a read: the use reason (required, the text rule,
    /// 1–200 characters), the service item (must exist), the case number and the officer.
    pub fn use_context(&self, client: &Client, input: UseInput<'_>) -> Result<UseContext, VaultError> {
        let reason = match input.use_reason {
            Some(r) if !r.trim().is_empty() => {
                // Counted after normalisation, as everywhere else: the text rule with no bound,
                // then the bound with its own code.
                let r = text::clean("use_reason", r, usize::MAX)?;
                match r.chars().count() {
                    n if n > MAX_USE_REASON => return Err(VaultError::UseReasonTooLong(n)),
                    _ => r,
                }
            }
            _ => return Err(VaultError::UseReasonRequired),
        };
        let service_item = match input.service_item_code {
            None => None,
            Some(code) => {
                let code = code.trim();
                if self.catalogue().service_item(code).is_none() {
                    return Err(VaultError::UnknownServiceItem(code.to_string()));
                }
                Some(code.to_string())
            }
        };
        let biz_num = input.biz_num.map(|b| text::clean("biz_num", b, 64)).transpose()?;
        let officer = input
            .officer
            .map(|o| -> Result<Officer, VaultError> {
                Ok(Officer {
                    name: text::clean("officer.name", &o.name, 50)?,
                    staff_no: text::clean("officer.staff_no", &o.staff_no, 32)?,
                })
            })
            .transpose()?;
        let on_behalf_of = input
            .on_behalf_of
            .map(|f| -> Result<OnBehalfOf, VaultError> {
                Ok(OnBehalfOf {
                    platform: text::clean("on_behalf_of.platform", &f.platform, PLATFORM_MAX_CHARS)?,
                    client_id: text::clean("on_behalf_of.client_id", &f.client_id, 64)?,
                    client_name: text::clean("on_behalf_of.client_name", &f.client_name, 100)?,
                    department: f
                        .department
                        .as_deref()
                        .map(|d| text::clean("on_behalf_of.department", d, 32))
                        .transpose()?,
                })
            })
            .transpose()?;
        let texts = [
            ("use_reason", Some(reason.as_str())),
            ("biz_num", biz_num.as_deref()),
            ("officer.name", officer.as_ref().map(|o| o.name.as_str())),
            ("officer.staff_no", officer.as_ref().map(|o| o.staff_no.as_str())),
            ("on_behalf_of.platform", on_behalf_of.as_ref().map(|f| f.platform.as_str())),
            ("on_behalf_of.client_id", on_behalf_of.as_ref().map(|f| f.client_id.as_str())),
            ("on_behalf_of.client_name", on_behalf_of.as_ref().map(|f| f.client_name.as_str())),
            ("on_behalf_of.department", on_behalf_of.as_ref().and_then(|f| f.department.as_deref())),
        ];
        for (field, value) in texts {
            no_citizen_number(field, value.unwrap_or_default())?;
        }
        Ok(UseContext { service_item, biz_num, officer, on_behalf_of, ..UseContext::of(client, reason) })
    }

    /// Makes the usage records of `disclosed` durable: one `licence.used` leaf each and one index
    /// row per holder, in one group commit. Only after this returns `Ok` may the data leave; on
    /// any error nothing was recorded and nothing may be disclosed. A holder the clerk typed
    /// (`queried`, commitments) of whom nothing is disclosed gets a `holder.queried` leaf: an
    /// empty answer tells something too ("no 结婚证"), and the holder sees that someone looked.
    /// Returns the head that covers the records and the index of each `licence.used` leaf, in
    /// order.
    pub async fn record_uses(
        &self,
        ctx: &UseContext,
        action: UseAction,
        disclosed: Vec<Disclosed>,
        queried: &[Hash],
    ) -> Result<(Arc<Head>, Vec<u64>), VaultError> {
        let mut unanswered: Vec<Hash> =
            queried.iter().filter(|q| !disclosed.iter().any(|d| d.holders.contains(q))).copied().collect();
        unanswered.sort_unstable();
        unanswered.dedup();
        if disclosed.is_empty() && unanswered.is_empty() {
            return Ok((self.head(), Vec::new()));
        }
        let ctx = ctx.clone();
        let (indices, head) = self
            .seq
            .submit(move |tx| {
                let mut indices = Vec::with_capacity(disclosed.len());
                for d in &disclosed {
                    let ev = Event::new("licence.used")
                        .text("licence", d.licence_id.as_str())
                        .text("type", d.type_code.as_str())
                        .bytes("doc_sha256", &d.doc_sha256)
                        .bytes("holders", &d.holders.concat());
                    let mut ev = ctx.describe(ev, action);
                    if let Some((sha, until)) = &d.copy {
                        ev = ev.bytes("copy_sha256", sha).uint("copy_until", *until);
                    }
                    if let Some(nonce) = &d.redeems {
                        ev = ev.bytes("nonce_sha256", &crate::crypto::sha256(nonce));
                    }
                    let index = tx.append(ev);
                    if let Some(nonce) = &d.redeems {
                        super::presentations::mark_redeemed(tx, nonce, &ctx.client_id, index)?;
                    }
                    if let Some((sha, _)) = &d.copy {
                        let (k, v) = super::annotated::copy_row(sha, index);
                        tx.put(Cf::Docs, k, v);
                    }
                    for h in &d.holders {
                        tx.put(Cf::Usage, usage_key(h, index), Vec::new());
                    }
                    indices.push(index);
                }
                for h in &unanswered {
                    let index = tx.append(ctx.describe(Event::new("holder.queried").bytes("holders", h), action));
                    tx.put(Cf::Usage, usage_key(h, index), Vec::new());
                }
                Ok::<_, VaultError>(indices)
            })
            .await?;
        Ok((head, indices?))
    }

    /// `POST /v1/holders/usage`: the uses of `holder`'s licences, newest first, `limit` at a time
    /// after the leaf index `before` (the cursor). Reads the holder's index rows and one leaf per
    /// entry: the cost follows the page, not the log or the holder's history.
    pub fn usage(
        &self,
        client: &Client,
        holder: &HolderId,
        before: Option<u64>,
        limit: usize,
    ) -> Result<UsagePage, VaultError> {
        if client.role != super::Role::HolderChannel {
            return Err(VaultError::Forbidden(format!("{} may not read a holder's usage", client.id)));
        }
        let commitment = self.committer.commit(holder);
        let start = match before {
            None => commitment.to_vec(),
            Some(0) => return Ok(UsagePage { uses: Vec::new(), next_before: None }),
            Some(i) => usage_key(&commitment, i - 1),
        };
        let rows = self.store.scan_prefix_from(Cf::Usage, &commitment, &start, limit + 1)?;
        let mut uses = Vec::new();
        let mut more = false;
        for (key, _) in rows {
            if uses.len() == limit {
                more = true;
                break;
            }
            let index = key
                .get(32..40)
                .and_then(|b| b.try_into().ok())
                .map(|b| !u64::from_be_bytes(b))
                .ok_or_else(|| super::issue::inconsistent("a usage index row has a malformed key".into()))?;
            let leaf = self.leaf(index)?.ok_or_else(|| {
                super::issue::inconsistent(format!("usage index names leaf {index}, which is not in the log"))
            })?;
            let entry = UsageEntry::from_leaf(&leaf, &commitment).ok_or_else(|| {
                super::issue::inconsistent(format!("usage index names leaf {index}, which is not a use of this holder"))
            })?;
            uses.push(entry);
        }
        let next_before = if more { uses.last().map(|u| u.log_index) } else { None };
        Ok(UsagePage { uses, next_before })
    }
}

/// One page of a holder's usage.
#[derive(Default)]
pub struct UsagePage {
    pub uses: Vec<UsageEntry>,
    /// The cursor for the next (older) page.
    pub next_before: Option<u64>,
}

/// One use of a holder's licences, read back from its `licence.used` leaf (or, for a query that
/// disclosed none of them, its `holder.queried` leaf).
#[derive(Debug, Clone)]
pub struct UsageEntry {
    pub log_index: u64,
    pub time_ms: u64,
    pub action: UseAction,
    /// `None` for a query that disclosed none of the holder's licences (`holder.queried`).
    pub licence_id: Option<String>,
    pub type_code: Option<String>,
    pub client_id: String,
    pub client_name: String,
    pub department: String,
    pub use_reason: String,
    pub service_item: Option<String>,
    pub biz_num: Option<String>,
    pub officer: Option<Officer>,
    pub on_behalf_of: Option<OnBehalfOf>,
    pub copy: Option<(Vec<u8>, u64)>,
    /// A presentation made: the keys of what it disclosed, comma-separated.
    pub disclosed: Option<String>,
}

impl UsageEntry {
    /// The entry, if `leaf` is a use of a licence held by `holder` (its commitment).
    fn from_leaf(leaf: &Leaf, holder: &Hash) -> Option<Self> {
        let ev = &leaf.event;
        let used = match ev.kind.as_str() {
            "licence.used" | "presentation.created" => true,
            "holder.queried" => false,
            _ => return None,
        };
        if !ev.get_bytes("holders")?.chunks(32).any(|c| c == holder) {
            return None;
        }
        let t = |k: &str| ev.get_text(k).map(str::to_string);
        Some(Self {
            log_index: leaf.index,
            time_ms: leaf.time_ms,
            action: UseAction::parse(ev.get_text("action")?)?,
            licence_id: if used { Some(t("licence")?) } else { None },
            type_code: if used { Some(t("type")?) } else { None },
            client_id: t("client")?,
            client_name: t("client_name").unwrap_or_default(),
            department: t("dept").unwrap_or_default(),
            use_reason: t("use_reason")?,
            service_item: t("service_item"),
            biz_num: t("biz_num"),
            officer: match (t("officer_name"), t("officer_no")) {
                (Some(name), Some(staff_no)) => Some(Officer { name, staff_no }),
                _ => None,
            },
            on_behalf_of: match (t("for_platform"), t("for_client")) {
                (Some(platform), Some(client_id)) => Some(OnBehalfOf {
                    platform,
                    client_id,
                    client_name: t("for_client_name").unwrap_or_default(),
                    department: t("for_dept"),
                }),
                _ => None,
            },
            copy: ev.get_bytes("copy_sha256").map(|h| (h.to_vec(), ev.get_uint("copy_until").unwrap_or(0))),
            disclosed: (ev.kind == "presentation.created").then(|| t("disclosed").unwrap_or_default()),
        })
    }
}
