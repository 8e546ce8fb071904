//! The shared verifier: keys, policy, verified-token cache, JWKS source.

use std::sync::{Arc, Weak};
use std::time::Duration;

use gateway_core::Identity;
use http::header::{RETRY_AFTER, WWW_AUTHENTICATE};
use http::{HeaderMap, HeaderName, HeaderValue, Response};
use jsonwebtoken::{Algorithm, AlgorithmFamily, DecodingKey};

use crate::builder::AuthenticatorBuilder;
use crate::cache::TokenCache;
use crate::config::{self, JwtConfig, SourceKind};
use crate::error::{BuildError, ConfigError, JwksError};
use crate::failure::AuthFailure;
use crate::jwks::{Fetched, Jwks, JwksTiming};
use crate::keys::{self, KeySet, VerifyingKey};
use crate::token::TokenSources;
use crate::verify::{Outcome, Policy, Verified, unix_now, verify};
use gateway_core::{Problem, ResponseBody};

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
    /// `WWW-Authenticate` value per [`AuthFailure::index`].
    challenges: Box<[Option<HeaderValue>]>,
    retry_after: HeaderValue,
}

enum Keys {
    Static(KeySet),
    Jwks(Box<Jwks>),
}

/// The result of the synchronous check.
pub(crate) enum Check {
    Valid(Arc<Verified>),
    Invalid(AuthFailure),
    /// The key may come with a JWKS refresh: await [`Authenticator::after_refresh`].
    NeedKeys,
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

/// Where the keys come from, loaded.
pub(crate) enum KeyMaterial {
    Secret(Vec<u8>, &'static str),
    Pem(Vec<u8>),
    Jwks(http::Uri),
}

impl Authenticator {
    /// A builder for use without a config file.
    pub fn builder() -> AuthenticatorBuilder {
        AuthenticatorBuilder::default()
    }

    /// Builds from the `[jwt]` section: validates it, reads the secret (environment or
    /// file) or the PEM key. A JWKS URL is not fetched here (see the type's docs).
    pub fn from_config(config: &JwtConfig) -> Result<Self, BuildError> {
        config.validate()?;
        let material = match config.source_kind()? {
            SourceKind::Secret => match (&config.secret_env, &config.secret_file) {
                (Some(var), _) => {
                    let secret = std::env::var(var)
                        .map_err(|_| BuildError::SecretEnvMissing(var.clone()))?;
                    KeyMaterial::Secret(secret.into_bytes(), "secret_env")
                }
                (None, Some(path)) => {
                    let mut secret =
                        std::fs::read(path).map_err(|source| BuildError::SecretFile {
                            path: path.clone(),
                            source,
                        })?;
                    // Editors and `echo` end files with a newline that is not part of the secret.
                    while secret.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
                        secret.pop();
                    }
                    KeyMaterial::Secret(secret, "secret_file")
                }
                (None, None) => unreachable!("validated: a secret source is set"),
            },
            SourceKind::PublicKey => {
                let path = config
                    .public_key_file
                    .as_ref()
                    .expect("validated: a key file is set");
                let pem = std::fs::read(path).map_err(|source| BuildError::KeyFile {
                    path: path.clone(),
                    source,
                })?;
                KeyMaterial::Pem(pem)
            }
            SourceKind::Jwks => KeyMaterial::Jwks(
                config
                    .jwks_url
                    .clone()
                    .expect("validated: a JWKS URL is set"),
            ),
        };
        Self::build(config, material)
    }

    pub(crate) fn build(config: &JwtConfig, material: KeyMaterial) -> Result<Self, BuildError> {
        let hmac = matches!(material, KeyMaterial::Secret(..));
        let source_field = match &material {
            KeyMaterial::Secret(_, field) => field,
            KeyMaterial::Pem(_) => "public_key_file",
            KeyMaterial::Jwks(_) => "jwks_url",
        };
        if let Some(&algorithm) = config
            .algorithms
            .iter()
            .find(|a| (a.family() == AlgorithmFamily::Hmac) != hmac)
        {
            return Err(ConfigError::AlgorithmMismatch {
                algorithm,
                source_field,
            }
            .into());
        }
        config::check_realm(&config.realm).map_err(|e| ConfigError::invalid("realm", e))?;
        if config.roles_claim.is_empty() {
            return Err(ConfigError::invalid("roles_claim", "must not be empty").into());
        }
        let mut algorithms = config.algorithms.clone();
        let keys = match material {
            KeyMaterial::Secret(secret, field) => {
                if secret.len() < 32 {
                    return Err(BuildError::SecretTooShort {
                        field,
                        len: secret.len(),
                    });
                }
                if algorithms.is_empty() {
                    algorithms.push(Algorithm::HS256);
                }
                let key = VerifyingKey::new(None, &DecodingKey::from_secret(&secret), &algorithms)
                    .ok_or_else(|| {
                        BuildError::Invalid("the HMAC secret fits no algorithm".into())
                    })?;
                Keys::Static(KeySet::new(vec![key]))
            }
            KeyMaterial::Pem(pem) => {
                let key = keys::from_pem(&pem, &algorithms).map_err(BuildError::PublicKey)?;
                algorithms = key.algorithms().collect();
                Keys::Static(KeySet::new(vec![key]))
            }
            KeyMaterial::Jwks(url) => {
                if algorithms.is_empty() {
                    algorithms.push(Algorithm::RS256);
                }
                let timing = JwksTiming {
                    refresh: config.jwks_refresh.get().max(Duration::from_secs(1)),
                    cooldown: config.jwks_cooldown.get(),
                    timeout: config.jwks_timeout.get(),
                };
                Keys::Jwks(Box::new(Jwks::new(url, algorithms.clone(), timing)?))
            }
        };
        let policy = Policy {
            algorithms,
            issuers: config.issuer.clone(),
            audiences: config.audience.clone(),
            leeway: config.leeway.get().as_secs(),
            required_claims: config.required_claims.clone(),
            roles_claim: config.roles_claim.clone(),
            forward: config.forward.0.clone(),
        };
        let retry_secs = config.jwks_cooldown.get().as_secs().max(1);
        Ok(Self {
            inner: Arc::new(Inner {
                policy,
                keys,
                cache: TokenCache::new(config.cache_size),
                sources: TokenSources {
                    cookie: config.from_cookie.as_deref().map(Into::into),
                    query: config.from_query.as_deref().map(Into::into),
                },
                challenges: challenges(&config.realm),
                retry_after: HeaderValue::from(retry_secs),
            }),
        })
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
            return Check::Invalid(AuthFailure::Malformed);
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
        Rejection {
            failure,
            challenge: self.inner.challenges[failure.index()].clone(),
            retry_after: (failure == AuthFailure::KeysUnavailable)
                .then(|| self.inner.retry_after.clone()),
        }
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
