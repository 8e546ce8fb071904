//! `Accept-Encoding` negotiation (RFC 9110 §12.5.3): the client's q-values first, the server's
//! order of preference on ties.

use std::fmt;

use http::HeaderMap;
use http::header::ACCEPT_ENCODING;

/// A content coding this crate can produce.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Algorithm {
    /// `gzip` (RFC 1952), at zlib's default level (6).
    Gzip,
    /// `br` (RFC 7932), at quality 4 with a 512 KiB window: close to gzip's speed with a
    /// better ratio, and a bounded memory cost per stream, which suits a proxy compressing on
    /// the fly (the maximum quality, 11, is meant for precompressed static files).
    Brotli,
    /// `zstd` (RFC 8878), at zstd's default level (3).
    Zstd,
}

impl Algorithm {
    /// Every algorithm, in the default order of preference.
    pub const ALL: [Self; 3] = [Self::Brotli, Self::Zstd, Self::Gzip];

    /// The content-coding token, as in `Content-Encoding` and the config: `gzip`, `br`, `zstd`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Gzip => "gzip",
            Self::Brotli => "br",
            Self::Zstd => "zstd",
        }
    }

    /// The algorithm a config entry names (case-insensitive).
    pub(crate) fn from_config(name: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|algorithm| name.eq_ignore_ascii_case(algorithm.name()))
    }

    /// The algorithm an `Accept-Encoding` coding names (case-insensitive; `x-gzip` is gzip,
    /// as RFC 9110 §8.4.1.3 asks).
    fn from_coding(coding: &str) -> Option<Self> {
        if coding.eq_ignore_ascii_case("x-gzip") {
            return Some(Self::Gzip);
        }
        Self::from_config(coding)
    }

    fn index(self) -> usize {
        match self {
            Self::Gzip => 0,
            Self::Brotli => 1,
            Self::Zstd => 2,
        }
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A q-value in thousandths: 0 (not acceptable) to 1000.
type Weight = u16;

/// The algorithm to answer a request with `headers` in, among `offered` (most preferred
/// first), or `None` for identity.
///
/// - No `Accept-Encoding`: identity.
/// - Each offered algorithm weighs its own q-value, else that of `*`, else 0; `q=0` excludes.
///   The heaviest wins; ties go to the earlier in `offered`.
/// - Identity is sent instead only when the client weighs it (itself or through `*`) above
///   the winner. `identity;q=0` (or `*;q=0`) with nothing we can do still gets identity: the
///   gateway never answers 406 for want of a coding.
/// - Entries with an unparsable q-value are ignored, as are unknown codings.
pub(crate) fn negotiate(headers: &HeaderMap, offered: &[Algorithm]) -> Option<Algorithm> {
    let mut values = headers.get_all(ACCEPT_ENCODING).iter().peekable();
    values.peek()?;
    let mut weights: [Option<Weight>; 3] = [None; 3];
    let mut star: Option<Weight> = None;
    let mut identity: Option<Weight> = None;
    for value in values {
        let Ok(text) = value.to_str() else { continue };
        for item in text.split(',') {
            let mut parts = item.split(';');
            let coding = parts.next().unwrap_or_default().trim();
            if coding.is_empty() {
                continue;
            }
            let Some(weight) = weight(parts) else {
                continue;
            };
            let slot = if coding == "*" {
                &mut star
            } else if coding.eq_ignore_ascii_case("identity") {
                &mut identity
            } else if let Some(algorithm) = Algorithm::from_coding(coding) {
                &mut weights[algorithm.index()]
            } else {
                continue;
            };
            // A coding listed twice counts with its higher weight.
            *slot = Some(slot.map_or(weight, |w| w.max(weight)));
        }
    }
    let mut best: Option<(Algorithm, Weight)> = None;
    for &algorithm in offered {
        let weight = weights[algorithm.index()].or(star).unwrap_or(0);
        if weight > 0 && best.is_none_or(|(_, top)| weight > top) {
            best = Some((algorithm, weight));
        }
    }
    let (algorithm, weight) = best?;
    match identity.or(star) {
        Some(identity) if identity > weight => None,
        _ => Some(algorithm),
    }
}

/// The q-value among an entry's parameters: 1 when there is none, `None` when it is invalid.
fn weight<'a>(params: impl Iterator<Item = &'a str>) -> Option<Weight> {
    for param in params {
        let Some((name, value)) = param.split_once('=') else {
            continue;
        };
        if name.trim().eq_ignore_ascii_case("q") {
            return qvalue(value.trim());
        }
    }
    Some(1000)
}

