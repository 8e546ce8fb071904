//! The layers: request rules, response rules, both.

use tower_layer::Layer;

use crate::rules::HeaderRules;
use crate::service::{Headers, RequestHeaders, ResponseHeaders};

/// Applies header rules to requests; see [`RequestHeaders`].
///
/// Place it where the values its templates read exist: after the auth layer for
/// `{claim.NAME}`, after the request id layer for `{request_id}`.
#[derive(Clone, Debug, Default)]
pub struct RequestHeadersLayer {
    rules: HeaderRules,
}

impl RequestHeadersLayer {
    /// Applies `rules` to every request.
    pub fn new(rules: HeaderRules) -> Self {
        Self { rules }
    }
}

impl<S> Layer<S> for RequestHeadersLayer {
    type Service = RequestHeaders<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RequestHeaders::new(inner, self.rules.clone())
    }
}

/// Applies header rules to responses; see [`ResponseHeaders`].
///
/// Place it outside the layers whose responses it must edit: outermost for rules that cover
/// the gateway's own 404/429/502 responses.
#[derive(Clone, Debug, Default)]
pub struct ResponseHeadersLayer {
    rules: HeaderRules,
}

impl ResponseHeadersLayer {
    /// Applies `rules` to every response.
    pub fn new(rules: HeaderRules) -> Self {
        Self { rules }
    }
}

impl<S> Layer<S> for ResponseHeadersLayer {
    type Service = ResponseHeaders<S>;

    fn layer(&self, inner: S) -> Self::Service {
        ResponseHeaders::new(inner, self.rules.clone())
    }
}

/// Request and response rules in one layer, for services that need no split.
///
/// Both sides' templates see the request as it arrived at this layer.
///
/// ```
/// use gateway_headers::{HeaderRules, HeadersLayer};
///
/// let layer = HeadersLayer::new()
///     .request(HeaderRules::builder().set("X-Source", "gateway").build().unwrap())
///     .response(HeaderRules::builder().remove("Server").build().unwrap());
/// # let _ = layer;
/// ```
#[derive(Clone, Debug, Default)]
pub struct HeadersLayer {
    request: HeaderRules,
    response: HeaderRules,
}

impl HeadersLayer {
    /// No rules yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// The rules for requests.
    #[must_use]
    pub fn request(mut self, rules: HeaderRules) -> Self {
        self.request = rules;
        self
    }

    /// The rules for responses.
    #[must_use]
    pub fn response(mut self, rules: HeaderRules) -> Self {
        self.response = rules;
        self
    }
}

impl<S> Layer<S> for HeadersLayer {
    type Service = Headers<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Headers::new(inner, self.request.clone(), self.response.clone())
    }
}
