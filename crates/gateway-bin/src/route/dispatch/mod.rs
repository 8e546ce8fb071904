//! The dispatcher: checks the request's host and path, finds its route, applies the route's
//! request policies (upgrade protocols, identity headers, trace context, body limit, request
//! timeout) and calls the route's layer stack. Each of those is one step of [`Routes::prepare`]
//! or [`Dispatch::call`].

use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use gateway_core::{ClientIp, Problem, ResponseBody};
use http::header::{ALLOW, CONNECTION, HOST, UPGRADE};
use http::uri::PathAndQuery;
use http::{HeaderValue, Method, Request, Response, StatusCode, Uri, Version};
use hyper::body::Incoming;
use tower_service::Service;

mod future;

pub(crate) use future::DispatchFuture;

use crate::observe::metrics::RouteMetrics;
use crate::observe::{Observed, Tagged};
use crate::route::path::{normalize_path, strip_prefix};
use crate::route::request_body::{BodyLimit, RequestBody};
use crate::route::table::{Match, RouteTable};

/// One route as the dispatcher calls it.
#[derive(Clone)]
pub(crate) struct Route<S> {
    /// The route's layer stack, ending in the upstream's proxy.
    pub(crate) service: S,
    /// The route's metrics.
    pub(crate) metrics: &'static RouteMetrics,
    /// Whether the matched prefix is removed before forwarding.
    pub(crate) strip_prefix: bool,
    /// Whether a request without a body can outlast `[server].request_timeout` without the
    /// dispatcher's own timer. Only a stack that cannot wait before forwarding (no Redis
    /// check, no key fetch) in front of an upstream whose response timeout is no longer can
    /// do without it: the proxy's timer then bounds the request, started microseconds later
    /// (nothing before it waits) and never moved for an empty body.
    pub(crate) needs_deadline: bool,
    /// The `Upgrade` protocols the route lets through (`upgrades`).
    pub(crate) upgrades: gateway_proxy::UpgradeProtocols,
}

/// What the dispatcher needs of one config generation.
pub(crate) struct Routes<S> {
    /// Prefix lookup.
    pub(crate) table: RouteTable,
    /// Routes in config order (the table's indices).
    pub(crate) routes: Vec<Route<S>>,
    /// `[server].max_body`.
    pub(crate) max_body: u64,
    /// `[server].request_timeout`.
    pub(crate) request_timeout: Duration,
    /// The pseudo-route of requests no route matched.
    pub(crate) unmatched: &'static RouteMetrics,
    /// `[server].traceparent`.
    pub(crate) traceparent: bool,
    /// `[tracing]`: the span exporter, when spans are exported.
    #[cfg(feature = "otlp")]
    pub(crate) exporter: Option<Arc<crate::observe::otlp::Exporter>>,
    /// Identity headers removed from every request when no auth layer does it (no `[jwt]`):
    /// upstreams must never see a client-made identity.
    pub(crate) strip_identity: Vec<http::HeaderName>,
}

/// Routes requests to their route's stack.
///
/// Each clone (one per client connection) keeps its own copies of the route stacks it has
/// used, made on first use: calling a route then touches no reference count shared with other
/// connections, so workers on different cores do not contend on cache lines per request.
pub(crate) struct Dispatch<S> {
    routes: Arc<Routes<S>>,
    local: Vec<Option<S>>,
}

impl<S> Clone for Dispatch<S> {
    fn clone(&self) -> Self {
        Self {
            routes: self.routes.clone(),
            local: Vec::new(),
        }
    }
}

impl<S> Dispatch<S> {
    /// A dispatcher over a generation's routes.
    pub(crate) fn new(routes: Arc<Routes<S>>) -> Self {
        Self {
            routes,
            local: Vec::new(),
        }
    }
}

type LocalResponse<B> = Response<ResponseBody<B>>;

fn problem<B>(
    status: StatusCode,
    detail: impl Into<std::borrow::Cow<'static, str>>,
) -> LocalResponse<B> {
    ResponseBody::problem(Problem::new(status).with_detail(detail))
}

/// A request the dispatcher answers itself: why, and the route it counts under (`None`: the
/// unmatched pseudo-route). The response is made only once it is known to be needed.
struct Refusal {
    status: StatusCode,
    detail: std::borrow::Cow<'static, str>,
    /// The `Allow` header of a 405.
    allow: Option<HeaderValue>,
    route: Option<usize>,
}

impl Refusal {
    fn unmatched(status: StatusCode, detail: impl Into<std::borrow::Cow<'static, str>>) -> Self {
        Self {
            status,
            detail: detail.into(),
            allow: None,
            route: None,
        }
    }

