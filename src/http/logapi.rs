//! The log's public face (spec/formats.md §12): the latest signed checkpoint and every earlier one
//! by size, inclusion and consistency proofs, and the log as c2sp.org/tlog-tiles: hash tiles for
//! anyone, entry bundles (the leaves: who used which licence, for what) and audit exports for
//! auditors.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, MethodRouter};
use axum::Json;
use base64::{engine::general_purpose::STANDARD as B64, Engine};
use serde::{Deserialize, Serialize};

use super::{ApiError, AppState, AuditorCaller};
use crate::vault::audit::Tile;

pub fn routes() -> Vec<(&'static str, &'static str, MethodRouter<AppState>)> {
    vec![
        ("GET", "/v1/log/checkpoint", get(checkpoint)),
        ("GET", "/v1/log/checkpoints/{size}", get(checkpoint_at)),
        ("GET", "/v1/log/proofs/inclusion", get(inclusion)),
        ("GET", "/v1/log/proofs/consistency", get(consistency)),
        ("GET", "/v1/log/tile/{level}/{*n}", get(hash_tile)),
        ("GET", "/v1/log/tile/entries/{*n}", get(entry_bundle)),
        ("GET", "/v1/audit/export", get(export)),
    ]
}

const TEXT: &str = "text/plain; charset=utf-8";
const IMMUTABLE: &str = "public, max-age=31536000, immutable";

/// GET /v1/log/checkpoint — the C2SP signed checkpoint note, as text/plain: with witnesses
/// configured, the newest one a quorum of them cosigned (with their cosignatures), once there is
/// one.
async fn checkpoint(State(s): State<AppState>) -> impl IntoResponse {
    let note = match s.cosigner.as_ref().and_then(|c| c.cosigned()) {
        Some(cosigned) => cosigned.to_string(),
        None => s.vault.head().checkpoint.clone(),
    };
    ([(header::CONTENT_TYPE, TEXT), (header::CACHE_CONTROL, "no-cache")], note)
}

/// A non-negative integer written without sign or leading zeros.
pub(super) fn number(what: &str, text: &str) -> Result<u64, ApiError> {
    text.parse::<u64>().ok().filter(|v| v.to_string() == text).ok_or_else(|| {
        ApiError::bad_request("invalid_request", format!("{what} is a number (0, 1, 2, …), not {text:?}"))
    })
}

/// GET /v1/log/checkpoints/{size} — the checkpoint signed when the log had `size` leaves.
async fn checkpoint_at(State(s): State<AppState>, Path(size): Path<String>) -> Result<Response, ApiError> {
    let note = s.vault.checkpoint_at(number("size", &size)?)?;
    Ok(([(header::CONTENT_TYPE, TEXT), (header::CACHE_CONTROL, IMMUTABLE)], note).into_response())
}

