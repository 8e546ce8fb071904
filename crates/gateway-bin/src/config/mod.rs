//! The gateway's TOML config: its shape (here), defaults (`defaults`), the loader whose errors
//! name the file, line and field (`load`), and the checks that span sections (`validate`).
//!
//! The section and key names are a contract other tools rely on: they are extended, never
//! renamed. Each layer crate owns the shape of its own section (`[jwt]`, `[redis]`,
//! `[routes.rate_limit]`, `[upstreams.NAME.circuit_breaker]`, the header tables); this module
//! composes them and checks what spans sections (a route's upstream exists, auth needs `[jwt]`).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;

use gateway_core::TrustedProxies;
use gateway_core::config::{ByteSize, HumanDuration};
use http::Method;
use serde::Deserialize;
use toml::Spanned;

mod defaults;
mod load;
#[cfg(test)]
mod tests;
mod validate;

pub use load::ConfigError;

/// `[jwt]`: owned by `gateway-auth`.
pub type JwtSection = gateway_auth::config::JwtConfig;
/// `[redis]`: owned by `gateway-ratelimit`.
pub type RedisSection = gateway_ratelimit::config::RedisConfig;
/// `[routes.rate_limit]`: owned by `gateway-ratelimit`.
pub type RateLimitSection = gateway_ratelimit::config::RateLimitConfig;
/// `[upstreams.NAME.circuit_breaker]`: owned by `gateway-breaker`.
pub type BreakerSection = gateway_breaker::config::BreakerConfig;
/// `[routes.request_headers]` and `[routes.response_headers]`: owned by `gateway-headers`.
pub type HeaderRulesSection = gateway_headers::config::HeaderRulesConfig;
/// `[headers]`: owned by `gateway-headers`.
pub type GlobalHeadersSection = gateway_headers::config::GlobalHeadersConfig;
/// `[cors]` and `[routes.cors]`: owned by `gateway-cors`.
pub type CorsSection = gateway_cors::config::CorsConfig;
/// `[access]` and `[routes.access]`: owned by `gateway-access`.
pub type AccessSection = gateway_access::config::AccessConfig;
/// `[compression]`, and a route's own `[routes.compression]` table: owned by
/// `gateway-compression`.
pub type CompressionSection = gateway_compression::CompressionConfig;
/// `[cache]`: the gateway's response store, owned by `gateway-cache`.
pub type CacheSection = gateway_cache::CacheConfig;
/// `[routes.cache]`: a route's caching, owned by `gateway-cache`.
pub type RouteCacheSection = gateway_cache::config::RouteCacheConfig;
/// A route's `auth` mode: owned by `gateway-auth`.
pub type AuthMode = gateway_auth::config::AuthMode;

/// The whole config file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// `[server]`: the public listener.
    pub server: ServerSection,
    /// `[admin]`: health, readiness and metrics, never on the public port.
    #[serde(default)]
    pub admin: AdminSection,
    /// `[jwt]`: token verification, shared by every route with `auth` set.
    pub jwt: Option<JwtSection>,
    /// `[redis]`: the shared rate-limit store; without it limits are per instance, in memory.
    pub redis: Option<RedisSection>,
    /// `[headers]`: header rules applied on every route, and the request id.
    #[serde(default)]
    pub headers: Option<GlobalHeadersSection>,
    /// `[tracing]`: OpenTelemetry span export (needs the `otlp` cargo feature).
    pub tracing: Option<Spanned<TracingSection>>,
    /// `[cors]`: CORS on every route that has no `[routes.cors]` of its own.
    pub cors: Option<Spanned<CorsSection>>,
    /// `[access]`: IP allow/deny lists on every route that has no `[routes.access]`.
    pub access: Option<Spanned<AccessSection>>,
    /// `[compression]`: response compression on every route that does not set its own
    /// `compression`.
    pub compression: Option<Spanned<CompressionSection>>,
    /// `[cache]`: the response store shared by the routes that cache; absent: no caching.
    pub cache: Option<Spanned<CacheSection>>,
    /// `[resolver]`: the DNS servers that hostname and SRV targets are resolved with;
    /// absent: the system's (`/etc/resolv.conf`).
    pub resolver: Option<Spanned<ResolverSection>>,
    /// `[upstreams.NAME]`: where routes send traffic.
    #[serde(default)]
    pub upstreams: BTreeMap<String, UpstreamSection>,
    /// `[[routes]]`: matched by longest path prefix on segment boundaries.
    #[serde(default)]
    pub routes: Vec<RouteSection>,
}

