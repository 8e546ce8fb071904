//! Building header rules in code.

use std::str::FromStr;

use http::HeaderName;

use crate::error::HeaderRulesError;
use crate::rules::HeaderRules;
use crate::spec::{ADD, REMOVE, RENAME, RuleSpec, SET, SET_IF_ABSENT};
use crate::template::Template;

impl HeaderRules {
    /// Starts a rule set built in code rather than from config.
    pub fn builder() -> HeaderRulesBuilder {
        HeaderRulesBuilder::default()
    }
}

/// Builds [`HeaderRules`] in code, with the same checks as the config.
///
/// Methods take names and templates as text; the first invalid one is reported by
/// [`build`](Self::build), naming the operation and the header.
///
/// ```
/// use gateway_headers::{HeaderRules, HeaderRulesError};
///
/// let err = HeaderRules::builder().set("X-User", "{claim.sub").build().unwrap_err();
/// assert!(matches!(err, HeaderRulesError::InvalidTemplate { field: "set", .. }));
/// ```
#[derive(Debug, Default)]
pub struct HeaderRulesBuilder {
    spec: RuleSpec,
    error: Option<HeaderRulesError>,
}

impl HeaderRulesBuilder {
    /// Replaces the header with the template's value.
    #[must_use]
    pub fn set(mut self, name: &str, template: &str) -> Self {
        if let Some(rule) = self.templated(SET, name, template) {
            self.spec.set.push(rule);
        }
        self
    }

    /// Sets the header when it is absent.
    #[must_use]
    pub fn set_if_absent(mut self, name: &str, template: &str) -> Self {
        if let Some(rule) = self.templated(SET_IF_ABSENT, name, template) {
            self.spec.set_if_absent.push(rule);
        }
        self
    }

    /// Appends a value to the header.
    #[must_use]
    pub fn add(mut self, name: &str, template: &str) -> Self {
        if let Some(rule) = self.templated(ADD, name, template) {
            self.spec.add.push(rule);
        }
        self
    }

    /// Removes every value of the header.
    #[must_use]
    pub fn remove(mut self, name: &str) -> Self {
        if let Some(name) = self.name(REMOVE, name) {
            self.spec.remove.push(name);
        }
        self
    }

    /// Moves the values of header `from` to header `to`.
    #[must_use]
    pub fn rename(mut self, from: &str, to: &str) -> Self {
        if let (Some(from), Some(to)) = (self.name(RENAME, from), self.name(RENAME, to)) {
            self.spec.rename.push((from, to));
        }
        self
    }

    /// The rules, or the first problem found.
    pub fn build(self) -> Result<HeaderRules, HeaderRulesError> {
        match self.error {
            Some(error) => Err(error),
            None => HeaderRules::from_spec(&self.spec),
        }
    }

    fn name(&mut self, field: &'static str, name: &str) -> Option<HeaderName> {
        match HeaderName::from_str(name) {
            Ok(name) => Some(name),
            Err(_) => {
                self.fail(HeaderRulesError::InvalidName {
                    field,
                    name: name.to_owned(),
                });
                None
            }
        }
    }

    fn templated(
        &mut self,
        field: &'static str,
        name: &str,
        template: &str,
    ) -> Option<(HeaderName, Template)> {
        let header = self.name(field, name)?;
        match Template::parse(template) {
            Ok(template) => Some((header, template)),
            Err(source) => {
                self.fail(HeaderRulesError::InvalidTemplate {
                    field,
                    header: name.to_owned(),
                    source,
                });
                None
            }
        }
    }

    fn fail(&mut self, error: HeaderRulesError) {
        self.error.get_or_insert(error);
    }
}
