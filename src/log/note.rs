//! C2SP signed-note and tlog-checkpoint, and the c2sp.org/tlog-proof@v1 receipt.
//!
//! A note is text ending in `\n`, a blank line, then one line per signature:
//! `— <key name> <base64(key id ‖ signature)>`. The Ed25519 key id is the first 4 bytes of
//! SHA-256(name ‖ `\n` ‖ 0x01 ‖ public key). A checkpoint's text is the origin line, the tree size
//! in decimal and the base64 root hash.

use base64::{engine::general_purpose::STANDARD as B64, Engine};
use ed25519_dalek::{Signature, VerifyingKey};
use sha2::{Digest, Sha256};

use super::merkle::Hash;

/// Signature algorithm byte for Ed25519 in C2SP signed-note.
const ALG_ED25519: u8 = 0x01;
const DASH: &str = "\u{2014} ";
/// Longest note we parse: a checkpoint is ~150 bytes plus a few signatures.
const MAX_NOTE: usize = 16 * 1024;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NoteError {
    #[error("malformed note: {0}")]
    Malformed(&'static str),
    #[error("malformed verifier key: {0}")]
    VerifierKey(&'static str),
    #[error("no signature by {0} verifies")]
    Unverified(String),
    #[error("malformed checkpoint: {0}")]
    Checkpoint(&'static str),
    #[error("malformed receipt: {0}")]
    Receipt(&'static str),
}

/// A signer of notes; the log's key lives in `crypto` and implements this.
pub trait NoteSigner {
    fn name(&self) -> &str;
    fn public_key(&self) -> [u8; 32];
    fn sign(&self, msg: &[u8]) -> [u8; 64];
}

pub fn key_id(name: &str, public_key: &[u8; 32]) -> [u8; 4] {
    let mut h = Sha256::new();
    h.update(name.as_bytes());
    h.update(b"\n");
    h.update([ALG_ED25519]);
    h.update(public_key);
    let d = h.finalize();
    [d[0], d[1], d[2], d[3]]
}

/// `<name>+<8 hex digits of key id>+<base64(0x01 ‖ public key)>`.
pub fn verifier_key(name: &str, public_key: &[u8; 32]) -> String {
    let mut k = vec![ALG_ED25519];
    k.extend_from_slice(public_key);
    format!("{name}+{}+{}", hex::encode(key_id(name, public_key)), B64.encode(k))
}

/// A parsed verifier key.
#[derive(Debug, Clone)]
pub struct Verifier {
    name: String,
    id: [u8; 4],
    key: VerifyingKey,
}

/// Parses `name+<key id, hex>+<base64(alg ‖ public key)>` for signature type `alg`, whose key id
/// `key_id` computes: the name, the key id and the key.
pub(crate) fn parse_vkey(
    vkey: &str,
    alg: u8,
    key_id: fn(&str, &[u8; 32]) -> [u8; 4],
) -> Result<(String, [u8; 4], VerifyingKey), &'static str> {
    let mut parts = vkey.trim().splitn(3, '+');
    let (name, id_hex, key_b64) = match (parts.next(), parts.next(), parts.next()) {
        (Some(n), Some(i), Some(k)) if !n.is_empty() => (n, i, k),
        _ => return Err("expected name+keyid+key"),
    };
    let key = B64.decode(key_b64).map_err(|_| "key is not base64")?;
    if key.len() != 33 || key[0] != alg {
        return Err("not a key of this signature type");
    }
    let pk: [u8; 32] = key[1..].try_into().map_err(|_| "key length")?;
    let id = key_id(name, &pk);
    if hex::encode(id) != id_hex.to_ascii_lowercase() {
        return Err("key id does not match name and key");
    }
    let key = VerifyingKey::from_bytes(&pk).map_err(|_| "invalid Ed25519 point")?;
    Ok((name.to_string(), id, key))
}

impl Verifier {
    pub fn parse(vkey: &str) -> Result<Self, NoteError> {
        let (name, id, key) = parse_vkey(vkey, ALG_ED25519, key_id).map_err(NoteError::VerifierKey)?;
        Ok(Self { name, id, key })
    }

    pub fn from_key(name: &str, public_key: &[u8; 32]) -> Result<Self, NoteError> {
        Self::parse(&verifier_key(name, public_key))
    }

    pub fn name(&self) -> &str {
        &self.name
    }
}

/// Signs `text` (which must end in a newline) and returns the whole note.
pub fn sign_note(text: &str, signer: &dyn NoteSigner) -> String {
    debug_assert!(text.ends_with('\n'));
    let sig = signer.sign(text.as_bytes());
    let mut blob = key_id(signer.name(), &signer.public_key()).to_vec();
    blob.extend_from_slice(&sig);
    format!("{text}\n{DASH}{} {}\n", signer.name(), B64.encode(blob))
}

/// Verifies a note against `verifier` and returns its text. Signatures by other keys are ignored,
/// as the spec requires; at least one by `verifier` must verify.
pub fn open_note<'a>(note: &'a str, verifier: &Verifier) -> Result<&'a str, NoteError> {
    if note.len() > MAX_NOTE {
        return Err(NoteError::Malformed("too long"));
    }
    let split = note.rfind("\n\n").ok_or(NoteError::Malformed("no blank line before signatures"))?;
    let text = &note[..split + 1];
    let sigs = &note[split + 2..];
    if !sigs.ends_with('\n') || sigs.is_empty() {
        return Err(NoteError::Malformed("signature block must end in a newline"));
    }
    let mut verified = false;
    for line in sigs.lines() {
        let rest = line.strip_prefix(DASH).ok_or(NoteError::Malformed("signature line must start with an em dash"))?;
        let (name, b64) = rest.rsplit_once(' ').ok_or(NoteError::Malformed("signature line has no signature"))?;
        let blob = B64.decode(b64).map_err(|_| NoteError::Malformed("signature is not base64"))?;
        if blob.len() < 4 {
            return Err(NoteError::Malformed("signature too short"));
        }
        if name != verifier.name || blob[..4] != verifier.id {
            continue;
        }
        let sig: [u8; 64] = blob[4..].try_into().map_err(|_| NoteError::Malformed("Ed25519 signature is 64 bytes"))?;
        if verifier.key.verify_strict(text.as_bytes(), &Signature::from_bytes(&sig)).is_ok() {
            verified = true;
        } else {
            return Err(NoteError::Unverified(verifier.name.clone()));
        }
    }
    if verified {
        Ok(text)
    } else {
        Err(NoteError::Unverified(verifier.name.clone()))
    }
}

/// The body of a C2SP tlog-checkpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    pub origin: String,
    pub size: u64,
    pub root: Hash,
}

