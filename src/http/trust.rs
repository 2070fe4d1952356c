//! What a scanner needs to verify offline: the trust list (`GET /v1/trust`), the status lists
//! (`GET /v1/status-lists/{n}`, draft-ietf-oauth-status-list-18 in CWT form) and the preset
//! dictionary of `LV2:` QR payloads (`GET /v1/qr-dictionaries/1`). All public.

use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, MethodRouter};
use axum::Json;
use base64::{engine::general_purpose::STANDARD as B64, Engine};
use serde::{Deserialize, Serialize};

use super::{ApiError, AppState};
use crate::vault::rfc3339_s;

pub fn routes() -> Vec<(&'static str, &'static str, MethodRouter<AppState>)> {
    vec![
        ("GET", "/v1/trust", get(trust)),
        ("GET", "/v1/status-lists/{n}", get(status_list)),
        ("GET", "/v1/qr-dictionaries/{n}", get(qr_dictionary)),
    ]
}

/// The answer of `GET /v1/trust` (spec/openapi.yaml `Trust`); `licvault trust pull` reads it
/// back, so it is both serialised and parsed.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Trust {
    /// Hex SHA-256 of the trust material (spec/formats.md §9): what a scanner pins.
    pub digest: String,
    pub root: RootCert,
    pub departments: Vec<DepartmentCert>,
    pub log: LogKey,
    pub platform_keys: Vec<PlatformKey>,
    pub status_lists: StatusLists,
    pub qr_dictionaries: Vec<QrDictionary>,
    /// With a federation (spec/formats.md §9.1): its certificates and revocation lists, which
    /// the digest covers (`licvault-trust-v2`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub federation: Option<FederationTrust>,
}

/// The federation's files as PEM, in the order the digest takes them.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FederationTrust {
    /// The national root.
    pub anchor: String,
    /// Provinces' CA certificates and cross-certificates of city platforms' roots.
    pub cas: Vec<String>,
    /// Each CA's current revocation list.
    pub crls: Vec<String>,
    /// Other platforms' seal certificates.
    pub peers: Vec<String>,
}

impl FederationTrust {
    pub fn of(der: &crate::crypto::trust::FederationDer) -> Self {
        let certs = |l: &[Vec<u8>]| l.iter().map(|d| crate::crypto::pem("CERTIFICATE", d)).collect();
        Self {
            anchor: crate::crypto::pem("CERTIFICATE", &der.anchor),
            cas: certs(&der.cas),
            crls: der.crls.iter().map(|d| crate::crypto::pem("X509 CRL", d)).collect(),
            peers: certs(&der.peers),
        }
    }
}

