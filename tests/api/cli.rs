//! The command line, as an operator runs it.

use std::process::Command;

use base64::{engine::general_purpose::STANDARD as B64, Engine};

use crate::common::*;

fn licvault(args: &[&str]) -> (bool, String) {
    licvault_with_token(args, None)
}

/// Runs the binary; `token` goes in LICVAULT_ADMIN_TOKEN (never on the command line).
fn licvault_with_token(args: &[&str], token: Option<&str>) -> (bool, String) {
    run_licvault(args, token.map(|t| ("LICVAULT_ADMIN_TOKEN", t)))
}

/// `licvault clients …` talks to the running server with an admin token; changes take effect at
/// once. Runs the binary on a blocking thread so the in-process server keeps serving.
#[tokio::test(flavor = "multi_thread")]
async fn clients_through_the_admin_api() {
    let s = Server::start().await;
    let base = s.base.clone();
    let run = move |(args, token): (Vec<String>, String)| async move {
        tokio::task::spawn_blocking(move || {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            licvault_with_token(&args, Some(&token))
        })
        .await
        .unwrap()
    };
    let admin = |sub: &str, token: &str, extra: &[&str]| {
        let mut v: Vec<String> = vec!["clients".into(), sub.into(), "--url".into(), base.clone()];
        v.extend(extra.iter().map(|s| s.to_string()));
        (v, token.to_string())
    };
    let (ok, out) = run(admin(
        "add",
        ADMIN,
        &["--id", "counter-7", "--name", "测试系统", "--role", "issuer", "--uscc", "11440300mb2000100x"],
    ))
    .await;
    assert!(ok, "{out}");
    let token = out.lines().last().unwrap().to_string();
    assert!(token.starts_with("lv_") && token.len() > 40, "{out}");
    // The new token works at once.
    assert_eq!(s.issue_with(&token, "91440300MA5E000256").await, 201);
    let (ok, out) = run(admin("add", ADMIN, &["--id", "counter-7", "--name", "x", "--role", "admin"])).await;
    assert!(!ok && out.contains("exists already"), "{out}");
    let (ok, out) = run(admin("add", ADMIN, &["--id", "counter-8", "--name", "x", "--role", "issuer"])).await;
    assert!(!ok && out.contains("USCC"), "{out}");
    let (ok, out) = run(admin("add", ADMIN, &["--id", "counter-9", "--name", "x", "--role", "boss"])).await;
    assert!(!ok && out.contains("unknown role"), "{out}");
    let (ok, out) = run(admin("add", ISSUER, &["--id", "counter-9", "--name", "x", "--role", "admin"])).await;
    assert!(!ok && out.contains("403"), "only admins manage clients: {out}");
    let (ok, out) = run(admin("list", ADMIN, &[])).await;
    assert!(ok && out.contains("counter-7") && out.contains("11440300MB2000100X"), "{out}");
    assert!(!out.contains(&token), "tokens are never listed");
    // Rotate: the new token works, the old one no longer does.
    let (ok, out) = run(admin("rotate", ADMIN, &["counter-7", "--reason", "定期轮换"])).await;
    assert!(ok, "{out}");
    let rotated = out.lines().last().unwrap().to_string();
    assert_eq!(s.issue_with(&token, "91440300MA5E000256").await, 401);
    assert_eq!(s.issue_with(&rotated, "91440300MA5E000256").await, 201);
    // Disable: refused from now on.
    let (ok, out) = run(admin("disable", ADMIN, &["counter-7", "--reason", "系统下线"])).await;
    assert!(ok && out.contains("disabled"), "{out}");
    assert_eq!(s.issue_with(&rotated, "91440300MA5E000256").await, 401);
}

/// `clients bootstrap` is the one client command that opens the store itself: the first admin.
#[test]
fn bootstrap_makes_the_first_admin() {
    let data = tempfile::tempdir().unwrap();
    let keys = keys_copy();
    let fixtures = root().join("fixtures");
    let (ok, out) = licvault(&[
        "clients",
        "bootstrap",
        "--data",
        data.path().to_str().unwrap(),
        "--keys",
        keys.path().to_str().unwrap(),
        "--fixtures",
        fixtures.to_str().unwrap(),
    ]);
    assert!(ok, "{out}");
    assert!(out.lines().any(|l| l.starts_with("lv_")), "{out}");
}

