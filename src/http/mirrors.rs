//! What this node mirrors (spec/formats.md §15): each source's verified head, lag and, when it
//! forked, the evidence; and each source's newest verified checkpoint with this mirror's
//! cosignature. Public: anyone may compare a mirror's view with the source's.

use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, MethodRouter};
use axum::Json;
use serde::Serialize;

use super::{ApiError, AppState};
use crate::vault::rfc3339_s;

pub fn routes() -> Vec<(&'static str, &'static str, MethodRouter<AppState>)> {
    vec![("GET", "/v1/mirrors", get(list)), ("GET", "/v1/mirrors/{name}/checkpoint", get(checkpoint))]
}

/// The answer of `GET /v1/mirrors` (spec/openapi.yaml `Mirrors`).
#[derive(Serialize)]
struct MirrorList {
    mirrors: Vec<MirrorView>,
}

/// One source (spec/openapi.yaml `Mirror`).
#[derive(Serialize)]
struct MirrorView {
    name: String,
    /// The source log's origin (its checkpoints' first line).
    origin: String,
    /// The source log's verifier key, pinned in this node's configuration.
    log_key: String,
    /// Leaves mirrored and verified: the state served holds as of this size.
    size: u64,
    /// The newest source checkpoint verified to hold them (signed note).
    checkpoint: Option<String>,
    /// The source's checkpoint size when it last answered.
    source_size: Option<u64>,
    /// `following`, `unreachable` (the last round failed; tried again) or `forked`.
    state: &'static str,
    lag_seconds: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    fork: Option<ForkView>,
}

/// Why the source is no longer followed (spec/openapi.yaml `MirrorFork`).
#[derive(Serialize)]
struct ForkView {
    detected_at: String,
    why: String,
    /// The newest checkpoint the mirror had verified.
    verified: Option<String>,
    /// The source's checkpoint that disagrees with it.
    conflicting: String,
}

/// GET /v1/mirrors — every source this node mirrors (an empty list when none).
async fn list(State(s): State<AppState>) -> Json<MirrorList> {
    let mirrors = s.vault.mirrors().map(|m| m.list.iter().map(|m| m.state()).collect()).unwrap_or_else(Vec::new);
    Json(MirrorList {
        mirrors: mirrors
            .into_iter()
            .map(|m| MirrorView {
                state: match (&m.fork, &m.error) {
                    (Some(_), _) => "forked",
                    (None, Some(_)) => "unreachable",
                    (None, None) => "following",
                },
                name: m.name,
                origin: m.origin,
                log_key: m.log_key,
                size: m.size,
                checkpoint: m.checkpoint,
                source_size: m.source_size,
                lag_seconds: m.lag_seconds,
                error: m.error,
                fork: m.fork.map(|f| ForkView {
                    detected_at: rfc3339_s(f.detected_at),
                    why: f.why,
                    verified: f.verified,
                    conflicting: f.conflicting,
                }),
            })
            .collect(),
    })
}

/// GET /v1/mirrors/{name}/checkpoint — the source's newest checkpoint this mirror verified, with
/// its cosignature when it has a witness key (text/plain).
async fn checkpoint(State(s): State<AppState>, Path(name): Path<String>) -> Result<Response, ApiError> {
    let not_found = || {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "no_such_mirror",
            "this node mirrors no source of that name (GET /v1/mirrors)",
        )
    };
    let mirror = s.vault.mirrors().and_then(|m| m.get(&name)).ok_or_else(not_found)?;
    let note = mirror.cosigned().ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "nothing_mirrored",
            "this mirror has verified no checkpoint of its source yet",
        )
    })?;
    Ok(([(header::CONTENT_TYPE, "text/plain; charset=utf-8"), (header::CACHE_CONTROL, "no-cache")], note)
        .into_response())
}
