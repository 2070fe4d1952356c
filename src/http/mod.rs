//! The REST API (DESIGN §5, spec/openapi.yaml). The only module that uses axum. One file per area;
//! [`routes`] is the single table of every route, which the router is built from and which a test
//! compares with the spec.

/// A verifier's request body: its own fields, then what every verifier read states
/// (`use_reason`, `service_item_code`, `biz_num`, `officer`, `on_behalf_of`; spec/openapi.yaml), and
/// `use_input()`, which hands those to `Vault::use_context`. (`#[serde(flatten)]` would share the
/// five fields, but it does not go with `deny_unknown_fields`.)
macro_rules! verifier_request {
    ($(#[$m:meta])* struct $name:ident { $($(#[$fm:meta])* $field:ident : $ty:ty,)* }) => {
        $(#[$m])*
        #[derive(Debug, serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        struct $name {
            $($(#[$fm])* $field: $ty,)*
            #[serde(default)]
            use_reason: Option<String>,
            #[serde(default)]
            service_item_code: Option<String>,
            #[serde(default)]
            biz_num: Option<String>,
            #[serde(default)]
            officer: Option<crate::vault::usage::Officer>,
            #[serde(default)]
            on_behalf_of: Option<crate::vault::usage::OnBehalfOf>,
        }

        impl $name {
            fn use_input(&self) -> crate::vault::usage::UseInput<'_> {
                crate::vault::usage::UseInput {
                    use_reason: self.use_reason.as_deref(),
                    service_item_code: self.service_item_code.as_deref(),
                    biz_num: self.biz_num.as_deref(),
                    officer: self.officer.as_ref(),
                    on_behalf_of: self.on_behalf_of.as_ref(),
                }
            }
        }
    };
}

pub mod admin;
mod catalogue;
pub mod error;
mod holders;
mod licences;
mod logapi;
mod metrics;
mod mirrors;
mod ops;
mod page;
mod presentations;
mod qr;
pub mod serve;
pub mod trust;
mod verify;
pub mod witness;

use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use axum::routing::MethodRouter;
use axum::Router;

pub use error::{ApiError, ApiJson};
pub use metrics::Metrics;

use crate::vault::{Client, Role, Vault};

/// Largest request body accepted (a licence with a long 经营范围 is a few KiB).
pub const MAX_BODY: usize = 64 * 1024;

#[derive(Clone)]
pub struct AppState {
    pub vault: Arc<Vault>,
    pub metrics: Arc<Metrics>,
    pub limits: crate::config::Limits,
    /// `--public-url`: the base of the links in QR codes (`/v/<ref>`). Without it, the base is
    /// `http://` and the request's Host.
    pub public_url: Option<String>,
    /// `--witness`: the witnesses' cosignatures; `GET /v1/log/checkpoint` serves the newest
    /// checkpoint a quorum of them cosigned.
    pub cosigner: Option<Arc<crate::witness::Cosigner>>,
    /// `--peers`: the other nodes a lookup and a usage view also ask.
    pub peers: Option<Arc<crate::peers::Peers>>,
}

impl AppState {
    pub fn new(vault: Arc<Vault>, limits: crate::config::Limits) -> Self {
        Self { vault, metrics: Arc::new(Metrics::default()), limits, public_url: None, cosigner: None, peers: None }
    }

    pub fn with_public_url(self, url: Option<String>) -> Self {
        Self { public_url: url.map(|u| u.trim_end_matches('/').to_string()), ..self }
    }

    /// The base URL links are made from.
    pub fn public_base(&self, headers: &axum::http::HeaderMap) -> String {
        if let Some(u) = &self.public_url {
            return u.clone();
        }
        let host = headers
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .filter(|h| !h.is_empty() && h.bytes().all(|b| b.is_ascii_alphanumeric() || b".-:[]".contains(&b)))
            .unwrap_or("localhost");
        format!("http://{host}")
    }
}

/// Every route: (method, path, handler). The router and the spec test both read this table.
pub fn routes() -> Vec<(&'static str, &'static str, MethodRouter<AppState>)> {
    let mut r = Vec::new();
    r.extend(catalogue::routes());
    r.extend(licences::routes());
    r.extend(verify::routes());
    r.extend(trust::routes());
    r.extend(qr::routes());
    r.extend(page::routes());
    r.extend(presentations::routes());
    r.extend(holders::routes());
    r.extend(logapi::routes());
    r.extend(mirrors::routes());
    r.extend(ops::routes());
    r.extend(admin::routes());
    r
}

pub fn router(state: AppState) -> Router {
    let mut router = Router::new();
    for (_, path, handler) in routes() {
        router = router.route(path, handler);
    }
    router
        .fallback(|| async {
            ApiError::new(StatusCode::NOT_FOUND, "route_not_found", "no such endpoint; see spec/openapi.yaml")
        })
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "this endpoint does not take that method",
            )
        })
        .layer(axum::middleware::from_fn_with_state(state.clone(), metrics::track))
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(state)
}

