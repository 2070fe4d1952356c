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
    /// Seed the demo clients from FIXTURES/demo-clients.json into an empty store.
    #[arg(long, env = "LICVAULT_DEMO", default_value_t = false)]
    pub demo: bool,
    /// Public base URL, used in links printed at start-up.
    #[arg(long, env = "LICVAULT_PUBLIC_URL")]
    pub public_url: Option<String>,
}
