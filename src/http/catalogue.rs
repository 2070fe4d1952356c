//! Catalogue reads: licence types and service items. Public: the catalogue is published data.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, MethodRouter};
use axum::Json;
use serde_json::{json, Value};

use super::{ApiError, AppState};
use crate::domain::TypeCode;

pub fn routes() -> Vec<(&'static str, &'static str, MethodRouter<AppState>)> {
    vec![
        ("GET", "/v1/licence-types", get(list_types)),
        ("GET", "/v1/licence-types/{code}", get(get_type)),
        ("GET", "/v1/service-items", get(list_items)),
        ("GET", "/v1/service-items/{code}", get(get_item)),
    ]
}

/// GET /v1/licence-types
async fn list_types(State(s): State<AppState>) -> Json<Value> {
    Json(json!({ "licence_types": s.vault.catalogue().licence_types().collect::<Vec<_>>() }))
}

/// GET /v1/licence-types/{code}
async fn get_type(State(s): State<AppState>, Path(code): Path<String>) -> Result<Json<Value>, ApiError> {
    let code = TypeCode::parse(&code).map_err(|e| ApiError::bad_request("invalid_type_code", e.to_string()))?;
    let catalogue = s.vault.catalogue();
    let t = catalogue.licence_type(code.as_str()).ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "licence_type_not_found",
            format!("no licence type {code} in the catalogue"),
        )
    })?;
    Ok(Json(json!(t)))
}

/// GET /v1/service-items
async fn list_items(State(s): State<AppState>) -> Json<Value> {
    Json(json!({ "service_items": s.vault.catalogue().service_items().collect::<Vec<_>>() }))
}

/// GET /v1/service-items/{code}
async fn get_item(State(s): State<AppState>, Path(code): Path<String>) -> Result<Json<Value>, ApiError> {
    let catalogue = s.vault.catalogue();
    let item = catalogue.service_item(code.trim()).ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "service_item_not_found",
            format!("no service item {code} in the catalogue"),
        )
    })?;
    Ok(Json(json!(item)))
}
