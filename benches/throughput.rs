//! Throughput against the raw limits of this machine, measured in the same run.
//!
//! 1. Raw: Ed25519 sign/s (1 KiB, one core), `verify_strict`/s on one and two threads, synced
//!    RocksDB writes/s (one put + fsync per write) and synced 100-put batches.
//! 2. Over HTTP, against the release server as a separate process on 127.0.0.1, with the load
//!    generator on the same two cores: durable issuances/s (POST /v1/licences) and public
//!    verifications/s (POST /v1/verify), with p50/p99 latency and the ratio to the raw figures.
//!
//! `make bench` (= `cargo bench --bench throughput`). Environment: BENCH_SECS (default 5),
//! BENCH_CONNS (default 64).

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use licvault::store::{Batch, Cf, RocksStore, Store};
use serde_json::{json, Value};

fn secs() -> f64 {
    std::env::var("BENCH_SECS").ok().and_then(|s| s.parse().ok()).unwrap_or(5.0)
}

fn conns() -> usize {
    std::env::var("BENCH_CONNS").ok().and_then(|s| s.parse().ok()).unwrap_or(64)
}

/// Runs `f` repeatedly for `d` and returns calls per second.
fn rate(d: Duration, mut f: impl FnMut()) -> f64 {
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed() < d {
        for _ in 0..64 {
            f();
        }
        n += 64;
    }
    n as f64 / start.elapsed().as_secs_f64()
}

fn raw_limits() -> (f64, f64, f64, f64, f64) {
    let d = Duration::from_secs_f64(secs().min(3.0));
    let key = SigningKey::from_bytes(&[9; 32]);
    let msg = vec![0x5a; 1024];
    let sign = rate(d, || {
        std::hint::black_box(key.sign(&msg));
    });
    let vk: VerifyingKey = key.verifying_key();
    let sig: Signature = key.sign(&msg);
    let verify1 = rate(d, || {
        std::hint::black_box(vk.verify_strict(&msg, &sig).is_ok());
    });
    let verify2: f64 = std::thread::scope(|s| {
        let hs: Vec<_> = (0..2)
            .map(|_| {
                s.spawn(|| {
                    rate(d, || {
                        std::hint::black_box(vk.verify_strict(&msg, &sig).is_ok());
                    })
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).sum()
    });
    let dir = tempfile::tempdir().unwrap();
    let store = RocksStore::open(dir.path()).unwrap();
    let mut i = 0u64;
    let put1 = rate(d, || {
        let mut b = Batch::default();
        b.put(Cf::Meta, i.to_be_bytes().to_vec(), vec![0u8; 256]);
        store.write(b).unwrap();
        i += 1;
    });
    let put100 = 100.0
        * rate(d, || {
            let mut b = Batch::default();
            for _ in 0..100 {
                b.put(Cf::Leaves, i.to_be_bytes().to_vec(), vec![0u8; 256]);
                i += 1;
            }
            store.write(b).unwrap();
        });
    (sign, verify1, verify2, put1, put100)
}

fn copy_keys(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_keys(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), &target).unwrap();
            let name = e.file_name().to_string_lossy().into_owned();
            if name.ends_with(".key.pem") || name == "commitment.key" {
                use std::os::unix::fs::PermissionsExt;
                std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o600)).unwrap();
            }
        }
    }
}

struct Load {
    ok: u64,
    failed: u64,
    per_sec: f64,
    p50_ms: f64,
    p99_ms: f64,
}

/// `conns` tasks send requests made by `make(i)` for `d`; counts 2xx answers.
async fn load(
    http: &reqwest::Client,
    url: String,
    token: Option<&'static str>,
    conns: usize,
    d: Duration,
    make: Arc<dyn Fn(u64) -> Value + Send + Sync>,
) -> Load {
    let stop = Arc::new(AtomicBool::new(false));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..conns {
        let (http, url, stop, make) = (http.clone(), url.clone(), stop.clone(), make.clone());
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let mut failed = 0u64;
            let mut i = c as u64;
            while !stop.load(Ordering::Relaxed) {
                let body = make(i);
                i += conns as u64;
                let t = Instant::now();
                let mut req = http.post(&url).json(&body);
                if let Some(tok) = token {
                    req = req.bearer_auth(tok);
                }
                match req.send().await {
                    Ok(r) if r.status().is_success() => {
                        let _ = r.bytes().await;
                        lat.push(t.elapsed());
                    }
                    _ => failed += 1,
                }
            }
            (lat, failed)
        }));
    }
    tokio::time::sleep(d).await;
    stop.store(true, Ordering::Relaxed);
    let mut all = Vec::new();
    let mut failed = 0;
    for t in tasks {
        let (l, f) = t.await.unwrap();
        all.extend(l);
        failed += f;
    }
    let elapsed = start.elapsed().as_secs_f64();
    all.sort();
    let pct = |p: f64| {
        all.get(((all.len() as f64 * p) as usize).min(all.len().saturating_sub(1)))
            .map(|d| d.as_secs_f64() * 1e3)
            .unwrap_or(0.0)
    };
    Load { ok: all.len() as u64, failed, per_sec: all.len() as f64 / elapsed, p50_ms: pct(0.50), p99_ms: pct(0.99) }
}

