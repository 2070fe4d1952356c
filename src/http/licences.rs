//! Issuing departments' endpoints: issue, read, change status, new versions, history.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, MethodRouter};
use axum::Json;
use base64::{engine::general_purpose::STANDARD as B64, Engine};
use serde::Deserialize;
use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::{json, Value};

use super::{ApiError, ApiJson, AppState, Caller};
use crate::domain::catalogue::Personal;
use crate::domain::status::Action;
use crate::domain::VersionKind;
use crate::domain::{
    cst_date, Disclosure, DisclosureKey, HolderId, Licence, LicenceId, LicenceType, Presented, ShownHolder, Status,
    StatusRef,
};
use crate::vault::{ChangeRequest, IssueRequest, Issued, LicenceRecord, RenewRequest, Vault};

pub fn routes() -> Vec<(&'static str, &'static str, MethodRouter<AppState>)> {
    vec![
        ("POST", "/v1/licences", post(issue)),
        ("POST", "/v1/licences/batch", post(batch).layer(axum::extract::DefaultBodyLimit::max(MAX_BATCH_BODY))),
        ("GET", "/v1/licences", get(list)),
        ("GET", "/v1/changes", get(changes)),
        ("GET", "/v1/licences/{id}", get(read)),
        ("POST", "/v1/licences/{id}/suspend", post(|s, c, p, h, b| change(s, c, p, h, b, Action::Suspend))),
        ("POST", "/v1/licences/{id}/reinstate", post(|s, c, p, h, b| change(s, c, p, h, b, Action::Reinstate))),
        ("POST", "/v1/licences/{id}/withdraw", post(|s, c, p, h, b| change(s, c, p, h, b, Action::Withdraw))),
        ("POST", "/v1/licences/{id}/annul", post(|s, c, p, h, b| change(s, c, p, h, b, Action::Annul))),
        ("POST", "/v1/licences/{id}/revoke", post(|s, c, p, h, b| change(s, c, p, h, b, Action::Revoke))),
        ("POST", "/v1/licences/{id}/cancel", post(|s, c, p, h, b| change(s, c, p, h, b, Action::Cancel))),
        ("POST", "/v1/licences/{id}/versions", post(renew)),
        ("GET", "/v1/licences/{id}/history", get(history)),
    ]
}

pub(super) fn parse_id(raw: &str) -> Result<LicenceId, ApiError> {
    LicenceId::parse(raw).map_err(|e| ApiError::bad_request("invalid_licence_id", e.to_string()))
}

fn date(t: i64) -> String {
    cst_date(t).to_string()
}

/// The licence as the API shows it (spec/openapi.yaml `Licence`). Fields are declared in the
/// order of their names, so the JSON reads as it always did.
#[derive(Serialize)]
pub struct LicenceView<'a> {
    area_code: &'a str,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    co_holders: Vec<HolderView<'a>>,
    /// A presented document: the values the holder disclosed with it.
    #[serde(skip_serializing_if = "Option::is_none")]
    disclosed: Option<Vec<String>>,
    fields: BTreeMap<&'a str, &'a str>,
    holder: HolderView<'a>,
    id: String,
    issued_at: String,
    /// 发证日期: the date printed as the licence's issue date (a migrated licence's own, else the
    /// signing day).
    issue_date: String,
    issuer: IssuerView<'a>,
    long_term: bool,
    number: &'a str,
    predecessor: Option<String>,
    /// Where the licence's status is published (documents in format 2).
    #[serde(skip_serializing_if = "Option::is_none")]
    status_list: Option<StatusListView<'a>>,
    type_code: &'a str,
    type_name: &'a str,
    valid_from: String,
    valid_until: Option<String>,
    version: String,
    /// A presented document: how many personal values it holds that were not disclosed.
    #[serde(skip_serializing_if = "Option::is_none")]
    withheld: Option<usize>,
}

#[derive(Serialize)]
struct StatusListView<'a> {
    idx: u32,
    uri: &'a str,
}

impl<'a> From<&'a StatusRef> for StatusListView<'a> {
    fn from(r: &'a StatusRef) -> Self {
        Self { idx: r.index, uri: &r.uri }
    }
}

#[derive(Serialize)]
struct HolderView<'a> {
    /// `None` (null): a citizen's number the presented document withholds.
    id: Option<String>,
    name: &'a str,
    #[serde(rename = "type")]
    kind: &'static str,
}

