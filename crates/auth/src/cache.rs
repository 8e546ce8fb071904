//! The verified-token cache: token -> its verification, bounded, never past the token's
//! `exp`.
//!
//! Entries are keyed by the full token and a hit compares it byte for byte, so a different
//! token can never share an entry. The hash needs no cryptographic strength (SHA-256 of a
//! 350-byte token alone costs more than the whole hit budget): it is taken from the token's
//! last bytes, which are signature bytes, pseudo-random for every token that made it into
//! the cache (only verified tokens do, so nobody can plant colliding entries; a forged
//! lookup that collides just costs one failed comparison). Shards with their own read locks
//! let concurrent readers proceed.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::{Arc, RwLock};

use crate::verify::Verified;

const SHARDS: usize = 16;

/// The table hash of a token: its last 8 bytes (signature bytes) and its length, mixed.
fn tail_hash(token: &[u8]) -> u64 {
    let mut tail = [0u8; 8];
    let n = token.len().min(8);
    tail[..n].copy_from_slice(&token[token.len() - n..]);
    (u64::from_le_bytes(tail) ^ token.len() as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)
}

/// Hashes a `[u8]` key as [`tail_hash`]: a slice feeds its length (ignored: `tail_hash`
/// mixes it in), then its bytes in one `write`.
#[derive(Default)]
struct TailHasher(u64);

impl Hasher for TailHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        self.0 ^= tail_hash(bytes);
    }

    fn write_usize(&mut self, _length: usize) {}
}

type Shard = HashMap<Box<[u8]>, Arc<Verified>, BuildHasherDefault<TailHasher>>;

/// A bounded, sharded map of verified tokens.
pub(crate) struct TokenCache {
    shards: Box<[RwLock<Shard>]>,
    per_shard: usize,
}

fn shard_of(token: &[u8]) -> usize {
    // The top bits: the table inside the shard indexes with the low ones.
    (tail_hash(token) >> 60) as usize % SHARDS
}

impl TokenCache {
    /// A cache holding about `capacity` tokens; `0` disables it.
    pub(crate) fn new(capacity: usize) -> Self {
        let per_shard = capacity.div_ceil(SHARDS);
        let shards = (0..if capacity == 0 { 0 } else { SHARDS })
            .map(|_| RwLock::new(Shard::default()))
            .collect();
        Self { shards, per_shard }
    }

    pub(crate) fn enabled(&self) -> bool {
        !self.shards.is_empty()
    }

    /// The verification of exactly this token, unless expired at `now`.
    pub(crate) fn get(&self, token: &[u8], now: u64) -> Option<Arc<Verified>> {
        let shard = self
            .shards
            .get(shard_of(token))?
            .read()
            .unwrap_or_else(|e| e.into_inner());
        shard.get(token).filter(|v| now < v.expires_at).cloned()
    }

    /// Remembers a verification until its `exp`; when the shard is full, expired entries
    /// go first, then an arbitrary one (the cache only saves work, any victim is correct).
    pub(crate) fn insert(&self, token: &[u8], verified: Arc<Verified>, now: u64) {
        if now >= verified.expires_at {
            return;
        }
        let Some(shard) = self.shards.get(shard_of(token)) else {
            return;
        };
        let mut shard = shard.write().unwrap_or_else(|e| e.into_inner());
        if shard.len() >= self.per_shard && !shard.contains_key(token) {
            shard.retain(|_, v| now < v.expires_at);
            let victim = (shard.len() >= self.per_shard).then(|| shard.keys().next().cloned());
            if let Some(Some(victim)) = victim {
                shard.remove(&victim);
            }
        }
        shard.insert(token.into(), verified);
    }

    /// Forgets everything (the trusted keys changed).
    pub(crate) fn clear(&self) {
        for shard in self.shards.iter() {
            shard.write().unwrap_or_else(|e| e.into_inner()).clear();
        }
    }

    /// The number of cached tokens (expired ones included until evicted).
    pub(crate) fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.read().unwrap_or_else(|e| e.into_inner()).len())
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gateway_core::Identity;

    fn verified(expires_at: u64) -> Arc<Verified> {
        Arc::new(Verified {
            identity: Identity::new(Arc::default()),
            roles: Box::default(),
            forwarded: Box::default(),
            expires_at,
        })
    }

    #[test]
    fn entries_never_outlive_exp() {
        let cache = TokenCache::new(100);
        cache.insert(b"a.b.c", verified(1000), 999);
        assert!(cache.get(b"a.b.c", 999).is_some());
        assert!(cache.get(b"a.b.c", 1000).is_none());
        cache.insert(b"x.y.z", verified(1000), 1000);
        assert_eq!(cache.len(), 1);
    }

    #[test]
    fn bounded_and_expired_entries_go_first() {
        let cache = TokenCache::new(SHARDS * 2);
        for i in 0..1000 {
            cache.insert(
                format!("token-{i}").as_bytes(),
                verified(if i == 0 { 10 } else { 100 }),
                5,
            );
        }
        assert!(cache.len() <= SHARDS * 2, "{}", cache.len());
        // A fresh insert into a full shard evicts, but the newcomer stays.
        cache.insert(b"newcomer", verified(100), 50);
        assert!(cache.get(b"newcomer", 50).is_some());
    }

    #[test]
    fn tokens_with_the_same_tail_never_share_an_entry() {
        let cache = TokenCache::new(100);
        // Same length and last 8 bytes: same hash, different tokens.
        let (a, b): (&[u8], &[u8]) = (b"AAAA.b.12345678", b"BBBB.b.12345678");
        assert_eq!(tail_hash(a), tail_hash(b));
        cache.insert(a, verified(100), 0);
        assert!(cache.get(b, 0).is_none());
        assert!(cache.get(b"AAAA.b.1234567", 0).is_none());
        cache.insert(b, verified(100), 0);
        assert!(Arc::ptr_eq(
            &cache.get(a, 0).unwrap(),
            &cache.get(a, 0).unwrap()
        ));
        assert!(!Arc::ptr_eq(
            &cache.get(a, 0).unwrap(),
            &cache.get(b, 0).unwrap()
        ));
        assert!(cache.get(b"", 0).is_none());
    }

    #[test]
    fn zero_capacity_disables() {
        let cache = TokenCache::new(0);
        assert!(!cache.enabled());
        cache.insert(b"a.b.c", verified(100), 0);
        assert!(cache.get(b"a.b.c", 0).is_none());
    }
}
