//! Issuing departments' daily work against the release server (`make bench`; issue 9):
//!
//! 1. Single-request durable issuance (`POST /v1/licences`, 64 clients in a loop) and migration
//!    through `POST /v1/licences/batch` (batches of 500, two in flight) of BENCH_IMPORT licences
//!    (default 100,000): licences/s, and the ratio of the second to the first (target ≥ 2×).
//! 2. A department with BENCH_DEPT licences (default 1,000,000, built through the batch endpoint)
//!    beside one with 1,000: `GET /v1/licences` pages of 100 from random cursors, pages/s for
//!    each (target: equal within noise).
//!
//! The client runs in this process on the same two cores as the server: absolute rates say
//! little, the ratios of the same run say what the machine allows.

use std::sync::Arc;
use std::time::Instant;

use serde_json::{json, Value};

#[path = "../tests/support/keys.rs"]
mod support_keys;
use support_keys::copy_keys;
#[path = "../tests/support/server.rs"]
mod support_server;

mod common;
use common::{import, load};

const BIG: &str = "dev-token-scjg-issuer-0001"; // 示例市市场监督管理局: 营业执照
const SMALL: &str = "dev-token-mzj-issuer-0001"; // 示例市民政局: 结婚证

fn business_licence(n: u64) -> Value {
    let holder = licvault::domain::holder::complete_uscc(&format!("91440300MA{:06}", n % 1_000_000)).unwrap();
    let mut b: Value = serde_json::from_str(include_str!("../fixtures/examples/issue-business-licence.json")).unwrap();
    b["holder"]["id"] = json!(holder);
    b["fields"]["统一社会信用代码"] = json!(holder);
    b["fields"]["法定代表人"] = json!(format!("张三{n}"));
    b["number"] = json!(format!("深市监{n:010}"));
    b["issue_date"] = json!("2016-08-01");
    b
}

/// A citizen ID number with a correct check character (GB 11643) for citizen `n`.
fn citizen(n: u64) -> String {
    let body = format!("440305{}{:03}", 19_800_101 + (n % 28), n % 1000);
    let weights = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
    let sum: u32 = body.bytes().zip(weights).map(|(b, w)| (b - b'0') as u32 * w).sum();
    format!("{body}{}", ["1", "0", "X", "9", "8", "7", "6", "5", "4", "3", "2"][(sum % 11) as usize])
}

fn marriage(n: u64) -> Value {
    let mut m: Value = serde_json::from_str(include_str!("../fixtures/examples/issue-marriage.json")).unwrap();
    let holder = citizen(n);
    m["holder"]["id"] = json!(holder);
    m["fields"]["男方身份证件号"] = json!(holder);
    m
}

/// Pages of 100 of `token`'s department from random cursors among `indexes` (leaving a full
/// page after each); pages/s.
async fn pages(http: &reqwest::Client, base: &str, token: &'static str, indexes: Arc<Vec<u64>>) -> f64 {
    let (http, base) = (http.clone(), base.to_string());
    load(64, move |n| {
        let (http, base, indexes) = (http.clone(), base.clone(), indexes.clone());
        async move {
            // A multiplicative hash of n spreads the cursors over the department.
            let at = (n.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 11) as usize % (indexes.len() - 100);
            let url = format!("{base}/v1/licences?limit=100&cursor={}", indexes[at]);
            let res = http.get(url).bearer_auth(token).send().await.unwrap();
            assert_eq!(res.status(), 200);
            let v: Value = res.json().await.unwrap();
            assert_eq!(v["licences"].as_array().unwrap().len(), 100);
        }
    })
    .await
}

fn main() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let imported: u64 = common::env("BENCH_IMPORT", 100_000);
    let dept: u64 = common::env("BENCH_DEPT", 1_000_000);
    let data = tempfile::tempdir().unwrap();
    let keys = tempfile::tempdir().unwrap();
    copy_keys(&root.join("keys"), keys.path());
    let (mut child, base) = support_server::spawn_server(env!("CARGO_BIN_EXE_licvault"), data.path(), keys.path(), &[]);
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let http = reqwest::Client::new();

    let single = rt.block_on({
        let (http, base) = (http.clone(), base.clone());
        load(64, move |n| {
            let (http, base) = (http.clone(), base.clone());
            async move {
                let res = http
                    .post(format!("{base}/v1/licences"))
                    .bearer_auth(BIG)
                    .json(&business_licence(5_000_000 + n % 900_000))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(res.status(), 201);
            }
        })
    });
    let (first, batch_rate) = rt.block_on(import(&http, &base, BIG, "import", 0, imported, business_licence));
    println!("issuing departments (release server, client on the same 2 cores):");
    println!("  durable issuance, one licence a request (64 clients)   {single:>8.0} /s");
    println!(
        "  migration, POST /v1/licences/batch (500 a request)      {batch_rate:>8.0} /s  = {:.2}x single-request issuance (target 2x; {imported} licences)",
        batch_rate / single
    );
    // Migration as a department runs it: `licvault import` of a generated file of `imported`
    // lines (500 a request, two in flight), then the same file again, which changes nothing.
    let work = tempfile::tempdir().unwrap();
    let (file, report) = (work.path().join("legacy.jsonl"), work.path().join("legacy.report.jsonl"));
    let lines: Vec<String> = (0..imported)
        .map(|n| {
            let mut l = business_licence(3_000_000 + n);
            l["issue_date"] = json!("2012-03-01");
            l.to_string()
        })
        .collect();
    std::fs::write(&file, lines.join("\n") + "\n").unwrap();
    let run_import = || {
        let started = Instant::now();
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_licvault"))
            .args(["import", &base, file.to_str().unwrap(), "--report", report.to_str().unwrap()])
            .env("LICVAULT_ISSUER_TOKEN", BIG)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        (started.elapsed().as_secs_f64(), String::from_utf8_lossy(&out.stdout).trim().to_string())
    };
    let log_size = || rt.block_on(common::log_size(&http, &base));
    let (secs, said) = run_import();
    let cli_rate = imported as f64 / secs;
    let before = log_size();
    let (_, again) = run_import();
    let after = log_size();
    assert!(again.contains(&format!("{imported} skipped")), "{again}");
    assert_eq!(before, after, "a second import changed the log: {again}");
    println!(
        "  migration, licvault import of a {imported}-line file         {cli_rate:>8.0} /s  = {:.2}x single-request issuance (target 2x)",
        cli_rate / single
    );
    println!("    first run: {said}");
    println!("    second run: {again}; the log stayed at {after} leaves");

    // A department with `dept` licences (the ones above count) beside one with 1,000.
    let started = Instant::now();
    let (mut big, _) =
        rt.block_on(import(&http, &base, BIG, "dept", 0, dept.saturating_sub(imported), business_licence));
    big.extend(first);
    let (small, _) = rt.block_on(import(&http, &base, SMALL, "small", 0, 1_000, marriage));
    big.sort_unstable();
    let build = started.elapsed().as_secs_f64();
    let (big, small) = (Arc::new(big), Arc::new(small));
    let big_pages = rt.block_on(pages(&http, &base, BIG, big.clone()));
    let small_pages = rt.block_on(pages(&http, &base, SMALL, small));
    println!("  listing pages of 100 from random cursors (built in {build:.0} s):");
    println!("    a department with {:>9} licences  {big_pages:>8.0} pages/s", big.len());
    println!(
        "    a department with {:>9} licences  {small_pages:>8.0} pages/s  = {:.2} (target 1.00 within noise)",
        1_000,
        big_pages / small_pages
    );
    child.kill().ok();
    child.wait().ok();
}
