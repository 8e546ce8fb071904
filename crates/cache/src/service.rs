//! The cache service: decides, per request, between the store, a fetch and the upstream.

use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use gateway_core::{BoxError, Identity};
use http::header::{AUTHORIZATION, COOKIE, IF_MODIFIED_SINCE, IF_NONE_MATCH, RANGE};
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode};
use http_body::Body;
use tokio::time::Instant;
use tower_service::Service;

use crate::body::{CacheBody, CachedBody};
use crate::config::Authorized;
use crate::control::Directives;
use crate::entry::Entry;
use crate::fetch::Fetch;
use crate::future::{After, ResponseFuture, Waiter};
use crate::key::{KeyParts, RequestKey, Target};
use crate::policy::CachePolicy;
use crate::status::{self, CacheResult};
use crate::store::{CacheStore, Role};

/// What every service of a layer shares.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) store: CacheStore,
    pub(crate) policy: CachePolicy,
}

/// Answers requests from a [`CacheStore`] where RFC 9111 allows, and stores what the inner
/// service answers where it allows. Built by [`CacheLayer`](crate::CacheLayer).
///
/// Readiness is the inner service's. Fetches run in tasks of their own (see the crate
/// docs), so the inner service must be `Clone` and its future and body `Send + 'static`,
/// and calls need a Tokio runtime.
#[derive(Clone, Debug)]
pub struct Cache<S> {
    inner: S,
    shared: Arc<Shared>,
}

impl<S> Cache<S> {
    /// Caches the responses of `inner` in `store` under `policy`.
    #[must_use]
    pub fn new(inner: S, store: CacheStore, policy: CachePolicy) -> Self {
        Self::from_shared(inner, Arc::new(Shared { store, policy }))
    }

    pub(crate) fn from_shared(inner: S, shared: Arc<Shared>) -> Self {
        Self { inner, shared }
    }

    /// The store this service uses.
    pub fn store(&self) -> &CacheStore {
        &self.shared.store
    }

    /// The policy this service applies.
    pub fn policy(&self) -> &CachePolicy {
        &self.shared.policy
    }

    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Consumes the service, returning the inner service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

/// Whether a request with these headers may use the cache, and the identity its key
/// carries: `None` to bypass.
fn identity<'a>(
    authorized: Authorized,
    headers: &HeaderMap,
    identity: Option<&'a Identity>,
) -> Option<Option<Option<&'a str>>> {
    let credentials = headers.contains_key(AUTHORIZATION) || headers.contains_key(COOKIE);
    match authorized {
        Authorized::Never if credentials => None,
        Authorized::Never => Some(None),
        Authorized::PerUser => {
            let subject = identity.and_then(Identity::subject);
            if credentials && subject.is_none() {
                None
            } else {
                Some(Some(subject))
            }
        }
    }
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for Cache<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    ResBody: Body<Data = Bytes> + Send + 'static,
    ResBody::Error: Into<BoxError>,
    ReqBody: Send + 'static,
{
    type Response = Response<CacheBody<ResBody>>;
    type Error = S::Error;
    type Future = ResponseFuture<S, ReqBody, ResBody>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<ReqBody>) -> Self::Future {
        let policy = &self.shared.policy;
        let method = request.method();
        if method != Method::GET && method != Method::HEAD {
            policy.counters.record(CacheResult::Bypass);
            // RFC 9111 section 4.4: a successful unsafe request invalidates its target.
            let invalidate = (!method.is_safe()).then(|| {
                Box::new((
                    self.shared.store.clone(),
                    Target::of(&policy.scope, request.uri(), request.headers()),
                ))
            });
            return ResponseFuture::upstream(self.inner.call(request), After::Method(invalidate));
        }
        let head = method == Method::HEAD;
        let headers = request.headers();
        let directives = Directives::of(headers);
        let identity = identity(
            policy.authorized,
            headers,
            request.extensions().get::<Identity>(),
        );
        let (Some(identity), false, false) =
            (identity, directives.no_store, headers.contains_key(RANGE))
        else {
            policy.counters.record(CacheResult::Bypass);
            return ResponseFuture::upstream(
                self.inner.call(request),
                After::Status(status::BYPASS),
            );
        };
        let parts = KeyParts {
            scope: &policy.scope,
            scheme: policy.scheme.as_ref().map(http::uri::Scheme::as_str),
            key_headers: &policy.key_headers,
            identity,
        };
        let mut key = RequestKey::new(&parts, request.method(), request.uri(), headers);
        let now = Instant::now();
        let Some(entry) = self.shared.store.lookup(&mut key, headers) else {
            return self.miss(request, key, directives, head);
        };
        if entry.freshness.is_fresh_for(now, &directives) {
            policy.counters.record(CacheResult::Hit);
            return ResponseFuture::ready(answer(&entry, headers, now, head, status::HIT));
        }
        let client_asks_validation = directives.no_cache || directives.max_age.is_some();
        if !client_asks_validation && entry.freshness.may_serve_while_revalidating(now) {
            policy.counters.record(CacheResult::Stale);
            let response = answer(&entry, headers, now, head, status::HIT_STALE);
            // One background refresh: a request that finds one running leaves it be.
            if !head && let Role::Leader(guard) = self.shared.store.join(key.current()) {
                self.fetch(request, key, guard, Some(entry), None);
            }
            return ResponseFuture::ready(response);
        }
        self.join_fetch(request, key, directives, head, Some(entry))
    }
}

