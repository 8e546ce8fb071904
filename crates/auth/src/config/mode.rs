//! The per-route `auth` mode.

use std::str::FromStr;

use serde::Deserialize;

/// How a route uses authentication (the route's `auth` key).
///
/// The default, for a route without `auth`, is [`AuthMode::None`] (the layer alone defaults
/// to [`AuthMode::Required`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuthMode {
    /// A valid token is required: 401 without one.
    Required,
    /// A valid token is used when present; no token passes anonymously; an invalid one
    /// gets 401 (a client that sends a token expects it to count).
    Optional,
    /// Tokens are ignored (forwarded identity headers are still stripped).
    #[default]
    None,
}

impl FromStr for AuthMode {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "required" => Ok(Self::Required),
            "optional" => Ok(Self::Optional),
            "none" => Ok(Self::None),
            _ => Err(format!(
                "unknown auth mode `{s}`; expected `required`, `optional` or `none`"
            )),
        }
    }
}
