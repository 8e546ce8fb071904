//! Errors of configuration, key loading, JWKS fetching and token minting.

use std::path::PathBuf;

use jsonwebtoken::Algorithm;

/// A `[jwt]` section whose fields do not fit together.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// Zero or several key sources.
    #[error(
        "`jwt`: set exactly one of `secret_env`, `secret_file`, `public_key_file`, `jwks_url` (found {})",
        found_list(found)
    )]
    KeySource {
        /// The key source fields that are set.
        found: Vec<&'static str>,
    },
    /// An algorithm of the wrong family for the key source (e.g. HS256 with a public key:
    /// the classic key-confusion hole).
    #[error(
        "`jwt.algorithms`: {algorithm:?} cannot be used with `jwt.{source_field}` (HMAC algorithms \
         need `secret_env` or `secret_file`; RSA, EC and EdDSA need `public_key_file` or `jwks_url`)"
    )]
    AlgorithmMismatch {
        /// The offending algorithm.
        algorithm: Algorithm,
        /// The key source field that is set.
        source_field: &'static str,
    },
    /// A field with an unusable value.
    #[error("`jwt.{field}`: {reason}")]
    Invalid {
        /// The field, e.g. `jwks_timeout`.
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },
}

impl ConfigError {
    pub(crate) fn invalid(field: &'static str, reason: impl Into<String>) -> Self {
        Self::Invalid {
            field,
            reason: reason.into(),
        }
    }
}

fn found_list(found: &[&str]) -> String {
    if found.is_empty() {
        "none".to_owned()
    } else {
        found
            .iter()
            .map(|f| format!("`{f}`"))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// Why an [`Authenticator`](crate::Authenticator) could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// The config's fields do not fit together.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The secret's environment variable is unset or not UTF-8.
    #[error("`jwt.secret_env`: environment variable `{0}` is not set")]
    SecretEnvMissing(String),
    /// The secret file could not be read.
    #[error("`jwt.secret_file`: cannot read `{}`: {source}", path.display())]
    SecretFile {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// An HMAC secret shorter than 256 bits (RFC 7518 section 3.2).
    #[error("`jwt.{field}`: the HMAC secret has {len} bytes; at least 32 are required")]
    SecretTooShort {
        /// `secret_env`, `secret_file` or `secret`.
        field: &'static str,
        /// Its length in bytes.
        len: usize,
    },
    /// The public key file could not be read.
    #[error("`jwt.public_key_file`: cannot read `{}`: {source}", path.display())]
    KeyFile {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The public key is not a usable PEM public key for the configured algorithms.
    #[error("`jwt.public_key_file`: {0}")]
    PublicKey(String),
    /// The HTTPS client for the JWKS URL could not be set up (e.g. no root certificates).
    #[error("`jwt.jwks_url`: cannot set up HTTPS: {0}")]
    Https(String),
    /// A builder value is invalid.
    #[error("{0}")]
    Invalid(String),
}

/// Why fetching the JWKS failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum JwksError {
    /// The authenticator has no JWKS URL.
    #[error("no JWKS URL is configured")]
    NotConfigured,
    /// Another refresh ran too recently (see `jwks_cooldown`).
    #[error("a JWKS refresh ran less than the cooldown ago")]
    CoolingDown,
    /// The endpoint could not be reached, or broke off.
    #[error("JWKS request failed: {0}")]
    Request(String),
    /// The endpoint did not answer within `jwks_timeout`.
    #[error("JWKS request timed out")]
    Timeout,
    /// The endpoint answered with a non-200 status.
    #[error("JWKS endpoint answered {0}")]
    Status(http::StatusCode),
    /// The document is not a JWK set, or larger than the limit.
    #[error("JWKS document is invalid: {0}")]
    Document(String),
    /// The set holds no key usable with the configured algorithms.
    #[error("JWKS holds no key usable with the configured algorithms")]
    NoUsableKeys,
}

/// Why a token could not be minted.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MintError {
    /// The config does not use an HMAC secret (only HMAC tokens can be minted locally).
    #[error("minting needs an HMAC key source (`secret_env` or `secret_file`)")]
    NotHmac,
    /// The secret could not be loaded.
    #[error(transparent)]
    Secret(#[from] BuildError),
    /// A `--claim` argument is not `name=value` or `name:=json`.
    #[error("claim `{0}` must be `name=value` (a string) or `name:=json`")]
    ClaimSyntax(String),
    /// The TTL does not fit a timestamp.
    #[error("the ttl is too large")]
    Ttl,
    /// Signing failed.
    #[error("signing failed: {0}")]
    Sign(String),
}
