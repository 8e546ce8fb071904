//! `GET /api/status`: everything the dashboard shows, in one JSON document whose shape the
//! README documents (keys are added, never renamed).

use std::time::SystemTime;

use serde_json::{Value, json};

use super::history::{History, SAMPLE_EVERY, SAMPLES, Sample};
use super::reloads::ReloadLog;
use crate::config::{AuthMode, Config, RouteCompression};
use crate::observe::metrics::Registry;
use crate::route::stack::Generation;

/// Version of the document's shape, raised only if a key ever had to change meaning.
const SCHEMA: u64 = 1;

/// What the config says of one route, kept with each loaded generation.
#[derive(Clone, Debug)]
pub(crate) struct RouteSummary {
    name: String,
    path: String,
    /// `None`: any method.
    methods: Option<Vec<String>>,
    upstream: String,
    auth: &'static str,
    roles: Vec<String>,
    rate_limit: bool,
    cache: bool,
    cors: bool,
    access: bool,
    compression: bool,
}

impl RouteSummary {
    /// The routes of a config, in its order, with the layers each one gets (a route without
    /// its own CORS or access table inherits the gateway-wide one, as the stack does).
    pub(crate) fn of_config(config: &Config) -> Vec<Self> {
        config
            .routes
            .iter()
            .map(|route| Self {
                name: route.display_name().to_owned(),
                path: route.path.get_ref().clone(),
                methods: route
                    .methods
                    .as_ref()
                    .map(|methods| methods.iter().map(ToString::to_string).collect()),
                upstream: route.upstream.get_ref().clone(),
                auth: match route.auth.get_ref() {
                    AuthMode::Required => "required",
                    AuthMode::Optional => "optional",
                    AuthMode::None => "none",
                },
                roles: route.roles.clone(),
                rate_limit: route.rate_limit.is_some(),
                cache: route.cache.is_some(),
                cors: route.cors.is_some() || config.cors.is_some(),
                access: route.access.is_some() || config.access.is_some(),
                compression: match route.compression.as_ref().map(|c| c.get_ref()) {
                    None => config.compression.is_some(),
                    Some(RouteCompression::Enabled(on)) => *on,
                    Some(RouteCompression::Settings(_)) => true,
                },
            })
            .collect()
    }
}

/// The sources of one status document.
pub(crate) struct Status<'a> {
    /// The loaded config's version.
    pub(crate) version: u64,
    /// When it was loaded.
    pub(crate) loaded_at: SystemTime,
    /// Its routes.
    pub(crate) routes: &'a [RouteSummary],
    /// What was built from it.
    pub(crate) generation: &'a Generation,
    /// The process's counters.
    pub(crate) registry: &'a Registry,
    /// The sampled five minutes.
    pub(crate) history: &'a History,
    /// The last reloads.
    pub(crate) reloads: &'a ReloadLog,
}

fn unix_ms(at: SystemTime) -> u64 {
    at.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |since| {
            u64::try_from(since.as_millis()).unwrap_or(u64::MAX)
        })
}

/// A float for JSON: `null` for NaN (no request in the interval), rounded to what a chart
/// can show.
fn number(value: f32) -> Value {
    if value.is_finite() {
        json!((f64::from(value) * 1000.0).round() / 1000.0)
    } else {
        Value::Null
    }
}

