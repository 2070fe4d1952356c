//! Cryptography: Ed25519 signers (the only place private keys live), the COSE_Sign1 envelope of a
//! licence, the X.509 trust chain (platform root → department seal certificates), key generation
//! for `keys init`, and the keyed commitment that hides citizen ID numbers in the log.

pub mod cose;
pub mod devkeys;
pub mod federation;
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

/// Appends `part` behind its length as a u32 big-endian: how the trust digests frame their parts.
pub fn push_part(buf: &mut Vec<u8>, part: &[u8]) {
    buf.extend_from_slice(&(part.len() as u32).to_be_bytes());
    buf.extend_from_slice(part);
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

    /// A fingerprint of the secret for the log (so a changed secret is noticed at start-up):
    /// SHA-256 over a domain-separation label and the key. The key is 32 random bytes, so the
    /// fingerprint reveals nothing usable about it.
    pub fn fingerprint(&self) -> Hash {
        sha256(&[b"licvault commitment key fingerprint v1\0".as_slice(), &self.key].concat())
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

/// `der` as a PEM block labelled `label` (`CERTIFICATE`, `X509 CRL`; RFC 7468 §2: base64 in
/// lines of 64, LF line ends).
pub fn pem(label: &str, der: &[u8]) -> String {
    use base64::{engine::general_purpose::STANDARD as B64, Engine};
    let b64 = B64.encode(der);
    let lines: Vec<&str> = b64.as_bytes().chunks(64).map(|c| std::str::from_utf8(c).unwrap_or_default()).collect();
    format!("-----BEGIN {label}-----\n{}\n-----END {label}-----\n", lines.join("\n"))
}

#[cfg(test)]
mod tests {
    use ed25519_dalek::{Signature, VerifyingKey};
    use serde_json::Value;

    fn vectors(name: &str) -> Value {
        let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/vectors/ed25519").join(name);
        serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
    }

    /// Strict verification of (public key, message, signature), all hex; false for any malformed part.
    fn verifies(pk: &str, msg: &str, sig: &str) -> bool {
        let (Ok(pk), Ok(msg), Ok(sig)) = (hex::decode(pk), hex::decode(msg), hex::decode(sig)) else { return false };
        let (Ok(pk), Ok(sig)) = (<[u8; 32]>::try_from(pk), <[u8; 64]>::try_from(sig)) else { return false };
        let Ok(key) = VerifyingKey::from_bytes(&pk) else { return false };
        key.verify_strict(&msg, &Signature::from_bytes(&sig)).is_ok()
    }

    #[test]
    fn wycheproof_ed25519() {
        let v = vectors("wycheproof_ed25519.json");
        let mut n = 0;
        for group in v["testGroups"].as_array().unwrap() {
            let pk = group["publicKey"]["pk"].as_str().unwrap();
            for t in group["tests"].as_array().unwrap() {
                let want = t["result"] == "valid";
                let got = verifies(pk, t["msg"].as_str().unwrap(), t["sig"].as_str().unwrap());
                assert_eq!(got, want, "Wycheproof tcId {}: {}", t["tcId"], t["comment"]);
                n += 1;
            }
        }
        assert!(n > 100);
    }

    #[test]
    fn speccheck_only_case_3_verifies_strictly() {
        let cases = vectors("speccheck_cases.json");
        let passing: Vec<usize> = cases
            .as_array()
            .unwrap()
            .iter()
            .enumerate()
            .filter(|(_, c)| {
                verifies(
                    c["pub_key"].as_str().unwrap(),
                    c["message"].as_str().unwrap(),
                    c["signature"].as_str().unwrap(),
                )
            })
            .map(|(i, _)| i)
            .collect();
        assert_eq!(passing, vec![3]);
    }
}
