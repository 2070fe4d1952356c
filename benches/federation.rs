//! Mirrors (`make bench`; issue 10). A city node (release server) is built to BENCH_FED_LICENCES
//! licences (default 100,000) through the batch endpoint; then, each against what the same run
//! measures as its limit:
//!
//! - **mirror ingest** (RocksDB): a mirror node started on the finished log catches up with it,
//!   verifying every leaf (leaves per second, from the node serving to in step), against the raw rate
//!   of SHA-256 of every leaf plus its decoding (`Leaf::decode`), on one core, over the same
//!   leaves (target ≥ 50 %); for reference, also the rate of the mirror's checks alone (decoding,
//!   chain, back-pointers, tree, licence states) in this process, with no HTTP and nothing stored;
//! - **PostgreSQL ingest**: the same with the mirror on PostgreSQL (a server from Debian's
//!   postgresql-15 in a temp directory), against a plain `COPY` of the same rows (its leaves and
//!   licence states, read back from the mirror's tables) into tables of the same shape (target
//!   ≥ 50 %);
//! - **mirror lag** while the city issues at its full durable rate (one licence a request, 32
//!   clients, BENCH_SECS): every 100 ms the city's checkpoint size is read, and the time until
//!   the mirror holds that size is one sample; p50, p99 and the largest (target p99 < 2 s). The
//!   mirror polls every 250 ms (`poll_ms`).
//!
//! The client, both nodes and PostgreSQL share the machine's cores.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

#[path = "../tests/support/keys.rs"]
mod support_keys;
use support_keys::copy_keys;
#[path = "../tests/support/pg.rs"]
mod support_pg;
#[path = "../tests/support/server.rs"]
mod support_server;
use support_server::Node;

mod common;
use common::{import, load, log_size};

const ISSUER: &str = "dev-token-scjg-issuer-0001";
const AUDITOR: &str = "dev-token-auditor-0001";

fn business_licence(n: u64) -> Value {
    let holder = licvault::domain::holder::complete_uscc(&format!("91440300{:08}", n % 100_000_000)).unwrap();
    let mut b: Value = serde_json::from_str(include_str!("../fixtures/examples/issue-business-licence.json")).unwrap();
    b["holder"]["id"] = json!(holder);
    b["fields"]["统一社会信用代码"] = json!(holder);
    b["number"] = json!(format!("深市监{n:010}"));
    b
}

async fn mirrored(http: &reqwest::Client, base: &str) -> u64 {
    let v: Value = http.get(format!("{base}/v1/mirrors")).send().await.unwrap().json().await.unwrap();
    v["mirrors"][0]["size"].as_u64().unwrap_or(0)
}

/// Starts a mirror of `source` with `store` (`data` or `postgres`) and waits until it holds
/// `size` leaves: the node and leaves per second from its start.
async fn catch_up(
    http: &reqwest::Client,
    work: &Path,
    name: &str,
    source: &str,
    log_key: &str,
    store: (&str, Value),
    size: u64,
) -> (Node, f64) {
    let keys = work.join(format!("{name}-keys"));
    copy_keys(&Path::new(env!("CARGO_MANIFEST_DIR")).join("keys"), &keys);
    let mut config = json!({
        "poll_ms": 250,
        "sources": [{"name": "city", "url": source, "log_key": log_key, "token_file": work.join("auditor.token"),
                     "root": work.join("city-keys/root.crt.pem")}]
    });
    config[store.0] = store.1;
    let path = work.join(format!("{name}.json"));
    std::fs::write(&path, config.to_string()).unwrap();
    let node = Node::start("127.0.0.1:0", &work.join(name), &keys, &["--mirrors", path.to_str().unwrap()]);
    // From the node serving (its store open, its keys loaded), counting only what it mirrors
    // from then on.
    let started = Instant::now();
    let first = mirrored(http, &node.base).await;
    while mirrored(http, &node.base).await < size {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let rate = (size - first) as f64 / started.elapsed().as_secs_f64();
    (node, rate)
}

/// Every leaf of the log at `base`, from its entry bundles.
async fn leaves(http: &reqwest::Client, base: &str, size: u64) -> Vec<Vec<u8>> {
    let mut out = Vec::with_capacity(size as usize);
    let mut n = 0u64;
    while n * 256 < size {
        let width = 256.min(size - n * 256);
        let tile = licvault::log::tile::Tile { level: None, index: n, width };
        let url = format!("{base}/v1/log/tile/{}", tile.path());
        let bytes = http.get(url).bearer_auth(AUDITOR).send().await.unwrap().bytes().await.unwrap();
        out.extend(licvault::log::tile::bundle_entries(&bytes).unwrap().into_iter().map(<[u8]>::to_vec));
        n += 1;
    }
    out
}

/// Leaves per second of SHA-256 plus decoding, one core, the best of three passes.
fn raw_rate(leaves: &[Vec<u8>]) -> f64 {
    (0..3)
        .map(|_| {
            let started = Instant::now();
            for l in leaves {
                std::hint::black_box(licvault::log::merkle::leaf_hash(l));
                std::hint::black_box(licvault::log::leaf::Leaf::decode(l).unwrap());
            }
            leaves.len() as f64 / started.elapsed().as_secs_f64()
        })
        .fold(0.0, f64::max)
}

/// Leaves per second of what a mirror checks of each leaf, in this process on one core, with
/// no HTTP and nothing stored: decoding, the hash chain and back-pointers, the tree
/// (`ChainCheck`), and each licence's state (`LicenceState::apply`); the best of three passes.
fn verify_rate(leaves: &[Vec<u8>]) -> f64 {
    (0..3)
        .map(|_| {
            let started = Instant::now();
            let mut check = licvault::log::leaf::ChainCheck::new();
            let mut states: std::collections::HashMap<String, licvault::log::replay::LicenceState> =
                std::collections::HashMap::new();
            for (i, l) in leaves.iter().enumerate() {
                let leaf = check.push(l).unwrap();
                if let Some(id) = &leaf.licence {
                    states.entry(id.clone()).or_default().apply(i as u64, &leaf);
                }
            }
            std::hint::black_box((check.tree().root(), states.len()));
            leaves.len() as f64 / started.elapsed().as_secs_f64()
        })
        .fold(0.0, f64::max)
}

/// Bytes of the files under `dir`.
fn dir_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| match e.metadata() {
                    Ok(m) if m.is_dir() => dir_bytes(&e.path()),
                    Ok(m) => m.len(),
                    Err(_) => 0,
                })
                .sum()
        })
        .unwrap_or(0)
}