/// The authenticated caller: `Authorization: Bearer <token>`.
pub struct Caller(pub Client);

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let header = parts.headers.get(header::AUTHORIZATION).ok_or_else(|| {
            ApiError::new(StatusCode::UNAUTHORIZED, "unauthenticated", "send Authorization: Bearer <token>")
        })?;
        let token = header.to_str().ok().and_then(|h| h.strip_prefix("Bearer ")).map(str::trim).ok_or_else(|| {
            ApiError::new(StatusCode::UNAUTHORIZED, "unauthenticated", "Authorization must be Bearer <token>")
        })?;
        use crate::vault::TokenRefusal as R;
        state.vault.authenticate(token).map(Caller).map_err(|why| {
            let (code, detail) = match why {
                R::Unknown => ("invalid_token", "the bearer token is not known"),
                R::RotatedOut => ("invalid_token", "this bearer token was replaced by a newer one and no longer works"),
                R::Disabled => ("token_disabled", "this client has been disabled by an administrator"),
                R::Expired => ("token_expired", "this client's access has expired; ask an administrator"),
            };
            ApiError::new(StatusCode::UNAUTHORIZED, code, detail)
        })
    }
}

/// Extractors for callers of one role, checked from the token before the body is read, so a
/// caller of another role learns nothing about the body's rules (403 before any 400).
macro_rules! role_caller {
    ($(#[$doc:meta])* $name:ident, $role:expr) => {
        $(#[$doc])*
        pub struct $name(pub Client);

        impl FromRequestParts<AppState> for $name {
            type Rejection = ApiError;

            async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
                let Caller(c) = Caller::from_request_parts(parts, state).await?;
                require_role(&c, $role)?;
                Ok(Self(c))
            }
        }
    };
}

role_caller!(
    /// The caller, if it is an administrator.
    Admin,
    Role::Admin
);
role_caller!(
    /// The caller, if it is a verifying department's system.
    VerifierCaller,
    Role::Verifier
);
role_caller!(
    /// The caller, if it is an auditor.
    AuditorCaller,
    Role::Auditor
);
role_caller!(
    /// The caller, if it is the holder channel (the government app's backend).
    HolderChannelCaller,
    Role::HolderChannel
);

/// Refuses a caller whose role is not `role` (403 `forbidden`).
pub fn require_role(client: &Client, role: Role) -> Result<(), ApiError> {
    if client.role == role {
        Ok(())
    } else {
        Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            format!("this needs the {} role; client {} has {}", role.as_str(), client.id, client.role.as_str()),
        ))
    }
}

/// The router of the separate metrics address (`--metrics-listen`): only `GET /metrics`, without
/// a token. Bind it where only the monitoring system can reach it.
pub fn metrics_router(state: AppState) -> Router {
    Router::new()
        .route(
            "/metrics",
            axum::routing::get(|s: axum::extract::State<AppState>| async move { ops::render_metrics(&s.0) }),
        )
        .with_state(state)
}

/// Serves the API on `listener` until ctrl-c / SIGTERM, with the state's limits.
pub async fn serve(listener: tokio::net::TcpListener, state: AppState) -> std::io::Result<()> {
    let limits = state.limits.clone();
    serve::serve_with(listener, router(state), &limits, shutdown()).await
}

/// Serves only `GET /metrics`, without a token, on its own address until ctrl-c / SIGTERM.
pub async fn serve_metrics(listener: tokio::net::TcpListener, state: AppState) -> std::io::Result<()> {
    let limits = state.limits.clone();
    serve::serve_with(listener, metrics_router(state), &limits, shutdown()).await
}

/// Resolves on ctrl-c or SIGTERM.
pub async fn shutdown() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        if let Ok(mut s) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            s.recv().await;
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
}