/// `[server]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerSection {
    /// Address of the public listener.
    pub listen: SocketAddr,
    /// Largest request body; 413 beyond, enforced while streaming.
    #[serde(default = "defaults::max_body")]
    pub max_body: ByteSize,
    /// Time for the whole request until the response headers; 504 on expiry.
    #[serde(default = "defaults::request_timeout")]
    pub request_timeout: HumanDuration,
    /// Networks whose `X-Forwarded-For` is believed for the client IP.
    #[serde(default, deserialize_with = "de_trusted_proxies")]
    pub trusted_proxies: TrustedProxies,
    /// Worker threads, each running its own event loop and listener (`SO_REUSEPORT`);
    /// default: one per CPU core.
    pub workers: Option<usize>,
    /// Time allowed to read a request's headers, counted from the connection's accept (or
    /// TLS handshake) or from the end of its last response; the connection is closed after
    /// it.
    #[serde(default = "defaults::header_read_timeout")]
    pub header_read_timeout: HumanDuration,
    /// How long an idle HTTP/1.1 keep-alive connection waits for its next request before it
    /// gives its request buffers back (~30 KiB each); at or beyond `header_read_timeout`:
    /// never.
    #[serde(default = "defaults::release_idle_after")]
    pub release_idle_after: HumanDuration,
    /// Largest request head (request line and headers); 431 beyond.
    #[serde(default = "defaults::max_header_size")]
    pub max_header_size: ByteSize,
    /// Most header fields in an HTTP/1.1 request head; 431 beyond. Up to 100 they are parsed
    /// on the stack; a larger limit costs an allocation per request.
    #[serde(default = "defaults::max_headers")]
    pub max_headers: Spanned<usize>,
    /// Grace period for in-flight requests after SIGTERM/SIGINT.
    #[serde(default = "defaults::shutdown_grace")]
    pub shutdown_grace: HumanDuration,
    /// Write an access log line per request.
    #[serde(default = "defaults::yes")]
    pub access_log: bool,
    /// Generate a W3C `traceparent` for requests that arrive without a valid one (an
    /// existing one is forwarded untouched).
    #[serde(default = "defaults::yes")]
    pub traceparent: bool,
    /// `[server.tls]`: terminate TLS on the listener.
    pub tls: Option<TlsSection>,
}

/// `[server.tls]`.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsSection {
    /// PEM file with the certificate chain, leaf first.
    pub cert: PathBuf,
    /// PEM file with the private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
}

/// `[admin]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminSection {
    /// Address of the admin listener (`/health`, `/ready`, `/metrics`, the dashboard); none:
    /// no admin listener.
    pub listen: Option<SocketAddr>,
    /// Name of the environment variable holding the bearer token that every admin path but
    /// `/health` then needs (`Authorization: Bearer <token>`); absent: no token.
    pub token_env: Option<Spanned<String>>,
}

/// `[tracing]`: one OpenTelemetry server span per request, exported over OTLP/HTTP (protobuf).
///
/// The gateway joins the caller's trace (a valid `traceparent`) or starts one, and forwards a
/// `traceparent` naming its own span as the parent, so upstream spans nest under it.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TracingSection {
    /// The OTLP/HTTP traces endpoint, e.g. `http://127.0.0.1:4318/v1/traces`.
    pub otlp_endpoint: Spanned<String>,
    /// Extra headers sent with each export (an API key, a tenant id).
    #[serde(default)]
    pub otlp_headers: BTreeMap<String, String>,
    /// CA certificates (PEM) for an `https://` endpoint; default: the system's roots.
    pub otlp_ca: Option<PathBuf>,
    /// Time allowed for one export call.
    #[serde(default = "defaults::export_timeout")]
    pub export_timeout: HumanDuration,
    /// `service.name` of the exported spans.
    #[serde(default = "defaults::service_name")]
    pub service_name: String,
    /// Share of new traces that are recorded, 0.0 to 1.0. A caller's sampling decision (the
    /// `traceparent` flag) is always followed.
    #[serde(default = "defaults::sample_ratio")]
    pub sample_ratio: Spanned<f64>,
}

/// How an upstream spreads requests over its targets.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BalanceSection {
    /// Each target in turn.
    #[default]
    RoundRobin,
    /// The less busy of two random targets.
    LeastRequest,
}