#[test]
fn keys_init_never_overwrites() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("k");
    let departments = root().join("fixtures/departments.json");
    let (ok, out) =
        licvault(&["keys", "init", target.to_str().unwrap(), "--departments", departments.to_str().unwrap()]);
    assert!(ok && out.contains("licvault.example.gov.cn/log+"), "{out}");
    assert!(!target.join("root.key.pem").exists(), "the root key is written apart from the serving keys");
    assert!(dir.path().join("k-root-ca/root.key.pem").exists(), "{out}");
    let (ok, out) =
        licvault(&["keys", "init", target.to_str().unwrap(), "--departments", departments.to_str().unwrap()]);
    assert!(!ok && out.contains("never overwrites"), "{out}");
}

#[tokio::test]
async fn offline_verify_checks_signature_and_chain() {
    let s = Server::start().await;
    let issued = s.issue_company("91440300MA5E000256").await;
    let dir = tempfile::tempdir().unwrap();
    let doc = dir.path().join("licence.b64");
    std::fs::write(&doc, issued["document"].as_str().unwrap()).unwrap();
    let trust = s.keys.path().to_str().unwrap().to_string();
    let (ok, out) = licvault(&["verify", doc.to_str().unwrap(), "--trust", &trust]);
    assert!(ok && out.contains("signature: valid") && out.contains("revocation not checked"), "{out}");
    let (ok, out) = licvault(&["verify", &s.qr_of(&issued).await, "--trust", &trust]);
    assert!(ok, "{out}");
    let mut bytes = B64.decode(issued["document"].as_str().unwrap()).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    std::fs::write(&doc, B64.encode(&bytes)).unwrap();
    let (ok, out) = licvault(&["verify", doc.to_str().unwrap(), "--trust", &trust]);
    assert!(!ok && out.contains("InvalidSignature"), "{out}");
}

