#![allow(dead_code)] // each benchmark uses some of these
//! What both benchmarks measure with: their settings from the environment and a rate meter.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

/// Seconds each load runs (BENCH_SECS, default 5).
pub fn secs() -> f64 {
    env("BENCH_SECS", 5.0)
}

/// A number from the environment variable `name`, else `default`.
pub fn env<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name).ok().and_then(|s| s.parse().ok()).unwrap_or(default)
}

/// Runs `f` repeatedly for `d` and returns calls per second.
pub fn rate(d: Duration, mut f: impl FnMut()) -> f64 {
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed() < d {
        for _ in 0..64 {
            f();
        }
        n += 64;
    }
    n as f64 / start.elapsed().as_secs_f64()
}

/// Sends licences `from..from + count`, made by `make`, through the batch endpoint, 500 a
/// request, two requests in flight; the issuance leaf index of each, and licences/s.
pub async fn import(
    http: &reqwest::Client,
    base: &str,
    token: &str,
    prefix: &str,
    from: u64,
    count: u64,
    make: fn(u64) -> Value,
) -> (Vec<u64>, f64) {
    const PER: u64 = 500;
    let started = Instant::now();
    let mut indexes = Vec::with_capacity(count as usize);
    let bar = indicatif::ProgressBar::new(count);
    let mut jobs = tokio::task::JoinSet::new();
    let (mut next, end) = (from, from + count);
    while next < end || !jobs.is_empty() {
        while next < end && jobs.len() < 2 {
            let (http, url, token) = (http.clone(), format!("{base}/v1/licences/batch"), token.to_string());
            let items: Vec<Value> = (next..(next + PER).min(end))
                .map(|n| json!({"key": format!("{prefix}-{n}"), "licence": make(n)}))
                .collect();
            next += items.len() as u64;
            jobs.spawn(async move {
                // The items carry their keys: a request lost with its connection is sent again.
                let body = json!({ "items": items });
                let mut attempt = 0;
                let res = loop {
                    match http.post(&url).bearer_auth(&token).json(&body).send().await {
                        Ok(res) => break res,
                        Err(e) if attempt < 3 => {
                            attempt += 1;
                            eprintln!("batch request failed ({e}); sending it again");
                        }
                        Err(e) => panic!("{e}"),
                    }
                };
                assert_eq!(res.status(), 200);
                let v: Value = res.json().await.unwrap();
                assert_eq!(v["refused"], 0, "{v}");
                v["results"].as_array().unwrap().iter().map(|r| r["log_index"].as_u64().unwrap()).collect::<Vec<_>>()
            });
        }
        if let Some(done) = jobs.join_next().await {
            let got = done.unwrap();
            bar.inc(got.len() as u64);
            indexes.extend(got);
        }
    }
    bar.finish_and_clear();
    indexes.sort_unstable();
    (indexes, count as f64 / started.elapsed().as_secs_f64())
}

/// `clients` tasks calling `call` in a loop for BENCH_SECS; calls/s.
pub async fn load<F, Fut>(clients: usize, call: F) -> f64
where
    F: Fn(u64) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let call = Arc::new(call);
    let done = Arc::new(AtomicU64::new(0));
    let until = Instant::now() + Duration::from_secs_f64(secs());
    let started = Instant::now();
    let mut jobs = tokio::task::JoinSet::new();
    for c in 0..clients as u64 {
        let (call, done) = (call.clone(), done.clone());
        jobs.spawn(async move {
            let mut n = c * 1_000_000_007;
            while Instant::now() < until {
                call(n).await;
                n += 1;
                done.fetch_add(1, Ordering::Relaxed);
            }
        });
    }
    while jobs.join_next().await.is_some() {}
    done.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64()
}

/// The size of the log under the server's latest checkpoint.
pub async fn log_size(http: &reqwest::Client, base: &str) -> u64 {
    let note = http.get(format!("{base}/v1/log/checkpoint")).send().await.unwrap().text().await.unwrap();
    note.lines().nth(1).and_then(|l| l.parse().ok()).unwrap()
}
