//! The middleware service.

use std::sync::Arc;
use std::task::{Context, Poll};

use gateway_core::ResponseBody;
use http::{Request, Response};
use tower_service::Service;

use crate::authenticator::{Authenticator, Check};
use crate::config::AuthMode;
use crate::failure::AuthFailure;
use crate::future::{Pending, ResponseFuture};
use crate::token::{Found, Source, is_b64token};
use crate::verify::Verified;

/// The service built by [`JwtAuthLayer`](crate::JwtAuthLayer).
///
/// For every request: strips client-sent forwarded headers; then, unless the mode is
/// [`AuthMode::None`], finds and verifies the token, checks the route's roles, inserts
/// [`gateway_core::Identity`] into the request extensions, sets the forwarded headers and
/// calls the inner service, or answers 401/403/503 with problem+json, `WWW-Authenticate`
/// and an [`AuthFailure`] response extension.
///
/// The inner service must be `Clone` (as axum's and tower's services are): a request that
/// waits for a JWKS fetch takes the ready service along.
#[derive(Clone, Debug)]
pub struct JwtAuth<S> {
    inner: S,
    auth: Authenticator,
    mode: AuthMode,
    roles: Arc<[Box<str>]>,
}

impl<S> JwtAuth<S> {
    pub(crate) fn new(
        inner: S,
        auth: Authenticator,
        mode: AuthMode,
        roles: Arc<[Box<str>]>,
    ) -> Self {
        Self {
            inner,
            auth,
            mode,
            roles,
        }
    }

    /// The wrapped service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }
}

enum Step {
    Admit(Arc<Verified>),
    Reject(AuthFailure),
    /// The token's key is unknown: wait for a JWKS fetch (token copied: the request moves).
    Wait(Vec<u8>),
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for JwtAuth<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone,
{
    type Response = Response<ResponseBody<ResBody>>;
    type Error = S::Error;
    type Future = ResponseFuture<S, ReqBody>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<ReqBody>) -> Self::Future {
        // Client-sent identity headers never reach the upstream: stripped here on the
        // anonymous paths, replaced or removed by `admit` on the authenticated ones (a
        // rejected request goes nowhere).
        if self.mode == AuthMode::None {
            self.auth.strip(request.headers_mut());
            return ResponseFuture::inner(self.inner.call(request));
        }
        let step = match self
            .auth
            .sources()
            .find(request.headers(), request.uri().query())
        {
            Found::Missing if self.mode == AuthMode::Optional => {
                self.auth.strip(request.headers_mut());
                return ResponseFuture::inner(self.inner.call(request));
            }
            Found::Missing => Step::Reject(AuthFailure::MissingToken),
            Found::Malformed => Step::Reject(AuthFailure::Malformed),
            Found::Token(token, source) => match self.auth.check(token) {
                Check::Valid(verified) => Step::Admit(verified),
                // Verified tokens are always b64tokens, so the header's syntax needs checking
                // only now, off the hot path, to answer a garbled header as a malformed
                // request (before any wait for keys) rather than as a bad token.
                _ if source == Source::Header && !is_b64token(token) => {
                    Step::Reject(AuthFailure::Malformed)
                }
                Check::Invalid(failure) => Step::Reject(failure),
                Check::NeedKeys => Step::Wait(token.to_vec()),
            },
        };
        match step {
            Step::Admit(verified) => {
                if !verified.has_role(&self.roles) {
                    return ResponseFuture::reject(
                        self.auth.rejection(AuthFailure::InsufficientRole),
                    );
                }
                self.auth.admit(&mut request, &verified);
                ResponseFuture::inner(self.inner.call(request))
            }
            Step::Reject(failure) => ResponseFuture::reject(self.auth.rejection(failure)),
            Step::Wait(token) => {
                // The ready service goes with the request; this clone takes its place.
                let clone = self.inner.clone();
                let service = std::mem::replace(&mut self.inner, clone);
                let auth = self.auth.clone();
                let wait = Box::pin(async move { auth.after_refresh(&token).await });
                ResponseFuture::wait_for_keys(
                    wait,
                    Pending {
                        service,
                        request,
                        auth: self.auth.clone(),
                        roles: Arc::clone(&self.roles),
                    },
                )
            }
        }
    }
}
