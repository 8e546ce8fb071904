//! The layers of one route, one step per slot. A step returns the slot's layer, or `None`
//! when the route does not have it; [`route_stack`] puts them around the upstream.
//!
//! To add a layer: write its step here, add one line to [`route_stack`] at its place in the
//! order, and say where it sits in the list of the parent module's docs.

use std::convert::Infallible;

use gateway_access::AccessLayer;
use gateway_auth::{Authenticator, JwtAuthLayer};
use gateway_core::ResponseBody;
use gateway_cors::CorsLayer;
use gateway_headers::{HeaderRules, RequestHeadersLayer, ResponseHeadersLayer};
use gateway_ratelimit::{RateLimitBackend, RateLimitLayer};
use http::{Request, Response};
use tower::util::{BoxCloneSyncService, Either, MapResponse};
use tower_layer::Layer;

use super::error::BuildError;
use super::upstreams::{Bare, BuiltUpstream, RouteBody, bare};
use crate::config::{HeaderRulesSection, RouteSection};
use crate::route::request_body::RequestBody;

/// A route with layers, behind one box: its future is allocated once per request (unboxed,
/// every layer's state would size the future of every route, layerless ones included), and
/// the layers' types need no names.
pub(crate) type LayeredRoute =
    BoxCloneSyncService<Request<RequestBody>, Response<RouteBody>, Infallible>;

/// The service of one route: its layers, or the upstream alone when it has none.
pub(crate) type RouteStack = Either<LayeredRoute, Bare>;

/// What the layers of every route are made from.
pub(super) struct Context<'a> {
    pub(super) config: &'a crate::config::Config,
    pub(super) ratelimit: &'a RateLimitBackend,
    pub(super) authenticator: Option<&'a Authenticator>,
    /// `[headers.request]`.
    pub(super) global_request: &'a HeaderRules,
}

/// One route's layers around its upstream: the last line is the outermost layer, so read
/// from the bottom for the order a request passes them (access, CORS, response headers,
/// auth, request headers, rate limit, breaker, proxy).
pub(super) fn route_stack(
    context: &Context<'_>,
    index: usize,
    section: &RouteSection,
    upstream: &BuiltUpstream,
) -> Result<RouteStack, BuildError> {
    let mut layered = false;
    let service = upstream.proxy();
    let service = rejecting(&mut layered, upstream.breaker_layer(), service);
    let service = rejecting(&mut layered, rate_limit(context, section), service);
    let service = rewriting(&mut layered, request_headers(index, section)?, service);
    let service = rewriting(&mut layered, global_request_headers(context), service);
    // A slot is an `Either` holding the service below it twice (with and without the layer),
    // so the stack's type doubles per slot: erased halfway, the compiler has two stacks of 2^4
    // to check instead of one of 2^8, for one more allocation per layered request.
    let service = BoxCloneSyncService::new(service);
    let service = rejecting(&mut layered, authentication(context, section), service);
    let service = rewriting(&mut layered, response_headers(index, section)?, service);
    let service = rejecting(&mut layered, cors(context, section), service);
    let service = rejecting(&mut layered, access(context, section), service);
    Ok(if layered {
        Either::Left(BoxCloneSyncService::new(service))
    } else {
        // Nothing to pass through: calls and responses skip the absent layers' places.
        Either::Right(bare(upstream.timed.clone()))
    })
}

/// The route's IP access lists (`[routes.access]`, else `[access]`): checked first, so a
/// refused client reaches nothing else.
fn access(context: &Context<'_>, section: &RouteSection) -> Option<AccessLayer> {
    let access = context.config.route_access(section)?;
    // Loading built it already: a failure here cannot happen for a loaded config.
    let list = access.get_ref().build().ok()?;
    Some(AccessLayer::new(list))
}

/// The route's CORS policy (`[routes.cors]`, else `[cors]`): before auth, since preflights
/// carry no token.
fn cors(context: &Context<'_>, section: &RouteSection) -> Option<CorsLayer> {
    let cors = context.config.route_cors(section)?;
    let policy = cors.get_ref().build().ok()?;
    Some(CorsLayer::new(policy))
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
