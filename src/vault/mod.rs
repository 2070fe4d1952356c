//! The application service: issue, change status, renew, read, verify, prove. The one
//! orchestrator: it checks requests against the catalogue and the caller, signs documents, and
//! hands every state change to the sequencer. It never touches HTTP or RocksDB directly.

mod annotated;
pub mod audit;
pub mod catalogue;
mod clients;
mod error;
mod issue;
pub mod keys;
pub mod links;
pub mod listing;
pub mod lookup;
mod pilot;
pub mod presentations;
pub mod records;
mod status;
pub mod status_lists;
pub mod transfers;
pub mod usage;
pub mod verify;

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, RwLock};

pub use clients::TokenRefusal;
pub use error::VaultError;
pub use issue::{IssueRequest, Issued, RenewRequest};
pub use pilot::PilotOverride;
pub use records::{Client, LicenceRecord, Role};
pub use status::{rfc3339_ms, rfc3339_s, ChangeRequest, HistoryEntry, StatusChanged};
pub use verify::{Verdict, VerdictKind, VerifyStats};

use crate::crypto::keygen::DepartmentSpec;
use crate::crypto::signer::load_private_key;
use crate::crypto::{sha256, Committer, LogSigner};
use crate::domain::{Catalogue, Disclosure, Licence, LicenceId};
use crate::log::leaf::{Event, Leaf};
use crate::log::merkle::{inclusion_proof, Hash};
use crate::log::note::receipt;
use crate::log::sequencer::{Head, Sequencer};
use crate::store::{Cf, Store};

/// A licence as stored: decoded, its record (checked against the log), its signed document and
/// the salted disclosures of its personal values.
pub struct Stored {
    pub licence: Licence,
    pub record: LicenceRecord,
    pub document: Vec<u8>,
    pub disclosures: Vec<Disclosure>,
}

impl Stored {
    /// The disclosures named by `keys` (`holder.id`, `co_holders[N].id`, a field's name), each
    /// once, in key order; 400 `unknown_disclosure` for a key the licence has not.
    pub fn choose<'k>(&self, keys: impl IntoIterator<Item = &'k str>) -> Result<Vec<&Disclosure>, VaultError> {
        let mut chosen: Vec<&Disclosure> = Vec::new();
        for key in keys {
            let d =
                self.disclosures.iter().find(|d| d.key == crate::domain::DisclosureKey::from_label(key)).ok_or_else(
                    || {
                        let have: Vec<String> = self.disclosures.iter().map(|d| d.key.label()).collect();
                        VaultError::UnknownDisclosure(format!(
                            "{} has no disclosure {key:?}; it has {}",
                            self.licence.id,
                            if have.is_empty() { "none".to_string() } else { have.join(", ") }
                        ))
                    },
                )?;
            if !chosen.contains(&d) {
                chosen.push(d);
            }
        }
        // In key order, whatever the order asked: one set of disclosures, one payload.
        chosen.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(chosen)
    }
}

/// Everything the vault is made of, loaded from `keys/` and `fixtures/`.
pub struct Parts {
    pub store: Arc<dyn Store>,
    pub catalogue: Catalogue,
    /// SHA-256 of the catalogue file: a changed catalogue is logged at start-up.
    pub catalogue_sha256: Hash,
    pub keyring: keys::Keyring,
    /// Where the keyring was loaded from (for reloads).
    pub keys_dir: Option<std::path::PathBuf>,
    pub departments: Vec<DepartmentSpec>,
    pub log_signer: LogSigner,
    pub committer: Committer,
    /// Newest leaves whose hash chain is re-checked at start (`--check-tail`).
    pub tail_check: u64,
    /// The platform's annotation key (`annotation.key.pem`): signs annotated copies. Without
    /// it, annotated copies answer 503 `no_annotation_key`.
    pub annotation: Option<crate::crypto::signer::Ed25519Signer>,
}

