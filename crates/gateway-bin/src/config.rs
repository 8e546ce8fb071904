//! The gateway's TOML config: its shape, defaults, and a loader whose errors name the file,
//! line and field.
//!
//! The section and key names are a contract other tools rely on: they are extended, never
//! renamed. Each layer crate owns the shape of its own section (`[jwt]`, `[redis]`,
//! `[routes.rate_limit]`, `[upstreams.NAME.circuit_breaker]`, the header tables); this module
//! composes them and checks what spans sections (a route's upstream exists, auth needs `[jwt]`).

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use gateway_core::TrustedProxies;
use gateway_core::config::{ByteSize, HumanDuration};
use http::Method;
use serde::Deserialize;
use toml::Spanned;

use crate::routing::normalize_route_prefix;

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
    /// Time allowed to read a request's headers; the connection is closed after it.
    #[serde(default = "defaults::header_read_timeout")]
    pub header_read_timeout: HumanDuration,
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
    pub tls: Option<crate::tls::TlsSection>,
}

/// `[admin]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminSection {
    /// Address of the admin listener (`/health`, `/ready`, `/metrics`); none: no admin listener.
    pub listen: Option<SocketAddr>,
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
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamSection {
    /// Target base URLs, `http://host:port[/base]` or `https://host[:port][/base]`.
    pub targets: Spanned<Vec<String>>,
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
}

impl RouteSection {
    /// The route's name for metrics and logs.
    pub fn display_name(&self) -> &str {
        self.name.as_deref().unwrap_or(self.path.get_ref())
    }
}

mod defaults {
    use super::*;

    pub(super) fn max_body() -> ByteSize {
        ByteSize(10 << 20)
    }
    pub(super) fn request_timeout() -> HumanDuration {
        HumanDuration(Duration::from_secs(30))
    }
    pub(super) fn header_read_timeout() -> HumanDuration {
        HumanDuration(Duration::from_secs(10))
    }
    pub(super) fn max_header_size() -> ByteSize {
        ByteSize(64 << 10)
    }
    pub(super) fn max_headers() -> Spanned<usize> {
        Spanned::new(0..0, 100)
    }
    pub(super) fn upgrades() -> Spanned<Vec<String>> {
        Spanned::new(0..0, vec!["websocket".to_owned()])
    }
    pub(super) fn shutdown_grace() -> HumanDuration {
        HumanDuration(Duration::from_secs(30))
    }
    pub(super) fn connect_timeout() -> HumanDuration {
        HumanDuration(Duration::from_secs(2))
    }
    pub(super) fn upstream_timeout() -> HumanDuration {
        HumanDuration(Duration::from_secs(30))
    }
    pub(super) fn idle_timeout() -> HumanDuration {
        HumanDuration(Duration::from_secs(90))
    }
    pub(super) fn eject_for() -> HumanDuration {
        HumanDuration(Duration::from_secs(5))
    }
    pub(super) fn auth() -> Spanned<AuthMode> {
        Spanned::new(0..0, AuthMode::None)
    }
    pub(super) fn yes() -> bool {
        true
    }
    pub(super) fn export_timeout() -> HumanDuration {
        HumanDuration(Duration::from_secs(10))
    }
    pub(super) fn service_name() -> String {
        "gateway".to_owned()
    }
    pub(super) fn sample_ratio() -> Spanned<f64> {
        Spanned::new(0..0, 1.0)
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

/// A config error, located in its file.
#[derive(Debug)]
pub struct ConfigError {
    /// The config file.
    pub file: PathBuf,
    /// 1-based line and column, when known.
    pub position: Option<(usize, usize)>,
    /// Dotted path of the offending field (`routes[1].rate_limit.limit`), when known.
    pub field: Option<String>,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some((line, column)) = self.position {
            write!(f, ":{line}:{column}")?;
        }
        if let Some(field) = &self.field {
            write!(f, ": field `{field}`")?;
        }
        write!(f, ": {}", self.message)
    }
}

impl std::error::Error for ConfigError {}

/// Builds located errors for one config text.
pub(crate) struct Locator<'a> {
    file: &'a Path,
    source: &'a str,
}

impl<'a> Locator<'a> {
    pub(crate) fn new(file: &'a Path, source: &'a str) -> Self {
        Self { file, source }
    }

    /// An error at a span of the source.
    pub(crate) fn at(
        &self,
        span: Option<Range<usize>>,
        field: impl Into<Option<String>>,
        message: impl fmt::Display,
    ) -> ConfigError {
        ConfigError {
            file: self.file.to_owned(),
            position: span.map(|span| line_column(self.source, span.start)),
            field: field.into(),
            message: message.to_string(),
        }
    }
}