impl Checkpoint {
    pub fn to_text(&self) -> String {
        format!("{}\n{}\n{}\n", self.origin, self.size, B64.encode(self.root))
    }

    /// Parses checkpoint text (extension lines after the root are allowed and ignored).
    pub fn parse(text: &str) -> Result<Self, NoteError> {
        let mut lines = text.split('\n');
        let origin = lines.next().filter(|o| !o.is_empty()).ok_or(NoteError::Checkpoint("no origin line"))?;
        let size_s = lines.next().ok_or(NoteError::Checkpoint("no size line"))?;
        if size_s.is_empty()
            || !size_s.bytes().all(|b| b.is_ascii_digit())
            || (size_s.len() > 1 && size_s.starts_with('0'))
        {
            return Err(NoteError::Checkpoint("size must be a decimal number without leading zeros"));
        }
        let size = size_s.parse().map_err(|_| NoteError::Checkpoint("size out of range"))?;
        let root_s = lines.next().ok_or(NoteError::Checkpoint("no root line"))?;
        let root: Hash = B64
            .decode(root_s)
            .ok()
            .and_then(|r| r.try_into().ok())
            .ok_or(NoteError::Checkpoint("root must be 32 bytes of base64"))?;
        Ok(Self { origin: origin.to_string(), size, root })
    }

