//! Header value templates: parsed once at start-up, rendered per request without parsing.
//!
//! A template is literal text with placeholders in braces:
//!
//! | placeholder      | renders                                                             |
//! |------------------|---------------------------------------------------------------------|
//! | `{client_ip}`    | the client IP ([`ClientIp`](gateway_core::ClientIp), else the peer) |
//! | `{request_id}`   | the [`RequestId`](gateway_core::RequestId) extension                |
//! | `{method}`       | the request method                                                  |
//! | `{path}`         | the request path, without the query                                 |
//! | `{host}`         | the `Host` header, else the URI authority (HTTP/2)                  |
//! | `{claim.NAME}`   | a claim of the [`Identity`](gateway_core::Identity) extension      |
//! | `{header.NAME}`  | a request header; several values are joined with `, `               |
//!
//! `{{` and `}}` are literal braces. A claim renders when it is a string, number or boolean.
//!
//! A template whose placeholder has no value (no identity, no such claim or header, no client
//! IP) renders **nothing**, and neither does one whose rendered text is not a valid header value
//! (a claim holding a line break): the rule that uses it then drops the header (see
//! [`HeaderRules`](crate::HeaderRules)). A header is never half-filled.

use std::fmt;
use std::str::FromStr;

use http::{HeaderName, HeaderValue};
use serde::Deserialize;

use crate::intern;

/// A header value template, parsed and validated once.
///
/// ```
/// use gateway_headers::Template;
///
/// let template: Template = "{method} {path}".parse().unwrap();
/// assert!(!template.is_static());
/// assert!("plain text".parse::<Template>().unwrap().is_static());
/// assert!("{nope}".parse::<Template>().is_err());
/// ```
#[derive(Clone, Deserialize)]
#[serde(try_from = "String")]
pub struct Template {
    source: Box<str>,
    kind: Kind,
}

/// The parsed form of a template, which rendering walks.
#[derive(Clone)]
pub(crate) enum Kind {
    /// No placeholder: the value is built once and cloned per request.
    Static(HeaderValue),
    /// Exactly one placeholder and no text: some placeholders then clone a value, no copy.
    Single(Placeholder),
    /// Text and placeholders, rendered into a stack buffer.
    Mixed(Box<[Segment]>),
}

/// A piece of a mixed template.
#[derive(Clone)]
pub(crate) enum Segment {
    Text(Box<str>),
    Value(Placeholder),
}

/// What a placeholder reads from the request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Placeholder {
    ClientIp,
    RequestId,
    Method,
    Path,
    Host,
    Claim(Box<str>),
    Header(HeaderName),
}

/// Why a template does not parse.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    /// A `{name}` that is not one of the known placeholders.
    #[error(
        "unknown placeholder `{{{0}}}`; known: {{client_ip}}, {{request_id}}, {{method}}, {{path}}, \
         {{host}}, {{claim.NAME}}, {{header.NAME}} (write `{{{{` and `}}}}` for literal braces)"
    )]
    UnknownPlaceholder(String),
    /// `{header.NAME}` with a NAME that is not a header name.
    #[error("`{{header.{0}}}`: `{0}` is not a valid header name")]
    InvalidHeaderName(String),
    /// `{claim.}` or `{header.}`.
    #[error("placeholder `{{{0}}}` needs a name after the dot")]
    MissingName(String),
    /// A `{` without its `}`.
    #[error("`{{` at byte {0} is not closed (write `{{{{` for a literal brace)")]
    Unclosed(usize),
    /// A `}` without its `{`.
    #[error("`}}` at byte {0} has no opening `{{` (write `}}}}` for a literal brace)")]
    UnmatchedClose(usize),
    /// A line break, NUL or other control character, which could split or corrupt the header.
    #[error(
        "contains the control character {byte:#04x} at byte {position}; header values cannot hold CR, LF, NUL or other control characters"
    )]
    ControlCharacter {
        /// The offending byte.
        byte: u8,
        /// Its offset in the template.
        position: usize,
    },
}

impl Template {
    /// Parses a template.
    ///
    /// The value of a template without placeholders is stored for the life of the process
    /// (identical texts share one copy), so that requests clone it for free: parse templates
    /// from configuration, not from per-request input.
    pub fn parse(source: &str) -> Result<Self, TemplateError> {
        if let Some(position) = source.bytes().position(is_forbidden) {
            let byte = source.as_bytes()[position];
            return Err(TemplateError::ControlCharacter { byte, position });
        }
        let segments = parse_segments(source)?;
        let kind = match segments.as_slice() {
            [] => Kind::Static(HeaderValue::from_static("")),
            [Segment::Text(text)] => Kind::Static(intern::static_value(&static_value(text)?)),
            [Segment::Value(placeholder)] => Kind::Single(placeholder.clone()),
            _ => Kind::Mixed(segments.into_boxed_slice()),
        };
        Ok(Self {
            source: source.into(),
            kind,
        })
    }

    /// A template without placeholders: its value is built once.
    pub fn is_static(&self) -> bool {
        matches!(self.kind, Kind::Static(_))
    }

    /// The text the template was parsed from.
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// The value of a static template.
    pub(crate) fn static_value(&self) -> Option<&HeaderValue> {
        match &self.kind {
            Kind::Static(value) => Some(value),
            _ => None,
        }
    }

    /// What rendering walks.
    pub(crate) fn kind(&self) -> &Kind {
        &self.kind
    }
}

