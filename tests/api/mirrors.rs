//! Mirrors (issue 10, scope 2), with real processes: node P mirrors city node A's log through
//! its checkpoints and entry bundles and answers `POST /v1/verify` for A's licences from what it
//! verified, with the head it holds as of. Along the way: a catch-up of more than one part
//! (consistency proofs to the signed head), a revocation followed, A unreachable for a while
//! (P keeps serving, its lag grows, it resumes), P killed and restarted (it resumes from its
//! store), and A's history rewritten (A restarted on an old copy of its store, then issuing
//! again): P detects the fork, stops following A, keeps serving what it verified, says so in
//! `/readyz`, `/metrics` and `GET /v1/mirrors`, and still knows after a restart.

use std::time::Duration;

use serde_json::{json, Value};

use crate::common::*;

const COMPANY: &str = "91440300MA5E000256";

fn free_port() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().to_string()
}

pub use crate::support_server::Node;

pub async fn post(http: &reqwest::Client, url: String, token: Option<&str>, body: &Value) -> (u16, Value) {
    let mut req = http.post(url).json(body);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let res = req.send().await.unwrap();
    (res.status().as_u16(), res.json().await.unwrap_or(Value::Null))
}

pub async fn mirrors(http: &reqwest::Client, p: &Node) -> Value {
    http.get(format!("{}/v1/mirrors", p.base)).send().await.unwrap().json::<Value>().await.unwrap()["mirrors"][0]
        .clone()
}

