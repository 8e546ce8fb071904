//! The dispatcher: normalizes the path, finds the route, enforces the body limit and the
//! request timeout, and calls the route's layer stack.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use gateway_core::{ClientIp, PeerAddr, Problem, ResponseBody, TrustedProxies};
use http::header::{ALLOW, CONNECTION, CONTENT_LENGTH, HOST, UPGRADE};
use http::uri::PathAndQuery;
use http::{HeaderValue, Method, Request, Response, StatusCode, Uri, Version};
use hyper::body::Incoming;
use pin_project_lite::pin_project;
use tower_service::Service;

use crate::metrics::RouteMetrics;
use crate::observe::{Observed, Tagged};
use crate::request_body::RequestBody;
use crate::routing::{Match, RouteTable, normalize_path, strip_prefix};

/// One route as the dispatcher calls it.
#[derive(Clone)]
pub struct Route<S> {
    /// The route's layer stack, ending in the upstream's proxy.
    pub service: S,
    /// The route's metrics.
    pub metrics: &'static RouteMetrics,
    /// Whether the matched prefix is removed before forwarding.
    pub strip_prefix: bool,
    /// Whether a request without a body can outlast `[server].request_timeout` without the
    /// dispatcher's own timer. Only a stack that cannot wait before forwarding (no Redis
    /// check, no key fetch) in front of an upstream whose response timeout is no longer can
    /// do without it: the proxy's timer then bounds the request, started microseconds later
    /// (nothing before it waits) and never moved for an empty body.
    pub needs_deadline: bool,
    /// The `Upgrade` protocols the route lets through (`upgrades`).
    pub upgrades: gateway_proxy::UpgradeProtocols,
}

/// What the dispatcher needs of one config generation.
pub struct Routes<S> {
    /// Prefix lookup.
    pub table: RouteTable,
    /// Routes in config order (the table's indices).
    pub routes: Vec<Route<S>>,
    /// `[server].max_body`.
    pub max_body: u64,
    /// `[server].request_timeout`.
    pub request_timeout: Duration,
    /// `[server].trusted_proxies`.
    pub trusted: TrustedProxies,
    /// The pseudo-route of requests no route matched.
    pub unmatched: &'static RouteMetrics,
    /// The process's metrics.
    pub registry: Arc<crate::metrics::Registry>,
    /// `[server].traceparent`.
    pub traceparent: bool,
    /// `[tracing]`: the span exporter, when spans are exported.
    #[cfg(feature = "otlp")]
    pub exporter: Option<Arc<crate::otlp::Exporter>>,
    /// Identity headers removed from every request when no auth layer does it (no `[jwt]`):
    /// upstreams must never see a client-made identity.
    pub strip_identity: Vec<http::HeaderName>,
}

impl<S> Routes<S> {
    /// The request's trace context: the gateway's own span when spans are exported, else a
    /// generated `traceparent` for a request without a valid one (when enabled).
    fn trace(&self, headers: &mut http::HeaderMap, observed: &mut Observed) {
        #[cfg(feature = "otlp")]
        if let Some(exporter) = &self.exporter {
            observed.span = crate::traceparent::enter_span(headers, exporter.sample_ratio())
                .map(|ids| Box::new(crate::otlp::TraceSpan::new(ids, exporter.clone())));
            return;
        }
        let _ = observed;
        if self.traceparent {
            crate::traceparent::ensure(headers);
        }
    }
}

