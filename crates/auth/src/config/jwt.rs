//! The `[jwt]` section's fields and defaults.

use std::path::PathBuf;
use std::time::Duration;

use gateway_core::config::HumanDuration;
use http::Uri;
use jsonwebtoken::Algorithm;
use serde::Deserialize;

use super::forward::Forward;
use super::parse::{de_algorithms, de_jwks_url, de_one_or_many, de_realm, de_token_name};

/// The `[jwt]` section: where keys come from and what a valid token looks like.
///
/// Exactly one key source must be set: `secret_env`, `secret_file` (HMAC), `public_key_file`
/// (a PEM RSA, EC or Ed25519 public key) or `jwks_url`.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JwtConfig {
    /// Accepted `alg` values (`HS256`, `RS256`, `PS256`, `ES256`, `EdDSA`, ...). Empty means:
    /// `HS256` for a secret, `RS256` for a JWKS URL, the key's own family for a PEM file
    /// (`RS256`, `ES256`/`ES384` by curve, `EdDSA`). `none` is never accepted.
    #[serde(default, deserialize_with = "de_algorithms")]
    pub algorithms: Vec<Algorithm>,
    /// Name of the environment variable holding the HMAC secret (its raw bytes, >= 32).
    #[serde(default)]
    pub secret_env: Option<String>,
    /// File holding the HMAC secret (its raw bytes, a trailing newline ignored, >= 32).
    #[serde(default)]
    pub secret_file: Option<PathBuf>,
    /// PEM file with the public key (`PUBLIC KEY`, or `RSA PUBLIC KEY`).
    #[serde(default)]
    pub public_key_file: Option<PathBuf>,
    /// JWKS endpoint (`http://` or `https://`), e.g. an IdP's `/.well-known/jwks.json`.
    #[serde(default, deserialize_with = "de_jwks_url")]
    pub jwks_url: Option<Uri>,
    /// How often the JWKS is fetched again in the background (default `5m`).
    #[serde(default = "defaults::jwks_refresh")]
    pub jwks_refresh: HumanDuration,
    /// Minimum time between two fetches triggered by tokens with an unknown `kid`, and the
    /// retry delay after a failed fetch (default `10s`): a flood of made-up `kid`s costs the
    /// JWKS endpoint at most one request per cooldown.
    #[serde(default = "defaults::jwks_cooldown")]
    pub jwks_cooldown: HumanDuration,
    /// Deadline of one JWKS fetch, connection included (default `5s`). A request waiting for
    /// a key never waits longer.
    #[serde(default = "defaults::jwks_timeout")]
    pub jwks_timeout: HumanDuration,
    /// Accepted `iss` values (a string or a list); empty: `iss` is not checked.
    #[serde(default, deserialize_with = "de_one_or_many")]
    pub issuer: Vec<String>,
    /// Accepted audiences (a string or a list); the token's `aud` (a string or a list) must
    /// name one. Empty: `aud` is not checked.
    #[serde(default, deserialize_with = "de_one_or_many")]
    pub audience: Vec<String>,
    /// Clock skew tolerated on `exp` and `nbf` (default `30s`).
    #[serde(default = "defaults::leeway")]
    pub leeway: HumanDuration,
    /// Claims every token must carry (default `["exp"]`; `[]` accepts tokens that never
    /// expire).
    #[serde(default = "defaults::required_claims")]
    pub required_claims: Vec<String>,
    /// Also accept the token in this cookie. A request carrying tokens in two places (header,
    /// cookie, query parameter) or this cookie twice is refused (`invalid_request`).
    #[serde(default, deserialize_with = "de_token_name")]
    pub from_cookie: Option<String>,
    /// Also accept the token in this query parameter. A request carrying tokens in two places
    /// or this parameter twice is refused (`invalid_request`).
    #[serde(default, deserialize_with = "de_token_name")]
    pub from_query: Option<String>,
    /// How many verified tokens are remembered (default 10000; 0 disables the cache).
    #[serde(default = "defaults::cache_size")]
    pub cache_size: usize,
    /// The claim holding the caller's role(s), a string or a list (default `role`); routes'
    /// `roles` are matched against it.
    #[serde(default = "defaults::roles_claim")]
    pub roles_claim: String,
    /// The `realm` of the `WWW-Authenticate` challenges (default `gateway`).
    #[serde(default = "defaults::realm", deserialize_with = "de_realm")]
    pub realm: String,
    /// Upstream request headers set from claims (`[jwt.forward]`); see [`Forward`].
    #[serde(default)]
    pub forward: Forward,
}

mod defaults {
    use super::*;

    pub(super) fn jwks_refresh() -> HumanDuration {
        Duration::from_secs(300).into()
    }
    pub(super) fn jwks_cooldown() -> HumanDuration {
        Duration::from_secs(10).into()
    }
    pub(super) fn jwks_timeout() -> HumanDuration {
        Duration::from_secs(5).into()
    }
    pub(super) fn leeway() -> HumanDuration {
        Duration::from_secs(30).into()
    }
    pub(super) fn required_claims() -> Vec<String> {
        vec!["exp".to_owned()]
    }
    pub(super) fn cache_size() -> usize {
        10_000
    }
    pub(super) fn roles_claim() -> String {
        "role".to_owned()
    }
    pub(super) fn realm() -> String {
        "gateway".to_owned()
    }
}

impl Default for JwtConfig {
    /// Every field at its default and no key source (set one before use).
    fn default() -> Self {
        Self {
            algorithms: Vec::new(),
            secret_env: None,
            secret_file: None,
            public_key_file: None,
            jwks_url: None,
            jwks_refresh: defaults::jwks_refresh(),
            jwks_cooldown: defaults::jwks_cooldown(),
            jwks_timeout: defaults::jwks_timeout(),
            issuer: Vec::new(),
            audience: Vec::new(),
            leeway: defaults::leeway(),
            required_claims: defaults::required_claims(),
            from_cookie: None,
            from_query: None,
            cache_size: defaults::cache_size(),
            roles_claim: defaults::roles_claim(),
            realm: defaults::realm(),
            forward: Forward::default(),
        }
    }
}
