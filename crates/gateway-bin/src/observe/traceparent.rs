//! W3C Trace Context: a request without a valid `traceparent` gets one, so every upstream call
//! can be correlated; a valid one passes through untouched (with its `tracestate`).

use std::cell::Cell;
use std::hash::{BuildHasher, Hasher};

use http::HeaderValue;
use http::header::{HeaderMap, HeaderName};

/// The `traceparent` header.
pub(crate) const TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");
/// The `tracestate` header.
pub(crate) const TRACESTATE: HeaderName = HeaderName::from_static("tracestate");

fn is_lower_hex(bytes: &[u8]) -> bool {
    bytes.iter().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// Whether a `traceparent` value is well formed (version 00 layout; any version but `ff`,
/// non-zero trace and parent ids, lowercase hex).
pub(crate) fn is_valid(value: &[u8]) -> bool {
    if value.len() < 55 || (value.len() > 55 && value.get(55) != Some(&b'-')) {
        return false;
    }
    let (version, trace, parent, flags) =
        (&value[0..2], &value[3..35], &value[36..52], &value[53..55]);
    value[2] == b'-'
        && value[35] == b'-'
        && value[52] == b'-'
        && is_lower_hex(version)
        && version != b"ff"
        && (version != b"00" || value.len() == 55)
        && is_lower_hex(trace)
        && trace.iter().any(|&b| b != b'0')
        && is_lower_hex(parent)
        && parent.iter().any(|&b| b != b'0')
        && is_lower_hex(flags)
}

thread_local! {
    /// xorshift64* state, seeded per thread from the process's random hasher keys.
    static STATE: Cell<u64> = Cell::new({
        let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
        hasher.write_u64(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64));
        hasher.finish() | 1
    });
}

fn next_random() -> u64 {
    STATE.with(|state| {
        let mut x = state.get();
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        state.set(x);
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    })
}

/// Writes `value` as 16 lowercase hex digits into `out` (16 bytes), a byte at a time.
fn push_hex(out: &mut [u8], value: u64) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for (pair, byte) in out.chunks_exact_mut(2).zip(value.to_be_bytes()) {
        pair[0] = HEX[usize::from(byte >> 4)];
        pair[1] = HEX[usize::from(byte & 15)];
    }
}

/// A version-00 `traceparent` for these ids.
fn format(trace_id: u128, parent_id: u64, sampled: bool) -> HeaderValue {
    let mut text = *b"00-00000000000000000000000000000000-0000000000000000-00";
    push_hex(&mut text[3..19], (trace_id >> 64) as u64);
    push_hex(&mut text[19..35], trace_id as u64);
    push_hex(&mut text[36..52], parent_id);
    if sampled {
        text[54] = b'1';
    }
    HeaderValue::from_bytes(&text).unwrap_or_else(|_| {
        HeaderValue::from_static("00-00000000000000000000000000000001-0000000000000001-01")
    })
}

/// A random trace id (never zero).
fn new_trace_id() -> u128 {
    (u128::from(next_random()) << 64) | u128::from(next_random() | 1)
}

/// A new `traceparent`: random trace and parent ids, sampled flag set.
pub(crate) fn generate() -> HeaderValue {
    format(new_trace_id(), next_random() | 1, true)
}

/// The request's trace context as it arrived: its `traceparent` when it carries exactly one,
/// and whether it carries a `tracestate`.
fn incoming(headers: &HeaderMap) -> (Option<&HeaderValue>, bool) {
    // Most requests carry neither header: one pass over the names tells, where two lookups
    // by name would hash both.
    let (mut parent, mut state) = (false, false);
    for name in headers.keys() {
        parent |= *name == TRACEPARENT;
        state |= *name == TRACESTATE;
    }
    let sole = parent
        .then(|| {
            let mut values = headers.get_all(&TRACEPARENT).iter();
            match (values.next(), values.next()) {
                (Some(value), None) => Some(value),
                _ => None,
            }
        })
        .flatten();
    (sole, state)
}

