#![allow(dead_code)] // each benchmark uses some of these
//! What both benchmarks measure with: their settings from the environment and a rate meter.

use std::time::{Duration, Instant};

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
