//! The witness's HTTP face (c2sp.org/tlog-witness): `POST /add-checkpoint`.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;

use crate::witness::{Refusal, Witness};

/// The witness's router: one endpoint, bodies of at most 64 KiB.
pub fn router(witness: Arc<Witness>) -> Router {
    Router::new()
        .route("/add-checkpoint", post(add_checkpoint))
        .layer(axum::extract::DefaultBodyLimit::max(64 * 1024))
        .with_state(witness)
}

/// Serves the witness on `listener` until the process ends.
pub async fn serve(listener: tokio::net::TcpListener, witness: Arc<Witness>) -> std::io::Result<()> {
    axum::serve(listener, router(witness)).await
}

async fn add_checkpoint(State(w): State<Arc<Witness>>, body: String) -> Response {
    let result = tokio::task::spawn_blocking(move || w.add(&body)).await;
    let refusal = match result {
        Ok(Ok(line)) => return ([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], line).into_response(),
        Ok(Err(r)) => r,
        Err(e) => Refusal::Storage(e.to_string()),
    };
    let status = match &refusal {
        Refusal::Malformed(_) => StatusCode::BAD_REQUEST,
        Refusal::UnknownLog(_) => StatusCode::NOT_FOUND,
        Refusal::Signature(_) => StatusCode::FORBIDDEN,
        Refusal::OldSize { latest, .. } => {
            return (StatusCode::CONFLICT, [(header::CONTENT_TYPE, "text/x.tlog.size")], format!("{latest}\n"))
                .into_response()
        }
        Refusal::Inconsistent(..) => StatusCode::UNPROCESSABLE_ENTITY,
        Refusal::Storage(_) => StatusCode::INTERNAL_SERVER_ERROR,
    };
    tracing::warn!(reason = %refusal, "checkpoint refused");
    (status, [(header::CONTENT_TYPE, "text/plain; charset=utf-8")], format!("{refusal}\n")).into_response()
}