#[derive(Serialize)]
struct IssuerView<'a> {
    name: &'a str,
    uscc: &'a str,
}

/// Who a licence read from the vault is shown to. The verifier's view carries the licence's
/// catalogue type (which names the personal fields to leave out), looked up by the caller from
/// the catalogue it holds for the whole answer.
#[derive(Clone, Copy)]
pub enum Audience<'a> {
    /// The issuing department and the holder's own channel: everything.
    Full,
    /// A verifying department: holder numbers only where the clerk typed them (the rest
    /// masked), the holder's own personal fields but none of other persons.
    Verifier(&'a [HolderId], Option<&'a LicenceType>),
}

/// A licence read from the vault, showing what `audience` may see.
pub fn licence_json<'a>(l: &'a Licence, audience: Audience<'_>) -> LicenceView<'a> {
    let shown = |name: &str| match audience {
        Audience::Full => true,
        // A type the catalogue does not know hides every field (fail closed).
        Audience::Verifier(_, ty) => ty.is_some_and(|t| t.personal(name) != Some(Personal::Other)),
    };
    let number = |h: &HolderId| match audience {
        Audience::Full => h.number().to_string(),
        Audience::Verifier(known, _) if known.contains(h) => h.number().to_string(),
        _ => h.masked(),
    };
    LicenceView {
        co_holders: l
            .co_holders
            .iter()
            .map(|c| HolderView { id: Some(number(&c.id)), name: &c.name, kind: c.id.kind().code() })
            .collect(),
        fields: l.fields.iter().filter(|(k, _)| shown(k)).map(|(k, v)| (k.as_str(), v.as_str())).collect(),
        holder: HolderView { id: Some(number(&l.holder)), name: &l.holder_name, kind: l.holder.kind().code() },
        status_list: l.status_ref.as_ref().map(Into::into),
        ..common_view(
            &l.id,
            (l.issued_at, l.valid_from, l.valid_until, l.predecessor.as_ref()),
            l.issue_date,
            &l.area_code,
            &l.number,
            &l.type_name,
            &l.issuer_name,
        )
    }
}

/// A presented document for the public verification answer: what the holder disclosed with it,
/// and of the values in clear those that are not personal. A document in the first format
/// carries personal values in clear although the holder chose nothing: those are left out, and
/// a citizen's number there is masked. A withheld number is null.
pub fn presented_json<'a>(p: &'a Presented, ty: Option<&'a LicenceType>) -> LicenceView<'a> {
    let shown = |name: &str| {
        p.disclosed.contains(&DisclosureKey::Field(name.to_string())) || ty.is_some_and(|t| t.personal(name).is_none())
    };
    let number = |pos: usize, h: &ShownHolder| {
        h.id.as_ref().map(|id| {
            if p.disclosed.contains(&DisclosureKey::Holder(pos)) {
                id.number().to_string()
            } else {
                id.masked()
            }
        })
    };
    let type_name = match (p.type_name.as_str(), ty) {
        ("", Some(t)) => t.name.as_str(),
        (name, _) => name,
    };
    LicenceView {
        co_holders: p
            .co_holders
            .iter()
            .enumerate()
            .map(|(i, c)| HolderView { id: number(i + 1, c), name: &c.name, kind: c.kind.code() })
            .collect(),
        disclosed: Some(p.disclosed.iter().map(DisclosureKey::label).collect()),
        fields: p.fields.iter().filter(|(k, _)| shown(k)).map(|(k, v)| (k.as_str(), v.as_str())).collect(),
        holder: HolderView { id: number(0, &p.holder), name: &p.holder.name, kind: p.holder.kind.code() },
        status_list: p.status_ref.as_ref().map(Into::into),
        withheld: Some(p.withheld),
        // A compact document names no type: the catalogue does.
        ..common_view(
            &p.id,
            (p.issued_at, p.valid_from, p.valid_until, p.predecessor.as_ref()),
            p.issue_date,
            &p.area_code,
            &p.number,
            type_name,
            &p.issuer_name,
        )
    }
}

