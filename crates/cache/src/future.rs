//! The response future: an answer made at call time, the inner call, a fetch's reply, or a
//! wait for another request's fetch.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use http::{HeaderValue, Request, Response, StatusCode};
use pin_project_lite::pin_project;
use tokio::sync::oneshot;
use tokio::time::{Instant, Sleep};
use tower_service::Service;

use crate::body::{CacheBody, CachedBody};
use crate::control::Directives;
use crate::key::{RequestKey, Target};
use crate::service::{Shared, answer};
use crate::status::{self, CACHE_STATUS};
use crate::store::{CacheStore, Outcome};

/// What to do with the inner service's response when the cache forwarded the request.
pub(crate) enum After {
    /// Add this `Cache-Status`.
    Status(HeaderValue),
    /// An unsafe or uncached method: invalidate the target (when given) if it succeeded.
    Method(Option<Box<(CacheStore, Target)>>),
}

/// A request waiting for another's fetch, with what it needs to go upstream itself.
pub(crate) struct Waiter<S, R> {
    pub(crate) service: S,
    pub(crate) request: Request<R>,
    pub(crate) key: RequestKey,
    pub(crate) directives: Directives,
    pub(crate) shared: Arc<Shared>,
}

/// A fetch's reply to its leader.
type Reply<B, E> = oneshot::Receiver<Result<Response<CacheBody<B>>, E>>;

pin_project! {
    /// The response future of [`Cache`](crate::Cache).
    pub struct ResponseFuture<S, R, B>
    where
        S: Service<Request<R>>,
    {
        #[pin]
        state: State<S::Future, S, R, B, S::Error>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<F, S, R, B, E> {
        /// Answered at call time (from the store).
        Ready { response: Option<Response<CacheBody<B>>> },
        /// Forwarded to the inner service.
        Upstream { #[pin] future: F, after: Option<After> },
        /// Leading a fetch: its reply.
        Leader { reply: Reply<B, E> },
        /// Waiting for another request's fetch, at most until `timeout`.
        Waiting {
            outcome: oneshot::Receiver<Outcome>,
            #[pin]
            timeout: Sleep,
            waiter: Option<Box<Waiter<S, R>>>,
        },
        /// Done waiting, going upstream: the service's readiness first.
        Calling { waiter: Option<Box<Waiter<S, R>>> },
    }
}

impl<S, R, B> ResponseFuture<S, R, B>
where
    S: Service<Request<R>>,
{
    pub(crate) fn ready(response: Response<CacheBody<B>>) -> Self {
        Self {
            state: State::Ready {
                response: Some(response),
            },
        }
    }

    pub(crate) fn upstream(future: S::Future, after: After) -> Self {
        Self {
            state: State::Upstream {
                future,
                after: Some(after),
            },
        }
    }

    pub(crate) fn leader(reply: Reply<B, S::Error>) -> Self {
        Self {
            state: State::Leader { reply },
        }
    }

    pub(crate) fn waiting(
        outcome: oneshot::Receiver<Outcome>,
        timeout: Duration,
        waiter: Waiter<S, R>,
    ) -> Self {
        Self {
            state: State::Waiting {
                outcome,
                timeout: tokio::time::sleep(timeout),
                waiter: Some(Box::new(waiter)),
            },
        }
    }
}

impl<S, R, B> Future for ResponseFuture<S, R, B>
where
    S: Service<Request<R>, Response = Response<B>>,
{
    type Output = Result<Response<CacheBody<B>>, S::Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut state = self.project().state;
        loop {
            match state.as_mut().project() {
                StateProj::Ready { response } => {
                    let response = response.take().expect("polled after completion");
                    return Poll::Ready(Ok(response));
                }
                StateProj::Upstream { future, after } => {
                    let response = ready!(future.poll(cx))?;
                    return Poll::Ready(Ok(forwarded(response, after.take())));
                }
                StateProj::Leader { reply } => {
                    return Poll::Ready(match ready!(Pin::new(reply).poll(cx)) {
                        Ok(result) => result,
                        // The fetch's task ended without replying (it panicked).
                        Err(_) => Ok(bad_gateway()),
                    });
                }
                StateProj::Waiting {
                    outcome,
                    timeout,
                    waiter,
                } => {
                    let stored = match Pin::new(outcome).poll(cx) {
                        Poll::Ready(result) => result == Ok(Outcome::Stored),
                        Poll::Pending => {
                            ready!(timeout.poll(cx));
                            false
                        }
                    };
                    let mut waiter = waiter.take().expect("polled after completion");
                    if stored && let Some(response) = from_store(&mut waiter) {
                        return Poll::Ready(Ok(response));
                    }
                    state.set(State::Calling {
                        waiter: Some(waiter),
                    });
                }
                StateProj::Calling { waiter } => {
                    let ready_waiter = waiter.as_mut().expect("polled after completion");
                    ready!(ready_waiter.service.poll_ready(cx))?;
                    let Waiter {
                        mut service,
                        request,
                        ..
                    } = *waiter.take().expect("polled after completion");
                    state.set(State::Upstream {
                        future: service.call(request),
                        after: Some(After::Status(status::MISS)),
                    });
                }
            }
        }
    }
}

/// A waiter's answer from what the fetch it waited for stored, if that suits its request.
fn from_store<S, R, B>(waiter: &mut Waiter<S, R>) -> Option<Response<CacheBody<B>>> {
    let headers = waiter.request.headers();
    let entry = waiter.shared.store.lookup(&mut waiter.key, headers)?;
    let now = Instant::now();
    entry
        .freshness
        .is_fresh_for(now, &waiter.directives)
        .then(|| {
            let head = waiter.request.method() == http::Method::HEAD;
            answer(&entry, headers, now, head, status::COLLAPSED)
        })
}

/// The inner service's response, with the cache's `Cache-Status` and, after a successful
/// unsafe request, its target invalidated.
fn forwarded<B>(response: Response<B>, after: Option<After>) -> Response<CacheBody<B>> {
    let mut response = response.map(CacheBody::inner);
    let cache_status = match after {
        Some(After::Status(value)) => value,
        Some(After::Method(invalidate)) => {
            let success = response.status().is_success() || response.status().is_redirection();
            if let Some(target) = invalidate.filter(|_| success) {
                let (store, target) = *target;
                store.invalidate_uri(&target.host, &target.path, &target.query);
                // RFC 9111 section 4.4: also what `Location` and `Content-Location` name,
                // on the same host only (another origin's entries are not this one's to
                // drop).
                for name in [http::header::LOCATION, http::header::CONTENT_LOCATION] {
                    let Some(uri) = response
                        .headers()
                        .get(name)
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.parse::<http::Uri>().ok())
                    else {
                        continue;
                    };
                    let same_host = uri
                        .host()
                        .is_none_or(|host| target.host.split(':').next() == Some(host));
                    if same_host && uri.path().starts_with('/') {
                        let host = match uri.authority() {
                            Some(authority) => authority.as_str().to_ascii_lowercase(),
                            None => target.host.to_string(),
                        };
                        store.invalidate_uri(&host, uri.path(), uri.query().unwrap_or(""));
                    }
                }
            }
            status::METHOD
        }
        None => return response,
    };
    response.headers_mut().append(CACHE_STATUS, cache_status);
    response
}

fn bad_gateway<B>() -> Response<CacheBody<B>> {
    let mut response = Response::new(CacheBody::cached(CachedBody::empty()));
    *response.status_mut() = StatusCode::BAD_GATEWAY;
    response
}
