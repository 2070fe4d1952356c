//! Prometheus metrics: requests by route and status with latency sums, and the log size.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;

use super::AppState;

/// (method, route, status)
type RequestKey = (String, String, u16);

#[derive(Default)]
pub struct Metrics {
    /// → (count, seconds)
    requests: Mutex<BTreeMap<RequestKey, (u64, f64)>>,
}

pub async fn track(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let route =
        req.extensions().get::<MatchedPath>().map(|p| p.as_str().to_string()).unwrap_or_else(|| "unmatched".into());
    let method = req.method().to_string();
    let start = Instant::now();
    let res = next.run(req).await;
    let secs = start.elapsed().as_secs_f64();
    if let Ok(mut m) = state.metrics.requests.lock() {
        let e = m.entry((method, route, res.status().as_u16())).or_default();
        e.0 += 1;
        e.1 += secs;
    }
    res
}

impl Metrics {
    pub fn render(&self, log_size: u64, seq: &crate::log::sequencer::Stats) -> String {
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
        out
    }
}
