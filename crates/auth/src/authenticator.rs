//! The shared verifier: keys, policy, verified-token cache, JWKS source.

use std::sync::{Arc, Weak};
use std::time::Duration;

use gateway_core::Identity;
use http::{HeaderMap, HeaderName};
use jsonwebtoken::Algorithm;

use crate::cache::TokenCache;
use crate::error::JwksError;
use crate::failure::AuthFailure;
use crate::jwks::{Fetched, Jwks};
use crate::keys::KeySet;
use crate::rejection::{Challenges, Rejection};
use crate::token::TokenSources;
use crate::verify::{Outcome, Policy, Verified, unix_now, verify};

/// Verifies tokens for any number of routes: built once from the `[jwt]` config, cloned
/// (cheaply, it is an `Arc`) into each route's [`JwtAuthLayer`](crate::JwtAuthLayer).
///
/// It holds the keys, the validation policy, the verified-token cache and, with a JWKS URL,
/// the fetched key set and its refresher.
///
/// # JWKS
///
/// Building never touches the network, so the gateway starts even when the JWKS endpoint
/// is down. The keys are fetched by the first request that needs them, by a background task
/// that refetches every `jwks_refresh` (every `jwks_cooldown` after a failure), and again
/// when a token names an unknown `kid` (at most once per `jwks_cooldown`, one fetch shared
/// by all waiting requests). The background task is spawned by the first request on the
/// current tokio runtime, or earlier by [`start_jwks_refresh`](Self::start_jwks_refresh);
/// it ends when the last clone of the authenticator is dropped.
///
/// A request never waits longer than one fetch (`jwks_timeout`). If no key set was ever
/// fetched it gets **503** (`keys_unavailable`, `Retry-After`); once keys are known, they stay
/// in use while the endpoint is down, and a token with an unknown `kid` gets **401**
/// (`unknown_key`).
#[derive(Clone)]
pub struct Authenticator {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let source = match &self.inner.keys {
            Keys::Static(_) => "static key",
            Keys::Jwks(_) => "jwks",
        };
        f.debug_struct("Authenticator")
            .field("algorithms", &self.inner.policy.algorithms)
            .field("keys", &source)
            .field("cached_tokens", &self.inner.cache.len())
            .finish_non_exhaustive()
    }
}

struct Inner {
    policy: Policy,
    keys: Keys,
    cache: TokenCache,
    sources: TokenSources,
    challenges: Challenges,
}

/// Where the verifying keys come from.
pub(crate) enum Keys {
    /// A secret or a PEM key, fixed for the authenticator's life.
    Static(KeySet),
    /// A JWKS endpoint's keys, refetched.
    Jwks(Box<Jwks>),
}

/// The result of the synchronous check.
pub(crate) enum Check {
    Valid(Arc<Verified>),
    Invalid(AuthFailure),
    /// The key may come with a JWKS refresh: await [`Authenticator::after_refresh`].
    NeedKeys,
}

