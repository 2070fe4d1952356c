//! The tamper-evident log: RFC 9162 Merkle math (`merkle`, pure), leaves and the hash chain
//! (`leaf`), the node cache for proofs (`cache`), C2SP signed notes and checkpoints (`note`), and the single writer (`sequencer`).

pub mod cache;
pub mod leaf;
pub mod merkle;
pub mod note;
pub mod replay;
pub mod sequencer;
