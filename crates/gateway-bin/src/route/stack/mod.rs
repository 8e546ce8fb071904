//! Composes one config generation: each route's layer stack over its upstream's proxy, the
//! dispatcher, and the gateway-wide front layers.
//!
//! Order of a request through the layers, outermost first:
//!
//! 1. the connection: hop-by-hop headers removed (`serve/connection.rs`), then the client IP
//!    resolved through `trusted_proxies`;
//! 2. request id (`[headers].request_id`: assigned first, so every rule and log sees it);
//! 3. global response header rules (`[headers.response]`: every response, 404s included);
//! 4. the dispatcher (`route/dispatch.rs`): host and path checks, routing, 400/404/405/413,
//!    the route's upgrade protocols, the request timeout;
//! 5. the route's IP access lists (`[routes.access]`, else `[access]`): 403 before anything
//!    else sees the request;
//! 6. the route's CORS policy (`[routes.cors]`, else `[cors]`): preflights answered here,
//!    before auth, since they carry no token;
//! 7. the route's response header rules;
//! 8. JWT authentication (when `[jwt]` exists: strips client-sent identity headers on every
//!    route, verifies on routes with `auth`, sets the forwarded claim headers);
//! 9. global then route request header rules (after auth, so `{claim.NAME}` is known);
//! 10. the route's rate limit (after auth, so `key = "user"` is known);
//! 11. the route's response cache (`[routes.cache]`, in the `[cache]` store): after auth, so
//!     `authorized = "per_user"` keys by the verified user and a refused token never reaches
//!     a stored response, and after the rate limit, so a limited client gets no hits either
//!     (a hit costs the limit a token like any request); before the breaker, so hits and
//!     `stale_if_error` answers are served while the circuit is open;
//! 12. the upstream's circuit breaker;
//! 13. the route's response compression (`compression` on the route, else `[compression]`),
//!     right around the proxy, so responses the gateway makes itself (401, 403, 429, 503)
//!     are left alone, and the cache stores compressed bodies (keyed by `Accept-Encoding`
//!     through the `Vary` compression adds);
//! 14. the upstream's proxy, timed for `gateway_upstream_duration_seconds`.
//!
//! Slots 5 to 13 are the steps of `layers.rs` (in `route_stack`); 12 to 14 are built from
//! `upstreams.rs`. The inner half holds compression, breaker, cache, rate limit and route
//! request headers; the outer one global request headers, auth, response headers, CORS and
//! access. State that must
//! outlive a reload lives in [`Shared`] and is reused while its config is unchanged: the
//! rate-limit store (with its counters), each upstream's circuit breaker, the JWT
//! authenticator (with its verified-token cache and JWKS keys) and the response store.

mod error;
mod front;
mod generation;
mod layers;
mod shared;
mod upstreams;

use std::collections::HashMap;
use std::sync::Arc;

use gateway_headers::GlobalHeaders;
use gateway_ratelimit::OnError;

pub use error::BuildError;
pub(crate) use front::FrontService;
pub(crate) use generation::{Generation, PurgeError};
pub(crate) use layers::{RouteStack, header_rules};
pub(crate) use shared::Shared;
pub(crate) use upstreams::build_upstream;

use crate::config::Config;
use crate::observe::metrics::{Registry, UNMATCHED_ROUTE};
use crate::route::dispatch::{Dispatch, Route, Routes};
use crate::route::path::normalize_route_prefix;
use crate::route::table::RouteTable;
use upstreams::BuiltUpstream;

/// Builds a generation from a validated config, reusing `shared` state where its config is
/// unchanged. Must run inside the control runtime (Redis and JWKS tasks are spawned on it).
pub(crate) async fn build(
    config: &Config,
    shared: &mut Shared,
    registry: &Arc<Registry>,
) -> Result<Generation, BuildError> {
    let ratelimit = shared.ratelimit(config).await?;
    let authenticator = shared.authenticator(config)?;
    let cache = shared.cache(config)?;
    let upstreams = upstreams::build_all(config, shared, registry).await?;
    let global = global_headers(config)?;
    let context = layers::Context {
        access: layers::access_list(config.access.as_ref(), || "access".to_owned())?,
        cors: layers::cors_policy(config.cors.as_ref(), || "cors".to_owned())?,
        compression: config
            .compression
            .as_ref()
            .map(|section| layers::compression_policy(section.get_ref(), || "compression".into()))
            .transpose()?,
        ratelimit: &ratelimit,
        authenticator: authenticator.as_ref(),
        cache: cache.as_ref(),
        registry,
        request_timeout: config.server.request_timeout.get(),
        tls: config.server.tls.is_some(),
        global_request: &global
            .as_ref()
            .map(|g| g.request.clone())
            .unwrap_or_default(),
    };
    let (table, routes) = routes(config, &context, &upstreams, registry)?;
    ratelimit.retain_routes(|route| config.routes.iter().any(|r| r.display_name() == route));
    let dispatch = Dispatch::new(Arc::new(Routes {
        table,
        routes,
        max_body: config.server.max_body.bytes(),
        request_timeout: config.server.request_timeout.get(),
        unmatched: registry.route(UNMATCHED_ROUTE, ""),
        traceparent: config.server.traceparent,
        #[cfg(feature = "otlp")]
        exporter: shared.exporter(config.tracing.as_ref().map(|section| section.get_ref()))?,
        strip_identity: strip_identity(config),
    }));
    let keep_path = config.server.access_log || exports_spans(config);
    let (front, request_id) = front::front(config, global, dispatch, keep_path);
    let tls = config
        .server
        .tls
        .as_ref()
        .map(crate::serve::tls::acceptor)
        .transpose()?;
    Ok(Generation {
        front,
        access_log: config.server.access_log,
        keep_path,
        request_id,
        tls,
        upstreams: config
            .upstreams
            .keys()
            .filter_map(|name| {
                let built = upstreams.get(name)?;
                Some((name.clone(), built.proxy.clone(), built.breaker.clone()))
            })
            .collect(),
        redis_required: config
            .redis
            .as_ref()
            .is_some_and(|r| r.on_error == OnError::Deny),
        ratelimit,
        retired: shared.retired(),
        cached_routes: cached_routes(config),
        cache,
    })
}

