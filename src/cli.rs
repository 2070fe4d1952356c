//! The `licvault` command line: `serve`, `check`, `keys init|seal`, `clients …` (through the
//! running server's admin API; `clients bootstrap` and `clients disable-demo` open the store),
//! `holders allow-pilot`, `verify`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};

use crate::config::Config;
use crate::crypto::keygen::{self, DepartmentSpec};
use crate::crypto::TrustList;
use crate::http::AppState;
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
    /// Replay the whole log offline: every leaf, the hash chain, the tree and the signed
    /// checkpoint; then compare every licence record with its leaves and document. Opens the
    /// store read-only (run it while the server is stopped, or on a copy of the data directory).
    Check {
        #[arg(long, env = "LICVAULT_DATA", default_value = "data/licvault")]
        data: PathBuf,
        #[command(flatten)]
        log: LogKeyArgs,
    },
    /// Back up the store while the server runs: a copy of one point in time (every batch of the
    /// log whole or absent) into OUT, a new directory (mode 0700), replayed and verified before
    /// it is reported (a copy that caught the server between a flush and the removal of a
    /// write-ahead log is taken again). `licvault restore` verifies it whole again.
    Backup {
        #[arg(long, env = "LICVAULT_DATA", default_value = "data/licvault")]
        data: PathBuf,
        out: PathBuf,
        /// The copy is verified before it is reported (only the public log.vkey is needed).
        #[command(flatten)]
        log: LogKeyArgs,
    },
    /// Restore a backup into DATA, a new directory: copy it beside DATA, replay and verify the
    /// whole log (chain, tree, signed checkpoint, the keys the log was created with) and every
    /// record and index against it, and only then move it into place. A backup that does not
    /// verify is refused, naming the leaf or the row, and DATA is left absent.
    Restore {
        backup: PathBuf,
        #[arg(long, env = "LICVAULT_DATA", default_value = "data/licvault")]
        data: PathBuf,
        /// With KEYS: log.vkey and commitment.key must be those the log was created with.
        #[command(flatten)]
        log: LogKeyArgs,
    },
    /// Migrate existing licences: send FILE (JSON lines, each the body of POST /v1/licences,
    /// with `issue_date` for the original 发证日期 and an optional `key`) to URL/v1/licences/batch,
    /// with a progress bar. Each line's Idempotency-Key is its `key`, else the SHA-256 of the
    /// line, so running it again changes nothing. Bad lines are reported with their reasons and
    /// the rest go on; the report (JSON lines) lets a second run skip what was issued. The token
    /// comes from LICVAULT_ISSUER_TOKEN or --token-file.
    Import {
        /// The vault's base URL, e.g. https://licvault.example.gov.cn
        url: String,
        file: PathBuf,
        /// Legacy values mapped to the catalogue's: {"field name": {"legacy": "catalogue value"}}.
        #[arg(long)]
        map: Option<PathBuf>,
        /// Where each line's outcome goes (default FILE.report.jsonl); lines it says were issued
        /// are skipped on a second run.
        #[arg(long)]
        report: Option<PathBuf>,
        /// Lines per request (1 to 1,000).
        #[arg(long, default_value_t = 500)]
        batch: usize,
        /// A file holding an issuer client's bearer token (else LICVAULT_ISSUER_TOKEN).
        #[arg(long)]
        token_file: Option<PathBuf>,
    },
    /// Client systems and their bearer tokens, through the running server's admin API.
    Clients {
        #[command(subcommand)]
        command: ClientsCommand,
    },
    /// Holder numbers: administrator overrides for pre-2015 pilot codes (run while the server is stopped).
    Holders {
        #[command(subcommand)]
        command: HoldersCommand,
    },
    /// Verify a document offline: signature, trust chain, disclosures, validity period, and,
    /// with a trust directory from `licvault trust pull`, its status as of the status list.
    Verify {
        /// A QR image (PNG or JPEG), a file holding COSE_Sign1 bytes, base64 or an LV1:/LV2: payload;
        /// or the payload itself.
        input: String,
        /// Directory with root.crt.pem and departments/*.crt.pem; with trust.json and
        /// status-lists/ (from `licvault trust pull`) the status is checked too.
        #[arg(long, default_value = "keys")]
        trust: PathBuf,
        /// Refuse a status list older than this many seconds (exit 3).
        #[arg(long)]
        max_age: Option<u64>,
        /// A witness's verifier key (repeat for more): the log checkpoint pulled with the trust
        /// list must be cosigned by --quorum of them (else exit 1), so that the trust material
        /// comes from the view of the log the witnesses saw.
        #[arg(long = "witness")]
        witnesses: Vec<String>,
        #[arg(long, default_value_t = 1)]
        quorum: usize,
    },
    /// The trust list and status lists, for verifying offline.
    Trust {
        #[command(subcommand)]
        command: TrustCommand,
    },
    /// Audit bundles: export a range of the log (auditor), verify one offline.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// A witness against split views (c2sp.org/tlog-witness), and checking cosignatures.
    Witness {
        #[command(subcommand)]
        command: WitnessCommand,
    },
    /// The three levels' certification authorities (spec/formats.md §9.1): the national root,
    /// provinces' CAs, cross-certificates of city platform roots, revocation lists.
    Federation {
        #[command(subcommand)]
        command: FederationCommand,
    },
}

#[derive(Subcommand)]
enum FederationCommand {
    /// A CA in DIR (ca.crt.pem, ca.key.pem 0600; keep it offline): the national root, or with
    /// --issuer a province's CA certified by the national root in that directory.
    Ca {
        dir: PathBuf,
        /// The platform's name, e.g. 广东省政务服务平台.
        #[arg(long)]
        name: String,
        /// The directory of the CA that certifies this one (none: a national root).
        #[arg(long)]
        issuer: Option<PathBuf>,
        #[arg(long, default_value_t = 3650)]
        days: i64,
        #[arg(long)]
        force: bool,
    },
    /// The cross-certificate by which the province's CA in --issuer certifies a city platform's
    /// root (its root.crt.pem), written to OUT.
    CrossCertify {
        city_root: PathBuf,
        #[arg(long)]
        issuer: PathBuf,
        #[arg(long)]
        out: PathBuf,
        #[arg(long, default_value_t = 3650)]
        days: i64,
    },
    /// A revocation list (X.509 CRL) of the CA in --issuer, numbered --number (higher than the
    /// last), current for --days, listing the certificates given with --revoke, written to OUT.
    Crl {
        #[arg(long)]
        issuer: PathBuf,
        #[arg(long)]
        number: u64,
        #[arg(long, default_value_t = 7)]
        days: i64,
        /// A certificate (PEM) this CA issued, to revoke (repeat for more).
        #[arg(long)]
        revoke: Vec<PathBuf>,
        /// Why: key-compromise (the default: the key is refused in every certificate that carries
        /// it), superseded, cessation-of-operation, affiliation-changed or privilege-withdrawn (only
        /// this certificate is revoked). Either way a revoked certificate vouches for nothing.
        #[arg(long, default_value = "key-compromise")]
        reason: String,
        #[arg(long)]
        out: PathBuf,
    },
}

