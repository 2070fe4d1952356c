//! Issuing a licence and issuing a new version of one (renewal or amendment).
//!
//! Everything that can be checked without the log is checked first (catalogue, caller, holder,
//! fields, dates) and the document is signed outside the sequencer, so the single writer only
//! does what must be serial: uniqueness, idempotency, the leaf and the index rows.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;

use serde::{Deserialize, Serialize};

use super::records::{IdempotentAnswer, LicenceRecord};
use super::{doc_key, status_lists, unix_now, Client, Role, Vault, VaultError, META_SERIAL};
use crate::crypto::{cose, sha256};
use crate::domain::disclosure::SALT_LEN;
use crate::domain::licence::SdPayload;
use crate::domain::VersionKind;
use crate::domain::{
    parse_validity_date, start_of_day_cst, text, CoHolder, Licence, LicenceId, LicenceType, Status, TypeCode, Uscc,
    LAST_VALIDITY_DATE,
};
use crate::log::leaf::Event;
use crate::log::sequencer::{Head, Tx};
use crate::store::Cf;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HolderInput {
    /// `111` citizen ID number, `001` unified social credit code.
    #[serde(rename = "type")]
    pub kind: String,
    pub id: String,
    pub name: String,
}

/// `POST /v1/licences` body.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IssueRequest {
    pub type_code: String,
    pub holder: HolderInput,
    /// Further holders of the same licence (不动产 co-owners), at most 20: each finds it by their
    /// own number.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub co_holders: Vec<HolderInput>,
    /// Issuer's own serial (uppercase letters and digits); the vault allocates one if absent.
    #[serde(default)]
    pub serial: Option<String>,
    /// 证照编号 printed on the licence; defaults to the serial.
    #[serde(default)]
    pub number: Option<String>,
    /// 发证日期 of a licence issued before it came into the vault (migration), `YYYY-MM-DD`,
    /// today or earlier; it is the licence's issue date, distinct from the signing time (`iat`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issue_date: Option<String>,
    pub fields: BTreeMap<String, String>,
    /// `YYYY-MM-DD`, default today (China Standard Time).
    #[serde(default)]
    pub valid_from: Option<String>,
    /// `YYYY-MM-DD` (valid through the end of that day); default from the type's validity.
    #[serde(default)]
    pub valid_until: Option<String>,
    /// true: 长期有效, no end date, whatever the type's default.
    #[serde(default)]
    pub long_term: bool,
}

/// `POST /v1/licences/{id}/versions` body. What a kind may change: a renewal (延续) and a change
/// (变更) take the new face (`fields`, default the old ones) and validity; a replacement (补证)
/// and an exchange (换证) keep the face and the validity period and take neither.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RenewRequest {
    pub kind: VersionKind,
    pub reason: String,
    #[serde(default)]
    pub fields: Option<BTreeMap<String, String>>,
    #[serde(default)]
    pub holder_name: Option<String>,
    #[serde(default)]
    pub number: Option<String>,
    #[serde(default)]
    pub valid_from: Option<String>,
    #[serde(default)]
    pub valid_until: Option<String>,
    #[serde(default)]
    pub long_term: bool,
}

/// What makes a licence a new version of another.
struct NewVersion {
    of: LicenceId,
    kind: VersionKind,
    reason: String,
    /// The old version's validity period (its signed document's): whether it is suspended now.
    period: (i64, Option<i64>),
}

/// A committed issuance.
#[derive(Debug, Clone)]
pub struct Issued {
    pub licence: Licence,
    pub record: LicenceRecord,
    pub document: Vec<u8>,
    /// The salted disclosures of the document's personal values.
    pub disclosures: Vec<crate::domain::Disclosure>,
    pub head: std::sync::Arc<Head>,
    /// true when an Idempotency-Key matched an earlier request: nothing new was issued.
    pub replayed: bool,
}

/// What signing a licence makes: its document, the payload and disclosures it was made from,
/// and its compact document.
struct Signed {
    document: Vec<u8>,
    sd: SdPayload,
    compact: Vec<u8>,
}

/// Longest reason for a status change or a new version, in characters (the text rule applies).
pub const MAX_REASON: usize = 200;

/// Most co-holders one licence can name.
pub const MAX_CO_HOLDERS: usize = 20;

