//! The tamper-evident log: RFC 9162 Merkle math (`merkle`, pure), leaves and the hash chain
//! (`leaf`), the node cache for proofs (`cache`), C2SP signed notes and checkpoints (`note`), and the single writer (`sequencer`).

pub mod audit;
pub mod cache;
pub mod cosign;
pub mod leaf;
pub mod merkle;
pub mod note;
pub mod replay;
pub mod sequencer;
pub mod tile;

/// A checkpoint signer for the log's own tests.
#[cfg(test)]
pub(crate) mod test_key {
    use ed25519_dalek::{Signer as _, SigningKey};

    pub struct K(pub SigningKey);

    impl super::note::NoteSigner for K {
        fn name(&self) -> &str {
            "test/log"
        }
        fn public_key(&self) -> [u8; 32] {
            self.0.verifying_key().to_bytes()
        }
        fn sign(&self, msg: &[u8]) -> [u8; 64] {
            self.0.sign(msg).to_bytes()
        }
    }
}
