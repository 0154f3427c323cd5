//! Prometheus metrics: request counts and latencies by route, token checks and
//! authentication failures by reason. Rendered in the text exposition format.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

/// A monotonically increasing counter.
#[derive(Debug, Default)]
pub struct Counter(AtomicU64);

impl Counter {
    pub fn inc(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }

    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

const BUCKETS_MS: [f64; 10] = [
    1.0, 2.5, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 1000.0, 5000.0,
];

#[derive(Debug, Default, Clone)]
struct RouteStats {
    count: u64,
    sum_ms: f64,
    buckets: [u64; 10],
    by_status: BTreeMap<u16, u64>,
}

/// All metrics of one process.
#[derive(Debug, Default)]
pub struct Metrics {
    pub token_checks: Counter,
    auth_failures: Mutex<BTreeMap<&'static str, u64>>,
    routes: Mutex<BTreeMap<(String, String), RouteStats>>,
}

impl Metrics {
    pub fn auth_failure(&self, reason: &'static str) {
        *self
            .auth_failures
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(reason)
            .or_default() += 1;
    }

    pub fn observe(&self, method: &str, route: &str, status: u16, ms: f64) {
        let mut routes = self.routes.lock().unwrap_or_else(|p| p.into_inner());
        let s = routes
            .entry((method.to_owned(), route.to_owned()))
            .or_default();
        s.count += 1;
        s.sum_ms += ms;
        for (i, b) in BUCKETS_MS.iter().enumerate() {
            if ms <= *b {
                s.buckets[i] += 1;
            }
        }
        *s.by_status.entry(status).or_default() += 1;
    }

    /// The text exposition format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "# TYPE tessera_token_checks_total counter");
        let _ = writeln!(
            out,
            "tessera_token_checks_total {}",
            self.token_checks.get()
        );
        let _ = writeln!(out, "# TYPE tessera_auth_failures_total counter");
        for (reason, n) in self
            .auth_failures
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
        {
            let _ = writeln!(
                out,
                "tessera_auth_failures_total{{reason=\"{reason}\"}} {n}"
            );
        }
        let routes = self
            .routes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let _ = writeln!(out, "# TYPE tessera_requests_total counter");
        for ((method, route), s) in &routes {
            for (status, n) in &s.by_status {
                let _ = writeln!(
                    out,
                    "tessera_requests_total{{method=\"{method}\",route=\"{route}\",status=\"{status}\"}} {n}"
                );
            }
        }
        let _ = writeln!(out, "# TYPE tessera_request_duration_seconds histogram");
        for ((method, route), s) in &routes {
            let labels = format!("method=\"{method}\",route=\"{route}\"");
            for (i, b) in BUCKETS_MS.iter().enumerate() {
                let _ = writeln!(
                    out,
                    "tessera_request_duration_seconds_bucket{{{labels},le=\"{}\"}} {}",
                    b / 1000.0,
                    s.buckets[i]
                );
            }
            let _ = writeln!(
                out,
                "tessera_request_duration_seconds_bucket{{{labels},le=\"+Inf\"}} {}",
                s.count
            );
            let _ = writeln!(
                out,
                "tessera_request_duration_seconds_sum{{{labels}}} {}",
                s.sum_ms / 1000.0
            );
            let _ = writeln!(
                out,
                "tessera_request_duration_seconds_count{{{labels}}} {}",
                s.count
            );
        }
        out
    }
}
