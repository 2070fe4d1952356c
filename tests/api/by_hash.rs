//! `POST /v1/verify` recognises a document whose exact bytes are in the log by their hash and one
//! read, without checking its signature again (`--verify-by-hash`). A property test: for
//! documents as issued, with disclosures, compact, re-encoded, and with any byte changed, the
//! verdict is the one the full path gives, field for field; and so it stays after the trust
//! changes (a new seal loaded, a vault started without a department's certificate).

use std::sync::Arc;

use base64::{engine::general_purpose::STANDARD as B64, Engine};
use licvault::crypto::cose;
use licvault::vault::{Vault, Verdict};
use proptest::prelude::*;
use serde_json::json;

use crate::common::*;

/// Everything a verdict says, to compare the two paths.
fn said(v: &Verdict) -> String {
    format!("{v:?}")
}

/// The verdict by hash and the verdict by signature for `payload`. By hash three times: a
/// payload recognised a second time goes into the memo of recognised payloads, which answers
/// the third, and all must say the same.
fn both(vault: &Vault, payload: &str, now: i64) -> (String, String) {
    vault.set_verify_by_hash(true);
    let fast = said(&vault.verify_presented_at(payload, now).unwrap());
    for _ in 0..2 {
        let again = said(&vault.verify_presented_at(payload, now).unwrap());
        assert_eq!(fast, again, "the memo changed the verdict on {payload}");
    }
    vault.set_verify_by_hash(false);
    let full = said(&vault.verify_presented_at(payload, now).unwrap());
    vault.set_verify_by_hash(true);
    (fast, full)
}

/// Documents to present: as issued, with disclosures, compact.
async fn documents(s: &Server) -> Vec<Vec<u8>> {
    let mut docs = Vec::new();
    for n in 0..3 {
        let holder = licvault::domain::holder::complete_uscc(&format!("91440300MA5H{n:04}")).unwrap();
        let issued = s.issue_company(&holder).await;
        docs.push(B64.decode(issued["document"].as_str().unwrap()).unwrap());
    }
    let (_, m) = s.post(Some(OTHER_ISSUER), "/v1/licences", &marriage("11010519491231002X")).await;
    let doc = B64.decode(m["document"].as_str().unwrap()).unwrap();
    let disclosures: Vec<Vec<u8>> = m["disclosures"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| B64.decode(d["disclosure"].as_str().unwrap()).unwrap())
        .collect();
    let refs: Vec<&[u8]> = disclosures.iter().take(2).map(Vec::as_slice).collect();
    docs.push(cose::with_disclosures(&doc, &refs).unwrap());
    docs.push(doc);
    let id = m["licence"]["id"].as_str().unwrap();
    let (_, _, png) = s.qr_image(OTHER_ISSUER, None, &format!("/v1/licences/{id}/qr.png?profile=compact")).await;
    let compact = licvault::qr::read_image(&png).unwrap();
    docs.push(licvault::qr::decode(&compact).unwrap());
    // Revoked: the status comes from the record, either way.
    let (_, r) = s.post(Some(OTHER_ISSUER), "/v1/licences", &marriage("440524188001010014")).await;
    let rid = r["licence"]["id"].as_str().unwrap();
    s.post(Some(OTHER_ISSUER), &format!("/v1/licences/{rid}/revoke"), &json!({"reason": "测试"})).await;
    docs.push(B64.decode(r["document"].as_str().unwrap()).unwrap());
    docs
}