fn validate_tracing(
    section: &Spanned<TracingSection>,
    locator: &Locator<'_>,
) -> Result<(), ConfigError> {
    if !cfg!(feature = "otlp") {
        return Err(locator.at(
            Some(section.span()),
            "tracing".to_owned(),
            "OpenTelemetry export is not built into this gateway: build it with \
             `--features otlp` or remove the [tracing] section",
        ));
    }
    let tracing = section.get_ref();
    let endpoint = &tracing.otlp_endpoint;
    let uri: Option<http::Uri> = endpoint.get_ref().parse().ok();
    let valid = uri.as_ref().is_some_and(|uri| {
        matches!(uri.scheme_str(), Some("http" | "https")) && uri.authority().is_some()
    });
    if !valid {
        return Err(locator.at(
            Some(endpoint.span()),
            "tracing.otlp_endpoint".to_owned(),
            format!("`{}` is not an http:// or https:// URL", endpoint.get_ref()),
        ));
    }
    for (name, value) in &tracing.otlp_headers {
        if http::HeaderName::from_bytes(name.as_bytes()).is_err()
            || http::HeaderValue::from_str(value).is_err()
        {
            return Err(locator.at(
                Some(section.span()),
                format!("tracing.otlp_headers.{name}"),
                "not a valid HTTP header name and value",
            ));
        }
    }
    let ratio = &tracing.sample_ratio;
    if !(0.0..=1.0).contains(ratio.get_ref()) {
        return Err(locator.at(
            Some(ratio.span()),
            "tracing.sample_ratio".to_owned(),
            "must be between 0.0 and 1.0",
        ));
    }
    Ok(())
}

fn line_column(source: &str, offset: usize) -> (usize, usize) {
    let before = &source[..offset.min(source.len())];
    let line = before.matches('\n').count() + 1;
    let column = before
        .rfind('\n')
        .map_or(before.len(), |nl| before.len() - nl - 1)
        + 1;
    (line, column)
}

