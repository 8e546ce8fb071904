//! `[jwt.forward]`: which claims become which upstream headers.

use std::fmt;

use http::HeaderName;
use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, Visitor};

use super::parse::OneOrMany;

/// One forwarded header: set from the first of `claims` the token has.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ForwardRule {
    /// The upstream request header.
    pub header: HeaderName,
    /// Claims tried in order; strings are sent as they are, numbers and booleans in JSON
    /// form, arrays of those joined with `,`; objects are never forwarded.
    pub claims: Vec<String>,
}

/// `[jwt.forward]`: upstream request headers set from the verified claims, as
/// `"Header" = "claim"` or `"Header" = ["claim", "fallback"]`.
///
/// Client-sent copies of these headers are removed from every request, on every route, so
/// an upstream can trust them. Writing the table replaces the default, which is
/// `"X-User-ID" = ["user_id", "sub"]` and `"X-User-Role" = "role"`; an empty table forwards
/// (and strips) nothing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Forward(pub Vec<ForwardRule>);

impl Default for Forward {
    fn default() -> Self {
        Self(vec![
            ForwardRule {
                header: HeaderName::from_static("x-user-id"),
                claims: vec!["user_id".into(), "sub".into()],
            },
            ForwardRule {
                header: HeaderName::from_static("x-user-role"),
                claims: vec!["role".into()],
            },
        ])
    }
}

/// Headers a claim may never be forwarded into: stripping the client's copy would break the
/// request (or hide the client's credentials from the upstream).
const RESERVED_HEADERS: [&str; 11] = [
    "authorization",
    "connection",
    "content-length",
    "content-type",
    "cookie",
    "host",
    "keep-alive",
    "proxy-authorization",
    "te",
    "transfer-encoding",
    "upgrade",
];

/// Checks one forwarding rule (also used by the builder).
pub(crate) fn forward_rule(header: &str, claims: Vec<String>) -> Result<ForwardRule, String> {
    let name = HeaderName::from_bytes(header.as_bytes())
        .map_err(|_| format!("`{header}` is not a valid header name"))?;
    if RESERVED_HEADERS.contains(&name.as_str()) {
        return Err(format!("`{header}` cannot carry a claim"));
    }
    if claims.is_empty() || claims.iter().any(String::is_empty) {
        return Err(format!("`{header}` needs a claim name"));
    }
    Ok(ForwardRule {
        header: name,
        claims,
    })
}

impl<'de> Deserialize<'de> for Forward {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ForwardVisitor;
        impl<'de> Visitor<'de> for ForwardVisitor {
            type Value = Forward;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a table of header = claim (or [claims])")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Forward, A::Error> {
                let mut rules: Vec<ForwardRule> = Vec::new();
                while let Some(header) = map.next_key::<String>()? {
                    let OneOrMany(claims) = map.next_value()?;
                    let rule = forward_rule(&header, claims).map_err(de::Error::custom)?;
                    if rules.iter().any(|r| r.header == rule.header) {
                        return Err(de::Error::custom(format!(
                            "header `{header}` is listed twice"
                        )));
                    }
                    rules.push(rule);
                }
                Ok(Forward(rules))
            }
        }
        deserializer.deserialize_map(ForwardVisitor)
    }
}
