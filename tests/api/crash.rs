//! kill -9 of the server while 8 clients issue and 2 verifiers look the issued licences up, 10
//! rounds. Afterwards: every licence that got a 2xx is there, every usage record a lookup answer
//! named is there (the data left only after its record was durable), the hash chain and Merkle
//! root recompute from the leaves and match the last signed checkpoint, and no retried
//! Idempotency-Key issued twice.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::process::Child;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use licvault::log::leaf::{verify_chain, Leaf};
use licvault::log::note::{Checkpoint, Verifier};
use licvault::store::{Cf, RocksStore, Store};
use serde_json::Value;

use crate::common::*;

const CLIENTS: usize = 8;
const VERIFIERS: usize = 2;
const ROUNDS: usize = 10;
const COMPANY: &str = "91440300MA5E000256";

struct Sent {
    key: String,
    body: Value,
    acked: Option<String>,
}

fn spawn(data: &Path, keys: &Path) -> (Child, String) {
    crate::support_server::spawn_server(env!("CARGO_BIN_EXE_licvault"), data, keys, &[])
}

/// A small xorshift: the kill moments vary from run to run without a dependency.
fn jitter(seed: &mut u64, lo: u64, hi: u64) -> u64 {
    *seed ^= *seed << 13;
    *seed ^= *seed >> 7;
    *seed ^= *seed << 17;
    lo + *seed % (hi - lo)
}

async fn post(http: &reqwest::Client, base: &str, key: &str, body: &Value) -> Result<(u16, Value), reqwest::Error> {
    let res = http
        .post(format!("{base}/v1/licences"))
        .bearer_auth(ISSUER)
        .header("Idempotency-Key", key)
        .json(body)
        .timeout(Duration::from_secs(10))
        .send()
        .await?;
    let status = res.status().as_u16();
    Ok((status, res.json().await?))
}