#[derive(Subcommand)]
enum WitnessCommand {
    /// Make a witness's cosigning key in DIR (witness.key.pem, witness.vkey); prints its
    /// verifier key, which the vault's --witness names.
    Init {
        dir: PathBuf,
        /// The witness's name, e.g. witness.audit.example.gov.cn
        #[arg(long)]
        name: String,
        #[arg(long)]
        force: bool,
    },
    /// Serve POST /add-checkpoint: cosign a log's checkpoint only when it is consistent with
    /// the last one cosigned for that log (kept in --state, synced before answering).
    Serve {
        #[arg(long, default_value = "127.0.0.1:9090")]
        listen: std::net::SocketAddr,
        /// The directory `licvault witness init` wrote.
        #[arg(long)]
        keys: PathBuf,
        /// The logs this witness follows: their verifier keys (repeat for more).
        #[arg(long = "log-key", required = true)]
        log_keys: Vec<String>,
        #[arg(long)]
        state: PathBuf,
    },
    /// Check a checkpoint note: signed by the log, and cosigned by at least --quorum of the
    /// witnesses given. Exit 0 when it is, 1 when not.
    Verify {
        /// A file holding the note (GET /v1/log/checkpoint).
        note: PathBuf,
        #[arg(long)]
        log_key: String,
        /// A witness's verifier key (repeat for more).
        #[arg(long = "witness", required = true)]
        witnesses: Vec<String>,
        #[arg(long, default_value_t = 1)]
        quorum: usize,
    },
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Fetch GET URL/v1/audit/export?from=&to= into OUT (through OUT.part, renamed when whole).
    /// The token comes from LICVAULT_AUDITOR_TOKEN or --token-file, never the command line.
    Export {
        /// The vault's base URL, e.g. https://licvault.example.gov.cn
        url: String,
        /// First leaf: 0, or the size of a checkpoint you verified before (GET
        /// /v1/log/checkpoints/{size} has every one).
        #[arg(long)]
        from: u64,
        /// End (exclusive): a checkpoint's size; default the newest.
        #[arg(long)]
        to: Option<u64>,
        out: PathBuf,
        /// A file holding an auditor client's bearer token (else LICVAULT_AUDITOR_TOKEN).
        #[arg(long)]
        token_file: Option<PathBuf>,
    },
    /// Re-derive everything in a bundle: each leaf, the hash chain, the back-pointers, the
    /// tree, both signed checkpoints, the consistency proof; exit 0 only when all hold.
    Verify {
        bundle: PathBuf,
        /// The log's verifier key (C2SP `name+keyid+base64`), or a file holding it.
        #[arg(long)]
        log_key: String,
        /// A checkpoint note you verified before (a file); it must be the log's tree at its size.
        #[arg(long)]
        previous: Vec<PathBuf>,
        /// A witness's verifier key (repeat for more): the bundle must end at a checkpoint that
        /// --quorum of them cosigned, given as --previous (GET /v1/log/checkpoint, then export
        /// --to its size).
        #[arg(long = "witness")]
        witnesses: Vec<String>,
        #[arg(long, default_value_t = 1)]
        quorum: usize,
    },
}

#[derive(Subcommand)]
enum TrustCommand {
    /// Fetch GET URL/v1/trust and every status list into DIR (checked: the certificate chain,
    /// the digest, each list's signature).
    Pull {
        /// The vault's base URL, e.g. https://licvault.example.gov.cn
        url: String,
        dir: PathBuf,
        /// The trust digest to expect (hex): refuse anything else.
        #[arg(long)]
        pin: Option<String>,
    },
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Create a root CA, a seal key and certificate per department, a log key, a commitment
    /// secret. The serving keys go to DIR; the root CA's private key to --root-dir, apart.
    Init {
        dir: PathBuf,
        #[arg(long, default_value = "fixtures/departments.json")]
        departments: PathBuf,
        /// Where the root CA's private key goes (default: DIR-root-ca). Keep it offline.
        #[arg(long)]
        root_dir: Option<PathBuf>,
        /// Overwrite existing key files.
        #[arg(long)]
        force: bool,
    },
    /// A new seal certificate and key for one department (rotation), signed by the root CA.
    /// The running server loads it on POST /v1/admin/keys/reload or SIGHUP.
    Seal {
        /// The serving key directory.
        dir: PathBuf,
        #[arg(long)]
        root_dir: PathBuf,
        /// The department's USCC (from --departments).
        #[arg(long)]
        department: String,
        #[arg(long, default_value = "fixtures/departments.json")]
        departments: PathBuf,
        /// File name stem under DIR/departments/ (default: USCC.YYYYMMDD).
        #[arg(long)]
        name: Option<String>,
        /// Days of validity.
        #[arg(long, default_value_t = 3650)]
        days: i64,
        #[arg(long)]
        force: bool,
    },
}

