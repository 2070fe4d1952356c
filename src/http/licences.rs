//! Issuing departments' endpoints: issue, read, change status, new versions, history.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, MethodRouter};
use axum::Json;
use base64::{engine::general_purpose::STANDARD as B64, Engine};
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::{ApiError, ApiJson, AppState, Caller};
use crate::domain::status::Action;
use crate::domain::{cst_date, HolderId, Licence, LicenceId, LicenceType, Status};
use crate::vault::{IssueRequest, Issued, LicenceRecord, RenewRequest, Vault};

pub fn routes() -> Vec<(&'static str, &'static str, MethodRouter<AppState>)> {
    vec![
        ("POST", "/v1/licences", post(issue)),
        ("GET", "/v1/licences/{id}", get(read)),
        ("POST", "/v1/licences/{id}/suspend", post(|s, c, p, b| change(s, c, p, b, Action::Suspend))),
        ("POST", "/v1/licences/{id}/reinstate", post(|s, c, p, b| change(s, c, p, b, Action::Reinstate))),
        ("POST", "/v1/licences/{id}/revoke", post(|s, c, p, b| change(s, c, p, b, Action::Revoke))),
        ("POST", "/v1/licences/{id}/cancel", post(|s, c, p, b| change(s, c, p, b, Action::Cancel))),
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
    fields: BTreeMap<&'a str, &'a str>,
    holder: HolderView<'a>,
    id: String,
    issued_at: String,
    issuer: IssuerView<'a>,
    long_term: bool,
    number: &'a str,
    predecessor: Option<String>,
    type_code: &'a str,
    type_name: &'a str,
    valid_from: String,
    valid_until: Option<String>,
    version: String,
}

#[derive(Serialize)]
struct HolderView<'a> {
    id: String,
    name: &'a str,
    #[serde(rename = "type")]
    kind: &'static str,
}

#[derive(Serialize)]
struct IssuerView<'a> {
    name: &'a str,
    uscc: &'a str,
}

/// How much of a licence an answer shows. The partial views carry the licence's catalogue type
/// (which names the personal fields to leave out), looked up by the caller from the catalogue it
/// holds for the whole answer.
#[derive(Clone, Copy)]
pub enum Disclosure<'a> {
    /// The issuing department and the holder's own channel: everything.
    Full,
    /// A verifying department: holder numbers only where the clerk typed them (the rest
    /// masked), no personal fields of other persons.
    Verifier(&'a [HolderId], Option<&'a LicenceType>),
    /// The public verification answer: masked numbers, no personal fields.
    Public(Option<&'a LicenceType>),
}

/// The licence for an answer, showing what `disclosure` allows.
pub fn licence_json<'a>(l: &'a Licence, disclosure: Disclosure<'_>) -> LicenceView<'a> {
    let hidden = |name: &str| match disclosure {
        Disclosure::Full => false,
        Disclosure::Verifier(_, ty) | Disclosure::Public(ty) => {
            ty.is_some_and(|t| t.personal_fields().any(|p| p == name))
        }
    };
    let number = |h: &HolderId| match disclosure {
        Disclosure::Full => h.number().to_string(),
        Disclosure::Verifier(known, _) if known.contains(h) => h.number().to_string(),
        _ => h.masked(),
    };
    LicenceView {
        area_code: &l.area_code,
        co_holders: l
            .co_holders
            .iter()
            .map(|c| HolderView { id: number(&c.id), name: &c.name, kind: c.id.kind().code() })
            .collect(),
        fields: l.fields.iter().filter(|(k, _)| !hidden(k)).map(|(k, v)| (k.as_str(), v.as_str())).collect(),
        holder: HolderView { id: number(&l.holder), name: &l.holder_name, kind: l.holder.kind().code() },
        id: l.id.to_string(),
        issued_at: crate::vault::rfc3339_s(l.issued_at),
        issuer: IssuerView { name: &l.issuer_name, uscc: l.issuer().as_str() },
        long_term: l.valid_until.is_none(),
        number: &l.number,
        predecessor: l.predecessor.as_ref().map(|p| p.to_string()),
        type_code: l.id.type_code().as_str(),
        type_name: &l.type_name,
        valid_from: date(l.valid_from),
        valid_until: l.valid_until.map(|e| date(e - 1)),
        version: format!("{:03}", l.id.version()),
    }
}

