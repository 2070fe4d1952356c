//! The hardening issue, one test (or more) per item: each fails on the core as it was (84c0695).

use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use base64::{engine::general_purpose::STANDARD as B64, Engine};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::common::*;
use licvault::store::{Batch, Cf, Store};

const COMPANY: &str = "91440300MA5E000256";

async fn metrics_text(s: &Server) -> String {
    let res = s.http.get(s.url("/metrics")).bearer_auth(ADMIN).send().await.unwrap();
    assert_eq!(res.status(), 200);
    res.text().await.unwrap()
}

/// The series (name and labels) without their values.
fn series(text: &str) -> Vec<String> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.rsplit_once(' ').map(|(k, _)| k.to_string()))
        .collect()
}

/// Item 1: invented methods do not grow /metrics, and a real Prometheus parser reads it.
#[tokio::test]
async fn metrics_stay_bounded_and_parse() {
    let s = Server::start().await;
    let invented = |n: usize| {
        // Methods are tokens: letters only, lengths from 1 to ~2 KB.
        let len = 1 + (n * 7919) % 2048;
        (0..len).map(|i| (b'A' + ((n * 31 + i * 17) % 26) as u8) as char).collect::<String>()
    };
    let send = |m: String| {
        let s = &s;
        async move {
            let method = reqwest::Method::from_bytes(m.as_bytes()).unwrap();
            let _ = s.http.request(method, s.url("/v1/licence-types")).send().await.unwrap();
        }
    };
    send(invented(0)).await;
    metrics_text(&s).await; // the scrape itself is a series too
    let before = metrics_text(&s).await;
    for n in 1..=1000 {
        send(invented(n)).await;
    }
    let after = metrics_text(&s).await;
    assert_eq!(series(&before), series(&after), "new series appeared");
    assert!(after.len() <= before.len() + 64, "{} → {} bytes", before.len(), after.len());
    assert!(after.contains("method=\"other\""), "{after}");

    let Ok(python) = std::env::var("LICVAULT_PYTHON") else {
        eprintln!("Prometheus parser check skipped: LICVAULT_PYTHON is not set (make test sets it)");
        return;
    };
    let mut child = Command::new(python)
        .arg(root().join("scripts/check_metrics.py"))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(child.stdin.as_mut().unwrap(), after.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "prometheus_client refused /metrics: {}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("licvault_http_requests counter"), "{stdout}");
    assert!(stdout.contains("licvault_log_size gauge"), "{stdout}");
}

/// Item 1: on a separate metrics address no token is needed; that router serves nothing else.
#[tokio::test]
async fn metrics_on_their_own_address() {
    let s = Server::start().await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let state = licvault::http::AppState::new(s.vault.clone(), licvault::config::Limits::default());
    tokio::spawn(async move { axum_free_serve(listener, state).await });
    let res = s.http.get(format!("http://{addr}/metrics")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert!(res.text().await.unwrap().contains("licvault_log_size"));
    assert_eq!(s.http.get(format!("http://{addr}/v1/licence-types")).send().await.unwrap().status(), 404);
}

async fn axum_free_serve(listener: tokio::net::TcpListener, state: licvault::http::AppState) {
    let limits = state.limits.clone();
    let _ = licvault::http::serve::serve_with(
        listener,
        licvault::http::metrics_router(state),
        &limits,
        std::future::pending(),
    )
    .await;
}

/// Item 2: a licence row edited in the database (revoked → valid) never yields a verdict.
#[tokio::test]
async fn an_edited_status_row_gives_no_verdict() {
    let s = Server::start().await;
    let issued = s.issue_company(COMPANY).await;
    let id = issued["licence"]["id"].as_str().unwrap().to_string();
    let qr = s.qr_of(&issued).await;
    let (st, _) = s.post(Some(ISSUER), &format!("/v1/licences/{id}/revoke"), &json!({"reason": "吊销"})).await;
    assert_eq!(st, 200);
    let (_, v) = s.post(None, "/v1/verify", &json!({"payload": qr})).await;
    assert_eq!(v["verdict"], "revoked");

    // An operator with database access flips the row back to valid.
    let store = s.vault.store().clone();
    let raw = store.get(Cf::Licences, id.as_bytes()).unwrap().unwrap();
    let mut rec: Value = serde_json::from_slice(&raw).unwrap();
    rec["status"] = json!("valid");
    let mut b = Batch::default();
    b.put(Cf::Licences, id.clone().into_bytes(), serde_json::to_vec(&rec).unwrap());
    store.write(b).unwrap();

    let res = s.http.post(s.url("/v1/verify")).json(&json!({"payload": qr})).send().await.unwrap();
    assert_eq!(res.status(), 503);
    let problem: Value = res.json().await.unwrap();
    assert_eq!(problem["code"], "store_inconsistent", "{problem}");
    let (st, problem) = s.get(Some(ISSUER), &format!("/v1/licences/{id}")).await;
    assert_eq!((st, problem["code"].as_str()), (503, Some("store_inconsistent")));
    // Nor can anything be built on it.
    let (st, _) = s.post(Some(ISSUER), &format!("/v1/licences/{id}/suspend"), &json!({"reason": "x"})).await;
    assert_eq!(st, 503);

    // A named successor that the log does not name.
    rec["status"] = json!("revoked");
    rec["successor"] = json!("1.2.156.3005.2.11100000MB00001073001.11440300MB2000100X.202600000001.002.R");
    let mut b = Batch::default();
    b.put(Cf::Licences, id.clone().into_bytes(), serde_json::to_vec(&rec).unwrap());
    store.write(b).unwrap();
    let (_, p) = s.get(Some(ISSUER), &format!("/v1/licences/{id}")).await;
    assert_eq!(p["code"], "store_inconsistent", "{p}");
    rec["successor"] = Value::Null;

    // Pointing the row at the issuance leaf instead is caught by the document and status check
    // only when they disagree; the row's document hash is bound too.
    rec["status"] = json!("revoked");
    rec["doc_sha256"] = json!("00".repeat(32));
    let mut b = Batch::default();
    b.put(Cf::Licences, id.clone().into_bytes(), serde_json::to_vec(&rec).unwrap());
    store.write(b).unwrap();
    let (st, problem) = s.get(Some(ISSUER), &format!("/v1/licences/{id}")).await;
    assert_eq!((st, problem["code"].as_str()), (503, Some("store_inconsistent")));
}

/// Item 3: start-up refuses a changed commitment key, a checkpoint signed by another key, and an
/// altered newest leaf; `licvault check` finds an altered old leaf.
#[tokio::test]
async fn start_up_checks_what_it_signs_on() {
    let data = tempfile::tempdir().unwrap();
    let keys = keys_copy();
    let fixtures = root().join("fixtures");
    let start = |keys: &std::path::Path| {
        let store = licvault::store::RocksStore::open(data.path()).unwrap();
        let parts = licvault::vault::Parts::load(Arc::new(store), keys, &fixtures).unwrap();
        licvault::vault::Vault::start(parts)
    };
    {
        let v = start(keys.path()).await.unwrap();
        licvault::cli::seed_demo(&v, &fixtures).await.unwrap();
        v.close();
    }
    // Another commitment key.
    let other = keys_copy();
    std::fs::write(other.path().join("commitment.key"), format!("{}\n", "ab".repeat(32))).unwrap();
    let e = start(other.path()).await.err().unwrap().to_string();
    assert!(e.contains("commitment key") && !e.contains('\n'), "{e}");
    // Another log key.
    let other = keys_copy();
    std::fs::copy(keys.path().join("departments/11440300MB2000100X.key.pem"), other.path().join("log.key.pem"))
        .unwrap();
    let e = start(other.path()).await.err().unwrap().to_string();
    assert!(e.contains("does not verify under the configured log key"), "{e}");
    // The newest leaf altered.
    {
        let store = licvault::store::RocksStore::open(data.path()).unwrap();
        let size = u64::from_be_bytes(store.get(Cf::Meta, b"size").unwrap().unwrap().try_into().unwrap());
        let last = size - 1;
        let mut leaf = store.get(Cf::Leaves, &last.to_be_bytes()).unwrap().unwrap();
        let n = leaf.len();
        leaf[n - 1] ^= 0x01;
        let mut b = Batch::default();
        b.put(Cf::Leaves, last.to_be_bytes(), leaf);
        store.write(b).unwrap();
    }
    let e = start(keys.path()).await.err().unwrap().to_string();
    assert!(e.contains("does not hash to the signed tree"), "{e}");

    // `licvault check` replays everything and names the leaf.
    let out = Command::new(env!("CARGO_BIN_EXE_licvault"))
        .args(["check", "--data", data.path().to_str().unwrap(), "--keys", keys.path().to_str().unwrap()])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success() && text.contains("log NOT ok: leaf"), "{text}");
}

/// Item 3: `licvault check` on a sound log.
#[tokio::test]
async fn check_replays_a_sound_log() {
    let data = tempfile::tempdir().unwrap();
    let keys = keys_copy();
    let fixtures = root().join("fixtures");
    {
        let store = licvault::store::RocksStore::open(data.path()).unwrap();
        let parts = licvault::vault::Parts::load(Arc::new(store), keys.path(), &fixtures).unwrap();
        let v = licvault::vault::Vault::start(parts).await.unwrap();
        licvault::cli::seed_demo(&v, &fixtures).await.unwrap();
        v.close();
    }
    let out = Command::new(env!("CARGO_BIN_EXE_licvault"))
        .args(["check", "--data", data.path().to_str().unwrap(), "--keys", keys.path().to_str().unwrap()])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success() && text.contains("log ok:") && text.contains("log.keys"), "{text}");
}