/// The log's verifier key, given or read from the keys directory.
#[derive(clap::Args)]
struct LogKeyArgs {
    /// The log's verifier key (C2SP `name+keyid+base64`); default: KEYS/log.vkey.
    #[arg(long)]
    log_key: Option<String>,
    #[arg(long, env = "LICVAULT_KEYS", default_value = "keys")]
    keys: PathBuf,
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

/// How to reach the running server's admin API. The token comes from the environment or a
/// file, never the command line (where `ps` shows it to every user).
#[derive(clap::Args)]
struct AdminArgs {
    #[arg(long, env = "LICVAULT_URL", default_value = "http://127.0.0.1:8080")]
    url: String,
    /// A file holding an admin client's bearer token (else LICVAULT_ADMIN_TOKEN).
    #[arg(long)]
    token_file: Option<PathBuf>,
}

/// A bearer token from `file`, else from the environment variable `var` (never the command
/// line, where `ps` shows it); `who` names the client it must belong to.
fn bearer_token(file: Option<&Path>, var: &str, who: &str) -> Result<String> {
    match file {
        Some(p) => {
            Ok(std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?.trim().to_string())
        }
        None => std::env::var(var).with_context(|| format!("set {var} to {who}'s token, or pass --token-file")),
    }
}

impl AdminArgs {
    fn token(&self) -> Result<String> {
        bearer_token(self.token_file.as_deref(), "LICVAULT_ADMIN_TOKEN", "an admin client")
    }
}

#[derive(Subcommand)]
enum ClientsCommand {
    /// Register a client; prints its bearer token once.
    Add {
        #[command(flatten)]
        admin: AdminArgs,
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
        /// Licence type codes this client may use (repeatable; an issuer without any: every type its department may issue; a verifier: the conditionally shared types it may see, '*' for every type, none without any).
        #[arg(long = "type")]
        types: Vec<String>,
        /// RFC 3339 time after which the client's tokens stop working.
        #[arg(long)]
        expires_at: Option<String>,
    },
    /// List clients (tokens are never shown: only their hashes are stored).
    List {
        #[command(flatten)]
        admin: AdminArgs,
    },
    /// Disable a client: every token of it is refused from now on.
    Disable {
        #[command(flatten)]
        admin: AdminArgs,
        id: String,
        #[arg(long)]
        reason: String,
    },
    /// Give a client a new token (printed once); the old one stops working at once or after --grace.
    Rotate {
        #[command(flatten)]
        admin: AdminArgs,
        id: String,
        #[arg(long)]
        reason: String,
        /// Seconds the old token keeps working (0 to 604800).
        #[arg(long, default_value_t = 0)]
        grace: i64,
    },
    /// Disable every client that still accepts a public demo token (fixtures/demo-clients.json),
    /// directly in the store (the server must be stopped); each is a logged change.
    DisableDemo {
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Register the first admin client directly in the store (the server must be stopped):
    /// the one way in before any admin token exists.
    Bootstrap {
        #[command(flatten)]
        store: StoreArgs,
        #[arg(long, default_value = "admin")]
        id: String,
        #[arg(long, default_value = "平台管理员")]
        name: String,
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
        Command::Keys { command: KeysCommand::Init { dir, departments, root_dir, force } } => {
            let f = departments_file(&departments)?;
            let root_dir = root_dir.unwrap_or_else(|| {
                let mut name = dir.file_name().map(|n| n.to_os_string()).unwrap_or_else(|| "keys".into());
                name.push("-root-ca");
                dir.with_file_name(name)
            });
            let inside = |a: &Path, b: &Path| {
                let abs = |p: &Path| std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf());
                abs(a).starts_with(abs(b))
            };
            if inside(&root_dir, &dir) {
                bail!(
                    "--root-dir {} is inside {}: the serving key directory must not hold the root CA's private key",
                    root_dir.display(),
                    dir.display()
                );
            }
            let vkey = keygen::init(&dir, &root_dir, &f.platform.name, &f.log_origin, &f.departments, force)?;
            println!("created serving keys in {}", dir.display());
            println!("root CA private key in {} (keep it offline; the server never needs it)", root_dir.display());
            println!("log verifier key: {vkey}");
            Ok(ExitCode::SUCCESS)
        }
        Command::Keys { command: KeysCommand::Seal { dir, root_dir, department, departments, name, days, force } } => {
            let f = departments_file(&departments)?;
            let d = f
                .departments
                .iter()
                .find(|d| d.uscc == department)
                .with_context(|| format!("{department} is not in {}", departments.display()))?;
            let now = time::OffsetDateTime::now_utc();
            let stem = name
                .unwrap_or_else(|| format!("{}.{:04}{:02}{:02}", d.uscc, now.year(), u8::from(now.month()), now.day()));
            keygen::new_seal(&dir, &root_dir, d, &stem, now - time::Duration::minutes(5), days, force)?;
            println!("new seal for {} in {}/departments/{stem}.{{crt,key}}.pem", d.name, dir.display());
            println!("load it into the running server: POST /v1/admin/keys/reload (or SIGHUP)");
            Ok(ExitCode::SUCCESS)
        }
        Command::Check { data, log } => check(&data, log.log_key, &log.keys),
        Command::Backup { data, out, log } => backup(&data, &out, log.log_key, &log.keys),
        Command::Restore { backup, data, log } => restore(&backup, &data, log.log_key, &log.keys),
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
        Command::Verify { input, trust, max_age, witnesses, quorum } => {
            if !witnesses.is_empty() {
                let keys = witness_keys(&witnesses, quorum)?;
                if let Some(why) = unwitnessed(&trust, &keys, quorum)? {
                    println!("verdict:   Unwitnessed");
                    println!("reason:    {why}");
                    return Ok(ExitCode::from(1));
                }
            }
            verify_offline(&input, &trust, max_age)
        }
        Command::Trust { command: TrustCommand::Pull { url, dir, pin } } => {
            runtime()?.block_on(trust_pull(&url, &dir, pin.as_deref())).map(|_| ExitCode::SUCCESS)
        }
        Command::Audit { command: AuditCommand::Export { url, from, to, out, token_file } } => {
            let token = bearer_token(token_file.as_deref(), "LICVAULT_AUDITOR_TOKEN", "an auditor client")?;
            runtime()?.block_on(audit_export(&url, &token, from, to, &out)).map(|_| ExitCode::SUCCESS)
        }
        Command::Import { url, file, map, report, batch, token_file } => {
            let token = bearer_token(token_file.as_deref(), "LICVAULT_ISSUER_TOKEN", "an issuer client")?;
            let report = report.unwrap_or_else(|| file.with_extension("report.jsonl"));
            let done = runtime()?.block_on(crate::import::run(&url, &token, &file, map.as_deref(), &report, batch))?;
            println!("{done}");
            Ok(if done.refused == 0 { ExitCode::SUCCESS } else { ExitCode::from(1) })
        }
        Command::Audit { command: AuditCommand::Verify { bundle, log_key, previous, witnesses, quorum } } => {
            let witnesses = if witnesses.is_empty() { Vec::new() } else { witness_keys(&witnesses, quorum)? };
            audit_verify(&bundle, &log_key, &previous, &witnesses, quorum)
        }
        Command::Federation { command } => federation(command),
        Command::Witness { command: WitnessCommand::Init { dir, name, force } } => {
            let vkey = keygen::witness(&dir, &name, force)?;
            println!(
                "witness key in {}/witness.key.pem; its verifier key (for the vault's --witness URL=VKEY):",
                dir.display()
            );
            println!("{vkey}");
            Ok(ExitCode::SUCCESS)
        }
        Command::Witness { command: WitnessCommand::Serve { listen, keys, log_keys, state } } => {
            let signer = Box::new(crate::witness::load_signer(&keys).map_err(anyhow::Error::msg)?);
            let logs = log_keys
                .iter()
                .map(|k| crate::log::note::Verifier::parse(k).map_err(|e| anyhow::anyhow!("--log-key {k}: {e}")))
                .collect::<Result<Vec<_>>>()?;
            let witness = Arc::new(crate::witness::Witness::new(signer, logs, &state)?);
            runtime()?.block_on(async move {
                let listener = tokio::net::TcpListener::bind(listen).await?;
                println!("witness listening on http://{listen}/add-checkpoint");
                crate::http::witness::serve(listener, witness).await?;
                Ok::<_, anyhow::Error>(ExitCode::SUCCESS)
            })
        }
        Command::Witness { command: WitnessCommand::Verify { note, log_key, witnesses, quorum } } => {
            let text = std::fs::read_to_string(&note).with_context(|| format!("reading {}", note.display()))?;
            let log = crate::log::note::Verifier::parse(&log_key).map_err(|e| anyhow::anyhow!("--log-key: {e}"))?;
            let cp = crate::log::note::Checkpoint::open(&text, &log).map_err(|e| anyhow::anyhow!("checkpoint: {e}"))?;
            let keys = witness_keys(&witnesses, quorum)?;
            let n = crate::log::cosign::cosignatures(&text, &keys);
            if n >= quorum {
                println!(
                    "checkpoint ok: size {}, signed by the log, cosigned by {n} of {} witnesses",
                    cp.size,
                    keys.len()
                );
                Ok(ExitCode::SUCCESS)
            } else {
                println!(
                    "checkpoint NOT ok: size {}, cosigned by {n} of {} witnesses, {quorum} needed",
                    cp.size,
                    keys.len()
                );
                Ok(ExitCode::from(1))
            }
        }
    }
}

/// `licvault audit export`: streams the bundle to OUT.part with a progress bar, then renames it.
async fn audit_export(url: &str, token: &str, from: u64, to: Option<u64>, out: &Path) -> Result<()> {
    use tokio::io::AsyncWriteExt;
    let mut path = format!("{}/v1/audit/export?from={from}", url.trim_end_matches('/'));
    if let Some(to) = to {
        path.push_str(&format!("&to={to}"));
    }
    let mut res = reqwest::Client::new()
        .get(&path)
        .bearer_auth(token)
        .send()
        .await
        .with_context(|| format!("fetching {path}"))?;
    if !res.status().is_success() {
        let status = res.status();
        bail!("{path}: {status}: {}", res.text().await.unwrap_or_default());
    }
    let part = out.with_extension("part");
    let mut file = tokio::fs::File::create(&part).await.with_context(|| format!("creating {}", part.display()))?;
    let bar = indicatif::ProgressBar::new_spinner();
    bar.set_style(
        indicatif::ProgressStyle::with_template("{spinner} {bytes} {binary_bytes_per_sec} {elapsed}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
    );
    while let Some(chunk) = res.chunk().await.with_context(|| format!("reading {path}"))? {
        file.write_all(&chunk).await?;
        bar.inc(chunk.len() as u64);
    }
    file.sync_all().await?;
    drop(file);
    bar.finish_and_clear();
    std::fs::rename(&part, out).with_context(|| format!("renaming {} to {}", part.display(), out.display()))?;
    println!("exported {} bytes to {} (check it with licvault audit verify)", bar.position(), out.display());
    Ok(())
}

/// Why the log checkpoint in a pulled trust directory is not cosigned by `quorum` of `keys`, if
/// it is not.
fn unwitnessed(dir: &Path, keys: &[crate::log::cosign::WitnessKey], quorum: usize) -> Result<Option<String>> {
    let Some(t) = pulled_trust(dir)? else {
        return Ok(Some(format!("{} has no trust.json (licvault trust pull URL DIR fetches it)", dir.display())));
    };
    let note = std::fs::read_to_string(dir.join("checkpoint")).unwrap_or_default();
    let log = crate::log::note::Verifier::parse(&t.log.verifier_key).map_err(|e| anyhow::anyhow!("log key: {e}"))?;
    if let Err(e) = crate::log::note::Checkpoint::open(&note, &log) {
        return Ok(Some(format!("the pulled log checkpoint does not verify: {e}")));
    }
    let n = crate::log::cosign::cosignatures(&note, keys);
    Ok((n < quorum)
        .then(|| format!("the pulled log checkpoint is cosigned by {n} of {} witnesses, {quorum} needed", keys.len())))
}

/// Witnesses' verifier keys, each once, and a quorum they can meet.
fn witness_keys(keys: &[String], quorum: usize) -> Result<Vec<crate::log::cosign::WitnessKey>> {
    let mut out: Vec<crate::log::cosign::WitnessKey> = Vec::new();
    for k in keys {
        let key = crate::log::cosign::WitnessKey::parse(k).map_err(|e| anyhow::anyhow!("--witness {k}: {e}"))?;
        if out.iter().any(|o| o.name() == key.name()) {
            bail!("--witness {} is given twice", key.name());
        }
        out.push(key);
    }
    if quorum == 0 || quorum > out.len() {
        bail!("--quorum {quorum} of {} witnesses: it must be 1 to {}", out.len(), out.len());
    }
    Ok(out)
}

/// `licvault audit verify`: exit 0 when the bundle holds, 1 with the first bad leaf otherwise.
fn audit_verify(
    bundle: &Path,
    log_key: &str,
    previous: &[PathBuf],
    witnesses: &[crate::log::cosign::WitnessKey],
    quorum: usize,
) -> Result<ExitCode> {
    let key_text = match std::fs::read_to_string(log_key) {
        Ok(t) => t.trim().to_string(),
        Err(_) => log_key.to_string(),
    };
    let key = crate::log::note::Verifier::parse(&key_text).map_err(|e| anyhow::anyhow!("--log-key: {e}"))?;
    let previous_notes: Vec<String> = previous
        .iter()
        .map(|p| std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display())))
        .collect::<Result<_>>()?;
    let file = std::fs::File::open(bundle).with_context(|| format!("opening {}", bundle.display()))?;
    let mut reader = std::io::BufReader::with_capacity(1 << 20, file);
    let bar = indicatif::ProgressBar::new(0);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{spinner} {pos}/{len} leaves [{bar:40}] {per_sec} eta {eta}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let started = std::time::Instant::now();
    let result = crate::log::audit::verify_bundle(&mut reader, &key, &previous_notes, |done, total| {
        bar.set_length(total);
        bar.set_position(done);
    });
    bar.finish_and_clear();
    // With witnesses: the bundle ends at a checkpoint a quorum of them cosigned (a --previous
    // note, which the bundle has just shown is the log's tree at its size).
    let result = result.and_then(|s| {
        if witnesses.is_empty() {
            return Ok(s);
        }
        let witnessed = previous_notes.iter().any(|note| {
            crate::log::note::Checkpoint::open(note, &key).is_ok_and(|cp| cp.size == s.to)
                && crate::log::cosign::cosignatures(note, witnesses) >= quorum
        });
        if witnessed {
            Ok(s)
        } else {
            Err(crate::log::audit::AuditError::Bundle(format!(
                "no --previous checkpoint at size {} is cosigned by {quorum} of the {} witnesses",
                s.to,
                witnesses.len()
            )))
        }
    });
    match result {
        Ok(s) => {
            let secs = started.elapsed().as_secs_f64();
            let n = s.to - s.from;
            println!(
                "bundle ok: leaves {}..{} ({n}), root {}",
                s.from,
                s.to,
                base64::Engine::encode(&base64::engine::general_purpose::STANDARD, s.root)
            );
            println!("  every leaf decodes, chains to the one before, is in time order and points back to its licence's last leaf;");
            println!(
                "  with the tree at {} they make the tree at {}, which the signed checkpoint at {} holds",
                s.from, s.to, s.signed
            );
            if !previous.is_empty() {
                println!("  {} previous checkpoint(s) are this log's tree at their size", s.previous_linked);
            }
            if let (Some(a), Some(b)) = (s.first_ms, s.last_ms) {
                println!("  from {} to {}", rfc3339_ms(a), rfc3339_ms(b));
            }
            for (kind, count) in &s.kinds {
                println!("  {count:>10}  {kind}");
            }
            println!("  {:.0} leaves/s", n as f64 / secs.max(1e-9));
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            println!("bundle NOT ok: {e}");
            Ok(ExitCode::from(1))
        }
    }
}

