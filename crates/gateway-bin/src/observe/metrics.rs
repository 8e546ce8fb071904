//! Prometheus metrics: lock-free counters and histograms recorded per request, rendered as
//! text on the admin listener's `/metrics`.
//!
//! Label values come from config names (routes, upstreams) and small fixed sets (methods,
//! status codes, decisions), never from raw request data, so cardinality stays bounded.

use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use dashmap::DashMap;
use http::Method;

/// Upper bounds of the duration histograms' buckets, in seconds.
pub(crate) const BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Methods with their own label value; others count as `OTHER`.
const METHODS: [Method; 9] = [
    Method::GET,
    Method::HEAD,
    Method::POST,
    Method::PUT,
    Method::DELETE,
    Method::PATCH,
    Method::OPTIONS,
    Method::CONNECT,
    Method::TRACE,
];
const METHOD_SLOTS: usize = METHODS.len() + 1;
const STATUS_SLOTS: usize = 500; // 100..=599

fn method_slot(method: &Method) -> usize {
    METHODS
        .iter()
        .position(|m| m == method)
        .unwrap_or(METHODS.len())
}

fn method_label(slot: usize) -> &'static str {
    METHODS.get(slot).map_or("OTHER", Method::as_str)
}

/// A duration histogram with fixed buckets.
#[derive(Debug, Default)]
pub(crate) struct Histogram {
    buckets: [AtomicU64; BUCKETS.len()],
    count: AtomicU64,
    sum_micros: AtomicU64,
}