pub(super) fn check_reason(reason: &str) -> Result<String, VaultError> {
    Ok(text::clean("reason", reason, MAX_REASON)?)
}

fn check_text(what: &str, s: &str, max: usize) -> Result<String, VaultError> {
    Ok(text::clean(what, s, max)?)
}

/// The face fields with the text rule applied to every value (an empty optional field stays
/// empty; the schema check decides whether it may be).
fn clean_fields(fields: &BTreeMap<String, String>) -> Result<BTreeMap<String, String>, VaultError> {
    let mut out = BTreeMap::new();
    for (k, v) in fields {
        let name = text::clean("fields (a field name)", k, 64)?;
        let value =
            if v.trim().is_empty() { String::new() } else { text::clean(&format!("fields.{name}"), v, 10_000)? };
        // Two names that differ only in spaces or normalisation would silently become one.
        if out.insert(name.clone(), value).is_some() {
            return Err(VaultError::Fields(crate::domain::FieldError::Duplicate(name)));
        }
    }
    Ok(out)
}

/// A face field the catalogue does not mark personal, and the licence number, are signed in clear:
/// a citizen ID number in one would be on every QR code and public page (400
/// `personal_number_in_text`; a field that holds one is to be marked personal).
fn no_number_in_clear(
    ty: &LicenceType,
    number: Option<&str>,
    fields: &BTreeMap<String, String>,
) -> Result<(), VaultError> {
    if let Some(n) = number {
        super::usage::no_citizen_number("number", n)?;
    }
    for (name, value) in fields.iter().filter(|(name, _)| ty.personal(name).is_none()) {
        super::usage::no_citizen_number(&format!("fields.{name} (not a personal field)"), value)?;
    }
    Ok(())
}

/// Validity from request dates and the type's default. Returns (nbf, exp) in unix seconds.
fn validity(
    ty: &LicenceType,
    from: Option<&str>,
    until: Option<&str>,
    long_term: bool,
    now: i64,
) -> Result<(i64, Option<i64>), VaultError> {
    let date = |what: &str, s: &str| parse_validity_date(what, s).map_err(VaultError::Date);
    let from_date = match from {
        Some(s) => date("valid_from", s)?,
        None => crate::domain::cst_date(now),
    };
    if long_term && until.is_some() {
        return Err(VaultError::Dates("long_term and valid_until exclude each other".into()));
    }
    let until_date = match (until, ty.validity_years) {
        (Some(s), _) => Some(date("valid_until", s)?),
        (None, Some(years)) if !long_term => {
            let y = from_date.year() + years as i32;
            // 29 February plus whole years lands on 28 February in a common year.
            let end = time::Date::from_calendar_date(y, from_date.month(), from_date.day())
                .or_else(|_| time::Date::from_calendar_date(y, from_date.month(), 28))
                .map_err(|e| VaultError::Dates(e.to_string()))?;
            end.previous_day()
        }
        _ => None,
    };
    if let Some(u) = until_date {
        if u > LAST_VALIDITY_DATE {
            return Err(VaultError::Date(format!(
                "the validity ends {u}, after the last date a licence can carry ({LAST_VALIDITY_DATE})"
            )));
        }
        if u < from_date {
            return Err(VaultError::Dates(format!("valid_until {u} is before valid_from {from_date}")));
        }
    }
    let nbf = start_of_day_cst(from_date);
    let exp = until_date.map(|u| start_of_day_cst(u) + 86_400);
    Ok((nbf, exp))
}

impl Vault {
    fn may_issue(&self, client: &Client, type_code: &str) -> Result<(LicenceType, Uscc), VaultError> {
        if client.role != Role::Issuer {
            return Err(VaultError::Forbidden(format!("role {} may not issue licences", client.role.as_str())));
        }
        let tc = TypeCode::parse(type_code).map_err(VaultError::TypeCode)?;
        let catalogue = self.catalogue();
        let ty = catalogue.licence_type(tc.as_str()).cloned().ok_or_else(|| VaultError::UnknownType(tc.to_string()))?;
        let uscc = Uscc::parse(client.uscc.as_deref().unwrap_or_default())?;
        if !ty.may_issue(uscc.as_str()) || (!client.types.is_empty() && !client.types.iter().any(|t| t == tc.as_str()))
        {
            return Err(VaultError::Forbidden(format!("{} may not issue {} ({})", uscc, ty.code, ty.name)));
        }
        Ok((ty, uscc))
    }

