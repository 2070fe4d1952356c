//! licvault — the electronic licence vault (电子证照库).
//!
//! - `domain`    holder numbers, licence identifiers, catalogue, licence claims, status; no I/O
//! - `cbor`      deterministic CBOR (RFC 8949 §4.2.1) on ciborium
//! - `crypto`    Ed25519 signers, COSE_Sign1, X.509 trust chain, key generation; the only holder of private keys
//! - `log`       RFC 9162 Merkle math, leaves and hash chain, C2SP notes, the sequencer (single writer)
//! - `store`     the `Store` trait, `RocksStore` (the only rocksdb user), `MemoryStore`
//! - `vault`     the application service: issue, change status, renew, read, verify, prove
//! - `qr`        `LV1:`/`LV2:` payloads (Base45 of zlib of COSE, `LV2:` with a preset dictionary)
//! - `http`      the REST API (the only axum user)
//! - `config`    server configuration
//! - `witness`   c2sp.org/tlog-witness: the witness (`licvault witness serve`) and the vault's cosigner
//! - `import`    `licvault import`: migrating existing licences through the batch endpoint
//! - `cli`       the `licvault` command line

#![forbid(unsafe_code)]

pub mod cbor;
pub mod cli;
pub mod config;
pub mod crypto;
pub mod domain;
pub mod fetch;
pub mod http;
pub mod import;
pub mod log;
pub mod mirror;
pub mod peers;
pub mod qr;
pub mod status_list;
pub mod store;
pub mod vault;
pub mod witness;
