//! `[admin] token_env`: the bearer token every admin path but `/health` asks for.

use http::HeaderMap;
use http::header::AUTHORIZATION;

/// Why the admin token could not be read.
#[derive(Debug, thiserror::Error)]
pub(crate) enum TokenError {
    /// The variable is not set.
    #[error("the environment variable `{0}` is not set")]
    Missing(String),
    /// The variable is set to nothing: every request would need an empty token.
    #[error("the environment variable `{0}` is empty")]
    Empty(String),
    /// The variable is not UTF-8 (a header value could not carry it reliably).
    #[error("the environment variable `{0}` is not valid UTF-8")]
    NotUnicode(String),
}

/// The token admin requests must present.
pub(crate) struct AdminToken(Box<[u8]>);

impl std::fmt::Debug for AdminToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AdminToken(..)")
    }
}

impl AdminToken {
    /// Reads the token from the environment variable `name`.
    pub(crate) fn from_env(name: &str) -> Result<Self, TokenError> {
        match std::env::var(name) {
            Ok(value) if value.is_empty() => Err(TokenError::Empty(name.to_owned())),
            Ok(value) => Ok(Self(value.into_bytes().into_boxed_slice())),
            Err(std::env::VarError::NotPresent) => Err(TokenError::Missing(name.to_owned())),
            Err(std::env::VarError::NotUnicode(_)) => Err(TokenError::NotUnicode(name.to_owned())),
        }
    }

    /// Whether the request carries `Authorization: Bearer <token>`.
    pub(crate) fn admits(&self, headers: &HeaderMap) -> bool {
        let Some(value) = headers.get(AUTHORIZATION) else {
            return false;
        };
        let value = value.as_bytes();
        let Some((scheme, presented)) = value.split_at_checked(7) else {
            return false;
        };
        scheme.eq_ignore_ascii_case(b"bearer ") && constant_time_eq(&self.0, presented)
    }
}

/// Compares in a time that depends on the expected token's length only, so response times
/// do not tell an attacker how many leading bytes of a guess were right.
fn constant_time_eq(expected: &[u8], presented: &[u8]) -> bool {
    let mut difference = u8::from(expected.len() != presented.len());
    for (index, &byte) in expected.iter().enumerate() {
        let other = presented.get(index).copied().unwrap_or(!byte);
        difference |= std::hint::black_box(byte ^ other);
    }
    difference == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(authorization: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(AUTHORIZATION, authorization.parse().unwrap());
        headers
    }

    #[test]
    fn admits_only_the_exact_bearer_token() {
        let token = AdminToken(b"s3cret-token".to_vec().into_boxed_slice());
        assert!(token.admits(&headers("Bearer s3cret-token")));
        assert!(token.admits(&headers("bearer s3cret-token")));
        assert!(!token.admits(&headers("Bearer s3cret-tokeN")));
        assert!(!token.admits(&headers("Bearer s3cret-token2")));
        assert!(!token.admits(&headers("Bearer s3cret")));
        assert!(!token.admits(&headers("Basic s3cret-token")));
        assert!(!token.admits(&headers("Bearer")));
        assert!(!token.admits(&HeaderMap::new()));
    }

    #[test]
    fn comparison_covers_every_byte() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
        assert!(!constant_time_eq(b"abc", b""));
        assert!(!constant_time_eq(b"", b"x"));
        assert!(constant_time_eq(b"", b""));
    }
}
