//! Where a route finds the key its requests are counted under, as the config names it.

use std::fmt;
use std::str::FromStr;

use http::HeaderName;

/// Where a route finds the key that requests are counted under.
///
/// Parsed from the `key` of `[routes.rate_limit]`: `"ip"`, `"user"`, `"header:NAME"` or
/// `"global"`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeySource {
    /// The client IP ([`ClientIp::of`](gateway_core::ClientIp::of): resolved through trusted
    /// proxies by [`ResolveClientIpLayer`](gateway_core::ResolveClientIpLayer), else the TCP
    /// peer).
    Ip,
    /// The authenticated user ([`Identity::subject`](gateway_core::Identity::subject):
    /// `user_id`, else `sub`). A request without an identity (an anonymous request on an
    /// `auth = "optional"` route) counts against its client IP instead, so that anonymous
    /// callers are still limited.
    User,
    /// The value of a request header (an API key, a tenant id). A request without the header
    /// counts against its client IP instead, so that leaving the header out does not escape
    /// the limit.
    Header(HeaderName),
    /// One counter shared by every request of the route.
    Global,
}

/// Why a `key` value is not understood.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid rate-limit key `{0}`: expected \"ip\", \"user\", \"header:NAME\" or \"global\"")]
pub struct InvalidKeySource(String);

impl FromStr for KeySource {
    type Err = InvalidKeySource;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let invalid = || InvalidKeySource(s.to_owned());
        match s.trim() {
            "ip" => Ok(Self::Ip),
            "user" => Ok(Self::User),
            "global" => Ok(Self::Global),
            other => {
                let name = other.strip_prefix("header:").ok_or_else(invalid)?.trim();
                HeaderName::from_bytes(name.as_bytes())
                    .map(Self::Header)
                    .map_err(|_| invalid())
            }
        }
    }
}

impl fmt::Display for KeySource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Ip => f.write_str("ip"),
            Self::User => f.write_str("user"),
            Self::Header(name) => write!(f, "header:{name}"),
            Self::Global => f.write_str("global"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_form() {
        assert_eq!("ip".parse(), Ok(KeySource::Ip));
        assert_eq!("user".parse(), Ok(KeySource::User));
        assert_eq!("global".parse(), Ok(KeySource::Global));
        assert_eq!(
            "header:X-Api-Key".parse(),
            Ok(KeySource::Header(HeaderName::from_static("x-api-key")))
        );
        assert!("header:".parse::<KeySource>().is_err());
        assert!("header:bad name".parse::<KeySource>().is_err());
        assert!("cookie".parse::<KeySource>().is_err());
        assert_eq!(
            KeySource::Header(HeaderName::from_static("x-k")).to_string(),
            "header:x-k"
        );
    }
}
