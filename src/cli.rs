//! The `licvault` command line: `serve`, `keys init`, `clients add|list`, `verify`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};

use crate::config::Config;
use crate::crypto::keygen::{self, DepartmentSpec};
use crate::crypto::TrustList;
use crate::http::{AppState, Metrics};
use crate::store::RocksStore;
use crate::vault::{self, Client, Parts, Role, Vault};

#[derive(Parser)]
#[command(name = "licvault", version, about = "Electronic licence vault (电子证照库)")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the HTTP server.
    Serve(Config),
    /// Key management.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// Client systems and their bearer tokens (run while the server is stopped).
    Clients {
        #[command(subcommand)]
        command: ClientsCommand,
    },
    /// Holder numbers: administrator overrides for pre-2015 pilot codes (run while the server is stopped).
    Holders {
        #[command(subcommand)]
        command: HoldersCommand,
    },
    /// Verify a document offline: signature, trust chain, validity period.
    Verify {
        /// A file holding COSE_Sign1 bytes, base64 or an LV1: payload; or the payload itself.
        input: String,
        /// Directory with root.crt.pem and departments/*.crt.pem.
        #[arg(long, default_value = "keys")]
        trust: PathBuf,
    },
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Create a root CA, a seal key and certificate per department, a log key, a commitment secret.
    Init {
        dir: PathBuf,
        #[arg(long, default_value = "fixtures/departments.json")]
        departments: PathBuf,
    },
}

#[derive(clap::Args)]
struct StoreArgs {
    #[arg(long, env = "LICVAULT_DATA", default_value = "data/licvault")]
    data: PathBuf,
    #[arg(long, env = "LICVAULT_KEYS", default_value = "keys")]
    keys: PathBuf,
    #[arg(long, env = "LICVAULT_FIXTURES", default_value = "fixtures")]
    fixtures: PathBuf,
}

#[derive(Subcommand)]
enum HoldersCommand {
    /// Allow one holder number whose only fault is its check character (a pre-2015 pilot code).
    /// The override is a log leaf with the reason and the administrator's name.
    AllowPilot {
        #[command(flatten)]
        store: StoreArgs,
        /// 111 (citizen ID number) or 001 (unified social credit code)
        #[arg(long = "type")]
        kind: String,
        #[arg(long)]
        number: String,
        #[arg(long)]
        reason: String,
        /// Who authorises this (recorded in the log).
        #[arg(long)]
        admin: String,
    },
}

#[derive(Subcommand)]
enum ClientsCommand {
    /// Register a client; prints its bearer token once.
    Add {
        #[command(flatten)]
        store: StoreArgs,
        #[arg(long)]
        id: String,
        #[arg(long)]
        name: String,
        /// issuer, verifier, holder_channel, auditor or admin
        #[arg(long)]
        role: String,
        /// The department's USCC (issuers and verifiers).
        #[arg(long)]
        uscc: Option<String>,
        /// Licence type codes this client may use (repeatable; default: all its department may issue).
        #[arg(long = "type")]
        types: Vec<String>,
    },
    /// List clients (tokens are never shown: only their hashes are stored).
    List {
        #[command(flatten)]
        store: StoreArgs,
    },
}

pub fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "licvault=info,tower_http=warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("licvault: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread().enable_all().build().context("starting the async runtime")
}

fn run(cli: Cli) -> Result<ExitCode> {
    match cli.command {
        Command::Serve(cfg) => runtime()?.block_on(serve(cfg)).map(|_| ExitCode::SUCCESS),
        Command::Keys { command: KeysCommand::Init { dir, departments } } => {
            let text =
                std::fs::read_to_string(&departments).with_context(|| format!("reading {}", departments.display()))?;
            #[derive(serde::Deserialize)]
            struct F {
                platform: Platform,
                log_origin: String,
                departments: Vec<DepartmentSpec>,
            }
            #[derive(serde::Deserialize)]
            struct Platform {
                name: String,
            }
            let f: F = serde_json::from_str(&text).with_context(|| format!("parsing {}", departments.display()))?;
            let vkey = keygen::init(&dir, &f.platform.name, &f.log_origin, &f.departments)?;
            println!("created keys in {}", dir.display());
            println!("log verifier key: {vkey}");
            Ok(ExitCode::SUCCESS)
        }
        Command::Clients { command } => runtime()?.block_on(clients(command)).map(|_| ExitCode::SUCCESS),
        Command::Holders { command: HoldersCommand::AllowPilot { store, kind, number, reason, admin } } => runtime()?
            .block_on(async {
                let vault = open(&store).await?;
                let done = vault.allow_pilot(&kind, &number, &reason, &format!("admin:{admin}")).await;
                vault.close();
                let index = done?;
                println!("override recorded at log index {index}");
                Ok::<_, anyhow::Error>(ExitCode::SUCCESS)
            }),
        Command::Verify { input, trust } => verify_offline(&input, &trust),
    }
}

async fn open(args: &StoreArgs) -> Result<Arc<Vault>> {
    open_vault(&args.data, &args.keys, &args.fixtures).await
}

/// Opens the store and starts the vault: shared by `serve` and the client commands.
pub async fn open_vault(data: &Path, keys: &Path, fixtures: &Path) -> Result<Arc<Vault>> {
    std::fs::create_dir_all(data).with_context(|| format!("creating {}", data.display()))?;
    let store = RocksStore::open(data).with_context(|| format!("opening the store in {}", data.display()))?;
    let parts = Parts::load(Arc::new(store), keys, fixtures).context("loading keys, certificates and catalogue")?;
    Ok(Vault::start(parts).await?)
}

