//! Forwarding one request: rewrite it in place, pick a target, send it (retrying when that
//! is safe), and turn the outcome into the client's response.

use std::future::{Future, poll_fn};
use std::pin::pin;
use std::sync::Arc;
use std::task::Poll;

use bytes::Bytes;
use gateway_core::{BoxError, ClientIp, PeerAddr, Problem, UpstreamFailure};
use http::header::{CONNECTION, HOST, TE, UPGRADE};
use http::request::Parts;
use http::uri::{Authority, Scheme};
use http::{HeaderValue, Method, Request, Response, StatusCode, Version};
use http_body::Body;
use hyper::body::Incoming;
use hyper::upgrade::OnUpgrade;
use tokio::time::Instant;

use crate::body::ProxyBody;
use crate::deadline::ResponseTimer;
use crate::headers::{ClientFacts, set_forwarding_headers, strip_hop_by_hop};
use crate::pool::{self, ConnectError, H1Sender, Lease};
use crate::protocols::{retain_upgrades, switched_to_offered};
use crate::replay::Replay;
use crate::request_body::{BodyEnd, Tracked, UpstreamBody};
use crate::target::Target;
use crate::upgrade;
use crate::upstream::Inner;

/// Why no upstream response can be returned.
#[derive(Debug)]
enum Failure {
    /// No target could be reached, or the exchange broke before the response headers.
    Unreachable,
    /// No response headers in time.
    Timeout,
    /// The request cannot be expressed for the target (a `Host` that is no HTTP/2 authority).
    Unforwardable,
    /// The client's body could not be read while it was being forwarded.
    ClientBody,
    /// The upstream has no target (yet): its SRV name has not resolved.
    NoTargets,
}

/// Forwards `request` to one of the upstream's targets.
pub(crate) async fn forward<B>(upstream: Arc<Inner>, request: Request<B>) -> Response<ProxyBody>
where
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    let start = Instant::now();
    let (mut parts, body) = request.into_parts();

    let facts = client_facts(&parts);
    let preserved_host = if upstream.preserve_host {
        facts.host.clone()
    } else {
        None
    };
    let client_upgrade = rewrite_head(&mut parts, facts, &upstream);

    let (body, body_end) = if body.is_end_stream() {
        (UpstreamBody::Empty, None)
    } else {
        let end = Arc::new(BodyEnd::new(upstream.epoch));
        let body = Tracked::new(body, end.clone());
        (UpstreamBody::Stream(Box::pin(body)), Some(end))
    };
    // A request whose whole message is its head can be sent again if its connection breaks
    // after sending; keep a copy when the method allows it.
    let replay = (body_end.is_none() && client_upgrade.is_none() && is_idempotent(&parts.method))
        .then(|| Replay::of(&parts));
    let request = Request::from_parts(parts, body);

    let exchange = Exchange {
        upstream: &upstream,
        upgrade: client_upgrade.is_some(),
        host: preserved_host,
        start,
    };
    let mut timer = pin!(ResponseTimer::new(
        start,
        upstream.response_timeout,
        body_end.clone()
    ));
    let mut run = pin!(exchange.run(request, replay));
    let outcome = poll_fn(|cx| match run.as_mut().poll(cx) {
        Poll::Ready(outcome) => Poll::Ready(outcome),
        Poll::Pending => timer
            .as_mut()
            .poll_expired(cx)
            .map(|()| Err(Failure::Timeout)),
    })
    .await;
    match outcome {
        Ok((response, lease)) => respond(&upstream, response, lease, client_upgrade),
        Err(Failure::Timeout) => {
            tracing::warn!(upstream = %upstream.name, timeout = ?upstream.response_timeout, "upstream response timed out");
            failure_response(&upstream.name, Failure::Timeout)
        }
        // The upload broke, so the exchange did: the client's doing, not the upstream's.
        Err(Failure::Unreachable) if body_end.is_some_and(|end| end.failed()) => {
            tracing::debug!(upstream = %upstream.name, "request body failed while forwarding");
            failure_response(&upstream.name, Failure::ClientBody)
        }
        Err(failure) => failure_response(&upstream.name, failure),
    }
}

