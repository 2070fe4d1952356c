//! Derived views kept beside the log, written in the same batch as the leaves they follow from
//! (spec/formats.md §4). They can be rebuilt by replaying the log and the document store.

use serde::{Deserialize, Serialize};

use crate::domain::Status;

/// Current state of one licence version (`Cf::Licences`, key = licence id).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LicenceRecord {
    pub id: String,
    pub type_code: String,
    pub issuer: String,
    pub status: Status,
    /// SHA-256 of the COSE_Sign1 bytes, hex.
    pub doc_sha256: String,
    pub valid_from: i64,
    pub valid_until: Option<i64>,
    pub issued_index: u64,
    pub last_index: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub predecessor: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub successor: Option<String>,
    /// What kind of new version the successor is (absent for versions made before kinds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub successor_kind: Option<crate::domain::VersionKind>,
    /// Its status-list entry (list, index), as its document names it: every batch that changes
    /// its status writes the entry from here. Absent for a document in the first format.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_entry: Option<(u32, u32)>,
    /// A suspension's end (unix seconds), as its `licence.status` leaf says: the suspension
    /// lifts by itself then.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suspended_until: Option<i64>,
}

impl LicenceRecord {
    /// The status at `now`: the stored one, or one derived from the validity period (`nbf`,
    /// `exp`: the signed document's, never the record's) and the suspension's end, which the
    /// record's binding to its last leaf checks ([`Status::effective`]).
    pub fn effective(&self, now: i64, nbf: i64, exp: Option<i64>) -> Status {
        self.status.effective(now, nbf, exp, self.suspended_until)
    }

    /// `doc_sha256` as bytes; `None` if the record's hex is not a SHA-256.
    pub fn doc_hash(&self) -> Option<crate::log::merkle::Hash> {
        hex::decode(&self.doc_sha256).ok()?.try_into().ok()
    }
}

/// What an Idempotency-Key maps to (`Cf::Idempotency`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IdempotentAnswer {
    /// SHA-256 of the canonical request, hex: a different body under the same key is refused.
    pub request_sha256: String,
    pub licence_id: String,
    /// For a status change: the leaf that recorded it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_index: Option<u64>,
}

/// The answer an Idempotency-Key row (`Cf::Idempotency`) holds, if any: a different request
/// under the key is refused.
pub(super) fn idempotent_answer(
    row: Option<Vec<u8>>,
    request_sha256: &str,
) -> Result<Option<IdempotentAnswer>, super::VaultError> {
    use super::VaultError;
    let Some(v) = row else { return Ok(None) };
    let ans: IdempotentAnswer = serde_json::from_slice(&v).map_err(|e| VaultError::Internal(e.to_string()))?;
    if ans.request_sha256 != request_sha256 {
        return Err(VaultError::IdempotencyMismatch);
    }
    Ok(Some(ans))
}

/// Client roles (DESIGN §5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Issuer,
    Verifier,
    HolderChannel,
    Auditor,
    Admin,
}

impl Role {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "issuer" => Some(Self::Issuer),
            "verifier" => Some(Self::Verifier),
            "holder_channel" => Some(Self::HolderChannel),
            "auditor" => Some(Self::Auditor),
            "admin" => Some(Self::Admin),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Issuer => "issuer",
            Self::Verifier => "verifier",
            Self::HolderChannel => "holder_channel",
            Self::Auditor => "auditor",
            Self::Admin => "admin",
        }
    }
}

/// A client system (`Cf::Clients`, key = SHA-256 of one of its bearer tokens; the token is never
/// stored). A client has one row per token it was ever given; after a rotation the old row is
/// kept with `token_valid_until` set, so the old token stops working at that time.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Client {
    pub id: String,
    pub name: String,
    pub role: Role,
    /// The department's USCC (issuers and verifiers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uscc: Option<String>,
    /// Licence types this client may use. An issuer: empty = every type its department may
    /// issue. A verifier (its scope for conditionally shared types): empty = none of them,
    /// `["*"]` = every type.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub types: Vec<String>,
    /// A disabled client's every token is refused (401 `token_disabled`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub disabled: bool,
    /// Unix seconds after which every token of the client is refused (401 `token_expired`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<i64>,
    /// Unix seconds the client was registered (absent for clients registered before this was kept).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<i64>,
    /// Unix seconds of the last token rotation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rotated_at: Option<i64>,
    /// On the row of a rotated-out token only: the time it stops working.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_valid_until: Option<i64>,
}

