//! Rejection responses: problem+json, the RFC 6750 challenge, `Retry-After`.

use gateway_core::{Problem, ResponseBody};
use http::header::{RETRY_AFTER, WWW_AUTHENTICATE};
use http::{HeaderValue, Response};

use crate::failure::AuthFailure;

/// The headers of every rejection, rendered once when the authenticator is built (a
/// rejection then costs clones of ready header values, not formatting).
pub(crate) struct Challenges {
    /// `WWW-Authenticate` value per [`AuthFailure::index`].
    by_failure: Box<[Option<HeaderValue>]>,
    retry_after: HeaderValue,
}

impl Challenges {
    /// The challenges of `realm` (printable ASCII without quotes, as the config checks), and
    /// the `Retry-After` of a 503.
    pub(crate) fn new(realm: &str, retry_after_secs: u64) -> Self {
        Self {
            by_failure: challenges(realm),
            retry_after: HeaderValue::from(retry_after_secs),
        }
    }

    pub(crate) fn rejection(&self, failure: AuthFailure) -> Rejection {
        Rejection {
            failure,
            challenge: self.by_failure[failure.index()].clone(),
            retry_after: (failure == AuthFailure::KeysUnavailable)
                .then(|| self.retry_after.clone()),
        }
    }
}

/// A rejection to turn into a response once the body type is known.
pub(crate) struct Rejection {
    failure: AuthFailure,
    challenge: Option<HeaderValue>,
    retry_after: Option<HeaderValue>,
}

impl Rejection {
    pub(crate) fn into_response<B>(self) -> Response<ResponseBody<B>> {
        let problem = Problem::new(self.failure.status()).with_detail(self.failure.description());
        let mut response = ResponseBody::problem(problem);
        if let Some(challenge) = self.challenge {
            response.headers_mut().insert(WWW_AUTHENTICATE, challenge);
        }
        if let Some(retry_after) = self.retry_after {
            response.headers_mut().insert(RETRY_AFTER, retry_after);
        }
        response.extensions_mut().insert(self.failure);
        response
    }
}

/// The `WWW-Authenticate` challenge of each failure (RFC 6750 section 3).
fn challenges(realm: &str) -> Box<[Option<HeaderValue>]> {
    AuthFailure::ALL
        .iter()
        .map(|failure| {
            let text = match (failure, failure.error_code()) {
                (AuthFailure::KeysUnavailable, _) => return None,
                (_, None) => format!("Bearer realm=\"{realm}\""),
                (_, Some(code)) => format!(
                    "Bearer realm=\"{realm}\", error=\"{code}\", error_description=\"{}\"",
                    failure.description()
                ),
            };
            // The realm was checked to be printable ASCII without quotes.
            HeaderValue::try_from(text).ok()
        })
        .collect()
}
