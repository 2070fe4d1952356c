//! Administration: client systems (register, list, disable, rotate), key reload and catalogue
//! changes. Admin role only; every change is a log leaf and takes effect at once (a catalogue
//! definition already in force changes and logs nothing).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put, MethodRouter};
use axum::Json;
use serde::{Deserialize, Serialize};

use super::{Admin, ApiError, ApiJson, AppState};
use crate::vault::catalogue::{CatalogueChange, Definition};
use crate::vault::transfers::{Transfer, TransferRequest};
use crate::vault::{rfc3339_s, Client, Role};

pub fn routes() -> Vec<(&'static str, &'static str, MethodRouter<AppState>)> {
    vec![
        ("POST", "/v1/admin/clients", post(create)),
        ("GET", "/v1/admin/clients", get(list)),
        ("POST", "/v1/admin/clients/{id}/disable", post(disable)),
        ("POST", "/v1/admin/clients/{id}/rotate", post(rotate)),
        ("POST", "/v1/admin/keys/reload", post(reload_keys)),
        ("PUT", "/v1/admin/licence-types/{code}", put(put_licence_type)),
        ("PUT", "/v1/admin/service-items/{code}", put(put_service_item)),
        ("POST", "/v1/admin/transfers", post(transfer)),
        ("GET", "/v1/admin/transfers", get(transfers)),
    ]
}

/// `POST /v1/admin/clients` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientCreate {
    pub id: String,
    pub name: String,
    pub role: Role,
    #[serde(default)]
    pub uscc: Option<String>,
    #[serde(default)]
    pub types: Vec<String>,
    /// RFC 3339.
    #[serde(default)]
    pub expires_at: Option<String>,
}

/// A client as the admin API shows it (never a token).
#[derive(Debug, Serialize, Deserialize)]
pub struct ClientView {
    pub id: String,
    pub name: String,
    pub role: Role,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uscc: Option<String>,
    pub types: Vec<String>,
    pub disabled: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token_rotated_at: Option<String>,
}

impl From<&Client> for ClientView {
    fn from(c: &Client) -> Self {
        Self {
            id: c.id.clone(),
            name: c.name.clone(),
            role: c.role,
            uscc: c.uscc.clone(),
            types: c.types.clone(),
            disabled: c.disabled,
            expires_at: c.expires_at.map(rfc3339_s),
            created_at: c.created_at.map(rfc3339_s),
            token_rotated_at: c.rotated_at.map(rfc3339_s),
        }
    }
}

