//! Ed25519 signing keys. A key is loaded from a PKCS#8 PEM file whose mode must not give access to
//! group or others; once loaded it never leaves this type.

use std::path::Path;

use ed25519_dalek::pkcs8::DecodePrivateKey;
use ed25519_dalek::{Signer as _, SigningKey, VerifyingKey};

use super::{kid_of, CryptoError};

/// Refuses a secret file that group or others may read.
pub fn check_private_mode(path: &Path) -> Result<(), CryptoError> {
    let shown = path.display().to_string();
    let meta = std::fs::metadata(path).map_err(|source| CryptoError::Io { path: shown.clone(), source })?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(CryptoError::KeyFile {
                path: shown,
                why: format!("mode {mode:o} lets group or others read a secret; run chmod 600 on it"),
            });
        }
    }
    Ok(())
}

/// Reads a PKCS#8 PEM Ed25519 private key, refusing files readable by group or others.
pub fn load_private_key(path: &Path) -> Result<SigningKey, CryptoError> {
    check_private_mode(path)?;
    let shown = path.display().to_string();
    let pem = std::fs::read_to_string(path).map_err(|source| CryptoError::Io { path: shown.clone(), source })?;
    SigningKey::from_pkcs8_pem(&pem)
        .map_err(|e| CryptoError::KeyFile { path: shown, why: format!("not a PKCS#8 Ed25519 key: {e}") })
}

/// A department's seal key with its certificate: signs licences.
pub struct Ed25519Signer {
    key: SigningKey,
    kid: [u8; 8],
    uscc: String,
}

impl Ed25519Signer {
    pub fn new(key: SigningKey, cert_der: &[u8], uscc: impl Into<String>) -> Self {
        let kid = kid_of(cert_der);
        Self { key, kid, uscc: uscc.into() }
    }

    /// The platform's annotation key (annotated copies): no certificate; its kid is
    /// SHA-256(public key)[0..8].
    pub fn annotation(key: SigningKey) -> Self {
        let kid = kid_of(&key.verifying_key().to_bytes());
        Self { key, kid, uscc: String::new() }
    }

    /// The department this seal belongs to.
    pub fn uscc(&self) -> &str {
        &self.uscc
    }

    pub fn kid(&self) -> [u8; 8] {
        self.kid
    }

    pub fn verifying_key(&self) -> VerifyingKey {
        self.key.verifying_key()
    }

    pub fn sign(&self, msg: &[u8]) -> [u8; 64] {
        self.key.sign(msg).to_bytes()
    }
}

/// The log's checkpoint key (C2SP signed-note, Ed25519).
pub struct LogSigner {
    key: SigningKey,
    name: String,
}

impl LogSigner {
    pub fn new(key: SigningKey, name: impl Into<String>) -> Self {
        Self { key, name: name.into() }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn public_key(&self) -> [u8; 32] {
        self.key.verifying_key().to_bytes()
    }

    pub fn sign(&self, msg: &[u8]) -> [u8; 64] {
        self.key.sign(msg).to_bytes()
    }
}

impl crate::log::note::NoteSigner for LogSigner {
    fn name(&self) -> &str {
        &self.name
    }
    fn public_key(&self) -> [u8; 32] {
        LogSigner::public_key(self)
    }
    fn sign(&self, msg: &[u8]) -> [u8; 64] {
        LogSigner::sign(self, msg)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
    use ed25519_dalek::pkcs8::EncodePrivateKey;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn readable_private_keys_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k.key.pem");
        let key = SigningKey::from_bytes(&[4; 32]);
        std::fs::write(&path, key.to_pkcs8_pem(LineEnding::LF).unwrap().as_bytes()).unwrap();
        for mode in [0o644, 0o640, 0o604] {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
            let err = load_private_key(&path).unwrap_err().to_string();
            assert!(err.contains("chmod 600"), "{mode:o}: {err}");
        }
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(load_private_key(&path).unwrap().verifying_key(), key.verifying_key());
        std::fs::write(&path, "not a key").unwrap();
        assert!(load_private_key(&path).unwrap_err().to_string().contains("PKCS#8"));
    }
}
