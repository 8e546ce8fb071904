//! The `serde` config of the header rules: `[routes.request_headers]`,
//! `[routes.response_headers]` and the gateway-wide `[headers]` section.
//!
//! ```toml
//! [headers]                                 # every route, and the gateway's own responses
//! request_id = { header = "X-Request-Id", trust_incoming = "trusted_proxies" }
//! [headers.request]
//! set = { "X-Forwarded-Host" = "{host}" }
//! [headers.response]
//! set = { "X-Content-Type-Options" = "nosniff", "X-Request-Id" = "{request_id}" }
//! remove = ["Server"]
//!
//! [[routes]]
//! # ...
//! [routes.request_headers]
//! set = { "X-User" = "{claim.sub}", "X-Client-IP" = "{client_ip}" }
//! set_if_absent = { "Accept" = "application/json" }
//! add = { "Via" = "1.1 gateway" }
//! remove = ["Cookie"]
//! rename = { "X-Api-Token" = "Authorization" }
//! ```
//!
//! Everything is checked while deserializing (header names, templates, control characters,
//! protected headers, conflicting operations), so the loader reports a bad value with its file
//! and line; [`HeaderRulesConfig::build`] then cannot fail for a deserialized config.

use std::fmt;
use std::str::FromStr;

use gateway_core::TrustedProxies;
use http::HeaderName;
use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};

use crate::error::HeaderRulesError;
use crate::request_id::RequestIdLayer;
use crate::rules::HeaderRules;
use crate::template::Template;

mod request_id;

pub use request_id::{MAX_REQUEST_ID_LENGTH, RequestIdConfig};

/// The operations, as named in the config and in errors.
pub(crate) const SET: &str = "set";
pub(crate) const ADD: &str = "add";
pub(crate) const SET_IF_ABSENT: &str = "set_if_absent";
pub(crate) const REMOVE: &str = "remove";
pub(crate) const RENAME: &str = "rename";

/// Headers that belong to the HTTP connection, not to the message: editing them would break
/// message framing (request smuggling) or hop-by-hop semantics.
const PROTECTED: [&str; 8] = [
    "content-length",
    "transfer-encoding",
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "upgrade",
];

/// A header name checked while deserializing (case-insensitive, stored lowercase).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ValidHeaderName(pub HeaderName);

impl ValidHeaderName {
    /// The header name.
    pub fn get(&self) -> &HeaderName {
        &self.0
    }
}

impl FromStr for ValidHeaderName {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        HeaderName::from_str(s)
            .map(Self)
            .map_err(|_| format!("`{s}` is not a valid header name"))
    }
}

impl<'de> Deserialize<'de> for ValidHeaderName {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = String::deserialize(deserializer)?;
        name.parse().map_err(de::Error::custom)
    }
}

/// One `[routes.request_headers]` / `[routes.response_headers]` / `[headers.request]` /
/// `[headers.response]` table: `set`, `add`, `set_if_absent` (header name → template),
/// `remove` (list of names), `rename` (old name → new name).
///
/// The operations apply in a fixed order; see [`HeaderRules`] for it and for what a template
/// without a value does.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(try_from = "RawRules")]
pub struct HeaderRulesConfig {
    pub(crate) set: Vec<(HeaderName, Template)>,
    pub(crate) set_if_absent: Vec<(HeaderName, Template)>,
    pub(crate) add: Vec<(HeaderName, Template)>,
    pub(crate) remove: Vec<HeaderName>,
    pub(crate) rename: Vec<(HeaderName, HeaderName)>,
}

#[derive(Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a table of header operations: `set`, `add`, `set_if_absent`, `remove`, `rename`"
)]
struct RawRules {
    #[serde(default, deserialize_with = "set_table")]
    set: Vec<(HeaderName, Template)>,
    #[serde(default, deserialize_with = "add_table")]
    add: Vec<(HeaderName, Template)>,
    #[serde(default, deserialize_with = "set_if_absent_table")]
    set_if_absent: Vec<(HeaderName, Template)>,
    #[serde(default, deserialize_with = "remove_list")]
    remove: Vec<HeaderName>,
    #[serde(default, deserialize_with = "rename_table")]
    rename: Vec<(HeaderName, HeaderName)>,
}

