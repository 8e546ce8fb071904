//! The response future: the inner service's, a rejection, or (rarely) a wait for JWKS keys.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use gateway_core::ResponseBody;
use http::{Request, Response};
use pin_project_lite::pin_project;
use tower_service::Service;

use crate::authenticator::Authenticator;
use crate::failure::AuthFailure;
use crate::rejection::Rejection;
use crate::verify::Verified;

/// The JWKS fetch a request with an unknown `kid` waits for. Boxed: it is off the hot path.
pub(crate) type KeyWait = Pin<Box<dyn Future<Output = Result<Arc<Verified>, AuthFailure>> + Send>>;

/// What a request waiting for keys needs to go on.
pub(crate) struct Pending<S, B> {
    pub(crate) service: S,
    pub(crate) request: Request<B>,
    pub(crate) auth: Authenticator,
    pub(crate) roles: Arc<[Box<str>]>,
}

pin_project! {
    /// The future of [`JwtAuth`](crate::JwtAuth).
    pub struct ResponseFuture<S, B>
    where
        S: Service<Request<B>>,
    {
        #[pin]
        state: State<S, B>,
    }
}

pin_project! {
    #[project = StateProj]
    // pin-project-lite takes no doc comments on enum fields; the variants are private.
    #[allow(missing_docs)]
    enum State<S, B>
    where
        S: Service<Request<B>>,
    {
        Inner { #[pin] fut: S::Future },
        Reject { rejection: Option<Rejection> },
        // Boxed: the request and the inner service would otherwise size the future of
        // every request, though only an unknown `kid` waits.
        WaitForKeys { wait: KeyWait, pending: Option<Box<Pending<S, B>>> },
    }
}

impl<S: Service<Request<B>>, B> ResponseFuture<S, B> {
    pub(crate) fn inner(fut: S::Future) -> Self {
        Self {
            state: State::Inner { fut },
        }
    }

    pub(crate) fn reject(rejection: Rejection) -> Self {
        Self {
            state: State::Reject {
                rejection: Some(rejection),
            },
        }
    }

    pub(crate) fn wait_for_keys(wait: KeyWait, pending: Pending<S, B>) -> Self {
        Self {
            state: State::WaitForKeys {
                wait,
                pending: Some(Box::new(pending)),
            },
        }
    }
}

impl<S, B, ResBody> Future for ResponseFuture<S, B>
where
    S: Service<Request<B>, Response = Response<ResBody>>,
{
    type Output = Result<Response<ResponseBody<ResBody>>, S::Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            match this.state.as_mut().project() {
                StateProj::Inner { fut } => {
                    return fut
                        .poll(cx)
                        .map_ok(|response| response.map(ResponseBody::inner));
                }
                StateProj::Reject { rejection } => {
                    let rejection = rejection.take().expect("polled after completion");
                    return Poll::Ready(Ok(rejection.into_response()));
                }
                StateProj::WaitForKeys { wait, pending } => {
                    let result = ready!(wait.as_mut().poll(cx));
                    let Pending {
                        mut service,
                        mut request,
                        auth,
                        roles,
                    } = *pending.take().expect("polled after completion");
                    let next = match result {
                        Ok(verified) if verified.has_role(&roles) => {
                            auth.admit(&mut request, &verified);
                            State::Inner {
                                fut: service.call(request),
                            }
                        }
                        Ok(_) => State::Reject {
                            rejection: Some(auth.rejection(AuthFailure::InsufficientRole)),
                        },
                        Err(failure) => State::Reject {
                            rejection: Some(auth.rejection(failure)),
                        },
                    };
                    this.state.set(next);
                }
            }
        }
    }
}
