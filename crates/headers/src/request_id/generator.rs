//! Request id generation: unique without a lock or a syscall per request.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::HeaderValue;

/// Generates 32 lowercase hex digits (128 bits, the shape of a W3C trace id).
///
/// The low half is a keyed bijection of an atomic counter, so ids never repeat within a
/// generator; the high half is a keyed mix of the low one, so ids from two processes (with
/// independent random keys) collide with negligible probability. Ids look random, which keeps
/// the request count of the gateway private.
#[derive(Debug)]
pub(crate) struct IdGenerator {
    counter: AtomicU64,
    key: u64,
    salt: u64,
}

impl IdGenerator {
    pub(crate) fn new() -> Self {
        // `RandomState` keys come from the OS once per thread: enough randomness for ids,
        // without a dependency. Time and pid separate forks that share a parent's keys.
        let mut hasher = RandomState::new().build_hasher();
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        hasher.write_u128(now);
        hasher.write_u32(std::process::id());
        let key = hasher.finish();
        hasher.write_u64(key);
        let salt = hasher.finish();
        Self {
            counter: AtomicU64::new(0),
            key,
            salt,
        }
    }

    /// How many ids were generated.
    pub(crate) fn generated(&self) -> u64 {
        self.counter.load(Ordering::Relaxed)
    }

    pub(crate) fn next_id(&self) -> HeaderValue {
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        let low = mix(n ^ self.key);
        let high = mix(low.wrapping_add(self.salt));
        let mut text = IdText([0u8; 32]);
        hex(high, &mut text.0[..16]);
        hex(low, &mut text.0[16..]);
        // Owned by the value: one allocation, and its clones (the request header, the
        // extension, the echo) share it without another.
        HeaderValue::from_maybe_shared(Bytes::from_owner(text))
            .expect("hex digits are valid header value bytes")
    }
}

/// The text of an id, the owner of its header value's bytes.
struct IdText([u8; 32]);

impl AsRef<[u8]> for IdText {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

/// The splitmix64 finalizer: a bijection on `u64` with good avalanche.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

fn hex(value: u64, out: &mut [u8]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for (i, byte) in out.iter_mut().enumerate() {
        let shift = 60 - 4 * i;
        *byte = DIGITS[((value >> shift) & 0xf) as usize];
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn ids_are_32_hex_digits_and_distinct() {
        let generator = IdGenerator::new();
        let ids: HashSet<_> = (0..10_000).map(|_| generator.next_id()).collect();
        assert_eq!(ids.len(), 10_000);
        assert_eq!(generator.generated(), 10_000);
        for id in ids.iter().take(100) {
            assert_eq!(id.len(), 32);
            assert!(
                id.as_bytes()
                    .iter()
                    .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
            );
        }
    }

    #[test]
    fn generators_do_not_share_a_sequence() {
        let (a, b) = (IdGenerator::new(), IdGenerator::new());
        assert_ne!(a.next_id(), b.next_id());
    }

    #[test]
    fn hex_is_big_endian() {
        let mut out = [0u8; 16];
        hex(0x0123_4567_89ab_cdef, &mut out);
        assert_eq!(&out, b"0123456789abcdef");
    }
}
