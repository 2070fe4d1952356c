//! Issuing departments' endpoints: issue, read, change status, new versions, history.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, MethodRouter};
use axum::Json;
use base64::{engine::general_purpose::STANDARD as B64, Engine};
use serde::Deserialize;
use serde_json::{json, Value};

use super::{ApiError, ApiJson, AppState, Caller};
use crate::domain::status::Action;
use crate::domain::{cst_date, Licence, LicenceId};
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

fn parse_id(raw: &str) -> Result<LicenceId, ApiError> {
    LicenceId::parse(raw).map_err(|e| ApiError::bad_request("invalid_licence_id", e.to_string()))
}

fn date(t: i64) -> String {
    cst_date(t).to_string()
}

/// The licence as JSON. `public` hides the holder number and personal fields (the public
/// verification answer); the issuing department sees everything.
pub fn licence_json(vault: &Vault, l: &Licence, public: bool) -> Value {
    let personal: Vec<&str> = vault
        .catalogue()
        .licence_type(l.id.type_code().as_str())
        .map(|t| t.personal_fields().collect())
        .unwrap_or_default();
    let fields: serde_json::Map<String, Value> = l
        .fields
        .iter()
        .filter(|(k, _)| !public || !personal.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), Value::String(v.clone())))
        .collect();
    json!({
        "id": l.id.to_string(),
        "type_code": l.id.type_code().as_str(),
        "type_name": l.type_name,
        "version": format!("{:03}", l.id.version()),
        "number": l.number,
        "holder": {
            "type": l.holder.kind().code(),
            "id": if public { l.holder.masked() } else { l.holder.number().to_string() },
            "name": l.holder_name,
        },
        "issuer": { "uscc": l.issuer().as_str(), "name": l.issuer_name },
        "area_code": l.area_code,
        "fields": fields,
        "valid_from": date(l.valid_from),
        "valid_until": l.valid_until.map(|e| date(e - 1)),
        "long_term": l.valid_until.is_none(),
        "issued_at": crate::vault::rfc3339_ms(l.issued_at.max(0) as u64 * 1000),
        "predecessor": l.predecessor.as_ref().map(|p| p.to_string()),
    })
}

/// The status words. The validity period is the signed licence's (bound to the log by its
/// document hash), not the record's.
fn status_json(rec: &LicenceRecord, licence: &Licence) -> Value {
    let now = crate::vault::unix_now();
    let effective = rec.status.effective(now, licence.valid_from, licence.valid_until);
    json!({
        "status": effective,
        "status_words": effective.words_zh(),
        "recorded_status": rec.status,
        "successor": rec.successor,
    })
}

fn issued_json(vault: &Vault, i: &Issued) -> Result<Value, ApiError> {
    let receipt = vault.receipt(i.record.issued_index, &i.head)?;
    let mut v = json!({
        "licence": licence_json(vault, &i.licence, false),
        // The QR payload is for the holder: GET /v1/licences/{id} has it. Leaving it out here
        // keeps a deflate off every issuance.
        "document": B64.encode(&i.document),
        "log": {
            "index": i.record.issued_index,
            "checkpoint": i.head.checkpoint,
            "receipt": receipt,
        },
    });
    merge(&mut v, status_json(&i.record, &i.licence));
    Ok(v)
}

fn merge(into: &mut Value, from: Value) {
    if let (Value::Object(a), Value::Object(b)) = (into, from) {
        a.extend(b);
    }
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
    let body = issued_json(&s.vault, &issued)?;
    let status = if issued.replayed { StatusCode::OK } else { StatusCode::CREATED };
    let location = format!("/v1/licences/{}", issued.licence.id);
    Ok((status, [("location", location), ("idempotent-replayed", issued.replayed.to_string())], Json(body))
        .into_response())
}

/// GET /v1/licences/{id} — the issuing department (or an admin) reads a licence.
async fn read(
    State(s): State<AppState>,
    Caller(client): Caller,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let id = parse_id(&id)?;
    s.vault.check_owner(&client, &id)?;
    let (licence, record, doc) = s.vault.licence(&id)?;
    let mut v = json!({
        "licence": licence_json(&s.vault, &licence, false),
        "document": B64.encode(&doc),
        "qr_payload": crate::qr::encode(&doc),
        "log": { "index": record.issued_index, "last_index": record.last_index },
    });
    merge(&mut v, status_json(&record, &licence));
    Ok(Json(v))
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
) -> Result<Json<Value>, ApiError> {
    let id = parse_id(&id)?;
    let (record, head, index) = s.vault.change_status(&client, &id, action, &body.reason).await?;
    let mut v = json!({
        "id": id.to_string(),
        "log": { "index": index, "checkpoint": head.checkpoint, "receipt": s.vault.receipt(index, &head)? },
    });
    let (licence, _, _) = s.vault.licence(&id)?;
    merge(&mut v, status_json(&record, &licence));
    Ok(Json(v))
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