impl TryFrom<RawRules> for HeaderRulesConfig {
    type Error = HeaderRulesError;

    fn try_from(raw: RawRules) -> Result<Self, Self::Error> {
        let config = Self {
            set: raw.set,
            set_if_absent: raw.set_if_absent,
            add: raw.add,
            remove: raw.remove,
            rename: raw.rename,
        };
        config.validate()?;
        Ok(config)
    }
}

impl HeaderRulesConfig {
    /// Whether the table has no operation.
    pub fn is_empty(&self) -> bool {
        self.set.is_empty()
            && self.set_if_absent.is_empty()
            && self.add.is_empty()
            && self.remove.is_empty()
            && self.rename.is_empty()
    }

    /// Compiles the rules for the layers.
    pub fn build(&self) -> Result<HeaderRules, HeaderRulesError> {
        self.validate()?;
        Ok(HeaderRules::compile(self))
    }

    /// Checks what single values cannot: protected headers, duplicates, conflicts.
    pub(crate) fn validate(&self) -> Result<(), HeaderRulesError> {
        let templated = [
            (SET, &self.set),
            (SET_IF_ABSENT, &self.set_if_absent),
            (ADD, &self.add),
        ];
        for (field, rules) in templated {
            check_names(field, rules.iter().map(|(name, _)| name))?;
        }
        check_names(REMOVE, self.remove.iter())?;
        check_names(RENAME, self.rename.iter().map(|(from, _)| from))?;
        check_names(RENAME, self.rename.iter().map(|(_, to)| to))?;

        if let Some((name, _)) = self
            .set
            .iter()
            .find(|(name, _)| contains(&self.set_if_absent, name))
        {
            return Err(conflict(name, SET, SET_IF_ABSENT));
        }
        if let Some((from, _)) = self
            .rename
            .iter()
            .find(|(from, _)| self.remove.contains(from))
        {
            return Err(conflict(from, REMOVE, RENAME));
        }
        for (from, to) in &self.rename {
            if from == to || self.rename.iter().any(|(_, other_to)| other_to == from) {
                return Err(HeaderRulesError::RenameChain {
                    name: from.to_string(),
                });
            }
        }
        Ok(())
    }
}

fn contains(rules: &[(HeaderName, Template)], name: &HeaderName) -> bool {
    rules.iter().any(|(other, _)| other == name)
}

fn conflict(name: &HeaderName, first: &'static str, second: &'static str) -> HeaderRulesError {
    HeaderRulesError::Conflict {
        name: name.to_string(),
        first,
        second,
    }
}

fn check_names<'a>(
    field: &'static str,
    names: impl Iterator<Item = &'a HeaderName> + Clone,
) -> Result<(), HeaderRulesError> {
    for (index, name) in names.clone().enumerate() {
        if is_protected(name) {
            return Err(HeaderRulesError::Protected {
                field,
                name: name.to_string(),
            });
        }
        if names.clone().take(index).any(|earlier| earlier == name) {
            return Err(HeaderRulesError::Duplicate {
                field,
                name: name.to_string(),
            });
        }
    }
    Ok(())
}

pub(crate) fn is_protected(name: &HeaderName) -> bool {
    PROTECTED.contains(&name.as_str())
}

// The tables deserialize through visitors that know their operation, so that an error says
// which operation and which header it is about (`set.X-User: unknown placeholder ...`).

fn set_table<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<(HeaderName, Template)>, D::Error> {
    d.deserialize_map(TemplateTable(SET))
}

fn add_table<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<(HeaderName, Template)>, D::Error> {
    d.deserialize_map(TemplateTable(ADD))
}