    /// Checks that `client` may act on `id`: its own department's licence, or an admin.
    /// Reads of one licence (the licence, its history): its department's issuer clients whose
    /// type scope covers the licence's type, and administrators.
    pub fn check_owner(&self, client: &Client, id: &LicenceId) -> Result<(), VaultError> {
        match client.role {
            Role::Admin => Ok(()),
            _ => self.check_manager(client, id),
        }
    }

    /// Changes to one licence (status, new versions): only the issuer clients of the department
    /// that manages it (its issuer, or the one its management was transferred to) whose type
    /// scope covers the licence's type. An administrator runs the platform; it does not
    /// suspend or revoke a department's licences.
    pub fn check_manager(&self, client: &Client, id: &LicenceId) -> Result<(), VaultError> {
        // The department that manages it: its issuer, unless its management was transferred.
        let manager = match client.role {
            Role::Issuer => match self.record(id)? {
                Some(rec) => self.manager_of(&rec),
                None => id.issuer().to_string(),
            },
            _ => String::new(),
        };
        match client.role {
            Role::Issuer if client.uscc.as_deref() != Some(manager.as_str()) => {
                Err(VaultError::Forbidden(format!("{id} is managed by another department")))
            }
            Role::Issuer if !client.types.is_empty() && !client.types.iter().any(|t| t == id.type_code().as_str()) => {
                Err(VaultError::Forbidden(format!(
                    "client {} may act only on licence types {}; {id} is of type {}",
                    client.id,
                    client.types.join(", "),
                    id.type_code()
                )))
            }
            Role::Issuer => Ok(()),
            r => Err(VaultError::Forbidden(format!("role {} may not change licences", r.as_str()))),
        }
    }

    fn next_serial(&self, now: i64) -> String {
        let n = self.serial.fetch_add(1, Ordering::SeqCst) + 1;
        format!("{}{:08}", crate::domain::cst_date(now).year(), n)
    }

    /// Signs with the department's seal whose certificate is valid at the licence's `iat`
    /// (503 `no_valid_seal` when there is none: a document signed outside its certificate's
    /// validity would verify as invalid), in the format with salted disclosures: a citizen
    /// holder's number and the fields `ty` marks personal are in the payload only as digests.
    /// Returns the COSE_Sign1 document and the payload and disclosures it was made from.
    fn sign(&self, licence: &Licence, ty: &LicenceType) -> Result<Signed, VaultError> {
        let keys = self.keyring();
        let signer = keys.seal_for(licence.issuer().as_str(), &licence.issuer_name, licence.issued_at)?;
        let mut salt_error = None;
        let mut salt = || {
            let mut s = [0u8; SALT_LEN];
            if let Err(e) = getrandom::fill(&mut s) {
                salt_error = Some(e);
            }
            s
        };
        let sd = licence.to_sd_payload(|name| ty.personal(name).is_some(), &mut salt);
        if let Some(e) = salt_error {
            return Err(VaultError::Internal(format!("no randomness for the disclosures' salts: {e}")));
        }
        let document = cose::sign(signer, sd.payload.clone());
        // The compact document names the full one by its hash (spec/formats.md §1.3).
        let compact_payload = licence.to_compact_payload(&sha256(&document));
        match crate::domain::Presented::parse(&compact_payload, &[]) {
            Ok(p) if p.id == licence.id => {}
            _ => return Err(VaultError::Internal(format!("the compact document of {} does not decode", licence.id))),
        }
        let compact = cose::sign(signer, compact_payload);
        Ok(Signed { document, sd, compact })
    }

