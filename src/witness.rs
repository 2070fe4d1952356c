//! Witnesses against split views (spec/formats.md §14): `licvault witness serve`, a
//! c2sp.org/tlog-witness that cosigns a log's checkpoint only when it is consistent with the last
//! one it cosigned, and the vault's side, which submits its newest checkpoint to the witnesses it
//! is configured with and keeps the newest one they cosigned.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use crate::log::cosign::{cosign, AddCheckpoint, WitnessKey};
use crate::log::merkle::{empty_root, verify_consistency, Hash};
use crate::log::note::{Checkpoint, NoteSigner, Verifier};

/// Why a witness refuses a checkpoint (c2sp.org/tlog-witness status codes).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// 400.
    #[error("{0}")]
    Malformed(String),
    /// 404: a log this witness does not know.
    #[error("unknown log {0}")]
    UnknownLog(String),
    /// 403: the log's signature does not verify.
    #[error("the checkpoint is not signed by the log's key: {0}")]
    Signature(String),
    /// 409: `old` is not the size this witness last cosigned (which it answers).
    #[error("old size {old} is not the witness's {latest}")]
    OldSize { old: u64, latest: u64 },
    /// 422: the checkpoint is not consistent with the one cosigned before: a split view.
    #[error("not consistent with the checkpoint cosigned at size {0}: {1}")]
    Inconsistent(u64, String),
    /// 500: the witness could not keep its state.
    #[error("{0}")]
    Storage(String),
}

/// What a witness remembers of a log: the last checkpoint it cosigned.
#[derive(serde::Serialize, serde::Deserialize, Clone)]
struct Latest {
    size: u64,
    root: String,
}

/// A witness: its key, the logs it follows (by origin), and its state directory (one file per
/// log, written whole and synced before a cosignature leaves).
pub struct Witness {
    signer: Box<dyn NoteSigner + Send + Sync>,
    logs: HashMap<String, Verifier>,
    dir: PathBuf,
    /// One checkpoint at a time, so that two requests never both advance from the same size.
    lock: Mutex<()>,
}

impl Witness {
    pub fn new(signer: Box<dyn NoteSigner + Send + Sync>, logs: Vec<Verifier>, dir: &Path) -> std::io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        let logs = logs.into_iter().map(|v| (v.name().to_string(), v)).collect();
        Ok(Self { signer, logs, dir: dir.to_path_buf(), lock: Mutex::new(()) })
    }

    fn state_file(&self, origin: &str) -> PathBuf {
        self.dir.join(format!("{}.json", hex::encode(crate::crypto::sha256(origin.as_bytes()))))
    }

    fn latest(&self, origin: &str) -> Result<(u64, Hash), Refusal> {
        match std::fs::read(self.state_file(origin)) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok((0, empty_root())),
            Err(e) => Err(Refusal::Storage(e.to_string())),
            Ok(b) => {
                let l: Latest = serde_json::from_slice(&b).map_err(|e| Refusal::Storage(e.to_string()))?;
                let root = base64::Engine::decode(&base64::engine::general_purpose::STANDARD, &l.root)
                    .ok()
                    .and_then(|r| Hash::try_from(r.as_slice()).ok())
                    .ok_or_else(|| Refusal::Storage("state file root".into()))?;
                Ok((l.size, root))
            }
        }
    }

    fn keep(&self, origin: &str, size: u64, root: &Hash) -> Result<(), Refusal> {
        let io = |e: std::io::Error| Refusal::Storage(e.to_string());
        let path = self.state_file(origin);
        let tmp = path.with_extension("tmp");
        let l = Latest { size, root: base64::Engine::encode(&base64::engine::general_purpose::STANDARD, root) };
        let mut f = std::fs::File::create(&tmp).map_err(io)?;
        std::io::Write::write_all(&mut f, &serde_json::to_vec(&l).map_err(|e| Refusal::Storage(e.to_string()))?)
            .map_err(io)?;
        f.sync_all().map_err(io)?;
        std::fs::rename(&tmp, &path).map_err(io)?;
        std::fs::File::open(&self.dir).and_then(|d| d.sync_all()).map_err(io)
    }

    /// `POST /add-checkpoint`: the cosignature line, once the checkpoint is signed by a known
    /// log and consistent with the last one cosigned for it, and the new one is kept.
    pub fn add(&self, body: &str) -> Result<String, Refusal> {
        let req = AddCheckpoint::parse(body).map_err(|e| Refusal::Malformed(e.to_string()))?;
        let origin = req.checkpoint.lines().next().unwrap_or_default().to_string();
        let log = self.logs.get(&origin).ok_or_else(|| Refusal::UnknownLog(origin.clone()))?;
        let cp = Checkpoint::open(&req.checkpoint, log).map_err(|e| Refusal::Signature(e.to_string()))?;
        let _one = self.lock.lock().unwrap_or_else(|p| p.into_inner());
        let (latest, latest_root) = self.latest(&origin)?;
        if req.old != latest {
            return Err(Refusal::OldSize { old: req.old, latest });
        }
        if cp.size < latest {
            return Err(Refusal::Malformed(format!("the checkpoint's size {} is below old {latest}", cp.size)));
        }
        let consistent = match latest {
            // Nothing cosigned yet, or the empty tree (whose root is fixed).
            0 if req.proof.is_empty() && (cp.size > 0 || cp.root == empty_root()) => Ok(()),
            0 => Err("a proof from the empty tree must be empty, and the empty tree has one root".to_string()),
            _ if cp.size == latest => {
                if req.proof.is_empty() && cp.root == latest_root {
                    Ok(())
                } else {
                    Err("another root at the same size".to_string())
                }
            }
            _ => verify_consistency(latest, cp.size, &req.proof, &latest_root, &cp.root).map_err(|e| e.to_string()),
        };
        consistent.map_err(|e| Refusal::Inconsistent(latest, e))?;
        self.keep(&origin, cp.size, &cp.root)?;
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
        let text = &req.checkpoint[..req.checkpoint.rfind("\n\n").map_or(0, |i| i + 1)];
        Ok(cosign(text, now, self.signer.as_ref()))
    }
}