/// Item 4: expiry and rotation with a grace period, effective on the running server.
#[tokio::test]
async fn client_expiry_and_rotation_grace() {
    let s = Server::start().await;
    let soon = time::OffsetDateTime::now_utc() + time::Duration::seconds(2);
    let soon = soon.format(&time::format_description::well_known::Rfc3339).unwrap();
    let (st, v) = s
        .post(
            Some(ADMIN),
            "/v1/admin/clients",
            &json!({"id": "temp", "name": "临时系统", "role": "issuer", "uscc": "11440300MB2000100X", "expires_at": soon}),
        )
        .await;
    assert_eq!(st, 201, "{v}");
    let temp = v["token"].as_str().unwrap().to_string();
    let (st, v) = s
        .post(
            Some(ADMIN),
            "/v1/admin/clients",
            &json!({"id": "grace", "name": "轮换系统", "role": "issuer", "uscc": "11440300MB2000100X"}),
        )
        .await;
    assert_eq!(st, 201, "{v}");
    let old = v["token"].as_str().unwrap().to_string();
    let (st, v) = s
        .post(Some(ADMIN), "/v1/admin/clients/grace/rotate", &json!({"reason": "轮换", "old_token_valid_seconds": 2}))
        .await;
    assert_eq!(st, 200, "{v}");
    let new = v["token"].as_str().unwrap().to_string();
    assert_eq!(s.issue_with(&temp, COMPANY).await, 201);
    assert_eq!(s.issue_with(&old, COMPANY).await, 201, "the old token works during the grace period");
    assert_eq!(s.issue_with(&new, COMPANY).await, 201);
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let (st, p) = s.post(Some(&temp), "/v1/licences", &business_licence(COMPANY)).await;
    assert_eq!((st, p["code"].as_str()), (401, Some("token_expired")));
    let (st, p) = s.post(Some(&old), "/v1/licences", &business_licence(COMPANY)).await;
    assert_eq!((st, p["code"].as_str()), (401, Some("invalid_token")));
    assert_eq!(s.issue_with(&new, COMPANY).await, 201);
    // Every change is a leaf.
    let kinds: Vec<String> = (0..s.vault.head().size)
        .filter_map(|i| s.vault.leaf(i).unwrap())
        .map(|l| l.event.kind)
        .filter(|k| k.starts_with("client."))
        .collect();
    assert!(kinds.contains(&"client.rotated".to_string()), "{kinds:?}");
    let (st, p) = s.post(Some(ADMIN), "/v1/admin/clients/nobody/disable", &json!({"reason": "x"})).await;
    assert_eq!((st, p["code"].as_str()), (404, Some("client_not_found")));
}