#[derive(Debug, serde::Deserialize)]
struct DepartmentsFile {
    log_origin: String,
    departments: Vec<DepartmentSpec>,
}

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("{path}: {why}")]
    File { path: String, why: String },
    #[error(transparent)]
    Trust(#[from] crate::crypto::TrustError),
    #[error(transparent)]
    Crypto(#[from] crate::crypto::CryptoError),
}

impl From<LoadError> for VaultError {
    fn from(e: LoadError) -> Self {
        VaultError::KeysInvalid(e.to_string())
    }
}

/// The holder-commitment key of KEYS/commitment.key (private: mode 0600).
pub fn load_committer(keys: &Path) -> Result<Committer, LoadError> {
    let path = keys.join("commitment.key");
    crate::crypto::signer::check_private_mode(&path)?;
    let text = std::fs::read_to_string(&path)
        .map_err(|e| LoadError::File { path: path.display().to_string(), why: e.to_string() })?;
    let secret: [u8; 32] = hex::decode(text.trim())
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| LoadError::File { path: path.display().to_string(), why: "expected 64 hex digits".into() })?;
    Ok(Committer::new(secret))
}

impl Parts {
    /// Loads keys and certificates from `keys` and the catalogue and departments from `fixtures`.
    /// Any bad chain, unreadable or group/world-readable key stops here with a message.
    pub fn load(store: Arc<dyn Store>, keys: &Path, fixtures: &Path) -> Result<Self, LoadError> {
        let read = |p: &Path| {
            std::fs::read_to_string(p)
                .map_err(|e| LoadError::File { path: p.display().to_string(), why: e.to_string() })
        };
        let cat_path = fixtures.join("catalogue.json");
        let cat_json = read(&cat_path)?;
        let catalogue = Catalogue::from_json(&cat_json)
            .map_err(|e| LoadError::File { path: cat_path.display().to_string(), why: e.to_string() })?;
        let dep_path = fixtures.join("departments.json");
        let deps: DepartmentsFile = serde_json::from_str(&read(&dep_path)?)
            .map_err(|e| LoadError::File { path: dep_path.display().to_string(), why: e.to_string() })?;
        let keyring = keys::Keyring::load(keys)?;
        let log_signer = LogSigner::new(load_private_key(&keys.join("log.key.pem"))?, deps.log_origin);
        let committer = load_committer(keys)?;
        let annotation_path = keys.join("annotation.key.pem");
        let annotation = if annotation_path.exists() {
            Some(crate::crypto::signer::Ed25519Signer::annotation(load_private_key(&annotation_path)?))
        } else {
            tracing::warn!(path = %annotation_path.display(), "no annotation key: annotated copies are refused (licvault keys init makes one)");
            None
        };
        Ok(Self {
            annotation,
            store,
            catalogue,
            catalogue_sha256: sha256(cat_json.as_bytes()),
            keyring,
            keys_dir: Some(keys.to_path_buf()),
            departments: deps.departments,
            log_signer,
            committer,
            tail_check: crate::log::sequencer::DEFAULT_TAIL_CHECK,
        })
    }
}

impl Parts {
    /// Which of the loaded keys belong to the public development key set (`keys/`), named for
    /// the operator; empty for a real deployment.
    pub fn development_keys(&self) -> Vec<String> {
        use crate::crypto::devkeys::is_development_key;
        let mut found: Vec<String> = self
            .keyring
            .public_keys()
            .into_iter()
            .filter(|(_, k)| is_development_key(k))
            .map(|(what, _)| what)
            .collect();
        if is_development_key(&self.log_signer.public_key()) {
            found.push("log.key.pem".into());
        }
        if is_development_key(&self.committer.fingerprint()) {
            found.push("commitment.key".into());
        }
        if self.annotation.as_ref().is_some_and(|a| is_development_key(&a.verifying_key().to_bytes())) {
            found.push("annotation.key.pem".into());
        }
        found.sort();
        found
    }
}