/// The cosigning key `licvault witness init` wrote in `dir`, named as its verifier key says
/// (`licvault witness serve`, and a mirror's cosignatures).
pub fn load_signer(dir: &Path) -> Result<crate::crypto::signer::LogSigner, String> {
    let key = crate::crypto::signer::load_private_key(&dir.join("witness.key.pem")).map_err(|e| e.to_string())?;
    let vkey_path = dir.join("witness.vkey");
    let vkey = std::fs::read_to_string(&vkey_path).map_err(|e| format!("reading {}: {e}", vkey_path.display()))?;
    let name = vkey.split('+').next().unwrap_or_default().to_string();
    Ok(crate::crypto::signer::LogSigner::new(key, name))
}

/// A witness the vault submits to: where it is, and its key.
#[derive(Debug, Clone)]
pub struct Target {
    pub url: String,
    pub key: WitnessKey,
}

impl std::str::FromStr for Target {
    type Err = String;

    /// `URL=VKEY`, e.g. `http://witness.example:9090=witness.example/w1+1a2b3c4d+BA…`.
    fn from_str(s: &str) -> Result<Self, String> {
        let (url, key) = s.split_once('=').ok_or("a witness is URL=VKEY")?;
        Ok(Self { url: url.trim_end_matches('/').to_string(), key: WitnessKey::parse(key).map_err(|e| e.to_string())? })
    }
}

/// The vault's side: which sizes each witness has cosigned, and the newest checkpoint that
/// `quorum` of them cosigned (served by `GET /v1/log/checkpoint`).
pub struct Cosigner {
    targets: Vec<Target>,
    quorum: usize,
    /// Per witness, the size it last cosigned (its `old` for the next request).
    sizes: Mutex<Vec<u64>>,
    cosigned: Mutex<Option<Arc<String>>>,
    http: reqwest::Client,
}

impl Cosigner {
    /// `quorum` of `targets` (distinct keys) must cosign; `kept` is the cosigned checkpoint the
    /// vault kept last (`Vault::kept_cosigned`).
    pub fn new(targets: Vec<Target>, quorum: usize, kept: Option<String>) -> Result<Self, String> {
        let n = targets.len();
        for (i, t) in targets.iter().enumerate() {
            if targets[..i].iter().any(|o| o.key.name() == t.key.name()) {
                return Err(format!("witness {} is named twice", t.key.name()));
            }
        }
        if quorum == 0 || quorum > n {
            return Err(format!("a quorum of {quorum} out of {n} witnesses"));
        }
        let http = reqwest::Client::builder().timeout(std::time::Duration::from_secs(10)).build().unwrap_or_default();
        let cosigned = Mutex::new(kept.map(Arc::new));
        Ok(Self { targets, quorum, sizes: Mutex::new(vec![0; n]), cosigned, http })
    }