/// Item 5: the server refuses the public development keys without --demo, in one line.
#[test]
fn development_keys_need_demo() {
    let data = tempfile::tempdir().unwrap();
    let keys = keys_copy();
    let out = Command::new(env!("CARGO_BIN_EXE_licvault"))
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--data",
            data.path().join("d").to_str().unwrap(),
            "--keys",
            keys.path().to_str().unwrap(),
            "--fixtures",
            root().join("fixtures").to_str().unwrap(),
        ])
        .env_remove("LICVAULT_DEMO")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    let line = err.lines().find(|l| l.contains("refusing to start")).unwrap_or_default();
    assert!(line.contains("development key") && line.contains("--demo"), "{err}");
    // The keys are refused before the store is opened: nothing was created.
    assert!(!data.path().join("d").exists(), "a refused start created the data directory");
}

/// Item 5: the image carries no key; the serving key directory holds no root private key.
#[test]
fn no_private_key_in_the_image_or_the_serving_keys() {
    let dockerfile = std::fs::read_to_string(root().join("Dockerfile")).unwrap();
    for line in dockerfile.lines().filter(|l| l.trim_start().starts_with("COPY")) {
        assert!(!line.contains("keys"), "the image must not carry keys: {line}");
    }
    assert!(!root().join("keys/root.key.pem").exists());
    let keys = keys_copy();
    std::fs::copy(root().join("keys/root-ca/root.key.pem"), keys.path().join("root.key.pem")).unwrap();
    let store = licvault::store::MemoryStore::new();
    let e = licvault::vault::Parts::load(Arc::new(store), keys.path(), &root().join("fixtures")).err().unwrap();
    assert!(e.to_string().contains("root CA's private key"), "{e}");
}

/// Item 6: for random request dates, issuing succeeds exactly when reading, verifying and
/// renewing the licence then succeed; a date outside the documented range is 400 invalid_date.
#[test]
fn a_licence_is_issued_only_if_it_can_be_read() {
    use proptest::prelude::*;
    let rt = tokio::runtime::Runtime::new().unwrap();
    let s = rt.block_on(Server::start());
    let date = (1900i32..3100, 1u8..=12, 1u8..=31).prop_map(|(y, m, d)| format!("{y:04}-{m:02}-{d:02}"));
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig {
        cases: 48,
        rng_algorithm: proptest::test_runner::RngAlgorithm::ChaCha,
        ..ProptestConfig::default()
    });
    let n = std::sync::atomic::AtomicU32::new(0);
    runner
        .run(&(date.clone(), proptest::option::of(date)), |(from, until)| {
            let k = n.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % 10_000;
            let holder = licvault::domain::holder::complete_uscc(&format!("91440300MA6E{k:04}")).unwrap();
            let mut body = business_licence(&holder);
            body["valid_from"] = json!(from);
            if let Some(u) = &until {
                body["valid_until"] = json!(u);
            }
            rt.block_on(async {
                let (st, v) = s.post(Some(ISSUER), "/v1/licences", &body).await;
                if st != 201 {
                    prop_assert_eq!(st, 400, "{}", v);
                    let code = v["code"].as_str().unwrap_or_default();
                    prop_assert!(["invalid_date", "invalid_dates"].contains(&code), "{}", v);
                    return Ok(());
                }
                let id = v["licence"]["id"].as_str().unwrap().to_string();
                let (st, got) = s.get(Some(ISSUER), &format!("/v1/licences/{id}")).await;
                prop_assert_eq!(st, 200, "{}", got);
                let (st, verdict) = s.post(None, "/v1/verify", &json!({"payload": got["qr_payload"]})).await;
                prop_assert_eq!(st, 200);
                prop_assert!(verdict["verdict"] != "malformed", "{}", verdict);
                let fields = v["licence"]["fields"].clone();
                // 延续 before expiry; after it, the department issues a new licence instead.
                let renew = json!({"kind": "renewal", "reason": "延续", "fields": fields, "valid_from": from, "valid_until": until});
                let (st, r) = s.post(Some(ISSUER), &format!("/v1/licences/{id}/versions"), &renew).await;
                let want = if v["status"] == "expired" { 409 } else { 201 };
                prop_assert_eq!(st, want, "{}", r);
                Ok(())
            })
        })
        .unwrap();
    // The reported cases at the edges.
    rt.block_on(async {
        for (from, code) in
            [("1969-12-31", "invalid_date"), ("-999-01-01", "invalid_date"), ("3000-01-01", "invalid_date")]
        {
            let mut body = business_licence(COMPANY);
            body["valid_from"] = json!(from);
            let (st, v) = s.post(Some(ISSUER), "/v1/licences", &body).await;
            assert_eq!((st, v["code"].as_str()), (400, Some(code)), "{from}: {v}");
        }
        let mut body = business_licence(COMPANY);
        body["valid_from"] = json!("1970-01-02");
        assert_eq!(s.post(Some(ISSUER), "/v1/licences", &body).await.0, 201);
    });
}