/// Offline, with a pulled trust directory: a QR image of a licence verifies, and once the
/// licence is revoked, the next pulled status list says so while the QR is the same image;
/// a stale list is refused with --max-age; broken inputs are refused, never a panic.
#[tokio::test(flavor = "multi_thread")]
async fn verify_offline_knows_revocations_from_the_status_list() {
    let s = Server::start().await;
    let issued = s.issue_company("91440300MA5E000256").await;
    let id = issued["licence"]["id"].as_str().unwrap().to_string();
    let dir = tempfile::tempdir().unwrap();
    let png = dir.path().join("qr.png");
    let res = s.http.get(s.url(&format!("/v1/licences/{id}/qr.png"))).bearer_auth(ISSUER).send().await.unwrap();
    std::fs::write(&png, res.bytes().await.unwrap()).unwrap();
    let trust = dir.path().join("trust");
    let (base, trust_s, png_s) = (s.base.clone(), trust.display().to_string(), png.display().to_string());
    let run = |args: Vec<String>| async move {
        tokio::task::spawn_blocking(move || {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            let out = Command::new(env!("CARGO_BIN_EXE_licvault")).args(&args).output().unwrap();
            (
                out.status.code(),
                format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)),
            )
        })
        .await
        .unwrap()
    };
    let args = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    // A directory the pull did not make (here, the server's keys) is never replaced.
    let keys_s = s.keys.path().display().to_string();
    let (code, out) = run(args(&["trust", "pull", &base, &keys_s])).await;
    assert!(code != Some(0) && out.contains("not made by licvault trust pull"), "{out}");
    assert!(s.keys.path().join("log.key.pem").exists());
    let (code, out) = run(args(&["trust", "pull", &base, &trust_s])).await;
    assert_eq!(code, Some(0), "{out}");
    let (code, out) = run(args(&["verify", &png_s, "--trust", &trust_s])).await;
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("status:    valid, as of") && out.contains("verdict:   valid"), "{out}");

    let (st, v) =
        s.post(Some(ISSUER), &format!("/v1/licences/{id}/revoke"), &serde_json::json!({"reason": "吊销"})).await;
    assert_eq!(st, 200, "{v}");
    // The old pull still says valid: it knows the status as of its list.
    let (code, _) = run(args(&["verify", &png_s, "--trust", &trust_s])).await;
    assert_eq!(code, Some(0));
    let (code, out) = run(args(&["trust", "pull", &base, &trust_s, "--pin", "00"])).await;
    assert!(trust.join("trust.json").exists(), "a refused pull leaves the old directory");
    assert!(code != Some(0) && out.contains("not the pinned"), "{out}");
    let (code, out) = run(args(&["trust", "pull", &base, &trust_s])).await;
    assert_eq!(code, Some(0), "{out}");
    let (code, out) = run(args(&["verify", &png_s, "--trust", &trust_s])).await;
    assert_eq!(code, Some(2), "{out}");
    assert!(out.contains("status:    revoked") && out.contains("verdict:   not valid"), "{out}");
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    let (code, out) = run(args(&["verify", &png_s, "--trust", &trust_s, "--max-age", "1"])).await;
    assert_eq!(code, Some(3), "{out}");
    assert!(out.contains("over --max-age 1"), "{out}");

    // Garbage, an image without a QR code, a truncated payload: refused with exit 1.
    let junk = dir.path().join("junk.png");
    std::fs::write(&junk, b"\x89PNG\r\n\x1a\nnot really").unwrap();
    let blank = dir.path().join("blank.png");
    let mut out_png = std::io::Cursor::new(Vec::new());
    image::DynamicImage::new_luma8(64, 64).write_to(&mut out_png, image::ImageFormat::Png).unwrap();
    std::fs::write(&blank, out_png.into_inner()).unwrap();
    let qr = s.qr_of(&issued).await;
    for input in
        [junk.display().to_string(), blank.display().to_string(), qr[..qr.len() - 20].to_string(), "LV2:ABC".into()]
    {
        let (code, out) = run(args(&["verify", &input, "--trust", &trust_s])).await;
        assert_eq!(code, Some(1), "{input}: {out}");
        assert!(out.contains("verdict:   Malformed"), "{out}");
    }
}

/// A scanner checks a one-time presentation offline: the platform's signature, the expiry, the
/// issuer's signature and each disclosure against its digest, and reads the stated status.
#[tokio::test(flavor = "multi_thread")]
async fn a_presentation_verifies_offline() {
    let s = Server::start().await;
    let citizen = "11010519491231002X";
    let (_, issued) = s.post(Some(OTHER_ISSUER), "/v1/licences", &marriage(citizen)).await;
    let id = issued["licence"]["id"].as_str().unwrap();
    let (st, made) = s
        .post(
            Some(HOLDER_CHANNEL),
            &format!("/v1/licences/{id}/presentations"),
            &serde_json::json!({"holder": {"type": "111", "id": citizen}, "disclose": ["男方出生日期"]}),
        )
        .await;
    assert_eq!(st, 201, "{made}");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("presentation.txt");
    std::fs::write(&file, made["payload"].as_str().unwrap()).unwrap();
    let trust = dir.path().join("trust");
    let (base, trust_s, file_s) = (s.base.clone(), trust.display().to_string(), file.display().to_string());
    let (ok, out) = tokio::task::spawn_blocking(move || {
        let (ok, out) = licvault(&["trust", "pull", &base, &trust_s]);
        assert!(ok, "{out}");
        licvault(&["verify", &file_s, "--trust", &trust_s])
    })
    .await
    .unwrap();
    assert!(ok, "{out}");
    assert!(out.contains("presentation: made") && out.contains("disclosed: 男方出生日期 = 1949-12-31"), "{out}");
    assert!(out.contains("status:    valid, as the platform stated it") && !out.contains(citizen), "{out}");
}