    /// The newest checkpoint with at least `quorum` cosignatures, if any yet.
    pub fn cosigned(&self) -> Option<Arc<String>> {
        self.cosigned.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Submits `note` (the vault's newest checkpoint, at `size`) to every witness, each with the
    /// consistency proof from the size it last cosigned (`proof(old)`); keeps it, with the
    /// cosignatures, when `quorum` of them cosign. A witness that refuses is logged and left at
    /// its size: a split view is never cosigned, and the last cosigned checkpoint stays served.
    /// Returns how many cosigned, and the cosigned checkpoint when a quorum did.
    pub async fn round(
        &self,
        note: &str,
        size: u64,
        proof: impl Fn(u64) -> Option<Vec<Hash>>,
    ) -> (usize, Option<Arc<String>>) {
        let mut lines = String::new();
        let mut got = 0;
        for (i, t) in self.targets.iter().enumerate() {
            let old = self.sizes.lock().unwrap_or_else(|p| p.into_inner())[i];
            if old > size {
                continue;
            }
            match self.submit(t, old, note, size, &proof).await {
                Ok(line) if t.key.cosigned(&format!("{note}{line}")).is_some() => {
                    self.sizes.lock().unwrap_or_else(|p| p.into_inner())[i] = size;
                    lines.push_str(&line);
                    got += 1;
                }
                Ok(_) => tracing::warn!(witness = %t.url, "a witness answered a cosignature that does not verify"),
                Err(e) => tracing::warn!(witness = %t.url, error = %e, "witness refused the checkpoint"),
            }
        }
        if got >= self.quorum {
            let note = Arc::new(format!("{note}{lines}"));
            *self.cosigned.lock().unwrap_or_else(|p| p.into_inner()) = Some(note.clone());
            return (got, Some(note));
        }
        (got, None)
    }

    async fn submit(
        &self,
        t: &Target,
        old: u64,
        note: &str,
        size: u64,
        proof: &impl Fn(u64) -> Option<Vec<Hash>>,
    ) -> Result<String, String> {
        let mut old = old;
        // A witness that knows another size says which (409): one retry from there.
        for _ in 0..2 {
            let proof = if old == 0 || old == size { Vec::new() } else { proof(old).ok_or("no proof")? };
            let body = AddCheckpoint { old, proof, checkpoint: note.to_string() }.to_text();
            let res = self
                .http
                .post(format!("{}/add-checkpoint", t.url))
                .body(body)
                .send()
                .await
                .map_err(|e| e.to_string())?;
            let status = res.status().as_u16();
            let text = res.text().await.map_err(|e| e.to_string())?;
            match status {
                200 => return Ok(text),
                409 => {
                    let latest: u64 = text.trim().parse().map_err(|_| format!("409 without a size: {text}"))?;
                    if latest > size {
                        return Err(format!("the witness has size {latest}, above ours ({size})"));
                    }
                    old = latest;
                }
                _ => return Err(format!("{status}: {}", text.trim())),
            }
        }
        Err("the witness's size keeps changing".into())
    }
}

/// Every `interval`, submits the vault's newest checkpoint, when it has grown, to the witnesses.
pub async fn cosign_forever(vault: Arc<crate::vault::Vault>, cosigner: Arc<Cosigner>, interval: std::time::Duration) {
    let mut submitted = None;
    loop {
        let head = vault.head();
        if submitted != Some(head.size) {
            let size = head.size;
            let proof = |old: u64| vault.consistency(old, Some(size)).ok().map(|p| p.hashes);
            let (got, cosigned) = cosigner.round(&head.checkpoint, size, proof).await;
            if let Some(note) = cosigned {
                if let Err(e) = vault.keep_cosigned(note.to_string()).await {
                    tracing::warn!(error = %e, "the cosigned checkpoint was not kept");
                }
            }
            // Tried again next time unless every witness cosigned.
            if got == cosigner.targets.len() {
                submitted = Some(size);
            }
        }
        tokio::time::sleep(interval).await;
    }
}