impl Histogram {
    /// Records one observation.
    pub(crate) fn observe(&self, elapsed: Duration) {
        let seconds = elapsed.as_secs_f64();
        if let Some(bucket) = BUCKETS.iter().position(|&le| seconds <= le) {
            self.buckets[bucket].fetch_add(1, Ordering::Relaxed);
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_micros.fetch_add(
            u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
    }

    /// Each bucket's own count (not cumulative), and last the observations above the largest
    /// bound: read at sampling time, never on the request path.
    pub(crate) fn counts(&self) -> [u64; BUCKETS.len() + 1] {
        let mut counts = [0; BUCKETS.len() + 1];
        for (count, bucket) in counts.iter_mut().zip(&self.buckets) {
            *count = bucket.load(Ordering::Relaxed);
        }
        let total = self.count.load(Ordering::Relaxed);
        let within: u64 = counts[..BUCKETS.len()].iter().sum();
        counts[BUCKETS.len()] = total.saturating_sub(within);
        counts
    }

    fn render(&self, out: &mut String, name: &str, labels: &str) {
        let mut cumulative = 0;
        for (le, bucket) in BUCKETS.iter().zip(&self.buckets) {
            cumulative += bucket.load(Ordering::Relaxed);
            let _ = writeln!(out, "{name}_bucket{{{labels},le=\"{le}\"}} {cumulative}");
        }
        let count = self.count.load(Ordering::Relaxed);
        let _ = writeln!(out, "{name}_bucket{{{labels},le=\"+Inf\"}} {count}");
        let sum = self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
        let _ = writeln!(out, "{name}_sum{{{labels}}} {sum}");
        let _ = writeln!(out, "{name}_count{{{labels}}} {count}");
    }
}

/// The `decision` label values of `gateway_ratelimit_decisions_total`, as the rate-limit
/// layer names its decisions.
pub(crate) const DECISIONS: [&str; 6] = [
    "allowed",
    "limited",
    "fail_open",
    "fail_closed",
    "local_allowed",
    "local_limited",
];

/// Authentication failures by reason (shared by every route's metrics).
#[derive(Debug, Default)]
pub(crate) struct AuthFailures(DashMap<&'static str, AtomicU64>);

impl AuthFailures {
    fn record(&self, reason: &'static str) {
        if let Some(counter) = self.0.get(reason) {
            counter.fetch_add(1, Ordering::Relaxed);
            return;
        }
        self.0
            .entry(reason)
            .or_default()
            .fetch_add(1, Ordering::Relaxed);
    }
}

/// The metrics of one route.
#[derive(Debug)]
pub(crate) struct RouteMetrics {
    auth_failures: Arc<AuthFailures>,
    name: Arc<str>,
    upstream: Arc<str>,
    log_name: Box<str>,
    log_upstream: Box<str>,
    requests: Box<[AtomicU64]>,
    duration: Histogram,
    decisions: [AtomicU64; DECISIONS.len()],
    /// Requests the access lists refused.
    access_denied: AtomicU64,
    /// Preflights the CORS policy refused.
    cors_rejected: AtomicU64,
    /// The route's cache results (the layer counts into them; kept across reloads).
    cache: Arc<gateway_cache::CacheCounters>,
}

impl RouteMetrics {
    fn new(name: Arc<str>, upstream: Arc<str>, auth_failures: Arc<AuthFailures>) -> Self {
        Self {
            auth_failures,
            log_name: crate::observe::access_log::escape(&name),
            log_upstream: crate::observe::access_log::escape(&upstream),
            name,
            upstream,
            requests: (0..METHOD_SLOTS * STATUS_SLOTS)
                .map(|_| AtomicU64::new(0))
                .collect(),
            duration: Histogram::default(),
            decisions: Default::default(),
            access_denied: AtomicU64::new(0),
            cors_rejected: AtomicU64::new(0),
            cache: Arc::default(),
        }
    }

    /// The counters the route's cache layer counts into.
    pub(crate) fn cache_counters(&self) -> &Arc<gateway_cache::CacheCounters> {
        &self.cache
    }

    /// The route's upstream (empty for the unmatched pseudo-route).
    pub(crate) fn upstream(&self) -> &str {
        &self.upstream
    }

    /// The route's name and upstream, escaped for log lines.
    pub(crate) fn log_names(&self) -> (&str, &str) {
        (&self.log_name, &self.log_upstream)
    }

    /// Counts a finished request.
    pub(crate) fn record(&self, method: &Method, status: u16, elapsed: Duration) {
        let status_slot = usize::from(status.clamp(100, 599) - 100);
        self.requests[method_slot(method) * STATUS_SLOTS + status_slot]
            .fetch_add(1, Ordering::Relaxed);
        self.duration.observe(elapsed);
    }

    /// Counts an authentication failure by reason.
    pub(crate) fn record_auth_failure(&self, reason: &'static str) {
        self.auth_failures.record(reason);
    }

    /// Counts a rate-limit decision by its label (one of [`DECISIONS`]; others are ignored).
    pub(crate) fn record_decision(&self, label: &str) {
        if let Some(slot) = DECISIONS.iter().position(|d| *d == label) {
            self.decisions[slot].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Counts a request the access lists refused.
    pub(crate) fn record_access_denied(&self) {
        self.access_denied.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a preflight the CORS policy refused.
    pub(crate) fn record_cors_rejected(&self) {
        self.cors_rejected.fetch_add(1, Ordering::Relaxed);
    }

    /// The route's name.
    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    /// Requests so far by status class (`[1xx, 2xx, 3xx, 4xx, 5xx]`), every method summed.
    pub(crate) fn status_classes(&self) -> [u64; 5] {
        let mut classes = [0; 5];
        for (slot, counter) in self.requests.iter().enumerate() {
            let count = counter.load(Ordering::Relaxed);
            if count > 0 {
                classes[(slot % STATUS_SLOTS) / 100] += count;
            }
        }
        classes
    }

    /// The request duration histogram.
    pub(crate) fn duration(&self) -> &Histogram {
        &self.duration
    }

    /// The rate-limit decisions so far, by their label.
    pub(crate) fn decisions(&self) -> [(&'static str, u64); DECISIONS.len()] {
        std::array::from_fn(|slot| {
            (
                DECISIONS[slot],
                self.decisions[slot].load(Ordering::Relaxed),
            )
        })
    }
}

/// The metrics of one upstream.
#[derive(Debug, Default)]
pub(crate) struct UpstreamMetrics {
    duration: Histogram,
    /// Response bodies aborted by the upstream's `body_timeout` (the proxy counts them here,
    /// so the total outlives the proxies a reload replaces).
    pub(crate) body_timeouts: Arc<AtomicU64>,
    /// DNS lookups and health probes of the upstream's discovery (kept across rebuilds
    /// the same way).
    pub(crate) discovery: Arc<gateway_proxy::DiscoveryCounters>,
}

impl UpstreamMetrics {
    /// Records the time an upstream took to answer with response headers.
    pub(crate) fn observe(&self, elapsed: Duration) {
        self.duration.observe(elapsed);
    }
}

/// Name of the pseudo-route that counts requests no route matched.
pub(crate) const UNMATCHED_ROUTE: &str = "_unmatched";

/// Every metric of the process. Routes and upstreams are keyed by name, so their series
/// survive a config reload.
///
/// Route and upstream metrics live as long as the process (a series, once exported, stays):
/// they are leaked on creation, so a request holds a plain `&'static` to them instead of
/// bumping a shared reference count.
#[derive(Debug, Default)]
pub(crate) struct Registry {
    routes: DashMap<Arc<str>, &'static RouteMetrics>,
    upstreams: DashMap<Arc<str>, &'static UpstreamMetrics>,
    auth_failures: Arc<AuthFailures>,
    reloads_ok: AtomicU64,
    reloads_failed: AtomicU64,
}

/// One upstream's circuit breaker at scrape time.
#[derive(Clone, Debug)]
pub(crate) struct Circuit {
    /// The upstream's name.
    pub(crate) upstream: String,
    /// The state as a number: 0 closed, 1 half-open, 2 open.
    pub(crate) state: u8,
    /// Transitions so far, by the state entered.
    pub(crate) transitions: Vec<(&'static str, u64)>,
}

/// Values read at scrape time from their owners.
pub(crate) struct Snapshot<'a> {
    /// `gateway_active_connections`.
    pub(crate) active_connections: i64,
    /// `gateway_released_connections`.
    pub(crate) released_connections: i64,
    /// `gateway_ratelimit_backend_errors_total`.
    pub(crate) ratelimit_backend_errors: u64,
    /// The circuit breakers, by upstream.
    pub(crate) circuits: &'a [Circuit],
    /// `gateway_cache_bytes` (`None`: no `[cache]`).
    pub(crate) cache_bytes: Option<u64>,
    /// `gateway_cache_evictions_total`.
    pub(crate) cache_evictions: u64,
    /// `gateway_upstream_target_healthy`, by upstream and target.
    pub(crate) targets: &'a [TargetHealth],
}

/// Whether one target takes requests, for `gateway_upstream_target_healthy`.
#[derive(Debug)]
pub(crate) struct TargetHealth {
    pub(crate) upstream: String,
    /// The address connected to, or the URL's authority while unresolved.
    pub(crate) target: String,
    pub(crate) healthy: bool,
}

impl Registry {
    /// The metrics of a route (created on first use, kept across reloads).
    pub(crate) fn route(&self, name: &str, upstream: &str) -> &'static RouteMetrics {
        if let Some(existing) = self.routes.get(name)
            && existing.upstream() == upstream
        {
            return *existing;
        }
        let metrics: &'static RouteMetrics = Box::leak(Box::new(RouteMetrics::new(
            name.into(),
            upstream.into(),
            self.auth_failures.clone(),
        )));
        self.routes.insert(name.into(), metrics);
        metrics
    }

    /// The metrics of an upstream (created on first use, kept across reloads).
    pub(crate) fn upstream(&self, name: &str) -> &'static UpstreamMetrics {
        *self
            .upstreams
            .entry(name.into())
            .or_insert_with(|| Box::leak(Box::default()))
    }

    /// The metrics of every route seen so far, the unmatched pseudo-route included.
    pub(crate) fn routes(&self) -> Vec<&'static RouteMetrics> {
        self.routes.iter().map(|route| *route.value()).collect()
    }

    /// Authentication failures so far, by reason, sorted.
    pub(crate) fn auth_failures(&self) -> Vec<(&'static str, u64)> {
        let mut failures: Vec<(&'static str, u64)> = self
            .auth_failures
            .0
            .iter()
            .map(|f| (*f.key(), f.value().load(Ordering::Relaxed)))
            .collect();
        failures.sort_unstable();
        failures
    }

    /// Counts a config reload.
    pub(crate) fn reload(&self, ok: bool) {
        let counter = if ok {
            &self.reloads_ok
        } else {
            &self.reloads_failed
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Renders every metric in the Prometheus text format.
    pub(crate) fn render(&self, snapshot: &Snapshot<'_>) -> String {
        let mut out = String::with_capacity(16 << 10);
        let mut routes: Vec<&RouteMetrics> = self.routes.iter().map(|r| *r.value()).collect();
        routes.sort_by(|a, b| a.name.cmp(&b.name));

        out.push_str("# HELP gateway_requests_total Requests served, by route, method and status.\n# TYPE gateway_requests_total counter\n");
        for route in &routes {
            for (slot, counter) in route.requests.iter().enumerate() {
                let count = counter.load(Ordering::Relaxed);
                if count > 0 {
                    let method = method_label(slot / STATUS_SLOTS);
                    let status = slot % STATUS_SLOTS + 100;
                    let _ = writeln!(
                        out,
                        "gateway_requests_total{{route=\"{}\",method=\"{method}\",status=\"{status}\"}} {count}",
                        escape(&route.name)
                    );
                }
            }
        }
        out.push_str("# HELP gateway_request_duration_seconds Time from request to the end of the response body, by route.\n# TYPE gateway_request_duration_seconds histogram\n");
        for route in &routes {
            route.duration.render(
                &mut out,
                "gateway_request_duration_seconds",
                &format!("route=\"{}\"", escape(&route.name)),
            );
        }
        self.render_upstreams(&mut out, snapshot);
        self.render_process(&mut out, snapshot, &routes);
        out
    }

    /// The upstream histograms and counters, and the targets' health.
    fn render_upstreams(&self, out: &mut String, snapshot: &Snapshot<'_>) {
        let mut upstreams: Vec<(Arc<str>, &UpstreamMetrics)> = self
            .upstreams
            .iter()
            .map(|u| (u.key().clone(), *u.value()))
            .collect();
        upstreams.sort_by(|a, b| a.0.cmp(&b.0));
        out.push_str("# HELP gateway_upstream_duration_seconds Time until the upstream's response headers, by upstream.\n# TYPE gateway_upstream_duration_seconds histogram\n");
        for (name, upstream) in &upstreams {
            upstream.duration.render(
                out,
                "gateway_upstream_duration_seconds",
                &format!("upstream=\"{}\"", escape(name)),
            );
        }
        out.push_str("# HELP gateway_upstream_body_timeouts_total Response bodies aborted after the upstream sent nothing for its body_timeout, by upstream.\n# TYPE gateway_upstream_body_timeouts_total counter\n");
        for (name, upstream) in &upstreams {
            let _ = writeln!(
                out,
                "gateway_upstream_body_timeouts_total{{upstream=\"{}\"}} {}",
                escape(name),
                upstream.body_timeouts.load(Ordering::Relaxed)
            );
        }
        out.push_str("# HELP gateway_dns_resolutions_total Lookups of upstream hostnames and SRV names, by upstream and result (ok, empty: no address, error: no answer; both keep the last targets).\n# TYPE gateway_dns_resolutions_total counter\n");
        for (name, upstream) in &upstreams {
            let counters = &upstream.discovery;
            for (result, count) in [
                ("ok", counters.resolutions_ok()),
                ("empty", counters.resolutions_empty()),
                ("error", counters.resolutions_failed()),
            ] {
                let _ = writeln!(
                    out,
                    "gateway_dns_resolutions_total{{upstream=\"{}\",result=\"{result}\"}} {count}",
                    escape(name),
                );
            }
        }
        out.push_str("# HELP gateway_health_checks_total Active health probes, by upstream and result (pass, fail).\n# TYPE gateway_health_checks_total counter\n");
        for (name, upstream) in &upstreams {
            let counters = &upstream.discovery;
            for (result, count) in [
                ("pass", counters.probes_passed()),
                ("fail", counters.probes_failed()),
            ] {
                let _ = writeln!(
                    out,
                    "gateway_health_checks_total{{upstream=\"{}\",result=\"{result}\"}} {count}",
                    escape(name),
                );
            }
        }
        out.push_str("# HELP gateway_upstream_target_healthy 1 when a target (an address of a resolved name) takes requests, 0 when it fails its health checks or is ejected.\n# TYPE gateway_upstream_target_healthy gauge\n");
        for target in snapshot.targets {
            let _ = writeln!(
                out,
                "gateway_upstream_target_healthy{{upstream=\"{}\",target=\"{}\"}} {}",
                escape(&target.upstream),
                escape(&target.target),
                u8::from(target.healthy)
            );
        }
    }

    /// Gauges and counters of the process, and the layers' decisions by route.
    fn render_process(&self, out: &mut String, snapshot: &Snapshot<'_>, routes: &[&RouteMetrics]) {
        let _ = writeln!(
            out,
            "# HELP gateway_active_connections Open client connections.\n# TYPE gateway_active_connections gauge\ngateway_active_connections {}",
            snapshot.active_connections
        );
        let _ = writeln!(
            out,
            "# HELP gateway_released_connections Idle HTTP/1.1 keep-alive client connections that gave their request buffers back.\n# TYPE gateway_released_connections gauge\ngateway_released_connections {}",
            snapshot.released_connections
        );
        let _ = writeln!(
            out,
            "# HELP gateway_access_log_dropped_total Access log lines dropped because the log writer fell behind.\n# TYPE gateway_access_log_dropped_total counter\ngateway_access_log_dropped_total {}",
            crate::observe::access_log::dropped()
        );
        out.push_str("# HELP gateway_ratelimit_decisions_total Rate-limit decisions, by route.\n# TYPE gateway_ratelimit_decisions_total counter\n");
        for route in routes {
            for (label, counter) in DECISIONS.iter().zip(&route.decisions) {
                let count = counter.load(Ordering::Relaxed);
                if count > 0 {
                    let _ = writeln!(
                        out,
                        "gateway_ratelimit_decisions_total{{route=\"{}\",decision=\"{label}\"}} {count}",
                        escape(&route.name)
                    );
                }
            }
        }
        for (name, help, count) in [
            (
                "gateway_access_denied_total",
                "Requests refused by the access lists, by route.",
                (|route: &RouteMetrics| route.access_denied.load(Ordering::Relaxed))
                    as fn(&RouteMetrics) -> u64,
            ),
            (
                "gateway_cors_rejected_total",
                "Preflights refused by the CORS policy, by route.",
                |route: &RouteMetrics| route.cors_rejected.load(Ordering::Relaxed),
            ),
        ] {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
            for route in routes {
                let count = count(route);
                if count > 0 {
                    let _ = writeln!(out, "{name}{{route=\"{}\"}} {count}", escape(&route.name));
                }
            }
        }
        let _ = writeln!(
            out,
            "# HELP gateway_ratelimit_backend_errors_total Failed calls to the rate-limit store.\n# TYPE gateway_ratelimit_backend_errors_total counter\ngateway_ratelimit_backend_errors_total {}",
            snapshot.ratelimit_backend_errors
        );
        out.push_str("# HELP gateway_auth_failures_total Rejected authentications, by reason.\n# TYPE gateway_auth_failures_total counter\n");
        for (reason, count) in self.auth_failures() {
            let _ = writeln!(
                out,
                "gateway_auth_failures_total{{reason=\"{reason}\"}} {count}"
            );
        }
        out.push_str("# HELP gateway_circuit_state Circuit breaker state by upstream: 0 closed, 1 half-open, 2 open.\n# TYPE gateway_circuit_state gauge\n");
        for circuit in snapshot.circuits {
            let _ = writeln!(
                out,
                "gateway_circuit_state{{upstream=\"{}\"}} {}",
                escape(&circuit.upstream),
                circuit.state
            );
        }
        out.push_str("# HELP gateway_circuit_transitions_total Circuit breaker transitions, by upstream and new state.\n# TYPE gateway_circuit_transitions_total counter\n");
        for circuit in snapshot.circuits {
            for (to, count) in &circuit.transitions {
                let upstream = escape(&circuit.upstream);
                let _ = writeln!(
                    out,
                    "gateway_circuit_transitions_total{{upstream=\"{upstream}\",to=\"{to}\"}} {count}"
                );
            }
        }
        self.render_cache(out, snapshot, routes);
        let _ = writeln!(
            out,
            "# HELP gateway_config_reloads_total Config reloads, by result.\n# TYPE gateway_config_reloads_total counter\ngateway_config_reloads_total{{result=\"success\"}} {}\ngateway_config_reloads_total{{result=\"failure\"}} {}",
            self.reloads_ok.load(Ordering::Relaxed),
            self.reloads_failed.load(Ordering::Relaxed)
        );
    }
}

impl Registry {
    /// The response cache's results by route, its size and its evictions.
    fn render_cache(&self, out: &mut String, snapshot: &Snapshot<'_>, routes: &[&RouteMetrics]) {
        out.push_str("# HELP gateway_cache_requests_total Requests on routes with a cache, by route and result.\n# TYPE gateway_cache_requests_total counter\n");
        for route in routes {
            for result in gateway_cache::CacheResult::ALL {
                let count = route.cache.get(result);
                if count > 0 {
                    let _ = writeln!(
                        out,
                        "gateway_cache_requests_total{{route=\"{}\",result=\"{}\"}} {count}",
                        escape(&route.name),
                        result.as_str()
                    );
                }
            }
        }
        if let Some(bytes) = snapshot.cache_bytes {
            let _ = writeln!(
                out,
                "# HELP gateway_cache_bytes Bytes held by the response store.\n# TYPE gateway_cache_bytes gauge\ngateway_cache_bytes {bytes}"
            );
        }
        let _ = writeln!(
            out,
            "# HELP gateway_cache_evictions_total Responses evicted from the store for room.\n# TYPE gateway_cache_evictions_total counter\ngateway_cache_evictions_total {}",
            snapshot.cache_evictions
        );
    }
}

/// Escapes a label value (backslash, quote, newline).
fn escape(value: &str) -> std::borrow::Cow<'_, str> {
    if value.contains(['\\', '"', '\n']) {
        value
            .replace('\\', "\\\\")
            .replace('"', "\\\"")
            .replace('\n', "\\n")
            .into()
    } else {
        value.into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn empty() -> Snapshot<'static> {
        Snapshot {
            active_connections: 0,
            released_connections: 0,
            ratelimit_backend_errors: 0,
            circuits: &[],
            targets: &[],
            cache_bytes: None,
            cache_evictions: 0,
        }
    }

    #[test]
    fn counts_are_exact_and_labelled_by_config_names() {
        let registry = Registry::default();
        let route = registry.route("users", "users-svc");
        route.record(&Method::GET, 200, Duration::from_millis(3));
        route.record(&Method::GET, 200, Duration::from_millis(30));
        route.record(
            &Method::from_bytes(b"PURGE").unwrap(),
            404,
            Duration::from_millis(1),
        );
        let text = registry.render(&empty());
        assert!(
            text.contains(
                "gateway_requests_total{route=\"users\",method=\"GET\",status=\"200\"} 2\n"
            ),
            "{text}"
        );
        assert!(
            text.contains(
                "gateway_requests_total{route=\"users\",method=\"OTHER\",status=\"404\"} 1\n"
            ),
            "{text}"
        );
        assert!(
            text.contains(
                "gateway_request_duration_seconds_bucket{route=\"users\",le=\"0.005\"} 2\n"
            ),
            "{text}"
        );
        assert!(
            text.contains("gateway_request_duration_seconds_count{route=\"users\"} 3\n"),
            "{text}"
        );
    }

    #[test]
    fn route_series_survive_a_rebuild_with_the_same_name() {
        let registry = Registry::default();
        let first = registry.route("r", "u");
        assert!(std::ptr::eq(first, registry.route("r", "u")));
        assert!(!std::ptr::eq(first, registry.route("r", "other")));
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape("a\"b\\c"), "a\\\"b\\\\c");
    }
}