pub struct Vault {
    store: Arc<dyn Store>,
    seq: Sequencer,
    /// Swapped whole by the admin catalogue endpoints (`catalogue.rs`).
    catalogue: RwLock<Arc<Catalogue>>,
    keys: RwLock<Arc<keys::Keyring>>,
    keys_dir: Option<std::path::PathBuf>,
    departments: HashMap<String, DepartmentSpec>,
    committer: Committer,
    log_public_key: [u8; 32],
    origin: String,
    serial: AtomicU64,
    clients: RwLock<HashMap<Hash, Client>>,
    last_probe: std::sync::Mutex<Option<std::time::Instant>>,
    /// Serialises changes to clients (disable and rotate read the table, then write it).
    client_changes: tokio::sync::Mutex<()>,
    /// One key reload at a time (admin call and SIGHUP).
    key_reloads: tokio::sync::Mutex<()>,
    /// Signs annotated copies (`annotated.rs`).
    annotation: Option<crate::crypto::signer::Ed25519Signer>,
    /// Every annotation key the log has recorded, by kid: verifies copies, old ones too.
    annotation_keys: RwLock<HashMap<[u8; 8], ed25519_dalek::VerifyingKey>>,
    /// One catalogue change at a time (`catalogue.rs`).
    catalogue_changes: tokio::sync::Mutex<()>,
    /// Random indexes in the status lists (`status_lists.rs`).
    status_alloc: std::sync::Mutex<status_lists::Allocator>,
    status_cache: status_lists::ListCache,
    /// `--verify-by-hash` (`verify.rs`), and how many documents it recognised.
    verify_by_hash: std::sync::atomic::AtomicBool,
    by_hash: AtomicU64,
    /// `--qr-format`: the payload `Vault::qr_payload` makes.
    qr_plain: std::sync::atomic::AtomicBool,
    /// Stored documents decoded, by their SHA-256 (`Vault::stored`).
    decoded: quick_cache::sync::Cache<Hash, Arc<Decoded>, DecodedWeight>,
    /// Presented payloads recognised by hash, by their text (`verify.rs`): decoded and parsed
    /// once while they stay in it.
    memo: verify::Memo,
    /// Licence records found bound to the log, by the SHA-256 of their stored bytes
    /// (`Vault::record`).
    bound: quick_cache::sync::Cache<Hash, Arc<LicenceRecord>>,
    /// Transfers of management, in log order (`transfers.rs`). A transfer holds the gate for
    /// writing from its checks to its list update; a change to one licence holds it for reading
    /// from its manager check to its commit, so no change is sequenced after a transfer that
    /// took the licence away from its department.
    transfers: RwLock<Vec<transfers::Transfer>>,
    transfer_gate: tokio::sync::RwLock<()>,
    /// Full tiles (`audit.rs`), which never change, by (level or entries, index).
    tiles: quick_cache::sync::Cache<(Option<u8>, u64), Arc<[u8]>, audit::TileWeight>,
    /// Signed checkpoints by size, as read from the store (they never change): proofs and
    /// witnesses ask for the same few sizes again and again.
    checkpoints: quick_cache::sync::Cache<u64, Arc<str>>,
    /// Other platforms' logs this node mirrors (`--mirrors`): `POST /v1/verify` answers their
    /// documents from them.
    mirrors: std::sync::OnceLock<Arc<crate::mirror::Mirrors>>,
}

/// A stored document decoded: what [`Vault::stored`] keeps by the document's hash. A document
/// never changes once logged, so an entry is right for as long as a record names its hash; the
/// record itself (whose status changes) is read and checked against the log on every call.
pub struct Decoded {
    pub licence: Licence,
    pub document: Vec<u8>,
    pub disclosures: Vec<Disclosure>,
}

/// How many records [`Vault::record`] remembers as bound to the log: about 400 bytes each.
const BOUND_CACHE: usize = 65_536;

/// Bytes of decoded documents [`Vault::stored`] keeps (by [`DecodedWeight`]): some 20,000
/// licences of a few KiB, a counter's working set (lookups, checks, wallets) many times over,
/// and fewer when issuers send long documents (up to 64 KiB each).
const DECODED_CACHE_BYTES: u64 = 64 << 20;

/// What a decoded document holds in memory, near enough: its bytes, the decoded licence (its text
/// again, with the structures around it) and its disclosures.
#[derive(Clone)]
struct DecodedWeight;

impl quick_cache::Weighter<Hash, Arc<Decoded>> for DecodedWeight {
    fn weight(&self, _: &Hash, d: &Arc<Decoded>) -> u64 {
        let disclosures: usize = d.disclosures.iter().map(|x| x.bytes().len() * 2 + 64).sum();
        (d.document.len() * 2 + disclosures + 1024) as u64
    }
}

const META_SERIAL: &[u8] = b"serial";
const META_CATALOGUE: &[u8] = b"catalogue";
pub(crate) const META_TRUST: &[u8] = b"trust";
/// Index of the `log.keys` leaf (u64 BE).
const META_KEYS: &[u8] = b"keys-leaf";
/// Written by a readiness probe after a failed write; read by nothing.
const META_PROBE: &[u8] = b"ready-probe";

pub fn unix_now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}