/// The parts of a view that every audience sees alike.
/// `times`: issued at, valid from, valid until, the predecessor; `issue_date`: a migrated
/// licence's own.
fn common_view<'a>(
    id: &'a LicenceId,
    times: (i64, i64, Option<i64>, Option<&LicenceId>),
    issue_date: Option<time::Date>,
    area_code: &'a str,
    number: &'a str,
    type_name: &'a str,
    issuer_name: &'a str,
) -> LicenceView<'a> {
    let (issued_at, valid_from, valid_until, predecessor) = times;
    LicenceView {
        area_code,
        co_holders: Vec::new(),
        disclosed: None,
        fields: BTreeMap::new(),
        holder: HolderView { id: None, name: "", kind: "" },
        id: id.to_string(),
        issued_at: crate::vault::rfc3339_s(issued_at),
        issue_date: issue_date.unwrap_or_else(|| cst_date(issued_at)).to_string(),
        issuer: IssuerView { name: issuer_name, uscc: id.issuer().as_str() },
        long_term: valid_until.is_none(),
        number,
        predecessor: predecessor.map(|p| p.to_string()),
        status_list: None,
        type_code: id.type_code().as_str(),
        type_name,
        valid_from: date(valid_from),
        valid_until: valid_until.map(|e| date(e - 1)),
        version: format!("{:03}", id.version()),
        withheld: None,
    }
}

/// The status words of a licence (the status fields of spec/openapi.yaml's `LicenceRead`).
#[derive(Serialize)]
pub struct StatusView<'a> {
    recorded_status: Status,
    status: Status,
    status_words: &'static str,
    successor: Option<SuccessorView<'a>>,
    /// A suspension's last day (`YYYY-MM-DD`), while it is suspended with an end.
    #[serde(skip_serializing_if = "Option::is_none")]
    suspended_until: Option<String>,
}

/// The newer version that superseded a licence (spec/openapi.yaml `Successor`).
#[derive(Serialize)]
pub struct SuccessorView<'a> {
    id: &'a str,
    /// `renewal` (延续), `change` (变更), `replacement` (补证) or `exchange` (换证); absent for a
    /// version made before kinds were recorded.
    #[serde(skip_serializing_if = "Option::is_none")]
    kind: Option<VersionKind>,
    #[serde(skip_serializing_if = "Option::is_none")]
    kind_words: Option<&'static str>,
    /// The successor's version number, `002`….
    version: String,
}

impl<'a> SuccessorView<'a> {
    pub fn new(id: &'a str, kind: Option<VersionKind>) -> Self {
        Self {
            id,
            kind,
            kind_words: kind.map(VersionKind::words_zh),
            version: LicenceId::parse(id).map(|i| format!("{:03}", i.version())).unwrap_or_default(),
        }
    }

    pub fn of(rec: &'a LicenceRecord) -> Option<Self> {
        Some(Self::new(rec.successor.as_deref()?, rec.successor_kind))
    }
}

/// A suspension's last day (`YYYY-MM-DD`), while a licence is suspended with an end.
fn suspension_end(status: Status, until: Option<i64>) -> Option<String> {
    match (status, until) {
        (Status::Suspended, Some(u)) => Some(date(u - 1)),
        _ => None,
    }
}

/// The status of a licence now. The validity period is the signed licence's (bound to the log by
/// its document hash), not the record's.
pub fn status_view<'a>(rec: &'a LicenceRecord, licence: &Licence) -> StatusView<'a> {
    let effective = rec.effective(crate::vault::unix_now(), licence.valid_from, licence.valid_until);
    StatusView {
        recorded_status: rec.status,
        status: effective,
        status_words: effective.words_zh(),
        successor: SuccessorView::of(rec),
        suspended_until: suspension_end(effective, rec.suspended_until),
    }
}

/// The answer to an issuance or a new version (spec/openapi.yaml `Issued`).
#[derive(Serialize)]
struct IssuedView<'a> {
    disclosures: Vec<DisclosureView<'a>>,
    /// Base64 of the COSE_Sign1 bytes.
    document: String,
    licence: LicenceView<'a>,
    log: IssuedLog<'a>,
    #[serde(flatten)]
    status: StatusView<'a>,
}

#[derive(Serialize)]
struct IssuedLog<'a> {
    checkpoint: &'a str,
    index: u64,
    receipt: String,
}

fn issued_json<'a>(vault: &Vault, i: &'a Issued) -> Result<IssuedView<'a>, ApiError> {
    let receipt = vault.receipt(i.record.issued_index, &i.head)?;
    // The QR payload is for the holder: GET /v1/licences/{id} has it. Leaving it out here keeps
    // a deflate off every issuance.
    Ok(IssuedView {
        disclosures: disclosure_views(&i.disclosures),
        document: B64.encode(&i.document),
        licence: licence_json(&i.licence, Audience::Full),
        log: IssuedLog { checkpoint: &i.head.checkpoint, index: i.record.issued_index, receipt },
        status: status_view(&i.record, &i.licence),
    })
}