impl Client {
    /// Whether the client's scope is every licence type (`["*"]`, a verifier's only).
    pub fn sees_every_type(&self) -> bool {
        self.types.iter().any(|t| t == super::lookup::ALL_TYPES)
    }

    /// A new, enabled client without expiry.
    pub fn new(
        id: impl Into<String>,
        name: impl Into<String>,
        role: Role,
        uscc: Option<String>,
        types: Vec<String>,
    ) -> Self {
        Self {
            id: id.into(),
            name: name.into(),
            role,
            uscc,
            types,
            disabled: false,
            expires_at: None,
            created_at: None,
            rotated_at: None,
            token_valid_until: None,
        }
    }
}

/// Checks a licence record against the leaf at its `last_index` (and, when that leaf does not
/// carry the document hash, the issuance leaf at `issued_index`): the leaf must be about this
/// licence, its resulting status must be the record's, and the document hash must be the
/// record's. The record is a derived view that anyone with write access to the database could
/// edit; the leaves are bound by the signed tree. Where they disagree no status may be given.
///
/// `leaf` reads a leaf by index (from the store, or through a batch).
pub fn bind_to_log<F>(rec: &LicenceRecord, leaf: F) -> Result<(), String>
where
    F: Fn(u64) -> Result<Option<Vec<u8>>, String>,
{
    let read = |i: u64| -> Result<crate::log::leaf::Leaf, String> {
        let bytes = leaf(i)?.ok_or_else(|| format!("leaf {i} named by the record of {} is missing", rec.id))?;
        crate::log::leaf::Leaf::decode(&bytes).map_err(|e| format!("leaf {i} does not decode: {e}"))
    };
    let last = read(rec.last_index)?;
    if last.licence.as_deref() != Some(rec.id.as_str()) {
        return Err(format!("leaf {} is not about {}", rec.last_index, rec.id));
    }
    let ev = &last.event;
    let status = match ev.kind.as_str() {
        "licence.issued" => Some(Status::Valid.as_str()),
        _ => ev.get_text("to"),
    };
    if status != Some(rec.status.as_str()) {
        return Err(format!(
            "the record of {} says {} but its last leaf ({}) says {}",
            rec.id,
            rec.status.as_str(),
            rec.last_index,
            status.unwrap_or("nothing")
        ));
    }
    // A suspension ends when its leaf says.
    if rec.status == Status::Suspended && ev.suspended_until() != rec.suspended_until {
        return Err(format!("the record of {} gives its suspension another end than its last leaf", rec.id));
    }
    // The successor a verdict names is the one the superseding leaf names.
    let successor = if ev.kind == "licence.superseded" { ev.get_text("successor") } else { None };
    let kind = if ev.kind == "licence.superseded" { ev.get_text("kind") } else { None };
    if successor != rec.successor.as_deref() || kind != rec.successor_kind.map(|k| k.as_str()) {
        return Err(format!("the record of {} names a successor its last leaf does not", rec.id));
    }
    // The issuance index a verdict names must be this licence's issuance leaf; its document hash
    // is the one of last resort for leaves that do not carry it.
    let issued_leaf;
    let issued = if rec.issued_index == rec.last_index {
        &last
    } else {
        issued_leaf = read(rec.issued_index)?;
        &issued_leaf
    };
    if issued.licence.as_deref() != Some(rec.id.as_str()) || issued.event.kind != "licence.issued" {
        return Err(format!("leaf {} is not the issuance of {}", rec.issued_index, rec.id));
    }
    let doc = ev.get_bytes("doc_sha256").or_else(|| issued.event.get_bytes("doc_sha256")).unwrap_or_default().to_vec();
    if issued.event.get_bytes("doc_sha256") != Some(doc.as_slice()) {
        return Err(format!("the leaves of {} name two different documents", rec.id));
    }
    if hex::encode(doc) != rec.doc_sha256 {
        return Err(format!("the document hash of {}'s record is not the one in the log", rec.id));
    }
    Ok(())
}