fn rfc3339_ms(ms: u64) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok())
        .unwrap_or_else(|| ms.to_string())
}

#[derive(serde::Deserialize)]
struct DepartmentsFile {
    platform: Platform,
    log_origin: String,
    departments: Vec<DepartmentSpec>,
}

#[derive(serde::Deserialize)]
struct Platform {
    name: String,
}

fn departments_file(path: &Path) -> Result<DepartmentsFile> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))
}

async fn open(args: &StoreArgs) -> Result<Arc<Vault>> {
    let parts = load_parts(&args.data, &args.keys, &args.fixtures)?;
    Ok(Vault::start(parts).await?)
}

/// Creates the data directory (mode 0700: it holds every licence) and opens the store.
pub fn open_store(data: &Path) -> Result<RocksStore> {
    if !data.exists() {
        let mut b = std::fs::DirBuilder::new();
        b.recursive(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::DirBuilderExt;
            b.mode(0o700);
        }
        b.create(data).with_context(|| format!("creating {}", data.display()))?;
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(data).with_context(|| format!("reading {}", data.display()))?.permissions().mode();
        if mode & 0o077 != 0 {
            tracing::warn!(dir = %data.display(), mode = format!("{:o}", mode & 0o777), "the data directory was open to others: setting it to 0700");
            std::fs::set_permissions(data, std::fs::Permissions::from_mode(0o700))
                .with_context(|| format!("making {} private (chmod 700)", data.display()))?;
        }
    }
    RocksStore::open(data).with_context(|| format!("opening the store in {}", data.display()))
}

/// Opens the store and loads keys, certificates and catalogue.
pub fn load_parts(data: &Path, keys: &Path, fixtures: &Path) -> Result<Parts> {
    let store = open_store(data)?;
    Parts::load(Arc::new(store), keys, fixtures).context("loading keys, certificates and catalogue")
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
    #[serde(default)]
    types: Vec<String>,
    token: String,
}

/// Adds the demo clients that a store does not have yet (by id): a demo store made by an older
/// version gains the clients added to the fixture since; one an administrator disabled stays so.
pub async fn seed_demo(vault: &Arc<Vault>, fixtures: &Path) -> Result<usize> {
    let path = fixtures.join("demo-clients.json");
    let demo: DemoClients =
        serde_json::from_str(&std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?)?;
    let known: std::collections::HashSet<String> = vault.clients().into_iter().map(|c| c.id).collect();
    let clients: Vec<_> = demo
        .clients
        .into_iter()
        .filter(|c| !known.contains(&c.id))
        .map(|c| (Client::new(c.id, c.name, c.role, c.uscc, c.types), Some(c.token)))
        .collect();
    if clients.is_empty() {
        return Ok(0);
    }
    Ok(vault.add_clients(clients, "demo seed").await?.len())
}

async fn serve(cfg: Config) -> Result<()> {
    // The keys are checked before the store is opened: a refused start leaves no trace.
    let placeholder: Arc<dyn crate::store::Store> = Arc::new(crate::store::MemoryStore::new());
    let mut parts =
        Parts::load(placeholder, &cfg.keys, &cfg.fixtures).context("loading keys, certificates and catalogue")?;
    let dev = parts.development_keys();
    if !dev.is_empty() && !cfg.demo {
        bail!(
            "refusing to start: {} is from the public development key set (keys/README.md); pass --demo for a \
             demonstration, or make real keys with `licvault keys init`",
            dev.join(", ")
        );
    }
    if cfg.demo && dev.is_empty() {
        bail!(
            "refusing to start: --demo runs only on the development keys of keys/; with real keys its public demo \
             tokens would open this vault to anyone"
        );
    }
    if !cfg.demo {
        if let Some(p) = crate::vault::keys::root_key_under(&cfg.keys, parts.keyring.trust.root_key()) {
            bail!(
                "refusing to start: {} is the root CA's private key, inside the serving key directory; the server \
                 never needs it: keep it offline",
                p.display()
            );
        }
    }
    let store = Arc::new(open_store(&cfg.data)?);
    parts.store = store.clone();
    parts.tail_check = cfg.check_tail;
    let vault = Vault::start(parts).await?;
    // After start-up's own few writes (a changed catalogue or key set is logged), which the
    // reserve is there to take: a node on a nearly full disk starts and serves reads.
    store.set_reserve(cfg.min_free_space);
    vault.sequencer().set_tree_memory(cfg.tree_memory);
    vault.set_verify_by_hash(cfg.verify_by_hash);
    vault.set_verify_memo(cfg.verify_memo_mib.saturating_mul(1 << 20));
    vault.set_qr_format(cfg.qr_format);
    if !cfg.demo {
        let demo = vault.clients_with_demo_tokens();
        if !demo.is_empty() {
            vault.close();
            bail!(
                "refusing to start: client(s) {} still accept the public demo tokens; disable them with \
                 `licvault clients disable-demo` (server stopped)",
                demo.join(", ")
            );
        }
    }
    if cfg.demo {
        let n = seed_demo(&vault, &cfg.fixtures).await?;
        if n > 0 {
            tracing::info!(clients = n, "seeded the demo clients this store did not have");
        }
    }
    let listener =
        tokio::net::TcpListener::bind(cfg.listen).await.with_context(|| format!("binding {}", cfg.listen))?;
    let metrics_listener = match cfg.metrics_listen {
        Some(a) => Some(tokio::net::TcpListener::bind(a).await.with_context(|| format!("binding {a}"))?),
        None => None,
    };
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
    match &metrics_listener {
        Some(m) => banner += &format!("  health:      {base}/healthz   metrics: http://{}/metrics\n", m.local_addr()?),
        None => banner += &format!("  health:      {base}/healthz   metrics: {base}/metrics (admin token)\n"),
    }
    if cfg.demo {
        banner += "  demo:        DEVELOPMENT KEYS AND TOKENS, public in git: nothing signed here proves anything\n";
        banner += "  demo tokens: fixtures/demo-clients.json (README.md walks through issue → verify → revoke)\n";
    }
    {
        use std::io::Write;
        let mut out = std::io::stdout().lock();
        let _ = out.write_all(banner.as_bytes());
        let _ = out.flush();
    }
    // Links in QR codes name the public URL, never a request's Host header (a proxy could pass
    // any); without --public-url, the address listened on.
    let mut state = AppState::new(vault.clone(), cfg.limits.clone()).with_public_url(Some(base.clone()));
    if !cfg.witnesses.is_empty() {
        let kept = vault.kept_cosigned()?;
        let cosigner = Arc::new(
            crate::witness::Cosigner::new(cfg.witnesses.clone(), cfg.witness_quorum, kept)
                .map_err(anyhow::Error::msg)?,
        );
        let interval = std::time::Duration::from_secs(1);
        tokio::spawn(crate::witness::cosign_forever(vault.clone(), cosigner.clone(), interval));
        state.cosigner = Some(cosigner);
    }
    if let Some(path) = &cfg.peers {
        // The peers record this node's origin with every read it sends them (`on_behalf_of`),
        // by their text rule: one they would refuse is refused here, before any is sent.
        crate::domain::text::clean("the log origin", vault.log_origin(), crate::vault::usage::PLATFORM_MAX_CHARS)
            .map_err(|e| anyhow::anyhow!("--peers: the peers would refuse this node's log origin: {e}"))?;
        state.peers = Some(Arc::new(crate::peers::Peers::load(path).map_err(anyhow::Error::msg)?));
    }
    if let Some(path) = &cfg.mirrors {
        let mcfg = crate::mirror::MirrorConfig::load(path).map_err(anyhow::Error::msg)?;
        let mirrors = crate::mirror::Mirrors::open(&mcfg, |dir| {
            let store: Arc<dyn crate::store::Store> = Arc::new(open_store(dir).map_err(|e| format!("{e:#}"))?);
            Ok(store)
        })
        .await
        .map_err(anyhow::Error::msg)?;
        let mirrors = Arc::new(mirrors);
        vault.set_mirrors(mirrors.clone());
        mirrors.spawn();
    }
    if let Some(m) = metrics_listener {
        tokio::spawn(crate::http::serve_metrics(m, state.clone()));
    }
    #[cfg(unix)]
    {
        let vault = vault.clone();
        if let Ok(mut hup) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
            tokio::spawn(async move {
                while hup.recv().await.is_some() {
                    match vault.reload_keys().await {
                        Ok(seals) => tracing::info!(seals = seals.len(), "SIGHUP: keys reloaded"),
                        Err(e) => tracing::error!(error = %e, "SIGHUP: keys not reloaded; the old ones stay in force"),
                    }
                }
            });
        }
    }
    let served = crate::http::serve(listener, state).await;
    vault.close();
    served?;
    Ok(())
}

