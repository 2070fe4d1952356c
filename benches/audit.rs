//! Auditors' reads against the raw limits of this machine, measured in the same run
//! (`make bench-audit`; issue 8):
//!
//! 1. Raw, one core: SHA-256 of a leaf (its RFC 9162 leaf hash) and `Leaf::decode` of it
//!    (deterministic CBOR).
//! 2. A log of BENCH_LEAVES (default 1,000,000) leaves built through the real sequencer (a
//!    quarter of them about licences, with their back-pointers), served by the real server.
//! 3. `GET /v1/audit/export` of the whole log streamed to a file (leaves/s), and
//!    `log::audit::verify_bundle` of that file (decoding on two threads; leaves/s), each as a
//!    ratio to both raw rates; inclusion proofs and hash-tile reads over HTTP under wrk (random
//!    indexes and tiles), on the same two cores as the server.

use std::collections::HashMap;
use std::io::Write;
use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use licvault::log::leaf::{Event, Leaf};
use licvault::log::merkle::leaf_hash;

#[path = "../tests/support/keys.rs"]
mod support_keys;
use support_keys::copy_keys;

mod common;
use common::{rate, secs};

fn leaves() -> u64 {
    common::env("BENCH_LEAVES", 1_000_000)
}

/// A filler leaf's event: what a one-number lookup of a holder with no licence logs.
fn filler(i: u64) -> Event {
    let mut holder = [0u8; 32];
    holder[..8].copy_from_slice(&i.to_be_bytes());
    Event::new("holder.queried")
        .bytes("holders", &holder)
        .text("action", "lookup")
        .text("client", "zwfw-counter")
        .text("client_name", "示例市政务服务中心 综合窗口")
        .text("dept", "11440300MB20008055")
        .text("use_reason", "审计基准：核验申请人证照")
}

/// wrk against `path_expr` (Lua building each request's path), `conns` connections.
fn wrk(base: &str, dir: &Path, name: &str, path_expr: &str) -> (f64, f64, u64) {
    let script = format!(
        r#"math.randomseed(7)
request = function()
  return wrk.format("GET", {path_expr})
end
tile = function(n)
  local s = string.format("%03d", n % 1000)
  n = math.floor(n / 1000)
  while n > 0 do
    s = string.format("x%03d/", n % 1000) .. s
    n = math.floor(n / 1000)
  end
  return s
end
done = function(summary, latency, requests)
  io.write(string.format("LV %d %d %d %f\n", summary.requests,
    summary.errors.status + summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    latency:percentile(99), summary.duration))
end
"#
    );
    let file = dir.join(format!("{name}.lua"));
    std::fs::write(&file, script).unwrap();
    let out = Command::new("wrk")
        .args(["-t1", "-c64", &format!("-d{}s", secs() as u64), "-s"])
        .arg(&file)
        .arg(base)
        .output()
        .expect("wrk is installed (make bench-audit installs it)");
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text.lines().find(|l| l.starts_with("LV ")).unwrap_or_else(|| panic!("wrk said: {text}"));
    let f: Vec<f64> = line[3..].split(' ').map(|x| x.parse().unwrap()).collect();
    ((f[0] - f[1]) / (f[3] / 1e6), f[2] / 1e3, f[1] as u64)
}

