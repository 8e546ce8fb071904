//! `Cache-Control` directives (RFC 9111 section 5.2), of a request or a response.

use http::HeaderMap;
use http::header::{CACHE_CONTROL, PRAGMA};

/// The largest delta-seconds a cache must represent; larger values and overflows become it
/// (RFC 9111 section 1.2.2).
pub(crate) const MAX_DELTA: u32 = 2_147_483_648;

/// The directives this cache acts on; unknown ones are ignored, as the RFC asks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Directives {
    pub(crate) no_store: bool,
    /// `no-cache` (qualified or not: a field list is treated as the whole response).
    pub(crate) no_cache: bool,
    /// `private` (qualified or not, for the same reason).
    pub(crate) private: bool,
    pub(crate) public: bool,
    pub(crate) must_revalidate: bool,
    pub(crate) proxy_revalidate: bool,
    pub(crate) only_if_cached: bool,
    pub(crate) max_age: Option<u32>,
    pub(crate) s_maxage: Option<u32>,
    pub(crate) min_fresh: Option<u32>,
    pub(crate) stale_while_revalidate: Option<u32>,
    pub(crate) stale_if_error: Option<u32>,
}

impl Directives {
    /// The directives of every `Cache-Control` line of `headers`. A request's
    /// `Pragma: no-cache` counts as `no-cache` when there is no `Cache-Control` (RFC 9111
    /// section 5.4 keeps it for HTTP/1.0 clients).
    pub(crate) fn of(headers: &HeaderMap) -> Self {
        let mut directives = Self::default();
        let mut any = false;
        for value in headers.get_all(CACHE_CONTROL) {
            any = true;
            directives.parse(value.as_bytes());
        }
        if !any
            && headers
                .get_all(PRAGMA)
                .iter()
                .any(|v| v.as_bytes().eq_ignore_ascii_case(b"no-cache"))
        {
            directives.no_cache = true;
        }
        directives
    }

    fn parse(&mut self, mut input: &[u8]) {
        while !input.is_empty() {
            let (name, value, rest) = next_directive(input);
            input = rest;
            let seconds = || value.map(delta_seconds);
            let is = |known: &str| name.eq_ignore_ascii_case(known.as_bytes());
            if is("no-store") {
                self.no_store = true;
            } else if is("no-cache") {
                self.no_cache = true;
            } else if is("private") {
                self.private = true;
            } else if is("public") {
                self.public = true;
            } else if is("must-revalidate") {
                self.must_revalidate = true;
            } else if is("proxy-revalidate") {
                self.proxy_revalidate = true;
            } else if is("only-if-cached") {
                self.only_if_cached = true;
            } else if is("max-age") {
                // An invalid value makes the response stale rather than trusted.
                self.max_age = Some(seconds().unwrap_or(0));
            } else if is("s-maxage") {
                self.s_maxage = Some(seconds().unwrap_or(0));
            } else if is("min-fresh") {
                self.min_fresh = seconds();
            } else if is("stale-while-revalidate") {
                self.stale_while_revalidate = seconds();
            } else if is("stale-if-error") {
                self.stale_if_error = seconds();
            }
        }
    }
}

/// A delta-seconds value; anything but digits counts as 0, too many digits as
/// [`MAX_DELTA`].
fn delta_seconds(value: &[u8]) -> u32 {
    if value.is_empty() || !value.iter().all(u8::is_ascii_digit) {
        return 0;
    }
    let mut n: u64 = 0;
    for digit in value {
        n = n * 10 + u64::from(digit - b'0');
        if n >= u64::from(MAX_DELTA) {
            return MAX_DELTA;
        }
    }
    n as u32
}

/// Splits the first directive off `input`: its name, its value (inside the quotes when
/// quoted; escapes are left as they are, only numeric values are read), and the rest after
/// the separating comma. Commas inside a quoted value do not separate.
fn next_directive(input: &[u8]) -> (&[u8], Option<&[u8]>, &[u8]) {
    let input = trim_start(input);
    let name_end = input
        .iter()
        .position(|&b| b == b'=' || b == b',')
        .unwrap_or(input.len());
    let name = trim_end(&input[..name_end]);
    if input.get(name_end) != Some(&b'=') {
        let rest = input.get(name_end + 1..).unwrap_or(&[]);
        return (name, None, rest);
    }
    let after = trim_start(&input[name_end + 1..]);
    if after.first() == Some(&b'"') {
        let mut i = 1;
        while i < after.len() && after[i] != b'"' {
            i += if after[i] == b'\\' { 2 } else { 1 };
        }
        let value = &after[1..i.min(after.len())];
        let rest = after.get(i + 1..).unwrap_or(&[]);
        let rest = match rest.iter().position(|&b| b == b',') {
            Some(comma) => &rest[comma + 1..],
            None => &[],
        };
        return (name, Some(value), rest);
    }
    let end = after.iter().position(|&b| b == b',').unwrap_or(after.len());
    (
        name,
        Some(trim_end(&after[..end])),
        after.get(end + 1..).unwrap_or(&[]),
    )
}

fn trim_start(s: &[u8]) -> &[u8] {
    let start = s
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(s.len());
    &s[start..]
}

fn trim_end(s: &[u8]) -> &[u8] {
    let end = s
        .iter()
        .rposition(|b| !b.is_ascii_whitespace())
        .map_or(0, |i| i + 1);
    &s[..end]
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn parse(lines: &[&'static str]) -> Directives {
        let mut headers = HeaderMap::new();
        for line in lines {
            headers.append(CACHE_CONTROL, HeaderValue::from_static(line));
        }
        Directives::of(&headers)
    }

    #[test]
    fn directives_across_lines_and_cases() {
        let d = parse(&["Public, MAX-AGE=60", "s-maxage=\"120\", must-revalidate"]);
        assert!(d.public && d.must_revalidate);
        assert_eq!(d.max_age, Some(60));
        assert_eq!(d.s_maxage, Some(120));
        assert!(!d.no_store && !d.private);
    }

    #[test]
    fn quoted_field_lists_do_not_split_directives() {
        let d = parse(&["no-cache=\"set-cookie, x-foo\", max-age=5"]);
        assert!(d.no_cache);
        assert_eq!(d.max_age, Some(5));
        let d = parse(&["private=\"a,b\""]);
        assert!(d.private);
    }

    #[test]
    fn invalid_and_huge_ages() {
        assert_eq!(parse(&["max-age=abc"]).max_age, Some(0));
        assert_eq!(parse(&["max-age=-1"]).max_age, Some(0));
        assert_eq!(
            parse(&["max-age=99999999999999999999"]).max_age,
            Some(MAX_DELTA)
        );
        assert_eq!(parse(&["stale-if-error=x"]).stale_if_error, Some(0));
    }

    #[test]
    fn pragma_no_cache_only_without_cache_control() {
        let mut headers = HeaderMap::new();
        headers.insert(PRAGMA, HeaderValue::from_static("no-cache"));
        assert!(Directives::of(&headers).no_cache);
        headers.insert(CACHE_CONTROL, HeaderValue::from_static("max-age=10"));
        assert!(!Directives::of(&headers).no_cache);
    }
}