/// Item 7: an expired seal stops signing (503 no_valid_seal naming the department); a new seal
/// loads without a restart; documents under the old kid keep verifying.
#[tokio::test]
async fn expired_seals_stop_signing_and_new_ones_load_live() {
    use licvault::crypto::keygen::{new_seal, DepartmentSpec};
    let s = Server::start().await;
    let old = s.issue_company(COMPANY).await;
    let old_qr = s.qr_of(&old).await;
    let dept = DepartmentSpec {
        uscc: "11440300MB2000100X".into(),
        name: "示例市市场监督管理局".into(),
        area_code: "440300".into(),
    };
    let keys = s.keys.path();
    let root_ca = keys.join("root-ca");
    // Replace the department's seal by one whose certificate expired yesterday.
    std::fs::remove_file(keys.join("departments/11440300MB2000100X.key.pem")).unwrap();
    let past = time::OffsetDateTime::now_utc() - time::Duration::days(30);
    new_seal(keys, &root_ca, &dept, "11440300MB2000100X.expired", past, 29, false).unwrap();
    let (st, v) = s.post(Some(ADMIN), "/v1/admin/keys/reload", &json!({})).await;
    assert_eq!(st, 200, "{v}");
    let (st, p) = s.post(Some(ISSUER), "/v1/licences", &business_licence(COMPANY)).await;
    assert_eq!((st, p["code"].as_str()), (503, Some("no_valid_seal")), "{p}");
    assert!(p["detail"].as_str().unwrap().contains("11440300MB2000100X"), "{p}");
    // What was signed before still verifies.
    let (_, verdict) = s.post(None, "/v1/verify", &json!({"payload": old_qr})).await;
    assert_eq!(verdict["verdict"], "valid", "{verdict}");

    // A new seal, loaded by the admin call: issuing works again, under a new kid.
    let now = time::OffsetDateTime::now_utc() - time::Duration::minutes(1);
    new_seal(keys, &root_ca, &dept, "11440300MB2000100X.new", now, 365, false).unwrap();
    let (st, v) = s.post(Some(ADMIN), "/v1/admin/keys/reload", &json!({})).await;
    assert_eq!(st, 200, "{v}");
    let signing: Vec<&Value> =
        v["departments"].as_array().unwrap().iter().filter(|d| d["uscc"] == "11440300MB2000100X").collect();
    assert_eq!(signing.len(), 3, "old, expired and new certificates all stay: {v}");
    assert_eq!(signing.iter().filter(|d| d["signing"] == true).count(), 1, "{v}");
    let new = s.issue_company(COMPANY).await;
    let kid = |doc: &Value| {
        let bytes = B64.decode(doc["document"].as_str().unwrap()).unwrap();
        licvault::crypto::cose::Envelope::parse(&bytes).unwrap().kid()
    };
    assert_ne!(kid(&old), kid(&new));
    let (_, verdict) = s.post(None, "/v1/verify", &json!({"payload": old_qr})).await;
    assert_eq!(verdict["verdict"], "valid", "{verdict}");
    let (_, verdict) = s.post(None, "/v1/verify", &json!({"payload": s.qr_of(&new).await})).await;
    assert_eq!(verdict["verdict"], "valid", "{verdict}");

    // A reload that would drop a certificate is refused, and changes nothing.
    std::fs::remove_file(keys.join("departments/11440300MB2000100X.expired.crt.pem")).unwrap();
    std::fs::remove_file(keys.join("departments/11440300MB2000100X.expired.key.pem")).unwrap();
    let (st, p) = s.post(Some(ADMIN), "/v1/admin/keys/reload", &json!({})).await;
    assert_eq!((st, p["code"].as_str()), (400, Some("invalid_keys")), "{p}");
    assert_eq!(s.issue_with(ISSUER, COMPANY).await, 201);
}

