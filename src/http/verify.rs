//! Public verification of a presented document or QR payload.

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::{post, MethodRouter};
use axum::Json;
use serde::{Deserialize, Serialize};

use super::licences::{licence_json, LicenceView};
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

/// The answer of `POST /v1/verify` (spec/openapi.yaml `Verdict`).
#[derive(Serialize)]
struct VerifyAnswer<'a> {
    licence: Option<LicenceView<'a>>,
    log: VerifyLog,
    reasons: &'a [String],
    signed_by: Option<&'a str>,
    valid: bool,
    verdict: VerdictKind,
}

#[derive(Serialize)]
struct VerifyLog {
    index: Option<u64>,
    status_as_of_size: Option<u64>,
}

/// POST /v1/verify — public: a presented document → a verdict. Bad documents get a verdict
/// (`malformed`, `invalid_signature`, …), not an error.
async fn verify(State(s): State<AppState>, ApiJson(body): ApiJson<VerifyBody>) -> Result<Response, ApiError> {
    let v = s.vault.verify_presented(&body.payload)?;
    let answer = VerifyAnswer {
        licence: v.licence.as_ref().map(|l| licence_json(&s.vault, l, true)),
        log: VerifyLog { index: v.log_index, status_as_of_size: v.log_size },
        reasons: &v.reasons,
        signed_by: v.issuer_cert.as_deref(),
        valid: v.kind == VerdictKind::Valid,
        verdict: v.kind,
    };
    Ok(Json(answer).into_response())
}