fn check_all(vault: &Vault, docs: &[Vec<u8>], cases: u32) {
    let now = licvault::vault::unix_now();
    for d in docs {
        let (fast, full) = both(vault, &licvault::qr::encode(d), now);
        assert_eq!(fast, full);
        // Untagged: a re-encoding of the same signed content.
        let (fast, full) = both(vault, &B64.encode(&d[1..]), now);
        assert_eq!(fast, full);
    }
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig { cases, ..ProptestConfig::default() });
    let n = docs.len();
    runner
        .run(&(0..n, any::<usize>(), 1u8..=255, any::<i64>()), |(i, at, mask, shift)| {
            let mut d = docs[i].clone();
            let at = at % d.len();
            d[at] ^= mask;
            // Also at another time: past the validity of some, before the issuance of others.
            let when = now + shift % (40 * 365 * 86_400);
            // The document as it was, at that time: a payload the memo holds from another time.
            let (fast, full) = both(vault, &licvault::qr::encode(&docs[i]), when);
            prop_assert_eq!(fast, full);
            for payload in [licvault::qr::encode(&d), B64.encode(&d)] {
                let (fast, full) = both(vault, &payload, when);
                prop_assert_eq!(fast, full);
            }
            Ok(())
        })
        .unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn same_verdicts_by_hash_and_by_signature_before_and_after_trust_changes() {
    let store: Arc<dyn licvault::store::Store> = Arc::new(licvault::store::MemoryStore::new());
    let s = Server::start_on(store.clone(), tempfile::tempdir().unwrap()).await;
    let docs = documents(&s).await;
    let vault = s.vault.clone();
    tokio::task::spawn_blocking({
        let (vault, docs) = (vault.clone(), docs.clone());
        move || check_all(&vault, &docs, 256)
    })
    .await
    .unwrap();
    // Both paths ran: the documents as issued (and with their disclosures) were recognised, and
    // recognised payloads were answered from the memo.
    let stats = vault.verify_stats();
    assert!(stats.by_hash >= 6, "recognised by hash: {stats:?}");
    assert!(stats.memo_hits >= 6, "answered from the memo: {stats:?}");

    // A new seal for 民政局, loaded while running: documents of the old one verify alike still.
    let keys = s.keys.path().to_path_buf();
    let deps: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(root().join("fixtures/departments.json")).unwrap()).unwrap();
    let mzj = deps["departments"].as_array().unwrap().iter().find(|d| d["uscc"] == "11440300MB20005067").unwrap();
    let spec: licvault::crypto::keygen::DepartmentSpec = serde_json::from_value(mzj.clone()).unwrap();
    let now = time::OffsetDateTime::now_utc();
    licvault::crypto::keygen::new_seal(
        &keys,
        &keys.join("root-ca"),
        &spec,
        "mzj-next",
        now - time::Duration::minutes(5),
        365,
        false,
    )
    .unwrap();
    vault.reload_keys().await.unwrap();
    let (_, m) = s.post(Some(OTHER_ISSUER), "/v1/licences", &marriage("11010519491231002X")).await;
    let mut after = docs.clone();
    after.push(B64.decode(m["document"].as_str().unwrap()).unwrap());
    tokio::task::spawn_blocking({
        let (vault, after) = (vault.clone(), after.clone());
        move || check_all(&vault, &after, 64)
    })
    .await
    .unwrap();

    // The same log under a vault whose trust list lacks 市场监督管理局: its documents are from an
    // unknown issuer by either path.
    vault.close();
    drop(s);
    let fewer = keys_copy();
    for e in std::fs::read_dir(fewer.path().join("departments")).unwrap() {
        let p = e.unwrap().path();
        if p.file_name().unwrap().to_string_lossy().starts_with("11440300MB2000100X") {
            std::fs::remove_file(p).unwrap();
        }
    }
    let mut deps = deps.clone();
    deps["departments"].as_array_mut().unwrap().retain(|d| d["uscc"] != "11440300MB2000100X");
    let fixtures = tempfile::tempdir().unwrap();
    for f in ["catalogue.json", "demo-clients.json"] {
        std::fs::copy(root().join("fixtures").join(f), fixtures.path().join(f)).unwrap();
    }
    std::fs::write(fixtures.path().join("departments.json"), deps.to_string()).unwrap();
    match licvault::vault::Parts::load(store.clone(), fewer.path(), fixtures.path()) {
        Ok(parts) => {
            let other = Vault::start(parts).await.unwrap();
            let company = licvault::qr::encode(&docs[0]);
            let v = other.verify_presented(&company).unwrap();
            assert_eq!(format!("{:?}", v.kind), "UnknownIssuer");
            tokio::task::spawn_blocking(move || check_all(&other, &after, 64)).await.unwrap();
        }
        Err(e) => panic!("a vault without one department's certificate: {e}"),
    }
}

async fn verdict_of(s: &Server, payload: &str) -> serde_json::Value {
    s.post(None, "/v1/verify", &json!({ "payload": payload })).await.1
}