/// Item 9: a half-sent header is closed within the header timeout; the idle timeout closes a
/// silent connection; shutdown under load drains within its grace period.
#[tokio::test]
async fn slow_clients_are_cut_off_and_shutdown_drains() {
    let s = Server::start().await;
    let limits = licvault::config::Limits {
        header_timeout: 1,
        request_timeout: 1,
        idle_timeout: 2,
        max_connections: 64,
        shutdown_grace: 3,
    };
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let (addr, server) = serve_api(s.vault.clone(), limits, async {
        let _ = stop_rx.await;
    })
    .await;

    // Half a request line, then silence: the header timeout closes the connection (on a server
    // whose idle timeout could not be what closed it).
    let header_only = licvault::config::Limits {
        header_timeout: 1,
        request_timeout: 1,
        idle_timeout: 60,
        max_connections: 64,
        shutdown_grace: 3,
    };
    let (haddr, _) = serve_api(s.vault.clone(), header_only, std::future::pending()).await;
    let mut half = tokio::net::TcpStream::connect(haddr).await.unwrap();
    half.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ").await.unwrap();
    let mut buf = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(20), half.read_to_end(&mut buf)).await;
    assert!(closed.is_ok(), "a half-sent header kept its connection open");
    assert!(buf.is_empty() || String::from_utf8_lossy(&buf).starts_with("HTTP/1.1 408"), "{buf:?}");

    // A body that trickles in too slowly: 408, as a problem body.
    let mut slow = tokio::net::TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST /v1/licences HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {ISSUER}\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"type_code\""
    );
    slow.write_all(head.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), slow.read_to_end(&mut buf)).await.expect("no answer").unwrap();
    let answer = String::from_utf8_lossy(&buf);
    assert!(answer.starts_with("HTTP/1.1 408") && answer.contains("request_timeout"), "{answer}");

    // A connection that says nothing is closed too.
    let mut idle = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut buf = Vec::new();
    assert!(tokio::time::timeout(Duration::from_secs(10), idle.read_to_end(&mut buf)).await.is_ok());

    // Shutdown under load: requests in flight are answered, then the server is gone.
    let client = reqwest::Client::new();
    let mut load = Vec::new();
    for i in 0..32 {
        let client = client.clone();
        let holder = licvault::domain::holder::complete_uscc(&format!("91440300MA7E{i:04}")).unwrap();
        load.push(tokio::spawn(async move {
            client
                .post(format!("http://{addr}/v1/licences"))
                .bearer_auth(ISSUER)
                .json(&business_licence(&holder))
                .send()
                .await
                .map(|r| r.status().as_u16())
        }));
    }
    tokio::time::sleep(Duration::from_millis(20)).await;
    stop_tx.send(()).unwrap();
    let done = tokio::time::timeout(Duration::from_secs(15), server).await;
    assert!(done.is_ok(), "shutdown did not drain within its grace period");
    for l in load {
        // Each request either was answered or never got in: never a half-done write.
        if let Ok(status) = l.await.unwrap() {
            assert!(status == 201 || status == 503, "{status}");
        }
    }
    assert!(tokio::net::TcpStream::connect(addr).await.is_err(), "the listener is closed");
}

/// Item 10: /readyz is 503 with the reason while every write fails, and 200 again once writes
/// succeed.
#[tokio::test]
async fn readiness_tells_the_truth() {
    let store = Arc::new(licvault::store::MemoryStore::new());
    let s = Server::start_on(store.clone(), tempfile::tempdir().unwrap()).await;
    let ready = |s: &Server| {
        let url = s.url("/readyz");
        let http = s.http.clone();
        async move {
            let r = http.get(url).send().await.unwrap();
            (r.status().as_u16(), r.text().await.unwrap())
        }
    };
    assert_eq!(ready(&s).await.0, 200);
    store.set_read_only(true);
    assert_eq!(s.issue_with(ISSUER, COMPANY).await, 503);
    let (st, text) = ready(&s).await;
    assert_eq!(st, 503, "{text}");
    assert_eq!(text, "not ready: writes are failing\n");
    store.set_read_only(false);
    tokio::time::sleep(Duration::from_millis(1100)).await; // probes are at most one a second
    let (st, text) = ready(&s).await;
    assert_eq!(st, 200, "{text}");
    assert_eq!(s.issue_with(ISSUER, COMPANY).await, 201);
}