    fn on_route(
        index: usize,
        status: StatusCode,
        detail: impl Into<std::borrow::Cow<'static, str>>,
    ) -> Self {
        Self {
            route: Some(index),
            ..Self::unmatched(status, detail)
        }
    }

    fn into_response<B>(self) -> LocalResponse<B> {
        let mut response = problem(self.status, self.detail);
        if let Some(allow) = self.allow {
            response.headers_mut().insert(ALLOW, allow);
        }
        response
    }
}

/// A request ready for its route's stack.
struct Prepared {
    index: usize,
    request: Request<RequestBody>,
    limit: BodyLimit,
}

impl<S> Routes<S> {
    /// The dispatcher's steps before the route's stack, in order; the first that refuses
    /// answers the request.
    fn prepare(&self, mut request: Request<Incoming>) -> Result<Prepared, Refusal> {
        check_host(&request)
            .map_err(|reason| Refusal::unmatched(StatusCode::BAD_REQUEST, reason))?;
        let index = self.route(&mut request)?;
        let route = &self.routes[index];
        route.allow_upgrades(request.headers_mut());
        self.remove_identity(request.headers_mut());
        let (request, limit) = BodyLimit::apply(request, self.max_body).map_err(|_| {
            Refusal::on_route(
                index,
                StatusCode::PAYLOAD_TOO_LARGE,
                "the request body is larger than the gateway accepts",
            )
        })?;
        Ok(Prepared {
            index,
            request,
            limit,
        })
    }

    /// Finds the request's route by its normalized path and method, and points the request at
    /// the path to forward (normalized, the prefix stripped where the route says so).
    fn route(&self, request: &mut Request<Incoming>) -> Result<usize, Refusal> {
        let path = normalize_path(request.uri().path())
            .map_err(|error| Refusal::unmatched(StatusCode::BAD_REQUEST, error.to_string()))?;
        let (index, prefix_len) = match self.table.find(&path, request.method()) {
            // The gateway tunnels no CONNECT: it answers one itself, whatever its target.
            Match::Route { .. } if request.method() == Method::CONNECT => {
                return Err(method_not_allowed(
                    "the gateway does not tunnel CONNECT requests",
                    ANY_METHOD_BUT_CONNECT,
                ));
            }
            Match::Route { index, prefix_len } => (index, prefix_len),
            Match::MethodNotAllowed { allow } => {
                return Err(method_not_allowed(
                    "the route does not accept this method",
                    allow,
                ));
            }
            Match::NotFound => {
                return Err(Refusal::unmatched(
                    StatusCode::NOT_FOUND,
                    "no route matches the request path",
                ));
            }
        };
        let forward_path = if self.routes[index].strip_prefix {
            strip_prefix(&path, prefix_len)
        } else {
            &path
        };
        if forward_path != request.uri().path() {
            let uri = rewrite_path(request.uri(), forward_path).ok_or_else(|| {
                Refusal::on_route(
                    index,
                    StatusCode::BAD_REQUEST,
                    "the request target cannot be forwarded",
                )
            })?;
            *request.uri_mut() = uri;
        }
        Ok(index)
    }

    /// Removes client-sent identity headers when no auth layer does (no `[jwt]`); one pass
    /// over the names rather than a lookup per identity header.
    fn remove_identity(&self, headers: &mut http::HeaderMap) {
        if headers
            .keys()
            .any(|name| self.strip_identity.contains(name))
        {
            for name in &self.strip_identity {
                headers.remove(name);
            }
        }
    }

    /// The request's trace context: the gateway's own span when spans are exported, else a
    /// generated `traceparent` for a request without a valid one (when enabled).
    fn trace(&self, headers: &mut http::HeaderMap, observed: &mut Observed) {
        #[cfg(feature = "otlp")]
        if let Some(exporter) = &self.exporter {
            observed.span =
                crate::observe::traceparent::enter_span(headers, exporter.sample_ratio()).map(
                    |ids| Box::new(crate::observe::otlp::TraceSpan::new(ids, exporter.clone())),
                );
            return;
        }
        let _ = observed;
        if self.traceparent {
            crate::observe::traceparent::ensure(headers);
        }
    }
}

impl<S> Route<S> {
    /// Lets only the route's protocols through in an upgrade offer the connection kept.
    fn allow_upgrades(&self, headers: &mut http::HeaderMap) {
        if headers.contains_key(UPGRADE) && !gateway_proxy::retain_upgrades(headers, &self.upgrades)
        {
            headers.remove(CONNECTION);
        }
    }
}