/// `[upstreams.NAME]`.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamSection {
    /// Targets: base URLs, `http://host:port[/base]` or `https://host[:port][/base]`, or
    /// `{ url = "...", weight = N }` tables. A hostname stands for every address it
    /// resolves to, re-resolved every `resolve_every`.
    #[serde(default = "defaults::no_targets")]
    pub targets: Spanned<Vec<TargetEntry>>,
    /// An SRV name (`_http._tcp.users.service.consul`) whose records give targets: host,
    /// port and weight (`https://` for names starting with `_https.`).
    pub srv: Option<Spanned<String>>,
    /// The longest time between two lookups of a hostname or SRV name; a shorter TTL in
    /// the answer wins (down to 1 s).
    #[serde(default = "defaults::resolve_every")]
    pub resolve_every: HumanDuration,
    /// `[upstreams.NAME.health_check]`: active probes of every target.
    pub health_check: Option<Spanned<HealthCheckSection>>,
    /// Load-balancing policy.
    #[serde(default)]
    pub balance: BalanceSection,
    /// Time to establish a connection to a target.
    #[serde(default = "defaults::connect_timeout")]
    pub connect_timeout: HumanDuration,
    /// Time until the upstream's response headers; 504 on expiry.
    #[serde(default = "defaults::upstream_timeout")]
    pub timeout: HumanDuration,
    /// How long an idle pooled connection is kept.
    #[serde(default = "defaults::idle_timeout")]
    pub idle_timeout: HumanDuration,
    /// The longest a response body may go without sending anything once its head arrived:
    /// then the body is aborted (the client's connection closes before the body's end) and
    /// counted (`gateway_upstream_body_timeouts_total`). `"0s"` turns it off (long polls,
    /// event streams that may stay quiet).
    #[serde(default = "defaults::body_timeout")]
    pub body_timeout: HumanDuration,
    /// Speak HTTP/2 with prior knowledge (h2c) to the targets.
    #[serde(default)]
    pub h2c: bool,
    /// Forward the client's `Host` instead of the target's authority.
    #[serde(default)]
    pub preserve_host: bool,
    /// How long a target that refuses connections is skipped.
    #[serde(default = "defaults::eject_for")]
    pub eject_for: HumanDuration,
    /// PEM file of the certificate authorities that `https://` targets are checked against;
    /// default: the system's trust store.
    pub tls_ca: Option<PathBuf>,
    /// Largest response head (status line and headers) accepted from a target; 502 beyond.
    #[serde(default = "defaults::max_header_size")]
    pub max_response_header_size: ByteSize,
    /// Circuit breaker for this upstream (all its targets).
    pub circuit_breaker: Option<BreakerSection>,
}

/// One entry of `targets`: a URL, or a `{ url, weight }` table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TargetEntry {
    /// The target URL.
    pub url: String,
    /// Relative share of requests (default 1); 0 keeps the target out of rotation while
    /// another can serve.
    pub weight: u32,
}

impl<'de> Deserialize<'de> for TargetEntry {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Table {
            url: String,
            #[serde(default = "defaults::weight")]
            weight: u32,
        }
        struct Entry;
        impl<'de> serde::de::Visitor<'de> for Entry {
            type Value = TargetEntry;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a target URL, or a table `{ url = \"http://...\", weight = 1 }`")
            }
            fn visit_str<E: serde::de::Error>(self, url: &str) -> Result<TargetEntry, E> {
                Ok(TargetEntry {
                    url: url.to_owned(),
                    weight: 1,
                })
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                map: A,
            ) -> Result<TargetEntry, A::Error> {
                let table = Table::deserialize(serde::de::value::MapAccessDeserializer::new(map))?;
                Ok(TargetEntry {
                    url: table.url,
                    weight: table.weight,
                })
            }
        }
        deserializer.deserialize_any(Entry)
    }
}

/// `[upstreams.NAME.health_check]`.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HealthCheckSection {
    /// The path probed with `GET` (sent as written, without the target's base path).
    pub path: String,
    /// Time between two probes of a target.
    #[serde(default = "defaults::health_interval")]
    pub interval: HumanDuration,
    /// Time a probe may take, connecting included.
    #[serde(default = "defaults::health_timeout")]
    pub timeout: HumanDuration,
    /// Passes in a row that bring a target back into rotation.
    #[serde(default = "defaults::healthy_threshold")]
    pub healthy_threshold: u32,
    /// Failures in a row that take a target out of rotation.
    #[serde(default = "defaults::unhealthy_threshold")]
    pub unhealthy_threshold: u32,
    /// Statuses that pass; default: any 2xx.
    pub expect_status: Option<Vec<u16>>,
    /// `Host` of the probes; default: the target's authority.
    pub host: Option<String>,
}

impl HealthCheckSection {
    /// The proxy's health check with these settings.
    pub(crate) fn health_check(&self) -> gateway_proxy::HealthCheck {
        let mut check = gateway_proxy::HealthCheck::new(self.path.clone())
            .interval(self.interval.get())
            .timeout(self.timeout.get())
            .healthy_threshold(self.healthy_threshold)
            .unhealthy_threshold(self.unhealthy_threshold);
        if let Some(statuses) = &self.expect_status {
            check = check.expect_status(statuses.iter().copied());
        }
        if let Some(host) = &self.host {
            check = check.host(host.clone());
        }
        check
    }
}