/// `licvault import`: a generated file (some lines bad) with a value map; the report has every
/// line; a second run skips what was issued and adds nothing to the log.
#[tokio::test(flavor = "multi_thread")]
async fn import_reports_every_line_and_a_second_run_changes_nothing() {
    let s = Server::start().await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("legacy.jsonl");
    let mut text = String::new();
    for n in 0..240u32 {
        let holder = licvault::domain::holder::complete_uscc(&format!("91440300MA5F{n:04}")).unwrap();
        let mut b = business_licence(&holder);
        b["issue_date"] = serde_json::json!("2015-06-30");
        b["number"] = serde_json::json!(format!("旧证{n:06}"));
        b["fields"]["类型"] = serde_json::json!("有限公司(旧)");
        if n % 100 == 7 {
            b["fields"]["成立日期"] = serde_json::json!("not a date");
        }
        text.push_str(&b.to_string());
        text.push('\n');
    }
    text.push_str("this line is not JSON\n");
    std::fs::write(&file, text).unwrap();
    let map = dir.path().join("map.json");
    std::fs::write(&map, r#"{"类型": {"有限公司(旧)": "有限责任公司"}}"#).unwrap();
    let report = dir.path().join("report.jsonl");
    let args: Vec<String> = [
        "import",
        &s.base,
        file.to_str().unwrap(),
        "--map",
        map.to_str().unwrap(),
        "--report",
        report.to_str().unwrap(),
        "--batch",
        "100",
    ]
    .iter()
    .map(|a| a.to_string())
    .collect();
    let run = |args: Vec<String>| {
        tokio::task::spawn_blocking(move || {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            run_licvault(&args, Some(("LICVAULT_ISSUER_TOKEN", ISSUER)))
        })
    };
    let (ok, out) = run(args.clone()).await.unwrap();
    assert!(!ok, "refused lines make the exit code 1: {out}");
    assert!(
        out.contains(
            "241 lines: 237 issued, 0 already issued (replayed), 0 skipped (issued in an earlier run), 4 refused"
        ),
        "{out}"
    );
    let lines: Vec<serde_json::Value> =
        std::fs::read_to_string(&report).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 241);
    let refused: Vec<u64> =
        lines.iter().filter(|l| l["outcome"] == "refused").map(|l| l["line"].as_u64().unwrap()).collect();
    let mut refused = refused;
    refused.sort();
    assert_eq!(refused, [8, 108, 208, 241], "three bad fields and a line that is not JSON");
    let issued = lines.iter().find(|l| l["outcome"] == "issued").unwrap();
    let (_, read) = s.get(Some(ISSUER), &format!("/v1/licences/{}", issued["id"].as_str().unwrap())).await;
    assert_eq!(read["licence"]["fields"]["类型"], "有限责任公司", "the value map applied");
    assert_eq!(read["licence"]["issue_date"], "2015-06-30");
    // Again: the issued lines are skipped, the refused ones are tried (and refused) again.
    let size = s.vault.head().size;
    let (_, out) = run(args).await.unwrap();
    assert!(
        out.contains(
            "241 lines: 0 issued, 0 already issued (replayed), 237 skipped (issued in an earlier run), 4 refused"
        ),
        "{out}"
    );
    assert_eq!(s.vault.head().size, size, "a second run changes nothing");
}

