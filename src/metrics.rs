//! Prometheus metrics: request counts and latencies by route, token checks,
//! authentication failures by reason, open connections and connections the server
//! closed by reason. Rendered in the text exposition format. Every label takes its
//! values from a fixed set, so no client can grow the number of series.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

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

/// Counters of one (method, route): atomics only, so recording a request takes no
/// lock and allocates nothing once the route has been seen.
#[derive(Debug)]
struct RouteStats {
    count: AtomicU64,
    sum_us: AtomicU64,
    /// Requests that fell in each bucket (not cumulative; summed when rendered),
    /// the last slot for those slower than every bound.
    buckets: [AtomicU64; BUCKETS_MS.len() + 1],
    /// Indexed by status - 100.
    by_status: Box<[AtomicU64; 500]>,
}

impl Default for RouteStats {
    fn default() -> Self {
        RouteStats {
            count: AtomicU64::new(0),
            sum_us: AtomicU64::new(0),
            buckets: Default::default(),
            by_status: Box::new(std::array::from_fn(|_| AtomicU64::new(0))),
        }
    }
}

type RouteKey = (&'static str, String);

/// route → method → counters.
type RouteTable = HashMap<String, Vec<(&'static str, Arc<RouteStats>)>>;

/// The `method` label: the standard methods by name, anything else (a client may send
/// any token as a method) as `OTHER`.
pub fn method_label(method: &str) -> &'static str {
    const KNOWN: [&str; 7] = ["GET", "HEAD", "PUT", "POST", "DELETE", "PATCH", "OPTIONS"];
    KNOWN
        .into_iter()
        .find(|known| *known == method)
        .unwrap_or("OTHER")
}

/// Why the server closed a connection (the `reason` label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectionClosed {
    /// No complete request headers within `header_read_timeout`.
    HeaderTimeout,
    /// Idle keep-alive connection past `idle_timeout`.
    IdleTimeout,
    /// The client stopped reading a response for `idle_timeout`.
    WriteStalled,
    /// Closed while draining at shutdown: idle, or cut at the shutdown deadline.
    Shutdown,
}

impl ConnectionClosed {
    const ALL: [ConnectionClosed; 4] = [
        ConnectionClosed::HeaderTimeout,
        ConnectionClosed::IdleTimeout,
        ConnectionClosed::WriteStalled,
        ConnectionClosed::Shutdown,
    ];

    pub fn label(self) -> &'static str {
        match self {
            ConnectionClosed::HeaderTimeout => "header_timeout",
            ConnectionClosed::IdleTimeout => "idle_timeout",
            ConnectionClosed::WriteStalled => "write_stalled",
            ConnectionClosed::Shutdown => "shutdown",
        }
    }
}

/// What happened to one request to an uplink (the `result` label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UplinkResult {
    Ok,
    NotModified,
    NotFound,
    /// Timeout, refused connection, dropped connection, 5xx or any other failure.
    Error,
}

impl UplinkResult {
    const ALL: [UplinkResult; 4] = [
        UplinkResult::Ok,
        UplinkResult::NotModified,
        UplinkResult::NotFound,
        UplinkResult::Error,
    ];

    pub fn label(self) -> &'static str {
        match self {
            UplinkResult::Ok => "ok",
            UplinkResult::NotModified => "not_modified",
            UplinkResult::NotFound => "not_found",
            UplinkResult::Error => "error",
        }
    }
}

/// Counters of one uplink (names come from the configuration, a fixed set).
#[derive(Debug, Default)]
pub struct UplinkStats {
    requests: [AtomicU64; UplinkResult::ALL.len()],
    latency_us: AtomicU64,
    pub hits: Counter,
    pub misses: Counter,
    pub stale_serves: Counter,
    pub integrity_refused: Counter,
    pub held_back: Counter,
}

impl UplinkStats {
    pub fn request(&self, result: UplinkResult, elapsed: Duration) {
        self.requests[result as usize].fetch_add(1, Ordering::Relaxed);
        self.latency_us
            .fetch_add(elapsed.as_micros() as u64, Ordering::Relaxed);
    }

    pub fn requests(&self, result: UplinkResult) -> u64 {
        self.requests[result as usize].load(Ordering::Relaxed)
    }
}

/// All metrics of one process.
#[derive(Debug, Default)]
pub struct Metrics {
    pub token_checks: Counter,
    /// Per configured uplink, in configuration order.
    uplinks: RwLock<Vec<(String, Arc<UplinkStats>)>>,
    auth_failures: Mutex<BTreeMap<&'static str, u64>>,
    routes: RwLock<RouteTable>,
    open_connections: AtomicU64,
    closed_connections: [AtomicU64; ConnectionClosed::ALL.len()],
}