impl Vault {
    /// Starts the sequencer on `parts.store`, replays the logged catalogue changes over the
    /// catalogue file, loads the logged annotation keys, checks the tail and the keys, and logs a
    /// catalogue file, trust list or annotation key that differs from the ones last logged.
    pub async fn start(parts: Parts) -> Result<Arc<Self>, VaultError> {
        let Parts {
            store,
            catalogue,
            catalogue_sha256,
            keyring,
            keys_dir,
            departments,
            log_signer,
            committer,
            tail_check,
            annotation,
        } = parts;
        let trust_hash = keyring.trust_hash();
        let log_public_key = log_signer.public_key();
        let origin = log_signer.name().to_string();
        let seq = Sequencer::start(store.clone(), Arc::new(log_signer), tail_check)?;
        let catalogue = catalogue::with_logged_changes(catalogue, store.as_ref(), &seq.head())?;
        let annotation_keys = annotated::logged_annotation_keys(store.as_ref())?;
        let transfers = transfers::logged_transfers(store.as_ref(), &seq.head())?;
        let status_alloc = std::sync::Mutex::new(status_lists::Allocator::load(store.as_ref())?);
        let serial =
            store.get(Cf::Meta, META_SERIAL)?.and_then(|v| v.try_into().ok()).map(u64::from_be_bytes).unwrap_or(0);
        let mut clients = HashMap::new();
        for (k, v) in store.scan_prefix(Cf::Clients, b"", usize::MAX)? {
            let hash: Hash = k.try_into().map_err(|_| VaultError::Internal("client key".into()))?;
            let client: Client = serde_json::from_slice(&v).map_err(|e| VaultError::Internal(e.to_string()))?;
            clients.insert(hash, client);
        }
        let vault = Arc::new(Self {
            store,
            seq,
            catalogue: RwLock::new(Arc::new(catalogue)),
            keys: RwLock::new(Arc::new(keyring)),
            keys_dir,
            departments: departments.into_iter().map(|d| (d.uscc.clone(), d)).collect(),
            committer,
            log_public_key,
            origin,
            serial: AtomicU64::new(serial),
            clients: RwLock::new(clients),
            last_probe: std::sync::Mutex::new(None),
            client_changes: tokio::sync::Mutex::new(()),
            key_reloads: tokio::sync::Mutex::new(()),
            annotation,
            annotation_keys: RwLock::new(annotation_keys),
            catalogue_changes: tokio::sync::Mutex::new(()),
            status_alloc,
            status_cache: Default::default(),
            verify_by_hash: std::sync::atomic::AtomicBool::new(true),
            by_hash: AtomicU64::new(0),
            qr_plain: std::sync::atomic::AtomicBool::new(false),
            decoded: quick_cache::sync::Cache::with_weighter(16_384, DECODED_CACHE_BYTES, DecodedWeight),
            memo: verify::Memo::new(),
            bound: quick_cache::sync::Cache::new(BOUND_CACHE),
            tiles: quick_cache::sync::Cache::with_weighter(8_192, audit::TILE_CACHE_BYTES, audit::TileWeight),
            checkpoints: quick_cache::sync::Cache::new(4_096),
            mirrors: std::sync::OnceLock::new(),
            transfers: RwLock::new(transfers),
            transfer_gate: tokio::sync::RwLock::new(()),
        });
        vault.check_tail_records()?;
        vault.check_keys().await?;
        vault.log_if_changed(META_CATALOGUE, catalogue_sha256, "catalogue.loaded").await?;
        vault.log_if_changed(META_TRUST, trust_hash, "trust.loaded").await?;
        vault.log_annotation_key().await?;
        vault.build_listing()?;
        Ok(vault)
    }

