//! The services that apply header rules.

use std::task::{Context, Poll};

use http::{Request, Response};
use tower_service::Service;

use crate::future::ResponseFuture;
use crate::render::RequestView;
use crate::rules::HeaderRules;

/// Applies header rules to each request before the inner service sees it.
///
/// The response (type, body, future) is the inner service's, untouched.
#[derive(Clone, Debug)]
pub struct RequestHeaders<S> {
    inner: S,
    rules: HeaderRules,
}

impl<S> RequestHeaders<S> {
    /// Wraps `inner`.
    pub fn new(inner: S, rules: HeaderRules) -> Self {
        Self { inner, rules }
    }

    /// The rules applied.
    pub fn rules(&self) -> &HeaderRules {
        &self.rules
    }
}

impl<S, B> Service<Request<B>> for RequestHeaders<S>
where
    S: Service<Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<B>) -> Self::Future {
        self.rules.apply_to_request(&mut request);
        self.inner.call(request)
    }
}

/// Applies header rules to each response of the inner service, whoever produced it (the
/// upstream, or an inner layer's 401/404/429/502).
///
/// Templates read the request: they render before the request is handed to the inner service
/// (only when the rules have templates), and the values wait in the future. The body passes
/// through: the response type is the inner service's.
#[derive(Clone, Debug)]
pub struct ResponseHeaders<S> {
    inner: S,
    rules: HeaderRules,
}

impl<S> ResponseHeaders<S> {
    /// Wraps `inner`.
    pub fn new(inner: S, rules: HeaderRules) -> Self {
        Self { inner, rules }
    }

    /// The rules applied.
    pub fn rules(&self) -> &HeaderRules {
        &self.rules
    }
}

impl<S, B, ResB> Service<Request<B>> for ResponseHeaders<S>
where
    S: Service<Request<B>, Response = Response<ResB>>,
{
    type Response = Response<ResB>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let rendered = self.rules.render_for_response(&RequestView::of(&request));
        ResponseFuture::new(self.inner.call(request), &self.rules, rendered)
    }
}

/// The service of [`HeadersLayer`](crate::HeadersLayer): request rules before the inner
/// service, response rules after it.
///
/// Both sides' templates see the request as it arrived here: response templates render
/// before the request rules edit it.
#[derive(Clone, Debug)]
pub struct Headers<S> {
    inner: S,
    request: HeaderRules,
    response: HeaderRules,
}

impl<S> Headers<S> {
    /// Wraps `inner`.
    pub fn new(inner: S, request: HeaderRules, response: HeaderRules) -> Self {
        Self {
            inner,
            request,
            response,
        }
    }
}

impl<S, B, ResB> Service<Request<B>> for Headers<S>
where
    S: Service<Request<B>, Response = Response<ResB>>,
{
    type Response = Response<ResB>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<B>) -> Self::Future {
        // One service rather than two nested ones: the request is moved once less.
        let rendered = self
            .response
            .render_for_response(&RequestView::of(&request));
        self.request.apply_to_request(&mut request);
        ResponseFuture::new(self.inner.call(request), &self.response, rendered)
    }
}
