//! The header rule tables: `[routes.request_headers]`, `[routes.response_headers]`,
//! `[headers.request]` and `[headers.response]`.

use std::fmt;
use std::str::FromStr;

use http::HeaderName;
use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};

use crate::error::HeaderRulesError;
use crate::spec::{ADD, REMOVE, RENAME, RuleSpec, SET, SET_IF_ABSENT};
use crate::template::Template;

/// One `[routes.request_headers]` / `[routes.response_headers]` / `[headers.request]` /
/// `[headers.response]` table: `set`, `add`, `set_if_absent` (header name → template),
/// `remove` (list of names), `rename` (old name → new name).
///
/// The operations apply in a fixed order; see [`HeaderRules`](crate::HeaderRules) for it and
/// for what a template without a value does.
#[derive(Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(try_from = "RawRules")]
pub struct HeaderRulesConfig {
    pub(super) spec: RuleSpec,
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
        let spec = RuleSpec {
            set: raw.set,
            set_if_absent: raw.set_if_absent,
            add: raw.add,
            remove: raw.remove,
            rename: raw.rename,
        };
        spec.validate()?;
        Ok(Self { spec })
    }
}

impl fmt::Debug for HeaderRulesConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let spec = &self.spec;
        f.debug_struct("HeaderRulesConfig")
            .field("set", &spec.set)
            .field("set_if_absent", &spec.set_if_absent)
            .field("add", &spec.add)
            .field("remove", &spec.remove)
            .field("rename", &spec.rename)
            .finish()
    }
}

impl HeaderRulesConfig {
    /// Whether the table has no operation.
    pub fn is_empty(&self) -> bool {
        self.spec.is_empty()
    }
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