/// Bytes of the mirror's tables in PostgreSQL, indexes and partitions included.
async fn table_bytes(conn: &str) -> i64 {
    let (client, connection) = tokio_postgres::connect(conn, tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(connection);
    client.batch_execute("CHECKPOINT").await.unwrap();
    let row = client
        .query_one(
            "SELECT sum(pg_total_relation_size(c.oid))::bigint FROM pg_class c
             WHERE c.relkind = 'r' AND (c.relname = 'mirror_leaves' OR c.relname LIKE 'mirror_licences%')",
            &[],
        )
        .await
        .unwrap();
    row.get(0)
}

/// Leaves per second of a `COPY` of the mirror's rows (leaves and licence states) into tables of
/// the same shape.
async fn copy_rate(conn: &str, size: u64) -> f64 {
    use futures_util::SinkExt;
    let (client, connection) = tokio_postgres::connect(conn, tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(connection);
    client
        .batch_execute(
            "CREATE TABLE copy_leaves (LIKE mirror_leaves INCLUDING ALL);
             CREATE TABLE copy_licences (LIKE mirror_licences INCLUDING ALL) PARTITION BY LIST (province);
             CREATE TABLE copy_licences_44 PARTITION OF copy_licences FOR VALUES IN (44);
             CREATE TABLE copy_licences_other PARTITION OF copy_licences DEFAULT;",
        )
        .await
        .unwrap();
    // The rows as text COPY takes them, read back first so that only the COPY is timed.
    let mut leaves = Vec::new();
    for row in client.query("SELECT source, idx, leaf FROM mirror_leaves ORDER BY idx", &[]).await.unwrap() {
        let (s, i, l): (String, i64, Vec<u8>) = (row.get(0), row.get(1), row.get(2));
        leaves.extend_from_slice(format!("{s}\t{i}\t\\\\x{}\n", hex::encode(l)).as_bytes());
    }
    let mut licences = Vec::new();
    for row in client.query("SELECT province, id, source, state::text FROM mirror_licences", &[]).await.unwrap() {
        let (p, i, s, st): (i16, String, String, String) = (row.get(0), row.get(1), row.get(2), row.get(3));
        licences.extend_from_slice(format!("{p}\t{i}\t{s}\t{}\n", st.replace('\\', "\\\\")).as_bytes());
    }
    let started = Instant::now();
    for (table, rows) in [("copy_leaves", leaves), ("copy_licences", licences)] {
        let sink = client.copy_in(&format!("COPY {table} FROM STDIN")).await.unwrap();
        futures_util::pin_mut!(sink);
        sink.send(bytes::Bytes::from(rows)).await.unwrap();
        sink.finish().await.unwrap();
    }
    size as f64 / started.elapsed().as_secs_f64()
}

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let licences: u64 = common::env("BENCH_FED_LICENCES", 100_000);
    let temp = tempfile::tempdir().unwrap();
    let work = temp.path();
    if support_pg::is_root() {
        std::process::Command::new("chown").args(["postgres:", work.to_str().unwrap()]).status().unwrap();
    }
    let keys = work.join("city-keys");
    copy_keys(&root.join("keys"), &keys);
    std::fs::write(work.join("auditor.token"), AUDITOR).unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let http = reqwest::Client::new();
    let city = Node::start("127.0.0.1:0", &work.join("city"), &keys, &[]);
    rt.block_on(async {
        let started = Instant::now();
        import(&http, &city.base, ISSUER, "fed", 0, licences, business_licence).await;
        let size = log_size(&http, &city.base).await;
        println!(
            "mirrors (release nodes, client and PostgreSQL on the same 2 cores); the city's log: {licences} licences, \
             {size} leaves, built in {:.0} s",
            started.elapsed().as_secs_f64()
        );
        let trust: Value = http.get(format!("{}/v1/trust", city.base)).send().await.unwrap().json().await.unwrap();
        let log_key = trust["log"]["verifier_key"].as_str().unwrap().to_string();

        let all = leaves(&http, &city.base, size).await;
        let raw = raw_rate(&all);
        let checked = verify_rate(&all);
        let (rocks, ingest) =
            catch_up(&http, work, "mirror-rocks", &city.base, &log_key, ("data", json!(work.join("m1"))), size).await;
        println!(
            "  mirror ingest (RocksDB)     {ingest:>10.0} leaves/s   raw SHA-256 + decode {raw:>10.0} leaves/s   \
             ratio {:.2} (target ≥ 0.50)",
            ingest / raw
        );
        println!(
            "  (reference) the mirror's checks alone, in process: {checked:>10.0} leaves/s = {:.2} of raw; \
             the mirror ingests {:.2} of that",
            checked / raw,
            ingest / checked
        );
        let bytes = dir_bytes(&work.join("m1"));
        println!("  mirror store (RocksDB)      {:>10.0} bytes a leaf on disk (entry bundles, licence states, the write-ahead log)", bytes as f64 / size as f64);

        let (primary, socket) = (work.join("pg"), work.join("pgsock"));
        support_pg::pg("initdb", &["-D", support_pg::p(&primary), "-U", "postgres", "--auth=trust", "-E", "UTF8"]);
        let _cluster = support_pg::start_cluster(&primary, &socket);
        let conn = format!("host={} user=postgres dbname=postgres", socket.display());
        let (pg_node, pg_ingest) =
            catch_up(&http, work, "mirror-pg", &city.base, &log_key, ("postgres", json!(conn)), size).await;
        drop(pg_node);
        let pg_bytes = table_bytes(&conn).await;
        let copy = copy_rate(&conn, size).await;
        println!(
            "  mirror ingest (PostgreSQL)  {pg_ingest:>10.0} leaves/s   plain COPY of its rows {copy:>8.0} leaves/s   \
             ratio {:.2} (target ≥ 0.50)",
            pg_ingest / copy
        );
        println!(
            "  mirror store (PostgreSQL)   {:>10.0} bytes a leaf (mirror_leaves and mirror_licences with their indexes)",
            pg_bytes as f64 / size as f64
        );

        // Lag while the city issues at its full durable rate.
        let stop = Arc::new(AtomicBool::new(false));
        let sampler = {
            let (http, city, mirror, stop) = (http.clone(), city.base.clone(), rocks.base.clone(), stop.clone());
            tokio::spawn(async move {
                let mut lags = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    let at = Instant::now();
                    let size = log_size(&http, &city).await;
                    while mirrored(&http, &mirror).await < size {
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                    lags.push(at.elapsed().as_secs_f64());
                    tokio::time::sleep(Duration::from_millis(100).saturating_sub(at.elapsed())).await;
                }
                lags
            })
        };
        let base = city.base.clone();
        let client = http.clone();
        let issued = load(32, move |n| {
            let (http, url) = (client.clone(), format!("{base}/v1/licences"));
            async move {
                let res = http.post(url).bearer_auth(ISSUER).json(&business_licence(1_000_000 + n)).send().await;
                assert_eq!(res.unwrap().status(), 201);
            }
        })
        .await;
        stop.store(true, Ordering::Relaxed);
        let mut lags = sampler.await.unwrap();
        lags.sort_by(f64::total_cmp);
        let pct = |p: f64| lags[((lags.len() - 1) as f64 * p).round() as usize];
        println!(
            "  mirror lag under {issued:.0} issuances/s: p50 {:.2} s, p99 {:.2} s, max {:.2} s over {} samples \
             (target p99 < 2 s)",
            pct(0.5),
            pct(0.99),
            lags[lags.len() - 1],
            lags.len()
        );
    });
}