/// Rewrites the request head for the upstream: hop-by-hop headers removed, the forwarding
/// headers set, and the upgrade (to an allowed protocol) or gRPC's `TE: trailers` put back.
/// Gives the client's side of the upgrade, with the protocols offered, when there is one.
fn rewrite_head(
    parts: &mut Parts,
    facts: ClientFacts,
    upstream: &Inner,
) -> Option<(OnUpgrade, HeaderValue)> {
    // An upgrade is only forwarded when the server can hand over the client's connection.
    let can_upgrade =
        parts.version == Version::HTTP_11 && parts.extensions.get::<OnUpgrade>().is_some();
    let hop = strip_hop_by_hop(&mut parts.headers, can_upgrade);
    // Only an allowed protocol is offered to the upstream; the client's connection is taken
    // for a tunnel only then.
    let client_upgrade = if hop.upgrade && retain_upgrades(&mut parts.headers, &upstream.upgrades) {
        let offered = parts.headers.get(UPGRADE).cloned();
        parts.extensions.remove::<OnUpgrade>().zip(offered)
    } else {
        None
    };
    set_forwarding_headers(&mut parts.headers, facts, &upstream.trusted);
    if client_upgrade.is_some() {
        parts
            .headers
            .insert(CONNECTION, HeaderValue::from_static("upgrade"));
    } else if hop.te_trailers && upstream.h2c {
        // Allowed on HTTP/2, and gRPC servers insist on it.
        parts
            .headers
            .insert(TE, HeaderValue::from_static("trailers"));
    }

    client_upgrade
}

/// What the forwarding headers are computed from.
fn client_facts(parts: &Parts) -> ClientFacts {
    let scheme = parts
        .extensions
        .get::<Scheme>()
        .or(parts.uri.scheme())
        .map_or(HeaderValue::from_static("http"), |scheme| {
            if *scheme == Scheme::HTTPS {
                HeaderValue::from_static("https")
            } else if *scheme == Scheme::HTTP {
                HeaderValue::from_static("http")
            } else {
                HeaderValue::from_str(scheme.as_str()).unwrap_or(HeaderValue::from_static("http"))
            }
        });
    let host = parts.headers.get(HOST).cloned().or_else(|| {
        let authority = parts.uri.authority()?;
        HeaderValue::from_str(authority.as_str()).ok()
    });
    ClientFacts {
        peer: parts.extensions.get::<PeerAddr>().map(|peer| peer.0.ip()),
        client_ip: parts.extensions.get::<ClientIp>().map(|ip| ip.0),
        scheme,
        host,
    }
}

fn is_idempotent(method: &Method) -> bool {
    matches!(
        *method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE | Method::PUT | Method::DELETE
    )
}

/// How an attempt failed.
struct AttemptError {
    /// The request, when it was not sent (it can go to another target as is).
    unsent: Option<Request<UpstreamBody>>,
    /// The target did not accept a connection.
    refused: bool,
    error: BoxError,
}

impl AttemptError {
    fn connect(request: Request<UpstreamBody>, error: ConnectError) -> Self {
        Self {
            unsent: Some(request),
            refused: true,
            error: error.into(),
        }
    }

    fn send(mut error: hyper::client::conn::TrySendError<Request<UpstreamBody>>) -> Self {
        Self {
            unsent: error.take_message(),
            refused: false,
            error: error.into_error().into(),
        }
    }
}

/// The request to send on a retry.
struct Retry {
    request: Request<UpstreamBody>,
    /// Rebuilt from the client's head: its path has no target base path yet.
    from_replay: bool,
}

type Attempt = Result<(Response<Incoming>, Option<H1Sender>), AttemptError>;

/// One request's way to a response: its attempts on the targets.
struct Exchange<'a> {
    upstream: &'a Inner,
    upgrade: bool,
    /// The client's `Host`, with `preserve_host`.
    host: Option<HeaderValue>,
    start: Instant,
}

