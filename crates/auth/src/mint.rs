//! Minting HMAC tokens, for development and the quickstart (`gateway token`).

use std::time::Duration;

use jsonwebtoken::{Algorithm, AlgorithmFamily, EncodingKey, Header};
use serde_json::{Map, Value};

use crate::config::JwtConfig;
use crate::error::{BuildError, MintError};
use crate::from_config::read_secret;
use crate::verify::unix_now;

/// Signs `claims` with HS256, adding `iat`, `exp` (now + `ttl`) and, unless `claims` set
/// them, `iss` and `aud`.
///
/// ```
/// use std::time::Duration;
/// use serde_json::{Map, json};
///
/// let mut claims = Map::new();
/// claims.insert("user_id".into(), json!("alice"));
/// let secret = b"an-example-secret-of-32-bytes!!!";
/// let token = gateway_auth::mint_hs256(secret, claims, Duration::from_secs(3600), Some("api-gateway"), None)
///     .unwrap();
/// assert_eq!(token.split('.').count(), 3);
/// ```
pub fn mint_hs256(
    secret: &[u8],
    claims: Map<String, Value>,
    ttl: Duration,
    issuer: Option<&str>,
    audience: Option<&str>,
) -> Result<String, MintError> {
    mint_hmac(Algorithm::HS256, secret, claims, ttl, issuer, audience)
}

/// Mints a token the gateway configured by `config` accepts: signed with its secret
/// (`secret_env` or `secret_file`) and its first HMAC algorithm, with its first issuer and
/// audience. This is what `gateway token --config FILE --claim ... --ttl 1h` prints.
pub fn mint_for_config(
    config: &JwtConfig,
    claims: Map<String, Value>,
    ttl: Duration,
) -> Result<String, MintError> {
    let (secret, _) = read_secret(config)?.ok_or(MintError::NotHmac)?;
    let algorithm = match config.algorithms.first() {
        None => Algorithm::HS256,
        Some(alg) if alg.family() == AlgorithmFamily::Hmac => *alg,
        Some(_) => return Err(MintError::NotHmac),
    };
    mint_hmac(
        algorithm,
        &secret,
        claims,
        ttl,
        config.issuer.first().map(String::as_str),
        config.audience.first().map(String::as_str),
    )
}

fn mint_hmac(
    algorithm: Algorithm,
    secret: &[u8],
    mut claims: Map<String, Value>,
    ttl: Duration,
    issuer: Option<&str>,
    audience: Option<&str>,
) -> Result<String, MintError> {
    if secret.len() < 32 {
        return Err(BuildError::SecretTooShort {
            field: "secret",
            len: secret.len(),
        }
        .into());
    }
    let now = unix_now();
    let exp = now.checked_add(ttl.as_secs()).ok_or(MintError::Ttl)?;
    claims.insert("iat".into(), now.into());
    claims.insert("exp".into(), exp.into());
    if let Some(issuer) = issuer {
        claims.entry("iss").or_insert_with(|| issuer.into());
    }
    if let Some(audience) = audience {
        claims.entry("aud").or_insert_with(|| audience.into());
    }
    jsonwebtoken::encode(
        &Header::new(algorithm),
        &claims,
        &EncodingKey::from_secret(secret),
    )
    .map_err(|e| MintError::Sign(e.to_string()))
}

/// Parses a `--claim` argument: `name=value` gives a string, `name:=json` any JSON value
/// (`level:=3`, `admin:=true`, `roles:=["a","b"]`).
pub fn parse_claim(arg: &str) -> Result<(String, Value), MintError> {
    let syntax = || MintError::ClaimSyntax(arg.to_owned());
    let (name, value) = arg.split_once('=').ok_or_else(syntax)?;
    let (name, value) = match name.strip_suffix(':') {
        Some(name) => (name, serde_json::from_str(value).map_err(|_| syntax())?),
        None => (name, Value::String(value.to_owned())),
    };
    if name.is_empty() {
        return Err(syntax());
    }
    Ok((name.to_owned(), value))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn claim_arguments() {
        assert_eq!(
            parse_claim("user_id=alice").unwrap(),
            ("user_id".into(), json!("alice"))
        );
        assert_eq!(parse_claim("n=42").unwrap(), ("n".into(), json!("42")));
        assert_eq!(parse_claim("n:=42").unwrap(), ("n".into(), json!(42)));
        assert_eq!(
            parse_claim("roles:=[\"a\",\"b\"]").unwrap(),
            ("roles".into(), json!(["a", "b"]))
        );
        assert_eq!(parse_claim("eq=a=b").unwrap(), ("eq".into(), json!("a=b")));
        assert!(parse_claim("novalue").is_err());
        assert!(parse_claim("=x").is_err());
        assert!(parse_claim("n:=nope").is_err());
    }

    #[test]
    fn short_secrets_are_refused() {
        let err =
            mint_hs256(b"short", Map::new(), Duration::from_secs(60), None, None).unwrap_err();
        assert!(err.to_string().contains("at least 32"), "{err}");
    }
}
