//! The log's public face: the latest signed checkpoint.

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::{get, MethodRouter};

use super::AppState;

pub fn routes() -> Vec<(&'static str, &'static str, MethodRouter<AppState>)> {
    vec![("GET", "/v1/log/checkpoint", get(checkpoint))]
}

/// GET /v1/log/checkpoint — the C2SP signed checkpoint note, as text/plain.
async fn checkpoint(State(s): State<AppState>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8"), (header::CACHE_CONTROL, "no-cache")],
        s.vault.head().checkpoint.clone(),
    )
}