fn parse_segments(source: &str) -> Result<Vec<Segment>, TemplateError> {
    let mut segments = Vec::new();
    let mut text = String::new();
    let mut rest = source;
    while let Some(at) = rest.find(['{', '}']) {
        let offset = source.len() - rest.len() + at;
        text.push_str(&rest[..at]);
        let brace = rest.as_bytes()[at];
        let after = &rest[at + 1..];
        if after.as_bytes().first() == Some(&brace) {
            text.push(char::from(brace));
            rest = &after[1..];
            continue;
        }
        if brace == b'}' {
            return Err(TemplateError::UnmatchedClose(offset));
        }
        let end = after
            .find(['{', '}'])
            .ok_or(TemplateError::Unclosed(offset))?;
        if after.as_bytes()[end] == b'{' {
            return Err(TemplateError::Unclosed(offset));
        }
        if !text.is_empty() {
            segments.push(Segment::Text(std::mem::take(&mut text).into()));
        }
        segments.push(Segment::Value(Placeholder::parse(&after[..end])?));
        rest = &after[end + 1..];
    }
    text.push_str(rest);
    if !text.is_empty() {
        segments.push(Segment::Text(text.into()));
    }
    Ok(segments)
}

fn static_value(text: &str) -> Result<HeaderValue, TemplateError> {
    HeaderValue::from_str(text).map_err(|_| {
        // Unreachable in practice: control characters were rejected before parsing.
        let position = text.bytes().position(is_forbidden).unwrap_or(0);
        TemplateError::ControlCharacter {
            byte: text.as_bytes().get(position).copied().unwrap_or(0),
            position,
        }
    })
}

/// Bytes a header value may not hold (RFC 9110 field-value: no CTLs other than HTAB).
fn is_forbidden(byte: u8) -> bool {
    (byte < 0x20 && byte != b'\t') || byte == 0x7f
}

impl Placeholder {
    fn parse(name: &str) -> Result<Self, TemplateError> {
        let simple = match name {
            "client_ip" => Some(Self::ClientIp),
            "request_id" => Some(Self::RequestId),
            "method" => Some(Self::Method),
            "path" => Some(Self::Path),
            "host" => Some(Self::Host),
            _ => None,
        };
        if let Some(placeholder) = simple {
            return Ok(placeholder);
        }
        if let Some(claim) = name.strip_prefix("claim.") {
            if claim.is_empty() {
                return Err(TemplateError::MissingName(name.to_owned()));
            }
            return Ok(Self::Claim(claim.into()));
        }
        if let Some(header) = name.strip_prefix("header.") {
            if header.is_empty() {
                return Err(TemplateError::MissingName(name.to_owned()));
            }
            return HeaderName::from_str(header)
                .map(Self::Header)
                .map_err(|_| TemplateError::InvalidHeaderName(header.to_owned()));
        }
        Err(TemplateError::UnknownPlaceholder(name.to_owned()))
    }
}

impl FromStr for Template {
    type Err = TemplateError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl TryFrom<String> for Template {
    type Error = TemplateError;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::parse(&s)
    }
}

impl TryFrom<&str> for Template {
    type Error = TemplateError;

    fn try_from(s: &str) -> Result<Self, Self::Error> {
        Self::parse(s)
    }
}

impl fmt::Debug for Template {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Template").field(&self.source).finish()
    }
}

impl fmt::Display for Template {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

impl PartialEq for Template {
    fn eq(&self, other: &Self) -> bool {
        self.source == other.source
    }
}

impl Eq for Template {}

#[cfg(test)]
mod tests {
    use super::*;

    fn placeholders(template: &str) -> Vec<Placeholder> {
        parse_segments(template)
            .unwrap()
            .into_iter()
            .filter_map(|segment| match segment {
                Segment::Value(p) => Some(p),
                Segment::Text(_) => None,
            })
            .collect()
    }

    #[test]
    fn braces_escape_and_placeholders_parse() {
        let t = Template::parse("{{literal}} {method}").unwrap();
        assert!(!t.is_static());
        assert_eq!(
            placeholders("{{x}}{claim.https://e.x/roles}"),
            vec![Placeholder::Claim("https://e.x/roles".into())]
        );
        let t = Template::parse("{{only text}}").unwrap();
        assert_eq!(t.static_value().unwrap(), "{only text}");
    }

    #[test]
    fn malformed_templates_are_rejected_with_the_reason() {
        assert_eq!(
            Template::parse("a{b").unwrap_err(),
            TemplateError::Unclosed(1)
        );
        assert_eq!(
            Template::parse("a}b").unwrap_err(),
            TemplateError::UnmatchedClose(1)
        );
        assert_eq!(
            Template::parse("{a{b}").unwrap_err(),
            TemplateError::Unclosed(0)
        );
        assert_eq!(
            Template::parse("{header.}").unwrap_err(),
            TemplateError::MissingName("header.".into())
        );
        assert_eq!(
            Template::parse("{header.a b}").unwrap_err(),
            TemplateError::InvalidHeaderName("a b".into())
        );
        let err = Template::parse("x{foo}").unwrap_err();
        assert!(err.to_string().contains("`{foo}`"), "{err}");
    }

    #[test]
    fn control_characters_are_rejected_anywhere() {
        for bad in ["a\r\nb", "a\nb", "\0", "{method}\r", "x\x7f"] {
            assert!(
                matches!(
                    Template::parse(bad),
                    Err(TemplateError::ControlCharacter { .. })
                ),
                "{bad:?}"
            );
        }
        assert!(Template::parse("tab\tis fine").is_ok());
    }
}