/// Waits (up to a minute) until P's mirror of A satisfies `ok`; returns that state.
async fn wait_mirror(http: &reqwest::Client, p: &Node, what: &str, ok: impl Fn(&Value) -> bool) -> Value {
    for _ in 0..600 {
        let m = mirrors(http, p).await;
        if ok(&m) {
            return m;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{what}: the mirror never got there: {}", mirrors(http, p).await);
}

pub async fn log_size(http: &reqwest::Client, a: &Node) -> u64 {
    let note = http.get(format!("{}/v1/log/checkpoint", a.base)).send().await.unwrap().text().await.unwrap();
    note.lines().nth(1).unwrap().parse().unwrap()
}

pub async fn verify(http: &reqwest::Client, node: &Node, document: &str) -> Value {
    let (status, v) = post(http, format!("{}/v1/verify", node.base), None, &json!({"payload": document})).await;
    assert_eq!(status, 200, "{v}");
    v
}

/// Issues `n` business licences in batches of up to 1,000 (keys prefixed `tag`).
async fn issue_many(http: &reqwest::Client, a: &Node, tag: &str, n: usize) {
    for start in (0..n).step_by(1000) {
        let items: Vec<Value> = (start..n.min(start + 1000))
            .map(|i| json!({"key": format!("{tag}-{i}"), "licence": business_licence(COMPANY)}))
            .collect();
        let (status, v) =
            post(http, format!("{}/v1/licences/batch", a.base), Some(ISSUER), &json!({"items": items})).await;
        assert_eq!(status, 200, "{v}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_mirror_follows_verifies_survives_outages_and_detects_a_rewritten_history() {
    let http = reqwest::Client::new();
    let dir = tempfile::tempdir().unwrap();
    let (keys_a, keys_p) = (keys_copy(), keys_copy());
    let (data_a, data_p) = (dir.path().join("a"), dir.path().join("p"));
    let a_listen = free_port();
    let mut a = Node::start(&a_listen, &data_a, keys_a.path(), &[]);

    // A issues: more than one part of a mirror's catch-up (4,096 leaves), so P checks a
    // consistency proof to A's signed head for the first part and the root for the last.
    let (status, first) =
        post(&http, format!("{}/v1/licences", a.base), Some(ISSUER), &business_licence(COMPANY)).await;
    assert_eq!(status, 201, "{first}");
    let doc = first["document"].as_str().unwrap().to_string();
    let id = first["licence"]["id"].as_str().unwrap().to_string();
    issue_many(&http, &a, "bulk", 4_200).await;

    // P mirrors A: A's log key pinned, an auditor token of A for the entry bundles.
    let trust: Value = http.get(format!("{}/v1/trust", a.base)).send().await.unwrap().json().await.unwrap();
    let log_key = trust["log"]["verifier_key"].as_str().unwrap();
    std::fs::write(dir.path().join("a.token"), AUDITOR).unwrap();
    let witness = dir.path().join("witness");
    let (ok, out) = run_licvault(&["witness", "init", witness.to_str().unwrap(), "--name", "mirror.p.test"], None);
    assert!(ok, "{out}");
    let config = json!({
        "data": dir.path().join("p-mirrors"),
        "witness": witness,
        "poll_ms": 100,
        "sources": [{"name": "a", "url": a.base, "log_key": log_key, "token_file": dir.path().join("a.token"),
                     "root": keys_a.path().join("root.crt.pem")}]
    });
    let config_path = dir.path().join("mirrors.json");
    std::fs::write(&config_path, config.to_string()).unwrap();
    let p_args = ["--mirrors", config_path.to_str().unwrap()];
    let p_listen = free_port();
    let mut p = Node::start(&p_listen, &data_p, keys_p.path(), &p_args);

    let size = log_size(&http, &a).await;
    let m = wait_mirror(&http, &p, "catch-up", |m| m["size"] == size).await;
    assert_eq!((m["state"].as_str(), m["origin"].as_str()), (Some("following"), log_key.split('+').next()));
    let v = verify(&http, &p, &doc).await;
    assert_eq!(v["verdict"], "valid", "{v}");
    assert_eq!(v["valid"], true);
    assert_eq!(v["elsewhere"]["mirror"]["source"], "a", "{v}");
    assert_eq!(v["log"]["status_as_of_size"], size, "{v}");
    assert_eq!(v["log"]["index"], first["log"]["index"], "{v}");

    // The mirror's cosigned checkpoint: A's signature and P's witness cosignature both verify.
    let cosigned = http.get(format!("{}/v1/mirrors/a/checkpoint", p.base)).send().await.unwrap().text().await.unwrap();
    let note = dir.path().join("cosigned.note");
    std::fs::write(&note, &cosigned).unwrap();
    let wkey = std::fs::read_to_string(witness.join("witness.vkey")).unwrap();
    let (ok, out) = run_licvault(
        &["witness", "verify", note.to_str().unwrap(), "--log-key", log_key, "--witness", wkey.trim()],
        None,
    );
    assert!(ok, "the mirror's cosignature: {out}");

    // A revokes: P follows.
    let revoke = json!({"reason": "以欺骗手段取得登记"});
    let (status, body) = post(&http, format!("{}/v1/licences/{id}/revoke", a.base), Some(ISSUER), &revoke).await;
    assert_eq!(status, 200, "{body}");
    let size = log_size(&http, &a).await;
    wait_mirror(&http, &p, "the revocation", |m| m["size"] == size).await;
    assert_eq!(verify(&http, &p, &doc).await["verdict"], "revoked");

    // A is unreachable for a while: P keeps serving what it verified; the round fails and the
    // lag grows. A's store is copied meanwhile: the old history it is later restarted on.
    a.kill();
    let old_a = dir.path().join("a-old");
    crate::support_keys::copy_keys(&data_a, &old_a);
    let m = wait_mirror(&http, &p, "A down", |m| m["state"] == "unreachable" && m["lag_seconds"].as_f64() > Some(1.0))
        .await;
    assert_eq!(m["size"], size);
    assert_eq!(verify(&http, &p, &doc).await["verdict"], "revoked");
    let ready = http.get(format!("{}/readyz", p.base)).send().await.unwrap();
    assert_eq!(ready.status(), 200);
    assert!(ready.text().await.unwrap().contains("source not answering"));

    // P killed and restarted: it resumes from its own store.
    p.kill();
    p = Node::start(&p_listen, &data_p, keys_p.path(), &p_args);
    assert_eq!(mirrors(&http, &p).await["size"], size);
    assert_eq!(verify(&http, &p, &doc).await["verdict"], "revoked");

    // A is back and issues: P follows again.
    a = Node::start(&a_listen, &data_a, keys_a.path(), &[]);
    let (status, second) =
        post(&http, format!("{}/v1/licences", a.base), Some(ISSUER), &business_licence(COMPANY)).await;
    assert_eq!(status, 201);
    let size = log_size(&http, &a).await;
    wait_mirror(&http, &p, "after A's return", |m| m["size"] == size && m["state"] == "following").await;
    assert_eq!(verify(&http, &p, second["document"].as_str().unwrap()).await["verdict"], "valid");

    // A's history rewritten: A restarted on the old copy of its store, issuing other licences
    // under the same log key. P never imports them.
    a.kill();
    std::fs::remove_dir_all(&data_a).unwrap();
    std::fs::rename(&old_a, &data_a).unwrap();
    a = Node::start(&a_listen, &data_a, keys_a.path(), &[]);
    let mut forged = Vec::new();
    for _ in 0..3 {
        let (status, v) =
            post(&http, format!("{}/v1/licences", a.base), Some(ISSUER), &business_licence(COMPANY)).await;
        assert_eq!(status, 201);
        forged.push(v["document"].as_str().unwrap().to_string());
    }
    let m = wait_mirror(&http, &p, "the fork", |m| m["state"] == "forked").await;
    assert_eq!(m["size"], size, "the mirror keeps what it verified: {m}");
    assert!(m["fork"]["conflicting"].as_str().unwrap().contains('\u{2014}'), "the evidence is a signed note: {m}");
    assert_eq!(verify(&http, &p, &doc).await["verdict"], "revoked");
    // The last verified state is served as of its size, but a status from a source no longer
    // followed is not taken as valid.
    let v = verify(&http, &p, second["document"].as_str().unwrap()).await;
    assert_eq!((v["verdict"].as_str(), &v["valid"]), (Some("valid"), &json!(false)), "{v}");
    assert_eq!(v["log"]["status_as_of_size"], size);
    assert!(v["elsewhere"]["stale"].as_str().unwrap().contains("stopped following"), "{v}");
    assert_eq!(verify(&http, &p, &forged[2]).await["verdict"], "not_in_log");
    let ready = http.get(format!("{}/readyz", p.base)).send().await.unwrap().text().await.unwrap();
    assert!(ready.contains("mirror a: FORKED"), "{ready}");
    let metrics =
        http.get(format!("{}/metrics", p.base)).bearer_auth(ADMIN).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains("licvault_mirror_forked{source=\"a\"} 1"), "{metrics}");

    // The fork is remembered: after a restart P still does not follow A.
    p.kill();
    p = Node::start(&p_listen, &data_p, keys_p.path(), &p_args);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let m = mirrors(&http, &p).await;
    assert_eq!((m["state"].as_str(), &m["size"]), (Some("forked"), &json!(size)), "{m}");
    assert_eq!(verify(&http, &p, &forged[2]).await["verdict"], "not_in_log");
}
