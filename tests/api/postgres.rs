//! The national mirror on PostgreSQL (issue 10, scope 4), with real processes: a PostgreSQL
//! primary and its streaming replica (Debian's postgresql-15: initdb, pg_ctl, pg_basebackup, in a
//! temp directory), a city node issuing without pause, and a mirror node writing what it verifies
//! to the primary. The primary is killed (SIGKILL) mid-ingest and the replica promoted by hand:
//! the mirror connects to it (`target_session_attrs=read-write`), reads its state back, fetches
//! again what had not been replicated, and ends in step with the city node, with every leaf
//! once and every licence in its province's partition.

use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};

use crate::common::*;
use crate::mirrors::{log_size, mirrors, post, verify, Node};
use crate::support_pg::{is_root, p, pg, start_cluster};

const COMPANY: &str = "91440300MA5E000256";

#[tokio::test(flavor = "multi_thread")]
async fn the_national_mirror_survives_the_loss_of_its_postgresql_primary() {
    let http = reqwest::Client::new();
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    if is_root() {
        Command::new("chown").args(["postgres:", p(t)]).status().unwrap();
    }
    // The primary, and a replica streaming from it.
    let (primary, replica) = (t.join("primary"), t.join("replica"));
    let (sock_p, sock_r) = (t.join("sp"), t.join("sr"));
    pg("initdb", &["-D", p(&primary), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync"]);
    let _primary = start_cluster(&primary, &sock_p);
    pg("pg_basebackup", &["-h", p(&sock_p), "-U", "postgres", "-D", p(&replica), "-R", "-X", "stream"]);
    let replica_cluster = start_cluster(&replica, &sock_r);

    // A city node, and the mirror writing to the primary (the replica named too, for later).
    let keys_a = keys_copy();
    let keys_m = keys_copy();
    let a = Node::start("127.0.0.1:0", &t.join("a"), keys_a.path(), &[]);
    let a_base = a.base.clone();
    let trust: Value = http.get(format!("{a_base}/v1/trust")).send().await.unwrap().json().await.unwrap();
    std::fs::write(t.join("a.token"), AUDITOR).unwrap();
    let conn = format!(
        "host={},{} user=postgres dbname=postgres target_session_attrs=read-write connect_timeout=5",
        p(&sock_p),
        p(&sock_r)
    );
    // Verdicts read on the replica (named so that it can be seen there).
    let read = format!(
        "host={} user=postgres dbname=postgres application_name=licvault-verdicts connect_timeout=5",
        p(&sock_r)
    );
    let config = json!({
        "postgres": conn,
        "postgres_read": read,
        "poll_ms": 100,
        "sources": [{"name": "a", "url": a_base, "log_key": trust["log"]["verifier_key"], "token_file": t.join("a.token"),
                     "root": keys_a.path().join("root.crt.pem")}]
    });
    std::fs::write(t.join("mirrors.json"), config.to_string()).unwrap();
    let m =
        Arc::new(Node::start("127.0.0.1:0", &t.join("m"), keys_m.path(), &["--mirrors", p(&t.join("mirrors.json"))]));

    // The city issues without pause, 100 licences a request.
    let stop = Arc::new(AtomicBool::new(false));
    let issued = Arc::new(AtomicUsize::new(0));
    let issuer = {
        let (stop, issued, http, a_base) = (stop.clone(), issued.clone(), http.clone(), a_base.clone());
        tokio::spawn(async move {
            let mut round = 0;
            while !stop.load(Ordering::Relaxed) {
                let items: Vec<Value> = (0..100)
                    .map(|i| json!({"key": format!("pg-{round}-{i}"), "licence": business_licence(COMPANY)}))
                    .collect();
                let res = http
                    .post(format!("{a_base}/v1/licences/batch"))
                    .bearer_auth(ISSUER)
                    .json(&json!({"items": items}))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(res.status(), 200);
                issued.fetch_add(100, Ordering::Relaxed);
                round += 1;
            }
        })
    };
    let wait = |what: &'static str, ok: Box<dyn Fn(&Value) -> bool + Send>| {
        let (http, m) = (http.clone(), m.clone());
        async move {
            for _ in 0..1200 {
                let state = mirrors(&http, &m).await;
                if ok(&state) {
                    return state;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            panic!("{what}: {}", mirrors(&http, &m).await);
        }
    };
    wait("ingest", Box::new(|m| m["size"].as_u64() >= Some(2_000))).await;

    // A verdict from the replica: valid once streaming replication has brought the licence there.
    let (status, early) = post(&http, format!("{a_base}/v1/licences"), Some(ISSUER), &business_licence(COMPANY)).await;
    assert_eq!(status, 201);
    issued.fetch_add(1, Ordering::Relaxed);
    let mut v = Value::Null;
    for _ in 0..100 {
        v = verify(&http, &m, early["document"].as_str().unwrap()).await;
        if v["verdict"] == "valid" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!((v["verdict"].as_str(), v["elsewhere"]["mirror"]["source"].as_str()), (Some("valid"), Some("a")), "{v}");
    let (replica_client, connection) =
        tokio_postgres::connect(&format!("host={} user=postgres dbname=postgres", p(&sock_r)), tokio_postgres::NoTls)
            .await
            .unwrap();
    tokio::spawn(connection);
    let readers: i64 = replica_client
        .query_one("SELECT count(*) FROM pg_stat_activity WHERE application_name = 'licvault-verdicts'", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(readers, 1, "the verdict was read on the replica");
    drop(replica_client);

    // The primary dies mid-ingest; the replica is promoted by hand.
    let pid = std::fs::read_to_string(primary.join("postmaster.pid")).unwrap();
    let pid = pid.lines().next().unwrap().trim().to_string();
    assert!(Command::new("kill").args(["-9", &pid]).status().unwrap().success());
    let before = mirrors(&http, &m).await["size"].as_u64().unwrap();
    pg("pg_ctl", &["-D", p(&replica), "-w", "promote"]);
    wait("ingest on the promoted replica", Box::new(move |m| m["size"].as_u64() > Some(before + 500))).await;
    stop.store(true, Ordering::Relaxed);
    issuer.await.unwrap();
    let size = log_size(&http, &a).await;
    let state = wait("in step", Box::new(move |m| m["size"] == size && m["state"] == "following")).await;
    assert!(state.get("fork").is_none(), "{state}");

    // Nothing lost, nothing twice: every leaf once, every licence once, in Guangdong's partition.
    let (client, connection) =
        tokio_postgres::connect(&format!("host={} user=postgres dbname=postgres", p(&sock_r)), tokio_postgres::NoTls)
            .await
            .unwrap();
    tokio::spawn(connection);
    let row = client
        .query_one(
            "SELECT count(*), count(DISTINCT idx), min(idx), max(idx) FROM mirror_leaves WHERE source = 'a'",
            &[],
        )
        .await
        .unwrap();
    let (n, distinct, lo, hi): (i64, i64, i64, i64) = (row.get(0), row.get(1), row.get(2), row.get(3));
    assert_eq!((n, distinct, lo, hi), (size as i64, size as i64, 0, size as i64 - 1));
    let licences: i64 = client.query_one("SELECT count(*) FROM mirror_licences", &[]).await.unwrap().get(0);
    let in_44: i64 = client.query_one("SELECT count(*) FROM mirror_licences_44", &[]).await.unwrap().get(0);
    let issued = issued.load(Ordering::Relaxed) as i64;
    assert_eq!((licences, in_44), (issued, issued));

    // The mirror answers from the promoted database.
    let (status, first) = post(&http, format!("{a_base}/v1/licences"), Some(ISSUER), &business_licence(COMPANY)).await;
    assert_eq!(status, 201);
    let size = log_size(&http, &a).await;
    wait("the last licence", Box::new(move |m| m["size"] == size)).await;
    let v = verify(&http, &m, first["document"].as_str().unwrap()).await;
    assert_eq!((v["verdict"].as_str(), v["elsewhere"]["mirror"]["source"].as_str()), (Some("valid"), Some("a")), "{v}");
    drop(replica_cluster);
}