/// Item 11: one text rule for every free-text input; 400 naming the field; unknown holder
/// fields refused.
#[tokio::test]
async fn text_that_could_spoof_or_corrupt_is_refused() {
    let s = Server::start().await;
    let id = s.issue_company(COMPANY).await["licence"]["id"].as_str().unwrap().to_string();
    let before = s.vault.head().size;
    for (bad, what) in [
        ("吊销\u{0}", "U+0000"),
        ("\u{1b}[2J吊销", "U+001B"),
        ("第一行\n第二行", "U+000A"),
        ("吊\u{202E}销", "U+202E"),
        ("吊\u{2067}销", "U+2067"),
        ("吊\u{200B}销", "U+200B"),
    ] {
        let (st, p) = s.post(Some(ISSUER), &format!("/v1/licences/{id}/suspend"), &json!({"reason": bad})).await;
        assert_eq!((st, p["code"].as_str()), (400, Some("invalid_text")), "{bad:?}: {p}");
        let detail = p["detail"].as_str().unwrap();
        assert!(detail.starts_with("reason ") && detail.contains(what), "{detail}");
    }
    // Issuance bodies: (where, the value, the code, what the detail must say).
    type Case<'a> = (&'a [&'a str], &'a str, &'a str, fn(&str) -> bool);
    let cases: [Case; 4] = [
        (&["holder", "name"], "示例\u{202E}公司", "invalid_text", |d| d.starts_with("holder.name")),
        (&["fields", "法定代表人"], "张\u{200D}三", "invalid_text", |d| d.contains("法定代表人")),
        (&["fields", "名称 "], "另一个名称", "invalid_fields", |d| d.contains("twice")),
        (&["holder", "colour"], "red", "invalid_body", |_| true),
    ];
    for (path, value, code, detail_ok) in cases {
        let mut body = business_licence(COMPANY);
        body[path[0]][path[1]] = json!(value);
        let (st, p) = s.post(Some(ISSUER), "/v1/licences", &body).await;
        assert_eq!((st, p["code"].as_str()), (400, Some(code)), "{p}");
        assert!(detail_ok(p["detail"].as_str().unwrap()), "{p}");
    }
    assert_eq!(s.vault.head().size, before, "nothing was written");
    // Decomposed text is stored composed (NFC).
    let mut body = business_licence(COMPANY);
    body["holder"]["name"] = json!("Cafe\u{301} 有限公司");
    let (st, v) = s.post(Some(ISSUER), "/v1/licences", &body).await;
    assert_eq!(st, 201, "{v}");
    assert_eq!(v["licence"]["holder"]["name"], "Café 有限公司");
}

/// Item 12: a genuine document re-encoded into other bytes gets a verdict that says so.
#[tokio::test]
async fn a_re_encoded_document_is_recognised() {
    let s = Server::start().await;
    let issued = s.issue_company(COMPANY).await;
    let doc = B64.decode(issued["document"].as_str().unwrap()).unwrap();
    assert_eq!(doc[0], 0xd2);
    let untagged = B64.encode(&doc[1..]); // the same COSE_Sign1 without its tag
    let (_, v) = s.post(None, "/v1/verify", &json!({"payload": untagged})).await;
    assert_eq!(v["verdict"], "valid", "{v}");
    assert!(v["reasons"].to_string().contains("re-encoding"), "{v}");
    assert!(v["log"]["status_as_of_size"].as_u64().unwrap() > v["log"]["index"].as_u64().unwrap(), "{v}");
    // After a later leaf (a revocation), the status holds as of a head that covers that leaf.
    let id = issued["licence"]["id"].as_str().unwrap();
    let (st, r) = s.post(Some(ISSUER), &format!("/v1/licences/{id}/revoke"), &json!({"reason": "吊销"})).await;
    assert_eq!(st, 200, "{r}");
    let revoked_at = r["log"]["index"].as_u64().unwrap();
    let (_, v) = s.post(None, "/v1/verify", &json!({"payload": issued["document"]})).await;
    assert_eq!(v["verdict"], "revoked", "{v}");
    assert!(v["log"]["status_as_of_size"].as_u64().unwrap() > revoked_at, "{v}");
}

/// Item 12: a history walk never loops on a back-pointer that does not go back.
#[tokio::test]
async fn history_requires_pointers_that_go_back() {
    let s = Server::start().await;
    let id = s.issue_company(COMPANY).await["licence"]["id"].as_str().unwrap().to_string();
    let (st, _) = s.post(Some(ISSUER), &format!("/v1/licences/{id}/suspend"), &json!({"reason": "暂扣"})).await;
    assert_eq!(st, 200);
    let rec: Value =
        serde_json::from_slice(&s.vault.store().get(Cf::Licences, id.as_bytes()).unwrap().unwrap()).unwrap();
    let last = rec["last_index"].as_u64().unwrap();
    let mut leaf = s.vault.leaf(last).unwrap().unwrap();
    leaf.licence_prev = Some(last);
    let mut b = Batch::default();
    b.put(Cf::Leaves, last.to_be_bytes(), leaf.encode());
    s.vault.store().write(b).unwrap();
    let (st, p) =
        tokio::time::timeout(Duration::from_secs(10), s.get(Some(ISSUER), &format!("/v1/licences/{id}/history")))
            .await
            .expect("the history walk looped");
    assert_eq!((st, p["code"].as_str()), (503, Some("store_inconsistent")), "{p}");
}

/// Item 12: the data directory is created 0700.
#[test]
fn the_data_directory_is_private() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("new/data");
    licvault::cli::open_store(&data).unwrap();
    assert_eq!(std::fs::metadata(&data).unwrap().permissions().mode() & 0o777, 0o700);
    // An existing directory open to others is made private too.
    let old = dir.path().join("old");
    std::fs::create_dir(&old).unwrap();
    std::fs::set_permissions(&old, std::fs::Permissions::from_mode(0o755)).unwrap();
    licvault::cli::open_store(&old).unwrap();
    assert_eq!(std::fs::metadata(&old).unwrap().permissions().mode() & 0o777, 0o700);
}

/// Item 9: at the connection cap, a new client waits in the backlog (no memory here) and is
/// served as soon as a slot frees.
#[tokio::test]
async fn the_connection_cap_holds_new_clients_back() {
    let s = Server::start().await;
    let limits = licvault::config::Limits { max_connections: 1, ..licvault::config::Limits::default() };
    let (addr, _) = serve_api(s.vault.clone(), limits, std::future::pending()).await;
    let get = |mut conn: tokio::net::TcpStream| async move {
        conn.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").await.unwrap();
        let mut buf = Vec::new();
        conn.read_to_end(&mut buf).await.unwrap();
        String::from_utf8_lossy(&buf).into_owned()
    };
    // One connection takes the only slot and keeps it (keep-alive, no request yet).
    let holder = tokio::net::TcpStream::connect(addr).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let waiting = tokio::spawn(get(tokio::net::TcpStream::connect(addr).await.unwrap()));
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!waiting.is_finished(), "a second connection was served beyond the cap");
    drop(holder);
    let answer = tokio::time::timeout(Duration::from_secs(10), waiting).await.expect("never served").unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
}

