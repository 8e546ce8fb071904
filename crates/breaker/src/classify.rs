//! What counts as a failure: errors and upstream-failure markers always, statuses by choice.

use http::Response;

use crate::status::FailureStatus;

/// Decides whether a response of the inner service counts as a failure.
///
/// Errors of the inner service and responses marked with [`gateway_core::UpstreamFailure`]
/// always count as failures; a classifier only decides about the other responses. The default
/// classifier is the breaker's [`FailureStatus`]; any `Fn(&Response<B>) -> bool` is one too.
pub trait ClassifyResponse<B> {
    /// Whether `response` is a failure of the service behind the breaker.
    fn is_failure(&self, response: &Response<B>) -> bool;
}

impl<B, F> ClassifyResponse<B> for F
where
    F: Fn(&Response<B>) -> bool,
{
    fn is_failure(&self, response: &Response<B>) -> bool {
        self(response)
    }
}

impl<B> ClassifyResponse<B> for FailureStatus {
    fn is_failure(&self, response: &Response<B>) -> bool {
        self.contains(response.status())
    }
}
