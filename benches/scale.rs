//! One node at city scale (`make bench-scale`; issue 11). A store is built through the real write
//! path (`POST /v1/licences/batch`, 500 a request, two in flight) to BENCH_SCALE licences (default
//! 10,000,000), and measured at 10,000, 1,000,000 and the full size:
//!
//! - durable issuance, one licence a request (64 clients);
//! - `POST /v1/verify` of random documents from the whole history (old and new);
//! - one-number lookups (`POST /v1/holders/licences`, each with its usage record);
//! - inclusion proofs of random leaves under the stage's checkpoint;
//! - resident memory of the server, and bytes on disk per licence right after a clean stop (and
//!   where they are: `licvault_store_bytes` per column family just before it);
//! - restart to healthy (`/readyz`) after the clean stop, and after `kill -9` under load.
//!
//! Each figure is printed with its ratio to the 10,000 figure of the same run; the table goes to
//! `benches/results/scale.csv` and a plot of the ratios to `benches/results/scale.png`.
//! BENCH_SECS (default 5) is how long each load runs; BENCH_SCALE_PLOT=1 only draws the plot
//! again from the CSV. BENCH_SCALE_DATA names a directory to build
//! the store in and keep afterwards (for profiling a stage by hand), instead of a temporary one.

use std::path::{Path, PathBuf};
use std::process::Child;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

#[path = "../tests/support/keys.rs"]
mod support_keys;
use support_keys::copy_keys;
#[path = "../tests/support/server.rs"]
mod support_server;

mod common;
use common::{import, load, log_size};

const ISSUER: &str = "dev-token-scjg-issuer-0001"; // 示例市市场监督管理局: 营业执照
const VERIFIER: &str = "dev-token-zwfw-verifier-0001"; // 政务服务中心, every type
const ADMIN: &str = "dev-token-admin-0001";

/// Company `n`'s USCC: one holder per licence, whatever the size.
fn uscc(n: u64) -> String {
    licvault::domain::holder::complete_uscc(&format!("91440300{:08}", n % 100_000_000)).unwrap()
}

fn business_licence(n: u64) -> Value {
    let holder = uscc(n);
    let mut b: Value = serde_json::from_str(include_str!("../fixtures/examples/issue-business-licence.json")).unwrap();
    b["holder"]["id"] = json!(holder);
    b["fields"]["统一社会信用代码"] = json!(holder);
    b["fields"]["法定代表人"] = json!(format!("张三{n}"));
    b["number"] = json!(format!("深市监{n:010}"));
    b
}

/// A multiplicative hash: spreads `n` over `0..m`.
fn spread(n: u64, m: u64) -> u64 {
    (n.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 11) % m.max(1)
}

struct Node {
    child: Child,
    base: String,
    data: PathBuf,
    keys: PathBuf,
}

impl Node {
    /// Starts the server on `data` and waits until `/readyz` answers 200: the node and the seconds
    /// from the start of the process to healthy.
    fn start(data: &Path, keys: &Path) -> (Self, f64) {
        let started = Instant::now();
        let (child, base) = support_server::spawn_server(env!("CARGO_BIN_EXE_licvault"), data, keys, &[]);
        while !ready(&base) {
            std::thread::sleep(Duration::from_millis(5));
        }
        let secs = started.elapsed().as_secs_f64();
        (Self { child, base, data: data.to_path_buf(), keys: keys.to_path_buf() }, secs)
    }

    fn signal(&mut self, sig: &str) {
        std::process::Command::new("kill").args([sig, &self.child.id().to_string()]).status().unwrap();
        self.child.wait().unwrap();
    }

    fn rss_mib(&self) -> f64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap_or_default();
        let kib: f64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap_or(0.0);
        kib / 1024.0
    }
}