impl Authenticator {
    /// Puts parts together that are already checked (the config path and the builder both
    /// check and convert their settings first, so the runtime never sees config types).
    pub(crate) fn new(
        policy: Policy,
        keys: Keys,
        cache: TokenCache,
        sources: TokenSources,
        challenges: Challenges,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                policy,
                keys,
                cache,
                sources,
                challenges,
            }),
        }
    }

    /// Verifies a token (from any source) and returns the caller's identity; with a JWKS
    /// URL this may wait for one key fetch.
    pub async fn authenticate(&self, token: &str) -> Result<Identity, AuthFailure> {
        let verified = match self.check(token.as_bytes()) {
            Check::Valid(verified) => verified,
            Check::Invalid(failure) => return Err(failure),
            Check::NeedKeys => self.after_refresh(token.as_bytes()).await?,
        };
        Ok(verified.identity.clone())
    }

    /// Spawns the JWKS background refresher on the current tokio runtime, unless it runs
    /// already (or there is no JWKS URL, or no runtime). Optional: the first request that
    /// needs keys spawns it too. Returns whether this call spawned it.
    pub fn start_jwks_refresh(&self) -> bool {
        match &self.inner.keys {
            Keys::Jwks(jwks) => self.spawn_refresher(jwks),
            Keys::Static(_) => false,
        }
    }

    /// Fetches the JWKS now (e.g. at startup, to log a warning early when the endpoint is
    /// down) and returns the number of usable keys. Respects `jwks_cooldown`.
    pub async fn refresh_jwks(&self) -> Result<usize, JwksError> {
        let Keys::Jwks(jwks) = &self.inner.keys else {
            return Err(JwksError::NotConfigured);
        };
        self.inner.apply(jwks.refresh().await)
    }

    /// How many verified tokens the cache holds (a gauge for metrics).
    pub fn cached_tokens(&self) -> usize {
        self.inner.cache.len()
    }

    /// The accepted algorithms (as configured, or inferred from the key source).
    pub fn algorithms(&self) -> &[Algorithm] {
        &self.inner.policy.algorithms
    }

    /// The upstream headers set from claims, which the layer strips from every request.
    pub fn forwarded_headers(&self) -> impl Iterator<Item = &HeaderName> {
        self.inner.policy.forward.iter().map(|rule| &rule.header)
    }

    pub(crate) fn sources(&self) -> &TokenSources {
        &self.inner.sources
    }

    /// The fast path: cache, then a signature check with the keys at hand.
    pub(crate) fn check(&self, token: &[u8]) -> Check {
        let inner = &*self.inner;
        let now = unix_now();
        if let Some(hit) = inner.cache.get(token, now) {
            return Check::Valid(hit);
        }
        let Ok(token) = std::str::from_utf8(token) else {
            return Check::Invalid(AuthFailure::MalformedToken);
        };
        let outcome = match &inner.keys {
            Keys::Static(keys) => verify(token, keys, &inner.policy, now),
            Keys::Jwks(jwks) => {
                if !jwks.refresher_started() {
                    self.spawn_refresher(jwks);
                }
                let keys = jwks.keys();
                verify(
                    token,
                    keys.as_deref().unwrap_or(&KeySet::EMPTY),
                    &inner.policy,
                    now,
                )
            }
        };
        match outcome {
            Outcome::Valid(verified) => {
                let verified = Arc::new(verified);
                if inner.cache.enabled() {
                    inner
                        .cache
                        .insert(token.as_bytes(), Arc::clone(&verified), now);
                }
                Check::Valid(verified)
            }
            Outcome::Invalid(failure) => Check::Invalid(failure),
            Outcome::UnknownKey if matches!(inner.keys, Keys::Jwks(_)) => Check::NeedKeys,
            Outcome::UnknownKey => Check::Invalid(AuthFailure::UnknownKey),
        }
    }

    /// The slow path after [`Check::NeedKeys`]: one (shared, rate-limited) JWKS fetch, then
    /// a second check.
    pub(crate) async fn after_refresh(&self, token: &[u8]) -> Result<Arc<Verified>, AuthFailure> {
        let Keys::Jwks(jwks) = &self.inner.keys else {
            return Err(AuthFailure::UnknownKey);
        };
        // The fetch runs in its own task: a client that disconnects must not cancel the fetch
        // other requests wait for. Failures are logged by the fetch; the second check tells
        // the request what it needs.
        let inner = Arc::clone(&self.inner);
        let _ = tokio::spawn(async move {
            if let Keys::Jwks(jwks) = &inner.keys {
                let _ = inner.apply(jwks.refresh_for_unknown_key().await);
            }
        })
        .await;
        match self.check(token) {
            Check::Valid(verified) => Ok(verified),
            Check::Invalid(failure) => Err(failure),
            Check::NeedKeys if jwks.has_keys() => Err(AuthFailure::UnknownKey),
            Check::NeedKeys => Err(AuthFailure::KeysUnavailable),
        }
    }

    /// Removes client-sent copies of the forwarded headers.
    pub(crate) fn strip(&self, headers: &mut HeaderMap) {
        for rule in &self.inner.policy.forward {
            headers.remove(&rule.header);
        }
    }

    /// Sets the forwarded headers (replacing or removing every client-sent copy) and the
    /// identity extension of an admitted request.
    pub(crate) fn admit<B>(&self, request: &mut http::Request<B>, verified: &Verified) {
        let headers = request.headers_mut();
        for (rule, value) in self
            .inner
            .policy
            .forward
            .iter()
            .zip(verified.forwarded.iter())
        {
            match value {
                // `insert` drops all previous values of the header.
                Some(value) => drop(headers.insert(rule.header.clone(), value.clone())),
                None => drop(headers.remove(&rule.header)),
            }
        }
        request.extensions_mut().insert(verified.identity.clone());
    }

    pub(crate) fn rejection(&self, failure: AuthFailure) -> Rejection {
        self.inner.challenges.rejection(failure)
    }

    fn spawn_refresher(&self, jwks: &Jwks) -> bool {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return false;
        };
        if !jwks.claim_refresher() {
            return false;
        }
        runtime.spawn(refresh_loop(Arc::downgrade(&self.inner)));
        true
    }
}

impl Inner {
    /// Puts a fetch's result into effect: changed keys invalidate cached verifications.
    fn apply(&self, fetched: Result<Fetched, JwksError>) -> Result<usize, JwksError> {
        match fetched? {
            Fetched::Changed(count) => {
                self.cache.clear();
                tracing::info!(keys = count, "JWKS keys updated");
                Ok(count)
            }
            Fetched::Unchanged(count) => Ok(count),
        }
    }
}

/// Refetches on schedule while the authenticator lives.
async fn refresh_loop(authenticator: Weak<Inner>) {
    let mut delay = match authenticator.upgrade().as_deref().map(|inner| &inner.keys) {
        Some(Keys::Jwks(jwks)) if jwks.has_keys() => jwks.timing.refresh,
        Some(Keys::Jwks(_)) => Duration::ZERO,
        _ => return,
    };
    loop {
        tokio::time::sleep(delay).await;
        let Some(inner) = authenticator.upgrade() else {
            return;
        };
        let Keys::Jwks(jwks) = &inner.keys else {
            return;
        };
        let result = inner.apply(jwks.scheduled_refresh().await);
        delay = match result {
            Ok(_) => jwks.timing.refresh,
            // Someone else fetched just now: back on schedule if that worked.
            Err(JwksError::CoolingDown) if jwks.has_keys() => jwks.timing.refresh,
            Err(_) => jwks.timing.cooldown.max(Duration::from_secs(1)),
        };
    }
}
