//! Why a request was rejected: the typed reason the layer puts into its rejection responses.

use std::fmt;

use http::StatusCode;

/// The reason the auth layer rejected a request.
///
/// Every rejection response carries one in its extensions, so the gateway can count
/// `gateway_auth_failures_total{reason}` without parsing bodies:
///
/// ```
/// # use gateway_auth::AuthFailure;
/// # let response = http::Response::new(());
/// if let Some(failure) = response.extensions().get::<AuthFailure>() {
///     println!("auth failure: {}", failure.as_str());
/// }
/// ```
///
/// [`as_str`](AuthFailure::as_str) gives stable snake_case names, safe to use as metric labels.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum AuthFailure {
    /// No bearer token in the request (401, no error code, per RFC 6750 section 3.1).
    MissingToken,
    /// The request's bearer credentials are malformed or ambiguous (401 `invalid_request`):
    /// an `Authorization: Bearer` header that is not `Bearer <b64token>`, several
    /// `Authorization` headers, or a token in more than one place (header, cookie, query
    /// parameter, or the same cookie or parameter twice).
    Malformed,
    /// A token is present but is not a well-formed JWS: not three base64url parts, a header
    /// or claims that are not JSON objects, or an unsupported critical header (401
    /// `invalid_token`).
    MalformedToken,
    /// `exp` is in the past, beyond the leeway (401 `invalid_token`).
    Expired,
    /// `nbf` is in the future, beyond the leeway (401 `invalid_token`).
    NotYetValid,
    /// The signature does not match the token (401 `invalid_token`).
    BadSignature,
    /// No known key matches the token's `kid` (401 `invalid_token`).
    UnknownKey,
    /// `iss` is missing or not one of the configured issuers (401 `invalid_token`).
    WrongIssuer,
    /// `aud` does not name one of the configured audiences (401 `invalid_token`).
    WrongAudience,
    /// The header's `alg` is not allowed, or does not fit the key (401 `invalid_token`).
    AlgorithmNotAllowed,
    /// A required claim is absent (401 `invalid_token`).
    MissingClaim,
    /// A registered claim has the wrong type, e.g. a textual `exp` (401 `invalid_token`).
    InvalidClaim,
    /// The caller's role claim matches none of the route's roles (403 `insufficient_scope`).
    InsufficientRole,
    /// No signing keys could be loaded from the JWKS endpoint yet (503).
    KeysUnavailable,
}

impl AuthFailure {
    /// Every reason, e.g. to pre-register metric label values.
    pub const ALL: [AuthFailure; 14] = [
        Self::MissingToken,
        Self::Malformed,
        Self::MalformedToken,
        Self::Expired,
        Self::NotYetValid,
        Self::BadSignature,
        Self::UnknownKey,
        Self::WrongIssuer,
        Self::WrongAudience,
        Self::AlgorithmNotAllowed,
        Self::MissingClaim,
        Self::InvalidClaim,
        Self::InsufficientRole,
        Self::KeysUnavailable,
    ];

    /// The stable snake_case name of the reason (a metric label value).
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::MissingToken => "missing_token",
            Self::Malformed => "malformed",
            Self::MalformedToken => "malformed_token",
            Self::Expired => "expired",
            Self::NotYetValid => "not_yet_valid",
            Self::BadSignature => "bad_signature",
            Self::UnknownKey => "unknown_key",
            Self::WrongIssuer => "wrong_issuer",
            Self::WrongAudience => "wrong_audience",
            Self::AlgorithmNotAllowed => "algorithm_not_allowed",
            Self::MissingClaim => "missing_claim",
            Self::InvalidClaim => "invalid_claim",
            Self::InsufficientRole => "insufficient_role",
            Self::KeysUnavailable => "keys_unavailable",
        }
    }

    /// The status of the rejection response.
    pub const fn status(self) -> StatusCode {
        match self {
            Self::InsufficientRole => StatusCode::FORBIDDEN,
            Self::KeysUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::UNAUTHORIZED,
        }
    }

    /// A short explanation for the client: specific, and safe to show (no key material, no
    /// claim values).
    pub const fn description(self) -> &'static str {
        match self {
            Self::MissingToken => "no bearer token in the request",
            Self::Malformed => "the bearer credentials in the request are malformed or ambiguous",
            Self::MalformedToken => "the bearer token is malformed",
            Self::Expired => "the token has expired",
            Self::NotYetValid => "the token is not valid yet",
            Self::BadSignature => "the token signature is invalid",
            Self::UnknownKey => "the token is signed with an unknown key",
            Self::WrongIssuer => "the token issuer is not trusted",
            Self::WrongAudience => "the token is not meant for this audience",
            Self::AlgorithmNotAllowed => "the token signing algorithm is not allowed",
            Self::MissingClaim => "the token lacks a required claim",
            Self::InvalidClaim => "a token claim has an invalid value",
            Self::InsufficientRole => "the token role does not grant access to this resource",
            Self::KeysUnavailable => "the signing keys are unavailable; try again later",
        }
    }

    /// The RFC 6750 `error` code of the `WWW-Authenticate` challenge, if any.
    pub(crate) const fn error_code(self) -> Option<&'static str> {
        match self {
            Self::MissingToken | Self::KeysUnavailable => None,
            // RFC 6750 section 3.1: `invalid_request` is about the request; a token that is
            // there but unreadable is an `invalid_token` like any other bad token.
            Self::Malformed => Some("invalid_request"),
            Self::InsufficientRole => Some("insufficient_scope"),
            _ => Some("invalid_token"),
        }
    }

    pub(crate) const fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for AuthFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.description())
    }
}

impl std::error::Error for AuthFailure {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_lists_each_reason_once_in_index_order() {
        for (i, failure) in AuthFailure::ALL.iter().enumerate() {
            assert_eq!(failure.index(), i);
        }
        let mut names: Vec<_> = AuthFailure::ALL.iter().map(|f| f.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), AuthFailure::ALL.len());
    }

    #[test]
    fn statuses_and_error_codes_follow_rfc_6750() {
        assert_eq!(AuthFailure::MissingToken.status(), 401);
        assert_eq!(AuthFailure::MissingToken.error_code(), None);
        assert_eq!(AuthFailure::Malformed.error_code(), Some("invalid_request"));
        assert_eq!(
            AuthFailure::MalformedToken.error_code(),
            Some("invalid_token")
        );
        assert_eq!(AuthFailure::Expired.error_code(), Some("invalid_token"));
        assert_eq!(AuthFailure::InsufficientRole.status(), 403);
        assert_eq!(
            AuthFailure::InsufficientRole.error_code(),
            Some("insufficient_scope")
        );
        assert_eq!(AuthFailure::KeysUnavailable.status(), 503);
    }
}