/// Whether `GET /readyz` answers 200 (a plain request: the bench's client runtime is busy
/// elsewhere when the node restarts).
fn ready(base: &str) -> bool {
    use std::io::{Read, Write};
    let Some(addr) = base.strip_prefix("http://") else { return false };
    let Ok(mut conn) = std::net::TcpStream::connect(addr) else { return false };
    let request = format!("GET /readyz HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    let mut answer = String::new();
    conn.write_all(request.as_bytes()).is_ok()
        && conn.read_to_string(&mut answer).is_ok()
        && answer.starts_with("HTTP/1.1 200")
}

/// Bytes of every file under `dir`.
fn bytes_under(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => bytes_under(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

#[derive(Default, Clone)]
struct Stage {
    /// Licences when the store was stopped cleanly and measured on disk.
    built: u64,
    /// Licences at the end of the stage's loads.
    licences: u64,
    issuance: f64,
    verify: f64,
    lookup: f64,
    proof: f64,
    rss_mib: f64,
    bytes_per_licence: f64,
    restart_clean: f64,
    restart_kill: f64,
    parts: Vec<(String, u64)>,
    /// Bytes on disk after the clean stop by kind of file.
    files: Vec<(&'static str, u64)>,
}

/// Bytes under `dir` by kind of RocksDB file: tables, write-ahead logs, RocksDB's own diagnostic
/// log, and the rest (MANIFEST, OPTIONS, CURRENT, LOCK).
fn file_kinds(dir: &Path) -> Vec<(&'static str, u64)> {
    let mut kinds = vec![("tables", 0), ("write-ahead log", 0), ("diagnostic log", 0), ("other", 0)];
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let name = e.file_name().to_string_lossy().to_string();
        let len = e.metadata().map(|m| m.len()).unwrap_or(0);
        let k = if name.ends_with(".sst") {
            0
        } else if name.ends_with(".log") {
            1
        } else if name.starts_with("LOG") {
            2
        } else {
            3
        };
        kinds[k].1 += len;
    }
    kinds
}

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    if std::env::var_os("BENCH_SCALE_PLOT").is_some() {
        let dir = root.join("benches/results");
        let csv = std::fs::read_to_string(dir.join("scale.csv")).unwrap();
        plot(&dir.join("scale.png"), &read_csv(&csv)).unwrap();
        println!("  drew {} from scale.csv", dir.join("scale.png").display());
        return;
    }
    let max: u64 = common::env("BENCH_SCALE", 10_000_000);
    let mut stages: Vec<u64> = [10_000, 1_000_000, max].into_iter().filter(|n| *n <= max).collect();
    stages.dedup();
    let temp = tempfile::tempdir().unwrap();
    let work = match std::env::var_os("BENCH_SCALE_DATA") {
        Some(dir) => PathBuf::from(dir),
        None => temp.path().to_path_buf(),
    };
    assert!(!work.join("data").exists(), "{} holds a store already", work.display());
    let (data, keys) = (work.join("data"), work.join("keys"));
    std::fs::create_dir_all(&keys).unwrap();
    copy_keys(&root.join("keys"), &keys);
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let http = reqwest::Client::new();
    let (mut node, _) = Node::start(&data, &keys);
    // Licences issued so far: through the batch endpoint (`next` is the next batch item's number)
    // and one a request (each answered 201 counted).
    let mut next = 0u64;
    let single = Arc::new(AtomicU64::new(0));
    let mut results: Vec<Stage> = Vec::new();
    println!("one node at city scale (release server, client on the same 2 cores), up to {max} licences:");
    for &target in &stages {
        let started = Instant::now();
        let issued = next + single.load(Ordering::Relaxed);
        let want = target.saturating_sub(issued);
        rt.block_on(import(&http, &node.base, ISSUER, "scale", next, want, business_licence));
        next += want;
        println!("  built to {target} licences in {:.0} s", started.elapsed().as_secs_f64());
        // Measure the store as it serves day to day, not while it compacts what was just built.
        let settled = Instant::now();
        while rt.block_on(compaction_pending(&http, &node.base)) > 0 && settled.elapsed() < Duration::from_secs(600) {
            std::thread::sleep(Duration::from_millis(500));
        }
        println!("  compactions settled in {:.0} s", settled.elapsed().as_secs_f64());
        // A clean stop of the store as built (before the loads below add their usage records),
        // the bytes it leaves, and a restart.
        let built = next + single.load(Ordering::Relaxed);
        let mut stage = Stage { parts: rt.block_on(store_bytes(&http, &node.base)), built, ..Stage::default() };
        node.signal("-TERM");
        stage.bytes_per_licence = bytes_under(&data) as f64 / built as f64;
        stage.files = file_kinds(&data);
        let (restarted, secs) = Node::start(&node.data, &node.keys);
        node = restarted;
        stage.restart_clean = secs;
        // The tree's upper levels are read into memory in the background after a start: measure
        // once that is done, as the node serves day to day.
        let warming = Instant::now();
        let mut resident = u64::MAX;
        loop {
            std::thread::sleep(Duration::from_millis(500));
            let now = rt.block_on(resident_nodes(&http, &node.base));
            if now == resident || warming.elapsed() > Duration::from_secs(120) {
                break;
            }
            resident = now;
        }
        println!("  {resident} tree nodes resident {:.1} s after the start", warming.elapsed().as_secs_f64());
        // Documents from the whole history, old and new.
        let ids = rt.block_on(sample_ids(&http, &node.base, target, 256));
        let docs: Arc<Vec<String>> = Arc::new(rt.block_on(documents(&http, &node.base, &ids)));
        let size = rt.block_on(log_size(&http, &node.base));
        let base = node.base.clone();
        stage.verify = rt.block_on({
            let (http, base, docs) = (http.clone(), base.clone(), docs.clone());
            load(64, move |n| {
                let (http, base, docs) = (http.clone(), base.clone(), docs.clone());
                async move {
                    let doc = &docs[spread(n, docs.len() as u64) as usize];
                    let res =
                        http.post(format!("{base}/v1/verify")).json(&json!({ "payload": doc })).send().await.unwrap();
                    assert_eq!(res.status(), 200);
                }
            })
        });
        let holders = next;
        stage.lookup = rt.block_on({
            let (http, base) = (http.clone(), base.clone());
            load(64, move |n| {
                let (http, base) = (http.clone(), base.clone());
                async move {
                    let body = json!({"holder": {"type": "001", "id": uscc(spread(n, holders))},
                                      "use_reason": "城市规模基准：一号查询", "biz_num": "BENCH-0001"});
                    let res = http
                        .post(format!("{base}/v1/holders/licences"))
                        .bearer_auth(VERIFIER)
                        .json(&body)
                        .send()
                        .await
                        .unwrap();
                    assert_eq!(res.status(), 200);
                }
            })
        });
        stage.proof = rt.block_on({
            let (http, base) = (http.clone(), base.clone());
            load(64, move |n| {
                let (http, base) = (http.clone(), base.clone());
                async move {
                    let url = format!("{base}/v1/log/proofs/inclusion?index={}&size={size}", spread(n, size));
                    let res = http.get(url).send().await.unwrap();
                    assert_eq!(res.status(), 200);
                }
            })
        });
        let single_from = 50_000_000 + single.load(Ordering::Relaxed) * 1000;
        stage.issuance = rt.block_on({
            let (http, base, single) = (http.clone(), base.clone(), single.clone());
            load(64, move |n| {
                let (http, base, single) = (http.clone(), base.clone(), single.clone());
                async move {
                    let res = http
                        .post(format!("{base}/v1/licences"))
                        .bearer_auth(ISSUER)
                        .json(&business_licence(single_from + n % 1_000_000))
                        .send()
                        .await
                        .unwrap();
                    assert_eq!(res.status(), 201);
                    single.fetch_add(1, Ordering::Relaxed);
                }
            })
        });
        let licences_now = next + single.load(Ordering::Relaxed);
        stage.licences = licences_now;
        stage.rss_mib = node.rss_mib();
        // kill -9 while licences are being issued, and a restart.
        let busy = Arc::new(AtomicBool::new(true));
        let writers: Vec<_> = (0..16)
            .map(|w| {
                let (http, base, busy, single) = (http.clone(), node.base.clone(), busy.clone(), single.clone());
                let from = 80_000_000 + (results.len() as u64 * 16 + w) * 100_000;
                rt.spawn(async move {
                    let mut n = from;
                    while busy.load(Ordering::Relaxed) {
                        let sent = http
                            .post(format!("{base}/v1/licences"))
                            .bearer_auth(ISSUER)
                            .json(&business_licence(n))
                            .send()
                            .await;
                        if sent.is_ok_and(|r| r.status().as_u16() == 201) {
                            single.fetch_add(1, Ordering::Relaxed);
                        }
                        n += 1;
                    }
                })
            })
            .collect();
        std::thread::sleep(Duration::from_secs(2));
        node.signal("-KILL");
        busy.store(false, Ordering::Relaxed);
        for w in writers {
            let _ = rt.block_on(w);
        }
        let (restarted, secs) = Node::start(&node.data, &node.keys);
        node = restarted;
        stage.restart_kill = secs;
        print_stage(&stage, results.first());
        results.push(stage);
    }
    node.signal("-TERM");
    write_results(root, &results);
}

/// `count` ids spread over the whole log, read through the department's listing at cursors
/// spread over it.
async fn sample_ids(http: &reqwest::Client, base: &str, seed: u64, count: u64) -> Vec<String> {
    let size = log_size(http, base).await;
    let mut ids = Vec::new();
    for k in 0..count {
        let cursor = spread(k + seed, size);
        let url = format!("{base}/v1/licences?limit=1&cursor={cursor}");
        let v: Value = http.get(url).bearer_auth(ISSUER).send().await.unwrap().json().await.unwrap();
        if let Some(id) = v["licences"][0]["id"].as_str() {
            ids.push(id.to_string());
        }
    }
    ids
}

/// The signed documents of `ids`, base64.
async fn documents(http: &reqwest::Client, base: &str, ids: &[String]) -> Vec<String> {
    let mut docs = Vec::new();
    for id in ids {
        let v: Value = http
            .get(format!("{base}/v1/licences/{id}"))
            .bearer_auth(ISSUER)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        docs.push(v["document"].as_str().unwrap().to_string());
    }
    docs
}

/// A gauge's value from the metrics (`None` when the server does not report it).
async fn gauge(http: &reqwest::Client, base: &str, name: &str) -> Option<u64> {
    let text = http.get(format!("{base}/metrics")).bearer_auth(ADMIN).send().await.unwrap().text().await.unwrap();
    text.lines().find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
}

/// `licvault_store_compaction_pending_bytes` from the metrics.
async fn compaction_pending(http: &reqwest::Client, base: &str) -> u64 {
    gauge(http, base, "licvault_store_compaction_pending_bytes").await.unwrap_or(0)
}

async fn resident_nodes(http: &reqwest::Client, base: &str) -> u64 {
    gauge(http, base, "licvault_tree_resident_nodes").await.unwrap()
}

/// `licvault_store_bytes` from the metrics: bytes per column family and in the write-ahead log.
async fn store_bytes(http: &reqwest::Client, base: &str) -> Vec<(String, u64)> {
    let text = http.get(format!("{base}/metrics")).bearer_auth(ADMIN).send().await.unwrap().text().await.unwrap();
    text.lines()
        .filter_map(|l| l.strip_prefix("licvault_store_bytes{part=\""))
        .filter_map(|l| {
            let (part, rest) = l.split_once("\"} ")?;
            Some((part.to_string(), rest.trim().parse().ok()?))
        })
        .collect()
}

fn print_stage(s: &Stage, first: Option<&Stage>) {
    let first = first.unwrap_or(s);
    let ratio = |a: f64, b: f64| if b > 0.0 { a / b } else { 0.0 };
    println!("  at {} licences (ratio to {}):", s.licences, first.licences);
    println!("    durable issuance    {:>9.0} /s   {:.2}", s.issuance, ratio(s.issuance, first.issuance));
    println!(
        "    verify              {:>9.0} /s   {:.2}  (target within 20 %)",
        s.verify,
        ratio(s.verify, first.verify)
    );
    println!(
        "    one-number lookup   {:>9.0} /s   {:.2}  (target within 20 %)",
        s.lookup,
        ratio(s.lookup, first.lookup)
    );
    println!("    inclusion proof     {:>9.0} /s   {:.2}  (target within 20 %)", s.proof, ratio(s.proof, first.proof));
    println!("    resident memory     {:>9.0} MiB  {:.2}", s.rss_mib, ratio(s.rss_mib, first.rss_mib));
    println!(
        "    on disk             {:>9.0} B/licence after a clean stop at {} licences  {:.2}  (target ≤ 1,200)",
        s.bytes_per_licence,
        s.built,
        ratio(s.bytes_per_licence, first.bytes_per_licence)
    );
    println!("    restart, clean stop {:>9.2} s    (target < 2)", s.restart_clean);
    println!("    restart, kill -9    {:>9.2} s    (target < 2)", s.restart_kill);
    let total: u64 = s.parts.iter().map(|(_, b)| b).sum();
    let parts: Vec<String> =
        s.parts.iter().filter(|(_, b)| *b > 0).map(|(p, b)| format!("{p} {:.0}", *b as f64 / s.built as f64)).collect();
    println!(
        "    bytes per licence by part while serving, before the stop ({:.0} in all): {}",
        total as f64 / s.built as f64,
        parts.join(", ")
    );
    let files: Vec<String> = s.files.iter().map(|(k, b)| format!("{k} {:.0}", *b as f64 / s.built as f64)).collect();
    println!("    bytes per licence on disk after the clean stop, by file: {}", files.join(", "));
}

/// The CSV of every stage, and a PNG plot of the ratios to the first stage.
fn write_results(root: &Path, stages: &[Stage]) {
    let dir = root.join("benches/results");
    std::fs::create_dir_all(&dir).unwrap();
    let mut csv = String::from(
        "licences,issuance_per_s,verify_per_s,lookup_per_s,proof_per_s,rss_mib,bytes_per_licence,restart_clean_s,restart_kill_s\n",
    );
    for s in stages {
        csv += &format!(
            "{},{:.0},{:.0},{:.0},{:.0},{:.0},{:.0},{:.3},{:.3}\n",
            s.licences,
            s.issuance,
            s.verify,
            s.lookup,
            s.proof,
            s.rss_mib,
            s.bytes_per_licence,
            s.restart_clean,
            s.restart_kill
        );
    }
    std::fs::write(dir.join("scale.csv"), csv).unwrap();
    plot(&dir.join("scale.png"), stages).unwrap();
    println!("  wrote {} and scale.png", dir.join("scale.csv").display());
}

/// The stages of a CSV that [`write_results`] wrote (the figures the plot shows).
fn read_csv(csv: &str) -> Vec<Stage> {
    csv.lines()
        .skip(1)
        .map(|line| {
            let f: Vec<f64> = line.split(',').map(|v| v.parse().unwrap()).collect();
            Stage {
                licences: f[0] as u64,
                issuance: f[1],
                verify: f[2],
                lookup: f[3],
                proof: f[4],
                rss_mib: f[5],
                bytes_per_licence: f[6],
                restart_clean: f[7],
                restart_kill: f[8],
                ..Stage::default()
            }
        })
        .collect()
}

/// The font of the plot's labels (Debian's fonts-dejavu-core; `make bench-scale` installs it).
const FONT: &str = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf";

/// A line plot (plotters, drawn into a PNG) of each rate's ratio to the first stage against the
/// number of licences on a log scale, over the band of the ±20 % target; `make bench-scale` draws
/// it again from the CSV with `BENCH_SCALE_PLOT=1` (no measuring).
fn plot(path: &Path, stages: &[Stage]) -> Result<(), Box<dyn std::error::Error>> {
    use plotters::prelude::*;
    let font = std::fs::read(FONT).map_err(|e| format!("{FONT}: {e}"))?;
    plotters::style::register_font("sans-serif", FontStyle::Normal, Box::leak(font.into_boxed_slice()))
        .map_err(|_| format!("{FONT} is not a font"))?;
    let (Some(first), Some(last)) = (stages.first(), stages.last()) else { return Ok(()) };
    // x is log10 of the number of licences, labelled at the powers of ten.
    let lg = |n: u64| (n.max(1) as f64).log10();
    let (x0, x1) = (lg(first.licences).floor(), (lg(last.licences) + 0.2).max(lg(first.licences).floor() + 1.0));
    let root = BitMapBackend::new(path, (800, 450)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            format!("licvault at city scale: rate at N licences / rate at {}", human(first.licences)),
            ("sans-serif", 20),
        )
        .margin(14)
        .margin_right(34)
        .x_label_area_size(44)
        .y_label_area_size(52)
        .build_cartesian_2d(x0..x1, 0.0..1.6)?;
    chart
        .configure_mesh()
        .x_desc("licences in the store")
        .y_desc("ratio to the first stage")
        .x_labels(x1 as usize - x0 as usize + 1)
        .x_label_formatter(&|v| human(10f64.powf(*v).round() as u64))
        .y_labels(9)
        .light_line_style(TRANSPARENT)
        .label_style(("sans-serif", 14))
        .draw()?;
    let band = RGBColor(0xe6, 0xf4, 0xe6);
    chart
        .draw_series(std::iter::once(Rectangle::new([(x0, 0.8), (x1, 1.2)], band.filled())))?
        .label("target: within 20 %")
        .legend(move |(x, y)| Rectangle::new([(x, y - 6), (x + 20, y + 6)], band.filled()));
    type Series = (&'static str, RGBColor, fn(&Stage) -> f64);
    let series: [Series; 4] = [
        ("verify", RGBColor(0x1f, 0x77, 0xb4), |s| s.verify),
        ("one-number lookup", RGBColor(0xff, 0x7f, 0x0e), |s| s.lookup),
        ("inclusion proof", RGBColor(0x2c, 0xa0, 0x2c), |s| s.proof),
        ("durable issuance", RGBColor(0xd6, 0x27, 0x28), |s| s.issuance),
    ];
    for (name, colour, f) in series {
        let base = f(first).max(f64::MIN_POSITIVE);
        let points: Vec<(f64, f64)> = stages.iter().map(|s| (lg(s.licences), (f(s) / base).min(1.6))).collect();
        chart
            .draw_series(LineSeries::new(points.clone(), colour.stroke_width(2)))?
            .label(name)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], colour.stroke_width(2)));
        chart.draw_series(points.into_iter().map(|p| Circle::new(p, 4, colour.filled())))?;
    }
    chart
        .configure_series_labels()
        .label_font(("sans-serif", 14))
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK)
        .position(SeriesLabelPosition::LowerLeft)
        .draw()?;
    root.present()?;
    Ok(())
}

fn human(n: u64) -> String {
    match n {
        n if n >= 1_000_000 => format!("{:.1} M", n as f64 / 1e6),
        n if n >= 1_000 => format!("{:.0} k", n as f64 / 1e3),
        n => n.to_string(),
    }
}
