//! Which client a request counts against: the key of a request, from its route's
//! [`KeySource`].

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::net::IpAddr;

use gateway_core::{ClientIp, Identity, IpText};
use http::Request;
use sha2::{Digest, Sha256};

use crate::key_source::KeySource;

impl KeySource {
    /// The key of a request, borrowed from it (nothing is allocated).
    pub fn extract<'a, B>(&self, request: &'a Request<B>) -> ClientKey<'a> {
        let found = match self {
            Self::Ip => None,
            Self::Global => return ClientKey::Global,
            Self::User => request
                .extensions()
                .get::<Identity>()
                .and_then(Identity::subject)
                .map(ClientKey::User),
            Self::Header(name) => request
                .headers()
                .get(name)
                .map(|value| ClientKey::Header(value.as_bytes())),
        };
        found.unwrap_or_else(|| ClientKey::of_ip(ClientIp::of(request)))
    }
}

/// The key one request is counted under.
///
/// Build one from a request with [`KeySource::extract`], or directly to use a
/// [`RouteLimiter`](crate::RouteLimiter) outside HTTP.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ClientKey<'a> {
    /// A client IP address.
    Ip(IpAddr),
    /// A user id.
    User(&'a str),
    /// A header value.
    Header(&'a [u8]),
    /// The route-wide key.
    Global,
    /// The client could not be identified (no client IP in the request extensions: the server
    /// in front did not insert a `PeerAddr`). All such requests share one key.
    Unknown,
}

/// Values longer than this are replaced by a digest in Redis keys, so that a client cannot
/// make the gateway store arbitrarily long keys.
const MAX_RAW_KEY: usize = 64;

impl<'a> ClientKey<'a> {
    fn of_ip(ip: Option<IpAddr>) -> Self {
        match ip {
            // `::ffff:a.b.c.d` and `a.b.c.d` are the same client.
            Some(ip) => Self::Ip(ip.to_canonical()),
            None => Self::Unknown,
        }
    }

    /// A 64-bit keyed hash, the key of the in-memory stores.
    ///
    /// IP addresses go through a keyed bijective mixer (a few multiplications): IPv4 keys
    /// never collide, and IPv6 keys collide only by chance. Text keys use SipHash. The keys
    /// are random per process, so clients can aim neither collisions nor hash flooding at
    /// the maps; two keys colliding (odds about n²/2⁶⁵ for n live keys) would share a counter.
    pub(crate) fn hash_with(&self, hasher: &KeyHasher) -> u64 {
        match *self {
            Self::Ip(IpAddr::V4(v4)) => hasher.mix(u64::from(v4.to_bits()) | 1 << 32),
            Self::Ip(IpAddr::V6(v6)) => {
                let bits = v6.to_bits();
                hasher.mix(hasher.mix((bits >> 64) as u64) ^ bits as u64 ^ 2 << 32)
            }
            Self::Global => hasher.mix(3 << 32),
            Self::Unknown => hasher.mix(4 << 32),
            Self::User(user) => hasher.sip(5, user.as_bytes()),
            Self::Header(value) => hasher.sip(6, value),
        }
    }

    /// Appends the key's stable text form (the same on every gateway instance) to a Redis key.
    pub(crate) fn write_redis(&self, out: &mut Vec<u8>) {
        match *self {
            Self::Ip(ip) => {
                out.extend_from_slice(b"ip:");
                out.extend_from_slice(IpText::new(ip).as_bytes());
            }
            Self::User(user) => write_value(out, b"user:", user.as_bytes()),
            Self::Header(value) => write_value(out, b"hdr:", value),
            Self::Global => out.extend_from_slice(b"global"),
            Self::Unknown => out.extend_from_slice(b"unknown"),
        }
    }
}

/// The per-process keyed hash functions of [`ClientKey::hash_with`].
#[derive(Debug)]
pub(crate) struct KeyHasher {
    sip: RandomState,
    k0: u64,
    k1: u64,
}

impl KeyHasher {
    pub(crate) fn new() -> Self {
        let sip = RandomState::new();
        let k0 = sip.hash_one(0x5eed_u64);
        let k1 = sip.hash_one(0x5eed_u64 + 1);
        Self { sip, k0, k1 }
    }

    /// A keyed bijection of u64 (the SplitMix64 finalizer around secret keys).
    fn mix(&self, x: u64) -> u64 {
        let mut x = x ^ self.k0;
        x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        x ^= x >> 31;
        x = (x ^ self.k1).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        x ^ (x >> 29)
    }

    fn sip(&self, tag: u8, bytes: &[u8]) -> u64 {
        let mut h = self.sip.build_hasher();
        h.write_u8(tag);
        h.write(bytes);
        h.finish()
    }
}

fn write_value(out: &mut Vec<u8>, tag: &[u8], value: &[u8]) {
    out.extend_from_slice(tag);
    if value.len() <= MAX_RAW_KEY {
        out.extend_from_slice(value);
    } else {
        out.push(b'#');
        let digest = Sha256::digest(value);
        for byte in &digest[..16] {
            out.extend_from_slice(&hex(*byte));
        }
    }
}

fn hex(byte: u8) -> [u8; 2] {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    [
        DIGITS[usize::from(byte >> 4)],
        DIGITS[usize::from(byte & 0xf)],
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use gateway_core::PeerAddr;
    use http::HeaderName;
    use std::sync::Arc;

    fn request() -> Request<()> {
        let mut request = Request::new(());
        request
            .extensions_mut()
            .insert(PeerAddr("[::ffff:192.0.2.7]:4000".parse().unwrap()));
        request
    }

    #[test]
    fn ip_key_is_canonical() {
        let request = request();
        assert_eq!(
            KeySource::Ip.extract(&request),
            ClientKey::Ip("192.0.2.7".parse().unwrap())
        );
        assert_eq!(KeySource::Ip.extract(&Request::new(())), ClientKey::Unknown);
    }

    #[test]
    fn user_and_header_fall_back_to_the_ip() {
        let mut request = request();
        let ip = ClientKey::Ip("192.0.2.7".parse().unwrap());
        assert_eq!(KeySource::User.extract(&request), ip);
        let header = KeySource::Header(HeaderName::from_static("x-api-key"));
        assert_eq!(header.extract(&request), ip);

        let serde_json::Value::Object(claims) = serde_json::json!({"sub": "alice"}) else {
            unreachable!()
        };
        request
            .extensions_mut()
            .insert(Identity::new(Arc::new(claims)));
        request
            .headers_mut()
            .insert("x-api-key", "k1".parse().unwrap());
        assert_eq!(KeySource::User.extract(&request), ClientKey::User("alice"));
        assert_eq!(header.extract(&request), ClientKey::Header(b"k1"));
    }

    #[test]
    fn kinds_do_not_collide() {
        let hasher = KeyHasher::new();
        let hashes = [
            ClientKey::User("global").hash_with(&hasher),
            ClientKey::Header(b"global").hash_with(&hasher),
            ClientKey::Global.hash_with(&hasher),
            ClientKey::Unknown.hash_with(&hasher),
            ClientKey::Ip("0.0.0.0".parse().unwrap()).hash_with(&hasher),
            ClientKey::Ip("::".parse().unwrap()).hash_with(&hasher),
        ];
        for (i, a) in hashes.iter().enumerate() {
            assert!(hashes[i + 1..].iter().all(|b| a != b));
        }
    }

    #[test]
    fn ipv4_keys_never_collide() {
        let hasher = KeyHasher::new();
        let mut seen = std::collections::HashSet::new();
        for bits in (0..200_000u32).chain(u32::MAX - 1000..=u32::MAX) {
            assert!(
                seen.insert(ClientKey::Ip(IpAddr::from(bits.to_be_bytes())).hash_with(&hasher))
            );
        }
        // Two processes (two hashers) place the same client differently.
        let ip = ClientKey::Ip("192.0.2.1".parse().unwrap());
        assert_ne!(ip.hash_with(&hasher), ip.hash_with(&KeyHasher::new()));
    }

    #[test]
    fn long_values_are_digested_in_redis_keys() {
        let long = "x".repeat(1000);
        let mut out = Vec::new();
        ClientKey::User(&long).write_redis(&mut out);
        assert_eq!(out.len(), "user:#".len() + 32);
        let mut other = Vec::new();
        ClientKey::User(&"x".repeat(999)).write_redis(&mut other);
        assert_ne!(out, other);
        let mut short = Vec::new();
        ClientKey::Ip("2001:db8::1".parse().unwrap()).write_redis(&mut short);
        assert_eq!(short, b"ip:2001:db8::1");
    }
}
