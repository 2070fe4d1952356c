//! QR images of a licence (`GET /v1/licences/{id}/qr.svg`, `qr.png`) and withdrawing its link.
//! For the issuing department and for the holder channel, which names the holder it acts for in
//! the `Licvault-Holder` header (never in the URL).

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, MethodRouter};
use axum::Json;
use serde::{Deserialize, Serialize};

use super::licences::parse_id;
use super::{ApiError, ApiJson, AppState, Caller};
use crate::crypto::cose;
use crate::domain::HolderId;
use crate::qr::{self, Ecc};
use crate::vault::{Vault, VaultError};

pub fn routes() -> Vec<(&'static str, &'static str, MethodRouter<AppState>)> {
    vec![
        ("GET", "/v1/licences/{id}/qr.svg", get(|s, c, h, p, q| image(s, c, h, p, q, Format::Svg))),
        ("GET", "/v1/licences/{id}/qr.png", get(|s, c, h, p, q| image(s, c, h, p, q, Format::Png))),
        ("POST", "/v1/licences/{id}/links/withdraw", post(withdraw)),
    ]
}

/// The header in which the holder channel names the holder: `<type>:<number>`, e.g.
/// `111:11010519491231002X`.
pub const HOLDER_HEADER: &str = "licvault-holder";

#[derive(Clone, Copy)]
enum Format {
    Svg,
    Png,
}

#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
enum Profile {
    #[default]
    Full,
    Compact,
    Link,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct QrQuery {
    #[serde(default)]
    profile: Profile,
    #[serde(default)]
    ecc: Option<String>,
    /// Comma-separated keys of the disclosures to put in a full QR (`holder.id`, a field name).
    #[serde(default)]
    disclose: Option<String>,
}

/// The holder the holder channel acts for, from [`HOLDER_HEADER`].
fn holder_of(vault: &Vault, headers: &HeaderMap) -> Result<Option<HolderId>, ApiError> {
    let Some(v) = headers.get(HOLDER_HEADER) else { return Ok(None) };
    let text =
        v.to_str().ok().and_then(|t| t.split_once(':')).ok_or_else(|| {
            ApiError::bad_request("invalid_holder_id", "Licvault-Holder is <type>:<number>, e.g. 111:…")
        })?;
    Ok(Some(vault.parse_holder(text.0.trim(), text.1.trim())?))
}

/// The text a QR image of `profile` carries.
async fn payload(
    s: &AppState,
    client: &crate::vault::Client,
    holder: Option<&HolderId>,
    id: &crate::domain::LicenceId,
    q: &QrQuery,
    headers: &HeaderMap,
) -> Result<String, ApiError> {
    let p = s.vault.presentable(client, holder, id)?;
    if q.profile != Profile::Full && q.disclose.is_some() {
        return Err(ApiError::bad_request("invalid_request", "disclose goes with profile=full only"));
    }
    match q.profile {
        Profile::Full => {
            let keys = q.disclose.as_deref().unwrap_or_default().split(',').map(str::trim).filter(|k| !k.is_empty());
            let chosen: Vec<&[u8]> = p.choose(keys)?.into_iter().map(|d| d.bytes()).collect();
            let doc = cose::with_disclosures(&p.document, &chosen)
                .map_err(|e| VaultError::Internal(format!("the document of {id}: {e}")))?;
            Ok(s.vault.qr_payload(&doc))
        }
        Profile::Compact => Ok(s.vault.qr_payload(&s.vault.compact_document(id)?)),
        Profile::Link => {
            let reference = s.vault.link_for(client, id).await?;
            Ok(format!("{}/v/{reference}", s.public_base(headers)))
        }
    }
}

/// GET /v1/licences/{id}/qr.svg and qr.png.
async fn image(
    State(s): State<AppState>,
    Caller(client): Caller,
    headers: HeaderMap,
    Path(id): Path<String>,
    query: Result<Query<QrQuery>, QueryRejection>,
    format: Format,
) -> Result<Response, ApiError> {
    let Query(q) = query.map_err(|e| ApiError::bad_request("invalid_request", e.body_text()))?;
    let ecc = match q.ecc.as_deref() {
        None | Some("M") => Ecc::M,
        Some("Q") => Ecc::Q,
        Some(other) => return Err(ApiError::bad_request("invalid_request", format!("ecc is M or Q, not {other:?}"))),
    };
    let id = parse_id(&id)?;
    let holder = holder_of(&s.vault, &headers)?;
    let text = payload(&s, &client, holder.as_ref(), &id, &q, &headers).await?;
    let too_big = |e: qr::QrError| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "qr_too_large", e.to_string());
    let (body, version, kind) = match format {
        Format::Svg => {
            let (svg, v) = qr::svg(&text, ecc).map_err(too_big)?;
            (svg.into_bytes(), v, "image/svg+xml")
        }
        Format::Png => {
            let (png, v) = qr::png(&text, ecc).map_err(too_big)?;
            (png, v, "image/png")
        }
    };
    let profile = match q.profile {
        Profile::Full => "full",
        Profile::Compact => "compact",
        Profile::Link => "link",
    };
    Ok((
        [
            (header::CONTENT_TYPE, kind.to_string()),
            // A QR may carry what the holder chose to disclose: no cache keeps it.
            (header::CACHE_CONTROL, "no-store".to_string()),
            (header::HeaderName::from_static("licvault-qr-version"), version.to_string()),
            (header::HeaderName::from_static("licvault-qr-profile"), profile.to_string()),
        ],
        body,
    )
        .into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WithdrawBody {
    reason: String,
    /// The holder channel: the holder it acts for.
    #[serde(default)]
    holder: Option<super::holders::HolderKey>,
}

#[derive(Serialize)]
struct Withdrawn {
    id: String,
    withdrawn: bool,
}

/// POST /v1/licences/{id}/links/withdraw — the licence's link page says "withdrawn" from now on.
async fn withdraw(
    State(s): State<AppState>,
    Caller(client): Caller,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<WithdrawBody>,
) -> Result<Response, ApiError> {
    let id = parse_id(&id)?;
    let holder = body.holder.as_ref().map(|h| h.parse(&s.vault)).transpose()?;
    s.vault.presentable(&client, holder.as_ref(), &id)?;
    s.vault.withdraw_link(&client, &id, &body.reason).await?;
    Ok(Json(Withdrawn { id: id.to_string(), withdrawn: true }).into_response())
}
