//! Prometheus metrics: request counts and latencies by route, token checks,
//! authentication failures by reason, open connections and connections the server
//! closed by reason, kept and rendered (OpenMetrics text) by `prometheus-client`.
//! Every label takes its values from a fixed set, so no client can grow the number
//! of series.

use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// The exposition's content type.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Upper bounds of the request-duration buckets, in seconds.
const BUCKETS_S: [f64; 10] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 5.0];

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

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct Reason {
    reason: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct Request {
    method: &'static str,
    route: String,
    status: u16,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct Route {
    method: &'static str,
    route: String,
}

type DurationFamily = Family<Route, Histogram, fn() -> Histogram>;

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

/// Upper bounds of the uplink request-duration buckets, in seconds.
const UPLINK_BUCKETS_S: [f64; 8] = [0.005, 0.025, 0.1, 0.25, 1.0, 2.5, 10.0, 30.0];

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct Uplink {
    uplink: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct UplinkOutcome {
    uplink: String,
    result: &'static str,
}

type UplinkDurations = Family<Uplink, Histogram, fn() -> Histogram>;

/// The series of one uplink (names come from the configuration, a fixed set); each
/// counter is the registered one, shared.
#[derive(Debug)]
pub struct UplinkStats {
    requests: [Counter; UplinkResult::ALL.len()],
    latency: Histogram,
    pub hits: Counter,
    pub misses: Counter,
    pub stale_serves: Counter,
    pub integrity_refused: Counter,
    pub held_back: Counter,
}

impl UplinkStats {
    pub fn request(&self, result: UplinkResult, elapsed: Duration) {
        self.requests[result as usize].inc();
        self.latency.observe(elapsed.as_secs_f64());
    }

    pub fn requests(&self, result: UplinkResult) -> u64 {
        self.requests[result as usize].get()
    }
}

/// The uplink families, registered once.
#[derive(Debug)]
struct UplinkFamilies {
    requests: Family<UplinkOutcome, Counter>,
    durations: UplinkDurations,
    cache: Family<UplinkOutcome, Counter>,
    integrity_refused: Family<Uplink, Counter>,
    held_back: Family<Uplink, Counter>,
}

/// All metrics of one process.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    pub token_checks: Counter,
    auth_failures: Family<Reason, Counter>,
    open_connections: Gauge,
    closed_connections: Family<Reason, Counter>,
    requests: Family<Request, Counter>,
    durations: DurationFamily,
    uplinks: UplinkFamilies,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::default();
        let token_checks = Counter::default();
        let auth_failures = Family::<Reason, Counter>::default();
        let open_connections = Gauge::default();
        let closed_connections = Family::<Reason, Counter>::default();
        let requests = Family::<Request, Counter>::default();
        let durations: DurationFamily = Family::new_with_constructor(|| Histogram::new(BUCKETS_S));
        // Every reason is shown from the start, at zero.
        for reason in ConnectionClosed::ALL {
            let _ = closed_connections.get_or_create(&Reason {
                reason: reason.label(),
            });
        }
        // Counters are named without `_total`: the library appends it.
        registry.register(
            "tessera_token_checks",
            "Bearer tokens checked",
            token_checks.clone(),
        );
        registry.register(
            "tessera_auth_failures",
            "Refused credentials by reason",
            auth_failures.clone(),
        );
        registry.register(
            "tessera_open_connections",
            "Open client connections",
            open_connections.clone(),
        );
        registry.register(
            "tessera_connections_closed",
            "Connections the server closed, by reason",
            closed_connections.clone(),
        );
        registry.register(
            "tessera_requests",
            "Requests by method, route and status",
            requests.clone(),
        );
        registry.register(
            "tessera_request_duration_seconds",
            "Time to answer a request, by method and route",
            durations.clone(),
        );
        let uplinks = UplinkFamilies {
            requests: Family::default(),
            durations: Family::new_with_constructor(|| Histogram::new(UPLINK_BUCKETS_S)),
            cache: Family::default(),
            integrity_refused: Family::default(),
            held_back: Family::default(),
        };
        registry.register(
            "tessera_uplink_requests",
            "Requests to each uplink by result",
            uplinks.requests.clone(),
        );
        registry.register(
            "tessera_uplink_request_seconds",
            "Time each uplink took to answer",
            uplinks.durations.clone(),
        );
        registry.register(
            "tessera_uplink_cache",
            "Proxied reads by cache result (hit, miss, stale)",
            uplinks.cache.clone(),
        );
        registry.register(
            "tessera_uplink_integrity_refused",
            "Upstream tarballs refused for not matching their integrity",
            uplinks.integrity_refused.clone(),
        );
        registry.register(
            "tessera_uplink_held_back_versions",
            "Proxied versions left out for being younger than the minimum release age",
            uplinks.held_back.clone(),
        );
        Metrics {
            registry,
            uplinks,
            token_checks,
            auth_failures,
            open_connections,
            closed_connections,
            requests,
            durations,
        }
    }
}

impl Metrics {
    /// The series of uplink `name` (names come from the configuration only).
    pub fn uplink(&self, name: &str) -> std::sync::Arc<UplinkStats> {
        let f = &self.uplinks;
        let one = || Uplink {
            uplink: name.to_owned(),
        };
        let outcome = |result: &'static str| UplinkOutcome {
            uplink: name.to_owned(),
            result,
        };
        // One statement per series: `get_or_create` hands out a read guard, and a
        // second call for a new label set needs the family's write lock.
        let requests =
            UplinkResult::ALL.map(|r| f.requests.get_or_create(&outcome(r.label())).clone());
        let latency = f.durations.get_or_create(&one()).clone();
        let hits = f.cache.get_or_create(&outcome("hit")).clone();
        let misses = f.cache.get_or_create(&outcome("miss")).clone();
        let stale_serves = f.cache.get_or_create(&outcome("stale")).clone();
        let integrity_refused = f.integrity_refused.get_or_create(&one()).clone();
        let held_back = f.held_back.get_or_create(&one()).clone();
        std::sync::Arc::new(UplinkStats {
            requests,
            latency,
            hits,
            misses,
            stale_serves,
            integrity_refused,
            held_back,
        })
    }

    pub fn auth_failure(&self, reason: &'static str) {
        self.auth_failures.get_or_create(&Reason { reason }).inc();
    }

    pub fn connection_opened(&self) {
        self.open_connections.inc();
    }

    /// A connection ended; `closed_by` says why when the server closed it.
    pub fn connection_ended(&self, closed_by: Option<ConnectionClosed>) {
        self.open_connections.dec();
        if let Some(reason) = closed_by {
            self.closed_connections
                .get_or_create(&Reason {
                    reason: reason.label(),
                })
                .inc();
        }
    }

    pub fn observe(&self, method: &str, route: &str, status: u16, elapsed: Duration) {
        let method = method_label(method);
        let route = route.to_owned();
        self.durations
            .get_or_create(&Route {
                method,
                route: route.clone(),
            })
            .observe(elapsed.as_secs_f64());
        // A status outside 100..=599 is not an HTTP status; it gets no series.
        if (100..600).contains(&status) {
            self.requests
                .get_or_create(&Request {
                    method,
                    route,
                    status,
                })
                .inc();
        }
    }

    /// The OpenMetrics text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .expect("writing to a String cannot fail");
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
                "tessera_request_duration_seconds_bucket{{le=\"{le}\",method=\"GET\",route=\"/{{*path}}\"}}"
            )
        };
        assert!(text.contains(&format!("{} 1\n", line("0.001"))), "{text}");
        assert!(text.contains(&format!("{} 2\n", line("0.05"))), "{text}");
        assert!(text.contains(&format!("{} 2\n", line("5.0"))), "{text}");
        assert!(text.contains(&format!("{} 3\n", line("+Inf"))), "{text}");
        assert!(text.contains(
            "tessera_requests_total{method=\"GET\",route=\"/{*path}\",status=\"200\"} 2\n"
        ));
    }

    #[test]
    fn an_uplink_gets_every_series_without_waiting_on_itself() {
        let m = super::Metrics::default();
        let stats = m.uplink("up");
        stats.hits.inc();
        stats.request(super::UplinkResult::Ok, Duration::from_millis(3));
        let again = m.uplink("up");
        assert_eq!(again.hits.get(), 1);
        let text = m.render();
        assert!(
            text.contains("tessera_uplink_cache_total{uplink=\"up\",result=\"hit\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("tessera_uplink_requests_total{uplink=\"up\",result=\"ok\"} 1"),
            "{text}"
        );
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