impl Exchange<'_> {
    /// Tries a target, and at most one more: another target when the first refused the
    /// connection, or when the connection broke after sending a request that can be
    /// replayed.
    async fn run(
        &self,
        mut request: Request<UpstreamBody>,
        mut replay: Option<Replay>,
    ) -> Result<(Response<Incoming>, Lease), Failure> {
        let upstream = self.upstream;
        let h2 = upstream.h2c && !self.upgrade;
        // The target the request was pointed at last: its base path is already in the URI.
        let mut previous: Option<Arc<Target>> = None;
        let mut avoid = None;
        let mut retried = false;
        loop {
            let picked = upstream.targets.with(|set| {
                let index = upstream.balancer.pick(set, avoid);
                Some((index, set.targets.get(index)?.clone(), set.len()))
            });
            // Only an SRV name that never resolved leaves an upstream without targets.
            let (index, target, count) = picked.ok_or(Failure::NoTargets)?;
            let base = previous.as_ref().map_or("", |p| p.url.base_path());
            self.retarget(&mut request, base, &target, h2)?;

            let mut lease = Lease::new(target);
            let target = lease.target();
            let attempt = if h2 {
                // Boxed: the HTTP/2 path would make every request's future larger.
                Box::pin(self.send_h2(target, request)).await
            } else {
                // Written inline rather than as a method: the request is then held in one
                // place in this future, which every request allocates and moves.
                let mut pooled = !self.upgrade;
                loop {
                    let conn = if pooled {
                        pool::checkout(target, self.start)
                    } else {
                        None
                    };
                    pooled = conn.is_some();
                    let mut conn = match conn {
                        Some(conn) => conn,
                        None => {
                            // Boxed: connecting is rare, and its future is large.
                            let connect =
                                pool::open_h1(target, upstream.connect_timeout, self.upgrade);
                            match Box::pin(connect).await {
                                Ok(conn) => conn,
                                Err(error) => break Err(AttemptError::connect(request, error)),
                            }
                        }
                    };
                    match conn.try_send_request(request).await {
                        Ok(response) => break Ok((response, Some(conn))),
                        Err(mut error) => match error.take_message() {
                            // A pooled connection that closed meanwhile hands the request
                            // back unsent: try the next one.
                            Some(unsent) if pooled => request = unsent,
                            _ => break Err(AttemptError::send(error)),
                        },
                    }
                }
            };
            let error = match attempt {
                Ok((response, conn)) => {
                    if let Some(conn) = conn {
                        lease.hold(conn);
                    }
                    return Ok((response, lease));
                }
                Err(error) => error,
            };
            let next = self.retry(error, lease.target(), count, &mut replay, retried);
            match next {
                Some(next) => {
                    // A replayed request starts from the client's path again.
                    previous = (!next.from_replay).then(|| lease.target().clone());
                    drop(lease);
                    request = next.request;
                    retried = true;
                    avoid = Some(index);
                }
                None => return Err(Failure::Unreachable),
            }
        }
    }

    /// After a failed attempt on `target`: ejects it when it refused the connection, and
    /// gives the request to try next, if any. An unsent request may go to another target;
    /// a sent one only when it can be replayed (to the same target when it is the only one:
    /// a fresh connection often succeeds); and only one retry per request.
    fn retry(
        &self,
        error: AttemptError,
        target: &Target,
        targets: usize,
        replay: &mut Option<Replay>,
        retried: bool,
    ) -> Option<Retry> {
        let upstream = self.upstream;
        if error.refused {
            target.eject(upstream.eject_for);
        }
        let next = match error.unsent {
            Some(unsent) if targets > 1 => Some(Retry {
                request: unsent,
                from_replay: false,
            }),
            Some(_) => None,
            None => replay.take().map(|replay| Retry {
                request: replay.into_request(),
                from_replay: true,
            }),
        };
        match next {
            Some(next) if !retried => {
                tracing::debug!(upstream = %upstream.name, target = %target.url, error = %error.error, "retrying on another target");
                Some(next)
            }
            _ => {
                tracing::warn!(upstream = %upstream.name, target = %target.url, error = %error.error, "upstream unreachable");
                None
            }
        }
    }

    /// Points the request at `target`: URI (base path, form), `Host`, version.
    fn retarget(
        &self,
        request: &mut Request<UpstreamBody>,
        from_base: &str,
        target: &Target,
        h2: bool,
    ) -> Result<(), Failure> {
        let authority = if h2 {
            Some(match &self.host {
                Some(host) => {
                    Authority::try_from(host.as_bytes()).map_err(|_| Failure::Unforwardable)?
                }
                None => target.url.authority().clone(),
            })
        } else {
            None
        };
        let uri = std::mem::take(request.uri_mut());
        *request.uri_mut() =
            crate::uri::upstream_uri(uri, from_base, target.url.base_path(), authority).map_err(
                |error| {
                    tracing::warn!(%error, "request target cannot be forwarded");
                    Failure::Unforwardable
                },
            )?;
        if h2 {
            // `:authority` replaces `Host` on HTTP/2.
            request.headers_mut().remove(HOST);
            *request.version_mut() = Version::HTTP_2;
        } else {
            let host = self.host.as_ref().unwrap_or(&target.host_header);
            request.headers_mut().insert(HOST, host.clone());
            *request.version_mut() = Version::HTTP_11;
        }
        Ok(())
    }

    /// Sends on this thread's HTTP/2 connection to the target, opening it when there is
    /// none or it closed.
    async fn send_h2(&self, target: &Arc<Target>, mut request: Request<UpstreamBody>) -> Attempt {
        let upstream = self.upstream;
        let mut shared = pool::shared_h2(target);
        loop {
            let reused = shared.is_some();
            let mut conn = match shared.take() {
                Some(conn) => conn,
                None => match pool::open_h2(target, upstream.connect_timeout).await {
                    Ok(conn) => {
                        pool::share_h2(target, &conn);
                        conn
                    }
                    Err(error) => return Err(AttemptError::connect(request, error)),
                },
            };
            match conn.try_send_request(request).await {
                Ok(response) => return Ok((response, None)),
                Err(mut error) => match error.take_message() {
                    Some(unsent) if reused => {
                        pool::forget_h2(target);
                        request = unsent;
                    }
                    message => {
                        let mut error = AttemptError::send(error);
                        error.unsent = message;
                        return Err(error);
                    }
                },
            }
        }
    }
}

