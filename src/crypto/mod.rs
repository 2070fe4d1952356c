//! Cryptography: Ed25519 signers (the only place private keys live), the COSE_Sign1 envelope of a
//! licence, the X.509 trust chain (platform root → department seal certificates), key generation
//! for `keys init`, and the keyed commitment that hides citizen ID numbers in the log.

pub mod cose;
pub mod keygen;
pub mod signer;
pub mod trust;

use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};

pub use signer::{Ed25519Signer, LogSigner};
pub use trust::{DepartmentCert, TrustError, TrustList};

#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    #[error("key file {path}: {why}")]
    KeyFile { path: String, why: String },
    #[error("certificate generation: {0}")]
    CertGen(String),
    #[error("I/O on {path}: {source}")]
    Io { path: String, source: std::io::Error },
}

pub type Hash = [u8; 32];

pub fn sha256(data: &[u8]) -> Hash {
    Sha256::digest(data).into()
}

/// `kid` of a department certificate: the first 8 bytes of SHA-256 of its DER (DESIGN §3).
pub fn kid_of(cert_der: &[u8]) -> [u8; 8] {
    let h = sha256(cert_der);
    let mut kid = [0u8; 8];
    kid.copy_from_slice(&h[..8]);
    kid
}

/// Keyed commitment to a holder number: HMAC-SHA-256 under the deployment secret over
/// `type code ‖ ":" ‖ number`, so that the log and the indexes never hold a citizen ID number in
/// clear and nobody without the secret can test a guessed number against them (DESIGN §4).
#[derive(Clone)]
pub struct Committer {
    key: [u8; 32],
}

impl Committer {
    pub fn new(key: [u8; 32]) -> Self {
        Self { key }
    }

    pub fn commit(&self, holder: &crate::domain::HolderId) -> Hash {
        // HMAC accepts keys of any length: new_from_slice cannot fail.
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&self.key).expect("HMAC takes any key length");
        mac.update(holder.kind().code().as_bytes());
        mac.update(b":");
        mac.update(holder.number().as_bytes());
        mac.finalize().into_bytes().into()
    }
}

impl std::fmt::Debug for Committer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Committer(..)")
    }
}
