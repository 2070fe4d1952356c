//! Auditors (issue 8): every checkpoint by size, inclusion and consistency proofs, and the log as
//! c2sp.org/tlog-tiles, checked against the signed checkpoints by our Merkle code and by Go's
//! golang.org/x/mod/sumdb/tlog and note (tests/go/tlogcheck.go).

use std::process::Command;

use base64::{engine::general_purpose::STANDARD as B64, Engine};
use licvault::log::merkle::{leaf_hash, root_of, verify_consistency, verify_inclusion, Hash};
use licvault::log::note::{Checkpoint, Verifier};
use serde_json::{json, Value};

use crate::common::*;

/// Adds `n` leaves: one-number lookups of holders with no licence, each logged as one
/// `holder.queried` leaf, `batch` at a time (so the log gets several checkpoints). Returns the
/// checkpoint sizes seen after each round.
async fn grow(s: &Server, n: usize, batch: usize) -> Vec<u64> {
    let mut sizes = Vec::new();
    let mut done = 0;
    while done < n {
        let mut calls = tokio::task::JoinSet::new();
        for i in done..(done + batch).min(n) {
            let holder = licvault::domain::holder::complete_uscc(&format!("91440300MA7Q{:04}", i % 10_000)).unwrap();
            let req = s
                .http
                .post(s.url("/v1/holders/licences"))
                .bearer_auth(VERIFIER)
                .json(&json!({"holder": {"type": "001", "id": holder}, "use_reason": "审计测试：核验申请人证照"}));
            calls.spawn(async move { req.send().await.unwrap().status().as_u16() });
        }
        while let Some(st) = calls.join_next().await {
            assert_eq!(st.unwrap(), 200);
        }
        done = (done + batch).min(n);
        sizes.push(s.vault.head().size);
    }
    sizes
}

async fn text(s: &Server, token: Option<&str>, path: &str) -> (u16, String, Option<String>) {
    let mut req = s.http.get(s.url(path));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let res = req.send().await.unwrap();
    let cache = res.headers().get("cache-control").map(|v| v.to_str().unwrap().to_string());
    (res.status().as_u16(), res.text().await.unwrap(), cache)
}

async fn bytes(s: &Server, token: Option<&str>, path: &str) -> (u16, Vec<u8>) {
    let mut req = s.http.get(s.url(path));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let res = req.send().await.unwrap();
    (res.status().as_u16(), res.bytes().await.unwrap().to_vec())
}

fn hashes(v: &Value) -> Vec<Hash> {
    v.as_array().unwrap().iter().map(|h| B64.decode(h.as_str().unwrap()).unwrap().try_into().unwrap()).collect()
}

/// The leaves of an entry bundle: each behind its big-endian uint16 length.
fn entries(mut bundle: &[u8]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    while !bundle.is_empty() {
        let n = u16::from_be_bytes([bundle[0], bundle[1]]) as usize;
        out.push(bundle[2..2 + n].to_vec());
        bundle = &bundle[2 + n..];
    }
    out
}

