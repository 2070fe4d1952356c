//! Server configuration: flags, each with an environment variable and a default.

use std::net::SocketAddr;
use std::path::PathBuf;

#[derive(Debug, Clone, clap::Args)]
pub struct Config {
    /// Address to listen on.
    #[arg(long, env = "LICVAULT_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// RocksDB data directory (created if missing).
    #[arg(long, env = "LICVAULT_DATA", default_value = "data/licvault")]
    pub data: PathBuf,
    /// Keys and certificates made by `licvault keys init`.
    #[arg(long, env = "LICVAULT_KEYS", default_value = "keys")]
    pub keys: PathBuf,
    /// Catalogue and departments (catalogue.json, departments.json).
    #[arg(long, env = "LICVAULT_FIXTURES", default_value = "fixtures")]
    pub fixtures: PathBuf,
    /// Demonstration mode: allows the public development keys of keys/ (refused otherwise) and
    /// seeds the demo clients from FIXTURES/demo-clients.json that the store does not have yet (by id).
    #[arg(long, env = "LICVAULT_DEMO", default_value_t = false)]
    pub demo: bool,
    /// Public base URL, used in links printed at start-up.
    #[arg(long, env = "LICVAULT_PUBLIC_URL")]
    pub public_url: Option<String>,
    /// A second address serving only `GET /metrics`, without a token (for the monitoring
    /// system). Without it, `/metrics` on the main address needs an admin token.
    #[arg(long, env = "LICVAULT_METRICS_LISTEN")]
    pub metrics_listen: Option<SocketAddr>,
    /// Newest log leaves re-checked at every start: they must hash to the signed root and link
    /// up, and the records of the licences they are about must name them (`licvault check`
    /// replays every leaf and compares every record).
    #[arg(long, env = "LICVAULT_CHECK_TAIL", default_value_t = crate::log::sequencer::DEFAULT_TAIL_CHECK)]
    pub check_tail: u64,
    /// `POST /v1/verify` recognises a document whose exact bytes are in the log by their hash and
    /// one read, without checking its signature again (the vault signed them); every other check
    /// runs. `false`: every signature is checked.
    #[arg(long, env = "LICVAULT_VERIFY_BY_HASH", default_value_t = true, action = clap::ArgAction::Set)]
    pub verify_by_hash: bool,
    /// MiB of presented payloads recognised by hash that `POST /v1/verify` keeps by their text,
    /// decoded and parsed, for when the same QR code is shown again (trust, the record and the
    /// time are checked each time). 0: every payload is decoded and parsed.
    #[arg(long, env = "LICVAULT_VERIFY_MEMO_MIB", default_value_t = crate::vault::verify::RECOGNISED_BYTES >> 20)]
    pub verify_memo_mib: u64,
    /// The offline QR payload the vault makes (spec/formats.md §1): `lv2` (zlib with the preset
    /// dictionary `spec/qr-dictionary-1.txt`, smaller codes) or `lv1` (plain zlib, DESIGN §3's
    /// first profile, for scanners not yet updated). Both are always read.
    #[arg(long, env = "LICVAULT_QR_FORMAT", value_enum, default_value_t = crate::qr::Format::Lv2)]
    pub qr_format: crate::qr::Format,
    /// A witness (c2sp.org/tlog-witness) the newest checkpoint is submitted to each second it
    /// grows: `URL=VKEY` (its cosignature key); repeat, or separate with commas, for more.
    /// `GET /v1/log/checkpoint` then serves the newest checkpoint a quorum cosigned.
    #[arg(long = "witness", env = "LICVAULT_WITNESSES", value_delimiter = ',')]
    pub witnesses: Vec<crate::witness::Target>,
    /// Other nodes' logs to mirror: a JSON file (spec/formats.md §15) naming each source, its
    /// URL, its pinned log key and an auditor token for it.
    #[arg(long, env = "LICVAULT_MIRRORS")]
    pub mirrors: Option<std::path::PathBuf>,
    /// Other nodes a one-number lookup, a one-window check and a holder's usage view also ask: a JSON file (spec/formats.md
    /// §16) naming each, its URL and this node's verifier (and holder-channel) tokens there.
    #[arg(long, env = "LICVAULT_PEERS")]
    pub peers: Option<std::path::PathBuf>,
    /// How many witnesses must cosign a checkpoint before it is served.
    #[arg(long, env = "LICVAULT_WITNESS_QUORUM", default_value_t = 1)]
    pub witness_quorum: usize,
    /// Free space on the data directory's filesystem below which writes are refused (503
    /// `storage_full`, nothing written) while reads go on; writes resume by themselves once
    /// space is freed. Bytes, or a number with K, M or G (powers of 1024). The reserve is room for
    /// RocksDB to finish flushes and compactions of what it has already acknowledged: keep it
    /// above the write-ahead log limit (64 MiB) plus the largest compaction. 0 turns the check off.
    #[arg(long, env = "LICVAULT_MIN_FREE_SPACE", default_value = "256M", value_parser = parse_size)]
    pub min_free_space: u64,
    /// Memory for whole levels of the Merkle tree, kept for inclusion and consistency proofs:
    /// levels from the top down while they fit (32 bytes a node, so 64 bytes a leaf for every
    /// level: the default holds the whole tree up to 16 million leaves). Bytes, or with K, M, G.
    #[arg(long, env = "LICVAULT_TREE_MEMORY", default_value = "1G", value_parser = parse_size)]
    pub tree_memory: u64,
    #[command(flatten)]
    pub limits: Limits,
}

