//! Witness cosignatures (c2sp.org/tlog-cosignature, `cosignature/v1`) and the body of a
//! c2sp.org/tlog-witness `add-checkpoint` request. Pure.
//!
//! A cosignature is a signed-note signature line by the witness's key:
//! `— <witness name> <base64(key id ‖ timestamp ‖ signature)>`, the key id being the first 4 bytes
//! of SHA-256(name ‖ `\n` ‖ 0x04 ‖ public key), the timestamp big-endian unix seconds, and the
//! Ed25519 signature over `cosignature/v1\ntime <timestamp>\n` followed by the checkpoint's text.

use base64::{engine::general_purpose::STANDARD as B64, Engine};
use ed25519_dalek::{Signature, VerifyingKey};
use sha2::{Digest, Sha256};

use super::merkle::Hash;
use super::note::NoteSigner;

/// Signature type of `cosignature/v1` keys.
const ALG_COSIGNATURE: u8 = 0x04;
const DASH: &str = "\u{2014} ";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CosignError {
    #[error("malformed witness key: {0}")]
    Key(&'static str),
    #[error("malformed add-checkpoint request: {0}")]
    Request(String),
}

fn key_id(name: &str, public_key: &[u8; 32]) -> [u8; 4] {
    let d = Sha256::new()
        .chain_update(name.as_bytes())
        .chain_update(b"\n")
        .chain_update([ALG_COSIGNATURE])
        .chain_update(public_key)
        .finalize();
    [d[0], d[1], d[2], d[3]]
}

/// `<name>+<key id, hex>+<base64(0x04 ‖ public key)>`.
pub fn witness_vkey(name: &str, public_key: &[u8; 32]) -> String {
    let mut k = vec![ALG_COSIGNATURE];
    k.extend_from_slice(public_key);
    format!("{name}+{}+{}", hex::encode(key_id(name, public_key)), B64.encode(k))
}

fn message(text: &str, time: u64) -> Vec<u8> {
    format!("cosignature/v1\ntime {time}\n{text}").into_bytes()
}

/// The cosignature line of `signer` on the checkpoint `text` (the note's text, ending in `\n`),
/// made at `time` (unix seconds).
pub fn cosign(text: &str, time: u64, signer: &dyn NoteSigner) -> String {
    let sig = signer.sign(&message(text, time));
    let mut blob = key_id(signer.name(), &signer.public_key()).to_vec();
    blob.extend_from_slice(&time.to_be_bytes());
    blob.extend_from_slice(&sig);
    format!("{DASH}{} {}\n", signer.name(), B64.encode(blob))
}

/// A witness's verifier key.
#[derive(Debug, Clone)]
pub struct WitnessKey {
    name: String,
    id: [u8; 4],
    key: VerifyingKey,
}

impl WitnessKey {
    pub fn parse(vkey: &str) -> Result<Self, CosignError> {
        let (name, id, key) = super::note::parse_vkey(vkey, ALG_COSIGNATURE, key_id).map_err(CosignError::Key)?;
        Ok(Self { name, id, key })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether `note` (a signed checkpoint with any signature lines) carries a valid cosignature
    /// of this witness; the time it was made (unix seconds) if so.
    pub fn cosigned(&self, note: &str) -> Option<u64> {
        let split = note.rfind("\n\n")?;
        let text = &note[..split + 1];
        note[split + 2..].lines().find_map(|line| {
            let (name, b64) = line.strip_prefix(DASH)?.rsplit_once(' ')?;
            let blob = B64.decode(b64).ok()?;
            if name != self.name || blob.len() != 4 + 8 + 64 || blob[..4] != self.id {
                return None;
            }
            let time = u64::from_be_bytes(blob[4..12].try_into().ok()?);
            let sig = Signature::from_bytes(&blob[12..].try_into().ok()?);
            self.key.verify_strict(&message(text, time), &sig).ok().map(|_| time)
        })
    }
}

/// How many of `witnesses` (distinct keys) cosigned `note`.
pub fn cosignatures(note: &str, witnesses: &[WitnessKey]) -> usize {
    witnesses.iter().filter(|w| w.cosigned(note).is_some()).count()
}

/// The body of a c2sp.org/tlog-witness `add-checkpoint` request: `old <size>`, the consistency
/// proof from that size (base64, a line each), a blank line, then the signed checkpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddCheckpoint {
    pub old: u64,
    pub proof: Vec<Hash>,
    pub checkpoint: String,
}

impl AddCheckpoint {
    pub fn to_text(&self) -> String {
        let mut s = format!("old {}\n", self.old);
        for h in &self.proof {
            s.push_str(&B64.encode(h));
            s.push('\n');
        }
        s.push('\n');
        s.push_str(&self.checkpoint);
        s
    }

    pub fn parse(body: &str) -> Result<Self, CosignError> {
        let bad = |why: &str| CosignError::Request(why.to_string());
        let (head, checkpoint) = body.split_once("\n\n").ok_or_else(|| bad("no blank line before the checkpoint"))?;
        let mut lines = head.lines();
        let old = lines
            .next()
            .and_then(|l| l.strip_prefix("old "))
            .and_then(|n| n.parse::<u64>().ok().filter(|v| v.to_string() == n))
            .ok_or_else(|| bad("the first line is not `old <size>`"))?;
        let proof = lines
            .map(|l| B64.decode(l).ok().and_then(|b| Hash::try_from(b.as_slice()).ok()))
            .collect::<Option<Vec<Hash>>>()
            .ok_or_else(|| bad("a proof line is not a base64 hash"))?;
        if proof.len() > 63 {
            return Err(bad("the proof has more than 63 hashes"));
        }
        Ok(Self { old, proof, checkpoint: checkpoint.to_string() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::note::{sign_note, Checkpoint};
    use crate::log::test_key::K;

    #[test]
    fn cosignatures_verify_and_bind_the_checkpoint() {
        let log = K(ed25519_dalek::SigningKey::from_bytes(&[1; 32]));
        let witness = K(ed25519_dalek::SigningKey::from_bytes(&[2; 32]));
        let text = Checkpoint { origin: "test/log".into(), size: 5, root: [3; 32] }.to_text();
        let note = sign_note(&text, &log);
        let cosigned = format!("{note}{}", cosign(&text, 1_700_000_000, &witness));
        let key = WitnessKey::parse(&witness_vkey("test/log", &witness.public_key())).unwrap();
        assert_eq!(key.cosigned(&cosigned), Some(1_700_000_000));
        assert_eq!(cosignatures(&cosigned, std::slice::from_ref(&key)), 1);
        assert_eq!(key.cosigned(&note), None);
        // On another checkpoint, or with another time, it does not verify.
        let other = sign_note(&Checkpoint { origin: "test/log".into(), size: 6, root: [3; 32] }.to_text(), &log);
        let line = cosign(&text, 1_700_000_000, &witness);
        assert_eq!(key.cosigned(&format!("{other}{line}")), None);
        let mut blob = B64.decode(line.trim_end().rsplit_once(' ').unwrap().1).unwrap();
        blob[11] ^= 1;
        assert_eq!(key.cosigned(&format!("{note}{DASH}test/log {}\n", B64.encode(blob))), None);
        // A note-signature key (0x01) is not a witness key.
        assert!(WitnessKey::parse(&crate::log::note::verifier_key("test/log", &witness.public_key())).is_err());
    }

    #[test]
    fn add_checkpoint_bodies_round_trip() {
        let req = AddCheckpoint { old: 3, proof: vec![[1; 32], [2; 32]], checkpoint: "o\n5\nAAAA\n\n— o x\n".into() };
        assert_eq!(AddCheckpoint::parse(&req.to_text()), Ok(req));
        for bad in ["old 3\n", "old x\n\nc", "old 03\n\nc", "new 3\n\nc", "old 3\nnot base64!\n\nc"] {
            assert!(AddCheckpoint::parse(bad).is_err(), "{bad:?}");
        }
    }
}