    /// `POST /v1/licences`.
    pub async fn issue(
        &self,
        client: &Client,
        req: IssueRequest,
        idem_key: Option<String>,
    ) -> Result<Issued, VaultError> {
        let (ty, issuer) = self.may_issue(client, &req.type_code)?;
        // A retry of a committed request is answered first, whatever rules came in since.
        let idem = match idem_key {
            None => None,
            Some(key) => {
                let (idem_row, request_sha256) = idempotency_row(client, &key, &json(&req)?)?;
                // Fast path: a retry of a committed request is answered without signing anything.
                if let Some(done) = self.idempotent_replay(&idem_row, &request_sha256)? {
                    return Ok(done);
                }
                Some((idem_row, request_sha256))
            }
        };
        let holder = self.parse_holder(&req.holder.kind, &req.holder.id)?;
        if !ty.holder_types.contains(&holder.kind()) {
            return Err(VaultError::HolderTypeNotAllowed(format!(
                "{} is issued to holders of type {}, not {}",
                ty.name,
                ty.holder_types.iter().map(|h| h.code()).collect::<Vec<_>>().join("/"),
                holder.kind().code()
            )));
        }
        let holder_name = check_text("holder.name", &req.holder.name, 100)?;
        let co_holders = self.co_holders(&ty, &holder, &req.co_holders)?;
        let mut fields = clean_fields(&req.fields)?;
        ty.canonicalise(&mut fields);
        ty.validate_fields(&fields)?;
        ty.check_holder(holder.number(), &fields)?;
        let now = unix_now();
        let (nbf, exp) = validity(&ty, req.valid_from.as_deref(), req.valid_until.as_deref(), req.long_term, now)?;

        let type_code = TypeCode::parse(&ty.code).map_err(VaultError::TypeCode)?;
        let issue_date = match req.issue_date.as_deref() {
            None => None,
            Some(d) => {
                let day = crate::domain::parse_validity_date("issue_date", d).map_err(VaultError::Date)?;
                if day > crate::domain::cst_date(now) {
                    return Err(VaultError::Dates(format!("issue_date {d} is after today")));
                }
                Some(day)
            }
        };
        let number = req.number.as_deref().map(|n| check_text("number", n, 64)).transpose()?;
        no_number_in_clear(&ty, number.as_deref(), &fields)?;
        // A serial the vault allocates can collide with one an issuer chose itself earlier: then
        // the next serial is taken. An issuer's own serial that exists already is a conflict.
        let mut attempts = 0;
        loop {
            let serial = match &req.serial {
                Some(s) => s.clone(),
                None => self.next_serial(now),
            };
            let id = LicenceId::new(type_code.clone(), issuer.clone(), &serial, 1)?;
            let licence = Licence {
                number: number.clone().unwrap_or_else(|| id.serial().to_string()),
                id,
                type_name: ty.name.clone(),
                holder: holder.clone(),
                holder_name: holder_name.clone(),
                co_holders: co_holders.clone(),
                issuer_name: self.department_name(issuer.as_str()).unwrap_or(issuer.as_str()).to_string(),
                area_code: self.departments.get(issuer.as_str()).map(|d| d.area_code.clone()).unwrap_or_default(),
                fields: fields.clone(),
                predecessor: None,
                issued_at: now,
                issue_date,
                valid_from: nbf,
                valid_until: exp,
                status_ref: None,
            };
            let allocated = req.serial.is_none().then(|| self.serial.load(Ordering::SeqCst));
            match self.commit_new(client, &ty, licence, None, idem.clone(), allocated).await {
                Err(VaultError::Conflict(_)) if req.serial.is_none() && attempts < 8 => attempts += 1,
                done => return done,
            }
        }
    }

    /// The co-holders of a new licence: each a valid holder of a type the licence type allows,
    /// none named twice.
    fn co_holders(
        &self,
        ty: &LicenceType,
        holder: &crate::domain::HolderId,
        given: &[HolderInput],
    ) -> Result<Vec<CoHolder>, VaultError> {
        if given.len() > MAX_CO_HOLDERS {
            return Err(VaultError::Invalid(format!("at most {MAX_CO_HOLDERS} co_holders")));
        }
        let mut out: Vec<CoHolder> = Vec::new();
        for (i, h) in given.iter().enumerate() {
            let id = self.parse_holder(&h.kind, &h.id)?;
            if !ty.holder_types.contains(&id.kind()) {
                return Err(VaultError::HolderTypeNotAllowed(format!(
                    "co_holders[{i}]: {} is held by holders of type {}, not {}",
                    ty.name,
                    ty.holder_types.iter().map(|h| h.code()).collect::<Vec<_>>().join("/"),
                    id.kind().code()
                )));
            }
            if let Some(p) = ty.holder_prefix.as_deref().filter(|p| !id.number().starts_with(p)) {
                return Err(VaultError::Fields(crate::domain::FieldError::HolderPrefix(p.to_string())));
            }
            if &id == holder || out.iter().any(|c| c.id == id) {
                return Err(VaultError::Invalid(format!("co_holders[{i}] names a holder twice")));
            }
            let name = check_text(&format!("co_holders[{i}].name"), &h.name, 100)?;
            out.push(CoHolder { id, name });
        }
        Ok(out)
    }