/// The answer of `GET /v1/licences/{id}` (spec/openapi.yaml `LicenceRead`); each licence of the
/// holder channel's wallet has the same shape.
#[derive(Serialize)]
pub struct ReadView<'a> {
    disclosures: Vec<DisclosureView<'a>>,
    document: String,
    licence: LicenceView<'a>,
    log: ReadLog,
    qr_payload: String,
    #[serde(flatten)]
    status: StatusView<'a>,
}

/// A salted disclosure of a personal value (spec/openapi.yaml `SaltedDisclosure`): the holder
/// shows it with the document to disclose the value.
#[derive(Serialize)]
pub struct DisclosureView<'a> {
    /// base64 of the disclosure's CBOR bytes, as the document's digest covers them.
    disclosure: String,
    /// `holder.id`, `co_holders[N].id`, or the face field's name.
    key: String,
    value: &'a str,
}

pub fn disclosure_views(disclosures: &[Disclosure]) -> Vec<DisclosureView<'_>> {
    disclosures
        .iter()
        .map(|d| DisclosureView { disclosure: B64.encode(d.bytes()), key: d.key.label(), value: &d.value })
        .collect()
}

#[derive(Serialize)]
struct ReadLog {
    index: u64,
    last_index: u64,
}

/// The answer of a status change (spec/openapi.yaml `StatusChanged`).
#[derive(Serialize)]
struct ChangedView<'a> {
    id: String,
    log: IssuedLog<'a>,
    #[serde(flatten)]
    status: StatusView<'a>,
}

/// POST /v1/licences — issue a licence (honours Idempotency-Key).
async fn issue(
    State(s): State<AppState>,
    Caller(client): Caller,
    headers: HeaderMap,
    ApiJson(req): ApiJson<IssueRequest>,
) -> Result<Response, ApiError> {
    let issued = s.vault.issue(&client, req, idempotency_key(&headers)?).await?;
    issued_response(&s.vault, &issued)
}

/// 201 with the new licence, or 200 when an Idempotency-Key replayed an earlier one.
fn issued_response(vault: &Vault, issued: &Issued) -> Result<Response, ApiError> {
    let status = if issued.replayed { StatusCode::OK } else { StatusCode::CREATED };
    let location = format!("/v1/licences/{}", issued.licence.id);
    let replayed = issued.replayed.to_string();
    Ok((status, [("location", location), ("idempotent-replayed", replayed)], Json(issued_json(vault, issued)?))
        .into_response())
}

/// GET /v1/licences/{id} — the issuing department (or an admin) reads a licence.
async fn read(State(s): State<AppState>, Caller(client): Caller, Path(id): Path<String>) -> Result<Response, ApiError> {
    let id = parse_id(&id)?;
    s.vault.check_owner(&client, &id)?;
    let l = s.vault.stored(&id)?;
    let qr = s.vault.qr_payload(&l.document);
    Ok(Json(read_view(&l.licence, &l.record, &l.document, &l.disclosures, qr)).into_response())
}

/// A licence in full, with its document and QR payload: for its issuer and for its holder.
pub fn read_view<'a>(
    licence: &'a Licence,
    record: &'a LicenceRecord,
    doc: &[u8],
    disclosures: &'a [Disclosure],
    qr_payload: String,
) -> ReadView<'a> {
    ReadView {
        disclosures: disclosure_views(disclosures),
        document: B64.encode(doc),
        licence: licence_json(licence, Audience::Full),
        log: ReadLog { index: record.issued_index, last_index: record.last_index },
        qr_payload,
        status: status_view(record, licence),
    }
}

/// The Idempotency-Key header, if any.
fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    headers
        .get("idempotency-key")
        .map(|v| {
            v.to_str()
                .map(str::to_string)
                .map_err(|_| ApiError::bad_request("invalid_request", "Idempotency-Key must be visible ASCII"))
        })
        .transpose()
}