/// `1048576`, `512K`, `256M`, `2G`: bytes, with an optional binary suffix.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let (digits, shift) = match s.char_indices().last() {
        Some((i, 'K' | 'k')) => (&s[..i], 10),
        Some((i, 'M' | 'm')) => (&s[..i], 20),
        Some((i, 'G' | 'g')) => (&s[..i], 30),
        _ => (s, 0),
    };
    let n: u64 = digits.parse().map_err(|_| format!("{s:?} is not a size: bytes, or a number with K, M or G"))?;
    n.checked_mul(1 << shift).ok_or_else(|| format!("{s:?} is too large"))
}

/// Time and connection limits of the HTTP server (http/serve.rs).
#[derive(Debug, Clone, clap::Args)]
pub struct Limits {
    /// Seconds a client has to send a request's headers, counted from when the connection is
    /// ready for the request (so an idle keep-alive connection is closed after this too).
    #[arg(long, env = "LICVAULT_HEADER_TIMEOUT", default_value_t = 10)]
    pub header_timeout: u64,
    /// Seconds for a request's body to arrive; past it the answer is 408. Only reading the body
    /// is timed: a write handed to the sequencer is always answered with its outcome.
    #[arg(long, env = "LICVAULT_REQUEST_TIMEOUT", default_value_t = 30)]
    pub request_timeout: u64,
    /// Seconds a connection may pass with no byte in either direction before it is closed.
    #[arg(long, env = "LICVAULT_IDLE_TIMEOUT", default_value_t = 60)]
    pub idle_timeout: u64,
    /// Most connections served at once; further ones wait in the listen backlog.
    #[arg(long, env = "LICVAULT_MAX_CONNECTIONS", default_value_t = 1024)]
    pub max_connections: usize,
    /// Seconds a connection asked to close (at shutdown, or idle) has to finish its answer
    /// before it is dropped; also how long shutdown waits for requests in flight.
    #[arg(long, env = "LICVAULT_SHUTDOWN_GRACE", default_value_t = 10)]
    pub shutdown_grace: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self { header_timeout: 10, request_timeout: 30, idle_timeout: 60, max_connections: 1024, shutdown_grace: 10 }
    }
}

#[cfg(test)]
mod tests {
    use super::parse_size;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("0"), Ok(0));
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size("512K"), Ok(512 << 10));
        assert_eq!(parse_size("256M"), Ok(256 << 20));
        assert_eq!(parse_size("2g"), Ok(2 << 30));
        for bad in ["", "M", "-1M", "1.5G", "1T", "99999999999999999999G"] {
            assert!(parse_size(bad).is_err(), "{bad}");
        }
    }
}
