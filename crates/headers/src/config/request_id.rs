//! The `request_id` setting of `[headers]`.

use std::fmt;

use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, Visitor, value::MapAccessDeserializer};

use super::header_name::ValidHeaderName;
use crate::error::HeaderRulesError;
use crate::request_id::settings::{DEFAULT_HEADER, DEFAULT_MAX_LENGTH, TrustIncoming};
use crate::spec::is_protected;

/// The `request_id` setting of `[headers]`.
///
/// `request_id = false` disables it; otherwise a table whose keys all have defaults:
/// `header` (`"X-Request-Id"`), `trust_incoming` (`"trusted_proxies"`, `"always"`/`true` or
/// `"never"`/`false`), `max_length` (128: a longer incoming id is replaced) and `echo`
/// (`true`: the id is returned on the response).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestIdConfig {
    /// Whether requests get an id.
    pub enabled: bool,
    /// The header carrying the id, upstream and back to the client.
    pub header: ValidHeaderName,
    /// Whose incoming id is kept.
    pub trust_incoming: TrustIncoming,
    /// The longest incoming id kept.
    pub max_length: usize,
    /// Whether the id is set on the response.
    pub echo: bool,
}

/// The longest `max_length` accepted.
pub const MAX_REQUEST_ID_LENGTH: usize = 1024;

impl Default for RequestIdConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            header: ValidHeaderName(DEFAULT_HEADER),
            trust_incoming: TrustIncoming::default(),
            max_length: DEFAULT_MAX_LENGTH,
            echo: true,
        }
    }
}

impl RequestIdConfig {
    /// Checks what the fields cannot alone: the length range and a protected header.
    pub(super) fn validate(&self) -> Result<(), HeaderRulesError> {
        if !(1..=MAX_REQUEST_ID_LENGTH).contains(&self.max_length) {
            return Err(HeaderRulesError::RequestIdLength {
                value: self.max_length,
                max: MAX_REQUEST_ID_LENGTH,
            });
        }
        if is_protected(&self.header.0) {
            return Err(HeaderRulesError::Protected {
                field: "request_id.header",
                name: self.header.0.to_string(),
            });
        }
        Ok(())
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RequestIdTable {
    header: ValidHeaderName,
    trust_incoming: TrustIncoming,
    max_length: usize,
    echo: bool,
}

impl Default for RequestIdTable {
    fn default() -> Self {
        let defaults = RequestIdConfig::default();
        Self {
            header: defaults.header,
            trust_incoming: defaults.trust_incoming,
            max_length: defaults.max_length,
            echo: defaults.echo,
        }
    }
}

impl<'de> Deserialize<'de> for RequestIdConfig {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct SettingVisitor;
        impl<'de> Visitor<'de> for SettingVisitor {
            type Value = RequestIdConfig;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("`false`, `true` or a table with `header`, `trust_incoming`, `max_length`, `echo`")
            }
            fn visit_bool<E: de::Error>(self, enabled: bool) -> Result<RequestIdConfig, E> {
                Ok(RequestIdConfig {
                    enabled,
                    ..RequestIdConfig::default()
                })
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<RequestIdConfig, A::Error> {
                let table = RequestIdTable::deserialize(MapAccessDeserializer::new(map))?;
                let config = RequestIdConfig {
                    enabled: true,
                    header: table.header,
                    trust_incoming: table.trust_incoming,
                    max_length: table.max_length,
                    echo: table.echo,
                };
                config.validate().map_err(de::Error::custom)?;
                Ok(config)
            }
        }
        deserializer.deserialize_any(SettingVisitor)
    }
}

impl<'de> Deserialize<'de> for TrustIncoming {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct TrustVisitor;
        impl Visitor<'_> for TrustVisitor {
            type Value = TrustIncoming;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("\"trusted_proxies\", \"always\" (or true) or \"never\" (or false)")
            }
            fn visit_bool<E: de::Error>(self, trust: bool) -> Result<TrustIncoming, E> {
                Ok(if trust {
                    TrustIncoming::Always
                } else {
                    TrustIncoming::Never
                })
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<TrustIncoming, E> {
                match v {
                    "trusted_proxies" => Ok(TrustIncoming::TrustedProxies),
                    "always" => Ok(TrustIncoming::Always),
                    "never" => Ok(TrustIncoming::Never),
                    _ => Err(E::invalid_value(de::Unexpected::Str(v), &self)),
                }
            }
        }
        deserializer.deserialize_any(TrustVisitor)
    }
}
