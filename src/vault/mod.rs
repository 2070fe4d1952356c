//! The application service: issue, change status, renew, read, verify, prove. The one
//! orchestrator: it checks requests against the catalogue and the caller, signs documents, and
//! hands every state change to the sequencer. It never touches HTTP or RocksDB directly.

mod clients;
mod error;
mod issue;
mod pilot;
pub mod records;
mod status;
pub mod verify;

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, RwLock};

pub use error::VaultError;
pub use issue::{IssueRequest, Issued, RenewRequest};
pub use pilot::PilotOverride;
pub use records::{Client, LicenceRecord, Role};
pub use status::{rfc3339_ms, HistoryEntry};
pub use verify::{Verdict, VerdictKind};

use crate::crypto::keygen::DepartmentSpec;
use crate::crypto::signer::load_private_key;
use crate::crypto::{sha256, Committer, Ed25519Signer, LogSigner, TrustList};
use crate::domain::{Catalogue, Licence, LicenceId};
use crate::log::leaf::{Event, Leaf};
use crate::log::merkle::{inclusion_proof, Hash};
use crate::log::note::receipt;
use crate::log::sequencer::{Head, Sequencer};
use crate::store::{Cf, Store};

/// Everything the vault is made of, loaded from `keys/` and `fixtures/`.
pub struct Parts {
    pub store: Arc<dyn Store>,
    pub catalogue: Catalogue,
    /// SHA-256 of the catalogue file: a changed catalogue is logged at start-up.
    pub catalogue_sha256: Hash,
    pub trust: TrustList,
    pub departments: Vec<DepartmentSpec>,
    pub signers: Vec<Ed25519Signer>,
    pub log_signer: LogSigner,
    pub committer: Committer,
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
        let trust = TrustList::load(keys)?;
        let now = unix_now();
        let mut signers = Vec::new();
        for d in &deps.departments {
            let key_path = keys.join("departments").join(format!("{}.key.pem", d.uscc));
            if !key_path.exists() {
                continue; // a department that signs elsewhere: we only verify its documents
            }
            let key = load_private_key(&key_path)?;
            let cert = trust
                .certs_of(&d.uscc)
                .into_iter()
                .find(|c| c.key == key.verifying_key() && c.valid_at(now))
                .ok_or_else(|| LoadError::File {
                    path: key_path.display().to_string(),
                    why: format!("no currently valid certificate for {} matches this key", d.uscc),
                })?;
            signers.push(Ed25519Signer::new(key, &cert.der, d.uscc.clone()));
        }
        let log_signer = LogSigner::new(load_private_key(&keys.join("log.key.pem"))?, deps.log_origin);
        let secret_path = keys.join("commitment.key");
        crate::crypto::signer::check_private_mode(&secret_path)?;
        let secret: [u8; 32] =
            hex::decode(read(&secret_path)?.trim()).ok().and_then(|b| b.try_into().ok()).ok_or_else(|| {
                LoadError::File { path: secret_path.display().to_string(), why: "expected 64 hex digits".into() }
            })?;
        Ok(Self {
            store,
            catalogue,
            catalogue_sha256: sha256(cat_json.as_bytes()),
            trust,
            departments: deps.departments,
            signers,
            log_signer,
            committer: Committer::new(secret),
        })
    }
}

pub struct Vault {
    store: Arc<dyn Store>,
    seq: Sequencer,
    catalogue: Catalogue,
    trust: TrustList,
    departments: HashMap<String, DepartmentSpec>,
    signers: HashMap<String, Ed25519Signer>,
    committer: Committer,
    log_public_key: [u8; 32],
    origin: String,
    serial: AtomicU64,
    clients: RwLock<HashMap<Hash, Client>>,
}

const META_SERIAL: &[u8] = b"serial";
const META_CATALOGUE: &[u8] = b"catalogue";
const META_TRUST: &[u8] = b"trust";

pub fn unix_now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}

