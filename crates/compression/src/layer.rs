//! The compression layer.

use tower_layer::Layer;

use crate::policy::CompressionPolicy;
use crate::service::Compression;

/// Compresses responses under a [`CompressionPolicy`]; see [`Compression`].
///
/// Every service the layer wraps shares the one policy.
#[derive(Clone, Debug)]
pub struct CompressionLayer {
    policy: CompressionPolicy,
}

impl CompressionLayer {
    /// A layer applying `policy`.
    #[must_use]
    pub fn new(policy: CompressionPolicy) -> Self {
        Self { policy }
    }

    /// The policy this layer installs.
    pub fn policy(&self) -> &CompressionPolicy {
        &self.policy
    }
}

impl<S> Layer<S> for CompressionLayer {
    type Service = Compression<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Compression::new(inner, self.policy.clone())
    }
}
