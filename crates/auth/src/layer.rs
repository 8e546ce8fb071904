//! The tower layer: one per route, sharing one [`Authenticator`].

use std::sync::Arc;

use tower_layer::Layer;

use crate::authenticator::Authenticator;
use crate::config::AuthMode;
use crate::service::JwtAuth;

/// Applies JWT authentication (and role authorization) to a service.
///
/// Defaults to [`AuthMode::Required`] and no role restriction. Clones share the
/// [`Authenticator`] (keys, cache).
///
/// The layer always strips client-sent copies of the forwarded identity headers, whatever
/// the mode, so put it on every route, with [`AuthMode::None`] where auth is off.
#[derive(Clone, Debug)]
pub struct JwtAuthLayer {
    auth: Authenticator,
    mode: AuthMode,
    roles: Arc<[Box<str>]>,
}

impl JwtAuthLayer {
    /// A layer requiring a valid token, verified by `auth`.
    pub fn new(auth: Authenticator) -> Self {
        Self {
            auth,
            mode: AuthMode::Required,
            roles: Arc::from([]),
        }
    }

    /// Sets how the route uses tokens.
    #[must_use]
    pub fn mode(mut self, mode: AuthMode) -> Self {
        self.mode = mode;
        self
    }

    /// Admits only callers whose role claim (a string or a list) holds one of `roles`
    /// (403 otherwise); empty admits any authenticated caller. In optional mode, anonymous
    /// requests still pass: roles restrict callers that present a token.
    #[must_use]
    pub fn roles<I, R>(mut self, roles: I) -> Self
    where
        I: IntoIterator<Item = R>,
        R: AsRef<str>,
    {
        self.roles = roles.into_iter().map(|r| Box::from(r.as_ref())).collect();
        self
    }
}

impl<S> Layer<S> for JwtAuthLayer {
    type Service = JwtAuth<S>;

    fn layer(&self, inner: S) -> Self::Service {
        JwtAuth::new(inner, self.auth.clone(), self.mode, Arc::clone(&self.roles))
    }
}