/// The routes with a cache, for purges.
fn cached_routes(config: &Config) -> Vec<generation::CachedRoute> {
    config
        .routes
        .iter()
        .filter(|route| route.cache.is_some())
        .filter_map(|route| {
            Some(generation::CachedRoute {
                name: route.display_name().to_owned(),
                prefix: normalize_route_prefix(route.path.get_ref()).ok()?,
                strip_prefix: route.strip_prefix,
            })
        })
        .collect()
}

/// `[headers]`, compiled.
fn global_headers(config: &Config) -> Result<Option<GlobalHeaders>, BuildError> {
    config
        .headers
        .as_ref()
        .map(|headers| {
            headers
                .build(&config.server.trusted_proxies)
                .map_err(|source| BuildError::Headers {
                    field: "headers".into(),
                    source,
                })
        })
        .transpose()
}

/// Every route's stack, and the table that finds them.
fn routes(
    config: &Config,
    context: &layers::Context<'_>,
    upstreams: &HashMap<String, BuiltUpstream>,
    registry: &Registry,
) -> Result<(RouteTable, Vec<Route<RouteStack>>), BuildError> {
    let mut routes = Vec::with_capacity(config.routes.len());
    let mut prefixes = Vec::with_capacity(config.routes.len());
    for (index, section) in config.routes.iter().enumerate() {
        let upstream_name = section.upstream.get_ref();
        let Some(upstream) = upstreams.get(upstream_name) else {
            // Loading rejects this already; a `Config` built in code may still get here.
            return Err(BuildError::Route {
                index,
                reason: format!("no upstream named `{upstream_name}`"),
            });
        };
        let prefix = normalize_route_prefix(section.path.get_ref())
            .map_err(|reason| BuildError::Route { index, reason })?;
        prefixes.push((prefix, section.methods.clone()));
        routes.push(Route {
            service: layers::route_stack(context, index, section, upstream)?,
            metrics: registry.route(section.display_name(), upstream_name),
            strip_prefix: section.strip_prefix,
            needs_deadline: needs_deadline(config, section, context),
            upgrades: upstreams::route_upgrades(section),
        });
    }
    let table = RouteTable::new(
        prefixes
            .iter()
            .map(|(prefix, methods)| (prefix.as_str(), methods.as_deref())),
    );
    Ok((table, routes))
}

/// Whether a route needs the dispatcher's request timer (see [`Route::needs_deadline`]): it
/// does when a layer can wait before forwarding (a Redis check, a JWKS key fetch, a cache
/// miss waiting for another request's fetch), or when its upstream's timeout is longer than
/// `request_timeout`.
fn needs_deadline(
    config: &Config,
    section: &crate::config::RouteSection,
    context: &layers::Context<'_>,
) -> bool {
    let can_wait = (section.rate_limit.is_some() && context.ratelimit.is_redis())
        || (section.cache.is_some() && context.cache.is_some())
        || (context.authenticator.is_some()
            && config
                .jwt
                .as_ref()
                .is_some_and(|jwt| jwt.jwks_url.is_some()));
    let upstream_timeout = config
        .upstreams
        .get(section.upstream.get_ref())
        .map(|upstream| upstream.timeout.get());
    can_wait || upstream_timeout.is_none_or(|timeout| timeout > config.server.request_timeout.get())
}

/// Identity headers the dispatcher removes from every request: with `[jwt]` the auth layer
/// strips (and sets) them; without it nothing may pass a client-made identity upstream.
fn strip_identity(config: &Config) -> Vec<http::HeaderName> {
    match &config.jwt {
        Some(_) => Vec::new(),
        None => vec![
            http::HeaderName::from_static("x-user-id"),
            http::HeaderName::from_static("x-user-role"),
        ],
    }
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
