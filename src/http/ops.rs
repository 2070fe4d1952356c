//! Operations: liveness, readiness, metrics.

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, MethodRouter};

use super::AppState;

pub fn routes() -> Vec<(&'static str, &'static str, MethodRouter<AppState>)> {
    vec![("GET", "/healthz", get(healthz)), ("GET", "/readyz", get(readyz)), ("GET", "/metrics", get(metrics))]
}

/// GET /healthz — the process answers.
async fn healthz() -> &'static str {
    "ok\n"
}

/// GET /readyz — storage answers reads and the sequencer can write.
async fn readyz(State(s): State<AppState>) -> impl IntoResponse {
    if s.vault.is_ready() {
        (StatusCode::OK, "ready\n")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "storage not ready\n")
    }
}

/// GET /metrics — Prometheus text format.
async fn metrics(State(s): State<AppState>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")],
        s.metrics.render(s.vault.head().size, s.vault.sequencer_stats()),
    )
}
