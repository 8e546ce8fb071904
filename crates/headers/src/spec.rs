//! A rule set as data: the operations the config and the builder write down, checked here
//! once for both, and compiled by [`HeaderRules`](crate::HeaderRules).

use http::HeaderName;

use crate::error::HeaderRulesError;
use crate::template::Template;

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

/// The operations of one rule set, each list in the order written.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct RuleSpec {
    pub(crate) set: Vec<(HeaderName, Template)>,
    pub(crate) set_if_absent: Vec<(HeaderName, Template)>,
    pub(crate) add: Vec<(HeaderName, Template)>,
    pub(crate) remove: Vec<HeaderName>,
    pub(crate) rename: Vec<(HeaderName, HeaderName)>,
}

impl RuleSpec {
    /// Whether there is no operation.
    pub(crate) fn is_empty(&self) -> bool {
        self.set.is_empty()
            && self.set_if_absent.is_empty()
            && self.add.is_empty()
            && self.remove.is_empty()
            && self.rename.is_empty()
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

/// Whether header rules may not touch `name` (framing and hop-by-hop headers).
pub(crate) fn is_protected(name: &HeaderName) -> bool {
    PROTECTED.contains(&name.as_str())
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
