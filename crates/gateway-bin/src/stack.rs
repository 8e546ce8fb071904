//! Composes one config generation: each route's layer stack over its upstream's proxy, the
//! dispatcher, and the gateway-wide front layers.
//!
//! Order of a request through the layers, outermost first:
//!
//! 1. request id (`[headers].request_id`: assigned first, so every rule and log sees it);
//! 2. global response header rules (`[headers.response]`: every response, 404s included);
//! 3. the dispatcher: path normalization, routing, 400/404/405/413, request timeout;
//! 4. the route's response header rules;
//! 5. JWT authentication (when `[jwt]` exists: strips client-sent identity headers on every
//!    route, verifies on routes with `auth`, sets the forwarded claim headers);
//! 6. global then route request header rules (after auth, so `{claim.NAME}` is known);
//! 7. the route's rate limit (after auth, so `key = "user"` is known);
//! 8. the upstream's circuit breaker;
//! 9. the upstream's proxy, timed for `gateway_upstream_duration_seconds`.
//!
//! State that must outlive a reload lives in [`Shared`] and is reused while its config is
//! unchanged: the rate-limit store (with its counters), each upstream's circuit breaker and
//! the JWT authenticator (with its verified-token cache and JWKS keys).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use gateway_auth::{Authenticator, JwtAuth, JwtAuthLayer};
use gateway_breaker::{CircuitBreaker, CircuitBreakerLayer, CircuitBreakerService};
use gateway_core::ResponseBody;
use gateway_headers::{
    HeaderRules, RequestHeaders, RequestHeadersLayer, RequestIdService, ResponseHeaders,
    ResponseHeadersLayer,
};
use gateway_proxy::{Balance, Proxy, ProxyBody, UpgradeProtocols, Upstream};
use gateway_ratelimit::{OnError, RateLimit, RateLimitBackend, RateLimitLayer};
use http::Response;
use tower::util::{Either, MapFuture, MapResponse};
use tower_layer::Layer;

use crate::config::{BalanceSection, BreakerSection, Config, JwtSection, RedisSection};
use crate::connection::{Current, RequestIdSource};
use crate::dispatch::{Dispatch, Route, Routes};
use crate::metrics::{Registry, UNMATCHED_ROUTE};
use crate::routing::{RouteTable, normalize_route_prefix};
use crate::timed::Timed;