/// The log's verifier: `log_key`, else KEYS/log.vkey.
fn log_verifier(log_key: Option<String>, keys: &Path) -> Result<crate::log::note::Verifier> {
    let vkey = match log_key {
        Some(k) => k,
        None => std::fs::read_to_string(keys.join("log.vkey"))
            .with_context(|| format!("reading {} (or pass --log-key)", keys.join("log.vkey").display()))?
            .trim()
            .to_string(),
    };
    crate::log::note::Verifier::parse(&vkey).map_err(|e| anyhow::anyhow!("--log-key: {e}"))
}

/// Replays the log of `store` and compares every record and index with it, with a progress bar:
/// the report and the number of records, or what is wrong (naming the leaf or the row).
fn verify_store(
    store: &RocksStore,
    verifier: &crate::log::note::Verifier,
) -> std::result::Result<(crate::log::replay::Report, usize), String> {
    let bar = indicatif::ProgressBar::new(0);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{spinner} {pos}/{len} leaves [{bar:40}] {per_sec} eta {eta}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let replayed = crate::log::replay::replay(store, verifier, |done, total| {
        bar.set_length(total);
        bar.set_position(done);
    })
    .map_err(|e| format!("log NOT ok: {e}"));
    let result = replayed.and_then(|r| {
        let n = vault::records::compare_records(store, &r.licences).map_err(|e| format!("records NOT ok: {e}"))?;
        crate::log::replay::compare_indexes(store, &r.indexes).map_err(|e| format!("indexes NOT ok: {e}"))?;
        Ok((r, n))
    });
    bar.finish_and_clear();
    result
}

fn check(data: &Path, log_key: Option<String>, keys: &Path) -> Result<ExitCode> {
    let verifier = log_verifier(log_key, keys)?;
    if !data.join("CURRENT").exists() {
        bail!("{} holds no store", data.display());
    }
    let store = RocksStore::open_read_only(data).with_context(|| format!("opening {} read-only", data.display()))?;
    match verify_store(&store, &verifier) {
        Ok((r, records)) => {
            println!("log ok: {} leaves; chain, back-pointers, tree and signed checkpoint verify", r.size);
            println!("records ok: {records} licence records agree with their leaves and documents");
            println!(
                "indexes ok: {} holder rows, {} usage rows, {} annotated-copy rows, {} catalogue changes, as the leaves imply",
                r.indexes.holders.rows, r.indexes.usage.rows, r.indexes.copies.rows, r.indexes.catalogue.rows
            );
            if let (Some(a), Some(b)) = (r.first_ms, r.last_ms) {
                println!("from {} to {}", crate::vault::rfc3339_ms(a), crate::vault::rfc3339_ms(b));
            }
            for (kind, n) in r.kinds {
                println!("  {kind:<24} {n}");
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            println!("{e}");
            Ok(ExitCode::from(1))
        }
    }
}

/// A progress bar over bytes copied.
fn copy_bar() -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new_spinner();
    bar.set_style(
        indicatif::ProgressStyle::with_template("{spinner} copied {msg} ({elapsed})")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
    );
    bar
}

fn copy_with_bar(from: &Path, to: &Path) -> Result<crate::store::rocks::CopyStats> {
    let bar = copy_bar();
    let stats = crate::store::rocks::copy_store(from, to, |s| {
        bar.set_message(format!("{} rows, {} MiB", s.rows, s.bytes >> 20));
        bar.tick();
    });
    bar.finish_and_clear();
    stats.with_context(|| format!("copying {} to {}", from.display(), to.display()))
}

/// Removes a directory when dropped, unless disarmed: a copy that failed half-way leaves
/// nothing behind.
struct RemoveOnDrop(Option<PathBuf>);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        if let Some(p) = self.0.take() {
            std::fs::remove_dir_all(&p).ok();
        }
    }
}

/// Makes `dir`, which must not exist, readable only by this user: a store holds documents and
/// disclosures (personal numbers).
fn new_private_dir(dir: &Path) -> Result<RemoveOnDrop> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new().mode(0o700).create(dir).with_context(|| format!("creating {}", dir.display()))?;
    Ok(RemoveOnDrop(Some(dir.to_path_buf())))
}

fn backup(data: &Path, out: &Path, log_key: Option<String>, keys: &Path) -> Result<ExitCode> {
    let verifier = log_verifier(log_key, keys)?;
    if !data.join("CURRENT").exists() {
        bail!("{} holds no store", data.display());
    }
    if out.exists() {
        bail!("{} exists: a backup goes into a new directory", out.display());
    }
    for attempt in 1..=3 {
        let mut guard = new_private_dir(out)?;
        let stats = copy_with_bar(data, out)?;
        let verified = verify_store(&RocksStore::open_read_only(out)?, &verifier);
        match verified {
            Ok((r, records)) => {
                guard.0 = None;
                let root = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, r.root);
                println!(
                    "backup of {} leaves (root {root}) in {}: {} rows, {} MiB; {records} licence records verify",
                    r.size,
                    out.display(),
                    stats.rows,
                    stats.bytes >> 20
                );
                println!("restore it with: licvault restore {} --data NEW_DIR --keys KEYS", out.display());
                return Ok(ExitCode::SUCCESS);
            }
            Err(e) if attempt < 3 => eprintln!("the copy does not verify ({e}); copying again"),
            Err(e) => {
                println!("backup failed, nothing kept: {e}");
                return Ok(ExitCode::from(1));
            }
        }
    }
    unreachable!("the last attempt returns")
}

