//! What may be compressed: the response's status, headers and length, and its media type
//! against the configured patterns.

use http::header::{CACHE_CONTROL, CONTENT_ENCODING, CONTENT_LENGTH, CONTENT_RANGE, CONTENT_TYPE};
use http::{HeaderMap, StatusCode};

/// A configured media type pattern, lowercased.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum ContentTypePattern {
    /// `type/subtype`.
    Exact(Box<str>),
    /// `type/*`, holding `type`.
    AnySubtype(Box<str>),
    /// `*/*`.
    Any,
}

impl ContentTypePattern {
    /// Parses a config entry; the error says what is wrong with it.
    pub(crate) fn parse(pattern: &str) -> Result<Self, &'static str> {
        if pattern.contains(';') {
            return Err("parameters are not matched; list the media type alone");
        }
        let (kind, subtype) = pattern
            .trim()
            .split_once('/')
            .ok_or("there is no `/` between type and subtype")?;
        let kind = kind.to_ascii_lowercase();
        let subtype = subtype.to_ascii_lowercase();
        match (kind.as_str(), subtype.as_str()) {
            ("*", "*") => Ok(Self::Any),
            ("*", _) => Err("a `*` type takes only a `*` subtype"),
            (kind, _) if !is_token(kind) => Err("the type is not an HTTP token"),
            (kind, "*") => Ok(Self::AnySubtype(kind.into())),
            (_, subtype) if !is_token(subtype) => Err("the subtype is not an HTTP token"),
            _ => Ok(Self::Exact(format!("{kind}/{subtype}").into())),
        }
    }

    /// Whether the media type `essence` (`type/subtype`, any case) matches.
    fn matches(&self, essence: &str) -> bool {
        match self {
            Self::Exact(exact) => essence.eq_ignore_ascii_case(exact),
            Self::AnySubtype(kind) => essence
                .split_once('/')
                .is_some_and(|(k, _)| k.eq_ignore_ascii_case(kind)),
            Self::Any => true,
        }
    }
}

/// RFC 9110 `token`: one or more `tchar`.
fn is_token(text: &str) -> bool {
    !text.is_empty()
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// Whether a response may be compressed at all (the request side, HEAD and the negotiated
/// coding, is decided elsewhere). `length` is the body's exact size when known.
pub(crate) fn is_compressible(
    status: StatusCode,
    headers: &HeaderMap,
    length: Option<u64>,
    min_size: u64,
    patterns: &[ContentTypePattern],
) -> bool {
    // 1xx (101 upgrades included), 204 and 304 have no content; a 206's Content-Range counts
    // bytes of the identity representation.
    if status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED
        || status == StatusCode::PARTIAL_CONTENT
        || headers.contains_key(CONTENT_RANGE)
        || headers.contains_key(CONTENT_ENCODING)
        || has_no_transform(headers)
    {
        return false;
    }
    let Some(essence) = media_type(headers) else {
        return false;
    };
    // Server-sent events are read event by event and stay open for long: never compressed.
    if essence.eq_ignore_ascii_case("text/event-stream")
        || !patterns.iter().any(|pattern| pattern.matches(essence))
    {
        return false;
    }
    content_length(headers)
        .or(length)
        .is_none_or(|len| len >= min_size)
}

/// `Cache-Control: no-transform` (RFC 9111 §5.2.2.6), in any of the header's lines.
fn has_no_transform(headers: &HeaderMap) -> bool {
    headers
        .get_all(CACHE_CONTROL)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .any(|directive| {
            let name = directive.split('=').next().unwrap_or_default().trim();
            name.eq_ignore_ascii_case("no-transform")
        })
}

/// The media type of `Content-Type` without its parameters, trimmed.
fn media_type(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(CONTENT_TYPE)?.to_str().ok()?;
    let essence = value.split(';').next().unwrap_or_default().trim();
    (!essence.is_empty()).then_some(essence)
}

/// `Content-Length`, when there is exactly one valid value.
fn content_length(headers: &HeaderMap) -> Option<u64> {
    let mut values = headers.get_all(CONTENT_LENGTH).iter();
    let value = values.next()?;
    if values.next().is_some() {
        return None;
    }
    value.to_str().ok()?.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns() {
        use ContentTypePattern::*;
        assert_eq!(
            ContentTypePattern::parse("Text/*"),
            Ok(AnySubtype("text".into()))
        );
        assert_eq!(
            ContentTypePattern::parse("application/JSON"),
            Ok(Exact("application/json".into()))
        );
        assert_eq!(ContentTypePattern::parse("*/*"), Ok(Any));
        for bad in [
            "text",
            "",
            "*/json",
            "text/html; charset=utf-8",
            "te xt/html",
            "text/",
        ] {
            assert!(ContentTypePattern::parse(bad).is_err(), "{bad}");
        }
        let json = ContentTypePattern::parse("application/json").unwrap();
        assert!(json.matches("Application/Json"));
        assert!(!json.matches("application/json-seq"));
        let text = ContentTypePattern::parse("text/*").unwrap();
        assert!(text.matches("TEXT/html"));
        assert!(!text.matches("textual/html"));
    }

    #[test]
    fn no_transform_among_directives() {
        let mut headers = HeaderMap::new();
        headers.append(CACHE_CONTROL, "max-age=60".parse().unwrap());
        assert!(!has_no_transform(&headers));
        headers.append(CACHE_CONTROL, "public, No-Transform".parse().unwrap());
        assert!(has_no_transform(&headers));
    }
}