/// Item 2 (review): a row rolled back to an earlier, self-consistent state (revoked → its
/// issuance leaf) passes the online check, so start-up refuses it and `licvault check` names
/// it; an edited validity period changes no verdict, since it comes from the signed document.
#[tokio::test]
async fn a_rolled_back_row_is_caught_at_start_and_by_check() {
    let data = tempfile::tempdir().unwrap();
    let keys = keys_copy();
    let fixtures = root().join("fixtures");
    let open = || {
        let store = licvault::store::RocksStore::open(data.path()).unwrap();
        let parts = licvault::vault::Parts::load(Arc::new(store), keys.path(), &fixtures).unwrap();
        licvault::vault::Vault::start(parts)
    };
    let v = open().await.unwrap();
    licvault::cli::seed_demo(&v, &fixtures).await.unwrap();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let (addr, server) = serve_api(v.clone(), licvault::config::Limits::default(), async {
        let _ = stop_rx.await;
    })
    .await;
    let base = format!("http://{addr}");
    let http = reqwest::Client::new();
    let post = |path: String, token: Option<&'static str>, body: Value| {
        let (http, base) = (http.clone(), base.clone());
        async move {
            let mut r = http.post(format!("{base}{path}")).json(&body);
            if let Some(t) = token {
                r = r.bearer_auth(t);
            }
            let r = r.send().await.unwrap();
            (r.status().as_u16(), r.json::<Value>().await.unwrap())
        }
    };
    let mut body = business_licence(COMPANY);
    body["valid_from"] = json!("2015-01-01");
    body["valid_until"] = json!("2020-12-31");
    let (st, issued) = post("/v1/licences".into(), Some(ISSUER), body).await;
    assert_eq!(st, 201, "{issued}");
    let id = issued["licence"]["id"].as_str().unwrap().to_string();
    let doc = issued["document"].clone();
    let store = v.store().clone();
    let edit = |f: &dyn Fn(&mut Value)| {
        let mut rec: Value = serde_json::from_slice(&store.get(Cf::Licences, id.as_bytes()).unwrap().unwrap()).unwrap();
        f(&mut rec);
        let mut b = Batch::default();
        b.put(Cf::Licences, id.clone().into_bytes(), serde_json::to_vec(&rec).unwrap());
        store.write(b).unwrap();
    };
    // The validity period edited: the verdict still comes from the signed document.
    edit(&|r| r["valid_until"] = Value::Null);
    let (_, verdict) = post("/v1/verify".into(), None, json!({"payload": doc})).await;
    assert_eq!(verdict["verdict"], "expired", "{verdict}");
    // Revoke, then roll the row back to its issuance.
    // It has expired: 注销 closes its file.
    let (st, r) = post(format!("/v1/licences/{id}/cancel"), Some(ISSUER), json!({"reason": "有效期届满未延续"})).await;
    assert_eq!(st, 200, "{r}");
    edit(&|r| {
        r["status"] = json!("valid");
        r["last_index"] = r["issued_index"].clone();
    });
    stop_tx.send(()).unwrap();
    server.await.unwrap().unwrap();
    v.close();
    drop(store);
    drop(v);
    let e = open().await.err().expect("a rolled-back row must stop start-up").to_string();
    assert!(e.contains("rolled back"), "{e}");
    let out = Command::new(env!("CARGO_BIN_EXE_licvault"))
        .args(["check", "--data", data.path().to_str().unwrap(), "--keys", keys.path().to_str().unwrap()])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success() && text.contains(&format!("record {id}")), "{text}");
}

/// Item 5 (review): with real keys, `--demo` is refused (its tokens are public), and a store in
/// which a demo token still works is refused without `--demo`; so is a root CA key anywhere in
/// the serving key directory.
#[tokio::test]
async fn real_keys_refuse_demo_tokens_and_the_root_key() {
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("keys");
    let departments = root().join("fixtures/departments.json");
    let fixtures = root().join("fixtures");
    let run = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_licvault")).args(args).env_remove("LICVAULT_DEMO").output().unwrap();
        (out.status.success(), String::from_utf8_lossy(&out.stderr).into_owned())
    };
    let (ok, err) = run(&["keys", "init", keys.to_str().unwrap(), "--departments", departments.to_str().unwrap()]);
    assert!(ok, "{err}");
    let (ok, err) = run(&[
        "keys",
        "init",
        dir.path().join("k2").to_str().unwrap(),
        "--root-dir",
        dir.path().join("k2/ca").to_str().unwrap(),
        "--departments",
        departments.to_str().unwrap(),
    ]);
    assert!(!ok && err.contains("inside"), "{err}");
    let data = dir.path().join("data");
    let serve = |demo: bool| {
        let mut args = vec![
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--data",
            data.to_str().unwrap(),
            "--keys",
            keys.to_str().unwrap(),
            "--fixtures",
            fixtures.to_str().unwrap(),
        ];
        if demo {
            args.push("--demo");
        }
        run(&args)
    };
    let (ok, err) = serve(true);
    assert!(!ok && err.contains("--demo runs only on the development keys"), "{err}");
    // Demo clients seeded into a store with real keys (as an older version allowed).
    {
        let store = licvault::store::RocksStore::open(&data).unwrap();
        let parts = licvault::vault::Parts::load(Arc::new(store), &keys, &fixtures).unwrap();
        let v = licvault::vault::Vault::start(parts).await.unwrap();
        licvault::cli::seed_demo(&v, &fixtures).await.unwrap();
        v.close();
    }
    let (ok, err) = serve(false);
    assert!(!ok && err.contains("still accept the public demo tokens") && err.contains("admin"), "{err}");
    assert!(err.contains("clients disable-demo"), "{err}");
    let (ok, err) = run(&[
        "clients",
        "disable-demo",
        "--data",
        data.to_str().unwrap(),
        "--keys",
        keys.to_str().unwrap(),
        "--fixtures",
        fixtures.to_str().unwrap(),
    ]);
    assert!(ok, "{err}");
    {
        let store = licvault::store::RocksStore::open(&data).unwrap();
        let parts = licvault::vault::Parts::load(Arc::new(store), &keys, &fixtures).unwrap();
        let v = licvault::vault::Vault::start(parts).await.unwrap();
        assert!(v.clients_with_demo_tokens().is_empty());
        v.close();
    }
    // The root CA key copied into a subdirectory of the serving keys.
    std::fs::create_dir_all(keys.join("backup")).unwrap();
    std::fs::copy(dir.path().join("keys-root-ca/root.key.pem"), keys.join("backup/root.key.pem")).unwrap();
    let (ok, err) = serve(false);
    assert!(!ok && err.contains("root CA's private key"), "{err}");
}