fn restore(backup: &Path, data: &Path, log_key: Option<String>, keys: &Path) -> Result<ExitCode> {
    let verifier = log_verifier(log_key, keys)?;
    let committer = vault::load_committer(keys)?;
    if !backup.join("CURRENT").exists() {
        bail!("{} holds no backup", backup.display());
    }
    if data.exists() && std::fs::read_dir(data)?.next().is_some() {
        bail!("{} exists and is not empty: restore into a new directory", data.display());
    }
    // Beside DATA, so that the last step is a rename on the same file system. One that exists
    // is another restore's, running or interrupted: it is not ours to remove.
    let staging = data.with_file_name(format!(
        ".{}.restoring",
        data.file_name().and_then(|n| n.to_str()).context("--data names a directory")?
    ));
    if staging.exists() {
        bail!("{} exists: another restore is running, or was interrupted (remove it then)", staging.display());
    }
    let mut guard = new_private_dir(&staging)?;
    copy_with_bar(backup, &staging)?;
    let verified = {
        let store = RocksStore::open_read_only(&staging)?;
        verify_store(&store, &verifier).and_then(|(r, n)| {
            let fingerprint = committer.fingerprint();
            match r.key_records.first() {
                Some((_, f)) if f[..] != fingerprint[..] => Err(format!(
                    "keys NOT ok: the log was created with another commitment key than {}",
                    keys.join("commitment.key").display()
                )),
                _ => Ok((r, n)),
            }
        })
    };
    match verified {
        Ok((r, records)) => {
            if data.exists() {
                std::fs::remove_dir(data).with_context(|| format!("removing the empty {}", data.display()))?;
            }
            std::fs::rename(&staging, data)
                .with_context(|| format!("moving {} to {}", staging.display(), data.display()))?;
            guard.0 = None;
            println!("restore ok: {} leaves; chain, back-pointers, tree and signed checkpoint verify", r.size);
            println!("records ok: {records} licence records agree with their leaves and documents");
            if r.key_records.is_empty() {
                println!("keys not checked: this log has no log.keys leaf (the server writes one at its next start)");
            }
            if let Some(last) = r.last_ms {
                println!(
                    "the log ends at its leaf {} of {}: what was issued or changed after that is not in it",
                    r.size.saturating_sub(1),
                    crate::vault::rfc3339_ms(last)
                );
            }
            println!("{} is ready to serve", data.display());
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            println!("backup refused, nothing restored: {e}");
            Ok(ExitCode::from(1))
        }
    }
}

/// Calls the running server's admin API.
async fn admin_call(
    admin: &AdminArgs,
    method: reqwest::Method,
    path: &str,
    body: Option<serde_json::Value>,
) -> Result<serde_json::Value> {
    let url = format!("{}{path}", admin.url.trim_end_matches('/'));
    let mut req = reqwest::Client::new().request(method, &url).bearer_auth(admin.token()?);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let res = req.send().await.with_context(|| format!("calling {url} (is the server running?)"))?;
    let status = res.status();
    let v: serde_json::Value = res.json().await.unwrap_or(serde_json::Value::Null);
    if !status.is_success() {
        bail!("{status}: {}", v["detail"].as_str().unwrap_or("no detail"));
    }
    Ok(v)
}

fn print_client(c: &serde_json::Value) {
    let s = |k: &str| c[k].as_str().unwrap_or("-").to_string();
    let state = if c["disabled"].as_bool() == Some(true) { "disabled".to_string() } else { "active".to_string() };
    println!("{:<16} {:<15} {:<20} {:<9} {}", s("id"), s("role"), s("uscc"), state, s("name"));
}

async fn clients(cmd: ClientsCommand) -> Result<()> {
    use reqwest::Method;
    match cmd {
        ClientsCommand::Add { admin, id, name, role, uscc, types, expires_at } => {
            if Role::parse(&role).is_none() {
                bail!("unknown role {role:?}: issuer, verifier, holder_channel, auditor or admin");
            }
            let body = serde_json::json!({ "id": id, "name": name, "role": role, "uscc": uscc, "types": types, "expires_at": expires_at });
            let v = admin_call(&admin, Method::POST, "/v1/admin/clients", Some(body)).await?;
            println!("client {id} added; its bearer token (shown once, stored only as a hash):");
            println!("{}", v["token"].as_str().unwrap_or_default());
        }
        ClientsCommand::List { admin } => {
            let v = admin_call(&admin, Method::GET, "/v1/admin/clients", None).await?;
            for c in v["clients"].as_array().into_iter().flatten() {
                print_client(c);
            }
        }
        ClientsCommand::Disable { admin, id, reason } => {
            let path = format!("/v1/admin/clients/{id}/disable");
            let v = admin_call(&admin, Method::POST, &path, Some(serde_json::json!({ "reason": reason }))).await?;
            print_client(&v["client"]);
        }
        ClientsCommand::Rotate { admin, id, reason, grace } => {
            let path = format!("/v1/admin/clients/{id}/rotate");
            let body = serde_json::json!({ "reason": reason, "old_token_valid_seconds": grace });
            let v = admin_call(&admin, Method::POST, &path, Some(body)).await?;
            println!("client {id}: new bearer token (shown once); the old one stops working in {grace} s:");
            println!("{}", v["token"].as_str().unwrap_or_default());
        }
        ClientsCommand::DisableDemo { store } => {
            let vault = open(&store).await?;
            let ids = vault.clients_with_demo_tokens();
            let mut done = Vec::new();
            for id in &ids {
                match vault.disable_client(id, "公开的演示令牌停用", "licvault clients disable-demo").await {
                    Ok(_) => done.push(id.clone()),
                    Err(e) => {
                        vault.close();
                        return Err(e.into());
                    }
                }
            }
            vault.close();
            println!("disabled {} client(s) that accepted public demo tokens: {}", done.len(), done.join(", "));
        }
        ClientsCommand::Bootstrap { store, id, name } => {
            let vault = open(&store).await?;
            let admin = Client::new(id.clone(), name, Role::Admin, None, Vec::new());
            let added = vault.add_client(admin, None, "licvault clients bootstrap").await;
            vault.close();
            let token = added?;
            println!("admin client {id} added; its bearer token (shown once, stored only as a hash):");
            println!("{token}");
        }
    }
    Ok(())
}

/// The trust list a pulled directory holds (`trust.json`), if any.
fn pulled_trust(dir: &Path) -> Result<Option<crate::http::trust::Trust>> {
    let path = dir.join("trust.json");
    if !path.exists() {
        return Ok(None);
    }
    let text = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
    Ok(Some(serde_json::from_slice(&text).with_context(|| format!("{} is not a trust list", path.display()))?))
}

/// The platform key signing now, by kid, of a pulled trust list: status lists and presentations
/// live minutes to a day, so a retired key signs neither.
fn platform_keys(t: &crate::http::trust::Trust) -> Vec<([u8; 8], ed25519_dalek::VerifyingKey)> {
    all_platform_keys(t)
        .into_iter()
        .filter(|(kid, _)| t.platform_keys.iter().any(|k| k.current && k.kid == hex::encode(kid)))
        .collect()
}

/// Every platform key of a pulled trust list, by kid (for its digest).
fn all_platform_keys(t: &crate::http::trust::Trust) -> Vec<([u8; 8], ed25519_dalek::VerifyingKey)> {
    use base64::Engine;
    t.platform_keys
        .iter()
        .filter_map(|k| {
            let kid: [u8; 8] = hex::decode(&k.kid).ok()?.try_into().ok()?;
            let key: [u8; 32] =
                base64::engine::general_purpose::STANDARD.decode(&k.public_key).ok()?.try_into().ok()?;
            Some((kid, ed25519_dalek::VerifyingKey::from_bytes(&key).ok()?))
        })
        .collect()
}

/// A presentation signed by a platform key of the pulled trust list, if `document` is one.
fn presentation_in(
    document: &[u8],
    trust: Option<&crate::http::trust::Trust>,
) -> Option<Result<crate::domain::presentation::Presentation, String>> {
    let env = crate::crypto::cose::Envelope::parse(document).ok()?;
    if !vault::presentations::is_presentation(&env) {
        return None;
    }
    let Some(t) = trust else {
        return Some(Err("a presentation: its platform key is in trust.json (licvault trust pull)".into()));
    };
    let keys = platform_keys(t);
    let Some((_, key)) = keys.iter().find(|(kid, _)| *kid == env.kid()) else {
        return Some(Err("a presentation signed by no platform key of the trust list".into()));
    };
    Some(vault::presentations::open(&env, key))
}