impl<S, B> Service<Request<Incoming>> for Dispatch<S>
where
    S: Service<Request<RequestBody>, Response = Response<B>, Error = std::convert::Infallible>
        + Clone,
{
    type Response = Response<Tagged<ResponseBody<B>>>;
    type Error = std::convert::Infallible;
    type Future = DispatchFuture<S, B>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<Incoming>) -> Self::Future {
        let routes = &*self.routes;
        // Resolved by the front's client-IP layer.
        let client_ip = ClientIp::of(&request).unwrap_or(std::net::Ipv4Addr::UNSPECIFIED.into());
        let Prepared {
            index,
            mut request,
            limit,
        } = match routes.prepare(request) {
            Ok(prepared) => prepared,
            Err(refusal) => {
                let metrics = refusal
                    .route
                    .map_or(routes.unmatched, |index| routes.routes[index].metrics);
                let observed = Observed::new(metrics, client_ip);
                return DispatchFuture::local(refusal.into_response(), observed);
            }
        };
        let route = &routes.routes[index];
        let mut observed = Observed::new(route.metrics, client_ip);
        routes.trace(request.headers_mut(), &mut observed);
        // Timers cost a registration and a removal each: one per request is enough when the
        // route's own timer bounds it.
        let empty = http_body::Body::is_end_stream(request.body());
        let deadline =
            (route.needs_deadline || !empty).then(|| tokio::time::sleep(routes.request_timeout));
        let service = self.local_service(index);
        DispatchFuture::Route {
            future: service.call(request),
            deadline,
            observed: Some(observed),
            limit,
        }
    }
}

impl<S: Clone> Dispatch<S> {
    /// This connection's copy of a route's stack, made on first use.
    fn local_service<B>(&mut self, index: usize) -> &mut S
    where
        S: Service<Request<RequestBody>, Response = Response<B>, Error = std::convert::Infallible>,
    {
        let routes = &self.routes.routes;
        if self.local.len() < routes.len() {
            self.local.resize_with(routes.len(), || None);
        }
        let service = self.local[index].get_or_insert_with(|| routes[index].service.clone());
        // Every layer of a route stack is always ready (the layer rules); poll anyway, so a
        // stack that breaks the rule is noticed in tests rather than misused.
        let ready = service.poll_ready(&mut Context::from_waker(std::task::Waker::noop()));
        debug_assert!(ready.is_ready(), "route stacks are always ready");
        service
    }
}

fn method_not_allowed(detail: &'static str, allow: &str) -> Refusal {
    Refusal {
        allow: HeaderValue::from_str(allow).ok(),
        ..Refusal::unmatched(StatusCode::METHOD_NOT_ALLOWED, detail)
    }
}

/// The `Allow` value of a route that takes any method, for a CONNECT it refuses.
const ANY_METHOD_BUT_CONNECT: &str = "GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS, TRACE";

/// RFC 9112 §3.2: an HTTP/1.1 request names its host in exactly one `Host` header; a request
/// whose target carries an authority (HTTP/2's `:authority`, an absolute-form target) has a
/// `Host` that agrees with it, if any. Otherwise the host the gateway routes and forwards
/// (`X-Forwarded-Host`, `preserve_host`) would not be the one the client's target names.
fn check_host<B>(request: &Request<B>) -> Result<(), &'static str> {
    let mut hosts = request.headers().get_all(HOST).iter();
    let host = hosts.next();
    if hosts.next().is_some() {
        return Err("the request has more than one Host header");
    }
    match (host, request.uri().authority()) {
        (None, None) if request.version() == Version::HTTP_11 => {
            Err("an HTTP/1.1 request needs a Host header")
        }
        (Some(host), Some(authority))
            if !host
                .as_bytes()
                .eq_ignore_ascii_case(authority.as_str().as_bytes()) =>
        {
            Err("the Host header differs from the request's authority")
        }
        _ => Ok(()),
    }
}

/// The request's URI with another path and the same query, byte for byte.
fn rewrite_path(uri: &Uri, path: &str) -> Option<Uri> {
    let path_and_query = match uri.query() {
        Some(query) => {
            let mut pq = String::with_capacity(path.len() + 1 + query.len());
            pq.push_str(path);
            pq.push('?');
            pq.push_str(query);
            PathAndQuery::from_maybe_shared(Bytes::from(pq)).ok()?
        }
        None => PathAndQuery::from_maybe_shared(Bytes::copy_from_slice(path.as_bytes())).ok()?,
    };
    let mut parts = uri.clone().into_parts();
    parts.path_and_query = Some(path_and_query);
    Uri::from_parts(parts).ok()
}