#[tokio::test]
async fn proofs_and_tiles_verify_against_the_signed_checkpoints() {
    let s = Server::start().await;
    s.issue_company("91440300MA5E000256").await;
    let sizes = grow(&s, 300, 40).await;
    let verifier = Verifier::parse(&s.vault.log_verifier_key()).unwrap();
    let (st, note, cache) = text(&s, None, "/v1/log/checkpoint").await;
    assert_eq!((st, cache.as_deref()), (200, Some("no-cache")));
    let head = Checkpoint::open(&note, &verifier).unwrap();
    assert!(head.size >= 300, "{}", head.size);

    // Every leaf, from the entry bundles (auditor): full tiles, then the partial last one.
    let mut leaves = Vec::new();
    for n in 0..head.size.div_ceil(256) {
        let width = (head.size - n * 256).min(256);
        let path = if width == 256 {
            format!("/v1/log/tile/entries/{n:03}")
        } else {
            format!("/v1/log/tile/entries/{n:03}.p/{width}")
        };
        let (st, bundle) = bytes(&s, Some(AUDITOR), &path).await;
        assert_eq!(st, 200, "{path}");
        leaves.extend(entries(&bundle));
    }
    assert_eq!(leaves.len() as u64, head.size);
    let leaf_hashes: Vec<Hash> = leaves.iter().map(|l| leaf_hash(l)).collect();
    assert_eq!(root_of(&leaf_hashes), head.root);
    // The entry bundles are the auditors': nobody else reads the leaves.
    assert_eq!(bytes(&s, None, "/v1/log/tile/entries/000").await.0, 401);
    assert_eq!(bytes(&s, Some(VERIFIER), "/v1/log/tile/entries/000").await.0, 403);

    // Hash tiles (public): level 0 holds the leaf hashes, level 1 the hashes of 256-leaf subtrees.
    let (st, tile) = bytes(&s, None, "/v1/log/tile/0/000").await;
    assert_eq!((st, tile.len()), (200, 256 * 32));
    assert_eq!(tile, leaf_hashes[..256].concat());
    let partial = head.size - 256;
    let (st, tile) = bytes(&s, None, &format!("/v1/log/tile/0/001.p/{partial}")).await;
    assert_eq!((st, tile), (200, leaf_hashes[256..].concat()));
    let (st, tile) = bytes(&s, None, "/v1/log/tile/1/000.p/1").await;
    assert_eq!((st, tile), (200, root_of(&leaf_hashes[..256]).to_vec()));
    let (_, _, cache) = text(&s, None, "/v1/log/tile/0/000").await;
    assert_eq!(cache.as_deref(), Some("public, max-age=31536000, immutable"));
    let (_, _, cache) = text(&s, None, "/v1/log/tile/0/000.p/3").await;
    assert_eq!(cache.as_deref(), Some("no-cache"));
    // Tiles the log does not hold yet, and paths with another spelling.
    for (path, status) in [
        ("/v1/log/tile/0/001", 404),
        (&format!("/v1/log/tile/0/001.p/{}", partial + 1), 404),
        ("/v1/log/tile/1/000", 404),
        ("/v1/log/tile/0/1", 400),
        ("/v1/log/tile/0/x000/001", 400),
        ("/v1/log/tile/8/000", 400),
        ("/v1/log/tile/0/000.p/256", 400),
        ("/v1/log/tile/0/000.p/0", 400),
    ] {
        let (st, body, _) = text(&s, None, path).await;
        assert_eq!(st, status, "{path}: {body}");
    }

    // An inclusion proof of every leaf into the newest checkpoint.
    for (i, h) in leaf_hashes.iter().enumerate() {
        let (st, p) = s.get(None, &format!("/v1/log/proofs/inclusion?index={i}&size={}", head.size)).await;
        assert_eq!(st, 200, "{p}");
        assert_eq!(p["checkpoint"], note.as_str());
        verify_inclusion(h, i as u64, head.size, &hashes(&p["hashes"]), &head.root).unwrap();
    }
    // Without size: the newest checkpoint.
    let (_, p) = s.get(None, "/v1/log/proofs/inclusion?index=3").await;
    assert_eq!(p["size"], head.size);

    // Every earlier checkpoint is kept by size, and is consistent with the newest.
    for &size in &sizes[..sizes.len() - 1] {
        let (st, old, cache) = text(&s, None, &format!("/v1/log/checkpoints/{size}")).await;
        assert_eq!((st, cache.as_deref()), (200, Some("public, max-age=31536000, immutable")), "{old}");
        let old = Checkpoint::open(&old, &verifier).unwrap();
        assert_eq!((old.size, old.root), (size, root_of(&leaf_hashes[..size as usize])));
        let (st, p) = s.get(None, &format!("/v1/log/proofs/consistency?from={size}&to={}", head.size)).await;
        assert_eq!(st, 200, "{p}");
        verify_consistency(size, head.size, &hashes(&p["hashes"]), &old.root, &head.root).unwrap();
        // An old receipt's leaf, proved in its own checkpoint.
        let (_, p) = s.get(None, &format!("/v1/log/proofs/inclusion?index=0&size={size}")).await;
        verify_inclusion(&leaf_hashes[0], 0, size, &hashes(&p["hashes"]), &old.root).unwrap();
    }

    // Bad requests: 400; sizes without a checkpoint: 404.
    let bad = head.size + 1;
    for (path, status, code) in [
        (format!("/v1/log/checkpoints/{bad}"), 404, "no_such_checkpoint"),
        ("/v1/log/checkpoints/01".to_string(), 400, "invalid_request"),
        ("/v1/log/checkpoints/-1".to_string(), 400, "invalid_request"),
        (format!("/v1/log/proofs/inclusion?index={}", head.size), 400, "invalid_request"),
        (format!("/v1/log/proofs/inclusion?index=0&size={bad}"), 404, "no_such_checkpoint"),
        ("/v1/log/proofs/inclusion?size=3".to_string(), 400, "invalid_request"),
        ("/v1/log/proofs/inclusion?index=x".to_string(), 400, "invalid_request"),
        ("/v1/log/proofs/inclusion?index=0&other=1".to_string(), 400, "invalid_request"),
        ("/v1/log/proofs/consistency?from=0".to_string(), 400, "invalid_request"),
        (format!("/v1/log/proofs/consistency?from={bad}"), 400, "invalid_request"),
        (format!("/v1/log/proofs/consistency?from=1&to={bad}"), 404, "no_such_checkpoint"),
    ] {
        let (st, p) = s.get(None, &path).await;
        assert_eq!((st, p["code"].as_str()), (status, Some(code)), "{path}: {p}");
    }
}