/// Why a config could not be turned into services.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// An upstream's targets or settings are invalid.
    #[error("upstreams.{upstream}: {source}")]
    Upstream {
        /// The upstream's name.
        upstream: String,
        /// What is wrong.
        source: gateway_proxy::ProxyError,
    },
    /// A circuit breaker's settings are invalid.
    #[error("upstreams.{upstream}.circuit_breaker: {source}")]
    Breaker {
        /// The upstream's name.
        upstream: String,
        /// What is wrong.
        source: gateway_breaker::ConfigError,
    },
    /// The `[jwt]` section cannot be used (missing secret, unreadable key file...).
    #[error("jwt: {0}")]
    Jwt(#[from] gateway_auth::BuildError),
    /// The `[redis]` section cannot be used.
    #[error("redis: {0}")]
    Redis(#[from] gateway_ratelimit::ConnectError),
    /// The `[tracing]` exporter cannot be started.
    #[cfg(feature = "otlp")]
    #[error(transparent)]
    Tracing(#[from] crate::otlp::ExportError),
    /// A header rule set cannot be compiled.
    #[error("{field}: {source}")]
    Headers {
        /// Where the rules are.
        field: String,
        /// What is wrong.
        source: gateway_headers::HeaderRulesError,
    },
    /// `[server.tls]` cannot be used.
    #[error("server.tls: {0}")]
    Tls(#[from] crate::tls::TlsError),
    /// A route path is invalid.
    #[error("routes[{index}].path: {reason}")]
    Route {
        /// The route's index.
        index: usize,
        /// What is wrong.
        reason: String,
    },
}

fn wrap_body<B>(response: Response<B>) -> Response<ResponseBody<B>> {
    response.map(ResponseBody::inner)
}

/// A service whose responses get the [`ResponseBody`] wrapper without a layer of their own,
/// so an absent optional layer has the same type as a present one.
type Wrapped<S, B> = MapResponse<S, fn(Response<B>) -> Response<ResponseBody<B>>>;

fn bare(inner: Upstreamed) -> Bare {
    fn wrap(response: Response<ProxyBody>) -> Response<RouteBody> {
        response.map(|body| ResponseBody::inner(ResponseBody::inner(ResponseBody::inner(body))))
    }
    MapResponse::new(
        inner,
        wrap as fn(Response<ProxyBody>) -> Response<RouteBody>,
    )
}

fn wrapped<S, B>(inner: S) -> Wrapped<S, B> {
    MapResponse::new(
        inner,
        wrap_body::<B> as fn(Response<B>) -> Response<ResponseBody<B>>,
    )
}

type Upstreamed = Timed<Proxy>;
type BreakerBody = ResponseBody<ProxyBody>;
type Broken = Either<CircuitBreakerService<Upstreamed>, Wrapped<Upstreamed, ProxyBody>>;
type LimitBody = ResponseBody<BreakerBody>;
type Limited = Either<RateLimit<Broken>, Wrapped<Broken, BreakerBody>>;
/// Header layers with no rules are left out rather than run empty.
pub type Optional<L> = Either<L, <L as Unwrapped>::Inner>;
type RouteRequested = Optional<RequestHeaders<Limited>>;
type Requested = Optional<RequestHeaders<RouteRequested>>;
type Authenticated = Either<JwtAuth<Requested>, Wrapped<Requested, LimitBody>>;

/// The layers a route can have.
type Layers = Optional<ResponseHeaders<Authenticated>>;
type LayersRequest = http::Request<crate::request_body::RequestBody>;
type LayersFuture = <Layers as tower_service::Service<LayersRequest>>::Future;
/// A route with layers. Its future is boxed: unboxed, every layer's state would size the
/// future of every route, layerless ones included, and every request's future is moved
/// several times between here and the connection.
type Layered = MapFuture<Layers, fn(LayersFuture) -> std::pin::Pin<Box<LayersFuture>>>;

fn boxed_layers(layers: Layers) -> Layered {
    fn boxed(future: LayersFuture) -> std::pin::Pin<Box<LayersFuture>> {
        Box::pin(future)
    }
    MapFuture::new(
        layers,
        boxed as fn(LayersFuture) -> std::pin::Pin<Box<LayersFuture>>,
    )
}

/// A route with no layer: the upstream's timed proxy, its body wrapped as a layered one's.
type Bare = MapResponse<Upstreamed, fn(Response<ProxyBody>) -> Response<RouteBody>>;

/// The layer stack of one route; a route that has no layer skips the absent ones.
pub type RouteStack = Either<Layered, Bare>;
/// The response body of a route.
pub type RouteBody = ResponseBody<LimitBody>;
/// The service every request of a generation enters.
pub type FrontService = Either<
    RequestIdService<Optional<ResponseHeaders<Dispatch<RouteStack>>>>,
    Optional<ResponseHeaders<Dispatch<RouteStack>>>,
>;

/// Names the service a header layer wraps, for [`Optional`].
pub trait Unwrapped {
    /// The wrapped service.
    type Inner;
}

impl<S> Unwrapped for RequestHeaders<S> {
    type Inner = S;
}

impl<S> Unwrapped for ResponseHeaders<S> {
    type Inner = S;
}

fn request_rules<S>(rules: HeaderRules, inner: S) -> Either<RequestHeaders<S>, S> {
    if rules.is_empty() {
        Either::Right(inner)
    } else {
        Either::Left(RequestHeadersLayer::new(rules).layer(inner))
    }
}

fn response_rules<S>(rules: HeaderRules, inner: S) -> Either<ResponseHeaders<S>, S> {
    if rules.is_empty() {
        Either::Right(inner)
    } else {
        Either::Left(ResponseHeadersLayer::new(rules).layer(inner))
    }
}

/// The totals of counters whose source a reload replaced (a new rate-limit store, a new
/// breaker), so that what `/metrics` reports never goes down for the life of the process.
#[derive(Clone, Debug, Default)]
struct Retired {
    backend_errors: u64,
    /// Per upstream, transitions to closed, open and half-open.
    transitions: HashMap<String, [u64; 3]>,
}

/// The states [`Retired::transitions`] counts, in its order.
const BREAKER_STATES: [gateway_breaker::BreakerState; 3] = [
    gateway_breaker::BreakerState::Closed,
    gateway_breaker::BreakerState::Open,
    gateway_breaker::BreakerState::HalfOpen,
];

impl Retired {
    fn breaker(&mut self, upstream: &str, breaker: &CircuitBreaker) {
        let metrics = breaker.metrics();
        let totals = self.transitions.entry(upstream.to_owned()).or_default();
        for (total, state) in totals.iter_mut().zip(BREAKER_STATES) {
            *total += metrics.transitions_to(state);
        }
    }
}

/// State kept across reloads while its config is unchanged.
#[derive(Default)]
pub struct Shared {
    ratelimit: Option<(Option<RedisSection>, RateLimitBackend)>,
    breakers: HashMap<String, (BreakerSection, CircuitBreaker)>,
    retired: Retired,
    auth: Option<(JwtSection, Authenticator)>,
    #[cfg(feature = "otlp")]
    exporter: Option<Arc<crate::otlp::Exporter>>,
}

impl Shared {
    /// Sends the spans still queued for export (shutdown).
    pub fn flush_spans(&self) {
        #[cfg(feature = "otlp")]
        if let Some(exporter) = &self.exporter {
            exporter.flush();
        }
    }

    /// The span exporter for `[tracing]`: kept while the section is unchanged.
    #[cfg(feature = "otlp")]
    fn exporter(
        &mut self,
        section: Option<&crate::config::TracingSection>,
    ) -> Result<Option<Arc<crate::otlp::Exporter>>, BuildError> {
        let Some(section) = section else {
            self.exporter = None;
            return Ok(None);
        };
        match &self.exporter {
            Some(exporter) if exporter.section() == section => {}
            _ => self.exporter = Some(crate::otlp::Exporter::start(section)?),
        }
        Ok(self.exporter.clone())
    }
}

/// One built config generation.
pub struct Generation {
    front: FrontService,
    access_log: bool,
    keep_path: bool,
    request_id: RequestIdSource,
    tls: Option<tokio_rustls::TlsAcceptor>,
    upstreams: Vec<(String, Proxy, Option<CircuitBreaker>)>,
    ratelimit: RateLimitBackend,
    redis_required: bool,
    retired: Retired,
}

impl Generation {
    /// The front service and settings the connections use.
    pub fn current(&self) -> Current<FrontService> {
        Current {
            front: self.front.clone(),
            access_log: self.access_log,
            keep_path: self.keep_path,
            request_id: self.request_id.clone(),
            tls: self.tls.clone(),
        }
    }

    /// Whether the generation can serve, with detail for `/ready`.
    pub fn readiness(&self) -> (bool, serde_json::Value) {
        let mut upstreams = serde_json::Map::new();
        for (name, proxy, breaker) in &self.upstreams {
            let targets: Vec<serde_json::Value> = proxy
                .upstream()
                .targets()
                .map(|t| serde_json::json!({ "url": t.url.to_string(), "in_flight": t.in_flight, "ejected": t.ejected }))
                .collect();
            upstreams.insert(
                name.clone(),
                serde_json::json!({
                    "targets": targets,
                    "circuit_breaker": breaker.as_ref().map(|b| b.state().as_str()),
                }),
            );
        }
        let redis = if self.ratelimit.is_redis() {
            serde_json::json!({ "configured": true, "connected": self.ratelimit.is_connected(), "required": self.redis_required })
        } else {
            serde_json::json!({ "configured": false })
        };
        let ready = !self.redis_required || self.ratelimit.is_connected();
        (
            ready,
            serde_json::json!({ "upstreams": upstreams, "redis": redis }),
        )
    }

    /// Circuit state and transitions per upstream with a breaker, for `/metrics`.
    pub fn circuits(&self) -> Vec<crate::metrics::Circuit> {
        use gateway_breaker::BreakerState;
        self.upstreams
            .iter()
            .filter_map(|(name, _, breaker)| {
                let breaker = breaker.as_ref()?;
                let state = match breaker.state() {
                    BreakerState::Closed => 0,
                    BreakerState::HalfOpen => 1,
                    BreakerState::Open => 2,
                };
                let metrics = breaker.metrics();
                let retired = self.retired.transitions.get(name).copied();
                let transitions = BREAKER_STATES
                    .into_iter()
                    .zip(retired.unwrap_or_default())
                    .map(|(to, before)| (to.as_str(), before + metrics.transitions_to(to)))
                    .collect();
                Some(crate::metrics::Circuit {
                    upstream: name.clone(),
                    state,
                    transitions,
                })
            })
            .collect()
    }

    /// Failed calls to the rate-limit stores of the process, replaced ones included.
    pub fn ratelimit_backend_errors(&self) -> u64 {
        self.retired.backend_errors + self.ratelimit.backend_errors_total()
    }
}

/// The `Upgrade` protocols a route lets through (`upgrades`, validated when loading).
fn route_upgrades(route: &crate::config::RouteSection) -> UpgradeProtocols {
    UpgradeProtocols::new(route.upgrades.get_ref()).unwrap_or_else(|_| UpgradeProtocols::none())
}

fn build_upstream(
    name: &str,
    section: &crate::config::UpstreamSection,
    config: &Config,
) -> Result<Proxy, BuildError> {
    // The proxy tunnels what any of its routes allows; each route narrows it to its own.
    let upgrades = config
        .routes
        .iter()
        .filter(|route| route.upstream.get_ref() == name)
        .fold(UpgradeProtocols::none(), |all, route| {
            all.union(&route_upgrades(route))
        });
    let balance = match section.balance {
        BalanceSection::RoundRobin => Balance::RoundRobin,
        BalanceSection::LeastRequest => Balance::LeastRequest,
    };
    let upstream = Upstream::builder(name, section.targets.get_ref().iter().map(String::as_str))
        .balance(balance)
        .connect_timeout(section.connect_timeout.get())
        .response_timeout(section.timeout.get())
        .idle_timeout(section.idle_timeout.get())
        .h2c(section.h2c)
        .preserve_host(section.preserve_host)
        .eject_for(section.eject_for.get())
        .upgrades(upgrades)
        .max_response_head(
            usize::try_from(section.max_response_header_size.bytes()).unwrap_or(usize::MAX),
        )
        .trusted_proxies(config.server.trusted_proxies.clone())
        .tls_roots(match &section.tls_ca {
            Some(path) => gateway_proxy::UpstreamRoots::CaFile(path.clone()),
            None => gateway_proxy::UpstreamRoots::System,
        })
        .build()
        .map_err(|source| BuildError::Upstream {
            upstream: name.to_owned(),
            source,
        })?;
    Ok(Proxy::new(upstream))
}

fn header_rules(
    rules: Option<&crate::config::HeaderRulesSection>,
    field: impl FnOnce() -> String,
) -> Result<HeaderRules, BuildError> {
    match rules {
        Some(rules) => rules.build().map_err(|source| BuildError::Headers {
            field: field(),
            source,
        }),
        None => Ok(HeaderRules::default()),
    }
}

/// Checks what loading cannot: secrets and key files are readable, targets parse, header
/// rules compile. Used by `gateway check`; opens no connection.
pub fn check(config: &Config) -> Result<(), BuildError> {
    for (name, section) in &config.upstreams {
        build_upstream(name, section, config)?;
        if let Some(breaker) = &section.circuit_breaker {
            CircuitBreaker::named(name.as_str(), breaker.clone()).map_err(|source| {
                BuildError::Breaker {
                    upstream: name.clone(),
                    source,
                }
            })?;
        }
    }
    if let Some(jwt) = &config.jwt {
        Authenticator::from_config(jwt)?;
    }
    if let Some(tls) = &config.server.tls {
        crate::tls::acceptor(tls)?;
    }
    if let Some(headers) = &config.headers {
        headers
            .build(&config.server.trusted_proxies)
            .map_err(|source| BuildError::Headers {
                field: "headers".into(),
                source,
            })?;
    }
    for (index, route) in config.routes.iter().enumerate() {
        header_rules(route.request_headers.as_ref(), || {
            format!("routes[{index}].request_headers")
        })?;
        header_rules(route.response_headers.as_ref(), || {
            format!("routes[{index}].response_headers")
        })?;
    }
    Ok(())
}

/// Builds a generation from a validated config, reusing `shared` state where its config is
/// unchanged. Must run inside the control runtime (Redis and JWKS tasks are spawned on it).
pub async fn build(
    config: &Config,
    shared: &mut Shared,
    registry: &Arc<Registry>,
) -> Result<Generation, BuildError> {
    // Rate-limit store: kept while `[redis]` is unchanged, so counters survive reloads.
    let ratelimit = match &shared.ratelimit {
        Some((redis, backend)) if redis.as_ref() == config.redis.as_ref() => backend.clone(),
        _ => {
            let backend = RateLimitBackend::from_config(config.redis.as_ref())?;
            if backend.is_redis() && !backend.wait_connected(Duration::from_secs(2)).await {
                tracing::warn!(
                    "Redis is not reachable yet; rate limits follow `on_error` until it answers"
                );
            }
            if let Some((_, replaced)) = shared
                .ratelimit
                .replace((config.redis.clone(), backend.clone()))
            {
                shared.retired.backend_errors += replaced.backend_errors_total();
            }
            backend
        }
    };
    let redis_required = config
        .redis
        .as_ref()
        .is_some_and(|r| r.on_error == OnError::Deny);

    // Authenticator: kept while `[jwt]` is unchanged (verified-token cache, JWKS keys).
    let authenticator = match (&config.jwt, &shared.auth) {
        (None, _) => None,
        (Some(jwt), Some((previous, auth))) if previous == jwt => Some(auth.clone()),
        (Some(jwt), _) => {
            let auth = Authenticator::from_config(jwt)?;
            auth.start_jwks_refresh();
            shared.auth = Some((jwt.clone(), auth.clone()));
            Some(auth)
        }
    };
    if config.jwt.is_none() {
        shared.auth = None;
    }

    // Upstreams and their breakers.
    let mut upstreams = Vec::with_capacity(config.upstreams.len());
    let mut services: HashMap<&str, Broken> = HashMap::new();
    // The timed proxies of upstreams without a breaker, for routes with no layer.
    let mut unbroken: HashMap<&str, Upstreamed> = HashMap::new();
    let mut breakers = HashMap::new();
    for (name, section) in &config.upstreams {
        let proxy = build_upstream(name, section, config)?;
        let timed = Timed::new(proxy.clone(), registry.upstream(name));
        let breaker = match &section.circuit_breaker {
            None => None,
            Some(settings) => {
                let breaker = match shared.breakers.remove(name) {
                    Some((previous, breaker)) if &previous == settings => breaker,
                    replaced => {
                        if let Some((_, breaker)) = replaced {
                            shared.retired.breaker(name, &breaker);
                        }
                        CircuitBreaker::named(name.as_str(), settings.clone()).map_err(
                            |source| BuildError::Breaker {
                                upstream: name.clone(),
                                source,
                            },
                        )?
                    }
                };
                breakers.insert(name.clone(), (settings.clone(), breaker.clone()));
                Some(breaker)
            }
        };
        let service: Broken = match &breaker {
            Some(breaker) => Either::Left(CircuitBreakerLayer::new(breaker.clone()).layer(timed)),
            None => {
                unbroken.insert(name.as_str(), timed.clone());
                Either::Right(wrapped(timed))
            }
        };
        services.insert(name.as_str(), service);
        upstreams.push((name.clone(), proxy, breaker));
    }
    // Breakers of upstreams that are gone, or lost their breaker.
    for (name, (_, breaker)) in std::mem::replace(&mut shared.breakers, breakers) {
        shared.retired.breaker(&name, &breaker);
    }

    let global =
        match &config.headers {
            Some(headers) => Some(headers.build(&config.server.trusted_proxies).map_err(
                |source| BuildError::Headers {
                    field: "headers".into(),
                    source,
                },
            )?),
            None => None,
        };
    let global_request = global
        .as_ref()
        .map(|g| g.request.clone())
        .unwrap_or_default();
    let global_response = global
        .as_ref()
        .map(|g| g.response.clone())
        .unwrap_or_default();
    let request_id = match &global {
        Some(global) => global.request_id.clone(),
        None => Some(
            gateway_headers::RequestIdLayer::new()
                .trusted_proxies(config.server.trusted_proxies.clone()),
        ),
    };

    let mut routes = Vec::with_capacity(config.routes.len());
    let mut prefixes = Vec::with_capacity(config.routes.len());
    let mut names = Vec::with_capacity(config.routes.len());
    for (index, section) in config.routes.iter().enumerate() {
        let name = section.display_name();
        let upstream = section.upstream.get_ref();
        let Some(service) = services.get(upstream.as_str()) else {
            // Loading rejects this already; a `Config` built in code may still get here.
            return Err(BuildError::Route {
                index,
                reason: format!("no upstream named `{upstream}`"),
            });
        };
        let route_request = header_rules(section.request_headers.as_ref(), || {
            format!("routes[{index}].request_headers")
        })?;
        let route_response = header_rules(section.response_headers.as_ref(), || {
            format!("routes[{index}].response_headers")
        })?;
        let layerless = section.rate_limit.is_none()
            && authenticator.is_none()
            && global_request.is_empty()
            && route_request.is_empty()
            && route_response.is_empty();
        let limited: Limited = match &section.rate_limit {
            Some(limit) => Either::Left(
                RateLimitLayer::from_config(&ratelimit, name, limit).layer(service.clone()),
            ),
            None => Either::Right(wrapped(service.clone())),
        };
        let requested: Requested = request_rules(
            global_request.clone(),
            request_rules(route_request, limited),
        );
        let authenticated: Authenticated = match &authenticator {
            Some(auth) => Either::Left(
                JwtAuthLayer::new(auth.clone())
                    .mode(*section.auth.get_ref())
                    .roles(section.roles.iter().cloned())
                    .layer(requested),
            ),
            None => Either::Right(wrapped(requested)),
        };
        let stack: RouteStack = match unbroken.get(upstream.as_str()) {
            // Nothing to pass through: calls and responses skip the layers' absent places.
            Some(timed) if layerless => Either::Right(bare(timed.clone())),
            _ => Either::Left(boxed_layers(response_rules(route_response, authenticated))),
        };
        let prefix = normalize_route_prefix(section.path.get_ref())
            .map_err(|reason| BuildError::Route { index, reason })?;
        prefixes.push((prefix, section.methods.clone()));
        names.push(name.to_owned());
        // Layers that can wait before forwarding: a Redis check, a JWKS key fetch.
        let can_wait = (section.rate_limit.is_some() && ratelimit.is_redis())
            || (authenticator.is_some()
                && config
                    .jwt
                    .as_ref()
                    .is_some_and(|jwt| jwt.jwks_url.is_some()));
        let upstream_timeout = config
            .upstreams
            .get(upstream.as_str())
            .map(|section| section.timeout.get());
        let needs_deadline = can_wait
            || upstream_timeout.is_none_or(|timeout| timeout > config.server.request_timeout.get());
        routes.push(Route {
            service: stack,
            metrics: registry.route(name, upstream),
            strip_prefix: section.strip_prefix,
            needs_deadline,
            upgrades: route_upgrades(section),
        });
    }
    ratelimit.retain_routes(|route| names.iter().any(|name| name == route));

    let table = RouteTable::new(
        prefixes
            .iter()
            .map(|(prefix, methods)| (prefix.as_str(), methods.as_deref())),
    );
    let dispatch = Dispatch::new(Arc::new(Routes {
        table,
        routes,
        max_body: config.server.max_body.bytes(),
        request_timeout: config.server.request_timeout.get(),
        trusted: config.server.trusted_proxies.clone(),
        unmatched: registry.route(UNMATCHED_ROUTE, ""),
        registry: registry.clone(),
        traceparent: config.server.traceparent,
        #[cfg(feature = "otlp")]
        exporter: shared.exporter(config.tracing.as_ref().map(|section| section.get_ref()))?,
        // With `[jwt]`, the auth layer strips (and sets) the forwarded identity headers.
        strip_identity: match &config.jwt {
            Some(_) => Vec::new(),
            None => vec![
                http::HeaderName::from_static("x-user-id"),
                http::HeaderName::from_static("x-user-role"),
            ],
        },
    }));
    let with_headers = response_rules(global_response, dispatch);
    // The accounting reads each response's id from the echoed header; only when the id is
    // not echoed does it need the response extension (which costs allocations per response).
    let keep_path = config.server.access_log || exports_spans(config);
    let (front, request_id) = match request_id {
        Some(layer) => {
            let source = match layer.echoed_header() {
                _ if !keep_path => RequestIdSource::Unwanted,
                Some(header) => RequestIdSource::Echoed(header.clone()),
                None => RequestIdSource::Extension,
            };
            let extension = matches!(source, RequestIdSource::Extension);
            let layer = layer.response_extension(extension).layer(with_headers);
            (Either::Left(layer), source)
        }
        None => (Either::Right(with_headers), RequestIdSource::Unwanted),
    };
    let tls = config
        .server
        .tls
        .as_ref()
        .map(crate::tls::acceptor)
        .transpose()?;
    Ok(Generation {
        front,
        access_log: config.server.access_log,
        keep_path,
        request_id,
        tls,
        upstreams,
        ratelimit,
        redis_required,
        retired: shared.retired.clone(),
    })
}

/// Whether requests can become exported spans (which carry the path).
fn exports_spans(config: &Config) -> bool {
    #[cfg(feature = "otlp")]
    return config.tracing.is_some();
    #[cfg(not(feature = "otlp"))]
    {
        let _ = config;
        false
    }
}

/// Mints a development token for `gateway token` and the quickstart: HS256 with the
/// configured secret, the configured issuer and audience, and the given `NAME=VALUE` claims.
pub fn mint_token(
    config: &Config,
    claims: &[String],
    ttl: Duration,
) -> Result<String, Box<dyn std::error::Error + Send + Sync>> {
    let Some(jwt) = &config.jwt else {
        return Err("the config has no [jwt] section".into());
    };
    let mut map = serde_json::Map::new();
    for claim in claims {
        let (name, value) = gateway_auth::parse_claim(claim)?;
        map.insert(name, value);
    }
    Ok(gateway_auth::mint_for_config(jwt, map, ttl)?)
}
