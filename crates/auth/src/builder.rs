//! Building an [`Authenticator`] in code, without a config file.

use std::time::Duration;

use jsonwebtoken::Algorithm;

use crate::assemble::assemble;
use crate::authenticator::Authenticator;
use crate::config::{self, Forward, JwtConfig};
use crate::error::{BuildError, ConfigError};
use crate::keys::KeyMaterial;

impl Authenticator {
    /// A builder for use without a config file.
    pub fn builder() -> AuthenticatorBuilder {
        AuthenticatorBuilder::default()
    }
}

/// Builds an [`Authenticator`] in code; every setting defaults as in [`JwtConfig`].
///
/// ```
/// use std::time::Duration;
/// use gateway_auth::{Algorithm, Authenticator};
///
/// let auth = Authenticator::builder()
///     .hmac_secret(*b"an-example-secret-of-32-bytes!!!")
///     .algorithms([Algorithm::HS256])
///     .issuer("api-gateway")
///     .leeway(Duration::from_secs(5))
///     .token_from_cookie("session")
///     .forward("X-Tenant", ["tenant"])
///     .build()
///     .unwrap();
/// assert_eq!(auth.forwarded_headers().count(), 3);
/// ```
#[derive(Default)]
pub struct AuthenticatorBuilder {
    config: JwtConfig,
    key: Option<KeyMaterial>,
    error: Option<String>,
}

impl AuthenticatorBuilder {
    /// Verifies HMAC tokens with this secret (at least 32 bytes).
    #[must_use]
    pub fn hmac_secret(mut self, secret: impl Into<Vec<u8>>) -> Self {
        self.key = Some(KeyMaterial::Secret(secret.into(), "secret"));
        self
    }

    /// Verifies with a PEM public key (RSA, EC P-256/P-384 or Ed25519).
    #[must_use]
    pub fn public_key_pem(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.key = Some(KeyMaterial::Pem(pem.into()));
        self
    }

    /// Verifies with the keys of a JWKS endpoint (`http://` or `https://`).
    #[must_use]
    pub fn jwks_url(mut self, url: &str) -> Self {
        match config::parse_jwks_url(url) {
            Ok(url) => self.key = Some(KeyMaterial::Jwks(url)),
            Err(e) => self.error = Some(e),
        }
        self
    }

    /// The accepted algorithms (default: inferred from the key source).
    #[must_use]
    pub fn algorithms(mut self, algorithms: impl IntoIterator<Item = Algorithm>) -> Self {
        self.config.algorithms = algorithms.into_iter().collect();
        self
    }

    /// Accepts this `iss` (may be called several times).
    #[must_use]
    pub fn issuer(mut self, issuer: impl Into<String>) -> Self {
        self.config.issuer.push(issuer.into());
        self
    }

    /// Accepts this audience (may be called several times).
    #[must_use]
    pub fn audience(mut self, audience: impl Into<String>) -> Self {
        self.config.audience.push(audience.into());
        self
    }

    /// Clock skew tolerated on `exp` and `nbf` (default 30 s).
    #[must_use]
    pub fn leeway(mut self, leeway: Duration) -> Self {
        self.config.leeway = leeway.into();
        self
    }

    /// Claims every token must carry (default `["exp"]`).
    #[must_use]
    pub fn required_claims<I, C>(mut self, claims: I) -> Self
    where
        I: IntoIterator<Item = C>,
        C: Into<String>,
    {
        self.config.required_claims = claims.into_iter().map(Into::into).collect();
        self
    }

    /// Also accepts the token in this cookie (a request may carry only one token).
    #[must_use]
    pub fn token_from_cookie(mut self, name: impl Into<String>) -> Self {
        self.config.from_cookie = Some(name.into());
        self
    }

    /// Also accepts the token in this query parameter (a request may carry only one token).
    #[must_use]
    pub fn token_from_query(mut self, name: impl Into<String>) -> Self {
        self.config.from_query = Some(name.into());
        self
    }

    /// How many verified tokens to remember (default 10000; 0 disables the cache).
    #[must_use]
    pub fn cache_size(mut self, size: usize) -> Self {
        self.config.cache_size = size;
        self
    }

    /// The claim holding the caller's role(s) (default `role`).
    #[must_use]
    pub fn roles_claim(mut self, claim: impl Into<String>) -> Self {
        self.config.roles_claim = claim.into();
        self
    }

    /// The realm of the `WWW-Authenticate` challenges (default `gateway`).
    #[must_use]
    pub fn realm(mut self, realm: impl Into<String>) -> Self {
        self.config.realm = realm.into();
        self
    }

    /// Sets `header` upstream from the first of `claims` the token has (replacing any rule
    /// for that header; the defaults `X-User-ID` and `X-User-Role` stay unless cleared).
    #[must_use]
    pub fn forward<I, C>(mut self, header: &str, claims: I) -> Self
    where
        I: IntoIterator<Item = C>,
        C: Into<String>,
    {
        match config::forward_rule(header, claims.into_iter().map(Into::into).collect()) {
            Ok(rule) => {
                self.config.forward.0.retain(|r| r.header != rule.header);
                self.config.forward.0.push(rule);
            }
            Err(e) => self.error = Some(e),
        }
        self
    }

    /// Replaces all forwarding rules (an empty [`Forward`] forwards and strips nothing).
    #[must_use]
    pub fn forward_rules(mut self, forward: Forward) -> Self {
        self.config.forward = forward;
        self
    }

    /// Background JWKS refresh interval (default 5 min).
    #[must_use]
    pub fn jwks_refresh(mut self, every: Duration) -> Self {
        self.config.jwks_refresh = every.into();
        self
    }

    /// Minimum time between unknown-`kid` fetches, and retry delay (default 10 s).
    #[must_use]
    pub fn jwks_cooldown(mut self, cooldown: Duration) -> Self {
        self.config.jwks_cooldown = cooldown.into();
        self
    }

    /// Deadline of one JWKS fetch (default 5 s).
    #[must_use]
    pub fn jwks_timeout(mut self, timeout: Duration) -> Self {
        self.config.jwks_timeout = timeout.into();
        self
    }

    /// Builds the authenticator.
    pub fn build(self) -> Result<Authenticator, BuildError> {
        if let Some(error) = self.error {
            return Err(BuildError::Invalid(error));
        }
        let key = self.key.ok_or_else(|| {
            BuildError::Invalid("no key: set a secret, a public key or a JWKS URL".into())
        })?;
        if self.config.jwks_timeout.get().is_zero() {
            return Err(ConfigError::invalid("jwks_timeout", "must be more than 0s").into());
        }
        assemble(&self.config, key)
    }
}