    /// The log key and the commitment key must be the ones the log recorded when it was created
    /// (a `log.keys` leaf written at the first start; for a log made before that leaf existed, at
    /// the first start since). The leaf is read through the signed tree, so editing it, or the
    /// pointer to it, is noticed too. A changed commitment key would silently split every holder
    /// index; a changed log key would fork the log's identity.
    async fn check_keys(&self) -> Result<(), VaultError> {
        let vkey = self.log_verifier_key();
        let fingerprint = self.committer.fingerprint();
        let pointer = match self.store.get(Cf::Meta, META_KEYS)? {
            Some(v) => Some(
                v.try_into()
                    .map(u64::from_be_bytes)
                    .map_err(|_| VaultError::KeysChanged("meta keys-leaf is not an index".into()))?,
            ),
            // No pointer on a log that has leaves: it was deleted, or the log predates the
            // `log.keys` leaf. Look for the leaf rather than trust the absence.
            None if self.head().size > 0 => self.find_keys_leaf()?,
            None => None,
        };
        if let Some(index) = pointer {
            let leaf = self.proven_leaf(index).ok_or_else(|| {
                VaultError::KeysChanged(format!(
                    "the log.keys leaf {index} is missing or not in the signed tree; run licvault check"
                ))
            })?;
            if leaf.event.kind != "log.keys" {
                return Err(VaultError::KeysChanged(format!("leaf {index} is not the log.keys leaf")));
            }
            if leaf.event.get_text("log_key") != Some(vkey.as_str()) {
                return Err(VaultError::KeysChanged(format!(
                    "the log key is {vkey} but this log was created with {} (leaf {index}); refusing to start",
                    leaf.event.get_text("log_key").unwrap_or("?")
                )));
            }
            if leaf.event.get_bytes("commitment_key") != Some(&fingerprint[..]) {
                return Err(VaultError::KeysChanged(format!(
                    "the commitment key (commitment.key, fingerprint {}) is not the one this log was created with \
                     (fingerprint {}, leaf {index}); holder commitments would not match; refusing to start",
                    hex::encode(&fingerprint[..8]),
                    hex::encode(
                        leaf.event.get_bytes("commitment_key").unwrap_or_default().get(..8).unwrap_or_default()
                    )
                )));
            }
            if self.store.get(Cf::Meta, META_KEYS)?.is_none() {
                let (r, _) = self
                    .seq
                    .submit(move |tx| {
                        tx.put(Cf::Meta, META_KEYS.to_vec(), index.to_be_bytes().to_vec());
                        Ok::<_, VaultError>(())
                    })
                    .await?;
                r?;
            }
            return Ok(());
        }
        let (r, _) = self
            .seq
            .submit(move |tx| {
                let index =
                    tx.append(Event::new("log.keys").text("log_key", vkey).bytes("commitment_key", &fingerprint));
                tx.put(Cf::Meta, META_KEYS.to_vec(), index.to_be_bytes().to_vec());
                Ok::<_, VaultError>(())
            })
            .await?;
        r
    }

    /// The leaf at `index`, if it is proven (RFC 9162 inclusion proof) to be in the tree of the
    /// signed head: then neither the leaf nor the stored nodes were edited.
    fn proven_leaf(&self, index: u64) -> Option<Leaf> {
        prove_leaf(self.store.as_ref(), &self.head(), index).ok()
    }

    /// Scans the whole log for the first `log.keys` leaf (only when its pointer is missing).
    fn find_keys_leaf(&self) -> Result<Option<u64>, VaultError> {
        tracing::warn!("the pointer to the log.keys leaf is missing: scanning the log for it");
        for item in crate::store::stored_leaves(self.store.as_ref(), 0, self.head().size) {
            let (index, bytes) = item?;
            if Leaf::decode(&bytes).is_ok_and(|l| l.event.kind == "log.keys") {
                return Ok(Some(index));
            }
        }
        Ok(None)
    }

    /// The records of the licences that the newest `tail` leaves are about must name the newest
    /// of those leaves as their last: a record rolled back to an earlier, self-consistent state
    /// is refused at start (older ones: `licvault check`).
    fn check_tail_records(&self) -> Result<(), VaultError> {
        // The sequencer read and checked those leaves at its start; it hands over what they
        // are about rather than have them read again.
        for (id, index) in self.seq.take_tail_licences() {
            let rec = self
                .store
                .get(Cf::Licences, id.as_bytes())?
                .and_then(|v| serde_json::from_slice::<LicenceRecord>(&v).ok());
            match rec {
                Some(r) if r.last_index == index => {}
                Some(r) => {
                    return Err(VaultError::KeysChanged(format!(
                        "the record of {id} names leaf {} as its last, but leaf {index} is about it: the record was \
                         rolled back; refusing to start (licvault check compares every record)",
                        r.last_index
                    )))
                }
                None => {
                    return Err(VaultError::KeysChanged(format!(
                        "leaf {index} is about {id}, which has no record; refusing to start"
                    )))
                }
            }
        }
        Ok(())
    }

