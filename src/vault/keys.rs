//! The vault's keyring: the trust list (root and every department certificate) and the seal keys
//! this node holds. Swapped as a whole on `POST /v1/admin/keys/reload` or SIGHUP, so a department's
//! new certificate and key take effect without a restart, while every certificate loaded before
//! stays: documents signed under old kids keep verifying.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use super::{LoadError, Vault, VaultError};
use crate::crypto::signer::load_private_key;
use crate::crypto::{sha256, Ed25519Signer, TrustList};
use crate::log::merkle::Hash;

/// A seal key with the validity of its certificate.
pub struct Seal {
    signer: Ed25519Signer,
    not_before: i64,
    not_after: i64,
}

/// One seal as `POST /v1/admin/keys/reload` reports it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SealInfo {
    pub uscc: String,
    pub name: String,
    /// Hex of the 8-byte kid.
    pub kid: String,
    pub not_before: i64,
    pub not_after: i64,
    /// This node holds the private key and the certificate is valid now.
    pub signing: bool,
}

pub struct Keyring {
    pub trust: TrustList,
    seals: HashMap<String, Vec<Seal>>,
}

fn file_err(p: &Path, why: impl Into<String>) -> LoadError {
    LoadError::File { path: p.display().to_string(), why: why.into() }
}

impl Keyring {
    /// Loads `DIR/root.crt.pem`, `DIR/departments/*.crt.pem` and the seal keys
    /// `DIR/departments/*.key.pem`; each key must match one of the certificates (whatever its
    /// validity: an expired seal is kept, and refused only when asked to sign). The root CA's
    /// private key must not be here: the server never needs it.
    pub fn load(dir: &Path) -> Result<Self, LoadError> {
        let root_key = dir.join("root.key.pem");
        if root_key.exists() {
            return Err(file_err(
                &root_key,
                "the root CA's private key is in the serving key directory; the server never needs it: move it \
                 offline (licvault keys init writes it to --root-dir)",
            ));
        }
        let trust = TrustList::load_federated(dir)?;
        let dept_dir = dir.join("departments");
        let mut paths: Vec<_> = std::fs::read_dir(&dept_dir)
            .map_err(|e| file_err(&dept_dir, e.to_string()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.to_string_lossy().ends_with(".key.pem"))
            .collect();
        paths.sort();
        let mut seals: HashMap<String, Vec<Seal>> = HashMap::new();
        for p in paths {
            let key = load_private_key(&p)?;
            // A key may have several certificates (a renewed one beside an expired one): one
            // seal each, so the one valid at signing time is found.
            let mut found = false;
            for cert in trust.departments().filter(|c| c.key == key.verifying_key()) {
                found = true;
                let seal = Seal {
                    signer: Ed25519Signer::new(key.clone(), &cert.der, cert.uscc.as_str()),
                    not_before: cert.not_before,
                    not_after: cert.not_after,
                };
                seals.entry(cert.uscc.as_str().to_string()).or_default().push(seal);
            }
            if !found {
                return Err(file_err(&p, "no certificate in departments/ is for this key"));
            }
        }
        for v in seals.values_mut() {
            v.sort_by_key(|s| std::cmp::Reverse(s.not_before));
        }
        Ok(Self { trust, seals })
    }

    /// The seal of `uscc` whose certificate is valid at `at` (the newest, if several are).
    pub fn seal_for(&self, uscc: &str, name: &str, at: i64) -> Result<&Ed25519Signer, VaultError> {
        let seals = self.seals.get(uscc).map(Vec::as_slice).unwrap_or_default();
        seals.iter().find(|s| s.not_before <= at && at <= s.not_after).map(|s| &s.signer).ok_or_else(|| {
            VaultError::NoValidSeal(if seals.is_empty() {
                format!("this node holds no seal key of {name} ({uscc})")
            } else {
                format!(
                    "no seal certificate of {name} ({uscc}) is valid now; install a new one and reload the keys \
                     (licvault keys seal, then POST /v1/admin/keys/reload or SIGHUP)"
                )
            })
        })
    }

    /// Public keys of the root and of every seal this node holds.
    pub fn public_keys(&self) -> Vec<(String, [u8; 32])> {
        let mut v = vec![("root.crt.pem".to_string(), self.trust.root_key().to_bytes())];
        for (uscc, seals) in &self.seals {
            for s in seals {
                v.push((
                    format!("the seal key of {uscc} (kid {})", hex::encode(s.signer.kid())),
                    s.signer.verifying_key().to_bytes(),
                ));
            }
        }
        v
    }

    /// SHA-256 over the root and every department kid, and with a federation the SHA-256 of its
    /// files too: logged when it changes.
    pub fn trust_hash(&self) -> Hash {
        let mut kids: Vec<[u8; 8]> = self.trust.departments().map(|d| d.kid).collect();
        kids.sort();
        match self.trust.federation_digest() {
            // Unchanged without a federation: a store started before federations logs nothing new.
            None => sha256(&[self.trust.root_der(), &kids.concat()].concat()),
            Some(federation) => {
                let parts: [&[u8]; 4] = [b"licvault-trust-hash-v2", self.trust.root_der(), &kids.concat(), &federation];
                let mut buf = Vec::new();
                for p in parts {
                    crate::crypto::push_part(&mut buf, p);
                }
                sha256(&buf)
            }
        }
    }

    pub fn summary(&self, now: i64) -> Vec<SealInfo> {
        let mut out: Vec<SealInfo> = self
            .trust
            .departments()
            .map(|c| {
                let signing = self.seals.get(c.uscc.as_str()).is_some_and(|v| {
                    v.iter().any(|s| s.signer.kid() == c.kid && s.not_before <= now && now <= s.not_after)
                });
                SealInfo {
                    uscc: c.uscc.as_str().to_string(),
                    name: c.name.clone(),
                    kid: hex::encode(c.kid),
                    not_before: c.not_before,
                    not_after: c.not_after,
                    signing,
                }
            })
            .collect();
        out.sort_by(|a, b| (&a.uscc, a.not_before).cmp(&(&b.uscc, b.not_before)));
        out
    }
}

/// A private key anywhere under `dir` (subdirectories included, whatever the file names) that
/// is the root CA's: the server never needs it, and a serving key directory is mounted where the
/// server runs.
pub fn root_key_under(dir: &Path, root: &ed25519_dalek::VerifyingKey) -> Option<std::path::PathBuf> {
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else { continue };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if std::fs::metadata(&p).is_ok_and(|m| m.len() < 16 * 1024) {
                let pem = std::fs::read_to_string(&p).unwrap_or_default();
                use ed25519_dalek::pkcs8::DecodePrivateKey;
                if ed25519_dalek::SigningKey::from_pkcs8_pem(&pem).is_ok_and(|k| k.verifying_key() == *root) {
                    return Some(p);
                }
            }
        }
    }
    None
}