/// A one-number lookup of COMPANY; its answer's (usage leaf, licence) pairs.
async fn lookup(http: &reqwest::Client, base: &str) -> Result<Vec<(u64, String)>, reqwest::Error> {
    let body = serde_json::json!({"holder": {"type": "001", "id": COMPANY}, "use_reason": "崩溃恢复测试"});
    let res = http
        .post(format!("{base}/v1/holders/licences"))
        .bearer_auth(VERIFIER)
        .json(&body)
        .timeout(Duration::from_secs(10))
        .send()
        .await?;
    let status = res.status().as_u16();
    let v: Value = res.json().await?;
    assert_eq!(status, 200, "{v}");
    Ok(v["licences"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| (l["log"]["usage_index"].as_u64().unwrap(), l["licence"]["id"].as_str().unwrap().to_string()))
        .collect())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn crash_recovery_keeps_every_acknowledged_licence() {
    let data = tempfile::tempdir().unwrap();
    let keys = keys_copy();
    let sent: Arc<Mutex<Vec<Sent>>> = Arc::default();
    let disclosed: Arc<Mutex<Vec<(u64, String)>>> = Arc::default();
    let mut seed = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64 | 1;

    for round in 0..ROUNDS {
        let (mut child, base) = spawn(data.path(), keys.path());
        let stop = Arc::new(AtomicBool::new(false));
        let http = reqwest::Client::new();
        let mut tasks = Vec::new();
        for c in 0..CLIENTS {
            let (stop, sent, http, base) = (stop.clone(), sent.clone(), http.clone(), base.clone());
            tasks.push(tokio::spawn(async move {
                let mut n = 0;
                while !stop.load(Ordering::Relaxed) {
                    let key = format!("round{round}-client{c}-{n}");
                    let mut body = business_licence(COMPANY);
                    body["fields"]["法定代表人"] = Value::String(format!("代表{c}-{n}"));
                    let slot = {
                        let mut s = sent.lock().unwrap();
                        s.push(Sent { key: key.clone(), body: body.clone(), acked: None });
                        s.len() - 1
                    };
                    match post(&http, &base, &key, &body).await {
                        Ok((status, v)) if (200..300).contains(&status) => {
                            sent.lock().unwrap()[slot].acked = Some(v["licence"]["id"].as_str().unwrap().to_string());
                        }
                        Ok((status, v)) => panic!("unexpected answer {status}: {v}"),
                        Err(_) => break, // the server is gone
                    }
                    n += 1;
                }
            }));
        }
        for _ in 0..VERIFIERS {
            let (stop, disclosed, http, base) = (stop.clone(), disclosed.clone(), http.clone(), base.clone());
            tasks.push(tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    match lookup(&http, &base).await {
                        Ok(pairs) => disclosed.lock().unwrap().extend(pairs),
                        Err(_) => break,
                    }
                }
            }));
        }
        tokio::time::sleep(Duration::from_millis(jitter(&mut seed, 150, 900))).await;
        child.kill().unwrap(); // SIGKILL: no shutdown, no flush
        child.wait().unwrap();
        stop.store(true, Ordering::Relaxed);
        for t in tasks {
            t.await.unwrap();
        }
    }

    let sent = std::mem::take(&mut *sent.lock().unwrap());
    let acked = sent.iter().filter(|s| s.acked.is_some()).count();
    eprintln!("crash test: {} requests sent, {acked} acknowledged before the kills", sent.len());
    assert!(acked > 0, "no request was acknowledged: the test proved nothing");

    // Restart: every retried key answers with the licence it first made, or makes exactly one.
    let (mut child, base) = spawn(data.path(), keys.path());
    let http = reqwest::Client::new();
    let mut by_key: HashMap<String, String> = HashMap::new();
    for s in &sent {
        let (status, v) = post(&http, &base, &s.key, &s.body).await.unwrap();
        assert!(status == 200 || status == 201, "{}: {status} {v}", s.key);
        let id = v["licence"]["id"].as_str().unwrap().to_string();
        if let Some(first) = &s.acked {
            assert_eq!((status, &id), (200, first), "{}: an acknowledged licence was lost or re-issued", s.key);
        }
        let (again, v2) = post(&http, &base, &s.key, &s.body).await.unwrap();
        assert_eq!((again, v2["licence"]["id"].as_str()), (200, Some(id.as_str())), "{}", s.key);
        by_key.insert(s.key.clone(), id);
    }
    let distinct: HashSet<&String> = by_key.values().collect();
    assert_eq!(distinct.len(), by_key.len(), "two keys share one licence");
    child.kill().unwrap();
    child.wait().unwrap();

    // Recompute the log from its leaves and check it against the signed checkpoint.
    let store = RocksStore::open(data.path()).unwrap();
    let note = String::from_utf8(store.get(Cf::Meta, b"checkpoint").unwrap().unwrap()).unwrap();
    let verifier = Verifier::parse(&std::fs::read_to_string(keys.path().join("log.vkey")).unwrap()).unwrap();
    let cp = Checkpoint::open(&note, &verifier).unwrap();
    let leaves: Vec<Vec<u8>> = (0..cp.size)
        .map(|i| store.get(Cf::Leaves, &i.to_be_bytes()).unwrap().expect("leaf under the checkpoint"))
        .collect();
    assert!(store.get(Cf::Leaves, &cp.size.to_be_bytes()).unwrap().is_none(), "a leaf beyond the checkpoint");
    let tree = verify_chain(leaves.iter().cloned()).unwrap();
    assert_eq!((tree.size(), tree.root()), (cp.size, cp.root));
    let issued = leaves.iter().filter(|l| Leaf::decode(l).unwrap().event.kind == "licence.issued").count();
    assert_eq!(issued, by_key.len(), "every key issued exactly one licence, nothing else was issued");
    // Every licence a lookup answered with has its usage record in the log.
    let disclosed = std::mem::take(&mut *disclosed.lock().unwrap());
    eprintln!("crash test: {} licences disclosed by lookups before the kills", disclosed.len());
    assert!(!disclosed.is_empty(), "no lookup was answered: the test proved nothing about usage records");
    for (index, id) in disclosed {
        let leaf = Leaf::decode(leaves.get(index as usize).expect("an acknowledged usage leaf is in the log")).unwrap();
        assert_eq!(
            (leaf.event.kind.as_str(), leaf.event.get_text("licence")),
            ("licence.used", Some(id.as_str())),
            "usage leaf {index}"
        );
    }
}