    pub(crate) async fn log_if_changed(
        &self,
        key: &'static [u8],
        hash: Hash,
        kind: &'static str,
    ) -> Result<(), VaultError> {
        if self.store.get(Cf::Meta, key)?.as_deref() == Some(&hash[..]) {
            return Ok(());
        }
        let (r, _) = self
            .seq
            .submit(move |tx| {
                tx.append(Event::new(kind).bytes("sha256", &hash));
                tx.put(Cf::Meta, key.to_vec(), hash.to_vec());
                Ok::<_, VaultError>(())
            })
            .await?;
        r
    }

    /// The catalogue now (an administrator may replace a type or an item while running).
    pub fn catalogue(&self) -> Arc<Catalogue> {
        self.catalogue.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub fn head(&self) -> Arc<Head> {
        self.seq.head()
    }

    /// The log's single writer, for tools that append leaves of their own (`benches/audit.rs`
    /// fills a log with a million through it).
    pub fn sequencer(&self) -> &Sequencer {
        &self.seq
    }

    /// The log's origin (its checkpoints' first line): the deployment's stable name.
    pub fn log_origin(&self) -> &str {
        &self.origin
    }

    /// The log's verifier key in C2SP `name+keyid+base64` form.
    pub fn log_verifier_key(&self) -> String {
        crate::log::note::verifier_key(&self.origin, &self.log_public_key)
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    pub fn department_name(&self, uscc: &str) -> Option<&str> {
        self.departments.get(uscc).map(|d| d.name.as_str())
    }

    /// The licence record of `id`, checked against the log ([`records::bind_to_log`]): a
    /// record that disagrees with its leaves is never answered from (503 `store_inconsistent`).
    pub fn record(&self, id: &LicenceId) -> Result<Option<LicenceRecord>, VaultError> {
        let key = id.to_string();
        let Some(v) = self.store.get(Cf::Licences, key.as_bytes())? else { return Ok(None) };
        // Leaves never change once written, so bytes found bound once stay bound; any other
        // bytes under this key (a status change, or an edit of the row) are checked afresh.
        let hash = sha256(&v);
        if let Some(rec) = self.bound.get(&hash) {
            if rec.id == key {
                return Ok(Some(LicenceRecord::clone(&rec)));
            }
        }
        let leaf = |i: u64| self.store.get(Cf::Leaves, &i.to_be_bytes()).map_err(|e| e.to_string());
        let rec = issue::bound_record(&key, &v, leaf)?;
        self.bound.insert(hash, Arc::new(rec.clone()));
        Ok(Some(rec))
    }

    pub fn document(&self, id: &LicenceId) -> Result<Option<Vec<u8>>, VaultError> {
        Ok(self.store.get(Cf::Docs, doc_key(&id.to_string()).as_slice())?)
    }

    /// The salted disclosures of the stored document of `id` (none for the first format).
    fn salted_disclosures(&self, id: &LicenceId) -> Result<Vec<Disclosure>, VaultError> {
        let Some(v) = self.store.get(Cf::Docs, &crate::store::keys::disclosures(&id.to_string()))? else {
            return Ok(Vec::new());
        };
        parse_disclosures(&v).map_err(|e| issue::inconsistent(format!("the disclosures of {id}: {e}")))
    }

    /// The signed licence and its record, parsed from the stored document and its disclosures.
    pub fn licence(&self, id: &LicenceId) -> Result<(Licence, LicenceRecord, Vec<u8>), VaultError> {
        let Stored { licence, record, document, .. } = self.stored(id)?;
        Ok((licence, record, document))
    }

    /// [`Vault::licence`] with the disclosures it was decoded with, for the issuer and the holder.
    pub fn stored(&self, id: &LicenceId) -> Result<Stored, VaultError> {
        let (decoded, record) = self.shared(id)?;
        Ok(Stored {
            licence: decoded.licence.clone(),
            record,
            document: decoded.document.clone(),
            disclosures: decoded.disclosures.clone(),
        })
    }

    /// [`Vault::stored`] without copying the decoded document out of the cache (a read that
    /// only shows it: a lookup, a check, a wallet).
    pub fn shared(&self, id: &LicenceId) -> Result<(Arc<Decoded>, LicenceRecord), VaultError> {
        let record = self.record(id)?.ok_or_else(|| VaultError::NotFound(id.to_string()))?;
        let mut hash: Hash = [0; 32];
        hex::decode_to_slice(&record.doc_sha256, &mut hash)
            .map_err(|_| issue::inconsistent(format!("the record of {id} names no document hash")))?;
        // The record is the log's (checked above); a decoded entry is found only by the hash the
        // record names, so a changed document row is read (and refused) as before.
        let decoded = match self.decoded.get(&hash) {
            Some(d) if d.licence.id == *id => d,
            _ => {
                let d = Arc::new(self.decode_stored(id, &hash)?);
                self.decoded.insert(hash, d.clone());
                d
            }
        };
        Ok((decoded, record))
    }

    /// The stored document of `id`, which must hash to `hash` (its record's), decoded with its
    /// disclosures.
    fn decode_stored(&self, id: &LicenceId, hash: &Hash) -> Result<Decoded, VaultError> {
        let document =
            self.document(id)?.ok_or_else(|| issue::inconsistent(format!("the document of {id} is missing")))?;
        if sha256(&document) != *hash {
            return Err(issue::inconsistent(format!("the stored document of {id} is not the one in the log")));
        }
        // A document whose hash is the log's but that does not parse was logged that way: the
        // store is not what the vault wrote (503 `store_inconsistent`, not a bug of the request).
        let env = crate::crypto::cose::Envelope::parse(&document)
            .map_err(|e| issue::inconsistent(format!("the document of {id} does not parse: {e}")))?;
        // These are the bytes issuance signed and decoded back before committing (their hash is
        // the log's): the determinism check that presented documents get would find nothing.
        let disclosures = self.salted_disclosures(id)?;
        let licence = Licence::from_own(env.payload(), &disclosures)
            .map_err(|e| issue::inconsistent(format!("the document of {id} does not decode: {e}")))?;
        Ok(Decoded { licence, document, disclosures })
    }

    /// The QR payload of a signed document, in the format the server was started with
    /// (`--qr-format`, spec/formats.md §1).
    pub fn qr_payload(&self, document: &[u8]) -> String {
        crate::qr::encode_as(document, self.qr_format())
    }

    pub fn qr_format(&self) -> crate::qr::Format {
        match self.qr_plain.load(std::sync::atomic::Ordering::Relaxed) {
            true => crate::qr::Format::Lv1,
            false => crate::qr::Format::Lv2,
        }
    }

    pub fn set_qr_format(&self, format: crate::qr::Format) {
        self.qr_plain.store(format == crate::qr::Format::Lv1, std::sync::atomic::Ordering::Relaxed);
    }

    pub fn leaf(&self, index: u64) -> Result<Option<Leaf>, VaultError> {
        match self.store.get(Cf::Leaves, &index.to_be_bytes())? {
            None => Ok(None),
            Some(b) => Leaf::decode(&b)
                .map(Some)
                .map_err(|e| issue::inconsistent(format!("leaf {index} does not decode: {e}"))),
        }
    }

    /// A c2sp.org/tlog-proof@v1 receipt for leaf `index` against `head`.
    pub fn receipt(&self, index: u64, head: &Head) -> Result<String, VaultError> {
        let proof =
            inclusion_proof(&self.seq.nodes(), index, head.size).map_err(|e| VaultError::Internal(e.to_string()))?;
        Ok(receipt(index, &proof, &head.checkpoint))
    }

    /// Stops the sequencer (see `Sequencer::close`); call before the process exits.
    /// Stops the sequencer (the batch in progress finishes) and flushes the store, so that the
    /// next start has no write-ahead log to replay.
    pub fn close(&self) {
        self.seq.close();
        if let Err(e) = self.store.flush() {
            tracing::warn!(error = %e, "flushing the store at close failed; the next start replays its write-ahead log");
        }
    }

    /// `Ok` when storage answers reads and the sequencer can commit; else a reason fit for an
    /// unauthenticated caller (the detail goes to the server log). After a failed write this
    /// makes one small synced write (at most one a second) to learn whether the store has
    /// recovered, so readiness comes back by itself once writes succeed again.
    pub async fn readiness(&self) -> Result<(), &'static str> {
        if let Err(e) = self.store.get(Cf::Meta, META_SERIAL) {
            tracing::warn!(error = %e, "not ready: storage does not answer reads");
            return Err("storage does not answer reads");
        }
        use crate::log::sequencer::{SequencerError, Unable};
        const FULL: &str = "storage is full: writes are refused until space is freed";
        // Known without a write: an idle node on a full disk is not ready either.
        if self.store.free_space().is_some_and(|f| f.free < f.reserve) {
            return Err(FULL);
        }
        let why = match self.seq.unable_to_commit() {
            None => return Ok(()),
            Some(why @ (Unable::WriteFailing(_) | Unable::Full(_))) => why,
            Some(why) => {
                tracing::warn!(reason = %why, "not ready");
                return Err("the sequencer has stopped; restart the server");
            }
        };
        let now = std::time::Instant::now();
        {
            let mut last = self.last_probe.lock().unwrap_or_else(|p| p.into_inner());
            if last.is_some_and(|t| now.duration_since(t) < std::time::Duration::from_secs(1)) {
                return Err(if matches!(why, Unable::Full(_)) { FULL } else { "writes are failing" });
            }
            *last = Some(now);
        }
        let probe = self
            .seq
            .submit(|tx| {
                tx.put(Cf::Meta, META_PROBE.to_vec(), tx.time_ms().to_be_bytes().to_vec());
                Ok::<_, VaultError>(())
            })
            .await;
        match probe {
            Ok(_) => Ok(()),
            Err(e) => {
                tracing::warn!(error = %e, before = %why, "not ready: writes are failing");
                Err(if matches!(e, SequencerError::Full(_)) { FULL } else { "writes are failing" })
            }
        }
    }

    /// Runs `work` in a task of its own while holding the mutex `lock` picks: changes of one kind
    /// (clients, keys, the catalogue) happen one at a time, and each completes even if the
    /// caller's future is dropped halfway (an HTTP client that goes away).
    pub(crate) async fn serially<T, F, Fut>(
        self: &Arc<Self>,
        lock: fn(&Vault) -> &tokio::sync::Mutex<()>,
        what: &'static str,
        work: F,
    ) -> Result<T, VaultError>
    where
        T: Send + 'static,
        F: FnOnce(Arc<Self>) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = Result<T, VaultError>> + Send + 'static,
    {
        let vault = self.clone();
        let task = tokio::spawn(async move {
            let _one = lock(&vault).lock().await;
            work(vault.clone()).await
        });
        task.await.map_err(|e| VaultError::Internal(format!("{what}: {e}")))?
    }

    pub fn sequencer_stats(&self) -> &crate::log::sequencer::Stats {
        self.seq.stats()
    }
}

impl Drop for Vault {
    /// The last handle closes the sequencer, so the store (and RocksDB's threads) can shut down
    /// before the process exits.
    fn drop(&mut self) {
        self.seq.close();
    }
}

/// The stored leaf at `index`, proven by an RFC 9162 inclusion proof from the stored tree to be
/// in the tree of `head`, decoded; else why not.
pub(crate) fn prove_leaf(store: &dyn Store, head: &Head, index: u64) -> Result<Leaf, String> {
    let bytes = store.get(Cf::Leaves, &index.to_be_bytes()).map_err(|e| e.to_string())?.ok_or("the leaf is missing")?;
    let proof = inclusion_proof(&crate::store::StoredNodes(store), index, head.size).map_err(|e| e.to_string())?;
    crate::log::merkle::verify_inclusion(&crate::log::merkle::leaf_hash(&bytes), index, head.size, &proof, &head.root)
        .map_err(|_| "the leaf is not in the signed tree (run licvault check)".to_string())?;
    Leaf::decode(&bytes).map_err(|e| e.to_string())
}

/// The stored form of a document's disclosures (`keys::disclosures`): a CBOR array of their bytes.
fn disclosures_value(disclosures: &[Disclosure]) -> Vec<u8> {
    crate::cbor::encode(ciborium::Value::Array(
        disclosures.iter().map(|d| ciborium::Value::Bytes(d.bytes().to_vec())).collect(),
    ))
}

fn parse_disclosures(bytes: &[u8]) -> Result<Vec<Disclosure>, String> {
    match crate::cbor::decode(bytes).map_err(|e| e.to_string())? {
        ciborium::Value::Array(items) => items
            .iter()
            .map(|i| match i {
                ciborium::Value::Bytes(b) => Disclosure::parse(b).map_err(|e| e.to_string()),
                _ => Err("not a byte string".to_string()),
            })
            .collect(),
        _ => Err("not an array".into()),
    }
}

fn doc_key(id: &str) -> Vec<u8> {
    [b"d/".as_slice(), id.as_bytes()].concat()
}
