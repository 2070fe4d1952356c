//! One-time presentations (用证码): the holder channel makes one, a verifier redeems it once.

use std::collections::BTreeMap;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{post, MethodRouter};
use axum::Json;
use serde::{Deserialize, Serialize};

use super::holders::HolderKey;
use super::licences::parse_id;
use super::{ApiError, ApiJson, AppState, HolderChannelCaller, VerifierCaller};
use crate::domain::Status;
use crate::vault::{rfc3339_s, VerdictKind};

pub fn routes() -> Vec<(&'static str, &'static str, MethodRouter<AppState>)> {
    vec![("POST", "/v1/licences/{id}/presentations", post(create)), ("POST", "/v1/presentations/redeem", post(redeem))]
}

/// Seconds a presentation lives when the request gives none.
const DEFAULT_TTL: u64 = 120;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateRequest {
    holder: HolderKey,
    /// Keys of the disclosures to include (`holder.id`, a field name); none by default.
    #[serde(default)]
    disclose: Vec<String>,
    /// Seconds, 1–300.
    #[serde(default)]
    ttl: Option<u64>,
}

/// The answer of `POST /v1/licences/{id}/presentations` (spec/openapi.yaml `PresentationMade`).
#[derive(Serialize)]
struct Made {
    disclosed: Vec<String>,
    expires_at: String,
    issued_at: String,
    log_index: u64,
    /// The `LV2:` (or, with `--qr-format lv1`, `LV1:`) payload of the presentation QR.
    payload: String,
    /// The QR image (SVG, ECC M).
    qr_svg: String,
    status: Status,
}

/// POST /v1/licences/{id}/presentations — the holder channel, for one of the licence's holders.
async fn create(
    State(s): State<AppState>,
    HolderChannelCaller(client): HolderChannelCaller,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<CreateRequest>,
) -> Result<Response, ApiError> {
    let id = parse_id(&id)?;
    const MAX: usize = crate::crypto::cose::MAX_DISCLOSURES;
    if req.disclose.len() > MAX {
        return Err(ApiError::bad_request("invalid_request", format!("disclose names at most {MAX} values")));
    }
    let holder = req.holder.parse(&s.vault)?;
    let made = s.vault.present(&client, &holder, &id, &req.disclose, req.ttl.unwrap_or(DEFAULT_TTL)).await?;
    let (qr_svg, _) = crate::qr::svg(&made.payload, crate::qr::Ecc::M)
        .map_err(|e| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "qr_too_large", e.to_string()))?;
    let p = &made.presentation;
    Ok((
        StatusCode::CREATED,
        Json(Made {
            disclosed: made.disclosed.clone(),
            expires_at: rfc3339_s(p.expires_at),
            issued_at: rfc3339_s(p.issued_at),
            log_index: made.log_index,
            payload: made.payload.clone(),
            qr_svg,
            status: p.status,
        }),
    )
        .into_response())
}

verifier_request! {
    struct RedeemRequest {
        payload: String,
    }
}

/// The answer of a redemption (spec/openapi.yaml `Redeemed`): exactly what the holder disclosed,
/// the licence it is on, and its status now.
#[derive(Serialize)]
struct RedeemedView<'a> {
    /// The disclosed values by key (`holder.id`, `co_holders[N].id`, a field name).
    disclosed: BTreeMap<String, String>,
    licence: LicenceRef<'a>,
    presentation: PresentationView,
    usage: UsageRef,
    valid: bool,
    verdict: VerdictKind,
}

#[derive(Serialize)]
struct LicenceRef<'a> {
    holder_name: &'a str,
    id: String,
    issuer: &'a str,
    number: &'a str,
    type_code: &'a str,
    type_name: &'a str,
}

#[derive(Serialize)]
struct PresentationView {
    expires_at: String,
    issued_at: String,
    /// The status the presentation stated when it was made.
    stated_status: Status,
}

#[derive(Serialize)]
struct UsageRef {
    log_index: u64,
}

/// POST /v1/presentations/redeem — a verifier, once per presentation, with a use reason.
async fn redeem(
    State(s): State<AppState>,
    VerifierCaller(client): VerifierCaller,
    ApiJson(req): ApiJson<RedeemRequest>,
) -> Result<Response, ApiError> {
    let r = s.vault.redeem(&client, &req.payload, req.use_input()).await?;
    let l = &r.licence;
    let disclosed: BTreeMap<String, String> =
        l.disclosed.iter().map(|k| (k.label(), l.disclosed_value(k).unwrap_or_default())).collect();
    let catalogue = s.vault.catalogue();
    let type_name = catalogue.licence_type(l.id.type_code().as_str()).map_or(l.type_name.as_str(), |t| t.name.as_str());
    let verdict: VerdictKind = r.status.into();
    Ok(Json(RedeemedView {
        disclosed,
        licence: LicenceRef {
            holder_name: &l.holder.name,
            id: l.id.to_string(),
            issuer: &r.signed_by,
            number: &l.number,
            type_code: l.id.type_code().as_str(),
            type_name,
        },
        presentation: PresentationView {
            expires_at: rfc3339_s(r.presentation.expires_at),
            issued_at: rfc3339_s(r.presentation.issued_at),
            stated_status: r.presentation.status,
        },
        usage: UsageRef { log_index: r.usage_index },
        valid: verdict == VerdictKind::Valid,
        verdict,
    })
    .into_response())
}
