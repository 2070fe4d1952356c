//! Public verification of a presented document or QR payload.

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::{post, MethodRouter};
use axum::Json;
use serde::{Deserialize, Serialize};

use super::licences::{presented_json, LicenceView, SuccessorView};
use super::{ApiError, ApiJson, AppState};
use crate::domain::Status;
use crate::vault::{rfc3339_s, VerdictKind};

pub fn routes() -> Vec<(&'static str, &'static str, MethodRouter<AppState>)> {
    vec![("POST", "/v1/verify", post(verify))]
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct VerifyBody {
    /// An `LV1:` or `LV2:` QR payload, or base64 of the COSE_Sign1 bytes.
    payload: String,
}

/// The answer of `POST /v1/verify` (spec/openapi.yaml `Verdict`).
#[derive(Serialize)]
struct VerifyAnswer<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    annotated_copy: Option<CopyView<'a>>,
    licence: Option<LicenceView<'a>>,
    log: VerifyLog,
    #[serde(skip_serializing_if = "Option::is_none")]
    presentation: Option<PresentationInfo>,
    reasons: &'a [String],
    signed_by: Option<&'a str>,
    /// The verdict in the words shown to people (有效, 已吊销, 无效（签名不符）…).
    status_words: &'static str,
    /// For a superseded licence: the newer version.
    #[serde(skip_serializing_if = "Option::is_none")]
    successor: Option<SuccessorView<'a>>,
    /// For a document from outside this vault's log: its platform and the mirror that knew it.
    #[serde(skip_serializing_if = "Option::is_none")]
    elsewhere: Option<ElsewhereView<'a>>,
    valid: bool,
    verdict: VerdictKind,
}

/// What an annotated copy says (spec/openapi.yaml `AnnotatedCopyInfo`).
#[derive(Serialize)]
struct CopyView<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    biz_num: Option<&'a str>,
    issued_at: String,
    log_index: u64,
    maker: MakerView<'a>,
    original_id: &'a str,
    original_sha256: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    original_status: Option<Status>,
    #[serde(skip_serializing_if = "Option::is_none")]
    original_status_words: Option<&'static str>,
    purpose: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    service_item: Option<&'a str>,
    valid_until: String,
}

#[derive(Serialize)]
struct MakerView<'a> {
    client: &'a str,
    name: &'a str,
    uscc: &'a str,
}

/// What a one-time presentation says (spec/openapi.yaml `PresentationInfo`).
#[derive(Serialize)]
struct PresentationInfo {
    expires_at: String,
    issued_at: String,
    stated_as_of_size: u64,
    stated_status: Status,
}

/// Where a document from outside this vault's log was found (spec/openapi.yaml `Elsewhere`).
#[derive(Serialize)]
struct ElsewhereView<'a> {
    /// The CAs from the national anchor down to its platform's root (empty: this platform's).
    federation_path: &'a [String],
    #[serde(skip_serializing_if = "Option::is_none")]
    mirror: Option<MirrorAsOf<'a>>,
    /// Why the mirror's state may be out of date: then `valid` is false whatever the status.
    #[serde(skip_serializing_if = "Option::is_none")]
    stale: Option<&'a str>,
}

/// The mirrored log that holds it; `log.status_as_of_size` is a size of that log.
#[derive(Serialize)]
struct MirrorAsOf<'a> {
    source: &'a str,
    origin: &'a str,
    size: u64,
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
    let catalogue = s.vault.catalogue();
    let answer = VerifyAnswer {
        annotated_copy: v.copy.as_ref().map(|c| CopyView {
            biz_num: c.annotation.biz_num.as_deref(),
            issued_at: rfc3339_s(c.annotation.issued_at),
            log_index: c.log_index,
            maker: MakerView {
                client: &c.annotation.maker_client,
                name: &c.annotation.maker_name,
                uscc: &c.annotation.maker_uscc,
            },
            original_id: &c.annotation.original_id,
            original_sha256: hex::encode(c.annotation.original_sha256),
            original_status: c.original_status,
            original_status_words: c.original_status.map(Status::words_zh),
            purpose: &c.annotation.purpose,
            service_item: c.annotation.service_item.as_deref(),
            valid_until: rfc3339_s(c.annotation.valid_until),
        }),
        licence: v.licence.as_ref().map(|l| presented_json(l, catalogue.licence_type(l.id.type_code().as_str()))),
        log: VerifyLog { index: v.log_index, status_as_of_size: v.log_size },
        presentation: v.presentation.as_ref().map(|p| PresentationInfo {
            expires_at: rfc3339_s(p.expires_at),
            issued_at: rfc3339_s(p.issued_at),
            stated_as_of_size: p.log_size,
            stated_status: p.status,
        }),
        reasons: &v.reasons,
        signed_by: v.issuer_cert.as_deref(),
        status_words: v.kind.words_zh(),
        successor: v.successor.as_ref().map(|(id, kind)| SuccessorView::new(id, *kind)),
        elsewhere: v.elsewhere.as_ref().map(|e| ElsewhereView {
            federation_path: &e.platform,
            mirror: e.mirror.as_ref().map(|(source, origin, size)| MirrorAsOf { source, origin, size: *size }),
            stale: e.stale.as_deref(),
        }),
        // An annotated copy is good while it is within its validity and its original is valid.
        valid: (v.kind == VerdictKind::Valid && v.elsewhere.as_ref().is_none_or(|e| e.stale.is_none()))
            || (v.kind == VerdictKind::AnnotatedCopy
                && v.copy.as_ref().is_some_and(|c| c.original_status == Some(Status::Valid))),
        verdict: v.kind,
    };
    Ok(Json(answer).into_response())
}