fn set_if_absent_table<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<Vec<(HeaderName, Template)>, D::Error> {
    d.deserialize_map(TemplateTable(SET_IF_ABSENT))
}

fn remove_list<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<HeaderName>, D::Error> {
    d.deserialize_seq(RemoveList)
}

fn rename_table<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<Vec<(HeaderName, HeaderName)>, D::Error> {
    d.deserialize_map(RenameTable)
}

fn header_name<E: de::Error>(field: &'static str, name: String) -> Result<HeaderName, E> {
    HeaderName::from_str(&name)
        .map_err(|_| E::custom(HeaderRulesError::InvalidName { field, name }))
}

/// A `header name → template` table, in document order.
struct TemplateTable(&'static str);

impl<'de> Visitor<'de> for TemplateTable {
    type Value = Vec<(HeaderName, Template)>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "`{}`: a table of header names to value templates",
            self.0
        )
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let field = self.0;
        let mut rules = Vec::with_capacity(map.size_hint().unwrap_or(0));
        while let Some(header) = map.next_key::<String>()? {
            let name = header_name(field, header.clone())?;
            let text = map.next_value::<String>()?;
            let template = Template::parse(&text).map_err(|source| {
                de::Error::custom(HeaderRulesError::InvalidTemplate {
                    field,
                    header,
                    source,
                })
            })?;
            rules.push((name, template));
        }
        Ok(rules)
    }
}

/// The `remove` list.
struct RemoveList;

impl<'de> Visitor<'de> for RemoveList {
    type Value = Vec<HeaderName>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("`remove`: a list of header names")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut names = Vec::with_capacity(seq.size_hint().unwrap_or(0));
        while let Some(name) = seq.next_element::<String>()? {
            names.push(header_name(REMOVE, name)?);
        }
        Ok(names)
    }
}

/// The `rename` table: old name → new name, in document order.
struct RenameTable;

impl<'de> Visitor<'de> for RenameTable {
    type Value = Vec<(HeaderName, HeaderName)>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("`rename`: a table of old header names to new header names")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut renames = Vec::with_capacity(map.size_hint().unwrap_or(0));
        while let Some((from, to)) = map.next_entry::<String, String>()? {
            renames.push((header_name(RENAME, from)?, header_name(RENAME, to)?));
        }
        Ok(renames)
    }
}

/// The gateway-wide `[headers]` section: rules applied on every route (and, for responses, on
/// the gateway's own responses too), and the request id.
///
/// ```toml
/// [headers]
/// request_id = { header = "X-Request-Id", trust_incoming = "trusted_proxies" }
/// [headers.request]
/// remove = ["X-Internal-Debug"]
/// [headers.response]
/// set = { "X-Gateway" = "gateway", "Strict-Transport-Security" = "max-age=31536000" }
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GlobalHeadersConfig {
    /// `[headers.request]`: applied to every routed request, before the route's rules.
    pub request: HeaderRulesConfig,
    /// `[headers.response]`: applied to every response, after the route's rules.
    pub response: HeaderRulesConfig,
    /// `request_id`: `false` to disable, or a table (see [`RequestIdConfig`]).
    pub request_id: RequestIdConfig,
}

/// The compiled `[headers]` section.
#[derive(Clone, Debug)]
pub struct GlobalHeaders {
    /// Rules for every routed request.
    pub request: HeaderRules,
    /// Rules for every response.
    pub response: HeaderRules,
    /// The request id layer, unless disabled.
    pub request_id: Option<RequestIdLayer>,
}

impl GlobalHeadersConfig {
    /// Compiles the section; `trusted` are the gateway's trusted proxies
    /// (`server.trusted_proxies`), whose request ids are kept.
    pub fn build(&self, trusted: &TrustedProxies) -> Result<GlobalHeaders, HeaderRulesError> {
        Ok(GlobalHeaders {
            request: self.request.build()?,
            response: self.response.build()?,
            request_id: self.request_id.build(trusted)?,
        })
    }
}