/// Gives the request a `traceparent` unless it carries exactly one valid one. A replaced
/// invalid one takes its `tracestate` with it (the state belongs to the old trace).
pub(crate) fn ensure(headers: &mut HeaderMap) {
    let (parent, state) = incoming(headers);
    if parent.is_some_and(|value| is_valid(value.as_bytes())) {
        return;
    }
    if state {
        headers.remove(&TRACESTATE);
    }
    headers.insert(TRACEPARENT, generate());
}

#[cfg(any(test, feature = "otlp"))]
/// The ids of the gateway's own span of a request, when spans are exported.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct SpanIds {
    /// The trace the span belongs to.
    pub(crate) trace_id: u128,
    /// The gateway's span.
    pub(crate) span_id: u64,
    /// The caller's span, when the request carried a valid `traceparent`.
    pub(crate) parent_id: Option<u64>,
}

#[cfg(any(test, feature = "otlp"))]
fn parse_hex(bytes: &[u8]) -> Option<u128> {
    let text = std::str::from_utf8(bytes).ok()?;
    u128::from_str_radix(text, 16).ok()
}

#[cfg(any(test, feature = "otlp"))]
/// The trace id, parent id and flags of a valid `traceparent`.
pub(crate) fn parse(value: &[u8]) -> Option<(u128, u64, u8)> {
    if !is_valid(value) {
        return None;
    }
    let trace_id = parse_hex(&value[3..35])?;
    let parent_id = u64::try_from(parse_hex(&value[36..52])?).ok()?;
    let flags = u8::try_from(parse_hex(&value[53..55])?).ok()?;
    Some((trace_id, parent_id, flags))
}

