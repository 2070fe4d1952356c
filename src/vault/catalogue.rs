//! Catalogue changes while running: an administrator adds or replaces a licence type or a
//! service item. The change is checked with the whole catalogue exactly as the file is at
//! start-up, logged as a leaf carrying the definition (with a `meta` row `cat/` ‖ leaf index
//! pointing to it), and takes effect for the next request. At start-up the logged changes are laid over the
//! catalogue file in the order they were made; one that no longer fits stops start-up.

use std::sync::Arc;

use super::{Client, Role, Vault, VaultError};
use crate::crypto::sha256;
use crate::domain::{Catalogue, LicenceType, ServiceItem};
use crate::log::leaf::Event;
use crate::log::sequencer::Head;
use crate::store::{Cf, Store};

/// `meta` rows `cat/` ‖ leaf index (u64 BE) → empty: pointers to the leaves that logged a
/// catalogue change, in the order they were made. The definitions are read from the leaves.
/// Longest definition (JSON) a catalogue change may log: its leaf must fit an entry bundle of
/// c2sp.org/tlog-tiles (`audit::MAX_ENTRY`, 65,535 bytes) with room for the rest of the leaf.
pub const MAX_DEFINITION: usize = 60_000;
const CHANGE_PREFIX: &[u8] = crate::store::keys::CATALOGUE_CHANGE;

/// A definition for the catalogue: a licence type or a service item. Serialized as
/// `{"licence_type": …}` or `{"service_item": …}`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Definition {
    LicenceType(LicenceType),
    ServiceItem(ServiceItem),
}

impl Definition {
    fn code(&self) -> &str {
        match self {
            Self::LicenceType(t) => &t.code,
            Self::ServiceItem(i) => &i.code,
        }
    }

    /// The leaf kind that logs it.
    fn kind(&self) -> &'static str {
        match self {
            Self::LicenceType(_) => "catalogue.type",
            Self::ServiceItem(_) => "catalogue.item",
        }
    }

    /// `catalogue` with this definition in place, checked as a whole; the definition as the
    /// new catalogue keeps it (text as the text rule leaves it); and whether it was already so.
    fn apply(self, catalogue: &Catalogue) -> Result<(Catalogue, Definition, bool), VaultError> {
        let invalid = |e: crate::domain::catalogue::CatalogueError| VaultError::InvalidCatalogue(e.to_string());
        let code = self.code().to_string();
        Ok(match self {
            Self::LicenceType(t) => {
                let next = catalogue.with_type(t).map_err(invalid)?;
                let kept = next.licence_type(&code).cloned().ok_or_else(|| VaultError::Internal("type lost".into()))?;
                let unchanged = catalogue.licence_type(&code) == Some(&kept);
                (next, Self::LicenceType(kept), unchanged)
            }
            Self::ServiceItem(i) => {
                let next = catalogue.with_item(i).map_err(invalid)?;
                let kept = next.service_item(&code).cloned().ok_or_else(|| VaultError::Internal("item lost".into()))?;
                let unchanged = catalogue.service_item(&code) == Some(&kept);
                (next, Self::ServiceItem(kept), unchanged)
            }
        })
    }

    /// The definition's own JSON (as the leaf carries it).
    fn to_json(&self) -> Result<String, VaultError> {
        match self {
            Self::LicenceType(t) => serde_json::to_string(t),
            Self::ServiceItem(i) => serde_json::to_string(i),
        }
        .map_err(|e| VaultError::Internal(e.to_string()))
    }
}

/// A catalogue change that was applied (or found already in place): the answer of the admin
/// catalogue endpoints (spec/openapi.yaml `CatalogueChanged`).
#[derive(Debug, serde::Serialize)]
pub struct CatalogueChange {
    /// The leaf that logged it; `None` when the definition was already the current one.
    pub log_index: Option<u64>,
    /// The definition now in force.
    #[serde(flatten)]
    pub definition: Definition,
}