/// Go's golang.org/x/mod/sumdb/note opens our checkpoints, and sumdb/tlog reads our hash tiles
/// (checking them against the signed root), proves every leaf of our entry bundles from them,
/// and accepts our inclusion and consistency proofs.
#[tokio::test]
async fn go_tlog_reads_our_checkpoints_tiles_and_proofs() {
    let s = Server::start().await;
    s.issue_company("91440300MA5E000256").await;
    grow(&s, 600, 150).await;
    let go = |vkey: String| {
        let url = s.url("");
        // The server runs on this test's runtime: wait for Go on another thread.
        tokio::task::spawn_blocking(move || {
            let out = Command::new("go")
                .args(["run", "tests/go/tlogcheck.go", &url, &vkey, AUDITOR])
                .current_dir(root())
                // Debian's golang-golang-x-mod-dev is a GOPATH tree.
                .env("GO111MODULE", "off")
                .env("GOPATH", "/usr/share/gocode")
                .env("GOFLAGS", "")
                .output()
                .expect("go (make test installs golang-go and golang-golang-x-mod-dev)");
            let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
            (out.status.success(), text)
        })
    };
    let (ok, text) = go(s.vault.log_verifier_key()).await.unwrap();
    assert!(ok && text.starts_with("OK: "), "{text}");
    eprintln!("{}", text.trim());
    // Under another key of the same name, Go refuses the checkpoint.
    let origin = s.vault.log_origin().to_string();
    let other = licvault::log::note::verifier_key(&origin, &[7; 32]);
    let (ok, text) = go(other).await.unwrap();
    assert!(!ok && text.contains("FAIL: checkpoint"), "{text}");
}

/// The CLI run as an auditor would; `token` goes in LICVAULT_AUDITOR_TOKEN.
fn licvault(args: &[&str], token: Option<&str>) -> (bool, String) {
    run_licvault(args, token.map(|t| ("LICVAULT_AUDITOR_TOKEN", t)))
}