/// Answer of create and rotate: the client and its new token, shown this once.
#[derive(Debug, Serialize, Deserialize)]
pub struct ClientWithToken {
    pub client: ClientView,
    pub token: String,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct ClientList {
    pub clients: Vec<ClientView>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct ClientOnly {
    pub client: ClientView,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DisableBody {
    pub reason: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RotateBody {
    pub reason: String,
    /// How long the old token keeps working, 0 (the default: it stops at once) to 604800 (7 days).
    /// A JSON number with no fraction (`30` or `30.0`).
    #[serde(default, deserialize_with = "whole_seconds")]
    pub old_token_valid_seconds: i64,
    /// RFC 3339: the client's new expiry (its tokens stop working then).
    #[serde(default)]
    pub expires_at: Option<String>,
}

/// A JSON number that is a whole number of seconds: JSON Schema's `integer` admits `30.0` too.
fn whole_seconds<'de, D: serde::Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
    let n = serde_json::Number::deserialize(d)?;
    if let Some(i) = n.as_i64() {
        return Ok(i);
    }
    match n.as_f64() {
        Some(f) if f.fract() == 0.0 && f.abs() < 1e15 => Ok(f as i64),
        _ => Err(serde::de::Error::custom("old_token_valid_seconds must be a whole number of seconds")),
    }
}

#[derive(Debug, Serialize)]
pub struct SealView {
    pub uscc: String,
    pub name: String,
    pub kid: String,
    pub not_before: String,
    pub not_after: String,
    pub signing: bool,
}

#[derive(Debug, Serialize)]
pub struct KeysReloaded {
    pub departments: Vec<SealView>,
}

fn parse_time(t: &str) -> Result<i64, ApiError> {
    time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339)
        .map(|t| t.unix_timestamp())
        .map_err(|_| ApiError::bad_request("invalid_date", format!("expires_at {t:?} is not an RFC 3339 time")))
}

/// POST /v1/admin/clients — registers a client; the answer carries its token, shown only here.
async fn create(
    State(s): State<AppState>,
    Admin(caller): Admin,
    ApiJson(body): ApiJson<ClientCreate>,
) -> Result<Response, ApiError> {
    let expires_at = body.expires_at.as_deref().map(parse_time).transpose()?;
    let mut client = Client::new(body.id, body.name, body.role, body.uscc, body.types);
    client.expires_at = expires_at;
    let token = s.vault.add_client(client.clone(), None, &caller.id).await?;
    let stored = s.vault.client(&client.id).unwrap_or(client);
    let body = ClientWithToken { client: (&stored).into(), token };
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

/// GET /v1/admin/clients — every client (tokens are never shown: only their hashes are kept).
async fn list(State(s): State<AppState>, Admin(_): Admin) -> Result<Json<ClientList>, ApiError> {
    Ok(Json(ClientList { clients: s.vault.clients().iter().map(ClientView::from).collect() }))
}

/// POST /v1/admin/clients/{id}/disable — every token of the client is refused from now on.
async fn disable(
    State(s): State<AppState>,
    Admin(caller): Admin,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<DisableBody>,
) -> Result<Json<ClientOnly>, ApiError> {
    let c = s.vault.disable_client(&id, &body.reason, &caller.id).await?;
    Ok(Json(ClientOnly { client: (&c).into() }))
}

/// POST /v1/admin/clients/{id}/rotate — a new token; the old one stops working at once or after
/// `old_token_valid_seconds`.
async fn rotate(
    State(s): State<AppState>,
    Admin(caller): Admin,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<RotateBody>,
) -> Result<Json<ClientWithToken>, ApiError> {
    let expires_at = body.expires_at.as_deref().map(parse_time).transpose()?;
    let (c, token) =
        s.vault.rotate_client(&id, &body.reason, body.old_token_valid_seconds, expires_at, &caller.id).await?;
    Ok(Json(ClientWithToken { client: (&c).into(), token }))
}

/// POST /v1/admin/keys/reload — reloads certificates and seal keys from the key directory (as
/// SIGHUP does).
async fn reload_keys(State(s): State<AppState>, Admin(_): Admin) -> Result<Json<KeysReloaded>, ApiError> {
    let seals = s.vault.reload_keys().await?;
    Ok(Json(KeysReloaded {
        departments: seals
            .into_iter()
            .map(|x| SealView {
                uscc: x.uscc,
                name: x.name,
                kid: x.kid,
                not_before: rfc3339_s(x.not_before),
                not_after: rfc3339_s(x.not_after),
                signing: x.signing,
            })
            .collect(),
    }))
}

/// PUT /v1/admin/licence-types/{code} — add or replace a licence type while running.
async fn put_licence_type(
    State(s): State<AppState>,
    Admin(caller): Admin,
    Path(code): Path<String>,
    ApiJson(body): ApiJson<crate::domain::LicenceType>,
) -> Result<Json<CatalogueChange>, ApiError> {
    Ok(Json(s.vault.put_definition(&caller, &code, Definition::LicenceType(body)).await?))
}

/// PUT /v1/admin/service-items/{code} — add or replace a service item while running.
async fn put_service_item(
    State(s): State<AppState>,
    Admin(caller): Admin,
    Path(code): Path<String>,
    ApiJson(body): ApiJson<crate::domain::ServiceItem>,
) -> Result<Json<CatalogueChange>, ApiError> {
    Ok(Json(s.vault.put_definition(&caller, &code, Definition::ServiceItem(body)).await?))
}

/// POST /v1/admin/transfers — move the management of a department's licences (all, of a type,
/// or one) to another department; logged, in force at once.
async fn transfer(
    State(s): State<AppState>,
    Admin(caller): Admin,
    ApiJson(body): ApiJson<TransferRequest>,
) -> Result<Response, ApiError> {
    let t = s.vault.transfer(&caller, body).await?;
    Ok((StatusCode::CREATED, Json(t)).into_response())
}

/// The answer of `GET /v1/admin/transfers` (spec/openapi.yaml `Transfers`).
#[derive(Serialize)]
struct TransfersView {
    transfers: Vec<Transfer>,
}

/// GET /v1/admin/transfers — every transfer, oldest first.
async fn transfers(State(s): State<AppState>, Admin(_): Admin) -> Json<TransfersView> {
    Json(TransfersView { transfers: s.vault.transfers() })
}