impl Vault {
    /// The keyring in force now.
    pub fn keyring(&self) -> Arc<Keyring> {
        self.keys.read().map(|k| k.clone()).unwrap_or_else(|p| p.into_inner().clone())
    }

    /// Reloads the trust list and seal keys from the key directory. Refused, changing nothing,
    /// when the new set fails its checks, names another root, or drops a certificate loaded
    /// before (what it signed must keep verifying). All or nothing, one reload at a time, run to
    /// its end even if the caller goes away: a changed trust list is logged first, and only
    /// then put in force.
    pub async fn reload_keys(self: &Arc<Self>) -> Result<Vec<SealInfo>, VaultError> {
        self.serially(
            |v| &v.key_reloads,
            "key reload",
            |vault| async move {
                let dir = vault
                    .keys_dir
                    .as_ref()
                    .ok_or_else(|| VaultError::KeysInvalid("this vault was not loaded from a key directory".into()))?;
                let new = Keyring::load(dir).map_err(|e| VaultError::KeysInvalid(e.to_string()))?;
                let old = vault.keyring();
                if new.trust.root_der() != old.trust.root_der() {
                    return Err(VaultError::KeysInvalid(
                        "the root certificate differs from the one in force; a new root needs a restart".into(),
                    ));
                }
                if let Some(gone) = old.trust.departments().find(|c| new.trust.department(&c.kid).is_none()) {
                    return Err(VaultError::KeysInvalid(format!(
                        "the certificate of {} (kid {}) is missing: documents it signed would stop verifying",
                        gone.name,
                        hex::encode(gone.kid)
                    )));
                }
                vault.log_if_changed(super::META_TRUST, new.trust_hash(), "trust.loaded").await?;
                let summary = new.summary(super::unix_now());
                match vault.keys.write() {
                    Ok(mut k) => *k = Arc::new(new),
                    Err(p) => *p.into_inner() = Arc::new(new),
                }
                tracing::info!(seals = summary.len(), "keys reloaded");
                Ok(summary)
            },
        )
        .await
    }
}