/// Item 7: SIGHUP reloads the keys of a running server, as the admin call does.
#[test]
fn sighup_reloads_the_keys() {
    use std::io::BufRead;
    let data = tempfile::tempdir().unwrap();
    let keys = keys_copy();
    let mut child = Command::new(env!("CARGO_BIN_EXE_licvault"))
        .args([
            "serve",
            "--demo",
            "--listen",
            "127.0.0.1:0",
            "--data",
            data.path().to_str().unwrap(),
            "--keys",
            keys.path().to_str().unwrap(),
            "--fixtures",
            root().join("fixtures").to_str().unwrap(),
        ])
        .env("RUST_LOG", "licvault=info")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    assert!(line.starts_with("licvault listening on"), "{line}");
    let (tx, rx) = std::sync::mpsc::channel();
    let err = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for l in std::io::BufReader::new(err).lines().map_while(Result::ok) {
            let _ = tx.send(l);
        }
    });
    let kill = |sig: &str| Command::new("kill").args([sig, &child.id().to_string()]).status().unwrap();
    assert!(kill("-HUP").success());
    let reloaded = std::iter::from_fn(|| rx.recv_timeout(Duration::from_secs(20)).ok())
        .find(|l| l.contains("SIGHUP: keys reloaded"));
    kill("-TERM");
    let _ = child.wait();
    assert!(reloaded.is_some(), "no reload was logged");
}

/// Item 9 (review): a client that sends requests but never reads the answers cannot keep its
/// connection: once idle it gets the shutdown grace to take its answers, then it is dropped and
/// its slot serves the next client.
#[tokio::test]
async fn a_client_that_stops_reading_loses_its_slot() {
    let s = Server::start().await;
    let limits = licvault::config::Limits {
        header_timeout: 1,
        request_timeout: 1,
        idle_timeout: 1,
        max_connections: 1,
        shutdown_grace: 1,
    };
    let (addr, _) = serve_api(s.vault.clone(), limits, std::future::pending()).await;
    // Pipelined requests whose answers fill both socket buffers: the server blocks writing.
    let greedy = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = b"GET /v1/licence-types HTTP/1.1\r\nHost: x\r\n\r\n".repeat(4000);
    let (_reader, mut writer) = greedy.into_split();
    let _ = tokio::time::timeout(Duration::from_secs(3), writer.write_all(&request)).await;
    // The next client waits for the only slot, and gets it once the greedy one is dropped.
    let mut next = tokio::net::TcpStream::connect(addr).await.unwrap();
    next.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").await.unwrap();
    let mut buf = Vec::new();
    tokio::time::timeout(Duration::from_secs(20), next.read_to_end(&mut buf))
        .await
        .expect("the greedy client kept the only slot")
        .unwrap();
    assert!(String::from_utf8_lossy(&buf).starts_with("HTTP/1.1 200"));
}

/// A request the server is still working on is not idle: an answer that takes longer than the
/// idle timeout plus the shutdown grace (a batch waiting out a storage stall) still arrives.
#[tokio::test]
async fn a_slow_answer_is_not_an_idle_connection() {
    let limits = licvault::config::Limits {
        header_timeout: 1,
        request_timeout: 1,
        idle_timeout: 1,
        max_connections: 4,
        shutdown_grace: 1,
    };
    let router = axum::Router::new().route(
        "/slow",
        axum::routing::get(|| async {
            tokio::time::sleep(Duration::from_millis(3500)).await;
            "done"
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(
        async move { licvault::http::serve::serve_with(listener, router, &limits, std::future::pending()).await },
    );
    let res = reqwest::get(format!("http://{addr}/slow")).await.expect("the connection was closed under the request");
    assert_eq!(res.status(), 200);
    assert_eq!(res.text().await.unwrap(), "done");
    // And a connection that then says nothing is still closed.
    let mut idle = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut buf = Vec::new();
    assert!(tokio::time::timeout(Duration::from_secs(10), idle.read_to_end(&mut buf)).await.is_ok());
}
