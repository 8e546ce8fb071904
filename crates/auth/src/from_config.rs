//! The `[jwt]` section to an [`Authenticator`]: validation, then the key material read from
//! the environment or files (never the network).

use crate::assemble::assemble;
use crate::authenticator::Authenticator;
use crate::config::{JwtConfig, SourceKind};
use crate::error::BuildError;
use crate::keys::KeyMaterial;

impl Authenticator {
    /// Builds from the `[jwt]` section: validates it, reads the secret (environment or
    /// file) or the PEM key. A JWKS URL is not fetched here (see the type's docs).
    pub fn from_config(config: &JwtConfig) -> Result<Self, BuildError> {
        config.validate()?;
        let material = match config.source_kind()? {
            SourceKind::Secret => {
                let (secret, field) =
                    read_secret(config)?.expect("validated: a secret source is set");
                KeyMaterial::Secret(secret, field)
            }
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
        assemble(config, material)
    }
}

/// The HMAC secret of `secret_env` (preferred) or `secret_file`, with the field it came
/// from; `None` when neither is set.
pub(crate) fn read_secret(
    config: &JwtConfig,
) -> Result<Option<(Vec<u8>, &'static str)>, BuildError> {
    match (&config.secret_env, &config.secret_file) {
        (Some(var), _) => {
            let secret =
                std::env::var(var).map_err(|_| BuildError::SecretEnvMissing(var.clone()))?;
            Ok(Some((secret.into_bytes(), "secret_env")))
        }
        (None, Some(path)) => {
            let mut secret = std::fs::read(path).map_err(|source| BuildError::SecretFile {
                path: path.clone(),
                source,
            })?;
            // Editors and `echo` end files with a newline that is not part of the secret.
            while secret.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
                secret.pop();
            }
            Ok(Some((secret, "secret_file")))
        }
        (None, None) => Ok(None),
    }
}