/// The catalogue file with every logged change laid over it, replayed in the order they were
/// made (each was checked against exactly this sequence when it was made). Each change is read
/// from its leaf, which must be proven in the signed tree of `head`: a stored row cannot bring in
/// a definition the log does not have. A change that no longer fits (the file was edited under
/// it) stops start-up.
pub fn with_logged_changes(file: Catalogue, store: &dyn Store, head: &Head) -> Result<Catalogue, VaultError> {
    let mut catalogue = file;
    for (key, _) in store.scan_prefix(Cf::Meta, CHANGE_PREFIX, usize::MAX)? {
        let refuse = |why: String| {
            VaultError::KeysChanged(format!("catalogue change {}: {why}; refusing to start", hex::encode(&key)))
        };
        let index = key
            .get(CHANGE_PREFIX.len()..)
            .and_then(|b| b.try_into().ok())
            .map(u64::from_be_bytes)
            .ok_or_else(|| refuse("malformed pointer".into()))?;
        let refuse = |why: String| {
            VaultError::KeysChanged(format!("the catalogue change logged at leaf {index}: {why}; refusing to start"))
        };
        let leaf = super::prove_leaf(store, head, index).map_err(refuse)?;
        let definition =
            leaf.event.get_text("definition").ok_or_else(|| refuse("the leaf has no definition".into()))?;
        let no_longer_fits = |e: String| {
            refuse(format!(
                "it no longer fits the catalogue file ({e}): the file was edited under a change made while running; \
                 undo the file edit, or make it with the admin API"
            ))
        };
        catalogue = match leaf.event.kind.as_str() {
            "catalogue.type" => {
                let t: LicenceType = serde_json::from_str(definition).map_err(|e| refuse(e.to_string()))?;
                catalogue.with_type(t)
            }
            "catalogue.item" => {
                let i: ServiceItem = serde_json::from_str(definition).map_err(|e| refuse(e.to_string()))?;
                catalogue.with_item(i)
            }
            other => return Err(refuse(format!("the leaf is a {other}, not a catalogue change"))),
        }
        .map_err(|e| no_longer_fits(e.to_string()))?;
    }
    Ok(catalogue)
}

impl Vault {
    /// `PUT /v1/admin/licence-types/{code}` and `PUT /v1/admin/service-items/{code}`: puts
    /// `definition` in place under `code`.
    pub async fn put_definition(
        self: &Arc<Self>,
        client: &Client,
        code: &str,
        definition: Definition,
    ) -> Result<CatalogueChange, VaultError> {
        if definition.code() != code {
            return Err(VaultError::InvalidCatalogue(format!(
                "the body's code {} is not the path's {code}",
                definition.code()
            )));
        }
        self.change_catalogue(client, definition).await
    }

    /// Checks, logs, stores and swaps in one change, one change at a time (in a task of its
    /// own, so a caller that goes away cannot leave it half done).
    async fn change_catalogue(
        self: &Arc<Self>,
        client: &Client,
        change: Definition,
    ) -> Result<CatalogueChange, VaultError> {
        if client.role != Role::Admin {
            return Err(VaultError::Forbidden("only an administrator changes the catalogue".into()));
        }
        let actor = client.id.clone();
        self.serially(
            |v| &v.catalogue_changes,
            "catalogue change",
            |vault| async move {
                // The definition logged is the one the catalogue keeps, so a replay at start-up
                // gives the same catalogue.
                let (next, kept, unchanged) = change.apply(&vault.catalogue())?;
                if unchanged {
                    return Ok(CatalogueChange { log_index: None, definition: kept });
                }
                let (kind, code, text) = (kept.kind(), kept.code().to_string(), kept.to_json()?);
                if text.len() > MAX_DEFINITION {
                    return Err(VaultError::InvalidCatalogue(format!(
                        "the definition of {code} is {} bytes of JSON; at most {MAX_DEFINITION} go into the log",
                        text.len()
                    )));
                }
                let (index, _) = vault
                    .seq
                    .submit(move |tx| {
                        let index = tx.append(
                            Event::new(kind)
                                .text("code", code.as_str())
                                .bytes("sha256", &sha256(text.as_bytes()))
                                .text("definition", text)
                                .text("actor", actor.as_str()),
                        );
                        tx.put(Cf::Meta, crate::store::keys::catalogue_change(index), Vec::new());
                        Ok::<_, VaultError>(index)
                    })
                    .await?;
                let index = index?;
                *vault.catalogue.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(next);
                Ok(CatalogueChange { log_index: Some(index), definition: kept })
            },
        )
        .await
    }
}
