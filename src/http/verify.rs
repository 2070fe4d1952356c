//! Public verification of a presented document or QR payload.

use axum::extract::State;
use axum::routing::{post, MethodRouter};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

use super::licences::licence_json;
use super::{ApiError, ApiJson, AppState};
use crate::vault::VerdictKind;

pub fn routes() -> Vec<(&'static str, &'static str, MethodRouter<AppState>)> {
    vec![("POST", "/v1/verify", post(verify))]
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct VerifyBody {
    /// An `LV1:` QR payload, or base64 of the COSE_Sign1 bytes.
    payload: String,
}

/// POST /v1/verify — public: a presented document → a verdict. Bad documents get a verdict
/// (`malformed`, `invalid_signature`, …), not an error.
async fn verify(State(s): State<AppState>, ApiJson(body): ApiJson<VerifyBody>) -> Result<Json<Value>, ApiError> {
    let v = s.vault.verify_presented(&body.payload)?;
    Ok(Json(json!({
        "verdict": v.kind,
        "valid": v.kind == VerdictKind::Valid,
        "reasons": v.reasons,
        "licence": v.licence.as_ref().map(|l| licence_json(&s.vault, l, true)),
        "signed_by": v.issuer_cert,
        "log": { "index": v.log_index, "status_as_of_size": v.log_size },
    })))
}