fn business_licence(n: u64) -> Value {
    json!({
        "type_code": "11100000MB00001073001",
        "holder": {"type": "001", "id": "91440300MA5E000256", "name": "示例科技有限公司"},
        "fields": {
            "统一社会信用代码": "91440300MA5E000256",
            "名称": "示例科技有限公司",
            "类型": "有限责任公司",
            "法定代表人": format!("张三{n}"),
            "成立日期": "2020-05-18",
            "营业期限": "长期",
            "住所": "示例市示例区科技路1号",
            "经营范围": "软件开发；信息技术咨询服务；数据处理和存储支持服务。（依法须经批准的项目，经相关部门批准后方可开展经营活动）",
            "登记机关": "示例市市场监督管理局"
        }
    })
}

fn main() {
    // `cargo bench` passes --bench; nothing to parse.
    let (sign, verify1, verify2, put1, put100) = raw_limits();
    println!("raw limits (measured now, this machine):");
    println!("  ed25519 sign, 1 KiB, 1 core         {sign:>10.0} /s");
    println!("  ed25519 verify_strict, 1 thread     {verify1:>10.0} /s");
    println!("  ed25519 verify_strict, 2 threads    {verify2:>10.0} /s");
    println!("  rocksdb put + sync, one per write   {put1:>10.0} /s");
    println!("  rocksdb 100-put batch + sync        {put100:>10.0} puts/s");

    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let data = tempfile::tempdir().unwrap();
    let keys = tempfile::tempdir().unwrap();
    copy_keys(&root.join("keys"), keys.path());
    let mut child = Command::new(env!("CARGO_BIN_EXE_licvault"))
        .args(["serve", "--demo", "--listen", "127.0.0.1:0"])
        .arg("--data")
        .arg(data.path())
        .arg("--keys")
        .arg(keys.path())
        .arg("--fixtures")
        .arg(root.join("fixtures"))
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .spawn()
        .expect("start the release server");
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    std::thread::spawn(move || std::io::copy(&mut out, &mut std::io::sink()));
    let base = format!("http://{}", line.trim().trim_start_matches("licvault listening on "));

    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    rt.block_on(async {
        let http = reqwest::Client::builder().pool_max_idle_per_host(conns()).build().unwrap();
        let d = Duration::from_secs_f64(secs());
        // Warm up, and collect documents to verify.
        let mut docs = Vec::new();
        for n in 0..200 {
            let r: Value = http
                .post(format!("{base}/v1/licences"))
                .bearer_auth("dev-token-scjg-issuer-0001")
                .json(&business_licence(n))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            docs.push(r["qr_payload"].as_str().unwrap().to_string());
        }
        let issue = load(
            &http,
            format!("{base}/v1/licences"),
            Some("dev-token-scjg-issuer-0001"),
            conns(),
            d,
            Arc::new(business_licence),
        )
        .await;
        let docs = Arc::new(docs);
        let verify = load(
            &http,
            format!("{base}/v1/verify"),
            None,
            conns(),
            d,
            Arc::new(move |i| json!({ "payload": docs[i as usize % docs.len()] })),
        )
        .await;
        println!("over HTTP ({} connections, load generator on the same cores, {:.0} s each):", conns(), secs());
        println!(
            "  durable issuance   {:>8.0} /s  p50 {:>6.2} ms  p99 {:>6.2} ms  ({} ok, {} failed)  = {:>5.1} % of raw 1-core sign/s (target 15 %)",
            issue.per_sec,
            issue.p50_ms,
            issue.p99_ms,
            issue.ok,
            issue.failed,
            100.0 * issue.per_sec / sign
        );
        println!(
            "  public verify      {:>8.0} /s  p50 {:>6.2} ms  p99 {:>6.2} ms  ({} ok, {} failed)  = {:>5.1} % of raw 2-thread verify_strict/s (target 25 %, p99 < 20 ms)",
            verify.per_sec,
            verify.p50_ms,
            verify.p99_ms,
            verify.ok,
            verify.failed,
            100.0 * verify.per_sec / verify2
        );
        println!(
            "  issuance vs one fsync per write: {:.1}x raw synced puts/s (group commit)",
            issue.per_sec / put1
        );
    });
    let _ = child.kill();
    let _ = child.wait();
}