/// `[resolver]`.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResolverSection {
    /// DNS servers (`ip:port`) asked over UDP, and TCP for long answers; default: the
    /// system's.
    #[serde(default)]
    pub nameservers: Vec<SocketAddr>,
    /// Time allowed for one query.
    #[serde(default = "defaults::resolver_timeout")]
    pub timeout: HumanDuration,
    /// Queries sent before a lookup fails.
    #[serde(default = "defaults::resolver_attempts")]
    pub attempts: usize,
}

/// `[[routes]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteSection {
    /// Name used in metrics and logs; default: the path.
    pub name: Option<String>,
    /// Path prefix, matched on segment boundaries; the longest matching prefix wins.
    pub path: Spanned<String>,
    /// Allowed methods; default: any.
    #[serde(default, deserialize_with = "de_methods")]
    pub methods: Option<Vec<Method>>,
    /// Name of the `[upstreams.NAME]` that serves the route.
    pub upstream: Spanned<String>,
    /// Remove the route's prefix before forwarding (`/api/users/42` -> `/42`).
    #[serde(default)]
    pub strip_prefix: bool,
    /// Token requirement: `required`, `optional` or `none`.
    #[serde(default = "defaults::auth")]
    pub auth: Spanned<AuthMode>,
    /// Roles allowed on the route (403 for others); empty: any authenticated caller.
    #[serde(default)]
    pub roles: Vec<String>,
    /// Rate limit of the route.
    pub rate_limit: Option<RateLimitSection>,
    /// Request header rules, applied after authentication.
    pub request_headers: Option<HeaderRulesSection>,
    /// Response header rules, applied to every response of the route.
    pub response_headers: Option<HeaderRulesSection>,
    /// `Upgrade` protocols the route tunnels after a `101` (default `["websocket"]`; `[]`:
    /// none). Other offers are removed and the request is forwarded as an ordinary one;
    /// `h2c` and other upgrades to HTTP are never allowed.
    #[serde(default = "defaults::upgrades")]
    pub upgrades: Spanned<Vec<String>>,
    /// The route's CORS policy, replacing `[cors]` wholesale.
    pub cors: Option<Spanned<CorsSection>>,
    /// The route's access lists, replacing `[access]` wholesale.
    pub access: Option<Spanned<AccessSection>>,
    /// The route's response compression: a `[routes.compression]` table replacing
    /// `[compression]` wholesale, `false` for none, or `true` for `[compression]` (its
    /// defaults when there is none).
    pub compression: Option<Spanned<RouteCompression>>,
    /// `[routes.cache]`: the route caches responses in the `[cache]` store; absent: it
    /// does not cache.
    pub cache: Option<Spanned<RouteCacheSection>>,
}

/// A route's `compression`: on or off, or its own settings.
#[derive(Clone, Debug, PartialEq)]
pub enum RouteCompression {
    /// `compression = true` (the gateway-wide settings, else the defaults) or `false` (off).
    Enabled(bool),
    /// `[routes.compression]`: the route's own settings.
    Settings(CompressionSection),
}

impl<'de> Deserialize<'de> for RouteCompression {
    // By hand rather than `#[serde(untagged)]`: an untagged enum reports a typo inside the
    // table as "did not match any variant" and loses the field name and line.
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = RouteCompression;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("`true`, `false` or a compression table")
            }

            fn visit_bool<E: serde::de::Error>(self, on: bool) -> Result<Self::Value, E> {
                Ok(RouteCompression::Enabled(on))
            }

            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                map: A,
            ) -> Result<Self::Value, A::Error> {
                CompressionSection::deserialize(serde::de::value::MapAccessDeserializer::new(map))
                    .map(RouteCompression::Settings)
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

impl RouteSection {
    /// The route's name for metrics and logs.
    pub fn display_name(&self) -> &str {
        self.name.as_deref().unwrap_or(self.path.get_ref())
    }
}

fn de_trusted_proxies<'de, D: serde::Deserializer<'de>>(d: D) -> Result<TrustedProxies, D::Error> {
    let networks = Vec::<String>::deserialize(d)?;
    TrustedProxies::parse(&networks).map_err(serde::de::Error::custom)
}

fn de_methods<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Vec<Method>>, D::Error> {
    let names = Vec::<String>::deserialize(d)?;
    if names.is_empty() {
        return Err(serde::de::Error::custom(
            "`methods` must name at least one method (omit it to allow any)",
        ));
    }
    names
        .iter()
        .map(|name| {
            let upper = name.to_ascii_uppercase();
            if upper == "CONNECT" {
                return Err(serde::de::Error::custom(
                    "the gateway does not tunnel CONNECT: it answers every CONNECT with 405",
                ));
            }
            Method::from_bytes(upper.as_bytes())
                .map_err(|_| serde::de::Error::custom(format!("`{name}` is not an HTTP method")))
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Some)
}
