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

/// GET /readyz — 200 `ready` when storage answers reads and the sequencer can commit; else 503
/// with the reason (the sequencer stopped, or writes are failing: a read-only or full store).
/// A line per mirrored source follows (its size and lag, or that it forked).
async fn readyz(State(s): State<AppState>) -> impl IntoResponse {
    let text = [(header::CONTENT_TYPE, "text/plain; charset=utf-8")];
    // A mirror that forked or lags is reported, not a reason to stop serving: it serves what
    // it verified, with its as-of head.
    let mut detail = s.vault.mirrors().map(|m| m.readiness()).unwrap_or_default();
    // A federation's revocation list past its nextUpdate vouches for nothing: said before it does.
    if let Some((ca, next)) = s.vault.keyring().trust.first_crl_expiry() {
        let left = next - crate::vault::unix_now();
        if left < 86_400 {
            let when = crate::vault::rfc3339_s(next);
            detail += &if left <= 0 {
                format!("federation: the revocation list of {ca} went stale at {when}: load a new one (keys reload)\n")
            } else {
                format!("federation: the revocation list of {ca} goes stale at {when}, in under a day\n")
            };
        }
    }
    match s.vault.readiness().await {
        Ok(()) => (StatusCode::OK, text, format!("ready\n{detail}")),
        Err(why) => (StatusCode::SERVICE_UNAVAILABLE, text, format!("not ready: {why}\n{detail}")),
    }
}

/// GET /metrics — Prometheus text format, for an admin token (or unauthenticated on the
/// separate `--metrics-listen` address, see [`metrics_router`]).
async fn metrics(State(s): State<AppState>, _: super::Admin) -> impl IntoResponse {
    render_metrics(&s)
}

pub(super) fn render_metrics(s: &AppState) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")],
        s.metrics.render(s.vault.head().size, s.vault.sequencer_stats(), s.vault.verify_stats())
            + &crate::http::metrics::store_bytes(
                &s.vault.store().sizes(),
                s.vault.store().compacting(),
                s.vault.store().free_space(),
            )
            + &format!(
                "# HELP licvault_tree_resident_nodes Tree nodes held in memory as whole levels, for proofs (filled in the background after a start).\n\
                 # TYPE licvault_tree_resident_nodes gauge\nlicvault_tree_resident_nodes {}\n",
                s.vault.sequencer().resident_nodes()
            )
            + &s.vault.mirrors().map(|m| m.metrics()).unwrap_or_default()
            + &s.vault.keyring().trust.first_crl_expiry().map_or(String::new(), |(_, next)| {
                format!(
                    "# HELP licvault_federation_crl_next_update_seconds The earliest nextUpdate (unix seconds) of the federation's revocation lists: past it, that CA vouches for nothing until a new list is loaded.\n\
                     # TYPE licvault_federation_crl_next_update_seconds gauge\nlicvault_federation_crl_next_update_seconds {next}\n"
                )
            }),
    )
}