impl Status<'_> {
    /// The whole document.
    pub(crate) fn to_json(&self) -> Value {
        json!({
            "schema": SCHEMA,
            "generated_at_unix_ms": unix_ms(SystemTime::now()),
            "history": {
                "interval_seconds": SAMPLE_EVERY.as_secs(),
                "samples": SAMPLES,
            },
            "config": self.config(),
            "routes": self.routes(),
            "upstreams": self.upstreams(),
            "auth_failures": self.auth_failures(),
            "redis": self.redis(),
        })
    }

    fn config(&self) -> Value {
        let reloads: Vec<Value> = self
            .reloads
            .newest_first()
            .into_iter()
            .map(|reload| {
                json!({
                    "at_unix_ms": reload.at.map_or(0, unix_ms),
                    "result": if reload.error.is_none() { "success" } else { "failure" },
                    "version": reload.version,
                    "error": reload.error,
                })
            })
            .collect();
        json!({
            "version": self.version,
            "loaded_at_unix_ms": unix_ms(self.loaded_at),
            "reloads": reloads,
        })
    }

    fn routes(&self) -> Vec<Value> {
        let metrics = self.registry.routes();
        self.routes
            .iter()
            .map(|route| {
                let counters = metrics
                    .iter()
                    .find(|m| m.name() == route.name && m.upstream() == route.upstream);
                let statuses = counters.map(|m| m.status_classes()).unwrap_or_default();
                let rate_limit = route.rate_limit.then(|| {
                    let decisions = counters.map(|m| m.decisions()).unwrap_or_default();
                    let sum = |labels: &[&str]| -> u64 {
                        decisions
                            .iter()
                            .filter(|(label, _)| labels.contains(label))
                            .map(|(_, count)| count)
                            .sum()
                    };
                    let by_label: serde_json::Map<String, Value> = decisions
                        .iter()
                        .map(|(label, count)| ((*label).to_owned(), json!(count)))
                        .collect();
                    json!({
                        "allowed": sum(&["allowed", "local_allowed", "fail_open"]),
                        "limited": sum(&["limited", "local_limited", "fail_closed"]),
                        "decisions": by_label,
                    })
                });
                let history = self.history.of(&route.name);
                let current = history.samples.last().copied().unwrap_or(Sample {
                    p50_ms: f32::NAN,
                    p99_ms: f32::NAN,
                    ..Sample::default()
                });
                let series = |pick: fn(&Sample) -> Value| -> Vec<Value> {
                    history.samples.iter().map(pick).collect()
                };
                let class = |index: usize| -> Vec<u32> {
                    history.samples.iter().map(|s| s.statuses[index]).collect()
                };
                json!({
                    "name": route.name,
                    "path": route.path,
                    "methods": route.methods,
                    "upstream": route.upstream,
                    "layers": {
                        "auth": route.auth,
                        "roles": route.roles,
                        "rate_limit": route.rate_limit,
                        "cache": route.cache,
                        "cors": route.cors,
                        "access": route.access,
                        "compression": route.compression,
                    },
                    "requests": {
                        "total": statuses.iter().sum::<u64>(),
                        "1xx": statuses[0], "2xx": statuses[1], "3xx": statuses[2],
                        "4xx": statuses[3], "5xx": statuses[4],
                    },
                    "current": {
                        "requests_per_second": number(current.requests_per_second),
                        "p50_ms": number(current.p50_ms),
                        "p99_ms": number(current.p99_ms),
                    },
                    "history": {
                        "newest_at_unix_ms": history.newest_at.map(unix_ms),
                        "requests_per_second": series(|s| number(s.requests_per_second)),
                        "p50_ms": series(|s| number(s.p50_ms)),
                        "p99_ms": series(|s| number(s.p99_ms)),
                        "status": {
                            "1xx": class(0), "2xx": class(1), "3xx": class(2),
                            "4xx": class(3), "5xx": class(4),
                        },
                    },
                    "rate_limit": rate_limit,
                })
            })
            .collect()
    }

    fn upstreams(&self) -> Vec<Value> {
        self.generation
            .upstreams()
            .map(|(name, proxy, breaker)| {
                let upstream = proxy.upstream();
                let targets: Vec<Value> = upstream
                    .targets()
                    .map(|target| {
                        // What the gateway last saw go wrong: a failed probe, else the
                        // refused connections that ejected it.
                        let last_error = match target.last_probe {
                            Some(probe) if !probe.passed() => Some(probe.to_string()),
                            _ if target.ejected => {
                                Some("ejected after a refused connection".to_owned())
                            }
                            _ => None,
                        };
                        json!({
                            "url": target.url.to_string(),
                            "address": target.address.map(|a| a.to_string()),
                            "health": target.health.as_str(),
                            "healthy": target.is_usable(),
                            "ejected": target.ejected,
                            "in_flight": target.in_flight,
                            "weight": target.weight,
                            "last_probe": target.last_probe.map(|p| p.to_string()),
                            "last_error": last_error,
                        })
                    })
                    .collect();
                json!({
                    "name": name,
                    "available": upstream.is_available(),
                    "circuit_breaker": breaker.map(|b| b.state().as_str()),
                    "targets": targets,
                })
            })
            .collect()
    }

    fn auth_failures(&self) -> Value {
        let reasons: serde_json::Map<String, Value> = self
            .registry
            .auth_failures()
            .into_iter()
            .map(|(reason, count)| (reason.to_owned(), json!(count)))
            .collect();
        Value::Object(reasons)
    }

    fn redis(&self) -> Value {
        let errors = self.generation.ratelimit_backend_errors();
        match self.generation.redis_state() {
            Some((connected, required)) => json!({
                "configured": true,
                "connected": connected,
                "required": required,
                "backend_errors": errors,
            }),
            None => json!({
                "configured": false,
                "connected": false,
                "required": false,
                "backend_errors": errors,
            }),
        }
    }
}