/// POST /v1/licences/{id}/suspend · /reinstate · /withdraw · /annul · /revoke · /cancel — with a
/// reason (and for a suspension, optionally its last day); honours Idempotency-Key.
async fn change(
    State(s): State<AppState>,
    Caller(client): Caller,
    Path(id): Path<String>,
    headers: HeaderMap,
    ApiJson(body): ApiJson<ChangeRequest>,
    action: Action,
) -> Result<Response, ApiError> {
    let id = parse_id(&id)?;
    let key = idempotency_key(&headers)?;
    let done = s.vault.change_status(&client, &id, action, &body, key.as_deref()).await?;
    let receipt = s.vault.receipt(done.index, &done.head)?;
    let view = ChangedView {
        id: id.to_string(),
        log: IssuedLog { checkpoint: &done.head.checkpoint, index: done.index, receipt },
        status: status_view(&done.record, &done.licence),
    };
    Ok(([("idempotent-replayed", done.replayed.to_string())], Json(view)).into_response())
}

/// POST /v1/licences/{id}/versions — renewal or amendment: a new version; this one is superseded.
async fn renew(
    State(s): State<AppState>,
    Caller(client): Caller,
    Path(id): Path<String>,
    headers: HeaderMap,
    ApiJson(req): ApiJson<RenewRequest>,
) -> Result<Response, ApiError> {
    let id = parse_id(&id)?;
    let issued = s.vault.renew(&client, &id, req, idempotency_key(&headers)?).await?;
    issued_response(&s.vault, &issued)
}