impl Config {
    /// Reads and validates a config file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let source = std::fs::read_to_string(path).map_err(|e| ConfigError {
            file: path.to_owned(),
            position: None,
            field: None,
            message: format!("cannot read the config file: {e}"),
        })?;
        Self::parse(path, &source)
    }

    /// Parses and validates a config text; `path` only names it in errors.
    pub fn parse(path: &Path, source: &str) -> Result<Self, ConfigError> {
        let locator = Locator::new(path, source);
        let deserializer = toml::Deserializer::parse(source)
            .map_err(|e| locator.at(e.span(), None, e.message()))?;
        let config: Config = serde_path_to_error::deserialize(deserializer).map_err(|e| {
            let field = e.path().to_string();
            let inner = e.into_inner();
            locator.at(
                inner.span(),
                (field != ".").then_some(field),
                inner.message(),
            )
        })?;
        config.validate(&locator)?;
        Ok(config)
    }

    fn validate(&self, locator: &Locator<'_>) -> Result<(), ConfigError> {
        if let Some(tracing) = &self.tracing {
            validate_tracing(tracing, locator)?;
        }
        if *self.server.max_headers.get_ref() == 0 {
            return Err(locator.at(
                Some(self.server.max_headers.span()),
                "server.max_headers".to_owned(),
                "a request needs at least one header (Host)",
            ));
        }
        for (name, upstream) in &self.upstreams {
            if upstream.targets.get_ref().is_empty() {
                return Err(locator.at(
                    Some(upstream.targets.span()),
                    format!("upstreams.{name}.targets"),
                    "an upstream needs at least one target",
                ));
            }
        }
        // Routes seen so far by normalized prefix: index and methods.
        type Seen<'a> = BTreeMap<String, Vec<(usize, Option<&'a [Method]>)>>;
        let mut seen: Seen<'_> = BTreeMap::new();
        for (index, route) in self.routes.iter().enumerate() {
            let field = |key: &str| format!("routes[{index}].{key}");
            let prefix = normalize_route_prefix(route.path.get_ref())
                .map_err(|reason| locator.at(Some(route.path.span()), field("path"), reason))?;
            if !self.upstreams.contains_key(route.upstream.get_ref()) {
                let known: Vec<&str> = self.upstreams.keys().map(String::as_str).collect();
                return Err(locator.at(
                    Some(route.upstream.span()),
                    field("upstream"),
                    format!(
                        "no upstream named `{}` (defined: {})",
                        route.upstream.get_ref(),
                        if known.is_empty() {
                            "none".to_owned()
                        } else {
                            known.join(", ")
                        }
                    ),
                ));
            }
            if let Err(error) = gateway_proxy::UpgradeProtocols::new(route.upgrades.get_ref()) {
                return Err(locator.at(Some(route.upgrades.span()), field("upgrades"), error));
            }
            if *route.auth.get_ref() != AuthMode::None && self.jwt.is_none() {
                return Err(locator.at(
                    Some(route.auth.span()),
                    field("auth"),
                    "authentication needs a [jwt] section",
                ));
            }
            let leases = route.rate_limit.as_ref().and_then(|limit| limit.lease());
            if leases.is_some() && self.redis.is_none() {
                return Err(locator.at(
                    Some(route.path.span()),
                    field("rate_limit.lease"),
                    "a lease takes tokens from Redis: it needs a [redis] section",
                ));
            }
            if !route.roles.is_empty() && *route.auth.get_ref() == AuthMode::None {
                return Err(locator.at(
                    Some(route.path.span()),
                    field("roles"),
                    "`roles` needs `auth = \"required\"` or `\"optional\"`",
                ));
            }
            let methods = route.methods.as_deref();
            let same_prefix = seen.entry(prefix).or_default();
            for (other, other_methods) in same_prefix.iter() {
                let overlap = match (methods, other_methods) {
                    (Some(a), Some(b)) => a.iter().any(|m| b.contains(m)),
                    _ => true,
                };
                if overlap {
                    return Err(locator.at(
                        Some(route.path.span()),
                        field("path"),
                        format!(
                            "routes[{other}] already serves this path for some of these methods"
                        ),
                    ));
                }
            }
            same_prefix.push((index, methods));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(src: &str) -> Result<Config, ConfigError> {
        Config::parse(Path::new("gw.toml"), src)
    }

    const BASE: &str = r#"
[server]
listen = "127.0.0.1:8080"

[upstreams.users]
targets = ["http://127.0.0.1:9001"]

[[routes]]
path = "/api"
upstream = "users"
"#;

    const TRACING: &str = r#"
[tracing]
otlp_endpoint = "http://127.0.0.1:4318/v1/traces"
sample_ratio = 0.25
"#;

    #[cfg(not(feature = "otlp"))]
    #[test]
    fn tracing_without_the_feature_is_located() {
        let err = parse(&format!("{BASE}{TRACING}")).unwrap_err();
        assert_eq!(err.position.map(|(line, _)| line), Some(12), "{err}");
        assert_eq!(err.field.as_deref(), Some("tracing"));
        assert!(err.message.contains("--features otlp"), "{err}");
    }

    #[cfg(feature = "otlp")]
    #[test]
    fn tracing_section_is_validated() {
        let config = parse(&format!("{BASE}{TRACING}")).unwrap();
        let tracing = config.tracing.unwrap().into_inner();
        assert_eq!(tracing.service_name, "gateway");
        assert_eq!(*tracing.sample_ratio.get_ref(), 0.25);
        assert_eq!(tracing.export_timeout.get(), Duration::from_secs(10));

        let err = parse(&format!("{BASE}{}", TRACING.replace("0.25", "1.5"))).unwrap_err();
        assert_eq!(err.field.as_deref(), Some("tracing.sample_ratio"), "{err}");
        assert_eq!(err.position.map(|(line, _)| line), Some(14), "{err}");
        let err = parse(&format!("{BASE}{}", TRACING.replace("http://", "udp://"))).unwrap_err();
        assert_eq!(err.field.as_deref(), Some("tracing.otlp_endpoint"), "{err}");
        assert_eq!(err.position.map(|(line, _)| line), Some(13), "{err}");
    }

    #[test]
    fn minimal_config_gets_defaults() {
        let config = parse(BASE).unwrap();
        assert_eq!(config.server.max_body.bytes(), 10 << 20);
        assert_eq!(config.server.request_timeout.get(), Duration::from_secs(30));
        assert_eq!(config.routes[0].display_name(), "/api");
        assert_eq!(*config.routes[0].auth.get_ref(), AuthMode::None);
    }

    #[test]
    fn unknown_key_names_file_line_and_field() {
        let err = parse(&BASE.replace("strip_prefix", "x").replace(
            "upstream = \"users\"",
            "upstream = \"users\"\nstrip_prefx = true",
        ))
        .unwrap_err();
        let text = err.to_string();
        assert!(text.starts_with("gw.toml:11:"), "{text}");
        assert!(text.contains("strip_prefx"), "{text}");
    }

    #[test]
    fn bad_duration_is_located() {
        let err = parse(&BASE.replace(
            "listen = \"127.0.0.1:8080\"",
            "listen = \"127.0.0.1:8080\"\nrequest_timeout = \"30 parsecs\"",
        ))
        .unwrap_err();
        assert_eq!(err.field.as_deref(), Some("server.request_timeout"));
        assert_eq!(err.position.map(|p| p.0), Some(4));
        assert!(err.message.contains("invalid duration"), "{err}");
    }

    #[test]
    fn unknown_upstream_is_located() {
        let err =
            parse(&BASE.replace("upstream = \"users\"", "upstream = \"orders\"")).unwrap_err();
        assert_eq!(err.field.as_deref(), Some("routes[0].upstream"));
        assert_eq!(err.position.map(|p| p.0), Some(10));
        assert!(err.message.contains("orders"), "{err}");
    }

    #[test]
    fn a_lease_without_redis_is_rejected() {
        let limited =
            format!("{BASE}[routes.rate_limit]\nlimit = 50\nwindow = \"1m\"\nlease = 10\n");
        let err = parse(&limited).unwrap_err();
        assert_eq!(
            err.field.as_deref(),
            Some("routes[0].rate_limit.lease"),
            "{err}"
        );
        let with_redis = format!("{limited}[redis]\nurl = \"redis://127.0.0.1:6379\"\n");
        let config = parse(&with_redis).unwrap();
        assert_eq!(
            config.routes[0].rate_limit.as_ref().unwrap().lease(),
            Some(10)
        );
    }

    #[test]
    fn auth_without_jwt_is_rejected() {
        let err = parse(&format!("{BASE}auth = \"required\"\n")).unwrap_err();
        assert_eq!(err.field.as_deref(), Some("routes[0].auth"));
    }

    #[test]
    fn duplicate_route_is_rejected() {
        let err = parse(&format!(
            "{BASE}\n[[routes]]\npath = \"/api/\"\nupstream = \"users\"\n"
        ))
        .unwrap_err();
        assert_eq!(err.field.as_deref(), Some("routes[1].path"));
    }

    #[test]
    fn upgrades_default_to_websocket_and_never_allow_h2c() {
        let config = parse(BASE).unwrap();
        assert_eq!(*config.routes[0].upgrades.get_ref(), ["websocket"]);
        let err = parse(&format!("{BASE}upgrades = [\"websocket\", \"h2c\"]\n")).unwrap_err();
        assert_eq!(err.field.as_deref(), Some("routes[0].upgrades"), "{err}");
        assert_eq!(err.position.map(|p| p.0), Some(11), "{err}");
        assert!(err.message.contains("h2c"), "{err}");
        let config = parse(&format!("{BASE}upgrades = []\n")).unwrap();
        assert!(config.routes[0].upgrades.get_ref().is_empty());
    }

    #[test]
    fn connect_cannot_be_a_route_method() {
        let err = parse(&format!("{BASE}methods = [\"GET\", \"connect\"]\n")).unwrap_err();
        assert_eq!(err.field.as_deref(), Some("routes[0].methods"), "{err}");
        assert!(err.message.contains("CONNECT"), "{err}");
    }

    #[test]
    fn header_limits_have_defaults_and_are_checked() {
        let config = parse(BASE).unwrap();
        assert_eq!(*config.server.max_headers.get_ref(), 100);
        assert_eq!(
            config.upstreams["users"].max_response_header_size.bytes(),
            64 << 10
        );
        let err = parse(&BASE.replace(
            "listen = \"127.0.0.1:8080\"",
            "listen = \"127.0.0.1:8080\"\nmax_headers = 0",
        ))
        .unwrap_err();
        assert_eq!(err.field.as_deref(), Some("server.max_headers"), "{err}");
        assert_eq!(err.position.map(|p| p.0), Some(4), "{err}");
    }

    #[test]
    fn method_split_routes_are_allowed() {
        let src = format!(
            "{BASE}methods = [\"GET\"]\n\n[[routes]]\npath = \"/api\"\nmethods = [\"post\"]\nupstream = \"users\"\n"
        );
        let config = parse(&src).unwrap();
        assert_eq!(
            config.routes[1].methods.as_deref(),
            Some(&[Method::POST][..])
        );
    }
}
