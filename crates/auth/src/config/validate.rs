//! The checks that span several `[jwt]` fields (the single fields are checked while
//! deserializing).

use std::time::Duration;

#[cfg(not(feature = "jwks-https"))]
use http::Uri;
use jsonwebtoken::AlgorithmFamily;

use super::jwt::JwtConfig;
use crate::error::ConfigError;

/// Which kind of key source a config names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum SourceKind {
    Secret,
    PublicKey,
    Jwks,
}

impl JwtConfig {
    /// Checks what spans several fields: exactly one key source, algorithms that fit it,
    /// usable JWKS timings. Cheap and free of I/O, so the config loader can call it.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let kind = self.source_kind()?;
        for &alg in &self.algorithms {
            let hmac = alg.family() == AlgorithmFamily::Hmac;
            if hmac != (kind == SourceKind::Secret) {
                return Err(ConfigError::AlgorithmMismatch {
                    algorithm: alg,
                    source_field: self.source_field(),
                });
            }
        }
        if kind == SourceKind::Jwks {
            if self.jwks_refresh.get() < Duration::from_secs(1) {
                return Err(ConfigError::invalid("jwks_refresh", "must be at least 1s"));
            }
            if self.jwks_timeout.get().is_zero() {
                return Err(ConfigError::invalid("jwks_timeout", "must be more than 0s"));
            }
            #[cfg(not(feature = "jwks-https"))]
            if self.jwks_url.as_ref().and_then(Uri::scheme_str) == Some("https") {
                return Err(ConfigError::invalid(
                    "jwks_url",
                    "https needs gateway-auth's `jwks-https` feature",
                ));
            }
        }
        if self.roles_claim.is_empty() {
            return Err(ConfigError::invalid("roles_claim", "must not be empty"));
        }
        if self.required_claims.iter().any(String::is_empty) {
            return Err(ConfigError::invalid(
                "required_claims",
                "claim names must not be empty",
            ));
        }
        Ok(())
    }

    pub(crate) fn source_kind(&self) -> Result<SourceKind, ConfigError> {
        let set: Vec<&'static str> = [
            ("secret_env", self.secret_env.is_some()),
            ("secret_file", self.secret_file.is_some()),
            ("public_key_file", self.public_key_file.is_some()),
            ("jwks_url", self.jwks_url.is_some()),
        ]
        .into_iter()
        .filter_map(|(name, set)| set.then_some(name))
        .collect();
        match set.as_slice() {
            ["secret_env" | "secret_file"] => Ok(SourceKind::Secret),
            ["public_key_file"] => Ok(SourceKind::PublicKey),
            ["jwks_url"] => Ok(SourceKind::Jwks),
            _ => Err(ConfigError::KeySource { found: set }),
        }
    }

    fn source_field(&self) -> &'static str {
        if self.secret_env.is_some() {
            "secret_env"
        } else if self.secret_file.is_some() {
            "secret_file"
        } else if self.public_key_file.is_some() {
            "public_key_file"
        } else {
            "jwks_url"
        }
    }
}