impl<S> Cache<S> {
    /// No stored response: fetch (once for concurrent requests), or pass a HEAD through.
    fn miss<ReqBody, ResBody>(
        &mut self,
        request: Request<ReqBody>,
        key: RequestKey,
        directives: Directives,
        head: bool,
    ) -> ResponseFuture<S, ReqBody, ResBody>
    where
        S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone + Send + 'static,
        S::Future: Send + 'static,
        S::Error: Send + 'static,
        ResBody: Body<Data = Bytes> + Send + 'static,
        ResBody::Error: Into<BoxError>,
        ReqBody: Send + 'static,
    {
        let policy = &self.shared.policy;
        if directives.only_if_cached {
            policy.counters.record(CacheResult::Miss);
            let mut response = Response::new(CacheBody::cached(CachedBody::empty()));
            *response.status_mut() = StatusCode::GATEWAY_TIMEOUT;
            response
                .headers_mut()
                .insert(status::CACHE_STATUS, status::MISS);
            return ResponseFuture::ready(response);
        }
        self.join_fetch(request, key, directives, head, None)
    }

    /// Leads the fetch of the key (revalidating `stale` when there is an entry), or waits for
    /// the one already running; a HEAD, whose answer has no body to store, goes upstream
    /// alone.
    fn join_fetch<ReqBody, ResBody>(
        &mut self,
        request: Request<ReqBody>,
        key: RequestKey,
        directives: Directives,
        head: bool,
        stale: Option<Arc<Entry>>,
    ) -> ResponseFuture<S, ReqBody, ResBody>
    where
        S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone + Send + 'static,
        S::Future: Send + 'static,
        S::Error: Send + 'static,
        ResBody: Body<Data = Bytes> + Send + 'static,
        ResBody::Error: Into<BoxError>,
        ReqBody: Send + 'static,
    {
        let counters = &self.shared.policy.counters;
        if head {
            counters.record(CacheResult::Miss);
            return ResponseFuture::upstream(self.inner.call(request), After::Status(status::MISS));
        }
        // The URI's key, or the variant's when the URI's responses are known to vary:
        // requests for other variants then fetch their own.
        match self.shared.store.join(key.current()) {
            Role::Leader(guard) => {
                // A revalidation is counted by the fetch: it knows whether the entry was
                // revalidated.
                if stale.is_none() {
                    counters.record(CacheResult::Miss);
                }
                let (reply, receiver) = tokio::sync::oneshot::channel();
                self.fetch(request, key, guard, stale, Some(reply));
                ResponseFuture::leader(receiver)
            }
            Role::Waiter(outcome) => {
                counters.record(CacheResult::Miss);
                self.wait(request, key, directives, outcome)
            }
        }
    }

    /// Waits for another request's fetch of the same key.
    fn wait<ReqBody, ResBody>(
        &self,
        request: Request<ReqBody>,
        key: RequestKey,
        directives: Directives,
        outcome: tokio::sync::oneshot::Receiver<crate::store::Outcome>,
    ) -> ResponseFuture<S, ReqBody, ResBody>
    where
        S: Service<Request<ReqBody>> + Clone,
    {
        ResponseFuture::waiting(
            outcome,
            self.shared.policy.coalesce_timeout,
            Waiter {
                service: self.inner.clone(),
                request,
                key,
                directives,
                shared: self.shared.clone(),
            },
        )
    }

    /// Starts the upstream request of a fetch in a task of its own: the request without the
    /// client's validators (so the answer is a full response to store), with the stale
    /// entry's when there is one (it may also stand in for an upstream failure).
    fn fetch<ReqBody, ResBody>(
        &mut self,
        mut request: Request<ReqBody>,
        key: RequestKey,
        guard: crate::store::FlightGuard,
        stale: Option<Arc<Entry>>,
        reply: Option<crate::fetch::Reply<ResBody, S::Error>>,
    ) where
        S: Service<Request<ReqBody>, Response = Response<ResBody>> + Send + 'static,
        S::Future: Send + 'static,
        S::Error: Send + 'static,
        ResBody: Body<Data = Bytes> + Send + 'static,
        ResBody::Error: Into<BoxError>,
    {
        let client_headers = request.headers().clone();
        let target = Arc::new(Target::of(
            &self.shared.policy.scope,
            request.uri(),
            request.headers(),
        ));
        let headers = request.headers_mut();
        headers.remove(IF_NONE_MATCH);
        headers.remove(IF_MODIFIED_SINCE);
        if let Some(stale) = &stale {
            for (name, value) in stale.validators() {
                headers.insert(name, value);
            }
        }
        let fetch = Fetch {
            shared: self.shared.clone(),
            key,
            client_headers,
            target,
            request_time: Instant::now(),
            stale,
            guard: Some(guard),
            reply,
        };
        let future = self.inner.call(request);
        tokio::spawn(fetch.run(future));
    }
}

/// The response to a request from a usable entry: a 304 when the client's own validators
/// match, else the entry.
pub(crate) fn answer<B>(
    entry: &Entry,
    request: &HeaderMap,
    now: Instant,
    head: bool,
    cache_status: HeaderValue,
) -> Response<CacheBody<B>> {
    if entry.satisfies_conditional(request) {
        entry.not_modified(now, cache_status)
    } else {
        entry.response(now, head, cache_status)
    }
}