/// Routes requests to their route's stack.
///
/// Each clone (one per client connection) keeps its own copies of the route stacks it has
/// used, made on first use: calling a route then touches no reference count shared with other
/// connections, so workers on different cores do not contend on cache lines per request.
pub struct Dispatch<S> {
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
    pub fn new(routes: Arc<Routes<S>>) -> Self {
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

    fn call(&mut self, mut request: Request<Incoming>) -> Self::Future {
        let routes = &*self.routes;
        let peer = request.extensions().get::<PeerAddr>().map(|p| p.0.ip());
        let client_ip = match peer {
            Some(peer) => routes.trusted.resolve(peer, request.headers()),
            None => std::net::Ipv4Addr::UNSPECIFIED.into(),
        };
        request.extensions_mut().insert(ClientIp(client_ip));
        let unmatched = |response: LocalResponse<B>| {
            DispatchFuture::local(response, Observed::new(routes.unmatched, client_ip))
        };

        if let Err(reason) = check_host(&request) {
            return unmatched(problem(StatusCode::BAD_REQUEST, reason));
        }
        let path = match normalize_path(request.uri().path()) {
            Ok(path) => path,
            Err(error) => {
                return unmatched(problem(StatusCode::BAD_REQUEST, error.to_string()));
            }
        };
        let (index, prefix_len) = match routes.table.find(&path, request.method()) {
            // The gateway tunnels no CONNECT: it answers one itself, whatever its target.
            Match::Route { .. } if request.method() == Method::CONNECT => {
                let mut response = problem(
                    StatusCode::METHOD_NOT_ALLOWED,
                    "the gateway does not tunnel CONNECT requests",
                );
                response
                    .headers_mut()
                    .insert(ALLOW, HeaderValue::from_static(ANY_METHOD_BUT_CONNECT));
                return unmatched(response);
            }
            Match::Route { index, prefix_len } => (index, prefix_len),
            Match::MethodNotAllowed { allow } => {
                let mut response = problem(
                    StatusCode::METHOD_NOT_ALLOWED,
                    "the route does not accept this method",
                );
                if let Ok(allow) = HeaderValue::from_str(allow) {
                    response.headers_mut().insert(ALLOW, allow);
                }
                return unmatched(response);
            }
            Match::NotFound => {
                return unmatched(problem(
                    StatusCode::NOT_FOUND,
                    "no route matches the request path",
                ));
            }
        };
        let route = &routes.routes[index];
        let mut observed = Observed::new(route.metrics, client_ip);

        let declared = request
            .headers()
            .get(CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
        if declared.is_some_and(|len| len > routes.max_body) {
            return DispatchFuture::local(
                problem(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "the request body is larger than the gateway accepts",
                ),
                observed,
            );
        }

        let forward_path = if route.strip_prefix {
            strip_prefix(&path, prefix_len)
        } else {
            &path
        };
        if forward_path != request.uri().path() {
            match rewrite_path(request.uri(), forward_path) {
                Some(uri) => *request.uri_mut() = uri,
                None => {
                    return DispatchFuture::local(
                        problem(
                            StatusCode::BAD_REQUEST,
                            "the request target cannot be forwarded",
                        ),
                        observed,
                    );
                }
            }
        }

        // The connection kept an upgrade offer; only the route's protocols may pass.
        if request.headers().contains_key(UPGRADE)
            && !gateway_proxy::retain_upgrades(request.headers_mut(), &route.upgrades)
        {
            request.headers_mut().remove(CONNECTION);
        }

        // One pass over the names, rather than a lookup per identity header.
        if request
            .headers()
            .keys()
            .any(|name| routes.strip_identity.contains(name))
        {
            for name in &routes.strip_identity {
                request.headers_mut().remove(name);
            }
        }
        routes.trace(request.headers_mut(), &mut observed);

        // A declared length that fits cannot be exceeded (hyper enforces it); only a streamed
        // body without one needs the flag that turns the aborted upstream call into a 413.
        let empty = http_body::Body::is_end_stream(request.body());
        let exceeded = (declared.is_none() && !empty).then(|| Arc::new(AtomicBool::new(false)));
        // Timers cost a registration and a removal each: one per request is enough when the
        // route's own timer bounds it.
        let deadline =
            (route.needs_deadline || !empty).then(|| tokio::time::sleep(routes.request_timeout));
        let request = request.map(|body| RequestBody::new(body, routes.max_body, exceeded.clone()));
        if self.local.len() < routes.routes.len() {
            self.local.resize_with(routes.routes.len(), || None);
        }
        let service = self.local[index].get_or_insert_with(|| route.service.clone());
        // Every layer of a route stack is always ready (the layer rules); poll anyway, so a
        // stack that breaks the rule is noticed in tests rather than misused.
        let ready = service.poll_ready(&mut Context::from_waker(std::task::Waker::noop()));
        debug_assert!(ready.is_ready(), "route stacks are always ready");
        DispatchFuture::Route {
            future: service.call(request),
            deadline,
            observed: Some(observed),
            exceeded,
        }
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

/// Counts what the route's layers decided, from the markers they leave on the response.
fn count_layer_decisions<B>(response: &Response<B>, observed: &Observed) {
    let extensions = response.extensions();
    if let Some(failure) = extensions.get::<gateway_auth::AuthFailure>() {
        observed.route.record_auth_failure(failure.as_str());
    }
    if let Some(decision) = extensions.get::<gateway_ratelimit::RateLimitDecision>() {
        observed.route.record_decision(decision.as_str());
    }
}

pin_project! {
    /// The future of [`Dispatch`]: the route's call under the request deadline, or a response
    /// the dispatcher made itself.
    #[project = DispatchProj]
    // pin-project-lite takes no doc comments on enum fields; the variants say what they hold.
    #[allow(missing_docs)]
    pub enum DispatchFuture<S: Service<Request<RequestBody>>, B> {
        /// The route's stack is answering.
        Route {
            #[pin]
            future: S::Future,
            #[pin]
            deadline: Option<tokio::time::Sleep>,
            observed: Option<Observed>,
            exceeded: Option<Arc<AtomicBool>>,
        },
        /// The dispatcher answered.
        Local {
            response: Option<(LocalResponse<B>, Observed)>,
        },
    }
}

impl<S: Service<Request<RequestBody>>, B> DispatchFuture<S, B> {
    fn local(response: LocalResponse<B>, observed: Observed) -> Self {
        Self::Local {
            response: Some((response, observed)),
        }
    }
}

impl<S, B> Future for DispatchFuture<S, B>
where
    S: Service<Request<RequestBody>, Response = Response<B>, Error = std::convert::Infallible>,
{
    type Output = Result<Response<Tagged<ResponseBody<B>>>, std::convert::Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project() {
            DispatchProj::Route {
                future,
                deadline,
                observed,
                exceeded,
            } => {
                let response = match future.poll(cx) {
                    Poll::Ready(Ok(response)) => {
                        if exceeded
                            .as_ref()
                            .is_some_and(|flag| flag.load(Ordering::Relaxed))
                        {
                            problem(
                                StatusCode::PAYLOAD_TOO_LARGE,
                                "the request body is larger than the gateway accepts",
                            )
                        } else {
                            response.map(ResponseBody::inner)
                        }
                    }
                    Poll::Ready(Err(never)) => match never {},
                    Poll::Pending => {
                        match deadline.as_pin_mut().map(|deadline| deadline.poll(cx)) {
                            Some(Poll::Ready(())) => problem(
                                StatusCode::GATEWAY_TIMEOUT,
                                "the request took longer than the gateway allows",
                            ),
                            Some(Poll::Pending) | None => return Poll::Pending,
                        }
                    }
                };
                let observed = observed
                    .take()
                    .expect("DispatchFuture polled after completion");
                count_layer_decisions(&response, &observed);
                Poll::Ready(Ok(response.map(|body| Tagged::new(body, observed))))
            }
            DispatchProj::Local { response } => {
                let (response, observed) = response
                    .take()
                    .expect("DispatchFuture polled after completion");
                Poll::Ready(Ok(response.map(|body| Tagged::new(body, observed))))
            }
        }
    }
}
