//! The CORS layer.

use tower_layer::Layer;

use crate::policy::CorsPolicy;
use crate::service::Cors;

/// Puts a [`CorsPolicy`] in front of a service; see [`Cors`].
///
/// Every service the layer wraps shares the one policy (cloning it copies a pointer).
#[derive(Clone, Debug)]
pub struct CorsLayer {
    policy: CorsPolicy,
}

impl CorsLayer {
    /// A layer applying `policy`.
    pub fn new(policy: CorsPolicy) -> Self {
        Self { policy }
    }

    /// The policy this layer applies.
    pub fn policy(&self) -> &CorsPolicy {
        &self.policy
    }
}

impl<S> Layer<S> for CorsLayer {
    type Service = Cors<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Cors::new(inner, self.policy.clone())
    }
}
