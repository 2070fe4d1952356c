//! One HTTP error type: RFC 9457 `application/problem+json` with a stable snake_case `code`.
//! 4xx bodies say what was wrong; 5xx bodies say "internal error" and the detail goes to the log.

use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, Request};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::vault::VaultError;

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub detail: String,
    /// A 5xx whose detail is what the caller needs to act on and reveals nothing internal (which
    /// department has no valid seal; that the platform has no annotation key): answered as is.
    pub expose: bool,
}

#[derive(Serialize)]
struct Problem<'a> {
    #[serde(rename = "type")]
    kind: String,
    title: &'a str,
    status: u16,
    code: &'a str,
    detail: &'a str,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, detail: impl Into<String>) -> Self {
        Self { status, code, detail: detail.into(), expose: false }
    }

    pub fn bad_request(code: &'static str, detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, detail)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        // 5xx details stay in the server log, unless the error is one to expose.
        let detail = if self.status.is_server_error() && !self.expose {
            tracing::error!(code = self.code, detail = %self.detail, "request failed");
            "the server could not complete this request; its log has the details under this answer's X-Request-Id"
                .to_string()
        } else {
            self.detail
        };
        let body = Problem {
            kind: format!("https://licvault.example.gov.cn/problems/{}", self.code),
            title: self.status.canonical_reason().unwrap_or("error"),
            status: self.status.as_u16(),
            code: self.code,
            detail: &detail,
        };
        let mut res = (self.status, axum::Json(body)).into_response();
        res.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/problem+json"));
        if matches!(self.code, "storage_full" | "unavailable") {
            // A passing condition (storage full, or not answering): worth trying again.
            res.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("10"));
        }
        if self.status == StatusCode::UNAUTHORIZED {
            res.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer realm=\"licvault\""));
        }
        res
    }
}