#[cfg(any(test, feature = "otlp"))]
/// Makes the gateway a span of the request's trace: joins the caller's trace (one valid
/// `traceparent`) or starts a new one, and sets the forwarded `traceparent` to the gateway's
/// own span so that upstream spans nest under it.
///
/// Returns the span's ids when it is sampled: the caller's decision when it sent one, else
/// `sample_ratio` of new traces.
pub(crate) fn enter_span(headers: &mut HeaderMap, sample_ratio: f64) -> Option<SpanIds> {
    let (parent, state) = incoming(headers);
    let parent = parent.and_then(|value| parse(value.as_bytes()));
    let (trace_id, parent_id, sampled) = match parent {
        Some((trace_id, parent_id, flags)) => (trace_id, Some(parent_id), flags & 1 == 1),
        None => {
            if state {
                headers.remove(&TRACESTATE);
            }
            let trace_id = new_trace_id();
            // Compared in 53-bit steps so that 1.0 always and 0.0 never samples.
            let draw = (next_random() >> 11) as f64 / (1u64 << 53) as f64;
            (trace_id, None, draw < sample_ratio)
        }
    };
    let span_id = next_random() | 1;
    headers.insert(TRACEPARENT, format(trace_id, span_id, sampled));
    sampled.then_some(SpanIds {
        trace_id,
        span_id,
        parent_id,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_values_are_valid_and_distinct() {
        let a = generate();
        let b = generate();
        assert!(is_valid(a.as_bytes()), "{a:?}");
        assert_ne!(a, b);
    }

    #[test]
    fn validation_follows_the_spec() {
        assert!(is_valid(
            b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
        ));
        assert!(!is_valid(
            b"00-00000000000000000000000000000000-00f067aa0ba902b7-01"
        ));
        assert!(!is_valid(
            b"00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01"
        ));
        assert!(!is_valid(
            b"ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
        ));
        assert!(!is_valid(
            b"00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01"
        ));
        assert!(!is_valid(
            b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra"
        ));
        assert!(is_valid(
            b"01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-future"
        ));
        assert!(!is_valid(b"garbage"));
    }

    #[test]
    fn entering_a_span_continues_the_callers_trace() {
        let mut headers = HeaderMap::new();
        let caller = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        headers.insert(TRACEPARENT, HeaderValue::from_static(caller));
        headers.insert(TRACESTATE, HeaderValue::from_static("vendor=1"));
        // The caller sampled the trace: the ratio does not matter.
        let ids = enter_span(&mut headers, 0.0).expect("sampled by the caller");
        assert_eq!(ids.trace_id, 0x4bf92f3577b34da6a3ce929d0e0e4736);
        assert_eq!(ids.parent_id, Some(0x00f067aa0ba902b7));
        let forwarded = headers[&TRACEPARENT].to_str().unwrap().to_owned();
        assert_eq!(
            forwarded,
            format!(
                "00-4bf92f3577b34da6a3ce929d0e0e4736-{:016x}-01",
                ids.span_id
            )
        );
        assert_eq!(headers[&TRACESTATE], "vendor=1");

        // A caller that did not sample is followed, and the flag is forwarded.
        let unsampled = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00";
        headers.insert(TRACEPARENT, HeaderValue::from_static(unsampled));
        assert_eq!(enter_span(&mut headers, 1.0), None);
        let forwarded = headers[&TRACEPARENT].to_str().unwrap();
        assert!(
            forwarded.ends_with("-00") && forwarded != unsampled,
            "{forwarded}"
        );
    }

    #[test]
    fn entering_a_span_starts_a_trace_by_ratio() {
        let mut headers = HeaderMap::new();
        headers.insert(TRACEPARENT, HeaderValue::from_static("garbage"));
        headers.insert(TRACESTATE, HeaderValue::from_static("vendor=1"));
        let ids = enter_span(&mut headers, 1.0).expect("ratio 1.0 samples");
        assert_eq!(ids.parent_id, None);
        let (trace_id, span_id, flags) = parse(headers[&TRACEPARENT].as_bytes()).unwrap();
        assert_eq!((trace_id, span_id, flags), (ids.trace_id, ids.span_id, 1));
        assert!(headers.get(&TRACESTATE).is_none());

        headers.clear();
        assert_eq!(enter_span(&mut headers, 0.0), None);
        assert_eq!(parse(headers[&TRACEPARENT].as_bytes()).unwrap().2, 0);

        let sampled = (0..4000)
            .filter(|_| enter_span(&mut HeaderMap::new(), 0.25).is_some())
            .count();
        assert!((800..1200).contains(&sampled), "{sampled} of 4000 at 0.25");
    }

    #[test]
    fn ensure_keeps_valid_and_replaces_invalid() {
        let mut headers = HeaderMap::new();
        let valid = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        headers.insert(TRACEPARENT, HeaderValue::from_static(valid));
        headers.insert(TRACESTATE, HeaderValue::from_static("vendor=1"));
        ensure(&mut headers);
        assert_eq!(headers[&TRACEPARENT], valid);
        assert_eq!(headers[&TRACESTATE], "vendor=1");

        headers.insert(TRACEPARENT, HeaderValue::from_static("00-bogus"));
        ensure(&mut headers);
        assert!(is_valid(headers[&TRACEPARENT].as_bytes()));
        assert!(headers.get(&TRACESTATE).is_none());

        // A state without a parent belongs to no trace.
        let mut headers = HeaderMap::new();
        headers.insert(TRACESTATE, HeaderValue::from_static("vendor=1"));
        headers.insert("x-other", HeaderValue::from_static("kept"));
        ensure(&mut headers);
        assert!(is_valid(headers[&TRACEPARENT].as_bytes()));
        assert!(headers.get(&TRACESTATE).is_none());
        assert_eq!(headers["x-other"], "kept");

        let mut headers = HeaderMap::new();
        ensure(&mut headers);
        assert_eq!(headers.len(), 1);
        assert!(is_valid(headers[&TRACEPARENT].as_bytes()));
    }

    #[test]
    fn ids_are_written_as_big_endian_hex() {
        let value = format(
            0x0123_4567_89ab_cdef_fedc_ba98_7654_3210,
            0x00f0_67aa_0ba9_02b7,
            false,
        );
        assert_eq!(
            value,
            "00-0123456789abcdeffedcba9876543210-00f067aa0ba902b7-00"
        );
    }
}
