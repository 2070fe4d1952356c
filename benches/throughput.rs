//! Throughput against the raw limits of this machine, measured in the same run.
//!
//! 1. Raw: Ed25519 sign/s (1 KiB, one core), `verify_strict`/s on one and two threads, synced
//!    RocksDB writes/s (one put + fsync per write) and synced 100-put batches.
//! 2. Over HTTP, against the release server as a separate process on 127.0.0.1, with the load
//!    generator on the same two cores: durable issuances/s (POST /v1/licences) and public
//!    verifications/s (POST /v1/verify), with p50/p99 latency and the ratio to the raw figures.
//! 3. Verifying departments: one-number lookups/s (POST /v1/holders/licences, each answer only
//!    after its usage record is durable) as a ratio to the durable issuance rate of the same run
//!    (each loaded twice, issue, look up, look up, issue: the means of the two), and usage-page
//!    reads/s (POST /v1/holders/usage) for a holder with 10,000 usage records against one with 10
//!    (each loaded twice, busy, quiet, quiet, busy: the mean of the two).
//!
//! 4. Citizens' QR codes: `POST /v1/verify` of presented QR payloads carrying salted
//!    disclosures, with the vault recognising logged documents by their hash (the default: the
//!    200 payloads, shown again and again, are answered from its memo of recognised payloads);
//!    on a second start of the same server with `--verify-memo-mib 0`, recognised by hash but
//!    each decoded and parsed; on a third with `--verify-by-hash false`, checking every
//!    signature; each as a ratio to raw 2-thread `verify_strict`. Then, offline: status-list
//!    generation for 1,000,000 licences, and QR PNG renders/s.
//!
//! `make bench` (= `cargo bench --bench throughput`). Environment: BENCH_SECS (default 5),
//! BENCH_CONNS (default 64). The load generator is wrk, as for the reference figures of
//! DESIGN §7.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use base64::{engine::general_purpose::STANDARD as B64, Engine};
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use licvault::store::{Batch, Cf, RocksStore, Store};
use serde_json::{json, Value};

#[path = "../tests/support/keys.rs"]
mod support_keys;
use support_keys::copy_keys;
#[path = "../tests/support/server.rs"]
mod support_server;

mod common;
use common::{rate, secs};

