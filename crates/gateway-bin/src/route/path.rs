//! Path normalization: the rule every request path and route prefix is put through.
//!
//! # The normalization rule
//!
//! Routing happens on the normalized path, and the normalized path is what is forwarded, so the
//! route that matched is the route the upstream sees. A request path is normalized by:
//!
//! 1. decoding percent-encoded unreserved characters (`A-Z a-z 0-9 - . _ ~`) and upper-casing
//!    the hex digits of every other escape;
//! 2. merging runs of `/` into one;
//! 3. removing `.` and `..` segments (RFC 3986, section 5.2.4).
//!
//! A path that cannot be made unambiguous is refused with 400: one that does not start with
//! `/`, an invalid or control-character escape (`%zz`, `%00`), an encoded slash or backslash
//! (`%2F`, `%5C`: upstreams disagree on whether they separate segments), a raw backslash, or
//! `..` climbing above the root. The query string is never touched.

use std::borrow::Cow;

/// Why a path was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub(crate) enum PathError {
    /// The path does not start with `/`.
    #[error("the request path must start with `/`")]
    NotAbsolute,
    /// A `%` not followed by two hex digits.
    #[error("the request path has an invalid percent-encoding")]
    BadEscape,
    /// An encoded slash, backslash or control character, or a raw backslash.
    #[error("the request path has an encoded separator or control character")]
    AmbiguousCharacter,
    /// A `..` segment that climbs above the root.
    #[error("the request path climbs above the root")]
    AboveRoot,
}

fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Whether the path is already in normal form; true for nearly every real request, which then
/// costs one scan and no allocation.
fn is_normal(path: &[u8]) -> bool {
    let mut previous = 0u8;
    for (i, &b) in path.iter().enumerate() {
        match b {
            b'%' | b'\\' => return false,
            b'/' if previous == b'/' => return false,
            b'.' if previous == b'/' => {
                // `/.` starts a dot segment only if followed by `/`, end, or `./`/`.` end.
                let rest = &path[i + 1..];
                if rest.is_empty()
                    || rest[0] == b'/'
                    || (rest[0] == b'.' && (rest.len() == 1 || rest[1] == b'/'))
                {
                    return false;
                }
            }
            _ => {}
        }
        previous = b;
    }
    true
}

/// Normalizes a request path (see the module docs).
pub(crate) fn normalize_path(path: &str) -> Result<Cow<'_, str>, PathError> {
    let bytes = path.as_bytes();
    if bytes.first() != Some(&b'/') {
        return Err(PathError::NotAbsolute);
    }
    if is_normal(bytes) {
        return Ok(Cow::Borrowed(path));
    }
    // Decode into segments, then resolve dot segments.
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let (Some(hi), Some(lo)) = (
                    bytes.get(i + 1).copied().and_then(hex),
                    bytes.get(i + 2).copied().and_then(hex),
                ) else {
                    return Err(PathError::BadEscape);
                };
                let value = hi << 4 | lo;
                if value == b'/' || value == b'\\' || value < 0x20 || value == 0x7f {
                    return Err(PathError::AmbiguousCharacter);
                }
                if is_unreserved(value) {
                    decoded.push(value);
                } else {
                    decoded.extend_from_slice(&[
                        b'%',
                        bytes[i + 1].to_ascii_uppercase(),
                        bytes[i + 2].to_ascii_uppercase(),
                    ]);
                }
                i += 3;
            }
            b'\\' => return Err(PathError::AmbiguousCharacter),
            b => {
                decoded.push(b);
                i += 1;
            }
        }
    }
    let ends_with_slash = decoded.ends_with(b"/");
    let mut segments: Vec<&[u8]> = Vec::new();
    let mut last_was_dot = false;
    for segment in decoded.split(|&b| b == b'/').skip(1) {
        last_was_dot = false;
        match segment {
            b"" => {}
            b"." => last_was_dot = true,
            b".." => {
                if segments.pop().is_none() {
                    return Err(PathError::AboveRoot);
                }
                last_was_dot = true;
            }
            s => segments.push(s),
        }
    }
    let mut out = String::with_capacity(decoded.len());
    for segment in &segments {
        out.push('/');
        // Only ASCII was produced by decoding (unreserved bytes), the rest is the input's.
        out.push_str(std::str::from_utf8(segment).map_err(|_| PathError::BadEscape)?);
    }
    if segments.is_empty() || ends_with_slash || last_was_dot {
        out.push('/');
    }
    Ok(Cow::Owned(out))
}