impl Vault {
    /// Starts the sequencer on `parts.store` and logs a catalogue or trust list that differs
    /// from the one last logged.
    pub async fn start(parts: Parts) -> Result<Arc<Self>, VaultError> {
        let Parts { store, catalogue, catalogue_sha256, trust, departments, signers, log_signer, committer } = parts;
        let log_public_key = log_signer.public_key();
        let origin = log_signer.name().to_string();
        let seq = Sequencer::start(store.clone(), Arc::new(log_signer))?;
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
            catalogue,
            trust,
            departments: departments.into_iter().map(|d| (d.uscc.clone(), d)).collect(),
            signers: signers.into_iter().map(|s| (s.uscc().to_string(), s)).collect(),
            committer,
            log_public_key,
            origin,
            serial: AtomicU64::new(serial),
            clients: RwLock::new(clients),
        });
        vault.log_if_changed(META_CATALOGUE, catalogue_sha256, "catalogue.loaded").await?;
        let mut kids: Vec<[u8; 8]> = vault.trust.departments().map(|d| d.kid).collect();
        kids.sort();
        let trust_hash = sha256(&[vault.trust.root_der(), &kids.concat()].concat());
        vault.log_if_changed(META_TRUST, trust_hash, "trust.loaded").await?;
        Ok(vault)
    }

    async fn log_if_changed(&self, key: &'static [u8], hash: Hash, kind: &'static str) -> Result<(), VaultError> {
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

    pub fn catalogue(&self) -> &Catalogue {
        &self.catalogue
    }

    pub fn head(&self) -> Arc<Head> {
        self.seq.head()
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

    pub fn record(&self, id: &LicenceId) -> Result<Option<LicenceRecord>, VaultError> {
        match self.store.get(Cf::Licences, id.to_string().as_bytes())? {
            None => Ok(None),
            Some(v) => serde_json::from_slice(&v).map(Some).map_err(|e| VaultError::Internal(e.to_string())),
        }
    }

    pub fn document(&self, id: &LicenceId) -> Result<Option<Vec<u8>>, VaultError> {
        Ok(self.store.get(Cf::Docs, doc_key(&id.to_string()).as_slice())?)
    }

    /// The signed licence and its record, parsed from the stored document.
    pub fn licence(&self, id: &LicenceId) -> Result<(Licence, LicenceRecord, Vec<u8>), VaultError> {
        let record = self.record(id)?.ok_or_else(|| VaultError::NotFound(id.to_string()))?;
        let doc = self.document(id)?.ok_or_else(|| VaultError::Internal(format!("document of {id} missing")))?;
        let env = crate::crypto::cose::Envelope::parse(&doc).map_err(|e| VaultError::Internal(e.to_string()))?;
        let licence = Licence::from_payload(env.payload()).map_err(|e| VaultError::Internal(e.to_string()))?;
        Ok((licence, record, doc))
    }

    pub fn leaf(&self, index: u64) -> Result<Option<Leaf>, VaultError> {
        match self.store.get(Cf::Leaves, &index.to_be_bytes())? {
            None => Ok(None),
            Some(b) => Leaf::decode(&b).map(Some).map_err(|e| VaultError::Internal(e.to_string())),
        }
    }

    /// A c2sp.org/tlog-proof@v1 receipt for leaf `index` against `head`.
    pub fn receipt(&self, index: u64, head: &Head) -> Result<String, VaultError> {
        let proof =
            inclusion_proof(&self.seq.nodes(), index, head.size).map_err(|e| VaultError::Internal(e.to_string()))?;
        Ok(receipt(index, &proof, &head.checkpoint))
    }

    /// Stops the sequencer (see `Sequencer::close`); call before the process exits.
    pub fn close(&self) {
        self.seq.close();
    }

    /// Storage answers reads and the sequencer can write.
    pub fn is_ready(&self) -> bool {
        self.store.get(Cf::Meta, b"size").is_ok() && !self.seq.stats().halted.load(std::sync::atomic::Ordering::SeqCst)
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

fn doc_key(id: &str) -> Vec<u8> {
    [b"d/".as_slice(), id.as_bytes()].concat()
}
