//! The layers of one route, one step per slot. A step returns the slot's layer, or `None`
//! when the route does not have it; [`route_stack`] puts them around the upstream.
//!
//! To add a layer: write its step here, add one line to [`route_stack`] at its place in the
//! order, and say where it sits in the list of the parent module's docs.

use std::convert::Infallible;

use gateway_access::{AccessLayer, AccessList};
use gateway_auth::{Authenticator, JwtAuthLayer};
use gateway_cache::{CacheBody, CacheLayer, CacheStore};
use gateway_compression::{CompressionLayer, CompressionPolicy};
use gateway_core::ResponseBody;
use gateway_cors::{CorsLayer, CorsPolicy};
use gateway_headers::{HeaderRules, RequestHeadersLayer, ResponseHeadersLayer};
use gateway_ratelimit::{RateLimitBackend, RateLimitLayer};
use http::{Request, Response};
use tower::util::{BoxCloneSyncService, Either, MapResponse};
use tower_layer::Layer;

use super::error::BuildError;
use super::upstreams::{Bare, BuiltUpstream, RouteBody, bare};
use crate::config::{
    AccessSection, CompressionSection, CorsSection, HeaderRulesSection, RouteCompression,
    RouteSection,
};
use crate::route::request_body::RequestBody;
use toml::Spanned;

/// A route with layers, behind one box: its future is allocated once per request (unboxed,
/// every layer's state would size the future of every route, layerless ones included), and
/// the layers' types need no names.
pub(crate) type LayeredRoute =
    BoxCloneSyncService<Request<RequestBody>, Response<RouteBody>, Infallible>;

/// The service of one route: its layers, or the upstream alone when it has none.
pub(crate) type RouteStack = Either<LayeredRoute, Bare>;

/// What the layers of every route are made from.
pub(super) struct Context<'a> {
    /// `[access]`, built once for the routes without their own.
    pub(super) access: Option<AccessList>,
    /// `[cors]`, built once for the routes without their own.
    pub(super) cors: Option<CorsPolicy>,
    /// `[compression]`, built once for the routes without their own (`None`: the section is
    /// absent).
    pub(super) compression: Option<CompressionPolicy>,
    pub(super) ratelimit: &'a RateLimitBackend,
    pub(super) authenticator: Option<&'a Authenticator>,
    /// The response store (`[cache]`).
    pub(super) cache: Option<&'a CacheStore>,
    /// Where each route's cache results are counted (kept across reloads).
    pub(super) registry: &'a crate::observe::metrics::Registry,
    /// Whether the listener terminates TLS: the scheme of the cache keys.
    pub(super) tls: bool,
    /// `[server].request_timeout`: how long a request waits for another's fetch.
    pub(super) request_timeout: std::time::Duration,
    /// `[headers.request]`.
    pub(super) global_request: &'a HeaderRules,
}

/// One route's layers around its upstream: the last line is the outermost layer, so read
/// from the bottom for the order a request passes them (access, CORS, response headers,
/// auth, request headers, rate limit, cache, breaker, compression, proxy).
pub(super) fn route_stack(
    context: &Context<'_>,
    index: usize,
    section: &RouteSection,
    upstream: &BuiltUpstream,
) -> Result<RouteStack, BuildError> {
    // A slot is an `Either` holding the service below it twice (with and without the layer),
    // so the stack's type doubles per slot. The stack is built in two halves, each erased
    // into a box only when it has a layer: the compiler checks stacks of 2^5 and 2^5 instead
    // of one of 2^10, and only a route with layers in both halves pays a second allocation.
    let mut layered = false;
    let service = match compression(context, index, section)? {
        Some(compression) => {
            layered = true;
            Either::Left(upstream.compressed(&compression))
        }
        None => Either::Right(upstream.proxy()),
    };
    let service = rejecting(&mut layered, upstream.breaker_layer(), service);
    let service = caching(&mut layered, cache(context, index, section)?, service);
    let service = rejecting(&mut layered, rate_limit(context, section), service);
    let service = rewriting(&mut layered, request_headers(index, section)?, service);
    let inner = erased(layered, service, upstream);

    let mut layered = false;
    let service = inner.clone();
    let service = rewriting(&mut layered, global_request_headers(context), service);
    let service = rejecting(&mut layered, authentication(context, section), service);
    let service = rewriting(&mut layered, response_headers(index, section)?, service);
    let service = rejecting(&mut layered, cors(context, index, section)?, service);
    let service = rejecting(&mut layered, access(context, index, section)?, service);
    Ok(if layered {
        Either::Left(BoxCloneSyncService::new(service))
    } else {
        inner
    })
}