/// A preset dictionary of QR payloads (spec/formats.md §1). Fixed forever, so outside the digest:
/// its SHA-256 is the check.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QrDictionary {
    /// The payloads compressed against it, e.g. `LV2:`.
    pub prefix: String,
    /// Its Adler-32 (hex), the DICTID in their zlib header.
    pub dictid: String,
    pub sha256: String,
    /// Where its bytes are, on this server.
    pub path: String,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RootCert {
    /// PEM.
    pub certificate: String,
    pub not_before: String,
    pub not_after: String,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DepartmentCert {
    /// Hex of the 8-byte kid: SHA-256 of the certificate's DER, first 8 bytes.
    pub kid: String,
    pub uscc: String,
    pub name: String,
    pub not_before: String,
    pub not_after: String,
    /// PEM.
    pub certificate: String,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogKey {
    pub origin: String,
    /// C2SP signed-note verifier key.
    pub verifier_key: String,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlatformKey {
    pub kid: String,
    /// base64 of the 32-byte Ed25519 public key.
    pub public_key: String,
    /// Whether it signs now (older keys stay for what they signed).
    pub current: bool,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StatusLists {
    /// A list's URI is this followed by its number.
    pub uri_prefix: String,
    /// Lists 0 to `count - 1` exist.
    pub count: u32,
    pub entries: u32,
    pub bits: u8,
    pub ttl: u64,
}

/// GET /v1/trust — the root, the department certificates, the log key, the platform keys and
/// where the status lists are, with the digest to pin.
async fn trust(State(s): State<AppState>) -> Response {
    let keys = s.vault.keyring();
    let t = &keys.trust;
    let mut depts: Vec<_> = t.departments().collect();
    depts.sort_by_key(|d| d.kid);
    let (platform, current) = s.vault.platform_keys();
    let log_key = s.vault.log_verifier_key();
    let digest = t.digest(&log_key, &platform);
    let (root_from, root_until) = t.root_validity();
    let answer = Trust {
        digest: hex::encode(digest),
        root: RootCert {
            certificate: crate::crypto::pem("CERTIFICATE", t.root_der()),
            not_before: rfc3339_s(root_from),
            not_after: rfc3339_s(root_until),
        },
        departments: depts
            .iter()
            .map(|d| DepartmentCert {
                kid: hex::encode(d.kid),
                uscc: d.uscc.to_string(),
                name: d.name.clone(),
                not_before: rfc3339_s(d.not_before),
                not_after: rfc3339_s(d.not_after),
                certificate: crate::crypto::pem("CERTIFICATE", &d.der),
            })
            .collect(),
        log: LogKey { origin: s.vault.log_origin().to_string(), verifier_key: log_key },
        platform_keys: platform
            .iter()
            .map(|(kid, key)| PlatformKey {
                kid: hex::encode(kid),
                public_key: B64.encode(key.to_bytes()),
                current: current == Some(*kid),
            })
            .collect(),
        status_lists: StatusLists {
            uri_prefix: s.vault.status_list_prefix(),
            count: s.vault.status_list_count(),
            entries: crate::vault::status_lists::LIST_SIZE,
            bits: crate::status_list::BITS,
            ttl: crate::vault::status_lists::TTL,
        },
        qr_dictionaries: vec![QrDictionary {
            prefix: crate::qr::PREFIX_DICT.to_string(),
            dictid: format!("{:08x}", crate::qr::DICTIONARY_ID),
            sha256: crate::qr::DICTIONARY_SHA256.to_string(),
            path: "/v1/qr-dictionaries/1".to_string(),
        }],
        federation: t.federation_der().map(FederationTrust::of),
    };
    ([(header::CACHE_CONTROL, "no-cache")], Json(answer)).into_response()
}

/// GET /v1/status-lists/{n} — the status list token (a COSE_Sign1, `application/statuslist+cwt`).
async fn status_list(State(s): State<AppState>, Path(n): Path<String>) -> Result<Response, ApiError> {
    // Numbers as written: 0, 1, 2, … (no sign, no leading zeros).
    let count = s.vault.status_list_count();
    let n: u32 = n.parse().ok().filter(|v: &u32| v.to_string() == n && *v < count).ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "no_such_status_list",
            format!("status lists are numbered 0 to {} (GET /v1/trust says how many there are)", count - 1),
        )
    })?;
    let vault = s.vault.clone();
    let token = tokio::task::spawn_blocking(move || vault.status_list(n))
        .await
        .map_err(|e| ApiError::from(crate::vault::VaultError::Internal(e.to_string())))??;
    let max_age = format!("public, max-age={}", crate::vault::status_lists::TTL);
    Ok((
        [(header::CONTENT_TYPE, crate::status_list::TYP.to_string()), (header::CACHE_CONTROL, max_age)],
        token.to_vec(),
    )
        .into_response())
}

/// GET /v1/qr-dictionaries/{n} — the bytes of preset dictionary `n` (only 1 exists), which never
/// change.
async fn qr_dictionary(Path(n): Path<String>) -> Result<Response, ApiError> {
    if n != "1" {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "no_such_dictionary",
            "the only QR dictionary is 1 (GET /v1/trust lists them)".to_string(),
        ));
    }
    Ok((
        [
            (header::CONTENT_TYPE, "application/octet-stream"),
            (header::CACHE_CONTROL, "public, max-age=31536000, immutable"),
        ],
        crate::qr::DICTIONARY,
    )
        .into_response())
}