fn main() {
    let n = leaves();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let d = Duration::from_secs_f64(secs().min(3.0));
    let sample = Leaf {
        index: 123_456,
        prev_hash: [7; 32],
        time_ms: 1_764_460_000_000,
        licence: None,
        licence_prev: None,
        event: filler(123_456),
    }
    .encode();
    let sha = rate(d, || {
        std::hint::black_box(leaf_hash(std::hint::black_box(&sample)));
    });
    let decode = rate(d, || {
        std::hint::black_box(Leaf::decode(std::hint::black_box(&sample)).unwrap());
    });
    println!("raw limits (measured now, one core, a {}-byte leaf):", sample.len());
    println!("  SHA-256 leaf hash          {sha:>10.0} /s");
    println!("  Leaf::decode (CBOR)        {decode:>10.0} /s");

    let data = tempfile::tempdir().unwrap();
    let keys = tempfile::tempdir().unwrap();
    copy_keys(&root.join("keys"), keys.path());
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let (vault, base) = rt.block_on(async {
        let store = licvault::store::RocksStore::open(data.path()).unwrap();
        let parts = licvault::vault::Parts::load(Arc::new(store), keys.path(), &root.join("fixtures")).unwrap();
        let vault = licvault::vault::Vault::start(parts).await.unwrap();
        licvault::cli::seed_demo(&vault, &root.join("fixtures")).await.unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let state = licvault::http::AppState::new(vault.clone(), licvault::config::Limits::default());
        tokio::spawn(licvault::http::serve(listener, state));
        (vault, base)
    });

    // The log, through the real sequencer: jobs of 2,000 leaves, four in flight.
    let started = Instant::now();
    let last_about: Arc<Mutex<HashMap<u64, u64>>> = Arc::default();
    rt.block_on(async {
        let mut jobs = tokio::task::JoinSet::new();
        let mut made = vault.head().size;
        while made < n {
            let count = (n - made).min(2_000);
            let (v, about) = (vault.clone(), last_about.clone());
            jobs.spawn(async move {
                v.sequencer()
                    .submit(move |tx| {
                        let mut about = about.lock().unwrap();
                        for _ in 0..count {
                            let next = tx.next_index();
                            if next % 4 == 0 {
                                // A quarter about licences: 10,000 of them, with back-pointers.
                                let k = next / 4 % 10_000;
                                let prev = about.insert(k, next);
                                let id = format!("bench-licence-{k}");
                                tx.append_about(Event::new("licence.status").text("to", "valid"), &id, prev);
                            } else {
                                tx.append(filler(next));
                            }
                        }
                        Ok::<_, String>(())
                    })
                    .await
                    .unwrap()
            });
            made += count;
            while jobs.len() >= 4 {
                jobs.join_next().await.unwrap().unwrap().0.unwrap();
            }
        }
        while let Some(j) = jobs.join_next().await {
            j.unwrap().0.unwrap();
        }
    });
    let built = vault.head().size;
    let build_secs = started.elapsed().as_secs_f64();

    // Export the whole log over HTTP to a file.
    let bundle = data.path().join("audit.bundle");
    let started = Instant::now();
    rt.block_on(async {
        let mut res = reqwest::Client::new()
            .get(format!("{base}/v1/audit/export?from=0&to={built}"))
            .bearer_auth("dev-token-auditor-0001")
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        let mut out = std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(&bundle).unwrap());
        while let Some(chunk) = res.chunk().await.unwrap() {
            out.write_all(&chunk).unwrap();
        }
        out.flush().unwrap();
    });
    let export = built as f64 / started.elapsed().as_secs_f64();
    let bytes = std::fs::metadata(&bundle).unwrap().len();

    // Verify it offline, one core.
    let key = licvault::log::note::Verifier::parse(&vault.log_verifier_key()).unwrap();
    let started = Instant::now();
    let mut file = std::io::BufReader::with_capacity(1 << 20, std::fs::File::open(&bundle).unwrap());
    let summary = licvault::log::audit::verify_bundle(&mut file, &key, &[], |_, _| {}).unwrap();
    let verify = built as f64 / started.elapsed().as_secs_f64();
    assert_eq!(summary.to, built);

    // Inclusion proofs in process, one core, at random: what a proof costs without HTTP.
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    let proofs_raw = rate(d, || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        std::hint::black_box(vault.inclusion(x % built, Some(built)).unwrap());
    });

    // Proofs and tiles over HTTP, at random.
    let scripts = tempfile::tempdir().unwrap();
    let (proofs, proofs_p99, proofs_failed) = wrk(
        &base,
        scripts.path(),
        "inclusion",
        &format!("\"/v1/log/proofs/inclusion?index=\" .. math.random(0, {}) .. \"&size={built}\"", built - 1),
    );
    let full_tiles = built / 256;
    let (tiles, tiles_p99, tiles_failed) = wrk(
        &base,
        scripts.path(),
        "tiles",
        &format!("\"/v1/log/tile/0/\" .. tile(math.random(0, {}))", full_tiles - 1),
    );
    vault.close();

    println!(
        "a log of {built} leaves built through the sequencer in {build_secs:.1} s ({:.0} leaves/s)",
        built as f64 / build_secs
    );
    println!(
        "  audit export over HTTP   {export:>10.0} leaves/s ({:.0} MB/s)  = {:.2}x raw SHA-256, {:.2}x raw decode (target 100,000 /s)",
        bytes as f64 / 1e6 / (built as f64 / export),
        export / sha,
        export / decode
    );
    println!(
        "  audit verify, 2 threads {verify:>10.0} leaves/s  = {:.2}x raw SHA-256, {:.2}x raw decode (target 200,000 /s)",
        verify / sha,
        verify / decode
    );
    println!("over HTTP (wrk, 1 thread, 64 connections, {:.0} s, on the same 2 cores as the server):", secs());
    println!("  inclusion proofs         {proofs:>10.0} /s  p99 {proofs_p99:.2} ms  ({proofs_failed} non-2xx)  (target 10,000 /s; {proofs_raw:.0} /s in process on one core)");
    println!("  hash tiles (full, level 0) {tiles:>8.0} /s  p99 {tiles_p99:.2} ms  ({tiles_failed} non-2xx)  (target 20,000 /s)");
}
