//! The access layer.

use tower_layer::Layer;

use crate::list::AccessList;
use crate::service::Access;

/// Checks each request's client IP against an [`AccessList`]; see [`Access`].
///
/// Every service the layer wraps shares the one list (cloning it clones an `Arc`).
#[derive(Clone, Debug)]
pub struct AccessLayer {
    list: AccessList,
}

impl AccessLayer {
    /// A layer refusing, with `403 Forbidden`, the clients `list` does not permit.
    pub fn new(list: AccessList) -> Self {
        Self { list }
    }

    /// The list this layer checks.
    pub fn list(&self) -> &AccessList {
        &self.list
    }
}

impl<S> Layer<S> for AccessLayer {
    type Service = Access<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Access::new(inner, self.list.clone())
    }
}