/// Issue 11, backup and restore: a backup taken while licences are being issued restores into
/// a store that verifies whole and serves; a backup with one leaf altered is refused, naming
/// the leaf, and restores nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_taken_while_issuing_restores_and_a_tampered_one_is_refused() {
    let s = Server::start().await;
    for n in 0..40 {
        s.issue_company(&licvault::domain::holder::complete_uscc(&format!("91440300MA5B{n:04}")).unwrap()).await;
    }
    // Keep issuing while the backup runs.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let (http, url, stop) = (s.http.clone(), s.url("/v1/licences"), stop.clone());
        tokio::spawn(async move {
            let mut n = 100;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let holder = licvault::domain::holder::complete_uscc(&format!("91440300MA5B{n:04}")).unwrap();
                let res = http.post(&url).bearer_auth(ISSUER).json(&business_licence(&holder)).send().await.unwrap();
                assert_eq!(res.status(), 201);
                n += 1;
            }
            n - 100
        })
    };
    let dir = tempfile::tempdir().unwrap();
    let (backup, restored) = (dir.path().join("backup"), dir.path().join("restored"));
    let data = s.data_dir().to_str().unwrap().to_string();
    let keys = s.keys.path().to_str().unwrap().to_string();
    let (ok, out) = tokio::task::spawn_blocking({
        let (backup, keys) = (backup.clone(), keys.clone());
        move || run_licvault(&["backup", "--data", &data, backup.to_str().unwrap(), "--keys", &keys], None)
    })
    .await
    .unwrap();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let issued_meanwhile = writer.await.unwrap();
    assert!(ok, "{out}");
    assert!(issued_meanwhile > 0, "the backup ran while licences were being issued");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(&backup).unwrap().permissions().mode() & 0o777, 0o700);
    let leaves: u64 = out.split_whitespace().nth(2).unwrap().parse().unwrap();
    assert!(leaves >= 40, "{out}");
    assert!(s.vault.head().size >= leaves, "{out}");

    let keys = keys.as_str();
    let (ok, out) = run_licvault(
        &["restore", backup.to_str().unwrap(), "--data", restored.to_str().unwrap(), "--keys", keys],
        None,
    );
    assert!(ok, "{out}");
    assert!(out.contains(&format!("restore ok: {leaves} leaves")), "{out} (issued meanwhile: {issued_meanwhile})");
    // The restored store serves: a vault opens on it at the backup's head.
    {
        let store = licvault::store::RocksStore::open(&restored).unwrap();
        let parts =
            licvault::vault::Parts::load(std::sync::Arc::new(store), s.keys.path(), &root().join("fixtures")).unwrap();
        let vault = licvault::vault::Vault::start(parts).await.unwrap();
        assert!(vault.head().size >= leaves);
        vault.close();
    }
    // Its listing rows are checked too: one licence's status changed in its row alone is found.
    {
        use licvault::store::{Batch, Cf, Store};
        let store = licvault::store::RocksStore::open(&restored).unwrap();
        let (key, mut row) = store.scan_prefix(Cf::Listing, b"i/", 1).unwrap().pop().unwrap();
        row[25] = 4; // revoked
        let mut b = Batch::default();
        b.put(Cf::Listing, key, row);
        store.write(b).unwrap();
    }
    let (ok, out) = run_licvault(&["check", "--data", restored.to_str().unwrap(), "--keys", keys], None);
    assert!(!ok && out.contains("records NOT ok: the listing rows"), "{out}");
    // A restore never overwrites a store.
    let (ok, out) = run_licvault(
        &["restore", backup.to_str().unwrap(), "--data", restored.to_str().unwrap(), "--keys", keys],
        None,
    );
    assert!(!ok && out.contains("not empty"), "{out}");

    // Alter leaf 10 of the backup: the restore names it and leaves nothing behind.
    {
        use licvault::store::{Batch, Cf, Store};
        let store = licvault::store::RocksStore::open(&backup).unwrap();
        let mut leaf = store.get(Cf::Leaves, &10u64.to_be_bytes()).unwrap().unwrap();
        let last = leaf.len() - 1;
        leaf[last] ^= 1;
        let mut b = Batch::default();
        b.put(Cf::Leaves, 10u64.to_be_bytes(), leaf);
        store.write(b).unwrap();
    }
    let again = dir.path().join("again");
    let (ok, out) =
        run_licvault(&["restore", backup.to_str().unwrap(), "--data", again.to_str().unwrap(), "--keys", keys], None);
    assert!(!ok, "{out}");
    assert!(out.contains("backup refused") && out.contains("leaf 10"), "{out}");
    assert!(!again.exists() && !dir.path().join(".again.restoring").exists());
}
