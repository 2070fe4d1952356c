//! The data directory's filesystem fills up while four clients issue: a 128 MiB tmpfs mounted by
//! the test (it runs as root, as `make test` does here), and a file another process grows until
//! the filesystem answers ENOSPC. Writes then get 503 `storage_full` and the log does not grow;
//! reads go on; a lookup, which must write its usage record first, discloses nothing. Once the
//! file is removed, writes resume by themselves. At the end every acknowledged licence is there,
//! every refused request sent again makes exactly one licence (nothing of it had been written),
//! and `licvault check` replays the whole log after a clean stop and a restart.

use std::collections::HashSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::*;

const CLIENTS: usize = 4;
const COMPANY: &str = "91440300MA5E000256";

/// The tmpfs, unmounted when the test ends however it ends.
struct Mount(PathBuf);

impl Mount {
    fn tmpfs(at: &Path, size: &str) -> Self {
        std::fs::create_dir_all(at).unwrap();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size},mode=0700"), "tmpfs"])
            .arg(at)
            .output()
            .expect("run mount");
        assert!(
            out.status.success(),
            "the disk-full test mounts a small tmpfs and needs root for it (make test runs as root on the CI \
             machine): {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Self(at.to_path_buf())
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

fn free_bytes(dir: &Path) -> u64 {
    let st = rustix::fs::statvfs(dir).unwrap();
    st.f_bavail * st.f_frsize
}

#[derive(Default)]
struct Outcomes {
    acked: Vec<(String, String)>,
    refused: Vec<String>,
}

async fn issue(http: &reqwest::Client, base: &str, key: &str, body: &Value) -> (u16, Option<String>, Value) {
    let res = http
        .post(format!("{base}/v1/licences"))
        .bearer_auth(ISSUER)
        .header("Idempotency-Key", key)
        .json(body)
        .timeout(Duration::from_secs(30))
        .send()
        .await
        .unwrap();
    let status = res.status().as_u16();
    let retry = res.headers().get("retry-after").map(|v| v.to_str().unwrap().to_string());
    (status, retry, res.json().await.unwrap())
}

fn body(key: &str) -> Value {
    let mut b = business_licence(COMPANY);
    b["fields"]["法定代表人"] = Value::String(format!("代表{key}"));
    b
}

async fn log_size(http: &reqwest::Client, base: &str) -> u64 {
    let note = http.get(format!("{base}/v1/log/checkpoint")).send().await.unwrap().text().await.unwrap();
    note.lines().nth(1).unwrap().parse().unwrap()
}

async fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(120);
    while !done() {
        assert!(Instant::now() < deadline, "gave up waiting: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The server, killed if the test ends early (before the tmpfs is unmounted under it).
struct Running(Option<Child>);

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(c) = self.0.as_mut() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn stop(running: &mut Running) {
    let mut child = running.0.take().unwrap();
    let pid = child.id().to_string();
    assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    let status = child.wait().unwrap();
    assert!(status.success(), "the server did not stop cleanly: {status}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_full_disk_refuses_writes_keeps_reads_and_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mount = Mount::tmpfs(&dir.path().join("small"), "128m");
    let data = mount.0.join("data");
    let keys = keys_copy();
    let bin = env!("CARGO_BIN_EXE_licvault");
    let (child, base) = crate::support_server::spawn_server(bin, &data, keys.path(), &["--min-free-space", "16M"]);
    let mut running = Running(Some(child));
    let http = reqwest::Client::new();

    let outcomes: Arc<Mutex<Outcomes>> = Arc::default();
    let done = Arc::new(AtomicBool::new(false));
    let mut clients = Vec::new();
    for c in 0..CLIENTS {
        let (outcomes, done, http, base) = (outcomes.clone(), done.clone(), http.clone(), base.clone());
        clients.push(tokio::spawn(async move {
            let mut n = 0;
            while !done.load(Ordering::Relaxed) {
                let key = format!("client{c}-{n}");
                n += 1;
                let (status, retry, v) = issue(&http, &base, &key, &body(&key)).await;
                match status {
                    201 => outcomes.lock().unwrap().acked.push((key, v["licence"]["id"].as_str().unwrap().into())),
                    503 => {
                        assert_eq!(v["code"], "storage_full", "{v}");
                        assert!(v["detail"].as_str().unwrap().contains("nothing of this request was written"), "{v}");
                        assert_eq!(retry.as_deref(), Some("10"), "a 503 says when to try again");
                        outcomes.lock().unwrap().refused.push(key);
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                    _ => panic!("unexpected answer {status}: {v}"),
                }
            }
        }));
    }

    // Another process fills the filesystem to the last byte while the clients issue.
    wait_for("40 licences issued", || outcomes.lock().unwrap().acked.len() >= 40).await;
    let filler = mount.0.join("filler");
    let filled = {
        let filler = filler.clone();
        tokio::task::spawn_blocking(move || {
            let mut f = std::fs::File::create(&filler).unwrap();
            let chunk = vec![0u8; 1 << 16];
            let mut written = 0u64;
            loop {
                match f.write_all(&chunk).and_then(|()| f.flush()) {
                    Ok(()) => written += chunk.len() as u64,
                    Err(e) => {
                        assert_eq!(e.raw_os_error(), Some(28), "the filler stops at ENOSPC: {e}");
                        return written;
                    }
                }
            }
        })
        .await
        .unwrap()
    };
    assert!(filled > 16 << 20, "the filler took {filled} bytes: the filesystem was nearly full already");
    assert!(free_bytes(&mount.0) < 1 << 20, "the filesystem is full");
    wait_for("every client refused", || outcomes.lock().unwrap().refused.len() >= 3 * CLIENTS).await;

    // Full: the log stands still while the clients keep trying.
    let size = log_size(&http, &base).await;
    let refused_before = outcomes.lock().unwrap().refused.len();
    wait_for("more refusals", || outcomes.lock().unwrap().refused.len() >= refused_before + 2 * CLIENTS).await;
    assert_eq!(log_size(&http, &base).await, size, "the log grew while the disk was full");
    // Reads go on.
    let sample: Vec<String> = outcomes.lock().unwrap().acked.iter().rev().take(5).map(|(_, id)| id.clone()).collect();
    for id in &sample {
        let res = http.get(format!("{base}/v1/licences/{id}")).bearer_auth(ISSUER).send().await.unwrap();
        assert_eq!(res.status(), 200, "reading {id} while the disk is full");
    }
    let res = http.get(format!("{base}/v1/licences?limit=10")).bearer_auth(ISSUER).send().await.unwrap();
    assert_eq!(res.status(), 200, "listing while the disk is full");
    // A lookup must write its usage record before any data leaves: it is refused, disclosing nothing.
    let lookup = serde_json::json!({"holder": {"type": "001", "id": COMPANY}, "use_reason": "磁盘满测试"});
    let res =
        http.post(format!("{base}/v1/holders/licences")).bearer_auth(VERIFIER).json(&lookup).send().await.unwrap();
    assert_eq!(res.status(), 503);
    let v: Value = res.json().await.unwrap();
    assert!(v["code"] == "storage_full" && v.get("licences").is_none(), "{v}");
    // A batch import is refused whole: its items' keys make sending it again safe.
    let batch = serde_json::json!({"items": [{"key": "batch-while-full", "licence": body("batch-while-full")}]});
    let res = http.post(format!("{base}/v1/licences/batch")).bearer_auth(ISSUER).json(&batch).send().await.unwrap();
    assert_eq!(res.status(), 503);
    assert_eq!(res.json::<Value>().await.unwrap()["code"], "storage_full");
    let ready = http.get(format!("{base}/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 503);
    assert!(ready.text().await.unwrap().contains("storage is full"));
    let metrics = http.get(format!("{base}/metrics")).bearer_auth(ADMIN).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains("licvault_store_reserve_bytes 16777216"), "{metrics}");

    // Space returns: writes resume by themselves.
    std::fs::remove_file(&filler).unwrap();
    let acked_before = outcomes.lock().unwrap().acked.len();
    wait_for("issuance resumed", || outcomes.lock().unwrap().acked.len() >= acked_before + 20).await;
    done.store(true, Ordering::Relaxed);
    for c in clients {
        c.await.unwrap();
    }
    let Outcomes { acked, refused } = std::mem::take(&mut *outcomes.lock().unwrap());
    eprintln!("disk-full test: {} acknowledged, {} refused while full", acked.len(), refused.len());

    // Nothing of a refused request was written: sent again, each makes a new licence (201, not
    // the 200 of a replay), and a second sending replays it.
    let mut ids: HashSet<String> = acked.iter().map(|(_, id)| id.clone()).collect();
    assert_eq!(ids.len(), acked.len());
    for key in &refused {
        let (status, _, v) = issue(&http, &base, key, &body(key)).await;
        assert_eq!(status, 201, "{key} was refused, yet something of it was kept: {v}");
        let id = v["licence"]["id"].as_str().unwrap().to_string();
        let (again, _, v2) = issue(&http, &base, key, &body(key)).await;
        assert_eq!((again, v2["licence"]["id"].as_str()), (200, Some(id.as_str())));
        assert!(ids.insert(id), "two keys share one licence");
    }
    let res = http.post(format!("{base}/v1/licences/batch")).bearer_auth(ISSUER).json(&batch).send().await.unwrap();
    let v: Value = res.json().await.unwrap();
    assert_eq!(v["results"][0]["outcome"], "issued", "the batch refused while full, sent again: {v}");
    assert!(ids.insert(v["results"][0]["id"].as_str().unwrap().to_string()));
    stop(&mut running);

    // After a clean stop the whole log replays, and after a restart every licence is there.
    let out = Command::new(bin)
        .args(["check", "--data", data.to_str().unwrap(), "--keys", keys.path().to_str().unwrap()])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success() && text.contains("log ok:"), "{text}");
    let (child, base) = crate::support_server::spawn_server(bin, &data, keys.path(), &["--min-free-space", "16M"]);
    running.0 = Some(child);
    for (key, id) in &acked {
        let (status, _, v) = issue(&http, &base, key, &body(key)).await;
        assert_eq!((status, v["licence"]["id"].as_str()), (200, Some(id.as_str())), "{key}: an acknowledged licence");
    }
    let mut listed = 0;
    let mut cursor = String::new();
    loop {
        let page: Value = http
            .get(format!("{base}/v1/licences?limit=1000{cursor}"))
            .bearer_auth(ISSUER)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        listed += page["licences"].as_array().unwrap().len();
        match page["next_cursor"].as_str() {
            Some(c) => cursor = format!("&cursor={c}"),
            None => break,
        }
    }
    assert_eq!(listed, ids.len(), "the department holds exactly the licences it was told of");
    stop(&mut running);
}
