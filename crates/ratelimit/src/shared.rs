//! What a layer hands every service it builds, and the services hand their futures.

use crate::headers::RouteHeaders;
use crate::key_source::KeySource;
use crate::limiter::RouteLimiter;

/// What every clone of the service shares.
#[derive(Clone, Debug)]
pub(crate) struct Shared {
    pub(crate) limiter: RouteLimiter,
    pub(crate) key: KeySource,
    pub(crate) headers: RouteHeaders,
}