    fn idempotent_replay(&self, row: &[u8], request_sha256: &str) -> Result<Option<Issued>, VaultError> {
        let Some(ans) = super::records::idempotent_answer(self.store.get(Cf::Idempotency, row)?, request_sha256)?
        else {
            return Ok(None);
        };
        let id = LicenceId::parse(&ans.licence_id)?;
        let super::Stored { licence, record, document, disclosures } = self.stored(&id)?;
        Ok(Some(Issued { licence, record, document, disclosures, head: self.head(), replayed: true }))
    }

    /// Signs and commits a new licence version; for a new version of an existing licence, the
    /// predecessor is superseded in the same batch.
    async fn commit_new(
        &self,
        client: &Client,
        ty: &LicenceType,
        licence: Licence,
        predecessor: Option<NewVersion>,
        idem: Option<(Vec<u8>, String)>,
        serial_hwm: Option<u64>,
    ) -> Result<Issued, VaultError> {
        let mut licence = licence;
        let (slot, status_ref) = self.allocate_status()?;
        licence.status_ref = Some(status_ref);
        let Signed { document, sd, compact } = self.sign(&licence, ty)?;
        // Nothing is committed that cannot be read back: the signed payload and its disclosures
        // must decode to the very licence that was signed (a date the decoder refuses, say, would
        // otherwise be issued and then be unreadable for ever).
        match Licence::from_own(&sd.payload, &sd.disclosures) {
            Ok(l) if l == licence => {}
            Ok(_) => return Err(VaultError::Internal(format!("{} does not decode to what was signed", licence.id))),
            Err(e) => return Err(VaultError::Internal(format!("{} does not decode: {e}", licence.id))),
        }
        let doc_hash = sha256(&document);
        let commitment = self.committer.commit(&licence.holder);
        let co_commitments: Vec<u8> =
            licence.co_holders.iter().flat_map(|c| self.committer.commit(&c.id).to_vec()).collect();
        let id = licence.id.to_string();
        let record = LicenceRecord {
            id: id.clone(),
            type_code: licence.id.type_code().to_string(),
            issuer: licence.issuer().to_string(),
            status: Status::Valid,
            doc_sha256: hex::encode(doc_hash),
            valid_from: licence.valid_from,
            valid_until: licence.valid_until,
            issued_index: 0,
            last_index: 0,
            predecessor: predecessor.as_ref().map(|p| p.of.to_string()),
            successor: None,
            successor_kind: None,
            status_entry: Some(slot),
            suspended_until: None,
        };
        let actor = client.id.clone();
        let doc = document.clone();
        let disclosures = super::disclosures_value(&sd.disclosures);
        let predecessor_changed = predecessor.is_some();
        let listed = licence.clone();
        let submitted = self
            .seq
            .submit(move |tx: &mut Tx<'_>| -> Result<Result<LicenceRecord, String>, VaultError> {
                if let Some((row, sha)) = &idem {
                    // The same key raced in within this batch or just before: answer with the first.
                    if let Some(ans) = super::records::idempotent_answer(tx.get(Cf::Idempotency, row)?, sha)? {
                        return Ok(Err(ans.licence_id));
                    }
                }
                if tx.get(Cf::Licences, id.as_bytes())?.is_some() {
                    return Err(VaultError::Conflict(format!("licence {id} exists already")));
                }
                let mut ev = Event::new("licence.issued")
                    .bytes("doc_sha256", &doc_hash)
                    .bytes("holder", &commitment)
                    .text("type", record.type_code.as_str())
                    .text("issuer", record.issuer.as_str())
                    .text("actor", actor.as_str());
                if !co_commitments.is_empty() {
                    ev = ev.bytes("co_holders", &co_commitments);
                }
                if let Some(p) = &predecessor {
                    ev = ev
                        .text("predecessor", p.of.to_string())
                        .text("kind", p.kind.as_str())
                        .text("reason", p.reason.as_str());
                }
                let mut record = record;
                if let Some(NewVersion { of, kind, reason, period }) = &predecessor {
                    let key = of.to_string();
                    let mut old = record_in(tx, &key)?;
                    // A new version of a suspended licence would be valid: 暂扣 is lifted first.
                    if old.effective(unix_now(), period.0, period.1) == Status::Suspended {
                        return Err(VaultError::Conflict(format!(
                            "{key} is suspended (暂扣): reinstate it before a new version, which would be valid"
                        )));
                    }
                    if !matches!(old.status, Status::Valid | Status::Suspended) {
                        return Err(VaultError::Conflict(format!(
                            "{key} is {}: only a valid or suspended licence gets a new version",
                            old.status.as_str()
                        )));
                    }
                    let ev_old = Event::new("licence.superseded")
                        .bytes("doc_sha256", &hex::decode(&old.doc_sha256).unwrap_or_default())
                        .text("from", old.status.as_str())
                        .text("to", Status::Superseded.as_str())
                        .text("successor", id.as_str())
                        .text("kind", kind.as_str())
                        .text("reason", reason.as_str())
                        .text("actor", actor.as_str());
                    let i = tx.append_about(ev_old, &key, Some(old.last_index));
                    tx.put(Cf::Listing, crate::store::keys::change(&old.issuer, i), key.clone().into_bytes());
                    old.status = Status::Superseded;
                    old.successor = Some(id.clone());
                    old.successor_kind = Some(*kind);
                    old.suspended_until = None;
                    if let Some((list, index)) = old.status_entry {
                        tx.put(
                            Cf::Status,
                            status_lists::key(list, index),
                            vec![status_lists::code(Status::Superseded)],
                        );
                    }
                    old.last_index = i;
                    tx.put(Cf::Licences, key.into_bytes(), json(&old)?);
                    super::listing::relist(tx, &old)?;
                }
                let index = tx.append_about(ev, &id, None);
                super::listing::put_listing(tx, &listed, index);
                tx.put(Cf::Listing, crate::store::keys::change(&record.issuer, index), id.clone().into_bytes());
                record.issued_index = index;
                record.last_index = index;
                tx.put(Cf::Licences, id.clone().into_bytes(), json(&record)?);
                tx.put(Cf::Docs, doc_key(&id), doc);
                tx.put(Cf::Docs, crate::store::keys::disclosures(&id), disclosures);
                tx.put(Cf::Docs, crate::store::keys::compact(&id), compact);
                tx.put(Cf::Status, status_lists::key(slot.0, slot.1), vec![status_lists::code(Status::Valid)]);
                tx.put(Cf::Holders, crate::store::keys::holder(&commitment, &id), Vec::new());
                for co in co_commitments.chunks(32) {
                    tx.put(Cf::Holders, crate::store::keys::holder(co, &id), Vec::new());
                }
                if let Some((row, sha)) = idem {
                    tx.put(
                        Cf::Idempotency,
                        row,
                        json(&IdempotentAnswer { request_sha256: sha, licence_id: id.clone(), log_index: None })?,
                    );
                }
                if let Some(n) = serial_hwm {
                    let stored = tx
                        .get(Cf::Meta, META_SERIAL)?
                        .and_then(|v| v.try_into().ok())
                        .map(u64::from_be_bytes)
                        .unwrap_or(0);
                    tx.put(Cf::Meta, META_SERIAL.to_vec(), stored.max(n).to_be_bytes().to_vec());
                }
                Ok(Ok(record))
            })
            .await;
        // The status entry was taken before signing. It is given back when nothing of this
        // licence can be in the store: the batch was refused before any write (storage full),
        // the job refused, or an earlier licence answers the key. After any other failed write
        // the batch may have landed, and the entry stays taken.
        let unused =
            matches!(&submitted, Err(crate::log::sequencer::SequencerError::Full(_)) | Ok((Err(_) | Ok(Err(_)), _)));
        if unused {
            self.release_status(slot);
        }
        let (out, head) = submitted?;
        if predecessor_changed {
            // The predecessor's entry now says superseded.
            self.status_cache.changed();
        }
        match out? {
            Ok(record) => Ok(Issued { licence, record, document, disclosures: sd.disclosures, head, replayed: false }),
            Err(first_id) => {
                let id = LicenceId::parse(&first_id)?;
                let super::Stored { licence, record, document, disclosures } = self.stored(&id)?;
                Ok(Issued { licence, record, document, disclosures, head, replayed: true })
            }
        }
    }

    /// `POST /v1/licences/{id}/versions`: the next version of `kind`, same type, holder and
    /// serial; the current version becomes `superseded`. Honours an Idempotency-Key like
    /// issuance.
    pub async fn renew(
        &self,
        client: &Client,
        id: &LicenceId,
        req: RenewRequest,
        idem_key: Option<String>,
    ) -> Result<Issued, VaultError> {
        let _gate = self.transfer_gate.read().await;
        self.check_manager(client, id)?;
        let reason = check_reason(&req.reason)?;
        let idem = match idem_key {
            None => None,
            Some(key) => {
                let (row, sha) = idempotency_row(client, &key, &json(&(id.to_string(), &req))?)?;
                if let Some(done) = self.idempotent_replay(&row, &sha)? {
                    return Ok(done);
                }
                Some((row, sha))
            }
        };
        let (old, record, _) = self.licence(id)?;
        // A new version is signed with the issuer's seal and keeps its identifier: the
        // department a licence was transferred to issues a licence of its own instead.
        // check_manager found the client's department managing it (the gate keeps it so).
        let manager = client.uscc.as_deref().unwrap_or_default();
        if manager != record.issuer {
            return Err(VaultError::Conflict(format!(
                "{id} was transferred to {manager}: it issues a new licence of its own, not a version of {}'s",
                record.issuer
            )));
        }
        if let Some(s) = &record.successor {
            return Err(VaultError::Conflict(format!("{id} is superseded by {s}: make a version of the latest")));
        }
        let now = unix_now();
        let (ty, _) = self.may_issue(client, id.type_code().as_str())?;
        let kind = req.kind;
        let keeps_face = matches!(kind, VersionKind::Replacement | VersionKind::Exchange);
        if keeps_face
            && (req.fields.is_some()
                || req.holder_name.is_some()
                || req.number.is_some()
                || req.valid_from.is_some()
                || req.valid_until.is_some()
                || req.long_term)
        {
            return Err(VaultError::Invalid(format!(
                "a {} ({}) keeps the face and the validity period: send only kind and reason",
                kind.as_str(),
                kind.words_zh()
            )));
        }
        // 延续 is asked for before the licence expires (行政许可法 art. 50); after, a new licence.
        if kind == VersionKind::Renewal && old.valid_until.is_some_and(|e| now >= e) {
            return Err(VaultError::Conflict(format!("{id} has expired: it is renewed before it expires, not after")));
        }
        let mut fields = match &req.fields {
            Some(f) => clean_fields(f)?,
            None => old.fields.clone(),
        };
        // A replacement or an exchange keeps the face as it was signed, under whatever rules
        // were in force then.
        if !keeps_face {
            ty.canonicalise(&mut fields);
            ty.validate_fields(&fields)?;
            ty.check_holder(old.holder.number(), &fields)?;
        }
        let number = match &req.number {
            Some(n) => check_text("number", n, 64)?,
            None => old.number.clone(),
        };
        no_number_in_clear(&ty, Some(number.as_str()), &fields)?;
        let holder_name = match &req.holder_name {
            Some(n) => check_text("holder_name", n, 100)?,
            None => old.holder_name.clone(),
        };
        let (nbf, exp) = match kind {
            VersionKind::Replacement | VersionKind::Exchange => (old.valid_from, old.valid_until),
            // A change keeps the period unless it gives one.
            VersionKind::Change if req.valid_from.is_none() && req.valid_until.is_none() && !req.long_term => {
                (old.valid_from, old.valid_until)
            }
            _ => validity(&ty, req.valid_from.as_deref(), req.valid_until.as_deref(), req.long_term, now)?,
        };
        if kind == VersionKind::Change
            && (&fields, &number, &holder_name, nbf, exp)
                == (&old.fields, &old.number, &old.holder_name, old.valid_from, old.valid_until)
        {
            return Err(VaultError::Invalid("a change (变更) changes something on the face".into()));
        }
        let old_period = (old.valid_from, old.valid_until);
        let licence = Licence {
            id: id.next_version()?,
            holder_name,
            number,
            fields,
            predecessor: Some(id.clone()),
            issued_at: now,
            // A new version is issued today.
            issue_date: None,
            valid_from: nbf,
            valid_until: exp,
            // The new version gets its own entry in a status list when it is committed.
            status_ref: None,
            ..old
        };
        let version = NewVersion { of: id.clone(), kind, reason, period: old_period };
        self.commit_new(client, &ty, licence, Some(version), idem, None).await
    }
}

