//! From settings to a running [`Authenticator`]: the one place where config values become
//! runtime parts (keys, policy, cache, challenges), shared by the config path and the
//! builder, so the runtime never reads config types.

use std::time::Duration;

use jsonwebtoken::{Algorithm, AlgorithmFamily, DecodingKey};

use crate::authenticator::{Authenticator, Keys};
use crate::cache::TokenCache;
use crate::config::{self, JwtConfig};
use crate::error::{BuildError, ConfigError};
use crate::jwks::{Jwks, JwksTiming};
use crate::keys::{self, KeyMaterial, KeySet, VerifyingKey};
use crate::rejection::Challenges;
use crate::token::TokenSources;
use crate::verify::Policy;

/// Checks what the key material decides (algorithm family, secret length, key type) and
/// builds the authenticator from `config`'s settings.
pub(crate) fn assemble(
    config: &JwtConfig,
    material: KeyMaterial,
) -> Result<Authenticator, BuildError> {
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
                .ok_or_else(|| BuildError::Invalid("the HMAC secret fits no algorithm".into()))?;
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
    let sources = TokenSources {
        cookie: config.from_cookie.as_deref().map(Into::into),
        query: config.from_query.as_deref().map(Into::into),
    };
    let retry_secs = config.jwks_cooldown.get().as_secs().max(1);
    Ok(Authenticator::new(
        policy,
        keys,
        TokenCache::new(config.cache_size),
        sources,
        Challenges::new(&config.realm, retry_secs),
    ))
}
