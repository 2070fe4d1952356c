//! Derived views kept beside the log, written in the same batch as the leaves they follow from
//! (spec/formats.md §4). They can be rebuilt by replaying the log and the document store.

use serde::{Deserialize, Serialize};

use crate::domain::Status;

/// Current state of one licence version (`Cf::Licences`, key = licence id).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LicenceRecord {
    pub id: String,
    pub type_code: String,
    pub issuer: String,
    pub status: Status,
    /// SHA-256 of the COSE_Sign1 bytes, hex.
    pub doc_sha256: String,
    pub valid_from: i64,
    pub valid_until: Option<i64>,
    pub issued_index: u64,
    pub last_index: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub predecessor: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub successor: Option<String>,
}

/// What an Idempotency-Key maps to (`Cf::Idempotency`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IdempotentAnswer {
    /// SHA-256 of the canonical request, hex: a different body under the same key is refused.
    pub request_sha256: String,
    pub licence_id: String,
}

/// Client roles (DESIGN §5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Issuer,
    Verifier,
    HolderChannel,
    Auditor,
    Admin,
}

impl Role {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "issuer" => Some(Self::Issuer),
            "verifier" => Some(Self::Verifier),
            "holder_channel" => Some(Self::HolderChannel),
            "auditor" => Some(Self::Auditor),
            "admin" => Some(Self::Admin),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Issuer => "issuer",
            Self::Verifier => "verifier",
            Self::HolderChannel => "holder_channel",
            Self::Auditor => "auditor",
            Self::Admin => "admin",
        }
    }
}

/// A client system (`Cf::Clients`, key = SHA-256 of its bearer token; the token is never stored).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Client {
    pub id: String,
    pub name: String,
    pub role: Role,
    /// The department's USCC (issuers and verifiers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uscc: Option<String>,
    /// Licence types this client may use; empty = every type its department may issue.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub types: Vec<String>,
}