fn conns() -> usize {
    common::env("BENCH_CONNS", 64)
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

const ISSUER_TOKEN: &str = "dev-token-scjg-issuer-0001";

struct Load {
    per_sec: f64,
    p50_ms: f64,
    p99_ms: f64,
    failed: u64,
}

impl Load {
    /// Two runs of one load: the mean rate and median, the larger p99, every failure.
    fn mean(a: Load, b: Load) -> Load {
        Load {
            per_sec: (a.per_sec + b.per_sec) / 2.0,
            p50_ms: (a.p50_ms + b.p50_ms) / 2.0,
            p99_ms: a.p99_ms.max(b.p99_ms),
            failed: a.failed + b.failed,
        }
    }
}

/// Runs wrk (Debian package `wrk`; `make bench` installs it) against `path`, cycling through
/// `bodies`, and parses its report.
fn wrk(base: &str, path: &str, dir: &Path, bodies: &[String], token: Option<&str>) -> Load {
    let bodies_file = dir.join(format!("bodies{}.txt", path.replace('/', "_")));
    std::fs::write(&bodies_file, bodies.join("\n") + "\n").unwrap();
    let auth = token.map(|t| format!("wrk.headers[\"Authorization\"] = \"Bearer {t}\"\n")).unwrap_or_default();
    let script = format!(
        r#"local bodies = {{}}
for line in io.lines("{}") do bodies[#bodies + 1] = line end
local i = 0
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
{auth}
request = function()
  i = i % #bodies + 1
  return wrk.format(nil, nil, nil, bodies[i])
end
done = function(summary, latency, requests)
  io.write(string.format("LV %d %d %d %d %f\n", summary.requests,
    summary.errors.status + summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    latency:percentile(50), latency:percentile(99), summary.duration))
end
"#,
        bodies_file.display()
    );
    let script_file = dir.join(format!("load{}.lua", path.replace('/', "_")));
    std::fs::write(&script_file, script).unwrap();
    let out = Command::new("wrk")
        .args(["-t1", &format!("-c{}", conns()), &format!("-d{}s", secs() as u64), "-s"])
        .arg(&script_file)
        .arg(format!("{base}{path}"))
        .output()
        .expect("wrk is installed (make bench installs it)");
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text.lines().find(|l| l.starts_with("LV ")).unwrap_or_else(|| panic!("wrk said: {text}"));
    let f: Vec<f64> = line[3..].split(' ').map(|x| x.parse().unwrap()).collect();
    let (requests, failed, p50_us, p99_us, duration_us) = (f[0], f[1], f[2], f[3], f[4]);
    Load {
        per_sec: (requests - failed) / (duration_us / 1e6),
        p50_ms: p50_us / 1e3,
        p99_ms: p99_us / 1e3,
        failed: failed as u64,
    }
}

const VERIFIER_TOKEN: &str = "dev-token-zwfw-verifier-0001";
const HOLDER_CHANNEL_TOKEN: &str = "dev-token-app-holder-0001";

/// A synthetic company number (valid check characters) for company `n`.
fn company(n: u64) -> String {
    licvault::domain::holder::complete_uscc(&format!("91440300MA{:06}", n % 1_000_000)).unwrap()
}

/// A citizen ID number with a correct check character (GB 11643) for citizen `n`.
fn citizen(n: u64) -> String {
    let body = format!("440305{}{:03}", 19_800_101 + (n % 28), n % 1000);
    let weights = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
    let sum: u32 = body.bytes().zip(weights).map(|(b, w)| (b - b'0') as u32 * w).sum();
    format!("{body}{}", ["1", "0", "X", "9", "8", "7", "6", "5", "4", "3", "2"][(sum % 11) as usize])
}

/// The 结婚证 of the fixture, held by `holder`.
fn marriage(holder: &str) -> Value {
    let mut m: Value = serde_json::from_str(include_str!("../fixtures/examples/issue-marriage.json")).unwrap();
    m["holder"]["id"] = json!(holder);
    m["fields"]["男方身份证件号"] = json!(holder);
    m
}

/// Starts the release server on `data` (extra flags in `args`); its base URL.
/// Issues `body` with `token`; the answer (201 required).
async fn issue_one(http: &reqwest::Client, base: &str, token: &str, body: &Value) -> Value {
    let res = http.post(format!("{base}/v1/licences")).bearer_auth(token).json(body).send().await.unwrap();
    assert_eq!(res.status(), 201);
    res.json().await.unwrap()
}

fn start_server(data: &Path, keys: &Path, args: &[&str]) -> (std::process::Child, String) {
    support_server::spawn_server(env!("CARGO_BIN_EXE_licvault"), data, keys, args)
}

/// Status-list generation offline: 1,000,000 licences in their lists (1 % revoked, 0.5 %
/// suspended), each list read and signed as `GET /v1/status-lists/{n}` does. Seconds for all.
fn status_lists_for_a_million(root: &Path) -> (f64, u32) {
    use licvault::vault::status_lists::{key, make_list, LIST_FILL};
    let dir = tempfile::tempdir().unwrap();
    let store = RocksStore::open(dir.path()).unwrap();
    let (mut batch, mut list, mut index) = (Batch::default(), 0u32, 0u32);
    for n in 0..1_000_000u64 {
        if index == LIST_FILL {
            (list, index) = (list + 1, 0);
        }
        // Spread over the list as the random draw would (a fixed odd stride).
        let slot = (index as u64 * 40_503 % (1 << 17)) as u32;
        let status = if n % 100 == 7 {
            1
        } else if n % 200 == 3 {
            2
        } else {
            0
        };
        batch.put(Cf::Status, key(list, slot), vec![status]);
        index += 1;
        if batch.len() == 100_000 {
            store.write(std::mem::take(&mut batch)).unwrap();
        }
    }
    store.write(batch).unwrap();
    let signer = licvault::crypto::signer::Ed25519Signer::annotation(
        licvault::crypto::signer::load_private_key(&root.join("keys/annotation.key.pem"))
            .unwrap_or_else(|_| SigningKey::from_bytes(&[3; 32])),
    );
    let start = Instant::now();
    for n in 0..=list {
        let token =
            make_list(&store, n, &format!("https://licvault.example.gov.cn/v1/status-lists/{n}"), &signer, 1).unwrap();
        std::hint::black_box(token);
    }
    (start.elapsed().as_secs_f64(), list + 1)
}

fn lookup(holder: &str) -> Value {
    json!({"holder": {"type": "001", "id": holder}, "use_reason": "食品经营许可（新办）受理审查",
           "biz_num": "SPJY-2026-0042", "officer": {"name": "周敏", "staff_no": "ZW0419"}})
}

fn usage(holder: &str) -> Value {
    // Ten a page: the quiet holder has exactly ten, so both pages read the same number of leaves.
    json!({"holder": {"type": "001", "id": holder}, "limit": 10})
}

fn business_licence(n: u64) -> Value {
    business_licence_of(n, "91440300MA5E000256")
}

fn business_licence_of(n: u64, holder: &str) -> Value {
    json!({
        "type_code": "11100000MB00001073001",
        "holder": {"type": "001", "id": holder, "name": "示例科技有限公司"},
        "fields": {
            "统一社会信用代码": holder,
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
    let (mut child, base) = start_server(data.path(), keys.path(), &[]);

    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    // Warm up, and collect documents to verify.
    let payloads: Vec<String> = rt.block_on(async {
        let http = reqwest::Client::new();
        let mut docs = Vec::new();
        for n in 0..200 {
            // 200 companies with one licence each: the lookups below find one licence apiece.
            let r = issue_one(&http, &base, ISSUER_TOKEN, &business_licence_of(n, &company(n))).await;
            let doc = B64.decode(r["document"].as_str().unwrap()).unwrap();
            docs.push(json!({ "payload": licvault::qr::encode(&doc) }).to_string());
        }
        docs
    });
    // 200 citizens' 结婚证, presented with two disclosures each (his number, his birth date).
    let sd_payloads: Vec<String> = rt.block_on(async {
        let http = reqwest::Client::new();
        let mut docs = Vec::new();
        for n in 0..200 {
            let r = issue_one(&http, &base, "dev-token-mzj-issuer-0001", &marriage(&citizen(n))).await;
            let doc = B64.decode(r["document"].as_str().unwrap()).unwrap();
            let chosen: Vec<Vec<u8>> = r["disclosures"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|d| d["key"] == "holder.id" || d["key"] == "男方出生日期")
                .map(|d| B64.decode(d["disclosure"].as_str().unwrap()).unwrap())
                .collect();
            assert_eq!(chosen.len(), 2);
            let refs: Vec<&[u8]> = chosen.iter().map(Vec::as_slice).collect();
            let presented = licvault::crypto::cose::with_disclosures(&doc, &refs).unwrap();
            docs.push(json!({ "payload": licvault::qr::encode(&presented) }).to_string());
        }
        docs
    });
    let scripts = tempfile::tempdir().unwrap();
    // Issuance and lookups in the order issue, look up, look up, issue: the lookups' ratio to
    // issuance compares the means of two runs each, so that the machine's drift over the run
    // (its raw signing rate moves by a quarter within one here) weighs on both alike.
    let issuing = || wrk(&base, "/v1/licences", scripts.path(), &[business_licence(0).to_string()], Some(ISSUER_TOKEN));
    let lookups: Vec<String> = (0..200).map(|n| lookup(&company(n)).to_string()).collect();
    let looking_up = || wrk(&base, "/v1/holders/licences", scripts.path(), &lookups, Some(VERIFIER_TOKEN));
    let (issue_1, lookup_1, lookup_2, issue_2) = (issuing(), looking_up(), looking_up(), issuing());
    let runs = format!(
        "issuance {:.0} then {:.0} /s, lookups {:.0} then {:.0} /s",
        issue_1.per_sec, issue_2.per_sec, lookup_1.per_sec, lookup_2.per_sec
    );
    let (issue, lookup_load) = (Load::mean(issue_1, issue_2), Load::mean(lookup_1, lookup_2));
    let verify = wrk(&base, "/v1/verify", scripts.path(), &payloads, None);
    // Usage pages: a holder with 10,000 usage records against one with 10 (both have one licence).
    let (busy, quiet) = (company(900_001), company(900_002));
    rt.block_on(async {
        let http = reqwest::Client::new();
        for (holder, uses) in [(&busy, 10_000usize), (&quiet, 10)] {
            issue_one(&http, &base, ISSUER_TOKEN, &business_licence_of(0, holder)).await;
            let body = lookup(holder);
            let mut left = uses;
            while left > 0 {
                let n = left.min(64);
                let mut calls = tokio::task::JoinSet::new();
                for _ in 0..n {
                    let req = http.post(format!("{base}/v1/holders/licences")).bearer_auth(VERIFIER_TOKEN).json(&body);
                    calls.spawn(async move { req.send().await.unwrap().status() });
                }
                while let Some(st) = calls.join_next().await {
                    assert_eq!(st.unwrap(), 200);
                }
                left -= n;
            }
        }
    });
    // In the order busy, quiet, quiet, busy, so that what the machine does meanwhile (the flush and
    // compaction of the 10,010 usage leaves just written) weighs on both alike; each holder's rate
    // is the mean of its two runs, its p99 the larger.
    let pages = |holder: &str| {
        wrk(&base, "/v1/holders/usage", scripts.path(), &[usage(holder).to_string()], Some(HOLDER_CHANNEL_TOKEN))
    };
    let (busy_1, quiet_1, quiet_2, busy_2) = (pages(&busy), pages(&quiet), pages(&quiet), pages(&busy));
    let (busy_pages, quiet_pages) = (Load::mean(busy_1, busy_2), Load::mean(quiet_1, quiet_2));
    // Presented QR payloads with disclosures: recognised by hash, then (same data, the server
    // started again with --verify-by-hash false) every signature checked.
    let sd_by_hash = wrk(&base, "/v1/verify", scripts.path(), &sd_payloads, None);
    let _ = child.kill();
    let _ = child.wait();
    let (second, base) = start_server(data.path(), keys.path(), &["--verify-memo-mib", "0"]);
    child = second;
    let sd_parsed = wrk(&base, "/v1/verify", scripts.path(), &sd_payloads, None);
    let _ = child.kill();
    let _ = child.wait();
    let (second, base) = start_server(data.path(), keys.path(), &["--verify-by-hash", "false"]);
    child = second;
    let sd_full = wrk(&base, "/v1/verify", scripts.path(), &sd_payloads, None);
    let plain_full = wrk(&base, "/v1/verify", scripts.path(), &payloads, None);
    let _ = child.kill();
    let _ = child.wait();
    // Offline: status lists for a million licences, QR PNG renders.
    let (lists_secs, lists) = status_lists_for_a_million(root);
    let full_payload = serde_json::from_str::<Value>(&payloads[0]).unwrap()["payload"].as_str().unwrap().to_string();
    let png_rate = rate(Duration::from_secs_f64(secs().min(3.0)), || {
        std::hint::black_box(licvault::qr::png(&full_payload, licvault::qr::Ecc::M).unwrap());
    });
    // The machine is shared and noisy: measure the raw rates again after the load and compare
    // against the mean of both measurements.
    let (sign_after, _, verify2_after, _, _) = raw_limits();
    println!("raw again after the HTTP runs: sign {sign_after:.0} /s, verify_strict 2 threads {verify2_after:.0} /s");
    let sign = (sign + sign_after) / 2.0;
    let verify2 = (verify2 + verify2_after) / 2.0;
    println!(
        "over HTTP (wrk, 1 thread, {} connections, on the same 2 cores as the server, {:.0} s each):",
        conns(),
        secs()
    );
    println!(
        "  durable issuance   {:>8.0} /s  p50 {:>6.2} ms  p99 {:>6.2} ms  ({} non-2xx)  = {:>5.1} % of raw 1-core sign/s (target 15 %)",
        issue.per_sec,
        issue.p50_ms,
        issue.p99_ms,
        issue.failed,
        100.0 * issue.per_sec / sign
    );
    println!("    (ratios use the mean raw rates: sign {sign:.0} /s, verify_strict 2 threads {verify2:.0} /s)");
    println!(
        "  public verify (by hash) {:>8.0} /s  p50 {:>6.2} ms  p99 {:>6.2} ms  ({} non-2xx)  = {:>5.1} % of raw 2-thread verify_strict/s (target 25 %, p99 < 20 ms)",
        verify.per_sec,
        verify.p50_ms,
        verify.p99_ms,
        verify.failed,
        100.0 * verify.per_sec / verify2
    );
    println!("  durable issuance / synced single puts: {:.1}x (what group commit buys)", issue.per_sec / put1);
    println!(
        "  one-number lookup  {:>8.0} /s  p50 {:>6.2} ms  p99 {:>6.2} ms  ({} non-2xx)  = {:>5.2}x durable issuance (target 2x, p99 < 20 ms)",
        lookup_load.per_sec,
        lookup_load.p50_ms,
        lookup_load.p99_ms,
        lookup_load.failed,
        lookup_load.per_sec / issue.per_sec
    );
    println!("    (each lookup answers only after its licence.used leaf is durable: one leaf per licence disclosed)");
    println!("    (both the means of two runs, in the order issue, look up, look up, issue: {runs})");
    println!(
        "  usage page, 10,000 records {:>8.0} /s  p99 {:>6.2} ms;  10 records {:>8.0} /s  p99 {:>6.2} ms  = {:>5.2} (target 1.00 within noise)",
        busy_pages.per_sec,
        busy_pages.p99_ms,
        quiet_pages.per_sec,
        quiet_pages.p99_ms,
        busy_pages.per_sec / quiet_pages.per_sec
    );
    println!(
        "  verify, QR with 2 disclosures, by hash   {:>8.0} /s  p50 {:>6.2} ms  p99 {:>6.2} ms  ({} non-2xx)  = {:>5.1} % of raw 2-thread verify_strict/s (target 100 %)",
        sd_by_hash.per_sec,
        sd_by_hash.p50_ms,
        sd_by_hash.p99_ms,
        sd_by_hash.failed,
        100.0 * sd_by_hash.per_sec / verify2
    );
    println!(
        "  verify, QR with 2 disclosures, by hash, each parsed (memo off) {:>8.0} /s  p99 {:>6.2} ms  ({} non-2xx)  = {:>5.1} %",
        sd_parsed.per_sec,
        sd_parsed.p99_ms,
        sd_parsed.failed,
        100.0 * sd_parsed.per_sec / verify2
    );
    println!(
        "  verify, QR with 2 disclosures, signature {:>8.0} /s  p50 {:>6.2} ms  p99 {:>6.2} ms  ({} non-2xx)  = {:>5.1} % of raw 2-thread verify_strict/s (target 25 %)",
        sd_full.per_sec,
        sd_full.p50_ms,
        sd_full.p99_ms,
        sd_full.failed,
        100.0 * sd_full.per_sec / verify2
    );
    println!(
        "  verify, QR without disclosures, signature {:>7.0} /s  p99 {:>6.2} ms  = {:>5.1} % (the \"public verify\" line above is by hash)",
        plain_full.per_sec,
        plain_full.p99_ms,
        100.0 * plain_full.per_sec / verify2
    );
    println!("offline:");
    println!(
        "  status lists for 1,000,000 licences: {lists} lists of 131,072 entries read and signed in {:.2} s ({:.0} ms a list)",
        lists_secs,
        1000.0 * lists_secs / lists as f64
    );
    println!(
        "  QR PNG renders (full 营业执照 payload, {} characters, ECC M), 1 core: {png_rate:.0} /s",
        full_payload.len()
    );
}