/// The client's response from the upstream's: hop-by-hop headers removed, the body streamed
/// with the lease, or the tunnel started after a `101 Switching Protocols` to the offered
/// protocol.
fn respond(
    upstream: &Inner,
    mut response: Response<Incoming>,
    lease: Lease,
    client_upgrade: Option<(OnUpgrade, HeaderValue)>,
) -> Response<ProxyBody> {
    if response.status() == StatusCode::SWITCHING_PROTOCOLS {
        let Some((client, offered)) = client_upgrade else {
            tracing::warn!(upstream = %upstream.name, target = %lease.target().url, "upstream switched protocols unasked");
            return failure_response(&upstream.name, Failure::Unreachable);
        };
        if !switched_to_offered(&offered, response.headers()) {
            tracing::warn!(upstream = %upstream.name, target = %lease.target().url, "upstream switched to a protocol that was not offered");
            return failure_response(&upstream.name, Failure::Unreachable);
        }
        strip_hop_by_hop(response.headers_mut(), true);
        response
            .headers_mut()
            .insert(CONNECTION, HeaderValue::from_static("upgrade"));
        let upstream_io = hyper::upgrade::on(&mut response);
        upgrade::spawn_tunnel(client, upstream_io, lease);
        return response.map(|body| ProxyBody::upstream(body, None));
    }
    strip_hop_by_hop(response.headers_mut(), false);
    response.map(|body| ProxyBody::upstream(body, Some(lease)))
}

fn failure_response(name: &str, failure: Failure) -> Response<ProxyBody> {
    let (problem, marker) = match failure {
        Failure::Unreachable => (
            Problem::new(StatusCode::BAD_GATEWAY)
                .with_detail(format!("upstream `{name}` is unreachable")),
            Some(UpstreamFailure::Unreachable),
        ),
        Failure::Timeout => (
            Problem::new(StatusCode::GATEWAY_TIMEOUT)
                .with_detail(format!("upstream `{name}` did not respond in time")),
            Some(UpstreamFailure::Timeout),
        ),
        Failure::Unforwardable => (
            Problem::new(StatusCode::BAD_REQUEST)
                .with_detail("the request's host or target cannot be forwarded"),
            None,
        ),
        Failure::NoTargets => (
            Problem::new(StatusCode::SERVICE_UNAVAILABLE).with_detail(format!(
                "upstream `{name}` has no targets: its names have not resolved"
            )),
            None,
        ),
        Failure::ClientBody => (
            Problem::new(StatusCode::BAD_REQUEST).with_detail("the request body could not be read"),
            None,
        ),
    };
    let mut response = problem.into_response().map(ProxyBody::local);
    if let Some(marker) = marker {
        response.extensions_mut().insert(marker);
    }
    response
}