impl Metrics {
    /// The counters of uplink `name` (registered on first use; names come from the
    /// configuration only).
    pub fn uplink(&self, name: &str) -> Arc<UplinkStats> {
        if let Some((_, s)) = self
            .uplinks
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .find(|(n, _)| n == name)
        {
            return s.clone();
        }
        let mut all = self.uplinks.write().unwrap_or_else(|p| p.into_inner());
        if let Some((_, s)) = all.iter().find(|(n, _)| n == name) {
            return s.clone();
        }
        let s = Arc::new(UplinkStats::default());
        all.push((name.to_owned(), s.clone()));
        s
    }

    fn render_uplinks(&self, out: &mut String) {
        let all = self.uplinks.read().unwrap_or_else(|p| p.into_inner());
        if all.is_empty() {
            return;
        }
        let _ = writeln!(out, "# TYPE tessera_uplink_requests_total counter");
        for (name, s) in all.iter() {
            for r in UplinkResult::ALL {
                let _ = writeln!(
                    out,
                    "tessera_uplink_requests_total{{uplink=\"{name}\",result=\"{}\"}} {}",
                    r.label(),
                    s.requests(r)
                );
            }
        }
        let _ = writeln!(out, "# TYPE tessera_uplink_request_seconds summary");
        for (name, s) in all.iter() {
            let count: u64 = UplinkResult::ALL.iter().map(|r| s.requests(*r)).sum();
            let _ = writeln!(
                out,
                "tessera_uplink_request_seconds_sum{{uplink=\"{name}\"}} {}",
                s.latency_us.load(Ordering::Relaxed) as f64 / 1_000_000.0
            );
            let _ = writeln!(
                out,
                "tessera_uplink_request_seconds_count{{uplink=\"{name}\"}} {count}"
            );
        }
        let _ = writeln!(out, "# TYPE tessera_uplink_cache_total counter");
        for (name, s) in all.iter() {
            for (label, c) in [
                ("hit", &s.hits),
                ("miss", &s.misses),
                ("stale", &s.stale_serves),
            ] {
                let _ = writeln!(
                    out,
                    "tessera_uplink_cache_total{{uplink=\"{name}\",result=\"{label}\"}} {}",
                    c.get()
                );
            }
        }
        let _ = writeln!(out, "# TYPE tessera_uplink_integrity_refused_total counter");
        for (name, s) in all.iter() {
            let _ = writeln!(
                out,
                "tessera_uplink_integrity_refused_total{{uplink=\"{name}\"}} {}",
                s.integrity_refused.get()
            );
        }
        let _ = writeln!(
            out,
            "# TYPE tessera_uplink_held_back_versions_total counter"
        );
        for (name, s) in all.iter() {
            let _ = writeln!(
                out,
                "tessera_uplink_held_back_versions_total{{uplink=\"{name}\"}} {}",
                s.held_back.get()
            );
        }
    }

    pub fn auth_failure(&self, reason: &'static str) {
        *self
            .auth_failures
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(reason)
            .or_default() += 1;
    }

    pub fn connection_opened(&self) {
        self.open_connections.fetch_add(1, Ordering::Relaxed);
    }

    /// A connection ended; `closed_by` says why when the server closed it.
    pub fn connection_ended(&self, closed_by: Option<ConnectionClosed>) {
        self.open_connections.fetch_sub(1, Ordering::Relaxed);
        if let Some(reason) = closed_by {
            self.closed_connections[reason as usize].fetch_add(1, Ordering::Relaxed);
        }
    }

    fn stats(&self, method: &'static str, route: &str) -> Arc<RouteStats> {
        {
            let routes = self.routes.read().unwrap_or_else(|p| p.into_inner());
            if let Some((_, s)) = routes
                .get(route)
                .and_then(|ms| ms.iter().find(|(m, _)| *m == method))
            {
                return s.clone();
            }
        }
        let mut routes = self.routes.write().unwrap_or_else(|p| p.into_inner());
        let methods = routes.entry(route.to_owned()).or_default();
        if let Some((_, s)) = methods.iter().find(|(m, _)| *m == method) {
            return s.clone();
        }
        let s = Arc::new(RouteStats::default());
        methods.push((method, s.clone()));
        s
    }