/// Normalizes a configured route prefix: same rules as a request path, without the trailing
/// slash (`/api/` and `/api` are the same route).
pub(crate) fn normalize_route_prefix(prefix: &str) -> Result<String, String> {
    let normal =
        normalize_path(prefix).map_err(|e| format!("invalid route path `{prefix}`: {e}"))?;
    let trimmed = normal.trim_end_matches('/');
    Ok(if trimmed.is_empty() {
        "/".to_owned()
    } else {
        trimmed.to_owned()
    })
}

/// The path to forward after removing a matched prefix (`/api` from `/api/42` is `/42`).
pub(crate) fn strip_prefix(path: &str, prefix_len: usize) -> &str {
    if prefix_len <= 1 {
        return path;
    }
    match &path[prefix_len..] {
        "" => "/",
        rest => rest,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn norm(p: &str) -> Result<String, PathError> {
        normalize_path(p).map(Cow::into_owned)
    }

    #[test]
    fn normal_paths_are_borrowed() {
        assert!(matches!(
            normalize_path("/api/v1/users/42"),
            Ok(Cow::Borrowed(_))
        ));
        assert!(matches!(
            normalize_path("/a/.hidden/b..c/"),
            Ok(Cow::Borrowed(_))
        ));
    }

    #[test]
    fn dot_segments_and_slashes() {
        assert_eq!(norm("/a//b///c").unwrap(), "/a/b/c");
        assert_eq!(norm("/a/./b/../c").unwrap(), "/a/c");
        assert_eq!(norm("/a/b/..").unwrap(), "/a/");
        assert_eq!(norm("/a/.").unwrap(), "/a/");
        assert_eq!(norm("//").unwrap(), "/");
        assert_eq!(norm("/..").unwrap_err(), PathError::AboveRoot);
        assert_eq!(norm("/a/../../b").unwrap_err(), PathError::AboveRoot);
    }

    #[test]
    fn escapes() {
        assert_eq!(norm("/%61pi/%7euser").unwrap(), "/api/~user");
        assert_eq!(norm("/a/%2e%2E/b").unwrap(), "/b");
        assert_eq!(norm("/a%20b%c3%a9").unwrap(), "/a%20b%C3%A9");
        assert_eq!(norm("/a%2fb").unwrap_err(), PathError::AmbiguousCharacter);
        assert_eq!(norm("/a%5Cb").unwrap_err(), PathError::AmbiguousCharacter);
        assert_eq!(norm("/a%00").unwrap_err(), PathError::AmbiguousCharacter);
        assert_eq!(norm("/a\\b").unwrap_err(), PathError::AmbiguousCharacter);
        assert_eq!(norm("/a%zz").unwrap_err(), PathError::BadEscape);
        assert_eq!(norm("/a%4").unwrap_err(), PathError::BadEscape);
        assert_eq!(norm("a/b").unwrap_err(), PathError::NotAbsolute);
    }

    #[test]
    fn normalizing_is_idempotent() {
        for p in ["/a//b/./c/..", "/%41%2e/x", "/x/%2e%2e/y/", "/a%20b"] {
            let once = norm(p).unwrap();
            assert_eq!(norm(&once).unwrap(), once, "{p}");
        }
    }

    #[test]
    fn stripping() {
        assert_eq!(strip_prefix("/api/v1/users/42", 13), "/42");
        assert_eq!(strip_prefix("/api/v1/users", 13), "/");
        assert_eq!(strip_prefix("/x", 1), "/x");
    }
}

/// Properties of the normalization rule over arbitrary paths: what proptest searches for is
/// an input that breaks the rule stated in the module docs.
#[cfg(test)]
mod properties {
    use super::*;
    use proptest::prelude::*;
    use proptest::test_runner::Config as ProptestConfig;

    fn config() -> ProptestConfig {
        ProptestConfig {
            cases: 1024,
            failure_persistence: None,
            ..ProptestConfig::default()
        }
    }

    /// Paths made of the pieces that matter (separators, dot segments, escapes of every
    /// class, backslashes), plus arbitrary text.
    fn path() -> impl Strategy<Value = String> {
        let piece = prop_oneof![
            4 => "[a-zA-Z0-9_~-]{1,4}",
            3 => Just("/".to_owned()),
            2 => Just(".".to_owned()),
            2 => Just("..".to_owned()),
            2 => "%[0-9a-fA-F]{2}",
            1 => prop_oneof![Just("%2e"), Just("%2E"), Just("%2f"), Just("%5c"), Just("%00")]
                .prop_map(str::to_owned),
            1 => "%[0-9a-zA-Z]{0,2}",
            1 => Just("\\".to_owned()),
            1 => "[ -~]",
            1 => "\\PC",
        ];
        prop_oneof![
            8 => proptest::collection::vec(piece, 0..12)
                .prop_map(|pieces| format!("/{}", pieces.concat())),
            1 => any::<String>(),
        ]
    }

    /// Every `%XX` of `path` decoded (what a lenient upstream might do to it).
    fn fully_decoded(path: &str) -> Vec<u8> {
        let bytes = path.as_bytes();
        let mut out = Vec::with_capacity(bytes.len());
        let mut i = 0;
        while i < bytes.len() {
            let escape = (bytes[i] == b'%')
                .then(|| Some(hex(*bytes.get(i + 1)?)? << 4 | hex(*bytes.get(i + 2)?)?))
                .flatten();
            match escape {
                Some(value) => {
                    out.push(value);
                    i += 3;
                }
                None => {
                    out.push(bytes[i]);
                    i += 1;
                }
            }
        }
        out
    }

    proptest! {
        #![proptest_config(config())]

        #[test]
        fn normal_form_is_a_fixed_point(input in path()) {
            if let Ok(normal) = normalize_path(&input) {
                // Equal, though not always borrowed: a path with escapes takes the slow path.
                let again = normalize_path(&normal);
                prop_assert!(
                    matches!(&again, Ok(same) if *same == normal),
                    "{input:?} -> {normal:?} -> {again:?}"
                );
                if !normal.contains('%') {
                    prop_assert!(matches!(again, Ok(Cow::Borrowed(_))), "{normal:?} copied");
                }
            }
        }

        #[test]
        fn normal_form_has_no_ambiguity_even_fully_decoded(input in path()) {
            if let Ok(normal) = normalize_path(&input) {
                prop_assert!(normal.starts_with('/'));
                prop_assert!(!normal.contains("//"), "{normal:?}");
                prop_assert!(!normal.contains('\\'), "{normal:?}");
                // Decoding what is left can make neither a separator nor a dot segment, so
                // an upstream that decodes more than we do still sees the same path.
                let decoded = fully_decoded(&normal);
                prop_assert!(!decoded.contains(&b'\\'), "{normal:?}");
                prop_assert_eq!(decoded.iter().filter(|&&b| b == b'/').count(),
                    normal.matches('/').count());
                for segment in decoded.split(|&b| b == b'/') {
                    prop_assert!(segment != b"." && segment != b"..", "{normal:?}");
                }
                // The escapes left are of reserved bytes, in upper case.
                let bytes = normal.as_bytes();
                for (i, _) in normal.match_indices('%') {
                    let (hi, lo) = (bytes[i + 1], bytes[i + 2]);
                    prop_assert!(!hi.is_ascii_lowercase() && !lo.is_ascii_lowercase());
                    let value = hex(hi).unwrap() << 4 | hex(lo).unwrap();
                    prop_assert!(!is_unreserved(value), "{normal:?}");
                }
            }
        }

        #[test]
        fn refusals_are_for_the_documented_reasons(input in path()) {
            let decoded = fully_decoded(&input);
            match normalize_path(&input) {
                Err(PathError::NotAbsolute) => prop_assert!(!input.starts_with('/')),
                Err(PathError::AmbiguousCharacter) => prop_assert!(
                    decoded.iter().any(|&b| b == b'\\' || b < 0x20 || b == 0x7f)
                        || input.to_ascii_lowercase().contains("%2f"),
                    "{input:?}"
                ),
                Err(PathError::BadEscape) => prop_assert!(
                    decoded.contains(&b'%') || std::str::from_utf8(&decoded).is_err(),
                    "{input:?}"
                ),
                Err(PathError::AboveRoot) => prop_assert!(
                    decoded.windows(2).any(|w| w == b".."), "{input:?}"
                ),
                Ok(_) => prop_assert!(input.starts_with('/')),
            }
        }

        #[test]
        fn route_prefixes_match_their_own_paths(input in path()) {
            // A prefix normalizes like a path, so the path it was written as routes to it.
            if let Ok(prefix) = normalize_route_prefix(&input) {
                let path = normalize_path(&input).unwrap();
                prop_assert!(path.starts_with(&prefix), "{input:?}: {path:?} vs {prefix:?}");
                let rest = strip_prefix(&path, prefix.len());
                prop_assert!(rest.starts_with('/'), "{input:?}: {rest:?}");
            }
        }
    }
}