/// The `Cf::Idempotency` row of `client`'s `key`, and the SHA-256 (hex) of the canonical request
/// it stands for: every write shares the client's keys, and a key used again for another
/// request is refused.
pub(super) fn idempotency_row(client: &Client, key: &str, canonical: &[u8]) -> Result<(Vec<u8>, String), VaultError> {
    let key = check_text("Idempotency-Key", key, 255)?;
    Ok(([client.id.as_bytes(), &[0], key.as_bytes()].concat(), hex::encode(sha256(canonical))))
}

/// The licence record `id` as the batch sees it, checked against the log (no change is made on
/// top of a record that disagrees with its leaves).
pub(super) fn record_in(tx: &Tx<'_>, id: &str) -> Result<LicenceRecord, VaultError> {
    let bytes = tx.get(Cf::Licences, id.as_bytes())?.ok_or_else(|| VaultError::NotFound(id.to_string()))?;
    bound_record(id, &bytes, |i| tx.leaf(i).map_err(|e| e.to_string()))
}

/// The licence record `bytes` stored under `id`: parsed, about `id`, and agreeing with the leaf
/// it names ([`super::records::bind_to_log`], leaves read through `leaf`); else 503
/// `store_inconsistent`.
pub(super) fn bound_record(
    id: &str,
    bytes: &[u8],
    leaf: impl Fn(u64) -> Result<Option<Vec<u8>>, String>,
) -> Result<LicenceRecord, VaultError> {
    let rec: LicenceRecord =
        serde_json::from_slice(bytes).map_err(|e| inconsistent(format!("the record of {id} does not parse: {e}")))?;
    if rec.id != id {
        return Err(inconsistent(format!("the record stored under {id} is about {}", rec.id)));
    }
    super::records::bind_to_log(&rec, leaf).map_err(inconsistent)?;
    Ok(rec)
}

