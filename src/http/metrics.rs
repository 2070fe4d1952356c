//! Prometheus metrics: requests by route and status with latency sums, and the log size.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::time::Instant;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

use axum::extract::{MatchedPath, Request, State};
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::Response;
use tracing::Instrument;

use super::AppState;

/// (method, route, status). Every part comes from a closed set, so the map stays bounded whatever
/// clients send: the method is one of [`METHODS`] or `other`, the route is a template of
/// `http::routes()` or `unmatched`, the status a number below 600.
type RequestKey = (&'static str, String, u16);

/// The methods that get their own label; anything else (hyper accepts invented methods of any
/// length) is counted as `other`.
const METHODS: [&str; 9] = ["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "CONNECT", "TRACE"];

fn method_label(m: &axum::http::Method) -> &'static str {
    METHODS.iter().find(|k| **k == m.as_str()).copied().unwrap_or("other")
}

pub const REQUEST_ID: &str = "x-request-id";

/// A per-process random prefix and a counter: unique across restarts without a clock.
fn new_request_id() -> String {
    static PREFIX: OnceLock<String> = OnceLock::new();
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let prefix = PREFIX.get_or_init(|| {
        crate::crypto::keygen::random32().map(|r| hex::encode(&r[..4])).unwrap_or_else(|_| "00000000".into())
    });
    format!("{prefix}-{:x}", NEXT.fetch_add(1, Ordering::Relaxed))
}

#[derive(Default)]
pub struct Metrics {
    /// → (count, seconds)
    requests: Mutex<BTreeMap<RequestKey, (u64, f64)>>,
}

/// Counts and times every request, and gives it an id: the caller's `X-Request-Id` when it is a
/// sane token, else a fresh one. The id is echoed in the answer and is on every log line written
/// while the request is handled, so a 5xx answer can be matched to its log detail.
pub async fn track(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let route =
        req.extensions().get::<MatchedPath>().map(|p| p.as_str().to_string()).unwrap_or_else(|| "unmatched".into());
    let method = method_label(req.method());
    let id = req
        .headers()
        .get(REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|s| {
            !s.is_empty() && s.len() <= 64 && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
        .map(str::to_string)
        .unwrap_or_else(new_request_id);
    let span = tracing::info_span!("request", id = %id, method = %method, route = %route);
    let start = Instant::now();
    let mut res = next.run(req).instrument(span).await;
    if let Ok(v) = HeaderValue::from_str(&id) {
        res.headers_mut().insert(REQUEST_ID, v);
    }
    let secs = start.elapsed().as_secs_f64();
    if let Ok(mut m) = state.metrics.requests.lock() {
        let e = m.entry((method, route, res.status().as_u16())).or_default();
        e.0 += 1;
        e.1 += secs;
    }
    res
}

/// `licvault_store_bytes`: where the store's bytes are, per column family and in the
/// write-ahead log.
pub fn store_bytes(sizes: &[(&str, u64)], compacting: Option<u64>, free: Option<crate::store::FreeSpace>) -> String {
    let mut out = String::new();
    if let Some(f) = free {
        out.push_str("# HELP licvault_store_free_bytes Free bytes on the data directory's filesystem.\n");
        out.push_str("# TYPE licvault_store_free_bytes gauge\n");
        let _ = writeln!(out, "licvault_store_free_bytes {}", f.free);
        out.push_str("# HELP licvault_store_reserve_bytes Writes are refused (503 storage_full) while the free bytes are below this.\n");
        out.push_str("# TYPE licvault_store_reserve_bytes gauge\n");
        let _ = writeln!(out, "licvault_store_reserve_bytes {}", f.reserve);
    }
    if let Some(bytes) = compacting {
        out.push_str("# HELP licvault_store_compaction_pending_bytes Bytes the store still means to compact (above 0 while a compaction runs).\n");
        out.push_str("# TYPE licvault_store_compaction_pending_bytes gauge\n");
        let _ = writeln!(out, "licvault_store_compaction_pending_bytes {bytes}");
    }
    if sizes.is_empty() {
        return out;
    }
    out.push_str("# HELP licvault_store_bytes Bytes the store holds, per column family (files and memtables) and in the write-ahead log.\n");
    out.push_str("# TYPE licvault_store_bytes gauge\n");
    for (part, bytes) in sizes {
        let _ = writeln!(out, "licvault_store_bytes{{part=\"{part}\"}} {bytes}");
    }
    out
}

impl Metrics {
    pub fn render(
        &self,
        log_size: u64,
        seq: &crate::log::sequencer::Stats,
        verify: crate::vault::VerifyStats,
    ) -> String {
        let mut out = String::new();
        out.push_str("# HELP licvault_http_requests_total HTTP requests by method, route and status.\n");
        out.push_str("# TYPE licvault_http_requests_total counter\n");
        let snapshot = self.requests.lock().map(|m| m.clone()).unwrap_or_default();
        for ((method, route, status), (n, _)) in &snapshot {
            let _ = writeln!(
                out,
                "licvault_http_requests_total{{method=\"{method}\",route=\"{route}\",status=\"{status}\"}} {n}"
            );
        }
        out.push_str("# HELP licvault_http_request_seconds_total Time spent answering, by method, route and status.\n");
        out.push_str("# TYPE licvault_http_request_seconds_total counter\n");
        for ((method, route, status), (_, s)) in &snapshot {
            let _ = writeln!(out, "licvault_http_request_seconds_total{{method=\"{method}\",route=\"{route}\",status=\"{status}\"}} {s:.6}");
        }
        out.push_str("# HELP licvault_log_size Leaves in the log under the latest signed checkpoint.\n");
        out.push_str("# TYPE licvault_log_size gauge\n");
        let _ = writeln!(out, "licvault_log_size {log_size}");
        use std::sync::atomic::Ordering::Relaxed;
        for (name, help, v) in [
            (
                "licvault_sequencer_batches_total",
                "Group commits written (one synced batch and one checkpoint each).",
                seq.batches.load(Relaxed),
            ),
            (
                "licvault_sequencer_jobs_total",
                "Write jobs taken into batches (including refused ones).",
                seq.jobs.load(Relaxed),
            ),
            ("licvault_sequencer_leaves_total", "Leaves committed since start.", seq.leaves.load(Relaxed)),
            (
                "licvault_sequencer_failed_writes_total",
                "Batches whose write failed (no caller was told done).",
                seq.failed_writes.load(Relaxed),
            ),
        ] {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter\n{name} {v}");
        }
        let _ = writeln!(
            out,
            "# HELP licvault_sequencer_largest_batch Most jobs in one batch since start.\n# TYPE licvault_sequencer_largest_batch gauge\nlicvault_sequencer_largest_batch {}",
            seq.largest_batch.load(Relaxed)
        );
        for (name, help, v) in [
            (
                "licvault_verify_by_hash_total",
                "Documents POST /v1/verify recognised by their hash in the log, without checking the signature again.",
                verify.by_hash,
            ),
            (
                "licvault_verify_memo_hits_total",
                "Of those, payloads shown before, whose text the vault did not decode and parse again.",
                verify.memo_hits,
            ),
        ] {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter\n{name} {v}");
        }
        let _ = writeln!(
            out,
            "# HELP licvault_verify_memo_bytes Bytes the payloads recognised by hash take in memory, as estimated (--verify-memo-mib bounds them).\n# TYPE licvault_verify_memo_bytes gauge\nlicvault_verify_memo_bytes {}",
            verify.memo_bytes
        );
        out
    }
}