/// One half of a route's stack behind a box, or the upstream alone when the half has no layer
/// (calls and responses then skip the absent layers' places).
fn erased<S>(layered: bool, service: S, upstream: &BuiltUpstream) -> RouteStack
where
    S: tower_service::Service<
            Request<RequestBody>,
            Response = Response<RouteBody>,
            Error = Infallible,
            Future: Send + 'static,
        > + Clone
        + Send
        + Sync
        + 'static,
{
    if layered {
        Either::Left(BoxCloneSyncService::new(service))
    } else {
        Either::Right(bare(upstream.timed.clone()))
    }
}

/// The route's IP access lists (`[routes.access]`, else `[access]`): checked first, so a
/// refused client reaches nothing else.
fn access(
    context: &Context<'_>,
    index: usize,
    section: &RouteSection,
) -> Result<Option<AccessLayer>, BuildError> {
    let list = match &section.access {
        Some(own) => access_list(Some(own), || format!("routes[{index}].access"))?,
        None => context.access.clone(),
    };
    Ok(list.map(AccessLayer::new))
}

/// Builds an access section. Loading checked it already; a `Config` made in code may not
/// have been, and a list that cannot be built must not leave the route open.
pub(super) fn access_list(
    section: Option<&Spanned<AccessSection>>,
    field: impl FnOnce() -> String,
) -> Result<Option<AccessList>, BuildError> {
    section
        .map(|section| {
            section
                .get_ref()
                .build()
                .map_err(|source| BuildError::Access {
                    field: field(),
                    source,
                })
        })
        .transpose()
}

/// The route's CORS policy (`[routes.cors]`, else `[cors]`): before auth, since preflights
/// carry no token.
fn cors(
    context: &Context<'_>,
    index: usize,
    section: &RouteSection,
) -> Result<Option<CorsLayer>, BuildError> {
    let policy = match &section.cors {
        Some(own) => cors_policy(Some(own), || format!("routes[{index}].cors"))?,
        None => context.cors.clone(),
    };
    Ok(policy.map(CorsLayer::new))
}

/// Builds a CORS section (see [`access_list`] for why again).
pub(super) fn cors_policy(
    section: Option<&Spanned<CorsSection>>,
    field: impl FnOnce() -> String,
) -> Result<Option<CorsPolicy>, BuildError> {
    section
        .map(|section| {
            section
                .get_ref()
                .build()
                .map_err(|source| BuildError::Cors {
                    field: field(),
                    source,
                })
        })
        .transpose()
}

/// The route's response compression (`compression` on the route, else `[compression]`):
/// right around the proxy, so the responses layers make themselves are sent as they are.
fn compression(
    context: &Context<'_>,
    index: usize,
    section: &RouteSection,
) -> Result<Option<CompressionLayer>, BuildError> {
    let policy = match section.compression.as_ref().map(Spanned::get_ref) {
        None => context.compression.clone(),
        Some(RouteCompression::Enabled(false)) => None,
        Some(RouteCompression::Enabled(true)) => {
            Some(context.compression.clone().unwrap_or_default())
        }
        Some(RouteCompression::Settings(own)) => Some(compression_policy(own, || {
            format!("routes[{index}].compression")
        })?),
    };
    Ok(policy.map(CompressionLayer::new))
}

/// Builds a compression table (see [`access_list`] for why again).
pub(super) fn compression_policy(
    section: &CompressionSection,
    field: impl FnOnce() -> String,
) -> Result<CompressionPolicy, BuildError> {
    section.build().map_err(|source| BuildError::Compression {
        field: field(),
        source,
    })
}

/// The route's response cache (`[routes.cache]`, in the `[cache]` store): after auth and
/// the rate limit, before the breaker (see the parent module's docs for why).
fn cache(
    context: &Context<'_>,
    index: usize,
    section: &RouteSection,
) -> Result<Option<CacheLayer>, BuildError> {
    let (Some(settings), Some(store)) = (&section.cache, context.cache) else {
        return Ok(None);
    };
    let policy = settings
        .get_ref()
        .build()
        .map_err(|source| BuildError::Cache {
            field: format!("routes[{index}].cache"),
            source,
        })?;
    let metrics = context
        .registry
        .route(section.display_name(), section.upstream.get_ref());
    let scheme = if context.tls {
        http::uri::Scheme::HTTPS
    } else {
        http::uri::Scheme::HTTP
    };
    let policy = policy
        .scope(section.display_name())
        .scheme(scheme)
        .coalesce_timeout(context.request_timeout)
        .counters(metrics.cache_counters().clone());
    Ok(Some(CacheLayer::new(store.clone(), policy)))
}