/// The document an input names: a QR image, a file of COSE bytes or text, or the text itself.
fn read_input(input: &str) -> Result<Vec<u8>> {
    match std::fs::read(input) {
        Ok(bytes) if bytes.starts_with(b"\x89PNG") || bytes.starts_with(&[0xff, 0xd8]) => {
            let text = crate::qr::read_image(&bytes).map_err(|e| anyhow::anyhow!("{input}: {e}"))?;
            vault::verify::decode_presented(&text).map_err(anyhow::Error::msg)
        }
        // A file of ASCII text holds an LV1:/LV2: payload or base64; anything else is the COSE bytes.
        Ok(bytes) if !bytes.is_empty() && bytes.is_ascii() => {
            vault::verify::decode_presented(&String::from_utf8_lossy(&bytes)).map_err(anyhow::Error::msg)
        }
        Ok(bytes) => Ok(bytes),
        Err(_) => vault::verify::decode_presented(input).map_err(anyhow::Error::msg),
    }
}

/// `licvault verify`: exit 0 valid, 1 refused (malformed, signature, issuer), 2 not valid (dates,
/// status list or presentation), 3 the status list has expired or is older than `--max-age`.
/// A status list that is missing or does not verify is an error (exit 1 with its reason).
fn verify_offline(input: &str, trust_dir: &Path, max_age: Option<u64>) -> Result<ExitCode> {
    let trust = TrustList::load_federated(trust_dir)
        .with_context(|| format!("loading the trust list from {}", trust_dir.display()))?;
    let document = match read_input(input) {
        Ok(d) => d,
        Err(e) => {
            println!("verdict:   Malformed");
            println!("reason:    {e:#}");
            return Ok(ExitCode::from(1));
        }
    };
    let now = vault::unix_now();
    let pulled = pulled_trust(trust_dir)?;
    // A one-time presentation: the platform's signature and expiry first, then the document it
    // carries, with its disclosures, as if presented directly; its status is the statement.
    let mut stated = None;
    let document = match presentation_in(&document, pulled.as_ref()) {
        Some(Ok(p)) => {
            println!(
                "presentation: made {} by the platform, expires {}",
                vault::rfc3339_s(p.issued_at),
                vault::rfc3339_s(p.expires_at)
            );
            if now >= p.expires_at {
                println!("verdict:   Expired (the presentation expired; ask the holder for a new one)");
                return Ok(ExitCode::from(2));
            }
            stated = Some((p.status, p.issued_at));
            vault::presentations::presented_bytes(&p).map_err(anyhow::Error::msg)?
        }
        Some(Err(why)) => {
            println!("verdict:   InvalidSignature");
            println!("reason:    {why}");
            return Ok(ExitCode::from(1));
        }
        None => document,
    };
    let vault::verify::Checked { licence, cert, status, platform, .. } =
        match vault::verify::verify_offline(&trust, &document, now) {
            Ok(c) => c,
            Err(r) => {
                println!("verdict:   {:?}", r.kind);
                println!("reason:    {}", r.reason);
                return Ok(ExitCode::from(1));
            }
        };
    println!("signature: valid (signed by {} {}, kid {})", cert.name, cert.uscc, hex::encode(cert.kid));
    let foreign = !platform.is_empty();
    if foreign {
        println!("platform:  another platform's, vouched for by the federation: {}", platform.join(" → "));
    }
    let kind = if licence.compact_of.is_some() { " (compact document)" } else { "" };
    println!("licence:   {} {} ({}){kind}", licence.id, licence.type_name, licence.number);
    // A number the holder disclosed is shown in full (the scanner compares it with the ID card);
    // one in clear in a first-format document, masked.
    let number = match &licence.holder.id {
        None => "(number not disclosed)".to_string(),
        Some(h) if licence.disclosed.contains(&crate::domain::DisclosureKey::Holder(0)) => h.number().to_string(),
        Some(h) => h.masked(),
    };
    println!("holder:    {} {number}", licence.holder.name);
    for key in &licence.disclosed {
        println!("disclosed: {} = {}", key.label(), licence.disclosed_value(key).unwrap_or_default());
    }
    if licence.withheld > 0 {
        println!("withheld:  {} personal value(s), not disclosed", licence.withheld);
    }
    println!("validity:  {}", status.as_str());
    let listed = match (stated, &licence.status_ref, pulled) {
        (Some((st, at)), _, _) => {
            println!(
                "status:    {}, as the platform stated it {} ({} s ago)",
                st.as_str(),
                vault::rfc3339_s(at),
                (now - at).max(0)
            );
            Some(if st == crate::domain::Status::Valid {
                crate::status_list::VALID
            } else {
                crate::status_list::INVALID
            })
        }
        (None, None, _) => {
            println!("status:    the document names no status list (first format): only POST /v1/verify knows it");
            None
        }
        (None, Some(_), _) if foreign => {
            println!("status:    unknown: issued on another platform, whose status lists this directory does not hold");
            None
        }
        (None, Some(_), None) => {
            println!(
                "status:    unknown: {} has no trust.json (licvault trust pull URL DIR fetches it)",
                trust_dir.display()
            );
            None
        }
        (None, Some(r), Some(t)) => {
            let n = r.list().with_context(|| format!("the status list URI {} names no list number", r.uri))?;
            let path = trust_dir.join("status-lists").join(format!("{n}.cwt"));
            let bytes = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
            let keys = platform_keys(&t);
            let list =
                crate::status_list::read(&bytes, |kid| keys.iter().find(|(k, _)| k == kid).map(|(_, v)| *v), &r.uri)
                    .with_context(|| format!("{}", path.display()))?;
            let age = (now - list.issued_at).max(0);
            if list.expires_at.is_some_and(|exp| now >= exp) {
                println!(
                    "status:    refused: the status list expired {} (licvault trust pull fetches a fresh one)",
                    vault::rfc3339_s(list.expires_at.unwrap_or_default())
                );
                return Ok(ExitCode::from(3));
            }
            if max_age.is_some_and(|m| age as u64 > m) {
                println!("status:    refused: the status list is {age} s old, over --max-age {}", max_age.unwrap_or(0));
                return Ok(ExitCode::from(3));
            }
            let code = list.status(r.index)?;
            let word = match code {
                crate::status_list::VALID => "valid",
                crate::status_list::INVALID => "revoked (or cancelled)",
                crate::status_list::SUSPENDED => "suspended",
                _ => "superseded (a newer version exists)",
            };
            println!(
                "status:    {word}, as of {} ({age} s ago; status list {n}, entry {})",
                vault::rfc3339_s(list.issued_at),
                r.index
            );
            Some(code)
        }
    };
    let ok = status == crate::domain::Status::Valid && listed.is_none_or(|c| c == crate::status_list::VALID);
    let verdict = match (ok, listed) {
        (false, _) => "not valid",
        (true, Some(_)) => "valid",
        (true, None) => "valid signature and dates; revocation not checked (no status list)",
    };
    println!("verdict:   {verdict}");
    Ok(if ok { ExitCode::SUCCESS } else { ExitCode::from(2) })
}

