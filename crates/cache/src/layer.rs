//! The cache layer.

use std::sync::Arc;

use tower_layer::Layer;

use crate::policy::CachePolicy;
use crate::service::{Cache, Shared};
use crate::store::CacheStore;

/// Caches responses in a [`CacheStore`] under a route's [`CachePolicy`]; see [`Cache`].
///
/// Every service the layer wraps shares the store and the policy.
#[derive(Clone, Debug)]
pub struct CacheLayer {
    shared: Arc<Shared>,
}

impl CacheLayer {
    /// A layer storing in `store` under `policy`.
    #[must_use]
    pub fn new(store: CacheStore, policy: CachePolicy) -> Self {
        Self {
            shared: Arc::new(Shared { store, policy }),
        }
    }

    /// The store this layer uses.
    pub fn store(&self) -> &CacheStore {
        &self.shared.store
    }

    /// The policy this layer applies.
    pub fn policy(&self) -> &CachePolicy {
        &self.shared.policy
    }
}

impl<S> Layer<S> for CacheLayer {
    type Service = Cache<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Cache::from_shared(inner, self.shared.clone())
    }
}