pub(super) fn query<T>(q: Result<Query<T>, QueryRejection>) -> Result<T, ApiError> {
    q.map(|Query(v)| v).map_err(|e| ApiError::bad_request("invalid_request", e.body_text()))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct InclusionQuery {
    index: String,
    size: Option<String>,
}

/// The answer of `GET /v1/log/proofs/inclusion` (spec/openapi.yaml `InclusionProof`).
#[derive(Serialize)]
struct InclusionProof {
    index: u64,
    size: u64,
    /// RFC 9162 §2.1.3 audit path, base64 of each 32-byte hash.
    hashes: Vec<String>,
    /// The checkpoint signed at `size`.
    checkpoint: String,
}

/// GET /v1/log/proofs/inclusion?index=&size= — leaf `index` is in the tree of `size` leaves.
async fn inclusion(
    State(s): State<AppState>,
    q: Result<Query<InclusionQuery>, QueryRejection>,
) -> Result<Json<InclusionProof>, ApiError> {
    let q = query(q)?;
    let index = number("index", &q.index)?;
    let size = q.size.as_deref().map(|v| number("size", v)).transpose()?;
    let p = s.vault.inclusion(index, size)?;
    Ok(Json(InclusionProof {
        index,
        size: p.size,
        hashes: p.hashes.iter().map(|h| B64.encode(h)).collect(),
        checkpoint: p.checkpoint,
    }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ConsistencyQuery {
    from: String,
    to: Option<String>,
}

/// The answer of `GET /v1/log/proofs/consistency` (spec/openapi.yaml `ConsistencyProof`).
#[derive(Serialize)]
struct ConsistencyProof {
    from: u64,
    to: u64,
    /// RFC 9162 §2.1.4 proof, base64 of each 32-byte hash.
    hashes: Vec<String>,
    /// The checkpoint signed at `to`.
    checkpoint: String,
}

/// GET /v1/log/proofs/consistency?from=&to= — the tree of `from` leaves is a prefix of that of
/// `to`.
async fn consistency(
    State(s): State<AppState>,
    q: Result<Query<ConsistencyQuery>, QueryRejection>,
) -> Result<Json<ConsistencyProof>, ApiError> {
    let q = query(q)?;
    let from = number("from", &q.from)?;
    let to = q.to.as_deref().map(|v| number("to", v)).transpose()?;
    let p = s.vault.consistency(from, to)?;
    Ok(Json(ConsistencyProof {
        from,
        to: p.size,
        hashes: p.hashes.iter().map(|h| B64.encode(h)).collect(),
        checkpoint: p.checkpoint,
    }))
}

/// A tile's answer: full tiles never change, partial ones grow into full ones.
fn tile_answer(s: &AppState, tile: &str) -> Result<Response, ApiError> {
    let tile = Tile::parse(tile).map_err(|e| ApiError::bad_request("invalid_request", e))?;
    let bytes = axum::body::Bytes::from_owner(s.vault.tile(&tile)?);
    let cache = if tile.is_full() { IMMUTABLE } else { "no-cache" };
    Ok(([(header::CONTENT_TYPE, "application/octet-stream"), (header::CACHE_CONTROL, cache)], bytes).into_response())
}

/// GET /v1/log/tile/{L}/{N}[.p/{W}] — a hash tile (public).
async fn hash_tile(State(s): State<AppState>, Path((level, n)): Path<(String, String)>) -> Result<Response, ApiError> {
    tile_answer(&s, &format!("{level}/{n}"))
}

/// GET /v1/log/tile/entries/{N}[.p/{W}] — an entry bundle (auditor).
async fn entry_bundle(
    State(s): State<AppState>,
    AuditorCaller(_): AuditorCaller,
    Path(n): Path<String>,
) -> Result<Response, ApiError> {
    tile_answer(&s, &format!("entries/{n}"))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ExportQuery {
    from: String,
    to: Option<String>,
}

/// GET /v1/audit/export?from=&to= — an audit bundle (spec/formats.md §13) of leaves `from..to`,
/// streamed; the export is logged (`audit.exported`) before its first byte leaves.
async fn export(
    State(s): State<AppState>,
    AuditorCaller(client): AuditorCaller,
    q: Result<Query<ExportQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let q = query(q)?;
    let from = number("from", &q.from)?;
    let to = q.to.as_deref().map(|v| number("to", v)).transpose()?;
    let header = s.vault.export_header(from, to)?;
    let to = header.to;
    s.vault.record_export(&client, from, to).await?;
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Vec<u8>, std::io::Error>>(8);
    let first = crate::log::audit::item(&header.encode());
    let vault = s.vault.clone();
    tokio::task::spawn_blocking(move || {
        if tx.blocking_send(Ok(first)).is_err() {
            return;
        }
        let sent = vault.export_leaves(from, to, 256 * 1024, |chunk| tx.blocking_send(Ok(chunk)).is_ok());
        if let Err(e) = sent {
            // The reader sees the stream break, and the bundle fails its check.
            tracing::error!(error = %e, from, to, "audit export stopped");
            let _ = tx.blocking_send(Err(std::io::Error::other(e.to_string())));
        }
    });
    let name = format!("attachment; filename=\"licvault-{from}-{to}.bundle\"");
    Ok((
        [
            (header::CONTENT_TYPE, "application/cbor-seq".to_string()),
            (header::CACHE_CONTROL, "no-store".to_string()),
            (header::CONTENT_DISPOSITION, name),
        ],
        axum::body::Body::from_stream(tokio_stream::wrappers::ReceiverStream::new(rx)),
    )
        .into_response())
}
