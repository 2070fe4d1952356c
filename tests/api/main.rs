//! End-to-end tests: the real server on port 0, a real RocksDB in a temp dir, real signatures.

mod audit;
mod authz;
mod by_hash;
mod citizens;
mod cli;
mod common;
mod crash;
mod disk;
mod errors;
mod federation;
mod flows;
mod golden;
mod hardening;
mod interop;
mod issuers;
mod mirrors;
mod page;
mod postgres;
mod regions;
mod spec;
mod spec_examples;
#[path = "../support/keys.rs"]
mod support_keys;
#[path = "../support/pg.rs"]
mod support_pg;
#[path = "../support/server.rs"]
mod support_server;
mod verifiers;
mod witness;
