//! W3C Trace Context: a request without a valid `traceparent` gets one, so every upstream call
//! can be correlated; a valid one passes through untouched (with its `tracestate`).

use std::cell::Cell;
use std::hash::{BuildHasher, Hasher};

use http::HeaderValue;
use http::header::{HeaderMap, HeaderName};

/// The `traceparent` header.
pub const TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");
/// The `tracestate` header.
pub const TRACESTATE: HeaderName = HeaderName::from_static("tracestate");

fn is_lower_hex(bytes: &[u8]) -> bool {
    bytes.iter().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// Whether a `traceparent` value is well formed (version 00 layout; any version but `ff`,
/// non-zero trace and parent ids, lowercase hex).
pub fn is_valid(value: &[u8]) -> bool {
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

fn push_hex(out: &mut [u8], mut value: u64) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for byte in out.iter_mut().rev() {
        *byte = HEX[(value & 15) as usize];
        value >>= 4;
    }
}

/// A new `traceparent`: random trace and parent ids, sampled flag set.
pub fn generate() -> HeaderValue {
    let mut text = *b"00-00000000000000000000000000000000-0000000000000000-01";
    push_hex(&mut text[3..19], next_random());
    push_hex(&mut text[19..35], next_random() | 1);
    push_hex(&mut text[36..52], next_random() | 1);
    HeaderValue::from_bytes(&text).unwrap_or_else(|_| {
        HeaderValue::from_static("00-00000000000000000000000000000001-0000000000000001-01")
    })
}

/// Gives the request a `traceparent` unless it carries exactly one valid one. A replaced
/// invalid one takes its `tracestate` with it (the state belongs to the old trace).
pub fn ensure(headers: &mut HeaderMap) {
    let mut values = headers.get_all(&TRACEPARENT).iter();
    let valid = match (values.next(), values.next()) {
        (Some(value), None) => is_valid(value.as_bytes()),
        _ => false,
    };
    if !valid {
        headers.remove(&TRACESTATE);
        headers.insert(TRACEPARENT, generate());
    }
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
    }
}