fn federation(command: FederationCommand) -> Result<ExitCode> {
    use keygen::FederationCa;
    let now = time::OffsetDateTime::now_utc();
    let from = now - time::Duration::minutes(5);
    match command {
        FederationCommand::Ca { dir, name, issuer, days, force } => {
            let to = now + time::Duration::days(days);
            let ca = match &issuer {
                None => FederationCa::national(&name, from, to)?,
                Some(i) => FederationCa::provincial(&FederationCa::read(i)?, &name, from, to)?,
            };
            ca.write(&dir, force)?;
            let what = if issuer.is_some() { "a province's CA" } else { "the national root" };
            println!("{what} {name} in {}/ca.{{crt,key}}.pem (keep the key offline)", dir.display());
        }
        FederationCommand::CrossCertify { city_root, issuer, out, days } => {
            let province = FederationCa::read(&issuer)?;
            let city = keygen::read_cert_der(&city_root)?;
            let cert = keygen::cross_certify(&province, &city, now + time::Duration::days(days))?;
            std::fs::write(&out, crate::crypto::pem("CERTIFICATE", &cert))
                .with_context(|| format!("writing {}", out.display()))?;
            println!("cross-certificate of {} in {}", city_root.display(), out.display());
        }
        FederationCommand::Crl { issuer, number, days, revoke, reason, out } => {
            use rcgen::RevocationReason as R;
            let reason = match reason.as_str() {
                "key-compromise" => R::KeyCompromise,
                "superseded" => R::Superseded,
                "cessation-of-operation" => R::CessationOfOperation,
                "affiliation-changed" => R::AffiliationChanged,
                "privilege-withdrawn" => R::PrivilegeWithdrawn,
                other => bail!("--reason {other}: one of key-compromise, superseded, cessation-of-operation, affiliation-changed, privilege-withdrawn"),
            };
            let ca = FederationCa::read(&issuer)?;
            let mut revoked = Vec::new();
            for path in &revoke {
                let der = keygen::read_cert_der(path)?;
                let (_, cert) = x509_parser::parse_x509_certificate(&der)
                    .map_err(|e| anyhow::anyhow!("{}: not a certificate: {e}", path.display()))?;
                revoked.push(keygen::Revocation { serial: cert.serial.to_bytes_be(), at: now, reason: Some(reason) });
            }
            let crl = keygen::revocation_list(&ca, number, now, now + time::Duration::days(days), &revoked)?;
            std::fs::write(&out, crate::crypto::pem("X509 CRL", &crl))
                .with_context(|| format!("writing {}", out.display()))?;
            println!("revocation list {number} ({} revoked) in {}", revoked.len(), out.display());
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Most status lists `licvault trust pull` fetches (a list holds 114,688 licences).
const MAX_LISTS: u32 = 10_000;
/// Largest answer it reads: a trust list or a status list.
const MAX_ANSWER: usize = 8 * 1024 * 1024;

/// `licvault trust pull URL DIR`: the trust list and every status list, checked in memory (the
/// certificate chain, the digest, `--pin`, each list's signature and `sub`), then written to a
/// fresh directory that replaces DIR. DIR must be a directory this command made (it holds
/// `trust.json`), or not exist: a pull never replaces another directory.
async fn trust_pull(url: &str, dir: &Path, pin: Option<&str>) -> Result<()> {
    if dir.exists() && !dir.join("trust.json").exists() {
        bail!(
            "{} exists and was not made by licvault trust pull (no trust.json): refusing to replace it",
            dir.display()
        );
    }
    let base = url.trim_end_matches('/');
    let http = reqwest::Client::new();
    let get = |path: String| {
        let http = http.clone();
        async move {
            let res = http.get(&path).send().await.with_context(|| format!("fetching {path}"))?;
            if !res.status().is_success() {
                bail!("{path}: {}", res.status());
            }
            crate::fetch::read_limited(res, MAX_ANSWER).await.map_err(|e| anyhow::anyhow!("{path}: {e}"))
        }
    };
    let raw = get(format!("{base}/v1/trust")).await?;
    let t: crate::http::trust::Trust = serde_json::from_slice(&raw).context("the answer is not a trust list")?;
    if t.status_lists.count > MAX_LISTS {
        bail!("the trust list names {} status lists, more than {MAX_LISTS}", t.status_lists.count);
    }
    // Everything is checked in memory before anything is written.
    let der = |pem: &str, what: &str| -> Result<Vec<u8>> {
        let (_, p) =
            x509_parser::pem::parse_x509_pem(pem.as_bytes()).map_err(|e| anyhow::anyhow!("{what}: not PEM: {e}"))?;
        Ok(p.contents)
    };
    let root = der(&t.root.certificate, "the root certificate")?;
    let mut depts = Vec::new();
    for d in &t.departments {
        crate::domain::Uscc::parse(&d.uscc).map_err(|e| anyhow::anyhow!("department {:?}: {e}", d.uscc))?;
        if d.kid.len() != 16 || !d.kid.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()) {
            bail!("department {}: kid {:?} is not 16 lower-case hex digits", d.uscc, d.kid);
        }
        depts.push(der(&d.certificate, &d.uscc)?);
    }
    let mut list =
        TrustList::from_der(root.clone(), depts.clone()).context("the certificates do not chain to the root")?;
    let federation = match &t.federation {
        // A federation names the national anchor and everything under it: never taken on first
        // use.
        Some(_) if pin.is_none() => bail!(
            "the trust list carries a federation (the national anchor and the platforms under it): pull it only \
             with --pin DIGEST, the digest obtained from the platform out of band"
        ),
        Some(f) => {
            let all = |pems: &[String], what: &str| pems.iter().map(|p| der(p, what)).collect::<Result<Vec<_>>>();
            let files = crate::crypto::trust::FederationDer {
                anchor: der(&f.anchor, "the federation's anchor")?,
                cas: all(&f.cas, "a federation CA certificate")?,
                crls: all(&f.crls, "a federation CRL")?,
                peers: all(&f.peers, "another platform's seal certificate")?,
            };
            list = list.federated(files.clone(), crate::vault::unix_now()).context("the federation")?;
            Some(files)
        }
        None => None,
    };
    let keys = all_platform_keys(&t);
    let digest = hex::encode(list.digest(&t.log.verifier_key, &keys));
    let certs = list.departments().count();
    if digest != t.digest || certs != t.departments.len() || keys.len() != t.platform_keys.len() {
        bail!("the trust list's digest {} does not match its content ({digest})", t.digest);
    }
    if let Some(p) = pin {
        if !p.eq_ignore_ascii_case(&digest) {
            bail!("the trust digest is {digest}, not the pinned {p}");
        }
    }
    // The log's checkpoint as served (with the witnesses' cosignatures, when it has any), checked
    // against the log key the trust list names: `licvault verify --witness` counts them.
    let checkpoint = String::from_utf8(get(format!("{base}/v1/log/checkpoint")).await?).context("the checkpoint")?;
    let log = crate::log::note::Verifier::parse(&t.log.verifier_key).map_err(|e| anyhow::anyhow!("log key: {e}"))?;
    crate::log::note::Checkpoint::open(&checkpoint, &log).map_err(|e| anyhow::anyhow!("the log's checkpoint: {e}"))?;
    let current = platform_keys(&t);
    let mut lists = Vec::new();
    for n in 0..t.status_lists.count {
        let uri = format!("{}{n}", t.status_lists.uri_prefix);
        let bytes = get(format!("{base}/v1/status-lists/{n}")).await?;
        crate::status_list::read(&bytes, |kid| current.iter().find(|(k, _)| k == kid).map(|(_, v)| *v), &uri)
            .with_context(|| format!("status list {n}"))?;
        lists.push(bytes);
    }
    // Written beside DIR first, then swapped in: a failed pull leaves the old directory.
    let tmp = dir.with_extension("pulling");
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(tmp.join("departments"))?;
    std::fs::create_dir_all(tmp.join("status-lists"))?;
    std::fs::write(tmp.join("trust.json"), &raw)?;
    std::fs::write(tmp.join("checkpoint"), &checkpoint)?;
    std::fs::write(tmp.join("root.crt.pem"), crate::crypto::pem("CERTIFICATE", &root))?;
    for (i, d) in depts.iter().enumerate() {
        std::fs::write(tmp.join("departments").join(format!("{i:04}.crt.pem")), crate::crypto::pem("CERTIFICATE", d))?;
    }
    for (n, bytes) in lists.iter().enumerate() {
        std::fs::write(tmp.join("status-lists").join(format!("{n}.cwt")), bytes)?;
    }
    if let Some(f) = &federation {
        // The layout `licvault verify --trust` reads (spec/formats.md §9.1).
        let fed = tmp.join("federation");
        std::fs::create_dir_all(&fed)?;
        std::fs::write(fed.join("anchor.crt.pem"), crate::crypto::pem("CERTIFICATE", &f.anchor))?;
        for (sub, ext, label, list) in [
            ("cas", "crt", "CERTIFICATE", &f.cas),
            ("crls", "crl", "X509 CRL", &f.crls),
            ("peers", "crt", "CERTIFICATE", &f.peers),
        ] {
            std::fs::create_dir_all(fed.join(sub))?;
            for (i, d) in list.iter().enumerate() {
                std::fs::write(fed.join(sub).join(format!("{i:04}.{ext}.pem")), crate::crypto::pem(label, d))?;
            }
        }
    }
    if dir.exists() {
        std::fs::remove_dir_all(dir)?;
    }
    std::fs::rename(&tmp, dir).with_context(|| format!("moving the pulled trust to {}", dir.display()))?;
    println!("trust digest {digest} ({certs} departments, {} platform keys)", keys.len());
    println!("{} status list(s) saved in {} at {}", lists.len(), dir.display(), vault::rfc3339_s(vault::unix_now()));
    Ok(())
}