/// A record that disagrees with the log: logged as an error, answered 503 `store_inconsistent`.
pub(super) fn inconsistent(why: String) -> VaultError {
    tracing::error!(reason = %why, "store inconsistent: a derived view disagrees with the log");
    VaultError::StoreInconsistent(why)
}

pub(super) fn json<T: Serialize>(v: &T) -> Result<Vec<u8>, VaultError> {
    serde_json::to_vec(v).map_err(|e| VaultError::Internal(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::parse_date;

    fn ty(years: Option<u32>) -> LicenceType {
        let cat = crate::domain::Catalogue::from_json(include_str!("../../fixtures/catalogue.json")).unwrap();
        let mut t = cat.licence_types().next().unwrap().clone();
        t.validity_years = years;
        t
    }

    #[test]
    fn validity_rules() {
        let now = start_of_day_cst(parse_date("2026-03-01").unwrap()) + 3600;
        let (nbf, exp) = validity(&ty(Some(5)), None, None, false, now).unwrap();
        assert_eq!(nbf, start_of_day_cst(parse_date("2026-03-01").unwrap()));
        assert_eq!(exp, Some(start_of_day_cst(parse_date("2031-03-01").unwrap())));
        assert_eq!(validity(&ty(Some(5)), None, None, true, now).unwrap().1, None);
        assert_eq!(validity(&ty(None), None, None, false, now).unwrap().1, None);
        let leap = validity(&ty(Some(1)), Some("2024-02-29"), None, false, now).unwrap();
        assert_eq!(leap.1, Some(start_of_day_cst(parse_date("2025-02-28").unwrap())));
        assert!(matches!(
            validity(&ty(None), Some("2026-05-01"), Some("2026-04-30"), false, now),
            Err(VaultError::Dates(_))
        ));
        assert!(matches!(validity(&ty(None), Some("2026-13-01"), None, false, now), Err(VaultError::Date(_))));
        assert!(matches!(validity(&ty(None), Some("1969-12-31"), None, false, now), Err(VaultError::Date(_))));
        assert!(matches!(validity(&ty(None), Some("-999-01-01"), None, false, now), Err(VaultError::Date(_))));
        assert!(matches!(validity(&ty(Some(5)), Some("2999-01-01"), None, false, now), Err(VaultError::Date(_))));
        assert!(matches!(validity(&ty(None), None, Some("2030-01-01"), true, now), Err(VaultError::Dates(_))));
    }
}