/// The status words of a licence (the status fields of spec/openapi.yaml's `LicenceRead`).
#[derive(Serialize)]
pub struct StatusView<'a> {
    recorded_status: Status,
    status: Status,
    status_words: &'static str,
    successor: Option<&'a str>,
}

/// The validity period is the signed licence's (bound to the log by its document hash), not
/// the record's.
pub fn status_view<'a>(rec: &'a LicenceRecord, licence: &Licence) -> StatusView<'a> {
    let now = crate::vault::unix_now();
    let effective = rec.status.effective(now, licence.valid_from, licence.valid_until);
    StatusView {
        recorded_status: rec.status,
        status: effective,
        status_words: effective.words_zh(),
        successor: rec.successor.as_deref(),
    }
}

/// The answer to an issuance or a new version (spec/openapi.yaml `Issued`).
#[derive(Serialize)]
struct IssuedView<'a> {
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
        document: B64.encode(&i.document),
        licence: licence_json(&i.licence, Disclosure::Full),
        log: IssuedLog { checkpoint: &i.head.checkpoint, index: i.record.issued_index, receipt },
        status: status_view(&i.record, &i.licence),
    })
}

/// The answer of `GET /v1/licences/{id}` (spec/openapi.yaml `LicenceRead`); each licence of the
/// holder channel's wallet has the same shape.
#[derive(Serialize)]
pub struct ReadView<'a> {
    document: String,
    licence: LicenceView<'a>,
    log: ReadLog,
    qr_payload: String,
    #[serde(flatten)]
    status: StatusView<'a>,
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
    let key = match headers.get("idempotency-key") {
        None => None,
        Some(v) => Some(
            v.to_str()
                .map_err(|_| ApiError::bad_request("invalid_request", "Idempotency-Key must be visible ASCII"))?
                .to_string(),
        ),
    };
    let issued = s.vault.issue(&client, req, key).await?;
    let status = if issued.replayed { StatusCode::OK } else { StatusCode::CREATED };
    let location = format!("/v1/licences/{}", issued.licence.id);
    let replayed = issued.replayed.to_string();
    Ok((status, [("location", location), ("idempotent-replayed", replayed)], Json(issued_json(&s.vault, &issued)?))
        .into_response())
}

/// GET /v1/licences/{id} — the issuing department (or an admin) reads a licence.
async fn read(State(s): State<AppState>, Caller(client): Caller, Path(id): Path<String>) -> Result<Response, ApiError> {
    let id = parse_id(&id)?;
    s.vault.check_owner(&client, &id)?;
    let (licence, record, doc) = s.vault.licence(&id)?;
    Ok(Json(read_view(&licence, &record, &doc)).into_response())
}

/// A licence in full, with its document and QR payload: for its issuer and for its holder.
pub fn read_view<'a>(licence: &'a Licence, record: &'a LicenceRecord, doc: &[u8]) -> ReadView<'a> {
    ReadView {
        document: B64.encode(doc),
        licence: licence_json(licence, Disclosure::Full),
        log: ReadLog { index: record.issued_index, last_index: record.last_index },
        qr_payload: crate::qr::encode(doc),
        status: status_view(record, licence),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ReasonBody {
    reason: String,
}

/// POST /v1/licences/{id}/suspend · /reinstate · /revoke · /cancel — with a reason.
async fn change(
    State(s): State<AppState>,
    Caller(client): Caller,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<ReasonBody>,
    action: Action,
) -> Result<Response, ApiError> {
    let id = parse_id(&id)?;
    let (record, head, index) = s.vault.change_status(&client, &id, action, &body.reason).await?;
    let receipt = s.vault.receipt(index, &head)?;
    // The effective status needs the validity period, which is the signed document's.
    let (licence, _, _) = s.vault.licence(&id)?;
    Ok(Json(ChangedView {
        id: id.to_string(),
        log: IssuedLog { checkpoint: &head.checkpoint, index, receipt },
        status: status_view(&record, &licence),
    })
    .into_response())
}

/// POST /v1/licences/{id}/versions — renewal or amendment: a new version; this one is superseded.
async fn renew(
    State(s): State<AppState>,
    Caller(client): Caller,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<RenewRequest>,
) -> Result<Response, ApiError> {
    let id = parse_id(&id)?;
    let issued = s.vault.renew(&client, &id, req).await?;
    let location = format!("/v1/licences/{}", issued.licence.id);
    Ok((StatusCode::CREATED, [("location", location)], Json(issued_json(&s.vault, &issued)?)).into_response())
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