/// `licvault check`: every stored licence record against the state its leaves leave it in
/// (`states`, from [`crate::log::replay`]): the same last leaf, status and document hash, and a
/// stored document with that hash whose validity period the record repeats. Returns how many
/// records were compared, or the first that disagrees.
pub fn compare_records(
    store: &dyn crate::store::Store,
    states: &std::collections::HashMap<String, crate::log::replay::LicenceState>,
) -> Result<usize, String> {
    use crate::store::Cf;
    let mut seen = 0usize;
    let mut next: Vec<u8> = Vec::new();
    // The listing rows the records and documents imply (`i/`, `t/`, `a/`, `n/`).
    let mut listing = crate::log::replay::RowDigest::default();
    loop {
        let page = store.scan_from(Cf::Licences, &next, 10_000).map_err(|e| e.to_string())?;
        let Some((last_key, _)) = page.last() else { break };
        next = [last_key.as_slice(), &[0]].concat();
        for (key, value) in page {
            let id = String::from_utf8_lossy(&key).into_owned();
            let rec: LicenceRecord =
                serde_json::from_slice(&value).map_err(|e| format!("record {id}: does not parse: {e}"))?;
            let st = states.get(&id).ok_or_else(|| format!("record {id}: no leaf is about this licence"))?;
            if rec.id != id || rec.last_index != st.last_index {
                return Err(format!(
                    "record {id}: names leaf {} as its last, the log says {}",
                    rec.last_index, st.last_index
                ));
            }
            if rec.issued_index != st.issued_index
                || rec.successor != st.successor
                || rec.successor_kind.map(|k| k.as_str()) != st.successor_kind.as_deref()
            {
                return Err(format!("record {id}: its issuance index or successor is not the log's"));
            }
            if Some(rec.status.as_str()) != st.status.as_deref() || rec.suspended_until != st.suspended_until {
                return Err(format!("record {id}: says {}, the log says {:?}", rec.status.as_str(), st.status));
            }
            if st.doc_sha256.as_deref().map(hex::encode).as_deref() != Some(rec.doc_sha256.as_str()) {
                return Err(format!("record {id}: its document hash is not the one in the log"));
            }
            let doc = store
                .get(Cf::Docs, &super::doc_key(&id))
                .map_err(|e| e.to_string())?
                .ok_or_else(|| format!("record {id}: its document is missing"))?;
            if hex::encode(crate::crypto::sha256(&doc)) != rec.doc_sha256 {
                return Err(format!("record {id}: the stored document is not the one in the log"));
            }
            // The disclosures are not in the log: they must still decode against the document's
            // digests, every one present (a lost row would leave the licence unreadable).
            let disclosures =
                match store.get(Cf::Docs, &crate::store::keys::disclosures(&id)).map_err(|e| e.to_string())? {
                    Some(row) => {
                        super::parse_disclosures(&row).map_err(|e| format!("record {id}: its disclosures: {e}"))?
                    }
                    None => Vec::new(),
                };
            let licence = crate::crypto::cose::Envelope::parse(&doc)
                .map_err(|e| e.to_string())
                .and_then(|env| {
                    crate::domain::Licence::from_signed(env.payload(), &disclosures).map_err(|e| e.to_string())
                })
                .map_err(|e| format!("record {id}: its document and disclosures do not decode: {e}"))?;
            if (licence.valid_from, licence.valid_until) != (rec.valid_from, rec.valid_until) {
                return Err(format!("record {id}: its validity period is not the signed document's"));
            }
            for (k, v) in super::listing::expected_rows(&licence, &rec) {
                listing.add(&k, &v);
            }
            // Its status-list entry says what the record says (a scanner offline trusts it).
            if let Some(r) = &licence.status_ref {
                let list = r.list();
                if list.map(|n| (n, r.index)) != rec.status_entry {
                    return Err(format!("record {id}: its status-list entry is not the one its document names"));
                }
                let want = super::status_lists::row(&rec);
                let row = match list {
                    Some(n) => {
                        store.get(Cf::Status, &super::status_lists::key(n, r.index)).map_err(|e| e.to_string())?
                    }
                    None => None,
                };
                if row.as_deref() != Some(&want[..]) {
                    return Err(format!("record {id}: its status-list entry does not say {}", rec.status.as_str()));
                }
            }
            seen += 1;
        }
    }
    if seen != states.len() {
        return Err(format!("{} licences are in the log but {seen} have records", states.len()));
    }
    // A listing shows each licence's summary and status from its rows alone: they must be
    // exactly those (once the server has written them in the current form).
    if super::listing::built(store).map_err(|e| e.to_string())? {
        let mut stored = crate::log::replay::RowDigest::default();
        for prefix in crate::store::keys::LISTED {
            crate::log::replay::digest_rows(store, Cf::Listing, prefix, &mut stored)?;
        }
        if stored != listing {
            return Err(format!(
                "the listing rows (listing i/ t/ a/ n/: {} rows) are not the {} the records and documents imply",
                stored.rows, listing.rows
            ));
        }
    }
    Ok(seen)
}