/// `qvalue = ( "0" [ "." 0*3DIGIT ] ) / ( "1" [ "." 0*3("0") ] )`, in thousandths.
fn qvalue(text: &str) -> Option<Weight> {
    let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
    if fraction.len() > 3 || !fraction.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let mut thousandths: Weight = 0;
    for (i, digit) in fraction.bytes().enumerate() {
        thousandths += Weight::from(digit - b'0') * [100, 10, 1][i];
    }
    match whole {
        "0" => Some(thousandths),
        "1" if thousandths == 0 => Some(1000),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn pick(accept: &str, offered: &[Algorithm]) -> Option<Algorithm> {
        let mut headers = HeaderMap::new();
        headers.insert(ACCEPT_ENCODING, HeaderValue::from_str(accept).unwrap());
        negotiate(&headers, offered)
    }

    const DEFAULT: &[Algorithm] = &Algorithm::ALL;

    #[test]
    fn qvalues() {
        assert_eq!(qvalue("0"), Some(0));
        assert_eq!(qvalue("0.5"), Some(500));
        assert_eq!(qvalue("0.125"), Some(125));
        assert_eq!(qvalue("0.05"), Some(50));
        assert_eq!(qvalue("1"), Some(1000));
        assert_eq!(qvalue("1.000"), Some(1000));
        assert_eq!(qvalue("1.5"), None);
        assert_eq!(qvalue("2"), None);
        assert_eq!(qvalue("0.1234"), None);
        assert_eq!(qvalue("-0"), None);
        assert_eq!(qvalue(""), None);
    }

    #[test]
    fn no_header_is_identity() {
        assert_eq!(negotiate(&HeaderMap::new(), DEFAULT), None);
        assert_eq!(pick("", DEFAULT), None);
    }

    #[test]
    fn weights_then_server_order() {
        use Algorithm::*;
        assert_eq!(pick("gzip;q=0.5, br;q=0.8", DEFAULT), Some(Brotli));
        assert_eq!(pick("gzip;q=0.9, br;q=0.8", DEFAULT), Some(Gzip));
        assert_eq!(pick("gzip, zstd", DEFAULT), Some(Zstd));
        assert_eq!(pick("gzip, br, zstd", &[Gzip, Brotli]), Some(Gzip));
        assert_eq!(pick("GZip ; Q=1.0", DEFAULT), Some(Gzip));
        assert_eq!(pick("x-gzip", DEFAULT), Some(Gzip));
        assert_eq!(pick("br;q=0, *", DEFAULT), Some(Zstd));
        assert_eq!(pick("*;q=0.1, gzip;q=0.2", DEFAULT), Some(Gzip));
        assert_eq!(
            pick("gzip;q=0.1, gzip;q=0.7, br;q=0.5", DEFAULT),
            Some(Gzip)
        );
        assert_eq!(pick("gzip;q=2, br;q=0.1", DEFAULT), Some(Brotli));
    }

    #[test]
    fn identity_and_exclusions() {
        assert_eq!(pick("identity;q=0", DEFAULT), None);
        assert_eq!(pick("*;q=0", DEFAULT), None);
        assert_eq!(pick("gzip;q=0", DEFAULT), None);
        assert_eq!(pick("deflate, compress", DEFAULT), None);
        assert_eq!(pick("gzip;q=0.5, identity", DEFAULT), None);
        assert_eq!(
            pick("gzip;q=0.5, identity;q=0.5", DEFAULT),
            Some(Algorithm::Gzip)
        );
        assert_eq!(pick("gzip", &[]), None);
        assert_eq!(pick("br", &[Algorithm::Gzip]), None);
    }
}