impl From<VaultError> for ApiError {
    fn from(e: VaultError) -> Self {
        use StatusCode as S;
        let (status, code) = match &e {
            VaultError::Holder(_) | VaultError::HolderCheck(_) => (S::BAD_REQUEST, "invalid_holder_id"),
            VaultError::LicenceId(_) => (S::BAD_REQUEST, "invalid_licence_id"),
            VaultError::TypeCode(_) => (S::BAD_REQUEST, "invalid_type_code"),
            VaultError::UnknownType(_) => (S::BAD_REQUEST, "unknown_licence_type"),
            VaultError::Fields(_) => (S::BAD_REQUEST, "invalid_fields"),
            VaultError::HolderTypeNotAllowed(_) => (S::BAD_REQUEST, "holder_type_not_allowed"),
            VaultError::Dates(_) => (S::BAD_REQUEST, "invalid_dates"),
            VaultError::Date(_) => (S::BAD_REQUEST, "invalid_date"),
            VaultError::Text(_) => (S::BAD_REQUEST, "invalid_text"),
            VaultError::KeysInvalid(_) => (S::BAD_REQUEST, "invalid_keys"),
            VaultError::StoreInconsistent(_) => (S::SERVICE_UNAVAILABLE, "store_inconsistent"),
            VaultError::NoValidSeal(_) => (S::SERVICE_UNAVAILABLE, "no_valid_seal"),
            VaultError::Invalid(_) => (S::BAD_REQUEST, "invalid_request"),
            VaultError::UseReasonRequired => (S::BAD_REQUEST, "use_reason_required"),
            VaultError::UseReasonTooLong(_) => (S::BAD_REQUEST, "use_reason_too_long"),
            VaultError::UnknownServiceItem(_) => (S::NOT_FOUND, "service_item_not_found"),
            VaultError::ApplicantType(_) => (S::BAD_REQUEST, "applicant_type_mismatch"),
            VaultError::PersonalNumber(_) => (S::BAD_REQUEST, "personal_number_in_text"),
            VaultError::UnknownHolderRole(_) => (S::BAD_REQUEST, "unknown_holder_role"),
            VaultError::InvalidCursor(_) => (S::BAD_REQUEST, "invalid_cursor"),
            VaultError::NotValid(_) => (S::CONFLICT, "licence_not_valid"),
            VaultError::InvalidCatalogue(_) => (S::BAD_REQUEST, "invalid_catalogue"),
            VaultError::NoAnnotationKey(_) => (S::SERVICE_UNAVAILABLE, "no_annotation_key"),
            VaultError::HolderRequired => (S::BAD_REQUEST, "holder_required"),
            VaultError::InvalidPresentation(_) => (S::BAD_REQUEST, "invalid_presentation"),
            VaultError::PresentationExpired(_) => (S::GONE, "presentation_expired"),
            VaultError::PresentationNotFound => (S::NOT_FOUND, "presentation_not_found"),
            VaultError::PresentationRedeemed(_) => (S::CONFLICT, "presentation_redeemed"),
            VaultError::NoCompact(_) => (S::CONFLICT, "no_compact_document"),
            VaultError::NoLink(_) => (S::NOT_FOUND, "no_link"),
            VaultError::UnknownDisclosure(_) => (S::BAD_REQUEST, "unknown_disclosure"),
            VaultError::NotFound(_) => (S::NOT_FOUND, "licence_not_found"),
            VaultError::NoCheckpoint(_) => (S::NOT_FOUND, "no_such_checkpoint"),
            VaultError::NoTile(_) => (S::NOT_FOUND, "no_such_tile"),
            VaultError::ClientNotFound(_) => (S::NOT_FOUND, "client_not_found"),
            VaultError::Forbidden(_) => (S::FORBIDDEN, "forbidden"),
            VaultError::Conflict(_) => (S::CONFLICT, "conflict"),
            VaultError::IdempotencyMismatch => (S::UNPROCESSABLE_ENTITY, "idempotency_key_reused"),
            VaultError::Sequencer(crate::log::sequencer::SequencerError::Full(_))
            | VaultError::Store(crate::store::StoreError::Full(_)) => {
                return Self {
                    expose: true,
                    ..Self::new(
                        S::SERVICE_UNAVAILABLE,
                        "storage_full",
                        "the vault's storage is full: nothing of this request was written, and writes resume by \
                         themselves once the operators free space (send it again, with the same Idempotency-Key)",
                    )
                };
            }
            VaultError::Sequencer(_) => (S::SERVICE_UNAVAILABLE, "unavailable"),
            // Storage that does not answer is a passing condition, not a bug: 503.
            VaultError::Store(_) => (S::SERVICE_UNAVAILABLE, "unavailable"),
            VaultError::Internal(_) | VaultError::KeysChanged(_) => (S::INTERNAL_SERVER_ERROR, "internal"),
        };
        let expose = matches!(e, VaultError::NoValidSeal(_) | VaultError::NoAnnotationKey(_));
        Self { expose, ..Self::new(status, code, e.to_string()) }
    }
}

/// `Json<T>` whose rejections are problem bodies too (axum examples/error-handling), and whose
/// body must arrive within the server's request timeout (`--request-timeout`): 408
/// `request_timeout`. Only reading the body is timed: once a write has gone to the sequencer its
/// caller waits for the outcome, so an answer never says "timed out" about a write that then
/// commits.
pub struct ApiJson<T>(pub T);

impl<T> FromRequest<super::AppState> for ApiJson<T>
where
    axum::Json<T>: FromRequest<super::AppState, Rejection = JsonRejection>,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &super::AppState) -> Result<Self, Self::Rejection> {
        let limit = std::time::Duration::from_secs(state.limits.request_timeout.max(1));
        let read = tokio::time::timeout(limit, axum::Json::<T>::from_request(req, state)).await.map_err(|_| {
            ApiError::new(
                StatusCode::REQUEST_TIMEOUT,
                "request_timeout",
                "the request body did not arrive within the request timeout",
            )
        })?;
        match read {
            Ok(axum::Json(v)) => Ok(Self(v)),
            Err(rej) => {
                let status = rej.status();
                let code = match status {
                    StatusCode::PAYLOAD_TOO_LARGE => "body_too_large",
                    StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
                    _ => match rej {
                        JsonRejection::JsonDataError(_) => "invalid_body",
                        _ => "malformed_json",
                    },
                };
                let status = if status == StatusCode::UNPROCESSABLE_ENTITY { StatusCode::BAD_REQUEST } else { status };
                Err(ApiError::new(status, code, rej.body_text()))
            }
        }
    }
}