/// GET /v1/licences/{id}/history — every event about this licence version, from the log.
async fn history(
    State(s): State<AppState>,
    Caller(client): Caller,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let id = parse_id(&id)?;
    let events = s.vault.history(&client, &id)?;
    Ok(Json(json!({ "id": id.to_string(), "events": events })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ListParams {
    issuer: Option<String>,
    #[serde(rename = "type")]
    type_code: Option<String>,
    number: Option<String>,
    status: Option<String>,
    issued_from: Option<String>,
    issued_to: Option<String>,
    cursor: Option<String>,
    limit: Option<String>,
}

/// One licence of a listing (spec/openapi.yaml `ListedLicence`).
#[derive(Serialize)]
struct ListedView<'a> {
    id: &'a str,
    type_code: String,
    number: &'a str,
    status: Status,
    status_words: &'static str,
    recorded_status: Status,
    /// A suspension's last day (`YYYY-MM-DD`), while it is suspended with an end.
    #[serde(skip_serializing_if = "Option::is_none")]
    suspended_until: Option<String>,
    issue_date: String,
    valid_from: String,
    valid_until: Option<String>,
    long_term: bool,
    /// The issuance leaf.
    log_index: u64,
}

impl<'a> ListedView<'a> {
    fn of(l: &'a crate::vault::listing::Listed, now: i64) -> Self {
        let status = l.effective(now);
        Self {
            id: &l.id,
            type_code: LicenceId::parse(&l.id).map(|id| id.type_code().to_string()).unwrap_or_default(),
            number: &l.number,
            status,
            status_words: status.words_zh(),
            recorded_status: l.status,
            suspended_until: suspension_end(status, l.suspended_until),
            issue_date: date(l.issued),
            valid_from: date(l.valid_from),
            valid_until: l.valid_until.map(|e| date(e - 1)),
            long_term: l.valid_until.is_none(),
            log_index: l.log_index,
        }
    }
}

/// The answer of `GET /v1/licences` (spec/openapi.yaml `LicenceList`).
#[derive(Serialize)]
struct ListView<'a> {
    licences: Vec<ListedView<'a>>,
    /// Pass as `cursor` for the next page; null at the end.
    next_cursor: Option<String>,
}

fn limit(raw: Option<&str>) -> Result<usize, ApiError> {
    match raw {
        None => Ok(100),
        Some(v) => match super::logapi::number("limit", v)? {
            n if (1..=crate::vault::listing::MAX_PAGE as u64).contains(&n) => Ok(n as usize),
            _ => Err(ApiError::bad_request(
                "invalid_request",
                format!("limit is 1 to {}", crate::vault::listing::MAX_PAGE),
            )),
        },
    }
}

/// GET /v1/licences — a department's licences in issue order (issuer: its own; admin: any
/// department's, or all), filtered by type, number, status and issue date, a page at a time.
async fn list(
    State(s): State<AppState>,
    Caller(client): Caller,
    q: Result<axum::extract::Query<ListParams>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let p = super::logapi::query(q)?;
    let bad = |what: &'static str, why: String| ApiError::bad_request(what, why);
    let day = |field: &str, v: &Option<String>| -> Result<Option<i64>, ApiError> {
        v.as_deref()
            .map(|d| {
                crate::domain::parse_validity_date(field, d)
                    .map(crate::domain::start_of_day_cst)
                    .map_err(|e| bad("invalid_date", e))
            })
            .transpose()
    };
    let query = crate::vault::listing::ListQuery {
        issuer: p
            .issuer
            .map(|u| crate::domain::Uscc::parse(&u).map(|u| u.to_string()))
            .transpose()
            .map_err(|e| bad("invalid_holder_id", e.to_string()))?,
        type_code: p
            .type_code
            .map(|t| crate::domain::TypeCode::parse(&t).map(|t| t.to_string()))
            .transpose()
            .map_err(|e| bad("invalid_type_code", e.to_string()))?,
        number: p.number,
        status: p
            .status
            .map(|st| Status::parse(&st).ok_or_else(|| bad("invalid_request", format!("unknown status {st:?}"))))
            .transpose()?,
        issued_from: day("issued_from", &p.issued_from)?,
        // Through the end of that day.
        issued_to: day("issued_to", &p.issued_to)?.map(|t| t + 86_400),
        cursor: p
            .cursor
            .as_deref()
            .map(|c| super::logapi::number("cursor", c))
            .transpose()
            .map_err(|_| bad("invalid_cursor", "the cursor is the next_cursor of the previous page".into()))?,
        limit: limit(p.limit.as_deref())?,
    };
    let page = s.vault.list(&client, &query)?;
    let now = page.now;
    let view = ListView {
        licences: page.licences.iter().map(|l| ListedView::of(l, now)).collect(),
        next_cursor: page.next.map(|n| n.to_string()),
    };
    Ok(Json(view).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ChangesParams {
    after: Option<String>,
    issuer: Option<String>,
    limit: Option<String>,
}

/// One change of the feed (spec/openapi.yaml `Change`).
#[derive(Serialize)]
struct ChangeView {
    log_index: u64,
    time: String,
    event: String,
    licence: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    action: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    from: Option<String>,
    to: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    kind: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    related: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<String>,
    /// A suspension's last day.
    #[serde(skip_serializing_if = "Option::is_none")]
    until: Option<String>,
}

/// The answer of `GET /v1/changes` (spec/openapi.yaml `Changes`).
#[derive(Serialize)]
struct ChangesView {
    changes: Vec<ChangeView>,
    /// Pass as `after` next time; null while the department has no change.
    last: Option<u64>,
    /// More changes follow now.
    more: bool,
}

/// GET /v1/changes?after= — every leaf after `after` that changed one of the department's
/// licences, oldest first: a department keeps its own database in step with it.
async fn changes(
    State(s): State<AppState>,
    Caller(client): Caller,
    q: Result<axum::extract::Query<ChangesParams>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let p = super::logapi::query(q)?;
    let after = p.after.as_deref().map(|a| super::logapi::number("after", a)).transpose()?;
    let page = s.vault.changes(&client, p.issuer.as_deref(), after, limit(p.limit.as_deref())?)?;
    let changes = page
        .changes
        .into_iter()
        .map(|(index, leaf)| {
            let e = crate::vault::HistoryEntry::from_leaf(index, &leaf);
            ChangeView {
                log_index: e.log_index,
                time: e.time,
                event: e.event,
                licence: leaf.licence.unwrap_or_default(),
                action: e.action,
                from: e.from,
                to: e.to,
                kind: e.kind,
                related: e.related,
                reason: e.reason,
                until: e.until,
            }
        })
        .collect();
    Ok(Json(ChangesView { changes, last: page.last, more: page.more }).into_response())
}

/// The most items a batch takes, and the largest batch body.
pub const MAX_BATCH: usize = 1_000;
const MAX_BATCH_BODY: usize = 4 << 20;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BatchItem {
    /// The item's Idempotency-Key: a batch sent again answers each item it issued before.
    key: String,
    /// As the body of `POST /v1/licences`; one that does not fit is refused alone.
    licence: Value,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BatchBody {
    items: Vec<BatchItem>,
}

/// One item's outcome (spec/openapi.yaml `BatchResult`).
#[derive(Serialize)]
struct BatchResult {
    key: String,
    /// `issued`, `replayed` (an earlier request under its key) or `refused`.
    outcome: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    log_index: Option<u64>,
    /// A refused item: the problem it would have had alone.
    #[serde(skip_serializing_if = "Option::is_none")]
    status: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    code: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    detail: Option<String>,
}

/// The answer of `POST /v1/licences/batch` (spec/openapi.yaml `BatchIssued`).
#[derive(Serialize)]
struct BatchAnswer {
    results: Vec<BatchResult>,
    issued: usize,
    replayed: usize,
    refused: usize,
    /// A signed checkpoint covering every item issued.
    checkpoint: String,
}

/// POST /v1/licences/batch — issue up to 1,000 licences (migration): each item as `POST
/// /v1/licences` with its own Idempotency-Key, signed on every core and committed in shared
/// batches; a bad item is refused with its reason and the others go on.
async fn batch(
    State(s): State<AppState>,
    Caller(client): Caller,
    ApiJson(body): ApiJson<BatchBody>,
) -> Result<Response, ApiError> {
    super::require_role(&client, crate::vault::Role::Issuer)?;
    if body.items.is_empty() || body.items.len() > MAX_BATCH {
        return Err(ApiError::bad_request("invalid_request", format!("a batch has 1 to {MAX_BATCH} items")));
    }
    let mut keys = std::collections::HashSet::new();
    for item in &body.items {
        // As the Idempotency-Key header: visible ASCII, and keys that differ only in spaces
        // around them are the same key.
        if item.key.is_empty() || item.key.len() > 255 || !item.key.bytes().all(|b| (0x20..0x7f).contains(&b)) {
            return Err(ApiError::bad_request("invalid_request", "each item's key is 1–255 visible ASCII characters"));
        }
        if !keys.insert(item.key.trim()) {
            return Err(ApiError::bad_request("invalid_request", format!("key {:?} is in the batch twice", item.key)));
        }
    }
    let client = std::sync::Arc::new(client);
    let mut jobs = tokio::task::JoinSet::new();
    for (n, item) in body.items.into_iter().enumerate() {
        let (vault, client) = (s.vault.clone(), client.clone());
        jobs.spawn(async move {
            let key = item.key.clone();
            let outcome = match serde_json::from_value::<IssueRequest>(item.licence) {
                Ok(req) => vault.issue(&client, req, Some(item.key)).await.map_err(ApiError::from),
                Err(e) => Err(ApiError::bad_request("invalid_body", format!("the licence: {e}"))),
            };
            (n, key, outcome)
        });
    }
    let mut results: Vec<(usize, BatchResult)> = Vec::new();
    // Storage full or not answering is about the vault, not the item: the whole request is
    // answered 503 (with Retry-After), and sent again it replays what was issued and issues
    // the rest (every item carries its key).
    let mut unavailable: Option<ApiError> = None;
    while let Some(done) = jobs.join_next().await {
        let (n, key, outcome) = done.map_err(|e| ApiError::from(crate::vault::VaultError::Internal(e.to_string())))?;
        if let Err(e) = &outcome {
            if unavailable.is_none() && matches!(e.code, "storage_full" | "unavailable") {
                unavailable =
                    Some(ApiError { status: e.status, code: e.code, detail: e.detail.clone(), expose: e.expose });
            }
        }
        let result = match outcome {
            Ok(i) => BatchResult {
                key,
                outcome: if i.replayed { "replayed" } else { "issued" },
                id: Some(i.licence.id.to_string()),
                log_index: Some(i.record.issued_index),
                status: None,
                code: None,
                detail: None,
            },
            Err(e) => {
                // A refusal says why, as it would alone; a server fault says nothing internal.
                let detail = if e.status.is_server_error() && !e.expose { "internal error".into() } else { e.detail };
                BatchResult {
                    key,
                    outcome: "refused",
                    id: None,
                    log_index: None,
                    status: Some(e.status.as_u16()),
                    code: Some(e.code),
                    detail: Some(detail),
                }
            }
        };
        results.push((n, result));
    }
    if let Some(e) = unavailable {
        return Err(e);
    }
    results.sort_by_key(|(n, _)| *n);
    let results: Vec<BatchResult> = results.into_iter().map(|(_, r)| r).collect();
    let count = |o: &str| results.iter().filter(|r| r.outcome == o).count();
    let answer = BatchAnswer {
        issued: count("issued"),
        replayed: count("replayed"),
        refused: count("refused"),
        checkpoint: s.vault.head().checkpoint.clone(),
        results,
    };
    Ok(Json(answer).into_response())
}