    /// Verifies a signed checkpoint note and parses it; the origin must be the verifier's name.
    pub fn open(note: &str, verifier: &Verifier) -> Result<Self, NoteError> {
        let cp = Self::parse(open_note(note, verifier)?)?;
        if cp.origin != verifier.name {
            return Err(NoteError::Checkpoint("origin differs from the log's key name"));
        }
        Ok(cp)
    }
}

/// A c2sp.org/tlog-proof@v1 receipt: index, inclusion proof and the signed checkpoint.
pub fn receipt(index: u64, proof: &[Hash], signed_checkpoint: &str) -> String {
    let mut out = format!("c2sp.org/tlog-proof@v1\nindex {index}\n");
    for h in proof {
        out.push_str(&B64.encode(h));
        out.push('\n');
    }
    out.push('\n');
    out.push_str(signed_checkpoint);
    out
}

/// Parses a receipt into (index, proof, signed checkpoint note).
pub fn parse_receipt(text: &str) -> Result<(u64, Vec<Hash>, &str), NoteError> {
    let rest = text.strip_prefix("c2sp.org/tlog-proof@v1\n").ok_or(NoteError::Receipt("wrong first line"))?;
    let (head, checkpoint) =
        rest.split_once("\n\n").ok_or(NoteError::Receipt("no blank line before the checkpoint"))?;
    let mut lines = head.lines().peekable();
    if lines.peek().is_some_and(|l| l.starts_with("extra ")) {
        lines.next();
    }
    let index = lines
        .next()
        .and_then(|l| l.strip_prefix("index "))
        .and_then(|n| n.parse().ok())
        .ok_or(NoteError::Receipt("no index line"))?;
    let proof = lines
        .map(|l| B64.decode(l).ok().and_then(|h| <Hash>::try_from(h).ok()).ok_or(NoteError::Receipt("proof hash")))
        .collect::<Result<Vec<_>, _>>()?;
    Ok((index, proof, checkpoint))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::{Signer as _, SigningKey};

    struct K(SigningKey, &'static str);
    impl NoteSigner for K {
        fn name(&self) -> &str {
            self.1
        }
        fn public_key(&self) -> [u8; 32] {
            self.0.verifying_key().to_bytes()
        }
        fn sign(&self, msg: &[u8]) -> [u8; 64] {
            self.0.sign(msg).to_bytes()
        }
    }

    /// The C2SP signed-note example key (golang.org/x/mod/sumdb/note): known verifier key and
    /// signed note text from the spec.
    #[test]
    fn c2sp_known_answer() {
        let vkey = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW";
        let v = Verifier::parse(vkey).unwrap();
        let note = "If you think cryptography is the answer to your problem,\nthen you don't know what your problem is.\n\n\u{2014} PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n";
        let text = open_note(note, &v).unwrap();
        assert!(text.starts_with("If you think"));
        let tampered = note.replace("answer", "Answer");
        assert!(open_note(&tampered, &v).is_err());
    }

    #[test]
    fn checkpoint_round_trip() {
        let k = K(SigningKey::from_bytes(&[3; 32]), "example.gov.cn/log");
        let v = Verifier::from_key(k.name(), &k.public_key()).unwrap();
        let cp = Checkpoint { origin: "example.gov.cn/log".into(), size: 42, root: [9; 32] };
        let note = sign_note(&cp.to_text(), &k);
        assert_eq!(Checkpoint::open(&note, &v).unwrap(), cp);
        let other = Verifier::from_key("example.gov.cn/log", &[0x11; 32]);
        if let Ok(other) = other {
            assert!(Checkpoint::open(&note, &other).is_err());
        }
        let r = receipt(7, &[[1; 32], [2; 32]], &note);
        let (i, p, c) = parse_receipt(&r).unwrap();
        assert_eq!((i, p, c), (7, vec![[1; 32], [2; 32]], note.as_str()));
        assert!(Checkpoint::parse("o\n01\nAAAA\n").is_err());
    }
}