/// The route's rate limit (after auth, so `key = "user"` is known).
fn rate_limit(context: &Context<'_>, section: &RouteSection) -> Option<RateLimitLayer> {
    let limit = section.rate_limit.as_ref()?;
    Some(RateLimitLayer::from_config(
        context.ratelimit,
        section.display_name(),
        limit,
    ))
}

/// The route's request header rules (inside the global ones, so they can override them).
fn request_headers(
    index: usize,
    section: &RouteSection,
) -> Result<Option<RequestHeadersLayer>, BuildError> {
    let rules = header_rules(section.request_headers.as_ref(), || {
        format!("routes[{index}].request_headers")
    })?;
    Ok((!rules.is_empty()).then(|| RequestHeadersLayer::new(rules)))
}

/// `[headers.request]` (after auth, so `{claim.NAME}` is known).
fn global_request_headers(context: &Context<'_>) -> Option<RequestHeadersLayer> {
    let rules = context.global_request;
    (!rules.is_empty()).then(|| RequestHeadersLayer::new(rules.clone()))
}

/// JWT authentication, on every route when `[jwt]` exists: it strips client-sent identity
/// headers everywhere, verifies on routes with `auth`, and sets the forwarded claim headers.
fn authentication(context: &Context<'_>, section: &RouteSection) -> Option<JwtAuthLayer> {
    let authenticator = context.authenticator?;
    Some(
        JwtAuthLayer::new(authenticator.clone())
            .mode(*section.auth.get_ref())
            .roles(section.roles.iter().cloned()),
    )
}

/// The route's response header rules.
fn response_headers(
    index: usize,
    section: &RouteSection,
) -> Result<Option<ResponseHeadersLayer>, BuildError> {
    let rules = header_rules(section.response_headers.as_ref(), || {
        format!("routes[{index}].response_headers")
    })?;
    Ok((!rules.is_empty()).then(|| ResponseHeadersLayer::new(rules)))
}

/// Compiles a header rule set; an absent one is empty.
pub(crate) fn header_rules(
    rules: Option<&HeaderRulesSection>,
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

/// A layer's response body around a route body, as one route body: a layer that answers
/// itself (401, 429, 503) wraps its inner service's body, and unwrapping here keeps every
/// route's body one type, however many such layers it has.
type Flatten = fn(Response<ResponseBody<RouteBody>>) -> Response<RouteBody>;

fn flatten(response: Response<ResponseBody<RouteBody>>) -> Response<RouteBody> {
    response.map(|body| match body {
        ResponseBody::Inner { body } => body,
        ResponseBody::Local { body } => ResponseBody::Local { body },
    })
}

/// A slot whose layer may answer requests itself; absent, the inner service as it is.
fn rejecting<L: Layer<S>, S>(
    layered: &mut bool,
    layer: Option<L>,
    inner: S,
) -> Either<MapResponse<L::Service, Flatten>, S> {
    match layer {
        Some(layer) => {
            *layered = true;
            Either::Left(MapResponse::new(layer.layer(inner), flatten as Flatten))
        }
        None => Either::Right(inner),
    }
}

/// The cache's body around a route body, as one route body: what the cache passes through is
/// the route body itself; what it serves becomes the upstream body's cached variant.
type Uncache = fn(Response<CacheBody<RouteBody>>) -> Response<RouteBody>;

fn uncache(response: Response<CacheBody<RouteBody>>) -> Response<RouteBody> {
    response.map(|body| match body {
        CacheBody::Inner { body } => body,
        CacheBody::Cached { body } => ResponseBody::inner(CacheBody::cached(body)),
    })
}

/// The cache's slot; absent, the inner service.
fn caching<S>(
    layered: &mut bool,
    layer: Option<CacheLayer>,
    inner: S,
) -> Either<MapResponse<gateway_cache::Cache<S>, Uncache>, S> {
    match layer {
        Some(layer) => {
            *layered = true;
            Either::Left(MapResponse::new(layer.layer(inner), uncache as Uncache))
        }
        None => Either::Right(inner),
    }
}

/// A slot whose layer only rewrites requests or responses; absent, the inner service.
fn rewriting<L: Layer<S>, S>(
    layered: &mut bool,
    layer: Option<L>,
    inner: S,
) -> Either<L::Service, S> {
    match layer {
        Some(layer) => {
            *layered = true;
            Either::Left(layer.layer(inner))
        }
        None => Either::Right(inner),
    }
}
