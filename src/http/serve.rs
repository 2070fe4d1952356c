//! The accept loop: hyper's HTTP/1.1 connections with the limits of [`Limits`]. `axum::serve`
//! offers none of them (and without a timer hyper's header timeout is off), so one slow or idle
//! client per socket could hold connections and memory for ever.
//!
//! - header timeout: hyper's `header_read_timeout` (a slowloris sends a header byte a minute);
//! - request timeout: the body must arrive within it (`ApiJson`), else 408;
//! - idle timeout: a connection with no request being answered and no byte in either direction
//!   for that long is shut down gracefully. A request the server is still working on is never
//!   idle (a batch waiting out a storage stall must not lose its answer); a client that stops
//!   reading its answers is cut off after the shutdown grace;
//! - connection cap: a semaphore; at the cap the loop stops accepting and new clients wait in the
//!   kernel's backlog instead of taking memory here;
//! - shutdown: stop accepting, ask every connection to finish its request in flight and close,
//!   wait at most the grace period, then drop what is left.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;

use crate::config::Limits;

/// Milliseconds since the first call: a cheap clock for idle tracking.
fn now_ms() -> u64 {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    EPOCH.get_or_init(Instant::now).elapsed().as_millis() as u64
}

/// A TCP stream that records when a byte last went either way.
struct Tracked {
    inner: TcpStream,
    last: Arc<AtomicU64>,
}

impl AsyncRead for Tracked {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.last.store(now_ms(), Ordering::Relaxed);
        }
        r
    }
}

impl AsyncWrite for Tracked {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, data: &[u8]) -> Poll<std::io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, data);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.last.store(now_ms(), Ordering::Relaxed);
        }
        r
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.last.store(now_ms(), Ordering::Relaxed);
        }
        r
    }

    /// hyper writes head and body with one `writev` when the stream supports it.
    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// A request being answered on a connection; when it ends (answered, failed or dropped), the
/// connection's clock of quiet starts again from now.
struct Busy {
    busy: Arc<AtomicU64>,
    last: Arc<AtomicU64>,
}

impl Busy {
    fn enter(busy: &Arc<AtomicU64>, last: &Arc<AtomicU64>) -> Self {
        busy.fetch_add(1, Ordering::Relaxed);
        Self { busy: busy.clone(), last: last.clone() }
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.last.store(now_ms(), Ordering::Relaxed);
        self.busy.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Serves `router` on `listener` with `limits` until `shutdown` completes, then drains.
pub async fn serve_with(
    listener: TcpListener,
    router: Router,
    limits: &Limits,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new()).header_read_timeout(Duration::from_secs(limits.header_timeout.max(1)));
    let idle = Duration::from_secs(limits.idle_timeout.max(1));
    let mut conns = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        while conns.try_join_next().is_some() {}
        let permit = tokio::select! {
            p = slots.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => break },
            _ = &mut shutdown => break,
        };
        let (stream, _peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(s) => s,
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = &mut shutdown => break,
        };
        let last = Arc::new(AtomicU64::new(now_ms()));
        let io = TokioIo::new(Tracked { inner: stream, last: last.clone() });
        // Requests of this connection being answered: while there is one, it is not idle.
        let busy = Arc::new(AtomicU64::new(0));
        let service = {
            let (router, busy, last) = (router.clone(), busy.clone(), last.clone());
            tower::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                let (router, guard) = (router.clone(), Busy::enter(&busy, &last));
                async move {
                    let answer = tower::ServiceExt::oneshot(router, req).await;
                    drop(guard);
                    answer
                }
            })
        };
        let conn = http.serve_connection(io, TowerToHyperService::new(service));
        let mut stop = stop_rx.clone();
        let hard = Duration::from_secs(limits.shutdown_grace.max(1));
        conns.spawn(async move {
            let _permit = permit;
            tokio::pin!(conn);
            // Once asked to close, a connection has `hard` to finish its answer: a client that
            // stops reading would otherwise hold its slot for ever.
            let mut closing: Option<tokio::time::Instant> = None;
            loop {
                let quiet = Duration::from_millis(now_ms().saturating_sub(last.load(Ordering::Relaxed)));
                let wait = match closing {
                    Some(deadline) => deadline.saturating_duration_since(tokio::time::Instant::now()),
                    // A request being answered: look again a whole idle period later.
                    None if busy.load(Ordering::Relaxed) > 0 => idle,
                    None => idle.saturating_sub(quiet),
                };
                tokio::select! {
                    _ = conn.as_mut() => break,
                    _ = stop.changed(), if closing.is_none() => {
                        closing = Some(tokio::time::Instant::now() + hard);
                        conn.as_mut().graceful_shutdown();
                    }
                    _ = tokio::time::sleep(wait) => {
                        if closing.is_some() {
                            break; // dropping the connection closes the socket
                        }
                        let quiet = now_ms().saturating_sub(last.load(Ordering::Relaxed));
                        if quiet >= idle.as_millis() as u64 && busy.load(Ordering::Relaxed) == 0 {
                            closing = Some(tokio::time::Instant::now() + hard);
                            conn.as_mut().graceful_shutdown();
                        }
                    }
                }
            }
        });
    }
    drop(listener);
    let _ = stop_tx.send(true);
    let grace = Duration::from_secs(limits.shutdown_grace);
    let drained = tokio::time::timeout(grace, async { while conns.join_next().await.is_some() {} }).await;
    if drained.is_err() {
        tracing::warn!(left = conns.len(), "shutdown grace period over: closing connections still open");
        conns.abort_all();
    }
    Ok(())
}