#[derive(serde::Deserialize)]
struct DemoClients {
    clients: Vec<DemoClient>,
}

#[derive(serde::Deserialize)]
struct DemoClient {
    id: String,
    name: String,
    role: Role,
    uscc: Option<String>,
    token: String,
}

/// Adds the demo clients to a store that has none.
pub async fn seed_demo(vault: &Vault, fixtures: &Path) -> Result<usize> {
    if !vault.clients().is_empty() {
        return Ok(0);
    }
    let path = fixtures.join("demo-clients.json");
    let demo: DemoClients =
        serde_json::from_str(&std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?)?;
    let clients: Vec<_> = demo
        .clients
        .into_iter()
        .map(|c| (Client { id: c.id, name: c.name, role: c.role, uscc: c.uscc, types: Vec::new() }, Some(c.token)))
        .collect();
    Ok(vault.add_clients(clients).await?.len())
}

async fn serve(cfg: Config) -> Result<()> {
    let vault = open_vault(&cfg.data, &cfg.keys, &cfg.fixtures).await?;
    if cfg.demo {
        let n = seed_demo(&vault, &cfg.fixtures).await?;
        if n > 0 {
            tracing::info!(clients = n, "seeded demo clients into an empty store");
        }
    }
    let listener =
        tokio::net::TcpListener::bind(cfg.listen).await.with_context(|| format!("binding {}", cfg.listen))?;
    let addr = listener.local_addr()?;
    let base = cfg.public_url.clone().unwrap_or_else(|| format!("http://{addr}"));
    let head = vault.head();
    // The first line is machine-readable: tests and scripts wait for it. Printing must never
    // take the server down (a closed stdout pipe is not a reason to stop serving).
    let mut banner = format!("licvault listening on {addr}\n");
    banner += &format!("  data:        {}\n", cfg.data.display());
    banner += &format!("  log:         {} leaves; checkpoint at {base}/v1/log/checkpoint\n", head.size);
    banner += &format!("  log key:     {}\n", vault.log_verifier_key());
    banner += &format!("  catalogue:   {base}/v1/licence-types\n");
    banner += &format!("  health:      {base}/healthz   metrics: {base}/metrics\n");
    if cfg.demo {
        banner += "  demo tokens: fixtures/demo-clients.json (README.md walks through issue → verify → revoke)\n";
    }
    {
        use std::io::Write;
        let mut out = std::io::stdout().lock();
        let _ = out.write_all(banner.as_bytes());
        let _ = out.flush();
    }
    let state = AppState { vault: vault.clone(), metrics: Arc::new(Metrics::default()) };
    let served = crate::http::serve(listener, state).await;
    vault.close();
    served?;
    Ok(())
}

async fn clients(cmd: ClientsCommand) -> Result<()> {
    match cmd {
        ClientsCommand::Add { store, id, name, role, uscc, types } => {
            let Some(role) = Role::parse(&role) else {
                bail!("unknown role {role:?}: issuer, verifier, holder_channel, auditor or admin");
            };
            let vault = open(&store).await?;
            let added = vault.add_client(Client { id: id.clone(), name, role, uscc, types }, None).await;
            vault.close();
            let token = added?;
            println!("client {id} added; its bearer token (shown once, stored only as a hash):");
            println!("{token}");
        }
        ClientsCommand::List { store } => {
            let vault = open(&store).await?;
            vault.close();
            for c in vault.clients() {
                println!("{:<16} {:<15} {:<20} {}", c.id, c.role.as_str(), c.uscc.as_deref().unwrap_or("-"), c.name);
            }
        }
    }
    Ok(())
}

fn verify_offline(input: &str, trust_dir: &Path) -> Result<ExitCode> {
    let trust =
        TrustList::load(trust_dir).with_context(|| format!("loading the trust list from {}", trust_dir.display()))?;
    let document = match std::fs::read(input) {
        // A file of ASCII text holds an LV1: payload or base64; anything else is the COSE bytes.
        Ok(bytes) if !bytes.is_empty() && bytes.is_ascii() => {
            vault::verify::decode_presented(&String::from_utf8_lossy(&bytes)).map_err(anyhow::Error::msg)?
        }
        Ok(bytes) => bytes,
        Err(_) => vault::verify::decode_presented(input).map_err(anyhow::Error::msg)?,
    };
    match vault::verify::verify_offline(&trust, &document, vault::unix_now()) {
        Ok((licence, cert, status)) => {
            println!("signature: valid (signed by {} {}, kid {})", cert.name, cert.uscc, hex::encode(cert.kid));
            println!("licence:   {} {} ({})", licence.id, licence.type_name, licence.number);
            println!("holder:    {} {}", licence.holder_name, licence.holder.masked());
            println!("validity:  {}", status.as_str());
            println!("note:      offline verification cannot know whether the licence was suspended, revoked or");
            println!("           superseded since; POST /v1/verify asks the vault.");
            Ok(if status == crate::domain::Status::Valid { ExitCode::SUCCESS } else { ExitCode::from(2) })
        }
        Err(r) => {
            println!("verdict:   {:?}", r.kind);
            println!("reason:    {}", r.reason);
            Ok(ExitCode::from(1))
        }
    }
}