/// Disclosures named in any order make one payload.
#[tokio::test(flavor = "multi_thread")]
async fn disclosures_in_any_order_make_one_payload() {
    let s = Server::start().await;
    let (_, m) = s.post(Some(OTHER_ISSUER), "/v1/licences", &marriage("11010519491231002X")).await;
    let id = m["licence"]["id"].as_str().unwrap();
    let mut payloads = Vec::new();
    for disclose in ["holder.id,男方出生日期", "男方出生日期,holder.id"] {
        let path = format!("/v1/licences/{id}/qr.png?profile=full&disclose={disclose}");
        let (_, _, png) = s.qr_image(OTHER_ISSUER, None, &path).await;
        payloads.push(licvault::qr::read_image(&png).unwrap());
    }
    assert_eq!(payloads[0], payloads[1]);
    let v = verdict_of(&s, &payloads[0]).await;
    assert_eq!(v["licence"]["disclosed"], json!(["holder.id", "男方出生日期"]), "{v}");
}

/// A payload the memo holds still answers the licence's status now: revoked after it was
/// recognised, it is revoked; with the memo off (`--verify-memo-mib 0`) nothing is kept.
#[tokio::test(flavor = "multi_thread")]
async fn a_remembered_payload_answers_the_status_now() {
    let s = Server::start().await;
    let (_, m) = s.post(Some(OTHER_ISSUER), "/v1/licences", &marriage("11010519491231002X")).await;
    let doc = B64.decode(m["document"].as_str().unwrap()).unwrap();
    let payload = licvault::qr::encode(&doc);
    let verdict = || async { s.post(None, "/v1/verify", &json!({ "payload": payload })).await.1 };
    let first = verdict().await;
    assert_eq!(first["verdict"], "valid", "{first}");
    // Seen once: not remembered yet; the second time it is.
    assert_eq!(s.vault.verify_stats().memo_bytes, 0);
    assert_eq!(verdict().await, first);
    assert!(s.vault.verify_stats().memo_bytes > 0);
    let hits = s.vault.verify_stats().memo_hits;
    assert_eq!(verdict().await, first);
    assert_eq!(s.vault.verify_stats().memo_hits, hits + 1);

    let id = m["licence"]["id"].as_str().unwrap();
    let (st, _) = s.post(Some(OTHER_ISSUER), &format!("/v1/licences/{id}/revoke"), &json!({"reason": "测试"})).await;
    assert_eq!(st, 200);
    let revoked = verdict().await;
    assert_eq!(s.vault.verify_stats().memo_hits, hits + 2);
    assert_eq!(revoked["verdict"], "revoked", "{revoked}");
    assert_eq!(revoked["valid"], false);
    assert!(revoked["log"]["status_as_of_size"].as_u64() > first["log"]["status_as_of_size"].as_u64());

    // Other texts of the same bytes verify alike, but only the vault's own is remembered.
    let bytes = s.vault.verify_stats().memo_bytes;
    for other in [
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&doc),
        B64.encode(&doc),
        licvault::qr::encode_as(&doc, licvault::qr::Format::Lv1),
    ] {
        for _ in 0..3 {
            assert_eq!(verdict_of(&s, &other).await["verdict"], "revoked");
        }
    }
    let stats = s.vault.verify_stats();
    assert_eq!(
        stats.memo_hits,
        hits + 4,
        "the second standard base64 and LV1: payloads are the vault's own: {stats:?}"
    );
    assert!(stats.memo_bytes > bytes);
    let (bytes, hits) = (stats.memo_bytes, stats.memo_hits);
    let mut stored = None;
    let flate = |level| {
        let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::new(level));
        std::io::Write::write_all(&mut z, &doc).unwrap();
        format!("LV1:{}", base45::encode(z.finish().unwrap()))
    };
    for level in [0, 1, 6] {
        let other = flate(level);
        if other == licvault::qr::encode_as(&doc, licvault::qr::Format::Lv1) {
            continue;
        }
        stored = Some(other.clone());
        for _ in 0..3 {
            assert_eq!(verdict_of(&s, &other).await["verdict"], "revoked");
        }
    }
    assert!(stored.is_some(), "no other zlib stream was made");
    assert_eq!(s.vault.verify_stats().memo_bytes, bytes);
    assert_eq!(s.vault.verify_stats().memo_hits, hits);

    s.vault.set_verify_memo(0);
    assert_eq!(s.vault.verify_stats().memo_bytes, 0);
    assert_eq!(verdict().await, revoked);
    assert_eq!(s.vault.verify_stats().memo_hits, hits);
    assert_eq!(s.vault.verify_stats().memo_bytes, 0);
}
