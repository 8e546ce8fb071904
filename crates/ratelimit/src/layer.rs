//! The rate-limit layer.

use std::sync::Arc;

use tower_layer::Layer;

use crate::backend::RateLimitBackend;
use crate::header_mode::HeaderMode;
use crate::headers::RouteHeaders;
use crate::key_source::KeySource;
use crate::limiter::RouteLimiter;
use crate::policy::Policy;
use crate::service::RateLimit;
use crate::shared::Shared;

/// Limits the requests of one route: see the [crate documentation](crate).
///
/// Build one layer per route from a [`RateLimitBackend`] shared by all routes.
#[derive(Clone, Debug)]
pub struct RateLimitLayer {
    shared: Arc<Shared>,
}

impl RateLimitLayer {
    /// Limits route `route` to `policy`, counting each request under the key from `key`.
    pub fn new(backend: &RateLimitBackend, route: &str, policy: Policy, key: KeySource) -> Self {
        Self::with_limiter(backend.route(route, policy), key)
    }

    /// A layer over a limiter from [`RateLimitBackend::route`].
    pub fn with_limiter(limiter: RouteLimiter, key: KeySource) -> Self {
        let headers = RouteHeaders::new(&limiter.policy(), HeaderMode::default());
        Self {
            shared: Arc::new(Shared {
                limiter,
                key,
                headers,
            }),
        }
    }

    /// Which rate-limit headers responses carry (default: [`HeaderMode::All`]).
    #[must_use]
    pub fn headers(mut self, mode: HeaderMode) -> Self {
        let shared = Arc::make_mut(&mut self.shared);
        shared.headers = RouteHeaders::new(&shared.limiter.policy(), mode);
        self
    }

    /// Spends tokens taken from Redis `tokens` at a time: see [`RouteLimiter::with_lease`].
    #[must_use]
    pub fn lease(mut self, tokens: u32) -> Self {
        let shared = Arc::make_mut(&mut self.shared);
        shared.limiter = shared.limiter.clone().with_lease(tokens);
        self
    }

    /// The route's limiter.
    pub fn limiter(&self) -> &RouteLimiter {
        &self.shared.limiter
    }
}

impl<S> Layer<S> for RateLimitLayer {
    type Service = RateLimit<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RateLimit::new(inner, Arc::clone(&self.shared))
    }
}