/// An auditor exports the log of a busy day (issuance, status changes, lookups, a new version)
/// and verifies it offline with only the log's key; then exports what came after and links it
/// to the checkpoint verified the first time. Every export is a leaf.
#[tokio::test(flavor = "multi_thread")]
async fn an_auditor_exports_and_verifies_the_log() {
    let s = Server::start().await;
    let issued = s.issue_company("91440300MA5E000256").await;
    let id = issued["licence"]["id"].as_str().unwrap().to_string();
    for change in ["suspend", "reinstate"] {
        let (st, v) =
            s.post(Some(ISSUER), &format!("/v1/licences/{id}/{change}"), &json!({"reason": "审计测试"})).await;
        assert_eq!(st, 200, "{v}");
    }
    s.issue_company(&licvault::domain::holder::complete_uscc("91440300MA5E0003").unwrap()).await;
    grow(&s, 50, 25).await;
    let dir = tempfile::tempdir().unwrap();
    let vkey = s.vault.log_verifier_key();
    let first = dir.path().join("first.bundle");
    let first_path = first.to_str().unwrap();
    let (ok, out) = licvault(&["audit", "export", &s.url(""), "--from", "0", first_path], Some(AUDITOR));
    assert!(ok, "{out}");
    let (ok, out) = licvault(&["audit", "verify", first_path, "--log-key", &vkey], None);
    assert!(ok && out.starts_with("bundle ok: leaves 0.."), "{out}");
    assert!(out.contains("licence.status") && out.contains("holder.queried"), "{out}");
    let size: u64 = out["bundle ok: leaves 0..".len()..].split(' ').next().unwrap().parse().unwrap();

    // The export itself is the next leaf.
    let (st, bundle) = bytes(&s, Some(AUDITOR), &format!("/v1/log/tile/entries/000.p/{}", size + 1)).await;
    assert_eq!(st, 200);
    let leaf = licvault::log::leaf::Leaf::decode(entries(&bundle).last().unwrap()).unwrap();
    assert_eq!((leaf.event.kind.as_str(), leaf.event.get_text("client")), ("audit.exported", Some("auditor")));
    assert_eq!((leaf.event.get_uint("from"), leaf.event.get_uint("to")), (Some(0), Some(size)));

    // Later: what came after, linked to the checkpoint verified the first time.
    grow(&s, 30, 30).await;
    let (st, previous, _) = text(&s, None, &format!("/v1/log/checkpoints/{size}")).await;
    assert_eq!(st, 200);
    let previous_file = dir.path().join("previous.checkpoint");
    std::fs::write(&previous_file, &previous).unwrap();
    let second = dir.path().join("second.bundle");
    let second_path = second.to_str().unwrap();
    let (ok, out) = licvault(&["audit", "export", &s.url(""), "--from", &size.to_string(), second_path], Some(AUDITOR));
    assert!(ok, "{out}");
    let args = ["audit", "verify", second_path, "--log-key", &vkey, "--previous", previous_file.to_str().unwrap()];
    let (ok, out) = licvault(&args, None);
    assert!(ok && out.contains("1 previous checkpoint(s) are this log's tree"), "{out}");

    // Any range, whether or not checkpoints were signed at its ends.
    let third = dir.path().join("third.bundle");
    let third_path = third.to_str().unwrap();
    let (ok, out) = licvault(&["audit", "export", &s.url(""), "--from", "3", "--to", "11", third_path], Some(AUDITOR));
    assert!(ok, "{out}");
    let (ok, out) = licvault(&["audit", "verify", third_path, "--log-key", &vkey], None);
    assert!(ok && out.starts_with("bundle ok: leaves 3..11 (8)"), "{out}");

    // A flipped byte anywhere in a leaf, and the CLI says where and exits 1.
    let mut tampered = std::fs::read(&first).unwrap();
    let at = tampered.len() - 40;
    tampered[at] ^= 0x20;
    std::fs::write(&first, &tampered).unwrap();
    let (ok, out) = licvault(&["audit", "verify", first_path, "--log-key", &vkey], None);
    assert!(!ok && out.starts_with("bundle NOT ok: "), "{out}");

    // Only auditors export; the range must end at checkpoints.
    let (ok, out) = licvault(&["audit", "export", &s.url(""), "--from", "0", first_path], Some(VERIFIER));
    assert!(!ok && out.contains("403"), "{out}");
    let (ok, out) = licvault(&["audit", "export", &s.url(""), "--from", "0", first_path], None);
    assert!(!ok && out.contains("LICVAULT_AUDITOR_TOKEN"), "{out}");
    let head = s.vault.head().size;
    for (path, status, code) in [
        (format!("/v1/audit/export?from={}", head + 1), 400, "invalid_request"),
        (format!("/v1/audit/export?from=0&to={}", head + 5), 400, "invalid_request"),
        ("/v1/audit/export?from=5&to=4".to_string(), 400, "invalid_request"),
        ("/v1/audit/export?from=x".to_string(), 400, "invalid_request"),
        ("/v1/audit/export".to_string(), 400, "invalid_request"),
    ] {
        let (st, p) = s.get(Some(AUDITOR), &path).await;
        assert_eq!((st, p["code"].as_str()), (status, Some(code)), "{path}: {p}");
    }
    // Refused requests log nothing.
    assert_eq!(s.vault.head().size, head);
}