    pub fn observe(&self, method: &str, route: &str, status: u16, elapsed: Duration) {
        let s = self.stats(method_label(method), route);
        let ms = elapsed.as_secs_f64() * 1000.0;
        s.count.fetch_add(1, Ordering::Relaxed);
        s.sum_us
            .fetch_add(elapsed.as_micros() as u64, Ordering::Relaxed);
        let bucket = BUCKETS_MS
            .iter()
            .position(|b| ms <= *b)
            .unwrap_or(BUCKETS_MS.len());
        s.buckets[bucket].fetch_add(1, Ordering::Relaxed);
        if let Some(n) = s.by_status.get(usize::from(status).wrapping_sub(100)) {
            n.fetch_add(1, Ordering::Relaxed);
        }
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
        let _ = writeln!(out, "# TYPE tessera_open_connections gauge");
        let _ = writeln!(
            out,
            "tessera_open_connections {}",
            self.open_connections.load(Ordering::Relaxed)
        );
        let _ = writeln!(out, "# TYPE tessera_connections_closed_total counter");
        for reason in ConnectionClosed::ALL {
            let _ = writeln!(
                out,
                "tessera_connections_closed_total{{reason=\"{}\"}} {}",
                reason.label(),
                self.closed_connections[reason as usize].load(Ordering::Relaxed)
            );
        }
        let routes: BTreeMap<RouteKey, Arc<RouteStats>> = self
            .routes
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .flat_map(|(route, methods)| {
                methods
                    .iter()
                    .map(|(m, s)| ((*m, route.clone()), s.clone()))
            })
            .collect();
        let _ = writeln!(out, "# TYPE tessera_requests_total counter");
        for ((method, route), s) in &routes {
            for (i, n) in s.by_status.iter().enumerate() {
                let n = n.load(Ordering::Relaxed);
                if n > 0 {
                    let status = i + 100;
                    let _ = writeln!(
                        out,
                        "tessera_requests_total{{method=\"{method}\",route=\"{route}\",status=\"{status}\"}} {n}"
                    );
                }
            }
        }
        let _ = writeln!(out, "# TYPE tessera_request_duration_seconds histogram");
        for ((method, route), s) in &routes {
            let labels = format!("method=\"{method}\",route=\"{route}\"");
            let mut cumulative = 0;
            for (i, b) in BUCKETS_MS.iter().enumerate() {
                cumulative += s.buckets[i].load(Ordering::Relaxed);
                let _ = writeln!(
                    out,
                    "tessera_request_duration_seconds_bucket{{{labels},le=\"{}\"}} {cumulative}",
                    b / 1000.0
                );
            }
            let count = s.count.load(Ordering::Relaxed);
            let _ = writeln!(
                out,
                "tessera_request_duration_seconds_bucket{{{labels},le=\"+Inf\"}} {count}"
            );
            let _ = writeln!(
                out,
                "tessera_request_duration_seconds_sum{{{labels}}} {}",
                s.sum_us.load(Ordering::Relaxed) as f64 / 1_000_000.0
            );
            let _ = writeln!(
                out,
                "tessera_request_duration_seconds_count{{{labels}}} {count}"
            );
        }
        self.render_uplinks(&mut out);
        out
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    #[test]
    fn histogram_buckets_are_cumulative() {
        let m = super::Metrics::default();
        m.observe("GET", "/{*path}", 200, Duration::from_micros(500));
        m.observe("GET", "/{*path}", 404, Duration::from_millis(30));
        m.observe("GET", "/{*path}", 200, Duration::from_secs(9));
        let text = m.render();
        let line = |le: &str| {
            format!(
                "tessera_request_duration_seconds_bucket{{method=\"GET\",route=\"/{{*path}}\",le=\"{le}\"}}"
            )
        };
        assert!(text.contains(&format!("{} 1\n", line("0.001"))), "{text}");
        assert!(text.contains(&format!("{} 2\n", line("0.05"))), "{text}");
        assert!(text.contains(&format!("{} 2\n", line("5"))), "{text}");
        assert!(text.contains(&format!("{} 3\n", line("+Inf"))), "{text}");
        assert!(text.contains(
            "tessera_requests_total{method=\"GET\",route=\"/{*path}\",status=\"200\"} 2\n"
        ));
    }

    #[test]
    fn unknown_methods_share_one_label() {
        let m = super::Metrics::default();
        for method in ["BREW", "PROPFIND", "get", "GET"] {
            m.observe(method, "/{*path}", 405, Duration::from_millis(1));
        }
        let text = m.render();
        assert!(
            text.contains(
                "tessera_requests_total{method=\"OTHER\",route=\"/{*path}\",status=\"405\"} 3\n"
            ),
            "{text}"
        );
        assert!(
            !text.contains("BREW") && !text.contains("PROPFIND"),
            "{text}"
        );
    }
}
